"""The plugin under pytest-xdist: results reach the controller once, windows queue per device."""

from __future__ import annotations

import itertools
import json
import re

import pytest

pytest.importorskip("xdist")

# xdist workers start from the controller's startup sys.path, so the deterministic meter
# lives in the rootdir conftest, which pytest imports (and puts on sys.path) in every worker.
METER = "--energy-meter=conftest:ScriptedMeter"

# Eight tests with distinct, exactly known costs: test_cost[k] spends k * 3.6 J per inference.
SUITE = """
import pytest

@pytest.mark.parametrize("k", range(1, 9))
def test_cost(energy, k):
    energy(lambda: energy.meter.spend(3.6 * k), inferences=1)
"""


@pytest.mark.parametrize("workers", ["2", "4"])
def test_one_record_per_test_in_report_and_baseline(
    xdist_pytester: pytest.Pytester, workers: str
) -> None:
    xdist_pytester.makepyfile(test_suite=SUITE)
    result = xdist_pytester.runpytest(
        "-n",
        workers,
        METER,
        "--energy-min-time=0",
        "--energy-rounds=3",
        "--energy-report",
        "--energy-update-baseline",
        "--energy-json=energy.json",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=8)
    report = json.loads((xdist_pytester.path / "energy.json").read_text())
    by_id = {record["nodeid"]: record for record in report["tests"]}
    assert len(report["tests"]) == len(by_id) == 8
    for k in range(1, 9):
        record = by_id[f"test_suite.py::test_cost[{k}]"]
        assert record["kwh_per_1000"] == pytest.approx(0.001 * k)
        assert len(record["samples"]) == 3
    rows = [line for line in result.outlines if re.match(r"test_suite\.py::test_cost\[\d\] ", line)]
    assert len(rows) == 8
    for k in range(1, 9):
        (row,) = [r for r in rows if r.startswith(f"test_suite.py::test_cost[{k}] ")]
        assert f" {0.001 * k:.4g} " in row and " new " in row
    text = (xdist_pytester.path / "energy-baseline.toml").read_text()
    assert text.count('"test_suite.py::test_cost[') == 8
    for k in range(1, 9):
        assert f"kwh_per_1000 = {0.001 * k:.6g}" in text.replace("0.0030000000000000005", "0.003")
    result.stdout.fnmatch_lines(["*wrote 8 entries*"])


def test_regression_is_judged_on_the_worker_and_reported_once(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdist_pytester.makepyfile(
        test_suite=SUITE.replace(
            "3.6 * k", "3.6 * k * float(__import__('os').environ.get('F', '1'))"
        )
    )
    args = ("-n", "2", METER, "--energy-min-time=0", "--energy-rounds=5", "-p", "no:cacheprovider")
    xdist_pytester.runpytest(*args, "--energy-update-baseline").assert_outcomes(passed=8)
    monkeypatch.setenv("F", "1.5")
    result = xdist_pytester.runpytest(*args, "--energy-report")
    result.assert_outcomes(failed=8)
    assert sum(" regressed " in line for line in result.outlines) == 8


WINDOWS = """
import json, os, time, pathlib, pytest

LOG = pathlib.Path(os.environ["WINDOW_LOG"])
RENDEZVOUS = os.environ.get("RENDEZVOUS") == "1"

@pytest.mark.parametrize("k", range(4))
def test_window(energy, k, worker_id):
    with energy.measure(inferences=1):
        energy.meter.spend(1.0)
        (LOG / f"in-{worker_id}").touch()
        if RENDEZVOUS and not (LOG / "met").exists():
            # without the lock, wait (bounded) until another worker is inside a window too;
            # once two windows have overlapped, nobody waits again (the last window alone
            # would otherwise sit out the whole deadline)
            deadline = time.monotonic() + 20
            while len(list(LOG.glob("in-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            if len(list(LOG.glob("in-*"))) >= 2:
                (LOG / "met").touch()
        else:
            time.sleep(0.2)
        (LOG / f"in-{worker_id}").unlink()
    w = energy.result.windows[0]
    (LOG / f"{worker_id}-{k}.json").write_text(json.dumps([w.start_unix_s, w.end_unix_s]))
"""


def _windows(log) -> list[tuple[float, float]]:
    return sorted(tuple(json.loads(p.read_text())) for p in log.glob("gw*.json"))


@pytest.mark.parametrize("lock", ["on", "off"])
def test_device_lock_serialises_windows_on_one_device(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lock: str
) -> None:
    log = xdist_pytester.mkdir("log")
    monkeypatch.setenv("WINDOW_LOG", str(log))
    monkeypatch.setenv("RENDEZVOUS", "1" if lock == "off" else "0")
    xdist_pytester.makepyfile(test_windows=WINDOWS)
    result = xdist_pytester.runpytest(
        "-n",
        "2",
        METER,
        f"--energy-device-lock={lock}",
        "--energy-report",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=4)
    windows = _windows(log)
    assert len(windows) == 4
    overlaps = sum(1 for (_, end), (start, _) in itertools.pairwise(windows) if start < end)
    if lock == "on":
        assert overlaps == 0, windows
    else:
        assert overlaps >= 1, windows


def test_gpu_per_worker_pins_each_worker(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    xdist_pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.parametrize("k", range(4))
        def test_pinned(worker_id, k):
            expected = {"gw0": "0", "gw1": "1"}[worker_id]
            assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)


def test_gpu_per_worker_with_too_many_workers(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    xdist_pytester.makepyfile("def test_one():\n    pass\n")
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "-p", "no:cacheprovider"
    )
    assert result.ret != 0
    assert (
        "2 pytest-xdist workers but only 1 GPU(s) visible"
        in result.stdout.str() + result.stderr.str()
    )
