"""pytest-energy: energy budgets for ML inference in CI.

Public names: the :class:`Meter` protocol for custom meters, the :class:`Record` a test's
``energy.result`` returns (with its :class:`Window` list), and the error types.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.3.0"

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
    from .meters.base import Meter
    from .record import Record, Window

__all__ = [
    "BaselineError",
    "ConfigError",
    "CounterWentBackwards",
    "EnergyError",
    "EnergyFixture",
    "MeasurementError",
    "Meter",
    "MeterError",
    "MeterUnavailable",
    "Record",
    "Window",
    "__version__",
]


_LAZY = {
    "EnergyFixture": "pytest_energy.fixture",
    "Record": "pytest_energy.record",
    "Window": "pytest_energy.record",
    "Meter": "pytest_energy.meters.base",
}


def __getattr__(name: str) -> object:
    # Imported on first use: pytest loads this package at start-up in every run, and the
    # fixture's class lives with the pytest hooks, which domain modules must not import.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
