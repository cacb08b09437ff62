"""The state of one pytest session's energy work, without pytest.

The pytest layer keeps one :class:`EnergySession` per process. It creates the meter on
the first window (a session with no energy window never touches a driver), loads the
baseline on first use, plans and judges each test's windows, collects the records that
reach the controller and writes the baseline when asked.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, stats
from . import baseline as baseline_io
from .baseline import Baseline, BaselineEntry
from .devicelock import DeviceLocks, devices_of
from .errors import ConfigError, EnergyError, MeterError
from .measure import Measurement, Recorder, WindowPlan, checked_reading, cuda_sync
from .meters import Meter, MeterFactory, create, provenance
from .meters.base import is_deterministic
from .results import EnergyResult, judge
from .settings import DEFAULT_ROUNDS, Settings

if TYPE_CHECKING:
    from .report.carbon import CarbonIntensity

#: Length of the idle measurement taken once per session for --energy-subtract-idle.
IDLE_WINDOW_S = 1.0


class EnergySession:
    """Meter, baseline and results of one session."""

    def __init__(
        self,
        settings: Settings,
        factory: MeterFactory,
        *,
        carbon: CarbonIntensity | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.carbon = carbon
        self.rng = random.Random(seed)
        self.sleep = sleep
        self.notify = notify
        """Shows a message while a test waits (e.g. for another process's device lock)."""
        self._meter: Meter | None = None
        self._meter_error: EnergyError | None = None
        self._baseline: Baseline | None = None
        self._idle_power_w: float | None = None
        self._locks: DeviceLocks | None = None
        self._selections: list[str] = []
        self.results: dict[str, EnergyResult] = {}
        self.baseline_written: int | None = None
        self.write_errors: list[str] = []
        self.warnings: list[str] = []
        self.report_lines: list[str] = []

    # -- lazily created resources ------------------------------------------------------
    @property
    def meter_started(self) -> bool:
        return self._meter is not None

    @property
    def meter_error(self) -> EnergyError | None:
        """Why the meter could not start, when it could not."""
        return self._meter_error

    @property
    def meter(self) -> Meter:
        """The meter, created on first use; a failure is raised again on every later use."""
        if self._meter_error is not None:
            raise self._meter_error
        if self._meter is None:
            try:
                self._meter = self._start_meter()
            except EnergyError as exc:
                self._meter_error = exc
                raise
        return self._meter

    def _start_meter(self) -> Meter:
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
        if meter.estimated and not is_deterministic(meter):
            from .meters.codecarbon import thread_warning

            warning = thread_warning()
            if warning:
                self.warnings.append(warning)
        if self.settings.subtract_idle:
            self._idle_power_w = self._measure_idle(meter)
        self._selections.insert(0, self._describe(meter))
        return meter

    def _measure_idle(self, meter: Meter) -> float:
        """Idle power, measured once before any window, with this process's device work
        finished (synchronised) and under the device lock, so no other worker runs."""
        recorder = Recorder(
            meter,
            WindowPlan(rounds=1, warmup=0, min_time_s=0.0),
            guard=self._locks or nullcontext,
        )
        cuda_sync()
        with recorder.window(inferences=1):
            self.sleep(IDLE_WINDOW_S)
        window = recorder.windows[0]
        return window.energy_j / window.duration_s if window.duration_s > 0 else 0.0

    @property
    def baseline(self) -> Baseline:
        if self._baseline is None:
            self._baseline = baseline_io.load(self.settings.baseline_path)
        return self._baseline

    def _describe(self, meter: Meter) -> str:
        kind = "estimated" if meter.estimated else "measured"
        spec = self.settings.meter
        prefix = f"{spec} -> " if spec != meter.name and ":" not in spec else ""
        lines = [
            f"meter {prefix}{meter.name} ({kind}) on {meter.hardware}",
            f"  {provenance(meter)}",
        ]
        unavailable: dict[str, str] = getattr(meter, "unavailable", {})
        lines += [f"  not used: {name}: {why}" for name, why in unavailable.items()]
        return "\n".join(lines)

    def add_selection(self, line: str) -> None:
        """Record a meter line (this process's or an xdist worker's), once per distinct line."""
        if line and line not in self._selections:
            self._selections.append(line)

    @property
    def selections(self) -> list[str]:
        """This process's meter line, then the distinct lines of xdist workers."""
        return list(self._selections)

    @property
    def selection(self) -> str:
        """This process's meter line, once its meter has started."""
        return self._describe(self._meter) if self._meter is not None else ""

    # -- planning ------------------------------------------------------------------------
    def deterministic(self) -> bool:
        return is_deterministic(self.meter)

    def tolerance_pct(self, marker_pct: float | None) -> float:
        return self.settings.tolerance_for(
            marker_pct=marker_pct, deterministic=self.deterministic()
        )

    def comparable_entry(self, nodeid: str) -> BaselineEntry | None:
        """The baseline entry this test's windows will be judged against, if any."""
        meter = self.meter
        entry = self.baseline.get(meter.hardware, nodeid)
        return (
            entry if entry is not None and entry.comparable(meter.name, meter.estimated) else None
        )

    def plan(self, nodeid: str, marker_tolerance_pct: float | None) -> WindowPlan:
        """How many windows ``energy(fn, ...)`` takes for this test."""
        s = self.settings
        if self.deterministic():
            # One window says all: the figure depends on the work only.
            return WindowPlan(rounds=s.rounds or 1, warmup=max(s.warmup, 1), min_time_s=0.0)
        if s.rounds is not None:
            return WindowPlan(rounds=s.rounds, warmup=s.warmup, min_time_s=s.min_time_s)
        entry = self.comparable_entry(nodeid)
        if entry is None:  # the baseline this run may record should be a good one
            return WindowPlan(rounds=DEFAULT_ROUNDS, warmup=s.warmup, min_time_s=s.min_time_s)
        tolerance = self.tolerance_pct(marker_tolerance_pct)

        def settled(samples: Sequence[float]) -> bool:
            return stats.settled(
                samples,
                entry.samples,
                tolerance_pct=tolerance,
                alpha=s.alpha,
                history=entry.runs,
                run_spread_pct=self.run_spread_pct(),
                max_rounds=s.max_rounds,
            )

        return WindowPlan(
            rounds=stats.MIN_ADAPTIVE_ROUNDS,
            warmup=s.warmup,
            min_time_s=s.min_time_s,
            max_rounds=s.max_rounds,
            settled=settled,
        )

    def compare_rounds(self) -> int:
        """Rounds of ``energy.compare``: fixed, so both sides get the same windows."""
        if self.deterministic():
            return self.settings.rounds or 1
        return self.settings.rounds or DEFAULT_ROUNDS

    def run_spread_pct(self) -> float:
        """The prior run-to-run spread for this session's meter."""
        if self.settings.run_spread_pct is not None:
            return self.settings.run_spread_pct
        kind = "estimated" if self.meter.estimated else "measured"
        return stats.DEFAULT_RUN_SPREAD_PCT[kind]

    def recorder(self, nodeid: str, marker_tolerance_pct: float | None) -> Recorder:
        return Recorder(
            self.meter,
            self.plan(nodeid, marker_tolerance_pct),
            rng=self.rng,
            guard=self._locks or nullcontext,
            idle_power_w=self._idle_power_w,
        )

    # -- verdicts ----------------------------------------------------------------------
    def judge(
        self,
        nodeid: str,
        measurement: Measurement,
        *,
        budget_kwh: float | None,
        marker_tolerance_pct: float | None,
    ) -> EnergyResult:
        entry = self.baseline.get(measurement.hardware, nodeid)
        deterministic = self.deterministic()
        result = judge(
            nodeid,
            measurement,
            baseline=entry,
            budget_kwh=budget_kwh,
            tolerance_pct=self.tolerance_pct(marker_tolerance_pct),
            alpha=self.settings.alpha,
            run_spread_pct=self.run_spread_pct(),
            deterministic=deterministic,
        )
        if entry is None:
            elsewhere = self.baseline.hardware_for(nodeid)
            if elsewhere:
                result = replace(
                    result,
                    note=(
                        f"the baseline has this test only for other hardware "
                        f"({'; '.join(elsewhere)}); this run is on {measurement.hardware}"
                    ),
                )
        return result

    def collect(self, result: EnergyResult, selection: str = "") -> None:
        """Take one test's final record (from its report: in-process or from a worker)."""
        self.results[result.nodeid] = result
        self.add_selection(selection)

    @property
    def ungated(self) -> list[EnergyResult]:
        """Passing tests that had nothing comparable to be judged against."""
        return [r for r in self.results.values() if r.comparison is None and r.passed]

    def write_baseline(self) -> Path | None:
        """Merge this run's kept records into the baseline file; ``None`` if nothing to write."""
        updates: dict[str, dict[str, baseline_io.Update]] = {}
        for result in self.results.values():
            if result.baseline_update:
                m = result.measurement
                updates.setdefault(m.hardware, {})[result.nodeid] = baseline_io.Update(
                    entry=entry_of(result),
                    replace_history=result.baseline_update == "replace",
                )
        if not updates:
            return None
        path = self.settings.baseline_path
        baseline_io.update(path, updates, history=self.settings.history)
        self.baseline_written = sum(len(tests) for tests in updates.values())
        return path

    def close(self) -> None:
        """Release the locks and close the meter; a failure to close is raised as MeterError."""
        if self._locks is not None:
            self._locks.close()
            self._locks = None
        if self._meter is not None:
            meter, self._meter = self._meter, None
            try:
                meter.close()
            except Exception as exc:
                raise MeterError(
                    f"closing energy meter {meter.name!r} failed ({type(exc).__name__}: {exc}); "
                    "the figures above were taken before and are unaffected"
                ) from None


def entry_of(result: EnergyResult) -> BaselineEntry:
    """The baseline entry for this run of one test: its windows and one run summary."""
    m = result.measurement
    return BaselineEntry(
        samples=m.samples,
        meter=m.meter,
        estimated=m.estimated,
        pytest_energy_version=__version__,
        inferences=m.inferences,
        tokens=m.tokens,
        runs=(stats.RunSummary.of(m.samples, date=_utc_date(m.windows[0].start_unix_s)),),
    )


def _utc_date(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_s)) if unix_s > 0 else ""


def _close_quietly(meter: Meter) -> None:
    with contextlib.suppress(Exception):
        meter.close()
