"""Summaries of one run's windows that outliers barely move: the median, the MAD spread, and
the windows far from their run's median.

All spreads are relative (a fraction of the median).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

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
    robust standard deviation known from elsewhere (the rules pool both runs' deviations,
    :func:`pooled_spread`), replaces ``1.4826 * MAD / |median|``. Nothing is flagged in
    fewer than :data:`MIN_OUTLIER_WINDOWS` windows, when the median or the MAD is not
    finite, or when more than half of the windows would be.
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


def without(samples: Sequence[float], flagged: Iterable[int]) -> list[float]:
    """``samples`` less the indices in ``flagged``."""
    drop = set(flagged)
    return [x for i, x in enumerate(samples) if i not in drop]
