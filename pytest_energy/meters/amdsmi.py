"""The ``amdsmi`` meter: energy of AMD Instinct and Radeon GPUs through AMD SMI.

AMD SMI (the ``amdsmi`` Python package, which loads ROCm's ``libamd_smi.so``) keeps an energy
accumulator per GPU. ``amdsmi_get_energy_count(handle)`` returns the raw count and
``counter_resolution``, the microjoules one count is worth (15.3 on current Instinct GPUs);
their product is the energy since the driver loaded. The dictionary key of the count changed
between ROCm releases: ``power`` up to 6.2.0, ``energy_accumulator`` from 6.2.1 (both until
6.4, ``energy_accumulator`` alone from 7.0), and this meter reads either.

Wraparound: AMD SMI passes the count as 64 bits, but the first GPU metrics table (v1.0)
carried it in 32 bits, "v1 mod. (32->64)" in ``amdsmi_gpu_metrics_t``. A count that falls
while it and its previous value are both below 2**32 is taken as a 32-bit wrap and unwrapped,
provided the energy it implies since the previous read is physically possible (below
:data:`MAX_PLAUSIBLE_POWER_W` on average). Any other fall, a 64-bit count going backwards, is
a :class:`~pytest_energy.errors.CounterWentBackwards` error, never a guess. As with RAPL, a
wrap is seen only when ``read()`` runs at least once per wrap period (about 65 kJ, minutes at
full load); the plugin reads at both ends of every window.

Which GPUs: those this process can see, in HIP order, after ``ROCR_VISIBLE_DEVICES`` (indices
into every GPU, or ``GPU-`` UUIDs) and then ``HIP_VISIBLE_DEVICES`` (indices into what ROCr
left; ``CUDA_VISIBLE_DEVICES`` when that is unset, as ROCm builds of PyTorch honour it). HIP
order comes from ``amdsmi_get_gpu_enumeration_info`` (ROCm 6.4+), else KFD node ids
(``amdsmi_get_gpu_kfd_info``), else handle order (PCI bus order), which the provenance then
flags. Domains are ``amdgpu:0``, ``amdgpu:1`` ... in that order. ``devices`` are the GPUs'
UUIDs (``amdsmi_get_gpu_device_uuid``), or ``pci-<BDF>`` where the UUID is not offered, so
the per-device locks follow the board, not its number.

MI250 and MI250X hold two dies (GCDs) that appear as two GPUs, and the driver reports the
energy of both on the even one; the odd one's counter stays at zero (Zeus and CodeCarbon
document the same). The even die's domain then covers the pair and is marked shared; an odd
die metered without its partner is unavailable, with the fix.

``amdsmi`` is imported, and AMD SMI initialised, only when a meter is built.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CounterWentBackwards, MeterError, MeterUnavailable
from .nvml_devices import hardware_label

NAME = "amdsmi"
INSTALL_FIX = (
    "install ROCm (its amd-smi-lib package provides libamd_smi.so) and the amdsmi Python "
    "package of the same release: pip install 'pytest-energy[amd]' installs the newest, "
    "pip install 'amdsmi==<your ROCm version>' a matching one"
)
DRIVER_FIX = (
    "check that `amd-smi list` shows the GPU; load the amdgpu kernel driver, and in a "
    "container pass /dev/kfd and /dev/dri (docker run --device /dev/kfd --device /dev/dri)"
)
GPU_LIST_FIX = (
    "set ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES to GPU indices shown by `amd-smi list` "
    "(or GPU- UUIDs for ROCR_VISIBLE_DEVICES), or unset them to meter every GPU"
)
#: AMD does not document how often the accumulator advances; NVML's 100 ms is assumed, which
#: makes calibrated windows last at least a second.
UPDATE_PERIOD_S = 0.1
UJ_PER_J = 1_000_000.0
#: The width of the accumulator in the first GPU metrics table.
COUNTER_32_BIT = 2**32
#: Above the board power of any AMD GPU (MI355X: 1.4 kW): a "wrap" implying more is a fault.
MAX_PLAUSIBLE_POWER_W = 3000.0

# amdsmi_status_t values from amdsmi.h (amdsmi_wrapper.AMDSMI_STATUS_*), part of the C ABI.
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_YET_IMPLEMENTED = 3
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_NO_DATA = 40
AMDSMI_STATUS_FILE_NOT_FOUND = 52
UNSUPPORTED_CODES = frozenset(
    {AMDSMI_STATUS_NOT_SUPPORTED, AMDSMI_STATUS_NOT_YET_IMPLEMENTED, AMDSMI_STATUS_NO_DATA}
)
LOST_CODES = frozenset({AMDSMI_STATUS_NOT_FOUND, AMDSMI_STATUS_INVAL, AMDSMI_STATUS_NOT_INIT})


class AmdSmiError(MeterError):
    """AMD SMI failed while a working meter was reading; ``code`` is the amdsmi_status_t."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def error_code(exc: BaseException) -> int | None:
    """The amdsmi_status_t of an ``AmdSmiLibraryException``, or None."""
    get = getattr(exc, "get_error_code", None)
    try:
        code = get() if callable(get) else getattr(exc, "err_code", None)
    except Exception:
        return None
    return code if isinstance(code, int) else None


