"""Exception types raised by pytest-energy's domain modules.

The domain modules never import pytest. ``plugin.py`` turns these exceptions into
``pytest.UsageError`` (bad configuration), a failed or errored test (a sensor that breaks
mid-test), or a warning, as fits the place where they surface.
"""

from __future__ import annotations


class EnergyError(Exception):
    """Base class of every error pytest-energy raises on purpose."""


class ConfigError(EnergyError, ValueError):
    """A setting, marker argument or option value is invalid; the message says how to fix it."""


class MeterUnavailable(EnergyError):
    """A meter cannot run on this machine (no driver, no permission, no such device).

    ``reason`` says what is missing and ``fix`` what the user can do about it; both end up in
    the one-paragraph error shown to the user.
    """

    def __init__(self, meter: str, reason: str, fix: str = "") -> None:
        self.meter = meter
        self.reason = reason
        self.fix = fix
        text = f"energy meter {meter!r} is unavailable: {reason}"
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)


class MeterError(EnergyError):
    """A meter that was working failed while reading (sensor error, lost device)."""


class CounterWentBackwards(MeterError):
    """An energy counter read lower at the end of a window than at its start."""


class BaselineError(EnergyError):
    """The baseline file cannot be read or written; the message names the file and the fix."""


class MeasurementError(EnergyError):
    """The energy fixture was used in a way that cannot produce a valid measurement."""


class GateFailure(EnergyError):
    """An energy check inside a test failed (``energy.compare`` found the candidate costlier).

    Shown as the test's failure text, without a traceback.
    """
