"""I2A on flat-vector environments (CartPole-v1): the seed's residual MLP environment
model, the vector collection format, the MLP agent components, and the whole pipeline."""

import json
import os

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ray.rllib.core.columns import Columns

from i2a_rllib.checkpoints import load_env_model, save_env_model
from i2a_rllib.data.collect import _observation_column
from i2a_rllib.data.format import (
    Manifest,
    check_shard,
    filesystem_and_path,
    read_manifest,
    shard_name,
    transition_schema,
    write_manifest,
    write_shard_atomically,
)
from i2a_rllib.data.windows import shard_windows
from i2a_rllib.models.env_models import (
    CopyEnvModel,
    ResidualMLPEnvModel,
    build_env_model,
    build_env_model_from_metadata,
    default_kind,
    resolve_env_model,
)
from i2a_rllib.models.i2a import I2ANetwork
from i2a_rllib.models.model_free import MLPTrunk

CARTPOLE = "CartPole-v1"
CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


def cartpole_transitions(num_envs=8, steps=400, seed=0):
    """Random play in CartPole as the collection writes it: per row obs, action, reward,
    terminated, truncated, next state, and where it came from (env, episode, step)."""
    env = gym.make_vec(CARTPOLE, num_envs=num_envs, vectorization_mode="sync")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episode, step = np.arange(num_envs), np.zeros(num_envs, dtype=np.int32)
    next_episode, resetting = num_envs, np.zeros(num_envs, dtype=bool)
    rows = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated", "next", "env", "episode", "step")}
    for _ in range(steps):
        actions = rng.integers(0, 2, num_envs)
        next_obs, rewards, terminated, truncated, _ = env.step(actions)
        valid = ~resetting  # NEXT_STEP autoreset: this step only reset these envs
        for key, value in (("obs", obs), ("action", actions), ("reward", rewards), ("terminated", terminated),
                           ("truncated", truncated), ("next", next_obs), ("env", np.arange(num_envs)),
                           ("episode", episode.copy()), ("step", step.copy())):
            rows[key].append(value[valid])
        restarted = np.flatnonzero(resetting)
        episode[restarted] = np.arange(next_episode, next_episode + len(restarted))
        next_episode += len(restarted)
        step[restarted] = 0
        step[~resetting] += 1
        resetting = (terminated | truncated) & ~resetting
        obs = next_obs
    env.close()
    return {k: np.concatenate(v) for k, v in rows.items()}


