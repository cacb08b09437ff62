"""The regression decision: this run's windows against the baseline's windows and runs.

Pure functions over numbers. There are four rules; :attr:`Comparison.rule` names the one
that decided.

``"u-test"`` (no prior and fewer than 3 recorded runs: the rule before baseline schema 2)
    ``ratio`` is the median of this run's samples over the median of the baseline's samples.
    With enough windows on both sides for a one-sided Mann-Whitney U test to reach the
    significance level ``alpha`` at all, a regression needs *both* a ratio above
    ``1 + tolerance`` *and* the test to agree (``p < alpha``). Improvements mirror this.
    With too few windows the median ratio alone decides, against a tolerance of at least
    :data:`LOW_CONFIDENCE_MIN_TOLERANCE_PCT`, and the comparison is marked low-confidence.

``"prediction"`` (a run-spread prior is given, or the history has 3 or more runs)
    A regression needs all three of

    1. the median ratio above ``1 + tolerance``, over the windows that are not outliers
       (:func:`outliers`, judged against the spread of both runs, :func:`pooled_spread`;
       outlier windows are left out of everything below too, the latest run's level
       included);
    2. within-run evidence: the U test over the windows that are not outliers gives
       ``p < alpha`` (or, with too few windows for the test to reach ``alpha``, the
       low-confidence tolerance floor above);
    3. this run's median above the one-sided upper *prediction bound for a new run* at level
       ``alpha``, built from the baseline's run medians (see :func:`prediction_bounds`).

    ``improved`` mirrors all three. A prior of 0 with fewer than 3 runs says the run level
    does not move; the bound would then only repeat the within-run evidence, so the
    ``"u-test"`` rule decides, on the windows that are not outliers.

``"deterministic"`` (meters whose figures depend only on the work)
    The median ratio against the tolerance, nothing else: no significance test, no bound,
    no low-confidence floor.

``"paired"`` (:func:`compare_paired`, ``energy.compare`` measured A B B A ...)
    A one-sided Wilcoxon signed-rank test on the log ratios of adjacent A/B windows, and
    the median of those log ratios against the tolerance.

The U test's p-value is exact (a dynamic programme over the pooled ranks, ties included)
for up to :data:`EXACT_MAX_N` pooled windows, and uses the tie-corrected normal
approximation beyond that. The exact null distribution depends only on the multiset of
ranks and the group size, so it is computed once per such pair and cached.

All spreads are relative (a fraction of the median, reported in percent) and all run-level
arithmetic is on the log scale, where a multiplicative run offset is additive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
from statistics import NormalDist
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import RunSummary

EXACT_MAX_N = 40
#: With too few windows for the U test, the median ratio alone decides, and one noisy
#: window moves it a lot: at 2% noise a single window against a single window exceeds a 3%
#: tolerance 15% of the time with no change. Such verdicts use at least this tolerance.
LOW_CONFIDENCE_MIN_TOLERANCE_PCT = 10.0

#: 1 / Phi^-1(3/4): turns a median absolute deviation into a standard deviation for normal
#: data.
MAD_TO_SD = 1.4826
#: A window is an outlier when it lies more than this many robust standard deviations from
#: its run's median: ``|x - median| > OUTLIER_THRESHOLD * max(1.4826 * MAD,
#: OUTLIER_FLOOR_PCT / 100 * median)``. Iglewicz and Hoaglin's usual cut-off, 3.5, flags a
#: window in about 10% of 10-window runs of plain normal noise, because a MAD from ten
#: windows is itself noisy; 5 flags one in about 1.3% of such runs (0.14% of windows) and
#: still catches a +30% window at up to 5% noise per window.
OUTLIER_THRESHOLD = 5.0
#: Floor of the robust spread used by :func:`outliers`, in percent of the median, so that a
#: run whose windows happen to agree to 0.1% does not flag a window 1% away.
OUTLIER_FLOOR_PCT = 1.0
#: Fewest windows in which :func:`outliers` flags anything (with two, neither is "far").
MIN_OUTLIER_WINDOWS = 3

#: Prior run-to-run spread of a test's run median, in percent, per meter kind (used until
#: the history has :data:`MIN_HISTORY_RUNS` runs, and pooled with it after). See
#: docs/performance.md, "The rule across runs", for the reasons.
DEFAULT_RUN_SPREAD_PCT: Mapping[str, float] = MappingProxyType({"measured": 2.0, "estimated": 5.0})
#: Runs of history from which the run-to-run spread is estimated rather than taken from the
#: prior.
MIN_HISTORY_RUNS = 3
#: Weight of the prior spread when it is pooled with the history's, in degrees of freedom
#: (a history of k runs brings k - 1).
PRIOR_DEGREES_OF_FREEDOM = 4

#: ``--energy-rounds=auto``: fewest windows before :func:`settled` may stop.
MIN_ADAPTIVE_ROUNDS = 5
#: ``--energy-max-rounds`` default.
DEFAULT_MAX_ROUNDS = 20
#: Windows taken by a test with no baseline yet, so that the baseline it records is good.
NEW_TEST_ROUNDS = 10
#: :func:`settled` stops when the median is this many standard errors clear of every
#: threshold (about 1 in 740 one-sided under normal noise).
SETTLE_Z = 3.0

#: Asymptotic variance of a sample median over that of a mean, for normal data.
_MEDIAN_EFFICIENCY = math.pi / 2.0
#: The same ratio for 1..20 windows, ``n * var(median of n) / sigma^2`` for normal noise,
#: by simulation (2 million draws per count; the third decimal is uncertain). Even counts
#: average the two middle windows and do better than odd ones; beyond 20, pi/2.
_MEDIAN_FACTORS = (
    1.0, 1.0, 1.344, 1.192, 1.432, 1.289, 1.475, 1.347, 1.495, 1.382,
    1.508, 1.412, 1.517, 1.429, 1.528, 1.446, 1.530, 1.457, 1.536, 1.468,
)  # fmt: skip


class Status(str, Enum):
    """How this run compares with its baseline."""

    OK = "ok"
    REGRESSED = "regressed"
    IMPROVED = "improved"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare` or :func:`compare_paired`."""

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
    rule: str = "u-test"
    """Which rule decided: "u-test", "prediction", "deterministic" or "paired"."""
    run_spread_pct: float | None = None
    """Run-to-run spread of the run level the prediction bound used, in percent."""
    spread_runs: int = 0
    """Runs of history that spread was estimated from; 0 when it is the prior alone."""
    prior_pooled: bool = False
    """Whether a history estimate of the spread was pooled with the prior."""
    bound_ratio: float | None = None
    """The prediction bound over the baseline median, for the direction of the change: the
    upper bound when this run's median is at or above the baseline's, else the lower."""
    outliers_current: tuple[int, ...] = ()
    """Indices of this run's windows flagged by :func:`outliers`."""
    outliers_baseline: tuple[int, ...] = ()
    improved_beyond_bound: bool = False
    """Improved beyond the prediction bound (or, by the rules without one, improved): the
    new level is worth recording."""

    @property
    def change_pct(self) -> float:
        """Change of the median in percent, positive when this run costs more."""
        return (self.ratio - 1.0) * 100.0


