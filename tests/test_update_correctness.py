"""What one training update does, measured from outside inside a real `algo.train()`:
A2C's single gradient step, DDP learners that stay identical, the learner replaying the
EnvRunner's imagination, and restoring after the checkpoints it was built from moved."""

import copy
import os
import shutil

import gymnasium as gym
import pytest
import torch

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

from i2a_rllib.checkpoints import save_env_model
from i2a_rllib.columns import IMAGINED_VIEWS, ROLLOUT_NOISE
from i2a_rllib.config import I2AConfig, configure_environment
from i2a_rllib.envs import SOKOBAN_ID
from i2a_rllib.learner import I2APPOTorchLearner
from i2a_rllib.models.env_models import build_env_model
from i2a_rllib.rl_module import NatureCNNRLModule

pytestmark = pytest.mark.slow

BREAKOUT = "ALE/Breakout-v5"
SMALL_BOARD = {"dim_room": [5, 5], "num_boxes": 1}


def _sokoban(**imagination):
    config = configure_environment(I2AConfig(), SOKOBAN_ID, env_config=SMALL_BOARD).imagination(
        imagination_image_interval=0, rollout_depth=2, **imagination
    )
    return config.env_runners(
        num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16
    ).training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1, lr=1e-3)


def _save_baseline(path, hidden_size=32):
    """An (untrained) model-free baseline RLModule checkpoint for the 5x5 board."""
    import i2a_rllib.envs.sokoban  # noqa: F401  (registers the gymnasium id)

    obs_space = gym.make(SOKOBAN_ID, **SMALL_BOARD).observation_space
    baseline = NatureCNNRLModule(
        observation_space=obs_space,
        action_space=gym.spaces.Discrete(5),
        model_config={"hidden_size": hidden_size},
    )
    baseline.save_to_path(str(path))
    return baseline


def _save_random_env_model(path, scale=None, kind="pixel"):
    """An env model checkpoint for the 5x5 board (pixel: frames; latent: vectors); with
    `scale`, random weights of that standard deviation."""
    import i2a_rllib.envs.sokoban  # noqa: F401

    obs_space = gym.make(SOKOBAN_ID, **SMALL_BOARD).observation_space
    model = build_env_model(kind, obs_space.shape, 5, frame_channels=obs_space.shape[0],
                            reward_values=[-1.1, -0.1, 0.9, 9.9],
                            hparams={"channels": 8} if kind == "pixel" else {})
    if scale is not None:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, scale)
    return save_env_model(model, str(path), {"env_id": SOKOBAN_ID})


def _count_optimizer_steps(learner):
    counts = []
    for optimizer in learner._named_optimizers.values():
        original = optimizer.step

        def counting(*args, _original=original, **kwargs):
            counts.append(1)
            return _original(*args, **kwargs)

        optimizer.step = counting
    return counts


def test_a2c_takes_exactly_one_gradient_step_per_train_batch(ray_session):
    """RLlib appends a bootstrap row per episode chunk, so the batch is longer than the
    train batch size; a minibatch of that size made the cyclic iterator take a second,
    off-policy step (2, 2, 2 before the fix)."""
    config = configure_environment(I2AConfig(), BREAKOUT).imagination(
        env_model="copy", rollout_depth=2, imagination_image_interval=0
    )
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=40)
    config.a2c(train_batch_size_per_learner=80)
    algo = config.build_algo()
    try:
        counts = _count_optimizer_steps(algo.learner_group._learner)
        steps_per_iteration = []
        for _ in range(3):
            before = len(counts)
            result = algo.train()
            steps_per_iteration.append(len(counts) - before)
        trained = result["learners"]["default_policy"]["num_module_steps_trained"]
    finally:
        algo.stop()
    assert steps_per_iteration == [1, 1, 1]
    assert trained > 80  # the whole batch, bootstrap rows included, in that one step


