"""Faults: a killed EnvRunner, a killed collection, a killed pretraining run, training
resumed from a checkpoint, and run directories that must not be overwritten.

Killed drivers run as subprocesses in their own session (their embedded Ray
included), and every process of it gets SIGKILL: no clean-up code runs, as after a power
cut or an OOM kill. docs/reliability.md says what these tests show and what they do not.
"""

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import file_tree
import torch

from i2a_rllib import cli, rllib_cli
from i2a_rllib.data.format import (
    MANIFEST_FILE,
    filesystem_and_path,
    list_shards,
    read_manifest,
    transition_schema,
)

ENV = "ALE/Breakout-v5"
BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PPO_BASELINE_FILE = os.path.join(REPO, "tuned_examples", "ppo_baseline.py")
# A tiny latent env model: pretraining epochs take seconds on 2 cores.
TINY_ENV_MODEL = {"latent_size": 16, "encoder_channels": [4, 8, 8]}


# ------------------------------------------------------------------------------ helpers


def _child_env():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _spawn(args, log_path):
    """Starts a console script in a session of its own (it and its Ray)."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [os.path.join(BIN, args[0]), *args[1:]],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_child_env(),
        start_new_session=True,
    )


def _session_pids(sid):
    """Live processes of session `sid` (zombies are dead already: not counted)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    # "pid (comm) state ppid pgrp session ...": comm may hold spaces.
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                pids.append(int(name))
    return pids


def _kill_session(process):
    """SIGKILL to the driver and every process of its Ray; waits until they are gone.

    Ray starts each worker (actors, the Train controller) in a process group of its own,
    so a signal to the driver's group would leave them running until they notice the
    raylet is gone, long enough to register one more checkpoint. They all stay in the
    driver's session (start_new_session), so the whole session is killed."""
    deadline = time.time() + 60
    while time.time() < deadline:
        pids = _session_pids(process.pid)
        if not pids:
            process.wait(timeout=30)
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.poll()  # reaps the driver; orphans are reaped by init
        time.sleep(0.2)
    raise AssertionError(f"processes of session {process.pid} survived SIGKILL")


def _wait_for(condition, process, log_path, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"the process exited ({process.returncode}) before {what}:\n"
                + open(log_path).read()[-3000:]
            )
        time.sleep(0.05)
    _kill_session(process)
    raise AssertionError(f"timed out waiting for {what}:\n" + open(log_path).read()[-3000:])


def _run_cli(main, argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -------------------------------------------------------------- EnvRunner killed mid-run


@pytest.mark.slow
def test_a_killed_env_runner_is_replaced_and_training_continues(ray_session):
    import ray

    from i2a_rllib.config import baseline_ppo_config

    config = (
        baseline_ppo_config(ENV)
        .env_runners(
            num_env_runners=2,
            num_cpus_per_env_runner=0.5,
            num_envs_per_env_runner=2,
            rollout_fragment_length=32,
        )
        .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=1)
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=0.0)
    )
    algo = config.build_algo()
    group = algo.env_runner_group

    def pid_of(runner_id):
        [pid] = group.foreach_env_runner(
            lambda runner: os.getpid(), local_env_runner=False, remote_worker_ids=[runner_id]
        )
        return pid

    def sampled(result):
        return result["env_runners"]["num_env_steps_sampled_lifetime"]

    try:
        results = [algo.train()]
        pids = {1: pid_of(1), 2: pid_of(2)}
        actors = group._worker_manager.actors()
        # Kill runner 1 while the next iteration samples (Ray may restart the process,
        # as after a crash; RLlib must not wait for it).
        killer = threading.Timer(0.2, lambda: ray.kill(actors[1], no_restart=False))
        killer.start()
        results.append(algo.train())
        killer.join()
        assert results[-1]["training_iteration"] == 2
        assert sampled(results[-1]) > sampled(results[0])
        # The killed runner comes back (new process) and is brought back into service.
        deadline = time.time() + 120  # Ray restarts the process; slow on a busy machine
        while time.time() < deadline and not (
            group.num_healthy_remote_env_runners() == 2 and group.num_remote_worker_restarts() >= 1
        ):
            results.append(algo.train())
            time.sleep(0.5)
        assert group.num_healthy_remote_env_runners() == 2
        assert group.num_remote_worker_restarts() >= 1
        assert pid_of(1) != pids[1] and pid_of(2) == pids[2]
        results.append(algo.train())

        # A runner that cannot come back (no restart, e.g. its node is gone) is dropped:
        # training goes on with the one that is left.
        ray.kill(actors[2], no_restart=True)
        results += [algo.train(), algo.train()]
        assert group.num_healthy_remote_env_runners() == 1
        assert results[-1]["env_runners"]["num_env_steps_sampled"] >= 128  # a full batch
    finally:
        algo.stop()
    iterations = [r["training_iteration"] for r in results]
    assert iterations == list(range(1, len(results) + 1))
    steps = [sampled(r) for r in results]
    assert all(a < b for a, b in zip(steps, steps[1:])), steps
    trained = [r["learners"]["default_policy"]["num_module_steps_trained_lifetime"] for r in results]
    assert all(a < b for a, b in zip(trained, trained[1:])), trained


