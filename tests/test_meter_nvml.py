"""The nvml meter against a fake pynvml module: no GPU, no driver, no sleeps."""

from __future__ import annotations

import ctypes
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from benchmark_scripts import load_script
from fake_pynvml import (
    CLOCK_REASON_BITS,
    ERROR_CODES,
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_GPU_NOT_FOUND,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_UNKNOWN,
    FakeGpu,
    FakePynvml,
)
from hypothesis import given
from hypothesis import strategies as st

from pytest_energy.errors import MeterError, MeterUnavailable
from pytest_energy.meters import nvml as nvml_module
from pytest_energy.meters.base import Meter
from pytest_energy.meters.nvml import (
    INSTALL_FIX,
    GpuInfo,
    NvmlError,
    NvmlGpuLost,
    NvmlMeter,
    PowerIntegrator,
    PowerPoller,
    hardware_label,
    pci_sort_key,
    resolve_visible_gpus,
)

ROOT = Path(__file__).resolve().parents[1]
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-40GB"
UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
UUID_C = "GPU-bbbbcccc-1111-2222-3333-444444444444"
MIG_1 = "MIG-11111111-aaaa-bbbb-cccc-dddddddddddd"
MIG_2 = "MIG-22222222-aaaa-bbbb-cccc-dddddddddddd"
POLLER_THREAD = "pytest-energy-nvml-poller"


def gpu(
    name: str = H100, uuid: str = UUID_A, bus_id: str = "00000000:01:00.0", **kw: Any
) -> FakeGpu:
    return FakeGpu(name=name, uuid=uuid, bus_id=bus_id, **kw)


@pytest.fixture
def meters() -> Iterator[list[NvmlMeter]]:
    """Meters built in a test; closed afterwards so no poller thread outlives the test."""
    built: list[NvmlMeter] = []
    yield built
    for meter in built:
        meter.close()


def make(
    meters: list[NvmlMeter],
    fake: FakePynvml,
    env: dict[str, str] | None = None,
    **kw: float,
) -> NvmlMeter:
    meter = NvmlMeter(pynvml=fake, environ={} if env is None else env, **kw)
    meters.append(meter)
    return meter


def poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == POLLER_THREAD]


def two_boards_out_of_pci_order() -> FakePynvml:
    """NVML index 0 is the board at PCI 0x81 and index 1 the one at 0x01."""
    return FakePynvml(
        [
            gpu(A100, UUID_B, "00000000:81:00.0", energy_mj=2_000_000),
            gpu(H100, UUID_A, "00000000:01:00.0", energy_mj=1_000_000),
        ]
    )


# -- import and bindings ----------------------------------------------------------------------


def test_importing_the_module_does_not_import_pynvml() -> None:
    code = (
        "import sys, pytest_energy.meters.nvml as m; "
        "assert 'pynvml' not in sys.modules, 'pynvml imported'; print(m.NvmlMeter.name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nvml"


def test_fake_and_meter_agree_with_the_real_bindings() -> None:
    real = pytest.importorskip("pynvml")
    for name, value in ERROR_CODES.items():
        assert getattr(real, name) == value, name
        assert getattr(nvml_module, name, value) == value, name
    for suffix, bit in CLOCK_REASON_BITS.items():
        assert getattr(real, f"nvmlClocksEventReason{suffix}") == bit
        assert getattr(real, f"nvmlClocksThrottleReason{suffix}") == bit
    fake = FakePynvml()
    names = sorted(set(vars(fake)) | set(dir(FakePynvml)))  # a module's dir() omits methods
    faked = [name for name in names if name.startswith("nvml") and callable(getattr(fake, name))]
    assert "nvmlDeviceGetTotalEnergyConsumption" in faked
    assert [name for name in faked if not hasattr(real, name)] == []


def test_missing_pynvml_is_unavailable_with_the_install_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(MeterUnavailable) as info:
        NvmlMeter(environ={})
    assert info.value.meter == "nvml"
    assert "nvidia-ml-py" in info.value.reason
    assert info.value.fix == INSTALL_FIX == "pip install 'pytest-energy[nvml]'"
    assert INSTALL_FIX in str(info.value)


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_nvml_library_loads(), reason="an NVIDIA driver is installed here")
def test_real_pynvml_without_a_driver_is_unavailable() -> None:
    pytest.importorskip("pynvml")
    with pytest.raises(MeterUnavailable) as info:
        NvmlMeter(environ={})
    assert "libnvidia-ml.so.1" in info.value.reason
    assert "install the NVIDIA driver" in info.value.fix
    assert INSTALL_FIX in info.value.fix


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "was not found", "install the NVIDIA driver"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded", "install the NVIDIA driver"),
        (NVML_ERROR_NO_PERMISSION, "/dev/nvidia*", "access to /dev/nvidia*"),
        (NVML_ERROR_UNKNOWN, "nvmlInit failed with NVML error 999", "nvidia-smi"),
    ],
)
def test_nvml_init_failure_is_unavailable(code: int, reason: str, fix: str) -> None:
    fake = FakePynvml([gpu()], init_error=code)
    with pytest.raises(MeterUnavailable) as info:
        NvmlMeter(pynvml=fake, environ={})
    assert reason in info.value.reason
    assert fix in info.value.fix
    assert fake.init_calls == 1


