"""What the pytester modules of tests/ share: the deterministic meters' specs and a run.

3.6 J for one inference is exactly 0.001 kWh per 1,000 inferences, so most figures in those
tests are round numbers.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

#: tests/conftest.py's ScriptedMeter, from a ``fakemeter`` module (``meter_pytester``).
METER = LOCAL = "--energy-meter=fakemeter:ScriptedMeter"
#: The same meter from the rootdir conftest, which xdist workers import (``xdist_pytester``).
WORKERS = "--energy-meter=conftest:ScriptedMeter"


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


def report_of(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    """The run's JSON report (``--energy-json=energy.json``), its records by node id."""
    data = json.loads((pytester.path / "energy.json").read_text())
    return {record["nodeid"]: record for record in data["tests"]}


_ = ET
