"""The robust run history end to end: a committed baseline whose history has one run
hand-edited to 10x still gates a regression (issue 20, item 4)."""

from __future__ import annotations

import json

import pytest

SUITE = """
import os

def test_model(energy):
    energy(lambda: energy.meter.spend(float(os.environ["COST_J"])), inferences=1)
"""
NODE = "test_suite.py::test_model"
#: 3.6 J per inference is 0.001 kWh per 1,000 inferences.
LEVEL = 0.001


def _baseline(levels: list[float]) -> str:
    runs = ",\n".join(
        f'    {{ kwh_per_1000 = {m:g}, windows = 10, spread_pct = 1.0, date = "2026-11-0{i + 1}" }}'
        for i, m in enumerate(levels)
    )
    samples = ", ".join([f"{levels[-1]:g}"] * 10)
    return (
        "schema_version = 2\n\n"
        f'[hardware.test-rig."{NODE}"]\n'
        'unit = "kWh/1000 inferences"\n'
        f"kwh_per_1000 = {levels[-1]:g}\n"
        f"samples = [{samples}]\n"
        'meter = "scripted"\nestimated = false\ninferences = 10\n'
        'pytest_energy_version = "0.2.0"\n'
        f"runs = [\n{runs},\n]\n"
    )


@pytest.mark.parametrize("edited", [2, 4])  # a middle run; the latest run and its windows
def test_a_10x_run_in_the_history_does_not_let_30_percent_pass(
    meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, edited: int
) -> None:
    levels = [LEVEL] * 5
    levels[edited] *= 10.0
    meter_pytester.makepyfile(test_suite=SUITE)
    (meter_pytester.path / "energy-baseline.toml").write_text(_baseline(levels))
    monkeypatch.setenv("COST_J", str(3.6 * 1.3))
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:ScriptedMeter",
        "--energy-min-time=0",
        "--energy-rounds=10",
        "--energy-json=energy.json",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*regressed*outlying recorded runs set aside: run {edited + 1} (1 = oldest)*"]
    )
    (record,) = json.loads((meter_pytester.path / "energy.json").read_text())["tests"]
    assert record["verdict"] == "regressed"
    assert record["comparison"]["rule"] == "prediction"
