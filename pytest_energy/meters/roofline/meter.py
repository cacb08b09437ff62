"""The ``roofline`` meter: modelled GPU energy of the torch operations run inside windows."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from contextlib import AbstractContextManager

from . import counting, model
from .profiles import DEFAULT_TARGET, Profile, load_profile

NAME = "roofline"
#: The plugin sets this from ``--energy-target`` / ini ``energy_target``.
TARGET_ENV = "PYTEST_ENERGY_TARGET"


def target_from_environment() -> str:
    """The target named by ``PYTEST_ENERGY_TARGET``, or the default ``H100-SXM``."""
    return os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


class RooflineMeter:
    """Modelled energy of the torch operations a test runs, on a target GPU profile.

    ``read()`` returns ``{"roofline:<target>": joules}``, cumulative since the meter was
    created; only operations dispatched inside :meth:`observe` count. The figures depend
    only on the operations' shapes and dtypes, so the meter is ``deterministic``.
    """

    name: str = NAME
    estimated: bool = True
    deterministic: bool = True
    update_period_s: float = 0.0
    devices: tuple[str, ...] = ()

    def __init__(self, target: str | None = None) -> None:
        self.profile: Profile = load_profile(target or target_from_environment())
        torch = counting.import_torch()
        self._counter = counting.OpCounter(torch, self.profile)
        self._observe: Callable[[], AbstractContextManager[None]] = counting.observer(
            torch, self._counter
        )
        self.hardware: str = f"{self.profile.hardware} (roofline model)"
        self._domain = f"roofline:{self.profile.name}"
        peak_source = self.profile.sources.get("peak", "")
        source = peak_source.split(":")[0].strip() or self.profile.origin
        self.provenance: str = (
            f"modelled, not measured: torch operations counted with torch.utils.flop_counter "
            f"formulas and tensor sizes, {model.FORMULA}; target {self.profile.name} "
            f"({self.profile.hardware}; figures from {source})"
        )

    def observe(self) -> AbstractContextManager[None]:
        """Count the torch operations run in this context (the plugin enters it per window)."""
        return self._observe()

    def read(self) -> dict[str, float]:
        return {self._domain: model.joules(self._counter.tally.energy_units)}

    def counters(self) -> dict[str, float]:
        tally = self._counter.tally
        return {
            "flops": float(tally.flops),
            "bytes": float(tally.bytes),
            "kernels": float(tally.kernels),
        }

    def tally(self) -> counting.Tally:
        """A copy of the cumulative counts, with the matrix-product share of the FLOPs."""
        return dataclasses.replace(self._counter.tally)

    def close(self) -> None:
        """Nothing to release: the dispatch mode is only active inside observe()."""