# -- basic statistics -------------------------------------------------------------------


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


def robust_spread(samples: Sequence[float]) -> float:
    """``1.4826 * MAD / median``: a relative spread that outliers barely move.

    0.0 for fewer than two samples, or when the median is not positive and finite, or the
    MAD is not finite.
    """
    if len(samples) < 2:
        return 0.0
    mid = median(samples)
    if not (mid > 0 and math.isfinite(mid)):
        return 0.0
    mad = median(abs(x - mid) for x in samples)
    if not math.isfinite(mad):
        return 0.0
    return MAD_TO_SD * mad / mid


def outliers(samples: Sequence[float], *, spread: float | None = None) -> tuple[int, ...]:
    """Indices of the windows far from their run's median.

    A window is flagged when ``|x - median| > OUTLIER_THRESHOLD * scale``, where ``scale``
    is ``max(1.4826 * MAD, OUTLIER_FLOOR_PCT / 100 * |median|)``. ``spread``, a relative
    robust standard deviation known from elsewhere (:func:`compare` pools both runs'
    deviations), replaces ``1.4826 * MAD / |median|``. Nothing is flagged in fewer than
    :data:`MIN_OUTLIER_WINDOWS` windows, or when the median or the MAD is not finite.
    Without ``spread``, a flagged window lies beyond the MAD, so at most half of the windows
    can be flagged.
    """
    if len(samples) < MIN_OUTLIER_WINDOWS:
        return ()
    mid = median(samples)
    if not math.isfinite(mid):
        return ()
    deviations = [abs(x - mid) for x in samples]
    if spread is None:
        mad = median(deviations)
        if not math.isfinite(mad):
            return ()
        robust_sd = MAD_TO_SD * mad
    else:
        robust_sd = spread * abs(mid)
    scale = max(robust_sd, OUTLIER_FLOOR_PCT / 100.0 * abs(mid))
    limit = OUTLIER_THRESHOLD * scale
    flagged = tuple(i for i, d in enumerate(deviations) if d > limit)
    return flagged if 2 * len(flagged) <= len(samples) else ()


