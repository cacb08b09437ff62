"""Plugin behaviour end to end, through pytester and a deterministic meter.

3.6 J for one inference is exactly 0.001 kWh per 1,000 inferences, so most figures below
are round numbers.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import pytest_energy

METER = "--energy-meter=fakemeter:ScriptedMeter"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(METER, "--energy-min-time=0", "-p", "no:cacheprovider", *args)


def results_of(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, str]]:
    """Run with JUnit XML and return each test's energy properties."""
    xml = pytester.path / "junit.xml"
    run(pytester, f"--junitxml={xml}", *args)
    out: dict[str, dict[str, str]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        out[case.get("name", "")] = props
    return out


COSTLY = """
import os

def test_inference(energy):
    cost = float(os.environ.get("COST_J", "3.6"))
    energy(lambda: energy.meter.spend(cost), inferences=1)
"""


def record_baseline(pytester: pytest.Pytester, cost_j: str = "3.6") -> None:
    pytester.makepyfile(test_model=COSTLY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COST_J", cost_j)
        run(pytester, "--energy-update-baseline").assert_outcomes(passed=1)


class TestFixture:
    def test_measure_block_adds_one_window_per_use(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            import pytest

            def test_blocks(energy):
                with energy.measure(inferences=2, tokens=10):
                    energy.meter.spend(7.2)
                with energy.measure(inferences=4, tokens=20):
                    energy.meter.spend(14.4)
                result = energy.result
                assert len(result.windows) == 2
                assert result.samples == pytest.approx((0.001, 0.001))
                assert result.kwh_per_1000 == pytest.approx(0.001)
                assert result.joules_per_inference == pytest.approx(3.6)
                assert result.joules_per_token == pytest.approx(0.72)
                assert result.meter == "scripted"
                assert result.hardware == "test-rig"
                assert result.estimated is False
            """
        )
        run(meter_pytester).assert_outcomes(passed=1)

    def test_callable_form_repeats_and_returns_last_result(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            def test_call(energy):
                calls = []

                def infer(batch, scale=1):
                    calls.append(batch)
                    energy.meter.spend(3.6 * batch * scale)
                    return len(calls)

                last = energy(infer, 4, scale=2, inferences=4, images=4)
                # one warm-up call, then 5 rounds of one call each (min-time 0)
                assert last == 6 == len(calls)
                assert len(energy.result.windows) == 5
                assert energy.result.joules_per_inference == 7.2
                assert energy.result.joules_per_image == 7.2
            """
        )
        run(meter_pytester, "--energy-rounds=5").assert_outcomes(passed=1)

    def test_fixture_setup_is_not_metered(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            def model(energy):
                energy.meter.spend(1000.0)  # loading weights: must not count
                return lambda: energy.meter.spend(3.6)

            def test_infer(energy, model):
                with energy.measure(inferences=1):
                    model()
                assert energy.result.energy_j == pytest.approx(3.6)
            """
        )
        run(meter_pytester).assert_outcomes(passed=1)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("with energy.measure(inferences=0): pass", "inferences must be a whole number"),
            ("energy(lambda: None, inferences=-1)", "inferences must be a whole number"),
            (
                "with energy.measure(inferences=1):\n        with energy.measure(inferences=1): pass",
                "cannot be nested",
            ),
        ],
    )
    @pytest.mark.reliability("bad input", "fixture misuse")
    def test_misuse_fails_the_test_with_a_clear_message(
        self, meter_pytester: pytest.Pytester, body: str, message: str
    ) -> None:
        meter_pytester.makepyfile(f"def test_misuse(energy):\n    {body}\n")
        result = run(meter_pytester)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*energy fixture: *{message}*"])

    @pytest.mark.reliability("bad input", "fixture misuse")
    def test_measuring_after_the_test_finished_is_an_error(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            kept = []

            def test_first(energy):
                kept.append(energy)

            def test_second():
                with kept[0].measure(inferences=1):
                    pass
            """
        )
        result = run(meter_pytester)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*used after its test finished*"])


class TestMarker:
    def test_marker_alone_meters_the_call_phase(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            import pytest, fakemeter

            @pytest.fixture
            def loaded():
                fakemeter.spend(500.0)  # setup, not metered

            @pytest.mark.energy_budget(kwh=0.01, inferences=2)
            def test_within(loaded):
                fakemeter.spend(7.2)
            """
        )
        props = results_of(meter_pytester)
        assert float(props["test_within"]["energy_kwh_per_1000"]) == pytest.approx(0.001)
        assert props["test_within"]["energy_windows"] == "1"
        assert props["test_within"]["energy_verdict"] == "new"

    def test_over_budget_fails_naming_budget_and_usage(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            import pytest, fakemeter

            @pytest.mark.energy_budget(kwh=0.0005)
            def test_costly():
                fakemeter.spend(3.6)
            """
        )
        result = run(meter_pytester)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*test_costly used 0.001 kWh per 1,000 inferences, over its budget of 0.0005 kWh*"]
        )

    def test_marker_with_fixture_judges_the_fixture_windows(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            import pytest, fakemeter

            @pytest.mark.energy_budget(kwh=0.0015, inferences=1000)
            def test_fixture_windows(energy):
                fakemeter.spend(100.0)  # outside any window: not judged
                with energy.measure(inferences=1):
                    energy.meter.spend(3.6)
            """
        )
        props = results_of(meter_pytester)
        assert float(props["test_fixture_windows"]["energy_kwh_per_1000"]) == pytest.approx(0.001)

    def test_marker_with_fixture_but_no_window_fails(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            import pytest

            @pytest.mark.energy_budget(kwh=1)
            def test_forgot(energy):
                pass
            """
        )
        result = run(meter_pytester)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*uses the energy fixture, but measured no window*"])

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ("", "kwh is required"),
            ("kwh=0", "kwh must be positive"),
            ("kwh=-1", "kwh must be positive"),
            ("kwh='2.5 kWh'", "kwh must be a number"),
            ("kwh=float('nan')", "kwh must be a finite number"),
            ("kwh=1, budget=2", "unknown argument(s) budget"),
            ("kwh=1, tolerance='lots'", "tolerance: expected a number"),
        ],
    )
    @pytest.mark.reliability("bad input", "marker arguments")
    def test_bad_arguments_name_the_test_and_marker(
        self, meter_pytester: pytest.Pytester, args: str, message: str
    ) -> None:
        meter_pytester.makepyfile(
            f"""
            import pytest

            @pytest.mark.energy_budget({args})
            def test_bad():
                pass
            """
        )
        result = run(meter_pytester)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [f"*::test_bad: @pytest.mark.energy_budget {message}*"], consecutive=False
        )
        assert not (meter_pytester.path / "energy-baseline.toml").exists()

    @pytest.mark.reliability("bad input", "marker arguments")
    def test_closest_marker_wins_and_same_level_duplicates_are_an_error(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            test_levels="""
            import pytest, fakemeter

            pytestmark = pytest.mark.energy_budget(kwh=0.0001)

            @pytest.mark.energy_budget(kwh=0.01)
            def test_function_level_wins():
                fakemeter.spend(3.6)
            """,
            test_twice="""
            import pytest

            @pytest.mark.energy_budget(kwh=1)
            @pytest.mark.energy_budget(kwh=2)
            def test_twice():
                pass
            """,
        )
        run(meter_pytester, "test_levels.py").assert_outcomes(passed=1)
        result = run(meter_pytester, "test_twice.py")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*marked energy_budget more than once at the same level*"])


