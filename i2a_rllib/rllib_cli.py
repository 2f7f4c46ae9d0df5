"""`rllib train file <file>`: the legacy RLlib command, which Ray 2.60 no longer ships.

The contract is the old one: the Python file defines `config` (an AlgorithmConfig) and
optionally `stop` (a dict of stopping criteria); the command trains it through Tune, so
results, checkpoints and TensorBoard files land where Tune puts them.

    rllib train file tuned_examples/i2a.py --stop '{"training_iteration": 10}'
        [--storage-path runs] [--name my_run] [--config '{"lr": 1e-4}'] [--checkpoint-freq 5]
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from typing import List, Optional

from i2a_rllib.commands import json_object_arg, one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rllib", description="RLlib command line (legacy `train file`).")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an algorithm")
    train_sub = train.add_subparsers(dest="how", required=True)
    p = train_sub.add_parser("file", help="train the `config` defined in a Python file")
    p.add_argument("file", help="Python file defining `config` and optionally `stop`")
    p.add_argument("--stop", type=json_object_arg("--stop", '{"training_iteration": 10}'), default=None)
    p.add_argument("--config", type=json_object_arg("--config", '{"lr": 0.0001}'), default=None, help="overrides")
    p.add_argument("--storage-path", default="runs")
    p.add_argument("--name", default=None)
    p.add_argument("--checkpoint-freq", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("-v", "--verbose", type=int, default=1)
    return parser


class UsageError(ValueError):
    pass


def _error_in_file(path: str, error: Exception) -> str:
    """`error` as one line located in the user's file: `path:line: Type: message`, the
    line being the last one of `path` on the way to the error (the file's own call, not
    the library code below it)."""
    target = os.path.realpath(path)
    line, message = None, error
    if isinstance(error, SyntaxError):  # its str() repeats the file and line
        message = error.msg
        if error.filename and os.path.realpath(error.filename) == target:
            line = error.lineno
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if os.path.realpath(frame.f_code.co_filename) == target:
            line = lineno
    where = f"{path}:{line}" if line else path
    return f"{where}: {type(error).__name__}: {one_line(message)}"


def load_config_file(path: str):
    """Executes `path` (not as __main__) and returns its `config` and `stop`.

    Raises:
        UsageError: If the file is missing, raises (reported at its line), or does not
            define a usable `config` / `stop`.
    """
    if not os.path.isfile(path):  # before importing RLlib: a typo fails at once
        raise UsageError(f"{path!r} does not exist (or is not a file).")
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    try:
        namespace = runpy.run_path(path, run_name="__rllib_train_file__")
    except Exception as e:  # anything the user's file raises; SystemExit/Ctrl-C pass
        raise UsageError(_error_in_file(path, e)) from None
    config = namespace.get("config")
    if config is None:
        raise UsageError(
            f"{path!r} defines no `config`; the file must set `config = <AlgorithmConfig>` "
            "(and may set `stop = {...}`)."
        )
    if not isinstance(config, AlgorithmConfig):
        raise UsageError(
            f"`config` in {path!r} is a {type(config).__name__}, not an RLlib AlgorithmConfig."
        )
    stop = namespace.get("stop")
    if stop is not None and not isinstance(stop, dict):
        raise UsageError(f"`stop` in {path!r} must be a dict, got {type(stop).__name__}.")
    return config, stop


def train_file(args: argparse.Namespace) -> dict:
    from i2a_rllib.envs import validate_rllib_env
    from i2a_rllib.experiment import run_experiment, script_arg_parser

    # Run-location problems must surface before the file's config is even built.
    config, file_stop = load_config_file(args.file)
    stop = args.stop if args.stop is not None else file_stop
    if not stop:
        raise UsageError(
            f"No stopping criteria: {args.file!r} defines no `stop`; pass --stop "
            "'{\"training_iteration\": 10}'."
        )
    if args.config:
        config = config.copy(copy_frozen=False).update_from_dict(args.config)
    # --config may replace env_config: check it as every other entry point does, before Ray.
    validate_rllib_env(config.env, config.env_config)
    run_args = script_arg_parser().parse_args([])
    run_args.storage_path = args.storage_path
    run_args.name = args.name
    run_args.resume = args.resume
    run_args.checkpoint_freq = args.checkpoint_freq
    run_args.num_cpus = args.num_cpus
    run_args.verbose = args.verbose
    return run_experiment(config, run_args, stop, apply_args=False)


def main(argv: Optional[List[str]] = None) -> int:
    from i2a_rllib.commands import run_as_command

    args = build_parser().parse_args(argv)
    return run_as_command(train_file, args, prog="rllib")


if __name__ == "__main__":
    sys.exit(main())