def pooled_spread(*runs: Sequence[float]) -> float | None:
    """``1.4826 * median(|x - m| / m)`` over the windows of all ``runs`` with at least
    :data:`MIN_OUTLIER_WINDOWS` windows, ``m`` each run's median: one robust relative
    spread for a test's window noise. Two outlier windows in one run of ten move the MAD of
    that run a lot and this one little. None when no run qualifies or a median is not
    positive and finite."""
    relative: list[float] = []
    for run in runs:
        if len(run) < MIN_OUTLIER_WINDOWS:
            continue
        mid = median(run)
        if not (mid > 0 and math.isfinite(mid)):
            return None
        relative.extend(abs(x - mid) / mid for x in run)
    if not relative:
        return None
    mad = median(relative)
    return MAD_TO_SD * mad if math.isfinite(mad) else None


def _without(samples: Sequence[float], flagged: tuple[int, ...]) -> list[float]:
    drop = set(flagged)
    return [x for i, x in enumerate(samples) if i not in drop]


def _exp(x: float) -> float:
    """``exp`` that saturates to ``inf`` instead of raising OverflowError."""
    return math.inf if x > 709.0 else math.exp(x)


def _log(x: float) -> float:
    """``log`` of a non-negative number: ``-inf`` at 0, ``inf`` at ``inf``."""
    if x <= 0:
        return -math.inf
    return math.inf if math.isinf(x) else math.log(x)


def _ratio(current_median: float, baseline_median: float) -> float:
    """``current / baseline`` with the edge cases defined: never NaN."""
    if baseline_median > 0 and math.isfinite(baseline_median):
        return current_median / baseline_median
    if baseline_median == math.inf:
        return 1.0 if current_median == math.inf else 0.0
    return 1.0 if current_median == baseline_median else math.inf


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


@lru_cache(maxsize=256)
def _subset_sum_tail(doubled_ranks: tuple[int, ...], n_pick: int) -> tuple[list[int], list[int]]:
    """Null distribution of the sum of ``n_pick`` of ``doubled_ranks`` (a sorted multiset).

    Returns the distinct sums in increasing order and, for each, the number of subsets whose
    sum is at least that large (an upper-tail count).
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
    sums = sorted(ways[n_pick])
    tail = [0] * len(sums)
    running = 0
    for i in range(len(sums) - 1, -1, -1):
        running += ways[n_pick][sums[i]]
        tail[i] = running
    return sums, tail


def _exact_upper_tail(doubled_ranks: Sequence[int], n_pick: int, observed: int) -> float:
    """P(sum of ``n_pick`` ranks drawn without replacement >= ``observed``), exactly.

    Ranks are doubled so that tied (half-integer) ranks stay integers.
    """
    sums, tail = _subset_sum_tail(tuple(sorted(doubled_ranks)), n_pick)
    total_ways = math.comb(len(doubled_ranks), n_pick)
    lo, hi = 0, len(sums)
    while lo < hi:  # first sum >= observed
        mid = (lo + hi) // 2
        if sums[mid] < observed:
            lo = mid + 1
        else:
            hi = mid
    return (tail[lo] if lo < len(sums) else 0) / total_ways


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


# -- the prediction bound -----------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """One-sided prediction bounds for the median of a new run, in kWh/1000."""

    lower: float
    upper: float
    reference: float
    """The geometric mean of the history's run medians (or the baseline median)."""
    run_spread_pct: float
    """Run-to-run spread of the run level used (percent), beyond within-run noise."""
    spread_runs: int
    """Runs it was estimated from; 0 for the prior alone."""
    prior_pooled: bool
    """A history estimate pooled with the prior."""


def _usable(history: Sequence[RunSummary]) -> list[RunSummary]:
    return [r for r in history if r.kwh_per_1000 > 0 and math.isfinite(r.kwh_per_1000)]


def _median_variance(within: float, windows: int) -> float:
    """Variance of the log of a run's median of ``windows`` windows with relative spread
    ``within`` (normal approximation)."""
    n = max(windows, 1)
    factor = _MEDIAN_FACTORS[n - 1] if n <= len(_MEDIAN_FACTORS) else _MEDIAN_EFFICIENCY
    return factor * within * within / n


