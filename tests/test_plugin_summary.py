"""What a run tells the user, through pytest: every verdict (energy.compare's too) in every
report, the summary's wording, the report sections, waits shown past output capture, and
the notes that say once what a setting did not do. A deterministic meter, in process."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET

import filelock
import pytest

METER = "--energy-meter=fakemeter:ScriptedMeter"
BASE = (METER, "--energy-min-time=0", "--energy-rounds=3", "-p", "no:cacheprovider")

MIXED = """
import pytest

def test_fast(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)

def test_upgrade(energy):
    energy.compare(
        lambda: energy.meter.spend(3.6), lambda: energy.meter.spend(4.5), inferences=1
    )
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*BASE, *args)


def test_an_energy_compare_verdict_reaches_every_report(meter_pytester: pytest.Pytester) -> None:
    """0.2 left energy.compare out of every report: "No energy measurements in this run" and
    "tests": [] for a run that failed on energy, and a green headline in a mixed run."""
    meter_pytester.makepyfile(test_models=MIXED)
    result = run(
        meter_pytester,
        "--energy-rounds=8",  # 8 A/B pairs: enough for the paired test at alpha 0.01
        "--energy-report",
        "--energy-json=energy.json",
        "--energy-markdown=energy.md",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "the candidate costs +25.0% energy per inference" in out
    result.stdout.fnmatch_lines(["test_models.py::test_upgrade (compare) * +25.0%  regressed *"])
    assert "windows of 2 tests" in out  # the totals count the compare test too

    md = (meter_pytester.path / "energy.md").read_text()
    problems = md.split("#### Regressions and over budget (1)")[1].split("####")[0]
    assert "`test_models.py::test_upgrade` (energy.compare)" in problems
    assert "+25.0%" in problems and "❌ regressed" in problems
    assert md.rstrip().endswith("**❌ 1 costlier candidate (energy.compare) in 2 measured tests**")

    report = json.loads((meter_pytester.path / "energy.json").read_text())
    by_check = {(t["nodeid"], t["check"]): t for t in report["tests"]}
    compare = by_check[("test_models.py::test_upgrade", "compare")]
    assert compare["verdict"] == "regressed" and compare["outcome"] == "failed"
    assert compare["reference"]["kwh_per_1000"] == pytest.approx(0.001)
    assert compare["comparison"]["tolerance_pct"] == 3.0
    assert report["totals"]["compare_regressed"] == 1

    cases = {c.get("name"): c for c in ET.parse(meter_pytester.path / "junit.xml").iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_upgrade"].iter("property")}
    assert props["energy_compare_verdict"] == "regressed"
    assert float(props["energy_compare_change_pct"]) == pytest.approx(25.0)


def test_a_passing_compare_is_reported_too(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        test_same="""
        def test_same(energy):
            check = energy.compare(
                lambda: energy.meter.spend(3.6), lambda: energy.meter.spend(3.6), inferences=1
            )
            assert check.change_pct == 0.0
        """
    )
    result = run(meter_pytester, "--energy-json=energy.json")
    result.assert_outcomes(passed=1)
    (test,) = json.loads((meter_pytester.path / "energy.json").read_text())["tests"]
    assert (test["check"], test["verdict"], test["outcome"]) == ("compare", "ok", "passed")


def test_the_step_summary_gets_the_compare_failure(
    meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = meter_pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    meter_pytester.makepyfile(test_models=MIXED)
    run(meter_pytester, "--energy-report").assert_outcomes(passed=1, failed=1)
    assert "❌ 1 costlier candidate (energy.compare)" in summary.read_text()


# -- the summary's wording -------------------------------------------------------------------

NEW_TESTS = """
import pytest

@pytest.mark.parametrize("k", range(3))
def test_new(energy, k):
    energy(lambda: energy.meter.spend(3.6), inferences=1)

def test_broken(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
    assert False, "the model returned garbage"
"""


def test_one_line_for_ungated_tests_with_the_right_count(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(test_new=NEW_TESTS)
    result = run(meter_pytester, "--energy-report")
    result.assert_outcomes(passed=3, failed=1)
    lines = [line for line in result.outlines if "baseline" in line and "record" in line]
    assert lines == [
        "pytest-energy: 3 energy tests had no comparable baseline entry and were not gated; "
        "record them with --energy-update-baseline, or use --energy-strict to fail such tests"
    ]


def test_an_update_run_says_what_it_wrote_and_what_it_did_not(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(test_new=NEW_TESTS)
    result = run(meter_pytester, "--energy-report", "--energy-update-baseline")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    path = meter_pytester.path / "energy-baseline.toml"
    assert f"energy baseline: wrote 3 entries to {path}; 1 failed test was not recorded" in out
    assert "record them with --energy-update-baseline" not in out  # the flag is given already
    assert "this update records them" in out


def test_a_failed_test_without_a_baseline_gets_no_energy_section_unless_verbose(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(test_new=NEW_TESTS)
    quiet = run(meter_pytester, "-k", "broken")
    quiet.assert_outcomes(failed=1)
    assert "Captured energy" not in quiet.stdout.str()
    assert "the model returned garbage" in quiet.stdout.str()
    verbose = run(meter_pytester, "-k", "broken", "-v")
    assert "Captured energy call" in verbose.stdout.str() or "- energy -" in verbose.stdout.str()


def test_the_headline_says_modelled_for_a_deterministic_meter(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_m="def test_m(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:FixedMeter", "--energy-report", "--energy-markdown=e.md",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    assert "meter fixed (modelled) on model rig (fixed model)" in result.stdout.str()
    result.stdout.fnmatch_lines(["total: * modelled in 1 window of 1 test"])
    md = (meter_pytester.path / "e.md").read_text()
    assert "1 modelled test within budget and baseline" in md and "measured" not in md


def test_a_report_path_given_to_energy_report_gets_a_hint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest("--energy-report=x.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--energy-report" in err and "takes no value ('x.json' given)" in err
    assert "use --energy-json/--energy-markdown/--energy-html=PATH" in err
    assert "ignored explicit argument" not in err
    # the flag still takes a test path after it
    ok = pytester.runpytest("--energy-report", "test_a.py")
    ok.assert_outcomes(passed=1)


# -- notes said once ----------------------------------------------------------------------------


def test_subtract_idle_is_a_no_op_for_a_deterministic_meter(
    meter_pytester: pytest.Pytester,
) -> None:
    """0.2 failed every energy test: the idle window counted no work."""
    meter_pytester.makepyfile(
        test_m="""
        def test_a(energy):
            energy(lambda: energy.meter.spend(3.6), inferences=1)

        def test_b(energy):
            energy(lambda: energy.meter.spend(3.6), inferences=1)
        """,
    )
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:FixedMeter", "--energy-subtract-idle", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    notes = [line for line in result.outlines if "--energy-subtract-idle has no effect" in line]
    assert len(notes) == 1


# -- waits shown past output capture -------------------------------------------------------------


def _holding(path: str, seconds: float) -> threading.Thread:
    """Hold the file lock ``path`` from another thread for ``seconds``."""
    lock = filelock.FileLock(path, thread_local=False)
    lock.acquire()
    timer = threading.Timer(seconds, lock.release)
    timer.start()
    return timer


def test_a_baseline_update_waiting_for_the_lock_says_so_past_capture(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_a="def test_a(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    timer = _holding(str(meter_pytester.path / "energy-baseline.toml.lock"), 4.0)
    try:
        result = run(meter_pytester, "--energy-update-baseline")  # default --capture=fd
    finally:
        timer.join()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-energy: waiting for the baseline lock *"])
    assert (meter_pytester.path / "energy-baseline.toml").exists()


def test_a_baseline_lock_timeout_says_the_baseline_was_not_updated(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_a="def test_a(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    timer = _holding(str(meter_pytester.path / "energy-baseline.toml.lock"), 4.0)
    try:
        result = run(meter_pytester, "--energy-update-baseline", "--energy-lock-timeout=1.2s")
    finally:
        timer.join()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR: energy baseline *: was not updated: gave up after *"])
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
    assert not (meter_pytester.path / "energy-baseline.toml").exists()


def test_a_window_waiting_for_its_device_lock_says_so_past_capture(
    meter_pytester: pytest.Pytester,
) -> None:
    """0.2 wrote the notice during the call phase, so only -s showed it."""
    from pytest_energy.devicelock import DEFAULT_DIR, DeviceLocks

    meter_pytester.makepyfile(
        test_a="def test_a(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    locks = DeviceLocks(["test-rig-fake:0"])
    path = str(locks.directory / "test-rig-fake_0.lock")
    assert locks.directory in (DEFAULT_DIR, locks.fallback_directory)
    timer = _holding(path, 4.0)
    try:
        result = run(meter_pytester)
    finally:
        timer.join()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-energy: waiting for the lock on test-rig-fake:0 *"])


def test_ctrl_c_while_waiting_for_the_baseline_lock_ends_in_one_line(
    meter_pytester: pytest.Pytester,
) -> None:
    """0.2 ended with a raw filelock traceback."""
    import signal
    import subprocess
    import sys
    import time

    meter_pytester.makepyfile(
        test_a="def test_a(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    lock = filelock.FileLock(str(meter_pytester.path / "energy-baseline.toml.lock"))
    lock.acquire()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", *BASE, "--energy-update-baseline"],
            cwd=meter_pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**__import__("os").environ, "PYTHONPATH": str(meter_pytester.path)},
        )
        assert child.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        for line in child.stdout:
            lines.append(line)
            if "waiting for the baseline lock" in line or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGINT)
        rest, _ = child.communicate(timeout=60)
    finally:
        lock.release()
    output = "".join(lines) + rest
    assert "waiting for the baseline lock" in output
    assert child.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert "interrupted while writing the energy baseline or reports" in output
    assert "KeyboardInterrupt" in output  # pytest's own interrupted summary
    assert not (meter_pytester.path / "energy-baseline.toml").exists()


@pytest.mark.reliability("fault", "Ctrl-C at the end of the session")
def test_ctrl_c_in_another_plugins_terminal_summary_ends_in_one_line(
    meter_pytester: pytest.Pytester,
) -> None:
    """A SIGINT that lands in the session's end, here in another plugin's summary code (the
    interrupt loop found 19 of 100 in hypothesis' plugin), ends as an interrupted run."""
    meter_pytester.makeconftest("def pytest_terminal_summary():\n    raise KeyboardInterrupt\n")
    meter_pytester.makepyfile(
        test_a="def test_a(energy):\n    energy(lambda: None, inferences=1)\n"
    )
    result = meter_pytester.runpytest_subprocess(*BASE)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert "KeyboardInterrupt" in output
