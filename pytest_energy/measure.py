"""One window: the span between two meter reads, and the checks at the reading boundary.

:class:`WindowMeter` meters one block of work as a :class:`~pytest_energy.record.Window`:
it waits for the devices (``sync``), reads the meter, lets the work run (inside the
meter's ``observe()`` when it has one), reads again and checks what it read. Repeating
windows, warm-up and calibration are ``schedule.py``'s. No pytest here.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from . import metacheck
from .errors import CounterWentBackwards, MeasurementError, MeterError
from .meters.base import Meter, counters, is_deterministic, observe, provenance, update_period_s
from .record import Provenance, Window, Work
from .settings import PERIODS_PER_WINDOW

Sync = Callable[[], None]
#: What a block produced, for count inference: (output, callable, args, kwargs); ``None``
#: arguments mean the call is not known.
Produced = tuple[object, object, Any, Any]
#: Context manager factory held around windows, e.g. a per-device lock. It yields nothing.
Guard = Callable[[], AbstractContextManager[object]]


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
            number = math.nan if isinstance(value, (str, bytes)) else float(value)
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


def effective_min_time(meter: Meter, configured_s: float | None) -> float:
    """The configured minimum window length, or one derived from the meter's update period;
    0 for a deterministic meter, whose figures do not depend on time."""
    if is_deterministic(meter):
        return 0.0
    if configured_s is not None:
        return configured_s
    return PERIODS_PER_WINDOW * update_period_s(meter)


def provenance_of(meter: Meter) -> Provenance:
    """The provenance a meter's records carry."""
    engine = getattr(meter, "engine", None)
    target = getattr(meter, "target", None)
    return Provenance(
        meter=meter.name,
        hardware=meter.hardware,
        estimated=meter.estimated,
        deterministic=is_deterministic(meter),
        engine=engine if isinstance(engine, str) else None,
        target=target if isinstance(target, str) else None,
        description=provenance(meter),
    )


class Probe:
    """What the code inside one window can tell the window.

    ``mark(phase)`` reads the meter and attributes the energy since the window's start (or
    the last mark) to ``phase``; ``produced(output)`` hands over what the block produced, so
    that its counts can be inferred and its tensors checked; ``window`` is the finished
    :class:`Window` once the block has ended.
    """

    def __init__(self, owner: WindowMeter, sync: Sync) -> None:
        self._owner = owner
        self._sync = sync
        self._last: dict[str, float] | None = None
        self.phases_j: dict[str, float] = {}
        self.outputs: list[Produced] = []
        self.inspect: list[object] = []
        """Objects to check for meta tensors when the window ends (the callable, its
        arguments, the caller's locals)."""
        self.window: Window | None = None

    def mark(self, phase: str) -> None:
        if self._last is None:
            raise MeasurementError("Probe.mark() can only be called inside a window")
        self._sync()
        now = self._owner.read()
        joules = math.fsum(energy_delta(self._owner.meter.name, self._last, now).values())
        self.phases_j[phase] = self.phases_j.get(phase, 0.0) + joules
        self._last = now

    def produced(
        self, output: object, fn: object = None, args: Any = None, kwargs: Any = None
    ) -> None:
        self.outputs.append((output, fn, args, kwargs))