def _describe_error(exc: BaseException) -> str:
    """One line for an amdsmi exception (its ``str()`` spans two lines)."""
    get = getattr(exc, "get_error_info", None)
    try:
        info = get() if callable(get) else None
    except Exception:
        info = None
    text = str(info) if info else " ".join(str(exc).split()) or type(exc).__name__
    code = error_code(exc)
    return f"AMD SMI error {code} ({text})" if code is not None else text


def init_unavailable(exc: BaseException) -> MeterUnavailable:
    """Why ``amdsmi_init`` failed, and the fix."""
    code = error_code(exc)
    if code == AMDSMI_STATUS_NO_PERM:
        return MeterUnavailable(
            NAME,
            "this user may not open the AMD GPU device files (/dev/kfd, /dev/dri/renderD*).",
            "add the user to the render and video groups (sudo usermod -aG render,video $USER), "
            "or in a container pass --device /dev/kfd --device /dev/dri --group-add video",
        )
    if code == AMDSMI_STATUS_DRIVER_NOT_LOADED:
        return MeterUnavailable(NAME, "the amdgpu kernel driver is not loaded.", DRIVER_FIX)
    if code in (AMDSMI_STATUS_FAIL_LOAD_MODULE, AMDSMI_STATUS_FILE_NOT_FOUND):
        return MeterUnavailable(
            NAME,
            f"AMD SMI could not load its driver interface: {_describe_error(exc)}.",
            DRIVER_FIX,
        )
    return MeterUnavailable(NAME, f"amdsmi_init failed: {_describe_error(exc)}.", DRIVER_FIX)


def query_unavailable(exc: BaseException, what: str) -> MeterUnavailable:
    """A query needed to build the meter failed; ``what`` completes "could not ..."."""
    if error_code(exc) == AMDSMI_STATUS_NO_PERM:
        return MeterUnavailable(
            NAME,
            f"AMD SMI refused to {what}: permission denied.",
            "add the user to the render and video groups (sudo usermod -aG render,video $USER)",
        )
    return MeterUnavailable(NAME, f"could not {what}: {_describe_error(exc)}.", DRIVER_FIX)


def _import_amdsmi() -> Any:
    sink = io.StringIO()  # amdsmi prints to stdout when libamd_smi.so is missing
    try:
        with contextlib.redirect_stdout(sink):
            return importlib.import_module("amdsmi")
    except ImportError as exc:
        raise MeterUnavailable(
            NAME, "the Python package amdsmi is not installed.", INSTALL_FIX
        ) from exc
    except (OSError, KeyError, AttributeError) as exc:
        printed = " ".join(sink.getvalue().split())
        detail = printed or f"{type(exc).__name__}: {exc}"
        raise MeterUnavailable(
            NAME,
            f"the amdsmi package is installed but cannot load ROCm's libamd_smi.so ({detail}); "
            "ROCm is missing, ROCM_PATH points elsewhere, or amdsmi and ROCm are different "
            "releases.",
            INSTALL_FIX,
        ) from exc


# -- which GPUs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmdGpuInfo:
    """What AMD SMI says about one GPU: enough to order, select and lock it."""

    name: str
    bdf: str
    uuid: str | None = None
    hip_uuid: str | None = None
    hip_id: int | None = None
    node_id: int | None = None

    @property
    def device(self) -> str:
        """The name of this GPU's device lock: its UUID, else its PCI address."""
        return self.uuid if self.uuid else f"pci-{self.bdf.lower()}"


def hip_order(gpus: Sequence[AmdGpuInfo]) -> tuple[list[int], bool]:
    """Positions of ``gpus`` in HIP order, and whether that order is only PCI bus order."""
    positions = list(range(len(gpus)))
    if gpus and all(gpu.hip_id is not None for gpu in gpus):
        return sorted(positions, key=lambda pos: gpus[pos].hip_id or 0), False
    if gpus and all(gpu.node_id is not None for gpu in gpus):
        return sorted(positions, key=lambda pos: gpus[pos].node_id or 0), False
    return positions, len(gpus) > 1


