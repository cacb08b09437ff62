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
from .meters.base import Meter, counters, is_deterministic, observe, provenance, update_period_s
from .settings import PERIODS_PER_WINDOW
from .stats import median, round_sample

#: Timed calibration calls after the warm-up. The median of these sets the calls per window,
#: so one slow call (a CUDA context, lazy loading, autotuning) cannot shrink every window.
CALIBRATION_CALLS = 3
#: A window shorter than this share of the minimum window length counts as too short: the
#: next window gets more calls, and the test is warned if the last one is still too short.
SHORT_WINDOW_SHARE = 0.5

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
    counts: Mapping[str, float] = field(default_factory=dict)
    """Work the meter counted in the window (``flops``, ``bytes`` ...), when it counts any."""

    @property
    def kwh_per_1000(self) -> float:
        return round_sample(kwh_per_1000(self.energy_j, self.inferences))


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
        """kWh per 1,000 inferences, one per window, to :data:`SAMPLE_DIGITS` digits."""
        return tuple(w.kwh_per_1000 for w in self.windows)

    def _per_inference(self, counter: str) -> float | None:
        values = [w.counts[counter] / w.inferences for w in self.windows if counter in w.counts]
        return median(values) if values else None

    @property
    def flops_per_inference(self) -> float | None:
        """Median FLOPs per inference, when the meter counts them (roofline)."""
        return self._per_inference("flops")

    @property
    def bytes_per_inference(self) -> float | None:
        """Median bytes moved per inference, when the meter counts them (roofline)."""
        return self._per_inference("bytes")

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
    """Wait for the CUDA devices this process already uses, if torch has initialised CUDA.

    Never imports torch, and never touches a device without a CUDA context: synchronising
    one would create a context there (hundreds of MB, and energy on a device the test does
    not use). Without torch's per-device context query, only the current device is waited for.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = getattr(torch, "cuda", None)  # a stub module named torch has none
    if cuda is None or not cuda.is_available() or not cuda.is_initialized():
        return
    has_context = getattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext", None)
    if has_context is None:
        cuda.synchronize()
        return
    for index in range(cuda.device_count()):
        if has_context(index):
            cuda.synchronize(index)


def checked_reading(meter_name: str, reading: object) -> dict[str, float]:
    """A meter's ``read()`` result as plain floats, or a MeterError saying what is wrong.

    The one boundary where third-party values enter: numpy scalars become floats, and
    anything that is not a mapping of domain names to finite numbers is rejected.
    """
    if not isinstance(reading, Mapping):
        raise MeterError(
            f"meter {meter_name!r}: read() returned {type(reading).__name__} {reading!r:.80}; "
            "it must return a dict of cumulative joules per domain, e.g. {'gpu:0': 1234.5}"
        )
    if not reading:
        raise MeterError(f"meter {meter_name!r}: read() returned no domains")
    values: dict[str, float] = {}
    for domain, value in reading.items():
        if not isinstance(domain, str) or not domain:
            raise MeterError(
                f"meter {meter_name!r}: read() returned the domain name {domain!r}; "
                "domain names must be non-empty strings"
            )
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise MeterError(
                f"meter {meter_name!r}: read() returned {value!r:.80} for {domain!r}; "
                "readings must be finite numbers of joules"
            )
        values[domain] = number
    return values


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
        if not math.isfinite(delta[domain]):
            raise MeterError(
                f"meter {meter_name!r}: the {domain!r} reading overflowed in the window "
                f"({before!r} J to {after!r} J); the window was rejected"
            )
    return delta


@dataclass
class WindowPlan:
    """How ``Recorder.run`` repeats a callable."""

    rounds: int
    """Windows per call; with ``settled``, the fewest windows per call."""
    warmup: int
    min_time_s: float | None
    """``None``: derived from the meter's update period (see :func:`effective_min_time`)."""
    max_rounds: int | None = None
    """With ``settled``: the most windows per call."""
    settled: Callable[[Sequence[float]], bool] | None = None
    """Adaptive rounds: called with this call's samples after each window from ``rounds``
    on; ``True`` stops the call early because more windows cannot change the verdict."""


def effective_min_time(meter: Meter, configured_s: float | None) -> float:
    """The configured minimum window length, or one derived from the meter's update period."""
    if configured_s is not None:
        return configured_s
    return PERIODS_PER_WINDOW * update_period_s(meter)


