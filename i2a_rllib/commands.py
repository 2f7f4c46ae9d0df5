"""Shared pieces of the command lines: error reporting and JSON flags (no heavy imports)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict

# Errors in what the user asked for: reported as one line, exit code 2, no traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError)
# What RLlib's `AlgorithmConfig._value_error` appends on a second line: advice to turn
# validation off, which is no fix for bad input.
_RLLIB_SUPPRESS_HINT = "\nTo suppress all validation errors, set"


def one_line(error: object) -> str:
    """The error's message on one line, without RLlib's advice to turn validation off."""
    return " ".join(str(error).split(_RLLIB_SUPPRESS_HINT)[0].split())


def run_as_command(fn, *args, prog: str = "error", **kwargs) -> int:
    """Calls `fn`; input errors become one line on stderr and exit code 2."""
    try:
        fn(*args, **kwargs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except INPUT_ERRORS as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


def positive_int_arg(flag: str, minimum: int = 1) -> Callable[[str], int]:
    """argparse `type=` for flags that take an integer >= 1 (or >= `minimum`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def non_negative_int_arg(flag: str) -> Callable[[str], int]:
    """argparse `type=` for flags that take an integer >= 0 (e.g. a number of warm-up iterations)."""
    return positive_int_arg(flag, minimum=0)


def rollout_depth_arg(text: str):
    """argparse `type=` for --rollout-depth: 'auto' (the env model's default depth) or
    an integer >= 1."""
    if text == "auto":
        return text
    try:
        return positive_int_arg("--rollout-depth")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--rollout-depth must be an integer >= 1 or 'auto', got {text!r}"
        ) from None


def non_negative_float_arg(flag: str) -> Callable[[str], float]:
    """argparse `type=` for flags that take a number >= 0 (e.g. a fraction of a GPU)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} must be a number >= 0, got {text!r}")
        return value

    return parse


def json_object_arg(flag: str, example: str) -> Callable[[str], Dict[str, Any]]:
    """argparse `type=` for flags that take a JSON object of settings by name."""

    def parse(text: str) -> Dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a JSON object, e.g. '{example}'; {text!r} is not valid "
                f"JSON ({e.msg})"
            ) from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(
                f"{flag} must be a JSON object, e.g. '{example}'; got {text!r}"
            )
        return value

    return parse
