"""The one verdict: a record judged against its reference by a rule. No pytest here.

:func:`judge` serves all three places that reach a verdict: the plugin (a test's record
against its baseline entry), ``energy.compare`` (a candidate's record against the current
version's, measured as interleaved pairs) and ``pytest-energy compare`` (a report's record
against an older report or a baseline). The rule comes from
:meth:`pytest_energy.settings.Settings.rule`; the failure text from ``gate.py``.

A :class:`Result` is a judged record with the test's final outcome: what reports render and
what rides on a test's report from an xdist worker to the controller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

from .record import Record
from .settings import Rule
from .stats import Comparison, Status, compare, compare_paired

OVER_BUDGET = "over budget"
REGRESSED = "regressed"
IMPROVED = "improved"
OK = "ok"
NEW = "new"
#: Verdicts, most serious first; reports sort and count with this order.
SEVERITY: tuple[str, ...] = (OVER_BUDGET, REGRESSED, NEW, IMPROVED, OK)

#: What a record was judged against: its baseline entry, or the current version of the code
#: (``energy.compare``).
BASELINE = "baseline"
COMPARE = "compare"


@dataclass(frozen=True)
class Verdict:
    """What one judgement found."""

    status: str
    """One of :data:`SEVERITY`."""
    check: str = BASELINE
    reference: Record | None = None
    """The baseline entry judged against, or the current version's record (``compare``)."""
    comparison: Comparison | None = None
    rule: Rule | None = None
    budget_kwh: float | None = None
    note: str = ""
    """Why there was nothing to compare with, when there was not (e.g. another meter)."""

    @property
    def change_pct(self) -> float | None:
        return self.comparison.change_pct if self.comparison else None

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.status is Status.REGRESSED

    @property
    def over_budget(self) -> bool:
        return self.status == OVER_BUDGET

    @property
    def failed(self) -> bool:
        """Whether this verdict fails its test (unless a baseline update accepts a
        regression)."""
        return self.over_budget or self.regressed

    @property
    def low_confidence(self) -> bool:
        return self.comparison is not None and self.comparison.low_confidence

    @property
    def improved_beyond_bound(self) -> bool:
        """Improved on its baseline by more than run-to-run noise explains: worth recording
        as a new level. Never for ``energy.compare``, whose cheaper candidate is a pass, not
        a level to record."""
        c = self.comparison
        return (
            self.check == BASELINE
            and c is not None
            and c.status is Status.IMPROVED
            and c.improved_beyond_bound
        )


def judge(
    record: Record,
    reference: Record | None,
    rule: Rule,
    *,
    budget_kwh: float | None = None,
    check: str = BASELINE,
) -> Verdict:
    """Judge ``record`` against ``reference`` by ``rule``, and against its budget.

    For a baseline check, a reference recorded with another meter, or estimated against
    measured figures, is not compared (the verdict is ``new``, with a note). A compare check
    (``rule.paired``) judges the candidate ``record`` against the current ``reference``
    window by window.
    """
    note = ""
    comparison = None
    if reference is None:
        note = f"no baseline entry for this test on {record.hardware}"
    elif not reference.provenance.comparable(record.provenance):
        note = (
            f"the baseline was recorded with meter {reference.meter!r}"
            f"{' (estimated)' if reference.estimated else ''}, this run used "
            f"{record.meter!r}{' (estimated)' if record.estimated else ''}; "
            "figures from different meters are not compared"
        )
        reference = None
    elif rule.paired and not rule.deterministic:
        comparison = compare_paired(
            reference.samples, record.samples, tolerance_pct=rule.tolerance_pct, alpha=rule.alpha
        )
    else:
        comparison = compare(
            record.samples,
            reference.samples,
            tolerance_pct=rule.tolerance_pct,
            alpha=rule.alpha,
            history=() if rule.paired else reference.runs,
            run_spread_pct=None if rule.paired else rule.run_spread_pct,
            deterministic=rule.deterministic,
        )
    if budget_kwh is not None and record.kwh_per_1000 > budget_kwh:
        status = OVER_BUDGET
    elif comparison is None:
        status = NEW
    else:
        status = {Status.REGRESSED: REGRESSED, Status.IMPROVED: IMPROVED, Status.OK: OK}[
            comparison.status
        ]
    return Verdict(
        status=status,
        check=check,
        reference=reference,
        comparison=comparison,
        rule=rule,
        budget_kwh=budget_kwh,
        note=note,
    )


@dataclass(frozen=True)
class Result:
    """A judged record and what it did to its test."""

    record: Record
    verdict: Verdict
    outcome: str = ""
    """The test's outcome after the gate: ``passed``, ``failed`` or ``skipped``."""
    baseline_update: str = ""
    """How --energy-update-baseline records this run: ``append`` it to the entry's history,
    ``replace`` the history (an accepted new level), or ``""`` (not recorded)."""

    @property
    def nodeid(self) -> str:
        return self.record.nodeid

    @property
    def key(self) -> tuple[str, str]:
        """What identifies a result in a run: the test and the check."""
        return (self.record.nodeid, self.verdict.check)

    @property
    def passed(self) -> bool:
        return self.outcome in ("", "passed")

    # -- the plain form that rides on a test's report ------------------------------------
    def to_plain(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "record": self.record.to_plain(),
            "verdict": {
                "status": v.status,
                "check": v.check,
                "reference": None if v.reference is None else v.reference.to_plain(),
                "comparison": None if v.comparison is None else _plain(v.comparison),
                "rule": None if v.rule is None else _plain(v.rule),
                "budget_kwh": v.budget_kwh,
                "note": v.note,
            },
            "outcome": self.outcome,
            "baseline_update": self.baseline_update,
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_plain` (for data this package wrote)."""
        v = data["verdict"]
        return cls(
            record=Record.from_plain(data["record"]),
            verdict=Verdict(
                status=v["status"],
                check=v["check"],
                reference=None if v["reference"] is None else Record.from_plain(v["reference"]),
                comparison=None if v["comparison"] is None else _build(Comparison, v["comparison"]),
                rule=None if v["rule"] is None else _build(Rule, v["rule"]),
                budget_kwh=v["budget_kwh"],
                note=v["note"],
            ),
            outcome=data["outcome"],
            baseline_update=data["baseline_update"],
        )

    def with_outcome(self, outcome: str, baseline_update: str) -> Result:
        return replace(self, outcome=outcome, baseline_update=baseline_update)


def _plain(value: object) -> dict[str, Any]:
    """A flat dataclass of numbers, strings, enums and tuples of those, as plain values."""
    out: dict[str, Any] = {}
    for f in fields(value):  # type: ignore[arg-type]
        item = getattr(value, f.name)
        if isinstance(item, Enum):
            item = item.value
        elif isinstance(item, tuple):
            item = list(item)
        out[f.name] = item
    return out


def _build(cls: type[Any], data: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    if "status" in kwargs and cls is Comparison:
        kwargs["status"] = Status(kwargs["status"])
    return cls(**kwargs)


def most_serious_first(results: Sequence[Result]) -> list[Result]:
    return sorted(results, key=lambda r: SEVERITY.index(r.verdict.status))
