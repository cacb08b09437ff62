"""The codecarbon estimate: CPU time times a TDP share from CodeCarbon's offline table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytest_energy.errors import ConfigError, CounterWentBackwards, MeterUnavailable
from pytest_energy.meters.base import Meter, provenance, update_period_s
from pytest_energy.meters.codecarbon import (
    DEFAULT_W_PER_LOGICAL_CPU,
    CodeCarbonMeter,
    cpu_tdp_w,
    match_cpu_power,
    process_cpu_s,
)

# Rows of codecarbon/data/hardware/cpu_power.csv: "AMD EPYC 7763,280.0",
# "Intel Xeon Platinum 8275CL,240", "Intel Core i5-1335U,55.0".
EPYC_7763 = "AMD EPYC 7763 64-Core Processor"
UNKNOWN = "Imaginary Cores 9000"


def test_meter_contract_and_exact_joules() -> None:
    times = iter([0.0, 1.5, 1.5, 4.0])
    meter = CodeCarbonMeter(
        cpu_model=EPYC_7763, logical_cpus=4, packages=1, process_time=lambda: next(times)
    )
    assert isinstance(meter, Meter)
    assert meter.name == "codecarbon"
    assert meter.estimated is True
    assert update_period_s(meter) == 0.01
    assert meter.hardware == "AMD EPYC 7763 64-Core Processor, 4 logical CPUs (no sensor)"
    assert meter.tdp_w == 280.0
    assert meter.tdp_found is True
    assert meter.power_per_cpu_w == 70.0
    # energy_j = cpu_s * 280 W / 4 logical CPUs
    assert [meter.read() for _ in range(4)] == [
        {"cpu:estimate": 0.0},
        {"cpu:estimate": 105.0},
        {"cpu:estimate": 105.0},
        {"cpu:estimate": 280.0},
    ]
    meter.close()


def test_provenance_states_the_model_and_the_table_entry() -> None:
    meter = CodeCarbonMeter(cpu_model=EPYC_7763, logical_cpus=128, packages=2)
    text = provenance(meter)
    assert text.startswith("estimated: process CPU time")
    assert "* 280 W TDP * 2 packages / 128 logical CPUs" in text
    assert "cpu_power table: AMD EPYC 7763" in text
    assert "GPU, DRAM and idle power not included" in text
    assert meter.hardware == "AMD EPYC 7763 64-Core Processor x2, 128 logical CPUs (no sensor)"
    assert meter.power_per_cpu_w == 4.375  # 280 * 2 / 128


def test_cpu_not_in_the_table_uses_codecarbons_default_and_says_so() -> None:
    times = iter([2.0])
    meter = CodeCarbonMeter(
        cpu_model=UNKNOWN, logical_cpus=8, packages=2, process_time=lambda: next(times)
    )
    assert meter.tdp_found is False
    assert meter.tdp_w == 32.0  # 4 W for each of 8 logical CPUs, machine-wide
    assert meter.read() == {"cpu:estimate": 8.0}  # 2 CPU-seconds * 4 W
    assert "CPU 'Imaginary Cores 9000' not in CodeCarbon" in meter.provenance
    assert "cpu_power table; assumed 32 W" in meter.provenance
    assert "4 W per logical CPU" in meter.provenance


def test_default_matches_codecarbon_constant() -> None:
    from codecarbon.core import cpu

    assert cpu.DEFAULT_POWER_PER_CORE == DEFAULT_W_PER_LOGICAL_CPU


@pytest.mark.parametrize(
    ("brand", "table_name", "tdp_w"),
    [
        ("AMD EPYC 7763", "AMD EPYC 7763", 280.0),
        (EPYC_7763, "AMD EPYC 7763", 280.0),
        ("Intel(R) Xeon(R) Platinum 8275CL CPU @ 3.00GHz", "Intel Xeon Platinum 8275CL", 240.0),
        ("13th Gen Intel(R) Core(TM) i5-1335U", "Intel Core i5-1335U", 55.0),
    ],
)
def test_match_real_brand_strings(brand: str, table_name: str, tdp_w: float) -> None:
    assert match_cpu_power(brand) == (table_name, tdp_w)
    assert cpu_tdp_w(brand) == (tdp_w, True)


@pytest.mark.parametrize("brand", ["AMD EPYC", "Intel Xeon Processor (Cascadelake)", "", UNKNOWN])
def test_unknown_or_vague_models_are_not_matched(brand: str) -> None:
    assert match_cpu_power(brand) is None
    assert cpu_tdp_w(brand, logical_cpus=3) == (12.0, False)


def test_read_is_monotonic_with_the_real_clock() -> None:
    meter = CodeCarbonMeter(cpu_model=UNKNOWN)
    previous = meter.read()["cpu:estimate"]
    for _ in range(50):
        sum(range(2000))
        current = meter.read()["cpu:estimate"]
        assert current >= previous
        previous = current


def test_clock_going_backwards_is_reported() -> None:
    times = iter([2.0, 1.0])
    meter = CodeCarbonMeter(cpu_model=UNKNOWN, process_time=lambda: next(times))
    meter.read()
    with pytest.raises(CounterWentBackwards):
        meter.read()


def test_bad_cpu_counts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="logical_cpus"):
        CodeCarbonMeter(cpu_model=UNKNOWN, logical_cpus=0)


def test_codecarbon_missing_is_unavailable_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(MeterUnavailable) as info:
        CodeCarbonMeter()
    assert info.value.meter == "codecarbon"
    assert info.value.fix == "pip install 'pytest-energy[codecarbon]'"
    with pytest.raises(MeterUnavailable):
        cpu_tdp_w(EPYC_7763)


def test_importing_and_using_the_meter_does_not_import_codecarbon() -> None:
    code = (
        "import sys, threading\n"
        "import pytest_energy.meters.codecarbon as m\n"
        "assert 'codecarbon' not in sys.modules\n"
        "meter = m.CodeCarbonMeter()\n"
        "meter.read(); meter.close()\n"
        "assert 'codecarbon' not in sys.modules, 'constructing imported codecarbon'\n"
        "assert threading.active_count() == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_waited_for_children_are_counted() -> None:
    before = process_cpu_s()
    burn = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert process_cpu_s() - before >= 0.2


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs os.waitid (POSIX)")
def test_a_busy_neighbour_does_not_move_the_estimate() -> None:
    # The neighbour burns 0.3 CPU-seconds inside the window while this process waits for
    # it to exit without reaping it (WNOWAIT), so its time is never charged to us.
    meter = CodeCarbonMeter(cpu_model=UNKNOWN, logical_cpus=1)
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    start = meter.read()["cpu:estimate"]
    neighbour = subprocess.Popen([sys.executable, "-c", burn])
    try:
        os.waitid(os.P_PID, neighbour.pid, os.WEXITED | os.WNOWAIT)
        end = meter.read()["cpu:estimate"]
    finally:
        assert neighbour.wait() == 0
    # Charged, the neighbour would add 1.2 J (0.3 s at 4 W); we only spawned and waited.
    assert end - start < 0.05 * DEFAULT_W_PER_LOGICAL_CPU


# -- torch's intra-op threads (issue 14, item 9) -----------------------------------------------


class _FakeTorch:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def get_num_threads(self) -> int:
        return self.threads


def test_thread_warning_when_torch_runs_several_threads() -> None:
    from pytest_energy.meters.codecarbon import thread_warning

    text = thread_warning({"torch": _FakeTorch(4)})
    assert text is not None
    assert "torch runs 4 intra-op threads" in text
    assert "spin-wait" in text
    assert "torch.set_num_threads(1)" in text and "--energy-meter=roofline" in text
    assert "\n" not in text


@pytest.mark.parametrize("modules", [{}, {"torch": _FakeTorch(1)}, {"torch": object()}])
def test_no_thread_warning_without_torch_or_with_one_thread(modules: dict[str, object]) -> None:
    from pytest_energy.meters.codecarbon import thread_warning

    assert thread_warning(modules) is None


def test_thread_warning_reads_the_real_torch_without_importing_it() -> None:
    code = (
        "import sys; from pytest_energy.meters.codecarbon import thread_warning as w\n"
        "assert w() is None and 'torch' not in sys.modules\n"
        "import torch; torch.set_num_threads(2); assert 'torch runs 2' in w()\n"
        "torch.set_num_threads(1); assert w() is None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
