"""The gate: what a test's energy record does to its outcome. Pure, without pytest.

:func:`decide` takes the judged record, the test's own outcome and whether this run
updates the baseline, and returns the outcome, the failure text and the JUnit properties.
The pytest layer applies the :class:`Decision` to the test's report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .results import EnergyResult, failure_message, fmt_num


@dataclass(frozen=True)
class Decision:
    """What the gate makes of one test."""

    message: str
    """Why the gate failed the test; ``""`` when it did not."""
    properties: tuple[tuple[str, object], ...]
    """JUnit XML properties, for ``record_property``-style export."""
    result: EnergyResult
    """The record with its final outcome and baseline decision filled in."""

    @property
    def outcome(self) -> str:
        """The test's outcome after the gate: the one it had, or ``failed``."""
        return self.result.outcome


def decide(result: EnergyResult, outcome: str, *, updating: bool, strict: bool = False) -> Decision:
    """Apply the budget, the regression check and strict mode to a test that ran.

    * Over its budget: fails, also while updating (a budget is a hard limit).
    * Regressed: fails, unless this run updates the baseline (the change is accepted).
    * No comparable baseline entry under ``strict``: fails, with how to record one.
    * While updating, a passing record is kept: appended to the entry's history for
      ``ok`` and ``new``, replacing it for an accepted ``regressed`` or ``improved``.
    A test that did not pass on its own keeps its outcome and is not recorded.
    """
    messages: list[str] = []
    if outcome == "passed":
        if result.over_budget or (result.regressed and not updating):
            messages.append(failure_message(result, update_hint=not updating))
        if strict and not updating and result.comparison is None and not result.over_budget:
            messages.append(
                f"{result.nodeid} has no comparable baseline entry "
                f"({result.note or 'none recorded'}), and --energy-strict requires one. Record "
                "it with `pytest --energy-update-baseline` on this hardware and meter, and "
                "commit the baseline file."
            )
    failed = bool(messages)
    final = "failed" if failed else outcome
    update = ""
    if updating and final == "passed":
        update = "replace" if result.verdict in ("regressed", "improved") else "append"
    result = replace(result, outcome=final, baseline_update=update)
    return Decision(
        message="\n".join(messages),
        properties=properties(result),
        result=result,
    )


def properties(result: EnergyResult) -> tuple[tuple[str, object], ...]:
    """The record's figures as JUnit XML properties."""
    m = result.measurement
    props: list[tuple[str, object]] = [
        ("energy_kwh_per_1000", m.kwh_per_1000),
        ("energy_joules_per_inference", m.joules_per_inference),
        ("energy_windows", len(m.windows)),
        ("energy_meter", m.meter),
        ("energy_hardware", m.hardware),
        ("energy_estimated", m.estimated),
        ("energy_verdict", result.verdict),
    ]
    optional = {
        "energy_joules_per_token": m.joules_per_token,
        "energy_joules_per_image": m.joules_per_image,
        "energy_change_pct": result.change_pct,
        "energy_dynamic_kwh_per_1000": m.dynamic_kwh_per_1000,
        "energy_flops_per_inference": m.flops_per_inference,
        "energy_bytes_per_inference": m.bytes_per_inference,
    }
    props += [(name, value) for name, value in optional.items() if value is not None]
    return tuple(props)


def _windows(count: int) -> str:
    return "one window" if count == 1 else f"median of {count} windows"


def section(result: EnergyResult) -> str:
    """The ``energy`` section shown with the test's report."""
    m = result.measurement
    kind = "modelled" if m.flops_per_inference is not None else "estimated"
    lines = [
        f"kWh per 1,000 inferences: {fmt_num(m.kwh_per_1000)} ({_windows(len(m.windows))})",
        f"J per inference: {m.joules_per_inference:.4g}",
        f"meter: {m.meter}{f' ({kind})' if m.estimated else ''} on {m.hardware}",
        f"verdict: {result.verdict}",
    ]
    if m.flops_per_inference is not None:
        lines.append(f"GFLOP per inference: {m.flops_per_inference / 1e9:.4g}")
    if m.dynamic_kwh_per_1000 is not None:
        lines.append(
            "dynamic kWh per 1,000 inferences (idle power subtracted): "
            + fmt_num(m.dynamic_kwh_per_1000)
        )
    if result.baseline is not None:
        lines.append(f"baseline: {fmt_num(result.baseline_kwh_per_1000)} kWh per 1,000 inferences")
    if len(m.domains_j) > 1:
        lines.append(
            "energy by domain: "
            + ", ".join(f"{domain} {joules:.4g} J" for domain, joules in m.domains_j.items())
            + f" (total {m.energy_j:.4g} J)"
        )
    if result.note:
        lines.append(f"note: {result.note}")
    return "\n".join(lines)
