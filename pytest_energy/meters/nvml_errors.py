"""NVML failures as typed exceptions with messages that say what to do.

``pynvml`` raises ``NVMLError`` with the ``nvmlReturn_t`` code in ``.value``. While a meter is
being built, a failure means the meter cannot work here: :func:`init_unavailable` and
:func:`query_unavailable` turn it into :class:`~pytest_energy.errors.MeterUnavailable` with a
fix. Once the meter works, a failure invalidates the measurement: :func:`device_error` turns it
into :class:`NvmlError`, or :class:`NvmlGpuLost` when the GPU is gone.

Nothing here imports ``pynvml``; functions that catch its errors take the bindings module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_energy.errors import MeterError, MeterUnavailable

METER_NAME = "nvml"
INSTALL_FIX = "pip install 'pytest-energy[nvml]'"
DRIVER_FIX = (
    "install the NVIDIA driver and check that `nvidia-smi` lists the GPU (in a container, "
    f"start it with the NVIDIA container toolkit, e.g. `--gpus all`), and {INSTALL_FIX}"
)

# nvmlReturn_t values from nvml.h. They are part of NVML's C ABI and do not change.
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

#: Codes meaning that a GPU handle that used to work no longer points at a usable GPU.
LOST_CODES = frozenset(
    {
        NVML_ERROR_GPU_IS_LOST,
        NVML_ERROR_RESET_REQUIRED,
        NVML_ERROR_NOT_FOUND,
        NVML_ERROR_GPU_NOT_FOUND,
        NVML_ERROR_INVALID_ARGUMENT,
    }
)
#: Codes meaning "this GPU or driver does not offer that query".
UNSUPPORTED_CODES = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND})


class NvmlError(MeterError):
    """NVML failed while a working meter was reading; ``code`` is the ``nvmlReturn_t`` value."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NvmlGpuLost(NvmlError):
    """A metered GPU fell off the bus or its handle stopped working during the run."""


def error_code(exc: BaseException) -> int | None:
    """The ``nvmlReturn_t`` value of a pynvml error, or ``None`` when it carries none."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def init_unavailable(exc: BaseException) -> MeterUnavailable:
    """Why ``nvmlInit`` failed, and the fix."""
    code = error_code(exc)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        reason = (
            "the NVML library (libnvidia-ml.so.1, nvml.dll on Windows) was not found: "
            "no NVIDIA driver is installed here."
        )
        fix = DRIVER_FIX
    elif code == NVML_ERROR_DRIVER_NOT_LOADED:
        reason = "the NVIDIA kernel driver is not loaded."
        fix = DRIVER_FIX
    elif code == NVML_ERROR_NO_PERMISSION:
        reason = "this user may not open the NVIDIA device files (/dev/nvidia*)."
        fix = "run as a user with access to /dev/nvidia* (or in a container started with `--gpus`)"
    elif code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        reason = (
            "the NVML library and the loaded kernel driver have different versions "
            "(usually after a driver upgrade)."
        )
        fix = "reboot, or reload the nvidia kernel module"
    else:
        reason = f"nvmlInit failed with NVML error {code} ({exc})."
        fix = DRIVER_FIX
    return MeterUnavailable(METER_NAME, reason, fix)


def query_unavailable(exc: BaseException, what: str) -> MeterUnavailable:
    """A query needed to build the meter failed; ``what`` completes "could not ..."."""
    code = error_code(exc)
    if code == NVML_ERROR_NO_PERMISSION:
        return MeterUnavailable(
            METER_NAME,
            f"NVML refused to {what}: insufficient permissions.",
            "run as a user allowed to query the GPU (check `nvidia-smi -q -d POWER`), or ask the "
            "administrator to lift the restriction",
        )
    if code == NVML_ERROR_GPU_IS_LOST:
        return MeterUnavailable(
            METER_NAME,
            f"could not {what}: the GPU has fallen off the bus.",
            "reset the GPU (`nvidia-smi -r`) or reboot the machine",
        )
    return MeterUnavailable(METER_NAME, f"could not {what}: NVML error {code} ({exc}).", DRIVER_FIX)


def query_at_init(nvml: Any, fn: Callable[..., Any], what: str, *args: Any) -> Any:
    """``fn(*args)``, with an ``nvml.NVMLError`` turned into :func:`query_unavailable`."""
    try:
        return fn(*args)
    except nvml.NVMLError as exc:
        raise query_unavailable(exc, what) from exc


def device_error(exc: BaseException, device: str, what: str) -> NvmlError:
    """A read of the ``what`` of a working GPU failed; ``device`` describes the GPU."""
    code = error_code(exc)
    if code in LOST_CODES:
        return NvmlGpuLost(
            f"GPU {device} was lost during the run (reading its {what} gave NVML error "
            f"{code}: {exc}); the measurement is invalid.",
            code,
        )
    return NvmlError(
        f"reading the {what} of GPU {device} failed with NVML error {code} ({exc}); "
        "the measurement is invalid.",
        code,
    )
