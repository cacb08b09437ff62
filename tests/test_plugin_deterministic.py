"""Deterministic meters in the plugin: one window, no significance test, 1% tolerance.

``FixedMeter`` (tests/conftest.py) is a deterministic meter through the public interface;
tests/test_meter_roofline_plugin.py runs the real ``roofline`` meter on tiny torch models.
"""

from __future__ import annotations

import json

import pytest

SUITE = """
import os

CALLS = []

def test_model(energy):
    cost = float(os.environ.get("COST_J", "3.6"))
    energy(lambda: (CALLS.append(1), energy.meter.spend(cost)), inferences=1)
    print(f"calls={len(CALLS)} windows={len(energy.result.windows)}")
"""


@pytest.fixture
def fixed(meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester = meter_pytester
    pytester.makepyfile(test_suite=SUITE)

    def run(*args: str, cost: float = 3.6) -> pytest.RunResult:
        monkeypatch.setenv("COST_J", repr(cost))
        return pytester.runpytest(
            "--energy-meter=fakemeter:FixedMeter", "-s", "-p", "no:cacheprovider", *args
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
        result.stdout.fnmatch_lines(
            ["*regressed*median +1.5% (tolerance 1%); deterministic meter: no significance test*"]
        )


def test_a_marker_tolerance_wins(pytester: pytest.Pytester, fixed) -> None:
    pytester.makepyfile(
        test_suite=SUITE.replace(
            "def test_model",
            "import pytest\n\n@pytest.mark.energy_budget(kwh=1, tolerance='5%')\ndef test_model",
        )
    )
    fixed("--energy-update-baseline").assert_outcomes(passed=1)
    fixed(cost=3.6 * 1.04).assert_outcomes(passed=1)


def test_a_window_with_no_work_fails_naming_the_meter(pytester: pytest.Pytester, fixed) -> None:
    pytester.makepyfile(
        test_idle="def test_idle(energy):\n    energy(lambda: None, inferences=1)\n"
    )
    result = fixed("test_idle.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*energy meter 'fixed' counted no work in this window*"])
