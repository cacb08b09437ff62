"""Options, ini keys and the baseline file option through pytest."""

from __future__ import annotations

import pytest
from plugin_helpers import (
    COSTLY,
    METER,
    record_baseline,
    run,
)


class TestOptions:
    def test_cli_beats_ini_beats_default(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makeini(
            """
            [pytest]
            energy_meter = fakemeter:ScriptedMeter
            energy_min_time = 0
            energy_rounds = 3
            """
        )
        meter_pytester.makepyfile(
            """
            def test_rounds(energy):
                energy(lambda: energy.meter.spend(3.6), inferences=1)
                print("WINDOWS", len(energy.result.windows))
            """
        )
        meter_pytester.runpytest("-s").stdout.fnmatch_lines(["*WINDOWS 3*"])
        meter_pytester.runpytest("-s", "--energy-rounds=4").stdout.fnmatch_lines(["*WINDOWS 4*"])
        (meter_pytester.path / "tox.ini").unlink()
        meter_pytester.runpytest("-s", METER, "--energy-min-time=0").stdout.fnmatch_lines(
            ["*WINDOWS 10*"]
        )

    def test_ini_tolerance_and_cli_override(self, meter_pytester: pytest.Pytester) -> None:
        record_baseline(meter_pytester, "3.6")
        meter_pytester.makeini("[pytest]\nenergy_tolerance = 20%\n")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "4.0")  # +11%
            run(meter_pytester).assert_outcomes(passed=1)
            run(meter_pytester, "--energy-tolerance=5").assert_outcomes(failed=1)

    @pytest.mark.parametrize(
        ("option", "message"),
        [
            (
                "--energy-tolerance=-5",
                "--energy-tolerance / energy_tolerance: expected a percentage",
            ),
            ("--energy-tolerance=abc", "--energy-tolerance / energy_tolerance: expected a number"),
            ("--energy-tolerance=200%", "expected a percentage between 0 and 100"),
            (
                "--energy-rounds=0",
                "--energy-rounds / energy_rounds: expected auto or a whole number of at least 1",
            ),
            (
                "--energy-min-time=-1",
                "--energy-min-time / energy_min_time: expected a non-negative",
            ),
        ],
    )
    @pytest.mark.reliability("bad input", "options and meter specs")
    def test_bad_option_values_are_usage_errors(
        self, meter_pytester: pytest.Pytester, option: str, message: str
    ) -> None:
        meter_pytester.makepyfile("def test_plain():\n    pass\n")
        result = meter_pytester.runpytest(option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{message}*"])

    def test_marker_is_registered_for_strict_markers(self, pytester: pytest.Pytester) -> None:
        result = pytester.runpytest("--markers")
        result.stdout.fnmatch_lines(
            ["@pytest.mark.energy_budget(kwh, *, inferences=1, tolerance=None): Limit*"]
        )


class TestBaselineFile:
    @pytest.mark.reliability("bad input", "baseline file, whole run")
    def test_corrupt_baseline_stops_the_run_and_is_left_alone(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        path = meter_pytester.path / "energy-baseline.toml"
        path.write_text("schema_version = 1\n[hardware\n")
        result = run(meter_pytester, "--energy-update-baseline")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*energy baseline*is not valid TOML*git checkout*"])
        assert path.read_text() == "schema_version = 1\n[hardware\n"

    def test_baseline_option_and_relative_path(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        (meter_pytester.path / "perf").mkdir()
        run(meter_pytester, "--energy-baseline=perf/gpu.toml", "--energy-update-baseline")
        assert (meter_pytester.path / "perf" / "gpu.toml").is_file()
        assert not (meter_pytester.path / "energy-baseline.toml").exists()


def test_bad_ini_value_does_not_break_help(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenergy_tolerance = lots\n")
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--energy-tolerance=PCT*"])


@pytest.mark.parametrize("listing", ["--co", "--fixtures", "--setup-plan"])
def test_listing_runs_start_no_meter_and_write_noreport_of(
    pytester: pytest.Pytester, listing: str
) -> None:
    pytester.makepyfile(
        test_model="def test_inference(energy):\n    energy(lambda: None, inferences=1)\n"
    )
    report = pytester.path / "energy.json"
    report.write_text('{"kept": true}')
    result = pytester.runpytest(
        listing, "--energy-meter=nvml", "--energy-json=energy.json", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.OK
    assert "unavailable" not in result.stdout.str() + result.stderr.str()
    assert report.read_text() == '{"kept": true}'
