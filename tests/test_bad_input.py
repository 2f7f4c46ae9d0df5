"""Bad input: every case fails with a message that names the problem (and the fix), a
non-zero exit code from the command line, before Ray starts, and without writing or
losing anything.

Most cases call `i2a_rllib.cli.main` / `i2a_rllib.rllib_cli.main` in-process with Ray's
start patched to fail the test (fast); a few run the real console scripts to prove the
exit codes. The GPU case needs the cluster's resources, so it starts Ray (subprocess).
"""

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import torch

from tests.helpers import file_tree

from i2a_rllib import cli, rllib_cli
from i2a_rllib.checkpoints import save_env_model
from i2a_rllib.config import I2AConfig, configure_environment
from i2a_rllib.data.format import (
    MANIFEST_FILE,
    Manifest,
    filesystem_and_path,
    shard_name,
    transition_schema,
    write_manifest,
    write_shard_atomically,
)
from i2a_rllib.models.env_models import build_env_model

ENV = "ALE/Breakout-v5"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)  # the venv's bin dir: i2a, rllib
# A bad input must fail well before this (the checks take < 1 s; slack for a busy machine).
FAST_S = 15.0


class RayStarted(BaseException):
    """Raised if a command starts Ray for input it should have rejected."""


@pytest.fixture
def no_ray(monkeypatch):
    """Any attempt to start (or join) Ray fails the test."""
    import ray

    import i2a_rllib.experiment
    import i2a_rllib.experiment.run
    import i2a_rllib.pipeline

    def refuse(*args, **kwargs):
        raise RayStarted("Ray was started for bad input")

    # Every place that starts Ray: the package (collect, pretrain import it from there),
    # its runner and the pipeline; and Ray itself.
    monkeypatch.setattr(i2a_rllib.experiment, "init_ray", refuse)
    monkeypatch.setattr(i2a_rllib.experiment.run, "init_ray", refuse)
    monkeypatch.setattr(i2a_rllib.pipeline, "init_ray", refuse)
    monkeypatch.setattr(ray, "init", refuse)


def _run(main, argv, capsys):
    """Runs a CLI entry point in-process -> (exit code, stderr, seconds)."""
    capsys.readouterr()
    start = time.time()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    seconds = time.time() - start
    return code, capsys.readouterr().err, seconds


def _i2a(argv, capsys):
    return _run(cli.main, argv, capsys)


def _script(name, argv, capsys, monkeypatch):
    """Runs tuned_examples/<name> in-process as `python <script> <argv>` would."""
    path = os.path.join(REPO, "tuned_examples", name)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    return _run(lambda _: runpy.run_path(path, run_name="__main__"), None, capsys)


def _rllib(argv, capsys):
    return _run(rllib_cli.main, argv, capsys)


def _console(script, *args, timeout=300):
    """Runs a console script of the venv as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [os.path.join(BIN, script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _assert_rejected(code, err, seconds, *fragments, prog="i2a"):
    assert code == 2, (code, err)
    # One line says it all (argparse may print its usage above it).
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and f"{prog}" in error_lines[0], err
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, err)
    assert "Traceback" not in err, err
    assert "_validate_config=False" not in err, err  # RLlib's advice to skip the checks
    assert seconds < FAST_S, seconds


# ----------------------------------------------------------------------------- fixtures


def write_tiny_dataset(path, obs_shape=(4, 84, 84), rows=8, num_shards=2):
    """A valid dataset in the `i2a collect` format, written without Ray."""
    fs, root = filesystem_and_path(str(path))
    fs.create_dir(root, recursive=True)
    rng = np.random.default_rng(0)
    schema = transition_schema(obs_shape, 1)
    frame = int(np.prod(obs_shape[1:]))
    manifest = Manifest(env_id=ENV, obs_shape=list(obs_shape), num_actions=4, frame_channels=1, policy="random")
    for index in range(num_shards):
        obs = rng.integers(0, 255, (rows, *obs_shape), dtype=np.uint8)
        table = pa.Table.from_arrays(
            [
                pa.array([o.tobytes() for o in obs], pa.binary(obs[0].size)),
                pa.array(rng.integers(0, 4, rows), pa.int32()),
                pa.array(np.zeros(rows), pa.float32()),
                pa.array(np.zeros(rows, bool)),
                pa.array(np.zeros(rows, bool)),
                pa.array([o[-1].tobytes() for o in obs], pa.binary(frame)),
                pa.array(np.zeros(rows), pa.int32()),
                pa.array(np.zeros(rows), pa.int32()),
                pa.array(np.full(rows, index), pa.int64()),
                pa.array(np.arange(rows), pa.int32()),
            ],
            schema=schema,
        )
        name = shard_name(0, index)
        write_shard_atomically(fs, root, name, table)
        manifest.shards[name] = rows
    manifest.num_transitions = rows * num_shards
    manifest.reward_values = [0.0]
    write_manifest(fs, root, manifest)
    return str(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Environment-model checkpoints that do not fit Breakout (and one that does)."""
    root = tmp_path_factory.mktemp("env_models")

    def save(name, kind, obs_shape, num_actions, env_id):
        model = build_env_model(kind, obs_shape, num_actions)
        return save_env_model(model, str(root / name), extra_metadata={"env_id": env_id})

    paths = {
        "pong": save("pong", "latent", (4, 84, 84), 6, "ALE/Pong-v5"),
        "shape": save("shape", "latent", (4, 64, 64), 4, ENV),
        "actions": save("actions", "latent", (4, 84, 84), 6, ENV),
        "pixel": save("pixel", "pixel", (4, 84, 84), 4, ENV),
        "latent": save("latent", "latent", (4, 84, 84), 4, ENV),
    }
    truncated = str(root / "truncated")
    shutil.copytree(paths["latent"], truncated)
    weights = os.path.join(truncated, "env_model.pt")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    paths["truncated"] = truncated
    corrupt = str(root / "corrupt_metadata")
    shutil.copytree(paths["latent"], corrupt)
    with open(os.path.join(corrupt, "metadata.json"), "w") as f:
        f.write('{"kind": "lat')
    paths["corrupt_metadata"] = corrupt
    return paths


def _train_argv(tmp_path, *flags):
    return ["train", "--storage-path", str(tmp_path / "runs"), "--name", "run", *flags]


