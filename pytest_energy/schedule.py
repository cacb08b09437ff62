"""Repeated windows of one test attempt: warm-up, calibration, rounds and interleaving.

:class:`Recorder` composes :class:`~pytest_energy.measure.WindowMeter` windows. Every call
of ``run`` or ``interleave`` holds the device guard once, around its warm-up, calibration
and windows, so a neighbour process never meters them. No pytest here.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .counts import Counts
from .errors import MeasurementError
from .measure import Probe, Produced, Sync, WindowMeter, effective_min_time
from .record import GIVEN, INFERRED, Provenance, Record, Window, Work
from .stats import median

#: Timed calibration calls (after the warm-up, if any). The median of these sets the calls
#: per window, so one slow call (a CUDA context, lazy loading, autotuning) cannot shrink
#: every window.
CALIBRATION_CALLS = 3

T = TypeVar("T")
#: The work of one call: it receives the window's probe (a no-op one outside windows).
Body = Callable[[Probe], T]
#: ``pytest_energy.counts.infer``: (output, fn=, args=, kwargs=) -> Counts.
Infer = Callable[..., Counts]
#: What :meth:`Recorder._calls_per_window` returns as its result when no call ran.
NOTHING = object()
NESTED = (
    "energy.measure() windows cannot be nested: the inner window would be counted twice, "
    "and a call metered by energy(fn) or energy.compare() is already being measured; "
    "measure the blocks one after the other"
)


@dataclass(frozen=True)
class WindowPlan:
    """How :class:`Recorder` repeats a callable."""

    rounds: int
    """Windows per call; with ``settled``, the fewest."""
    warmup: int
    min_time_s: float | None
    """``None``: derived from the meter's update period (see ``effective_min_time``)."""
    max_rounds: int | None = None
    """With ``settled``: the most windows per call."""
    settled: Callable[[Sequence[float]], bool] | None = None
    """Adaptive rounds: called with this call's samples after each window from ``rounds``
    on; ``True`` stops the call early because more windows cannot change the verdict."""


class _NoProbe(Probe):
    """The probe of calls outside any window (warm-up, calibration): marks nothing."""

    def __init__(self) -> None:
        self.phases_j = {}
        self.outputs = []
        self.inspect = []
        self.window = None

    def mark(self, phase: str) -> None:
        pass

    def produced(
        self, output: object, fn: object = None, args: Any = None, kwargs: Any = None
    ) -> None:
        pass


