"""The regression decision: this run's windows against the baseline's windows.

Pure functions over numbers. The rule, in words:

* ``ratio`` is the median of this run's samples over the median of the baseline's samples.
* With enough windows on both sides for a one-sided Mann-Whitney U test to reach the
  significance level ``alpha`` at all, a regression needs *both* a ratio above
  ``1 + tolerance`` *and* the test to agree (``p < alpha``). Improvements mirror this.
* With too few windows the median ratio alone decides, against a tolerance of at least
  :data:`LOW_CONFIDENCE_MIN_TOLERANCE_PCT`, and the comparison is marked low-confidence so
  reports can say so.

The U test's p-value is exact (a dynamic programme over the pooled ranks, ties included)
for up to :data:`EXACT_MAX_N` pooled windows, and uses the tie-corrected normal
approximation beyond that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

EXACT_MAX_N = 40
#: With too few windows for the U test, the median ratio alone decides, and one noisy
#: window moves it a lot: at 2% noise a single window against a single window exceeds a 3%
#: tolerance 15% of the time with no change. Such verdicts use at least this tolerance.
LOW_CONFIDENCE_MIN_TOLERANCE_PCT = 10.0


class Status(str, Enum):
    """How this run compares with its baseline."""

    OK = "ok"
    REGRESSED = "regressed"
    IMPROVED = "improved"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`."""

    status: Status
    ratio: float
    p_regressed: float
    p_improved: float
    low_confidence: bool
    tolerance_pct: float
    """The tolerance applied, raised to the low-confidence minimum where that applies."""
    alpha: float
    n_current: int
    n_baseline: int

    @property
    def change_pct(self) -> float:
        """Change of the median in percent, positive when this run costs more."""
        return (self.ratio - 1.0) * 100.0


def median(samples: Iterable[float]) -> float:
    """Median of a non-empty sequence; halves before adding, so it cannot overflow."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("median of no samples")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return ordered[middle - 1] / 2.0 + ordered[middle] / 2.0


def coefficient_of_variation(samples: Sequence[float]) -> float:
    """Sample standard deviation over the mean; 0.0 for fewer than two samples."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean = math.fsum(samples) / n
    if mean == 0:
        return 0.0
    variance = math.fsum((x - mean) ** 2 for x in samples) / (n - 1)
    return math.sqrt(variance) / mean


def can_reach(alpha: float, n_current: int, n_baseline: int) -> bool:
    """Whether a one-sided U test on these sample sizes can give ``p < alpha`` at all."""
    if n_current < 1 or n_baseline < 1:
        return False
    return 1.0 / math.comb(n_current + n_baseline, n_current) < alpha


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


def _exact_upper_tail(doubled_ranks: Sequence[int], n_pick: int, observed: int) -> float:
    """P(sum of ``n_pick`` ranks drawn without replacement >= ``observed``), exactly.

    Ranks are doubled so that tied (half-integer) ranks stay integers.
    """
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
    total_ways = math.comb(len(doubled_ranks), n_pick)
    hits = sum(count for total, count in ways[n_pick].items() if total >= observed)
    return hits / total_ways


def mann_whitney_greater(current: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided p-value for "``current`` tends to be larger than ``baseline``"."""
    n1, n2 = len(current), len(baseline)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = list(current) + list(baseline)
    ranks = _ranks(pooled)
    n = n1 + n2
    if n <= EXACT_MAX_N:
        doubled = [round(2 * r) for r in ranks]
        observed = sum(doubled[:n1])
        return _exact_upper_tail(doubled, n1, observed)
    rank_sum = sum(ranks[:n1])
    u = rank_sum - n1 * (n1 + 1) / 2.0
    mean_u = n1 * n2 / 2.0
    tie_counts: dict[float, int] = {}
    for r in ranks:
        tie_counts[r] = tie_counts.get(r, 0) + 1
    tie_term = sum(t**3 - t for t in tie_counts.values()) / (n * (n - 1))
    var_u = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var_u <= 0:
        return 1.0 if u <= mean_u else 0.0
    z = (u - mean_u - 0.5) / math.sqrt(var_u)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def compare(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
) -> Comparison:
    """Decide whether ``current`` regressed against ``baseline`` (both in kWh/1000)."""
    if not current or not baseline:
        raise ValueError("compare() needs at least one sample on each side")
    cur_median = median(current)
    base_median = median(baseline)
    if base_median > 0:
        ratio = cur_median / base_median
    elif cur_median == 0:
        ratio = 1.0
    else:
        ratio = math.inf
    low_confidence = not can_reach(alpha, len(current), len(baseline))
    if low_confidence:
        tolerance_pct = max(tolerance_pct, LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
    p_regressed = mann_whitney_greater(current, baseline)
    p_improved = mann_whitney_greater(baseline, current)
    limit = tolerance_pct / 100.0
    status = Status.OK
    if ratio > 1.0 + limit and (low_confidence or p_regressed < alpha):
        status = Status.REGRESSED
    elif ratio < 1.0 - limit and (low_confidence or p_improved < alpha):
        status = Status.IMPROVED
    return Comparison(
        status=status,
        ratio=ratio,
        p_regressed=p_regressed,
        p_improved=p_improved,
        low_confidence=low_confidence,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=len(current),
        n_baseline=len(baseline),
    )