# ------------------------------------------------------------------- i2a train: settings


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (["--env", "ALE/NoSuchGame-v5", "--env-model", "copy"], ["Unknown Atari game id 'ALE/NoSuchGame-v5'", "i2a envs"]),
        (["--env", "NoSuchEnv-v0", "--env-model", "copy"], ["Unknown environment 'NoSuchEnv-v0'", "Known ids", "'CartPole-v1'"]),
        (["--env-model", "copy", "--rollout-depth", "0"], ["--rollout-depth must be an integer >= 1 or 'auto'", "'0'"]),
        (["--env-model", "copy", "--rollout-depth", "deep"], ["--rollout-depth must be an integer >= 1 or 'auto'", "'deep'"]),
        (["--env-model", "copy", "--distillation-coeff", "-0.5"], ["distillation_coeff=-0.5", ">= 0"]),
        (["--env-model", "copy", "--train-batch-size", "32", "--minibatch-size", "64"], ["`minibatch_size` (64) must be <= `train_batch_size_per_learner` (32)"]),
        (["--env-model", "copy", "--algo", "a2c", "--train-batch-size", "80", "--minibatch-size", "20"], ["--algo a2c", "--minibatch-size=20", "would be ignored", "--algo ppo"]),
        (["--env-model", "copy", "--algo", "a2c", "--num-epochs", "4"], ["--algo a2c", "--num-epochs=4"]),
        (["--env-model", "copy", "--algo", "dqn"], ["--algo 'dqn'", "'ppo' or 'a2c'"]),
        (["--env-model", "copy", "--env-config", '{"repeat_action_probability": -0.1}'], ["repeat_action_probability=-0.1", "[0, 1)"]),
        (["--env-model", "copy", "--env-config", '{"sticky": 0.1}'], ["Unknown Atari env_config key(s) ['sticky']"]),
        (["--env-model", "copy", "--env-config", "{repeat_action_probability: 0}"], ["--env-config", "must be a JSON object"]),
        (["--env-model", "copy", "--rollout-action-choice", "greedy"], ["--rollout-action-choice", "invalid choice: 'greedy'", "'sample', 'argmax'"]),
        (["--env-model", "world"], ["--env-model", "invalid choice: 'world'"]),
        (["--env-model", "copy", "--bogus-flag", "1"], ["unrecognized arguments: --bogus-flag"]),
        (["--env-model", "copy", "--resume"], ["--resume was given but", "holds no experiment to continue"]),
        (["--env", "I2A/Sokoban-v0", "--env-model-hparams", '{"width": 8}'], ["--env-model-hparams {'width': 8} (pixel model)", "Unknown hparams ['width']", "'channels'"]),
        (["--env-model", "latent", "--env-model-hparams", '{"channels": 16}'], ["(latent model)", "Unknown hparams ['channels']", "latent_size"]),
        (["--env-model-hparams", "{channels: 16}"], ["--env-model-hparams must be a JSON object"]),
        (["--pretrain-lr", "0"], ["--pretrain-lr 0.0", "must be > 0"]),
        (["--pretrain-horizon", "0"], ["--pretrain-horizon 0", "must be an integer >= 1"]),
        (["--env-model", "copy", "--env-runner-threads", "0"], ["--env-runner-threads must be an integer >= 1", "'0'"]),
        (["--env-model", "copy", "--learner-threads", "two"], ["--learner-threads must be an integer >= 1", "'two'"]),
        (["--collect-policy-steps", "-5"], ["--collect-policy-steps -5 must be >= 0"]),
        (["--collect-epsilon", "1.5"], ["--collect-epsilon 1.5 in [0, 1]"]),
        (["--collect-policy-steps", "1000", "--collect-policy-checkpoint", "/x"], ["--collect-policy-steps trains a policy", "give one of them"]),
        (["--env-model", "perfect"], ["env_model='perfect') is Sokoban's exact rules", "not ALE/Breakout-v5", "'auto'"]),
        (["--env", "I2A/Sokoban-v0", "--env-config", '{"observation": "rgb"}', "--env-model", "perfect"], ["needs I2A/Sokoban-v0 with observation 'channels'", "(observation 'rgb')"]),
        (["--env", "I2A/Sokoban-v0", "--env-model", "perfect", "--env-model-checkpoint", "/x"], ["env_model='perfect') loads no checkpoint", "drop it"]),
    ],
    ids=[
        "unknown-atari-game",
        "unknown-env",
        "rollout-depth-0",
        "rollout-depth-not-a-number",
        "negative-distillation",
        "batch-smaller-than-minibatch",
        "a2c-minibatch",
        "a2c-epochs",
        "unknown-algo",
        "negative-sticky-actions",
        "unknown-env-config-key",
        "env-config-not-json",
        "unknown-rollout-action-choice",
        "unknown-env-model-kind",
        "unknown-flag",
        "resume-nothing",
        "unknown-pixel-hparam",
        "pixel-hparam-for-latent",
        "env-model-hparams-not-json",
        "zero-pretrain-lr",
        "zero-pretrain-horizon",
        "zero-env-runner-threads",
        "learner-threads-not-a-number",
        "negative-collect-policy-steps",
        "collect-epsilon-above-1",
        "collect-policy-twice",
        "perfect-model-on-atari",
        "perfect-model-on-rgb-sokoban",
        "perfect-model-with-checkpoint",
    ],
)
def test_train_rejects_bad_settings_before_ray(no_ray, capsys, tmp_path, flags, fragments):
    code, err, seconds = _i2a(_train_argv(tmp_path, *flags), capsys)
    _assert_rejected(code, err, seconds, *fragments)
    assert not (tmp_path / "runs").exists()  # nothing written