# ---------------------------------------------------------------- collection killed mid-run

COLLECT_ROWS, COLLECT_SHARD = 600, 50


@pytest.fixture(scope="module")
def killed_collection(ray_session, tmp_path_factory):
    """`i2a collect` SIGKILLed after its first shard lands, then the same command again."""
    from i2a_rllib.data.collect import collect

    root = tmp_path_factory.mktemp("killed_collection")
    data, log = str(root / "breakout"), str(root / "collect.log")
    args = dict(num_actors=2, num_envs_per_actor=4, shard_size=COLLECT_SHARD, seed=3)
    process = _spawn(
        ["i2a", "collect", "--env", ENV, "--output", data, "--num-transitions", str(COLLECT_ROWS),
         "--num-actors", "2", "--num-envs-per-actor", "4", "--shard-size", str(COLLECT_SHARD),
         "--seed", "3", "--num-cpus", "2"],
        log,
    )
    _wait_for(
        lambda: os.path.isdir(data) and any(n.startswith("shard-") for n in os.listdir(data)),
        process, log, what="the first shard",
    )
    _kill_session(process)
    after_kill = sorted(os.listdir(data))
    survivors = {n: _read_shard(data, n) for n in list_shards(*filesystem_and_path(data))}
    before_resume = file_tree(data)
    # Resume: the same call again (in-process on the test session's Ray).
    manifest = collect(ENV, data, COLLECT_ROWS, **args)
    return dict(
        data=data,
        after_kill=after_kill,
        survivors=survivors,
        before_resume=before_resume,
        manifest=manifest,
    )


def _read_shard(data, name):
    table = pq.read_table(os.path.join(data, name))
    assert table.schema.equals(transition_schema((4, 84, 84), 1)), name
    return table


@pytest.mark.slow
def test_a_killed_collection_leaves_only_complete_shards(killed_collection):
    after_kill, survivors = killed_collection["after_kill"], killed_collection["survivors"]
    shards = [n for n in after_kill if n.startswith("shard-")]
    # It was killed mid-run: some shards landed, not all.
    assert 1 <= len(shards) < COLLECT_ROWS // COLLECT_SHARD, after_kill
    # Every visible shard is complete; anything half-written has a hidden .tmp- name
    # that readers (list_shards) never list.
    assert sorted(survivors) == shards
    assert all(table.num_rows == COLLECT_SHARD for table in survivors.values())
    assert set(after_kill) <= set(shards) | {MANIFEST_FILE} | {n for n in after_kill if n.startswith(".tmp-")}


