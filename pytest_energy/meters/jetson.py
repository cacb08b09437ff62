"""The ``jetson`` meter: NVIDIA Jetson power rails from the INA3221 / INA238 hwmon sysfs.

Jetson modules carry TI power monitors that Linux exposes under ``/sys/class/hwmon``; each
``hwmonN`` directory names its chip in ``name``. The kernel's hwmon ABI (Documentation/hwmon/
sysfs-interface.rst, ina3221.rst, ina238.rst) gives the files and units read here:

- ``ina3221`` (Orin and earlier): three channels, ``in[123]_label`` the rail name from the
  device tree (``VDD_IN``, ``VDD_CPU_GPU_CV``, ``VDD_SOC`` on Orin Nano/NX), ``in[123]_input``
  the bus voltage in mV, ``curr[123]_input`` the current in mA, ``in[123]_enable``, and the
  chip's ``update_interval`` in ms (the conversion time times the averaged samples);
- ``ina238`` (Thor's module input monitor): ``power1_input`` in uW (and ``in1_input`` mV,
  ``curr1_input`` mA), one channel, labelled by the optional ``label`` file.

Power is ``power*_input`` where a channel has it, else bus voltage times current. The rails
report power, not energy, so the meter samples them on a daemon thread at the chips' update
period (clamped to 10 ms to 1 s) and integrates with the trapezoid rule
(:class:`~pytest_energy.meters.power.PowerPoller`); every ``read()`` takes a sample too, so
each window starts and ends exactly on one.

Which rails: an input rail (``VDD_IN``, ``VIN``, or an unlabelled INA238, which measures the
module's input on Thor) contains the others, so when one exists it is metered alone and the
provenance names the rails left out; two input rails are ambiguous and refused. Without an
input rail (AGX Orin: ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0``, ``VDDQ_VDD2_1V8AO``)
every labelled rail is metered. Channels labelled ``NC`` (not connected) and disabled ones are
skipped. ``JetsonMeter(rails=(...))`` picks rails by label instead.

The figure is measured, with the integration's uncertainty stated in the provenance: load
changes shorter than one sample period are averaged or missed, so a window can be off by up
to one period's worth of the power swing at each change of load; the plugin's calibrated
windows span at least ten periods. The on-module monitors do not see the carrier board.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MeterError, MeterUnavailable
from .power import PowerPoller

NAME = "jetson"
HWMON_ROOT = Path("/sys/class/hwmon")
MODEL_FILE = Path("/proc/device-tree/model")
#: Jetson Linux (L4T) writes its release here; Zeus checks it too.
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
CHIPS = ("ina3221", "ina238")
#: Board or module input rails, which contain every other rail.
INPUT_RAILS = frozenset({"VDD_IN", "VIN"})
SKIPPED_LABELS = frozenset({"NC"})
#: Sampling period when no chip states its ``update_interval``.
DEFAULT_POLL_S = 0.05
MIN_POLL_S = 0.01
MAX_POLL_S = 1.0
POLLER_THREAD_NAME = "pytest-energy-jetson-poller"
#: One device lock for the whole module: every rail sees every process's work.
DEVICE = "jetson-module"
_UW_PER_W = 1e6
_MW_MA_PER_W = 1e6  # mV x mA = uW

_FIX = (
    "on a Jetson, check that `ls /sys/class/hwmon/*/name` lists ina3221 (or ina238) and that "
    "the files are readable; in a container bind-mount /sys/class/hwmon read-only; elsewhere "
    "choose another meter"
)


@dataclass(frozen=True)
class Rail:
    """One power-monitor channel: its label, chip, and the sysfs files that give its power."""

    label: str
    chip: str
    directory: Path
    power: Path | None = None  # uW
    voltage: Path | None = None  # mV
    current: Path | None = None  # mA
    labelled: bool = True

    @property
    def is_input(self) -> bool:
        """Whether this rail feeds the module, and so contains every other rail."""
        if self.label.upper() in INPUT_RAILS:
            return True
        return self.chip == "ina238" and not self.labelled

    def power_w(self) -> float:
        """The rail's power now, in watts; OSError and ValueError propagate."""
        if self.power is not None:
            return _read_int(self.power) / _UW_PER_W
        assert self.voltage is not None and self.current is not None
        return _read_int(self.voltage) * _read_int(self.current) / _MW_MA_PER_W


