"""The apple meter against a fake ``zeus_apple_silicon`` (tests/fake_zeus_apple_silicon.py).

Names and units follow zeus-apple-silicon 1.1.0: README "API Reference" (``AppleEnergyMonitor``,
``get_cumulative_energy()``, "All energy values are reported in mJ", ``None`` for channels a
chip lacks) and "How It Works" (IOReport "Energy Model" group, no sudo, model-based values at
1 mJ resolution, windows under ~10 ms dominated by quantisation),
https://github.com/ml-energy/zeus-apple-silicon. Zeus itself uses the same library for macOS
(``zeus/device/soc/apple.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_zeus_apple_silicon import AppleEnergyMetrics, Chip, FakeZeusAppleSilicon

from pytest_energy import meters
from pytest_energy.errors import MeterError, MeterUnavailable
from pytest_energy.meters.apple import INSTALL_FIX, AppleMeter
from pytest_energy.meters.base import Meter, provenance, update_period_s

ROOT = Path(__file__).resolve().parents[1]
MAC = ("darwin", "arm64")


def make(chip: Chip | None = None) -> AppleMeter:
    return AppleMeter(
        zeus_apple_silicon=FakeZeusAppleSilicon(chip), system=MAC, chip="Apple M3 Pro"
    )


def test_importing_the_module_does_not_import_the_library() -> None:
    code = (
        "import sys, pytest_energy.meters.apple as m; "
        "assert 'zeus_apple_silicon' not in sys.modules; print(m.AppleMeter.name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "apple"


def test_cpu_gpu_ane_and_dram_in_joules() -> None:
    chip = Chip()
    meter = make(chip)
    assert isinstance(meter, Meter)
    assert meter.name == "apple" and meter.estimated is False
    assert meter.hardware == "Apple M3 Pro (IOReport)"
    assert update_period_s(meter) == 0.01
    assert meter.devices == ("apple-soc",)
    assert meter.read() == {"cpu:soc": 10.0, "gpu:soc": 3.0, "ane:soc": 0.0, "dram:soc": 2.0}
    chip.spend(cpu_total_mj=1_500, gpu_mj=250, ane_mj=4, dram_mj=1, gpu_sram_mj=999)
    assert meter.read() == {"cpu:soc": 11.5, "gpu:soc": 3.25, "ane:soc": 0.004, "dram:soc": 2.001}
    text = provenance(meter)
    assert "IOReport energy model of CPU, GPU, ANE, DRAM" in text and "every process" in text
    meters.validate(meter, "apple")
    meter.close()
    with pytest.raises(MeterError, match="after close"):
        meter.read()


def test_channels_the_chip_lacks_are_not_domains() -> None:
    meter = make(Chip(AppleEnergyMetrics(cpu_total_mj=5, gpu_mj=7)))  # no ANE, no DRAM
    assert meter.read() == {"cpu:soc": 0.005, "gpu:soc": 0.007}
    assert "of CPU, GPU read" in meter.provenance


def test_a_channel_that_disappears_mid_run_is_an_error() -> None:
    chip = Chip()
    meter = make(chip)
    chip.counters.ane_mj = None
    with pytest.raises(MeterError, match="stopped reporting ane_mj"):
        meter.read()


def test_a_failing_read_is_a_meter_error() -> None:
    chip = Chip()
    meter = make(chip)
    chip.read_error = "IOReportCreateSamples failed"
    with pytest.raises(MeterError, match="IOReportCreateSamples failed"):
        meter.read()


@pytest.mark.parametrize("system", [("linux", "x86_64"), ("darwin", "x86_64")])
def test_not_apple_silicon_is_unavailable(system: tuple[str, str]) -> None:
    with pytest.raises(MeterUnavailable) as info:
        AppleMeter(zeus_apple_silicon=FakeZeusAppleSilicon(), system=system)
    assert f"this is {system[0]} on {system[1]}" in info.value.reason


def test_missing_library_is_unavailable_with_the_install_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    with pytest.raises(MeterUnavailable) as info:
        AppleMeter(system=MAC, chip="Apple M1")
    assert "zeus-apple-silicon is not installed" in info.value.reason
    assert info.value.fix == INSTALL_FIX and "pytest-energy[apple]" in INSTALL_FIX


def test_a_failed_subscription_is_unavailable() -> None:
    chip = Chip(subscribe_error="Failed to create IOReport subscription.")
    with pytest.raises(MeterUnavailable, match=r"could not subscribe.*Failed to create IOReport"):
        make(chip)


def test_a_chip_with_no_known_channel_is_unavailable() -> None:
    with pytest.raises(MeterUnavailable, match="no CPU, GPU, ANE or DRAM energy channel"):
        make(Chip(AppleEnergyMetrics(gpu_sram_mj=3)))
