"""One record per measured test: the measurement, its budget, its baseline and the verdict.

Reports (terminal, JSON, Markdown, HTML) are pure functions of a list of
:class:`EnergyResult`; the gate in ``plugin.py`` reads ``failed`` and ``message``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .baseline import BaselineEntry
from .measure import Measurement
from .stats import Comparison, Status, compare, describe

T = TypeVar("T")


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
    outcome: str = ""
    """The test's outcome after the gate: ``passed``, ``failed`` or ``skipped``."""
    baseline_update: str = ""
    """How --energy-update-baseline records this run: ``append`` it to the entry's history,
    ``replace`` the history (an accepted new level), or ``""`` (not recorded)."""

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

    @property
    def improved_beyond_bound(self) -> bool:
        """Improved by more than run-to-run noise explains: worth recording as a new level."""
        c = self.comparison
        return c is not None and c.status is Status.IMPROVED and c.improved_beyond_bound

    @property
    def passed(self) -> bool:
        return self.outcome in ("", "passed")


def judge(
    nodeid: str,
    measurement: Measurement,
    *,
    baseline: BaselineEntry | None,
    budget_kwh: float | None,
    tolerance_pct: float,
    alpha: float,
    run_spread_pct: float | None = None,
    deterministic: bool = False,
) -> EnergyResult:
    """Compare ``measurement`` with its baseline entry (if comparable) and its budget.

    The baseline's run history and ``run_spread_pct`` (the prior run-to-run spread) feed
    the prediction bound of :func:`pytest_energy.stats.compare`.
    """
    comparison = None
    note = ""
    if baseline is None:
        note = f"no baseline entry for this test on {measurement.hardware}"
    elif not baseline.comparable(measurement.meter, measurement.estimated):
        note = (
            f"the baseline was recorded with meter {baseline.meter!r}"
            f"{' (estimated)' if baseline.estimated else ''}, this run used "
            f"{measurement.meter!r}{' (estimated)' if measurement.estimated else ''}; "
            "figures from different meters are not compared"
        )
        baseline = None
    else:
        comparison = compare(
            measurement.samples,
            baseline.samples,
            tolerance_pct=tolerance_pct,
            alpha=alpha,
            history=baseline.runs,
            run_spread_pct=run_spread_pct,
            deterministic=deterministic,
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
        lines.append(
            f"{result.nodeid} regressed: {fmt_num(m.kwh_per_1000)} kWh per 1,000 inferences "
            f"against a baseline of {fmt_num(result.baseline.kwh_per_1000)} "
            f"({len(result.baseline.runs)} recorded run(s)); {describe(c)}."
        )
        if update_hint:
            lines.append(
                "If the increase is expected, accept it with --energy-update-baseline and "
                "commit the baseline file: the new level replaces the entry's run history."
            )
    if lines:
        estimated = " (estimated)" if m.estimated else ""
        lines.append(f"Meter: {m.meter}{estimated} on {m.hardware}.")
    return "\n".join(lines)


def to_dict(result: EnergyResult) -> dict[str, Any]:
    """The one serialised form of a test's record: plain dicts, lists, floats and strings.

    It rides on the test's report from an xdist worker to the controller, so every number
    is a built-in ``float``/``int`` (a meter's ``numpy.float32`` would kill execnet).
    """
    plain: dict[str, Any] = _plain(result)
    return plain


def _plain(value: Any) -> Any:
    kind: type = type(value)
    names = _field_names(kind) if is_dataclass(value) else None
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return float(value)


def from_dict(data: Mapping[str, Any]) -> EnergyResult:
    """Inverse of :func:`to_dict`."""
    return _build(EnergyResult, data)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, resolved type) of a dataclass's fields; resolving them is slow, so once."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in fields(cls))


def _build(cls: type[T], data: Mapping[str, Any]) -> T:
    kind: type = cls
    kwargs = {name: _value(hint, data[name]) for name, hint in _field_types(kind) if name in data}
    return cls(**kwargs)


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return _value(options[0], value) if len(options) == 1 else value
    if is_dataclass(hint) and isinstance(value, Mapping):
        return _build(hint, value)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if origin is tuple:
        args = get_args(hint)
        return tuple(_value(args[0], v) for v in value) if args else tuple(value)
    if origin in (dict, Mapping):
        return dict(value)
    return value
