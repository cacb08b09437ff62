"""Smoke test: the scripts in benchmarks/ still import and run, at tiny sizes.

No timing is asserted; the figures themselves come from running the scripts (see
docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    module_name = f"_benchmark_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gate_quality() -> ModuleType:
    pytest.importorskip("numpy")
    return load("gate_quality")


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    return load("overhead")


def test_fast_path_matches_compare(gate_quality: ModuleType) -> None:
    gq = gate_quality
    scenario = gq.Scenario(rounds=6, baseline_rounds=6, cv=0.02, run_sd=0.01, change=0.04)
    cand, base = gq.draw(scenario, 40, seed=1, noise="lognormal")
    direct = gq.judge_direct(cand, base)
    fast = gq.judge_fast(cand, base, gq.PValues())
    assert fast[0] == pytest.approx(direct[0], rel=1e-12)
    assert list(fast[1]) == list(direct[1])


def test_draw_is_seeded_per_scenario(gate_quality: ModuleType) -> None:
    gq = gate_quality
    scenario = gq.Scenario(rounds=4, baseline_rounds=4, cv=0.05, run_sd=0.0, change=0.0)
    first, _ = gq.draw(scenario, 5, seed=3, noise="normal")
    again, _ = gq.draw(scenario, 5, seed=3, noise="normal")
    assert (first == again).all()


def test_gate_quality_runs_tiny(gate_quality: ModuleType) -> None:
    gq = gate_quality
    lines: list[str] = []
    plan = gq.Plan(
        pairs=30,
        sweep_rounds=(4, 8),
        fixed_baselines=2,
        candidates_per_baseline=5,
        across_trials=20,
    )
    gq.run(plan, gq.Gate(8, 3.0, 0.01), out=lines.append)
    text = "\n".join(lines)
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 10.", "## 13."):
        assert heading in text
    assert "naive: median > +5%" in text
    assert "| two +30% outlier windows in the baseline |" in text


def test_across_run_noise_models(gate_quality: ModuleType) -> None:
    gq = gate_quality
    rng = gq.np.random.default_rng(0)
    drift = gq.run_windows(rng, gq.NoiseModel("d", cv=0.0, drift_sd=0.1), 3, 5)
    assert drift.shape == (3, 5)
    assert (abs(drift[:, 2] - 1.0) < 1e-12).all()  # the drift pivots on the middle window
    offsets = gq.run_windows(rng, gq.NoiseModel("o", cv=0.0, run_sd=0.05), 4, 6)
    assert (offsets == offsets[:, :1]).all()  # a run offset moves every window together
    assert gq.smallest_detectable_pct(0.01, 0.02, 10, 1, 0.001, 0.965) > 8.0
    adaptive = gq.adaptive_rate(gq.NoiseModel("iid"), gq.NEW_5, 0.5, 3, seed=1)
    assert adaptive.failed == 1.0 and adaptive.mean_windows <= gq.stats.DEFAULT_MAX_ROUNDS


def test_noise_estimated_from_reports(gate_quality: ModuleType) -> None:
    gq = gate_quality
    flat = {"nodeid": "t::flat", "hardware": "rig", "meter": "m", "samples": [1.0, 1.0, 1.0]}
    runs = [
        {
            "tests": [
                {"nodeid": "t::a", "hardware": "rig", "meter": "m", "samples": [1.0, 1.1]},
                flat,
            ]
        },
        {
            "tests": [
                {"nodeid": "t::a", "hardware": "rig", "meter": "m", "samples": [1.2, 1.3]},
                flat,
            ]
        },
        {"tests": [{"nodeid": "t::once", "hardware": "rig", "meter": "m", "samples": [1.0, 2.0]}]},
    ]
    noise = {n.nodeid: n for n in gq.estimate_noise(runs)}
    assert set(noise) == {"t::a", "t::flat"}
    assert noise["t::a"].runs == 2 and noise["t::a"].cv > 0 and noise["t::a"].run_sd > 0
    assert noise["t::flat"].cv == 0 and noise["t::flat"].run_sd == 0
    assert "t::a" in gq.measured_table([noise["t::a"]], gq.Gate(4, 3.0, 0.05), 20, 1)


def test_overhead_suite_passes_with_the_plugin(
    overhead: ModuleType, pytester: pytest.Pytester
) -> None:
    overhead.generate_suite(pytester.path / "suite", 3)
    for item in (pytester.path / "suite").iterdir():
        shutil.move(str(item), pytester.path / item.name)
    pytester.syspathinsert()
    result = pytester.runpytest("--energy-meter=zerometer:ZeroMeter", "--energy-min-time=0")
    result.assert_outcomes(passed=9)  # plain, energy fixture, and control tests


def test_overhead_in_process_tables(overhead: ModuleType) -> None:
    assert "Recorder.window()" in overhead.micro_table(200, batches=2)
    assert "nvml" in overhead.meter_table(50)
