"""pytest_energy.stats.robust: medians, spreads and the outlier windows of one run."""

from __future__ import annotations

import math

import pytest

from pytest_energy.stats.robust import (
    coefficient_of_variation,
    median,
    outliers,
    pooled_spread,
    robust_spread,
    without,
)

# -- median and CV ----------------------------------------------------------------------


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7]) == 7.0
    assert isinstance(median([7]), float)


def test_median_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="no samples"):
        median([])


def test_coefficient_of_variation() -> None:
    # mean 2, sample stdev 1
    assert coefficient_of_variation([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert coefficient_of_variation([5.0, 5.0, 5.0]) == 0.0


@pytest.mark.parametrize("samples", [[], [4.2], [0.0, 0.0]])
def test_coefficient_of_variation_degenerate_is_zero(samples: list[float]) -> None:
    assert coefficient_of_variation(samples) == 0.0


# -- outlier windows ---------------------------------------------------------------------


def test_outliers_flags_far_windows_only() -> None:
    # median 1.0; deviations sort to 0 0 0 .01 .01 .02 .02 .03 .03 .3 -> MAD .015,
    # robust sd .022239, limit 5 * .022239 = .111: only the 1.3 window is beyond it
    samples = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 1.0, 1.3]
    assert outliers(samples) == (9,)
    assert outliers([1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 1.0, 1.1]) == ()


def test_outliers_floor_and_small_runs() -> None:
    # MAD 0: the 1% floor sets the scale, limit 5%
    assert outliers([1.0] * 9 + [1.06]) == (9,)
    assert outliers([1.0] * 9 + [1.04]) == ()
    assert outliers([1.0, 5.0]) == ()  # two windows: neither is "far"
    assert outliers([1.0, 1.0, 1.0, math.inf]) == (3,)
    assert outliers([math.inf, math.inf, math.inf]) == ()


def test_pooled_spread_resists_a_contaminated_run() -> None:
    # one run of ten with two +30% windows (median 1.005), one clean run (median 1.0)
    dirty = [1.0, 1.03, 0.97, 1.02, 0.98, 1.01, 0.99, 1.0, 1.3, 1.3]
    clean = [1.0, 1.03, 0.97, 1.02, 0.98, 1.01, 0.99, 1.0, 1.01, 0.99]
    # dirty's own deviations sort to .005 x3, .015 x2, .025 x2, .035, .295 x2: MAD .02
    assert robust_spread(dirty) == pytest.approx(1.4826 * 0.02 / 1.005)
    # pooled with clean's (0 x2, .01 x4, .02 x2, .03 x2), the 10th and 11th of 20 are .015
    pooled = pooled_spread(dirty, clean)
    assert pooled == pytest.approx(1.4826 * 0.015 / 1.005)
    assert pooled_spread([1.0, 2.0]) is None  # too few windows to say
    assert pooled_spread([0.0, 0.0, 0.0], clean) is None
    # a given spread replaces the run's own MAD; more than half flagged means none
    assert outliers([1.0, 1.0, 1.0, 1.2], spread=0.01) == (3,)
    assert outliers([1.0, 1.1, 1.2, 1.3, 1.4], spread=0.001) == ()  # 4 of 5 beyond 6%


def test_without_drops_the_indices() -> None:
    assert without([1.0, 2.0, 3.0, 4.0], (0, 2)) == [2.0, 4.0]
    assert without([1.0, 2.0], ()) == [1.0, 2.0]
