"""GPU pinning for pytest-xdist workers against a fake machine of 4 GPUs, and device locks."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_energy import scaleout
from pytest_energy.devicelock import DeviceLockError, DeviceLocks, devices_of, holder_of
from pytest_energy.errors import ConfigError, EnergyError, MeterUnavailable


def four_gpus() -> int:
    return 4


def no_nvml() -> int:
    raise AssertionError("NVML must not be asked when CUDA_VISIBLE_DEVICES is set")


@pytest.mark.parametrize(("worker", "expected"), [("gw0", "0"), ("gw1", "1"), ("gw3", "3")])
def test_worker_i_gets_gpu_i(worker: str, expected: str) -> None:
    environments = scaleout.worker_environments({}, 4, four_gpus)
    assert environments[worker] == {
        "CUDA_VISIBLE_DEVICES": expected,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert sorted(environments) == ["gw0", "gw1", "gw2", "gw3"]


def test_pins_follow_an_existing_visible_list() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "GPU-aaaa, GPU-bbbb,GPU-cccc"}
    environments = scaleout.worker_environments(env, 2, no_nvml)
    assert environments == {
        "gw0": {"CUDA_VISIBLE_DEVICES": "GPU-aaaa"},
        "gw1": {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"},
    }
    assert env == {"CUDA_VISIBLE_DEVICES": "GPU-aaaa, GPU-bbbb,GPU-cccc"}  # not changed here


def test_more_workers_than_gpus_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError, match=r"5 pytest-xdist workers but only 4 GPU\(s\) visible.*-n 4"
    ):
        scaleout.worker_environments({}, 5, four_gpus)


def test_bad_worker_id() -> None:
    with pytest.raises(ConfigError, match="unexpected pytest-xdist worker id"):
        scaleout.worker_index("master")


class _Meter:
    hardware = "rig"


class _Estimate:
    hardware = "rig"
    devices = ()


def test_devices_default_to_domains_and_can_be_declared() -> None:
    assert devices_of(_Meter(), ["gpu:0", "gpu:1"]) == ("rig-gpu:0", "rig-gpu:1")
    assert devices_of(_Estimate(), ["cpu:estimate"]) == ()


def _hold(directory: str, started: str, hold_s: float) -> None:
    locks = DeviceLocks(["gpu:0"], Path(directory))
    with locks():
        Path(started).write_text(str(time.time()))
        time.sleep(hold_s)
    locks.close()


def test_lock_makes_a_second_process_wait(tmp_path: Path) -> None:
    started = tmp_path / "started"
    child = multiprocessing.get_context("spawn").Process(
        target=_hold, args=(str(tmp_path), str(started), 0.5)
    )
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "child never took the lock"
            time.sleep(0.01)
        locks = DeviceLocks(["gpu:0"], tmp_path)
        with locks():
            acquired = time.time()
        locks.close()
    finally:
        child.join(30)
    assert acquired >= float(started.read_text()) + 0.5 - 0.05


def test_locks_on_different_devices_do_not_block(tmp_path: Path) -> None:
    first, second = DeviceLocks(["gpu:0"], tmp_path), DeviceLocks(["gpu:1"], tmp_path)
    with first(), second():
        assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_0.lock", "gpu_1.lock"]
    first.close()
    second.close()


# -- shared machine: modes, second user, timeouts, waiting messages, errors -------------------


@pytest.mark.reliability("fault", "device lock: hung holder, other users, lock errors")
def test_lock_directory_is_sticky_and_its_files_shared_with_other_users(tmp_path: Path) -> None:
    """Issue 20 item 12: mode 1777 as /tmp is, so no other account can unlink a held lock."""
    directory = tmp_path / "locks"
    old_umask = os.umask(0o022)
    try:
        locks = DeviceLocks(["gpu:0"], directory)
        with locks():
            pass
        locks.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert stat.S_IMODE((directory / "gpu_0.lock").stat().st_mode) == 0o666
    assert locks.fallback is None


def test_an_old_non_sticky_directory_of_ours_is_made_sticky(tmp_path: Path) -> None:
    directory = tmp_path / "locks"
    directory.mkdir()
    directory.chmod(0o777)  # what 0.2 created
    locks = DeviceLocks(["gpu:0"], directory)
    with locks():
        pass
    locks.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert locks.fallback is None


def test_the_fallback_note_is_one_line_naming_both_directories_and_the_fix(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    mine = tmp_path / "mine"
    locks = DeviceLocks(["gpu:0"], blocker / "locks", fallback_directory=mine)
    with locks():
        pass
    locks.close()
    note = locks.fallback
    assert note is not None and "\n" not in note
    assert f"per-user directory {mine}" in note and str(blocker / "locks") in note
    assert "other users" in note and "Fix:" in note
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700  # private: nobody else can touch it


NOBODY_A, NOBODY_B = 23456, 23457  # not the overflow uid 65534, which filelock distrusts
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as other users"
)


def _as_user(uid: int, action: str, directory: str, device: str, out: str) -> None:
    os.setgid(uid)
    os.setuid(uid)
    try:
        if action == "lock":
            locks = DeviceLocks([device], Path(directory), lock_timeout_s=5)
            with locks():
                pass
            locks.close()
            Path(out).write_text(f"ok {locks.fallback}")
        else:  # try to remove another account's lock file
            (Path(directory) / f"{device.replace(':', '_')}.lock").unlink()
            Path(out).write_text("removed")
    except Exception as exc:  # reported to the parent through the file
        Path(out).write_text(f"{type(exc).__name__}: {exc}")


def _run_as(base: Path, uid: int, action: str, device: str) -> str:
    out = base / f"out-{uid}-{action}-{device.replace(':', '_')}"
    child = multiprocessing.get_context("fork").Process(
        target=_as_user, args=(uid, action, str(base / "locks"), device, str(out))
    )
    child.start()
    child.join(30)
    return out.read_text()


@pytest.fixture
def shared_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    base.chmod(0o777)
    yield base
    shutil.rmtree(base)


@needs_root
def test_a_second_user_takes_the_lock_a_first_user_created(shared_base: Path) -> None:
    assert _run_as(shared_base, NOBODY_A, "lock", "gpu:0") == "ok None"
    directory = shared_base / "locks"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert (directory / "gpu_0.lock").stat().st_uid == NOBODY_A
    locks = DeviceLocks(["gpu:0"], directory, lock_timeout_s=5)  # root, a different user
    with locks():
        pass
    locks.close()
    assert locks.fallback is None


@needs_root
def test_no_other_user_can_remove_a_lock_file(shared_base: Path) -> None:
    """The hole of 0.2: under a 0777 directory anyone could unlink a held lock, and a second
    holder then took a fresh one on a new inode."""
    assert _run_as(shared_base, NOBODY_A, "lock", "gpu:0") == "ok None"
    assert _run_as(shared_base, NOBODY_B, "unlink", "gpu:0").startswith("PermissionError")
    assert (shared_base / "locks" / "gpu_0.lock").exists()


def _filelock_refuses(path: Path) -> bool:
    """Whether this filelock refuses a lock file of a third account under a sticky directory
    (filelock 4.3 does, since the owner could replace the inode during a hold; 3.30 does not)."""
    import filelock

    probe = filelock.FileLock(path, timeout=5)
    try:
        probe.acquire()
    except PermissionError:
        return True
    probe.release()
    return False


@needs_root
def test_a_lock_file_a_third_account_owns_is_shared_or_falls_back_and_says_so(
    shared_base: Path,
) -> None:
    assert _run_as(shared_base, NOBODY_A, "lock", "gpu:0") == "ok None"  # owns the directory
    assert _run_as(shared_base, NOBODY_B, "lock", "gpu:1") == "ok None"  # owns gpu_1.lock
    refuses = _filelock_refuses(shared_base / "locks" / "gpu_1.lock")
    mine = shared_base / "mine"
    locks = DeviceLocks(["gpu:0", "gpu:1"], shared_base / "locks", fallback_directory=mine)
    with locks():
        assert not (mine / "gpu_0.lock").exists()  # the directory owner's file: shared
        assert (mine / "gpu_1.lock").exists() is refuses
    locks.close()
    note = locks.fallback
    if refuses:
        assert note is not None and "\n" not in note
        assert "gpu:1" in note and f"uid {NOBODY_B}" in note and str(mine) in note
    else:  # the lock stays shared with that account, and nothing needs saying
        assert note is None


@needs_root
def test_a_non_sticky_directory_of_another_user_is_not_trusted(shared_base: Path) -> None:
    directory = shared_base / "locks"
    directory.mkdir()
    os.chown(directory, NOBODY_A, NOBODY_A)
    directory.chmod(0o777)  # left by 0.2 under another account
    mine = shared_base / "mine"
    locks = DeviceLocks(["gpu:0"], directory, fallback_directory=mine)
    with locks():
        pass
    locks.close()
    assert (mine / "gpu_0.lock").exists()
    assert locks.fallback is not None and "not sticky" in locks.fallback


def _hold_forever(directory: str, started: str) -> None:
    locks = DeviceLocks(["gpu:0"], Path(directory))
    with locks():
        Path(started).write_text(str(os.getpid()))
        time.sleep(120)


def _start_holder(tmp_path: Path) -> tuple[multiprocessing.process.BaseProcess, int]:
    started = tmp_path / "started"
    child = multiprocessing.get_context("spawn").Process(
        target=_hold_forever, args=(str(tmp_path), str(started))
    )
    child.start()
    deadline = time.monotonic() + 30
    while not started.exists() or not started.read_text():
        assert time.monotonic() < deadline, "child never took the lock"
        time.sleep(0.01)
    return child, int(started.read_text())


@pytest.mark.reliability("fault", "device lock: hung holder, other users, lock errors")
def test_a_hung_holder_times_out_with_a_message_naming_it(tmp_path: Path) -> None:
    child, pid = _start_holder(tmp_path)
    messages: list[str] = []
    try:
        locks = DeviceLocks(
            ["gpu:0"], tmp_path, lock_timeout_s=1.0, wait_notice_s=0.2, on_wait=messages.append
        )
        t0 = time.monotonic()
        with pytest.raises(DeviceLockError) as info, locks():
            pass
        waited = time.monotonic() - t0
        locks.close()
    finally:
        child.kill()
        child.join(30)
    assert 0.9 < waited < 10
    assert len(messages) == 1
    assert re.match(
        rf"waiting for the lock on gpu:0 held by PID {pid} \(since \d{{4}}-", messages[0]
    )
    text = str(info.value)
    assert isinstance(info.value, EnergyError)
    assert f"held by PID {pid}" in text
    assert "--energy-lock-timeout" in text
    # the killed holder's lock is free at once
    again = DeviceLocks(["gpu:0"], tmp_path, lock_timeout_s=5)
    with again():
        pass
    again.close()


def test_no_wait_message_without_contention(tmp_path: Path) -> None:
    messages: list[str] = []
    locks = DeviceLocks(["gpu:0", "gpu:1"], tmp_path, on_wait=messages.append)
    for _ in range(20):
        with locks():
            pass
    locks.close()
    assert messages == []
    assert holder_of(tmp_path / "gpu_0.lock")["pid"] == os.getpid()


@pytest.mark.reliability("fault", "device lock: hung holder, other users, lock errors")
def test_lock_os_errors_are_device_lock_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    locks = DeviceLocks(["gpu:0"], blocker / "locks", fallback_directory=blocker / "mine")
    match = r"cannot take the device lock for 'gpu:0'.*Fix: "
    with pytest.raises(DeviceLockError, match=match), locks():
        pass
    assert locks.fallback is not None and "per-user directory" in locks.fallback


def test_an_unwritable_lock_file_is_a_device_lock_error(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root can write any file")
    (tmp_path / "gpu_0.lock").write_text("")
    (tmp_path / "gpu_0.lock").chmod(0o444)
    locks = DeviceLocks(["gpu:0"], tmp_path)
    with pytest.raises(DeviceLockError, match="PermissionError"), locks():
        pass


@pytest.mark.reliability("bad input", "options and meter specs")
def test_bad_devices_attribute_is_a_clear_error() -> None:
    class Bad:
        name = "bad"
        devices = 5

    with pytest.raises(DeviceLockError, match="devices=5"):
        devices_of(Bad(), ["x"])


# -- NVML device locks are keyed by GPU UUID through auto (issue 20, item 10) ------------------

from fake_pynvml import FakeGpu, FakePynvml  # noqa: E402

from pytest_energy.meters.auto import AutoMeter  # noqa: E402
from pytest_energy.meters.nvml import NvmlMeter  # noqa: E402

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"


def _machine() -> FakePynvml:
    """Two H100s; NVML lists them out of PCI order, as it may (see tests/fake_pynvml.py)."""
    return FakePynvml(
        [
            FakeGpu(uuid=UUID_B, bus_id="00000000:81:00.0"),
            FakeGpu(uuid=UUID_A, bus_id="00000000:01:00.0"),
        ]
    )


def _auto_locks(tmp_path: Path, visible: str) -> tuple[AutoMeter, DeviceLocks]:
    """What one worker with CUDA_VISIBLE_DEVICES=visible locks under the default meter."""

    def create(spec: str) -> object:
        if spec == "nvml":
            return NvmlMeter(pynvml=_machine(), environ={"CUDA_VISIBLE_DEVICES": visible})
        return MeterUnavailable(spec, f"no {spec} on this machine")

    auto = AutoMeter(create=create)  # type: ignore[arg-type]
    locks = DeviceLocks(devices_of(auto, auto.read()), tmp_path, lock_timeout_s=0.3)
    return auto, locks


def test_workers_pinned_to_different_gpus_never_share_a_lock(tmp_path: Path) -> None:
    (auto0, first), (auto1, second) = _auto_locks(tmp_path, "0"), _auto_locks(tmp_path, "1")
    assert first.devices == (UUID_A,) and second.devices == (UUID_B,)
    with first(), second():  # both held at once: no wait, no timeout
        pass
    for auto, locks in ((auto0, first), (auto1, second)):
        locks.close()
        auto.close()


@pytest.mark.parametrize(("one", "other"), [("0,1", "1,0"), ("0", UUID_A), ("1", "GPU-bbbb")])
def test_two_names_for_one_gpu_take_the_same_lock(tmp_path: Path, one: str, other: str) -> None:
    (auto0, first), (auto1, second) = _auto_locks(tmp_path, one), _auto_locks(tmp_path, other)
    shared = set(first.devices) & set(second.devices)
    assert shared and all(device.startswith("GPU-") for device in shared)
    with first(), pytest.raises(DeviceLockError, match="gave up after"), second():
        pass
    for auto, locks in ((auto0, first), (auto1, second)):
        locks.close()
        auto.close()


# -- the filelock floor (issue 20, item 13) ----------------------------------------------------


def test_the_declared_filelock_floor_is_the_one_the_lock_code_checks_and_tox_tests() -> None:
    """pyproject.toml's floor, the tox env that runs these tests at it, and FILELOCK_FLOOR
    agree: 3.12.0 failed every window with a raw TypeError on poll_interval."""
    import configparser
    import sys

    from packaging.requirements import Requirement
    from packaging.version import Version

    from pytest_energy.devicelock import FILELOCK_FLOOR

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (specifier,) = [
        Requirement(dep).specifier for dep in project["dependencies"] if dep.startswith("filelock")
    ]
    (floor,) = list(specifier)
    assert floor.operator == ">=" and Version(floor.version) == Version(FILELOCK_FLOOR)
    tox = configparser.ConfigParser()
    tox.read(root / "tox.ini", encoding="utf-8")
    assert f"filelock=={FILELOCK_FLOOR}" in tox["testenv:filelock-floor"]["deps"].split()


@pytest.mark.parametrize("old", ["3.12.0", "3.29.7"])
def test_an_older_filelock_is_one_clear_error_not_a_type_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str
) -> None:
    import filelock

    from pytest_energy.devicelock import filelock_too_old

    assert filelock_too_old("3.30.0") is None and filelock_too_old("4.3.2") is None
    monkeypatch.setattr(filelock, "__version__", old)
    locks = DeviceLocks(["gpu:0"], tmp_path / "locks")
    with pytest.raises(DeviceLockError) as info, locks():
        pass
    text = str(info.value)
    assert f"filelock {old} is installed" in text and "pip install 'filelock>=3.30.0'" in text
    assert "--energy-device-lock=off" in text and "\n" not in text
