"""Inter-process locks per device, so two processes never meter the same device at once.

Energy counters are per device, not per process: two pytest-xdist workers measuring on the
same GPU would each count the other's work. Every window therefore holds an exclusive lock
(``filelock``, an ``flock`` on Unix) on one file per device it meters. Windows on different
devices, and meters that declare ``devices = ()`` (the per-process CPU-time estimate), still
run in parallel.

The lock files live in one directory per machine, ``pytest-energy-locks`` in the system
temporary directory, so separate pytest sessions on the same machine queue too, whoever
runs them:

- the directory is made mode 1777, world-writable and sticky as ``/tmp`` is, so that no
  account can delete a lock file another account holds (under 0777 anyone could unlink a held
  lock, and a second holder then took a fresh one), and every lock file is created 0666, so a
  second user's sessions can take the same locks;
- under a sticky directory ``filelock`` takes only a lock file that this account or the
  directory's owner owns. A lock file of a third account, a shared directory that is not
  sticky and belongs to someone else, or one we cannot write, sends those locks to a private
  per-user directory ``pytest-energy-locks-<uid>`` (mode 0700), and :attr:`DeviceLocks.fallback`
  is a one-line note saying which devices and why, for the session summary; sessions of
  different users then no longer exclude each other on those devices;
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
    "FILELOCK_FLOOR",
    "WAIT_NOTICE_S",
    "DeviceLockError",
    "DeviceLocks",
    "devices_of",
    "filelock_too_old",
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
#: World-writable and sticky, as /tmp: anyone may add a lock file, only its owner may remove it.
_SHARED_DIR_MODE = 0o1777
_PRIVATE_DIR_MODE = 0o700
_LOCK_FILE_MODE = 0o666
_OFF_HINT = "--energy-device-lock=off"
#: The first filelock with every part of its API used here: ``FileLock(..., mode=,
#: poll_interval=, on_acquired=)``. 3.12 to 3.23 raise TypeError on ``poll_interval``; 3.24 to
#: 3.29 accept ``on_acquired`` and never call it, so a waiter could not name the holder.
#: pyproject.toml's floor and the tox env ``filelock-floor`` say the same (a test checks).
FILELOCK_FLOOR = "3.30.0"


def filelock_too_old(installed: str | None = None) -> str | None:
    """Why the installed filelock (or ``installed``) cannot serve, with the fix; None if it can.

    pip keeps the floor, but ``--no-deps`` installs and pinned environments can bring an older
    release, which would fail every window with a raw TypeError or silently lose the holder.
    """
    from packaging.version import InvalidVersion, Version

    version = filelock.__version__ if installed is None else installed
    try:
        if Version(version) >= Version(FILELOCK_FLOOR):
            return None
    except InvalidVersion:
        return None  # a development build: trust it
    return (
        f"filelock {version} is installed, but pytest-energy needs filelock {FILELOCK_FLOOR} or "
        f"newer for its locks (the FileLock options poll_interval and on_acquired). Fix: "
        f"pip install 'filelock>={FILELOCK_FLOOR}'"
    )


class DeviceLockError(EnergyError):
    """A device lock could not be created, taken in time, or released."""


class _ForeignLockFile(Exception):
    """A shared lock file belongs to an account this one may not lock it for (internal)."""


def _file_name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", device) + ".lock"


def _usable(directory: Path) -> bool:
    try:
        info = directory.stat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and os.access(directory, os.W_OK | os.X_OK)


def _make_shared(directory: Path) -> str | None:
    """Create ``directory`` with mode 1777; return why it cannot be shared safely, or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        return f"{directory} cannot be created or opened ({exc.strerror or exc})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory"
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.geteuid():
        if mode != _SHARED_DIR_MODE:
            try:  # undo the umask, and make a 0777 directory of an older release sticky
                os.chmod(directory, _SHARED_DIR_MODE)
            except OSError as exc:
                return f"{directory} cannot be made mode 1777 ({exc.strerror or exc})"
        return None
    if not mode & stat.S_ISVTX:
        return (
            f"{directory} (uid {info.st_uid}, mode {mode:o}) is not sticky, so any user could "
            "delete a lock another session holds"
        )
    if not _usable(directory):
        return f"{directory} is not writable for this user (mode {mode:o}, uid {info.st_uid})"
    return None


