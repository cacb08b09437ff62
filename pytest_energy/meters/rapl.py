"""The ``rapl`` meter: CPU package and DRAM energy counters from Linux powercap sysfs.

Linux exposes Intel RAPL (and, on recent kernels, AMD's compatible counters) under
``/sys/class/powercap``::

    intel-rapl:0/            name = "package-0"   a CPU package (socket)
      intel-rapl:0:0/        name = "core"        part of the package: not added again
      intel-rapl:0:1/        name = "uncore"      part of the package: not added again
      intel-rapl:0:2/        name = "dram"        memory of that socket: outside the package
    intel-rapl:1/            name = "psys"        the whole platform (SoC): overlaps packages

Each zone has ``energy_uj`` (a counter in microjoules that wraps) and
``max_energy_range_uj`` (the value at which it wraps). This meter sums package zones and
their ``dram`` subzones, one domain each. ``core``/``uncore`` are already inside their
package, and ``psys`` covers the packages too, so neither is added. ``intel-rapl-mmio``
zones are a second interface to the same package counters and are ignored.

Wraparound: the counter wraps after ``max_energy_range_uj`` (about 65 kJ to 262 kJ, which
is a few minutes to tens of minutes at full load). :meth:`RaplMeter.read` keeps the last raw
value per zone and adds the distance travelled, so its totals never decrease. A wrap is
detected only if ``read()`` is called at least once per wrap period. If two wraps happen
between reads, one whole range is lost without any sign. The plugin reads at the start and
end of every window, and windows normally last seconds. A wrap is counted as exactly
``max_energy_range_uj``, which can be one counter unit (15 to 61 uJ) short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MeterError, MeterUnavailable

NAME = "rapl"
#: Intel documents the energy status MSRs as updated about once a millisecond; AMD's
#: compatible counters update on the same order. A shorter window can see no update at all.
UPDATE_PERIOD_S = 0.001
UJ_PER_J = 1_000_000

_PACKAGE_ZONE = re.compile(r"intel-rapl:(\d+)")
_PERMISSION_FIX = (
    "allow reading the counters with `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (lost at reboot; the udev rule in "
    "pytest-energy's measurement docs makes it permanent), or run the tests as root."
)


@dataclass
class _Zone:
    """One counter we add up, with the state needed to unwrap it."""

    domain: str
    path: Path
    max_range_uj: int
    last_raw_uj: int
    total_uj: int = 0


def cpu_model_name(cpuinfo_text: str) -> str | None:
    """The first ``model name`` in the text of ``/proc/cpuinfo``, whitespace collapsed."""
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return None


def _read_cpu_model(cpuinfo: Path) -> str:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown CPU"
    return cpu_model_name(text) or "unknown CPU"


def _read_int(path: Path) -> int:
    """An integer sysfs attribute; OSError and ValueError propagate to the caller."""
    return int(path.read_text(encoding="ascii").strip())


def _read_name(zone_dir: Path) -> str:
    return (zone_dir / "name").read_text(encoding="ascii").strip()


def _subzone_dirs(root: Path, package_dir: Path, index: int) -> list[Path]:
    """Children ``intel-rapl:N:M`` of package N.

    Real sysfs nests them in the package's directory and also links them flat in
    ``/sys/class/powercap``; look in both and keep one per name.
    """
    pattern = re.compile(rf"intel-rapl:{index}:\d+")
    found: dict[str, Path] = {}
    for parent in (package_dir, root):
        try:
            entries = sorted(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.name not in found:
                found[entry.name] = entry
    return [found[key] for key in sorted(found, key=lambda name: int(name.rsplit(":", 1)[1]))]


class RaplMeter:
    """Measured CPU package (and DRAM) energy from RAPL counters in powercap sysfs.

    Domains are ``"cpu:<package>"`` per package zone and ``"dram:<package>"`` per DRAM
    subzone, each in joules since the meter was created. The counters cover the whole
    socket: other processes running on it are included.
    """

    name: str = NAME
    estimated: bool = False
    update_period_s: float = UPDATE_PERIOD_S

    def __init__(
        self,
        *,
        root: Path = Path("/sys/class/powercap"),
        cpuinfo: Path = Path("/proc/cpuinfo"),
    ) -> None:
        self.root = Path(root)
        self._zones = self._discover()
        packages = sum(1 for zone in self._zones if zone.domain.startswith("cpu:"))
        has_dram = any(zone.domain.startswith("dram:") for zone in self._zones)
        self.hardware: str = f"{_read_cpu_model(Path(cpuinfo))} x{packages} (RAPL)"
        what = f"{packages} CPU package{'s' if packages != 1 else ''}"
        if has_dram:
            what += " and their DRAM"
        self.provenance: str = (
            f"measured: RAPL energy counters of {what} read from {self.root}; whole-socket "
            "energy including other processes on the same CPUs (psys and GPU not included)"
        )

    # -- discovery -------------------------------------------------------------------------

    def _discover(self) -> list[_Zone]:
        if not self.root.is_dir():
            raise MeterUnavailable(
                NAME,
                f"no RAPL powercap interface: {self.root} does not exist. This happens when "
                "the system is not Linux, the CPU is not an Intel or AMD x86 CPU with RAPL, the "
                "RAPL driver is not loaded, or a VM or container hides the counters.",
                "on bare-metal Linux load the driver (`sudo modprobe intel_rapl_msr`); in a "
                "container bind-mount /sys/class/powercap read-only; otherwise choose another "
                "meter, e.g. the 'codecarbon' estimate.",
            )
        packages = sorted(
            (int(match.group(1)), entry)
            for entry in self.root.iterdir()
            if (match := _PACKAGE_ZONE.fullmatch(entry.name))
        )
        zones: list[_Zone] = []
        seen: set[str] = set()
        for index, package_dir in packages:
            zone_name = self._setup_name(package_dir)
            # psys (platform) and anything else that is not a package overlaps the packages.
            if not zone_name.startswith("package"):
                continue
            label = zone_name if zone_name not in seen else package_dir.name
            seen.add(label)
            zones.append(self._setup_zone(f"cpu:{label}", package_dir))
            for sub_dir in _subzone_dirs(self.root, package_dir, index):
                # core/uncore are inside the package counter; dram is outside it.
                if self._setup_name(sub_dir) == "dram":
                    zones.append(self._setup_zone(f"dram:{label}", sub_dir))
        if not any(zone.domain.startswith("cpu:") for zone in zones):
            raise MeterUnavailable(
                NAME,
                f"{self.root} has no RAPL package zones (intel-rapl:N named package-N). The "
                "RAPL driver may not be loaded, or the CPU does not expose package energy.",
                "on bare-metal Linux load the driver (`sudo modprobe intel_rapl_msr`), or choose "
                "another meter, e.g. the 'codecarbon' estimate.",
            )
        return zones

    def _setup_name(self, zone_dir: Path) -> str:
        try:
            return _read_name(zone_dir)
        except OSError as exc:
            raise self._unreadable(zone_dir / "name", exc) from None

    def _setup_zone(self, domain: str, zone_dir: Path) -> _Zone:
        energy_path = zone_dir / "energy_uj"
        range_path = zone_dir / "max_energy_range_uj"
        values: list[int] = []
        for path in (energy_path, range_path):
            try:
                values.append(_read_int(path))
            except OSError as exc:
                raise self._unreadable(path, exc) from None
            except ValueError:
                raise MeterUnavailable(
                    NAME,
                    f"{path} does not hold an integer, so it is not a RAPL counter.",
                    "check the kernel's powercap driver, or choose another meter.",
                ) from None
        raw_uj, max_range_uj = values
        if max_range_uj <= 0:
            raise MeterUnavailable(
                NAME,
                f"{range_path} is {max_range_uj}, so counter wraparound cannot be corrected.",
                "check the kernel's powercap driver, or choose another meter.",
            )
        return _Zone(domain=domain, path=energy_path, max_range_uj=max_range_uj, last_raw_uj=raw_uj)

    @staticmethod
    def _unreadable(path: Path, exc: OSError) -> MeterUnavailable:
        if isinstance(exc, PermissionError):
            return MeterUnavailable(
                NAME,
                f"permission denied reading {path}. Since November 2020 (CVE-2020-8694, "
                "'PLATYPUS') Linux makes RAPL energy counters readable by root only.",
                _PERMISSION_FIX,
            )
        return MeterUnavailable(
            NAME,
            f"cannot read {path}: {exc.strerror or exc}.",
            "check that the powercap RAPL driver is loaded and the file is readable, or "
            "choose another meter, e.g. the 'codecarbon' estimate.",
        )

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> dict[str, float]:
        """Joules per domain since the meter was created; never decreases."""
        raws: list[int] = []
        for zone in self._zones:
            try:
                raws.append(_read_int(zone.path))
            except OSError as exc:
                raise MeterError(
                    f"RAPL counter {zone.path} ({zone.domain}) could not be read mid-run: "
                    f"{exc.strerror or exc}. The zone vanished or lost read permission "
                    "(driver unloaded, CPU offlined, permissions changed)."
                ) from None
            except ValueError:
                raise MeterError(
                    f"RAPL counter {zone.path} ({zone.domain}) does not hold an integer"
                ) from None
        # Update state only once every zone has been read, so a failed read changes nothing.
        for zone, raw_uj in zip(self._zones, raws, strict=True):
            if raw_uj > zone.max_range_uj:
                raise MeterError(
                    f"RAPL counter {zone.path} ({zone.domain}) reads {raw_uj} uJ, above its "
                    f"max_energy_range_uj of {zone.max_range_uj}"
                )
        for zone, raw_uj in zip(self._zones, raws, strict=True):
            step_uj = raw_uj - zone.last_raw_uj
            if step_uj < 0:  # wrapped past max_energy_range_uj back to zero
                step_uj += zone.max_range_uj
            zone.total_uj += step_uj
            zone.last_raw_uj = raw_uj
        return {zone.domain: zone.total_uj / UJ_PER_J for zone in self._zones}

    def close(self) -> None:
        """Nothing to release: each read opens and closes its files."""

    @property
    def domains(self) -> tuple[str, ...]:
        """The domain names :meth:`read` returns, in order."""
        return tuple(zone.domain for zone in self._zones)