@pytest.mark.parametrize("variant", ["no_distillation", "frozen_rollout_policy"])
def test_two_ddp_learners_update_and_stay_identical(ray_session, tmp_path, variant):
    """Parameters that ask for gradients and get none made DDP's reduction fail."""
    if variant == "no_distillation":
        config = _sokoban(env_model="pixel", distillation_coeff=0.0)
    else:
        _save_baseline(tmp_path / "baseline")
        config = _sokoban(env_model="copy", rollout_policy_checkpoint=str(tmp_path / "baseline"))
    config.learners(num_learners=2, num_cpus_per_learner=1)
    algo = config.build_algo()
    try:
        before = {k: v.clone() for k, v in algo.get_module().state_dict().items()}
        algo.train()
        algo.train()
        states = [
            r.get()
            for r in algo.learner_group.foreach_learner(
                lambda learner: {
                    k.removeprefix("module."): v.detach().cpu().clone()
                    for k, v in learner.module["default_policy"].state_dict().items()
                }
            )
        ]
    finally:
        algo.stop()
    assert len(states) == 2
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    changed = [k for k, v in states[0].items() if not torch.equal(v, before[k].cpu())]
    assert any(k.startswith("net.heads.") for k in changed)
    assert not any(k.startswith("net.imagination.rollout_policy.") for k in changed)


class RatioRecordingLearner(I2APPOTorchLearner):
    """Records max |pi(a|o) / pi_old(a|o) - 1| over the first minibatch of each update,
    whether the batch arrived with the EnvRunner's imagination, and how far the
    imagination the update used is from imagining every row again."""

    first_minibatch_deviation = []
    arrived_with_imagination = []
    imagination_deviation = []

    def build(self):
        super().build()
        for module_id in self.module.keys():
            module = self.module[module_id].unwrapped()
            precompute = module.precompute_imagination

            def recording(batch, _precompute=precompute):
                type(self).arrived_with_imagination.append(IMAGINED_VIEWS in batch)
                return _precompute(batch)

            module.precompute_imagination = recording

    def before_gradient_based_update(self, *, timesteps):
        super().before_gradient_based_update(timesteps=timesteps)
        self._first_minibatch = True

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        if self._first_minibatch:
            self._first_minibatch = False
            module = self.module[module_id].unwrapped()
            dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
            ratio = torch.exp(dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
            mask = batch.get(Columns.LOSS_MASK)
            deviation = (ratio - 1).abs()
            if mask is not None:
                deviation = deviation[mask.bool()]
            type(self).first_minibatch_deviation.append(float(deviation.max()))
            with torch.no_grad():
                again = module.net.imagine(batch[Columns.OBS], noise=batch.get(ROLLOUT_NOISE))
            type(self).imagination_deviation.append(
                float((batch[IMAGINED_VIEWS].float() - again.views.float()).abs().max())
            )
        return super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )


@pytest.mark.parametrize("kind", ["pixel", "latent"])
def test_the_learner_replays_the_imagination_the_env_runner_acted_on(ray_session, tmp_path, kind):
    """With a sampling rollout policy the EnvRunner's noise travels with the episodes, so
    the first minibatch's probability ratio is 1: same weights, same imagined actions.
    The imagination travels itself (Sokoban's small frames of the pixel model, the
    latent model's vectors), and only RLlib's appended bootstrap rows are imagined again
    (large frames, imagined again from that noise: tests/test_rl_module.py).
    """
    RatioRecordingLearner.first_minibatch_deviation = []
    RatioRecordingLearner.arrived_with_imagination = []
    RatioRecordingLearner.imagination_deviation = []
    # Random, large weights: imagined frames then depend strongly on the imagined
    # actions (an untrained model predicts "nothing moves" whatever they are).
    config = _sokoban(
        env_model=kind,
        env_model_checkpoint=_save_random_env_model(tmp_path / "env_model", scale=0.5, kind=kind),
        rollout_action_choice="sample",
    )
    config.training(learner_class=RatioRecordingLearner, num_epochs=2)
    algo = config.build_algo()
    try:
        for _ in range(3):
            algo.train()
    finally:
        algo.stop()
    deviations = RatioRecordingLearner.first_minibatch_deviation
    assert len(deviations) == 3
    # Exact up to float rounding of different batch shapes (0.0 on CPU here); replaying
    # fresh noise instead gave deviations of ~7e-4 with these weights.
    assert max(deviations) < 1e-6, deviations
    assert RatioRecordingLearner.arrived_with_imagination == [True] * 3
    # Every row, the bootstrap rows included, holds what imagining it again gives.
    assert max(RatioRecordingLearner.imagination_deviation) < 1e-4, RatioRecordingLearner.imagination_deviation


