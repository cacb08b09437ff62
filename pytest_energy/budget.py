"""``@pytest.mark.energy_budget(kwh=..., inferences=1, tolerance=None)``, validated.

Parsed once per test at collection time into a frozen :class:`EnergyBudget`; every bad
argument raises :class:`~pytest_energy.errors.ConfigError` with the accepted forms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .settings import parse_percent


@dataclass(frozen=True)
class EnergyBudget:
    """The most a test may cost, and the tolerance for its regression check."""

    kwh: float
    """Maximum kWh per 1,000 inferences (the median over windows is judged)."""
    inferences: int = 1
    """Inferences performed by the test's call phase when it is metered as one window."""
    tolerance_pct: float | None = None
    """Overrides the session's regression tolerance for this test."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


def energy_budget(kwh: object, *, inferences: object = 1, tolerance: object = None) -> EnergyBudget:
    """Limit a test's energy to ``kwh`` kWh per 1,000 inferences.

    Without the ``energy`` fixture the test's call phase is metered as one window of
    ``inferences`` inferences; with it, the fixture's windows are judged. ``tolerance`` (a
    number of percent, or a string such as ``"5%"``) overrides --energy-tolerance here.
    """
    kwh_value = _number("kwh", kwh)
    if kwh_value <= 0:
        raise ConfigError(f"kwh must be positive, got {kwh!r}")
    if isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1:
        raise ConfigError(f"inferences must be a whole number of at least 1, got {inferences!r}")
    tolerance_pct = None
    if tolerance is not None:
        text = tolerance if isinstance(tolerance, str) else str(_number("tolerance", tolerance))
        try:
            tolerance_pct = parse_percent(text)
        except ConfigError as exc:
            raise ConfigError(f"tolerance: {exc}") from None
    return EnergyBudget(kwh=kwh_value, inferences=inferences, tolerance_pct=tolerance_pct)


def from_marker(args: Sequence[object], kwargs: Mapping[str, object]) -> EnergyBudget:
    """Validate a marker's arguments, accepting ``kwh`` positionally or by name."""
    if len(args) > 1:
        raise ConfigError(f"takes at most one positional argument (kwh), got {len(args)}")
    allowed = {"kwh", "inferences", "tolerance"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown argument(s) {', '.join(unknown)}; accepted: kwh, inferences, tolerance"
        )
    values = dict(kwargs)
    if args:
        if "kwh" in values:
            raise ConfigError("kwh given both positionally and by name")
        values["kwh"] = args[0]
    if values.get("kwh") is None:
        raise ConfigError("kwh is required, e.g. energy_budget(kwh=0.05)")
    return energy_budget(**values)