@pytest.mark.parametrize(
    "case, flags, fragments",
    [
        ("pong", [], ["trained on 'ALE/Pong-v5'", "the agent plays 'ALE/Breakout-v5'", "i2a collect --env ALE/Breakout-v5"]),
        ("shape", [], ["expects observations of shape (4, 64, 64)", "gives (4, 84, 84)"]),
        ("actions", [], ["has 6 actions, the environment 4"]),
        ("pixel", ["--env-model", "latent"], ["is a 'pixel' model but env_model='latent'", "Set env_model='pixel'"]),
        ("truncated", [], ["env_model.pt", "truncated or corrupt", "Re-run `i2a pretrain`"]),
        ("corrupt_metadata", [], ["metadata.json' is corrupt"]),
        ("missing", [], ["does not exist", "i2a pretrain"]),
        ("latent_with_rollout_policy", ["--env-model", "latent"], ["but the 'latent' environment model imagines latent states", "env_model='pixel'"]),
    ],
)
def test_train_rejects_unfit_env_model_checkpoints_before_ray(
    no_ray, capsys, tmp_path, checkpoints, case, flags, fragments
):
    if case == "missing":
        path = str(tmp_path / "no_such_checkpoint")
    elif case == "latent_with_rollout_policy":
        path = checkpoints["latent"]
        policy = tmp_path / "ppo_baseline_checkpoint"
        policy.mkdir()
        flags = flags + ["--rollout-policy-checkpoint", str(policy)]
    else:
        path = checkpoints[case]
    before = file_tree(path)
    code, err, seconds = _i2a(_train_argv(tmp_path, "--env-model-checkpoint", path, *flags), capsys)
    _assert_rejected(code, err, seconds, *fragments)
    assert not (tmp_path / "runs").exists()
    assert file_tree(path) == before  # the checkpoint is left as it was


def test_config_api_rejects_bad_imagination_settings():
    """The same checks for users who build the config in Python."""
    config = configure_environment(I2AConfig(), ENV).imagination(env_model="copy")
    with pytest.raises(ValueError, match=r"rollout_action_choice='greedy'.*\['sample', 'argmax'\]"):
        config.copy().imagination(rollout_action_choice="greedy").validate()
    with pytest.raises(ValueError, match=r"snap_imagined_frames='yes'.*True or False"):
        config.copy().imagination(snap_imagined_frames="yes").validate()
    with pytest.raises(ValueError, match=r"imagination_precision='fp16'\) is unknown; use one of \['auto', 'fp32', 'bf16'\]"):
        config.copy().imagination(imagination_precision="fp16").validate()
    with pytest.raises(ValueError, match=r"rollout_depth=2.5\) must be an integer >= 1"):
        config.copy().imagination(rollout_depth=2.5).validate()
    with pytest.raises(ValueError, match=r"env_model='world'\) is not an environment model kind"):
        config.copy().imagination(env_model="world").validate()
    # A2C preset, then a different minibatch: the preset's one full-batch minibatch is gone.
    a2c = config.copy().a2c(train_batch_size_per_learner=64).training(minibatch_size=32)
    with pytest.raises(ValueError, match=r"A2C preset takes one gradient step over the whole batch.*set after \.a2c\(\)"):
        a2c.validate()


# ------------------------------------------------------------- i2a collect / pretrain / evaluate


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (["--env", "ALE/NoSuchGame-v5"], ["Unknown Atari game id 'ALE/NoSuchGame-v5'"]),
        (["--env", "NoSuchEnv-v0"], ["Unknown environment 'NoSuchEnv-v0'"]),
        (["--num-transitions", "0"], ["num_transitions=0 must be an integer >= 1"]),
        (["--shard-size", "-5"], ["shard_size=-5 must be an integer >= 1"]),
        (["--env-config", '{"repeat_action_probability": -0.25}'], ["repeat_action_probability=-0.25", "0.0 turns sticky actions off"]),
        (["--epsilon", "1.5"], ["epsilon=1.5 must lie in [0, 1]"]),
        (["--policy-checkpoint", "/nonexistent/ppo"], ["policy checkpoint '/nonexistent/ppo' does not exist"]),
        (["--env-config", "{bad"], ["--env-config", "not valid JSON"]),
        (["--env-config", "[1, 2]"], ["--env-config", "must be a JSON object"]),
        (["--bogus"], ["unrecognized arguments: --bogus"]),
    ],
    ids=["unknown-atari-game", "unknown-env", "zero-transitions", "negative-shard-size", "negative-sticky-actions", "epsilon", "missing-policy", "env-config-json", "env-config-list", "unknown-flag"],
)
def test_collect_rejects_bad_settings_before_ray(no_ray, capsys, tmp_path, flags, fragments):
    output = tmp_path / "data"
    argv = ["collect", "--output", str(output), "--num-transitions", "100", *flags]
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, *fragments)
    assert not output.exists()


# ------------------------------------------------------------------ env settings, per family

SOKOBAN, MINIPACMAN = "I2A/Sokoban-v0", "I2A/MiniPacman-v0"

