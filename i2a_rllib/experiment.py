"""Running an RLlib config from a script: RLlib's example-script flags, plus where runs go.

RLlib's `run_rllib_example_script_experiment` has no storage path, joins whatever Ray
cluster `ray.init()` finds, and never overwrites-checks; this is the same flow with
those three things added. The flags are RLlib's own (`add_rllib_example_script_args`)
plus `--storage-path`, `--name`, `--resume`, and `--env-runner-resources` /
`--learner-resources` (custom Ray resources that pin actors to a cluster's node groups).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, Optional

from ray.rllib.examples.utils import add_rllib_example_script_args

from i2a_rllib.commands import json_object_arg


DEFAULT_STORAGE_PATH = "runs"
# Below this much free space a run would die part-way (checkpoints, shards); refused up front.
DEFAULT_MIN_FREE_MB = 64
MIN_FREE_MB_ENV = "I2A_MIN_FREE_MB"


class RunDirectoryError(ValueError):
    """The output location cannot be used as asked (exists, not writable, or nearly full)."""


def script_arg_parser(
    default_reward: float = float("inf"),
    default_iters: int = 1_000_000,
    default_timesteps: int = 10_000_000,
) -> argparse.ArgumentParser:
    """RLlib's example-script parser plus this project's run-location flags."""
    parser = add_rllib_example_script_args(
        default_reward=default_reward,
        default_iters=default_iters,
        default_timesteps=default_timesteps,
    )
    parser.add_argument(
        "--storage-path",
        default=DEFAULT_STORAGE_PATH,
        help="Where results, checkpoints and TensorBoard files go (local path or URI).",
    )
    parser.add_argument(
        "--name", default=None, help="Experiment name (default: <algo>_<env>_<timestamp>)."
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue the experiment in --storage-path/--name instead of refusing.",
    )
    parser.add_argument(
        "--env-runner-resources",
        type=_custom_resources_arg("--env-runner-resources", '{"env_runner_node": 1}'),
        default=None,
        help="Custom Ray resources each remote EnvRunner asks for, as JSON, e.g. "
        '\'{"env_runner_node": 1}\' to keep EnvRunners on the CPU group (cluster/README.md).',
    )
    parser.add_argument(
        "--learner-resources",
        type=_custom_resources_arg("--learner-resources", '{"learner_node": 1}'),
        default=None,
        help="Custom Ray resources each remote learner (--num-learners >= 1) asks for, as "
        'JSON, e.g. \'{"learner_node": 1}\' to keep learners on the GPU group.',
    )
    return parser


def _custom_resources_arg(flag: str, example: str):
    """argparse `type=`: a JSON object of custom resource name -> amount per actor."""
    parse_object = json_object_arg(flag, example)

    def parse(text: str) -> Dict[str, float]:
        resources = parse_object(text)
        for name, amount in resources.items():
            if name in ("CPU", "GPU"):
                # It would replace the actor's own CPU/GPU request (RLlib merges the dicts).
                raise argparse.ArgumentTypeError(
                    f"{flag} takes custom resources only, not {name!r}; learners get theirs "
                    "from --num-cpus-per-learner / --num-gpus-per-learner, EnvRunners take "
                    "1 CPU each."
                )
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
                raise argparse.ArgumentTypeError(
                    f"{flag}: the amount of {name!r} must be a number > 0, e.g. '{example}'; "
                    f"got {amount!r}."
                )
        return resources

    return parse


def parse_script_args(parser: argparse.ArgumentParser, as_main: bool) -> argparse.Namespace:
    """Parses sys.argv when run as a script; defaults when imported (`rllib train file`)."""
    return parser.parse_args() if as_main else parser.parse_args([])


def apply_scaling_flags(config, args: argparse.Namespace):
    """The EnvRunner and Learner counts of RLlib's example-script flags (no cluster check)."""
    if args.num_env_runners is not None:
        config.env_runners(num_env_runners=args.num_env_runners)
    if args.num_envs_per_env_runner is not None:
        config.env_runners(num_envs_per_env_runner=args.num_envs_per_env_runner)
    if args.num_learners is not None:
        config.learners(num_learners=args.num_learners)
    if args.num_cpus_per_learner is not None:
        config.learners(num_cpus_per_learner=args.num_cpus_per_learner)
    # getattr: a Namespace not made by script_arg_parser may lack these two flags.
    if getattr(args, "env_runner_resources", None):
        config.env_runners(custom_resources_per_env_runner=args.env_runner_resources)
    if getattr(args, "learner_resources", None):
        config.learners(custom_resources_per_learner=args.learner_resources)
    return config


def apply_script_args(config, args: argparse.Namespace):
    """Applies the resource and scaling flags of RLlib's example scripts to `config`.

    Raises:
        ValueError: If more GPUs are asked for than the Ray cluster has, or a custom
            resource (--env-runner-resources, --learner-resources) no node offers.
    """
    import ray

    apply_scaling_flags(config, args)
    if getattr(args, "num_gpus", None):
        raise ValueError(
            "--num-gpus is not used on the new API stack; use --num-learners N "
            "--num-gpus-per-learner 1."
        )
    num_learners = (args.num_learners if args.num_learners is not None else config.num_learners) or 1
    available = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    if args.num_gpus_per_learner is None:
        # Use GPUs when there are enough for every learner; CPU otherwise.
        config.learners(num_gpus_per_learner=1 if available >= num_learners else 0)
    else:
        needed = args.num_gpus_per_learner * num_learners
        if needed > available:
            raise ValueError(
                f"--num-learners={num_learners} with --num-gpus-per-learner="
                f"{args.num_gpus_per_learner} needs {needed} GPUs, but the Ray cluster has "
                f"{available:g}. Lower them, or add GPU nodes (cluster/README.md)."
            )
        config.learners(num_gpus_per_learner=args.num_gpus_per_learner)
    if args.evaluation_interval:
        config.evaluation(
            evaluation_num_env_runners=args.evaluation_num_env_runners,
            evaluation_interval=args.evaluation_interval,
            evaluation_duration=args.evaluation_duration,
            evaluation_duration_unit=args.evaluation_duration_unit,
            evaluation_parallel_to_training=args.evaluation_parallel_to_training,
        )
    if args.log_level is not None:
        config.debugging(log_level=args.log_level)
    _check_custom_resources(config, args, ray.cluster_resources() if ray.is_initialized() else {})
    return config