def _select(
    variable: str, spec: str, candidates: Sequence[int], gpus: Sequence[AmdGpuInfo], uuids: bool
) -> list[int]:
    tokens = [token.strip() for token in spec.split(",") if token.strip()]
    if not tokens:
        raise MeterUnavailable(
            NAME, f"{variable}={spec!r} hides every GPU from this process.", GPU_LIST_FIX
        )
    chosen: list[int] = []
    for token in tokens:
        if re.fullmatch(r"\d+", token):
            index = int(token)
            if index >= len(candidates):
                raise MeterUnavailable(
                    NAME,
                    f"{variable}={spec!r} names GPU {index}, but {len(candidates)} GPU(s) are "
                    f"visible there, numbered 0 to {len(candidates) - 1}.",
                    GPU_LIST_FIX,
                )
            pos = candidates[index]
        elif uuids and token.upper().startswith("GPU-"):
            hits = [
                pos for pos in candidates if (gpus[pos].hip_uuid or "").lower() == token.lower()
            ]
            if len(hits) != 1:
                raise MeterUnavailable(
                    NAME,
                    f"{variable}={spec!r}: the entry {token!r} matches no GPU whose HIP UUID AMD "
                    "SMI reports (it needs ROCm 6.4 or newer to report them).",
                    GPU_LIST_FIX,
                )
            pos = hits[0]
        else:
            raise MeterUnavailable(
                NAME, f"{variable}={spec!r}: the entry {token!r} is not a GPU index.", GPU_LIST_FIX
            )
        if pos not in chosen:
            chosen.append(pos)
    return chosen


def resolve_visible_gpus(environ: Mapping[str, str], gpus: Sequence[AmdGpuInfo]) -> list[int]:
    """Positions in ``gpus`` that this process sees, in the order HIP numbers them.

    ``ROCR_VISIBLE_DEVICES`` filters first; ``HIP_VISIBLE_DEVICES`` (else
    ``CUDA_VISIBLE_DEVICES``) then indexes what is left. An entry that names no GPU is an
    error, never skipped, so a typo cannot make the meter read another board.
    """
    visible, _ = hip_order(gpus)
    rocr = environ.get("ROCR_VISIBLE_DEVICES")
    if rocr is not None:
        visible = _select("ROCR_VISIBLE_DEVICES", rocr, visible, gpus, uuids=True)
    for variable in ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        spec = environ.get(variable)
        if spec is not None:
            return _select(variable, spec, visible, gpus, uuids=False)
    return visible


def _text(value: object) -> str | None:
    """A string AMD SMI returned, or None for nothing, "N/A" or an empty string."""
    if value is None:
        return None
    text = str(value).strip("\x00").strip()
    return text if text and text != "N/A" else None


def _is_dual_die(name: str) -> bool:
    return "MI250" in name.upper()


# -- the meter ---------------------------------------------------------------------------------


@dataclass
class _MeteredGpu:
    domain: str
    handle: Any
    info: AmdGpuInfo
    resolution_uj: float
    last_count: int
    last_time_s: float
    total_j: float = 0.0
    wide: bool = False  # a count above 32 bits was seen: the accumulator is 64-bit
    partner: str | None = field(default=None)

    def describe(self) -> str:
        return f"{self.domain} ({self.info.name}, {self.info.device}, PCI {self.info.bdf})"


