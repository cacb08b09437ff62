"""Inter-process locks per device, so two processes never meter the same device at once.

Energy counters are per device, not per process: two pytest-xdist workers measuring on the
same GPU would each count the other's work. Every window therefore holds an exclusive lock
(``filelock``, an ``flock`` on Unix) on one file per device it meters. Windows on different
devices, and meters that declare ``devices = ()`` (the per-process CPU-time estimate), still
run in parallel.

The lock files live in one directory per machine, ``pytest-energy-locks`` in the system
temporary directory, so separate pytest sessions on the same machine queue too, whoever
runs them:

- the directory is made world-writable (mode 0777, *not* sticky: ``filelock`` refuses a lock
  file that another account owns under a sticky directory) and every lock file is created
  0666, so a second user's sessions can take the same locks;
- where that directory cannot be used (another account created it without write access for
  us), the locks fall back to a per-user directory ``pytest-energy-locks-<uid>``, and
  :attr:`DeviceLocks.fallback` says why; sessions of different users then no longer exclude
  each other;
- the holder writes its PID, host and start time into the lock file, so a waiting process
  can say whom it waits for;
- a wait longer than ``wait_notice_s`` (1 s) is reported once through ``on_wait``, and a wait
  longer than ``lock_timeout_s`` (600 s by default) raises :class:`DeviceLockError`, so a hung
  holder cannot block the others forever.

Every failure to create, open or take a lock is a :class:`DeviceLockError` naming the lock
file, the cause and the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import filelock

from .errors import EnergyError

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_LOCK_TIMEOUT_S",
    "WAIT_NOTICE_S",
    "DeviceLockError",
    "DeviceLocks",
    "devices_of",
    "holder_of",
]

DEFAULT_DIR = Path(tempfile.gettempdir()) / "pytest-energy-locks"
#: How long a window waits for a device before giving up (``--energy-lock-timeout``).
#: Ten minutes: longer than any sane energy window, shorter than a CI job's time limit.
from .settings import DEFAULT_LOCK_TIMEOUT_S  # noqa: E402 - one spelling, in the options table

#: How long a wait lasts before it is reported: well above scheduling noise (milliseconds)
#: and an ordinary uncontended hand-over between xdist workers.
WAIT_NOTICE_S = 1.0
_POLL_S = 0.01
_SHARED_DIR_MODE = 0o777
_LOCK_FILE_MODE = 0o666
_OFF_HINT = "--energy-device-lock=off"


class DeviceLockError(EnergyError):
    """A device lock could not be created, taken in time, or released."""


def _file_name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", device) + ".lock"


def _usable(directory: Path) -> bool:
    try:
        info = directory.stat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and os.access(directory, os.W_OK | os.X_OK)


def _make_shared(directory: Path) -> str | None:
    """Create ``directory`` world-writable; return why it cannot be shared, or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode):
            return f"{directory} is not a directory"
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid == os.geteuid() and mode != _SHARED_DIR_MODE:
            os.chmod(directory, _SHARED_DIR_MODE)  # undo the umask, or a sticky bit
            return None
    except OSError as exc:
        return f"{directory} cannot be created or opened ({exc.strerror or exc})"
    if mode & stat.S_ISVTX:
        return f"{directory} is sticky and owned by uid {info.st_uid}"
    if not _usable(directory):
        return f"{directory} is not writable for this user (mode {mode:o}, uid {info.st_uid})"
    return None


def _per_user_dir(shared: Path) -> Path:
    uid = os.geteuid() if hasattr(os, "geteuid") else os.getpid()
    return shared.with_name(f"{shared.name}-{uid}")