def _read_int(path: Path) -> int:
    return int(path.read_text(encoding="ascii").strip())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip().strip("\x00").strip()
    except OSError:
        return None


def _channel(directory: Path, chip: str, index: int, label: str | None) -> Rail | None:
    """The rail on channel ``index``, or None when it is absent, disabled or unconnected."""
    if _read_text(directory / f"in{index}_enable") == "0":
        return None
    if label is not None and label.upper() in SKIPPED_LABELS:
        return None
    power = directory / f"power{index}_input"
    voltage, current = directory / f"in{index}_input", directory / f"curr{index}_input"
    name = label or f"{chip}-{directory.name}-{index}"
    if power.is_file():
        return Rail(name, chip, directory, power=power, labelled=label is not None)
    if voltage.is_file() and current.is_file():
        return Rail(
            name, chip, directory, voltage=voltage, current=current, labelled=label is not None
        )
    return None


def find_rails(root: Path = HWMON_ROOT) -> list[Rail]:
    """Every usable INA3221 / INA238 channel under ``root``, in hwmon order."""
    try:
        entries = sorted(
            (entry for entry in root.iterdir() if re.fullmatch(r"hwmon\d+", entry.name)),
            key=lambda entry: int(entry.name[len("hwmon") :]),
        )
    except OSError:
        return []
    rails: list[Rail] = []
    for directory in entries:
        chip = _read_text(directory / "name")
        if chip == "ina3221":
            for index in (1, 2, 3):
                rail = _channel(directory, chip, index, _read_text(directory / f"in{index}_label"))
                if rail is not None:
                    rails.append(rail)
        elif chip == "ina238":
            # in0 is the shunt voltage; power1, in1 (bus) and curr1 describe the rail.
            rail = _channel(directory, chip, 1, _read_text(directory / "label") or None)
            if rail is not None:
                rails.append(rail)
    return rails


def update_interval_s(rails: Sequence[Rail]) -> float | None:
    """The slowest ``update_interval`` (ms) the rails' chips state, in seconds."""
    periods = []
    for directory in {rail.directory for rail in rails}:
        text = _read_text(directory / "update_interval")
        if text is not None and text.isdigit() and int(text) > 0:
            periods.append(int(text) / 1000.0)
    return max(periods) if periods else None


def choose_rails(found: Sequence[Rail], wanted: Sequence[str] | None) -> tuple[list[Rail], str]:
    """The rails to meter and a note on the ones left out (empty when none are)."""
    labels = ", ".join(rail.label for rail in found)
    if wanted is not None:
        by_label = {rail.label.upper(): rail for rail in found}
        missing = [label for label in wanted if label.upper() not in by_label]
        if missing or not wanted:
            raise MeterUnavailable(
                NAME,
                f"rails {', '.join(missing) or '(none)'} were asked for, and the power monitors "
                f"report {labels}.",
                "pass rails=(...) with labels from that list",
            )
        chosen = [by_label[label.upper()] for label in dict.fromkeys(wanted)]
    else:
        inputs = [rail for rail in found if rail.is_input]
        if len(inputs) > 1:
            raise MeterUnavailable(
                NAME,
                f"several input rails ({', '.join(r.label for r in inputs)}) each contain the "
                "other rails, and adding them would count the module twice.",
                "build the meter with JetsonMeter(rails=(...)) naming the rail to meter, and "
                "pass that factory as --energy-meter=module:factory",
            )
        chosen = inputs or list(found)
    rest = [rail.label for rail in found if rail not in chosen]
    if not rest:
        return chosen, ""
    why = "inside the input rail" if wanted is None else "not asked for"
    return chosen, f"{', '.join(rest)} not added ({why})"


def _model(path: Path) -> str:
    text = _read_text(path)
    return " ".join(text.split()) if text else "unknown board"


