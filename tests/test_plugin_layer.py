"""The pytest layer's contracts: per-attempt state, records on reports, lazy meter, options.

Each test here failed on the plugin before the redesign (0.1.0) and passes now.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xdist")
pytest.importorskip("pytest_rerunfailures")

LOCAL = "--energy-meter=fakemeter:ScriptedMeter"
# xdist workers import the meter from the rootdir conftest (see tests/conftest.py)
WORKERS = "--energy-meter=conftest:ScriptedMeter"

FLAKY = """
import pathlib, pytest
{spend_import}

def _first_attempt_fails(name):
    path = pathlib.Path(name)
    attempt = int(path.read_text()) if path.exists() else 0
    path.write_text(str(attempt + 1))
    assert attempt >= 1, "flaky: the first attempt fails"

def test_fixture(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
    _first_attempt_fails("fixture.count")

@pytest.mark.energy_budget(kwh=1.0, inferences=2)
def test_marker_only():
    spend(7.2)
    _first_attempt_fails("marker.count")
"""


def _report(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    data = json.loads((pytester.path / "energy.json").read_text())
    return {record["nodeid"]: record for record in data["tests"]}


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_a_flaky_energy_test_passes_on_rerun(
    xdist_pytester: pytest.Pytester, workers: str | None
) -> None:
    xdist_pytester.makepyfile(test_flaky=FLAKY.format(spend_import="from conftest import spend"))
    args = ["-p", "rerunfailures", "--reruns", "2", WORKERS, "--energy-min-time=0"]
    args += ["--energy-rounds=3", "--energy-json=energy.json", "-p", "no:cacheprovider"]
    if workers:
        args += ["-n", workers]
    result = xdist_pytester.runpytest(*args)
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun"), outcomes.get("failed")) == (2, 2, None)
    assert "used after its test finished" not in result.stdout.str()
    records = _report(xdist_pytester)
    assert set(records) == {"test_flaky.py::test_fixture", "test_flaky.py::test_marker_only"}
    # the record of the attempt that passed, alone: its own windows, not the first attempt's
    assert len(records["test_flaky.py::test_fixture"]["windows"]) == 3
    assert records["test_flaky.py::test_fixture"]["outcome"] == "passed"
    assert len(records["test_flaky.py::test_marker_only"]["windows"]) == 1
    assert records["test_flaky.py::test_marker_only"]["kwh_per_1000"] == pytest.approx(0.001)


def test_a_crashing_worker_loses_only_its_own_test(xdist_pytester: pytest.Pytester) -> None:
    xdist_pytester.makepyfile(
        test_suite="""
        import os, pytest

        @pytest.mark.parametrize("k", range(10))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6 * (k + 1)), inferences=1)

        def test_crash():
            os._exit(1)
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", WORKERS, "--energy-min-time=0", "--energy-rounds=2",
        "--energy-json=energy.json", "--energy-update-baseline", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=10, failed=1)
    records = _report(xdist_pytester)
    assert sorted(records) == sorted(f"test_suite.py::test_cost[{k}]" for k in range(10))
    baseline = (xdist_pytester.path / "energy-baseline.toml").read_text()
    assert all(f"test_cost[{k}]" in baseline for k in range(10))


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