def holder_of(path: Path) -> dict[str, object]:
    """What the process holding lock file ``path`` wrote into it (pid, host, since), or {}."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return {}
    try:
        data = os.read(fd, 4096)
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        info = json.loads(data.split(b"\n", 1)[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def describe_holder(path: Path, now: float) -> str:
    info = holder_of(path)
    pid = info.get("pid")
    if not isinstance(pid, int):
        return "held by an unknown process"
    text = f"held by PID {pid}"
    host = info.get("host")
    if isinstance(host, str) and host and host != socket.gethostname()[:64]:
        text += f" on {host}"
    elif pid == os.getpid():
        text += " (this process: a window nested inside another window on the same device?)"
    since = info.get("since")
    if isinstance(since, (int, float)):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
        text += f" (since {stamp}, {max(0.0, now - since):.0f} s ago)"
    return text


_RECORD_BYTES = 192


def write_holder(fd: int) -> None:
    """Write who holds the lock, as one JSON line padded to a fixed size.

    A fixed size means no ``ftruncate`` (which costs ~2 ms on ext4, 100x the lock itself).
    """
    host = socket.gethostname()[:64]
    record = {"pid": os.getpid(), "host": host, "since": round(time.time(), 3)}
    line = json.dumps(record, ensure_ascii=True)
    os.pwrite(fd, (line.ljust(_RECORD_BYTES - 1) + "\n").encode("ascii"), 0)


def _lock_error(device: str, path: Path, exc: BaseException) -> DeviceLockError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError):
        fix = (
            f"make {path.parent} writable for every user (chmod 0777, not sticky) and its "
            f".lock files 0666, or delete {path} if no pytest session is running"
        )
    else:
        fix = f"check that {path.parent} is a local, writable directory"
    return DeviceLockError(
        f"cannot take the device lock for {device!r} ({path}): {type(exc).__name__}: {reason}. "
        f"Fix: {fix}, or run without device locks ({_OFF_HINT})."
    )


class DeviceLocks:
    """Callable returning a context manager that holds the locks of ``devices``.

    ``directory`` is the machine-wide directory shared by all users (made mode 0777);
    where it cannot be used, ``fallback_directory`` (default: ``<directory>-<uid>``) is,
    and :attr:`fallback` says why. ``lock_timeout_s`` bounds the whole wait for all devices of one
    window (``<= 0`` or ``inf`` waits forever); ``on_wait`` receives one message per window
    whose wait exceeds ``wait_notice_s``.
    """

    def __init__(
        self,
        devices: Iterable[str],
        directory: Path = DEFAULT_DIR,
        *,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        on_wait: Callable[[str], None] | None = None,
        wait_notice_s: float = WAIT_NOTICE_S,
        fallback_directory: Path | None = None,
    ) -> None:
        self.devices = tuple(sorted(set(devices)))  # one global order: no deadlock
        self.shared_directory = directory
        self.fallback_directory = fallback_directory or _per_user_dir(directory)
        self.lock_timeout_s = float(lock_timeout_s)
        self.on_wait = on_wait
        self.wait_notice_s = float(wait_notice_s)
        #: Why the shared directory could not be used, when the per-user one is (else None).
        self.fallback: str | None = None
        self._directory: Path | None = None
        self._locks: list[tuple[str, Path, filelock.BaseFileLock]] = []

    @property
    def directory(self) -> Path:
        """The directory in use: the shared one, or the per-user fallback."""
        if self._directory is None:
            reason = _make_shared(self.shared_directory)
            if reason is None:
                self._directory = self.shared_directory
            else:
                self._directory = self.fallback_directory
                self.fallback = (
                    f"device locks use the per-user directory {self._directory} because "
                    f"{reason}; sessions of other users on this machine are not kept apart. "
                    f"Fix: remove {self.shared_directory} when no session runs, or make it "
                    "mode 0777 (not sticky)"
                )
        return self._directory

    def _open(self) -> list[tuple[str, Path, filelock.BaseFileLock]]:
        if not self._locks and self.devices:
            directory = self.directory
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                first = self.devices[0]
                raise _lock_error(first, directory / _file_name(first), exc) from exc
            for device in self.devices:
                path = directory / _file_name(device)
                lock = filelock.FileLock(
                    path, mode=_LOCK_FILE_MODE, poll_interval=_POLL_S, on_acquired=write_holder
                )
                self._locks.append((device, path, lock))
        return self._locks

    def _acquire(
        self, device: str, path: Path, lock: filelock.BaseFileLock, deadline: float
    ) -> bool:
        """Take one lock; return True when the wait was long enough to be reported."""
        started = time.monotonic()
        notice_at = started + self.wait_notice_s
        reported = False
        while True:
            now = time.monotonic()
            step_end = deadline if reported else min(deadline, notice_at)
            try:
                lock.acquire(timeout=max(0.0, step_end - now), poll_interval=_POLL_S)
                return reported
            except filelock.Timeout:
                pass
            except OSError as exc:
                raise _lock_error(device, path, exc) from exc
            now = time.monotonic()
            if now >= deadline:
                raise DeviceLockError(
                    f"gave up after {now - started:.1f} s waiting for the device lock on "
                    f"{device!r} ({path}), {describe_holder(path, time.time())}. Another pytest "
                    "session or xdist worker is metering this device and its window has not "
                    "ended (a hung read() or a very long test). Fix: stop that process if it is "
                    "stuck, raise --energy-lock-timeout (ini energy_lock_timeout), or run "
                    f"without device locks ({_OFF_HINT})."
                )
            if not reported:
                reported = True
                if self.on_wait is not None:
                    limit = f"{deadline - started:.3g} s" if deadline != float("inf") else "ever"
                    self.on_wait(
                        f"waiting for the lock on {device} {describe_holder(path, time.time())}; "
                        f"waiting up to {limit} (--energy-lock-timeout)"
                    )

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        locks = self._open()
        timeout = self.lock_timeout_s
        deadline = time.monotonic() + timeout if 0 < timeout < float("inf") else float("inf")
        held: list[tuple[str, Path, filelock.BaseFileLock]] = []
        try:
            for device, path, lock in locks:
                self._acquire(device, path, lock, deadline)
                held.append((device, path, lock))
            yield
        finally:
            failed: DeviceLockError | None = None
            for device, path, lock in reversed(held):
                try:
                    lock.release()
                except OSError as exc:
                    failed = failed or _lock_error(device, path, exc)
            if failed is not None:
                raise failed

    def close(self) -> None:
        for _device, _path, lock in self._locks:
            with contextlib.suppress(Exception):
                lock.release(force=True)
        self._locks = []


def devices_of(meter: object, domains: Iterable[str]) -> tuple[str, ...]:
    """The devices a meter's windows must hold exclusively.

    A meter may say so with a ``devices`` attribute (``()`` for a per-process estimate that
    other processes cannot disturb); otherwise every domain it reports counts as a device,
    qualified by the meter's hardware so that different machines sharing /tmp don't clash.
    """
    declared = getattr(meter, "devices", None)
    if declared is not None:
        if isinstance(declared, (str, bytes)) or not isinstance(declared, Iterable):
            raise DeviceLockError(
                f"meter {getattr(meter, 'name', '?')!r} has devices={declared!r}; it must be "
                "None or a tuple of device names (() for no device lock)"
            )
        return tuple(str(device) for device in declared)
    hardware = getattr(meter, "hardware", "")
    return tuple(f"{hardware}-{domain}" for domain in domains)