class AmdSmiMeter:
    """Cumulative energy of the visible AMD GPUs, in joules, one domain per GPU.

    ``amdsmi`` is the bindings module (imported here when ``None``), ``environ`` the
    environment holding the visibility variables (``os.environ`` when ``None``) and ``clock``
    a monotonic clock in seconds, used to judge whether a counter wrap is plausible.
    Raises :class:`~pytest_energy.errors.MeterUnavailable` when the package, ROCm, the driver,
    a permission or a visible GPU with an energy counter is missing.
    """

    name = NAME
    estimated = False
    update_period_s = UPDATE_PERIOD_S
    #: GPU model(s) and count, e.g. ``"AMD Instinct MI300X x8"``.
    hardware: str
    provenance: str
    #: True when a metered MI250/MI250X die's figure covers its partner die too.
    shared: bool
    #: UUIDs (or ``pci-<BDF>``) of the metered GPUs, in domain order, for the device locks.
    devices: tuple[str, ...]

    def __init__(
        self,
        *,
        amdsmi: Any = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        smi = _import_amdsmi() if amdsmi is None else amdsmi
        self._smi = smi
        self._clock = clock
        self._closed = False
        try:
            smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except smi.AmdSmiException as exc:
            raise init_unavailable(exc) from exc
        try:
            self._setup(os.environ if environ is None else environ)
        except BaseException:
            self._closed = True
            with contextlib.suppress(Exception):
                smi.amdsmi_shut_down()
            raise

    # -- construction ---------------------------------------------------------------------
    def _query(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._smi.AmdSmiException as exc:
            raise query_unavailable(exc, what) from exc

    def _optional(self, fn_name: str, handle: Any, what: str) -> Any:
        """A query that older ROCm releases or some GPUs lack: None then."""
        fn = getattr(self._smi, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(handle)
        except self._smi.AmdSmiException as exc:
            if error_code(exc) in UNSUPPORTED_CODES:
                return None
            raise query_unavailable(exc, what) from exc

    def _describe(self, handle: Any, index: int) -> AmdGpuInfo:
        where = f"GPU {index}"
        asic = self._query(
            f"read the ASIC info of {where}", self._smi.amdsmi_get_gpu_asic_info, handle
        )
        name = str(asic.get("market_name", "") or "").strip()
        if not name or name == "N/A":
            name = f"AMD GPU {asic.get('device_id', 'N/A')}"
        bdf = str(
            self._query(
                f"read the PCI address of {where}", self._smi.amdsmi_get_gpu_device_bdf, handle
            )
        )
        uuid = self._optional("amdsmi_get_gpu_device_uuid", handle, f"read the UUID of {where}")
        enumeration = (
            self._optional("amdsmi_get_gpu_enumeration_info", handle, f"read the HIP id of {where}")
            or {}
        )
        kfd = {}
        if "hip_id" not in enumeration:
            kfd = self._optional("amdsmi_get_gpu_kfd_info", handle, f"read the KFD node of {where}")
        hip_id, node_id = enumeration.get("hip_id"), (kfd or {}).get("node_id")
        return AmdGpuInfo(
            name=name,
            bdf=bdf,
            uuid=_text(uuid),
            hip_uuid=_text(enumeration.get("hip_uuid")),
            hip_id=hip_id if isinstance(hip_id, int) else None,
            node_id=node_id if isinstance(node_id, int) else None,
        )

    def _setup(self, environ: Mapping[str, str]) -> None:
        handles = list(self._query("list the GPUs", self._smi.amdsmi_get_processor_handles))
        if not handles:
            raise MeterUnavailable(NAME, "AMD SMI works but finds no AMD GPU.", DRIVER_FIX)
        infos = [self._describe(handle, index) for index, handle in enumerate(handles)]
        order, pci_ordered = hip_order(infos)
        visible = resolve_visible_gpus(environ, infos)
        hip_index = {pos: number for number, pos in enumerate(order)}
        chosen = set(visible)
        gpus: list[_MeteredGpu] = []
        shared = False
        for number, pos in enumerate(visible):
            info = infos[pos]
            domain = f"amdgpu:{number}"
            partner: str | None = None
            if _is_dual_die(info.name):
                index = hip_index[pos]
                if index % 2 == 1:
                    if order[index - 1] in chosen:
                        continue  # its energy is in the first die's counter, metered already
                    raise MeterUnavailable(
                        NAME,
                        f"GPU {info.device} is the second die of an {info.name}, whose energy the "
                        "driver reports only on the first die of the pair.",
                        "make both dies of the pair visible (the figure then covers both), or "
                        "run the work on the first die",
                    )
                shared = True  # the first die's counter covers its partner, visible or not
                if index + 1 < len(order):
                    partner = infos[order[index + 1]].device
            count, resolution = self._probe(handles[pos], info)
            gpus.append(
                _MeteredGpu(
                    domain,
                    handles[pos],
                    info,
                    resolution,
                    count,
                    self._clock(),
                    wide=count >= COUNTER_32_BIT,
                    partner=partner,
                )
            )
        self._gpus = tuple(gpus)
        self.shared = shared
        self.devices = tuple(
            device for gpu in gpus for device in (gpu.info.device, gpu.partner) if device
        )
        names = [gpu.info.name for gpu in gpus]
        self.hardware = hardware_label(names) + (" (dual-die pairs)" if shared else "")
        resolutions = sorted({f"{gpu.resolution_uj:.3g}" for gpu in gpus})
        parts = [
            f"measured: AMD SMI energy accumulator x counter_resolution ({', '.join(resolutions)} "
            f"uJ) on {self.hardware}, 32-bit wraps unwrapped"
        ]
        if shared:
            parts.append("shared: each MI250/MI250X figure covers both dies of its pair")
        if pci_ordered:
            parts.append(
                "GPUs numbered in PCI bus order: this amdsmi reports neither HIP indices "
                "(ROCm 6.4+) nor KFD nodes, and HIP may number them differently"
            )
        self.provenance = "; ".join(parts)

    def _probe(self, handle: Any, info: AmdGpuInfo) -> tuple[int, float]:
        try:
            return self._count(handle)
        except self._smi.AmdSmiException as exc:
            if error_code(exc) in UNSUPPORTED_CODES:
                raise MeterUnavailable(
                    NAME,
                    f"GPU {info.name} ({info.device}) reports no energy counter "
                    "(amdsmi_get_energy_count is not supported: a virtual machine guest, or a "
                    "GPU or driver without it).",
                    "meter on bare metal with a current amdgpu driver, or pick another meter "
                    "with --energy-meter",
                ) from exc
            raise query_unavailable(exc, f"read the energy counter of {info.name}") from exc
        except MeterError as exc:
            raise MeterUnavailable(NAME, str(exc), INSTALL_FIX) from exc

    def _count(self, handle: Any) -> tuple[int, float]:
        """(raw count, microjoules per count) from amdsmi_get_energy_count."""
        reading = self._smi.amdsmi_get_energy_count(handle)
        raw = reading.get("energy_accumulator", reading.get("power"))
        resolution = reading.get("counter_resolution")
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise MeterError(f"amdsmi_get_energy_count returned no usable count: {reading!r}")
        if (
            not isinstance(resolution, (int, float))
            or not math.isfinite(resolution)
            or resolution <= 0
        ):
            raise MeterError(
                f"amdsmi_get_energy_count returned counter_resolution {resolution!r}, which "
                "cannot turn counts into joules"
            )
        return raw, float(resolution)

    # -- reading --------------------------------------------------------------------------
    def read(self) -> dict[str, float]:
        """Joules per GPU domain since the meter was built; never decreases."""
        if self._closed:
            raise MeterError("the amdsmi meter was used after close()")
        readings: list[tuple[int, float, float]] = []
        for gpu in self._gpus:
            try:
                count, resolution = self._count(gpu.handle)
            except self._smi.AmdSmiException as exc:
                code = error_code(exc)
                lost = " was lost during the run" if code in LOST_CODES else ""
                raise AmdSmiError(
                    f"GPU {gpu.describe()}{lost}: reading its energy counter gave "
                    f"{_describe_error(exc)}; the measurement is invalid.",
                    code,
                ) from exc
            readings.append((count, resolution, self._clock()))
        steps = [
            self._step(gpu, *reading) for gpu, reading in zip(self._gpus, readings, strict=True)
        ]
        # State changes only once every GPU has been read and checked.
        for gpu, (count, _, now_s), step_j in zip(self._gpus, readings, steps, strict=True):
            gpu.total_j += step_j
            gpu.last_count, gpu.last_time_s = count, now_s
            gpu.wide = gpu.wide or count >= COUNTER_32_BIT
        return {gpu.domain: gpu.total_j for gpu in self._gpus}

    def _step(self, gpu: _MeteredGpu, count: int, resolution: float, now_s: float) -> float:
        """Joules since ``gpu``'s previous read, unwrapping a 32-bit accumulator."""
        if resolution != gpu.resolution_uj:
            raise AmdSmiError(
                f"GPU {gpu.describe()} changed its counter_resolution from {gpu.resolution_uj} "
                f"to {resolution} uJ mid-run; the measurement is invalid."
            )
        if count >= gpu.last_count:
            return (count - gpu.last_count) * resolution / UJ_PER_J
        wide = gpu.wide or gpu.last_count >= COUNTER_32_BIT or count >= COUNTER_32_BIT
        if not wide:
            step_j = (count + COUNTER_32_BIT - gpu.last_count) * resolution / UJ_PER_J
            elapsed_s = max(now_s - gpu.last_time_s, 1e-9)
            if step_j / elapsed_s <= MAX_PLAUSIBLE_POWER_W:
                return step_j
        raise CounterWentBackwards(
            f"the energy counter of GPU {gpu.describe()} went backwards from {gpu.last_count} to "
            f"{count} counts, which no counter wrap explains (a driver reload or GPU reset, or "
            "an AMD SMI fault such as ROCm/amdsmi#115); the measurement is invalid."
        )

    def close(self) -> None:
        """Shut AMD SMI down; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._smi.amdsmi_shut_down()
        except self._smi.AmdSmiException as exc:
            raise AmdSmiError(
                f"amdsmi_shut_down failed: {_describe_error(exc)}", error_code(exc)
            ) from exc