# (env id, env_config, fragments of the one-line message: the key, the bad value, the fix)
ENV_SETTINGS_CASES = {
    # Atari: the ranges ale-py's AtariVectorEnv accepts (0 for num_envs, stack_num or an
    # image side kills the process in C++; wrong types fail in pybind11 with a traceback).
    "atari-frameskip-0": (ENV, {"frameskip": 0}, ["frameskip=0", "integer >= 1", "default 4"]),
    "atari-frameskip-float": (ENV, {"frameskip": 2.5}, ["frameskip=2.5", "integer >= 1"]),
    "atari-sticky-not-a-number": (ENV, {"repeat_action_probability": "abc"}, ["repeat_action_probability='abc'", "a number in [0, 1)", "0.25"]),
    "atari-sticky-1": (ENV, {"repeat_action_probability": 1.0}, ["repeat_action_probability=1.0", "[0, 1)"]),
    "atari-stack-num-0": (ENV, {"stack_num": 0}, ["stack_num=0", "integer >= 1", "frames per observation"]),
    "atari-img-height-0": (ENV, {"img_height": 0}, ["img_height=0", "integer >= 1", "default 84"]),
    "atari-img-width-negative": (ENV, {"img_width": -84}, ["img_width=-84", "integer >= 1"]),
    "atari-noop-max-negative": (ENV, {"noop_max": -1}, ["noop_max=-1", "integer >= 0", "0 turns them off"]),
    "atari-num-threads-negative": (ENV, {"num_threads": -1}, ["num_threads=-1", "integer >= 0"]),
    "atari-max-frames-0": (ENV, {"max_num_frames_per_episode": 0}, ["max_num_frames_per_episode=0", "integer >= 1", "108000"]),
    "atari-fire-reset-string": (ENV, {"use_fire_reset": "yes"}, ["use_fire_reset='yes'", "true or false"]),
    "atari-episodic-life-int": (ENV, {"episodic_life": 1}, ["episodic_life=1", "true or false"]),
    "atari-full-action-space-string": (ENV, {"full_action_space": "false"}, ["full_action_space='false'", "true or false"]),
    "atari-num-envs-0": (ENV, {"num_envs": 0}, ["num_envs=0", "integer >= 1"]),
    "atari-seed-negative": (ENV, {"seed": -1}, ["seed=-1", "integer >= 0"]),
    "atari-misspelt-key": (ENV, {"frame_skip": 4}, ["Unknown Atari env_config key(s) ['frame_skip']", "did you mean 'frameskip'?", "'stack_num'"]),
    # Sokoban
    "sokoban-boxes-string": (SOKOBAN, {"num_boxes": "two"}, ["num_boxes='two'", "integer >= 1", "the paper uses 4"]),
    "sokoban-boxes-bool": (SOKOBAN, {"num_boxes": True}, ["num_boxes=True", "integer >= 1"]),
    "sokoban-too-many-boxes": (SOKOBAN, {"dim_room": [5, 5], "num_boxes": 30}, ["num_boxes=30", "at most 2", "Use fewer boxes or a larger dim_room"]),
    "sokoban-room-string": (SOKOBAN, {"dim_room": "77"}, ["dim_room='77'", "pair [height, width] of integers", "[10, 10]"]),
    "sokoban-room-float": (SOKOBAN, {"dim_room": [7.5, 7]}, ["dim_room=[7.5, 7]", "of integers"]),
    "sokoban-room-too-small": (SOKOBAN, {"dim_room": [4, 10]}, ["dim_room=(4, 10) is too small", ">= 5"]),
    "sokoban-max-steps-0": (SOKOBAN, {"max_steps": 0}, ["max_steps=0", "integer >= 1", "120"]),
    "sokoban-gen-steps-0": (SOKOBAN, {"num_gen_steps": 0}, ["num_gen_steps=0", "or null for the default"]),
    "sokoban-observation": (SOKOBAN, {"observation": "pixels"}, ["observation='pixels' is unknown", "['channels', 'rgb']"]),
    "sokoban-rgb-scale-0": (SOKOBAN, {"observation": "rgb", "rgb_scale": 0}, ["rgb_scale=0", "integer >= 1"]),
    "sokoban-level-not-a-map": (SOKOBAN, {"fixed_level": 5}, ["fixed_level must be a map", "list of row strings"]),
    "sokoban-level-open": (SOKOBAN, {"fixed_level": ["#####", "#@$. ", "#####"]}, ["fixed_level must be enclosed", "'#'"]),
    "sokoban-misspelt-key": (SOKOBAN, {"boxes": 2}, ["Unknown Sokoban setting(s) ['boxes']", "did you mean 'num_boxes'?"]),
    "sokoban-seed-string": (SOKOBAN, {"seed": "x"}, ["seed='x'", "integer >= 0"]),
    # MiniPacman
    "minipacman-task": (MINIPACMAN, {"task": "dance"}, ["task='dance' is unknown", "['regular', 'avoid', 'hunt', 'ambush', 'rush']"]),
    "minipacman-task-typo": (MINIPACMAN, {"task": "hnt"}, ["task='hnt' is unknown", "did you mean 'hunt'?"]),
    "minipacman-task-list": (MINIPACMAN, {"task": ["hunt"]}, ["task=['hunt'] is unknown", "use one of"]),
    "minipacman-ghost-speed": (MINIPACMAN, {"ghost_speed": 1.5}, ["ghost_speed=1.5", "a number in [0, 1]", "default 0.5"]),
    "minipacman-ghost-speed-bool": (MINIPACMAN, {"ghost_speed": True}, ["ghost_speed=True", "a number in [0, 1]"]),
    "minipacman-speed-increase": (MINIPACMAN, {"ghost_speed_increase": -0.1}, ["ghost_speed_increase=-0.1", "a number >= 0"]),
    "minipacman-edible-factor": (MINIPACMAN, {"edible_ghost_speed_factor": "half"}, ["edible_ghost_speed_factor='half'", "[0, 1]"]),
    "minipacman-turn-probability": (MINIPACMAN, {"ghost_random_turn_probability": 2}, ["ghost_random_turn_probability=2", "[0, 1]"]),
    "minipacman-max-steps": (MINIPACMAN, {"max_steps": 0}, ["max_steps=0", "integer >= 1", "1000"]),
    "minipacman-pills": (MINIPACMAN, {"num_power_pills": -1}, ["num_power_pills=-1", "integer >= 0"]),
    "minipacman-power-duration": (MINIPACMAN, {"power_duration": 2.5}, ["power_duration=2.5", "integer >= 1"]),
    "minipacman-max-ghosts": (MINIPACMAN, {"max_ghosts": 0}, ["max_ghosts=0", "integer >= 1"]),
    "minipacman-too-many-ghosts": (MINIPACMAN, {"initial_ghosts": 9}, ["initial_ghosts=9 exceeds max_ghosts=8", "raise max_ghosts"]),
    "minipacman-safe-distance": (MINIPACMAN, {"safe_distance": -1}, ["safe_distance=-1", "integer >= 0"]),
    "minipacman-terminate-string": (MINIPACMAN, {"terminate_on_level_clear": "no"}, ["terminate_on_level_clear='no'", "true or false"]),
    "minipacman-rush-without-pills": (MINIPACMAN, {"task": "rush", "num_power_pills": 0}, ["task='rush'", "num_power_pills must be >= 1"]),
    "minipacman-ragged-layout": (MINIPACMAN, {"layout": ["#####", "#P.#", "#####"]}, ["layout must be a non-empty rectangle", "[5, 4, 5]"]),
    "minipacman-misspelt-key": (MINIPACMAN, {"tsak": "hunt"}, ["Unknown MiniPacman setting(s) ['tsak']", "did you mean 'task'?"]),
}


