"""The jetson meter against fake hwmon trees in tmp_path.

Files and units follow the kernel's hwmon documentation: sysfs-interface.rst (``in*_input``
millivolt, ``curr*_input`` milliampere, ``power*_input`` microwatt, ``update_interval``
millisecond, ``*_label`` text), ina3221.rst (``in[123]_label``, ``in[123]_enable``,
``in[123]_input`` bus voltage, ``curr[123]_input``) and ina238.rst (``power1_input``,
``in1_input`` bus voltage, ``curr1_input``), https://docs.kernel.org/hwmon/. Rail names are
those Jetson Linux gives the on-module monitors (Orin Nano/NX: VDD_IN, VDD_CPU_GPU_CV, VDD_SOC;
AGX Orin: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 and VDDQ_VDD2_1V8AO on a second INA3221 whose
other channels are NC), as Zeus's ``zeus/device/soc/jetson.py`` and NVIDIA's Jetson Linux
power guides list them; Thor adds an INA238 on the module input (NVIDIA developer forum,
"Question about power monitor with additional load on Jetson Thor").
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pytest_energy import meters
from pytest_energy.errors import MeterError, MeterUnavailable
from pytest_energy.meters.base import Meter, update_period_s
from pytest_energy.meters.jetson import POLLER_THREAD_NAME, JetsonMeter, find_rails


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def ina3221(
    root: Path, index: int, channels: dict[int, tuple[str, int, int]], update_ms: int | None = 10
) -> Path:
    """An INA3221 hwmon directory; channels map 1..3 to (label, millivolts, milliamps)."""
    directory = root / f"hwmon{index}"
    directory.mkdir(parents=True)
    (directory / "name").write_text("ina3221\n")
    if update_ms is not None:
        (directory / "update_interval").write_text(f"{update_ms}\n")
    for channel, (label, mv, ma) in channels.items():
        (directory / f"in{channel}_label").write_text(f"{label}\n")
        (directory / f"in{channel}_enable").write_text("1\n")
        (directory / f"in{channel}_input").write_text(f"{mv}\n")
        (directory / f"curr{channel}_input").write_text(f"{ma}\n")
        (directory / f"in{channel + 3}_input").write_text("4000\n")  # shunt voltage, uV
    return directory


def set_current(directory: Path, channel: int, ma: int) -> None:
    (directory / f"curr{channel}_input").write_text(f"{ma}\n")


def ina238(root: Path, index: int, uw: int, label: str | None = None) -> Path:
    directory = root / f"hwmon{index}"
    directory.mkdir(parents=True)
    (directory / "name").write_text("ina238\n")
    (directory / "in0_input").write_text("12\n")  # shunt voltage, mV
    (directory / "in1_input").write_text("19000\n")  # bus voltage, mV
    (directory / "curr1_input").write_text(f"{uw // 19000}\n")
    (directory / "power1_input").write_text(f"{uw}\n")
    if label is not None:
        (directory / "label").write_text(f"{label}\n")
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "hwmon"
    path.mkdir()
    thermal = path / "hwmon0"
    thermal.mkdir()
    (thermal / "name").write_text("cpu_thermal\n")
    (thermal / "temp1_input").write_text("45000\n")
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    return path


def orin_nano(root: Path) -> Path:
    return ina3221(
        root,
        1,
        {1: ("VDD_IN", 5000, 1200), 2: ("VDD_CPU_GPU_CV", 5000, 400), 3: ("VDD_SOC", 5000, 300)},
    )


def test_the_input_rail_alone_is_metered_and_integrated(root: Path, model: Path) -> None:
    chip = orin_nano(root)
    clock = Clock()
    meter = JetsonMeter(root=root, poll=False, clock=clock, model=model)
    assert isinstance(meter, Meter)
    assert meter.name == "jetson" and meter.estimated is False
    assert meter.hardware == "NVIDIA Jetson Orin Nano Developer Kit (VDD_IN)"
    assert meter.devices == ("jetson-module",)
    assert update_period_s(meter) == 0.01  # the chip's update_interval of 10 ms
    assert meter.read() == {"jetson:VDD_IN": 0.0}
    clock.now_s = 2.0
    assert meter.read() == {"jetson:VDD_IN": pytest.approx(12.0)}  # 5 V x 1.2 A for 2 s
    set_current(chip, 1, 2000)  # 10 W
    clock.now_s = 3.0
    assert meter.read() == {"jetson:VDD_IN": pytest.approx(12.0 + 8.0)}  # trapezoid: 8 W mean
    text = meter.provenance
    assert "INA3221 rail VDD_IN sampled every 10 ms and integrated by the trapezoid rule" in text
    assert "uncertainty: load changes shorter than 10 ms" in text
    assert "VDD_CPU_GPU_CV, VDD_SOC not added (inside the input rail)" in text
    meters.validate(meter, "jetson")
    meter.close()
    with pytest.raises(MeterError, match="after close"):
        meter.read()


def test_without_an_input_rail_every_connected_rail_is_metered(root: Path, model: Path) -> None:
    ina3221(
        root,
        1,
        {
            1: ("VDD_GPU_SOC", 5000, 600),
            2: ("VDD_CPU_CV", 5000, 200),
            3: ("VIN_SYS_5V0", 5000, 700),
        },
    )
    ina3221(root, 2, {1: ("NC", 0, 0), 2: ("VDDQ_VDD2_1V8AO", 5000, 100), 3: ("NC", 0, 0)})
    clock = Clock()
    meter = JetsonMeter(root=root, poll=False, clock=clock, model=model)
    clock.now_s = 1.0
    energy = meter.read()
    assert list(energy) == [
        "jetson:VDD_GPU_SOC",
        "jetson:VDD_CPU_CV",
        "jetson:VIN_SYS_5V0",
        "jetson:VDDQ_VDD2_1V8AO",
    ]
    assert sum(energy.values()) == pytest.approx(5.0 * 1.6)
    assert "not added" not in meter.provenance


def test_thor_meters_its_ina238_module_input_in_microwatts(root: Path, model: Path) -> None:
    orin_nano_like = {1: ("VDD_GPU", 5000, 1000), 2: ("VDD_CPU_SOC_MSS", 5000, 500)}
    ina3221(root, 1, orin_nano_like)
    ina238(root, 2, uw=30_000_000)
    clock = Clock()
    meter = JetsonMeter(root=root, poll=False, clock=clock, model=model)
    clock.now_s = 0.5
    assert meter.read() == {"jetson:ina238-hwmon2-1": pytest.approx(15.0)}
    assert "INA238 rail" in meter.provenance
    assert "VDD_GPU, VDD_CPU_SOC_MSS not added" in meter.provenance


def test_rails_can_be_chosen_by_label(root: Path, model: Path) -> None:
    orin_nano(root)
    meter = JetsonMeter(root=root, rails=("vdd_soc", "VDD_CPU_GPU_CV"), poll=False, model=model)
    assert list(meter.read()) == ["jetson:VDD_SOC", "jetson:VDD_CPU_GPU_CV"]
    assert "VDD_IN not added (not asked for)" in meter.provenance
    with pytest.raises(MeterUnavailable, match=r"rails VDD_GPU were asked for.*VDD_IN, VDD_CPU"):
        JetsonMeter(root=root, rails=("VDD_GPU",), poll=False, model=model)


def test_two_input_rails_are_refused_not_added(root: Path, model: Path) -> None:
    orin_nano(root)
    ina238(root, 2, uw=30_000_000, label="VIN")
    with pytest.raises(MeterUnavailable) as info:
        JetsonMeter(root=root, poll=False, model=model)
    assert "several input rails (VDD_IN, VIN)" in info.value.reason
    assert "JetsonMeter(rails=" in info.value.fix


def test_disabled_and_unlabelled_channels(root: Path) -> None:
    chip = ina3221(root, 1, {1: ("VDD_IN", 5000, 1000), 2: ("VDD_SOC", 5000, 100)})
    (chip / "in2_enable").write_text("0\n")
    assert [rail.label for rail in find_rails(root)] == ["VDD_IN"]
    (chip / "in1_label").unlink()
    assert [rail.label for rail in find_rails(root)] == ["ina3221-hwmon1-1"]


@pytest.mark.parametrize(
    ("update_ms", "period_s"), [(None, 0.05), (2, 0.01), (140, 0.14), (5000, 1.0)]
)
def test_the_sample_period_follows_the_chip_within_bounds(
    root: Path, model: Path, update_ms: int | None, period_s: float
) -> None:
    ina3221(root, 1, {1: ("VDD_IN", 5000, 1000)}, update_ms=update_ms)
    meter = JetsonMeter(root=root, poll=False, model=model)
    assert meter.update_period_s == pytest.approx(period_s)


def test_no_power_monitor_is_unavailable(root: Path, model: Path) -> None:
    with pytest.raises(MeterUnavailable) as info:
        JetsonMeter(root=root, poll=False, model=model)
    assert "no INA3221 or INA238 power monitor channel" in info.value.reason
    assert "/sys/class/hwmon" in info.value.fix
    with pytest.raises(MeterUnavailable):
        JetsonMeter(root=root / "missing", poll=False, model=model)


def test_an_ina3221_on_another_board_is_not_a_jetson(root: Path, tmp_path: Path) -> None:
    orin_nano(root)
    other = tmp_path / "model"
    other.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    missing = tmp_path / "nv_tegra_release"
    with pytest.raises(MeterUnavailable, match="not an NVIDIA Jetson"):
        JetsonMeter(root=root, poll=False, model=other, tegra_release=missing)
    missing.write_text("# R36 (release), REVISION: 4.3\n")  # Jetson Linux on a custom carrier
    assert JetsonMeter(root=root, poll=False, model=other, tegra_release=missing).rails


def test_an_unreadable_rail_is_unavailable_then_a_meter_error_mid_run(
    root: Path, model: Path
) -> None:
    chip = orin_nano(root)
    (chip / "curr1_input").write_text("garbage\n")
    with pytest.raises(MeterUnavailable, match="cannot read rail VDD_IN"):
        JetsonMeter(root=root, poll=False, model=model)
    set_current(chip, 1, 1000)
    meter = JetsonMeter(root=root, poll=False, model=model)
    (chip / "in1_input").unlink()
    with pytest.raises(MeterError, match=r"rail VDD_IN .* could not be read mid-run"):
        meter.read()


def test_the_background_thread_samples_and_stops(root: Path, model: Path) -> None:
    orin_nano(root)  # a constant 6 W
    samples = threading.Semaphore(0)

    def clock() -> float:  # the poller reads it once per sample
        samples.release()
        return time.monotonic()

    meter = JetsonMeter(root=root, poll_interval_s=0.001, clock=clock, model=model)
    threads = [t for t in threading.enumerate() if t.name == POLLER_THREAD_NAME]
    assert len(threads) == 1
    before_first = time.monotonic()
    first = meter.read()["jetson:VDD_IN"]
    after_first = time.monotonic()
    for _ in range(5):  # the thread samples on its own
        assert samples.acquire(timeout=10)
    before_second = time.monotonic()
    second = meter.read()["jetson:VDD_IN"]
    after_second = time.monotonic()
    assert 6.0 * (before_second - after_first) <= second - first
    assert second - first <= 6.0 * (after_second - before_first)
    meter.close()
    meter.close()
    assert not threads[0].is_alive()
