"""The overlapping EnvRunner (`i2a_rllib.env_runner`): the same episodes as RLlib's own
runner, step for step, on real ale-py Breakout; whole-episode sampling and metrics; the
option through PPO training on a local Ray cluster; refusals where it cannot run."""

import numpy as np
import pytest
import torch

from i2a_rllib.config import baseline_ppo_config, set_torch_threads, torch_threads_of
from i2a_rllib.env_runner import OverlappingEnvRunner, check_overlap_sampling

ENV = "ALE/Breakout-v5"


def _runner(overlap: bool, num_envs: int = 8, seed: int = 7):
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    config = baseline_ppo_config(
        ENV, num_envs_per_env_runner=num_envs, overlap_sampling=overlap
    ).env_runners(num_env_runners=0)
    config.debugging(seed=seed)
    return (OverlappingEnvRunner if overlap else SingleAgentEnvRunner)(config=config)


def _streams(chunks_per_call):
    """{env slot: {t: (obs, action, reward)}} from the ongoing chunks of each call.

    Both runners return the ongoing chunks in env order (first the done episodes,
    then one chunk per env), so slot i is env i in every call."""
    streams = {}
    for chunks in chunks_per_call:
        ongoing = [c for c in chunks if not c.is_done][-8:]
        for slot, chunk in enumerate(ongoing):
            obs, actions, rewards = chunk.get_observations(), chunk.get_actions(), chunk.get_rewards()
            for j in range(len(chunk)):
                streams.setdefault(slot, {})[chunk.t_started + j] = (obs[j], actions[j], rewards[j])
    return streams


def test_overlapped_runner_steps_the_same_episodes_as_rllibs():
    """Same seed, same weights, greedy actions: every env sees the same frames, takes the
    same actions and gets the same rewards with and without overlap (sticky actions on)."""
    torch.manual_seed(0)
    plain, overlapped = _runner(False), _runner(True)
    try:
        overlapped.module.load_state_dict(plain.module.state_dict())
        calls = {"plain": [], "overlapped": []}
        for _ in range(3):  # 3 x 48 steps: no Breakout episode ends this soon
            calls["plain"].append(plain.sample(num_timesteps=48, explore=False))
            calls["overlapped"].append(overlapped.sample(num_timesteps=48, explore=False))
        a, b = _streams(calls["plain"]), _streams(calls["overlapped"])
        assert sorted(a) == sorted(b) == list(range(8))
        compared = 0
        for slot in range(8):
            common = sorted(set(a[slot]) & set(b[slot]))
            assert len(common) >= 17, (slot, len(common))
            for t in common:
                np.testing.assert_array_equal(a[slot][t][0], b[slot][t][0], err_msg=f"env {slot} t={t}")
                assert a[slot][t][1:] == b[slot][t][1:], (slot, t)
                compared += 1
        # The frames change (the comparison is not between blank screens).
        assert any(not np.array_equal(a[0][0][0], a[0][t][0]) for t in sorted(a[0])[1:])
        assert compared >= 8 * 17
    finally:
        plain.stop()
        overlapped.stop()


def test_overlapped_runner_chunks_continue_and_whole_episodes_end():
    runner = _runner(True, num_envs=4)
    try:
        first = runner.sample(num_timesteps=64, explore=True)
        assert sum(len(e) for e in first) >= 64
        second = runner.sample(num_timesteps=64, explore=True)
        # Each env's chunk continues where its previous chunk stopped.
        ends = {e.id_: e.t for e in first if not e.is_done}
        continued = [e for e in second if e.id_ in ends]
        assert continued and all(e.t_started == ends[e.id_] for e in continued)
        for episode in second:
            episode.validate()
            assert {"action_logp", "action_dist_inputs"} <= set(episode.extra_model_outputs)
        done = runner.sample(num_episodes=2, explore=True)
        assert len(done) >= 2 and all(e.is_done for e in done)
        metrics = runner.get_metrics()
        assert metrics["num_episodes"].peek() >= 2
        assert metrics["episode_return_mean"].peek() >= 0
        # The next timestep sample starts from fresh episodes (whole episodes reset all).
        again = runner.sample(num_timesteps=16, explore=True)
        assert all(e.t_started == 0 for e in again)
    finally:
        runner.stop()


