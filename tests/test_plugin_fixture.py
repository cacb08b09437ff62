"""The energy fixture through pytest: its forms, its windows, its misuse, energy.compare."""

from __future__ import annotations

import pytest
from plugin_helpers import (
    COSTLY,
    LOCAL,
    results_of,
    run,
)


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


def test_calibration_is_not_fooled_by_a_slow_first_call(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        test_slow="""
        import time

        def test_warm(energy):
            calls = []

            def infer():
                calls.append(1)
                time.sleep(0.6 if len(calls) == 1 else 0.03)
                energy.meter.spend(1.0)

            energy(infer, inferences=1)
            # 0.2 s windows of 0.03 s calls: about 7 calls each, never one
            assert all(w.work.inferences >= 4 for w in energy.result.windows), energy.result.windows
        """
    )
    result = meter_pytester.runpytest(
        LOCAL, "--energy-min-time=0.2", "--energy-rounds=2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)


def test_call_form_passes_images_and_tokens_to_the_function(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_processor="""
        import fakemeter

        def processor(text, images=None, tokens=None):
            fakemeter.spend(1.0)
            return (text, images, tokens)

        def test_call(energy):
            out = energy.call(
                processor, args=("a cat",), kwargs={"images": ["img"], "tokens": 7},
                inferences=1, images=1,
            )
            assert out == ("a cat", ["img"], 7)
            assert energy.result.windows[0].work.images == 1
        """
    )
    result = meter_pytester.runpytest(LOCAL, "--energy-min-time=0", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "source",
    [
        "import pytest\n\n@pytest.fixture\ndef energy():\n    return 42\n\n"
        "def test_mine(energy):\n    assert energy == 42\n",
        "import pytest\n\n@pytest.mark.parametrize('energy', [1, 2])\n"
        "def test_mine(energy):\n    assert energy in (1, 2)\n",
    ],
    ids=["fixture", "parameter"],
)
def test_a_projects_own_energy_name_is_not_an_energy_test(
    pytester: pytest.Pytester, source: str
) -> None:
    pytester.makepyfile(test_own=source)
    # nvml is unavailable here: only a real energy test would start (and fail on) it
    result = pytester.runpytest("--energy-meter=nvml", "--energy-report", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert "unavailable" not in result.stdout.str() + result.stderr.str()
