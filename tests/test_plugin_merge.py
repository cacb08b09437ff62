"""The CI-matrix workflow end to end (docs/scale-out.md): three GPU jobs write reports, each
main-branch run merges them into the committed baseline with ``pytest-energy merge``, and
once every entry has three recorded runs a pull request is gated with the prediction bound
built from them."""

from __future__ import annotations

import json

import pytest

from pytest_energy import baseline as baseline_io
from pytest_energy.cli import main

JOBS = ("NVIDIA H100 80GB HBM3 x1", "NVIDIA A100-SXM4-40GB x1", "NVIDIA L4 x1")
NODE = "test_model.py::test_inference"
MODEL = """
import os

def test_inference(energy):
    cost = float(os.environ["COST_J"])
    energy(lambda: energy.meter.spend(cost), inferences=1)
"""


def job(pytester: pytest.Pytester, hardware: str, cost_j: float, name: str) -> pytest.RunResult:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_HARDWARE", hardware)
        mp.setenv("COST_J", repr(cost_j))
        return pytester.runpytest(
            "--energy-meter=fakemeter:ScriptedMeter", "--energy-min-time=0",
            "--energy-rounds=5", f"--energy-json={name}", "-p", "no:cacheprovider",
        )  # fmt: skip


def test_three_jobs_merged_three_times_then_a_pull_request_gated(
    meter_pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    meter_pytester.makepyfile(test_model=MODEL)
    baseline = meter_pytester.path / "energy-baseline.toml"
    levels = (3.6, 3.62, 3.59)  # the run-to-run wobble of a real fleet, per main-branch run
    for run, level in enumerate(levels):
        reports = []
        for index, hardware in enumerate(JOBS):
            name = f"run{run}-job{index}.json"
            job(meter_pytester, hardware, level * (1 + index), name).assert_outcomes(passed=1)
            reports.append(str(meter_pytester.path / name))
        assert main(["merge", str(baseline), *reports]) == 0
        capsys.readouterr()
    merged = baseline_io.load(baseline)
    assert sorted(merged.entries) == sorted(JOBS)
    for hardware in JOBS:
        entry = merged.get(hardware, NODE)
        assert entry is not None and len(entry.runs) == 3  # one dated run per merge
        assert all(run.date for run in entry.runs)

    # a pull request on the H100 runner: unchanged passes, +12% is caught by the bound
    ok = job(meter_pytester, JOBS[0], 3.61, "pr-ok.json")
    ok.assert_outcomes(passed=1)
    slower = job(meter_pytester, JOBS[0], 3.6 * 1.12, "pr.json")
    slower.assert_outcomes(failed=1)
    slower.stdout.fnmatch_lines(["*regressed*run-to-run spread * from 3 baseline runs*"])
    (test,) = json.loads((meter_pytester.path / "pr.json").read_text())["tests"]
    assert test["comparison"]["rule"] == "prediction"
    assert test["comparison"]["spread_runs"] == 3
    assert test["reference"]["runs"][-1]["date"]
