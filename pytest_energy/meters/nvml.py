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
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_energy.errors import MeterError, MeterUnavailable

METER_NAME = "nvml"
INSTALL_FIX = "pip install 'pytest-energy[nvml]'"
DRIVER_FIX = (
    "install the NVIDIA driver and check that `nvidia-smi` lists the GPU (in a container, "
    f"start it with the NVIDIA container toolkit, e.g. `--gpus all`), and {INSTALL_FIX}"
)
GPU_LIST_FIX = (
    "set CUDA_VISIBLE_DEVICES to GPU indices or to GPU-/MIG- UUIDs shown by `nvidia-smi -L`, "
    "or unset it to meter every GPU"
)

_MJ_PER_J = 1000.0
_MW_PER_W = 1000.0

#: NVML refreshes its energy counter every 20-100 ms; windows are calibrated to several periods.
UPDATE_PERIOD_S = 0.1
DEFAULT_POLL_INTERVAL_S = 0.02

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
_LOST_CODES = frozenset(
    {
        NVML_ERROR_GPU_IS_LOST,
        NVML_ERROR_RESET_REQUIRED,
        NVML_ERROR_NOT_FOUND,
        NVML_ERROR_GPU_NOT_FOUND,
        NVML_ERROR_INVALID_ARGUMENT,
    }
)
#: Codes meaning "this GPU or driver does not offer that query".
_UNSUPPORTED_CODES = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND})

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

_PCI_BUS_ID = re.compile(r"^([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])$")


class NvmlError(MeterError):
    """NVML failed while a working meter was reading; ``code`` is the ``nvmlReturn_t`` value."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NvmlGpuLost(NvmlError):
    """A metered GPU fell off the bus or its handle stopped working during the run."""


# -- pure helpers ---------------------------------------------------------------------------


def _text(value: object) -> str:
    """A string NVML returned; old pynvml versions return ``bytes``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip("\x00").strip()


def pci_sort_key(bus_id: str) -> tuple[int, int, int, int]:
    """(domain, bus, device, function) of a PCI bus id such as ``00000000:3B:00.0``.

    NVML writes an 8-digit domain and CUDA a 4-digit one; the key compares them equal.
    """
    match = _PCI_BUS_ID.match(bus_id.strip())
    if match is None:
        raise ValueError(f"not a PCI bus id: {bus_id!r}")
    domain, bus, device, function = match.groups()
    return int(domain, 16), int(bus, 16), int(device, 16), int(function)