@pytest.mark.parametrize("case", list(ENV_SETTINGS_CASES))
def test_env_settings_are_checked_up_front(no_ray, capsys, tmp_path, case):
    """Every family's settings, through `i2a collect` (the check all entry points share)."""
    env_id, env_config, fragments = ENV_SETTINGS_CASES[case]
    output = tmp_path / "data"
    argv = ["collect", "--env", env_id, "--env-config", json.dumps(env_config)]
    code, err, seconds = _i2a([*argv, "--output", str(output), "--num-transitions", "10"], capsys)
    _assert_rejected(code, err, seconds, *fragments)
    assert not output.exists()


# One bad setting per family, through every entry point that takes env settings.
ENTRY_POINT_CASES = {
    "atari": (ENV, {"frameskip": 0}, "frameskip=0 must be an integer >= 1"),
    "sokoban": (SOKOBAN, {"num_boxes": "two"}, "num_boxes='two' must be an integer >= 1"),
    "minipacman": (MINIPACMAN, {"task": "dance"}, "task='dance' is unknown; use one of"),
}


@pytest.mark.parametrize("family", list(ENTRY_POINT_CASES))
def test_i2a_train_checks_env_settings_before_ray(no_ray, capsys, tmp_path, family):
    env_id, env_config, message = ENTRY_POINT_CASES[family]
    flags = ["--env", env_id, "--env-config", json.dumps(env_config), "--env-model", "copy"]
    code, err, seconds = _i2a(_train_argv(tmp_path, *flags), capsys)
    _assert_rejected(code, err, seconds, message)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "script, family",
    [
        ("i2a.py", "atari"),
        ("i2a_sokoban.py", "sokoban"),
        ("i2a_minipacman.py", "minipacman"),
        ("i2a_sweep.py", "sokoban"),  # the sweep used to start Ray first
    ],
)
def test_tuned_examples_check_env_settings_at_parse_time(
    no_ray, capsys, monkeypatch, tmp_path, script, family
):
    env_id, env_config, message = ENTRY_POINT_CASES[family]
    argv = ["--env", env_id, "--env-config", json.dumps(env_config), "--env-model", "copy"]
    argv += ["--storage-path", str(tmp_path / "runs"), "--name", "run"]
    code, err, seconds = _script(script, argv, capsys, monkeypatch)
    _assert_rejected(code, err, seconds, message, prog=script)
    assert not (tmp_path / "runs").exists()


def test_sweep_checks_its_env_model_checkpoint_before_ray(no_ray, capsys, monkeypatch, tmp_path, checkpoints):
    """The sweep used to start Ray before it read the checkpoint's kind."""
    argv = ["--env-model", "latent", "--env-model-checkpoint", checkpoints["pixel"],
            "--storage-path", str(tmp_path / "runs"), "--name", "run"]  # fmt: skip
    code, err, seconds = _script("i2a_sweep.py", argv, capsys, monkeypatch)
    _assert_rejected(code, err, seconds, "is a 'pixel' model but env_model='latent'", prog="i2a_sweep.py")
    assert not (tmp_path / "runs" / "run").exists()


def test_ppo_baseline_script_rejects_an_unknown_env_at_parse_time(no_ray, capsys, monkeypatch):
    code, err, seconds = _script("ppo_baseline.py", ["--env", "NoSuchEnv-v0"], capsys, monkeypatch)
    _assert_rejected(code, err, seconds, "Unknown environment 'NoSuchEnv-v0'", "Known ids", prog="ppo_baseline.py")


@pytest.mark.parametrize(
    "entry_point, argv, fragment",
    [
        ("ppo_baseline.py", ["--env", "I2A/Sokoban-v0"], "needs an env that steps asynchronously"),
        ("i2a.py", ["--num-envs-per-env-runner", "3"], "num_envs_per_env_runner=3: use an even number"),
        ("i2a train", ["--env", "CartPole-v1"], "needs an env that steps asynchronously"),
    ],
)
def test_overlap_sampling_is_refused_where_it_cannot_run(no_ray, capsys, monkeypatch, tmp_path, entry_point, argv, fragment):
    argv = ["--overlap-sampling", *argv, "--storage-path", str(tmp_path / "runs"), "--name", "run"]
    if entry_point == "i2a train":
        code, err, seconds = _i2a(["train", *argv], capsys)
    else:
        code, err, seconds = _script(entry_point, argv, capsys, monkeypatch)
    _assert_rejected(code, err, seconds, fragment, prog=entry_point.split()[0])
    assert not (tmp_path / "runs").exists()


# ------------------------------------------- gymnasium ids: spaces the agents cannot take


def _register_spaces_env(env_id, observation_space):
    import gymnasium as gym

    class SpacesEnv(gym.Env):
        def __init__(self):
            self.observation_space, self.action_space = observation_space, gym.spaces.Discrete(2)

    if env_id not in gym.registry:
        gym.register(env_id, entry_point=SpacesEnv)
    return env_id


def _unfit_envs():
    import gymnasium as gym

    return {
        "continuous-actions": ("Pendulum-v1", ["I2A on 'Pendulum-v1' needs a discrete action space", "Box(-2.0, 2.0, (1,), float32)", "continuous actions are not supported"]),
        "discrete-observations": ("FrozenLake-v1", ["I2A on 'FrozenLake-v1' takes image observations", "flat vectors", "got a Discrete space"]),
        "tuple-observations": ("Blackjack-v1", ["got a Tuple space", "FlattenObservation"]),
        "dict-observations": (
            _register_spaces_env("I2ATest/DictObservations-v0", gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})),
            ["got a Dict space"],
        ),
        "2d-box-observations": (
            _register_spaces_env("I2ATest/GridObservations-v0", gym.spaces.Box(0, 1, (6, 7), np.float32)),
            ["got a 2-dimensional Box of shape (6, 7)", "flat vectors (a Box of shape (D,))"],
        ),
    }


UNFIT_ENV_CASES = ["continuous-actions", "discrete-observations", "tuple-observations", "dict-observations", "2d-box-observations"]


