"""pytest_energy.stats.rule: the verdicts of compare() and compare_paired()."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.gate import evidence as describe
from pytest_energy.stats.bound import Run
from pytest_energy.stats.rule import (
    LOW_CONFIDENCE_MIN_TOLERANCE_PCT,
    Comparison,
    Status,
    compare,
    compare_paired,
)


def within_run(
    current: Sequence[float], baseline: Sequence[float], *, tolerance_pct: float, alpha: float
) -> Comparison:
    """The "u-test" rule: a prior of 0 (the run level does not move) and no history."""
    c = compare(current, baseline, tolerance_pct=tolerance_pct, alpha=alpha, run_spread_pct=0.0)
    assert c.rule == "u-test" and c.bound_ratio is None
    return c


# -- the within-run rule ("u-test") ------------------------------------------------------

BASE8 = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99]


def test_compare_regressed() -> None:
    current = [x * 1.2 for x in BASE8]
    result = within_run(current, BASE8, tolerance_pct=5.0, alpha=0.01)
    assert isinstance(result, Comparison)
    assert result.status is Status.REGRESSED
    assert result.ratio == pytest.approx(1.2)
    assert result.change_pct == pytest.approx(20.0)
    assert result.p_regressed == pytest.approx(1 / 12870)
    assert result.p_improved == 1.0
    assert not result.low_confidence
    assert (result.n_current, result.n_baseline) == (8, 8)
    assert (result.tolerance_pct, result.alpha) == (5.0, 0.01)


def test_compare_improved() -> None:
    current = [x * 0.8 for x in BASE8]
    result = within_run(current, BASE8, tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.IMPROVED
    assert result.change_pct == pytest.approx(-20.0)
    assert result.p_improved == pytest.approx(1 / 12870)


def test_compare_ok_within_tolerance() -> None:
    current = [x * 1.03 for x in BASE8]
    result = within_run(current, BASE8, tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.OK
    # the U test alone would call this significant; the tolerance holds it back
    assert result.p_regressed < 0.01


def test_compare_large_ratio_but_not_significant_is_ok() -> None:
    # median up 20% but the windows overlap heavily: the U test does not agree
    baseline = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    current = [0.5, 0.5, 1.2, 1.2, 1.2, 2.5, 2.5, 2.5]
    result = within_run(current, baseline, tolerance_pct=5.0, alpha=0.01)
    assert result.ratio == pytest.approx(1.2 / 1.5)
    # symmetrical sanity: use a shifted, still overlapping sample for the regression side
    current_up = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 9.0]
    up = within_run(current_up, baseline, tolerance_pct=5.0, alpha=0.01)
    assert up.ratio == pytest.approx(2.0 / 1.5)
    assert up.p_regressed >= 0.01
    assert not up.low_confidence
    assert up.status is Status.OK


def test_compare_low_confidence_median_decides() -> None:
    result = within_run([1.2, 1.3], [1.0, 1.1], tolerance_pct=5.0, alpha=0.01)
    assert result.low_confidence
    assert result.p_regressed >= 0.01
    assert result.status is Status.REGRESSED

    improved = within_run([0.8], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert improved.low_confidence
    assert improved.status is Status.IMPROVED

    ok = within_run([1.04], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert ok.low_confidence
    assert ok.status is Status.OK


def test_low_confidence_verdicts_use_at_least_the_minimum_tolerance() -> None:
    # +8% on one window against one: over the 5% asked for, under the 10% floor
    result = within_run([1.08], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert result.low_confidence
    assert result.tolerance_pct == LOW_CONFIDENCE_MIN_TOLERANCE_PCT == 10.0
    assert result.status is Status.OK
    assert within_run([1.12], [1.0], tolerance_pct=5.0, alpha=0.01).status is Status.REGRESSED
    # a wider tolerance than the floor is kept
    assert within_run([1.12], [1.0], tolerance_pct=20.0, alpha=0.01).tolerance_pct == 20.0
    # enough windows: the floor does not apply
    many = within_run([1.08] * 10, [1.0] * 10, tolerance_pct=5.0, alpha=0.01)
    assert not many.low_confidence and many.tolerance_pct == 5.0
    assert many.status is Status.REGRESSED


@pytest.mark.parametrize(
    ("current_median", "status"),
    [
        (5.0, Status.OK),  # ratio 1.25 exactly: at the boundary is not a regression
        (5.0 + 2**-40, Status.REGRESSED),
        (3.0, Status.OK),  # ratio 0.75 exactly
        (3.0 - 2**-40, Status.IMPROVED),
    ],
)
def test_compare_tolerance_boundary(current_median: float, status: Status) -> None:
    # powers of two keep ratio and limit exact: 5/4 == 1 + 25/100
    result = within_run([current_median], [4.0], tolerance_pct=25.0, alpha=0.01)
    assert result.low_confidence
    assert result.status is status


def test_compare_zero_tolerance() -> None:
    same, higher = [1.0] * 10, [1.0 + 1e-12] * 10
    assert within_run(same, same, tolerance_pct=0.0, alpha=0.01).status is Status.OK
    assert within_run(higher, same, tolerance_pct=0.0, alpha=0.01).status is Status.REGRESSED


def test_compare_zero_baseline_median() -> None:
    zero = [0.0] * 8
    both_zero = within_run(zero, zero, tolerance_pct=5.0, alpha=0.01)
    assert both_zero.ratio == 1.0
    assert both_zero.status is Status.OK

    up = within_run([0.1] * 8, zero, tolerance_pct=5.0, alpha=0.01)
    assert up.ratio == math.inf
    assert up.status is Status.REGRESSED
    assert math.isinf(up.change_pct)

    # baseline median zero though one baseline window is positive
    mixed = within_run([0.0, 0.0, 0.0], [0.0, 0.0, 5.0], tolerance_pct=5.0, alpha=0.01)
    assert mixed.ratio == 1.0
    assert mixed.status is Status.OK


def test_compare_identical_constant_samples() -> None:
    same = [0.5] * 8
    result = within_run(same, list(same), tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.OK
    assert result.ratio == 1.0
    assert result.p_regressed == 1.0
    assert result.p_improved == 1.0


def test_compare_identical_varied_samples_is_ok() -> None:
    result = within_run(BASE8, list(BASE8), tolerance_pct=0.0, alpha=0.01)
    assert result.status is Status.OK
    assert result.ratio == 1.0
    assert result.p_regressed > 0.5
    assert result.p_improved > 0.5


@pytest.mark.parametrize(("current", "baseline"), [([], [1.0]), ([1.0], []), ([], [])])
def test_compare_needs_samples_on_both_sides(current: list[float], baseline: list[float]) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        within_run(current, baseline, tolerance_pct=5.0, alpha=0.01)


def test_status_str() -> None:
    assert str(Status.REGRESSED) == "regressed"
    assert f"{Status.OK}" == "ok"
    assert Status("improved") is Status.IMPROVED


# -- monotonicity (property) ------------------------------------------------------------

_sample = st.one_of(
    st.integers(1, 6).map(float),  # small integers: plenty of ties
    st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(
    current=st.lists(_sample, min_size=1, max_size=8),
    baseline=st.lists(_sample, min_size=1, max_size=8),
    factor=st.one_of(st.floats(1.0, 4.0), st.sampled_from([1.0, 1.05, 1.5, 2.0])),
    tolerance=st.sampled_from([0.0, 5.0, 25.0]),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_compare_is_monotone_in_current_scale(
    current: list[float], baseline: list[float], factor: float, tolerance: float, alpha: float
) -> None:
    before = within_run(current, baseline, tolerance_pct=tolerance, alpha=alpha)
    after = within_run(
        [x * factor for x in current], baseline, tolerance_pct=tolerance, alpha=alpha
    )
    if before.status is Status.REGRESSED:
        assert after.status is Status.REGRESSED, (before, after)
    if before.status is Status.OK:
        assert after.status is not Status.IMPROVED, (before, after)


# -- runs, outlier windows, the prediction bound ------------------------------------------

NOISE10 = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.00]
HISTORY_MEDIANS = (1.0, 1.02, 0.98, 1.01, 0.99)


def _history(levels: Sequence[float] = HISTORY_MEDIANS, spread_pct: float = 0.0) -> list[Run]:
    return [Run(m, 10, spread_pct) for m in levels]


def test_the_statistical_rules_need_a_prior() -> None:
    for history in ((), _history()):
        with pytest.raises(ValueError, match="run_spread_pct, the prior run-to-run spread"):
            compare(NOISE10, NOISE10, tolerance_pct=3.0, alpha=0.01, history=history)
    # the deterministic rule has no bound, and no use for one
    c = compare(NOISE10, NOISE10, tolerance_pct=3.0, alpha=0.01, deterministic=True)
    assert c.rule == "deterministic"


def test_two_high_baseline_outliers_do_not_blind_a_regression() -> None:
    baseline = [*NOISE10[:8], 1.3, 1.3]
    current = [x * 1.2 for x in NOISE10]
    for prior in (0.0, 2.0):
        c = compare(current, baseline, tolerance_pct=3.0, alpha=0.01, run_spread_pct=prior)
        assert c.outliers_baseline == (8, 9) and c.outliers_current == ()
        assert c.p_regressed == pytest.approx(1 / math.comb(18, 10))  # 10 against the clean 8
        assert c.status is Status.REGRESSED
        assert c.n_baseline == 10  # the counts are of the windows recorded


def test_outlier_windows_cannot_fake_a_regression() -> None:
    current = [*NOISE10[:7], 1.5, 1.5, 1.5]
    c = compare(current, NOISE10, tolerance_pct=3.0, alpha=0.01, run_spread_pct=0.0)
    assert c.outliers_current == (7, 8, 9)
    assert c.ratio == pytest.approx(1.0) and c.status is Status.OK


def test_prediction_bound_from_the_prior() -> None:
    # constant windows: no within-run noise; one-run baseline at 1.0, prior 2%:
    # var = (0.02^2 + 0) + (0.02^2 + 0) / 1, bound = exp(z_0.99 * sqrt(2) * 0.02) = 1.0680
    expected = math.exp(2.3263478740408408 * math.sqrt(2.0) * 0.02)
    base = [1.0] * 10
    ok = compare([1.06] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0)
    assert ok.rule == "prediction" and ok.spread_runs == 0 and ok.run_spread_pct == 2.0
    assert ok.bound_ratio == pytest.approx(expected, rel=1e-9)
    assert ok.p_regressed < 0.01 and ok.ratio > 1.03
    assert ok.status is Status.OK  # above the tolerance, significant, inside the bound
    assert compare([1.07] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0).status is (
        Status.REGRESSED
    )
    # improvement mirrors, against the lower bound exp(-0.0658) = 0.9363
    down = compare([0.94] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0)
    assert down.bound_ratio == pytest.approx(1 / expected, rel=1e-9)
    assert down.status is Status.OK and not down.improved_beyond_bound
    down = compare([0.93] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0)
    assert down.status is Status.IMPROVED and down.improved_beyond_bound
    # a prior of zero: the run level does not move, the U test decides (outliers set aside)
    zero = compare([1.04] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=0.0)
    assert zero.status is Status.REGRESSED
    assert zero.rule == "u-test" and zero.run_spread_pct == 0.0 and zero.bound_ratio is None


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_prediction_bound_from_the_history(prior: float) -> None:
    logs = [math.log(m) for m in HISTORY_MEDIANS]
    mean = sum(logs) / 5
    var = sum((x - mean) ** 2 for x in logs) / 4
    spread2 = (4 * (prior / 100) ** 2 + 4 * var) / 8  # pooled: 4 df of prior, 4 of history
    upper = math.exp(mean + 2.896459447710 * math.sqrt(spread2 * (1 + 1 / 5)))  # t(0.99, 8)
    base = [0.99] * 10  # the latest run's windows
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "history": _history(), "run_spread_pct": prior}
    c = compare([1.05] * 10, base, **kw)  # type: ignore[arg-type]
    assert c.rule == "prediction" and c.spread_runs == 5 and c.outlying_runs == ()
    assert c.run_spread_pct == pytest.approx(math.sqrt(spread2) * 100, rel=1e-9)
    assert c.bound_ratio == pytest.approx(upper / 0.99, rel=1e-9)
    above = compare([upper * 1.001] * 10, base, **kw)  # type: ignore[arg-type]
    below = compare([upper * 0.999] * 10, base, **kw)  # type: ignore[arg-type]
    assert above.status is Status.REGRESSED and below.status is Status.OK


def test_history_of_two_runs_uses_the_prior() -> None:
    two = _history()[-2:]
    c = compare(
        [1.0] * 10, [0.99] * 10, tolerance_pct=3.0, alpha=0.01, history=two, run_spread_pct=1.0
    )
    assert c.rule == "prediction" and c.spread_runs == 0 and c.run_spread_pct == 1.0


def test_describe_states_the_spread_and_its_source() -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": 2.0}
    pooled = compare([1.2] * 10, [0.99] * 10, history=_history(), **kw)  # type: ignore[arg-type]
    text = describe(pooled)
    assert "from 5 baseline runs pooled with the prior" in text
    assert "upper prediction bound" in text and "+21.2%" in text and "\n" not in text
    prior = compare([1.2] * 10, [1.0] * 10, **kw)  # type: ignore[arg-type]
    assert "spread 2% from the prior (fewer than 3 baseline runs)" in describe(prior)
    flagged = compare([x * 1.2 for x in NOISE10], [*NOISE10[:8], 1.3, 1.3], **kw)  # type: ignore[arg-type]
    assert "0 of this run, 2 of the baseline" in describe(flagged)


def test_deterministic_rule_is_the_ratio_alone() -> None:
    kw = {"tolerance_pct": 1.0, "alpha": 0.01, "deterministic": True}
    up = compare([1.02], [1.0], **kw)  # type: ignore[arg-type]
    assert up.rule == "deterministic" and up.status is Status.REGRESSED
    assert not up.low_confidence and up.tolerance_pct == 1.0  # no 10% floor
    assert compare([1.005], [1.0], **kw).status is Status.OK  # type: ignore[arg-type]
    down = compare([0.98], [1.0], **kw)  # type: ignore[arg-type]
    assert down.status is Status.IMPROVED and down.improved_beyond_bound
    # a history or prior changes nothing, an outlying run included
    history = _history([1.0, 10.0, 1.0, 1.0, 1.0])
    same = compare([1.02], [1.0], history=history, run_spread_pct=5.0, **kw)  # type: ignore[arg-type]
    assert same.status is Status.REGRESSED and same.bound_ratio is None
    assert same.outlying_runs == ()


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_zeros_and_infinities_never_raise_or_give_nan(prior: float) -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": prior}
    history = [
        Run(0.0, 5, 0.0),
        Run(math.inf, 5, 0.0),
        Run(0.0, 5, 0.0),
    ]
    cases = [
        ([0.0] * 5, [0.0] * 5, Status.OK),
        ([1.0] * 5, [0.0] * 5, Status.REGRESSED),
        ([math.inf] * 5, [1.0] * 5, Status.REGRESSED),
        ([1.0] * 5, [math.inf] * 5, Status.IMPROVED),
        ([math.inf] * 5, [math.inf] * 5, Status.OK),
    ]
    for current, baseline, status in cases:
        for hist in ((), history):
            c = compare(current, baseline, history=hist, **kw)  # type: ignore[arg-type]
            assert not math.isnan(c.ratio) and c.status is status, (current, baseline, hist)
            assert c.bound_ratio is None or math.isfinite(c.bound_ratio)
            describe(c)


def test_nan_samples_are_refused_by_every_rule() -> None:
    for kw in ({"run_spread_pct": 0.0}, {"run_spread_pct": 2.0}, {"deterministic": True}):
        with pytest.raises(ValueError, match="NaN"):
            compare([math.nan], [1.0], tolerance_pct=3.0, alpha=0.01, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        compare_paired([1.0], [math.nan], tolerance_pct=3.0, alpha=0.01)


_positive = st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    current=st.lists(_positive, min_size=1, max_size=12),
    baseline=st.lists(_positive, min_size=1, max_size=12),
    medians=st.lists(_positive, max_size=6),
    factor=st.floats(1.0, 3.0),
    prior=st.sampled_from([0.0, 1.0, 2.0, 5.0]),
)
def test_prediction_rule_is_monotone_and_never_nan(
    current: list[float],
    baseline: list[float],
    medians: list[float],
    factor: float,
    prior: float,
) -> None:
    # the medians range over four orders of magnitude: runs are set aside, the latest too
    history = [Run(m, 10, 2.0) for m in medians]
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "history": history, "run_spread_pct": prior}
    before = compare(current, baseline, **kw)  # type: ignore[arg-type]
    after = compare([x * factor for x in current], baseline, **kw)  # type: ignore[arg-type]
    for c in (before, after):
        assert not math.isnan(c.ratio) and not math.isnan(c.p_regressed)
        assert c.bound_ratio is None or math.isfinite(c.bound_ratio)
        assert "nan" not in describe(c)
    assert before.outlying_runs == after.outlying_runs  # this run's level does not enter
    if before.status is Status.REGRESSED:
        assert after.status is Status.REGRESSED, (before, after)
    if before.status is Status.OK:
        assert after.status is not Status.IMPROVED, (before, after)


# -- issue 20 item 4: one outlying run must not blind the gate -----------------------------

CLEAN_LEVELS = (1.0, 1.01, 0.99, 1.005, 0.995)


def _judge(
    change: float, levels: Sequence[float], baseline_level: float | None = None
) -> Comparison:
    """This run at ``change`` times the clean level, against a history at ``levels`` whose
    latest run's windows are at ``baseline_level`` (by default, its recorded level)."""
    level = levels[-1] if baseline_level is None else baseline_level
    return compare(
        [x * change for x in NOISE10],
        [x * level for x in NOISE10],
        tolerance_pct=3.0,
        alpha=0.01,
        history=_history(levels, spread_pct=1.0),
        run_spread_pct=2.0,
    )


