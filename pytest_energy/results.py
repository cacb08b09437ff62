"""One record per measured test: the measurement, its budget, its baseline and the verdict.

Reports (terminal, JSON, Markdown, HTML) are pure functions of a list of
:class:`EnergyResult`; the gate in ``plugin.py`` reads ``failed`` and ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .baseline import BaselineEntry
from .measure import Measurement, Window
from .stats import Comparison, Status, compare


class Verdict:
    """The verdict strings shown in reports, most serious first."""

    OVER_BUDGET = "over budget"
    REGRESSED = "regressed"
    IMPROVED = "improved"
    OK = "ok"
    NEW = "new"


@dataclass(frozen=True)
class EnergyResult:
    """Everything known about one test's energy."""

    nodeid: str
    measurement: Measurement
    budget_kwh: float | None = None
    baseline: BaselineEntry | None = None
    comparison: Comparison | None = None
    note: str = ""
    """Why there was nothing to compare with, when there was not (e.g. another meter)."""

    @property
    def kwh_per_1000(self) -> float:
        return self.measurement.kwh_per_1000

    @property
    def baseline_kwh_per_1000(self) -> float | None:
        return self.baseline.kwh_per_1000 if self.baseline else None

    @property
    def change_pct(self) -> float | None:
        return self.comparison.change_pct if self.comparison else None

    @property
    def over_budget(self) -> bool:
        return self.budget_kwh is not None and self.kwh_per_1000 > self.budget_kwh

    @property
    def verdict(self) -> str:
        if self.over_budget:
            return Verdict.OVER_BUDGET
        if self.comparison is None:
            return Verdict.NEW
        return {
            Status.REGRESSED: Verdict.REGRESSED,
            Status.IMPROVED: Verdict.IMPROVED,
            Status.OK: Verdict.OK,
        }[self.comparison.status]

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.status is Status.REGRESSED

    @property
    def low_confidence(self) -> bool:
        return self.comparison is not None and self.comparison.low_confidence


def judge(
    nodeid: str,
    measurement: Measurement,
    *,
    baseline: BaselineEntry | None,
    budget_kwh: float | None,
    tolerance_pct: float,
    alpha: float,
) -> EnergyResult:
    """Compare ``measurement`` with its baseline entry (if comparable) and its budget."""
    comparison = None
    note = ""
    if baseline is None:
        note = f"no baseline entry for this test on {measurement.hardware}"
    elif baseline.meter != measurement.meter or baseline.estimated != measurement.estimated:
        note = (
            f"the baseline was recorded with meter {baseline.meter!r}"
            f"{' (estimated)' if baseline.estimated else ''}, this run used "
            f"{measurement.meter!r}{' (estimated)' if measurement.estimated else ''}; "
            "figures from different meters are not compared"
        )
        baseline = None
    else:
        comparison = compare(
            measurement.samples, baseline.samples, tolerance_pct=tolerance_pct, alpha=alpha
        )
    return EnergyResult(
        nodeid=nodeid,
        measurement=measurement,
        budget_kwh=budget_kwh,
        baseline=baseline,
        comparison=comparison,
        note=note,
    )


def fmt_num(value: float | None) -> str:
    """A figure (kWh per 1,000 inferences, joules, grams) to four significant figures; '-'
    when absent."""
    return "-" if value is None else f"{value:.4g}"


def failure_message(result: EnergyResult, *, update_hint: bool = True) -> str:
    """The text shown when the gate fails a test; empty when it does not."""
    m = result.measurement
    lines: list[str] = []
    if result.over_budget:
        lines.append(
            f"{result.nodeid} used {fmt_num(m.kwh_per_1000)} kWh per 1,000 inferences, over its "
            f"budget of {fmt_num(result.budget_kwh)} kWh "
            f"(median of {len(m.windows)} window(s), {m.joules_per_inference:.4g} J/inference)."
        )
    if result.regressed and result.comparison is not None and result.baseline is not None:
        c = result.comparison
        evidence = (
            "low confidence: too few windows for the significance test, the median ratio decided"
            if c.low_confidence
            else f"Mann-Whitney U one-sided p={c.p_regressed:.2g} < alpha={c.alpha:g}"
        )
        lines.append(
            f"{result.nodeid} regressed: {fmt_num(m.kwh_per_1000)} kWh per 1,000 inferences "
            f"against a baseline of {fmt_num(result.baseline.kwh_per_1000)} "
            f"({c.change_pct:+.1f}%, tolerance {c.tolerance_pct:g}%; {evidence})."
        )
        if update_hint:
            lines.append(
                "If the increase is expected, accept it with --energy-update-baseline and "
                "commit the baseline file."
            )
    if lines:
        estimated = " (estimated)" if m.estimated else ""
        lines.append(f"Meter: {m.meter}{estimated} on {m.hardware}.")
    return "\n".join(lines)


def to_dict(result: EnergyResult) -> dict[str, Any]:
    """A JSON-compatible form, used to send results from xdist workers to the controller."""
    return asdict(
        result,
        dict_factory=lambda pairs: {k: v.value if isinstance(v, Status) else v for k, v in pairs},
    )


def from_dict(data: Mapping[str, Any]) -> EnergyResult:
    """Inverse of :func:`to_dict`."""
    m = data["measurement"]
    measurement = Measurement(
        windows=tuple(
            Window(**{**w, "throttle": tuple(w["throttle"]), "domains_j": dict(w["domains_j"])})
            for w in m["windows"]
        ),
        meter=m["meter"],
        hardware=m["hardware"],
        estimated=m["estimated"],
        provenance=m["provenance"],
    )
    base = data["baseline"]
    comparison = data["comparison"]
    return EnergyResult(
        nodeid=data["nodeid"],
        measurement=measurement,
        budget_kwh=data["budget_kwh"],
        baseline=BaselineEntry(**{**base, "samples": tuple(base["samples"])}) if base else None,
        comparison=Comparison(**{**comparison, "status": Status(comparison["status"])})
        if comparison
        else None,
        note=data["note"],
    )