def prediction_bounds(
    *,
    baseline_median: float,
    history: Sequence[RunSummary],
    run_spread_pct: float | None,
    within_spread: float,
    n_current: int,
    alpha: float,
    within_df: float = math.inf,
) -> Bounds | None:
    """The one-sided prediction bounds, each at level ``alpha``, for a new run's median.

    On the log scale, with ``k`` usable history runs (positive, finite medians ``m_i``),
    reference ``r = mean(log m_i)`` (``log baseline_median`` when the history is empty,
    ``k = 1``), ``w`` the within-run spread of a window (``within_spread``) and
    ``v(n) = f(n) * w^2 / n`` the variance of the log of a median of ``n`` windows
    (``f(n)`` from 1 to pi/2, the variance factor of a median of ``n`` normal windows):

    * the run-level spread ``s``: with ``k >=`` :data:`MIN_HISTORY_RUNS`, the sample
      variance of the ``log m_i`` less the mean ``v(n_i)`` that within-run noise explains,
      at least 0 (``k - 1`` degrees of freedom). Pooled with the prior, when there is one:
      ``(d0 * prior^2 + (k - 1) * s_hist^2) / (d0 + k - 1)``, with ``d0 - 1 + k`` degrees
      of freedom, ``d0 =`` :data:`PRIOR_DEGREES_OF_FREEDOM`. With fewer runs, ``s`` is the
      prior, taken as known.
    * ``var = s^2 * (1 + 1/k) + v(n_current) + mean_i v(n_i) / k``: a new run's median
      varies by the run spread and its own median's noise, and the reference is a mean of
      ``k`` such medians.
    * ``q`` is the ``1 - alpha`` quantile of Student's t with the Welch-Satterthwaite
      degrees of freedom of ``var`` (the run-spread part with those of ``s``, the
      within-run part with ``within_df``); the normal quantile when they exceed 1,000.
    * bounds ``exp(r -+ q * sqrt(var))``.

    None when there is nothing to build it from: fewer than :data:`MIN_HISTORY_RUNS` runs
    and no prior, or no positive finite reference.
    """
    runs = _usable(history)
    k = len(runs)
    if run_spread_pct is None and k < MIN_HISTORY_RUNS:
        return None
    logs = [math.log(r.kwh_per_1000) for r in runs]
    if k:
        reference = math.fsum(logs) / k
        hist_noise = [
            _median_variance(
                within_spread if within_spread > 0 or r.windows < 2 else r.spread_pct / 100.0,
                r.windows,
            )
            for r in runs
        ]
    elif baseline_median > 0 and math.isfinite(baseline_median):
        k = 1
        reference = math.log(baseline_median)
        hist_noise = [_median_variance(within_spread, max(n_current, 1))]
    else:
        return None
    mean_hist_noise = math.fsum(hist_noise) / len(hist_noise)
    prior = None if run_spread_pct is None else max(run_spread_pct, 0.0) / 100.0
    spread_df: float
    if len(runs) >= MIN_HISTORY_RUNS:
        sample_var = math.fsum((x - reference) ** 2 for x in logs) / (k - 1)
        offset_var = max(sample_var - mean_hist_noise, 0.0)
        if prior is None:
            spread_var, spread_df = offset_var, k - 1
        else:
            spread_df = PRIOR_DEGREES_OF_FREEDOM + k - 1
            spread_var = (
                PRIOR_DEGREES_OF_FREEDOM * prior * prior + (k - 1) * offset_var
            ) / spread_df
        spread_runs = k
    else:
        assert prior is not None
        spread_var, spread_df = prior * prior, math.inf
        spread_runs = 0
    if not within_spread > 0:
        # the window noise, if any, comes from the runs' stored spreads
        within_df = math.fsum(max(r.windows - 1, 0) for r in runs) or math.inf
    spread_part = spread_var * (1.0 + 1.0 / k)
    within_part = _median_variance(within_spread, n_current) + mean_hist_noise / k
    variance = spread_part + within_part
    half = _quantile(
        1.0 - alpha, _satterthwaite(((spread_part, spread_df), (within_part, within_df)))
    )
    half *= math.sqrt(variance)
    return Bounds(
        lower=_exp(reference - half),
        upper=_exp(reference + half),
        reference=math.exp(reference),
        run_spread_pct=math.sqrt(spread_var) * 100.0,
        spread_runs=spread_runs,
        prior_pooled=spread_runs > 0 and prior is not None,
    )


