"""Which NVIDIA GPUs this process can see, in which order, as NVML knows them.

``CUDA_VISIBLE_DEVICES`` is matched to NVML devices by UUID and PCI bus id, never by assuming
that a CUDA ordinal equals an NVML index. Integer entries count GPUs in PCI bus order, which is
CUDA's order when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (CUDA's default order puts the fastest GPU
first). A MIG slice has no energy sensor of its own, so it resolves to its parent GPU.

Nothing here imports ``pynvml``: :func:`find_gpus` takes the bindings module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_energy.errors import MeterUnavailable
from pytest_energy.meters.nvml_errors import (
    DRIVER_FIX,
    METER_NAME,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NOT_FOUND,
    UNSUPPORTED_CODES,
    error_code,
    query_at_init,
    query_unavailable,
)

GPU_LIST_FIX = (
    "set CUDA_VISIBLE_DEVICES to GPU indices or to GPU-/MIG- UUIDs shown by `nvidia-smi -L`, "
    "or unset it to meter every GPU"
)

_PCI_BUS_ID = re.compile(r"^([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])$")


# -- pure helpers ---------------------------------------------------------------------------


def nvml_text(value: object) -> str:
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


# -- asking NVML ----------------------------------------------------------------------------


def find_gpus(nvml: Any, *, enumerate_mig: bool) -> list[tuple[GpuInfo, Any]]:
    """Every GPU NVML sees, with its handle, in PCI bus order.

    ``nvml`` is the initialised bindings module. MIG slice UUIDs are listed only when
    ``enumerate_mig`` is true (``CUDA_VISIBLE_DEVICES`` names a slice). Raises
    :class:`~pytest_energy.errors.MeterUnavailable` when there is no GPU or a query fails.
    """
    count = query_at_init(nvml, nvml.nvmlDeviceGetCount, "count the GPUs")
    if count == 0:
        raise MeterUnavailable(
            METER_NAME, "NVML works but finds no NVIDIA GPU on this machine.", DRIVER_FIX
        )
    found: list[tuple[tuple[int, int, int, int], GpuInfo, Any]] = []
    for index in range(count):
        handle = query_at_init(nvml, nvml.nvmlDeviceGetHandleByIndex, f"open GPU {index}", index)
        info = _describe(nvml, handle, index, enumerate_mig=enumerate_mig)
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
    return [(info, handle) for _, info, handle in found]


def _describe(nvml: Any, handle: Any, index: int, *, enumerate_mig: bool) -> GpuInfo:
    where = f"GPU {index}"
    name = nvml_text(
        query_at_init(nvml, nvml.nvmlDeviceGetName, f"read the name of {where}", handle)
    )
    uuid = nvml_text(
        query_at_init(nvml, nvml.nvmlDeviceGetUUID, f"read the UUID of {where}", handle)
    )
    pci = query_at_init(nvml, nvml.nvmlDeviceGetPciInfo, f"read the PCI id of {where}", handle)
    bus_id = nvml_text(pci.busId)
    mig_enabled = _mig_enabled(nvml, handle, where)
    mig_uuids: tuple[str, ...] = ()
    if mig_enabled and enumerate_mig:
        mig_uuids = _mig_uuids(nvml, handle, where)
    return GpuInfo(name, uuid, bus_id, mig_enabled, mig_uuids)


def _mig_enabled(nvml: Any, handle: Any, where: str) -> bool:
    get_mode = getattr(nvml, "nvmlDeviceGetMigMode", None)
    if get_mode is None:  # bindings older than MIG
        return False
    try:
        current, _pending = get_mode(handle)
    except nvml.NVMLError as exc:
        if error_code(exc) in UNSUPPORTED_CODES:  # not a MIG-capable GPU
            return False
        raise query_unavailable(exc, f"read the MIG mode of {where}") from exc
    return bool(current)


def _mig_uuids(nvml: Any, handle: Any, where: str) -> tuple[str, ...]:
    slots = query_at_init(
        nvml, nvml.nvmlDeviceGetMaxMigDeviceCount, f"count the MIG slices of {where}", handle
    )
    uuids: list[str] = []
    for slot in range(slots):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError as exc:
            if error_code(exc) in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
                continue  # an empty slot
            raise query_unavailable(exc, f"open MIG slice {slot} of {where}") from exc
        uuids.append(
            nvml_text(
                query_at_init(nvml, nvml.nvmlDeviceGetUUID, f"read a MIG UUID of {where}", mig)
            )
        )
    return tuple(uuids)
