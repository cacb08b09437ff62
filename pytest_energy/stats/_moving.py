"""Names that are leaving stats: storage rounding and the recorded run (for the record
module) and the failure prose (for gate.py). They live here, re-exported by
``pytest_energy.stats``, until they move; nothing else in stats imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .robust import median, robust_spread
from .rule import Comparison

#: Significant digits kept per sample (kWh per 1,000 inferences of one window): far finer
#: than any meter's repeatability, short enough for a reviewable baseline diff.
SAMPLE_DIGITS = 6
#: Significant digits of a stored run's spread.
SPREAD_DIGITS = 3


def round_sample(value: float) -> float:
    """A sample as stored and compared everywhere: :data:`SAMPLE_DIGITS` significant digits.

    Applied once, to each window's figure; the baseline, the JSON report and the xdist
    transport then carry the same numbers, so they never disagree.
    """
    return float(f"{value:.{SAMPLE_DIGITS}g}")


@dataclass(frozen=True)
class RunSummary:
    """One recorded run of a test, as stored in the baseline's ``runs`` array (a
    :class:`~pytest_energy.stats.bound.RecordedRun`)."""

    kwh_per_1000: float
    """The run's median, kWh per 1,000 inferences."""
    windows: int
    spread_pct: float
    """Robust within-run spread, percent: ``1.4826 * MAD / median * 100`` (0 with fewer than
    two windows or a median that is not positive and finite)."""
    date: str
    """UTC date ``YYYY-MM-DD``; "" when unknown (runs migrated from schema 1)."""

    @classmethod
    def of(cls, samples: Sequence[float], date: str) -> RunSummary:
        """Summarise one run's windows (kWh/1000 each); the median is rounded like a sample
        and the spread to :data:`SPREAD_DIGITS` digits, so a stored run's line is stable."""
        return cls(
            kwh_per_1000=round_sample(median(samples)),
            windows=len(samples),
            spread_pct=float(f"{robust_spread(samples) * 100.0:.{SPREAD_DIGITS}g}"),
            date=date,
        )


def describe(c: Comparison) -> str:
    """One line of evidence for a failure message: the rule, the change, the test, the
    spread used and where it came from, and the windows and runs set aside."""
    parts = [f"median {c.change_pct:+.1f}% (tolerance {c.tolerance_pct:g}%)"]
    p = c.p_regressed if c.ratio >= 1.0 else c.p_improved
    if c.rule == "deterministic":
        parts.append("deterministic meter: no significance test")
    elif c.rule == "paired":
        parts.append(f"signed-rank p={p:.2g} over {c.n_current} A/B pairs (alpha {c.alpha:g})")
    elif c.baseline_set_aside:
        test = (
            "too few windows for the signed-rank test"
            if c.low_confidence
            else f"signed-rank p={p:.2g} (alpha {c.alpha:g})"
        )
        parts.append(f"{test}, {c.n_current} windows against the level of the runs kept")
    else:
        test = (
            "too few windows for the U test"
            if c.low_confidence
            else f"U test p={p:.2g} (alpha {c.alpha:g})"
        )
        parts.append(f"{test}, {c.n_current} vs {c.n_baseline} windows")
    if c.rule == "prediction" and c.run_spread_pct is not None:
        if c.spread_runs == 0:
            source = "the prior (fewer than 3 baseline runs)"
        else:
            source = f"{c.spread_runs} baseline runs pooled with the prior"
        bound = ""
        if c.bound_ratio is not None:
            side = "upper" if c.ratio >= 1.0 else "lower"
            bound = f"{side} prediction bound {(c.bound_ratio - 1.0) * 100.0:+.1f}%, "
        parts.append(f"{bound}run-to-run spread {c.run_spread_pct:.2g}% from {source}")
    if c.outliers_current or c.outliers_baseline:
        parts.append(
            f"outlier windows set aside: {len(c.outliers_current)} of this run, "
            f"{len(c.outliers_baseline)} of the baseline"
        )
    if c.outlying_runs:
        runs = ", ".join(str(i + 1) for i in c.outlying_runs)
        latest = " (the latest run's windows included)" if c.baseline_set_aside else ""
        parts.append(f"outlying recorded runs set aside: run {runs} (1 = oldest){latest}")
    return "; ".join(parts)
