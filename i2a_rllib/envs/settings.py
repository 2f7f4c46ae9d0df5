"""Checks shared by every env family's settings: one-line `ValueError`s that name the
key, the bad value and what is valid. Pure Python (no numpy, no Ray), so every entry
point can call them before anything starts."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any


def check_known_keys(what: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuses keys outside `known`, suggesting the closest known key for each.

    Args:
        what: How the keys are called in the message, e.g. "Sokoban setting(s)".
    """
    known = sorted(known)
    unknown = sorted(str(key) for key in set(settings) - set(known))
    if not unknown:
        return
    close = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
    hints = [
        f"{match[0]!r}" + (f" for {key!r}" if len(unknown) > 1 else "")
        for key, match in close.items()
        if match
    ]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    raise ValueError(f"Unknown {what} {unknown}{hint}; the valid keys are {known}.")


def is_int(value: Any) -> bool:
    """True for Python and numpy ints; False for bools (JSON true is not 1 here) and floats."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int, hint: str) -> int:
    """`value` as an int, or a ValueError naming `name`, the value and the valid range."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}; {hint}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    hint: str,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    maximum_included: bool = True,
) -> float:
    """`value` as a float in [minimum, maximum] (or [minimum, maximum)), else a ValueError."""
    closing = "]" if maximum_included else ")"
    valid = (
        f"a number in [{minimum:g}, {maximum:g}{closing}"
        if math.isfinite(maximum)
        else f"a number >= {minimum:g}"
    )
    valid_number = (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    )
    in_range = valid_number and minimum <= value and (
        value <= maximum if maximum_included else value < maximum
    )
    if not in_range:
        raise ValueError(f"{name}={value!r} must be {valid}; {hint}.")
    return float(value)


def check_probability(name: str, value: Any, hint: str) -> float:
    """A probability in [0, 1]."""
    return check_number(name, value, hint, minimum=0.0, maximum=1.0)


def check_bool(name: str, value: Any, hint: str) -> bool:
    """Only true/false: a string such as "no" would otherwise read as True."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be true or false; {hint}.")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of `choices` (strings), with the closest one suggested."""
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(value, choices, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{name}={value!r} is unknown{hint}; use one of {choices}.")


def check_seed(value: Any) -> int | None:
    """An env_config `seed`: None (fresh entropy) or an int >= 0, as numpy's generators take."""
    if value is None:
        return None
    return check_int("seed", value, 0, "or leave it out for fresh entropy")


__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_known_keys",
    "check_number",
    "check_probability",
    "check_seed",
    "is_int",
]
