"""Meters through pytest: kinds of figure, sensors required, failing sensors, idle power,\nand the built-in meters on a machine like CI's (no GPU driver, no RAPL)."""

from __future__ import annotations

import ctypes.util
from fnmatch import fnmatch
from pathlib import Path

import pytest
from plugin_helpers import (
    COSTLY,
    run,
)


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


def test_idle_power_is_measured_before_any_work(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(
        test_idle="""
        import fakemeter

        def test_first(energy):
            events = []
            meter = energy.meter  # starts the meter: the idle window happens now
            original = type(meter).read
            type(meter).read = lambda self: (events.append("read"), original(self))[1]
            energy(lambda: events.append("call"), inferences=1)
            type(meter).read = original
            assert events[0] == "call"  # no idle read in between the test's own work
            assert energy.result.windows[0].idle_j > 0
        """
    )
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:PoweredMeter", "--energy-subtract-idle", "--energy-min-time=0",
        "--energy-rounds=1", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_the_cpu_time_estimate_warns_once_about_torch_threads(
    meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    fake_torch = types.ModuleType("torch")
    fake_torch.get_num_threads = lambda: 2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    meter_pytester.makepyfile(
        test_est="""
        import pytest

        @pytest.mark.parametrize("k", range(3))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6), inferences=1)
        """
    )
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:EstimatedMeter", "--energy-min-time=0", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3)
    warnings = [line for line in result.outlines if "intra-op threads" in line]
    assert len(warnings) == 1, warnings
    assert "torch.set_num_threads(1)" in warnings[0]


NO_SENSORS = (
    not Path("/sys/class/powercap").exists() and ctypes.util.find_library("nvidia-ml") is None
)


on_a_machine_without_sensors = pytest.mark.skipif(
    not NO_SENSORS, reason="this machine has an energy sensor"
)


WORK = """
def test_work(energy):
    energy(lambda: sum(i * i for i in range(20000)), inferences=1)
"""


@on_a_machine_without_sensors
def test_auto_picks_the_estimate_and_says_why(pytester: pytest.Pytester) -> None:
    pytest.importorskip("codecarbon")
    pytester.makepyfile(WORK)
    result = pytester.runpytest("--energy-report", "--energy-rounds=2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-energy: meter auto -> codecarbon (estimated) on *(no sensor)",
            "  estimated: process CPU time*",
            "  not used: nvml: *",
            "  not used: rapl: */sys/class/powercap does not exist*",
            "*::test_work * new * codecarbon (estimated)",
        ]
    )


@on_a_machine_without_sensors
@pytest.mark.parametrize(
    ("meter", "cause", "fix"),
    [
        ("nvml", "NVML library*was not found", "Fix: install the NVIDIA driver*"),
        ("rapl", "/sys/class/powercap does not exist", "Fix: on bare-metal Linux*"),
    ],
)
def test_unavailable_sensor_stops_with_one_paragraph(
    pytester: pytest.Pytester, meter: str, cause: str, fix: str
) -> None:
    pytester.makepyfile(WORK)
    result = pytester.runpytest(f"--energy-meter={meter}", "-p", "no:cacheprovider")
    # The meter starts at the first window: the energy test fails with the paragraph, and
    # the summary repeats it once.
    result.assert_outcomes(failed=1)
    assert "Traceback" not in result.stdout.str()
    (line,) = [x for x in result.outlines if x.startswith("ERROR: pytest-energy:")]
    assert f"energy meter '{meter}' is unavailable" in line
    for pattern in (cause, fix):
        assert fnmatch(line, f"*{pattern}*"), f"{pattern!r} not in {line!r}"


@on_a_machine_without_sensors
def test_no_energy_tests_means_no_meter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--energy-meter=nvml", "--energy-report", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pytest-energy" not in result.stdout.str()
    assert "= energy =" not in result.stdout.str()


@on_a_machine_without_sensors
def test_deselected_energy_tests_start_no_meter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORK + "\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest("--energy-meter=nvml", "-k", "plain", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)
