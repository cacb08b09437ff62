"""Unit tests for pytest_energy.fileio.atomic_write_text, shared by the baseline and reports."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from pytest_energy.fileio import atomic_write_text

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks and modes")


def test_writes_a_new_file_and_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text(encoding="utf-8") == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@posix_only
def test_follows_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "energy.json"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "energy.json")
    atomic_write_text(link, "new\n")
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("real") / "energy.json")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # the target's mode is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real"]
    assert sorted(p.name for p in real_dir.iterdir()) == ["energy.json"]


@posix_only
def test_chain_of_symlinks_and_dangling_link(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("c.txt")
    atomic_write_text(tmp_path / "a", "x\n")  # c.txt does not exist yet
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == "x\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_refuses_to_replace_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    with pytest.raises(OSError) as excinfo:
        atomic_write_text(path, "x\n")
    assert excinfo.value.errno == errno.EINVAL
    assert stat.S_ISFIFO(os.stat(path).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path, "x\n")


@posix_only
def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "f.txt", "x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640


def test_failure_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old\n", encoding="utf-8")

    def failing_replace(src: str, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
