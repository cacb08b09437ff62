"""The ``roofline`` meter: a zero-noise estimate of GPU energy from the torch operations a
test runs, for CI runners without an energy sensor.

torch is imported only when a :class:`RooflineMeter` is created.
"""

from __future__ import annotations

from .meter import TARGET_ENV, RooflineMeter, target_from_environment
from .profiles import DEFAULT_TARGET, Profile, load_profile, profile_names, targets_table

__all__ = [
    "DEFAULT_TARGET",
    "TARGET_ENV",
    "Profile",
    "RooflineMeter",
    "load_profile",
    "profile_names",
    "target_from_environment",
    "targets_table",
]
