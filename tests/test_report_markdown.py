"""The Markdown summary for pull requests and CI job summaries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import report_data as data

from pytest_energy.report import markdown
from pytest_energy.report.common import RunInfo, verdict_line

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def render(**kwargs: object) -> str:
    return markdown.render(data.results(), data.run_info(**kwargs))  # type: ignore[arg-type]


def table_rows(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_order_problems_then_full_table_then_verdict() -> None:
    text = render()
    problems = text.index("#### Regressions and over budget (2)")
    full = text.index("#### All energy results (8)")
    assert problems < full
    assert text.rstrip().splitlines()[-1] == (
        "**❌ 1 regression, 1 over budget in 8 tests (7 measured, 1 estimated)**"
    )


def test_problems_table_lists_only_problems_most_serious_first() -> None:
    rows = table_rows(render(), "#### Regressions and over budget")
    assert len(rows) == 2 + 2  # header, alignment, two tests
    assert "`tests/test_whisper.py::test_transcribe`" in rows[2]
    assert "❌ over budget" in rows[2] and "| 0.05 |" in rows[2]
    assert "`tests/test_bert.py::test_embed[bs=16]`" in rows[3]
    assert "+20.0%" in rows[3] and "❌ regressed" in rows[3]


def test_full_table_has_every_test_and_the_optional_columns() -> None:
    rows = table_rows(render(), "#### All energy results")
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == [
        "test",
        "inferences",
        "kWh/1000",
        "J/inference",
        "J/token",
        "J/image",
        "gCO2e/1000",
        "baseline",
        "change",
        "budget",
        "verdict",
        "meter",
        "hardware",
    ]
    assert len(rows) == 2 + len(data.results())
    assert rows[1].startswith("| --- | ---: |")
    for row in rows:
        # Escaped pipes in node ids never add a column.
        assert len(UNESCAPED_PIPE.findall(row)) == len(header) + 1, row
    cpu = next(r for r in rows if "test_tiny_mlp" in r)
    assert "`codecarbon` (estimated)" in cpu and "ok (low confidence)" in cpu
    new = next(r for r in rows if "test_classify_new" in r)
    assert "🆕 new" in new


def test_columns_appear_only_when_used() -> None:
    plain = [r for r in data.results() if r.record.tokens is None and r.record.images is None]
    info = RunInfo.create(plain, now=data.NOW)
    header = table_rows(markdown.render(plain, info), "#### All energy results")[0]
    for absent in ("J/token", "J/image", "gCO2e/1000"):
        assert absent not in header


def test_node_ids_are_code_spans_safe_in_tables() -> None:
    text = render()
    assert "``tests/test_odd.py::test_escape[<b>&\"'</b>-&amp;-café-µs→\\|x`y]``" in text
    assert markdown.code("a|b") == "`a\\|b`"
    assert markdown.code("a`b") == "``a`b``"
    assert markdown.code("`edge`") == "`` `edge` ``"
    assert markdown.code("two\nlines") == "`two lines`"


def test_totals_and_notes() -> None:
    text = render()
    assert (
        "total: 398,779 J (0.1108 kWh) in 59 windows of 8 tests (7 measured, 1 estimated)  \n"
        in text
    )
    assert (
        "carbon: 6.208 gCO2e at 56.04 gCO2e/kWh, CodeCarbon offline data for FRA (France, 2023)"
        in text
    )
    assert "equivalent: 5.035 smartphone charges (0.022 kWh per charge)" in text
    assert "- low confidence: too few windows" in text
    assert "- estimated: figures are estimated" in text
    assert "- 1 test without a baseline on this hardware" in text
    assert (
        "`tests/test_diffusion.py::test_sdxl[steps=30]`: 2 windows taken while throttled "
        "(power cap, thermal)." in text
    )


def test_without_carbon_there_is_no_carbon_line_or_column() -> None:
    text = render(carbon=False)
    assert "gCO2e" not in text
    assert "smartphone charges" in text


def test_phone_charge_figure_is_configurable() -> None:
    text = render(phone_charge_kwh=0.012)
    assert "(0.012 kWh per charge)" in text


def test_all_good_run() -> None:
    good = [r for r in data.results() if r.verdict.status == "ok" and not r.record.estimated]
    text = markdown.render(good, RunInfo.create(good, now=data.NOW))
    assert "Regressions and over budget" not in text
    assert text.rstrip().endswith("**✅ 3 measured tests within budget and baseline**")


def test_empty_run() -> None:
    text = markdown.render([], RunInfo.create([], now=data.NOW))
    assert "All energy results" not in text
    assert text.rstrip().endswith("**No energy measurements in this run.**")


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ({"regressed"}, "❌ 1 regression in 1 measured test"),
        ({"over budget"}, "❌ 1 over budget in 1 measured test"),
        (
            {"ok", "improved", "new"},
            "✅ 3 measured tests within budget and baseline (1 improved, 1 new without a baseline)",
        ),
    ],
)
def test_verdict_line(verdicts: set[str], expected: str) -> None:
    chosen = [r for r in data.results() if r.verdict.status in verdicts and not r.record.estimated]
    if "ok" in verdicts:
        chosen = [r for r in chosen if r.verdict.status != "ok"] + [
            r for r in chosen if r.verdict.status == "ok"
        ][:1]
    assert verdict_line(chosen) == expected
    assert verdict_line(chosen, icon=False) == expected[2:]


def test_append_step_summary(tmp_path: Path) -> None:
    path = tmp_path / "step_summary.md"
    markdown.append_step_summary(path, "first")
    markdown.append_step_summary(path, "second\n")
    assert path.read_text(encoding="utf-8") == "first\n\nsecond\n"


def test_the_example_in_the_docs_is_what_the_renderer_writes() -> None:
    docs = Path(__file__).parent.parent / "docs" / "reports.md"
    if not docs.exists():
        pytest.skip("docs/ is not part of this checkout")
    text = docs.read_text(encoding="utf-8")
    block = text.split("<!-- markdown-example:start -->", 1)[1].split(
        "<!-- markdown-example:end -->"
    )[0]
    example = [line for line in block.splitlines() if line and not line.startswith("```")]
    rendered = render().splitlines()
    assert example, "the example block in docs/reports.md is empty"
    for line in example:
        assert line in rendered, (
            f"docs/reports.md shows a line the renderer no longer writes: {line}"
        )
    assert example[-1] == rendered[-1]
