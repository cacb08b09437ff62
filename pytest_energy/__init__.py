"""pytest-energy: energy budgets for ML inference in CI.

Public names: the :class:`Meter` protocol for custom meters, the :class:`Measurement` and
:class:`Window` a test's ``energy.result`` returns, and the error types.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    BaselineError,
    ConfigError,
    CounterWentBackwards,
    EnergyError,
    MeasurementError,
    MeterError,
    MeterUnavailable,
)
from .measure import Measurement, Window
from .meters.base import Meter

__all__ = [
    "BaselineError",
    "ConfigError",
    "CounterWentBackwards",
    "EnergyError",
    "EnergyFixture",
    "Measurement",
    "MeasurementError",
    "Meter",
    "MeterError",
    "MeterUnavailable",
    "Window",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The fixture's class lives with the pytest hooks; importing it lazily keeps
    # ``import pytest_energy.stats`` (and friends) free of pytest.
    if name == "EnergyFixture":
        from .plugin import EnergyFixture

        return EnergyFixture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
