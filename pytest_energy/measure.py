"""Windows, warm-up, calibration and device synchronisation.

A *window* is the span between two meter reads. The energy of a window is the sum over
domains of the difference of the two reads. :class:`Recorder` is what the ``energy``
fixture drives for one test; it knows nothing of pytest.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import CounterWentBackwards, MeasurementError, MeterError
from .meters.base import Meter, provenance, update_period_s
from .settings import PERIODS_PER_WINDOW
from .stats import median

J_PER_KWH = 3.6e6
T = TypeVar("T")
Sync = Callable[[], None]
#: Context manager factory wrapped around every window, e.g. a per-device lock.
#: It yields nothing; the recorder times how long entering it took.
Guard = Callable[[], AbstractContextManager[object]]


def kwh_per_1000(energy_j: float, inferences: int) -> float:
    """Joules for ``inferences`` inferences to kWh per 1,000 inferences."""
    return energy_j / inferences * 1000.0 / J_PER_KWH


@dataclass(frozen=True)
class Window:
    """One metered span of work."""

    energy_j: float
    duration_s: float
    inferences: int
    tokens: int | None = None
    images: int | None = None
    domains_j: Mapping[str, float] = field(default_factory=dict)
    start_unix_s: float = 0.0
    """Wall-clock start (``time.time()``), comparable across processes."""
    end_unix_s: float = 0.0
    throttle: tuple[str, ...] = ()
    """Throttle reasons the meter saw during the window (thermal, power cap ...)."""
    waited_s: float = 0.0
    """Time spent waiting for the window's guard (the per-device lock) before it started."""
    idle_j: float = 0.0
    """Idle energy over the window's duration, when --energy-subtract-idle measured it."""

    @property
    def kwh_per_1000(self) -> float:
        return kwh_per_1000(self.energy_j, self.inferences)


