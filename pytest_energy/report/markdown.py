"""The ``--energy-markdown`` summary, for a pull-request comment or a CI job summary.

Failing verdicts first (regressions, budgets, costlier ``energy.compare`` candidates), then
every result, then one verdict line. Node ids are written as code spans, so ``<``, ``&``,
``*`` or ``_`` in them are shown as typed; ``|`` is escaped so it cannot split a table cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..verdict import IMPROVED, NEW, OVER_BUDGET, REGRESSED, Result, most_serious_first
from .carbon import g_co2e
from .common import (
    Row,
    RunInfo,
    caveats,
    fmt_num,
    plural,
    present,
    row,
    rows,
    safe_info,
    verdict_line,
)
from .terminal import OPTIONAL_COLUMNS
from .terminal import totals as totals_lines

TITLE = "### ⚡ pytest-energy"
_MARKS = {OVER_BUDGET: "❌ ", REGRESSED: "❌ ", IMPROVED: "🟢 ", NEW: "🆕 "}


def code(text: str) -> str:
    """``text`` as a Markdown code span that is safe inside a table cell."""
    flat = " ".join(text.splitlines()).replace("|", "\\|")
    longest = run = 0
    for char in flat:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _verdict(r: Row) -> str:
    text = _MARKS.get(r.verdict, "") + r.verdict
    return text + (" (low confidence)" if r.low_confidence else "")


def _test(r: Row) -> str:
    if r.compare:
        return code(r.test.removesuffix(" (compare)")) + " (energy.compare)"
    return code(r.test)


def _table(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


def problems_table(results: Sequence[Result]) -> list[str]:
    """Every failing verdict, most serious first; empty when there is none."""
    bad = [row(r) for r in most_serious_first(results) if r.verdict.failed]
    if not bad:
        return []
    header = ["test", "kWh/1000", "baseline", "change", "budget", "verdict"]
    body = [
        [
            _test(r),
            fmt_num(r.kwh_per_1000),
            fmt_num(r.reference_kwh_per_1000),
            r.change_text,
            fmt_num(r.budget_kwh),
            _verdict(r),
        ]
        for r in bad
    ]
    return [
        f"#### Regressions and over budget ({len(bad)})",
        "",
        *_table(header, body, {1, 2, 3, 4}),
    ]


def full_table(results: Sequence[Result], info: RunInfo) -> list[str]:
    body_rows = rows(results)
    shown = [(title, name) for title, name in OPTIONAL_COLUMNS if present(body_rows, name)]
    with_carbon = info.carbon_intensity_g_per_kwh is not None
    header = ["test", "inferences", "kWh/1000", "J/inference", *(t for t, _ in shown)]
    header += ["gCO2e/1000"] * with_carbon
    header += ["baseline", "change", "budget", "verdict", "meter", "hardware"]
    body = []
    for r in body_rows:
        cells = [_test(r), str(r.inferences), fmt_num(r.kwh_per_1000)]
        cells.append(fmt_num(r.joules_per_inference))
        cells += [fmt_num(getattr(r, name)) for _, name in shown]
        if with_carbon:
            cells.append(fmt_num(g_co2e(r.kwh_per_1000, info.carbon_intensity_g_per_kwh)))
        cells += [
            fmt_num(r.reference_kwh_per_1000),
            r.change_text,
            fmt_num(r.budget_kwh),
            _verdict(r),
            f"{code(r.meter)} ({r.figures})",
            code(r.hardware),
        ]
        body.append(cells)
    right = {
        i for i, name in enumerate(header) if name not in ("test", "verdict", "meter", "hardware")
    }
    return [f"#### All energy results ({len(results)})", "", *_table(header, body, right)]


def notes(results: Sequence[Result]) -> list[str]:
    lines = [f"- {note.lstrip('* ')}" for note in caveats(results)]
    new = sum(1 for r in results if r.verdict.status == NEW)
    if new:
        lines.append(
            f"- {plural(new, 'test')} without a baseline on this hardware: record one with "
            "`--energy-update-baseline`."
        )
    for r in results:
        if r.record.throttled_windows:
            lines.append(
                f"- {code(r.nodeid)}: {plural(r.record.throttled_windows, 'window')} taken "
                f"while throttled ({', '.join(r.record.throttle_reasons)})."
            )
    return lines


def render(results: Sequence[Result], info: RunInfo) -> str:
    """The summary as Markdown text, ending with the one-line verdict."""
    info = safe_info(info)
    lines = [TITLE, ""]
    if results:
        problems = problems_table(results)
        if problems:
            lines += [*problems, ""]
        lines += [*full_table(results, info), ""]
        total = totals_lines(
            results,
            info.carbon_intensity_g_per_kwh,
            info.phone_charge_kwh,
            source=info.carbon_source or "",
        )
        lines += [f"{line}  " for line in total] + [""]
        extra = notes(results)
        if extra:
            lines += [*extra, ""]
    hardware = ", ".join(code(h) for h in info.hardware) or "-"
    lines += [
        f"<sub>pytest-energy {info.version} · {info.time} · hardware: {hardware}</sub>",
        "",
        f"**{verdict_line(results)}**",
    ]
    return "\n".join(lines) + "\n"


def append_step_summary(path: Path, text: str) -> None:
    """Append ``text`` to a GitHub Actions job summary file (``$GITHUB_STEP_SUMMARY``)."""
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        if handle.tell() > 0:
            handle.write("\n")
        handle.write(text if text.endswith("\n") else text + "\n")
