"""Checks shared by the readers of stored results (the TOML baseline and the JSON report).

Each takes ``bad``, which turns a description of the problem into the reader's own error
type with the file and the fix, and raises what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Bad = Callable[[str], Exception]


def samples(value: object, bad: Bad) -> tuple[float, ...]:
    """A non-empty list of finite, non-negative numbers (kWh per 1,000 inferences)."""
    if not isinstance(value, list) or not value:
        raise bad("needs a non-empty list of samples")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise bad(f"has a sample that is not a number: {item!r}")
        try:
            number = float(item)
        except OverflowError:
            raise bad("has a sample too large for a float") from None
        if not math.isfinite(number) or number < 0:
            raise bad(f"has a sample that is negative, NaN or infinite: {item!r}")
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