def test_restoring_works_after_the_checkpoints_it_was_built_from_moved(ray_session, tmp_path):
    """The env model and a frozen rollout policy are read from their directories when
    training starts; a restored agent rebuilds them from what the config recorded and
    takes the weights from its own state."""
    _save_random_env_model(tmp_path / "env_model")
    _save_baseline(tmp_path / "baseline", hidden_size=48)
    config = _sokoban(
        env_model="pixel",
        env_model_checkpoint=str(tmp_path / "env_model"),
        rollout_policy_checkpoint=str(tmp_path / "baseline"),
    )
    algo = config.build_algo()
    try:
        algo.train()
        saved = algo.save_to_path(str(tmp_path / "algo"))
        weights = {k: v.clone() for k, v in algo.get_module().state_dict().items()}
    finally:
        algo.stop()
    shutil.move(str(tmp_path / "env_model"), str(tmp_path / "moved_env_model"))
    shutil.move(str(tmp_path / "baseline"), str(tmp_path / "moved_baseline"))
    assert not os.path.exists(tmp_path / "env_model")
    restored = Algorithm.from_checkpoint(saved)
    try:
        restored_weights = restored.get_module().state_dict()
        assert restored_weights.keys() == weights.keys()
        for key, value in weights.items():
            assert torch.equal(restored_weights[key].cpu(), value.cpu()), key
        assert restored.train()["training_iteration"] == 2
    finally:
        restored.stop()


