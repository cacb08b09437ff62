"""The ``energy`` section of pytest's terminal summary, as (line, colour) pairs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ..verdict import NEW, Result
from . import terminal
from .common import plural

if TYPE_CHECKING:
    from ..collector import Written
    from ..settings import Settings
    from .carbon import CarbonIntensity


def _outlying_runs(results: Sequence[Result]) -> Iterator[str]:
    for r in results:
        c = r.verdict.comparison
        reference = r.verdict.reference
        indices = getattr(c, "outlying_runs", ()) if c is not None else ()
        if not indices or reference is None:
            continue
        for index in indices:
            if 0 <= index < len(reference.runs):
                run = reference.runs[index]
                when = run.date or "an unknown date"
                yield (
                    f"pytest-energy: {r.nodeid} on {r.record.hardware}: the baseline run of "
                    f"{when} ({run.kwh_per_1000:.4g} kWh/1000) lies far from the entry's other "
                    "runs and was set aside; check the entry's history in the baseline file"
                )


def lines(
    results: Sequence[Result],
    *,
    settings: Settings,
    selections: Sequence[str],
    notes: Sequence[str],
    written: Written | None,
    report_lines: Sequence[str],
    errors: Sequence[str],
    carbon: CarbonIntensity | None,
) -> Iterator[tuple[str, str]]:
    """Every line of the summary section, with its colour ("" for none)."""
    for selection in selections:
        yield f"pytest-energy: {selection}", ""
    if settings.report:
        for line in terminal.render(results, updating=settings.update_baseline):
            yield line, ""
        for line in terminal.totals(
            results,
            carbon.g_per_kwh if carbon else None,
            settings.phone_charge_kwh,
            source=carbon.source if carbon else "",
        ):
            yield line, ""
    ungated = [r for r in results if r.verdict.status == NEW and r.passed]
    if ungated and not settings.strict:
        them = "it" if len(ungated) == 1 else "them"
        advice = (
            f"this update records {them}"
            if settings.update_baseline
            else f"record {them} with --energy-update-baseline, or use --energy-strict to fail "
            "such tests"
        )
        yield (
            (
                f"pytest-energy: {plural(len(ungated), 'energy test')} had no comparable baseline "
                f"entry and {'was' if len(ungated) == 1 else 'were'} not gated; {advice}"
            ),
            "",
        )
    for line in _outlying_runs(results):
        yield line, "yellow"
    if written is not None:
        text = (
            f"energy baseline: wrote {plural(written.entries, 'entry', 'entries')} to "
            f"{written.path}"
        )
        if written.not_recorded:
            text += (
                f"; {plural(written.not_recorded, 'failed test')} "
                f"{'was' if written.not_recorded == 1 else 'were'} not recorded"
            )
        yield text, ""
    for line in report_lines:
        yield line, ""
    for note in notes:
        yield f"WARNING: pytest-energy: {note}", "yellow"
    for error in errors:
        yield f"ERROR: {error}", "red"
