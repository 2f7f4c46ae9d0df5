"""Running an RLlib config from a script: RLlib's example-script flags, plus where runs go.

RLlib's `run_rllib_example_script_experiment` has no storage path, joins whatever Ray
cluster `ray.init()` finds, and never overwrites-checks; this is the same flow with
those three things added. By concern:

    flags.py      RLlib's example-script flags + run location + custom resources
    preflight.py  checks before Ray starts: output location, free space, resources,
                  checkpoints that must load
    run.py        Ray start/join, Tune or a plain --no-tune loop, progress, summary
"""

from i2a_rllib.experiment.flags import (
    DEFAULT_STORAGE_PATH,
    apply_scaling_flags,
    apply_script_args,
    default_stop,
    parse_script_args,
    script_arg_parser,
)
from i2a_rllib.experiment.preflight import (
    DEFAULT_MIN_FREE_MB,
    MIN_FREE_MB_ENV,
    RunDirectoryError,
    check_free_space,
    check_output_location,
    check_writable,
    min_free_mb,
)
from i2a_rllib.experiment.run import (
    build_tuner,
    default_experiment_name,
    init_ray,
    print_summary,
    progress_line,
    run_experiment,
)

__all__ = [
    "DEFAULT_MIN_FREE_MB",
    "DEFAULT_STORAGE_PATH",
    "MIN_FREE_MB_ENV",
    "RunDirectoryError",
    "apply_scaling_flags",
    "apply_script_args",
    "build_tuner",
    "check_free_space",
    "check_output_location",
    "check_writable",
    "default_experiment_name",
    "default_stop",
    "init_ray",
    "min_free_mb",
    "parse_script_args",
    "print_summary",
    "progress_line",
    "run_experiment",
    "script_arg_parser",
]