def test_bf16_learner_autocasts_the_forward_pass_only_and_stays_close_to_fp32(tmp_path):
    """learner_config_dict['precision'] = 'bf16': the network runs in bfloat16 (the CPU's
    AMX, GPUs), the losses, gradients, weights and imagined columns stay float32, and one
    update lands close to the float32 one from the same weights and batch."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    config = _sokoban(
        env_model="pixel", env_model_checkpoint=_save_random_env_model(tmp_path / "env_model")
    ).debugging(seed=0)
    runner = SingleAgentEnvRunner(config=config)
    episodes = runner.sample(num_timesteps=64, explore=True)
    learners = {}
    for precision in ("fp32", "bf16"):
        config.learners(learner_config_dict={**config.learner_config_dict, "precision": precision})
        learners[precision] = config.build_learner(spaces=runner.get_spaces())
    start = learners["fp32"].module["default_policy"].get_state()
    learners["bf16"].module["default_policy"].set_state(start)
    seen, after, losses = {}, {}, {}
    for precision, learner in learners.items():
        net = learner.module["default_policy"].unwrapped().net
        dtypes = seen[precision] = set()
        # (training forward?, dtype): the training forward, and GAE's value pass.
        net.head_fc.register_forward_hook(lambda m, i, out, d=dtypes: d.add((torch.is_grad_enabled(), out.dtype)))
        model_conv = next(m for m in net.imagination.env_model.modules() if isinstance(m, torch.nn.Conv2d))
        model_conv.register_forward_hook(lambda m, i, out, d=dtypes: d.add(("env_model", out.dtype)))
        # What the rollout encoder reads: the stored imagination columns.
        net.rollout_encoder.register_forward_pre_hook(lambda m, args, d=dtypes: d.add(("views", args[0].dtype)))
        results = learner.update(
            # A copy each: PPO's learner connector appends a bootstrap step to the episodes.
            episodes=copy.deepcopy(episodes), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 64}, num_epochs=1,
            minibatch_size=64,
            shuffle_batch_per_epoch=False,  # the same minibatches for both
        )
        losses[precision] = {
            k: float(results["default_policy"][k].peek()) for k in ("policy_loss", "vf_loss", "distillation_loss")
        }
        after[precision] = learner.module["default_policy"].get_state()
    # Imagined frames are stored as uint8 whatever the precision.
    # The value pass behind GAE's targets stays float32 in both.
    assert seen["fp32"] == {(True, torch.float32), (False, torch.float32), ("env_model", torch.float32),
                            ("views", torch.uint8)}  # fmt: skip
    assert seen["bf16"] == {(True, torch.bfloat16), (False, torch.float32), ("env_model", torch.bfloat16),
                            ("views", torch.uint8)}  # fmt: skip
    for name in losses["fp32"]:
        assert losses["bf16"][name] == pytest.approx(losses["fp32"][name], rel=0.05, abs=1e-3), losses
    assert all(after["bf16"][k].dtype == start[k].dtype for k in start)  # float32 weights
    steps = {p: torch.cat([torch.as_tensor(after[p][k] - start[k]).flatten() for k in start]) for p in after}
    assert steps["fp32"].norm() > 0
    cosine = torch.nn.functional.cosine_similarity(steps["fp32"], steps["bf16"], dim=0)
    assert cosine > 0.9, float(cosine)


def test_an_unknown_learner_precision_is_refused_with_its_choices():
    config = _sokoban(env_model="copy")
    config.learners(learner_config_dict={**config.learner_config_dict, "precision": "fp16"})
    with pytest.raises(ValueError, match=r"learner_config_dict\['precision'\]='fp16': use one of \['fp32', 'bf16'\]"):
        config.validate()


@pytest.mark.parametrize("agent", ["baseline", "i2a"])
def test_the_learner_steps_the_same_weights_as_rllibs_stock_step(agent, caplog):
    """Fused Adam and one finiteness check per step give the weights RLlib's per-tensor
    Adam and per-tensor checks give, up to float rounding, with an lr schedule (whose
    first value RLlib hands over as a tensor); a nan gradient still takes RLlib's path
    (zeroed, with its warning)."""
    from ray.rllib.core.learner.torch.torch_learner import TorchLearner
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from i2a_rllib.config import baseline_ppo_config

    if agent == "baseline":
        config = baseline_ppo_config(SOKOBAN_ID, env_config=SMALL_BOARD).env_runners(
            num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16
        ).training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2)
    else:
        config = _sokoban(env_model="copy").training(num_epochs=2)
    config.training(lr=[[0, 1e-3], [128, 1e-4]]).debugging(seed=0)
    runner = SingleAgentEnvRunner(config=config)
    episodes = runner.sample(num_timesteps=64, explore=True)
    ours, stock = (config.build_learner(spaces=runner.get_spaces()) for _ in range(2))
    start = ours.module["default_policy"].get_state()
    stock.module["default_policy"].set_state(start)
    (optimizer,) = ours._named_optimizers.values()
    assert optimizer.defaults["fused"] is True
    (stock_optimizer,) = stock._named_optimizers.values()
    for group in stock_optimizer.param_groups:
        group["foreach"] = group["fused"] = False  # torch's own choice on a CPU: one tensor at a time
        group["lr"] = torch.tensor(group["lr"])  # how RLlib's scheduler first hands it over
    stock.apply_gradients = lambda grads: TorchLearner.apply_gradients(stock, grads)
    stock._set_optimizer_lr = TorchLearner._set_optimizer_lr
    for step in (64, 128):  # the second update with the schedule's next (float) value
        for learner in (ours, stock):
            learner.update(
                episodes=copy.deepcopy(episodes), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: step},
                num_epochs=2, minibatch_size=32, shuffle_batch_per_epoch=False,
            )  # fmt: skip
    ours_state, stock_state = (l.module["default_policy"].get_state() for l in (ours, stock))
    assert any(not torch.equal(torch.as_tensor(ours_state[k]), torch.as_tensor(start[k])) for k in start)
    moved = 0.0
    for name, value in stock_state.items():
        ours_value, value, begun = (torch.as_tensor(v) for v in (ours_state[name], value, start[name]))
        # Adam's steps move each weight by ~lr; rounding differs by ~1e-7 of a weight.
        torch.testing.assert_close(ours_value, value, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, float((value - begun).abs().max()))
    assert moved > 1e-4  # the weights moved far more than the tolerance

    # A nan gradient: RLlib's path zeroes it (and warns) and steps the rest.
    params = ours._params
    grads = {pid: torch.ones_like(p) for pid, p in params.items() if p.requires_grad}
    bad = next(iter(grads))
    grads[bad] = torch.full_like(grads[bad], float("nan"))
    with caplog.at_level("WARNING"):
        ours.apply_gradients(grads)
    assert "contain `nan/inf` values" in caplog.text
    assert torch.equal(params[bad].grad, torch.zeros_like(params[bad]))
    assert all(torch.isfinite(p).all() for p in params.values())
