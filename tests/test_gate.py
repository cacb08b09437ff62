"""The pure gate: (result, outcome, updating, strict) -> (outcome, message, properties)."""

from __future__ import annotations

import pytest
import report_data as data

from pytest_energy.gate import decide, properties, recording, section
from pytest_energy.settings import Rule
from pytest_energy.verdict import COMPARE, Result, judge

NODE = "tests/test_model.py::test_inference"


def _result(kwh: float, *, baseline_kwh: float | None = 0.002, budget_kwh: float | None = None):
    baseline = data.entry(baseline_kwh) if baseline_kwh is not None else None
    return data.result(NODE, data.windows(kwh), baseline=baseline, budget_kwh=budget_kwh)


@pytest.mark.parametrize(
    ("kwh", "budget", "updating", "outcome", "update"),
    [
        (0.002, None, False, "passed", ""),  # ok
        (0.002, None, True, "passed", "append"),  # ok, recorded: the history grows
        (0.0024, None, False, "failed", ""),  # regressed
        (0.0024, None, True, "passed", "replace"),  # regressed, accepted: a new level
        (0.0016, None, False, "passed", ""),  # improved: passes
        (0.0016, None, True, "passed", "replace"),  # improved, recorded: a new level
        (0.002, 0.001, False, "failed", ""),  # over budget
        (0.002, 0.001, True, "failed", ""),  # over budget fails while updating too
    ],
)
def test_verdicts(
    kwh: float, budget: float | None, updating: bool, outcome: str, update: str
) -> None:
    decision = decide(_result(kwh, budget_kwh=budget), "passed", updating=updating)
    assert decision.outcome == outcome
    assert decision.result.outcome == outcome
    assert decision.result.baseline_update == update
    assert bool(decision.message) == (outcome == "failed")


def test_a_regression_message_names_the_figures_and_how_to_accept_it() -> None:
    decision = decide(_result(0.0024), "passed", updating=False)
    assert decision.message.startswith(f"{NODE} regressed: 0.0024 kWh per 1,000 inferences")
    assert "--energy-update-baseline" in decision.message
    assert decision.message.endswith(f"Meter: nvml (measured) on {data.GPU}.")


def test_a_new_test_passes_unless_strict() -> None:
    result = _result(0.002, baseline_kwh=None)
    assert decide(result, "passed", updating=False).outcome == "passed"
    strict = decide(result, "passed", updating=False, strict=True)
    assert strict.outcome == "failed"
    assert "--energy-strict requires one" in strict.message
    # strict does not stop a run from recording the missing entry
    recording = decide(result, "passed", updating=True, strict=True)
    assert (recording.outcome, recording.result.baseline_update) == ("passed", "append")


@pytest.mark.parametrize("outcome", ["failed", "skipped"])
def test_a_test_that_did_not_pass_keeps_its_outcome_and_is_not_recorded(outcome: str) -> None:
    decision = decide(_result(0.0024, budget_kwh=0.001), outcome, updating=True)
    assert decision.outcome == outcome
    assert decision.message == ""
    assert decision.result.baseline_update == ""


def test_properties_and_section() -> None:
    result = _result(0.0024)
    props = dict(properties(result))
    assert props["energy_figures"] == "measured"
    assert props["energy_windows"] == 8
    assert props["energy_verdict"] == "regressed"
    assert props["energy_change_pct"] == pytest.approx(20.0)
    assert "energy_flops_per_inference" not in props  # only when the meter counts them
    assert decide(result, "passed", updating=False).properties == properties(
        decide(result, "passed", updating=False).result
    )
    text = section(result)
    assert "kWh per 1,000 inferences: 0.0024 (median of 8 windows)" in text
    assert "verdict: regressed" in text


def _compare(candidate_kwh: float, *, deterministic: bool = False) -> Result:
    rule = Rule(tolerance_pct=1.0 if deterministic else 3.0, alpha=0.01, run_spread_pct=None,
                deterministic=deterministic, paired=True)  # fmt: skip
    current = data.result(NODE, data.windows(0.002)).record
    candidate = data.result(NODE, data.windows(candidate_kwh)).record
    return Result(candidate, judge(candidate, current, rule, check=COMPARE))


def test_a_costlier_compare_candidate_fails_even_while_updating_and_is_never_recorded() -> None:
    for updating in (False, True):
        decision = decide(_compare(0.0024), "passed", updating=updating)
        assert decision.outcome == "failed"
        assert decision.message.startswith("the candidate costs +20.0% energy per inference")
        assert decision.result.baseline_update == ""
    ok = decide(_compare(0.002), "passed", updating=True)
    assert (ok.outcome, ok.result.baseline_update) == ("passed", "")


def test_compare_properties_have_their_own_names() -> None:
    props = dict(properties(_compare(0.0024)))
    assert props["energy_compare_verdict"] == "regressed"
    assert props["energy_compare_current_kwh_per_1000"] == pytest.approx(0.002)
    assert "energy_verdict" not in props


@pytest.mark.parametrize(
    ("kwh", "budget", "outcome", "expected"),
    [
        (0.002, None, "passed", "append"),
        (0.0016, None, "passed", "replace"),
        (0.0024, None, "passed", "replace"),  # an accepted regression (an update run)
        (0.0024, None, "failed", ""),
        (0.002, 0.001, "passed", ""),
        (0.002, None, "skipped", ""),
    ],
)
def test_recording_is_one_rule(
    kwh: float, budget: float | None, outcome: str, expected: str
) -> None:
    assert recording(_result(kwh, budget_kwh=budget).verdict, outcome) == expected
