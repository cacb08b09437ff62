"""Report files through pytest: JSON, Markdown, HTML, the step summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_helpers import (
    COSTLY,
    METER,
    record_baseline,
    run,
)

import pytest_energy


class TestReportFiles:
    """The report options end to end; the renderers are tested on fixed data elsewhere."""

    def test_json_markdown_and_html_from_one_run(self, meter_pytester: pytest.Pytester) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        record_baseline(meter_pytester, "3.6")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "4.0")
            # In a subprocess: the HTML charts import matplotlib and numpy, which cannot be
            # imported a second time in this process after pytester unloads them.
            result = meter_pytester.runpytest_subprocess(
                METER,
                "--energy-min-time=0",
                "-p",
                "no:cacheprovider",
                "--energy-json=out/energy.json",
                "--energy-markdown=out/energy.md",
                "--energy-html=out/energy.html",
                "--energy-carbon-intensity=400",
            )
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["energy report: wrote JSON to */out/energy.json"])
        out = meter_pytester.path / "out"
        report = json.loads((out / "energy.json").read_text())
        schema_path = Path(pytest_energy.__file__).parent / "report" / "schema.json"
        jsonschema.validate(report, json.loads(schema_path.read_text()))
        (record,) = report["tests"]
        assert record["nodeid"] == "test_model.py::test_inference"
        assert record["verdict"] == "regressed"
        assert record["kwh_per_1000"] == pytest.approx(4.0 / 3.6e3)
        assert record["reference"]["kwh_per_1000"] == pytest.approx(0.001)
        assert record["g_co2e_per_1000"] == pytest.approx(4.0 / 3.6e3 * 400)
        assert report["run"]["carbon_intensity_g_per_kwh"] == 400
        markdown = (out / "energy.md").read_text()
        assert "test_model.py::test_inference" in markdown and "regress" in markdown
        html = (out / "energy.html").read_text()
        assert "<table" in html and "test_model.py::test_inference" in html

    def test_totals_line_and_step_summary(
        self, meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        summary = meter_pytester.path / "step-summary.md"
        summary.write_text("# earlier step\n")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(meter_pytester, "--energy-report", "--energy-carbon-intensity=500")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "total: 36.00 J (* kWh) measured in 10 windows of 1 test",
                "carbon: 0.005000 gCO2e at 500 gCO2e/kWh, --energy-carbon-intensity",
                "equivalent: * smartphone charges (0.022 kWh per charge)",
            ]
        )
        text = summary.read_text()
        assert text.startswith("# earlier step\n") and "test_model.py::test_inference" in text

    def test_unwritable_report_path_fails_the_session(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(meter_pytester, "--energy-json=test_model.py/energy.json")  # under a file
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["ERROR: energy report */test_model.py/energy.json: cannot*"])

    def test_unknown_country_is_a_usage_error(self, meter_pytester: pytest.Pytester) -> None:
        pytest.importorskip("codecarbon")
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(meter_pytester, "--energy-country=XYZ")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*XYZ*"])
