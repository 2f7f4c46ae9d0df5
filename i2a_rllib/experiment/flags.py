"""The command-line flags of every runnable script: RLlib's example-script flags
(`add_rllib_example_script_args`) plus where runs go (`--storage-path`, `--name`,
`--resume`) and custom resources that pin actors to a cluster's node groups.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

from ray.rllib.examples.utils import add_rllib_example_script_args

from i2a_rllib.commands import json_object_arg, non_negative_float_arg, positive_int_arg
from i2a_rllib.experiment.preflight import check_custom_resources

DEFAULT_STORAGE_PATH = "runs"


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
    parser.add_argument(
        "--learner-precision",
        choices=("fp32", "bf16"),
        default=None,
        help="bf16: the learners' forward passes in bfloat16 autocast (GPUs, CPUs with AMX; "
        "losses, gradients and weights stay float32). Default: fp32.",
    )
    parser.add_argument(
        "--overlap-sampling",
        action="store_true",
        help="Atari: each EnvRunner steps one half of its envs while its module acts for "
        "the other half (ale-py send/recv; needs an even --num-envs-per-env-runner).",
    )
    parser.add_argument(
        "--env-runner-threads",
        type=positive_int_arg("--env-runner-threads"),
        default=None,
        help="torch threads of each remote EnvRunner (default: Ray's, one per CPU it "
        "reserves). PPO samples while its learner waits, so with one EnvRunner on a small "
        "machine (--laptop sets 2) the runner can use the learner's idle cores.",
    )
    parser.add_argument(
        "--num-gpus-per-env-runner",
        type=non_negative_float_arg("--num-gpus-per-env-runner"),
        default=None,
        help="GPUs (a fraction shares one) each remote EnvRunner reserves: RLlib moves its "
        "module there, so I2A imagines on the GPU while acting: for when an EnvRunner's "
        "CPU inference bounds I2A's sampling (docs/benchmarks.md, GPU script). Default 0.",
    )
    parser.add_argument(
        "--torch-compile-worker",
        action="store_true",
        help="RLlib's framework(torch_compile_worker=True): I2A's EnvRunners run their "
        "exploration forward (imagination + heads) through torch.compile (inductor; needs "
        "a C++ compiler; tens of seconds of compiling when a runner starts). The "
        "Nature-CNN baseline's module stays eager.",
    )
    parser.add_argument(
        "--learner-threads",
        type=positive_int_arg("--learner-threads"),
        default=None,
        help="torch threads of the algorithm's process, where the learner updates with "
        "--num-learners 0 (default: Ray's; under Tune one per CPU the trial's main process "
        "reserves, 1). The EnvRunners wait meanwhile (--laptop sets 2).",
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
    """Parses sys.argv when run as a script; defaults when imported (`rllib train file`).

    Also checks --env, --env-config and --overlap-sampling: the scripts build their config at import, outside
    `run_as_command`, so a bad env setting must end here as a usage error (exit 2).
    """
    args = parser.parse_args() if as_main else parser.parse_args([])
    if getattr(args, "env", None) is not None:
        from i2a_rllib.commands import one_line
        from i2a_rllib.envs import rllib_env_settings

        try:
            settings = rllib_env_settings(args.env, getattr(args, "env_config", None))
            if getattr(args, "overlap_sampling", False):
                from i2a_rllib.env_runner import check_overlap_sampling

                check_overlap_sampling(settings["env"], args.num_envs_per_env_runner or 1)
        except ValueError as e:
            parser.exit(2, f"{parser.prog}: error: {one_line(e)}\n")
    return args


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
    if getattr(args, "num_gpus_per_env_runner", None) is not None:
        config.env_runners(num_gpus_per_env_runner=args.num_gpus_per_env_runner)
    if getattr(args, "torch_compile_worker", False):
        config.framework(torch_compile_worker=True)
    threads = {k: getattr(args, k, None) for k in ("env_runner_threads", "learner_threads")}
    if any(threads.values()):
        from i2a_rllib.config import set_torch_threads

        set_torch_threads(config, **threads)
    if getattr(args, "learner_precision", None):
        config.learners(
            learner_config_dict={**config.learner_config_dict, "precision": args.learner_precision}
        )
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
    # GPUs the EnvRunners reserve come first; the learners get what is left.
    env_runner_gpus = config.num_gpus_per_env_runner * config.num_env_runners
    if config.num_gpus_per_env_runner and not config.num_env_runners:
        raise ValueError(
            f"--num-gpus-per-env-runner={config.num_gpus_per_env_runner:g} needs remote "
            "EnvRunners (--num-env-runners >= 1): the local one samples on the CPU."
        )
    if env_runner_gpus > available:
        raise ValueError(
            f"--num-env-runners={config.num_env_runners} with --num-gpus-per-env-runner="
            f"{config.num_gpus_per_env_runner:g} needs {env_runner_gpus:g} GPUs, but the Ray "
            f"cluster has {available:g}. Lower them, or add GPU nodes (cluster/README.md)."
        )
    if args.num_gpus_per_learner is None:
        # Use GPUs when there are enough for every learner; CPU otherwise.
        config.learners(num_gpus_per_learner=1 if available - env_runner_gpus >= num_learners else 0)
    else:
        needed = args.num_gpus_per_learner * num_learners
        if needed + env_runner_gpus > available:
            beside = f" beside the EnvRunners' {env_runner_gpus:g}" if env_runner_gpus else ""
            raise ValueError(
                f"--num-learners={num_learners} with --num-gpus-per-learner="
                f"{args.num_gpus_per_learner} needs {needed} GPUs{beside}, but the Ray cluster has "
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
    check_custom_resources(config, args, ray.cluster_resources() if ray.is_initialized() else {})
    return config


def default_stop(args: argparse.Namespace) -> Dict[str, Any]:
    stop = {
        "num_env_steps_sampled_lifetime": args.stop_timesteps,
        "training_iteration": args.stop_iters,
    }
    if args.stop_reward != float("inf"):
        # Tune warns (once) until the first episode finishes and the key appears.
        stop["env_runners/episode_return_mean"] = args.stop_reward
    return stop
