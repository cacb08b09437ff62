"""Checks shared by the readers of stored results (the TOML baseline and the JSON report).

Each takes ``bad``, which turns a description of the problem into the reader's own error
type with the file and the fix, and raises what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Bad = Callable[[str], Exception]


def energy(value: object) -> float | None:
    """``value`` as a float when it is a finite, non-negative number, else ``None``.

    Integers too large for a float (TOML and JSON allow them) count as not finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def samples(value: object, bad: Bad) -> tuple[float, ...]:
    """A non-empty list of finite, non-negative numbers (kWh per 1,000 inferences)."""
    if not isinstance(value, list) or not value:
        raise bad("needs a non-empty list of samples")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise bad(f"has a sample that is not a number: {item!r}")
        number = energy(item)
        if number is None:
            shown = "too large for a float" if isinstance(item, int) else repr(item)
            raise bad(f"has a sample that is negative, NaN or infinite: {shown}")
        numbers.append(number)
    return tuple(numbers)


def count(name: str, value: object, bad: Bad, *, optional: bool = False) -> int | None:
    """A whole number >= 0; ``None`` is accepted when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        expected = "a whole number >= 0" + (" or nothing" if optional else "")
        raise bad(f"has {name} = {value!r}; expected {expected}")
    return value
