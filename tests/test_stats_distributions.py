"""pytest_energy.stats.distributions: the exact rank tests proven against brute force, their
normal approximations, and Student's t."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.stats import distributions
from pytest_energy.stats.distributions import (
    EXACT_MAX_N,
    can_reach,
    mann_whitney_greater,
    satterthwaite_df,
    signed_rank_greater,
    student_t_quantile,
    t_quantile,
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
    assert distributions._ranks([30.0, 10.0, 20.0]) == [3.0, 1.0, 2.0]


def test_ranks_with_ties_share_average_rank() -> None:
    assert distributions._ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert distributions._ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert distributions._ranks([2.0, 1.0, 2.0, 1.0, 2.0]) == [4.0, 1.5, 4.0, 1.5, 4.0]
    assert distributions._ranks([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4).map(float), max_size=12))
def test_ranks_match_reference(values: list[float]) -> None:
    assert distributions._ranks(values) == [float(r) for r in reference_ranks(values)]


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
    exact = distributions._exact_upper_tail(doubled, len(current), sum(doubled[: len(current)]))
    assert approx == pytest.approx(exact, abs=0.01)


def test_normal_approximation_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for shift in (-1.0, 0.0, 0.25, 1.0):
        current, baseline = _large(shift, 30, 22)
        expected = scipy_stats.mannwhitneyu(
            current, baseline, alternative="greater", method="asymptotic"
        ).pvalue
        assert mann_whitney_greater(current, baseline) == pytest.approx(expected, abs=1e-6)


# -- Student's t ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.99, 1, 31.820516), (0.99, 2, 6.964557), (0.99, 4, 3.746947), (0.975, 5, 2.570582),
     (0.99, 8, 2.896459), (0.95, 30, 1.697261)],
)  # fmt: skip
def test_student_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=1e-5)
    assert student_t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-5)


# -- the signed-rank test -----------------------------------------------------------------


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


# -- t quantiles beyond 30 degrees of freedom, and Welch-Satterthwaite ----------------


@pytest.mark.parametrize("df", [31, 45, 200, 999])
@pytest.mark.parametrize("p", [0.9, 0.99, 0.999])
def test_cornish_fisher_t_quantile_agrees_with_bisection(p: float, df: int) -> None:
    assert t_quantile(p, df + 0.7) == pytest.approx(student_t_quantile(p, df), abs=2e-6)


def test_satterthwaite_degrees_of_freedom() -> None:
    # equal variances of 1 with 4 and 6 df: (1 + 1)^2 / (1/4 + 1/6) = 9.6
    assert satterthwaite_df([(1.0, 4), (1.0, 6)]) == pytest.approx(9.6)
    assert satterthwaite_df([(1.0, math.inf), (0.0, 3)]) == math.inf


_extreme = st.one_of(
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.inf, 1.0, 1.5, 5e-324, 1e-300]),
)


def test_t_quantile_is_the_normal_one_at_infinite_degrees_of_freedom() -> None:
    assert t_quantile(0.99, math.inf) == pytest.approx(2.3263478740408408, rel=1e-12)
    assert t_quantile(0.99, 4.9) == student_t_quantile(0.99, 4)  # rounded down
