"""The run-aware gate end to end: a fake meter whose level shifts from run to run.

``runmeter.RunMeter`` multiplies every spend by ``RUN_LEVEL`` (the run's offset: board,
day, temperature) and by a seeded within-run noise of ``WINDOW_NOISE``; ``OUTLIERS`` names
spend calls that cost 30% more (a neighbour's burst in that window).
"""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_energy import baseline as baseline_io

RUN_METER = textwrap.dedent(
    """
    import os, random

    class RunMeter:
        name = "runmeter"
        hardware = "test-rig"
        estimated = False

        def __init__(self):
            self.level = float(os.environ.get("RUN_LEVEL", "1.0"))
            self.noise = float(os.environ.get("WINDOW_NOISE", "0.0"))
            self.rng = random.Random(int(os.environ.get("RUN_SEED", "0")))
            self.outliers = {int(i) for i in os.environ.get("OUTLIERS", "").split(",") if i}
            self.calls = 0
            self.total = 0.0

        def spend(self, joules):
            factor = self.level * (1.0 + self.rng.gauss(0.0, self.noise))
            if self.calls in self.outliers:
                factor *= 1.3
            self.calls += 1
            self.total += joules * factor

        def read(self):
            return {"fake:0": self.total}

        def close(self):
            pass
    """
)

SUITE = """
import os

def test_model(energy):
    cost = float(os.environ.get("COST_J", "3.6"))
    energy(lambda: energy.meter.spend(cost), inferences=1)
"""

NODE = "test_suite.py::test_model"


@pytest.fixture
def runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(runmeter=RUN_METER, test_suite=SUITE)
    pytester.syspathinsert()

    def run(*args: str, level: float = 1.0, seed: int = 0, **env: str) -> pytest.RunResult:
        monkeypatch.setenv("RUN_LEVEL", str(level))
        monkeypatch.setenv("RUN_SEED", str(seed))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return pytester.runpytest(
            "--energy-meter=runmeter:RunMeter", "--energy-min-time=0", "-p", "no:cacheprovider",
            "--energy-json=energy.json", *args,
        )  # fmt: skip

    return run


def _entry(pytester: pytest.Pytester) -> baseline_io.BaselineEntry:
    entry = baseline_io.load(pytester.path / "energy-baseline.toml").get("test-rig", NODE)
    assert entry is not None
    return entry


def _record(pytester: pytest.Pytester) -> dict[str, object]:
    (record,) = json.loads((pytester.path / "energy.json").read_text())["tests"]
    return record


def test_history_is_appended_and_trimmed(pytester: pytest.Pytester, runs) -> None:
    for seed, level in enumerate([1.0, 1.01, 0.99, 1.005]):
        runs(
            "--energy-update-baseline",
            "--energy-history=3",
            level=level,
            seed=seed,
            WINDOW_NOISE="0.01",
        ).assert_outcomes(passed=1)
    entry = _entry(pytester)
    assert len(entry.runs) == 3  # at most --energy-history runs, the oldest dropped
    assert entry.runs[-1].kwh_per_1000 == pytest.approx(0.001005, rel=0.02)
    assert entry.runs[0].kwh_per_1000 == pytest.approx(0.00101, rel=0.02)
    assert entry.samples == tuple(_record(pytester)["samples"])  # the latest run's windows


def test_an_accepted_regression_replaces_the_history(pytester: pytest.Pytester, runs) -> None:
    for seed in range(3):
        runs("--energy-update-baseline", seed=seed).assert_outcomes(passed=1)
    assert len(_entry(pytester).runs) == 3
    accepted = runs("--energy-update-baseline", level=1.5)
    accepted.assert_outcomes(passed=1)  # updating accepts the change
    entry = _entry(pytester)
    assert len(entry.runs) == 1  # a new level starts
    assert entry.kwh_per_1000 == pytest.approx(0.0015)
    runs(level=1.5).assert_outcomes(passed=1)