@pytest.mark.slow
def test_a_resumed_collection_completes_without_duplicates(killed_collection):
    data, manifest = killed_collection["data"], killed_collection["manifest"]
    names = sorted(os.listdir(data))
    assert not any(n.startswith(".tmp-") for n in names)  # half-written files removed
    shards = list_shards(*filesystem_and_path(data))
    assert sorted(manifest.shards) == shards and set(names) == set(shards) | {MANIFEST_FILE}
    tables = [_read_shard(data, n) for n in shards]
    assert sum(t.num_rows for t in tables) == COLLECT_ROWS == manifest.num_transitions
    assert read_manifest(data).num_transitions == COLLECT_ROWS
    # Shards written before the kill are kept as they were, byte for byte.
    before = killed_collection["before_resume"]
    for name in killed_collection["survivors"]:
        assert file_tree(data)[name] == before[name]
    # No transition twice: (actor, episode, step) is unique over old and new shards.
    keys = np.concatenate(
        [
            np.stack([t.column(c).to_numpy().astype(np.int64) for c in ("actor", "episode", "step")], 1)
            for t in tables
        ]
    )
    assert len(np.unique(keys, axis=0)) == len(keys) == COLLECT_ROWS


# -------------------------------------------------------------- pretraining killed mid-run


def _latest_pretrain_epoch(output):
    """Epochs of the newest checkpoint Ray Train has registered (0 if none)."""
    path = os.path.join(output, "pretrain", "checkpoint_manager_snapshot.json")
    try:
        with open(path) as f:
            snapshot = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):  # not yet / being replaced
        return 0
    latest = snapshot.get("latest_checkpoint_result") or {}
    return int(latest.get("metrics", {}).get("epoch", 0))


@pytest.mark.slow
def test_killed_pretraining_resumes_after_its_last_completed_epoch(killed_collection, tmp_path, capsys):
    from i2a_rllib.checkpoints import load_env_model

    data, epochs = killed_collection["data"], 3
    output, log = str(tmp_path / "env_model_run"), str(tmp_path / "pretrain.log")
    command = ["pretrain", "--data", data, "--output", output, "--epochs", str(epochs),
               "--batch-size", "64", "--num-workers", "1", "--kind", "latent", "--hparams", json.dumps(TINY_ENV_MODEL)]
    process = _spawn(["i2a", *command, "--num-cpus", "2"], log)
    _wait_for(lambda: _latest_pretrain_epoch(output) >= 1, process, log, what="the first epoch checkpoint")
    _kill_session(process)
    completed = _latest_pretrain_epoch(output)  # final: nothing runs any more
    assert 1 <= completed < epochs, "killed too late to test a resume"
    assert not os.path.exists(os.path.join(output, "env_model"))

    # The same command without --resume refuses and changes nothing.
    before = file_tree(output)
    code, _, err = _run_cli(cli.main, command, capsys)
    assert code == 2 and "already holds a pretraining run" in err and "--resume" in err, err
    assert file_tree(output) == before

    # With --resume it continues after the last completed epoch (on the session's Ray).
    code, out, err = _run_cli(cli.main, command + ["--resume"], capsys)
    assert code == 0, err[-3000:]
    _, metadata = load_env_model(os.path.join(output, "env_model"))
    assert metadata["epochs_trained"] == epochs
    assert metadata["final_metrics"]["started_at_epoch"] == completed
    assert metadata["final_metrics"]["epoch"] == epochs


# ------------------------------------------------------------- training resumed exactly


def _tiny_i2a(seed=11):
    from i2a_rllib.config import I2AConfig, configure_environment

    config = configure_environment(I2AConfig(), ENV).imagination(
        env_model="latent", imagination_image_interval=0
    )
    return (
        config.env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=32)
        .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=2)
        .debugging(seed=seed)
    )


