"""Atomic file replacement, shared by the baseline and the report writers."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import string
from pathlib import Path

#: Characters and length of a temporary file's random part, as ``tempfile.mkstemp``'s.
_TEMP_CHARS = string.ascii_lowercase + string.digits + "_"
_TEMP_LENGTH = 8
_TEMP_ATTEMPTS = 100
_CREATE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def temporary_name(path: Path) -> str:
    """A new name for a temporary file of ``path``: ``.<name>.<8 random characters>.tmp``."""
    random_part = "".join(secrets.choice(_TEMP_CHARS) for _ in range(_TEMP_LENGTH))
    return f".{path.name}.{random_part}.tmp"


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old file or the whole new one.

    A symbolic link is followed: its target is replaced and the link stays a link. A path
    that exists but is not a regular file (a FIFO, a device, a directory) is refused with
    ``OSError`` (``EINVAL``) rather than replaced.

    Writes a temporary file beside ``path`` (:func:`temporary_name`), fsyncs it, gives it
    the old file's mode (or the mode a plain ``open()`` would give a new file), renames it
    over ``path`` and fsyncs the directory. Raises ``OSError``; the temporary file is
    removed on any failure, including a ``KeyboardInterrupt`` at any moment after it exists.
    """
    path = Path(os.path.realpath(path))  # write through a symbolic link to its target
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file; refusing to replace it", str(path))
    directory = path.parent
    tmp_name = ""
    try:
        # The name is chosen before the file is created, so that the clean-up below knows
        # it whenever an interrupt comes. (tempfile.mkstemp returns the name only after
        # creating the file: a Ctrl-C that landed in between left the file behind.)
        for _ in range(_TEMP_ATTEMPTS):
            tmp_name = str(directory / temporary_name(path))
            try:
                fd = os.open(tmp_name, _CREATE, 0o600)
                break
            except FileExistsError:
                tmp_name = ""  # another writer's file: never ours to remove
            except OSError:
                tmp_name = ""  # not created
                raise
        else:
            raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(directory))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # created 0600; keep an existing file's mode, else what open() would give.
        keep = mode & 0o7777 if mode is not None else 0o666 & ~_umask()
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, keep)
        os.replace(tmp_name, path)
    except BaseException:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
