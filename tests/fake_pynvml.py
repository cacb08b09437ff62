"""A fake ``pynvml`` module for testing the nvml meter without a GPU or a driver.

Only the parts of the nvidia-ml-py API that :mod:`pytest_energy.meters.nvml` uses are here.
Error codes and clock-reason bits have the values of the real bindings. Each :class:`FakeGpu`
is one physical board; tests change its fields (advance ``energy_mj``, set ``lost``) between
meter calls to drive the meter.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# nvmlReturn_t values, as in nvml.h and pynvml.py.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

ERROR_CODES = {name: value for name, value in globals().items() if name.startswith("NVML_ERROR_")}

# Clock event ("throttle") reason bits, as in pynvml.py.
CLOCK_REASON_BITS = {
    "GpuIdle": 0x01,
    "ApplicationsClocksSetting": 0x02,
    "SwPowerCap": 0x04,
    "HwSlowdown": 0x08,
    "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20,
    "HwThermalSlowdown": 0x40,
    "HwPowerBrakeSlowdown": 0x80,
}

MAX_MIG_SLOTS = 7


class NVMLError(Exception):
    """Like ``pynvml.NVMLError``: the failing ``nvmlReturn_t`` is in ``.value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"fake NVML error {self.value}"


@dataclass
class FakeGpu:
    """One physical GPU as the fake NVML reports it.

    ``energy_mj=None`` means the board has no energy counter (pre-Volta: NOT_SUPPORTED), and
    the same for ``power_mw`` and ``clock_reasons``. ``mig_uuids`` non-empty means MIG mode is
    on with those slices. ``lost`` makes every call on the board fail with GPU_IS_LOST;
    ``errors`` maps a pynvml function name to the code that call fails with.
    """

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    bus_id: str = "00000000:01:00.0"
    energy_mj: int | None = 0
    power_mw: int | None = 100_000
    clock_reasons: int | None = 0
    mig_capable: bool = True
    mig_uuids: tuple[str, ...] = ()
    lost: bool = False
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeHandle:
    gpu: FakeGpu


@dataclass(frozen=True)
class FakeMigHandle:
    parent: FakeGpu
    uuid: str


@dataclass(frozen=True)
class FakePciInfo:
    busId: Any  # the pynvml field name


class FakePynvml(types.ModuleType):
    """A module object standing in for ``pynvml``; pass it as ``NvmlMeter(pynvml=...)``.

    ``gpus`` are listed in NVML index order, which need not be PCI bus order. ``init_error``
    makes ``nvmlInit`` fail with that code. ``bytes_strings`` returns names and UUIDs as
    ``bytes`` like old bindings. ``old_clock_api`` offers only the pre-12.x
    ``nvmlDeviceGetCurrentClocksThrottleReasons`` and ``nvmlClocksThrottleReason*`` names.
    """

    def __init__(
        self,
        gpus: Iterable[FakeGpu] = (),
        *,
        init_error: int | None = None,
        bytes_strings: bool = False,
        old_clock_api: bool = False,
    ) -> None:
        super().__init__("pynvml")
        self.gpus = list(gpus)
        self.init_error = init_error
        self.bytes_strings = bytes_strings
        self.initialized = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.power_calls = 0
        self.power_called = threading.Event()
        self.NVMLError = NVMLError
        for name, value in ERROR_CODES.items():
            setattr(self, name, value)
        prefix = "nvmlClocksThrottleReason" if old_clock_api else "nvmlClocksEventReason"
        for suffix, bit in CLOCK_REASON_BITS.items():
            setattr(self, prefix + suffix, bit)
        self.nvmlDeviceGetCurrentClocksThrottleReasons = self._throttle_reasons
        if not old_clock_api:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._event_reasons

    # -- library ------------------------------------------------------------------------
    def _string(self, text: str) -> str | bytes:
        return text.encode() if self.bytes_strings else text

    def _require_init(self) -> None:
        if self.initialized <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _board(self, handle: FakeHandle, function: str) -> FakeGpu:
        self._require_init()
        if not isinstance(handle, FakeHandle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = handle.gpu
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if function in gpu.errors:
            raise NVMLError(gpu.errors[function])
        return gpu

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._require_init()
        self.shutdown_calls += 1
        self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(self.gpus[index])

    # -- device queries -----------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: FakeHandle) -> str | bytes:
        return self._string(self._board(handle, "nvmlDeviceGetName").name)

    def nvmlDeviceGetUUID(self, handle: FakeHandle | FakeMigHandle) -> str | bytes:
        if isinstance(handle, FakeMigHandle):
            self._require_init()
            return self._string(handle.uuid)
        return self._string(self._board(handle, "nvmlDeviceGetUUID").uuid)

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> FakePciInfo:
        gpu = self._board(handle, "nvmlDeviceGetPciInfo")
        return FakePciInfo(self._string(gpu.bus_id))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        gpu = self._board(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if gpu.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        gpu = self._board(handle, "nvmlDeviceGetPowerUsage")
        self.power_calls += 1
        self.power_called.set()
        if gpu.power_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_mw

    def _event_reasons(self, handle: FakeHandle) -> int:
        return self._clock_reasons(self._board(handle, "nvmlDeviceGetCurrentClocksEventReasons"))

    def _throttle_reasons(self, handle: FakeHandle) -> int:
        return self._clock_reasons(self._board(handle, "nvmlDeviceGetCurrentClocksThrottleReasons"))

    @staticmethod
    def _clock_reasons(gpu: FakeGpu) -> int:
        if gpu.clock_reasons is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.clock_reasons

    # -- MIG ----------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        gpu = self._board(handle, "nvmlDeviceGetMigMode")
        if not gpu.mig_capable:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        mode = 1 if gpu.mig_uuids else 0
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        gpu = self._board(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return MAX_MIG_SLOTS if gpu.mig_capable else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeMigHandle:
        gpu = self._board(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if not gpu.mig_uuids:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return FakeMigHandle(gpu, gpu.mig_uuids[index])