def write_cartpole_dataset(path, num_shards=4, **kwargs):
    """A dataset in the `i2a collect` format for CartPole's (4,) float vectors, written
    with the collection's own column writer, one shard per env pair, without Ray."""
    data = cartpole_transitions(**kwargs)
    fs, root = filesystem_and_path(str(path))
    fs.create_dir(root, recursive=True)
    schema = transition_schema((4,), 4, "float32")
    manifest = Manifest(env_id=CARTPOLE, obs_shape=[4], num_actions=2, frame_channels=4,
                        policy="random", obs_dtype="float32", reward_values=[1.0])
    envs_per_shard = -(-int(data["env"].max() + 1) // num_shards)
    for index in range(num_shards):
        rows = (data["env"] // envs_per_shard) == index
        table = pa.Table.from_arrays(
            [
                _observation_column(data["obs"][rows], schema.field("obs").type),
                pa.array(data["action"][rows].astype(np.int32)),
                pa.array(data["reward"][rows].astype(np.float32)),
                pa.array(data["terminated"][rows]),
                pa.array(data["truncated"][rows]),
                _observation_column(data["next"][rows], schema.field("next_frame").type),
                pa.array(np.zeros(rows.sum(), np.int32)),
                pa.array(data["env"][rows].astype(np.int32)),
                pa.array(data["episode"][rows].astype(np.int64)),
                pa.array(data["step"][rows].astype(np.int32)),
            ],
            schema=schema,
        )
        name = shard_name(0, index)
        write_shard_atomically(fs, root, name, table)
        manifest.shards[name] = table.num_rows
    manifest.num_transitions = sum(manifest.shards.values())
    write_manifest(fs, root, manifest)
    return str(path), data


def _split(data, held_out_fraction=0.2):
    """Transitions -> (train, held-out) by whole episodes."""
    held_out = data["episode"] % int(1 / held_out_fraction) == 0
    return ({k: v[~held_out] for k, v in data.items()}, {k: v[held_out] for k, v in data.items()})


def _fit_one_step(model, train, steps=600, batch_size=256, lr=3e-3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    obs, actions = torch.from_numpy(train["obs"]), torch.from_numpy(train["action"]).long()
    rewards, following = torch.from_numpy(train["reward"]).float(), torch.from_numpy(train["next"])
    for _ in range(steps):
        rows = torch.randint(0, len(obs), (batch_size,), generator=generator)
        loss = model.loss(obs[rows], actions[rows], rewards[rows], following[rows])
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    return model


# ------------------------------------------------------------------ the MLP environment model


def test_mlp_model_predicts_next_state_as_state_plus_scaled_change():
    """The seed's residual form: next = state + delta_mean + delta_std * f([(s - mean) /
    std, one-hot a]); untrained (zero last layer) it predicts the mean change."""
    torch.manual_seed(0)
    stats = dict(obs_mean=[0.1, -0.2, 0.3, 0.0], obs_std=[1.0, 2.0, 0.5, 4.0],
                 delta_mean=[0.01, 0.0, -0.02, 0.0], delta_std=[0.1, 0.2, 0.05, 0.3])
    model = build_env_model("mlp", (4,), 2, reward_values=[1.0], hparams=stats)
    state, actions = torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    untrained, _ = model.step(state, actions)
    torch.testing.assert_close(untrained, state + torch.tensor(stats["delta_mean"]))
    torch.nn.init.normal_(model.transition_mlp[-1].weight)
    next_state, reward = model.step(state, actions)
    inputs = torch.cat([(state - torch.tensor(stats["obs_mean"])) / torch.tensor(stats["obs_std"]),
                        torch.nn.functional.one_hot(actions, 2).float()], dim=-1)
    expected = state + torch.tensor(stats["delta_mean"]) + torch.tensor(stats["delta_std"]) * model.transition_mlp(inputs)
    torch.testing.assert_close(next_state, expected)
    assert not torch.allclose(next_state, untrained)
    torch.testing.assert_close(reward, torch.ones(5))  # one reward class: CartPole's +1
    # Stepping every action at once equals stepping each action on its own.
    every, _ = model.step_every_action(state[:2])
    one_by_one = torch.stack([model.step(state[:2], torch.full((2,), a))[0] for a in range(2)], 1)
    torch.testing.assert_close(every, one_by_one.flatten(0, 1))


def test_mlp_model_measures_its_scales_on_the_data():
    data = cartpole_transitions(steps=100)
    hparams = ResidualMLPEnvModel.hparams_from_data(data["obs"], data["next"], data["reward"])
    change = data["next"].astype(np.float64) - data["obs"]
    np.testing.assert_allclose(hparams["obs_mean"], data["obs"].mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(hparams["delta_std"], change.std(0), rtol=1e-5)
    assert hparams["reward_std"] == 1.0  # constant rewards keep unit scale
    # A feature that never changes keeps finite scales.
    constant = np.ones((10, 2))
    still = ResidualMLPEnvModel.hparams_from_data(constant, constant, np.zeros(10))
    assert still["obs_std"] == [1.0, 1.0] and min(still["delta_std"]) > 0


def test_mlp_model_learns_cartpole_far_better_than_copying_the_last_state():
    """Trained on 1-step random-play transitions, its held-out 1-step error is a small
    fraction of copying the last state's, and its 10-step open-loop error stays below
    copying too."""
    torch.manual_seed(0)
    train, held_out = _split(cartpole_transitions(steps=600))
    model = build_env_model(
        "mlp", (4,), 2, reward_values=[1.0],
        hparams=ResidualMLPEnvModel.hparams_from_data(train["obs"], train["next"], train["reward"]),
    )
    _fit_one_step(model, train)
    obs, following = torch.from_numpy(held_out["obs"]), torch.from_numpy(held_out["next"])
    with torch.no_grad():
        predicted, _ = model.predict_frames(obs, torch.from_numpy(held_out["action"]).long()[:, None])
    model_error = float(((predicted[:, 0] - following) ** 2).mean())
    copy_error = float(((obs - following) ** 2).mean())
    assert model_error < 0.05 * copy_error, (model_error, copy_error)


def test_mlp_reward_head_classifies_few_rewards_and_regresses_many():
    classes = build_env_model("mlp", (4,), 2, reward_values=[-1.0, 0.0])
    assert not classes.regresses_reward and classes.reward_mlp[-1].out_features == 2
    regression = build_env_model("mlp", (4,), 2, reward_values=[], hparams={"reward_std": 2.0})
    assert regression.regresses_reward and regression.reward_mlp[-1].out_features == 1
    # A reward that depends on the state is learnt by the regression head.
    torch.manual_seed(0)
    state = torch.randn(512, 4)
    reward = 3.0 * state[:, 0] - state[:, 2]
    optimizer = torch.optim.Adam(regression.parameters(), lr=1e-2)
    for _ in range(300):
        loss = regression.loss(state, torch.zeros(512, dtype=torch.long), reward, state)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    with torch.no_grad():
        _, predicted = regression.step(state, torch.zeros(512, dtype=torch.long))
    assert float(((predicted - reward) ** 2).mean()) < 0.05 * float(reward.var())
    assert float(loss.reward_accuracy) > 0.5  # within 0.1 reward sd
    hits = regression.reward_hits(torch.tensor([1.0, 1.5]), torch.tensor([1.1, 1.0]))
    assert hits.tolist() == [True, False]  # tolerance 0.1 x reward_std 2.0


def test_mlp_checkpoint_round_trip_keeps_weights_and_data_statistics(tmp_path):
    data = cartpole_transitions(steps=50)
    hparams = ResidualMLPEnvModel.hparams_from_data(data["obs"], data["next"], data["reward"])
    model = build_env_model("mlp", (4,), 2, reward_values=[1.0], hparams={**hparams, "hidden_size": 32})
    torch.nn.init.normal_(model.transition_mlp[-1].weight)
    path = save_env_model(model, str(tmp_path / "env_model"), extra_metadata={"env_id": CARTPOLE})
    metadata = json.load(open(os.path.join(path, "metadata.json")))
    assert metadata["kind"] == "mlp" and metadata["obs_shape"] == [4] and metadata["frame_channels"] == 4
    for key in ("obs_mean", "obs_std", "delta_mean", "delta_std"):
        np.testing.assert_allclose(metadata["hparams"][key], hparams[key], rtol=1e-6)
    loaded, _ = load_env_model(path)
    state, actions = torch.from_numpy(data["obs"][:6]), torch.from_numpy(data["action"][:6]).long()
    torch.testing.assert_close(loaded.step(state, actions)[0], model.step(state, actions)[0])
    # The metadata alone (a restored agent whose checkpoint directory is gone) rebuilds
    # the scales, not only the shapes.
    rebuilt = build_env_model_from_metadata(metadata)
    torch.testing.assert_close(rebuilt.obs_std, model.obs_std)
    torch.testing.assert_close(rebuilt.delta_mean, model.delta_mean)
    assert resolve_env_model("auto", (4,), 2, checkpoint=path, env_id=CARTPOLE).kind == "mlp"


def test_copy_model_on_vectors_returns_the_state_as_floats():
    model = CopyEnvModel((4,), 2)
    state = torch.randn(3, 4)
    net = I2ANetwork(model, rollout_depth=4, model_free_hidden=16, rollout_policy_hidden=8,
                     encoder_feature_size=8, encoder_hidden=8, head_hidden=16)
    imagination = net.imagine(state)
    assert imagination.views.dtype == torch.float32 and imagination.views.shape == (3, 2, 4, 4)
    assert torch.equal(imagination.views, state[:, None, None].expand(3, 2, 4, 4))
    assert torch.all(imagination.rewards == 0)


def test_auto_picks_the_mlp_components_for_flat_observations():
    from i2a_rllib.rl_module import I2ARLModule, NatureCNNRLModule

    assert default_kind((4,)) == "mlp"
    module = I2ARLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2),
                         model_config={"rollout_depth": 3})
    net = module.net
    assert net.env_model.kind == "mlp" and isinstance(net.model_free, MLPTrunk)
    assert isinstance(net.rollout_policy.features[0], torch.nn.Linear)
    assert isinstance(net.rollout_encoder.features[0], torch.nn.Linear)
    obs = torch.randn(5, 4)
    explore = module.forward_exploration({Columns.OBS: obs})
    assert explore[Columns.ACTION_DIST_INPUTS].shape == (5, 2)
    train = module.forward_train({Columns.OBS: obs, "i2a_rollout_noise": explore["i2a_rollout_noise"]})
    torch.testing.assert_close(train[Columns.ACTION_DIST_INPUTS], explore[Columns.ACTION_DIST_INPUTS])
    baseline = NatureCNNRLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2),
                                 model_config={"hidden_size": 64})
    assert isinstance(baseline.trunk, MLPTrunk)
    assert baseline.compute_values({Columns.OBS: obs}).shape == (5,)