def _learner(algo):
    return algo.learner_group._learner


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _optimizer_states(algo):
    # deepcopy: state_dict() holds references to the live moment tensors.
    return {name: copy.deepcopy(opt.state_dict()) for name, opt in _learner(algo)._named_optimizers.items()}


def _equal(a, b):
    """Deep equality of nested dicts/lists of tensors and numbers (bitwise for tensors)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _counters(result):
    return (
        result["training_iteration"],
        result["env_runners"]["num_env_steps_sampled_lifetime"],
        result["learners"]["default_policy"]["num_module_steps_trained_lifetime"],
        result["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"],
    )


@pytest.mark.slow
def test_training_resumes_weights_optimizer_and_counters_exactly_and_the_checkpoint_evaluates(ray_session, tmp_path):
    from ray.rllib.algorithms.algorithm import Algorithm

    from i2a_rllib.config import I2AConfig
    from i2a_rllib.evaluation import evaluate_checkpoint

    algo = _tiny_i2a().build_algo()
    try:
        algo.train()
        second = algo.train()
        path = algo.save_to_path(str(tmp_path / "checkpoint"))
        saved_weights = _weights(_learner(algo).module["default_policy"])
        saved_optimizers = _optimizer_states(algo)
        uninterrupted = algo.train()
    finally:
        algo.stop()
    assert any(len(s["state"]) for s in saved_optimizers.values())  # Adam moments exist

    resumed_weights = []
    for _ in range(2):
        restored = Algorithm.from_checkpoint(path)
        try:
            assert type(restored.config) is I2AConfig
            learner_module = _learner(restored).module["default_policy"]
            assert _equal(_weights(learner_module), saved_weights)
            # The EnvRunner acts with the same weights as the learner.
            assert _equal(_weights(restored.env_runner.module), saved_weights)
            assert _equal(_optimizer_states(restored), saved_optimizers)
            resumed = restored.train()
            resumed_weights.append(_weights(learner_module))
        finally:
            restored.stop()
        # Counters continue exactly where the uninterrupted run would have been.
        assert _counters(resumed) == _counters(uninterrupted)
        assert _counters(resumed)[0] == _counters(second)[0] + 1
    # Two resumes from one checkpoint are bit-identical: the resume is reproducible.
    assert _equal(resumed_weights[0], resumed_weights[1])
    # Not asserted: that they equal the uninterrupted 3rd iteration. Env state and
    # unfinished episodes are not in the checkpoint, so sampling restarts from reset
    # (docs/reliability.md).

    # The checkpoint evaluates; --seed fixes the env, the policy's samples and the
    # imagined actions: the same run twice.
    summary = evaluate_checkpoint(path, episodes=2, output=str(tmp_path / "eval"), num_envs=2, seed=3)
    assert summary["episodes"] == 2 and summary["score_mean"] == sum(summary["scores"]) / 2
    again = evaluate_checkpoint(path, episodes=2, output=str(tmp_path / "again"), num_envs=2, seed=3)
    assert (again["scores"], again["lengths"]) == (summary["scores"], summary["lengths"])
    assert os.path.getsize(summary["files"]["gif"]) > 1000
    assert os.path.getsize(summary["files"]["imagination"]) > 1000


# ------------------------------------------------------------------ run directories


def _tiny_train_flags(storage, *extra):
    return [
        "train", "--env-model", "copy", "--num-env-runners", "0", "--num-envs-per-env-runner", "2",
        "--train-batch-size", "64", "--minibatch-size", "32", "--num-epochs", "1",
        "--evaluation-episodes", "0", "--no-tune", "--storage-path", str(storage), "--name", "run",
        *extra,
    ]


@pytest.mark.slow
def test_i2a_train_refuses_an_existing_run_and_resume_continues_it(ray_session, tmp_path, capsys):
    storage = tmp_path / "runs"
    code, out, err = _run_cli(cli.main, _tiny_train_flags(storage, "--stop-iters", "1"), capsys)
    assert code == 0, err[-3000:]
    train_dir = storage / "run" / "train"
    assert sorted(os.listdir(train_dir)) == ["checkpoint_000001"]
    first = file_tree(storage)

    code, out, err = _run_cli(cli.main, _tiny_train_flags(storage, "--stop-iters", "2"), capsys)
    assert code == 2 and "already holds an experiment; nothing was changed" in err
    assert "Pass --resume" in err
    assert file_tree(storage) == first  # nothing overwritten, nothing added

    # A save cut short by a kill leaves only a hidden partial directory (saves are
    # renamed into place), which --resume must not pick.
    partial = train_dir / ".tmp-checkpoint_000002"
    partial.mkdir()
    (partial / "algorithm_state.pkl").write_bytes(b"\x80partial")
    code, out, err = _run_cli(cli.main, _tiny_train_flags(storage, "--stop-iters", "2", "--resume"), capsys)
    assert code == 0, err[-3000:]
    assert f"resumed from {train_dir / 'checkpoint_000001'}" in out
    assert "iter    2  env steps       128" in out  # counters continued (64 per iteration)
    assert sorted(os.listdir(train_dir)) == ["checkpoint_000001", "checkpoint_000002"]
    after = file_tree(storage)
    assert {k: v for k, v in after.items() if k in first} == first  # the old files untouched


@pytest.fixture
def existing_run(tmp_path):
    run = tmp_path / "runs" / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "progress.csv").write_text("training_iteration\n1\n")
    return run


def test_rllib_train_file_refuses_an_existing_run(existing_run, capsys):
    before = file_tree(existing_run)
    code, _, err = _run_cli(
        rllib_cli.main,
        ["train", "file", PPO_BASELINE_FILE, "--stop", '{"training_iteration": 1}',
         "--storage-path", str(existing_run.parent), "--name", "run"],
        capsys,
    )
    assert code == 2 and f"{existing_run} already holds an experiment" in err and "--resume" in err, err
    assert file_tree(existing_run) == before


def test_the_tuned_example_script_refuses_an_existing_run(existing_run):
    before = file_tree(existing_run)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tuned_examples", "i2a.py"), "--env-model", "copy",
         "--storage-path", str(existing_run.parent), "--name", "run"],
        capture_output=True, text=True, env=_child_env(), timeout=300, cwd=REPO,
    )
    assert result.returncode != 0
    assert "already holds an experiment; nothing was changed. Pass --resume" in result.stderr
    assert file_tree(existing_run) == before


@pytest.mark.parametrize(
    "main, argv",
    [
        (cli.main, ["train", "--env-model", "copy", "--storage-path", "{file}/runs"]),
        (rllib_cli.main, ["train", "file", PPO_BASELINE_FILE, "--stop",
                          '{"training_iteration": 1}', "--storage-path", "{file}/runs"]),
    ],
    ids=["i2a-train", "rllib-train-file"],
)
def test_an_unwritable_output_location_fails_before_work(main, argv, tmp_path, capsys, monkeypatch):
    """Root writes through chmod 0o500, so the location is under a *file*: that fails for
    everyone. Ray must not start."""
    import i2a_rllib.experiment
    import i2a_rllib.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for an unwritable output location")

    monkeypatch.setattr(i2a_rllib.experiment, "init_ray", refuse)
    monkeypatch.setattr(i2a_rllib.pipeline, "init_ray", refuse)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep")
    argv = [a.replace("{file}", str(blocker)) for a in argv]
    code, _, err = _run_cli(main, argv, capsys)
    assert code == 2, err
    assert f"{blocker} is a file, not a directory. Choose another --storage-path." in err
    assert blocker.read_text() == "keep"


UNWRITABLE_CASES = pytest.mark.parametrize(
    "main, argv",
    [
        (cli.main, ["train", "--env-model", "copy", "--storage-path", "{dir}/runs"]),
        (rllib_cli.main, ["train", "file", PPO_BASELINE_FILE, "--stop",
                          '{"training_iteration": 1}', "--storage-path", "{dir}/runs"]),
    ],
    ids=["i2a-train", "rllib-train-file"],
)


def _refuse_ray(monkeypatch):
    import i2a_rllib.experiment
    import i2a_rllib.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for an output location without free space")

    monkeypatch.setattr(i2a_rllib.experiment, "init_ray", refuse)
    monkeypatch.setattr(i2a_rllib.pipeline, "init_ray", refuse)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB tmpfs: a full disk as the OS reports it, not a patched number."""
    mount_point = tmp_path / "tiny_fs"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        message = result.stderr.strip()
        if os.geteuid() != 0 or re.search(r"permission denied|not permitted|superuser", message, re.I):
            pytest.skip(f"mounting a tmpfs needs root/CAP_SYS_ADMIN here: {message}")
        raise AssertionError(f"mount -t tmpfs failed: {message}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@UNWRITABLE_CASES
def test_a_nearly_full_filesystem_is_refused_before_work(main, argv, tiny_tmpfs, capsys, monkeypatch):
    monkeypatch.delenv("I2A_MIN_FREE_MB", raising=False)  # the default minimum, 64 MiB
    _refuse_ray(monkeypatch)
    argv = [a.replace("{dir}", str(tiny_tmpfs)) for a in argv]
    code, _, err = _run_cli(main, argv, capsys)
    assert code == 2, err
    assert re.search(
        rf"Only 0\.\d MiB free on the filesystem of {re.escape(str(tiny_tmpfs))} \(needed for "
        rf"{re.escape(str(tiny_tmpfs))}/runs/\S+\); at least 64 MiB are required",
        err,
    ), err
    assert "Free space or choose another --storage-path." in err and "Traceback" not in err
    assert os.listdir(tiny_tmpfs) == [], "nothing may be written to the full filesystem"


def test_the_free_space_minimum_comes_from_i2a_min_free_mb(tmp_path, capsys, monkeypatch):
    """No mount needed: a minimum above what tmp_path's filesystem has free."""
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    minimum = int(2 * free_mb) + 1
    monkeypatch.setenv("I2A_MIN_FREE_MB", str(minimum))
    _refuse_ray(monkeypatch)
    code, _, err = _run_cli(
        cli.main, ["train", "--env-model", "copy", "--storage-path", str(tmp_path / "runs")], capsys
    )
    assert code == 2, err
    assert f"on the filesystem of {tmp_path} (needed for {tmp_path}/runs/" in err, err
    assert f"at least {minimum} MiB are required (set by I2A_MIN_FREE_MB)" in err, err
    assert os.listdir(tmp_path) == []


def test_a_bad_i2a_min_free_mb_is_an_input_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("I2A_MIN_FREE_MB", "lots")
    _refuse_ray(monkeypatch)
    code, _, err = _run_cli(
        cli.main, ["train", "--env-model", "copy", "--storage-path", str(tmp_path / "runs")], capsys
    )
    assert code == 2 and "I2A_MIN_FREE_MB='lots' must be a number of MiB >= 0" in err, err
    assert os.listdir(tmp_path) == []


def test_collect_refuses_a_nearly_full_filesystem_before_any_actor(tiny_tmpfs, capsys, monkeypatch):
    monkeypatch.delenv("I2A_MIN_FREE_MB", raising=False)
    _refuse_ray(monkeypatch)  # collect imports init_ray from i2a_rllib.experiment when it needs it
    code, _, err = _run_cli(
        cli.main, ["collect", "--output", str(tiny_tmpfs / "data"), "--num-transitions", "100"], capsys
    )
    assert code == 2, err
    assert f"MiB free on the filesystem of {tiny_tmpfs}" in err and "choose another --output" in err, err
    assert os.listdir(tiny_tmpfs) == []
