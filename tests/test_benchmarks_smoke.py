"""Smoke tests: the scripts in benchmarks/ still import and run, at tiny sizes.

No timing is asserted; the figures themselves come from running the scripts (see
benchmarks/README.md for which test covers which script).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import BENCHMARKS, load_script


def load(name: str) -> ModuleType:
    return load_script(name)


@pytest.fixture(scope="module")
def gate_quality() -> ModuleType:
    pytest.importorskip("numpy")
    return load("gate_quality")


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    return load("overhead")


@pytest.mark.parametrize(("rounds", "cv"), [(6, 0.02), (10, 0.05), (3, 0.05)])
def test_fast_path_matches_compare(gate_quality: ModuleType, rounds: int, cv: float) -> None:
    gq = gate_quality
    scenario = gq.Scenario(rounds=rounds, baseline_rounds=rounds, cv=cv, run_sd=0.01, change=0.04)
    cand, base = gq.draw(scenario, 200, seed=1, noise="lognormal")
    cand[0, 0] *= 1.5  # an outlier window that compare() sets aside
    direct = gq.judge_direct(cand, base)
    pvalues = gq.PValues()
    fast = gq.judge_fast(cand, base, pvalues)
    assert fast[0] == pytest.approx(direct[0], rel=1e-12)
    for mine, theirs in zip(fast[1:], direct[1:], strict=True):
        assert list(mine) == list(theirs)
    assert pvalues.direct >= 1 and direct[2][0] == rounds - 1


def test_may_flag_covers_every_pair_that_compare_flags(gate_quality: ModuleType) -> None:
    gq = gate_quality
    rng = gq.np.random.default_rng(5)
    cand = gq.np.exp(0.05 * rng.standard_normal((400, 8)))
    base = gq.np.exp(0.05 * rng.standard_normal((400, 8)))
    maybe = gq.may_flag(cand, base)
    flagged = [
        bool(c.outliers_current or c.outliers_baseline)
        for c in (gq.within_run(a.tolist(), b.tolist()) for a, b in zip(cand, base, strict=True))
    ]
    assert any(flagged)
    assert all(m for m, f in zip(maybe, flagged, strict=True) if f)


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
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 10.", "## 14."):
        assert heading in text
    assert "naive: median > +5%" in text
    assert "| two +30% outlier windows in the baseline |" in text
    assert "| one run of the 5-run history at 10x |" in text
    assert "| the latest run at 10x (its windows too) |" in text


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
    assert adaptive.failed == 1.0 and adaptive.mean_windows <= gq.energy_settings.DEFAULT_MAX_ROUNDS


def test_a_run_factor_multiplies_one_recorded_run(gate_quality: ModuleType) -> None:
    gq = gate_quality
    clean = gq.NoiseModel("c", cv=0.0)
    edited = gq.NoiseModel("e", cv=0.0, run_factors=((-1, 10.0),))
    hist, _ = gq._draw_test(gq.np.random.default_rng(0), edited, 2, 5, 4)
    assert (hist[:, -1] == 10.0).all() and (hist[:, :-1] == 1.0).all()
    assert edited.words() != clean.words()  # a cell of its own
    assert gq.across_rate(edited, gq.NEW_5, 0.3, 10, seed=1) == 1.0


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
    table = overhead.micro_table(200, batches=2)
    for name in ("WindowMeter.window()", "Recorder.window()", "energy.measure() (device lock"):
        assert name in table
    assert "nvml" in overhead.meter_table(50)


def test_baseline_scale_runs_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    scale = load("baseline_scale")
    assert scale.main(["--entries", "20", "--runs", "3", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "baseline: 20 entries x 10 windows x 3 runs" in out
    for step in scale.STEPS:
        assert f"| {step} |" in out
    if sys.version_info >= (3, 11):
        assert "tomllib / tomli" in out


def test_baseline_scale_reader_switch_is_undone() -> None:
    import tomli

    from pytest_energy import baseline

    scale = load("baseline_scale")
    with scale.reader(object()):  # type: ignore[arg-type]
        assert baseline.tomli is not tomli
    assert baseline.tomli is tomli


def test_estimate_threads_runs_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("codecarbon")
    threads = load("estimate_threads")
    args = ["--threads", "1", "--repeats", "1", "--rounds", "2", "--window", "0.01"]
    assert threads.main(args) == 0
    out = capsys.readouterr().out
    assert "Linear(256, 256) vs Linear(256, 512)" in out
    assert out.count("\n| 1 |") == 1


def test_every_script_imports_through_the_one_loader() -> None:
    """Each script starts with ``import _common`` and none puts the checkout on sys.path
    itself (gate_quality and the roofline scripts belong to other work: listed, not
    changed here)."""
    own = {
        p.stem
        for p in BENCHMARKS.glob("*.py")
        if p.stem != "_common" and not p.stem.startswith("roofline_") and p.stem != "gate_quality"
    }
    for name in sorted(own):
        text = (BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")
        assert "\nimport _common" in text, name
        assert "sys.path.insert" not in text, name


def test_scripts_run_from_a_checkout_that_is_not_installed() -> None:
    """``import _common`` finds this checkout's pytest_energy when no installed copy can be
    imported (``python -S``: no site-packages at all)."""
    script = "import _common, pytest_energy; print(pytest_energy.__file__)"
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert Path(done.stdout.strip()).parent.parent == BENCHMARKS.parent
