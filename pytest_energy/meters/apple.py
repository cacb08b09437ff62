"""The ``apple`` meter: Apple Silicon CPU, GPU, Neural Engine and DRAM energy.

It reads macOS's IOReport "Energy Model" counters through ``zeus-apple-silicon``, the
library the Zeus project maintains for this (no sudo, unlike ``powermetrics``).
``AppleEnergyMonitor().get_cumulative_energy()`` returns an ``AppleEnergyMetrics`` whose
fields are cumulative millijoules from a fixed point, or ``None`` where the chip has no such
channel. This meter reports, in joules:

=============  ====================  ===================================================
domain         field                 what
=============  ====================  ===================================================
``cpu:soc``    ``cpu_total_mj``      every CPU cluster (the per-core and per-cluster
                                     fields are parts of it and are not added again)
``gpu:soc``    ``gpu_mj``            the on-chip GPU
``ane:soc``    ``ane_mj``            the Apple Neural Engine
``dram:soc``   ``dram_mj``           external DRAM, where the chip reports it
=============  ====================  ===================================================

CPU + GPU + ANE is what Apple's ``powermetrics`` calls "Combined Power"; DRAM lies outside
it. ``gpu_sram_mj`` is left out, since the library does not say whether the GPU channel
already includes it.

The figures are Apple's model of energy from utilisation, frequency and voltage, not a power
sensor (the library's README; ``powermetrics`` calls its values "estimated and may be
inaccurate"), at 1 mJ resolution. They are machine-wide: every process on the chip counts.
Still, they come from the hardware's own telemetry, so the meter is ``measured``, and the
provenance says what kind of measurement it is.
"""

from __future__ import annotations

import importlib
import platform
import subprocess
import sys
from typing import Any

from ..errors import MeterError, MeterUnavailable

NAME = "apple"
INSTALL_FIX = "pip install 'pytest-energy[apple]' (the zeus-apple-silicon package)"
#: IOReport counters move in 1 mJ steps; the library's README finds windows under ~10 ms
#: dominated by quantisation noise.
UPDATE_PERIOD_S = 0.01
MJ_PER_J = 1000.0
#: (AppleEnergyMetrics field, domain), in report order.
FIELDS: tuple[tuple[str, str], ...] = (
    ("cpu_total_mj", "cpu:soc"),
    ("gpu_mj", "gpu:soc"),
    ("ane_mj", "ane:soc"),
    ("dram_mj", "dram:soc"),
)
#: The whole system on a chip is one device for the per-device locks.
DEVICE = "apple-soc"


def _chip_name() -> str:
    """``Apple M2 Pro`` from ``sysctl -n machdep.cpu.brand_string``."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "Apple Silicon"
    name = " ".join(done.stdout.split())
    return name if done.returncode == 0 and name else "Apple Silicon"


class AppleMeter:
    """Cumulative energy of this Mac's Apple Silicon chip, in joules, per subsystem.

    ``zeus_apple_silicon`` is the bindings module (imported here when ``None``), ``system``
    the ``(sys.platform, platform.machine())`` pair to check (this machine's when ``None``)
    and ``chip`` the chip's name (from ``sysctl`` when ``None``).
    """

    name = NAME
    estimated = False
    update_period_s = UPDATE_PERIOD_S
    devices: tuple[str, ...] = (DEVICE,)
    hardware: str
    provenance: str

    def __init__(
        self,
        *,
        zeus_apple_silicon: Any = None,
        system: tuple[str, str] | None = None,
        chip: str | None = None,
    ) -> None:
        os_name, machine = system if system is not None else (sys.platform, platform.machine())
        if os_name != "darwin" or machine != "arm64":
            raise MeterUnavailable(
                NAME,
                f"it reads Apple Silicon's IOReport counters, and this is {os_name} on {machine}.",
                "choose a meter for this machine, e.g. auto",
            )
        module = _import_module() if zeus_apple_silicon is None else zeus_apple_silicon
        try:
            self._monitor = module.AppleEnergyMonitor()
            first = self._monitor.get_cumulative_energy()
        except RuntimeError as exc:
            raise MeterUnavailable(
                NAME,
                f"zeus-apple-silicon could not subscribe to IOReport's energy counters ({exc}).",
                "update macOS and zeus-apple-silicon (pip install -U zeus-apple-silicon)",
            ) from exc
        self._fields = tuple(
            (attr, domain) for attr, domain in FIELDS if getattr(first, attr, None) is not None
        )
        if not self._fields:
            raise MeterUnavailable(
                NAME,
                "IOReport reports no CPU, GPU, ANE or DRAM energy channel on this chip.",
                "update zeus-apple-silicon (pip install -U zeus-apple-silicon), which learns the "
                "channel names of new chips",
            )
        self._closed = False
        self.hardware = f"{chip or _chip_name()} (IOReport)"
        parts = ", ".join(domain.split(":")[0].upper() for _, domain in self._fields)
        self.provenance = (
            f"measured: Apple IOReport energy model of {parts} read through zeus-apple-silicon "
            "(modelled by the chip from utilisation, frequency and voltage, 1 mJ steps); "
            "whole chip, every process included"
        )

    def read(self) -> dict[str, float]:
        """Joules per subsystem since an arbitrary fixed point."""
        if self._closed:
            raise MeterError("the apple meter was used after close()")
        try:
            metrics = self._monitor.get_cumulative_energy()
        except RuntimeError as exc:
            raise MeterError(
                f"reading IOReport's energy counters failed mid-run ({exc}); the measurement "
                "is invalid."
            ) from exc
        energy_j: dict[str, float] = {}
        for attr, domain in self._fields:
            value = getattr(metrics, attr, None)
            if value is None:
                raise MeterError(
                    f"IOReport stopped reporting {attr} ({domain}) mid-run; the measurement is "
                    "invalid."
                )
            energy_j[domain] = value / MJ_PER_J
        return energy_j

    def close(self) -> None:
        """Drop the IOReport subscription (the library frees it with the monitor)."""
        self._closed = True
        self._monitor = None


def _import_module() -> Any:
    try:
        return importlib.import_module("zeus_apple_silicon")
    except ImportError as exc:
        raise MeterUnavailable(
            NAME, "the Python package zeus-apple-silicon is not installed.", INSTALL_FIX
        ) from exc