def test_schema_1_is_read_as_one_run_and_rewritten_as_schema_3(
    pytester: pytest.Pytester, runs
) -> None:
    (pytester.path / "energy-baseline.toml").write_text(
        "schema_version = 1\n\n"
        f'[hardware.test-rig."{NODE}"]\n'
        'unit = "kWh/1000 inferences"\nkwh_per_1000 = 0.001\nsamples = [0.001, 0.001, 0.001]\n'
        'meter = "runmeter"\nestimated = false\ninferences = 3\npytest_energy_version = "0.1.0"\n'
    )
    runs().assert_outcomes(passed=1)  # read as one run: compared, not "new"
    assert _record(pytester)["verdict"] == "ok"
    runs("--energy-update-baseline").assert_outcomes(passed=1)
    text = (pytester.path / "energy-baseline.toml").read_text()
    assert "schema_version = 3" in text
    entry = _entry(pytester)
    assert len(entry.runs) == 2 and entry.runs[0].date == ""  # the migrated run, then this one


def test_a_run_offset_within_the_prior_spread_passes(pytester: pytest.Pytester, runs) -> None:
    # One recorded run, no noise: +4% is beyond the 3% tolerance, but within what run-to-run
    # spread (prior 2% for measured meters) explains for a one-run baseline.
    runs("--energy-update-baseline").assert_outcomes(passed=1)
    result = runs(level=1.04)
    result.assert_outcomes(passed=1)
    comparison = _record(pytester)["comparison"]
    assert comparison["rule"] == "prediction"
    assert comparison["spread_runs"] == 0 and comparison["run_spread_pct"] == 2.0
    # with a tight prior the same offset is a regression
    tight = runs("--energy-run-spread=0.2", level=1.04)
    tight.assert_outcomes(failed=1)
    tight.stdout.fnmatch_lines(
        ["*run-to-run spread 0.2% from the prior (fewer than 3 baseline runs)*"]
    )


def test_the_spread_is_estimated_from_three_or_more_runs(pytester: pytest.Pytester, runs) -> None:
    for seed, level in enumerate([1.0, 1.002, 0.998, 1.001]):
        runs(
            "--energy-update-baseline", level=level, seed=seed, WINDOW_NOISE="0.002"
        ).assert_outcomes(passed=1)
    result = runs(level=1.08, seed=9, WINDOW_NOISE="0.002")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*run-to-run spread *% from 4 baseline runs*"])
    assert _record(pytester)["comparison"]["spread_runs"] == 4


def test_outlier_windows_are_flagged_and_cannot_hide_a_regression(
    pytester: pytest.Pytester, runs
) -> None:
    # Two baseline windows 30% high (calls 3 and 6: warm-up is call 0, then one call per
    # window), then a +20% change: still caught, and the outliers are reported.
    runs(
        "--energy-update-baseline", "--energy-rounds=10", WINDOW_NOISE="0.005", OUTLIERS="3,6"
    ).assert_outcomes(passed=1)
    result = runs("--energy-rounds=10", level=1.2, seed=1, WINDOW_NOISE="0.005", OUTLIERS="")
    result.assert_outcomes(failed=1)
    comparison = _record(pytester)["comparison"]
    assert len(comparison["baseline_outlier_windows"]) == 2
    result.stdout.fnmatch_lines(["*outlier windows set aside: 0 of this run, 2 of the baseline*"])


def test_adaptive_rounds_stop_early_and_new_tests_take_ten(pytester: pytest.Pytester, runs) -> None:
    runs("--energy-update-baseline", WINDOW_NOISE="0.005").assert_outcomes(passed=1)
    assert len(_entry(pytester).samples) == 10  # no baseline yet: a full 10 windows
    runs(seed=1, WINDOW_NOISE="0.005").assert_outcomes(passed=1)
    assert len(_record(pytester)["windows"]) < 10  # unchanged and quiet: settled early
    runs("--energy-rounds=7", seed=2, WINDOW_NOISE="0.005").assert_outcomes(passed=1)
    assert len(_record(pytester)["windows"]) == 7  # a fixed count when asked


def test_strict_mode_counts_another_meter_as_no_baseline(pytester: pytest.Pytester, runs) -> None:
    runs("--energy-update-baseline").assert_outcomes(passed=1)
    text = (pytester.path / "energy-baseline.toml").read_text()
    (pytester.path / "energy-baseline.toml").write_text(
        text.replace('meter = "runmeter"', 'meter = "other"')
    )
    runs().assert_outcomes(passed=1)
    strict = runs("--energy-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        ["*no comparable baseline entry (the baseline was recorded with meter 'other'*"]
    )