def test_no_gpu_at_all_is_unavailable_and_shuts_nvml_down() -> None:
    fake = FakePynvml([])
    with pytest.raises(MeterUnavailable, match="finds no NVIDIA GPU"):
        NvmlMeter(pynvml=fake, environ={})
    assert fake.initialized == 0
    assert fake.shutdown_calls == 1


def test_no_permission_on_the_energy_counter_is_unavailable() -> None:
    fake = FakePynvml(
        [gpu(errors={"nvmlDeviceGetTotalEnergyConsumption": NVML_ERROR_NO_PERMISSION})]
    )
    with pytest.raises(MeterUnavailable) as info:
        NvmlMeter(pynvml=fake, environ={})
    assert "insufficient permissions" in info.value.reason
    assert "energy counter" in info.value.reason
    assert info.value.fix
    assert fake.initialized == 0


def test_gpu_without_counter_or_power_sensor_is_unavailable() -> None:
    fake = FakePynvml([gpu(energy_mj=None, power_mw=None)])
    with pytest.raises(MeterUnavailable, match="neither an energy counter nor its power draw"):
        NvmlMeter(pynvml=fake, environ={})
    assert fake.initialized == 0
    assert poller_threads() == []


def test_the_meter_satisfies_the_protocol(meters: list[NvmlMeter]) -> None:
    meter = make(meters, FakePynvml([gpu()]))
    assert isinstance(meter, Meter)
    assert (meter.name, meter.estimated, meter.update_period_s) == ("nvml", False, 0.1)
    assert meter.shared is False


# -- energy counter -------------------------------------------------------------------------


def test_counter_is_read_in_joules(meters: list[NvmlMeter]) -> None:
    board = gpu(energy_mj=123_456_789)
    meter = make(meters, FakePynvml([board]))
    assert meter.read() == {"gpu:0": pytest.approx(123_456.789)}
    board.energy_mj = 123_456_789 + 2_500  # 2.5 J more
    assert meter.read()["gpu:0"] - 123_456.789 == pytest.approx(2.5)
    assert meter.method == "counter"
    assert meter.provenance == f"NVML total energy counter on {H100} x1"
    assert poller_threads() == []


def test_counter_on_several_gpus_one_domain_each(meters: list[NvmlMeter]) -> None:
    meter = make(meters, two_boards_out_of_pci_order())
    assert meter.read() == {"gpu:0": 1000.0, "gpu:1": 2000.0}


# -- power polling fallback -----------------------------------------------------------------