class Recorder:
    """Collects the windows of one test attempt.

    ``sync`` runs before both reads of every window; ``guard`` wraps every window (the
    plugin passes a per-device lock); ``rng`` draws the random phase offset of up to one
    meter update period that separates consecutive windows; ``idle_power_w``, when given,
    is the idle power already measured, subtracted in the dynamic figures. ``clock`` and
    ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        meter: Meter,
        plan: WindowPlan,
        *,
        sync: Sync = cuda_sync,
        guard: Guard = nullcontext,
        rng: random.Random | None = None,
        idle_power_w: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.meter = meter
        self.plan = plan
        self.sync = sync
        self.guard = guard
        self.rng = rng or random.Random(0)
        self.idle_power_w = idle_power_w
        self.sleep = sleep
        self.clock = clock or _perf_counter
        self.windows: list[Window] = []
        self.short_windows = 0
        self._open = False
        self._closed = False
        # The meter's optional parts, looked up once rather than in every window.
        self._period_s = update_period_s(meter)
        self._deterministic = is_deterministic(meter)
        self._counts = callable(getattr(meter, "counters", None))
        self._observes = callable(getattr(meter, "observe", None))
        self._throttles = getattr(meter, "throttle_reasons", None) is not None

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

    def _read(self) -> dict[str, float]:
        return checked_reading(self.meter.name, self.meter.read())

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
        self._open = True
        try:
            asked = self.clock()
            with self.guard():
                waited_s = self.clock() - asked
                throttle_before = _throttle(self.meter) if self._throttles else ()
                do_sync()
                start = self._read()
                counts_before = counters(self.meter) if self._counts else {}
                start_unix = time.time()
                t0 = self.clock()
                if self._observes:
                    with observe(self.meter):
                        yield
                else:
                    yield
                do_sync()
                end = self._read()
                t1 = self.clock()
                counts_after = counters(self.meter) if self._counts else {}
                end_unix = time.time()
                throttle = (
                    tuple(sorted(set(throttle_before) | set(_throttle(self.meter))))
                    if self._throttles
                    else ()
                )
        finally:
            self._open = False
        domains = energy_delta(self.meter.name, start, end)
        energy_j = math.fsum(domains.values())
        if energy_j == 0 and self._deterministic:
            raise MeasurementError(
                f"energy meter {self.meter.name!r} counted no work in this window, so there is "
                "nothing to judge. A deterministic meter models only the work it can see "
                f"({provenance(self.meter)}); check that the inference inside the window runs "
                "code the meter observes (for roofline: torch operations)"
            )
        duration_s = t1 - t0
        if duration_s < self._period_s:
            self.short_windows += 1
        self.windows.append(
            Window(
                energy_j=energy_j,
                duration_s=duration_s,
                inferences=inferences,
                tokens=tokens,
                images=images,
                domains_j=domains,
                start_unix_s=start_unix,
                end_unix_s=end_unix,
                throttle=throttle,
                waited_s=waited_s,
                idle_j=(self.idle_power_w or 0.0) * duration_s,
                counts={k: counts_after[k] - counts_before.get(k, 0.0) for k in counts_after},
            )
        )

    def _phase_offset(self) -> None:
        period = self._period_s
        if period > 0:
            self.sleep(self.rng.uniform(0.0, period))

    # -- repeated calls -----------------------------------------------------------------
    def _calls_per_window(self, fn: Callable[[], Any], sync: Sync) -> tuple[int, Any]:
        """Run the warm-up, then time a few calls; return the calls that make a window last
        ``min_time_s``, and the last result.

        The warm-up calls are not timed: a first call that builds a CUDA context or loads
        weights lazily says nothing about the steady state. The median of up to
        :data:`CALIBRATION_CALLS` timed calls after it sets the count.
        """
        result: Any = None
        for _ in range(self.plan.warmup):
            sync()
            result = fn()
            sync()
        min_time_s = self._min_time_s()
        if min_time_s <= 0 or self.plan.warmup == 0:
            return 1, result
        times: list[float] = []
        while len(times) < CALIBRATION_CALLS and math.fsum(times) < min_time_s:
            sync()
            t0 = self.clock()
            result = fn()
            sync()
            times.append(self.clock() - t0)
        return max(1, math.ceil(min_time_s / max(median(times), 1e-9))), result

    def _min_time_s(self) -> float:
        return effective_min_time(self.meter, self.plan.min_time_s)

    def _recalibrated(self, calls: int) -> int:
        """More calls for the next window when the last one was much too short."""
        min_time_s = self._min_time_s()
        duration_s = self.windows[-1].duration_s if self.windows else 0.0
        if min_time_s <= 0 or duration_s >= SHORT_WINDOW_SHARE * min_time_s:
            return calls
        return max(calls + 1, math.ceil(calls * min_time_s / max(duration_s, 1e-9) - 1e-9))

    def _windows_wanted(self) -> tuple[int, int]:
        """(fewest, most) windows of one call."""
        plan = self.plan
        if plan.settled is None or plan.max_rounds is None:
            return plan.rounds, plan.rounds
        return plan.rounds, max(plan.rounds, plan.max_rounds)

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
        """Warm up, calibrate, then meter windows of ``fn(*args, **kwargs)``."""
        self._check_usable()
        self._check_count("inferences", inferences, required=True)
        self._check_count("tokens", tokens, required=False)
        self._check_count("images", images, required=False)
        do_sync = sync or self.sync

        def call() -> T:
            return fn(*args, **kwargs)

        calls, result = self._calls_per_window(call, do_sync)
        fewest, most = self._windows_wanted()
        first = len(self.windows)
        for round_index in range(most):
            if round_index:
                self._phase_offset()
                calls = self._recalibrated(calls)
            with self.window(
                inferences * calls,
                tokens * calls if tokens else None,
                images * calls if images else None,
                sync=do_sync,
            ):
                for _ in range(calls):
                    result = call()
            done = round_index + 1
            if self.plan.settled is not None and fewest <= done < most:
                samples = [w.kwh_per_1000 for w in self.windows[first:]]
                if self.plan.settled(samples):
                    break
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
        rounds: int | None = None,
    ) -> tuple[list[Window], list[Window]]:
        """Meter ``first`` (A) and ``second`` (B) in ABBA order: A B, B A, A B, ...

        Each round holds one window of each, adjacent in time, so that a drift of the
        machine's state cancels within a round. Returns the two lists of windows, aligned by
        round; they are not added to this test's own windows. ``rounds`` defaults to the
        plan's.
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
            for round_index in range(rounds or self.plan.rounds):
                order = (0, 1) if round_index % 2 == 0 else (1, 0)
                for position, side in enumerate(order):
                    if round_index or position:
                        self._phase_offset()
                    self.windows = collected[side]
                    fn = (first, second)[side]
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


def _perf_counter() -> float:
    return time.perf_counter()


def _throttle(meter: Meter) -> tuple[str, ...]:
    reasons = getattr(meter, "throttle_reasons", None)
    if reasons is None:
        return ()
    return tuple(reasons())
