"""The energy_budget marker through pytest: the call phase metered, budgets, precedence."""

from __future__ import annotations

import pytest
from plugin_helpers import (
    LOCAL,
    report_of,
    results_of,
    run,
)


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


def test_a_param_marker_overrides_the_function_marker(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        test_budgets="""
        import pytest, fakemeter

        @pytest.mark.energy_budget(kwh=1.0)
        @pytest.mark.parametrize(
            "joules", [3.6, pytest.param(3.6, marks=pytest.mark.energy_budget(kwh=1e-9))]
        )
        def test_cost(joules):
            fakemeter.spend(joules)
        """
    )
    result = meter_pytester.runpytest(LOCAL, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_cost?3.6_1? used 0.001 kWh per 1,000 inferences, over its budget of 1e-09*"]
    )


def test_a_failed_marker_only_test_is_in_the_json_with_its_outcome(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_fails="""
        import pytest, fakemeter

        @pytest.mark.energy_budget(kwh=1.0, inferences=2)
        def test_broken():
            fakemeter.spend(7.2)
            assert False, "the model returned garbage"

        def test_broken_fixture(energy):
            energy(lambda: energy.meter.spend(3.6), inferences=1)
            assert False
        """
    )
    result = meter_pytester.runpytest(
        LOCAL, "--energy-min-time=0", "--energy-rounds=2", "--energy-json=energy.json",
        "--energy-update-baseline", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(failed=2)
    records = report_of(meter_pytester)
    assert records["test_fails.py::test_broken"]["outcome"] == "failed"
    assert records["test_fails.py::test_broken"]["kwh_per_1000"] == pytest.approx(0.001)
    assert records["test_fails.py::test_broken_fixture"]["outcome"] == "failed"
    # failed tests are reported, never recorded as the new baseline
    assert not (meter_pytester.path / "energy-baseline.toml").exists()