def check_counts(given: Counts) -> None:
    """Each count given is a whole number of at least 1."""
    for name in ("inferences", "tokens", "images"):
        value = getattr(given, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise MeasurementError(f"{name} must be a whole number of at least 1, got {value!r}")


class Recorder:
    """The windows of one test attempt, and how they are scheduled.

    ``infer`` turns what a window's calls produced (each output with its callable and
    arguments) into :class:`Counts` (``pytest_energy.counts.infer``).
    ``rng`` draws the random phase offset of up to one meter update period between
    windows; ``sleep`` and the window meter's clock are injectable for tests.
    """

    def __init__(
        self,
        meter: WindowMeter,
        plan: WindowPlan,
        provenance: Provenance,
        *,
        infer: Infer | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.meter = meter
        self.plan = plan
        self.provenance = provenance
        self.infer = infer
        self.rng = rng or random.Random(0)
        self.sleep = sleep
        self.windows: list[Window] = []
        self.inferred = False
        self._running = False
        self._min_time_s = effective_min_time(meter.meter, plan.min_time_s)

    # -- counts -----------------------------------------------------------------------------
    def _work(self, given: Counts, calls: int, produced: Sequence[Produced]) -> Work:
        """The work of ``calls`` calls that each do ``given``, completed by what the calls
        ``produced`` (output, callable, args, kwargs) where ``given`` lacks a count: an
        explicit count always wins. Runs after the window, never inside it (reading a
        generate output copies it to the host)."""
        from .counts import resolve

        inferred = Counts()
        if not self._complete(given) and self.infer is not None:
            found = [
                self.infer(out, fn=fn, args=args, kwargs=kwargs)
                for out, fn, args, kwargs in produced
            ]
            if found:
                inferred = found[0]
                for more in found[1:]:
                    inferred = inferred + more

        def per_window(value: int | None) -> int | None:
            return None if value is None else value * calls

        resolved = resolve(
            inferred,
            inferences=per_window(given.inferences),
            tokens=per_window(given.tokens),
            images=per_window(given.images),
        )
        if "inferred" in resolved.origin.values():
            self.inferred = True
        return Work(resolved.inferences, resolved.tokens, resolved.images)

    @staticmethod
    def _complete(given: Counts) -> bool:
        return None not in (given.inferences, given.tokens, given.images)

    # -- one window -------------------------------------------------------------------------
    @contextmanager
    def window(
        self, given: Counts, *, sync: Sync | None = None, inspect: Sequence[object] = ()
    ) -> Iterator[Probe]:
        """Meter a block as one window doing ``given`` (what it does not count is inferred
        from what the block reports through ``probe.produced``); the window is added to this
        attempt's windows when the block ends."""
        check_counts(given)
        if self._running:
            raise MeasurementError(NESTED)

        def infer(probe: Probe) -> Work:
            return self._work(given, 1, probe.outputs)

        with self.meter.window(None, sync=sync, infer=infer) as probe:
            probe.inspect.extend(inspect)
            yield probe
        assert probe.window is not None
        self.windows.append(probe.window)

    def _phase_offset(self) -> None:
        period = self.meter.period_s
        if period > 0:
            self.sleep(self.rng.uniform(0.0, period))

    # -- repeated calls ----------------------------------------------------------------------
    def _calls_per_window(self, body: Body[Any], sync: Sync) -> tuple[int, Any]:
        """Run the warm-up, then time up to :data:`CALIBRATION_CALLS` calls (also without a
        warm-up); return the calls per window and the last result (:data:`NOTHING` if no
        call ran)."""
        probe = _NoProbe()
        result: Any = NOTHING
        for _ in range(self.plan.warmup):
            sync()
            result = body(probe)
            sync()
        if self._min_time_s <= 0:
            return 1, result
        times: list[float] = []
        clock = self.meter.clock
        while len(times) < CALIBRATION_CALLS and math.fsum(times) < self._min_time_s:
            sync()
            t0 = clock()
            result = body(probe)
            sync()
            times.append(clock() - t0)
        return max(1, math.ceil(self._min_time_s / max(median(times), 1e-9))), result

    def _metered(
        self,
        body: Body[Any],
        calls: int,
        given: Counts,
        sync: Sync,
        fn: object,
        args: Any,
        kwargs: Any,
    ) -> tuple[Window, int, Any]:
        """One window of at least ``calls`` calls that lasts at least the minimum window
        time: calls are added until it does. Returns the window, the calls made and the
        last result."""
        keep = not self._complete(given)
        outputs: list[Produced] = []
        result: Any = None
        done = 0
        clock = self.meter.clock

        def infer(probe: Probe) -> Work:
            return self._work(given, done, outputs)

        with self.meter.window(None, sync=sync, infer=infer) as probe:
            probe.inspect.extend((fn, args, kwargs))
            t0 = clock()
            while True:
                result = body(probe)
                done += 1
                if keep:
                    outputs.append((result, fn, args, kwargs))
                if done >= calls and clock() - t0 >= self._min_time_s:
                    break
            probe.inspect.append(result)
        assert probe.window is not None
        return probe.window, done, result

    def run(
        self,
        body: Body[T],
        given: Counts,
        *,
        sync: Sync | None = None,
        fn: object = None,
        args: Any = (),
        kwargs: Any = None,
    ) -> T:
        """Warm up, calibrate, then meter windows of ``body``; returns its last result.

        ``given`` counts what ONE call does; what it lacks is inferred from the outputs.
        ``fn``, ``args`` and ``kwargs`` are the user's callable and arguments, for count
        inference and the meta-device check.
        """
        self.meter.check_usable()
        check_counts(given)
        do_sync = sync or self.meter.sync
        fewest, most = self._windows_wanted()
        first = len(self.windows)
        result: Any = None
        with self.meter.held(), self._busy():
            calls, first_result = self._calls_per_window(body, do_sync)
            if first_result is not NOTHING and not self._complete(given):
                # a count that cannot be inferred stops the test before any window
                self._work(given, 1, [(first_result, fn, args, kwargs or {})])
            for round_index in range(most):
                if round_index:
                    self._phase_offset()
                window, done, result = self._metered(
                    body, calls, given, do_sync, fn, args, kwargs or {}
                )
                self.windows.append(window)
                calls = max(calls, done)
                count = round_index + 1
                if self.plan.settled is not None and fewest <= count < most:
                    samples = [w.kwh_per_1000 for w in self.windows[first:]]
                    if self.plan.settled(samples):
                        break
        return result  # type: ignore[no-any-return]

    def _windows_wanted(self) -> tuple[int, int]:
        """(fewest, most) windows of one call; ``max_rounds`` below ``rounds`` lowers both."""
        plan = self.plan
        if plan.settled is None or plan.max_rounds is None:
            return plan.rounds, plan.rounds
        return min(plan.rounds, plan.max_rounds), plan.max_rounds

    def interleave(
        self,
        first: Callable[[], Any],
        second: Callable[[], Any],
        given: Counts,
        *,
        rounds: int,
        sync: Sync | None = None,
    ) -> tuple[list[Window], list[Window]]:
        """Meter ``first`` (A) and ``second`` (B) in ABBA order: A B, B A, A B, ...

        Each round holds one window of each, adjacent in time, so that a drift of the
        machine's state cancels within a round. Returns the two lists of windows, aligned by
        round; they are not added to this attempt's own windows.
        """
        self.meter.check_usable()
        check_counts(given)
        do_sync = sync or self.meter.sync
        sides = (first, second)
        bodies = (_body(first), _body(second))
        collected: tuple[list[Window], list[Window]] = ([], [])
        with self.meter.held(), self._busy():
            calls = max(self._calls_per_window(body, do_sync)[0] for body in bodies)
            for round_index in range(rounds):
                order = (0, 1) if round_index % 2 == 0 else (1, 0)
                for position, side in enumerate(order):
                    if round_index or position:
                        self._phase_offset()
                    window, done, _ = self._metered(
                        bodies[side], calls, given, do_sync, sides[side], (), {}
                    )
                    calls = max(calls, done)
                    collected[side].append(window)
        return collected

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """A call is being metered: a window opened inside it is a nested window."""
        if self._running:
            raise MeasurementError(NESTED)
        self._running = True
        try:
            yield
        finally:
            self._running = False

    def close(self) -> None:
        self.meter.close()

    def record(self, nodeid: str, windows: Sequence[Window] | None = None) -> Record | None:
        chosen = self.windows if windows is None else windows
        if not chosen:
            return None
        return Record.of_windows(
            nodeid, self.provenance, chosen, counts=INFERRED if self.inferred else GIVEN
        )


def _body(fn: Callable[[], T]) -> Body[T]:
    """A zero-argument callable as the body of a call (it ignores the probe)."""

    def body(probe: Probe) -> T:
        return fn()

    return body