class JetsonMeter:
    """Measured energy of a Jetson module's power rails, in joules, one domain per rail.

    ``root`` is the hwmon class directory (a fake tree in tests), ``rails`` labels to meter
    instead of the automatic choice, ``poll_interval_s`` the sampling period (default: the
    chips' ``update_interval``), ``poll=False`` samples only inside :meth:`read` (for tests),
    ``clock`` a monotonic clock in seconds, ``model`` the device-tree model file and
    ``tegra_release`` Jetson Linux's release file: one of them must say this is a Jetson, so
    that an INA3221 on some other board is not taken for a Jetson module.
    """

    name = NAME
    estimated = False
    devices: tuple[str, ...] = (DEVICE,)
    update_period_s: float
    hardware: str
    provenance: str
    rails: tuple[Rail, ...]

    def __init__(
        self,
        *,
        root: Path = HWMON_ROOT,
        rails: Sequence[str] | None = None,
        poll_interval_s: float | None = None,
        poll: bool = True,
        clock: Callable[[], float] = time.monotonic,
        model: Path = MODEL_FILE,
        tegra_release: Path = TEGRA_RELEASE,
    ) -> None:
        board = _model(Path(model))
        if "jetson" not in board.lower() and not Path(tegra_release).is_file():
            raise MeterUnavailable(
                NAME,
                f"this is not an NVIDIA Jetson (device-tree model {board!r}, no {tegra_release}).",
                "choose a meter for this machine, e.g. auto",
            )
        found = find_rails(Path(root))
        if not found:
            raise MeterUnavailable(
                NAME,
                f"no INA3221 or INA238 power monitor channel under {root}: this is not a "
                "Jetson, or its power monitors are hidden.",
                _FIX,
            )
        chosen, left_out = choose_rails(found, rails)
        self.rails = tuple(chosen)
        stated = update_interval_s(chosen)
        if poll_interval_s is None:
            poll_interval_s = min(max(stated or DEFAULT_POLL_S, MIN_POLL_S), MAX_POLL_S)
        if not 0 < poll_interval_s <= MAX_POLL_S:
            raise ValueError(
                f"poll_interval_s must be in (0, {MAX_POLL_S}], got {poll_interval_s!r}"
            )
        self.update_period_s = poll_interval_s
        for rail in chosen:
            try:
                rail.power_w()
            except (OSError, ValueError) as exc:
                raise MeterUnavailable(
                    NAME, f"cannot read rail {rail.label} in {rail.directory}: {exc}.", _FIX
                ) from exc
        self._domains = {rail: f"jetson:{rail.label}" for rail in chosen}
        self._poller = PowerPoller(
            self._sample_power_w,
            list(self._domains.values()),
            interval_s=poll_interval_s,
            clock=clock,
            thread_name=POLLER_THREAD_NAME,
        )
        if poll:
            self._poller.start()
        else:
            self._poller.sample()
        self._closed = False
        labels = ", ".join(rail.label for rail in chosen)
        chips = "/".join(sorted({rail.chip.upper() for rail in chosen}))
        self.hardware = f"{board} ({labels})"
        parts = [
            f"measured: Jetson {chips} rail{'s' if len(chosen) > 1 else ''} {labels} sampled "
            f"every {poll_interval_s * 1000:g} ms and integrated by the trapezoid rule",
            f"uncertainty: load changes shorter than {poll_interval_s * 1000:g} ms are averaged "
            "or missed, up to one sample period of the power swing per change of load",
        ]
        if stated is not None:
            parts.append(f"sensor update interval {stated * 1000:g} ms")
        if left_out:
            parts.append(left_out)
        parts.append("carrier board not included")
        self.provenance = "; ".join(parts)

    def _sample_power_w(self) -> dict[str, float]:
        power_w: dict[str, float] = {}
        for rail, domain in self._domains.items():
            try:
                power_w[domain] = rail.power_w()
            except (OSError, ValueError) as exc:
                raise MeterError(
                    f"Jetson rail {rail.label} ({rail.directory}) could not be read mid-run: "
                    f"{exc}; the measurement is invalid."
                ) from exc
        return power_w

    def read(self) -> dict[str, float]:
        """Joules per rail since the meter was built (one fresh sample included)."""
        if self._closed:
            raise MeterError("the jetson meter was used after close()")
        return self._poller.sample()

    def close(self) -> None:
        """Stop the sampling thread; safe to call twice."""
        self._closed = True
        self._poller.stop()
