"""Count the bad inputs and injected faults that the test suite tries, and how they end.

Runs (through pytest, in this process) every test that feeds pytest-energy a bad input or
injects a fault, and prints the Markdown table of docs/reliability.md:

* ``tests/test_reliability.py``: the ``test_bad_input`` table and ``test_bad_*`` tests,
  the ``test_fault_*`` tests, and the odd-but-valid inputs that must work;
* the tests of ``tests/test_plugin.py``, ``tests/test_baseline.py``,
  ``tests/test_meter_nvml.py``, ``tests/test_scaleout.py``, ``tests/test_report_hostile.py``
  and ``tests/test_cli.py`` that cover the same ground, named in :data:`OTHERS`.

Each parametrized case counts once. A case that passes is a bad input that got a clear
error and changed no file, or a fault that was survived; a strict xfail is a package bug
that has been reported and is not fixed yet; a failure is a regression.

Usage::

    python benchmarks/reliability_table.py
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (node id prefix, group, row) for tests outside tests/test_reliability.py.
OTHERS: tuple[tuple[str, str, str], ...] = (
    (
        "tests/test_plugin.py::TestBaselineFile::test_corrupt_baseline_stops_the_run_and_is_left_alone",
        "bad input",
        "baseline file, whole run",
    ),
    (
        "tests/test_plugin.py::TestMarker::test_bad_arguments_name_the_test_and_marker",
        "bad input",
        "marker arguments",
    ),
    (
        "tests/test_plugin.py::TestMarker::test_closest_marker_wins_and_same_level_duplicates_are_an_error",
        "bad input",
        "marker arguments",
    ),
    (
        "tests/test_plugin.py::TestOptions::test_bad_option_values_are_usage_errors",
        "bad input",
        "options and meter specs",
    ),
    (
        "tests/test_plugin.py::TestMeters::test_bad_meter_spec_is_a_usage_error",
        "bad input",
        "options and meter specs",
    ),
    (
        "tests/test_plugin.py::TestMeters::test_factory_returning_a_non_meter_is_a_usage_error",
        "bad input",
        "options and meter specs",
    ),
    (
        "tests/test_plugin.py::TestFixture::test_misuse_fails_the_test_with_a_clear_message",
        "bad input",
        "fixture misuse",
    ),
    (
        "tests/test_plugin.py::TestFixture::test_measuring_after_the_test_finished_is_an_error",
        "bad input",
        "fixture misuse",
    ),
    (
        "tests/test_baseline.py::test_invalid_file_raises_and_is_left_unchanged",
        "bad input",
        "baseline file, unit (load)",
    ),
    (
        "tests/test_baseline.py::test_newer_schema_version_says_upgrade",
        "bad input",
        "baseline file, unit (load)",
    ),
    ("tests/test_baseline.py::test_path_is_a_directory", "bad input", "baseline file, unit (load)"),
    ("tests/test_baseline.py::test_non_utf8_bytes", "bad input", "baseline file, unit (load)"),
    (
        "tests/test_baseline.py::test_update_refuses_invalid_existing_file",
        "bad input",
        "baseline file, unit (load)",
    ),
    (
        "tests/test_baseline.py::test_save_into_missing_directory",
        "bad input",
        "baseline file, unit (load)",
    ),
    (
        "tests/test_plugin.py::TestMeters::test_sensor_failing_mid_window_fails_only_that_test",
        "fault",
        "meter read() raises mid-window",
    ),
    (
        "tests/test_plugin.py::TestMeters::test_counter_going_backwards_rejects_the_window",
        "fault",
        "counter goes backwards",
    ),
    (
        "tests/test_meter_nvml.py::test_gpu_lost_mid_run_raises_a_typed_error_naming_the_gpu",
        "fault",
        "NVML GPU lost, unit (fake pynvml)",
    ),
    (
        "tests/test_meter_nvml.py::test_handle_that_disappears_mid_run_raises_gpu_lost",
        "fault",
        "NVML GPU lost, unit (fake pynvml)",
    ),
    (
        "tests/test_meter_nvml.py::test_polled_gpu_lost_mid_run_raises_gpu_lost",
        "fault",
        "NVML GPU lost, unit (fake pynvml)",
    ),
    (
        "tests/test_meter_nvml.py::test_gpu_lost_before_the_run_is_unavailable",
        "fault",
        "NVML GPU lost, unit (fake pynvml)",
    ),
    (
        "tests/test_meter_nvml.py::test_other_read_failures_are_nvml_errors_with_the_code",
        "fault",
        "NVML GPU lost, unit (fake pynvml)",
    ),
    # issue 14: shared machines, hostile values at the writers, the pytest-energy command
    (
        "tests/test_scaleout.py::test_a_hung_holder_times_out_with_a_message_naming_it",
        "fault",
        "device lock: hung holder, other users, lock errors",
    ),
    (
        "tests/test_scaleout.py::test_lock_directory_and_files_are_shared_with_other_users",
        "fault",
        "device lock: hung holder, other users, lock errors",
    ),
    (
        "tests/test_scaleout.py::test_a_sticky_shared_directory_of_ours_is_made_usable",
        "fault",
        "device lock: hung holder, other users, lock errors",
    ),
    (
        "tests/test_scaleout.py::test_lock_os_errors_are_device_lock_errors",
        "fault",
        "device lock: hung holder, other users, lock errors",
    ),
    (
        "tests/test_scaleout.py::test_bad_devices_attribute_is_a_clear_error",
        "bad input",
        "options and meter specs",
    ),
    (
        "tests/test_report_hostile.py::test_every_writer_survives",
        "bad input",
        "hostile values at the report writers",
    ),
    (
        "tests/test_report_hostile.py::test_an_unwritable_report_does_not_stop_the_others",
        "fault",
        "one report writer fails",
    ),
    (
        "tests/test_report_hostile.py::test_a_renderer_bug_is_one_line_and_the_others_are_written",
        "fault",
        "one report writer fails",
    ),
    (
        "tests/test_cli.py::test_merge_refuses_to_write_a_baseline_over_a_report",
        "bad input",
        "pytest-energy command (merge, compare, show)",
    ),
    (
        "tests/test_cli.py::test_merge_keeps_the_hardware_out_has_and_the_inputs_do_not",
        "bad input",
        "pytest-energy command (merge, compare, show)",
    ),
    (
        "tests/test_cli.py::test_merge_a_baseline_with_the_report_of_the_same_run_does_not_conflict",
        "bad input",
        "pytest-energy command (merge, compare, show)",
    ),
    (
        "tests/test_cli.py::test_compare_uses_the_tolerance_recorded_in_the_reports",
        "bad input",
        "pytest-energy command (merge, compare, show)",
    ),
    (
        "tests/test_cli.py::test_compare_uses_the_ini_tolerance",
        "bad input",
        "pytest-energy command (merge, compare, show)",
    ),
    (
        "tests/test_cli.py::test_show_into_a_closed_pipe_ends_quietly",
        "fault",
        "output pipe closed early (show piped to head)",
    ),
)

RELIABILITY = "tests/test_reliability.py"

#: (start of a test_reliability.py fault test's name, row).
FAULT_ROWS: tuple[tuple[str, str], ...] = (
    ("test_fault_meter_read_raises", "meter read() raises mid-window"),
    ("test_fault_counter_going_backwards", "counter goes backwards"),
    ("test_fault_meter_reading_changes_shape", "device disappears / NaN reading"),
    ("test_fault_nvml_gpu_lost", "NVML GPU lost, whole run (fake pynvml)"),
    ("test_fault_meter_failing", "meter fails outside a window"),
    ("test_fault_short_windows", "windows shorter than the meter's period"),
    ("test_fault_keyboard_interrupt", "Ctrl-C / SIGTERM during an update"),
    ("test_fault_interrupted_inside_update", "Ctrl-C / SIGTERM during an update"),
    ("test_fault_killed_while_saving", "killed while saving (short loop)"),
    ("test_fault_concurrent_updates", "two concurrent writers"),
    ("test_fault_numpy_readings", "hostile values at the report writers, whole run"),
)

BAD_INPUT_ROWS = {
    "baseline": "baseline file, whole run",
    "marker": "marker arguments",
    "option": "options and meter specs",
    "fixture": "fixture misuse",
}


def classify(nodeid: str) -> tuple[str, str] | None:
    """(group, row) of a test, or None when it is not counted."""
    for prefix, group, row in OTHERS:
        if nodeid == prefix or nodeid.startswith(prefix + "["):
            return group, row
    if not nodeid.startswith(RELIABILITY + "::"):
        return None
    name = nodeid.split("::", 1)[1]
    function = name.split("[", 1)[0]
    if function == "test_bad_input":
        category = name.split("[", 1)[1].split("/", 1)[0]
        return "bad input", BAD_INPUT_ROWS[category]
    if function.startswith("test_bad_baseline_"):
        return "bad input", "baseline file, unit (load)"
    if function.startswith("test_fault_"):
        return "fault", next(
            (row for start, row in FAULT_ROWS if function.startswith(start)), function
        )
    if function.startswith("test_bad_"):
        return None  # table checks, not inputs
    return "valid input", "odd but valid inputs must work"


@dataclass
class Outcomes:
    passed: int = 0
    xfailed: int = 0
    failed: int = 0

    @property
    def tried(self) -> int:
        return self.passed + self.xfailed + self.failed


class Collector:
    """A pytest plugin: keeps the counted tests and records how each ended."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Outcomes] = defaultdict(Outcomes)
        self.seen_prefixes: Counter[str] = Counter()
        self.bugs: dict[str, str] = {}
        self.problems: list[str] = []

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _prewarm_hypothesis()

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            (kept if classify(item.nodeid) else dropped).append(item)
            for prefix, _, _ in OTHERS:
                if item.nodeid == prefix or item.nodeid.startswith(prefix + "["):
                    self.seen_prefixes[prefix] += 1
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        where = classify(report.nodeid)
        if where is None:
            return
        outcome = self.rows[where]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if getattr(report, "wasxfail", None) is not None and report.skipped:
                outcome.xfailed += 1
                self.bugs[report.nodeid] = str(report.wasxfail)
            elif report.passed:
                outcome.passed += 1
            else:
                outcome.failed += 1
                self.problems.append(report.nodeid)


