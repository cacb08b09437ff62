"""Null distributions and quantiles: the exact rank tests, Student's t and the normal.

The Mann-Whitney U and Wilcoxon signed-rank p-values are exact (a dynamic programme over the
ranks, ties included) for up to :data:`EXACT_MAX_N` values, and use the tie-corrected
normal approximation beyond that. An exact null distribution depends only on the multiset
of (doubled) ranks and the group size, so it is computed once per such key and cached.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from statistics import NormalDist

#: Largest pooled sample (U test) or number of non-zero differences (signed-rank test) with
#: an exact p-value.
EXACT_MAX_N = 40
#: Above this many degrees of freedom, :func:`t_quantile` uses the Cornish-Fisher expansion.
_EXACT_T_MAX_DF = 30


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values`` with ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        shared = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = shared
        i = j + 1
    return ranks


def _first_at_least(sums: Sequence[int], observed: int) -> int:
    """Index of the first of the increasing ``sums`` that is at least ``observed``."""
    lo, hi = 0, len(sums)
    while lo < hi:
        mid = (lo + hi) // 2
        if sums[mid] < observed:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _upper_tail(ways: dict[int, int]) -> tuple[list[int], list[int]]:
    """The distinct sums of a count table in increasing order, and for each the number of
    ways to reach at least that sum."""
    sums = sorted(ways)
    tail = [0] * len(sums)
    running = 0
    for i in range(len(sums) - 1, -1, -1):
        running += ways[sums[i]]
        tail[i] = running
    return sums, tail


def _tie_counts(ranks: Iterable[float]) -> list[int]:
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    return list(counts.values())


# -- Mann-Whitney U ---------------------------------------------------------------------


def can_reach(alpha: float, n_current: int, n_baseline: int) -> bool:
    """Whether a one-sided U test on these sample sizes can give ``p < alpha`` at all."""
    if n_current < 1 or n_baseline < 1:
        return False
    return 1.0 / math.comb(n_current + n_baseline, n_current) < alpha


@lru_cache(maxsize=256)
def _subset_sum_tail(doubled_ranks: tuple[int, ...], n_pick: int) -> tuple[list[int], list[int]]:
    """Null distribution of the sum of ``n_pick`` of ``doubled_ranks`` (a sorted multiset):
    the distinct sums in increasing order and, for each, the number of subsets whose sum is
    at least that large (an upper-tail count)."""
    # ways[k] maps a rank sum to the number of k-subsets reaching it.
    ways: list[dict[int, int]] = [dict() for _ in range(n_pick + 1)]
    ways[0][0] = 1
    for rank in doubled_ranks:
        for k in range(n_pick, 0, -1):
            source = ways[k - 1]
            if not source:
                continue
            target = ways[k]
            for total, count in source.items():
                target[total + rank] = target.get(total + rank, 0) + count
    return _upper_tail(ways[n_pick])


def _exact_upper_tail(doubled_ranks: Sequence[int], n_pick: int, observed: int) -> float:
    """P(sum of ``n_pick`` ranks drawn without replacement >= ``observed``), exactly.

    Ranks are doubled so that tied (half-integer) ranks stay integers.
    """
    sums, tail = _subset_sum_tail(tuple(sorted(doubled_ranks)), n_pick)
    i = _first_at_least(sums, observed)
    return (tail[i] if i < len(sums) else 0) / math.comb(len(doubled_ranks), n_pick)


def mann_whitney_greater(current: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided p-value for "``current`` tends to be larger than ``baseline``"; 1.0 when a
    side is empty."""
    n1, n2 = len(current), len(baseline)
    if n1 == 0 or n2 == 0:
        return 1.0
    ranks = _ranks([*current, *baseline])
    n = n1 + n2
    if n <= EXACT_MAX_N:
        doubled = [round(2 * r) for r in ranks]
        return _exact_upper_tail(doubled, n1, sum(doubled[:n1]))
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    mean_u = n1 * n2 / 2.0
    tie_term = sum(t**3 - t for t in _tie_counts(ranks)) / (n * (n - 1))
    var_u = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var_u <= 0:
        return 1.0 if u <= mean_u else 0.0
    z = (u - mean_u - 0.5) / math.sqrt(var_u)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# -- Wilcoxon signed-rank ---------------------------------------------------------------