@dataclass(frozen=True)
class Measurement:
    """All windows of one test, with the provenance of the figures.

    ``kwh_per_1000`` and ``joules_per_inference`` are medians over windows, so one
    disturbed window does not move the figure.
    """

    windows: tuple[Window, ...]
    meter: str
    hardware: str
    estimated: bool
    provenance: str = ""

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("a Measurement needs at least one window")

    @property
    def samples(self) -> tuple[float, ...]:
        """kWh per 1,000 inferences, one per window."""
        return tuple(w.kwh_per_1000 for w in self.windows)

    @property
    def kwh_per_1000(self) -> float:
        return median(self.samples)

    @property
    def joules_per_inference(self) -> float:
        return median(w.energy_j / w.inferences for w in self.windows)

    @property
    def joules_per_token(self) -> float | None:
        values = [w.energy_j / w.tokens for w in self.windows if w.tokens]
        return median(values) if values else None

    @property
    def joules_per_image(self) -> float | None:
        values = [w.energy_j / w.images for w in self.windows if w.images]
        return median(values) if values else None

    @property
    def energy_j(self) -> float:
        return math.fsum(w.energy_j for w in self.windows)

    @property
    def duration_s(self) -> float:
        return math.fsum(w.duration_s for w in self.windows)

    @property
    def inferences(self) -> int:
        return sum(w.inferences for w in self.windows)

    @property
    def tokens(self) -> int | None:
        if all(w.tokens is None for w in self.windows):
            return None
        return sum(w.tokens or 0 for w in self.windows)

    @property
    def images(self) -> int | None:
        if all(w.images is None for w in self.windows):
            return None
        return sum(w.images or 0 for w in self.windows)

    @property
    def domains_j(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for window in self.windows:
            for domain, joules in window.domains_j.items():
                totals[domain] = totals.get(domain, 0.0) + joules
        return dict(sorted(totals.items()))

    @property
    def throttled_windows(self) -> int:
        return sum(1 for w in self.windows if w.throttle)

    @property
    def waited_s(self) -> float:
        return math.fsum(w.waited_s for w in self.windows)

    @property
    def dynamic_kwh_per_1000(self) -> float | None:
        """Median kWh/1000 with idle energy removed, when idle was measured."""
        if not any(w.idle_j for w in self.windows):
            return None
        return median(
            kwh_per_1000(max(w.energy_j - w.idle_j, 0.0), w.inferences) for w in self.windows
        )


def cuda_sync() -> None:
    """Wait for every visible CUDA device, if torch is loaded and CUDA is initialised.

    Never imports torch: a test that does not use it pays nothing.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = torch.cuda
    if not cuda.is_available() or not cuda.is_initialized():
        return
    for index in range(cuda.device_count()):
        cuda.synchronize(index)


def energy_delta(
    meter_name: str, start: Mapping[str, float], end: Mapping[str, float]
) -> dict[str, float]:
    """Per-domain joules between two reads; rejects missing domains and backwards counters."""
    if set(start) != set(end):
        raise MeterError(
            f"meter {meter_name!r} reported domains {sorted(start)} at the start of the window "
            f"and {sorted(end)} at its end; a device appeared or disappeared mid-window"
        )
    delta: dict[str, float] = {}
    for domain, before in start.items():
        after = end[domain]
        if not (math.isfinite(before) and math.isfinite(after)):
            raise MeterError(
                f"meter {meter_name!r} returned a non-finite reading for {domain!r} "
                f"({before!r} then {after!r})"
            )
        if after < before:
            raise CounterWentBackwards(
                f"meter {meter_name!r}: the {domain!r} counter went backwards from {before:.6g} J "
                f"to {after:.6g} J during the window (driver reload or an unhandled wraparound); "
                "the window was rejected rather than reporting a negative or huge value"
            )
        delta[domain] = after - before
    return delta


@dataclass
class WindowPlan:
    """How ``Recorder.run`` repeats a callable."""

    rounds: int
    warmup: int
    min_time_s: float | None
    """``None``: derived from the meter's update period (see :func:`effective_min_time`)."""


def effective_min_time(meter: Meter, configured_s: float | None) -> float:
    """The configured minimum window length, or one derived from the meter's update period."""
    if configured_s is not None:
        return configured_s
    return PERIODS_PER_WINDOW * update_period_s(meter)


class Recorder:
    """Collects the windows of one test.

    ``sync`` runs before both reads of every window; ``guard`` wraps every window (the
    plugin passes a per-device lock); ``rng`` draws the random phase offset of up to one
    meter update period that separates consecutive windows; ``idle_power_w``, when given,
    measures idle power (it is called before every window and should cache its result).
    """

    def __init__(
        self,
        meter: Meter,
        plan: WindowPlan,
        *,
        sync: Sync = cuda_sync,
        guard: Guard = nullcontext,
        rng: random.Random | None = None,
        idle_power_w: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.meter = meter
        self.plan = plan
        self.sync = sync
        self.guard = guard
        self.rng = rng or random.Random(0)
        self.idle_power_w = idle_power_w
        self.sleep = sleep
        self.windows: list[Window] = []
        self.short_windows = 0
        self._open = False
        self._closed = False

    # -- one window ---------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise MeasurementError(
                "the energy fixture was used after its test finished; measure inside the test "
                "function, not in a finalizer or a later test"
            )
        if self._open:
            raise MeasurementError(
                "energy.measure() windows cannot be nested: the inner window would be counted "
                "twice; close the outer block first or measure the blocks one after the other"
            )

    @staticmethod
    def _check_count(name: str, value: object, *, required: bool) -> int | None:
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MeasurementError(f"{name} must be a whole number of at least 1, got {value!r}")
        return value

    @contextmanager
    def window(
        self,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        *,
        sync: Sync | None = None,
    ) -> Iterator[None]:
        """Meter the enclosed block as one window of ``inferences`` inferences."""
        self._check_usable()
        inferences = self._check_count("inferences", inferences, required=True)  # type: ignore[assignment]
        tokens = self._check_count("tokens", tokens, required=False)
        images = self._check_count("images", images, required=False)
        do_sync = sync or self.sync
        idle_w = self.idle_power_w() if self.idle_power_w is not None else 0.0
        self._open = True
        try:
            asked = time.perf_counter()
            with self.guard():
                waited_s = time.perf_counter() - asked
                throttle_before = _throttle(self.meter)
                do_sync()
                start = self.meter.read()
                start_unix = time.time()
                t0 = time.perf_counter()
                yield
                do_sync()
                end = self.meter.read()
                t1 = time.perf_counter()
                end_unix = time.time()
                throttle = tuple(sorted(set(throttle_before) | set(_throttle(self.meter))))
        finally:
            self._open = False
        domains = energy_delta(self.meter.name, start, end)
        duration_s = t1 - t0
        if duration_s < update_period_s(self.meter):
            self.short_windows += 1
        self.windows.append(
            Window(
                energy_j=math.fsum(domains.values()),
                duration_s=duration_s,
                inferences=inferences,
                tokens=tokens,
                images=images,
                domains_j=domains,
                start_unix_s=start_unix,
                end_unix_s=end_unix,
                throttle=throttle,
                waited_s=waited_s,
                idle_j=idle_w * duration_s,
            )
        )

    def _phase_offset(self) -> None:
        period = update_period_s(self.meter)
        if period > 0:
            self.sleep(self.rng.uniform(0.0, period))

    # -- repeated calls -----------------------------------------------------------------
    def _calls_per_window(self, fn: Callable[[], Any], sync: Sync) -> tuple[int, Any]:
        """Run the warm-up and return how many calls make one window last ``min_time_s``."""
        result: Any = None
        call_s = 0.0
        for _ in range(self.plan.warmup):
            sync()
            t0 = time.perf_counter()
            result = fn()
            sync()
            call_s = time.perf_counter() - t0
        min_time_s = effective_min_time(self.meter, self.plan.min_time_s)
        if min_time_s <= 0 or self.plan.warmup == 0:
            return 1, result
        return max(1, math.ceil(min_time_s / max(call_s, 1e-9))), result

    def run(
        self,
        fn: Callable[..., T],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> T:
        """Warm up, calibrate, then meter ``rounds`` windows of ``fn(*args, **kwargs)``."""
        self._check_usable()
        self._check_count("inferences", inferences, required=True)
        do_sync = sync or self.sync

        def call() -> T:
            return fn(*args, **kwargs)

        calls, result = self._calls_per_window(call, do_sync)
        for round_index in range(self.plan.rounds):
            if round_index:
                self._phase_offset()
            with self.window(
                inferences * calls,
                tokens * calls if tokens else None,
                images * calls if images else None,
                sync=do_sync,
            ):
                for _ in range(calls):
                    result = call()
        return result  # type: ignore[no-any-return]

    def interleave(
        self,
        first: Callable[[], Any],
        second: Callable[[], Any],
        *,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> tuple[list[Window], list[Window]]:
        """Meter ``first`` and ``second`` alternately (A B A B ...), ``rounds`` windows each.

        Returns the two lists of windows; they are not added to this test's own windows.
        """
        self._check_usable()
        self._check_count("inferences", inferences, required=True)
        do_sync = sync or self.sync
        calls_a, _ = self._calls_per_window(first, do_sync)
        calls_b, _ = self._calls_per_window(second, do_sync)
        calls = max(calls_a, calls_b)
        saved = self.windows
        collected: tuple[list[Window], list[Window]] = ([], [])
        try:
            for round_index in range(self.plan.rounds):
                for side, fn in enumerate((first, second)):
                    if round_index or side:
                        self._phase_offset()
                    self.windows = collected[side]
                    with self.window(
                        inferences * calls,
                        tokens * calls if tokens else None,
                        images * calls if images else None,
                        sync=do_sync,
                    ):
                        for _ in range(calls):
                            fn()
        finally:
            self.windows = saved
        return collected

    def close(self) -> None:
        self._closed = True

    def measurement(self, windows: Sequence[Window] | None = None) -> Measurement | None:
        chosen = self.windows if windows is None else windows
        if not chosen:
            return None
        return Measurement(
            windows=tuple(chosen),
            meter=self.meter.name,
            hardware=self.meter.hardware,
            estimated=self.meter.estimated,
            provenance=provenance(self.meter),
        )


def _throttle(meter: Meter) -> tuple[str, ...]:
    reasons = getattr(meter, "throttle_reasons", None)
    if reasons is None:
        return ()
    return tuple(reasons())
