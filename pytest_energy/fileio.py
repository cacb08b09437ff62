"""Atomic file replacement, shared by the baseline and the report writers."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old file or the whole new one.

    A symbolic link is followed: its target is replaced and the link stays a link. A path
    that exists but is not a regular file (a FIFO, a device, a directory) is refused with
    ``OSError`` (``EINVAL``) rather than replaced.

    Writes a temporary file beside ``path``, fsyncs it, gives it the old file's mode (or the
    mode a plain ``open()`` would give a new file), renames it over ``path`` and fsyncs the
    directory. Raises ``OSError``; the temporary file is removed on any failure, including
    ``KeyboardInterrupt``.
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep an existing file's mode, else what open() would give.
        keep = mode & 0o7777 if mode is not None else 0o666 & ~_umask()
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, keep)
        os.replace(tmp_name, path)
    except BaseException:
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
