"""The JSON report, its published schema, reading it back, and write_reports."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import report_data as data

from pytest_energy import __version__
from pytest_energy.record import Record
from pytest_energy.report import ReportError, RunInfo, write_reports
from pytest_energy.report import json as json_report
from pytest_energy.report.json import load_report, parse_report
from pytest_energy.settings import Settings


def write_all(results: object, s: Settings, info: RunInfo, *, environ: dict[str, str]) -> list[str]:
    lines, errors = write_reports(results, s, info, environ=environ)  # type: ignore[arg-type]
    if errors:
        raise ReportError("\n".join(errors))
    return lines


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json_report.schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def rendered(carbon: bool = True) -> dict:
    return json.loads(json_report.render(data.results(), data.run_info(carbon=carbon)))


def by_id(document: dict) -> dict[str, dict]:
    return {t["nodeid"]: t for t in document["tests"]}


def test_schema_is_valid_draft_2020_12_and_shipped_in_the_package() -> None:
    schema = json_report.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    shipped = resources.files("pytest_energy.report").joinpath("schema.json")
    assert json.loads(shipped.read_text(encoding="utf-8")) == schema


@pytest.mark.parametrize("carbon", [True, False])
def test_report_validates_against_schema(carbon: bool) -> None:
    document = rendered(carbon)
    errors = sorted(validator().iter_errors(document), key=str)
    assert not errors, errors
    assert document["format"] == "pytest-energy-report"
    assert document["schema_version"] == 2


def test_empty_run_validates() -> None:
    info = RunInfo.create([], now=data.NOW)
    document = json.loads(json_report.render([], info))
    validator().validate(document)
    assert document["tests"] == []
    assert document["totals"]["tests"] == 0
    assert document["totals"]["summary"] == "No energy measurements in this run."


def test_schema_rejects_a_broken_report() -> None:
    document = rendered()
    del document["tests"][0]["kwh_per_1000"]
    document["tests"][1]["verdict"] = "fine"
    assert len(list(validator().iter_errors(document))) == 2


def test_run_header() -> None:
    run = rendered()["run"]
    assert run == {
        "time": "2025-01-15T12:00:00+00:00",
        "pytest_energy_version": __version__,
        "meters": ["codecarbon", "nvml"],
        "hardware": [data.CPU, data.GPU],
        "country": "FRA",
        "carbon_intensity_g_per_kwh": 56.039,
        "carbon_intensity_source": "CodeCarbon offline data for FRA (France, 2023)",
        "phone_charge_kwh": 0.022,
        "tolerance_pct": None,  # not given: each meter kind's default
        "alpha": data.DEFAULT_ALPHA,
        "run_spread_pct": None,
    }


def test_records_carry_the_verdicts_and_figures() -> None:
    tests = by_id(rendered())
    regressed = tests["tests/test_bert.py::test_embed[bs=16]"]
    assert regressed["verdict"] == "regressed"
    assert regressed["kwh_per_1000"] == pytest.approx(0.0024)
    assert regressed["reference"]["kwh_per_1000"] == pytest.approx(0.0020)
    assert regressed["change_pct"] == pytest.approx(20.0)
    assert len(regressed["windows"]) == len(regressed["samples"]) == 8
    assert regressed["check"] == "baseline" and regressed["figures"] == "measured"
    assert regressed["counts"] == "given"
    assert regressed["comparison"]["status"] == "regressed"
    assert regressed["comparison"]["p_regressed"] < 0.01
    assert regressed["joules_per_inference"] == pytest.approx(0.0024 * 3.6e6 / 1000)
    assert regressed["g_co2e_per_1000"] == pytest.approx(0.0024 * 56.039)

    assert tests["tests/test_bert.py::test_embed[bs=64]"]["verdict"] == "improved"

    new = tests["tests/test_vit.py::test_classify_new"]
    assert new["verdict"] == "new"
    assert new["reference"] is None
    assert new["change_pct"] is None
    assert new["comparison"] is None
    assert "no baseline entry" in new["note"]

    over = tests["tests/test_whisper.py::test_transcribe"]
    assert over["verdict"] == "over budget"
    assert over["budget_kwh"] == 0.05

    estimated = tests["tests/test_cpu.py::test_tiny_mlp"]
    assert estimated["estimated"] is True and estimated["figures"] == "estimated"
    assert estimated["meter"] == "codecarbon"
    assert estimated["low_confidence"] is True

    tokens = tests["tests/test_llm.py::test_generate[llama-3-8b]"]
    assert tokens["tokens"] == 8 * 256 * 8
    assert tokens["joules_per_token"] == pytest.approx(0.41 * 3600 * 8 / (8 * 256))
    assert tokens["images"] is None and tokens["joules_per_image"] is None

    images = tests["tests/test_diffusion.py::test_sdxl[steps=30]"]
    assert images["images"] == 4 * 8
    assert images["joules_per_image"] == pytest.approx(2.2 * 3600 * 4 / 4)
    assert images["throttled_windows"] == 2
    assert images["throttle_reasons"] == ["power cap", "thermal"]

    assert tests[data.WEIRD_NODEID]["verdict"] == "ok"


def test_carbon_is_null_without_an_intensity() -> None:
    document = rendered(carbon=False)
    assert document["run"]["carbon_intensity_g_per_kwh"] is None
    assert document["run"]["carbon_intensity_source"] is None
    assert document["totals"]["g_co2e"] is None
    assert all(t["g_co2e_per_1000"] is None for t in document["tests"])


def test_totals() -> None:
    totals = rendered()["totals"]
    results = data.results()
    energy = math.fsum(r.record.energy_j for r in results)
    assert totals["energy_j"] == pytest.approx(energy)
    assert totals["kwh"] == pytest.approx(energy / 3.6e6)
    assert totals["g_co2e"] == pytest.approx(energy / 3.6e6 * 56.039)
    assert totals["phone_charges"] == pytest.approx(energy / 3.6e6 / 0.022)
    assert totals["windows"] == sum(len(r.record.windows) for r in results)
    assert (totals["regressed"], totals["over_budget"], totals["compare_regressed"]) == (1, 1, 0)
    assert totals["figures"] == "7 measured, 1 estimated"
    assert (
        totals["summary"] == "❌ 1 regression, 1 over budget in 8 tests (7 measured, 1 estimated)"
    )


def test_unicode_and_markup_in_node_ids_survive() -> None:
    text = json_report.render(data.results(), data.run_info())
    assert "café-µs→" in text  # written as UTF-8, not \u escapes
    assert data.WEIRD_NODEID in by_id(json.loads(text))


def test_infinite_change_is_written_as_null() -> None:
    zero = data.entry(0.0, count=2)
    result = data.result("tests/test_z.py::test_zero", data.windows(0.001), baseline=zero)
    assert math.isinf(result.verdict.change_pct or 0.0)
    info = RunInfo.create([result], now=data.NOW)
    document = json.loads(json_report.render([result], info))
    validator().validate(document)
    assert document["tests"][0]["change_pct"] is None
    assert document["tests"][0]["comparison"]["ratio"] is None
    assert document["tests"][0]["verdict"] == "regressed"


def test_run_info_create_takes_meters_and_hardware_from_results() -> None:
    info = RunInfo.create(data.results())
    assert info.meters == ("codecarbon", "nvml")
    assert info.hardware == (data.CPU, data.GPU)
    assert info.carbon_intensity_g_per_kwh is None and info.carbon_source is None
    assert "T" in info.time and info.time.endswith("+00:00")


# -- load_report --------------------------------------------------------------------------


def test_load_report_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "energy.json"
    path.write_text(json_report.render(data.results(), data.run_info()), encoding="utf-8")
    report = load_report(path)
    assert report.version == __version__
    assert report.run["country"] == "FRA"
    reported = {r.record.nodeid: r for r in report.results}
    for result in data.results():
        back = reported[result.nodeid]
        assert back.record == result.record  # the one record, read back whole
        assert back.verdict == result.verdict.status
        assert back.check == "baseline" and back.outcome == result.outcome


def _broken(document: dict, **changes: object) -> str:
    document = json.loads(json.dumps(document))
    for key, value in changes.items():
        document["tests"][0][key] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "is not valid JSON (Expecting property name"),
        ("[1, 2]", 'is not a pytest-energy report (it has no "format": "pytest-energy-report")'),
        ('{"format": "pytest-energy-report"}', "has no valid schema_version"),
        (
            '{"format": "pytest-energy-report", "schema_version": 99, "run": {}, "tests": []}',
            "has schema_version 99, newer than this pytest-energy understands (2). Upgrade",
        ),
        (
            '{"format": "pytest-energy-report", "schema_version": 1, "tests": []}',
            'has no "run" object',
        ),
        (
            '{"format": "pytest-energy-report", "schema_version": 1, "run": {}}',
            'has no "tests" list',
        ),
    ],
)
def test_parse_report_errors(text: str, expected: str) -> None:
    with pytest.raises(ReportError) as excinfo:
        parse_report(text, Path("r.json"))
    assert str(excinfo.value).startswith("energy report r.json: ")
    assert expected in str(excinfo.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"samples": []}, "needs a non-empty list of samples"),
        ({"samples": [0.1, -1.0]}, "has a sample that is negative, NaN or infinite: -1.0"),
        ({"samples": [0.1, "x"]}, "has a sample that is not a number: 'x'"),
        ({"hardware": None}, "needs a hardware"),
        ({"estimated": "no"}, "needs estimated = true or false"),
        ({"inferences": -3}, "has inferences = -3"),
        ({"tokens": 1.5}, "has tokens = 1.5"),
        ({"verdict": 3}, "has verdict = 3"),
        ({"windows": [{"bad": 1}]}, "has a window that cannot be read"),
        ({"nodeid": ""}, "tests[0] needs a nodeid"),
    ],
)
def test_parse_report_rejects_bad_records(changes: dict, expected: str) -> None:
    text = _broken(rendered(), **changes)
    with pytest.raises(ReportError, match="tests\\[0\\]") as excinfo:
        parse_report(text, Path("r.json"))
    assert expected in str(excinfo.value)
    assert "--energy-json" in str(excinfo.value)


def test_parse_report_rejects_duplicates() -> None:
    document = rendered()
    document["tests"].append(document["tests"][0])
    with pytest.raises(
        ReportError, match=r"lists tests/test_bert.py::test_embed\[bs=16\] on .* twice"
    ):
        parse_report(json.dumps(document), Path("r.json"))


def test_load_report_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"missing\.json: does not exist\. Check the path"):
        load_report(tmp_path / "missing.json")
    with pytest.raises(ReportError, match="is a directory"):
        load_report(tmp_path)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ReportError, match="is not UTF-8 text"):
        load_report(binary)


# -- write_all ----------------------------------------------------------------------------


def settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(baseline_path=tmp_path / "energy-baseline.toml", **kwargs)  # type: ignore[arg-type]


def test_write_all_writes_each_requested_file(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        json_path=tmp_path / "e.json",
        markdown_path=tmp_path / "e.md",
        html_path=tmp_path / "e.html",
    )
    lines = write_all(data.results(), s, data.run_info(), environ={})
    assert lines == [
        f"energy report: wrote JSON to {tmp_path / 'e.json'}",
        f"energy report: wrote Markdown to {tmp_path / 'e.md'}",
        f"energy report: wrote HTML to {tmp_path / 'e.html'}",
    ]
    validator().validate(json.loads((tmp_path / "e.json").read_text(encoding="utf-8")))
    assert (tmp_path / "e.md").read_text(encoding="utf-8").startswith("### ⚡ pytest-energy")
    assert (tmp_path / "e.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.html", "e.json", "e.md"]


def test_write_all_writes_nothing_unless_asked(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    assert write_all(data.results(), settings(tmp_path), data.run_info(), environ={}) == []
    # --energy-report off: the step summary is left alone.
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert write_all(data.results(), settings(tmp_path), data.run_info(), environ=env) == []
    assert list(tmp_path.iterdir()) == []


def test_write_all_appends_the_github_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# Earlier step\n", encoding="utf-8")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    lines = write_all(data.results(), settings(tmp_path, report=True), data.run_info(), environ=env)
    assert lines == ["energy report: added the summary to $GITHUB_STEP_SUMMARY"]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# Earlier step\n\n### ⚡ pytest-energy\n")
    assert text.rstrip().endswith(
        "**❌ 1 regression, 1 over budget in 8 tests (7 measured, 1 estimated)**"
    )


def test_write_all_replaces_an_existing_report_whole(tmp_path: Path) -> None:
    target = tmp_path / "e.json"
    target.write_text("old and much longer content " * 1000, encoding="utf-8")
    write_all(data.results(), settings(tmp_path, json_path=target), data.run_info(), environ={})
    json.loads(target.read_text(encoding="utf-8"))
    assert [p.name for p in tmp_path.iterdir()] == ["e.json"]


def test_write_all_creates_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "energy" / "e.json"
    lines = write_all(
        data.results(), settings(tmp_path, json_path=target), data.run_info(), environ={}
    )
    assert lines == [f"energy report: wrote JSON to {target}"]
    assert len(json.loads(target.read_text(encoding="utf-8"))["tests"]) == len(data.results())


def test_write_all_names_the_file_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "e.json"
    with pytest.raises(ReportError, match=r"a-file/e\.json: cannot be written") as excinfo:
        write_all(data.results(), settings(tmp_path, json_path=target), data.run_info(), environ={})
    assert "choose another path" in str(excinfo.value)
    assert (tmp_path / "a-file").read_text() == ""


def test_write_all_skips_the_step_summary_without_measurements(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    s = settings(tmp_path, report=True, json_path=tmp_path / "e.json")
    lines = write_all([], s, RunInfo.create([], now=data.NOW), environ=env)
    assert lines == [f"energy report: wrote JSON to {tmp_path / 'e.json'}"]
    assert not summary.exists()
    assert json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))["tests"] == []


def test_a_report_of_0_2_is_still_read_back() -> None:
    """Schema 1 (0.2): ``windows`` was a count and there were no runs or check."""
    text = json.dumps(
        {
            "format": "pytest-energy-report",
            "schema_version": 1,
            "run": {"pytest_energy_version": "0.1.0"},
            "tests": [
                {"nodeid": "t", "verdict": "ok", "outcome": "passed", "inferences": 4,
                 "tokens": None, "windows": 2, "samples": [0.5, 0.5], "meter": "roofline",
                 "hardware": "NVIDIA H100 SXM (roofline model)", "estimated": True}
            ],
        }
    )  # fmt: skip
    (back,) = parse_report(text, Path("old.json")).results
    assert back.record.samples == (0.5, 0.5) and back.record.windows == ()
    assert (back.verdict, back.check, back.outcome) == ("ok", "baseline", "passed")


def test_an_energy_compare_result_is_in_the_report() -> None:
    from pytest_energy.settings import Rule
    from pytest_energy.verdict import COMPARE, Result, judge

    current = data.result("tests/t.py::test_upgrade", data.windows(0.002)).record
    candidate = data.result("tests/t.py::test_upgrade", data.windows(0.0026)).record
    verdict = judge(candidate, current, Rule(3.0, 0.01, None, False, paired=True), check=COMPARE)
    result = Result(candidate, verdict, outcome="failed")
    info = RunInfo.create([result], now=data.NOW)
    document = json.loads(json_report.render([result], info))
    validator().validate(document)
    (entry,) = document["tests"]
    assert entry["check"] == "compare" and entry["verdict"] == "regressed"
    assert entry["reference"]["kwh_per_1000"] == pytest.approx(0.002)
    assert entry["comparison"]["rule"] == "paired"
    assert document["totals"]["compare_regressed"] == 1
    assert document["totals"]["summary"].startswith("❌ 1 costlier candidate (energy.compare)")
    assert isinstance(Record.from_plain(entry), Record)
