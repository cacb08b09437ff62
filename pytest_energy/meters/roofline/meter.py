"""The ``roofline`` meter: modelled GPU energy of the torch operations run inside windows."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from . import counting, model
from .costs import Cost, OpCounter
from .model import ENERGY_CLASSES, OpRecord
from .profiles import DEFAULT_TARGET, Profile, load_profile

NAME = "roofline"
#: The plugin sets this from ``--energy-target`` / ini ``energy_target``.
TARGET_ENV = "PYTEST_ENERGY_TARGET"


def target_from_environment() -> str:
    """The target named by ``PYTEST_ENERGY_TARGET``, or the default ``H100-SXM``."""
    return os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


@dataclass(frozen=True)
class Tally:
    """Cumulative counts and modelled energy; integers, so sums are exact and order-free."""

    flops: int
    bytes: int
    kernels: int
    """Costed operations (what eager PyTorch launches); collectives excluded."""
    matmul_flops: int
    """The part of ``flops`` in matrix products, convolutions and attention."""
    energy_units: tuple[int, int, int, int, int]
    """Modelled energy in quanta by :data:`~.model.ENERGY_CLASSES`."""
    time_ps: int
    """Modelled time on one board, in whole picoseconds."""
    target_kernels: int
    """Kernels the target launches under the engine, summed over the boards."""


class RooflineMeter:
    """Modelled energy of the torch operations a test runs, on a target GPU profile.

    ``read()`` returns ``{"roofline:<target>": joules}``, cumulative since the meter was
    created; only operations dispatched inside :meth:`observe` count. The figures depend
    only on the operations' shapes and dtypes, so the meter is ``deterministic``.

    ``engine`` is how the model is served (``"eager"`` or ``"compiled"``, see model.py) and
    ``tensor_parallel`` the number of boards it is split over; both are part of
    :attr:`hardware`, so baselines of different set-ups never mix.
    """

    name: str = NAME
    estimated: bool = True
    deterministic: bool = True
    update_period_s: float = 0.0
    devices: tuple[str, ...] = ()

    def __init__(
        self, target: str | None = None, *, tensor_parallel: int = 1, engine: str = "eager"
    ) -> None:
        self.engine: str = model.check_engine(engine)
        self.tensor_parallel: int = model.check_tensor_parallel(tensor_parallel)
        self.profile: Profile = load_profile(target or target_from_environment())
        if self.tensor_parallel > 1:
            model.interconnect_b_s(self.profile)
        self.target: str = self.profile.name
        torch = counting.import_torch()
        self._price = functools.partial(
            model.price_record,
            self.profile,
            self.profile.coefficients,
            engine=self.engine,
            tensor_parallel=self.tensor_parallel,
        )
        self._counter = OpCounter(torch, self._price)
        self._observe: Callable[[], AbstractContextManager[None]] = counting.observer(
            torch, self._counter
        )
        boards = f"{self.tensor_parallel}x " if self.tensor_parallel > 1 else ""
        self.hardware: str = f"{boards}{self.profile.hardware} ({model.MODEL_VERSION}, {engine})"
        self._domain = f"roofline:{self.profile.name}"
        self.provenance: str = _provenance(self.profile, self.engine, self.tensor_parallel)
        self._folded: dict[Cost, int] = {}
        self._totals = [0] * 11

    def observe(self) -> AbstractContextManager[None]:
        """Count the torch operations run in this context (the plugin enters it per window)."""
        return self._observe()

    @contextmanager
    def recording(self) -> Iterator[list[Cost]]:
        """Inside :meth:`observe`: also list each counted operation's cost, in order."""
        saved, self._counter.capture = self._counter.capture, []
        try:
            yield self._counter.capture
        finally:
            self._counter.capture = saved

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Inside :meth:`observe`: the operations run here are not counted (set-up)."""
        saved, self._counter.suspended = self._counter.suspended, True
        try:
            yield
        finally:
            self._counter.suspended = saved

    def cost_of(self, record: OpRecord) -> Cost:
        """A priced cost for ``record``, to :meth:`add` operations that were not dispatched."""
        return self._counter.make(record)

    def add(self, counted: Iterable[tuple[Cost, int]]) -> None:
        """Count ``calls`` more of each cost, as if they had run inside a window."""
        counts = self._counter.counts
        for cost, calls in counted:
            counts[cost] = counts.get(cost, 0) + calls

    def _fold(self) -> list[int]:
        """The running totals, folding in what was counted since the last reading."""
        counts, folded, totals = self._counter.counts, self._folded, self._totals
        for cost, calls in counts.items():
            new = calls - folded.get(cost, 0)
            if not new:
                continue
            folded[cost] = calls
            record, price = cost.record, cost.price
            assert price is not None
            if cost.kernel:
                totals[0] += record.flops * new
                totals[1] += record.bytes * new
                totals[2] += new
                if record.op_class in ("matmul", "attention"):
                    totals[3] += record.flops * new
            for index, units in enumerate(price.units):
                totals[4 + index] += units * new
            totals[9] += price.time_ps * new
            totals[10] += price.kernels * new
        return totals

    def read(self) -> dict[str, float]:
        return {self._domain: model.joules(sum(self._fold()[4:9]))}

    def counters(self) -> dict[str, float]:
        """Cumulative ``flops``, ``bytes``, ``kernels`` and the modelled energy by class,
        ``energy_j:<class>``, whose sum is ``read()``'s total exactly."""
        totals = self._fold()
        figures = {
            "flops": float(totals[0]),
            "bytes": float(totals[1]),
            "kernels": float(totals[2]),
        }
        for index, energy_class in enumerate(ENERGY_CLASSES):
            figures[f"energy_j:{energy_class}"] = model.joules(totals[4 + index])
        return figures

    def tally(self) -> Tally:
        """The cumulative counts, with the matrix-product share and the modelled time."""
        t = self._fold()
        units = (t[4], t[5], t[6], t[7], t[8])
        return Tally(t[0], t[1], t[2], t[3], units, t[9], t[10])

    def trace(self) -> counting.Trace:
        """Every operation counted so far, as records for ``model.evaluate``."""
        return counting.aggregate(self._counter.counts.items())

    def close(self) -> None:
        """Nothing to release: the dispatch mode is only active inside observe()."""


def _provenance(profile: Profile, engine: str, boards: int) -> str:
    peak_source = profile.sources.get("peak", "")
    source = peak_source.split(":")[0].strip() or profile.origin
    validated = (
        profile.validation.sentence() if profile.validation is not None else "not yet validated"
    )
    parallel = f", tensor parallel over {boards} boards" if boards > 1 else ""
    return (
        f"modelled, not measured: GPU-board energy (what NVML reads) of the torch operations "
        f"counted, {model.MODEL_VERSION} ({model.FORMULA}); engine {engine}{parallel}; "
        f"target {profile.name} ({profile.hardware}; figures from {source}); {validated}"
    )


__all__ = ["NAME", "TARGET_ENV", "RooflineMeter", "Tally", "target_from_environment"]
