"""Unit tests for pytest_energy.budget: marker arguments to a validated EnergyBudget."""

from __future__ import annotations

import dataclasses
import math

import pytest

from pytest_energy.budget import EnergyBudget, energy_budget, from_marker
from pytest_energy.errors import ConfigError


def test_kwh_positional() -> None:
    assert from_marker((0.05,), {}) == EnergyBudget(kwh=0.05, inferences=1, tolerance_pct=None)


def test_kwh_by_name() -> None:
    assert from_marker((), {"kwh": 0.05}) == EnergyBudget(kwh=0.05)


def test_kwh_int_becomes_float() -> None:
    budget = from_marker((2,), {})
    assert budget.kwh == 2.0
    assert type(budget.kwh) is float


def test_all_arguments() -> None:
    budget = from_marker((0.5,), {"inferences": 64, "tolerance": "10%"})
    assert budget == EnergyBudget(kwh=0.5, inferences=64, tolerance_pct=10.0)


def test_budget_is_frozen() -> None:
    budget = from_marker((0.5,), {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.kwh = 1.0  # type: ignore[misc]


def test_missing_kwh() -> None:
    with pytest.raises(ConfigError, match=r"kwh is required, e\.g\. energy_budget\(kwh="):
        from_marker((), {})
    with pytest.raises(ConfigError, match="kwh is required"):
        from_marker((), {"inferences": 4})


@pytest.mark.parametrize(
    ("kwh", "match"),
    [
        (0, "kwh must be positive"),
        (0.0, "kwh must be positive"),
        (-1, "kwh must be positive"),
        (-0.5, "kwh must be positive"),
        ("0.05", r"kwh must be a number, got '0\.05' \(str\)"),
        (math.nan, "kwh must be a finite number"),
        (math.inf, "kwh must be a finite number"),
        (-math.inf, "kwh must be a finite number"),
        (True, r"kwh must be a number, got True \(bool\)"),
        (False, "kwh must be a number"),
        ([0.05], "kwh must be a number"),
    ],
)
def test_bad_kwh(kwh: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_marker((kwh,), {})
    with pytest.raises(ConfigError, match=match):
        from_marker((), {"kwh": kwh})


def test_unknown_keyword_lists_accepted_ones() -> None:
    with pytest.raises(ConfigError) as excinfo:
        from_marker((0.05,), {"kwhs": 1, "budget": 2})
    message = str(excinfo.value)
    assert "budget, kwhs" in message  # sorted, both named
    assert "accepted: kwh, inferences, tolerance" in message


def test_two_positionals() -> None:
    with pytest.raises(ConfigError, match=r"at most one positional argument \(kwh\), got 2"):
        from_marker((0.05, 10), {})


def test_kwh_both_positional_and_by_name() -> None:
    with pytest.raises(ConfigError, match="kwh given both positionally and by name"):
        from_marker((0.05,), {"kwh": 0.05})


@pytest.mark.parametrize("inferences", [0, -3, 1.5, 2.0, True, False, "4", None])
def test_bad_inferences(inferences: object) -> None:
    with pytest.raises(ConfigError, match="inferences must be a whole number of at least 1"):
        from_marker((0.05,), {"inferences": inferences})


def test_inferences_accepted() -> None:
    assert from_marker((0.05,), {"inferences": 1}).inferences == 1
    assert from_marker((0.05,), {"inferences": 1000}).inferences == 1000


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [("5%", 5.0), ("5", 5.0), (5, 5.0), (2.5, 2.5), (0, 0.0), (100, 100.0), (" 12.5 % ", 12.5)],
)
def test_tolerance_accepted(tolerance: object, expected: float) -> None:
    assert from_marker((0.05,), {"tolerance": tolerance}).tolerance_pct == expected


@pytest.mark.parametrize(
    ("tolerance", "match"),
    [
        ("abc", "tolerance: expected a number"),
        (-1, "tolerance: expected a percentage between 0 and 100"),
        (200, "tolerance: expected a percentage between 0 and 100"),
        ("200%", "tolerance: expected a percentage between 0 and 100"),
        (True, "tolerance must be a number"),
        (math.nan, "tolerance must be a finite number"),
        ([5], "tolerance must be a number"),
    ],
)
def test_bad_tolerance(tolerance: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_marker((0.05,), {"tolerance": tolerance})


def test_tolerance_none_means_session_default() -> None:
    assert from_marker((0.05,), {"tolerance": None}).tolerance_pct is None


def test_energy_budget_signature_matches_marker() -> None:
    # the function behind --markers help accepts exactly what from_marker accepts
    assert energy_budget(0.05, inferences=8, tolerance="3%") == from_marker(
        (0.05,), {"inferences": 8, "tolerance": "3%"}
    )
    with pytest.raises(TypeError):
        energy_budget(0.05, 8)  # type: ignore[call-arg]
