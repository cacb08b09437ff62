"""The reporting side of a session, where the run is reported (the controller under xdist).
No pytest here.

:class:`Collector` gathers each test's results as they arrive on its report (from this
process or a worker), with the meter lines and notes that ride along, and writes the
baseline when asked. Each result is kept once, by test and check: a rerun's final attempt
replaces the earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings
    from .verdict import Result

#: The attribute of a test's report that carries its energy payload.
REPORT_ATTR = "pytest_energy"


def payload(
    results: list[Result], selection: str, notes: list[str], errors: list[str]
) -> dict[str, Any]:
    """What rides on a test's report: its results, and this process's meter line, notes and
    meter errors (each shown once in the summary)."""
    return {
        "results": [r.to_plain() for r in results],
        "selection": selection,
        "notes": list(notes),
        "errors": list(errors),
    }


@dataclass(frozen=True)
class Written:
    """What a baseline update wrote."""

    path: Path
    entries: int
    not_recorded: int
    """Tests that failed (on their own, over budget or regressed) and were not recorded."""


class Collector:
    """Results, meter lines and notes of the whole run."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], Result] = {}
        self.selections: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        """Why a meter could not start, once per distinct cause."""

    def collect(self, data: Mapping[str, Any]) -> None:
        """Take one test report's payload."""
        from .verdict import Result

        for plain in data.get("results", ()):
            result = Result.from_plain(plain)
            self.results[result.key] = result
        self.add_selection(data.get("selection", ""))
        for note in data.get("notes", ()):
            self.add_note(note)
        for error in data.get("errors", ()):
            self.add_error(error)

    def add_selection(self, line: str) -> None:
        if line and line not in self.selections:
            self.selections.append(line)

    def add_note(self, note: str) -> None:
        if note and note not in self.notes:
            self.notes.append(note)

    def add_error(self, error: str) -> None:
        if error and error not in self.errors:
            self.errors.append(error)

    def all(self) -> list[Result]:
        return list(self.results.values())

    def write_baseline(
        self, settings: Settings, *, on_wait: Callable[[str], None] | None = None
    ) -> Written | None:
        """Merge this run's recorded results into the baseline; None when none is recorded."""
        from . import baseline as baseline_io

        updates = {
            (r.record.hardware, r.nodeid): baseline_io.Update(
                r.record, replace_history=r.baseline_update == "replace"
            )
            for r in self.results.values()
            if r.baseline_update
        }
        not_recorded = sum(
            1 for r in self.results.values() if r.verdict.check != "compare" and not r.passed
        )
        if not updates:
            return Written(settings.baseline_path, 0, not_recorded) if not_recorded else None
        baseline_io.update(
            settings.baseline_path,
            updates,
            history=settings.history,
            lock_timeout_s=settings.lock_timeout_s,
            on_wait=on_wait,
        )
        return Written(settings.baseline_path, len(updates), not_recorded)
