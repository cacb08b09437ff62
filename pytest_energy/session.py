"""The state of one pytest session's energy work, without pytest.

``plugin.py`` keeps one :class:`EnergySession` in ``config.stash``. It creates the meter
and loads the baseline lazily (a session with no energy tests touches neither), judges
each test's measurement, and writes the baseline when asked.
"""

from __future__ import annotations

import contextlib
import random
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from . import baseline as baseline_io
from .baseline import Baseline, BaselineEntry
from .devicelock import DeviceLocks, devices_of
from .errors import ConfigError, MeterError
from .measure import Measurement, Recorder, WindowPlan
from .meters import Meter, MeterFactory, create, provenance
from .results import EnergyResult, judge
from .settings import Settings

if TYPE_CHECKING:
    from .report.carbon import CarbonIntensity

#: Significant digits kept per baseline sample: far finer than any meter's repeatability,
#: and short enough for a reviewable diff.
SAMPLE_DIGITS = 6
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
    ) -> None:
        self.settings = settings
        self.factory = factory
        self._meter: Meter | None = None
        self._baseline: Baseline | None = None
        self._idle_power_w: float | None = None
        self._locks: DeviceLocks | None = None
        self._selection = ""
        self.rng = random.Random(seed)
        self.results: dict[str, EnergyResult] = {}
        self.updates: dict[str, dict[str, BaselineEntry]] = {}
        self.baseline_written: int | None = None
        self.carbon = carbon
        self.write_errors: list[str] = []
        self.warnings: list[str] = []
        self.report_lines: list[str] = []
        self._worker_selections: list[str] = []

    # -- lazily created resources ------------------------------------------------------
    @property
    def meter_started(self) -> bool:
        return self._meter is not None

    @property
    def meter(self) -> Meter:
        if self._meter is None:
            meter = create(self.factory, self.settings.meter)
            if meter.estimated and self.settings.require_sensor:
                meter.close()
                raise ConfigError(
                    f"--energy-require-sensor is set, but the energy meter {meter.name!r} only "
                    f"estimates energy on this machine ({provenance(meter)}). Run on hardware "
                    "with a sensor (NVML GPU or readable RAPL), or drop --energy-require-sensor "
                    "to accept the estimate."
                )
            try:
                domains = meter.read()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    meter.close()
                raise MeterError(
                    f"energy meter {meter.name!r} failed its first read "
                    f"({type(exc).__name__}: {exc}); no test was measured. Check the sensor, "
                    "or choose another meter with --energy-meter."
                ) from None
            if self.settings.device_lock:
                self._locks = DeviceLocks(devices_of(meter, domains))
            self._meter = meter
            self._selection = self._describe(meter)
        return self._meter

    @property
    def baseline(self) -> Baseline:
        if self._baseline is None:
            self._baseline = baseline_io.load(self.settings.baseline_path)
        return self._baseline

    @property
    def selection(self) -> str:
        """Which meter is in use, how its figures are obtained, and what auto passed over."""
        return self._selection

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
        """Record a worker's meter line (pytest-xdist), once per distinct line."""
        if line and line not in self._worker_selections:
            self._worker_selections.append(line)

    @property
    def selections(self) -> list[str]:
        """This process's meter line, then the distinct lines of xdist workers."""
        own = [self.selection] if self.selection else []
        return own + [line for line in self._worker_selections if line not in own]

    def idle_power_w(self) -> float:
        """Idle power of the metered domains, measured once with no work running."""
        if self._idle_power_w is None:
            meter = self.meter
            recorder = Recorder(meter, WindowPlan(rounds=1, warmup=0, min_time_s=0.0))
            with recorder.window(inferences=1):
                time.sleep(IDLE_WINDOW_S)
            window = recorder.windows[0]
            self._idle_power_w = window.energy_j / window.duration_s
        return self._idle_power_w

    def recorder(self) -> Recorder:
        s = self.settings
        return Recorder(
            self.meter,
            WindowPlan(rounds=s.rounds, warmup=s.warmup, min_time_s=s.min_time_s),
            rng=self.rng,
            guard=self._locks or nullcontext,
            idle_power_w=self.idle_power_w if s.subtract_idle else None,
        )

    # -- verdicts ----------------------------------------------------------------------
    def judge(
        self,
        nodeid: str,
        measurement: Measurement,
        *,
        budget_kwh: float | None,
        tolerance_pct: float | None,
    ) -> EnergyResult:
        entry = self.baseline.get(measurement.hardware, nodeid)
        result = judge(
            nodeid,
            measurement,
            baseline=entry,
            budget_kwh=budget_kwh,
            tolerance_pct=self.settings.tolerance_pct if tolerance_pct is None else tolerance_pct,
            alpha=self.settings.alpha,
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
        self.results[nodeid] = result
        return result

    def keep_for_baseline(self, result: EnergyResult) -> None:
        m = result.measurement
        self.updates.setdefault(m.hardware, {})[result.nodeid] = BaselineEntry(
            samples=tuple(float(f"{x:.{SAMPLE_DIGITS}g}") for x in m.samples),
            meter=m.meter,
            estimated=m.estimated,
            pytest_energy_version=__version__,
            inferences=m.inferences,
            tokens=m.tokens,
        )

    def kept(self, result: EnergyResult) -> bool:
        """Whether ``result`` was kept for the baseline update."""
        return result.nodeid in self.updates.get(result.measurement.hardware, {})

    def write_baseline(self) -> Path | None:
        """Merge this run's kept entries into the baseline file; ``None`` if nothing to write."""
        if not self.updates:
            return None
        path = self.settings.baseline_path
        baseline_io.update(path, self.updates)
        self.baseline_written = sum(len(tests) for tests in self.updates.values())
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