def test_integrator_uses_the_trapezoid_rule() -> None:
    integrator = PowerIntegrator(["gpu:0"])
    integrator.add("gpu:0", 10.0, 100.0)
    assert integrator.energy_j() == {"gpu:0": 0.0}
    integrator.add("gpu:0", 11.0, 200.0)  # 1 s at (100 + 200) / 2 W
    integrator.add("gpu:0", 13.0, 200.0)  # 2 s at 200 W
    assert integrator.energy_j() == {"gpu:0": pytest.approx(550.0)}
    with pytest.raises(ValueError, match="older"):
        integrator.add("gpu:0", 12.0, 200.0)
    with pytest.raises(KeyError):
        integrator.add("gpu:9", 14.0, 1.0)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=10.0), st.floats(min_value=0.0, max_value=1000.0)
        ),
        min_size=1,
        max_size=30,
    )
)
def test_integrated_energy_never_decreases_and_stays_within_power_bounds(
    steps: list[tuple[float, float]],
) -> None:
    integrator = PowerIntegrator(["gpu:0"])
    now_s, previous_j = 0.0, 0.0
    integrator.add("gpu:0", now_s, steps[0][1])
    powers = [steps[0][1]]
    for gap_s, power_w in steps:
        now_s += gap_s
        powers.append(power_w)
        integrator.add("gpu:0", now_s, power_w)
        energy_j = integrator.energy_j()["gpu:0"]
        assert energy_j >= previous_j
        previous_j = energy_j
    assert min(powers) * now_s - 1e-6 <= previous_j <= max(powers) * now_s + 1e-6


def test_poller_integrates_samples_on_its_clock() -> None:
    clock = iter([0.0, 0.5, 1.5])
    power = iter([{"gpu:0": 40.0}, {"gpu:0": 60.0}, {"gpu:0": 60.0}])
    poller = PowerPoller(lambda: next(power), ["gpu:0"], clock=lambda: next(clock))
    assert poller.sample() == {"gpu:0": 0.0}
    assert poller.sample() == {"gpu:0": pytest.approx(25.0)}  # 0.5 s at 50 W
    assert poller.sample() == {"gpu:0": pytest.approx(85.0)}  # + 1 s at 60 W
    assert not poller.running


def test_poller_thread_error_is_raised_by_the_next_sample() -> None:
    failed = threading.Event()
    calls = 0

    def sample() -> dict[str, float]:
        nonlocal calls
        calls += 1
        if calls > 1:
            failed.set()
            raise NvmlGpuLost("gpu:0 lost", NVML_ERROR_GPU_IS_LOST)
        return {"gpu:0": 10.0}

    poller = PowerPoller(sample, ["gpu:0"], interval_s=0.001)
    poller.start()
    assert failed.wait(10)
    poller.stop()
    assert not poller.running
    with pytest.raises(NvmlGpuLost, match="gpu:0 lost"):
        poller.sample()


