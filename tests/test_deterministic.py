"""Deterministic meters in the plugin: one window, no significance test, 1% tolerance.

``FixedMeter`` is a deterministic meter through the public interface; the ``roofline``
tests at the end run the real meter on tiny torch models.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest

FIXED_METER = textwrap.dedent(
    """
    class FixedMeter:
        name = "fixed"
        hardware = "model rig (fixed model)"
        estimated = True
        deterministic = True
        devices = ()

        def __init__(self):
            self.total = 0.0

        def spend(self, joules):
            self.total += joules

        def read(self):
            return {"model:0": self.total}

        def close(self):
            pass
    """
)

SUITE = """
import os

CALLS = []

def test_model(energy):
    cost = float(os.environ.get("COST_J", "3.6"))
    energy(lambda: (CALLS.append(1), energy.meter.spend(cost)), inferences=1)
    print(f"calls={len(CALLS)} windows={len(energy.result.windows)}")
"""


@pytest.fixture
def fixed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(fixedmeter=FIXED_METER, test_suite=SUITE)
    pytester.syspathinsert()

    def run(*args: str, cost: float = 3.6) -> pytest.RunResult:
        monkeypatch.setenv("COST_J", repr(cost))
        return pytester.runpytest(
            "--energy-meter=fixedmeter:FixedMeter", "-s", "-p", "no:cacheprovider", *args
        )

    return run


def test_one_warm_up_and_one_window_per_call(fixed) -> None:
    result = fixed()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*calls=2 windows=1*"])
    fixed("--energy-rounds=3").stdout.fnmatch_lines(["*calls=4 windows=3*"])


@pytest.mark.parametrize(
    ("cost", "args", "outcome"),
    [
        (3.6 * 1.009, (), "passed"),  # +0.9%: under the 1% default
        (3.6 * 1.015, (), "failed"),  # +1.5%: caught, with no significance test in the way
        (3.6 * 1.015, ("--energy-tolerance=2",), "passed"),  # an explicit tolerance wins
        (3.6 * 0.98, (), "passed"),  # an improvement never fails
    ],
)
def test_the_change_alone_decides(
    pytester: pytest.Pytester, fixed, cost: float, args: tuple[str, ...], outcome: str
) -> None:
    fixed("--energy-update-baseline").assert_outcomes(passed=1)
    result = fixed("--energy-json=energy.json", *args, cost=cost)
    result.assert_outcomes(**{outcome: 1})
    (record,) = json.loads((pytester.path / "energy.json").read_text())["tests"]
    assert record["comparison"]["rule"] == "deterministic"
    assert record["low_confidence"] is False
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*regressed*median +1.5% (tolerance 1%); deterministic meter: no significance test*"])


def test_a_marker_tolerance_wins(pytester: pytest.Pytester, fixed) -> None:
    pytester.makepyfile(
        test_suite=SUITE.replace("def test_model", "import pytest\n\n@pytest.mark.energy_budget(kwh=1, tolerance='5%')\ndef test_model")
    )
    fixed("--energy-update-baseline").assert_outcomes(passed=1)
    fixed(cost=3.6 * 1.04).assert_outcomes(passed=1)


def test_a_window_with_no_work_fails_naming_the_meter(pytester: pytest.Pytester, fixed) -> None:
    pytester.makepyfile(test_idle="def test_idle(energy):\n    energy(lambda: None, inferences=1)\n")
    result = fixed("test_idle.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*energy meter 'fixed' counted no work in this window*"])


# -- the roofline meter through the plugin --------------------------------------------------

ROOFLINE_SUITE = """
import os, pytest, torch

WIDTH = int(os.environ.get("WIDTH", "256"))
torch.set_num_threads(int(os.environ.get("THREADS", "1")))

def test_linear(energy):
    torch.manual_seed(0)
    layer = torch.nn.Linear(WIDTH, WIDTH)
    x = torch.randn(8, WIDTH)
    with torch.inference_mode():
        energy(layer, x, inferences=8)
"""


@pytest.fixture
def roofline(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    # find_spec, not importorskip: torch must not be imported into this process in a test,
    # since pytester would unload it afterwards and torch cannot be imported twice.
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    pytester.makepyfile(test_lin=ROOFLINE_SUITE)

    def run(*args: str, width: int = 256, threads: int = 1) -> pytest.RunResult:
        monkeypatch.setenv("WIDTH", str(width))
        monkeypatch.setenv("THREADS", str(threads))
        return pytester.runpytest_subprocess(
            "--energy-meter=roofline", "--energy-json=energy.json", "-p", "no:cacheprovider", *args
        )

    return run


def _samples(pytester: pytest.Pytester) -> list[float]:
    (record,) = json.loads((pytester.path / "energy.json").read_text())["tests"]
    return record["samples"]


def test_roofline_is_identical_across_runs_and_thread_counts(pytester: pytest.Pytester, roofline) -> None:
    roofline(threads=1).assert_outcomes(passed=1)
    first = _samples(pytester)
    roofline(threads=2).assert_outcomes(passed=1)
    assert _samples(pytester) == first
    (record,) = json.loads((pytester.path / "energy.json").read_text())["tests"]
    # 8 x 256 x 256 multiply-adds per call: 2 FLOPs each, 8 inferences
    assert record["flops_per_inference"] == pytest.approx(2 * 256 * 256, rel=0.01)
    assert record["hardware"] == "NVIDIA H100 SXM (roofline model)"
    assert record["estimated"] is True


def test_roofline_catches_a_five_percent_bigger_layer(pytester: pytest.Pytester, roofline) -> None:
    roofline("--energy-update-baseline").assert_outcomes(passed=1)
    roofline(width=256).assert_outcomes(passed=1)
    bigger = roofline(width=269)  # 5% wider: about 10% more FLOPs and weight bytes
    bigger.assert_outcomes(failed=1)
    bigger.stdout.fnmatch_lines(["*test_linear regressed*deterministic meter*"])


def test_roofline_user_profile_and_unknown_target(pytester: pytest.Pytester, roofline) -> None:
    profile = pytester.path / "mygpu.toml"
    profile.write_text(
        textwrap.dedent(
            """
            name = "MyGPU"
            hardware = "Example Accelerator 1"
            memory_bandwidth_gb_s = 1000
            board_power_w = 300
            idle_power_w = 50
            launch_s = 4e-6
            peak_tflops = { fp32 = 50, tf32 = 100, fp16 = 200, bf16 = 200, int8 = 400 }

            [sources]
            peak = "made up for a test"
            """
        )
    )
    result = roofline(f"--energy-target={profile}")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "energy.json").read_text())["tests"]
    assert record["hardware"] == "Example Accelerator 1 (roofline model)"
    unknown = roofline("--energy-target=H900")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*unknown energy target 'H900'; choose one of H100-SXM*"])
