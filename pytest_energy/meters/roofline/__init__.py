"""The ``roofline`` meter: a zero-noise estimate of GPU energy from the torch operations a
test runs, for CI runners without an energy sensor.

torch is imported only when a :class:`RooflineMeter` (or a trace) is created. The pure model
(:func:`evaluate` of :class:`OpRecord` s with :class:`Coefficients`) needs no torch.
"""

from __future__ import annotations

from .counting import Trace, trace, tracing
from .meter import TARGET_ENV, RooflineMeter, target_from_environment
from .model import ENGINES, Breakdown, Coefficients, OpRecord, evaluate
from .profiles import DEFAULT_TARGET, Profile, load_profile, profile_names, targets_table

__all__ = [
    "DEFAULT_TARGET",
    "ENGINES",
    "TARGET_ENV",
    "Breakdown",
    "Coefficients",
    "OpRecord",
    "Profile",
    "RooflineMeter",
    "Trace",
    "evaluate",
    "load_profile",
    "profile_names",
    "target_from_environment",
    "targets_table",
    "trace",
    "tracing",
]
