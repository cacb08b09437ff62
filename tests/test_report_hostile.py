"""Writers against hostile values: numpy scalars, inf/NaN, lone surrogates, non-UTF-8 file
names. Every report must still be written, JSON must stay strict, and one failing writer
must not stop the others (issue 14, item 4)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import report_data as data

from pytest_energy.measure import Window
from pytest_energy.report import ReportError, ReportsFailed, html, markdown, terminal, write_all
from pytest_energy.report import json as json_report
from pytest_energy.report.common import RunInfo, safe_text
from pytest_energy.results import EnergyResult
from pytest_energy.settings import Settings


def _windows(transform: Callable[[Window], Window]) -> tuple[Window, ...]:
    return tuple(transform(w) for w in data.windows(0.002))


def _float32(w: Window) -> Window:
    return dataclasses.replace(
        w,
        energy_j=np.float32(w.energy_j),
        duration_s=np.float32(w.duration_s),
        domains_j={"gpu0": np.float32(w.energy_j)},
    )


def _infinite(w: Window) -> Window:
    return dataclasses.replace(w, energy_j=float("inf"), domains_j={"gpu0": float("inf")})


def _nan(w: Window) -> Window:
    return dataclasses.replace(w, energy_j=float("nan"), domains_j={"gpu0": float("nan")})


def _same(w: Window) -> Window:
    return w


CASES = {
    "numpy-float32-readings": dict(ws=_windows(_float32), baseline=True),
    "infinite-energy": dict(ws=_windows(_infinite), baseline=True),
    "nan-energy": dict(ws=_windows(_nan)),
    "surrogate-in-hardware": dict(ws=_windows(_same), hardware="rig-\udce9"),
    "surrogate-in-parametrize-id": dict(ws=_windows(_same), nodeid="t.py::test_a[\ud800x]"),
    "non-utf8-byte-in-file-name": dict(ws=_windows(_same), nodeid="t\udcff.py::test_a"),
}


def hostile(case: str) -> list[EnergyResult]:
    spec = dict(CASES[case])
    nodeid = str(spec.pop("nodeid", "t.py::test_a"))
    baseline = data.entry(0.002) if spec.pop("baseline", False) else None
    return [data.result(nodeid, baseline=baseline, **spec)]  # type: ignore[arg-type]


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_writer_survives(case: str) -> None:
    results = hostile(case)
    info = RunInfo.create(results, intensity=data.FRANCE, now=data.NOW)
    document = _strict(json_report.render(results, info))
    assert isinstance(document, dict)
    if case not in ("infinite-energy", "nan-energy"):  # those samples are null, not numbers
        jsonschema.Draft202012Validator(json_report.schema()).validate(document)
    texts = [
        markdown.render(results, info),
        html.render(results, info),
        "\n".join(terminal.render(results)),
        "\n".join(terminal.totals(results, 56.0, 0.022)),
    ]
    for text in texts:
        text.encode("utf-8")  # no lone surrogate left


def test_float32_figures_are_plain_floats_in_json() -> None:
    results = hostile("numpy-float32-readings")
    record = _strict(json_report.render(results, data.run_info()))["tests"][0]  # type: ignore[index]
    assert record["samples"] == pytest.approx([0.002 * f for f in data.WOBBLE], rel=1e-6)
    assert isinstance(record["energy_j"], float)


def test_surrogates_are_shown_as_escapes() -> None:
    assert safe_text("t\udcff.py") == "t\\xff.py"
    assert safe_text("a\ud800b") == "a\\ud800b"
    assert safe_text("café") == "café"
    record = _strict(json_report.render(hostile("non-utf8-byte-in-file-name"), data.run_info()))
    assert record["tests"][0]["nodeid"] == "t\\xff.py::test_a"  # type: ignore[index]


def test_infinite_values_are_null() -> None:
    record = _strict(json_report.render(hostile("infinite-energy"), data.run_info()))
    test = record["tests"][0]  # type: ignore[index]
    assert test["energy_j"] is None and test["kwh_per_1000"] is None
    assert test["domains_j"] == {"gpu0": None}


# -- one failing writer ----------------------------------------------------------------------


def _settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(baseline_path=tmp_path / "energy-baseline.toml", **kwargs)  # type: ignore[arg-type]


def test_an_unwritable_report_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    s = _settings(
        tmp_path,
        json_path=tmp_path / "a-file" / "e.json",
        markdown_path=tmp_path / "e.md",
        html_path=tmp_path / "e.html",
    )
    with pytest.raises(ReportsFailed) as excinfo:
        write_all(data.results(), s, data.run_info(), environ={})
    assert isinstance(excinfo.value, ReportError)
    lines = str(excinfo.value).splitlines()
    assert len(lines) == 1 and "a-file/e.json: cannot be written" in lines[0]
    assert excinfo.value.written == [
        f"energy report: wrote Markdown to {tmp_path / 'e.md'}",
        f"energy report: wrote HTML to {tmp_path / 'e.html'}",
    ]
    assert (tmp_path / "e.md").exists() and (tmp_path / "e.html").exists()


def test_a_renderer_bug_is_one_line_and_the_others_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> str:
        raise TypeError("unsupported format string passed to Thing.__format__")

    monkeypatch.setattr(markdown, "render", broken)
    s = _settings(tmp_path, json_path=tmp_path / "e.json", markdown_path=tmp_path / "e.md")
    with pytest.raises(ReportError) as excinfo:
        write_all(data.results(), s, data.run_info(), environ={})
    (line,) = str(excinfo.value).splitlines()
    assert f"energy report {tmp_path / 'e.md'}: the Markdown report could not be rendered" in line
    assert "TypeError" in line and "bug in pytest-energy" in line
    json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    assert not (tmp_path / "e.md").exists()


# -- outcome and tolerance in the JSON report (items 6 and 10) ----------------------------------


@dataclasses.dataclass(frozen=True)
class _WithOutcome(EnergyResult):
    outcome: str = ""


def test_a_failed_test_record_carries_its_outcome() -> None:
    base = data.results()[0]
    failed = _WithOutcome(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    failed = dataclasses.replace(failed, outcome="failed")
    document = _strict(json_report.render([failed, data.results()[1]], data.run_info()))
    jsonschema.Draft202012Validator(json_report.schema()).validate(document)
    assert [t["outcome"] for t in document["tests"]] == ["failed", None]  # type: ignore[index]


def test_the_run_records_its_tolerance() -> None:
    info = RunInfo.create(data.results(), now=data.NOW, tolerance_pct=7.5, alpha=0.05)
    run = _strict(json_report.render(data.results(), info))["run"]  # type: ignore[index]
    assert run["tolerance_pct"] == 7.5 and run["alpha"] == 0.05


# -- the lock-wait note (issue 14, item 1: it fired at 1 ms) ------------------------------------


def _waited(seconds: float, count: int = 8) -> EnergyResult:
    ws = tuple(dataclasses.replace(w, waited_s=seconds) for w in data.windows(0.002, count=count))
    return data.result("t.py::test_w", ws)


def test_no_lock_wait_note_for_scheduling_noise() -> None:
    lines = terminal.render([_waited(0.005)])  # 8 windows x 5 ms
    assert not any("device lock" in line for line in lines)


def test_lock_wait_note_for_a_real_queue() -> None:
    lines = terminal.render([_waited(0.5)])
    assert "8 window(s) waited 4.00 s in total for a device lock" in "\n".join(lines)