@pytest.mark.parametrize("change", [1.3, 3.0, 5.0])  # +30%, +200%, +400%
@pytest.mark.parametrize("edited", [0, 2, 4])  # the oldest, a middle and the latest run
def test_one_10x_run_in_a_5_run_history_does_not_blind_the_gate(change: float, edited: int) -> None:
    levels = list(CLEAN_LEVELS)
    levels[edited] *= 10.0
    c = _judge(change, levels)  # the latest run's windows are at its level, 10x when edited
    assert c.status is Status.REGRESSED, c
    assert c.outlying_runs == (edited,)
    assert c.baseline_set_aside is (edited == 4)
    assert c.rule == "prediction" and c.spread_runs == 4  # the four runs kept, pooled


@pytest.mark.parametrize("edited", [0, 2, 4])
def test_with_one_10x_run_an_unchanged_test_passes_and_an_improvement_shows(edited: int) -> None:
    levels = list(CLEAN_LEVELS)
    levels[edited] *= 10.0
    same = _judge(1.0, levels)
    assert same.status is Status.OK and same.outlying_runs == (edited,)
    assert abs(same.change_pct) < 1.0  # against the clean level, also when the latest is 10x
    better = _judge(0.7, levels)
    assert better.status is Status.IMPROVED and better.improved_beyond_bound