@pytest.mark.parametrize("case", UNFIT_ENV_CASES)
@pytest.mark.parametrize("entry_point", ["i2a train", "i2a collect", "i2a_classic.py", "ppo_baseline.py"])
def test_spaces_the_agents_cannot_take_are_refused_before_ray(no_ray, capsys, monkeypatch, tmp_path, case, entry_point):
    env_id, fragments = _unfit_envs()[case]
    if entry_point == "i2a train":
        code, err, seconds = _i2a(_train_argv(tmp_path, "--env", env_id, "--env-model", "copy"), capsys)
        prog = "i2a"
    elif entry_point == "i2a collect":
        argv = ["collect", "--env", env_id, "--output", str(tmp_path / "runs"), "--num-transitions", "10"]
        code, err, seconds = _i2a(argv, capsys)
        prog = "i2a"
    else:
        argv = ["--env", env_id, "--storage-path", str(tmp_path / "runs"), "--name", "run"]
        code, err, seconds = _script(entry_point, argv, capsys, monkeypatch)
        prog = entry_point
    _assert_rejected(code, err, seconds, *fragments, prog=prog)
    assert not (tmp_path / "runs").exists()


def test_rllib_train_file_refuses_a_continuous_action_env(no_ray, capsys, tmp_path):
    """A user's own file that points an I2A config at a gymnasium id directly."""
    user_file = tmp_path / "pendulum.py"
    user_file.write_text("from i2a_rllib.config import I2AConfig\nconfig = I2AConfig().environment('Pendulum-v1')\n")
    storage = tmp_path / "runs"
    argv = ["train", "file", str(user_file), "--stop", '{"training_iteration": 1}', "--storage-path", str(storage)]
    code, err, seconds = _rllib(argv, capsys)
    _assert_rejected(code, err, seconds, "I2A on 'Pendulum-v1' needs a discrete action space", prog="rllib")
    assert not storage.exists()


def test_bad_gymnasium_env_kwargs_are_one_line(no_ray, capsys, tmp_path):
    argv = ["collect", "--env", "CartPole-v1", "--env-config", '{"pole_length": 2}', "--output", str(tmp_path / "d"), "--num-transitions", "10"]
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, "env_config {'pole_length': 2} for 'CartPole-v1'", "unexpected keyword argument 'pole_length'")
    assert not (tmp_path / "d").exists()


def _corrupt_shard(path):
    shard = os.path.join(path, sorted(n for n in os.listdir(path) if n.endswith(".parquet"))[0])
    with open(shard, "r+b") as f:
        f.truncate(64)


def _foreign_shard(path):
    """A shard written for 64x64 frames inside an 84x84 dataset."""
    other = write_tiny_dataset(os.path.join(path, "..", "other"), obs_shape=(4, 64, 64), num_shards=1)
    name = shard_name(0, 0)
    shutil.copy(os.path.join(other, name), os.path.join(path, name))


def _empty_manifest(path):
    manifest = json.load(open(os.path.join(path, MANIFEST_FILE)))
    manifest.update(num_transitions=0, shards={})
    json.dump(manifest, open(os.path.join(path, MANIFEST_FILE), "w"))


def _corrupt_manifest(path):
    with open(os.path.join(path, MANIFEST_FILE), "w") as f:
        f.write('{"env_id": "ALE/Bre')


def _no_manifest(path):
    os.remove(os.path.join(path, MANIFEST_FILE))


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (_corrupt_shard, ["shard-a000-000000.parquet' is corrupt or truncated", "run `i2a collect` again"]),
        (_foreign_shard, ["has schema", "expected", "not written for this dataset's observation shape"]),
        (_empty_manifest, ["is empty (0 transitions)", "--num-transitions > 0"]),
        (_corrupt_manifest, ["manifest.json is corrupt"]),
        (_no_manifest, ["has no manifest.json", "not a dataset written by `i2a collect`"]),
        (shutil.rmtree, ["does not exist", "i2a collect --output"]),
    ],
    ids=["corrupt-shard", "wrong-schema", "empty", "corrupt-manifest", "no-manifest", "missing"],
)
def test_pretrain_rejects_bad_datasets_before_ray(no_ray, capsys, tmp_path, damage, fragments):
    data = write_tiny_dataset(tmp_path / "data")
    damage(data)
    before = file_tree(data)
    output = tmp_path / "env_model_run"
    code, err, seconds = _i2a(["pretrain", "--data", data, "--output", str(output)], capsys)
    _assert_rejected(code, err, seconds, *fragments)
    assert not output.exists()
    assert file_tree(data) == before  # the dataset is not touched


@pytest.mark.parametrize(
    "flags, fragments, prog",
    [
        (["--kind", "copy"], ["--kind", "invalid choice: 'copy'", "'auto', 'spatial', 'latent', 'pixel'"], "i2a pretrain"),
        (["--epochs", "0"], ["epochs=0 must be an integer >= 1"], "i2a"),
        (["--horizon", "0"], ["horizon=0 must be an integer >= 1"], "i2a"),
        (["--kind", "spatial", "--hparams", '{"factor": 5}'], ["factor=5 must divide", "84x84"], "i2a"),
        (["--lr", "0"], ["lr=0.0 must be > 0"], "i2a"),
        (["--hparams", "{latent_size: 8}"], ["--hparams", "not valid JSON"], "i2a pretrain"),
        (["--resume"], ["--resume", "holds no pretraining run to continue"], "i2a"),
        (["--output", "{tmp}/a_file/run"], ["a_file is a file, not a directory", "--output"], "i2a"),
        (["--kind", "latent", "--hparams", '{"latent": 8}'], ["Unknown hparams ['latent']", "latent_size"], "i2a"),
        (
            ["--kind", "pixel", "--hparams", '{"architecture": "unet"}'],
            ["Unknown pixel architecture 'unet'", "'dilated'"],
            "i2a",
        ),
        (["--lr-schedule", "step"], ["--lr-schedule", "invalid choice: 'step'"], "i2a pretrain"),
        (["--init-from", "{tmp}/nowhere"], ["nowhere' is not a directory", "`i2a pretrain` printed"], "i2a"),
        (
            ["--init-from", "{repo}/pretrained/breakout_spatial", "--hparams", '{"channels": 16}'],
            ['--hparams {"channels": 16} with --init-from', "only ['reward_head'] may change"],
            "i2a",
        ),
        (
            ["--init-from", "{repo}/pretrained/breakout_spatial", "--kind", "latent"],
            ["--kind latent with --init-from", "a 'spatial' model", "drop --kind"],
            "i2a",
        ),
        (
            ["--init-from", "{repo}/pretrained/breakout_spatial", "--epochs", "0", "--hparams", '{"reward_head": "map"}'],
            ["--epochs 0 with a 'map' reward head", "holds none there"],
            "i2a",
        ),
    ],
    ids=[
        "kind-copy", "zero-epochs", "zero-horizon", "spatial-factor", "zero-lr", "hparams-json", "resume-nothing", "output-under-a-file",
        "unknown-hparam", "unknown-architecture", "lr-schedule", "init-from-nowhere", "init-from-with-hparams",
        "init-from-other-kind", "zero-epochs-new-map-head-without-scoring",
    ],
)
def test_pretrain_rejects_bad_settings_before_ray(no_ray, capsys, tmp_path, flags, fragments, prog):
    data = write_tiny_dataset(tmp_path / "data")
    (tmp_path / "a_file").write_text("not a directory")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    flags = [f.replace("{tmp}", str(tmp_path)).replace("{repo}", repo) for f in flags]
    argv = ["pretrain", "--data", data, "--output", str(tmp_path / "out"), *flags]
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, *fragments, prog=prog)
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_pretrain_zero_epochs_refuses_a_reward_head_nothing_would_train(no_ray, capsys, tmp_path):
    """A folded model with a fitted 'map' head, fine-tuned with --epochs 0 back to the
    'frames' head: those convolutions would be exported untrained."""
    model = build_env_model("spatial", (4, 84, 84), 4, hparams={"architecture": "folded", "reward_head": "map"})
    source = save_env_model(model, str(tmp_path / "folded_map"), extra_metadata={"env_id": ENV})
    data = write_tiny_dataset(tmp_path / "data")
    argv = ["pretrain", "--data", data, "--output", str(tmp_path / "out"), "--init-from", source,
            "--epochs", "0", "--hparams", '{"reward_head": "frames"}']  # fmt: skip
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, "--epochs 0 with --init-from", "'reward_frame_conv'", "would stay untrained")
    assert not (tmp_path / "out").exists()


