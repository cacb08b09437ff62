"""Arithmetic with the edge cases defined: never NaN, never OverflowError."""

from __future__ import annotations

import math


def exp_saturating(x: float) -> float:
    """``exp`` that saturates to ``inf`` instead of raising OverflowError."""
    return math.inf if x > 709.0 else math.exp(x)


def log_nonnegative(x: float) -> float:
    """``log`` of a non-negative number: ``-inf`` at 0, ``inf`` at ``inf``."""
    if x <= 0:
        return -math.inf
    return math.inf if math.isinf(x) else math.log(x)


def positive_finite(x: float) -> bool:
    return x > 0 and math.isfinite(x)