def _check_custom_resources(config, args: argparse.Namespace, cluster: Dict[str, float]) -> None:
    """Refuses custom resources that would place nothing, or that no node offers.

    A missing resource would leave the trial PENDING forever instead of failing. Too
    few units are not refused: an autoscaler may still add nodes that offer them.
    """
    remote_env_runners = config.num_env_runners + (
        config.evaluation_num_env_runners if config.evaluation_interval else 0
    )
    for flag, resources, actors, fix in (
        ("--env-runner-resources", getattr(args, "env_runner_resources", None), remote_env_runners,
         "sampling runs inside the algorithm's driver actor; set --num-env-runners >= 1"),
        ("--learner-resources", getattr(args, "learner_resources", None), config.num_learners,
         "the learner runs inside the algorithm's driver actor; set --num-learners >= 1"),
    ):  # fmt: skip
        if not resources:
            continue
        if not actors:
            raise ValueError(
                f"{flag} places remote actors, and there are none: {fix} or drop the flag."
            )
        for name in resources:
            if cluster.get(name, 0) <= 0:
                raise ValueError(
                    f"{flag} asks for {name!r}, which no node of this Ray cluster offers; start "
                    f"the nodes with --resources '{{\"{name}\": N}}' (cluster/aws.yaml, "
                    "cluster/kuberay/*.yaml: `resources`) or drop the flag."
                )


def default_stop(args: argparse.Namespace) -> Dict[str, Any]:
    stop = {
        "num_env_steps_sampled_lifetime": args.stop_timesteps,
        "training_iteration": args.stop_iters,
    }
    if args.stop_reward != float("inf"):
        # Tune warns (once) until the first episode finishes and the key appears.
        stop["env_runners/episode_return_mean"] = args.stop_reward
    return stop


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
        ray.init(address="local", num_cpus=num_cpus or None, include_dashboard=False)


def check_output_location(storage_path: str, name: str, resume: bool) -> str:
    """Refuses to reuse an experiment directory unless resuming; checks it is writable.

    Returns:
        The experiment directory (local paths only; URIs are left to Tune).
    """
    if "://" in storage_path:
        return f"{storage_path.rstrip('/')}/{name}"
    experiment_dir = os.path.abspath(os.path.join(storage_path, name))
    exists = os.path.isdir(experiment_dir) and bool(os.listdir(experiment_dir))
    if exists and not resume:
        raise RunDirectoryError(
            f"{experiment_dir} already holds an experiment; nothing was changed. Pass "
            "--resume to continue it, or another --name / --storage-path."
        )
    if resume and not exists:
        raise RunDirectoryError(
            f"--resume was given but {experiment_dir} holds no experiment to continue."
        )
    check_writable(experiment_dir, "--storage-path")
    return experiment_dir


def min_free_mb() -> float:
    """The free space (MiB) an output location needs: I2A_MIN_FREE_MB, else 64."""
    text = os.environ.get(MIN_FREE_MB_ENV)
    if text is None:
        return DEFAULT_MIN_FREE_MB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(
            f"{MIN_FREE_MB_ENV}={text!r} must be a number of MiB >= 0 (0 turns the free-space "
            f"check off); unset it for the default of {DEFAULT_MIN_FREE_MB}."
        )
    return value


def _nearest_existing(path: str) -> str:
    """`path` itself or its closest ancestor that exists (nothing is created)."""
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def check_writable(path: str, flag: str) -> None:
    """Raises RunDirectoryError unless the directory `path` exists or can be created, on
    a filesystem with at least `min_free_mb()` MiB free.

    Checks the nearest existing ancestor without creating anything. `os.access` alone
    passes for root everywhere but read-only mounts, so a file in the way is caught too.
    A disk that fills up during the run is not prevented (docs/reliability.md).
    """
    parent = _nearest_existing(path)
    if not os.path.isdir(parent):
        raise RunDirectoryError(
            f"Cannot create {os.path.abspath(path)}: {parent} is a file, not a directory. "
            f"Choose another {flag}."
        )
    if not os.access(parent, os.W_OK):
        raise RunDirectoryError(
            f"Cannot write to {parent} (needed for {os.path.abspath(path)}); choose a "
            f"writable {flag}."
        )
    check_free_space(path, flag)


def check_free_space(path: str, flag: str) -> None:
    """Raises RunDirectoryError if the filesystem `path` would be on has less than
    `min_free_mb()` MiB free (measured at its nearest existing ancestor)."""
    parent = _nearest_existing(path)
    needed = min_free_mb()
    free = shutil.disk_usage(parent).free / 2**20
    if free < needed:
        raise RunDirectoryError(
            f"Only {free:.1f} MiB free on the filesystem of {parent} (needed for "
            f"{os.path.abspath(path)}); at least {needed:g} MiB are required "
            f"(set by {MIN_FREE_MB_ENV}). Free space or choose another {flag}."
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
    init_ray(num_cpus=args.num_cpus or None)
    if apply_args:
        apply_script_args(config, args)
    config.validate()  # bad settings fail here, before any actor starts
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
