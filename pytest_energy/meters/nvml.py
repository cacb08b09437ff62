"""The ``nvml`` meter: energy of NVIDIA GPUs read through NVML (package nvidia-ml-py).

On Volta and newer GPUs NVML keeps a board energy counter in millijoules
(``nvmlDeviceGetTotalEnergyConsumption``); :meth:`NvmlMeter.read` returns it in joules. Older
GPUs have no counter: a daemon thread polls ``nvmlDeviceGetPowerUsage`` (milliwatts) and
integrates it with the trapezoid rule, and the provenance says so.

Only the GPUs this process can see are metered. ``CUDA_VISIBLE_DEVICES`` is matched to NVML
devices by UUID and PCI bus id, never by assuming that a CUDA ordinal equals an NVML index.
Integer entries count GPUs in PCI bus order, which is CUDA's order when
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (CUDA's default order puts the fastest GPU first). A MIG
slice has no energy sensor of its own, so its parent GPU is metered and the result is marked
as shared.

``pynvml`` is imported, and NVML initialised, only when a meter is built, never when this
module is imported.

The meter is this module. Its parts live beside it, and their public names are re-exported
here: :mod:`~pytest_energy.meters.nvml_devices` (visible GPUs, UUID and PCI bus id matching,
MIG, ordering), :mod:`~pytest_energy.meters.nvml_errors` (NVML error codes to typed
exceptions and fixes) and :mod:`~pytest_energy.meters.power` (the generic power integrator
and poller used on GPUs without an energy counter).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_energy.errors import MeterError, MeterUnavailable
from pytest_energy.meters.nvml_devices import (
    GPU_LIST_FIX,
    GpuInfo,
    find_gpus,
    hardware_label,
    ordering_is_uncertain,
    pci_sort_key,
    resolve_visible_gpus,
)
from pytest_energy.meters.nvml_errors import (
    DRIVER_FIX,
    INSTALL_FIX,
    METER_NAME,
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_GPU_NOT_FOUND,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_RESET_REQUIRED,
    UNSUPPORTED_CODES,
    NvmlError,
    NvmlGpuLost,
    device_error,
    error_code,
    init_unavailable,
    query_unavailable,
)
from pytest_energy.meters.power import DEFAULT_POLL_INTERVAL_S, PowerIntegrator, PowerPoller

__all__ = [
    "DEFAULT_POLL_INTERVAL_S",
    "DRIVER_FIX",
    "GPU_LIST_FIX",
    "INSTALL_FIX",
    "METER_NAME",
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_FUNCTION_NOT_FOUND",
    "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_GPU_NOT_FOUND",
    "NVML_ERROR_INVALID_ARGUMENT",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
    "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_ERROR_RESET_REQUIRED",
    "POLLER_THREAD_NAME",
    "UPDATE_PERIOD_S",
    "GpuInfo",
    "NvmlError",
    "NvmlGpuLost",
    "NvmlMeter",
    "PowerIntegrator",
    "PowerPoller",
    "hardware_label",
    "ordering_is_uncertain",
    "pci_sort_key",
    "resolve_visible_gpus",
]

_MJ_PER_J = 1000.0
_MW_PER_W = 1000.0

#: NVML refreshes its energy counter every 20-100 ms; windows are calibrated to several periods.
UPDATE_PERIOD_S = 0.1
#: Name of the power-polling thread of a meter on GPUs without an energy counter.
POLLER_THREAD_NAME = "pytest-energy-nvml-poller"

#: (pynvml constant suffix, documented bit value, short name). GPU idle and applications
#: clocks setting are left out on purpose: they are not slowdowns that change energy figures.
_THROTTLE_BITS: tuple[tuple[str, int, str], ...] = (
    ("SwPowerCap", 0x04, "sw power cap"),
    ("HwSlowdown", 0x08, "hw slowdown"),
    ("SwThermalSlowdown", 0x20, "sw thermal"),
    ("HwThermalSlowdown", 0x40, "hw thermal"),
    ("HwPowerBrakeSlowdown", 0x80, "hw power brake"),
    ("SyncBoost", 0x10, "sync boost"),
)


# -- the meter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MeteredGpu:
    domain: str
    handle: Any
    info: GpuInfo
    has_counter: bool

    def describe(self) -> str:
        return f"{self.domain} ({self.info.name}, {self.info.uuid}, PCI {self.info.bus_id})"


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise MeterUnavailable(
            METER_NAME,
            "the Python package nvidia-ml-py (module 'pynvml') is not installed.",
            INSTALL_FIX,
        ) from exc


class NvmlMeter:
    """Cumulative energy of the visible NVIDIA GPUs, in joules, one domain per GPU.

    Domains are ``"gpu:0"``, ``"gpu:1"`` ... in CUDA-visible order. All arguments are
    optional: ``pynvml`` is the bindings module (imported here when ``None``), ``environ``
    the environment holding ``CUDA_VISIBLE_DEVICES`` (``os.environ`` when ``None``), and
    ``poll_interval_s`` the power sampling period used on GPUs without an energy counter.

    Raises :class:`~pytest_energy.errors.MeterUnavailable` when the bindings, the driver, a
    permission or a visible GPU is missing.
    """

    name = METER_NAME
    estimated = False
    update_period_s = UPDATE_PERIOD_S
    #: GPU model(s) and count, e.g. ``"NVIDIA H100 80GB HBM3 x1"``; baselines are kept per value.
    hardware: str
    #: One sentence on how the figures are obtained.
    provenance: str
    #: True when a metered GPU is in MIG mode: its energy includes the other slices' work.
    shared: bool
    #: ``"counter"``, ``"polling"`` or ``"mixed"``: how the energy figures are obtained.
    method: str
    #: UUIDs of the physical GPUs metered (the parent for a MIG slice), in domain order. The
    #: plugin's per-device locks use them, so processes that number the same GPU differently
    #: still queue for it.
    devices: tuple[str, ...]

    def __init__(
        self,
        *,
        pynvml: Any = None,
        environ: Mapping[str, str] | None = None,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s!r}")
        nvml = _import_pynvml() if pynvml is None else pynvml
        env: Mapping[str, str] = os.environ if environ is None else environ
        self._nvml = nvml
        self._closed = False
        self._poller: PowerPoller | None = None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise init_unavailable(exc) from exc
        try:
            self._setup(env, poll_interval_s)
        except BaseException:
            # The original error is what the user needs; a failing shutdown must not hide it.
            self._closed = True
            if self._poller is not None:
                self._poller.stop()
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            raise

    # -- construction -------------------------------------------------------------------
    def _setup(self, env: Mapping[str, str], poll_interval_s: float) -> None:
        nvml = self._nvml
        spec = env.get("CUDA_VISIBLE_DEVICES")
        wants_mig = spec is not None and "MIG-" in spec.upper()
        found = find_gpus(nvml, enumerate_mig=wants_mig)
        infos = [info for info, _ in found]

        visible = resolve_visible_gpus(spec, infos)
        gpus: list[_MeteredGpu] = []
        for number, pos in enumerate(visible):
            info, handle = found[pos]
            gpus.append(
                _MeteredGpu(f"gpu:{number}", handle, info, self._probe_counter(handle, info))
            )
        self._gpus: tuple[_MeteredGpu, ...] = tuple(gpus)

        self.devices = tuple(gpu.info.uuid for gpu in gpus)
        self.shared = any(gpu.info.mig_enabled for gpu in gpus)
        self.hardware = hardware_label([gpu.info.name for gpu in gpus], shared=self.shared)
        polled = [gpu for gpu in gpus if not gpu.has_counter]
        self.method = (
            "counter" if not polled else "polling" if len(polled) == len(gpus) else "mixed"
        )

        if polled:
            for gpu in polled:
                self._probe_power(gpu)
            self._poller = PowerPoller(
                self._sample_power_w,
                [gpu.domain for gpu in polled],
                interval_s=poll_interval_s,
                thread_name=POLLER_THREAD_NAME,
            )
            self._poller.start()

        self.provenance = self._provenance(
            poll_interval_s, ordering_is_uncertain(spec, env, [info.name for info in infos])
        )

    def _probe_counter(self, handle: Any, info: GpuInfo) -> bool:
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self._nvml.NVMLError as exc:
            if error_code(exc) in UNSUPPORTED_CODES:  # pre-Volta GPU or old driver
                return False
            raise query_unavailable(
                exc, f"read the energy counter of {info.name} ({info.uuid})"
            ) from exc
        return True

    def _probe_power(self, gpu: _MeteredGpu) -> None:
        try:
            self._nvml.nvmlDeviceGetPowerUsage(gpu.handle)
        except self._nvml.NVMLError as exc:
            if error_code(exc) in UNSUPPORTED_CODES:
                raise MeterUnavailable(
                    METER_NAME,
                    f"GPU {gpu.describe()} reports neither an energy counter nor its power draw.",
                    "meter a GPU with a power sensor (Volta or newer has an energy counter), or "
                    "pick another meter with --energy-meter",
                ) from exc
            raise query_unavailable(exc, f"read the power draw of {gpu.describe()}") from exc

    def _provenance(self, poll_interval_s: float, ordering_uncertain: bool) -> str:
        poll = f"NVML power polled every {poll_interval_s * 1000:g} ms and integrated"
        counted = [gpu.domain for gpu in self._gpus if gpu.has_counter]
        polled = [gpu.domain for gpu in self._gpus if not gpu.has_counter]
        if not polled:
            parts = [f"NVML total energy counter on {self.hardware}"]
        elif not counted:
            parts = [f"{poll} (no energy counter on this GPU)"]
        else:
            parts = [
                f"NVML total energy counter on {', '.join(counted)} and {poll} on "
                f"{', '.join(polled)} (no energy counter on that GPU)"
            ]
        if self.shared:
            parts.append("shared: MIG slice, whole parent GPU metered")
        if ordering_uncertain:
            parts.append(
                "GPUs numbered in PCI bus order, which matches CUDA's numbering only with "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID or identical GPUs"
            )
        return "; ".join(parts)

    # -- reading -------------------------------------------------------------------------
    def _device_call(self, gpu: _MeteredGpu, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(gpu.handle)
        except self._nvml.NVMLError as exc:
            raise device_error(exc, gpu.describe(), what) from exc

    def _sample_power_w(self) -> dict[str, float]:
        power_w: dict[str, float] = {}
        for gpu in self._gpus:
            if not gpu.has_counter:
                milliwatts = self._device_call(gpu, "power", self._nvml.nvmlDeviceGetPowerUsage)
                power_w[gpu.domain] = milliwatts / _MW_PER_W
        return power_w

    def _check_open(self) -> None:
        if self._closed:
            raise MeterError("the nvml meter was used after close()")

    def read(self) -> dict[str, float]:
        """Cumulative joules per GPU domain (the raw counter, or the integral of polled power)."""
        self._check_open()
        polled_j = self._poller.sample() if self._poller is not None else {}
        energy_j: dict[str, float] = {}
        for gpu in self._gpus:
            if gpu.has_counter:
                millijoules = self._device_call(
                    gpu, "energy counter", self._nvml.nvmlDeviceGetTotalEnergyConsumption
                )
                energy_j[gpu.domain] = millijoules / _MJ_PER_J
            else:
                energy_j[gpu.domain] = polled_j[gpu.domain]
        return energy_j

    def throttle_reasons(self) -> tuple[str, ...]:
        """Short names of the active clock slowdowns on any metered GPU, e.g. ``("sw thermal",)``.

        A GPU that cannot report them (NVML_ERROR_NOT_SUPPORTED) contributes nothing.
        """
        self._check_open()
        nvml = self._nvml
        readers = [
            fn
            for fn in (
                getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None),
                getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None),
            )
            if fn is not None
        ]
        bits = _throttle_bits(nvml)
        active: set[str] = set()
        for gpu in self._gpus:
            mask = self._read_reasons(gpu, readers)
            if mask is not None:
                active.update(name for bit, name in bits if mask & bit)
        return tuple(name for _, _, name in _THROTTLE_BITS if name in active)

    def _read_reasons(
        self, gpu: _MeteredGpu, readers: Sequence[Callable[[Any], int]]
    ) -> int | None:
        for reader in readers:
            try:
                return int(reader(gpu.handle))
            except self._nvml.NVMLError as exc:
                code = error_code(exc)
                if code == NVML_ERROR_FUNCTION_NOT_FOUND:
                    continue  # the driver predates this name; try the older one
                if code == NVML_ERROR_NOT_SUPPORTED:
                    return None
                raise device_error(exc, gpu.describe(), "clock throttle reasons") from exc
        return None

    def idle_power_w(self) -> float:
        """Current power draw of the metered GPUs, in watts (whole boards when MIG is on)."""
        self._check_open()
        total_mw = 0.0
        for gpu in self._gpus:
            total_mw += self._device_call(gpu, "power", self._nvml.nvmlDeviceGetPowerUsage)
        return total_mw / _MW_PER_W

    def close(self) -> None:
        """Stop the power poller, if any, and shut NVML down; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._poller is not None:
            self._poller.stop()
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            raise NvmlError(
                f"nvmlShutdown failed: NVML error {error_code(exc)} ({exc})", error_code(exc)
            ) from exc


def _throttle_bits(nvml: Any) -> tuple[tuple[int, str], ...]:
    """(bit, name) pairs, taking bit values from the bindings when they define them."""
    bits: list[tuple[int, str]] = []
    for suffix, documented, name in _THROTTLE_BITS:
        value: Any = getattr(nvml, f"nvmlClocksEventReason{suffix}", None)
        if value is None:
            value = getattr(nvml, f"nvmlClocksThrottleReason{suffix}", documented)
        bits.append((int(value), name))
    return tuple(bits)
