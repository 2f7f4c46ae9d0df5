"""Shared pieces of the command lines: error reporting and JSON flags (no heavy imports)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict

# Errors in what the user asked for: reported as one line, exit code 2, no traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError)


def run_as_command(fn, *args, prog: str = "error", **kwargs) -> int:
    """Calls `fn`; input errors become one line on stderr and exit code 2."""
    try:
        fn(*args, **kwargs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except INPUT_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


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
