"""pytest_energy.stats._moving: storage rounding and the recorded run, until they move to
the record module (the failure prose, ``describe``, is tested with the rules it describes,
in test_stats_rule.py)."""

from __future__ import annotations

from pytest_energy.stats import RunSummary, round_sample


def test_run_summary_of_samples() -> None:
    run = RunSummary.of([5.0, 1.0, 4.0, 2.0, 3.0], "2026-12-01")
    # median 3, absolute deviations 2 1 0 1 2 -> MAD 1
    # the spread is stored to 3 significant digits: 1.4826 / 3 * 100 = 49.42 -> 49.4
    assert run == RunSummary(3.0, 5, 49.4, "2026-12-01")
    assert RunSummary.of([2.0], "").spread_pct == 0.0
    assert RunSummary.of([0.0, 0.0, 1.0], "").spread_pct == 0.0  # median 0: no relative spread


def test_run_summary_rounds_its_median_like_a_sample() -> None:
    run = RunSummary.of([1.23456789, 1.23456789, 2.0], "")
    assert run.kwh_per_1000 == round_sample(1.23456789) == 1.23457
