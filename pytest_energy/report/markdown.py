"""The ``--energy-markdown`` summary, for a pull-request comment or a CI job summary.

Regressions and over-budget tests first, then every test, then one verdict line. Node ids
are written as code spans, so ``<``, ``&``, ``*`` or ``_`` in them are shown as typed; ``|``
is escaped so it cannot split a table cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..results import EnergyResult, fmt_num
from .carbon import g_co2e
from .common import RunInfo, caveats, plural, safe_info, safe_results, severity, verdict_line
from .terminal import totals as totals_lines

TITLE = "### ⚡ pytest-energy"


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


def _change(result: EnergyResult) -> str:
    return "-" if result.change_pct is None else f"{result.change_pct:+.1f}%"


def _verdict(result: EnergyResult) -> str:
    marks = {"over budget": "❌ ", "regressed": "❌ ", "improved": "🟢 ", "new": "🆕 "}
    text = marks.get(result.verdict, "") + result.verdict
    return text + (" (low confidence)" if result.low_confidence else "")


def _meter(result: EnergyResult) -> str:
    m = result.measurement
    return code(m.meter) + (" (estimated)" if m.estimated else "")


def _table(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in body),
    ]


def problems_table(results: Sequence[EnergyResult]) -> list[str]:
    """Regressed and over-budget tests, most serious first; empty when there are none."""
    bad = sorted((r for r in results if r.regressed or r.over_budget), key=severity)
    if not bad:
        return []
    header = ["test", "kWh/1000", "baseline", "change", "budget", "verdict"]
    body = [
        [
            code(r.nodeid),
            fmt_num(r.kwh_per_1000),
            fmt_num(r.baseline_kwh_per_1000),
            _change(r),
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


def full_table(results: Sequence[EnergyResult], info: RunInfo) -> list[str]:
    with_tokens = any(r.measurement.joules_per_token is not None for r in results)
    with_images = any(r.measurement.joules_per_image is not None for r in results)
    with_carbon = info.carbon_intensity_g_per_kwh is not None
    header = ["test", "inferences", "kWh/1000", "J/inference"]
    header += ["J/token"] * with_tokens + ["J/image"] * with_images
    header += ["gCO2e/1000"] * with_carbon
    header += ["baseline", "change", "budget", "verdict", "meter", "hardware"]
    body = []
    for r in results:
        m = r.measurement
        row = [
            code(r.nodeid),
            str(m.inferences),
            fmt_num(m.kwh_per_1000),
            fmt_num(m.joules_per_inference),
        ]
        if with_tokens:
            row.append(fmt_num(m.joules_per_token))
        if with_images:
            row.append(fmt_num(m.joules_per_image))
        if with_carbon:
            row.append(fmt_num(g_co2e(m.kwh_per_1000, info.carbon_intensity_g_per_kwh)))
        row += [
            fmt_num(r.baseline_kwh_per_1000),
            _change(r),
            fmt_num(r.budget_kwh),
            _verdict(r),
            _meter(r),
            code(m.hardware),
        ]
        body.append(row)
    right = {
        i for i, name in enumerate(header) if name not in ("test", "verdict", "meter", "hardware")
    }
    return [f"#### All measured tests ({len(results)})", "", *_table(header, body, right)]


def notes(results: Sequence[EnergyResult]) -> list[str]:
    lines = [f"- {note.lstrip('* ')}" for note in caveats(results)]
    new = sum(1 for r in results if r.verdict == "new")
    if new:
        lines.append(
            f"- {plural(new, 'test')} without a baseline on this hardware: record one with "
            "`--energy-update-baseline`."
        )
    for r in results:
        if r.measurement.throttled_windows:
            reasons = sorted({x for w in r.measurement.windows for x in w.throttle})
            lines.append(
                f"- {code(r.nodeid)}: {plural(r.measurement.throttled_windows, 'window')} taken "
                f"while throttled ({', '.join(reasons)})."
            )
    return lines


def render(results: Sequence[EnergyResult], info: RunInfo) -> str:
    """The summary as Markdown text, ending with the one-line verdict."""
    results, info = safe_results(results), safe_info(info)
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
