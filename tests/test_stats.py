"""Unit tests for pytest_energy.stats: medians, the U test and the regression verdict."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy import stats
from pytest_energy.stats import (
    EXACT_MAX_N,
    LOW_CONFIDENCE_MIN_TOLERANCE_PCT,
    Comparison,
    Status,
    can_reach,
    coefficient_of_variation,
    compare,
    mann_whitney_greater,
    median,
)

# -- reference implementations, written independently of the module under test ---------


def reference_ranks(values: Sequence[float]) -> list[Fraction]:
    """Average ranks (1-based) computed the slow, obvious way."""
    result = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        # ranks below+1 .. below+equal, averaged
        result.append(Fraction(2 * below + equal + 1, 2))
    return result


def brute_force_p_greater(current: Sequence[float], baseline: Sequence[float]) -> Fraction:
    """P(rank sum of a random n1-subset >= observed rank sum of ``current``), by enumeration.

    Under the null hypothesis every assignment of the pooled ranks to the two groups is
    equally likely; enumerate all of them.
    """
    pooled = list(current) + list(baseline)
    ranks = reference_ranks(pooled)
    n1 = len(current)
    observed = sum(ranks[:n1])
    hits = 0
    total = 0
    for chosen in itertools.combinations(range(len(pooled)), n1):
        total += 1
        if sum(ranks[i] for i in chosen) >= observed:
            hits += 1
    assert total == math.comb(len(pooled), n1)
    return Fraction(hits, total)


def reference_asymptotic_p_greater(current: Sequence[float], baseline: Sequence[float]) -> float:
    """scipy.stats.mannwhitneyu(alternative="greater", method="asymptotic") re-derived."""
    n1, n2 = len(current), len(baseline)
    n = n1 + n2
    ranks = [float(r) for r in reference_ranks(list(current) + list(baseline))]
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    tie = sum(t**3 - t for t in counts.values())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie / (n * (n - 1))))
    z = (u1 - mu - 0.5) / sigma
    return 0.5 * math.erfc(z / math.sqrt(2))


# -- median and CV ----------------------------------------------------------------------


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7]) == 7.0
    assert isinstance(median([7]), float)


def test_median_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="no samples"):
        median([])


def test_coefficient_of_variation() -> None:
    # mean 2, sample stdev 1
    assert coefficient_of_variation([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert coefficient_of_variation([5.0, 5.0, 5.0]) == 0.0


@pytest.mark.parametrize("samples", [[], [4.2], [0.0, 0.0]])
def test_coefficient_of_variation_degenerate_is_zero(samples: list[float]) -> None:
    assert coefficient_of_variation(samples) == 0.0


# -- can_reach --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "n1", "n2", "expected"),
    [
        (0.01, 8, 8, True),  # 1/12870
        (0.01, 3, 3, False),  # 1/20
        (0.05, 3, 3, False),  # 1/20 is not < 0.05
        (0.051, 3, 3, True),
        (0.01, 1, 99, False),  # 1/100 is not < 0.01
        (0.01, 1, 100, True),  # 1/101
        (0.5, 0, 5, False),
        (0.5, 5, 0, False),
        (0.01, 4, 4, False),  # 1/70
        (0.01, 4, 5, True),  # 1/126
        (0.01, 2, 12, False),  # 1/91
        (0.01, 2, 13, True),  # 1/105
    ],
)
def test_can_reach(alpha: float, n1: int, n2: int, expected: bool) -> None:
    assert can_reach(alpha, n1, n2) is expected


# -- ranks ------------------------------------------------------------------------------


def test_ranks_without_ties() -> None:
    assert stats._ranks([30.0, 10.0, 20.0]) == [3.0, 1.0, 2.0]


def test_ranks_with_ties_share_average_rank() -> None:
    assert stats._ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert stats._ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert stats._ranks([2.0, 1.0, 2.0, 1.0, 2.0]) == [4.0, 1.5, 4.0, 1.5, 4.0]
    assert stats._ranks([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4).map(float), max_size=12))
def test_ranks_match_reference(values: list[float]) -> None:
    assert stats._ranks(values) == [float(r) for r in reference_ranks(values)]


# -- exact U test against brute force ---------------------------------------------------

EXACT_CASES = [
    ([5.0], [1.0]),
    ([1.0], [5.0]),
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
    ([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]),
    ([1.0, 4.0, 6.0, 7.0], [2.0, 3.0, 5.0]),
    ([0.3, 0.1, 0.7, 0.9, 0.2], [0.4, 0.5, 0.6, 0.8]),
    ([float(x) for x in range(8, 16)], [float(x) for x in range(8)]),
    ([float(x) for x in range(0, 16, 2)], [float(x) for x in range(1, 16, 2)]),
    # ties within and across the groups
    ([1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0]),
    ([2.0, 2.0, 2.0], [2.0, 2.0]),
    ([1.0, 1.0, 5.0, 5.0, 5.0, 9.0], [1.0, 5.0, 5.0, 9.0, 9.0]),
    ([3.0] * 8, [1.0, 3.0, 3.0, 3.0, 5.0, 5.0, 3.0, 1.0]),
    ([1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0], [2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
]


@pytest.mark.parametrize(("current", "baseline"), EXACT_CASES)
def test_exact_p_matches_brute_force(current: list[float], baseline: list[float]) -> None:
    expected = brute_force_p_greater(current, baseline)
    assert mann_whitney_greater(current, baseline) == pytest.approx(float(expected), abs=1e-12)


def test_exact_p_of_complete_separation_is_one_over_binomial() -> None:
    current = [float(x) for x in range(8, 16)]
    baseline = [float(x) for x in range(8)]
    assert mann_whitney_greater(current, baseline) == pytest.approx(1 / 12870, rel=1e-12)
    assert mann_whitney_greater(baseline, current) == 1.0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 5).map(float), min_size=1, max_size=8),
    st.lists(st.integers(0, 5).map(float), min_size=1, max_size=8),
)
def test_exact_p_matches_brute_force_with_ties(current: list[float], baseline: list[float]) -> None:
    expected = brute_force_p_greater(current, baseline)
    assert mann_whitney_greater(current, baseline) == pytest.approx(float(expected), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(0, 1, allow_nan=False, allow_infinity=False), min_size=1, max_size=7, unique=True
    ),
    st.lists(
        st.floats(0, 1, allow_nan=False, allow_infinity=False), min_size=1, max_size=7, unique=True
    ),
)
def test_exact_p_matches_brute_force_continuous(
    current: list[float], baseline: list[float]
) -> None:
    expected = brute_force_p_greater(current, baseline)
    assert mann_whitney_greater(current, baseline) == pytest.approx(float(expected), abs=1e-12)


def test_empty_side_gives_p_one() -> None:
    assert mann_whitney_greater([], [1.0, 2.0]) == 1.0
    assert mann_whitney_greater([1.0, 2.0], []) == 1.0


# -- normal approximation ---------------------------------------------------------------


def _large(shift: float, n1: int = 25, n2: int = 25) -> tuple[list[float], list[float]]:
    # interleaved deterministic data with ties (values repeat every 10)
    baseline = [float(i % 10) for i in range(n2)]
    current = [float((i * 3) % 10) + shift for i in range(n1)]
    return current, baseline


def test_large_samples_use_normal_approximation() -> None:
    current, baseline = _large(0.5)
    assert len(current) + len(baseline) > EXACT_MAX_N
    p = mann_whitney_greater(current, baseline)
    assert 0.0 < p < 1.0
    assert p == pytest.approx(reference_asymptotic_p_greater(current, baseline), abs=1e-12)


@pytest.mark.parametrize(("n1", "n2"), [(21, 20), (30, 12), (50, 50), (8, 60)])
def test_normal_approximation_matches_reference(n1: int, n2: int) -> None:
    current, baseline = _large(0.25, n1, n2)
    assert n1 + n2 > EXACT_MAX_N
    assert mann_whitney_greater(current, baseline) == pytest.approx(
        reference_asymptotic_p_greater(current, baseline), abs=1e-9
    )


def test_normal_approximation_is_monotone_in_shift() -> None:
    ps = [mann_whitney_greater(*_large(shift)) for shift in (-3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 12.0)]
    assert all(0.0 <= p <= 1.0 for p in ps)
    assert all(a >= b for a, b in itertools.pairwise(ps)), ps
    assert ps[0] > 0.99
    assert ps[-1] < 1e-6


def test_normal_approximation_all_tied_is_p_one() -> None:
    assert mann_whitney_greater([1.0] * 30, [1.0] * 30) == 1.0


@pytest.mark.parametrize("shift", [-0.5, 0.0, 0.5, 1.0])
def test_normal_approximation_close_to_exact_on_same_data(shift: float) -> None:
    # Just over EXACT_MAX_N the approximation must agree closely with the exact distribution
    # of the same data; a formula error (wrong variance, sign, correction) would be far off.
    current, baseline = _large(shift, 21, 20)
    approx = mann_whitney_greater(current, baseline)
    doubled = [round(2 * r) for r in reference_ranks(current + baseline)]
    exact = stats._exact_upper_tail(doubled, len(current), sum(doubled[: len(current)]))
    assert approx == pytest.approx(exact, abs=0.01)


def test_normal_approximation_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for shift in (-1.0, 0.0, 0.25, 1.0):
        current, baseline = _large(shift, 30, 22)
        expected = scipy_stats.mannwhitneyu(
            current, baseline, alternative="greater", method="asymptotic"
        ).pvalue
        assert mann_whitney_greater(current, baseline) == pytest.approx(expected, abs=1e-6)


# -- compare() --------------------------------------------------------------------------

BASE8 = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99]


def test_compare_regressed() -> None:
    current = [x * 1.2 for x in BASE8]
    result = compare(current, BASE8, tolerance_pct=5.0, alpha=0.01)
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
    result = compare(current, BASE8, tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.IMPROVED
    assert result.change_pct == pytest.approx(-20.0)
    assert result.p_improved == pytest.approx(1 / 12870)


def test_compare_ok_within_tolerance() -> None:
    current = [x * 1.03 for x in BASE8]
    result = compare(current, BASE8, tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.OK
    # the U test alone would call this significant; the tolerance holds it back
    assert result.p_regressed < 0.01


def test_compare_large_ratio_but_not_significant_is_ok() -> None:
    # median up 20% but the windows overlap heavily: the U test does not agree
    baseline = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    current = [0.5, 0.5, 1.2, 1.2, 1.2, 2.5, 2.5, 2.5]
    result = compare(current, baseline, tolerance_pct=5.0, alpha=0.01)
    assert result.ratio == pytest.approx(1.2 / 1.5)
    # symmetrical sanity: use a shifted, still overlapping sample for the regression side
    current_up = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 9.0]
    up = compare(current_up, baseline, tolerance_pct=5.0, alpha=0.01)
    assert up.ratio == pytest.approx(2.0 / 1.5)
    assert up.p_regressed >= 0.01
    assert not up.low_confidence
    assert up.status is Status.OK


def test_compare_low_confidence_median_decides() -> None:
    result = compare([1.2, 1.3], [1.0, 1.1], tolerance_pct=5.0, alpha=0.01)
    assert result.low_confidence
    assert result.p_regressed >= 0.01
    assert result.status is Status.REGRESSED

    improved = compare([0.8], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert improved.low_confidence
    assert improved.status is Status.IMPROVED

    ok = compare([1.04], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert ok.low_confidence
    assert ok.status is Status.OK


def test_low_confidence_verdicts_use_at_least_the_minimum_tolerance() -> None:
    # +8% on one window against one: over the 5% asked for, under the 10% floor
    result = compare([1.08], [1.0], tolerance_pct=5.0, alpha=0.01)
    assert result.low_confidence
    assert result.tolerance_pct == LOW_CONFIDENCE_MIN_TOLERANCE_PCT == 10.0
    assert result.status is Status.OK
    assert compare([1.12], [1.0], tolerance_pct=5.0, alpha=0.01).status is Status.REGRESSED
    # a wider tolerance than the floor is kept
    assert compare([1.12], [1.0], tolerance_pct=20.0, alpha=0.01).tolerance_pct == 20.0
    # enough windows: the floor does not apply
    many = compare([1.08] * 10, [1.0] * 10, tolerance_pct=5.0, alpha=0.01)
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
    result = compare([current_median], [4.0], tolerance_pct=25.0, alpha=0.01)
    assert result.low_confidence
    assert result.status is status


def test_compare_zero_tolerance() -> None:
    same, higher = [1.0] * 10, [1.0 + 1e-12] * 10
    assert compare(same, same, tolerance_pct=0.0, alpha=0.01).status is Status.OK
    assert compare(higher, same, tolerance_pct=0.0, alpha=0.01).status is Status.REGRESSED


def test_compare_zero_baseline_median() -> None:
    zero = [0.0] * 8
    both_zero = compare(zero, zero, tolerance_pct=5.0, alpha=0.01)
    assert both_zero.ratio == 1.0
    assert both_zero.status is Status.OK

    up = compare([0.1] * 8, zero, tolerance_pct=5.0, alpha=0.01)
    assert up.ratio == math.inf
    assert up.status is Status.REGRESSED
    assert math.isinf(up.change_pct)

    # baseline median zero though one baseline window is positive
    mixed = compare([0.0, 0.0, 0.0], [0.0, 0.0, 5.0], tolerance_pct=5.0, alpha=0.01)
    assert mixed.ratio == 1.0
    assert mixed.status is Status.OK


def test_compare_identical_constant_samples() -> None:
    same = [0.5] * 8
    result = compare(same, list(same), tolerance_pct=5.0, alpha=0.01)
    assert result.status is Status.OK
    assert result.ratio == 1.0
    assert result.p_regressed == 1.0
    assert result.p_improved == 1.0


def test_compare_identical_varied_samples_is_ok() -> None:
    result = compare(BASE8, list(BASE8), tolerance_pct=0.0, alpha=0.01)
    assert result.status is Status.OK
    assert result.ratio == 1.0
    assert result.p_regressed > 0.5
    assert result.p_improved > 0.5


@pytest.mark.parametrize(("current", "baseline"), [([], [1.0]), ([1.0], []), ([], [])])
def test_compare_needs_samples_on_both_sides(current: list[float], baseline: list[float]) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        compare(current, baseline, tolerance_pct=5.0, alpha=0.01)


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
    before = compare(current, baseline, tolerance_pct=tolerance, alpha=alpha)
    after = compare([x * factor for x in current], baseline, tolerance_pct=tolerance, alpha=alpha)
    if before.status is Status.REGRESSED:
        assert after.status is Status.REGRESSED, (before, after)
    if before.status is Status.OK:
        assert after.status is not Status.IMPROVED, (before, after)


# -- issue 12: runs, outliers, the prediction bound, paired and adaptive rules ------------

from pytest_energy.stats import (  # noqa: E402
    DEFAULT_MAX_ROUNDS,
    DEFAULT_RUN_SPREAD_PCT,
    MIN_ADAPTIVE_ROUNDS,
    NEW_TEST_ROUNDS,
    OUTLIER_THRESHOLD,
    RunSummary,
    compare_paired,
    describe,
    outliers,
    settled,
    signed_rank_greater,
    student_t_quantile,
)

NOISE10 = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.00]


def test_run_summary_of_samples() -> None:
    run = RunSummary.of([5.0, 1.0, 4.0, 2.0, 3.0], "2026-12-01")
    # median 3, absolute deviations 2 1 0 1 2 -> MAD 1
    # the spread is stored to 3 significant digits: 1.4826 / 3 * 100 = 49.42 -> 49.4
    assert run == RunSummary(3.0, 5, 49.4, "2026-12-01")
    assert RunSummary.of([2.0], "").spread_pct == 0.0
    assert RunSummary.of([0.0, 0.0, 1.0], "").spread_pct == 0.0  # median 0: no relative spread


def test_defaults_are_documented_values() -> None:
    assert set(DEFAULT_RUN_SPREAD_PCT) == {"measured", "estimated"}
    assert DEFAULT_MAX_ROUNDS == 20 and NEW_TEST_ROUNDS == 10
    assert 1 < MIN_ADAPTIVE_ROUNDS <= NEW_TEST_ROUNDS
    assert OUTLIER_THRESHOLD == 5.0


def test_outliers_flags_far_windows_only() -> None:
    # median 1.0; deviations sort to 0 0 0 .01 .01 .02 .02 .03 .03 .3 -> MAD .015,
    # robust sd .022239, limit 5 * .022239 = .111: only the 1.3 window is beyond it
    samples = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 1.0, 1.3]
    assert outliers(samples) == (9,)
    assert outliers([1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 1.0, 1.1]) == ()


def test_outliers_floor_and_small_runs() -> None:
    # MAD 0: the 1% floor sets the scale, limit 5%
    assert outliers([1.0] * 9 + [1.06]) == (9,)
    assert outliers([1.0] * 9 + [1.04]) == ()
    assert outliers([1.0, 5.0]) == ()  # two windows: neither is "far"
    assert outliers([1.0, 1.0, 1.0, math.inf]) == (3,)
    assert outliers([math.inf, math.inf, math.inf]) == ()


def test_comparison_old_constructor_gets_defaults() -> None:
    c = Comparison(Status.OK, 1.0, 0.5, 0.5, False, 3.0, 0.01, 10, 10)
    assert c.rule == "u-test" and c.run_spread_pct is None and c.spread_runs == 0
    assert c.bound_ratio is None and c.outliers_current == () and not c.improved_beyond_bound


def test_without_history_or_prior_the_old_rule_decides_and_flags_outliers() -> None:
    baseline = [*NOISE10[:8], 1.3, 1.3]
    current = [x * 1.2 for x in NOISE10]
    c = compare(current, baseline, tolerance_pct=3.0, alpha=0.01)
    assert c.rule == "u-test" and c.run_spread_pct is None and c.bound_ratio is None
    assert c.outliers_baseline == (8, 9) and c.outliers_current == ()
    # the two +30% windows outrank every current window: the U test vetoes (U = 80 of 100)
    assert c.p_regressed > 0.01
    assert c.status is Status.OK


def test_two_high_baseline_outliers_do_not_blind_a_regression() -> None:
    baseline = [*NOISE10[:8], 1.3, 1.3]
    current = [x * 1.2 for x in NOISE10]
    c = compare(current, baseline, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0)
    assert c.outliers_baseline == (8, 9)
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
    # a prior of zero: the run level does not move, the old rule decides (outliers set aside)
    zero = compare([1.04] * 10, base, tolerance_pct=3.0, alpha=0.01, run_spread_pct=0.0)
    assert zero.status is Status.REGRESSED
    assert zero.rule == "u-test" and zero.run_spread_pct == 0.0 and zero.bound_ratio is None


HISTORY_MEDIANS = (1.0, 1.02, 0.98, 1.01, 0.99)


def _history() -> list[RunSummary]:
    return [RunSummary(m, 10, 0.0, f"2026-11-0{i + 1}") for i, m in enumerate(HISTORY_MEDIANS)]


def _expected_upper(prior_pct: float | None) -> tuple[float, float]:
    """Upper bound and spread (percent) for _history(), computed independently."""
    logs = [math.log(m) for m in HISTORY_MEDIANS]
    mean = sum(logs) / 5
    var = sum((x - mean) ** 2 for x in logs) / 4
    if prior_pct is None:
        spread2, t = var, 3.746947387979  # t(0.99, 4 df)
    else:
        spread2, t = (4 * (prior_pct / 100) ** 2 + 4 * var) / 8, 2.896459447710  # 8 df
    return math.exp(mean + t * math.sqrt(spread2 * (1 + 1 / 5))), math.sqrt(spread2) * 100


@pytest.mark.parametrize("prior", [None, 2.0])
def test_prediction_bound_from_the_history(prior: float | None) -> None:
    upper, spread = _expected_upper(prior)
    base = [0.99] * 10  # the latest run's windows
    c = compare(
        [1.05] * 10, base, tolerance_pct=3.0, alpha=0.01, history=_history(), run_spread_pct=prior
    )
    assert c.rule == "prediction" and c.spread_runs == 5
    assert c.prior_pooled is (prior is not None)
    assert c.run_spread_pct == pytest.approx(spread, rel=1e-9)
    assert c.bound_ratio == pytest.approx(upper / 0.99, rel=1e-9)
    above = compare(
        [upper * 1.001] * 10,
        base,
        tolerance_pct=3.0,
        alpha=0.01,
        history=_history(),
        run_spread_pct=prior,
    )
    below = compare(
        [upper * 0.999] * 10,
        base,
        tolerance_pct=3.0,
        alpha=0.01,
        history=_history(),
        run_spread_pct=prior,
    )
    assert above.status is Status.REGRESSED and below.status is Status.OK


def test_history_of_two_runs_uses_the_prior() -> None:
    two = _history()[-2:]
    c = compare(
        [1.0] * 10, [0.99] * 10, tolerance_pct=3.0, alpha=0.01, history=two, run_spread_pct=1.0
    )
    assert c.spread_runs == 0 and c.run_spread_pct == 1.0
    # ... and without a prior, the old rule
    c = compare([1.0] * 10, [0.99] * 10, tolerance_pct=3.0, alpha=0.01, history=two)
    assert c.rule == "u-test" and c.bound_ratio is None


def test_describe_states_the_spread_and_its_source() -> None:
    c = compare([1.2] * 10, [0.99] * 10, tolerance_pct=3.0, alpha=0.01, history=_history())
    text = describe(c)
    assert "from 5 baseline runs" in text and "prediction bound" in text and "+21.2%" in text
    prior = compare([1.2] * 10, [1.0] * 10, tolerance_pct=3.0, alpha=0.01, run_spread_pct=2.0)
    assert "spread 2% from the prior" in describe(prior)
    pooled = compare(
        [1.2] * 10, [0.99] * 10, tolerance_pct=3.0, alpha=0.01, history=_history(), run_spread_pct=2
    )
    assert "5 baseline runs pooled with the prior" in describe(pooled)
    flagged = compare(
        [x * 1.2 for x in NOISE10], [*NOISE10[:8], 1.3, 1.3], tolerance_pct=3.0, alpha=0.01
    )
    assert "0 of this run, 2 of the baseline" in describe(flagged)
    assert "\n" not in text


def test_deterministic_rule_is_the_ratio_alone() -> None:
    kw = {"tolerance_pct": 1.0, "alpha": 0.01, "deterministic": True}
    up = compare([1.02], [1.0], **kw)  # type: ignore[arg-type]
    assert up.rule == "deterministic" and up.status is Status.REGRESSED
    assert not up.low_confidence and up.tolerance_pct == 1.0  # no 10% floor
    assert compare([1.005], [1.0], **kw).status is Status.OK  # type: ignore[arg-type]
    down = compare([0.98], [1.0], **kw)  # type: ignore[arg-type]
    assert down.status is Status.IMPROVED and down.improved_beyond_bound
    # a history or prior changes nothing
    same = compare([1.02], [1.0], history=_history(), run_spread_pct=5.0, **kw)  # type: ignore[arg-type]
    assert same.status is Status.REGRESSED and same.bound_ratio is None


@pytest.mark.parametrize("prior", [None, 2.0])
def test_zeros_and_infinities_never_raise_or_give_nan(prior: float | None) -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": prior}
    history = [
        RunSummary(0.0, 5, 0.0, ""),
        RunSummary(math.inf, 5, 0.0, ""),
        RunSummary(0.0, 5, 0.0, ""),
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


def test_nan_samples_are_refused_by_the_new_rules() -> None:
    for kw in ({"run_spread_pct": 2.0}, {"deterministic": True}, {"history": _history()}):
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
    prior=st.sampled_from([None, 0.0, 1.0, 2.0, 5.0]),
)
def test_prediction_rule_is_monotone_and_never_nan(
    current: list[float],
    baseline: list[float],
    medians: list[float],
    factor: float,
    prior: float | None,
) -> None:
    history = [RunSummary(m, 10, 2.0, "") for m in medians]
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "history": history, "run_spread_pct": prior}
    before = compare(current, baseline, **kw)  # type: ignore[arg-type]
    after = compare([x * factor for x in current], baseline, **kw)  # type: ignore[arg-type]
    for c in (before, after):
        assert not math.isnan(c.ratio) and not math.isnan(c.p_regressed)
        assert c.bound_ratio is None or math.isfinite(c.bound_ratio)
        assert "nan" not in describe(c)
    if before.status is Status.REGRESSED:
        assert after.status is Status.REGRESSED, (before, after)
    if before.status is Status.OK:
        assert after.status is not Status.IMPROVED, (before, after)


# -- Student's t ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.99, 1, 31.820516), (0.99, 2, 6.964557), (0.99, 4, 3.746947), (0.975, 5, 2.570582),
     (0.99, 8, 2.896459), (0.95, 30, 1.697261)],
)  # fmt: skip
def test_student_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=1e-5)
    assert student_t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-5)


# -- the signed-rank test and compare_paired ----------------------------------------------


def brute_force_signed_rank(differences: Sequence[float]) -> Fraction:
    nonzero = [d for d in differences if d != 0]
    ranks = reference_ranks([abs(d) for d in nonzero])
    observed = sum(r for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    hits = 0
    for signs in itertools.product((0, 1), repeat=len(nonzero)):
        hits += sum(r for r, s in zip(ranks, signs, strict=True) if s) >= observed
    return Fraction(hits, 2 ** len(nonzero))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-3, 3).map(float), max_size=10))
def test_signed_rank_matches_brute_force(differences: list[float]) -> None:
    expected = brute_force_signed_rank(differences) if any(differences) else Fraction(1)
    assert signed_rank_greater(differences) == pytest.approx(float(expected), abs=1e-12)


def test_signed_rank_normal_approximation_is_close_to_exact() -> None:
    diffs = [float((i * 7) % 11 - 4) + 0.5 for i in range(41)]
    approx = signed_rank_greater(diffs)
    exact = signed_rank_greater(diffs[:40])
    assert 0 < approx < 1 and abs(approx - exact) < 0.1


DRIFTING = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]


def test_paired_analysis_sees_through_drift() -> None:
    candidate = [x * 1.05 for x in DRIFTING]
    paired = compare_paired(DRIFTING, candidate, tolerance_pct=3.0, alpha=0.01)
    assert paired.rule == "paired" and paired.ratio == pytest.approx(1.05)
    assert paired.p_regressed == pytest.approx(1 / 256)  # all eight pairs up
    assert paired.status is Status.REGRESSED and paired.n_current == 8
    # the same windows as two independent samples: the drift swamps +5%
    unpaired = compare(candidate, DRIFTING, tolerance_pct=3.0, alpha=0.01)
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


# -- settled (adaptive rounds) ------------------------------------------------------------

BASE10 = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.005, 0.995]


def test_settled_needs_min_rounds_and_stops_at_max() -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": 2.0}
    clear = [x * 1.5 for x in BASE10]
    assert not settled(clear[: MIN_ADAPTIVE_ROUNDS - 1], BASE10, **kw)  # type: ignore[arg-type]
    assert settled([1.03] * 7, BASE10, max_rounds=7, **kw)  # type: ignore[arg-type]
    # no baseline: the new test takes NEW_TEST_ROUNDS windows
    assert not settled([1.0] * 9, [], **kw)  # type: ignore[arg-type]
    assert settled([1.0] * 10, [], **kw)  # type: ignore[arg-type]


def test_settled_stops_early_for_clear_cases() -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": 2.0}
    five = BASE10[:5]
    assert settled([x * 1.5 for x in five], BASE10, **kw)  # type: ignore[arg-type]
    assert settled([x * 0.6 for x in five], BASE10, **kw)  # type: ignore[arg-type]
    assert settled(list(five), BASE10, **kw)  # type: ignore[arg-type]  # unchanged


def test_settled_does_not_stop_on_borderline_cases() -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01}
    # same runner (prior 0): +3% sits on the tolerance, more windows could go either way
    border = [x * 1.03 for x in BASE10[:5]]
    assert not settled(border, BASE10, run_spread_pct=0.0, **kw)  # type: ignore[arg-type]
    # prior 2%: the bound is about +7%; +7% is on it
    edge = [x * 1.07 for x in BASE10[:5]]
    assert not settled(edge, BASE10, run_spread_pct=2.0, **kw)  # type: ignore[arg-type]
    # the old rule (no prior, no history) has its own borderline
    assert not settled(border, BASE10, **kw)  # type: ignore[arg-type]


def test_pooled_spread_resists_a_contaminated_run() -> None:
    # one run of ten with two +30% windows (median 1.005), one clean run (median 1.0)
    dirty = [1.0, 1.03, 0.97, 1.02, 0.98, 1.01, 0.99, 1.0, 1.3, 1.3]
    clean = [1.0, 1.03, 0.97, 1.02, 0.98, 1.01, 0.99, 1.0, 1.01, 0.99]
    # dirty's own deviations sort to .005 x3, .015 x2, .025 x2, .035, .295 x2: MAD .02
    assert stats.robust_spread(dirty) == pytest.approx(1.4826 * 0.02 / 1.005)
    # pooled with clean's (0 x2, .01 x4, .02 x2, .03 x2), the 10th and 11th of 20 are .015
    pooled = stats.pooled_spread(dirty, clean)
    assert pooled == pytest.approx(1.4826 * 0.015 / 1.005)
    assert stats.pooled_spread([1.0, 2.0]) is None  # too few windows to say
    assert stats.pooled_spread([0.0, 0.0, 0.0], clean) is None
    # a given spread replaces the run's own MAD; more than half flagged means none
    assert outliers([1.0, 1.0, 1.0, 1.2], spread=0.01) == (3,)
    assert outliers([1.0, 1.1, 1.2, 1.3, 1.4], spread=0.001) == ()  # 4 of 5 beyond 6%


@pytest.mark.parametrize("df", [31, 45, 200, 999])
@pytest.mark.parametrize("p", [0.9, 0.99, 0.999])
def test_cornish_fisher_t_quantile_agrees_with_bisection(p: float, df: int) -> None:
    assert stats._quantile(p, df + 0.7) == pytest.approx(student_t_quantile(p, df), abs=2e-6)


def test_satterthwaite_degrees_of_freedom() -> None:
    # equal variances of 1 with 4 and 6 df: (1 + 1)^2 / (1/4 + 1/6) = 9.6
    assert stats._satterthwaite([(1.0, 4), (1.0, 6)]) == pytest.approx(9.6)
    assert stats._satterthwaite([(1.0, math.inf), (0.0, 3)]) == math.inf


_extreme = st.one_of(
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.inf, 1.0, 1.5, 5e-324, 1e-300]),
)


@settings(max_examples=150, deadline=None)
@given(
    current=st.lists(_extreme, min_size=1, max_size=12),
    baseline=st.lists(_extreme, min_size=1, max_size=12),
    runs=st.lists(st.tuples(_extreme, st.integers(0, 12), st.floats(0, 50)), max_size=5),
    prior=st.sampled_from([None, 0.0, 2.0]),
    deterministic=st.booleans(),
)
def test_every_rule_survives_zeros_infinities_and_extremes(
    current: list[float],
    baseline: list[float],
    runs: list[tuple[float, int, float]],
    prior: float | None,
    deterministic: bool,
) -> None:
    history = [RunSummary(m, w, spread, "") for m, w, spread in runs]
    kw = {"tolerance_pct": 3.0, "alpha": 0.01}
    c = compare(
        current, baseline, history=history, run_spread_pct=prior, deterministic=deterministic, **kw
    )  # type: ignore[arg-type]
    p = compare_paired(current, baseline, **kw)  # type: ignore[arg-type]
    for result in (c, p):
        assert not math.isnan(result.ratio)
        assert result.bound_ratio is None or math.isfinite(result.bound_ratio)
        describe(result)
    settled(current, baseline, history=history, run_spread_pct=prior, **kw)  # type: ignore[arg-type]