def _make_private(directory: Path, device: str) -> None:
    """Create the per-user directory (0700); refuse one that another account owns."""
    try:
        directory.mkdir(mode=_PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise _lock_error(device, directory / _file_name(device), exc) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise DeviceLockError(
            f"cannot use the per-user lock directory {directory}: it is not a directory owned "
            f"by this user (uid {info.st_uid}), so another account could tamper with the "
            f"locks. Fix: remove {directory}, or run without device locks ({_OFF_HINT})."
        )
    if stat.S_IMODE(info.st_mode) != _PRIVATE_DIR_MODE:
        try:
            os.chmod(directory, _PRIVATE_DIR_MODE)
        except OSError as exc:
            raise _lock_error(device, directory / _file_name(device), exc) from exc


def _owner_uid(path: Path) -> int | None:
    try:
        return path.lstat().st_uid
    except OSError:
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
            f"make {path.parent} writable for every user (chmod 1777, as /tmp) and its "
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

    ``directory`` is the machine-wide directory shared by all users (made mode 1777);
    where it cannot be used, or a device's lock file in it belongs to a third account,
    ``fallback_directory`` (default: ``<directory>-<uid>``, mode 0700) is, and
    :attr:`fallback` says why. ``lock_timeout_s`` bounds the whole wait for all devices of one
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
        self._directory: Path | None = None
        self._shared_reason: str | None = None
        #: device -> (lock file in the shared directory, uid owning it) for devices moved to
        #: the per-user directory because a third account owns their shared lock file.
        self._moved: dict[str, tuple[Path, int | None]] = {}
        self._locks: list[tuple[str, Path, filelock.BaseFileLock]] = []

    @property
    def directory(self) -> Path:
        """The directory in use: the shared one, or the per-user fallback."""
        if self._directory is None:
            reason = _make_shared(self.shared_directory)
            if reason is None:
                self._directory = self.shared_directory
            else:
                self._shared_reason = reason
                self._directory = self.fallback_directory
        return self._directory

    @property
    def fallback(self) -> str | None:
        """One line for the session summary when some locks use the per-user directory, else
        None: which devices, why, what it costs and the fix. Set once the locks are used."""
        private = self.fallback_directory
        if self._shared_reason is not None:
            return (
                f"device locks use the per-user directory {private} because "
                f"{self._shared_reason}; sessions of other users on this machine are not kept "
                f"apart. Fix: remove {self.shared_directory} when no session runs (it is "
                "recreated with mode 1777, sticky, as /tmp is)"
            )
        if self._moved:
            devices = ", ".join(sorted(self._moved))
            owners = sorted({f"uid {uid}" for _, uid in self._moved.values()})
            files = ", ".join(str(path) for path, _ in self._moved.values())
            return (
                f"device locks for {devices} use the per-user directory {private} because "
                f"their lock files in the sticky shared directory belong to {', '.join(owners)}, "
                "which this account may not lock; sessions of those users and yours are not "
                f"kept apart on them. Fix: remove {files} when no session runs"
            )
        return None

    def _new_lock(self, directory: Path, device: str) -> tuple[str, Path, filelock.BaseFileLock]:
        path = directory / _file_name(device)
        lock = filelock.FileLock(
            path, mode=_LOCK_FILE_MODE, poll_interval=_POLL_S, on_acquired=write_holder
        )
        return device, path, lock

    def _open(self) -> list[tuple[str, Path, filelock.BaseFileLock]]:
        if not self._locks and self.devices:
            too_old = filelock_too_old()
            if too_old is not None:
                raise DeviceLockError(f"{too_old}, or run without device locks ({_OFF_HINT}).")
            directory = self.directory  # the shared one is made, with its mode, on first use
            if directory != self.shared_directory:
                _make_private(directory, self.devices[0])
            self._locks = [self._new_lock(directory, device) for device in self.devices]
        return self._locks

    def _is_foreign(self, path: Path, exc: OSError) -> bool:
        """A PermissionError on a shared lock file that another account owns."""
        if not isinstance(exc, PermissionError) or path.parent != self.shared_directory:
            return False
        owner = _owner_uid(path)
        return owner is not None and owner != os.geteuid()

    def _move_to_private(self, index: int) -> tuple[str, Path, filelock.BaseFileLock]:
        device, path, _ = self._locks[index]
        _make_private(self.fallback_directory, device)
        self._moved[device] = (path, _owner_uid(path))
        self._locks[index] = self._new_lock(self.fallback_directory, device)
        return self._locks[index]

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
                if self._is_foreign(path, exc):
                    raise _ForeignLockFile from exc
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
            for index in range(len(locks)):
                device, path, lock = locks[index]
                try:
                    self._acquire(device, path, lock, deadline)
                except _ForeignLockFile:
                    device, path, lock = self._move_to_private(index)
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