def test_a_model_free_cartpole_policy_can_act_in_imagination(tmp_path):
    """The seed's stage 2 on vectors: the mlp model's states are observations, so the
    PPO baseline's policy, restored and frozen, is the rollout policy."""
    from i2a_rllib.rl_module import I2ARLModule, NatureCNNRLModule

    torch.manual_seed(0)
    baseline = NatureCNNRLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2),
                                 model_config={"hidden_size": 32})
    baseline.save_to_path(str(tmp_path / "baseline"))
    module = I2ARLModule(observation_space=CARTPOLE_OBS, action_space=gym.spaces.Discrete(2),
                         model_config={"env_model": "mlp", "rollout_policy_checkpoint": str(tmp_path / "baseline")})
    obs = torch.randn(6, 4)
    with torch.no_grad():
        torch.testing.assert_close(module.net.rollout_policy_logits(obs), baseline.heads.logits(baseline.trunk(obs)))
    assert not module.rollout_policy_is_trainable


# ----------------------------------------------------------------- data: the vector format


def test_vector_datasets_store_float_states_and_feed_training_windows(tmp_path):
    from i2a_rllib.pretrain.train import plan_pretraining

    path, data = write_cartpole_dataset(tmp_path / "data", steps=200)
    manifest = read_manifest(path)
    assert manifest.obs_dtype == "float32"
    table = pq.read_table(os.path.join(path, shard_name(0, 0)))
    assert table.schema.field("obs").type == pa.list_(pa.float32(), 4)
    assert check_shard(path, shard_name(0, 0), manifest) == table.num_rows
    windows = shard_windows(table, 3)
    assert windows["obs"].dtype == np.float32 and windows["obs"].shape[1] == 4
    assert windows["next_frames"].shape[1:] == (3, 4)
    # The first window's next states are the real states that followed, exactly.
    first = int(np.flatnonzero(np.all(data["obs"] == windows["obs"][0], axis=1))[0])
    np.testing.assert_array_equal(windows["next_frames"][0, 0], data["next"][first])

    plan = plan_pretraining(path, str(tmp_path / "run"), horizon=3)
    assert plan.kind == "mlp" and plan.train_config["reward_values"] == [1.0]
    train_rows = np.concatenate(
        [pq.read_table(os.path.join(path, n)).column("obs").combine_chunks().flatten().to_numpy().reshape(-1, 4)
         for n in plan.train_shards]
    )
    np.testing.assert_allclose(plan.train_config["hparams"]["obs_mean"], train_rows.mean(0), rtol=1e-4, atol=1e-6)
    # Too many distinct rewards to be classes: the vector model regresses them.
    manifest.reward_values = None
    from i2a_rllib.pretrain.train import reward_values_for

    assert reward_values_for(manifest) == []