def test_a_3x_run_and_two_outlying_runs_are_set_aside() -> None:
    for levels, outlying in (
        ((1.0, 3.0, 0.99, 1.005, 0.995), (1,)),
        ((1.0, 10.0, 0.99, 3.0, 0.995), (1, 3)),
        ((1.0, 0.1, 0.99, 1.005, 10.0), (1, 4)),
    ):
        c = _judge(1.3, levels)
        assert c.status is Status.REGRESSED and c.outlying_runs == outlying, levels
        assert c.spread_runs == 5 - len(outlying)


def test_three_runs_are_enough_to_set_one_aside_and_two_are_not() -> None:
    three = _judge(1.3, (1.0, 10.0, 1.0))
    assert three.status is Status.REGRESSED and three.outlying_runs == (1,)
    assert three.spread_runs == 0 and three.run_spread_pct == 2.0  # two kept: the prior alone
    two = _judge(1.3, (10.0, 1.0))
    assert two.outlying_runs == () and two.status is Status.OK  # blind: which one is far?


def test_an_edited_latest_run_summary_is_set_aside_but_its_windows_are_used() -> None:
    c = _judge(1.3, (1.0, 1.01, 0.99, 1.005, 9.95), baseline_level=0.995)
    assert c.outlying_runs == (4,) and not c.baseline_set_aside
    assert c.ratio == pytest.approx(1.3 / 0.995) and c.p_regressed < 1e-4  # the U test
    assert c.status is Status.REGRESSED