@pytest.mark.parametrize("listing", ["--co", "--fixtures", "--setup-plan"])
def test_listing_runs_start_no_meter_and_write_no_report(
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


def test_gpu_pin_is_set_before_a_conftest_can_initialise_cuda(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake CUDA runtime: like the real one, it reads CUDA_VISIBLE_DEVICES once, when the
    # conftest initialises it at import time (torch.cuda.is_available() is enough).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    xdist_pytester.makepyfile(
        fakecuda="""
        import os
        SEEN = {}

        def init():
            SEEN.setdefault("devices", os.environ.get("CUDA_VISIBLE_DEVICES"))
        """,
        test_pin="""
        import os, fakecuda

        def test_pinned(worker_id):
            expected = {"gw0": "3", "gw1": "5"}[worker_id]
            assert fakecuda.SEEN["devices"] == expected
            assert os.environ["CUDA_VISIBLE_DEVICES"] == expected

        test_pinned_again = test_pinned
        """,
    )
    conftest = (xdist_pytester.path / "conftest.py").read_text()
    (xdist_pytester.path / "conftest.py").write_text(
        "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n"
        "import fakecuda\nfakecuda.init()\n" + conftest
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "--dist=each", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)


def test_too_few_gpus_is_one_usage_error(
    xdist_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    xdist_pytester.makepyfile("def test_one():\n    pass\n")
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-gpu-per-worker", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("2 pytest-xdist workers but only 1 GPU(s) visible") == 1
    assert "Traceback" not in output


def test_numpy_readings_cross_to_the_controller(xdist_pytester: pytest.Pytester) -> None:
    pytest.importorskip("numpy")
    conftest = (xdist_pytester.path / "conftest.py").read_text()
    (xdist_pytester.path / "conftest.py").write_text(
        conftest + "\n\nclass NumpyMeter(ScriptedMeter):\n"
        "    def read(self):\n"
        "        import numpy\n"
        "        return {'fake:0': numpy.float32(self.total)}\n"
    )
    xdist_pytester.makepyfile(
        test_np="""
        import pytest

        @pytest.mark.parametrize("k", range(4))
        def test_cost(energy, k):
            energy(lambda: energy.meter.spend(3.6 * (k + 1)), inferences=1)
        """
    )
    result = xdist_pytester.runpytest(
        "-n", "2", "--energy-meter=conftest:NumpyMeter", "--energy-min-time=0",
        "--energy-rounds=2", "--energy-json=energy.json", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    records = _report(xdist_pytester)
    assert len(records) == 4
    assert records["test_np.py::test_cost[0]"]["kwh_per_1000"] == pytest.approx(0.001)


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


class TestDisable:
    SUITE = """
    import pytest, fakemeter

    @pytest.mark.energy_budget(kwh=1e-12)
    def test_marker():
        fakemeter.spend(1e6)

    def test_fixture(energy):
        assert energy(lambda x: x * 2, 21, inferences=1) == 42
        with energy.measure(inferences=1):
            fakemeter.spend(1e6)
        assert energy.result is None

    def test_compare(energy):
        energy.compare(lambda: None, lambda: None, inferences=1)
    """

    def test_disable_runs_unmetered_and_writes_nothing(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makepyfile(test_suite=self.SUITE)
        result = meter_pytester.runpytest(
            "--strict-markers", "--energy-meter=nvml", "--energy-disable", "--energy-update-baseline",
            "--energy-json=energy.json", "-p", "no:cacheprovider",
        )  # fmt: skip
        result.assert_outcomes(passed=2, skipped=1)
        assert not (meter_pytester.path / "energy-baseline.toml").exists()
        assert not (meter_pytester.path / "energy.json").exists()

    def test_disable_still_validates_markers(self, meter_pytester: pytest.Pytester) -> None:
        meter_pytester.makepyfile(
            "import pytest\n\n@pytest.mark.energy_budget(kwh='lots')\ndef test_x():\n    pass\n"
        )
        result = meter_pytester.runpytest("--energy-disable", "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*energy_budget kwh must be a number*"])

    def test_ini_flag_is_switched_off_from_the_command_line(
        self, meter_pytester: pytest.Pytester
    ) -> None:
        meter_pytester.makeini("[pytest]\nenergy_disable = true\n")
        meter_pytester.makepyfile(test_suite=self.SUITE.split("    def test_fixture")[0])
        result = meter_pytester.runpytest(
            LOCAL, "--no-energy-disable", "--energy-min-time=0", "-p", "no:cacheprovider"
        )
        result.assert_outcomes(failed=1)  # metered again: the budget of 1e-12 kWh is enforced
        result.stdout.fnmatch_lines(["*test_marker used * kWh per 1,000 inferences, over its*"])


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


def test_bad_ini_value_does_not_break_help(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenergy_tolerance = lots\n")
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--energy-tolerance=PCT*"])


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
    records = _report(meter_pytester)
    assert records["test_fails.py::test_broken"]["outcome"] == "failed"
    assert records["test_fails.py::test_broken"]["kwh_per_1000"] == pytest.approx(0.001)
    assert records["test_fails.py::test_broken_fixture"]["outcome"] == "failed"
    # failed tests are reported, never recorded as the new baseline
    assert not (meter_pytester.path / "energy-baseline.toml").exists()


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
