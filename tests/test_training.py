"""RLlib training end to end on a local Ray (2 CPUs): PPO baseline, I2A PPO and A2C."""

import math
import os

import pytest
import torch

from ray.rllib.algorithms.algorithm import Algorithm

from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment
from i2a_rllib.learner import (
    DISTILLATION_LOSS_KEY,
    IMAGINATION_TIME_SHARE_KEY,
    ROLLOUT_POLICY_AGREEMENT_KEY,
)
from i2a_rllib.rl_module import NO_GRAD_CHUNK_SIZE

pytestmark = pytest.mark.slow

ENV = "ALE/Breakout-v5"
TINY = dict(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2)


def _tiny(config, num_env_runners=0):
    return config.env_runners(
        num_env_runners=num_env_runners, num_envs_per_env_runner=2, rollout_fragment_length=32
    ).training(**TINY)


def _i2a(**imagination):
    config = configure_environment(I2AConfig(), ENV).imagination(
        imagination_image_interval=0, **imagination
    )
    return _tiny(config)


def _learner_results(result):
    return result["learners"]["default_policy"]


def test_no_sampled_batch_is_discarded_for_taking_long():
    """RLlib drops a remote EnvRunner's batch that takes longer than `sample_timeout_s`
    (60 s by default) although its env steps were taken; slow I2A sampling on a loaded
    machine crossed it. Every agent runs without that timeout, and a user can still set one."""
    assert I2AConfig().sample_timeout_s == 60.0  # RLlib's default, which the project replaces
    for config in (configure_environment(I2AConfig(), ENV), baseline_ppo_config(ENV),
                   configure_environment(I2AConfig(), "CartPole-v1")):  # fmt: skip
        assert config.sample_timeout_s is None
    assert baseline_ppo_config(ENV).env_runners(sample_timeout_s=600.0).sample_timeout_s == 600.0


def test_ppo_baseline_trains_checkpoints_and_restores(ray_session, tmp_path):
    algo = _tiny(baseline_ppo_config(ENV), num_env_runners=1).build_algo()
    try:
        first = algo.train()
        second = algo.train()
        sampled = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in (first, second)]
        trained = [_learner_results(r)["num_module_steps_trained_lifetime"] for r in (first, second)]
        assert 0 < sampled[0] < sampled[1] and 0 < trained[0] < trained[1]
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        weights = algo.get_module().state_dict()
    finally:
        algo.stop()
    assert os.path.isfile(os.path.join(path, "algorithm_state.pkl"))
    restored = Algorithm.from_checkpoint(path)
    try:
        restored_weights = restored.get_module().state_dict()
        for key, value in weights.items():
            assert torch.equal(restored_weights[key].cpu(), value.cpu()), key
        third = restored.train()
        assert third["training_iteration"] == 3
        assert third["env_runners"]["num_env_steps_sampled_lifetime"] > sampled[1]
    finally:
        restored.stop()


@pytest.mark.parametrize("algo_preset", ["ppo", "a2c"])
def test_i2a_trains_with_ppo_and_a2c(ray_session, algo_preset):
    config = _i2a(env_model="latent")
    if algo_preset == "a2c":
        config.a2c(train_batch_size_per_learner=64)
    algo = config.build_algo()
    try:
        rollout_policy = algo.learner_group._learner.module["default_policy"].net.rollout_policy
        policy_before = {k: v.clone() for k, v in rollout_policy.state_dict().items()}
        results = [algo.train() for _ in range(2)]
        learner_obj = algo.learner_group._learner
        env_model = learner_obj.module["default_policy"].net.env_model
        policy_after = rollout_policy.state_dict()
        optimized = {
            id(p)
            for optimizer in learner_obj._named_optimizers.values()
            for group in optimizer.param_groups
            for p in group["params"]
        }
    finally:
        algo.stop()
    # The env model is in no optimizer.
    assert optimized and not optimized & {id(p) for p in env_model.parameters()}
    steps = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in results]
    assert 0 < steps[0] < steps[1]
    learner = _learner_results(results[-1])
    for key in (DISTILLATION_LOSS_KEY, ROLLOUT_POLICY_AGREEMENT_KEY, IMAGINATION_TIME_SHARE_KEY):
        assert key in learner, key
    # The distillation loss reaches the rollout policy (nothing else trains it).
    assert any(not torch.equal(policy_before[k], v) for k, v in policy_after.items())
    assert 0 < learner[IMAGINATION_TIME_SHARE_KEY] < 1


