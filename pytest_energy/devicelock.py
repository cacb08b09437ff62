"""Inter-process locks per device, so two processes never meter the same device at once.

Energy counters are per device, not per process: two pytest-xdist workers measuring on the
same GPU would each count the other's work. Every window therefore holds an exclusive
``flock`` on one file per device it meters. Windows on different devices, and tests that
meter no shared device (the per-process CPU estimate), still run in parallel.

The lock files live in one directory per machine (the system temporary directory by
default), so separate pytest sessions on the same machine queue too.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

DEFAULT_DIR = Path(tempfile.gettempdir()) / "pytest-energy-locks"


def _file_name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", device) + ".lock"


class DeviceLocks:
    """Callable returning a context manager that holds the locks of ``devices``."""

    def __init__(self, devices: Iterable[str], directory: Path = DEFAULT_DIR) -> None:
        self.devices = tuple(sorted(set(devices)))  # one global order: no deadlock
        self.directory = directory
        self._handles: list[IO[bytes]] = []

    def _open(self) -> list[IO[bytes]]:
        if not self._handles and self.devices:
            self.directory.mkdir(parents=True, exist_ok=True)
            for device in self.devices:
                self._handles.append(open(self.directory / _file_name(device), "a+b"))  # noqa: SIM115
        return self._handles

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        handles = self._open()
        held: list[IO[bytes]] = []
        try:
            for handle in handles:
                _lock(handle)
                held.append(handle)
            yield
        finally:
            for handle in reversed(held):
                _unlock(handle)

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []


if sys.platform == "win32":  # pragma: no cover

    def _lock(handle: IO[bytes]) -> None:
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)

    def _unlock(handle: IO[bytes]) -> None:
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def devices_of(meter: object, domains: Iterable[str]) -> tuple[str, ...]:
    """The devices a meter's windows must hold exclusively.

    A meter may say so with a ``devices`` attribute (``()`` for a per-process estimate that
    other processes cannot disturb); otherwise every domain it reports counts as a device,
    qualified by the meter's hardware so that different machines sharing /tmp don't clash.
    """
    declared = getattr(meter, "devices", None)
    if declared is not None:
        return tuple(declared)
    hardware = getattr(meter, "hardware", "")
    return tuple(f"{hardware}-{domain}" for domain in domains)
