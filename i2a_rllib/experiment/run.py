"""Running an RLlib config: through Tune (default) or a plain loop (--no-tune), on the
Ray a `ray job submit` runs in or on an embedded local one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, Optional

from i2a_rllib.experiment.flags import apply_script_args, default_stop
from i2a_rllib.experiment.preflight import check_checkpoints_load, check_output_location


def init_ray(num_cpus: Optional[int] = None, address: Optional[str] = None) -> None:
    """Joins the cluster a `ray job submit` runs in, else starts an embedded local Ray.

    A bare `ray.init()` would also join a stale cluster left behind by a killed head
    (/tmp/ray/ray_current_cluster); `address="local"` never does.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        # Without the dashboard (slow to start on 2 cores) Ray Train's placement-group
        # cleaner cannot reach the state API and warns once a second for a whole
        # pretraining run; the hook quiets that one logger in every worker.
        ray.init(
            address="local",
            num_cpus=num_cpus or None,
            include_dashboard=False,
            runtime_env={"worker_process_setup_hook": "i2a_rllib.experiment.run.quiet_ray_train_cleaner"},
        )


def quiet_ray_train_cleaner() -> None:
    """Worker set-up: only errors from Ray Train's placement-group cleaner (see init_ray)."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(
        logging.ERROR
    )


def build_tuner(config, args, name: str, experiment_dir: str, stop, tune_config=None, num_to_keep=None):
    """A Tune `Tuner` for `config`: restored from `experiment_dir` with --resume, else new.

    Results, checkpoints and the files a trial writes itself (TensorBoard images of
    imagination) go to --storage-path/`name`; a failed trial is not retried (--resume
    restarts errored trials from their last checkpoint).
    """
    from ray import tune

    if args.resume:
        return tune.Tuner.restore(experiment_dir, trainable=config.algo_class, resume_errored=True)
    storage_path = args.storage_path if "://" in args.storage_path else os.path.abspath(args.storage_path)
    return tune.Tuner(
        config.algo_class,
        param_space=config,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            stop=stop,
            verbose=args.verbose,
            failure_config=tune.FailureConfig(max_failures=0),
            sync_config=tune.SyncConfig(sync_artifacts=True),
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_frequency=args.checkpoint_freq,
                checkpoint_at_end=True,
                num_to_keep=num_to_keep,
            ),
        ),
    )


def run_experiment(
    config,
    args: argparse.Namespace,
    stop: Optional[Dict[str, Any]] = None,
    apply_args: bool = True,
):
    """Trains `config` through Tune (default) or directly (--no-tune).

    `apply_args=False` leaves the config's resources as they are (`rllib train file`).

    Returns:
        A dict with the experiment directory, the last checkpoint and the last result.
    """
    stop = stop if stop is not None else default_stop(args)
    name = args.name or default_experiment_name(config)
    experiment_dir = check_output_location(args.storage_path, name, args.resume)
    # Bad settings and unloadable checkpoints fail here, before Ray starts; the
    # resource flags need the cluster, so the config is checked again after them.
    config.validate()
    check_checkpoints_load(config)
    init_ray(num_cpus=args.num_cpus or None)
    if apply_args:
        apply_script_args(config, args)
    config.validate()
    print(f"[i2a] experiment {experiment_dir}", flush=True)
    if args.no_tune:
        return _run_without_tune(config, args, stop, experiment_dir)

    tuner = build_tuner(config, args, name, experiment_dir, stop)
    results = tuner.fit()
    result = results[0]
    if result.error:
        raise result.error
    checkpoint = result.checkpoint.path if result.checkpoint else None
    summary = {
        "experiment_dir": experiment_dir,
        "trial_dir": result.path,
        "checkpoint": checkpoint,
        "last_result": _brief(result.metrics),
    }
    print_summary(summary)
    return summary


def _run_without_tune(config, args, stop, experiment_dir):
    """The --no-tune loop: train, print progress, checkpoint every --checkpoint-freq."""
    os.makedirs(experiment_dir, exist_ok=True)
    latest = _latest_checkpoint(experiment_dir)
    if args.resume and latest:
        from ray.rllib.algorithms.algorithm import Algorithm

        algo = Algorithm.from_checkpoint(latest)
        print(f"[i2a] resumed from {latest}", flush=True)
    else:
        if hasattr(config, "imagination_image_dir"):
            config.imagination_image_dir = experiment_dir  # no Tune trial dir here
        algo = config.build_algo()
    checkpoint, result = latest, {}
    start = time.time()
    try:
        while True:
            result = algo.train()
            iteration = result["training_iteration"]
            print(progress_line(result, time.time() - start), flush=True)
            done = _should_stop(result, stop)
            if done or (args.checkpoint_freq and iteration % args.checkpoint_freq == 0):
                checkpoint = _save_atomically(
                    algo, os.path.join(experiment_dir, f"checkpoint_{iteration:06d}")
                )
            if done:
                break
    finally:
        algo.stop()
    summary = {
        "experiment_dir": experiment_dir,
        "trial_dir": experiment_dir,
        "checkpoint": checkpoint,
        "last_result": _brief(result),
    }
    print_summary(summary)
    return summary


def _save_atomically(algo, path: str) -> str:
    """Saves under a hidden name, then renames: a save cut short (killed, disk full)
    never leaves a partial `checkpoint_*` that --resume would pick."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(tmp)
    shutil.rmtree(path, ignore_errors=True)  # only if this iteration was saved before
    os.replace(tmp, path)
    return path