def test_ppo_trains_with_overlapped_sampling_on_a_remote_env_runner(ray_session):
    # Also set_torch_threads: the remote runner's torch threads (Ray gives a 1-CPU actor
    # one) and those of the algorithm's process (here this one, whose local learner updates).
    driver_threads = torch.get_num_threads()
    config = set_torch_threads(
        baseline_ppo_config(ENV, num_envs_per_env_runner=4, overlap_sampling=True)
        .env_runners(num_env_runners=1, rollout_fragment_length="auto")
        .training(train_batch_size_per_learner=256, minibatch_size=128, num_epochs=1),
        env_runner_threads=3,
        learner_threads=driver_threads + 1,
    )
    algo = config.build_algo()
    try:
        assert torch.get_num_threads() == driver_threads + 1
        result = algo.train()
        kinds = algo.env_runner_group.foreach_env_runner(lambda r: type(r).__name__, local_env_runner=False)
        assert kinds == ["OverlappingEnvRunner"]
        threads = algo.env_runner_group.foreach_env_runner(lambda r: torch.get_num_threads(), local_env_runner=False)
        assert threads == [3]
        assert result["env_runners"]["num_env_steps_sampled"] >= 256
        assert np.isfinite(result["learners"]["default_policy"]["total_loss"])
    finally:
        algo.stop()
        torch.set_num_threads(driver_threads)


@pytest.mark.parametrize(
    "env, num_envs, fragment",
    [
        ("i2a_sokoban", 8, "needs an env that steps asynchronously"),
        ("CartPole-v1", 8, "needs an env that steps asynchronously"),
        ("i2a_atari", 1, "use an even number >= 2"),
        ("i2a_atari", 5, "num_envs_per_env_runner=5"),
    ],
)
def test_overlap_is_refused_where_it_cannot_run(env, num_envs, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        check_overlap_sampling(env, num_envs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["env_runner_threads", "learner_threads"])
@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_torch_threads_are_refused_unless_a_positive_integer(name, threads):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1, got {threads!r}"):
        set_torch_threads(baseline_ppo_config(ENV), **{name: threads})


def test_torch_threads_keep_the_users_own_callbacks_and_replace_an_earlier_setting():
    def users_env_hook(**kwargs):
        pass

    def users_init_hook(**kwargs):
        pass

    config = baseline_ppo_config(ENV).callbacks(
        on_environment_created=users_env_hook, on_algorithm_init=[users_init_hook]
    )
    set_torch_threads(config, env_runner_threads=2, learner_threads=2)
    set_torch_threads(config, env_runner_threads=3, learner_threads=4)
    env_hooks, init_hooks = config.callbacks_on_environment_created, config.callbacks_on_algorithm_init
    assert env_hooks[0] is users_env_hook and init_hooks[0] is users_init_hook
    assert len(env_hooks) == len(init_hooks) == 2
    assert torch_threads_of(config) == (3, 4)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--env-runner-threads", "2", "--learner-threads", "3"], (2, 3)),
        (["--learner-threads", "3"], (None, 3)),
        (["--laptop"], (2, 2)),
        ([], (None, None)),
    ],
)
def test_thread_flags_reach_the_config(argv, expected):
    """Every script's flags go through apply_scaling_flags; --laptop sets both."""
    from i2a_rllib.experiment import apply_scaling_flags
    from i2a_rllib.pipeline import apply_presets, build_i2a_config, i2a_arg_parser

    parser = i2a_arg_parser(env=ENV, env_model="copy")
    args = apply_presets(parser.parse_args(argv), parser)
    config = apply_scaling_flags(build_i2a_config(args), args)
    assert torch_threads_of(config) == expected


def test_laptop_spatial_settings_are_the_ones_the_user_left_at_their_defaults():
    """--laptop's folded layout and one pretraining worker x 32 are kept for run_pipeline
    (which applies them once the kind is known), never over a user's own setting."""
    from i2a_rllib.pipeline import LAPTOP_SPATIAL_PRESET, apply_presets, i2a_arg_parser

    parser = i2a_arg_parser(env="ALE/Breakout-v5", env_model="spatial")
    laptop = apply_presets(parser.parse_args(["--laptop"]), parser)
    assert laptop.laptop_spatial == LAPTOP_SPATIAL_PRESET
    assert laptop.env_model_hparams == {} and laptop.pretrain_workers == 2  # not yet applied
    own = apply_presets(
        parser.parse_args(["--laptop", "--env-model-hparams", '{"codes": 4}', "--pretrain-workers", "3"]),
        parser,
    )
    assert own.laptop_spatial == {"pretrain_batch_size": 32}
    assert own.env_model_hparams == {"codes": 4}
    assert apply_presets(parser.parse_args([]), parser).laptop_spatial == {}


def test_torch_compile_worker_flag_reaches_the_i2a_module_config():
    from i2a_rllib.experiment import apply_scaling_flags
    from i2a_rllib.pipeline import apply_presets, build_i2a_config, i2a_arg_parser

    parser = i2a_arg_parser(env=ENV, env_model="copy")
    for argv, expected in (([], False), (["--torch-compile-worker"], True)):
        args = apply_presets(parser.parse_args(argv), parser)
        config = apply_scaling_flags(build_i2a_config(args), args)
        included = config._model_config_auto_includes
        assert included["torch_compile_worker"] is expected
        assert included["torch_compile_worker_dynamo_backend"] == "inductor"
