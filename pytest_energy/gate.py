"""The gate: what a judged record does to its test's outcome, and every failure text.
Pure, without pytest.

:func:`decide` takes a :class:`~pytest_energy.verdict.Result` (with the test's own
outcome) and whether this run updates the baseline, and returns the final result, the
failure text and the JUnit properties. The pytest layer applies the :class:`Decision` to
the test's report. :func:`recording` is the one rule for what a baseline update records;
``pytest-energy merge`` applies it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from .record import Record
from .stats import Comparison
from .verdict import COMPARE, IMPROVED, NEW, REGRESSED, Result, Verdict


def fmt_num(value: float | None) -> str:
    """A figure (kWh per 1,000 inferences, joules, grams) to four significant figures; '-'
    when absent."""
    return "-" if value is None else f"{value:.4g}"


@dataclass(frozen=True)
class Decision:
    """What the gate makes of one test."""

    message: str
    """Why the gate failed the test; ``""`` when it did not."""
    properties: tuple[tuple[str, object], ...]
    """JUnit XML properties, for ``record_property``-style export."""
    result: Result
    """The result with its final outcome and baseline decision filled in."""

    @property
    def outcome(self) -> str:
        return self.result.outcome


def recording(verdict: Verdict, outcome: str) -> str:
    """How a baseline update records a test: ``append`` its run (``ok``, ``new``),
    ``replace`` the history (an accepted ``regressed`` or ``improved`` level), or ``""``:
    a test that did not pass (its own failure, its budget, an unaccepted regression) and
    every ``energy.compare`` result are never recorded."""
    if outcome != "passed" or verdict.check == COMPARE or verdict.over_budget:
        return ""
    return "replace" if verdict.status in (REGRESSED, IMPROVED) else "append"


def decide(result: Result, outcome: str, *, updating: bool, strict: bool = False) -> Decision:
    """Apply the budget, the regression check and strict mode to a test that ran.

    * Over its budget: fails, also while updating (a budget is a hard limit).
    * Regressed: fails, unless this run updates the baseline (the change is accepted). A
      regressed ``energy.compare`` always fails (there is nothing to accept).
    * No comparable baseline entry under ``strict``: fails, with how to record one.
    A test that did not pass on its own keeps its outcome and is not recorded.
    """
    v = result.verdict
    messages: list[str] = []
    if outcome == "passed":
        accept = updating and v.check != COMPARE
        if v.over_budget or (v.regressed and not accept):
            messages.append(failure_text(result.record, v, update_hint=not updating))
        if strict and not updating and v.status == NEW and v.check != COMPARE:
            messages.append(
                f"{result.nodeid} has no comparable baseline entry "
                f"({v.note or 'none recorded'}), and --energy-strict requires one. Record "
                "it with `pytest --energy-update-baseline` on this hardware and meter, and "
                "commit the baseline file."
            )
    final = "failed" if messages else outcome
    update = recording(v, final) if updating else ""
    judged = result.with_outcome(final, update)
    return Decision("\n".join(messages), properties(judged), judged)


# -- text -----------------------------------------------------------------------------------


def evidence(c: Comparison) -> str:
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


def _windows(count: int) -> str:
    return "one window" if count == 1 else f"median of {count} windows"


def _ab(count: int) -> str:
    return "one window each" if count == 1 else f"{count} ABBA-interleaved windows each"


def failure_text(record: Record, verdict: Verdict, *, update_hint: bool = True) -> str:
    """The text shown when the gate fails a test, for every kind of failure; "" for none."""
    lines: list[str] = []
    c = verdict.comparison
    ref = verdict.reference
    if verdict.over_budget:
        lines.append(
            f"{record.nodeid} used {fmt_num(record.kwh_per_1000)} kWh per 1,000 inferences, "
            f"over its budget of {fmt_num(verdict.budget_kwh)} kWh "
            f"({_windows(len(record.samples))}, {record.joules_per_inference:.4g} J/inference)."
        )
    if verdict.regressed and c is not None and ref is not None:
        if verdict.check == COMPARE:
            lines.append(
                f"the candidate costs {c.change_pct:+.1f}% energy per inference against the "
                f"current version ({fmt_num(record.kwh_per_1000)} vs "
                f"{fmt_num(ref.kwh_per_1000)} kWh per 1,000 inferences, "
                f"{_ab(len(record.samples))}, tolerance {c.tolerance_pct:g}%, "
                + (
                    "deterministic meter: the ratio decides"
                    if c.rule == "deterministic"
                    else f"paired one-sided test p={c.p_regressed:.2g}"
                )
                + (", low confidence" if c.low_confidence else "")
                + ")."
            )
        else:
            lines.append(
                f"{record.nodeid} regressed: {fmt_num(record.kwh_per_1000)} kWh per 1,000 "
                f"inferences against a baseline of {fmt_num(ref.kwh_per_1000)} "
                f"({len(ref.runs)} recorded run(s)); {evidence(c)}."
            )
            if update_hint:
                lines.append(
                    "If the increase is expected, accept it with --energy-update-baseline and "
                    "commit the baseline file: the new level replaces the entry's run history."
                )
    if lines:
        lines.append(f"Meter: {record.meter} ({record.figures}) on {record.hardware}.")
    return "\n".join(lines)


def properties(result: Result) -> tuple[tuple[str, object], ...]:
    """The record's figures as JUnit XML properties (an ``energy.compare`` result's under
    ``energy_compare_*``)."""
    r = result.record
    v = result.verdict
    prefix = "energy_compare_" if v.check == COMPARE else "energy_"
    props: list[tuple[str, object]] = [
        (prefix + "kwh_per_1000", r.kwh_per_1000),
        (prefix + "joules_per_inference", r.joules_per_inference),
        (prefix + "windows", len(r.samples)),
        (prefix + "meter", r.meter),
        (prefix + "hardware", r.hardware),
        (prefix + "estimated", r.estimated),
        (prefix + "figures", r.figures),
        (prefix + "verdict", v.status),
    ]
    optional = {
        "joules_per_token": r.joules_per_token,
        "joules_per_image": r.joules_per_image,
        "change_pct": v.change_pct,
        "dynamic_kwh_per_1000": r.dynamic_kwh_per_1000,
        "flops_per_inference": r.flops_per_inference,
        "bytes_per_inference": r.bytes_per_inference,
        "kernels_per_inference": r.kernels_per_inference,
        "prefill_j_per_inference": r.prefill_j_per_inference,
        "decode_j_per_token": r.decode_j_per_token,
    }
    if v.check == COMPARE and v.reference is not None:
        optional["current_kwh_per_1000"] = v.reference.kwh_per_1000
    props += [(prefix + name, value) for name, value in optional.items() if value is not None]
    return tuple(props)


def section(result: Result) -> str:
    """The ``energy`` section shown with the test's report."""
    r = result.record
    v = result.verdict
    what = "candidate (energy.compare)" if v.check == COMPARE else "kWh per 1,000 inferences"
    lines = [
        f"{what}: {fmt_num(r.kwh_per_1000)} ({_windows(len(r.samples))})",
        f"J per inference: {r.joules_per_inference:.4g}",
        f"meter: {r.meter} ({r.figures}) on {r.hardware}",
        f"verdict: {v.status}",
    ]
    if r.flops_per_inference is not None:
        lines.append(f"GFLOP per inference: {r.flops_per_inference / 1e9:.4g}")
    if r.dynamic_kwh_per_1000 is not None:
        lines.append(
            "dynamic kWh per 1,000 inferences (idle power subtracted): "
            + fmt_num(r.dynamic_kwh_per_1000)
        )
    if v.reference is not None:
        label = "current version" if v.check == COMPARE else "baseline"
        lines.append(f"{label}: {fmt_num(v.reference.kwh_per_1000)} kWh per 1,000 inferences")
    if len(r.domains_j) > 1:
        lines.append(
            "energy by domain: "
            + ", ".join(f"{domain} {joules:.4g} J" for domain, joules in r.domains_j.items())
            + f" (total {r.energy_j:.4g} J)"
        )
    if v.note:
        lines.append(f"note: {v.note}")
    return "\n".join(lines)
