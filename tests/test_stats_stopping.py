"""pytest_energy.stats.stopping: when --energy-rounds=auto may stop taking windows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.settings import DEFAULT_MAX_ROUNDS, DEFAULT_ROUNDS
from pytest_energy.stats.bound import Run
from pytest_energy.stats.rule import Status, compare
from pytest_energy.stats.stopping import MIN_ADAPTIVE_ROUNDS, settled

BASE10 = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.005, 0.995]
KW = {"tolerance_pct": 3.0, "alpha": 0.01, "run_spread_pct": 2.0}


def test_the_minimum_fits_between_one_window_and_a_new_test_s_count() -> None:
    assert 1 < MIN_ADAPTIVE_ROUNDS <= DEFAULT_ROUNDS < DEFAULT_MAX_ROUNDS


def test_settled_needs_min_rounds_and_stops_at_max() -> None:
    clear = [x * 1.5 for x in BASE10]
    assert not settled(clear[: MIN_ADAPTIVE_ROUNDS - 1], BASE10, **KW)  # type: ignore[arg-type]
    assert settled(clear[:MIN_ADAPTIVE_ROUNDS], BASE10, **KW)  # type: ignore[arg-type]
    assert settled([1.03] * 7, BASE10, max_rounds=7, **KW)  # type: ignore[arg-type]
    # no baseline: a new test takes DEFAULT_ROUNDS windows
    assert not settled([1.0] * (DEFAULT_ROUNDS - 1), [], **KW)  # type: ignore[arg-type]
    assert settled([1.0] * DEFAULT_ROUNDS, [], **KW)  # type: ignore[arg-type]
    assert settled([1.0] * 4, [], new_test_rounds=4, **KW)  # type: ignore[arg-type]


def test_min_rounds_is_a_parameter_and_max_rounds_wins_below_it() -> None:
    clear = [x * 1.5 for x in BASE10]
    assert settled(clear[:3], BASE10, min_rounds=3, **KW)  # type: ignore[arg-type]
    assert not settled(clear[:2], BASE10, min_rounds=3, **KW)  # type: ignore[arg-type]
    # --energy-max-rounds below the minimum: at most that many windows, verdict or not
    border = [x * 1.03 for x in BASE10]
    assert settled(border[:2], BASE10, max_rounds=2, **KW)  # type: ignore[arg-type]
    assert settled([1.0, 1.0], [], max_rounds=2, **KW)  # type: ignore[arg-type]


def test_settled_stops_early_for_clear_cases() -> None:
    five = BASE10[:5]
    assert settled([x * 1.5 for x in five], BASE10, **KW)  # type: ignore[arg-type]
    assert settled([x * 0.6 for x in five], BASE10, **KW)  # type: ignore[arg-type]
    assert settled(list(five), BASE10, **KW)  # type: ignore[arg-type]  # unchanged


def test_settled_does_not_stop_on_borderline_cases() -> None:
    kw = {"tolerance_pct": 3.0, "alpha": 0.01}
    # same runner (prior 0): +3% sits on the tolerance, more windows could go either way
    border = [x * 1.03 for x in BASE10[:5]]
    assert not settled(border, BASE10, run_spread_pct=0.0, **kw)  # type: ignore[arg-type]
    # prior 2%: the bound is about +7%; +7% is on it
    edge = [x * 1.07 for x in BASE10[:5]]
    assert not settled(edge, BASE10, run_spread_pct=2.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("edited", [1, 4])
def test_an_outlying_run_does_not_keep_a_regression_from_settling(edited: int) -> None:
    levels = [1.0, 1.01, 0.99, 1.005, 0.995]
    levels[edited] *= 10.0
    history = [Run(m, 10, 1.0) for m in levels]
    baseline = [x * levels[-1] for x in BASE10]
    up = [x * 1.3 for x in BASE10[:5]]
    kw = {**KW, "history": history}
    assert compare(up, baseline, **kw).status is Status.REGRESSED  # type: ignore[arg-type]
    assert settled(up, baseline, **kw)  # type: ignore[arg-type]
    assert settled(BASE10[:5], baseline, **kw)  # type: ignore[arg-type]  # unchanged: ok


_extreme = st.one_of(
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([0.0, math.inf, 1.0, 1.5, 5e-324, 1e-300]),
)


@settings(max_examples=150, deadline=None)
@given(
    current=st.lists(_extreme, min_size=1, max_size=12),
    baseline=st.lists(_extreme, max_size=12),
    runs=st.lists(st.tuples(_extreme, st.integers(0, 12), st.floats(0, 50)), max_size=5),
    prior=st.sampled_from([0.0, 2.0]),
    max_rounds=st.integers(1, 20),
)
def test_settled_survives_zeros_infinities_and_extremes(
    current: list[float],
    baseline: list[float],
    runs: list[tuple[float, int, float]],
    prior: float,
    max_rounds: int,
) -> None:
    history = [Run(m, w, spread) for m, w, spread in runs]
    done = settled(
        current,
        baseline,
        tolerance_pct=3.0,
        alpha=0.01,
        history=history,
        run_spread_pct=prior,
        max_rounds=max_rounds,
    )
    if len(current) >= max_rounds:
        assert done
