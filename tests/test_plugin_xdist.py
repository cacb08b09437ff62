"""The plugin under pytest-xdist: results reach the controller once, windows queue per device."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from plugin_helpers import WORKERS, report_of

pytest.importorskip("xdist")

# xdist workers start from the controller's startup sys.path, so the deterministic meter
# lives in the rootdir conftest, which pytest imports (and puts on sys.path) in every worker.
METER = WORKERS

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


FLAKY = """
import pathlib, pytest
{spend_import}

def _first_attempt_fails(name):
    path = pathlib.Path(name)
    attempt = int(path.read_text()) if path.exists() else 0
    path.write_text(str(attempt + 1))
    assert attempt >= 1, "flaky: the first attempt fails"

def test_fixture(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
    _first_attempt_fails("fixture.count")

@pytest.mark.energy_budget(kwh=1.0, inferences=2)
def test_marker_only():
    spend(7.2)
    _first_attempt_fails("marker.count")
"""


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_a_flaky_energy_test_passes_on_rerun(
    xdist_pytester: pytest.Pytester, workers: str | None
) -> None:
    xdist_pytester.makepyfile(test_flaky=FLAKY.format(spend_import="from conftest import spend"))
    args = ["-p", "rerunfailures", "--reruns", "2", WORKERS, "--energy-min-time=0"]
    args += ["--energy-rounds=3", "--energy-json=energy.json", "-p", "no:cacheprovider"]
    if workers:
        args += ["-n", workers]
    result = xdist_pytester.runpytest(*args)
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun"), outcomes.get("failed")) == (2, 2, None)
    assert "used after its test finished" not in result.stdout.str()
    records = report_of(xdist_pytester)
    assert set(records) == {"test_flaky.py::test_fixture", "test_flaky.py::test_marker_only"}
    # the record of the attempt that passed, alone: its own windows, not the first attempt's
    assert len(records["test_flaky.py::test_fixture"]["windows"]) == 3
    assert records["test_flaky.py::test_fixture"]["outcome"] == "passed"
    assert len(records["test_flaky.py::test_marker_only"]["windows"]) == 1
    assert records["test_flaky.py::test_marker_only"]["kwh_per_1000"] == pytest.approx(0.001)


def test_a_crashing_worker_loses_only_its_own_test(xdist_pytester: pytest.Pytester) -> None:
    xdist_pytester.makepyfile(
        test_suite="""
        import os, pytest

        @pytest.mark.parametrize("k", range(10))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6 * (k + 1)), inferences=1)

        def test_crash():
            os._exit(1)
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", WORKERS, "--energy-min-time=0", "--energy-rounds=2",
        "--energy-json=energy.json", "--energy-update-baseline", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=10, failed=1)
    records = report_of(xdist_pytester)
    assert sorted(records) == sorted(f"test_suite.py::test_cost[{k}]" for k in range(10))
    baseline = (xdist_pytester.path / "energy-baseline.toml").read_text()
    assert all(f"test_cost[{k}]" in baseline for k in range(10))


def test_gpu_pin_is_set_before_a_conftest_can_initialise_cuda(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake CUDA runtime: like the real one, it reads CUDA_VISIBLE_DEVICES once, when the
    # conftest initialises it at import time (torch.cuda.is_available() is enough).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    xdist_pytester.makepyfile(
        fakecuda="""
        import os
        SEEN = {}

        def init():
            SEEN.setdefault("devices", os.environ.get("CUDA_VISIBLE_DEVICES"))
        """,
        test_pin="""
        import os, fakecuda

        def test_pinned(worker_id):
            expected = {"gw0": "3", "gw1": "5"}[worker_id]
            assert fakecuda.SEEN["devices"] == expected
            assert os.environ["CUDA_VISIBLE_DEVICES"] == expected

        test_pinned_again = test_pinned
        """,
    )
    conftest = (xdist_pytester.path / "conftest.py").read_text()
    (xdist_pytester.path / "conftest.py").write_text(
        "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n"
        "import fakecuda\nfakecuda.init()\n" + conftest
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "--dist=each", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)


def test_too_few_gpus_is_one_usage_error(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    xdist_pytester.makepyfile("def test_one():\n    pass\n")
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("2 pytest-xdist workers but only 1 GPU(s) visible") == 1
    assert "Traceback" not in output


def test_numpy_readings_cross_to_the_controller(xdist_pytester: pytest.Pytester) -> None:
    pytest.importorskip("numpy")
    conftest = (xdist_pytester.path / "conftest.py").read_text()
    (xdist_pytester.path / "conftest.py").write_text(
        conftest + "\n\nclass NumpyMeter(ScriptedMeter):\n"
        "    def read(self):\n"
        "        import numpy\n"
        "        return {'fake:0': numpy.float32(self.total)}\n"
    )
    xdist_pytester.makepyfile(
        test_np="""
        import pytest

        @pytest.mark.parametrize("k", range(4))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6 * (k + 1)), inferences=1)
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-meter=conftest:NumpyMeter", "--energy-min-time=0",
        "--energy-rounds=2", "--energy-json=energy.json", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    records = report_of(xdist_pytester)
    assert len(records) == 4
    assert records["test_np.py::test_cost[0]"]["kwh_per_1000"] == pytest.approx(0.001)


def test_a_workers_notes_reach_the_controllers_summary_once(
    xdist_pytester: pytest.Pytester,
) -> None:
    """0.2 kept a worker's warnings on the worker: the summary never showed them."""
    xdist_pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("k", range(4))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6), inferences=1)
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-meter=conftest:FixedMeter", "--energy-subtract-idle",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    notes = [line for line in result.outlines if "--energy-subtract-idle has no effect" in line]
    assert len(notes) == 1, result.outlines
