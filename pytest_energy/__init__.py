"""pytest-energy: energy budgets for ML inference in CI.

Public names: the :class:`Meter` protocol for custom meters, the :class:`Measurement` and
:class:`Window` a test's ``energy.result`` returns, and the error types.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .fixture import EnergyFixture
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


_LAZY = {
    "EnergyFixture": "pytest_energy.fixture",
    "Measurement": "pytest_energy.measure",
    "Window": "pytest_energy.measure",
    "Meter": "pytest_energy.meters.base",
}


def __getattr__(name: str) -> object:
    # Imported on first use: pytest loads this package at start-up in every run, and the
    # fixture's class lives with the pytest hooks, which domain modules must not import.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
