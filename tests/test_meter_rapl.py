"""The rapl meter against fake powercap sysfs trees built in tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_energy.errors import MeterError, MeterUnavailable
from pytest_energy.meters.base import Meter, provenance, update_period_s
from pytest_energy.meters.rapl import RaplMeter, cpu_model_name

MAX_UJ = 262_143_328_850  # a real max_energy_range_uj (2**32 units of 61 uJ)
CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
physical id\t: 0

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
physical id\t: 1
"""


def zone(directory: Path, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    directory.mkdir(parents=True)
    (directory / "name").write_text(f"{name}\n")
    (directory / "energy_uj").write_text(f"{energy_uj}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return directory


def set_energy(directory: Path, energy_uj: int) -> None:
    (directory / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "powercap"
    path.mkdir()
    (path / "intel-rapl").mkdir()  # the control-type directory real sysfs has
    return path


def test_one_package(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 5_000_000)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    assert isinstance(meter, Meter)
    assert meter.name == "rapl"
    assert meter.estimated is False
    assert update_period_s(meter) == 0.001
    assert meter.hardware == "AMD EPYC 7B13 64-Core Processor x1 (RAPL)"
    assert "1 CPU package read from" in provenance(meter)
    assert meter.read() == {"cpu:package-0": 0.0}
    set_energy(pkg, 6_250_000)
    assert meter.read() == {"cpu:package-0": 1.25}
    set_energy(pkg, 6_250_001)
    assert meter.read() == {"cpu:package-0": 1.250001}
    meter.close()


def test_two_packages_and_dram(root: Path, cpuinfo: Path) -> None:
    pkg0 = zone(root / "intel-rapl:0", "package-0", 1_000_000)
    dram0 = zone(root / "intel-rapl:0" / "intel-rapl:0:0", "dram", 100, max_uj=65_712_999_613)
    pkg1 = zone(root / "intel-rapl:1", "package-1", 2_000_000)
    dram1 = zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 200, max_uj=65_712_999_613)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    assert meter.hardware == "AMD EPYC 7B13 64-Core Processor x2 (RAPL)"
    assert "2 CPU packages and their DRAM" in meter.provenance
    assert meter.domains == ("cpu:package-0", "dram:package-0", "cpu:package-1", "dram:package-1")
    set_energy(pkg0, 11_000_000)
    set_energy(dram0, 500_100)
    set_energy(pkg1, 32_000_000)
    set_energy(dram1, 2_000_200)
    assert meter.read() == {
        "cpu:package-0": 10.0,
        "dram:package-0": 0.5,
        "cpu:package-1": 30.0,
        "dram:package-1": 2.0,
    }


def test_core_and_uncore_are_not_added_to_their_package(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    core = zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 0)
    uncore = zone(root / "intel-rapl:0" / "intel-rapl:0:1", "uncore", 0)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    set_energy(pkg, 3_000_000)  # the package counter already includes core and uncore
    set_energy(core, 2_000_000)
    set_energy(uncore, 500_000)
    assert meter.read() == {"cpu:package-0": 3.0}


def test_subzones_linked_flat_in_the_class_directory_count_once(root: Path, cpuinfo: Path) -> None:
    # Real /sys/class/powercap lists intel-rapl:0:0 both nested and as a top-level link.
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    dram = zone(root / "intel-rapl:0" / "intel-rapl:0:0", "dram", 0)
    (root / "intel-rapl:0:0").symlink_to(dram)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    set_energy(pkg, 1_000_000)
    set_energy(dram, 250_000)
    assert meter.read() == {"cpu:package-0": 1.0, "dram:package-0": 0.25}


def test_psys_and_mmio_are_excluded(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    psys = zone(root / "intel-rapl:1", "psys", 0)
    mmio = zone(root / "intel-rapl-mmio:0", "package-0", 0)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    assert meter.hardware.endswith(" x1 (RAPL)")
    set_energy(pkg, 4_000_000)
    set_energy(psys, 9_000_000)
    set_energy(mmio, 4_000_000)
    assert meter.read() == {"cpu:package-0": 4.0}


def test_wraparound_between_reads(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 9_000_000, max_uj=10_000_000)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    set_energy(pkg, 9_500_000)
    assert meter.read() == {"cpu:package-0": 0.5}
    set_energy(pkg, 1_500_000)  # 0.5 J to the top, wrap, 1.5 J more
    assert meter.read() == {"cpu:package-0": 2.5}
    set_energy(pkg, 1_500_000)
    assert meter.read() == {"cpu:package-0": 2.5}


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(0, 999),
    steps=st.lists(st.integers(0, 999), max_size=20),
)
def test_totals_equal_the_sum_of_steps_whatever_the_wraps(
    root: Path, cpuinfo: Path, start: int, steps: list[int]
) -> None:
    # Each step is below the range, i.e. read() runs at least once per wrap period.
    shutil.rmtree(root / "intel-rapl:0", ignore_errors=True)
    pkg = zone(root / "intel-rapl:0", "package-0", start, max_uj=1000)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    raw, previous = start, 0.0
    for step in steps:
        raw = (raw + step) % 1000
        set_energy(pkg, raw)
        total = meter.read()["cpu:package-0"]
        assert total >= previous
        previous = total
    assert previous == sum(steps) / 1_000_000


def test_permission_denied_is_unavailable_with_the_fix(
    root: Path, cpuinfo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    energy = pkg / "energy_uj"
    energy.chmod(0o000)  # enough for a normal user; root reads it anyway, so also inject
    read_text = Path.read_text

    def deny(self: Path, *args: object, **kwargs: object) -> str:
        if self == energy:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(MeterUnavailable) as info:
        RaplMeter(root=root, cpuinfo=cpuinfo)
    message = str(info.value)
    assert "permission denied" in message
    assert str(energy) in message
    assert "CVE-2020-8694" in message
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in info.value.fix
    assert "run the tests as root" in info.value.fix
    energy.chmod(0o644)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file")
def test_mode_000_counter_is_unavailable_for_a_normal_user(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    (pkg / "energy_uj").chmod(0o000)
    with pytest.raises(MeterUnavailable, match="permission denied"):
        RaplMeter(root=root, cpuinfo=cpuinfo)


def test_missing_root_is_unavailable(tmp_path: Path, cpuinfo: Path) -> None:
    with pytest.raises(MeterUnavailable) as info:
        RaplMeter(root=tmp_path / "absent", cpuinfo=cpuinfo)
    assert info.value.meter == "rapl"
    assert "no RAPL powercap interface" in info.value.reason
    assert "VM or container" in info.value.reason
    assert "codecarbon" in info.value.fix


def test_root_without_package_zones_is_unavailable(root: Path, cpuinfo: Path) -> None:
    zone(root / "intel-rapl:0", "psys", 0)
    with pytest.raises(MeterUnavailable, match="no RAPL package zones"):
        RaplMeter(root=root, cpuinfo=cpuinfo)


def test_zone_vanishing_mid_run_is_a_meter_error(root: Path, cpuinfo: Path) -> None:
    pkg0 = zone(root / "intel-rapl:0", "package-0", 0)
    zone(root / "intel-rapl:1", "package-1", 0)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    set_energy(pkg0, 1_000_000)
    shutil.rmtree(root / "intel-rapl:1")
    with pytest.raises(MeterError, match=r"intel-rapl:1/energy_uj \(cpu:package-1\)"):
        meter.read()
    # A failed read updates nothing: no made-up value, and the next good read is exact.
    zone(root / "intel-rapl:1", "package-1", 0)
    assert meter.read() == {"cpu:package-0": 1.0, "cpu:package-1": 0.0}


def test_counter_becoming_unreadable_mid_run_is_a_meter_error(
    root: Path, cpuinfo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    read_text = Path.read_text

    def deny(self: Path, *args: object, **kwargs: object) -> str:
        if self == pkg / "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(MeterError, match="Permission denied"):
        meter.read()


def test_counter_above_its_range_is_a_meter_error(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0, max_uj=1000)
    meter = RaplMeter(root=root, cpuinfo=cpuinfo)
    set_energy(pkg, 1001)
    with pytest.raises(MeterError, match="above its max_energy_range_uj"):
        meter.read()


def test_missing_max_energy_range_is_unavailable(root: Path, cpuinfo: Path) -> None:
    pkg = zone(root / "intel-rapl:0", "package-0", 0)
    (pkg / "max_energy_range_uj").unlink()
    with pytest.raises(MeterUnavailable, match="max_energy_range_uj"):
        RaplMeter(root=root, cpuinfo=cpuinfo)


def test_unreadable_cpuinfo_still_names_the_hardware(root: Path, tmp_path: Path) -> None:
    zone(root / "intel-rapl:0", "package-0", 0)
    meter = RaplMeter(root=root, cpuinfo=tmp_path / "no-cpuinfo")
    assert meter.hardware == "unknown CPU x1 (RAPL)"


def test_cpu_model_name_parses_proc_cpuinfo() -> None:
    assert cpu_model_name(CPUINFO) == "AMD EPYC 7B13 64-Core Processor"
    assert cpu_model_name("model name\t:   Intel(R)  Xeon(R) CPU\n") == "Intel(R) Xeon(R) CPU"
    assert cpu_model_name("processor\t: 0\nmodel\t: 85\n") is None