def _satterthwaite(parts: Iterable[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates."""
    parts = list(parts)
    total = math.fsum(v for v, _ in parts)
    denominator = math.fsum(v * v / df for v, df in parts if v > 0 and 0 < df < math.inf)
    if total <= 0 or denominator <= 0:
        return math.inf
    return total * total / denominator


#: Above this many degrees of freedom, :func:`_quantile` uses the Cornish-Fisher expansion.
_EXACT_T_MAX_DF = 30


def _quantile(p: float, df: float) -> float:
    """Student's t quantile at ``df`` rounded down (conservative).

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


def _within_spread(current: Sequence[float], baseline: Sequence[float]) -> tuple[float, int]:
    """Pooled within-run spread of the two sides' windows (outliers already set aside), and
    its degrees of freedom: the standard deviation of the log of the windows around each
    side's mean log, pooled over both sides. (0.0, 0) when no side has two positive finite
    windows.

    Unlike the MAD, this is efficient at normal noise, so the bound is not widened by the
    noise of its own estimate; outliers cannot inflate it because they are excluded first.
    """
    squares = 0.0
    df = 0
    for side in (current, baseline):
        logs = [math.log(x) for x in side if x > 0 and math.isfinite(x)]
        if len(logs) < 2:
            continue
        mean = math.fsum(logs) / len(logs)
        squares += math.fsum((x - mean) ** 2 for x in logs)
        df += len(logs) - 1
    return (math.sqrt(squares / df), df) if df else (0.0, 0)


# -- compare ----------------------------------------------------------------------------


def _check(current: Sequence[float], baseline: Sequence[float], *, nan: bool = True) -> None:
    if not current or not baseline:
        raise ValueError("compare() needs at least one sample on each side")
    if nan and (any(math.isnan(x) for x in current) or any(math.isnan(x) for x in baseline)):
        raise ValueError("compare() got a NaN sample: the meter returned no number")


def compare(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
    history: Sequence[RunSummary] = (),
    run_spread_pct: float | None = None,
    deterministic: bool = False,
) -> Comparison:
    """Decide whether ``current`` regressed against ``baseline`` (both in kWh/1000).

    ``history`` holds the baseline's recorded runs, newest last, the run whose windows are
    ``baseline`` included. ``run_spread_pct`` is the prior run-to-run spread. With neither
    (and ``deterministic`` false) the verdict is exactly the ``"u-test"`` rule's; see the
    module docstring for all rules.

    Raises ValueError when a side has no samples, and, except under that old rule, when a
    sample is NaN. Zeros and infinities give a verdict, never NaN.
    """
    legacy = not deterministic and run_spread_pct is None
    legacy = legacy and len(_usable(history)) < MIN_HISTORY_RUNS
    _check(current, baseline, nan=not legacy)  # the old rule kept its old behaviour
    spread = pooled_spread(current, baseline)
    out_current = outliers(current, spread=spread)
    out_baseline = outliers(baseline, spread=spread)
    if deterministic:
        return _deterministic(current, baseline, tolerance_pct, alpha, out_current, out_baseline)
    if legacy:
        c = _u_test(current, baseline, tolerance_pct, alpha)
        return _with(
            c,
            outliers_current=out_current,
            outliers_baseline=out_baseline,
            improved_beyond_bound=c.status is Status.IMPROVED,
        )
    clean_current = _without(current, out_current)
    clean_baseline = _without(baseline, out_baseline)
    c = _u_test(clean_current, clean_baseline, tolerance_pct, alpha)
    cur_median, base_median = median(clean_current), median(clean_baseline)
    if out_baseline and history and history[-1].kwh_per_1000 == median(baseline):
        # the latest run is the baseline's: its level without the outlier windows
        history = [*history[:-1], replace(history[-1], kwh_per_1000=base_median)]
    within, within_df = _within_spread(clean_current, clean_baseline)
    bounds = prediction_bounds(
        baseline_median=base_median,
        history=history,
        run_spread_pct=run_spread_pct,
        within_spread=within,
        within_df=within_df,
        n_current=len(clean_current),
        alpha=alpha,
    )
    status = c.status
    bound_ratio = None
    rule = "u-test"
    if bounds is not None and bounds.spread_runs == 0 and bounds.run_spread_pct == 0:
        # A prior of 0 says the run level does not move: the bound would only repeat, less
        # well, the within-run evidence the U test already gives. The U test decides.
        return _with(
            c,
            run_spread_pct=0.0,
            outliers_current=out_current,
            outliers_baseline=out_baseline,
            improved_beyond_bound=status is Status.IMPROVED,
            n_current=len(current),
            n_baseline=len(baseline),
        )
    if bounds is not None:
        rule = "prediction"
        if status is Status.REGRESSED and not cur_median > bounds.upper:
            status = Status.OK
        if status is Status.IMPROVED and not cur_median < bounds.lower:
            status = Status.OK
        edge = bounds.upper if cur_median >= base_median else bounds.lower
        bound_ratio = _ratio(edge, base_median)
        if not math.isfinite(bound_ratio):
            bound_ratio = None
    return _with(
        c,
        status=status,
        rule=rule,
        run_spread_pct=None if bounds is None else bounds.run_spread_pct,
        spread_runs=0 if bounds is None else bounds.spread_runs,
        prior_pooled=bounds is not None and bounds.prior_pooled,
        bound_ratio=bound_ratio,
        outliers_current=out_current,
        outliers_baseline=out_baseline,
        improved_beyond_bound=status is Status.IMPROVED,
        n_current=len(current),
        n_baseline=len(baseline),
    )


def _with(c: Comparison, **changes: object) -> Comparison:
    return replace(c, **changes)  # type: ignore[arg-type]


def _status(
    ratio: float,
    p_regressed: float,
    p_improved: float,
    tolerance_pct: float,
    alpha: float,
    *,
    confirm: bool,
) -> Status:
    """A change beyond the tolerance; with ``confirm``, also significant at ``alpha`` (the
    rules that have a test, when it can reach alpha at all)."""
    limit = tolerance_pct / 100.0
    if ratio > 1.0 + limit and (not confirm or p_regressed < alpha):
        return Status.REGRESSED
    if ratio < 1.0 - limit and (not confirm or p_improved < alpha):
        return Status.IMPROVED
    return Status.OK


def _u_test(
    current: Sequence[float], baseline: Sequence[float], tolerance_pct: float, alpha: float
) -> Comparison:
    """The ``"u-test"`` rule: the median ratio and the one-sided U tests."""
    ratio = _ratio(median(current), median(baseline))
    low_confidence = not can_reach(alpha, len(current), len(baseline))
    if low_confidence:
        tolerance_pct = max(tolerance_pct, LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
    p_regressed = mann_whitney_greater(current, baseline)
    p_improved = mann_whitney_greater(baseline, current)
    return Comparison(
        status=_status(
            ratio, p_regressed, p_improved, tolerance_pct, alpha, confirm=not low_confidence
        ),
        ratio=ratio,
        p_regressed=p_regressed,
        p_improved=p_improved,
        low_confidence=low_confidence,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=len(current),
        n_baseline=len(baseline),
    )


def _deterministic(
    current: Sequence[float],
    baseline: Sequence[float],
    tolerance_pct: float,
    alpha: float,
    out_current: tuple[int, ...],
    out_baseline: tuple[int, ...],
) -> Comparison:
    """The ``"deterministic"`` rule: the median ratio against the tolerance alone."""
    ratio = _ratio(median(current), median(baseline))
    status = _status(ratio, 1.0, 1.0, tolerance_pct, alpha, confirm=False)
    return Comparison(
        status=status,
        ratio=ratio,
        p_regressed=1.0,
        p_improved=1.0,
        low_confidence=False,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=len(current),
        n_baseline=len(baseline),
        rule="deterministic",
        outliers_current=out_current,
        outliers_baseline=out_baseline,
        improved_beyond_bound=status is Status.IMPROVED,
    )


# -- adaptive rounds --------------------------------------------------------------------


def settled(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
    history: Sequence[RunSummary] = (),
    run_spread_pct: float | None = None,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> bool:
    """Whether ``--energy-rounds=auto`` may stop taking windows now.

    The sequential rule, checked after each window:

    * with no baseline, stop at :data:`NEW_TEST_ROUNDS` windows (or ``max_rounds``);
    * never before :data:`MIN_ADAPTIVE_ROUNDS` windows, always at ``max_rounds``;
    * otherwise let ``m`` be the median ratio (windows that are not outliers), ``se`` its
      standard error, ``sqrt(f(n)) * w / sqrt(n)`` on the log scale (``w`` the pooled
      within-run spread of both sides, ``f`` as in :func:`prediction_bounds`), and
      ``Z =`` :data:`SETTLE_Z`.

      - *decided "ok"*: ``m`` is ``Z * se`` inside both thresholds it would have at
        ``max_rounds`` windows, the tightest they can get: ``1 +- tolerance`` and the
        prediction bounds (when the rule has them) computed for ``max_rounds`` windows.
      - *decided "regressed"* (or "improved"): :func:`compare` says so now, and ``m`` is
        ``Z * se`` beyond ``1 + tolerance`` (the low-confidence tolerance where that
        applies) and beyond the prediction bound at this window count.

    More windows can still flip a verdict that is decided in this sense, but only by a
    ``Z``-standard-error move of the median.
    """
    n = len(current)
    if n >= max_rounds:
        return True
    if not baseline:
        return n >= min(NEW_TEST_ROUNDS, max_rounds)
    if n < MIN_ADAPTIVE_ROUNDS:
        return False
    c = compare(
        current,
        baseline,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        history=history,
        run_spread_pct=run_spread_pct,
    )
    clean_current = _without(current, c.outliers_current)
    clean_baseline = _without(baseline, c.outliers_baseline)
    cur_median, base_median = median(clean_current), median(clean_baseline)
    if not (cur_median > 0 and math.isfinite(cur_median)):
        return c.status is not Status.OK
    if not (base_median > 0 and math.isfinite(base_median)):
        return c.status is not Status.OK
    within, within_df = _within_spread(clean_current, clean_baseline)
    margin = SETTLE_Z * math.sqrt(_median_variance(within, len(clean_current)))
    log_ratio = math.log(cur_median) - math.log(base_median)

    def bounds_at(windows: int) -> Bounds | None:
        return prediction_bounds(
            baseline_median=base_median,
            history=history,
            run_spread_pct=run_spread_pct,
            within_spread=within,
            within_df=within_df,
            n_current=windows,
            alpha=alpha,
        )

    if c.status is Status.OK:
        limit = tolerance_pct / 100.0
        upper = math.log1p(limit)
        lower = math.log1p(-limit) if limit < 1.0 else -math.inf
        final = bounds_at(max_rounds) if c.rule == "prediction" else None
        if final is not None:
            upper = max(upper, _log(final.upper) - math.log(base_median))
            lower = min(lower, _log(final.lower) - math.log(base_median))
        return lower + margin < log_ratio < upper - margin
    limit = c.tolerance_pct / 100.0
    now = bounds_at(len(clean_current)) if c.rule == "prediction" else None
    if c.status is Status.REGRESSED:
        edge = math.log1p(limit)
        if now is not None:
            edge = max(edge, _log(now.upper) - math.log(base_median))
        return log_ratio - margin > edge
    edge = math.log1p(-limit) if limit < 1.0 else -math.inf
    if now is not None:
        edge = min(edge, _log(now.lower) - math.log(base_median))
    return log_ratio + margin < edge


# -- paired (A B B A) comparison ----------------------------------------------------------


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
    sums = sorted(ways)
    tail = [0] * len(sums)
    running = 0
    for i in range(len(sums) - 1, -1, -1):
        running += ways[sums[i]]
        tail[i] = running
    return sums, tail


def signed_rank_greater(differences: Sequence[float]) -> float:
    """One-sided p-value of the Wilcoxon signed-rank test for "the differences tend to be
    positive". Zero differences are dropped; ties share average ranks. Exact (by a dynamic
    programme) for up to :data:`EXACT_MAX_N` non-zero differences, normal approximation with
    tie and continuity correction beyond. 1.0 when no difference is non-zero."""
    nonzero = [d for d in differences if d != 0]
    n = len(nonzero)
    if n == 0:
        return 1.0
    ranks = _ranks([abs(d) for d in nonzero])
    doubled = [round(2 * r) for r in ranks]
    observed = sum(r for r, d in zip(doubled, nonzero, strict=True) if d > 0)
    if n <= EXACT_MAX_N:
        sums, tail = _signed_rank_tail(tuple(sorted(doubled)))
        lo, hi = 0, len(sums)
        while lo < hi:
            mid = (lo + hi) // 2
            if sums[mid] < observed:
                lo = mid + 1
            else:
                hi = mid
        return (tail[lo] if lo < len(sums) else 0) / 2.0**n
    w = observed / 2.0
    mean_w = n * (n + 1) / 4.0
    tie_counts: dict[float, int] = {}
    for r in ranks:
        tie_counts[r] = tie_counts.get(r, 0) + 1
    var_w = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t**3 - t for t in tie_counts.values()) / 48.0
    if var_w <= 0:
        return 1.0 if w <= mean_w else 0.0
    z = (w - mean_w - 0.5) / math.sqrt(var_w)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _log_ratio(b: float, a: float) -> float:
    """log(b / a), defined for zeros and infinities: never NaN."""
    if a == b:
        return 0.0
    if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b):
        return math.log(b) - math.log(a)
    return math.inf if b > a else -math.inf


def compare_paired(
    current: Sequence[float],
    candidate: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
) -> Comparison:
    """Compare ``candidate`` with ``current`` measured in one run, A B B A ...

    Window ``i`` of ``current`` and window ``i`` of ``candidate`` form a pair (they were
    measured next to each other); extra windows on one side are ignored. Pairs with a window
    flagged by :func:`outliers` on its side are dropped (when at least one pair stays). The
    verdict ("regressed" means the candidate costs more):

    * ``ratio = exp(median of log(candidate_i / current_i))``;
    * regressed when ``ratio > 1 + tolerance`` and the one-sided signed-rank test on the log
      ratios gives ``p < alpha``; improved mirrors;
    * with too few pairs for the test to reach ``alpha`` (``2**-n >= alpha``), the ratio
      alone decides against at least :data:`LOW_CONFIDENCE_MIN_TOLERANCE_PCT`.

    ``n_current`` and ``n_baseline`` are the pairs used; the candidate plays "current" and
    ``current`` plays "baseline" in the fields.
    """
    _check(current, candidate)
    spread = pooled_spread(current, candidate)
    out_a, out_b = outliers(current, spread=spread), outliers(candidate, spread=spread)
    n = min(len(current), len(candidate))
    dropped = {i for i in (*out_a, *out_b) if i < n}
    keep = [i for i in range(n) if i not in dropped] or list(range(n))
    logs = [_log_ratio(candidate[i], current[i]) for i in keep]
    mid = median(logs)
    ratio = _exp(mid) if math.isfinite(mid) else (math.inf if mid > 0 else 0.0)
    low_confidence = not 2.0 ** -len(logs) < alpha
    if low_confidence:
        tolerance_pct = max(tolerance_pct, LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
    p_regressed = signed_rank_greater(logs)
    p_improved = signed_rank_greater([-x for x in logs])
    status = _status(
        ratio, p_regressed, p_improved, tolerance_pct, alpha, confirm=not low_confidence
    )
    return Comparison(
        status=status,
        ratio=ratio,
        p_regressed=p_regressed,
        p_improved=p_improved,
        low_confidence=low_confidence,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=len(logs),
        n_baseline=len(logs),
        rule="paired",
        outliers_current=out_b,
        outliers_baseline=out_a,
        improved_beyond_bound=status is Status.IMPROVED,
    )


# -- text -------------------------------------------------------------------------------


def describe(c: Comparison) -> str:
    """One line of evidence for a failure message: the rule, the change, the test, the
    spread used and where it came from, and the outliers set aside."""
    parts = [f"median {c.change_pct:+.1f}% (tolerance {c.tolerance_pct:g}%)"]
    if c.rule == "deterministic":
        parts.append("deterministic meter: no significance test")
    elif c.rule == "paired":
        p = c.p_regressed if c.ratio >= 1.0 else c.p_improved
        parts.append(f"signed-rank p={p:.2g} over {c.n_current} A/B pairs (alpha {c.alpha:g})")
    else:
        p = c.p_regressed if c.ratio >= 1.0 else c.p_improved
        test = (
            "too few windows for the U test"
            if c.low_confidence
            else f"U test p={p:.2g} (alpha {c.alpha:g})"
        )
        parts.append(f"{test}, {c.n_current} vs {c.n_baseline} windows")
    if c.rule == "prediction" and c.run_spread_pct is not None:
        if c.spread_runs == 0:
            source = "the prior (fewer than 3 baseline runs)"
        elif c.prior_pooled:
            source = f"{c.spread_runs} baseline runs pooled with the prior"
        else:
            source = f"{c.spread_runs} baseline runs"
        bound = ""
        if c.bound_ratio is not None:
            side = "upper" if c.ratio >= 1.0 else "lower"
            bound = f"{side} prediction bound {(c.bound_ratio - 1.0) * 100.0:+.1f}%, "
        parts.append(f"{bound}run-to-run spread {c.run_spread_pct:.2g}% from {source}")
    n_out = len(c.outliers_current) + len(c.outliers_baseline)
    if n_out:
        parts.append(
            f"outlier windows set aside: {len(c.outliers_current)} of this run, "
            f"{len(c.outliers_baseline)} of the baseline"
        )
    return "; ".join(parts)
