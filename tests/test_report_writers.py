"""write_reports and the text every writer shares: each file written on its own, text that
UTF-8 cannot hold, the lock-wait note."""

from __future__ import annotations

import dataclasses
import json
from html import escape as html_escape
from pathlib import Path

import jsonschema
import pytest
import report_data as data

from pytest_energy.report import html, markdown, terminal, write_reports
from pytest_energy.report import json as json_report
from pytest_energy.report.common import RunInfo, safe_text
from pytest_energy.settings import Settings
from pytest_energy.verdict import Result


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "nodeid",
    ["t.py::test_a[\ud800x]", "t\udcff.py::test_a", "t.py::test_a[<b>&amp;\"'|`]"],
    ids=["surrogate-in-parametrize-id", "non-utf8-byte-in-file-name", "markup"],
)
@pytest.mark.reliability("bad input", "hostile values at the report writers")
def test_every_writer_survives_a_node_id_utf8_cannot_hold(nodeid: str) -> None:
    results = [data.result(nodeid, data.windows(0.002), baseline=data.entry(0.002))]
    info = RunInfo.create(results, intensity=data.FRANCE, now=data.NOW)
    shown = safe_text(nodeid)  # a lone surrogate becomes an escape such as \\ud800
    document = _strict(json_report.render(results, info))
    jsonschema.Draft202012Validator(json_report.schema()).validate(document)
    assert document["tests"][0]["nodeid"] == shown  # type: ignore[index]
    md = markdown.render(results, info)
    page = html.render(results, info)
    table = "\n".join(terminal.render(results))
    for text in (json_report.render(results, info), md, page, table):
        text.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate left in the text
    assert shown in table
    # the Markdown table cell escapes the pipe; the HTML page escapes markup
    assert shown.replace("|", "\\|") in md
    assert html_escape(shown) in page and "<b>" not in page


def test_surrogates_are_shown_as_escapes() -> None:
    assert safe_text("t\udcff.py") == "t\\xff.py"
    assert safe_text("a\ud800b") == "a\\ud800b"
    assert safe_text("café") == "café"
    results = [data.result("t\udcff.py::test_a", data.windows(0.002))]
    record = _strict(json_report.render(results, data.run_info()))
    assert record["tests"][0]["nodeid"] == "t\\xff.py::test_a"  # type: ignore[index]


def _settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(baseline_path=tmp_path / "energy-baseline.toml", **kwargs)  # type: ignore[arg-type]


@pytest.mark.reliability("fault", "one report writer fails")
def test_an_unwritable_report_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    s = _settings(
        tmp_path,
        json_path=tmp_path / "a-file" / "e.json",
        markdown_path=tmp_path / "e.md",
        html_path=tmp_path / "e.html",
    )
    lines, errors = write_reports(data.results(), s, data.run_info(), environ={})
    assert len(errors) == 1 and "a-file/e.json: cannot be written" in errors[0]
    assert "\n" not in errors[0]
    assert lines == [
        f"energy report: wrote Markdown to {tmp_path / 'e.md'}",
        f"energy report: wrote HTML to {tmp_path / 'e.html'}",
    ]
    assert (tmp_path / "e.md").exists() and (tmp_path / "e.html").exists()


@pytest.mark.reliability("fault", "one report writer fails")
def test_a_renderer_bug_is_one_line_and_the_others_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> str:
        raise TypeError("unsupported format string passed to Thing.__format__")

    monkeypatch.setattr(markdown, "render", broken)
    s = _settings(tmp_path, json_path=tmp_path / "e.json", markdown_path=tmp_path / "e.md")
    _, errors = write_reports(data.results(), s, data.run_info(), environ={})
    (line,) = errors
    assert f"energy report {tmp_path / 'e.md'}: the Markdown report could not be rendered" in line
    assert "TypeError" in line and "bug in pytest-energy" in line
    json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    assert not (tmp_path / "e.md").exists()


def test_a_failed_test_record_carries_its_outcome() -> None:
    base = data.results()[0]
    failed = dataclasses.replace(base, outcome="failed")
    passed = dataclasses.replace(data.results()[1], outcome="passed")
    document = _strict(json_report.render([failed, passed], data.run_info()))
    jsonschema.Draft202012Validator(json_report.schema()).validate(document)
    assert [t["outcome"] for t in document["tests"]] == ["failed", "passed"]  # type: ignore[index]


def test_the_run_records_its_settings() -> None:
    settings = Settings(tolerance_pct=7.5, alpha=0.05, run_spread_pct=0.5)
    info = RunInfo.create(data.results(), settings=settings, now=data.NOW)
    run = _strict(json_report.render(data.results(), info))["run"]  # type: ignore[index]
    assert (run["tolerance_pct"], run["alpha"], run["run_spread_pct"]) == (7.5, 0.05, 0.5)


def _waited(seconds: float, count: int = 8) -> Result:
    ws = tuple(dataclasses.replace(w, waited_s=seconds) for w in data.windows(0.002, count=count))
    return data.result("t.py::test_w", ws)


def test_no_lock_wait_note_for_scheduling_noise() -> None:
    lines = terminal.render([_waited(0.005)])  # 8 windows x 5 ms
    assert not any("device lock" in line for line in lines)


def test_lock_wait_note_for_a_real_queue() -> None:
    lines = terminal.render([_waited(0.5)])
    assert "8 window(s) waited 4.00 s in total for a device lock" in "\n".join(lines)