class TestGate:
    def test_new_when_no_baseline(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(meter_pytester, "--energy-report")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            ["test_model.py::test_inference * 0.001 * 3.6 * - * - * new * scripted (measured)"]
        )

    def test_regression_fails_with_the_full_story(self, meter_pytester: pytest.Pytester) -> None:
        record_baseline(meter_pytester, "3.6")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "4.0")
            result = run(meter_pytester, "--energy-report")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*test_inference regressed: 0.001111 kWh per 1,000 inferences against a baseline "
                "of 0.001 (1 recorded run(s)); median +11.1% (tolerance 3%); U test p=*, 5 vs "
                # 5 windows: adaptive rounds stop once the verdict is settled
                "10 windows; upper prediction bound *, run-to-run spread 2% from the prior*",
                "*accept it with --energy-update-baseline*",
                "*test_inference * 0.001111 * 0.001 * +11.1% * regressed *",
            ]
        )

    def test_unchanged_within_tolerance_passes(self, meter_pytester: pytest.Pytester) -> None:
        record_baseline(meter_pytester, "3.6")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "3.7")  # +2.8%: under the 3% tolerance
            result = run(meter_pytester, "--energy-report")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*test_inference * +2.8% * ok *"])

    def test_improvement_passes_with_a_hint(self, meter_pytester: pytest.Pytester) -> None:
        record_baseline(meter_pytester, "3.6")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "3.0")
            result = run(meter_pytester, "--energy-report")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            ["*-16.7% * improved *", "*improved beyond the run-to-run noise*--energy-update-baseline*"]
        )

    def test_marker_tolerance_overrides_session_tolerance(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        record_baseline(meter_pytester, "3.6")
        meter_pytester.makepyfile(
            test_model=COSTLY.replace(
                "def test_inference",
                "import pytest\n@pytest.mark.energy_budget(kwh=1, tolerance='20%')\ndef test_inference",
            )
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "4.0")  # +11%: over 3%, under the marker's 20%
            run(meter_pytester).assert_outcomes(passed=1)

    def test_hardware_mismatch_is_new_not_a_failure(self, meter_pytester: pytest.Pytester) -> None:
        record_baseline(meter_pytester, "3.6")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "9.0")
            mp.setenv("FAKE_HARDWARE", "other-rig")
            result = run(meter_pytester, "--energy-report", "-rA")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "*baseline has this test only for other hardware (test-rig); this run is on other-rig*"
            ]
        )

    def test_single_window_regression_is_low_confidence(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            import os, pytest, fakemeter

            @pytest.mark.energy_budget(kwh=1)
            def test_once():
                fakemeter.spend(float(os.environ.get("COST_J", "3.6")))
            """
        )
        run(meter_pytester, "--energy-update-baseline").assert_outcomes(passed=1)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COST_J", "4.0")
            result = run(meter_pytester, "--energy-report")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*too few windows for the U test, 1 vs 1 windows*", "*regressed[*] *", "[*] low confidence*"]
        )

    def test_update_keeps_entries_of_tests_not_run(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            test_a="def test_a(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n",
            test_b="def test_b(energy):\n    energy(lambda: energy.meter.spend(7.2), inferences=1)\n",
        )
        run(meter_pytester, "--energy-update-baseline").assert_outcomes(passed=2)
        run(meter_pytester, "--energy-update-baseline", "test_a.py").assert_outcomes(passed=1)
        text = (meter_pytester.path / "energy-baseline.toml").read_text()
        assert '"test_a.py::test_a"' in text
        assert '"test_b.py::test_b"' in text
        assert "kwh_per_1000 = 0.002" in text

    def test_update_does_not_record_failing_tests(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            "def test_broken(energy):\n"
            "    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
            "    assert False\n"
        )
        result = run(meter_pytester, "--energy-update-baseline")
        result.assert_outcomes(failed=1)
        assert not (meter_pytester.path / "energy-baseline.toml").exists()


class TestMeters:
    def test_estimated_meter_is_labelled(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(meter_pytester, "--energy-meter=fakemeter:EstimatedMeter", "--energy-report")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "*meter guess (estimated)*",
                "*new * guess (estimated)",
                "estimated: figures are estimated*",
            ]
        )

    def test_require_sensor_refuses_an_estimate(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        result = run(
            meter_pytester, "--energy-meter=fakemeter:EstimatedMeter", "--energy-require-sensor"
        )
        # The meter starts at the first window, so the energy test fails, with the reason
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*--energy-require-sensor is set*only estimates energy*"])

    def test_require_sensor_accepts_a_sensor(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        run(meter_pytester, "--energy-require-sensor").assert_outcomes(passed=1)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            (
                "wattmeter",
                "unknown energy meter 'wattmeter'; choose one of amdsmi, apple, auto, codecarbon, jetson, nvml, rapl",
            ),
            ("no_such_module:Meter", "module 'no_such_module' cannot be imported"),
            ("fakemeter:Missing", "module 'fakemeter' has no attribute 'Missing'"),
            ("fakemeter:LIVE", "which is not callable"),
        ],
    )
    @pytest.mark.reliability("bad input", "options and meter specs")
    def test_bad_meter_spec_is_a_usage_error(
        self, meter_pytester: pytest.Pytester, spec: str, message: str
    ) -> None:
        meter_pytester.makepyfile("def test_plain():\n    pass\n")
        result = meter_pytester.runpytest(f"--energy-meter={spec}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{message}*"])

    @pytest.mark.reliability("bad input", "options and meter specs")
    def test_factory_returning_a_non_meter_fails_the_energy_test(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            notameter="def make():\n    return object()\n",
            test_model=COSTLY,
            test_plain="def test_plain():\n    pass\n",
        )
        result = meter_pytester.runpytest("--energy-meter=notameter:make")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*returned object, which is not a meter: it lacks name*"])
        assert "Traceback" not in result.stdout.str()

    def test_no_meter_is_created_without_energy_tests(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            broken="class Broken:\n    def __init__(self):\n        raise RuntimeError('touched')\n",
            test_plain="def test_plain():\n    pass\n",
        )
        meter_pytester.runpytest("--energy-meter=broken:Broken").assert_outcomes(passed=1)

    @pytest.mark.reliability("fault", "meter read() raises mid-window")
    def test_sensor_failing_mid_window_fails_only_that_test(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            flaky="""
            from fakemeter import ScriptedMeter

            class FlakyMeter(ScriptedMeter):
                def read(self):
                    if self.total >= 100:
                        raise OSError("sensor fell off the bus")
                    return super().read()
            """,
            test_model="""
            def test_breaks(energy):
                with energy.measure(inferences=1):
                    energy.meter.spend(100.0)

            def test_after():
                assert True
            """,
        )
        (meter_pytester.path / "energy-baseline.toml").write_text("schema_version = 1\n")
        result = meter_pytester.runpytest(
            "--energy-meter=flaky:FlakyMeter", "--energy-update-baseline"
        )
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*OSError: sensor fell off the bus*"])
        assert (meter_pytester.path / "energy-baseline.toml").read_text() == "schema_version = 1\n"

    @pytest.mark.reliability("fault", "counter goes backwards")
    def test_counter_going_backwards_rejects_the_window(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            test_model="""
            def test_reset(energy):
                with energy.measure(inferences=1):
                    energy.meter.total = 0.0  # driver reload resets the counter

            """
        )
        meter_pytester.makepyfile(
            conftest="""
            import pytest

            @pytest.fixture(autouse=True)
            def _start_high(energy):
                energy.meter.total = 50.0
            """
        )
        result = run(meter_pytester)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*pytest-energy: meter 'scripted': the 'fake:0' counter went backwards*"]
        )


class TestIdle:
    def test_subtract_idle_reports_dynamic_energy_beside_total(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(
            """
            import time

            def test_idle(energy):
                with energy.measure(inferences=1):
                    energy.meter.spend(3.6)
                    time.sleep(0.2)  # 1 J of idle power on top
                r = energy.result
                assert r.energy_j > 3.6 + 0.9
                assert abs(r.dynamic_kwh_per_1000 - 0.001) < 0.00002
            """
        )
        result = run(
            meter_pytester, "--energy-meter=fakemeter:PoweredMeter", "--energy-subtract-idle", "-rA"
        )
        result.assert_outcomes(passed=1)
        label = "dynamic kWh per 1,000 inferences (idle power subtracted): "
        (line,) = [x for x in result.outlines if x.startswith(label)]
        # idle power is timed against the wall clock: 0.001 to within 2%, not to the digit
        assert abs(float(line.removeprefix(label)) - 0.001) < 0.00002, line


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


class TestJunitAndCompare:
    def test_junit_xml_gets_energy_properties(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(test_model=COSTLY)
        props = results_of(meter_pytester)["test_inference"]
        assert float(props["energy_kwh_per_1000"]) == pytest.approx(0.001)
        assert props["energy_meter"] == "scripted"
        assert props["energy_estimated"] == "False"
        assert props["energy_hardware"] == "test-rig"

    def test_compare_catches_a_costlier_candidate(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            def test_upgrade(energy):
                energy.compare(
                    lambda: energy.meter.spend(3.6),
                    lambda: energy.meter.spend(4.5),
                    inferences=1,
                )

            def test_same_cost(energy):
                check = energy.compare(
                    lambda: energy.meter.spend(3.6), lambda: energy.meter.spend(3.6), inferences=1
                )
                assert check.ratio == 1.0 and str(check.status) == "ok"
            """
        )
        result = run(meter_pytester)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            ["*the candidate costs +25.0% energy per inference against the current version*"]
        )

    def test_compare_orders_calls_abba(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            """
            def test_order(energy):
                order = []
                energy.compare(
                    lambda: order.append("A") or energy.meter.spend(1),
                    lambda: order.append("B") or energy.meter.spend(1),
                    inferences=1,
                )
                # one warm-up call each, then A B, B A, A B, B A: each round's two windows
                # are adjacent, and a drift cancels over two rounds
                assert order == ["A", "B"] + ["A", "B", "B", "A", "A", "B", "B", "A"]
            """
        )
        run(meter_pytester, "--energy-rounds=4").assert_outcomes(passed=1)

    def test_compare_analyses_adjacent_windows_as_pairs(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        # The machine drifts upwards by 1% per call; the candidate costs 4% more. Within each
        # ABBA round the two windows are adjacent, and the drift cancels over two rounds.
        meter_pytester.makepyfile(
            """
            def test_drift(energy):
                state = {"level": 1.0}

                def spend(cost):
                    energy.meter.spend(cost * state["level"])
                    state["level"] *= 1.01

                check = energy.compare(
                    lambda: spend(1.00), lambda: spend(1.04), inferences=1, tolerance="10%"
                )
                assert 1.035 < check.ratio < 1.045, check.ratio
                assert check.comparison.rule == "paired"
            """
        )
        run(meter_pytester, "--energy-rounds=10").assert_outcomes(passed=1)


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


def test_windows_shorter_than_the_update_period_warn(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        slow="""
        from fakemeter import ScriptedMeter

        class SlowMeter(ScriptedMeter):
            update_period_s = 60.0  # the longest period meters.validate accepts
        """,
        test_model="""
        def test_short(energy):
            with energy.measure(inferences=1):
                energy.meter.spend(1.0)
        """,
    )
    # in-process runs inherit this suite's "error" filter, so say "always" explicitly
    result = meter_pytester.runpytest(
        "--energy-meter=slow:SlowMeter", "-W", "always::pytest_energy.plugin.EnergyWarning"
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*EnergyWarning: 1 energy window(s) were shorter than the meter's*"]
    )
    strict = meter_pytester.runpytest(
        "--energy-meter=slow:SlowMeter", "-W", "error::pytest_energy.plugin.EnergyWarning"
    )
    strict.assert_outcomes(failed=1)
