"""GPU pinning for pytest-xdist workers against a fake machine of 4 GPUs, and device locks."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pytest_energy import scaleout
from pytest_energy.devicelock import DeviceLocks, devices_of
from pytest_energy.errors import ConfigError


def four_gpus() -> int:
    return 4


def no_nvml() -> int:
    raise AssertionError("NVML must not be asked when CUDA_VISIBLE_DEVICES is set")


@pytest.mark.parametrize(("worker", "expected"), [("gw0", "0"), ("gw1", "1"), ("gw3", "3")])
def test_worker_i_gets_gpu_i(worker: str, expected: str) -> None:
    env: dict[str, str] = {}
    assert scaleout.pin_worker(env, worker, 4, four_gpus) == expected
    assert env == {"CUDA_VISIBLE_DEVICES": expected, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_pins_follow_an_existing_visible_list() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "GPU-aaaa, GPU-bbbb,GPU-cccc"}
    assert scaleout.pin_worker(env, "gw1", 2, no_nvml) == "GPU-bbbb"
    assert env == {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}


def test_more_workers_than_gpus_is_a_clear_error() -> None:
    env: dict[str, str] = {}
    with pytest.raises(
        ConfigError, match=r"5 pytest-xdist workers but only 4 GPU\(s\) visible.*-n 4"
    ):
        scaleout.pin_worker(env, "gw0", 5, four_gpus)
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_bad_worker_id() -> None:
    with pytest.raises(ConfigError, match="unexpected pytest-xdist worker id"):
        scaleout.worker_index("master")


def test_refuses_when_cuda_is_already_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeCuda:
        @staticmethod
        def is_initialized() -> bool:
            return True

    class FakeTorch:
        cuda = FakeCuda()

    monkeypatch.setitem(__import__("sys").modules, "torch", FakeTorch())
    with pytest.raises(ConfigError, match="CUDA was initialised before"):
        scaleout.pin_worker({}, "gw0", 1, four_gpus)


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
