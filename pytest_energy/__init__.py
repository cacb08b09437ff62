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
    "Measurement",
    "MeasurementError",
    "Meter",
    "MeterError",
    "MeterUnavailable",
    "Window",
    "__version__",
]
