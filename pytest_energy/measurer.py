"""The measuring side of a session, in every process that runs tests. No pytest here.

:class:`Measurer` creates the meter on the first window (a session with no energy window
never touches a driver), holds the per-device locks, measures idle power once when asked,
and hands each test attempt a :class:`~pytest_energy.schedule.Recorder` with the window
plan it needs. What it wants the user to know (a thread warning, a lock fallback) it keeps
in :attr:`notes`, which ride on test reports to the controller's summary.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from .devicelock import DeviceLocks, devices_of
from .errors import ConfigError, EnergyError, MeterError
from .measure import WindowMeter, checked_reading, cuda_sync, provenance_of
from .meters import Meter, MeterFactory, create, provenance
from .meters.base import is_deterministic
from .record import Provenance, Work
from .schedule import Recorder, WindowPlan
from .settings import DEFAULT_ROUNDS, MIN_ADAPTIVE_ROUNDS, Settings

#: Length of the idle measurement taken once per session for --energy-subtract-idle.
IDLE_WINDOW_S = 1.0


class Measurer:
    """Meter, locks and idle power of one process, and the window plans of its tests."""

    def __init__(
        self,
        settings: Settings,
        factory: MeterFactory,
        *,
        notify: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.notify = notify
        """Shows a message while a test waits (e.g. for another process's device lock)."""
        self.sleep = sleep
        self.rng = random.Random(seed)
        self._notes: list[str] = []
        self._meter: Meter | None = None
        self._error: EnergyError | None = None
        self._provenance: Provenance | None = None
        self._idle_power_w: float | None = None
        self._locks: DeviceLocks | None = None
        self.selection = ""
        """What meter this process uses and why, once it has started."""

    @property
    def notes(self) -> list[str]:
        """What the summary should say once: a thread warning, that idle subtraction does
        nothing for a model, that device locks fell back to a per-user directory (known once
        a lock was used)."""
        fallback = self._locks.fallback if self._locks is not None else None
        return [*self._notes, *([fallback] if fallback else [])]

    # -- the meter ---------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._meter is not None

    @property
    def error(self) -> EnergyError | None:
        """Why the meter could not start, when it could not."""
        return self._error

    @property
    def meter(self) -> Meter:
        """The meter, created on first use; a failure is raised again on every later use."""
        if self._error is not None:
            raise self._error
        if self._meter is None:
            try:
                self._meter = self._start()
            except EnergyError as exc:
                self._error = exc
                raise
        return self._meter

    @property
    def provenance(self) -> Provenance:
        if self._provenance is None:
            self._provenance = provenance_of(self.meter)
        return self._provenance

    def _start(self) -> Meter:
        meter = create(self.factory, self.settings.meter)
        if meter.estimated and self.settings.require_sensor:
            _close_quietly(meter)
            raise ConfigError(
                f"--energy-require-sensor is set, but the energy meter {meter.name!r} only "
                f"estimates energy on this machine ({provenance(meter)}). Run on hardware "
                "with a sensor (NVML GPU or readable RAPL), or drop --energy-require-sensor "
                "to accept the estimate."
            )
        try:
            domains = checked_reading(meter.name, meter.read())
        except Exception as exc:
            _close_quietly(meter)
            cause = str(exc) if isinstance(exc, MeterError) else f"{type(exc).__name__}: {exc}"
            raise MeterError(
                f"energy meter {meter.name!r} failed its first read ({cause}); no test was "
                "measured. Check the sensor, or choose another meter with --energy-meter."
            ) from None
        if self.settings.device_lock:
            self._locks = DeviceLocks(
                devices_of(meter, domains),
                lock_timeout_s=self.settings.lock_timeout_s,
                on_wait=self.notify,
            )
        deterministic = is_deterministic(meter)
        if meter.estimated and not deterministic:
            from .meters.codecarbon import thread_warning

            warning = thread_warning()
            if warning:
                self._notes.append(warning)
        if self.settings.subtract_idle:
            if deterministic:
                self._notes.append(
                    f"--energy-subtract-idle has no effect with the {meter.name} meter: it "
                    "models only the work it sees and spends nothing when idle"
                )
            else:
                self._idle_power_w = self._measure_idle(meter)
        self.selection = self._describe(meter)
        return meter

    def _guard(self) -> Callable[[], contextlib.AbstractContextManager[object]]:
        return self._locks if self._locks is not None else nullcontext

    def _measure_idle(self, meter: Meter) -> float:
        """Idle power, measured once before any window, with this process's device work
        finished (synchronised) and under the device lock, so no other worker runs."""
        windows = WindowMeter(meter, guard=self._guard())
        cuda_sync()
        with windows.window(Work(1)) as probe:
            self.sleep(IDLE_WINDOW_S)
        window = probe.window
        assert window is not None
        return window.energy_j / window.duration_s if window.duration_s > 0 else 0.0

    def _describe(self, meter: Meter) -> str:
        kind = provenance_of(meter).figures
        spec = self.settings.meter
        prefix = f"{spec} -> " if spec != meter.name and ":" not in spec else ""
        lines = [
            f"meter {prefix}{meter.name} ({kind}) on {meter.hardware}",
            f"  {provenance(meter)}",
        ]
        unavailable: dict[str, str] = getattr(meter, "unavailable", {})
        lines += [f"  not used: {name}: {why}" for name, why in unavailable.items()]
        return "\n".join(lines)

    # -- plans -------------------------------------------------------------------------------
    def plan(
        self, settled: Callable[[Sequence[float]], bool] | None, *, compare: bool = False
    ) -> WindowPlan:
        """How many windows a call takes: one for a deterministic meter (its figures depend
        on the work alone), the fixed --energy-rounds, adaptive rounds until ``settled``
        (for a test with a comparable baseline entry), else the default for a new test."""
        s = self.settings
        if is_deterministic(self.meter):
            return WindowPlan(rounds=s.rounds or 1, warmup=max(s.warmup, 1), min_time_s=0.0)
        if s.rounds is not None or compare:
            rounds = s.rounds or DEFAULT_ROUNDS
            return WindowPlan(rounds=rounds, warmup=s.warmup, min_time_s=s.min_time_s)
        if settled is None:  # the baseline this run may record should be a good one
            rounds = min(DEFAULT_ROUNDS, s.max_rounds)
            return WindowPlan(rounds=rounds, warmup=s.warmup, min_time_s=s.min_time_s)
        return WindowPlan(
            rounds=min(MIN_ADAPTIVE_ROUNDS, s.max_rounds),
            warmup=s.warmup,
            min_time_s=s.min_time_s,
            max_rounds=s.max_rounds,
            settled=settled,
        )

    def recorder(self, plan: WindowPlan) -> Recorder:
        from .counts import infer

        windows = WindowMeter(self.meter, guard=self._guard(), idle_power_w=self._idle_power_w)
        return Recorder(windows, plan, self.provenance, infer=infer, rng=self.rng)

    def close(self) -> str | None:
        """Release the locks and close the meter; a failure to close is returned as text."""
        if self._locks is not None:
            self._locks.close()
            self._locks = None
        if self._meter is None:
            return None
        meter, self._meter = self._meter, None
        try:
            meter.close()
        except Exception as exc:
            return (
                f"closing energy meter {meter.name!r} failed ({type(exc).__name__}: {exc}); "
                "the figures above were taken before and are unaffected"
            )
        return None


def _close_quietly(meter: Meter) -> None:
    with contextlib.suppress(Exception):
        meter.close()
