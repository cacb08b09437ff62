"""The amdsmi meter against a fake ``amdsmi`` module (tests/fake_amdsmi.py): no GPU, no ROCm.

The fake follows the real bindings; sources for the names and units asserted here:

- AMD SMI Python API, ``amdsmi_get_energy_count``: "energy_accumulator" and
  "counter_resolution" (uJ per count), https://rocm.docs.amd.com/projects/amdsmi/en/latest/
  reference/amdsmi-py-api.html; C API, Power Queries, ``amdsmi_get_energy_count``
  (uint64_t accumulator, float resolution), https://rocm.docs.amd.com/projects/amdsmi/en/latest/
  doxygen/docBin/html/group__tagPowerQuery.html
- ROCm/amdsmi ``py-interface/amdsmi_interface.py``: the ``power`` key "deprecating in 6.4",
  gone in the 7.0.2 wheel; ``amdsmi_get_gpu_enumeration_info`` (``hip_id``, ``hip_uuid``),
  ``amdsmi_get_gpu_kfd_info`` (``node_id``), ``amdsmi_get_gpu_asic_info`` (``market_name``)
- ``amdsmi_gpu_metrics_t`` (ROCm 7.0 docs): ``energy_accumulator`` "v1 mod. (32->64)", so
  first-generation metrics tables hold 32 bits, https://rocm.docs.amd.com/projects/amdsmi/en/
  docs-7.0.0/doxygen/docBin/html/structamdsmi__gpu__metrics__t.html
- ROCm/amdsmi#115: the counter can go backwards; Zeus ``zeus/device/gpu/amd.py``: MI250/MI250X
  report both dies' energy on the even GCD; HIP order vs amd-smi (PCI) order.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_amdsmi import (
    AMDSMI_STATUS_DRIVER_NOT_LOADED,
    AMDSMI_STATUS_NO_PERM,
    AMDSMI_STATUS_NOT_SUPPORTED,
    RESOLUTION_UJ,
    FakeAmdGpu,
    FakeAmdSmi,
)

from pytest_energy import meters
from pytest_energy.errors import CounterWentBackwards, MeterError, MeterUnavailable
from pytest_energy.meters.amdsmi import (
    COUNTER_32_BIT,
    INSTALL_FIX,
    AmdGpuInfo,
    AmdSmiError,
    AmdSmiMeter,
    resolve_visible_gpus,
)
from pytest_energy.meters.base import Meter, provenance, update_period_s

ROOT = Path(__file__).resolve().parents[1]
UUID_A = "a4ff740f-0000-1000-80ea-e05c945bb3b2"
UUID_B = "b5ee851e-0000-1000-80ea-e05c945bb3b2"
J_PER_COUNT = RESOLUTION_UJ / 1e6


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def built() -> Iterator[list[AmdSmiMeter]]:
    made: list[AmdSmiMeter] = []
    yield made
    for meter in made:
        meter.close()


def make(
    built: list[AmdSmiMeter],
    fake: FakeAmdSmi,
    env: dict[str, str] | None = None,
    clock: Clock | None = None,
) -> AmdSmiMeter:
    meter = AmdSmiMeter(amdsmi=fake, environ=env or {}, clock=clock or Clock())
    built.append(meter)
    return meter


def two_gpus(rocm: str = "7.0") -> FakeAmdSmi:
    """Handle (PCI) order is B, A; HIP numbers A first, as on some MI350X nodes (Zeus)."""
    return FakeAmdSmi(
        [
            FakeAmdGpu(bdf="0000:0c:00.0", uuid=UUID_B, hip_id=1, node_id=3, hip_uuid="GPU-bb"),
            FakeAmdGpu(bdf="0000:8e:00.0", uuid=UUID_A, hip_id=0, node_id=2, hip_uuid="GPU-aa"),
        ],
        rocm=rocm,
    )


# -- import and bindings -------------------------------------------------------------------------


def test_importing_the_module_does_not_import_amdsmi() -> None:
    code = (
        "import sys, pytest_energy.meters.amdsmi as m; "
        "assert 'amdsmi' not in sys.modules; print(m.AmdSmiMeter.name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "amdsmi"


def test_missing_package_is_unavailable_with_the_install_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    with pytest.raises(MeterUnavailable) as info:
        AmdSmiMeter(environ={})
    assert info.value.meter == "amdsmi" and "not installed" in info.value.reason
    assert info.value.fix == INSTALL_FIX and "pytest-energy[amd]" in INSTALL_FIX


def test_package_without_rocm_is_unavailable_without_its_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real amdsmi prints, then fails with KeyError('libamd_smi.so'), when ROCm is absent."""
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text(
        "print('Could not load libamd_smi.so')\n_libraries = {}\n_libraries['libamd_smi.so']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    with pytest.raises(MeterUnavailable) as info:
        AmdSmiMeter(environ={})
    assert "cannot load ROCm's libamd_smi.so (Could not load libamd_smi.so)" in info.value.reason
    assert capsys.readouterr().out == ""
    assert "\n" not in str(info.value)


# -- reading -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rocm", ["6.1", "6.3", "7.0"])
def test_energy_is_the_accumulator_times_its_resolution(
    built: list[AmdSmiMeter], rocm: str
) -> None:
    gpu = FakeAmdGpu(count=1_000_000)
    meter = make(built, FakeAmdSmi([gpu], rocm=rocm))
    assert isinstance(meter, Meter)
    assert meter.name == "amdsmi" and meter.estimated is False
    assert update_period_s(meter) == 0.1
    assert meter.hardware == "AMD Instinct MI300X x1"
    assert meter.devices == (UUID_A,)
    assert "accumulator x counter_resolution (15.3 uJ)" in provenance(meter)
    assert meter.read() == {"amdgpu:0": 0.0}
    gpu.count += 65_359  # 1 J at 15.3 uJ per count
    assert meter.read() == {"amdgpu:0": pytest.approx(65_359 * J_PER_COUNT)}
    meters.validate(meter, "amdsmi")


def test_a_32_bit_accumulator_that_wraps_is_unwrapped(built: list[AmdSmiMeter]) -> None:
    gpu = FakeAmdGpu(count=COUNTER_32_BIT - 1_000)
    clock = Clock()
    meter = make(built, FakeAmdSmi([gpu]), clock=clock)
    gpu.count = 500
    clock.now_s += 10.0  # 1,500 counts (23 mJ) in 10 s: plausible
    assert meter.read()["amdgpu:0"] == pytest.approx(1_500 * J_PER_COUNT)
    gpu.count = 2_000
    assert meter.read()["amdgpu:0"] == pytest.approx(3_000 * J_PER_COUNT)


def test_a_wrap_that_implies_impossible_power_is_an_error(built: list[AmdSmiMeter]) -> None:
    gpu = FakeAmdGpu(count=3_000_000_000)
    clock = Clock()
    meter = make(built, FakeAmdSmi([gpu]), clock=clock)
    gpu.count = 1_000_000_000  # a "wrap" of 2.2e9 counts (34 kJ) within 1 ms
    clock.now_s += 0.001
    with pytest.raises(CounterWentBackwards, match="went backwards from 3000000000 to 1000000000"):
        meter.read()
    gpu.count = 3_000_000_100  # the failed read changed nothing
    assert meter.read()["amdgpu:0"] == pytest.approx(100 * J_PER_COUNT)


def test_a_64_bit_counter_going_backwards_is_an_error(built: list[AmdSmiMeter]) -> None:
    """ROCm/amdsmi#115 saw counts near 4.7e9 (above 32 bits) fall between two reads."""
    gpu = FakeAmdGpu(count=4_750_896_266)
    clock = Clock()
    meter = make(built, FakeAmdSmi([gpu]), clock=clock)
    gpu.count = 4_736_943_791
    clock.now_s += 3600.0
    with pytest.raises(CounterWentBackwards) as info:
        meter.read()
    assert "ROCm/amdsmi#115" in str(info.value) and "\n" not in str(info.value)


def test_a_changed_resolution_is_an_error(built: list[AmdSmiMeter]) -> None:
    gpu = FakeAmdGpu(count=10)
    meter = make(built, FakeAmdSmi([gpu]))
    gpu.resolution_uj = 1.0
    with pytest.raises(AmdSmiError, match="changed its counter_resolution"):
        meter.read()


def test_a_lost_gpu_is_a_meter_error_in_one_line(built: list[AmdSmiMeter]) -> None:
    gpu = FakeAmdGpu(count=10)
    meter = make(built, FakeAmdSmi([gpu]))
    gpu.lost = True
    with pytest.raises(MeterError) as info:
        meter.read()
    text = str(info.value)
    assert "was lost during the run" in text and "AMDSMI_STATUS_NOT_FOUND" in text
    assert "\n" not in text and "invalid" in text


# -- which GPUs, in which order, under which lock names ---------------------------------------------


def test_gpus_follow_hip_order_and_lock_by_uuid(built: list[AmdSmiMeter]) -> None:
    fake = two_gpus()
    fake.gpus[1].count = 65_359
    meter = make(built, fake)
    assert meter.devices == (UUID_A, UUID_B)  # HIP 0 is the second handle
    assert list(meter.read()) == ["amdgpu:0", "amdgpu:1"]
    assert meter.hardware == "AMD Instinct MI300X x2"
    assert "PCI bus order" not in meter.provenance


def test_kfd_nodes_order_the_gpus_before_rocm_6_4(built: list[AmdSmiMeter]) -> None:
    assert make(built, two_gpus("6.3")).devices == (UUID_A, UUID_B)


def test_without_hip_or_kfd_information_pci_order_is_flagged(built: list[AmdSmiMeter]) -> None:
    meter = make(built, two_gpus("6.1"))
    assert meter.devices == (UUID_B, UUID_A)
    assert "GPUs numbered in PCI bus order" in meter.provenance


def test_a_gpu_without_a_uuid_locks_by_its_pci_address(built: list[AmdSmiMeter]) -> None:
    meter = make(built, FakeAmdSmi([FakeAmdGpu(uuid=None, bdf="0000:C1:00.0")]))
    assert meter.devices == ("pci-0000:c1:00.0",)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [UUID_A, UUID_B]),
        ({"HIP_VISIBLE_DEVICES": "1"}, [UUID_B]),
        ({"HIP_VISIBLE_DEVICES": "1,0"}, [UUID_B, UUID_A]),
        ({"CUDA_VISIBLE_DEVICES": "1"}, [UUID_B]),
        ({"HIP_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "1"}, [UUID_A]),
        ({"ROCR_VISIBLE_DEVICES": "1"}, [UUID_B]),
        ({"ROCR_VISIBLE_DEVICES": "1", "HIP_VISIBLE_DEVICES": "0"}, [UUID_B]),
        ({"ROCR_VISIBLE_DEVICES": "GPU-aa"}, [UUID_A]),
    ],
)
def test_visibility_variables_select_the_gpus(
    built: list[AmdSmiMeter], env: dict[str, str], expected: list[str]
) -> None:
    assert list(make(built, two_gpus(), env).devices) == expected


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"HIP_VISIBLE_DEVICES": ""}, "hides every GPU"),
        ({"HIP_VISIBLE_DEVICES": "2"}, "names GPU 2, but 2 GPU(s) are visible"),
        ({"ROCR_VISIBLE_DEVICES": "1", "HIP_VISIBLE_DEVICES": "1"}, "names GPU 1, but 1 GPU(s)"),
        ({"HIP_VISIBLE_DEVICES": "GPU-aa"}, "is not a GPU index"),
        ({"ROCR_VISIBLE_DEVICES": "GPU-cc"}, "matches no GPU"),
    ],
)
def test_visibility_entries_that_name_no_gpu_are_unavailable(
    env: dict[str, str], reason: str
) -> None:
    fake = two_gpus()
    with pytest.raises(MeterUnavailable) as info:
        AmdSmiMeter(amdsmi=fake, environ=env)
    assert reason in info.value.reason and "ROCR_VISIBLE_DEVICES" in info.value.fix
    assert fake.initialized == 0  # shut down again