def test_k_step_evaluation_compares_against_copying_the_last_state(tmp_path):
    from i2a_rllib.data.format import read_rows
    from i2a_rllib.pretrain.evaluate import evaluate_env_model, k_step_errors

    path, _ = write_cartpole_dataset(tmp_path / "data", steps=200)
    manifest = read_manifest(path)
    table = read_rows(path, sorted(manifest.shards))
    copy = k_step_errors(CopyEnvModel((4,), 2), table, [4], 4, horizon=5)
    assert copy["model_error"] == pytest.approx(copy["copy_error"])
    assert 0 < copy["copy_error"][0] < copy["copy_error"][4]  # errors of copying grow with k
    result = evaluate_env_model(build_env_model("mlp", (4,), 2, reward_values=[1.0]), path,
                                sorted(manifest.shards)[:2], manifest, str(tmp_path / "evaluation"))
    metrics = result["metrics"]
    assert metrics["copy_error_10_step"] > metrics["copy_error_1_step"] > 0
    assert metrics["reward_accuracy"] == 1.0
    assert os.path.getsize(result["files"]["curve"]) > 1000 and os.path.getsize(result["files"]["strip"]) > 1000


# ----------------------------------------------------------------- the whole pipeline (Ray)


@pytest.mark.slow
def test_tiny_pipeline_on_cartpole(ray_session, tmp_path, capsys):
    """`i2a train --env CartPole-v1`: collect -> pretrain the mlp model -> train I2A ->
    evaluate, each stage on the vector format, the trained agent holding the pretrained
    model unchanged."""
    from i2a_rllib import cli
    from ray.rllib.algorithms.algorithm import Algorithm

    argv = [
        "train", "--env", CARTPOLE, "--storage-path", str(tmp_path), "--name", "run", "--no-tune",
        "--collect-transitions", "1500", "--collect-actors", "1", "--collect-envs-per-actor", "4",
        "--pretrain-epochs", "2", "--pretrain-horizon", "3", "--pretrain-workers", "1",
        "--stop-iters", "2", "--train-batch-size", "128", "--minibatch-size", "64", "--num-epochs", "1",
        "--num-env-runners", "0", "--num-envs-per-env-runner", "2", "--rollout-depth", "2",
        "--evaluation-episodes", "2",
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    manifest = read_manifest(str(run / "data"))
    assert manifest.obs_dtype == "float32" and manifest.obs_shape == [4] and manifest.num_transitions == 1500
    model, metadata = load_env_model(str(run / "env_model" / "env_model"))
    assert metadata["kind"] == "mlp" and metadata["env_id"] == CARTPOLE
    assert metadata["evaluation"]["error_ratio_1_step"] < 1.0  # two epochs already beat copying
    assert len(metadata["hparams"]["obs_std"]) == 4
    checkpoint = sorted(p for p in (run / "train").iterdir() if p.name.startswith("checkpoint_"))[-1]
    algo = Algorithm.from_checkpoint(str(checkpoint))
    try:
        trained = algo.get_module().net.env_model
        assert algo.iteration == 2
        for key, value in model.state_dict().items():
            assert torch.equal(trained.state_dict()[key], value), key
    finally:
        algo.stop()
    evaluation = json.load(open(run / "evaluation" / "evaluation.json"))
    assert evaluation["episodes"] == 2 and all(score >= 8 for score in evaluation["scores"])
    assert os.path.getsize(evaluation["files"]["episode"]) > 1000
    assert os.path.getsize(evaluation["files"]["imagination"]) > 1000


# ------------------------------------------------------------ the comparison's report


def test_classic_comparison_report_lists_every_seed_and_the_sample_spread(tmp_path):
    from benchmarks.classic_comparison import SECTION_TITLE, first_crossing, write_report

    def run(agent, seed, returns):
        curve = [{"env_steps": 2000 * (i + 1), "return": r, "solved": float("nan"), "seconds": 6.0 * (i + 1)}
                 for i, r in enumerate(returns)]
        return {"agent": agent, "seed": seed, "budget": 20_000, "curve": curve}

    runs = [run("i2a", 0, [20, 100, 480, 500, 500, 500, 500, 500, 500, 500]),
            run("i2a", 1, [20, 60, 200, 476, 500, 500, 500, 500, 500, 490]),
            run("ppo", 0, [20, 30, 40, 50, 60, 70, 80, 90, 100, 110])]
    assert first_crossing(runs[0]["curve"], 475) == 6000 and first_crossing(runs[0]["curve"], 500) == 8000
    assert first_crossing(runs[2]["curve"], 475) != first_crossing(runs[2]["curve"], 475)  # never: nan
    (tmp_path / "results.md").write_text("# Results\n\n## Other\nkept\n")
    section = write_report(runs, 20_000, 2, {"error_ratio_1_step": 0.01, "error_ratio_10_step": 0.2}, str(tmp_path))
    i2a_row = next(line for line in section.splitlines() if line.startswith("| i2a |"))
    # The last 10% of the budget: iterations at 18,000 and 20,000 steps, so final returns
    # 500 and 495 (mean 497.5, sample sd 3.5); steps to 475: 6,000 and 8,000.
    assert "500.0, 495.0; **497.5 ± 3.5**" in i2a_row
    assert "6,000, 8,000; **7,000 ± 1,414**" in i2a_row
    ppo_row = next(line for line in section.splitlines() if line.startswith("| ppo |"))
    assert "| never | never |" in ppo_row and "| 105.0; **105.0** |" in ppo_row
    document = (tmp_path / "results.md").read_text()
    assert document.startswith("# Results\n\n## Other\nkept") and document.count(SECTION_TITLE) == 1
    assert "k=1, 0.2000 at k=10" in section
    assert (tmp_path / "figures" / "classic_learning_curves.png").stat().st_size > 1000
