"""Unit tests for pytest_energy.verdict and pytest_energy.judge: one verdict, reached the
same way by the plugin, energy.compare and pytest-energy compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import record

from pytest_energy import cli
from pytest_energy.baseline import Baseline, replace_all
from pytest_energy.judge import Judge
from pytest_energy.record import Record, RunSummary
from pytest_energy.settings import Rule, Settings
from pytest_energy.verdict import BASELINE, COMPARE, NEW, OVER_BUDGET, Result, judge

WOBBLE = (0.98, 1.01, 0.99, 1.02, 1.0, 0.97, 1.03, 1.0, 0.995, 1.005)


def samples(level: float, count: int = 10) -> tuple[float, ...]:
    return tuple(round(level * WOBBLE[i % len(WOBBLE)], 9) for i in range(count))


def pair(change: float, *, deterministic: bool = False) -> tuple[Record, Record]:
    """(current, candidate): the candidate costs ``change`` more, in windows that wobble
    for a measured meter and not at all for a deterministic one."""
    kind = {"meter": "roofline", "estimated": True, "deterministic": True} if deterministic else {}
    hardware = "NVIDIA H100 SXM (roofline v3, eager)" if deterministic else "NVIDIA H100 x1"
    count = 1 if deterministic else 10

    def make(level: float) -> Record:
        values = (level,) if deterministic else samples(level, count)
        return record(*values, hardware=hardware, inferences=64 * count, **kind)  # type: ignore[arg-type]

    return make(0.001), make(0.001 * (1 + change))


def three_verdicts(tmp_path: Path, current: Record, candidate: Record) -> tuple[str, str, str]:
    """The candidate judged against the current record by the plugin's Judge (against a
    baseline file), by energy.compare's path and by ``pytest-energy compare``."""
    settings = Settings(baseline_path=tmp_path / "energy-baseline.toml")
    replace_all(
        settings.baseline_path,
        Baseline({current.hardware: {current.nodeid: current}}),
        lock_timeout_s=10,
    )
    judge_ = Judge(settings)
    plugin = judge_.judge(candidate, budget_kwh=None, marker_tolerance_pct=None).status
    compared = judge_.judge_compare(candidate, current, tolerance_pct=None).status
    old = cli.Source(tmp_path / "old.json", "report", {current.hardware: {current.nodeid: current}})
    new = cli.Source(
        tmp_path / "new.json", "report", {candidate.hardware: {candidate.nodeid: candidate}}
    )
    (row,) = cli.compare_sources(old, new, Settings())
    return plugin, compared, row.verdict


@pytest.mark.parametrize(
    ("change", "expected"), [(0.2, "regressed"), (0.0, "ok"), (-0.2, "improved")]
)
def test_the_three_paths_agree_for_a_measured_meter(
    tmp_path: Path, change: float, expected: str
) -> None:
    current, candidate = pair(change)
    assert three_verdicts(tmp_path, current, candidate) == (expected,) * 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [(0.02, "regressed"), (0.005, "ok"), (0.0, "ok"), (-0.02, "improved")],
)
def test_the_three_paths_agree_for_a_deterministic_meter(
    tmp_path: Path, change: float, expected: str
) -> None:
    """+2% on a roofline record regresses everywhere: the CLI of 0.2 judged it at the
    measured meters' 3% and said ok."""
    current, candidate = pair(change, deterministic=True)
    assert three_verdicts(tmp_path, current, candidate) == (expected,) * 3


def test_the_rule_comes_from_one_function() -> None:
    s = Settings()
    assert s.rule(deterministic=True, estimated=True) == Rule(1.0, 0.01, None, True)
    assert s.rule(deterministic=False, estimated=False) == Rule(3.0, 0.01, 2.0, False)
    assert s.rule(deterministic=False, estimated=True).run_spread_pct == 5.0
    assert s.rule(deterministic=False, estimated=False, marker_tolerance_pct=7.0).tolerance_pct == 7
    custom = Settings(tolerance_pct=4.0, run_spread_pct=0.5, alpha=0.05)
    assert custom.rule(deterministic=True, estimated=True) == Rule(4.0, 0.05, None, True)
    assert custom.rule(deterministic=False, estimated=False).run_spread_pct == 0.5


def test_the_cli_resolves_its_rule_through_the_options_table(tmp_path: Path) -> None:
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nenergy_tolerance = 6%\nenergy_run_spread = 1\n", encoding="utf-8")
    settings, where = cli.resolve_settings({"alpha": "0.05"}, ini, ())
    assert (settings.tolerance_pct, settings.alpha, settings.run_spread_pct) == (6.0, 0.05, 1.0)
    assert where == {
        "alpha": "--alpha",
        "tolerance": f"energy_tolerance in {ini}",
        "run_spread": f"energy_run_spread in {ini}",
    }
    with pytest.raises(cli.InputError, match="--energy-tolerance / energy_tolerance"):
        bad = tmp_path / "bad.ini"
        bad.write_text("[pytest]\nenergy_tolerance = lots\n", encoding="utf-8")
        cli.resolve_settings({}, bad, ())


