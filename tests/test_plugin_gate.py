"""The gate through pytest: every verdict against a stored baseline, and strict mode."""

from __future__ import annotations

import pytest
from plugin_helpers import (
    COSTLY,
    LOCAL,
    record_baseline,
    run,
)


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
            [
                "*-16.7% * improved *",
                "*improved beyond the run-to-run noise*--energy-update-baseline*",
            ]
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
            [
                "*too few windows for the U test, 1 vs 1 windows*",
                "*regressed[*] *",
                "[*] low confidence*",
            ]
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


def test_strict_fails_a_test_without_a_baseline_and_says_how(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_model="def test_inference(energy):\n    energy(lambda: energy.meter.spend(3.6), inferences=1)\n"
    )
    result = meter_pytester.runpytest(
        LOCAL, "--energy-min-time=0", "--energy-strict", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*has no comparable baseline entry*--energy-strict requires one*--energy-update-baseline*"]
    )
    lenient = meter_pytester.runpytest(LOCAL, "--energy-min-time=0", "-p", "no:cacheprovider")
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(
        ["pytest-energy: 1 energy test had no comparable baseline entry and was not gated*"]
    )
