"""The run level: the prediction bound for a new run's median, and the recorded runs that lie
too far from the others to build it from.

All run-level arithmetic is on the log scale, where a multiplicative run offset (the board,
the day, the temperature) is additive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ._numbers import exp_saturating, log_nonnegative, positive_finite
from .distributions import satterthwaite_df, t_quantile
from .robust import MAD_TO_SD, OUTLIER_FLOOR_PCT, median

#: Runs of history from which the run-to-run spread is estimated rather than taken from the
#: prior alone, and from which an outlying run can be set aside.
MIN_HISTORY_RUNS = 3
#: Weight of the prior spread when it is pooled with the history's, in degrees of freedom
#: (a history of k runs brings k - 1).
PRIOR_DEGREES_OF_FREEDOM = 4
#: A recorded run is set aside when its log median lies more than this many robust standard
#: deviations from the median of the history's log medians (see :func:`outlying_runs`). With
#: the default 2% prior, no run of a clean 5-run history is set aside at a true run spread of
#: 1% or 2%, and 0.003 runs per comparison at 3% (docs/measurement.md, "Gate quality",
#: table 14).
RUN_OUTLIER_THRESHOLD = 5.0

#: Asymptotic variance of a sample median over that of a mean, for normal data.
_MEDIAN_EFFICIENCY = math.pi / 2.0
#: The same ratio for 1..20 windows, ``n * var(median of n) / sigma^2`` for normal noise,
#: by simulation (2 million draws per count; the third decimal is uncertain). Even counts
#: average the two middle windows and do better than odd ones; beyond 20, pi/2.
_MEDIAN_FACTORS = (
    1.0, 1.0, 1.344, 1.192, 1.432, 1.289, 1.475, 1.347, 1.495, 1.382,
    1.508, 1.412, 1.517, 1.429, 1.528, 1.446, 1.530, 1.457, 1.536, 1.468,
)  # fmt: skip


class RecordedRun(Protocol):
    """What the rules read of one recorded run (the baseline's ``runs``)."""

    @property
    def kwh_per_1000(self) -> float:
        """The run's median, kWh per 1,000 inferences."""

    @property
    def windows(self) -> int: ...

    @property
    def spread_pct(self) -> float:
        """Robust within-run spread of its windows, percent."""


@dataclass(frozen=True)
class Run:
    """A :class:`RecordedRun` made by the rules themselves (the latest run's level without
    its outlier windows)."""

    kwh_per_1000: float
    windows: int
    spread_pct: float


def median_variance(within: float, windows: int) -> float:
    """Variance of the log of a run's median of ``windows`` windows with relative spread
    ``within`` (normal approximation)."""
    n = max(windows, 1)
    factor = _MEDIAN_FACTORS[n - 1] if n <= len(_MEDIAN_FACTORS) else _MEDIAN_EFFICIENCY
    return factor * within * within / n


def within_log_spread(*sides: Sequence[float]) -> tuple[float, int]:
    """Pooled within-run spread of the windows of ``sides`` (outliers already set aside), and
    its degrees of freedom: the standard deviation of the log of the windows around each
    side's mean log, pooled over the sides. (0.0, 0) when no side has two positive finite
    windows.

    Unlike the MAD, this is efficient at normal noise, so the bound is not widened by the
    noise of its own estimate; outliers cannot inflate it because they are excluded first.
    """
    squares = 0.0
    df = 0
    for side in sides:
        logs = [math.log(x) for x in side if positive_finite(x)]
        if len(logs) < 2:
            continue
        mean = math.fsum(logs) / len(logs)
        squares += math.fsum((x - mean) ** 2 for x in logs)
        df += len(logs) - 1
    return (math.sqrt(squares / df), df) if df else (0.0, 0)


def _run_noise(run: RecordedRun, within_spread: float) -> float:
    """Variance of the log of ``run``'s median from its window noise: ``within_spread`` when
    it is known, else the run's stored spread."""
    within = within_spread if within_spread > 0 or run.windows < 2 else run.spread_pct / 100.0
    return median_variance(within, run.windows)


@dataclass(frozen=True)
class RunCut:
    """The outcome of :func:`outlying_runs`."""

    outlying: tuple[int, ...]
    """Indices into the history (0 = oldest) of the runs set aside."""
    centre_log: float
    """Median of the usable runs' log medians."""
    limit: float
    """Largest distance on the log scale from ``centre_log`` that is not outlying; ``inf``
    when the history is too short to set anything aside."""

    def beyond(self, level: float) -> bool:
        """Whether a run at ``level`` (kWh/1000) would be set aside."""
        return math.isfinite(self.limit) and abs(log_nonnegative(level) - self.centre_log) > (
            self.limit
        )


def outlying_runs(
    history: Sequence[RecordedRun], *, run_spread_pct: float, within_spread: float
) -> RunCut:
    """The recorded runs too far from the others to build the prediction bound from.

    On the log scale, with ``l_i`` the log medians of the usable runs (positive, finite),
    ``c = median(l_i)`` and the robust spread ``1.4826 * median(|l_i - c|)``, a run is set
    aside when ``|l_i - c| > RUN_OUTLIER_THRESHOLD * scale``. ``scale`` is that robust
    spread with a floor: the spread a clean run's median has anyway, ``sqrt(prior^2 + v)``
    (the prior run spread, and ``v`` the mean variance of a run median from its window
    noise), and at least :data:`~pytest_energy.stats.robust.OUTLIER_FLOOR_PCT` percent. So
    no run is set aside for differing by what the prior already allows, and five runs that
    agree to 0.1% do not set aside one 2% away.

    Nothing is set aside in fewer than :data:`MIN_HISTORY_RUNS` usable runs (with two, which
    one is far?). A run set aside lies beyond the MAD, so at most half of them are.
    """
    usable = [(i, math.log(r.kwh_per_1000)) for i, r in enumerate(history) if _usable(r)]
    if len(usable) < MIN_HISTORY_RUNS:
        return RunCut((), 0.0, math.inf)
    logs = [x for _, x in usable]
    centre = median(logs)
    mad = median(abs(x - centre) for x in logs)
    noise = math.fsum(_run_noise(r, within_spread) for r in history if _usable(r)) / len(logs)
    prior = max(run_spread_pct, 0.0) / 100.0
    floor = max(math.sqrt(prior * prior + noise), OUTLIER_FLOOR_PCT / 100.0)
    limit = RUN_OUTLIER_THRESHOLD * max(MAD_TO_SD * mad, floor)
    return RunCut(tuple(i for i, x in usable if abs(x - centre) > limit), centre, limit)


def _usable(run: RecordedRun) -> bool:
    return positive_finite(run.kwh_per_1000)


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
    """Runs whose spread was pooled with the prior; 0 for the prior alone."""


def prediction_bounds(
    *,
    baseline_median: float,
    history: Sequence[RecordedRun],
    run_spread_pct: float,
    within_spread: float,
    n_current: int,
    alpha: float,
    within_df: float = math.inf,
) -> Bounds | None:
    """The one-sided prediction bounds, each at level ``alpha``, for a new run's median.

    ``history`` is the runs to build it from (the rules pass the runs that
    :func:`outlying_runs` did not set aside). On the log scale, with ``k`` usable runs
    (positive, finite medians ``m_i``), reference ``r = mean(log m_i)`` (``log
    baseline_median`` when none is usable, ``k = 1``), ``w`` the within-run spread of a
    window (``within_spread``) and ``v(n) = f(n) * w^2 / n`` the variance of the log of a
    median of ``n`` windows (``f(n)`` from 1 to pi/2, the variance factor of a median of
    ``n`` normal windows):

    * the run-level spread ``s``: the prior ``run_spread_pct``, taken as known, while
      ``k <`` :data:`MIN_HISTORY_RUNS`. From then on it is pooled with the history's
      estimate, the sample variance of the ``log m_i`` less the mean ``v(n_i)`` that
      within-run noise explains (at least 0, ``k - 1`` degrees of freedom):
      ``(d0 * prior^2 + (k - 1) * s_hist^2) / (d0 + k - 1)``, with ``d0 + k - 1`` degrees
      of freedom, ``d0 =`` :data:`PRIOR_DEGREES_OF_FREEDOM`.
    * ``var = s^2 * (1 + 1/k) + v(n_current) + mean_i v(n_i) / k``: a new run's median
      varies by the run spread and its own median's noise, and the reference is a mean of
      ``k`` such medians.
    * ``q`` is the ``1 - alpha`` quantile of Student's t with the Welch-Satterthwaite
      degrees of freedom of ``var`` (the run-spread part with those of ``s``, the
      within-run part with ``within_df``); the normal quantile when they exceed 1,000.
    * bounds ``exp(r -+ q * sqrt(var))``.

    None when there is no positive finite reference.
    """
    runs = [r for r in history if _usable(r)]
    k = len(runs)
    logs = [math.log(r.kwh_per_1000) for r in runs]
    if k:
        reference = math.fsum(logs) / k
        hist_noise = [_run_noise(r, within_spread) for r in runs]
    elif positive_finite(baseline_median):
        k = 1
        reference = math.log(baseline_median)
        hist_noise = [median_variance(within_spread, max(n_current, 1))]
    else:
        return None
    mean_hist_noise = math.fsum(hist_noise) / len(hist_noise)
    prior = max(run_spread_pct, 0.0) / 100.0
    spread_var, spread_df, spread_runs = prior * prior, math.inf, 0
    if len(runs) >= MIN_HISTORY_RUNS:
        sample_var = math.fsum((x - reference) ** 2 for x in logs) / (k - 1)
        offset_var = max(sample_var - mean_hist_noise, 0.0)
        spread_df = PRIOR_DEGREES_OF_FREEDOM + k - 1
        spread_var = (PRIOR_DEGREES_OF_FREEDOM * spread_var + (k - 1) * offset_var) / spread_df
        spread_runs = k
    if not within_spread > 0:
        # the window noise, if any, comes from the runs' stored spreads
        within_df = math.fsum(max(r.windows - 1, 0) for r in runs) or math.inf
    spread_part = spread_var * (1.0 + 1.0 / k)
    within_part = median_variance(within_spread, n_current) + mean_hist_noise / k
    df = satterthwaite_df(((spread_part, spread_df), (within_part, within_df)))
    half = t_quantile(1.0 - alpha, df) * math.sqrt(spread_part + within_part)
    return Bounds(
        lower=exp_saturating(reference - half),
        upper=exp_saturating(reference + half),
        reference=math.exp(reference),
        run_spread_pct=math.sqrt(spread_var) * 100.0,
        spread_runs=spread_runs,
    )