def hardware_label(names: Sequence[str], *, shared: bool = False) -> str:
    """``"NVIDIA A100-SXM4-40GB x2"``; mixed models sorted and joined with ``" + "``."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    label = " + ".join(f"{name} x{count}" for name, count in sorted(counts.items()))
    return label + " (MIG, shared)" if shared else label


@dataclass(frozen=True)
class GpuInfo:
    """What NVML says about one physical GPU, enough to match ``CUDA_VISIBLE_DEVICES``."""

    name: str
    uuid: str
    bus_id: str
    mig_enabled: bool = False
    mig_uuids: tuple[str, ...] = ()


def _unique_prefix_match(token: str, candidates: Mapping[str, int], spec: str) -> int:
    """Position of the one candidate UUID equal to, or starting with, ``token``."""
    wanted = token.lower()
    if wanted in candidates:
        return candidates[wanted]
    hits = {pos for uuid, pos in candidates.items() if uuid.startswith(wanted)}
    if len(hits) == 1:
        return hits.pop()
    problem = "matches no GPU NVML can see" if not hits else "is a prefix of several GPUs' UUIDs"
    raise MeterUnavailable(
        METER_NAME, f"CUDA_VISIBLE_DEVICES={spec!r}: the entry {token!r} {problem}.", GPU_LIST_FIX
    )


def resolve_visible_gpus(spec: str | None, gpus: Sequence[GpuInfo]) -> list[int]:
    """Positions in ``gpus`` of the GPUs that ``CUDA_VISIBLE_DEVICES=spec`` exposes, in CUDA order.

    ``gpus`` must be in PCI bus order: integer entries index into it. ``GPU-`` entries are
    full UUIDs or unique prefixes; ``MIG-`` entries name a MIG slice (current ``MIG-<uuid>``
    or legacy ``MIG-GPU-<uuid>/<gi>/<ci>`` form) and resolve to the parent GPU. A GPU named
    twice, or through two slices, is listed once. ``None`` (unset) means every GPU.

    CUDA silently ignores the entries from the first invalid one on; here an entry that names
    no GPU is an error, so a typo cannot make the meter measure the wrong board.
    """
    if spec is None:
        return list(range(len(gpus)))
    tokens = [token.strip() for token in spec.split(",") if token.strip()]
    if not tokens:
        raise MeterUnavailable(
            METER_NAME,
            f"CUDA_VISIBLE_DEVICES={spec!r} hides every GPU from this process.",
            GPU_LIST_FIX + ", or pick a CPU meter with --energy-meter",
        )
    by_uuid = {gpu.uuid.lower(): pos for pos, gpu in enumerate(gpus)}
    by_mig_uuid = {mig.lower(): pos for pos, gpu in enumerate(gpus) for mig in gpu.mig_uuids}
    chosen: list[int] = []
    for token in tokens:
        upper = token.upper()
        if re.fullmatch(r"-?\d+", token):
            index = int(token)
            if not 0 <= index < len(gpus):
                raise MeterUnavailable(
                    METER_NAME,
                    f"CUDA_VISIBLE_DEVICES={spec!r} names GPU index {index}, but NVML sees "
                    f"{len(gpus)} GPU(s), numbered 0 to {len(gpus) - 1} in PCI bus order.",
                    GPU_LIST_FIX,
                )
            pos = index
        elif upper.startswith("MIG-GPU-"):
            parent = token[len("MIG-") :].split("/", 1)[0]
            pos = _unique_prefix_match(parent, by_uuid, spec)
        elif upper.startswith("MIG-"):
            pos = _unique_prefix_match(token, by_mig_uuid, spec)
        elif upper.startswith("GPU-"):
            pos = _unique_prefix_match(token, by_uuid, spec)
        else:
            raise MeterUnavailable(
                METER_NAME,
                f"CUDA_VISIBLE_DEVICES={spec!r}: the entry {token!r} is neither a GPU index nor "
                "a GPU-/MIG- UUID.",
                GPU_LIST_FIX,
            )
        if pos not in chosen:
            chosen.append(pos)
    return chosen


def ordering_is_uncertain(
    spec: str | None, environ: Mapping[str, str], names: Sequence[str]
) -> bool:
    """True when integer CUDA ordinals may not follow the PCI bus order used here.

    CUDA numbers GPUs fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; identical GPUs
    tie, and CUDA then keeps PCI bus order.
    """
    if environ.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID":
        return False
    if len(set(names)) <= 1:
        return False
    if spec is None:
        return True
    return any(re.fullmatch(r"\d+", token.strip()) for token in spec.split(","))


class PowerIntegrator:
    """Cumulative energy in joules per domain from power samples, by the trapezoid rule."""

    def __init__(self, domains: Sequence[str]) -> None:
        self._energy_j = dict.fromkeys(domains, 0.0)
        self._last: dict[str, tuple[float, float]] = {}

    def add(self, domain: str, time_s: float, power_w: float) -> None:
        """Record that ``domain`` drew ``power_w`` at ``time_s`` (a monotonic clock)."""
        if domain not in self._energy_j:
            raise KeyError(f"unknown domain {domain!r}")
        last = self._last.get(domain)
        if last is not None:
            last_time_s, last_power_w = last
            duration_s = time_s - last_time_s
            if duration_s < 0:
                raise ValueError(f"power sample for {domain!r} is older than the previous one")
            self._energy_j[domain] += 0.5 * (last_power_w + power_w) * duration_s
        self._last[domain] = (time_s, power_w)

    def energy_j(self) -> dict[str, float]:
        """Joules per domain since the first sample."""
        return dict(self._energy_j)


class PowerPoller:
    """Samples power on a daemon thread and integrates it.

    ``sample_power_w`` returns watts per domain. ``clock`` (seconds) is injectable so the
    integration can be driven step by step in tests with :meth:`sample`. An exception in the
    thread stops it and is re-raised by the next :meth:`sample`.
    """

    def __init__(
        self,
        sample_power_w: Callable[[], Mapping[str, float]],
        domains: Sequence[str],
        *,
        interval_s: float = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"poll interval must be positive, got {interval_s!r}")
        self.interval_s = interval_s
        self._sample_power_w = sample_power_w
        self._clock = clock
        self._integrator = PowerIntegrator(domains)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def sample(self) -> dict[str, float]:
        """Take one sample now and return cumulative joules per domain."""
        if self._error is not None:
            raise self._error
        with self._lock:
            power_w = self._sample_power_w()
            now_s = self._clock()
            for domain, watts in power_w.items():
                self._integrator.add(domain, now_s, watts)
            return self._integrator.energy_j()

    def start(self) -> None:
        """Take the first sample and start the background thread."""
        self.sample()
        self._thread = threading.Thread(
            target=self._run, name="pytest-energy-nvml-poller", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as exc:  # kept and raised by the next read(), never dropped
                self._error = exc
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and wait for it; safe to call more than once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


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
            raise _init_unavailable(exc) from exc
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
        count = self._query_at_init(nvml.nvmlDeviceGetCount, "count the GPUs")
        if count == 0:
            raise MeterUnavailable(
                METER_NAME, "NVML works but finds no NVIDIA GPU on this machine.", DRIVER_FIX
            )
        spec = env.get("CUDA_VISIBLE_DEVICES")
        wants_mig = spec is not None and "MIG-" in spec.upper()
        found: list[tuple[tuple[int, int, int, int], GpuInfo, Any]] = []
        for index in range(count):
            handle = self._query_at_init(
                nvml.nvmlDeviceGetHandleByIndex, f"open GPU {index}", index
            )
            info = self._describe(handle, index, enumerate_mig=wants_mig)
            try:
                key = pci_sort_key(info.bus_id)
            except ValueError as exc:
                raise MeterUnavailable(
                    METER_NAME,
                    f"NVML reported an unreadable PCI bus id {info.bus_id!r} for GPU {index}.",
                    "update the NVIDIA driver",
                ) from exc
            found.append((key, info, handle))
        found.sort(key=lambda item: item[0])
        infos = [info for _, info, _ in found]

        visible = resolve_visible_gpus(spec, infos)
        gpus: list[_MeteredGpu] = []
        for number, pos in enumerate(visible):
            _, info, handle = found[pos]
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
                self._sample_power_w, [gpu.domain for gpu in polled], interval_s=poll_interval_s
            )
            self._poller.start()

        self.provenance = self._provenance(
            poll_interval_s, ordering_is_uncertain(spec, env, [info.name for info in infos])
        )

    def _query_at_init(self, fn: Callable[..., Any], what: str, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            raise _query_unavailable(exc, what) from exc

    def _describe(self, handle: Any, index: int, *, enumerate_mig: bool) -> GpuInfo:
        nvml = self._nvml
        where = f"GPU {index}"
        name = _text(
            self._query_at_init(nvml.nvmlDeviceGetName, f"read the name of {where}", handle)
        )
        uuid = _text(
            self._query_at_init(nvml.nvmlDeviceGetUUID, f"read the UUID of {where}", handle)
        )
        pci = self._query_at_init(nvml.nvmlDeviceGetPciInfo, f"read the PCI id of {where}", handle)
        bus_id = _text(pci.busId)
        mig_enabled = self._mig_enabled(handle, where)
        mig_uuids: tuple[str, ...] = ()
        if mig_enabled and enumerate_mig:
            mig_uuids = self._mig_uuids(handle, where)
        return GpuInfo(name, uuid, bus_id, mig_enabled, mig_uuids)

    def _mig_enabled(self, handle: Any, where: str) -> bool:
        get_mode = getattr(self._nvml, "nvmlDeviceGetMigMode", None)
        if get_mode is None:  # bindings older than MIG
            return False
        try:
            current, _pending = get_mode(handle)
        except self._nvml.NVMLError as exc:
            if _code(exc) in _UNSUPPORTED_CODES:  # not a MIG-capable GPU
                return False
            raise _query_unavailable(exc, f"read the MIG mode of {where}") from exc
        return bool(current)

    def _mig_uuids(self, handle: Any, where: str) -> tuple[str, ...]:
        nvml = self._nvml
        slots = self._query_at_init(
            nvml.nvmlDeviceGetMaxMigDeviceCount, f"count the MIG slices of {where}", handle
        )
        uuids: list[str] = []
        for slot in range(slots):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError as exc:
                if _code(exc) in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
                    continue  # an empty slot
                raise _query_unavailable(exc, f"open MIG slice {slot} of {where}") from exc
            uuids.append(
                _text(
                    self._query_at_init(nvml.nvmlDeviceGetUUID, f"read a MIG UUID of {where}", mig)
                )
            )
        return tuple(uuids)

    def _probe_counter(self, handle: Any, info: GpuInfo) -> bool:
        try:
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self._nvml.NVMLError as exc:
            if _code(exc) in _UNSUPPORTED_CODES:  # pre-Volta GPU or old driver
                return False
            raise _query_unavailable(
                exc, f"read the energy counter of {info.name} ({info.uuid})"
            ) from exc
        return True

    def _probe_power(self, gpu: _MeteredGpu) -> None:
        try:
            self._nvml.nvmlDeviceGetPowerUsage(gpu.handle)
        except self._nvml.NVMLError as exc:
            if _code(exc) in _UNSUPPORTED_CODES:
                raise MeterUnavailable(
                    METER_NAME,
                    f"GPU {gpu.describe()} reports neither an energy counter nor its power draw.",
                    "meter a GPU with a power sensor (Volta or newer has an energy counter), or "
                    "pick another meter with --energy-meter",
                ) from exc
            raise _query_unavailable(exc, f"read the power draw of {gpu.describe()}") from exc

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
            raise _device_error(exc, gpu, what) from exc

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
                code = _code(exc)
                if code == NVML_ERROR_FUNCTION_NOT_FOUND:
                    continue  # the driver predates this name; try the older one
                if code == NVML_ERROR_NOT_SUPPORTED:
                    return None
                raise _device_error(exc, gpu, "clock throttle reasons") from exc
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
                f"nvmlShutdown failed: NVML error {_code(exc)} ({exc})", _code(exc)
            ) from exc


# -- error mapping --------------------------------------------------------------------------


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _init_unavailable(exc: BaseException) -> MeterUnavailable:
    code = _code(exc)
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


def _query_unavailable(exc: BaseException, what: str) -> MeterUnavailable:
    code = _code(exc)
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


def _device_error(exc: BaseException, gpu: _MeteredGpu, what: str) -> NvmlError:
    code = _code(exc)
    if code in _LOST_CODES:
        return NvmlGpuLost(
            f"GPU {gpu.describe()} was lost during the run (reading its {what} gave NVML error "
            f"{code}: {exc}); the measurement is invalid.",
            code,
        )
    return NvmlError(
        f"reading the {what} of GPU {gpu.describe()} failed with NVML error {code} ({exc}); "
        "the measurement is invalid.",
        code,
    )


def _throttle_bits(nvml: Any) -> tuple[tuple[int, str], ...]:
    """(bit, name) pairs, taking bit values from the bindings when they define them."""
    bits: list[tuple[int, str]] = []
    for suffix, documented, name in _THROTTLE_BITS:
        value: Any = getattr(nvml, f"nvmlClocksEventReason{suffix}", None)
        if value is None:
            value = getattr(nvml, f"nvmlClocksThrottleReason{suffix}", documented)
        bits.append((int(value), name))
    return tuple(bits)