def test_edited_latest_windows_are_set_aside_with_their_run() -> None:
    c = _judge(1.3, CLEAN_LEVELS, baseline_level=9.95)
    assert c.outlying_runs == (4,) and c.baseline_set_aside
    reference = math.exp(sum(math.log(m) for m in CLEAN_LEVELS[:4]) / 4)
    assert c.ratio == pytest.approx(1.3 / reference)
    assert c.p_regressed == pytest.approx(2.0**-10)  # all ten windows above the level
    assert c.status is Status.REGRESSED


def test_against_the_runs_level_few_windows_are_low_confidence() -> None:
    levels = (1.0, 1.01, 0.99, 1.005, 9.95)
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "history": _history(levels), "run_spread_pct": 2.0}
    # six windows: the signed-rank test cannot reach 0.01 (2^-6 = 1/64): a 10% tolerance
    c = compare([1.08] * 6, [9.95] * 10, **kw)  # type: ignore[arg-type]
    assert c.baseline_set_aside and c.low_confidence and c.tolerance_pct == 10.0
    assert c.status is Status.OK
    assert compare([1.3] * 6, [9.95] * 10, **kw).status is Status.REGRESSED  # type: ignore[arg-type]


def test_describe_names_the_runs_set_aside() -> None:
    aside = describe(_judge(1.3, (1.0, 10.0, 0.99, 3.0, 0.995)))
    assert "outlying recorded runs set aside: run 2, 4 (1 = oldest)" in aside
    latest = describe(_judge(1.3, (1.0, 1.01, 0.99, 1.005, 9.95)))
    assert (
        "signed-rank p=0.00098 (alpha 0.01), 10 windows against the level of the runs kept"
        in latest
    )
    assert "run 5 (1 = oldest) (the latest run's windows included)" in latest