class WindowMeter:
    """Meters windows of one test attempt on one meter.

    ``guard`` (a per-device lock) is held around each window, or once around a whole call's
    warm-up, calibration and windows (:meth:`held`); ``idle_power_w``, when given, is the
    idle power already measured, kept with each window for the dynamic figures. ``clock``
    is injectable for tests.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        sync: Sync = cuda_sync,
        guard: Guard = nullcontext,
        idle_power_w: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.meter = meter
        self.sync = sync
        self.guard = guard
        self.idle_power_w = idle_power_w
        self.clock = clock or time.perf_counter
        self.short_windows = 0
        self._depth = 0
        self._waited_s = 0.0
        self._open = False
        self._closed = False
        # The meter's optional parts, looked up once rather than in every window.
        self.period_s = update_period_s(meter)
        self.deterministic = is_deterministic(meter)
        self._counts = callable(getattr(meter, "counters", None))
        self._observes = callable(getattr(meter, "observe", None))
        self._throttles = getattr(meter, "throttle_reasons", None) is not None

    # -- the guard ------------------------------------------------------------------------
    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the guard (once, however deeply nested); the wait counts for the next window."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        asked = self.clock()
        with self.guard():
            self._waited_s += self.clock() - asked
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    # -- checks ---------------------------------------------------------------------------
    def check_usable(self) -> None:
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

    def close(self) -> None:
        self._closed = True

    def read(self) -> dict[str, float]:
        return checked_reading(self.meter.name, self.meter.read())

    # -- one window -------------------------------------------------------------------------
    @contextmanager
    def window(
        self,
        work: Work | None,
        *,
        sync: Sync | None = None,
        infer: Callable[[Probe], Work] | None = None,
    ) -> Iterator[Probe]:
        """Meter the enclosed block as one window doing ``work``.

        With ``work`` None, ``infer`` turns what the block reported through the probe into
        the window's work when the block ends. The finished window is ``probe.window``.
        """
        self.check_usable()
        do_sync = sync or self.sync
        probe = Probe(self, do_sync)
        self._open = True
        try:
            with self.held():
                throttle_before = _throttle(self.meter) if self._throttles else ()
                do_sync()
                start = self.read()
                probe._last = start
                counts_before = counters(self.meter) if self._counts else {}
                start_unix = time.time()
                t0 = self.clock()
                with observe(self.meter) if self._observes else nullcontext():
                    yield probe
                do_sync()
                end = self.read()
                t1 = self.clock()
                counts_after = counters(self.meter) if self._counts else {}
                end_unix = time.time()
                throttle = (
                    tuple(sorted(set(throttle_before) | set(_throttle(self.meter))))
                    if self._throttles
                    else ()
                )
                waited_s, self._waited_s = self._waited_s, 0.0
        finally:
            self._open = False
        if probe.phases_j and probe._last is not end:
            tail = math.fsum(energy_delta(self.meter.name, probe._last or start, end).values())
            if tail:
                last = next(reversed(probe.phases_j))
                probe.phases_j[last] += tail
        domains = energy_delta(self.meter.name, start, end)
        energy_j = math.fsum(domains.values())
        duration_s = t1 - t0
        self._check_energy(energy_j, duration_s, probe)
        if work is None:
            if infer is None:
                raise MeasurementError("a window needs its work counts (inferences=N)")
            work = infer(probe)
        if duration_s < self.period_s:
            self.short_windows += 1
        probe.window = Window(
            energy_j=energy_j,
            duration_s=duration_s,
            work=work,
            domains_j=domains,
            start_unix_s=start_unix,
            end_unix_s=end_unix,
            throttle=throttle,
            waited_s=waited_s,
            idle_j=(self.idle_power_w or 0.0) * duration_s,
            counts={k: counts_after[k] - counts_before.get(k, 0.0) for k in counts_after},
            phases_j=dict(probe.phases_j),
        )

    def _check_energy(self, energy_j: float, duration_s: float, probe: Probe) -> None:
        name = self.meter.name
        if self.deterministic:
            if energy_j == 0:
                raise MeasurementError(
                    f"energy meter {name!r} counted no work in this window, so there is "
                    "nothing to judge. A deterministic meter models only the work it can see "
                    f"({provenance(self.meter)}); check that the inference inside the window "
                    "runs code the meter observes (for roofline: torch operations)"
                )
            return
        found = metacheck.find_meta([*probe.inspect, *(out for out, *_ in probe.outputs)])
        if found:
            raise MeasurementError(
                f"this window ran on torch's meta device ({found}): meta tensors hold no data "
                f"and run no kernels, so energy meter {name!r} measured only Python overhead, "
                "and the figure would mean nothing. Model such a test with "
                "--energy-meter=roofline (it costs the operations as the target GPU would run "
                "them), or build the model on a real device to measure it"
            )
        if energy_j == 0 and duration_s >= self.period_s and duration_s > 0:
            raise MeterError(
                f"meter {name!r} reported no energy over {duration_s:.3g} s: a stuck or "
                "unsupported counter. No figure was recorded; check the sensor (driver, "
                "permissions, a virtualised device that reports nothing) or choose another "
                "meter with --energy-meter"
            )


def _throttle(meter: Meter) -> tuple[str, ...]:
    reasons: Any = getattr(meter, "throttle_reasons", None)
    if reasons is None:
        return ()
    return tuple(reasons())
