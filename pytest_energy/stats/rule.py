"""The regression decision: this run's windows against the baseline's windows and runs.

Pure functions over numbers. :attr:`Comparison.rule` names the rule that decided:

``"prediction"`` (:func:`compare` for a meter that is not deterministic)
    A regression needs all three of

    1. the median ratio above ``1 + tolerance``, over the windows that are not outliers
       (:func:`~pytest_energy.stats.robust.outliers`, judged against the spread of both
       runs; outlier windows are left out of everything below too, the latest run's level
       included);
    2. within-run evidence: the U test over the windows that are not outliers gives
       ``p < alpha`` (or, with too few windows for the test to reach ``alpha``, a tolerance
       of at least :data:`LOW_CONFIDENCE_MIN_TOLERANCE_PCT`);
    3. this run's median above the one-sided upper prediction bound for a new run at level
       ``alpha``, built from the baseline's run medians and the prior run spread
       (:func:`~pytest_energy.stats.bound.prediction_bounds`). Recorded runs far from the
       others are set aside first (:func:`~pytest_energy.stats.bound.outlying_runs`), so one
       hand-edited or broken run cannot widen the bound until nothing fails.

    When the latest run itself is set aside (its windows, the baseline, lie beyond the cut),
    the ratio is taken against the level of the runs kept (the bound's reference) and the
    within-run evidence is a one-sided signed-rank test of this run's log windows against
    that level. ``improved`` mirrors all three.

``"u-test"``
    A prior of 0 with fewer than 3 runs kept says the run level does not move; the bound
    would then only repeat the within-run evidence, so 1 and 2 above decide alone.

``"deterministic"`` (meters whose figures depend only on the work)
    The median ratio against the tolerance, nothing else: no significance test, no bound,
    no low-confidence floor, no history.

``"paired"`` (:func:`compare_paired`, ``energy.compare`` measured A B B A ...)
    A one-sided Wilcoxon signed-rank test on the log ratios of adjacent A/B windows, and
    the median of those log ratios against the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from ._numbers import exp_saturating, positive_finite
from .bound import Bounds, RecordedRun, Run, outlying_runs, prediction_bounds, within_log_spread
from .distributions import can_reach, mann_whitney_greater, signed_rank_greater
from .robust import median, outliers, pooled_spread, without

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
    """The outcome of :func:`compare` or :func:`compare_paired`."""

    status: Status
    ratio: float
    """This run's median over the baseline level: the baseline's median, or the level of
    the runs kept when ``baseline_set_aside``."""
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
    """Runs of history pooled with the prior into that spread; 0 when it is the prior."""
    bound_ratio: float | None = None
    """The prediction bound over the baseline level, for the direction of the change: the
    upper bound when this run's median is at or above that level, else the lower."""
    outliers_current: tuple[int, ...] = ()
    """Indices of this run's windows flagged as outliers."""
    outliers_baseline: tuple[int, ...] = ()
    outlying_runs: tuple[int, ...] = ()
    """Indices into the history given to :func:`compare` (0 = oldest) of the recorded runs
    set aside as outlying: they do not enter the prediction bound."""
    baseline_set_aside: bool = False
    """The baseline's windows (the latest run's) lie beyond the run cut: the ratio and the
    within-run test are against the level of the runs kept. The latest run's index is then
    in ``outlying_runs``."""
    improved_beyond_bound: bool = False
    """Improved beyond the prediction bound (or, by the rules without one, improved): the
    new level is worth recording."""

    @property
    def change_pct(self) -> float:
        """Change of the median in percent, positive when this run costs more."""
        return (self.ratio - 1.0) * 100.0


def _ratio(current_median: float, baseline_median: float) -> float:
    """``current / baseline`` with the edge cases defined: never NaN."""
    if positive_finite(baseline_median):
        return current_median / baseline_median
    if baseline_median == math.inf:
        return 1.0 if current_median == math.inf else 0.0
    return 1.0 if current_median == baseline_median else math.inf


def _log_ratio(b: float, a: float) -> float:
    """log(b / a), defined for zeros and infinities: never NaN."""
    if a == b:
        return 0.0
    if positive_finite(a) and positive_finite(b):
        return math.log(b) - math.log(a)
    return math.inf if b > a else -math.inf


def _check(current: Sequence[float], baseline: Sequence[float]) -> None:
    if not current or not baseline:
        raise ValueError("compare() needs at least one sample on each side")
    if any(math.isnan(x) for x in current) or any(math.isnan(x) for x in baseline):
        raise ValueError("compare() got a NaN sample: the meter returned no number")


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