def _latest_checkpoint(experiment_dir: str) -> Optional[str]:
    if not os.path.isdir(experiment_dir):
        return None
    names = sorted(n for n in os.listdir(experiment_dir) if n.startswith("checkpoint_"))
    return os.path.join(experiment_dir, names[-1]) if names else None


def _lookup(result: Dict[str, Any], key: str):
    value = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _should_stop(result: Dict[str, Any], stop: Dict[str, Any]) -> bool:
    for key, threshold in stop.items():
        value = _lookup(result, key)
        if value is None:
            value = _lookup(result, f"env_runners/{key}")
        if value is not None and value == value and value >= threshold:
            return True
    return False


def progress_line(result: Dict[str, Any], elapsed: float) -> str:
    steps = _lookup(result, "env_runners/num_env_steps_sampled_lifetime") or 0
    ret = _lookup(result, "env_runners/episode_return_mean")
    throughput = steps / max(elapsed, 1e-9)
    return (
        f"[i2a] iter {result.get('training_iteration', 0):4d}  env steps {int(steps):>9,d}  "
        f"return {ret if ret is None else round(ret, 2)}  "
        f"{throughput:,.0f} steps/s  {elapsed:,.0f}s"
    )


def _brief(result: Dict[str, Any]) -> Dict[str, Any]:
    keys = (
        "training_iteration",
        "num_env_steps_sampled_lifetime",
        "env_runners/num_env_steps_sampled_lifetime",
        "env_runners/episode_return_mean",
        "env_runners/episode_return_clipped",
    )
    return {k: _lookup(result or {}, k) for k in keys if _lookup(result or {}, k) is not None}


def default_experiment_name(config) -> str:
    env = getattr(config, "env_config", {}).get("game", config.env) if config.env else "env"
    env = str(env).split("/")[-1].replace("-", "_")
    return f"{config.algo_class.__name__}_{env}_{time.strftime('%Y%m%d_%H%M%S')}"


def print_summary(summary: Dict[str, Any]) -> None:
    print("[i2a] results:    " + summary["trial_dir"], flush=True)
    print("[i2a] checkpoint: " + str(summary["checkpoint"]), flush=True)
    print(
        "[i2a] TensorBoard: tensorboard --logdir " + summary["experiment_dir"], flush=True
    )
    print("[i2a] last result: " + json.dumps(summary["last_result"], default=float), flush=True)
    sys.stdout.flush()