@lru_cache(maxsize=128)
def _signed_rank_tail(doubled_ranks: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Null distribution of the signed-rank statistic W+ (sum of the ranks given a + sign,
    each sign a fair coin): distinct sums and upper-tail counts."""
    ways: dict[int, int] = {0: 1}
    for rank in doubled_ranks:
        nxt: dict[int, int] = dict(ways)
        for total, count in ways.items():
            nxt[total + rank] = nxt.get(total + rank, 0) + count
        ways = nxt
    return _upper_tail(ways)


def signed_rank_greater(differences: Sequence[float]) -> float:
    """One-sided p-value of the Wilcoxon signed-rank test for "the differences tend to be
    positive". Zero differences are dropped; ties share average ranks. Exact for up to
    :data:`EXACT_MAX_N` non-zero differences, normal approximation with tie and continuity
    correction beyond. 1.0 when no difference is non-zero."""
    nonzero = [d for d in differences if d != 0]
    n = len(nonzero)
    if n == 0:
        return 1.0
    ranks = _ranks([abs(d) for d in nonzero])
    doubled = [round(2 * r) for r in ranks]
    observed = sum(r for r, d in zip(doubled, nonzero, strict=True) if d > 0)
    if n <= EXACT_MAX_N:
        sums, tail = _signed_rank_tail(tuple(sorted(doubled)))
        i = _first_at_least(sums, observed)
        return (tail[i] if i < len(sums) else 0) / 2.0**n
    w = observed / 2.0
    mean_w = n * (n + 1) / 4.0
    ties = sum(t**3 - t for t in _tie_counts(ranks))
    var_w = n * (n + 1) * (2 * n + 1) / 24.0 - ties / 48.0
    if var_w <= 0:
        return 1.0 if w <= mean_w else 0.0
    z = (w - mean_w - 0.5) / math.sqrt(var_w)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# -- quantiles --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def normal_quantile(p: float) -> float:
    """Standard normal quantile, ``Phi^-1(p)`` for ``0 < p < 1``."""
    return NormalDist().inv_cdf(p)


def student_t_cdf(t: float, df: int) -> float:
    """CDF of Student's t with integer ``df >= 1`` (Abramowitz and Stegun 26.7.3-4)."""
    if df < 1:
        raise ValueError("student_t_cdf needs df >= 1")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2:  # odd
        term, series = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            series += term
        central = 2.0 / math.pi * (theta + s * math.cos(theta) * series)
    else:
        term, series = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            series += term
        central = s * series
    central = min(max(central, 0.0), 1.0)
    return 0.5 + 0.5 * central if t >= 0 else 0.5 - 0.5 * central


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with integer ``df``, by bisection on :func:`student_t_cdf`."""
    if not 0.0 < p < 1.0:
        raise ValueError("quantile needs 0 < p < 1")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile at ``df`` rounded down (conservative); ``df`` may be infinite.

    Exact (bisection) up to 30 degrees of freedom; beyond, the Cornish-Fisher expansion of
    t around the normal quantile (Abramowitz and Stegun 26.7.5), within 2e-6 there for
    levels from 0.9 to 0.999.
    """
    if df <= _EXACT_T_MAX_DF:
        return student_t_quantile(p, max(1, int(df)))
    z = normal_quantile(p)
    if not df < 1e6:  # the expansion's terms are below 1e-6 there (and inf, NaN)
        return z
    nu = float(int(df))
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4


def satterthwaite_df(parts: Iterable[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates, given as
    ``(variance, degrees of freedom)``; infinite when no part is estimated."""
    parts = list(parts)
    total = math.fsum(v for v, _ in parts)
    denominator = math.fsum(v * v / df for v, df in parts if v > 0 and 0 < df < math.inf)
    if total <= 0 or denominator <= 0:
        return math.inf
    return total * total / denominator