def test_pretrain_init_from_a_folded_model_swaps_its_reward_head_for_a_map_head(no_ray, tmp_path):
    """`--init-from <folded model> --hparams '{"reward_head": "map"}'` (how
    pretrained/breakout_folded got its head): every weight but the reward head's comes
    from the checkpoint; the old head's convolutions are left out."""
    from i2a_rllib.pretrain.train import _initial_model, plan_pretraining

    torch.manual_seed(0)
    source = build_env_model("spatial", (4, 84, 84), 4, hparams={"architecture": "folded"})
    path = save_env_model(source, str(tmp_path / "folded"), extra_metadata={"env_id": ENV})
    data = write_tiny_dataset(tmp_path / "data")
    plan = plan_pretraining(data, str(tmp_path / "out"), init_from=path, epochs=1, hparams={"reward_head": "map"})
    model = _initial_model(plan.train_config)
    assert model.reward_head == "map" and not hasattr(model, "reward_stack_conv")
    weights = source.state_dict()
    kept = [key for key in model.state_dict() if not key.startswith("reward_")]
    assert "frames_conv.weight" in kept and all(torch.equal(model.state_dict()[k], weights[k]) for k in kept)


def test_pretrain_init_from_a_truncated_checkpoint_fails_before_ray(no_ray, capsys, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = tmp_path / "env_model"
    shutil.copytree(os.path.join(repo, "pretrained", "breakout_spatial"), source)
    weights = source / "env_model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    data = write_tiny_dataset(tmp_path / "data")
    argv = ["pretrain", "--data", data, "--output", str(tmp_path / "out"), "--init-from", str(source)]
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, "env_model.pt", "truncated or corrupt")
    assert not (tmp_path / "out").exists()
    assert weights.stat().st_size == 1000


def test_pretrain_api_names_why_copy_cannot_be_pretrained(no_ray, tmp_path):
    from i2a_rllib.pretrain.train import pretrain

    with pytest.raises(ValueError, match="the copy and perfect models have nothing to learn"):
        pretrain(str(tmp_path), str(tmp_path / "out"), kind="copy")


def test_collect_rejects_an_output_under_a_file(no_ray, capsys, tmp_path):
    (tmp_path / "a_file").write_text("keep me")
    argv = ["collect", "--output", str(tmp_path / "a_file" / "data"), "--num-transitions", "10"]
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds, "Cannot create the dataset directory", "choose a writable --output")
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_evaluate_rejects_missing_and_non_checkpoints(no_ray, capsys, tmp_path):
    code, err, seconds = _i2a(["evaluate", str(tmp_path / "nothing")], capsys)
    _assert_rejected(code, err, seconds, "does not exist")
    (tmp_path / "not_a_checkpoint").mkdir()
    (tmp_path / "not_a_checkpoint" / "notes.txt").write_text("x")
    code, err, seconds = _i2a(["evaluate", str(tmp_path / "not_a_checkpoint"), "--env", ENV], capsys)
    _assert_rejected(code, err, seconds, "is not an RLlib Algorithm or RLModule checkpoint")
    assert os.listdir(tmp_path / "not_a_checkpoint") == ["notes.txt"]  # no evaluation/ written


# ------------------------------------------------------------------------- rllib train file


