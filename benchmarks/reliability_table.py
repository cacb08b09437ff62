"""Count the bad inputs and injected faults that the test suite tries, and how they end.

Runs (through pytest, in this process) every test marked
``@pytest.mark.reliability(group, row)`` under ``tests/`` and prints the Markdown table of
docs/reliability.md: one line per group and row, with how many cases were tried and how
each ended. The groups:

* ``"bad input"``: pytest-energy is fed a wrong baseline file, marker argument, option,
  fixture call, report value or command; the case passes when it got a clear error and
  changed no file;
* ``"fault"``: a meter, a GPU, a lock or a write fails or is interrupted; the case passes
  when the run survived it as documented;
* ``"valid input"``: inputs that look odd but are valid and must work.

Each parametrized case counts once. A case that passes is handled; a strict xfail is a
package bug that has been reported and is not fixed yet; a failure is a regression.

Usage::

    python benchmarks/reliability_table.py [--bugs] [PATH ...]   # default: tests/

The exit status is 1 when a counted test failed or carries a marker that names no group.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import _common
import pytest

MARKER = "reliability"
GROUPS = ("bad input", "fault", "valid input")


@dataclass
class Outcomes:
    passed: int = 0
    xfailed: int = 0
    failed: int = 0

    @property
    def tried(self) -> int:
        return self.passed + self.xfailed + self.failed


class Collector:
    """A pytest plugin: keeps the marked tests and records how each ended."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Outcomes] = defaultdict(Outcomes)
        self.where: dict[str, tuple[str, str]] = {}
        self.bugs: dict[str, str] = {}
        self.problems: list[str] = []

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _prewarm_hypothesis()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            mark = item.get_closest_marker(MARKER)
            if mark is None:
                dropped.append(item)
                continue
            group, row = (*mark.args, "", "")[:2]
            if group not in GROUPS or not isinstance(row, str) or not row or mark.kwargs:
                self.problems.append(
                    f"{item.nodeid}: @pytest.mark.{MARKER}{mark.args!r} must name one of "
                    f"{', '.join(GROUPS)} and a row"
                )
                dropped.append(item)
                continue
            self.where[item.nodeid] = (group, row)
            kept.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        where = self.where.get(report.nodeid)
        if where is None:
            return
        outcome = self.rows[where]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if getattr(report, "wasxfail", None) is not None and report.skipped:
                outcome.xfailed += 1
                self.bugs[report.nodeid] = str(report.wasxfail)
            elif report.passed:
                outcome.passed += 1
            elif report.skipped:  # a platform skip: not tried here
                pass
            else:
                outcome.failed += 1
                self.problems.append(f"{report.nodeid} failed")


def _prewarm_hypothesis() -> None:
    """Import what hypothesis' pytest plugin imports at the end of every session.

    pytester's in-process runs put ``sys.modules`` back as it was before each run, so a
    module first imported inside a run is imported again in the next (1-3 s each here).
    Done once the session has started: imported earlier, the plugin could not be rewritten.
    """
    with contextlib.suppress(ImportError):
        import hypothesis.internal.observability  # noqa: F401


def run(paths: Sequence[str] = ()) -> Collector:
    """Run the marked tests under ``paths`` (default: the checkout's tests/)."""
    collector = Collector()
    code = pytest.main(
        [
            *(paths or [str(_common.ROOT / "tests")]),
            "-m",
            MARKER,
            "-q",
            "-n",
            "0",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(_common.ROOT),
        ],
        plugins=[collector],
    )
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise SystemExit(f"pytest stopped with exit status {code}")
    return collector


def table(collector: Collector) -> list[str]:
    lines = [
        "| group | what | tried | handled | known bug (xfail) | regressed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    totals: dict[str, Outcomes] = defaultdict(Outcomes)
    for group in GROUPS:
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bugs", action="store_true", help="also list the known-bug cases")
    parser.add_argument("paths", nargs="*", help="test files or folders (default: tests/)")
    args = parser.parse_args(argv)
    collector = run(args.paths)
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