def test_a_report_recorded_tolerance_is_used_without_flag_or_ini(tmp_path: Path) -> None:
    source = cli.Source(tmp_path / "r.json", "report", {}, run={"tolerance_pct": 9.0})
    settings, where = cli.resolve_settings({}, None, (source,))
    assert settings.tolerance_pct == 9.0
    assert where["tolerance"] == f"recorded in {tmp_path / 'r.json'}"


# -- judge() ---------------------------------------------------------------------------------


def test_no_reference_is_new_with_a_note() -> None:
    _, candidate = pair(0.0)
    v = judge(candidate, None, Settings().rule(deterministic=False, estimated=False))
    assert v.status == NEW and v.comparison is None
    assert v.note == f"no baseline entry for this test on {candidate.hardware}"


def test_another_meter_is_not_compared() -> None:
    current, candidate = pair(0.5)
    other = record(*current.samples, meter="rapl", hardware=current.hardware)
    v = judge(candidate, other, Settings().rule(deterministic=False, estimated=False))
    assert v.status == NEW and v.reference is None
    assert "recorded with meter 'rapl'" in v.note


def test_over_budget_wins_over_the_baseline() -> None:
    current, candidate = pair(-0.2)
    v = judge(candidate, current, Settings().rule(deterministic=False, estimated=False),
              budget_kwh=0.0005)  # fmt: skip
    assert v.status == OVER_BUDGET and v.failed


def test_a_judge_names_other_hardware(tmp_path: Path) -> None:
    settings = Settings(baseline_path=tmp_path / "b.toml")
    elsewhere = record(0.001, hardware="NVIDIA A100")
    replace_all(settings.baseline_path, Baseline({"NVIDIA A100": {elsewhere.nodeid: elsewhere}}),
                lock_timeout_s=10)  # fmt: skip
    _, candidate = pair(0.0)
    v = Judge(settings).judge(candidate, budget_kwh=None, marker_tolerance_pct=None)
    assert v.status == NEW
    assert v.note == (
        "the baseline has this test only for other hardware (NVIDIA A100); this run is on "
        f"{candidate.hardware}"
    )


def test_adaptive_rounds_are_planned_only_against_a_comparable_entry(tmp_path: Path) -> None:
    settings = Settings(baseline_path=tmp_path / "b.toml")
    current, candidate = pair(0.0)
    judge_ = Judge(settings)
    assert judge_.settled(candidate.nodeid, candidate.provenance, None) is None
    replace_all(settings.baseline_path, Baseline({current.hardware: {current.nodeid: current}}),
                lock_timeout_s=10)  # fmt: skip
    settled = Judge(settings).settled(candidate.nodeid, candidate.provenance, None)
    assert settled is not None
    assert settled(list(candidate.samples)) in (True, False)
    assert not settled(list(candidate.samples[:2]))  # never before the fewest windows


def test_a_result_travels_as_plain_values(tmp_path: Path) -> None:
    current, candidate = pair(0.2)
    history = (RunSummary(0.001, 10, 1.0, "2026-12-01"),)
    current = Record(current.nodeid, current.provenance, current.samples, current.work, history)
    v = judge(candidate, current, Settings().rule(deterministic=False, estimated=False))
    result = Result(candidate, v, outcome="failed", baseline_update="")
    plain = json.loads(json.dumps(result.to_plain()))
    back = Result.from_plain(plain)
    assert back == result
    assert back.key == (candidate.nodeid, BASELINE)
    compare = Result(candidate, judge(candidate, current, Rule(3, 0.01, None, False, True),
                                      check=COMPARE))  # fmt: skip
    assert Result.from_plain(json.loads(json.dumps(compare.to_plain()))) == compare


def test_a_cheaper_compare_candidate_is_no_level_to_record(tmp_path: Path) -> None:
    """An improved baseline says "record the new level"; a cheaper energy.compare candidate
    passes, and there is nothing to record (the example project's footnote said so)."""
    current, candidate = pair(-0.2, deterministic=True)
    rule = Settings().rule(deterministic=True, estimated=True)
    against_baseline = judge(candidate, current, rule, budget_kwh=None)
    against_current = judge(candidate, current, rule, budget_kwh=None, check=COMPARE)
    assert against_baseline.status == against_current.status == "improved"
    assert against_baseline.improved_beyond_bound
    assert not against_current.improved_beyond_bound
