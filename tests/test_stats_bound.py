"""pytest_energy.stats.bound: the prediction bound for a new run, and the outlying runs that
it is not built from."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from pytest_energy.stats.bound import (
    Run,
    RunCut,
    median_variance,
    outlying_runs,
    prediction_bounds,
    within_log_spread,
)

Z_99 = 2.3263478740408408  # the normal 0.99 quantile


def _runs(levels: Sequence[float], windows: int = 10, spread_pct: float = 0.0) -> list[Run]:
    return [Run(m, windows, spread_pct) for m in levels]


# -- the prediction bound -----------------------------------------------------------------


def test_a_one_run_bound_is_the_prior_alone() -> None:
    # no window noise: var = prior^2 * (1 + 1/1), the normal quantile (the prior is known)
    b = prediction_bounds(
        baseline_median=1.0,
        history=_runs([1.0]),
        run_spread_pct=2.0,
        within_spread=0.0,
        n_current=10,
        alpha=0.01,
    )
    assert b is not None
    assert b.upper == pytest.approx(math.exp(Z_99 * math.sqrt(2.0) * 0.02), rel=1e-12)
    assert b.lower == pytest.approx(1.0 / b.upper, rel=1e-12)
    assert (b.run_spread_pct, b.spread_runs, b.reference) == (2.0, 0, 1.0)


def test_window_noise_widens_the_bound() -> None:
    kw = {"baseline_median": 1.0, "history": _runs([1.0]), "run_spread_pct": 2.0, "alpha": 0.01}
    quiet = prediction_bounds(within_spread=0.0, n_current=10, **kw)  # type: ignore[arg-type]
    noisy = prediction_bounds(within_spread=0.05, n_current=10, **kw)  # type: ignore[arg-type]
    assert quiet is not None and noisy is not None
    # var adds v(10) for the new run and v(10) / 1 for the reference's run
    expected = math.exp(Z_99 * math.sqrt(2 * 0.02**2 + 2 * median_variance(0.05, 10)))
    assert noisy.upper == pytest.approx(expected, rel=1e-12)
    assert noisy.upper > quiet.upper


HISTORY_MEDIANS = (1.0, 1.02, 0.98, 1.01, 0.99)


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_from_three_runs_the_history_is_pooled_with_the_prior(prior: float) -> None:
    logs = [math.log(m) for m in HISTORY_MEDIANS]
    mean = sum(logs) / 5
    var = sum((x - mean) ** 2 for x in logs) / 4
    spread2 = (4 * (prior / 100) ** 2 + 4 * var) / 8  # 4 df of prior, 4 of history
    t_8 = 2.896459447710  # t(0.99, 8 df)
    b = prediction_bounds(
        baseline_median=0.99,
        history=_runs(HISTORY_MEDIANS),
        run_spread_pct=prior,
        within_spread=0.0,
        n_current=10,
        alpha=0.01,
    )
    assert b is not None and b.spread_runs == 5
    assert b.reference == pytest.approx(math.exp(mean), rel=1e-12)
    assert b.run_spread_pct == pytest.approx(math.sqrt(spread2) * 100, rel=1e-9)
    assert b.upper == pytest.approx(math.exp(mean + t_8 * math.sqrt(spread2 * 1.2)), rel=1e-9)


def test_two_runs_use_the_prior_alone_around_their_mean() -> None:
    b = prediction_bounds(
        baseline_median=1.0,
        history=_runs([1.0, 1.1]),
        run_spread_pct=1.0,
        within_spread=0.0,
        n_current=10,
        alpha=0.01,
    )
    assert b is not None and b.spread_runs == 0 and b.run_spread_pct == 1.0
    assert b.reference == pytest.approx(math.sqrt(1.1), rel=1e-12)
    assert b.upper == pytest.approx(math.sqrt(1.1) * math.exp(Z_99 * 0.01 * math.sqrt(1.5)))


def test_no_bound_without_a_positive_finite_level() -> None:
    kw = {"run_spread_pct": 2.0, "within_spread": 0.0, "n_current": 5, "alpha": 0.01}
    assert prediction_bounds(baseline_median=0.0, history=(), **kw) is None  # type: ignore[arg-type]
    unusable = _runs([0.0, math.inf])
    assert prediction_bounds(baseline_median=math.inf, history=unusable, **kw) is None  # type: ignore[arg-type]
    only_level = prediction_bounds(baseline_median=2.0, history=unusable, **kw)  # type: ignore[arg-type]
    assert only_level is not None and only_level.reference == 2.0


def test_within_log_spread_pools_the_sides() -> None:
    a, b = [1.0, math.e**2], [1.0, 1.0, 1.0]  # logs 0, 2 around 1: squares 2 over 1 df
    assert within_log_spread(a, b) == (pytest.approx(math.sqrt(2 / 3)), 3)
    assert within_log_spread([1.0], [0.0, 5.0]) == (0.0, 0)


# -- outlying runs ------------------------------------------------------------------------


CLEAN = (1.0, 1.01, 0.99, 1.005, 0.995)


@pytest.mark.parametrize("edited", range(5))
@pytest.mark.parametrize("factor", [10.0, 3.0, 0.1])
def test_one_far_run_of_five_is_set_aside(edited: int, factor: float) -> None:
    levels = list(CLEAN)
    levels[edited] *= factor
    cut = outlying_runs(_runs(levels), run_spread_pct=2.0, within_spread=0.01)
    assert cut.outlying == (edited,)


def test_a_clean_history_keeps_every_run() -> None:
    assert outlying_runs(_runs(CLEAN), run_spread_pct=2.0, within_spread=0.01).outlying == ()
    assert outlying_runs(_runs(CLEAN), run_spread_pct=0.0, within_spread=0.0).outlying == ()


def test_two_far_runs_of_five_are_set_aside() -> None:
    levels = [1.0, 10.0, 0.99, 3.0, 1.01]
    assert outlying_runs(_runs(levels), run_spread_pct=2.0, within_spread=0.0).outlying == (1, 3)


@pytest.mark.parametrize(
    ("prior", "within", "level", "far"),
    [
        (2.0, 0.0, 1.08, False),  # within 5 x 2% (the prior) of the others
        (2.0, 0.0, 1.12, True),
        (0.0, 0.0, 1.04, False),  # the 1% floor: 5% away at most
        (0.0, 0.0, 1.06, True),
        (0.0, 0.10, 1.12, False),  # 10% window noise over 10 windows: a median varies 3.7%
        (5.0, 0.0, 1.2, False),  # the estimated meters' prior
    ],
)
def test_the_cut_has_a_floor(prior: float, within: float, level: float, far: bool) -> None:
    # four runs that agree exactly: MAD 0, so the floor alone sets the cut
    cut = outlying_runs(
        _runs([1.0, 1.0, 1.0, 1.0, level]), run_spread_pct=prior, within_spread=within
    )
    assert cut.outlying == ((4,) if far else ())


def test_stored_spreads_stand_in_for_unknown_window_noise() -> None:
    levels = [1.0, 1.0, 1.0, 1.0, 1.12]
    quiet = outlying_runs(_runs(levels, spread_pct=0.0), run_spread_pct=0.0, within_spread=0.0)
    noisy = outlying_runs(_runs(levels, spread_pct=10.0), run_spread_pct=0.0, within_spread=0.0)
    assert quiet.outlying == (4,) and noisy.outlying == ()


def test_the_cut_scales_with_the_history_s_own_spread() -> None:
    # runs spread by about 10%: a run 25% away is within 5 robust standard deviations
    levels = [1.0, 1.1, 0.9, 1.05, 0.95, 1.25]
    assert outlying_runs(_runs(levels), run_spread_pct=2.0, within_spread=0.0).outlying == ()


def test_fewer_than_three_usable_runs_keep_everything() -> None:
    for levels in ([1.0, 10.0], [0.0, 1.0, 10.0], [math.inf, 1.0, 10.0]):
        cut = outlying_runs(_runs(levels), run_spread_pct=2.0, within_spread=0.0)
        assert cut.outlying == () and not cut.beyond(1e9)


def test_unusable_runs_are_skipped_but_keep_their_index() -> None:
    levels = [0.0, 1.0, 1.0, 10.0, 1.0]
    assert outlying_runs(_runs(levels), run_spread_pct=2.0, within_spread=0.0).outlying == (3,)


def test_run_cut_judges_a_level() -> None:
    cut = RunCut((), 0.0, 0.1)
    assert not cut.beyond(1.1) and cut.beyond(1.2) and cut.beyond(0.8)
    assert cut.beyond(0.0) and cut.beyond(math.inf)