def test_old_gpu_falls_back_to_polling_and_integrates(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml([gpu("Tesla P100-PCIE-16GB", energy_mj=None, power_mw=250_000)])
    meter = make(meters, fake, poll_interval_s=0.001)
    assert meter.method == "polling"
    assert meter.provenance == (
        "NVML power polled every 1 ms and integrated (no energy counter on this GPU)"
    )
    assert meter.hardware == "Tesla P100-PCIE-16GB x1"
    assert len(poller_threads()) == 1

    before_first = time.monotonic()
    first = meter.read()["gpu:0"]
    after_first = time.monotonic()
    fake.power_called.clear()
    assert fake.power_called.wait(10), "the poller thread never sampled power on its own"
    before_second = time.monotonic()
    second = meter.read()["gpu:0"]
    after_second = time.monotonic()
    # Constant 250 W: the energy between the samples taken inside the two reads is 250 W
    # times their gap, which lies between these two time spans.
    assert first >= 0.0
    assert second - first >= 250.0 * (before_second - after_first) > 0.0
    assert second - first <= 250.0 * (after_second - before_first)


def test_mixed_counter_and_polled_gpus(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml(
        [
            gpu(H100, UUID_A, "0000:01:00.0", energy_mj=5_000),
            gpu("Tesla P40", UUID_B, "0000:02:00.0", energy_mj=None, power_mw=50_000),
        ]
    )
    meter = make(meters, fake, poll_interval_s=0.5)
    reading = meter.read()
    assert reading["gpu:0"] == 5.0
    assert reading["gpu:1"] >= 0.0
    assert meter.method == "mixed"
    assert meter.provenance.startswith(
        "NVML total energy counter on gpu:0 and NVML power polled every 500 ms and integrated "
        "on gpu:1"
    )


def test_close_stops_the_poller_and_shuts_nvml_down_once(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml([gpu(energy_mj=None)])
    meter = make(meters, fake, poll_interval_s=0.001)
    assert len(poller_threads()) == 1
    meter.close()
    assert poller_threads() == []
    calls_after_close = fake.power_calls
    meter.close()
    assert fake.shutdown_calls == 1
    assert fake.initialized == 0
    assert fake.power_calls == calls_after_close
    with pytest.raises(MeterError, match="after close"):
        meter.read()


# -- throttle reasons and idle power --------------------------------------------------------


def test_throttle_reasons_map_bits_to_names_and_ignore_idle(meters: list[NvmlMeter]) -> None:
    board = gpu(clock_reasons=0x01 | 0x02 | 0x04 | 0x20)  # idle, app clocks, power cap, thermal
    meter = make(meters, FakePynvml([board]))
    assert meter.throttle_reasons() == ("sw power cap", "sw thermal")
    board.clock_reasons = 0x08 | 0x40 | 0x80 | 0x10
    assert meter.throttle_reasons() == ("hw slowdown", "hw thermal", "hw power brake", "sync boost")
    board.clock_reasons = 0x01
    assert meter.throttle_reasons() == ()


def test_throttle_reasons_not_supported_is_empty(meters: list[NvmlMeter]) -> None:
    meter = make(meters, FakePynvml([gpu(clock_reasons=None)]))
    assert meter.throttle_reasons() == ()


def test_throttle_reasons_with_old_bindings(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml([gpu(clock_reasons=0x40)], old_clock_api=True)
    assert not hasattr(fake, "nvmlDeviceGetCurrentClocksEventReasons")
    assert make(meters, fake).throttle_reasons() == ("hw thermal",)


def test_throttle_reasons_fall_back_when_the_driver_lacks_the_new_call(
    meters: list[NvmlMeter],
) -> None:
    board = gpu(
        clock_reasons=0x04,
        errors={"nvmlDeviceGetCurrentClocksEventReasons": NVML_ERROR_FUNCTION_NOT_FOUND},
    )
    assert make(meters, FakePynvml([board])).throttle_reasons() == ("sw power cap",)


def test_idle_power_sums_the_metered_gpus_in_watts(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml(
        [gpu(uuid=UUID_A, power_mw=100_000), gpu(uuid=UUID_B, bus_id="0:2:0.0", power_mw=250_500)]
    )
    assert make(meters, fake).idle_power_w() == pytest.approx(350.5)
    assert make(meters, fake, {"CUDA_VISIBLE_DEVICES": "1"}).idle_power_w() == pytest.approx(250.5)


# -- errors during a run --------------------------------------------------------------------


@pytest.mark.reliability("fault", "NVML GPU lost, unit (fake pynvml)")
def test_gpu_lost_mid_run_raises_a_typed_error_naming_the_gpu(meters: list[NvmlMeter]) -> None:
    board = gpu()
    meter = make(meters, FakePynvml([board]))
    meter.read()
    board.lost = True
    with pytest.raises(NvmlGpuLost) as info:
        meter.read()
    assert isinstance(info.value, NvmlError)
    assert isinstance(info.value, MeterError)
    assert info.value.code == NVML_ERROR_GPU_IS_LOST
    message = str(info.value)
    assert "gpu:0" in message and UUID_A in message and H100 in message
    assert "measurement is invalid" in message
    with pytest.raises(NvmlGpuLost):
        meter.throttle_reasons()
    with pytest.raises(NvmlGpuLost):
        meter.idle_power_w()


@pytest.mark.reliability("fault", "NVML GPU lost, unit (fake pynvml)")
def test_handle_that_disappears_mid_run_raises_gpu_lost(meters: list[NvmlMeter]) -> None:
    board = gpu()
    meter = make(meters, FakePynvml([board]))
    board.errors["nvmlDeviceGetTotalEnergyConsumption"] = NVML_ERROR_GPU_NOT_FOUND
    with pytest.raises(NvmlGpuLost) as info:
        meter.read()
    assert info.value.code == NVML_ERROR_GPU_NOT_FOUND


@pytest.mark.reliability("fault", "NVML GPU lost, unit (fake pynvml)")
def test_other_read_failures_are_nvml_errors_with_the_code(meters: list[NvmlMeter]) -> None:
    board = gpu()
    meter = make(meters, FakePynvml([board]))
    board.errors["nvmlDeviceGetTotalEnergyConsumption"] = NVML_ERROR_UNKNOWN
    with pytest.raises(NvmlError) as info:
        meter.read()
    assert not isinstance(info.value, NvmlGpuLost)
    assert info.value.code == NVML_ERROR_UNKNOWN
    assert "measurement is invalid" in str(info.value)


@pytest.mark.reliability("fault", "NVML GPU lost, unit (fake pynvml)")
def test_polled_gpu_lost_mid_run_raises_gpu_lost(meters: list[NvmlMeter]) -> None:
    board = gpu(energy_mj=None)
    meter = make(meters, FakePynvml([board]), poll_interval_s=0.001)
    meter.read()
    board.lost = True
    with pytest.raises(NvmlGpuLost, match="gpu:0"):
        meter.read()


@pytest.mark.reliability("fault", "NVML GPU lost, unit (fake pynvml)")
def test_gpu_lost_before_the_run_is_unavailable() -> None:
    fake = FakePynvml([gpu(lost=True)])
    with pytest.raises(MeterUnavailable, match="fallen off the bus"):
        NvmlMeter(pynvml=fake, environ={})


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------


def test_unset_meters_every_gpu_in_pci_order(meters: list[NvmlMeter]) -> None:
    meter = make(meters, two_boards_out_of_pci_order())
    # gpu:0 is the board at PCI 0x01 (NVML index 1), whose counter reads 1000 J.
    assert meter.read() == {"gpu:0": 1000.0, "gpu:1": 2000.0}


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("0", {"gpu:0": 1000.0}),  # index 0 in PCI order is NVML index 1
        ("1", {"gpu:0": 2000.0}),
        ("1,0", {"gpu:0": 2000.0, "gpu:1": 1000.0}),
        (" 1 , 0 ", {"gpu:0": 2000.0, "gpu:1": 1000.0}),
        ("0,0", {"gpu:0": 1000.0}),
        ("0,", {"gpu:0": 1000.0}),
        (UUID_B, {"gpu:0": 2000.0}),
        (UUID_A.upper(), {"gpu:0": 1000.0}),
        ("GPU-bbbb", {"gpu:0": 2000.0}),
        (f"GPU-aaaa,{UUID_B}", {"gpu:0": 1000.0, "gpu:1": 2000.0}),
    ],
)
def test_visible_devices_select_and_order_the_gpus(
    meters: list[NvmlMeter], visible: str, expected: dict[str, float]
) -> None:
    meter = make(meters, two_boards_out_of_pci_order(), {"CUDA_VISIBLE_DEVICES": visible})
    assert meter.read() == expected


@pytest.mark.parametrize(
    ("visible", "reason"),
    [
        ("", "hides every GPU"),
        (" , ", "hides every GPU"),
        ("2", "names GPU index 2, but NVML sees 2 GPU(s)"),
        ("-1", "names GPU index -1"),
        ("0,7", "names GPU index 7"),
        ("GPU-ffffffff", "'GPU-ffffffff' matches no GPU"),
        ("GPU-", "prefix of several GPUs"),
        (MIG_1, "matches no GPU"),
        ("nvidia0", "neither a GPU index nor a GPU-/MIG- UUID"),
    ],
)
def test_visible_devices_that_name_no_gpu_are_unavailable(visible: str, reason: str) -> None:
    fake = two_boards_out_of_pci_order()
    with pytest.raises(MeterUnavailable) as info:
        NvmlMeter(pynvml=fake, environ={"CUDA_VISIBLE_DEVICES": visible})
    assert reason in info.value.reason
    assert "nvidia-smi -L" in info.value.fix
    assert fake.initialized == 0


def test_ambiguous_uuid_prefix_is_rejected() -> None:
    gpus = [GpuInfo(H100, UUID_B, "0:1:0.0"), GpuInfo(H100, UUID_C, "0:2:0.0")]
    with pytest.raises(MeterUnavailable, match="prefix of several"):
        resolve_visible_gpus("GPU-bbbb", gpus)
    assert resolve_visible_gpus("GPU-bbbbc", gpus) == [1]


def test_pci_bus_ids_compare_by_value() -> None:
    assert pci_sort_key("00000000:3B:00.0") == pci_sort_key("0000:3b:00.0") == (0, 0x3B, 0, 0)
    assert pci_sort_key("0000:0a:00.0") < pci_sort_key("0000:81:00.0")
    with pytest.raises(ValueError, match="not a PCI bus id"):
        pci_sort_key("garbage")


def test_mapping_follows_pci_order_not_nvml_index_order(meters: list[NvmlMeter]) -> None:
    boards = [
        gpu(H100, "GPU-cccc0000-0000-0000-0000-000000000000", "0000:C1:00.0", energy_mj=3_000),
        gpu(H100, "GPU-aaaa0000-0000-0000-0000-000000000000", "00000000:0A:00.0", energy_mj=1_000),
        gpu(H100, "GPU-bbbb0000-0000-0000-0000-000000000000", "0000:41:00.0", energy_mj=2_000),
    ]
    meter = make(meters, FakePynvml(boards), {"CUDA_VISIBLE_DEVICES": "2,0"})
    assert meter.read() == {"gpu:0": 3.0, "gpu:1": 1.0}


def test_devices_are_the_physical_gpu_uuids_in_domain_order(meters: list[NvmlMeter]) -> None:
    meter = make(meters, two_boards_out_of_pci_order(), {"CUDA_VISIBLE_DEVICES": "1,0"})
    assert meter.devices == (UUID_B, UUID_A)
    # Another process that sees only the second board calls it gpu:0, but locks the same UUID.
    other = make(meters, two_boards_out_of_pci_order(), {"CUDA_VISIBLE_DEVICES": UUID_A})
    assert other.devices == (UUID_A,)


def test_provenance_warns_when_cuda_order_may_differ(meters: list[NvmlMeter]) -> None:
    warning = "matches CUDA's numbering only with CUDA_DEVICE_ORDER=PCI_BUS_ID or identical GPUs"
    mixed = two_boards_out_of_pci_order
    assert warning in make(meters, mixed(), {"CUDA_VISIBLE_DEVICES": "0"}).provenance
    assert warning in make(meters, mixed(), {}).provenance
    pci_order = {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert warning not in make(meters, mixed(), pci_order).provenance
    assert warning not in make(meters, mixed(), {"CUDA_VISIBLE_DEVICES": UUID_A}).provenance
    same = FakePynvml([gpu(uuid=UUID_A), gpu(uuid=UUID_B, bus_id="0:2:0.0")])
    assert warning not in make(meters, same, {"CUDA_VISIBLE_DEVICES": "1"}).provenance


# -- MIG ------------------------------------------------------------------------------------


def mig_machine() -> FakePynvml:
    return FakePynvml(
        [
            gpu(H100, UUID_B, "0000:81:00.0", energy_mj=9_000),
            gpu(A100, UUID_A, "0000:01:00.0", energy_mj=7_000, mig_uuids=(MIG_1, MIG_2)),
        ]
    )


@pytest.mark.parametrize(
    "visible",
    [MIG_1, MIG_2, "MIG-2222", f"{MIG_1},{MIG_2}", f"MIG-{UUID_A}/1/0"],
)
def test_mig_slice_meters_its_parent_gpu_as_shared(meters: list[NvmlMeter], visible: str) -> None:
    meter = make(meters, mig_machine(), {"CUDA_VISIBLE_DEVICES": visible})
    assert meter.read() == {"gpu:0": 7.0}
    assert meter.devices == (UUID_A,)  # the parent board, which other slices share
    assert meter.shared is True
    assert meter.hardware == f"{A100} x1 (MIG, shared)"
    assert meter.provenance.endswith("shared: MIG slice, whole parent GPU metered")


def test_gpu_in_mig_mode_is_shared_even_when_named_by_index(meters: list[NvmlMeter]) -> None:
    meter = make(meters, mig_machine(), {"CUDA_VISIBLE_DEVICES": "0"})
    assert meter.shared is True
    assert meter.hardware.endswith("(MIG, shared)")


def test_gpu_without_mig_is_not_shared(meters: list[NvmlMeter]) -> None:
    meter = make(meters, mig_machine(), {"CUDA_VISIBLE_DEVICES": "1"})
    assert meter.shared is False
    assert meter.hardware == f"{H100} x1"
    assert "shared" not in meter.provenance


def test_gpu_that_does_not_support_mig_is_not_shared(meters: list[NvmlMeter]) -> None:
    meter = make(meters, FakePynvml([gpu(mig_capable=False)]))
    assert meter.shared is False


# -- hardware label -------------------------------------------------------------------------


def test_hardware_label_counts_and_sorts_models() -> None:
    assert hardware_label([H100]) == f"{H100} x1"
    assert hardware_label([A100, A100]) == f"{A100} x2"
    assert hardware_label([H100, A100, H100]) == f"{A100} x1 + {H100} x2"
    assert hardware_label([A100], shared=True) == f"{A100} x1 (MIG, shared)"


def test_hardware_names_two_identical_gpus(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml([gpu(A100, UUID_A), gpu(A100, UUID_B, "0:2:0.0")])
    assert make(meters, fake).hardware == f"{A100} x2"


def test_hardware_of_mixed_gpus(meters: list[NvmlMeter]) -> None:
    assert make(meters, two_boards_out_of_pci_order()).hardware == f"{A100} x1 + {H100} x1"


def test_bytes_from_old_bindings_are_decoded(meters: list[NvmlMeter]) -> None:
    fake = FakePynvml(
        [gpu(A100, UUID_A), gpu(A100, UUID_B, "0:2:0.0", mig_uuids=(MIG_1,))], bytes_strings=True
    )
    meter = make(meters, fake, {"CUDA_VISIBLE_DEVICES": f"{MIG_1},GPU-aaaa"})
    assert fake.nvmlDeviceGetName(fake.nvmlDeviceGetHandleByIndex(0)) == A100.encode()
    assert meter.hardware == f"{A100} x2 (MIG, shared)"
    assert list(meter.read()) == ["gpu:0", "gpu:1"]


# -- benchmarks/gpu_validation.py helpers ---------------------------------------------------


@pytest.fixture
def bench() -> ModuleType:
    return load_script("gpu_validation")


def test_benchmark_coefficient_of_variation(bench: ModuleType) -> None:
    assert bench.coefficient_of_variation([2.0, 4.0, 6.0]) == pytest.approx(0.5)
    assert bench.coefficient_of_variation([3.0, 3.0]) == 0.0
    assert math.isnan(bench.coefficient_of_variation([1.0]))
    assert math.isnan(bench.coefficient_of_variation([1.0, -1.0]))


def test_benchmark_summary_and_table(bench: ModuleType) -> None:
    row = bench.summarise(
        0.5,
        [10.0, 12.0],
        [0.5, 0.52],
        [100, 100],
        reference_j_per_inference=0.1,
        overhead_us=123.4,
    )
    assert row.windows == 2
    assert row.mean_j_per_inference == pytest.approx(0.11)
    assert row.relative_to_reference == pytest.approx(1.1)
    table = bench.format_table([row]).splitlines()
    assert table[0].startswith("| window (s) | windows |")
    assert table[1] == "|---:|---:|---:|---:|---:|---:|---:|"
    assert table[2] == "| 0.5 | 2 | 0.510 | 0.11 | 12.9% | 1.100 | 123 |"
    with pytest.raises(ValueError, match="same"):
        bench.summarise(1.0, [1.0], [], [1], reference_j_per_inference=1.0, overhead_us=0.0)


def test_benchmark_exits_clearly_without_a_gpu() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_validation.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode != 0
    assert "no CUDA GPU is visible" in done.stderr