def test_resolve_visible_gpus_is_pure() -> None:
    gpus = [AmdGpuInfo("x", "0000:01:00.0", hip_id=1), AmdGpuInfo("x", "0000:02:00.0", hip_id=0)]
    assert resolve_visible_gpus({}, gpus) == [1, 0]
    assert resolve_visible_gpus({"HIP_VISIBLE_DEVICES": "0,0"}, gpus) == [1]


# -- MI250X: two dies, one counter ------------------------------------------------------------------


def mi250x() -> FakeAmdSmi:
    return FakeAmdSmi(
        [
            FakeAmdGpu("AMD Instinct MI250X", "0000:c1:00.0", UUID_A, hip_id=0, count=100),
            FakeAmdGpu("AMD Instinct MI250X", "0000:c6:00.0", UUID_B, hip_id=1, count=0),
        ]
    )


def test_a_mi250x_pair_is_metered_once_on_its_first_die(built: list[AmdSmiMeter]) -> None:
    meter = make(built, mi250x())
    assert list(meter.read()) == ["amdgpu:0"]
    assert meter.devices == (UUID_A, UUID_B) and meter.shared
    assert meter.hardware == "AMD Instinct MI250X x1 (dual-die pairs)"
    assert "covers both dies of its pair" in meter.provenance