# -- compare_paired ------------------------------------------------------------------------

DRIFTING = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]


def test_paired_analysis_sees_through_drift() -> None:
    candidate = [x * 1.05 for x in DRIFTING]
    paired = compare_paired(DRIFTING, candidate, tolerance_pct=3.0, alpha=0.01)
    assert paired.rule == "paired" and paired.ratio == pytest.approx(1.05)
    assert paired.p_regressed == pytest.approx(1 / 256)  # all eight pairs up
    assert paired.status is Status.REGRESSED and paired.n_current == 8
    # the same windows as two independent samples: the drift swamps +5%
    unpaired = within_run(candidate, DRIFTING, tolerance_pct=3.0, alpha=0.01)
    assert unpaired.status is Status.OK
    down = compare_paired(candidate, DRIFTING, tolerance_pct=3.0, alpha=0.01)
    assert down.status is Status.IMPROVED and down.ratio == pytest.approx(1 / 1.05)


def test_paired_low_confidence_and_outlier_pairs() -> None:
    # six pairs: p >= 1/64, above alpha 0.01, so the ratio decides against the 10% floor
    six = compare_paired(
        DRIFTING[:6], [x * 1.05 for x in DRIFTING[:6]], tolerance_pct=3.0, alpha=0.01
    )
    assert six.low_confidence and six.tolerance_pct == 10.0 and six.status is Status.OK
    base = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 1.0]
    cand = [x * 1.05 for x in base]
    cand[3] = 0.5  # one broken window would turn a pair against the change
    c = compare_paired(base, cand, tolerance_pct=3.0, alpha=0.01)
    assert c.outliers_current == (3,) and c.n_current == 9
    assert c.p_regressed == pytest.approx(1 / 512) and c.status is Status.REGRESSED


_extreme = st.one_of(
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.inf, 1.0, 1.5, 5e-324, 1e-300]),
)


@settings(max_examples=150, deadline=None)
@given(
    current=st.lists(_extreme, min_size=1, max_size=12),
    baseline=st.lists(_extreme, min_size=1, max_size=12),
    runs=st.lists(st.tuples(_extreme, st.integers(0, 12), st.floats(0, 50)), max_size=5),
    prior=st.sampled_from([0.0, 2.0]),
    deterministic=st.booleans(),
)
def test_every_rule_survives_zeros_infinities_and_extremes(
    current: list[float],
    baseline: list[float],
    runs: list[tuple[float, int, float]],
    prior: float,
    deterministic: bool,
) -> None:
    history = [Run(m, w, spread) for m, w, spread in runs]
    kw = {"tolerance_pct": 3.0, "alpha": 0.01}
    c = compare(
        current, baseline, history=history, run_spread_pct=prior, deterministic=deterministic, **kw
    )  # type: ignore[arg-type]
    p = compare_paired(current, baseline, **kw)  # type: ignore[arg-type]
    for result in (c, p):
        assert not math.isnan(result.ratio)
        assert result.bound_ratio is None or math.isfinite(result.bound_ratio)
        describe(result)
