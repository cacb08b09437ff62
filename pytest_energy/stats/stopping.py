"""Sequential stopping for ``--energy-rounds=auto``: whether more windows can still change
the verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..settings import DEFAULT_MAX_ROUNDS, DEFAULT_ROUNDS, MIN_ADAPTIVE_ROUNDS
from ._numbers import log_nonnegative, positive_finite
from .bound import RecordedRun, median_variance
from .robust import median
from .rule import Status, evaluate

#: :func:`settled` stops when the median is this many standard errors clear of every
#: threshold (about 1 in 740 one-sided under normal noise).
SETTLE_Z = 3.0


def settled(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
    run_spread_pct: float,
    history: Sequence[RecordedRun] = (),
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    min_rounds: int = MIN_ADAPTIVE_ROUNDS,
    new_test_rounds: int = DEFAULT_ROUNDS,
) -> bool:
    """Whether ``--energy-rounds=auto`` may stop taking windows now.

    The sequential rule, checked after each window:

    * always at ``max_rounds`` windows, even below ``min_rounds``;
    * with no baseline, at ``new_test_rounds`` windows (so that the baseline a new test
      records is a good one);
    * never before ``min_rounds`` windows;
    * otherwise let ``m`` be the median ratio that :func:`~pytest_energy.stats.rule.compare`
      judges (windows that are not outliers, against the baseline level), ``se`` its
      standard error, ``sqrt(f(n)) * w / sqrt(n)`` on the log scale (``w`` the pooled
      within-run spread, ``f`` as in the prediction bound), and ``Z =`` :data:`SETTLE_Z`.

      - *decided "ok"*: ``m`` is ``Z * se`` inside both thresholds it would have at
        ``max_rounds`` windows, the tightest they can get: ``1 +- tolerance`` and the
        prediction bounds (when the rule has them) computed for ``max_rounds`` windows.
      - *decided "regressed"* (or "improved"): ``compare`` says so now, and ``m`` is
        ``Z * se`` beyond ``1 + tolerance`` (the low-confidence tolerance where that
        applies) and beyond the prediction bound at this window count.

    More windows can still flip a verdict that is decided in this sense, but only by a
    ``Z``-standard-error move of the median.
    """
    n = len(current)
    if n >= max_rounds:
        return True
    if not baseline:
        return n >= min(new_test_rounds, max_rounds)
    if n < min_rounds:
        return False
    c, e = evaluate(
        current,
        baseline,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        history=history,
        run_spread_pct=run_spread_pct,
    )
    assert e is not None
    cur_median = median(e.current)
    if not (positive_finite(cur_median) and positive_finite(e.level)):
        return c.status is not Status.OK
    margin = SETTLE_Z * math.sqrt(median_variance(e.within, len(e.current)))
    log_level = math.log(e.level)
    log_ratio = math.log(cur_median) - log_level

    def bound_edges(windows: int) -> tuple[float, float]:
        """The prediction bounds at ``windows`` windows as log ratios (upper, lower); when
        the rule has none, edges that never bind."""
        bounds = e.bounds(windows, alpha) if c.rule == "prediction" else None
        if bounds is None:
            return -math.inf, math.inf
        upper = log_nonnegative(bounds.upper) - log_level
        return upper, log_nonnegative(bounds.lower) - log_level

    if c.status is Status.OK:
        limit = tolerance_pct / 100.0
        bound_upper, bound_lower = bound_edges(max_rounds)
        upper = max(math.log1p(limit), bound_upper)
        lower = min(math.log1p(-limit) if limit < 1.0 else -math.inf, bound_lower)
        return lower + margin < log_ratio < upper - margin
    limit = c.tolerance_pct / 100.0
    bound_upper, bound_lower = bound_edges(len(e.current))
    if c.status is Status.REGRESSED:
        return log_ratio - margin > max(math.log1p(limit), bound_upper)
    lower = math.log1p(-limit) if limit < 1.0 else -math.inf
    return log_ratio + margin < min(lower, bound_lower)