def test_the_first_die_alone_still_locks_its_partner(built: list[AmdSmiMeter]) -> None:
    meter = make(built, mi250x(), {"HIP_VISIBLE_DEVICES": "0"})
    assert meter.devices == (UUID_A, UUID_B) and meter.shared


def test_the_second_die_alone_is_unavailable() -> None:
    with pytest.raises(MeterUnavailable, match="second die of an AMD Instinct MI250X"):
        AmdSmiMeter(amdsmi=mi250x(), environ={"HIP_VISIBLE_DEVICES": "1"})


# -- start-up errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        (AMDSMI_STATUS_NO_PERM, "may not open the AMD GPU device files", "render and video"),
        (AMDSMI_STATUS_DRIVER_NOT_LOADED, "amdgpu kernel driver is not loaded", "amd-smi list"),
    ],
)
def test_init_failures_are_unavailable_in_one_paragraph(code: int, reason: str, fix: str) -> None:
    with pytest.raises(MeterUnavailable) as info:
        AmdSmiMeter(amdsmi=FakeAmdSmi([FakeAmdGpu()], init_error=code), environ={})
    assert reason in info.value.reason and fix in info.value.fix
    assert "\n" not in str(info.value)


def test_no_gpu_is_unavailable() -> None:
    fake = FakeAmdSmi([])
    with pytest.raises(MeterUnavailable, match="finds no AMD GPU"):
        AmdSmiMeter(amdsmi=fake, environ={})
    assert fake.initialized == 0