def _prewarm_hypothesis() -> None:
    """Import what hypothesis' pytest plugin imports at the end of every session.

    pytester's in-process runs put ``sys.modules`` back as it was before each run, so a
    module first imported inside a run is imported again in the next (1-3 s each here).
    Done once the session has started: imported earlier, the plugin could not be rewritten.
    """
    with contextlib.suppress(ImportError):
        import hypothesis.internal.observability  # noqa: F401


def run() -> Collector:
    collector = Collector()
    files = sorted({prefix.split("::", 1)[0] for prefix, _, _ in OTHERS} | {RELIABILITY})
    code = pytest.main(
        [
            *(str(ROOT / f) for f in files),
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
        ],
        plugins=[collector],
    )
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise SystemExit(f"pytest stopped with exit status {code}")
    for prefix, _, _ in OTHERS:
        if not collector.seen_prefixes[prefix]:
            collector.problems.append(f"no test found for {prefix} (renamed?)")
    return collector


def table(collector: Collector) -> list[str]:
    lines = [
        "| group | what | tried | handled | known bug (xfail) | regressed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    totals: dict[str, Outcomes] = defaultdict(Outcomes)
    for group in ("bad input", "fault", "valid input"):
        for (g, row), o in sorted(collector.rows.items()):
            if g != group:
                continue
            lines.append(f"| {g} | {row} | {o.tried} | {o.passed} | {o.xfailed} | {o.failed} |")
            t = totals[g]
            t.passed, t.xfailed, t.failed = (
                t.passed + o.passed,
                t.xfailed + o.xfailed,
                t.failed + o.failed,
            )
    for group, t in totals.items():
        lines.append(
            f"| **{group}** | **all** | **{t.tried}** | **{t.passed}** | **{t.xfailed}** | "
            f"**{t.failed}** |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bugs", action="store_true", help="also list the known-bug cases")
    args = parser.parse_args(argv)
    collector = run()
    print()
    print("\n".join(table(collector)))
    if args.bugs:
        print()
        for nodeid, reason in sorted(collector.bugs.items()):
            print(f"- {nodeid}: {reason}")
    for problem in collector.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if collector.problems else 0


if __name__ == "__main__":
    sys.exit(main())