def _tested(
    ratio: float,
    p_regressed: float,
    p_improved: float,
    *,
    reachable: bool,
    tolerance_pct: float,
    alpha: float,
    n_current: int,
    n_baseline: int,
) -> Comparison:
    """The verdict of a ratio and a one-sided test on each side; without a ``reachable``
    test, the ratio alone against at least the low-confidence tolerance."""
    if not reachable:
        tolerance_pct = max(tolerance_pct, LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
    return Comparison(
        status=_status(ratio, p_regressed, p_improved, tolerance_pct, alpha, confirm=reachable),
        ratio=ratio,
        p_regressed=p_regressed,
        p_improved=p_improved,
        low_confidence=not reachable,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=n_current,
        n_baseline=n_baseline,
    )


def _signed_rank(
    logs: Sequence[float], ratio: float, tolerance_pct: float, alpha: float
) -> Comparison:
    """Log ratios that should be centred on 0 (pairs, or windows against a level) and the
    ratio they give, through the signed-rank test."""
    return _tested(
        ratio,
        signed_rank_greater(logs),
        signed_rank_greater([-x for x in logs]),
        reachable=2.0 ** -len(logs) < alpha,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        n_current=len(logs),
        n_baseline=len(logs),
    )


@dataclass(frozen=True)
class Evidence:
    """What :func:`compare` judges, once outlier windows and outlying runs are set aside;
    :func:`~pytest_energy.stats.stopping.settled` reads it too."""

    current: list[float]
    """This run's windows that are not outliers."""
    baseline: list[float]
    """The baseline's windows that are not outliers; empty when the latest run is set
    aside."""
    level: float
    """The baseline level: the median of ``baseline``, or the bound's reference (the
    geometric mean of the runs kept) when ``baseline`` is set aside."""
    history: tuple[RecordedRun, ...]
    """The runs the prediction bound is built from."""
    outlying_runs: tuple[int, ...]
    within: float
    within_df: int
    run_spread_pct: float

    def bounds(self, n_current: int, alpha: float) -> Bounds | None:
        """The prediction bounds for a run of ``n_current`` windows."""
        return prediction_bounds(
            baseline_median=self.level,
            history=self.history,
            run_spread_pct=self.run_spread_pct,
            within_spread=self.within,
            within_df=self.within_df,
            n_current=n_current,
            alpha=alpha,
        )

    def within_run_test(self, tolerance_pct: float, alpha: float) -> Comparison:
        """Conditions 1 and 2 of the rule: the ratio and the within-run test."""
        cur = median(self.current)
        if self.baseline:
            return _tested(
                _ratio(cur, self.level),
                mann_whitney_greater(self.current, self.baseline),
                mann_whitney_greater(self.baseline, self.current),
                reachable=can_reach(alpha, len(self.current), len(self.baseline)),
                tolerance_pct=tolerance_pct,
                alpha=alpha,
                n_current=len(self.current),
                n_baseline=len(self.baseline),
            )
        logs = [_log_ratio(x, self.level) for x in self.current]
        return _signed_rank(logs, _ratio(cur, self.level), tolerance_pct, alpha)


def gather_evidence(
    current: Sequence[float],
    baseline: Sequence[float],
    history: Sequence[RecordedRun],
    *,
    run_spread_pct: float,
    outliers_current: tuple[int, ...],
    outliers_baseline: tuple[int, ...],
) -> Evidence:
    """Set aside the outlier windows and the outlying runs (see the module docstring)."""
    clean_current = without(current, outliers_current)
    clean_baseline = without(baseline, outliers_baseline)
    level = median(clean_baseline)
    runs = list(history)
    if outliers_baseline and runs and runs[-1].kwh_per_1000 == median(baseline):
        # the latest run is the baseline's: its level without the outlier windows
        runs[-1] = Run(level, runs[-1].windows, runs[-1].spread_pct)
    within, within_df = within_log_spread(clean_current, clean_baseline)
    cut = outlying_runs(runs, run_spread_pct=run_spread_pct, within_spread=within)
    outlying = set(cut.outlying)
    set_aside = bool(runs) and cut.beyond(level)
    if set_aside:  # the baseline's windows are the latest run's, and far from the others
        outlying.add(len(runs) - 1)
        clean_baseline = []
        within, within_df = within_log_spread(clean_current)
    kept = tuple(r for i, r in enumerate(runs) if i not in outlying)
    if set_aside:
        # at least one usable run is kept: the cut needs 3 and sets aside at most half,
        # the latest run aside
        logs = [math.log(r.kwh_per_1000) for r in kept if positive_finite(r.kwh_per_1000)]
        level = math.exp(math.fsum(logs) / len(logs))
    return Evidence(
        current=clean_current,
        baseline=clean_baseline,
        level=level,
        history=kept,
        outlying_runs=tuple(sorted(outlying)),
        within=within,
        within_df=within_df,
        run_spread_pct=run_spread_pct,
    )


def evaluate(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
    history: Sequence[RecordedRun] = (),
    run_spread_pct: float | None = None,
    deterministic: bool = False,
) -> tuple[Comparison, Evidence | None]:
    """:func:`compare`, with the evidence it judged (None under the deterministic rule)."""
    _check(current, baseline)
    spread = pooled_spread(current, baseline)
    out_current = outliers(current, spread=spread)
    out_baseline = outliers(baseline, spread=spread)
    if deterministic:
        ratio = _ratio(median(current), median(baseline))
        status = _status(ratio, 1.0, 1.0, tolerance_pct, alpha, confirm=False)
        c = Comparison(
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
        return c, None
    if run_spread_pct is None:
        raise ValueError(
            "compare() needs run_spread_pct, the prior run-to-run spread, for a meter that "
            "is not deterministic"
        )
    e = gather_evidence(
        current,
        baseline,
        history,
        run_spread_pct=run_spread_pct,
        outliers_current=out_current,
        outliers_baseline=out_baseline,
    )
    c = e.within_run_test(tolerance_pct, alpha)
    common: dict[str, object] = {
        "outliers_current": out_current,
        "outliers_baseline": out_baseline,
        "outlying_runs": e.outlying_runs,
        "baseline_set_aside": not e.baseline,
        "n_current": len(current),
        "n_baseline": len(baseline),
    }
    bounds = e.bounds(len(e.current), alpha)
    if bounds is None:  # no positive finite level: the within-run evidence is all there is
        return _with(c, improved_beyond_bound=c.status is Status.IMPROVED, **common), e
    if bounds.spread_runs == 0 and bounds.run_spread_pct == 0 and e.baseline:
        # A prior of 0 says the run level does not move: the bound would only repeat, less
        # well, the within-run evidence the U test already gives. The U test decides.
        c = _with(c, run_spread_pct=0.0, improved_beyond_bound=c.status is Status.IMPROVED)
        return _with(c, **common), e
    cur_median = median(e.current)
    status = c.status
    if status is Status.REGRESSED and not cur_median > bounds.upper:
        status = Status.OK
    if status is Status.IMPROVED and not cur_median < bounds.lower:
        status = Status.OK
    edge = _ratio(bounds.upper if cur_median >= e.level else bounds.lower, e.level)
    bound_ratio = edge if math.isfinite(edge) else None
    c = _with(
        c,
        status=status,
        rule="prediction",
        run_spread_pct=bounds.run_spread_pct,
        spread_runs=bounds.spread_runs,
        bound_ratio=bound_ratio,
        improved_beyond_bound=status is Status.IMPROVED,
        **common,
    )
    return c, e


def compare(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float,
    alpha: float,
    history: Sequence[RecordedRun] = (),
    run_spread_pct: float | None = None,
    deterministic: bool = False,
) -> Comparison:
    """Decide whether ``current`` regressed against ``baseline`` (both in kWh/1000).

    ``history`` holds the baseline's recorded runs, oldest first, the run whose windows are
    ``baseline`` last. ``run_spread_pct`` is the prior run-to-run spread, in percent; the
    rules for meters that are not ``deterministic`` need it (see the module docstring).

    Raises ValueError when a side has no samples, a sample is NaN, or ``run_spread_pct`` is
    missing where it is needed. Zeros and infinities give a verdict, never NaN.
    """
    return evaluate(
        current,
        baseline,
        tolerance_pct=tolerance_pct,
        alpha=alpha,
        history=history,
        run_spread_pct=run_spread_pct,
        deterministic=deterministic,
    )[0]


def _with(c: Comparison, **changes: object) -> Comparison:
    return replace(c, **changes)  # type: ignore[arg-type]


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
    flagged as an outlier on its side are dropped (when at least one pair stays). The
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
    ratio = exp_saturating(mid) if math.isfinite(mid) else (math.inf if mid > 0 else 0.0)
    c = _signed_rank(logs, ratio, tolerance_pct, alpha)
    return _with(
        c,
        rule="paired",
        outliers_current=out_b,
        outliers_baseline=out_a,
        improved_beyond_bound=c.status is Status.IMPROVED,
    )
