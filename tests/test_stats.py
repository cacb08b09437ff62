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