@pytest.fixture
def config_files(tmp_path):
    no_config = tmp_path / "no_config.py"
    no_config.write_text("learning_rate = 1e-4\n")
    wrong_type = tmp_path / "wrong_type.py"
    wrong_type.write_text("config = {'lr': 1e-4}\n")
    no_stop = tmp_path / "no_stop.py"
    no_stop.write_text(
        "from i2a_rllib.config import baseline_ppo_config\nconfig = baseline_ppo_config()\n"
    )
    # Files that raise: the error must be located in them, not in the CLI.
    raising = {
        "syntax_error": "from i2a_rllib.config import baseline_ppo_config\nconfig = baseline_ppo_config(\n",
        "name_error": "from i2a_rllib.config import baseline_ppo_config\n\nconfig = baseline_ppo_confg()\n",
        "bad_env": (
            "from i2a_rllib.config import baseline_ppo_config\n\n"
            "config = baseline_ppo_config('I2A/Sokoban-v0', env_config={'num_boxes': 'two'})\n"
        ),
    }
    for name, text in raising.items():
        (tmp_path / f"{name}.py").write_text(text)
    files = {"no_config": str(no_config), "wrong_type": str(wrong_type), "no_stop": str(no_stop)}
    return {**files, **{name: str(tmp_path / f"{name}.py") for name in raising}}


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["{tmp}/missing.py", "--stop", '{"training_iteration": 1}'], ["missing.py' does not exist"]),
        (["{no_config}", "--stop", '{"training_iteration": 1}'], ["defines no `config`", "config = <AlgorithmConfig>"]),
        (["{wrong_type}", "--stop", '{"training_iteration": 1}'], ["is a dict, not an RLlib AlgorithmConfig"]),
        (["{no_stop}"], ["No stopping criteria", "--stop"]),
        (["{no_stop}", "--stop", "{training_iteration: 1}"], ["--stop must be a JSON object", '{"training_iteration": 10}']),
        (["{no_stop}", "--stop", '{"training_iteration": 1}', "--config", "[0.1]"], ["--config must be a JSON object"]),
        (["{no_stop}", "--stop", '{"training_iteration": 1}', "--bogus"], ["unrecognized arguments: --bogus"]),
        (["{syntax_error}", "--stop", '{"training_iteration": 1}'], ["syntax_error.py:2: SyntaxError: '(' was never closed"]),
        (["{name_error}", "--stop", '{"training_iteration": 1}'], ["name_error.py:3: NameError: name 'baseline_ppo_confg' is not defined"]),
        (["{bad_env}", "--stop", '{"training_iteration": 1}'], ["bad_env.py:3: ValueError: num_boxes='two' must be an integer >= 1"]),
        (["{no_stop}", "--stop", '{"training_iteration": 1}', "--config", '{"env_config": {"frameskip": 0}}'], ["frameskip=0 must be an integer >= 1"]),
    ],
    ids=[
        "missing-file", "no-config", "config-not-algorithm-config", "no-stop", "stop-not-json", "config-not-object",
        "unknown-flag", "file-syntax-error", "file-name-error", "file-bad-env-settings", "config-bad-env-settings",
    ],
)
def test_rllib_train_file_rejects_bad_input_before_ray(no_ray, capsys, tmp_path, config_files, argv, fragments):
    names = {"{tmp}": str(tmp_path), **{"{%s}" % k: v for k, v in config_files.items()}}
    argv = [names.get(a.split("/")[0], a.split("/")[0]) + a[len(a.split("/")[0]):] for a in argv]
    storage = tmp_path / "runs"
    code, err, seconds = _rllib(["train", "file", *argv, "--storage-path", str(storage)], capsys)
    _assert_rejected(code, err, seconds, *fragments, prog="rllib")
    assert "rllib_cli.py" not in err and "runpy" not in err  # the user's file, not ours
    assert not storage.exists()


# -------------------------------------------------------------- the real console scripts


def test_console_scripts_exit_2_with_the_message(tmp_path):
    result = _console("i2a", "collect", "--output", str(tmp_path / "d"), "--num-transitions", "0")
    assert result.returncode == 2, result.stderr
    assert "i2a: error: num_transitions=0 must be an integer >= 1." in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "d").exists()
    result = _console("rllib", "train", "file", str(tmp_path / "nope.py"))
    assert result.returncode == 2 and "nope.py' does not exist" in result.stderr, result.stderr
    result = _console("i2a", "collect", "--env", "Pendulum-v1", "--output", str(tmp_path / "p"), "--num-transitions", "10")
    assert result.returncode == 2 and "continuous actions are not supported" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


@pytest.mark.slow
def test_more_gpus_than_the_cluster_has_is_rejected_before_training(ray_session, capsys, tmp_path):
    """Needs the cluster's resources (the session's GPU-less Ray); nothing is written."""
    import ray

    assert ray.cluster_resources().get("GPU", 0) == 0
    argv = _train_argv(tmp_path, "--env-model", "copy", "--num-learners", "2", "--num-gpus-per-learner", "1")
    code, err, seconds = _i2a(argv, capsys)
    _assert_rejected(code, err, seconds)
    assert re.search(
        r"i2a: error: --num-learners=2 with --num-gpus-per-learner=1(\.0)? needs 2(\.0)? GPUs, "
        r"but the Ray cluster has 0\. Lower them, or add GPU nodes",
        err,
    ), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-env-runners", "2", "--num-gpus-per-env-runner", "0.5"],
         "--num-env-runners=2 with --num-gpus-per-env-runner=0.5 needs 1 GPUs, but the Ray cluster has 0"),
        (["--num-env-runners", "0", "--num-gpus-per-env-runner", "1"],
         "--num-gpus-per-env-runner=1 needs remote EnvRunners (--num-env-runners >= 1)"),
    ],
)
def test_env_runner_gpus_the_cluster_lacks_are_rejected_before_training(ray_session, capsys, tmp_path, flags, message):
    code, err, seconds = _i2a(_train_argv(tmp_path, "--env-model", "copy", *flags), capsys)
    _assert_rejected(code, err, seconds, message)
    assert not (tmp_path / "runs").exists()


def test_a_negative_gpu_share_per_env_runner_is_a_usage_error(no_ray, capsys, tmp_path):
    code, err, seconds = _i2a(_train_argv(tmp_path, "--num-gpus-per-env-runner", "-1"), capsys)
    _assert_rejected(code, err, seconds, "--num-gpus-per-env-runner must be a number >= 0, got '-1'")
    assert not (tmp_path / "runs").exists()


def test_relative_checkpoint_paths_become_absolute(tmp_path, monkeypatch):
    """Tune runs trials in their own working directory: relative paths must not reach it."""
    from i2a_rllib.config import I2AConfig

    monkeypatch.chdir(tmp_path)
    config = I2AConfig().imagination(env_model_checkpoint="runs/em/env_model")
    assert config.env_model_checkpoint == str(tmp_path / "runs" / "em" / "env_model")
    assert I2AConfig().imagination(env_model_checkpoint="s3://b/em").env_model_checkpoint == "s3://b/em"


def test_pipeline_refuses_a_uri_storage_path(no_ray, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything the pipeline wrote by mistake would land here
    code, err, seconds = _i2a(["train", "--storage-path", "s3://bucket/i2a", "--stop-iters", "1"], capsys)
    _assert_rejected(code, err, seconds, "--storage-path 's3://bucket/i2a'", "needs a filesystem path")
    assert os.listdir(tmp_path) == []
