"""A fake ``amdsmi`` module for testing the amdsmi meter without an AMD GPU or ROCm.

It follows the real Python bindings (ROCm's ``py-interface/amdsmi_interface.py`` and
``amdsmi_exception.py``, read at ROCm 6.2 and in the ``amdsmi`` 7.0.2 wheel on PyPI):

- ``amdsmi_init(flag)`` takes an ``AmdSmiInitFlags`` member; ``amdsmi_shut_down()``.
- ``amdsmi_get_processor_handles()`` lists handles in PCI bus order.
- ``amdsmi_get_energy_count(handle)`` returns ``{"power": count, "counter_resolution": uJ,
  "timestamp": ns}`` up to ROCm 6.2.0, both ``power`` and ``energy_accumulator`` from 6.2.1
  to 6.4, and only ``energy_accumulator`` from 7.0. The resolution is a C float (15.3 uJ reads
  back as 15.300000190734863).
- ``amdsmi_get_gpu_asic_info(handle)["market_name"]`` names the GPU ("N/A" when unknown).
- ``amdsmi_get_gpu_device_uuid`` and ``amdsmi_get_gpu_device_bdf`` return strings;
  ``amdsmi_get_gpu_enumeration_info`` (ROCm 6.4+) returns ``hip_id`` and ``hip_uuid``;
  ``amdsmi_get_gpu_kfd_info`` returns ``node_id``.
- Failures raise ``AmdSmiLibraryException(code)``, a subclass of ``AmdSmiException``, whose
  ``get_error_code()`` is the ``amdsmi_status_t`` and whose ``str()`` spans two lines.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterable
from dataclasses import dataclass, field

# amdsmi_status_t values, as in amdsmi_wrapper.py.
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_UNKNOWN_ERROR = 4294967295

_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_FAIL_LOAD_MODULE: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}

#: 15.3 uJ stored in a C float, as amdsmi returns it.
RESOLUTION_UJ = 15.300000190734863


class AmdSmiException(Exception):
    """Base smi exception class (as amdsmi_exception.py)."""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(
            err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
        )

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info if detailed else self.err_info.split(" - ")[0]

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1


@dataclass
class FakeAmdGpu:
    """One GPU as the fake AMD SMI reports it; tests change ``count`` between reads.

    ``count=None`` means the GPU has no energy counter (NOT_SUPPORTED, as in a VM guest).
    ``uuid=None`` makes the UUID query NOT_SUPPORTED. ``errors`` maps a function name to the
    status code that call fails with; ``lost`` makes every call fail with NOT_FOUND.
    """

    market_name: str = "AMD Instinct MI300X"
    bdf: str = "0000:0c:00.0"
    uuid: str | None = "a4ff740f-0000-1000-80ea-e05c945bb3b2"
    hip_id: int = 0
    hip_uuid: str = "GPU-4a7c9e1d2b3f5a60"
    node_id: int = 2
    count: int | None = 0
    resolution_uj: float = RESOLUTION_UJ
    device_id: int = 0x74A1
    lost: bool = False
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeHandle:
    gpu: FakeAmdGpu


class FakeAmdSmi(types.ModuleType):
    """A module object standing in for ``amdsmi``; pass it as ``AmdSmiMeter(amdsmi=...)``.

    ``gpus`` are listed in handle (PCI bus) order. ``rocm`` picks the API generation:
    ``"6.1"`` (count under ``power``; no HIP ids, no KFD info), ``"6.3"`` (both keys, KFD info,
    no enumeration info) or ``"7.0"`` (``energy_accumulator`` only, enumeration info).
    ``init_error`` makes ``amdsmi_init`` fail with that status.
    """

    def __init__(
        self, gpus: Iterable[FakeAmdGpu] = (), *, rocm: str = "7.0", init_error: int | None = None
    ) -> None:
        super().__init__("amdsmi")
        self.gpus = list(gpus)
        self.rocm = rocm
        self.init_error = init_error
        self.initialized = 0
        self.shutdown_calls = 0
        self.AmdSmiException = AmdSmiException
        self.AmdSmiLibraryException = AmdSmiLibraryException
        self.AmdSmiInitFlags = AmdSmiInitFlags
        if rocm == "7.0":
            self.amdsmi_get_gpu_enumeration_info = self._enumeration_info
        if rocm != "6.1":
            self.amdsmi_get_gpu_kfd_info = self._kfd_info

    def _board(self, handle: FakeHandle, function: str) -> FakeAmdGpu:
        if self.initialized <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        gpu = handle.gpu
        if gpu.lost:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_FOUND)
        if function in gpu.errors:
            raise AmdSmiLibraryException(gpu.errors[function])
        return gpu

    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiException(f"Invalid parameter: {flag!r}")
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.initialized += 1

    def amdsmi_shut_down(self) -> None:
        if self.initialized <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        self.shutdown_calls += 1
        self.initialized -= 1

    def amdsmi_get_processor_handles(self) -> list[FakeHandle]:
        if self.initialized <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        return [FakeHandle(gpu) for gpu in self.gpus]

    def amdsmi_get_gpu_asic_info(self, handle: FakeHandle) -> dict[str, object]:
        gpu = self._board(handle, "amdsmi_get_gpu_asic_info")
        return {
            "market_name": gpu.market_name or "N/A",
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": hex(gpu.device_id),
            "asic_serial": "0x4A7C9E1D2B3F5A60",
            "target_graphics_version": "gfx942",
        }

    def amdsmi_get_gpu_device_bdf(self, handle: FakeHandle) -> str:
        return self._board(handle, "amdsmi_get_gpu_device_bdf").bdf

    def amdsmi_get_gpu_device_uuid(self, handle: FakeHandle) -> str:
        gpu = self._board(handle, "amdsmi_get_gpu_device_uuid")
        if gpu.uuid is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return gpu.uuid

    def _enumeration_info(self, handle: FakeHandle) -> dict[str, object]:
        gpu = self._board(handle, "amdsmi_get_gpu_enumeration_info")
        return {
            "drm_render": 128 + gpu.hip_id,
            "drm_card": gpu.hip_id,
            "hsa_id": gpu.node_id,
            "hip_id": gpu.hip_id,
            "hip_uuid": gpu.hip_uuid,
        }

    def _kfd_info(self, handle: FakeHandle) -> dict[str, object]:
        gpu = self._board(handle, "amdsmi_get_gpu_kfd_info")
        return {"kfd_id": 1000 + gpu.node_id, "node_id": gpu.node_id, "current_partition_id": 0}

    def amdsmi_get_energy_count(self, handle: FakeHandle) -> dict[str, object]:
        gpu = self._board(handle, "amdsmi_get_energy_count")
        if gpu.count is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        reading: dict[str, object] = {}
        if self.rocm in ("6.1", "6.3"):
            reading["power"] = gpu.count
        if self.rocm in ("6.3", "7.0"):
            reading["energy_accumulator"] = gpu.count
        reading["counter_resolution"] = gpu.resolution_uj
        reading["timestamp"] = 1_712_024_507_665
        return reading