def test_a_gpu_without_an_energy_counter_is_unavailable() -> None:
    fake = FakeAmdSmi([FakeAmdGpu(count=None)])
    with pytest.raises(MeterUnavailable, match=r"reports no energy counter.*virtual machine guest"):
        AmdSmiMeter(amdsmi=fake, environ={})
    assert fake.initialized == 0


def test_a_refused_query_names_the_permission_fix() -> None:
    gpu = FakeAmdGpu(errors={"amdsmi_get_gpu_asic_info": AMDSMI_STATUS_NO_PERM})
    with pytest.raises(MeterUnavailable) as info:
        AmdSmiMeter(amdsmi=FakeAmdSmi([gpu]), environ={})
    assert "refused to read the ASIC info of GPU 0" in info.value.reason
    assert "render and video" in info.value.fix


def test_an_unknown_name_falls_back_to_the_device_id(built: list[AmdSmiMeter]) -> None:
    meter = make(built, FakeAmdSmi([FakeAmdGpu(market_name="", device_id=0x740F)]))
    assert meter.hardware == "AMD GPU 0x740f x1"


def test_unsupported_optional_queries_are_not_errors(built: list[AmdSmiMeter]) -> None:
    gpu = FakeAmdGpu(errors={"amdsmi_get_gpu_enumeration_info": AMDSMI_STATUS_NOT_SUPPORTED})
    assert make(built, FakeAmdSmi([gpu])).devices == (UUID_A,)


def test_close_shuts_down_once_and_reading_after_is_an_error() -> None:
    fake = FakeAmdSmi([FakeAmdGpu()])
    meter = AmdSmiMeter(amdsmi=fake, environ={})
    meter.close()
    meter.close()
    assert fake.shutdown_calls == 1 and fake.initialized == 0
    with pytest.raises(MeterError, match="after close"):
        meter.read()
