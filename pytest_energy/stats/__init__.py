"""Statistics of the gate: pure functions over numbers, no pytest.

- :mod:`.distributions`: the exact Mann-Whitney U and signed-rank tails, Student's t, the
  normal quantile;
- :mod:`.robust`: medians, MAD spreads and outlier windows of one run;
- :mod:`.bound`: the prediction bound for a new run's median, and the outlying recorded
  runs it is not built from;
- :mod:`.rule`: the verdicts, :func:`compare` and :func:`compare_paired`;
- :mod:`.stopping`: :func:`settled`, the sequential rule of ``--energy-rounds=auto``.

Defaults that a user can change live in :mod:`pytest_energy.settings`; storage rounding and
the recorded run are :mod:`pytest_energy.record`'s, the failure prose ``gate.py``'s.
"""

from ..settings import MIN_ADAPTIVE_ROUNDS
from .bound import (
    MIN_HISTORY_RUNS,
    PRIOR_DEGREES_OF_FREEDOM,
    RUN_OUTLIER_THRESHOLD,
    Bounds,
    RecordedRun,
    RunCut,
    outlying_runs,
    prediction_bounds,
)
from .distributions import (
    EXACT_MAX_N,
    can_reach,
    mann_whitney_greater,
    normal_quantile,
    satterthwaite_df,
    signed_rank_greater,
    student_t_cdf,
    student_t_quantile,
    t_quantile,
)
from .robust import (
    MAD_TO_SD,
    MIN_OUTLIER_WINDOWS,
    OUTLIER_FLOOR_PCT,
    OUTLIER_THRESHOLD,
    coefficient_of_variation,
    median,
    outliers,
    pooled_spread,
    robust_spread,
)
from .rule import LOW_CONFIDENCE_MIN_TOLERANCE_PCT, Comparison, Status, compare, compare_paired
from .stopping import SETTLE_Z, settled

__all__ = [
    "EXACT_MAX_N",
    "LOW_CONFIDENCE_MIN_TOLERANCE_PCT",
    "MAD_TO_SD",
    "MIN_ADAPTIVE_ROUNDS",
    "MIN_HISTORY_RUNS",
    "MIN_OUTLIER_WINDOWS",
    "OUTLIER_FLOOR_PCT",
    "OUTLIER_THRESHOLD",
    "PRIOR_DEGREES_OF_FREEDOM",
    "RUN_OUTLIER_THRESHOLD",
    "SETTLE_Z",
    "Bounds",
    "Comparison",
    "RecordedRun",
    "RunCut",
    "Status",
    "can_reach",
    "coefficient_of_variation",
    "compare",
    "compare_paired",
    "mann_whitney_greater",
    "median",
    "normal_quantile",
    "outliers",
    "outlying_runs",
    "pooled_spread",
    "prediction_bounds",
    "robust_spread",
    "satterthwaite_df",
    "settled",
    "signed_rank_greater",
    "student_t_cdf",
    "student_t_quantile",
    "t_quantile",
]
