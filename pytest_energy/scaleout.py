"""Pinning pytest-xdist workers to GPUs (``--energy-gpu-per-worker``), without pytest.

Worker ``gwN`` gets the N-th GPU this machine exposes: the N-th entry of
``CUDA_VISIBLE_DEVICES`` when it is set (indices, UUIDs and MIG ids are passed through
unchanged), else the N-th NVML device. The pytest layer sets ``CUDA_VISIBLE_DEVICES`` in
the worker's process as it is spawned, before any of its code runs, so every CUDA library in
the worker sees one device, and the NVML meter then meters that device alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from .errors import ConfigError


def worker_index(worker_id: str) -> int:
    """``"gw3"`` to ``3``."""
    match = re.fullmatch(r"gw(\d+)", worker_id)
    if not match:
        raise ConfigError(f"unexpected pytest-xdist worker id {worker_id!r}")
    return int(match.group(1))


def visible_devices(environ: Mapping[str, str], count_gpus: Callable[[], int]) -> list[str]:
    """The GPUs a worker may be pinned to, as CUDA_VISIBLE_DEVICES entries."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [part.strip() for part in listed.split(",") if part.strip()]
    return [str(index) for index in range(count_gpus())]


def pin(worker_id: str, worker_count: int, devices: list[str]) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for ``worker_id``; more workers than GPUs is an error."""
    if worker_count > len(devices):
        raise ConfigError(
            f"--energy-gpu-per-worker: {worker_count} pytest-xdist workers but only "
            f"{len(devices)} GPU(s) visible ({', '.join(devices) or 'none'}). Run with "
            f"-n {len(devices)} or fewer, or drop --energy-gpu-per-worker so that the workers "
            "queue for the GPUs instead"
        )
    return devices[worker_index(worker_id)]


def nvml_gpu_count() -> int:
    """Number of NVIDIA GPUs on this machine, through NVML."""
    try:
        import pynvml
    except ImportError:
        raise ConfigError(
            "--energy-gpu-per-worker needs NVML to count the GPUs when CUDA_VISIBLE_DEVICES "
            "is not set: pip install 'pytest-energy[nvml]', or set CUDA_VISIBLE_DEVICES"
        ) from None
    try:
        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        raise ConfigError(
            f"--energy-gpu-per-worker: NVML could not count the GPUs ({exc})"
        ) from None


def worker_environments(
    environ: Mapping[str, str], worker_count: int, count_gpus: Callable[[], int] = nvml_gpu_count
) -> dict[str, dict[str, str]]:
    """The environment each of ``worker_count`` xdist workers (``gw0``, ``gw1`` ...) is
    spawned with, so that worker I sees the I-th GPU alone; more workers than GPUs is an
    error."""
    devices = visible_devices(environ, count_gpus)
    environments = {}
    for index in range(worker_count):
        worker = f"gw{index}"
        environment = {"CUDA_VISIBLE_DEVICES": pin(worker, worker_count, devices)}
        if "CUDA_VISIBLE_DEVICES" not in environ:
            # Integer pins then mean the same GPU to CUDA as to the NVML meter (PCI bus order).
            environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        environments[worker] = environment
    return environments