def test_env_model_weights_are_bit_identical_after_training(ray_session):
    algo = _i2a(env_model="latent").build_algo()
    try:
        module = algo.learner_group._learner.module["default_policy"]
        before = {k: v.clone() for k, v in module.net.env_model.state_dict().items()}
        others = {k: v.clone() for k, v in module.net.model_free.state_dict().items()}
        algo.train()
        algo.train()
        after = module.net.env_model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert any(not torch.equal(others[k], v) for k, v in module.net.model_free.state_dict().items())
    finally:
        algo.stop()


@pytest.mark.parametrize("kind", ["copy", "latent"])
def test_imagination_runs_once_per_train_batch(ray_session, kind):
    """Frames (copy) are imagined once for the whole batch; maps and vectors (latent)
    travel from the EnvRunner, and the learner imagines only the bootstrap step RLlib
    appends to each episode chunk (2 envs here: at least 2 chunks)."""
    config = _i2a(env_model=kind).training(num_epochs=3, minibatch_size=16)
    algo = config.build_algo()
    try:
        core = algo.learner_group._learner.module["default_policy"].net.imagination
        calls = []
        original = core.forward

        def counting(state, *args, **kwargs):
            calls.append(state.shape[0])
            return original(state, *args, **kwargs)

        core.forward = counting
        result = algo.train()
    finally:
        algo.stop()
    rows = sum(calls)
    trained = _learner_results(result)["num_module_steps_trained"]
    # One imagination per batch (in chunks of NO_GRAD_CHUNK_SIZE rows), not one per
    # epoch x minibatch (3 x 4 here) plus one for GAE's value pass.
    assert len(calls) == math.ceil(rows / NO_GRAD_CHUNK_SIZE) == 1
    if kind == "copy":
        assert rows >= TINY["train_batch_size_per_learner"]  # the whole batch (+ bootstrap rows)
        assert trained >= 3 * rows - 3 * 16
    else:
        assert 2 <= rows < 16, rows  # the bootstrap rows only
        assert trained >= 3 * TINY["train_batch_size_per_learner"] - 3 * 16


def _tensorboard_image_tags(directory):
    """Tags of the images in tensorboardX event files (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags = []
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            tags += [v.tag for v in event.summary.value if v.HasField("image")]
    return tags


def test_tensorboard_gets_an_image_of_imagination(ray_session, tmp_path):
    config = _i2a(env_model="latent").imagination(imagination_image_interval=1)
    config.imagination_image_dir = str(tmp_path)
    algo = config.build_algo()
    try:
        algo.train()
    finally:
        algo.stop()
    assert "i2a/imagination" in _tensorboard_image_tags(tmp_path / "imagination")


USER_FILE = '''
from i2a_rllib.config import I2AConfig, configure_environment

config = configure_environment(
    I2AConfig(), "I2A/Sokoban-v0", env_config={"dim_room": [7, 7], "num_boxes": 2}
).imagination(env_model="copy", rollout_depth=2, imagination_image_interval=0)
config.env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16)
config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
stop = {"training_iteration": 2}
'''


def _trial_dir(storage, name):
    trials = [d for d in (storage / name).iterdir() if d.is_dir() and d.name.startswith("I2A_")]
    assert len(trials) == 1, trials
    return trials[0]


def test_rllib_train_file_trains_the_tuned_example_and_a_user_file(ray_session, tmp_path, capsys):
    """`rllib train file` runs a file's `config` through Tune: results, checkpoint and
    TensorBoard files land under --storage-path; the file's own `stop` is honoured."""
    import json

    from i2a_rllib import rllib_cli

    storage = tmp_path / "runs"
    tiny = {"train_batch_size_per_learner": 64, "minibatch_size": 32, "num_epochs": 1,
            "num_envs_per_env_runner": 2, "num_env_runners": 0}
    example = os.path.join(os.path.dirname(__file__), "..", "tuned_examples", "i2a.py")
    code = rllib_cli.main(["train", "file", example, "--stop", '{"training_iteration": 1}',
                           "--config", json.dumps(tiny), "--storage-path", str(storage),
                           "--name", "example", "--checkpoint-freq", "1", "-v", "0"])
    assert code == 0, capsys.readouterr().err
    trial = _trial_dir(storage, "example")
    assert (trial / "checkpoint_000000").is_dir()
    assert any(f.name.startswith("events.out.tfevents") for f in trial.iterdir())
    restored = Algorithm.from_checkpoint(str(trial / "checkpoint_000000"))
    try:
        assert restored.iteration == 1
        assert restored.get_module().net.env_model.kind == "spatial"  # the Atari default
    finally:
        restored.stop()

    user_file = tmp_path / "my_experiment.py"
    user_file.write_text(USER_FILE)
    code = rllib_cli.main(["train", "file", str(user_file), "--storage-path", str(storage),
                           "--name", "mine", "-v", "0"])
    assert code == 0, capsys.readouterr().err
    rows = (_trial_dir(storage, "mine") / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + the file's stop: 2 iterations
