"""The ``--energy-json`` report: a versioned document, described by ``schema.json``.

Top level::

    {"format": "pytest-energy-report", "schema_version": 2,
     "run": {...}, "totals": {...}, "tests": [{...}, ...]}

Each ``tests`` entry is a record's plain form (``Record.to_plain``) with its derived figures
and its verdict. Version 1 reports (0.2) are still read back. Numbers that JSON cannot hold
(an infinite change against a zero baseline) are written as ``null``. :func:`load_report`
reads a report back for the ``pytest-energy`` command.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import validate
from ..record import Record
from ..verdict import BASELINE, COMPARE, Result
from .carbon import g_co2e, totals
from .common import ReportError, RunInfo, figures_word, safe_info, safe_text, verdict_line

FORMAT = "pytest-energy-report"
#: 2: each test entry is the record's plain form (windows, runs, counts, figures, check)
SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).with_name("schema.json")


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def plain(value: object) -> object:
    """``value`` as strict-JSON data: non-finite numbers become null, numpy scalars Python
    numbers, lone surrogates escapes, tuples lists, anything else its text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _num(float(value))
    if isinstance(value, Mapping):
        return {safe_text(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)  # numpy.bool_ and 0-d arrays
    if callable(item):
        try:
            return plain(item())
        except Exception:
            pass
    return safe_text(value)


def _reference(record: Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "kwh_per_1000": record.kwh_per_1000,
        "samples": list(record.samples),
        "runs": record.to_plain()["runs"],
        "meter": record.meter,
        "hardware": record.hardware,
    }


def test_entry(result: Result, info: RunInfo) -> dict[str, Any]:
    """One result's entry in ``tests``: the record's plain form, its derived figures and the
    verdict."""
    r = result.record
    v = result.verdict
    c = v.comparison
    comparison = None
    if c is not None:
        comparison = {
            "status": c.status.value,
            "ratio": _num(c.ratio),
            "p_regressed": c.p_regressed,
            "p_improved": c.p_improved,
            "tolerance_pct": c.tolerance_pct,
            "alpha": c.alpha,
            "windows": c.n_current,
            "baseline_windows": c.n_baseline,
            "rule": c.rule,
            "run_spread_pct": _num(c.run_spread_pct),
            "spread_runs": c.spread_runs,
            "bound_ratio": _num(c.bound_ratio),
            "outlier_windows": list(c.outliers_current),
            "baseline_outlier_windows": list(c.outliers_baseline),
            "outlying_runs": list(getattr(c, "outlying_runs", ())),
        }
    derived = {
        "joules_per_inference": r.joules_per_inference,
        "joules_per_token": r.joules_per_token,
        "joules_per_image": r.joules_per_image,
        "dynamic_kwh_per_1000": r.dynamic_kwh_per_1000,
        "energy_j": r.energy_j,
        "duration_s": r.duration_s,
        "domains_j": r.domains_j,
        "flops_per_inference": r.flops_per_inference,
        "bytes_per_inference": r.bytes_per_inference,
        "kernels_per_inference": r.kernels_per_inference,
        "split_j_per_inference": r.split_j_per_inference,
        "prefill_j_per_inference": r.prefill_j_per_inference,
        "decode_j_per_token": r.decode_j_per_token,
        "throttled_windows": r.throttled_windows,
        "throttle_reasons": r.throttle_reasons,
        "g_co2e_per_1000": g_co2e(r.kwh_per_1000, info.carbon_intensity_g_per_kwh),
    }
    verdict = {
        "check": v.check,
        "verdict": v.status,
        "outcome": result.outcome or None,
        "baseline_update": result.baseline_update or None,
        "budget_kwh": v.budget_kwh,
        "reference": _reference(v.reference),
        "change_pct": _num(v.change_pct),
        "low_confidence": v.low_confidence,
        "comparison": comparison,
        "note": v.note,
    }
    return r.to_plain() | derived | verdict


def build(results: Sequence[Result], info: RunInfo) -> dict[str, Any]:
    """The whole report as plain JSON-ready data."""
    info = safe_info(info)
    total = totals(results, info.carbon_intensity_g_per_kwh, info.phone_charge_kwh)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "run": {
            "time": info.time,
            "pytest_energy_version": info.version,
            "meters": list(info.meters),
            "hardware": list(info.hardware),
            "country": info.country,
            "carbon_intensity_g_per_kwh": info.carbon_intensity_g_per_kwh,
            "carbon_intensity_source": info.carbon_source,
            "phone_charge_kwh": info.phone_charge_kwh,
            "tolerance_pct": info.tolerance_pct,
            "alpha": info.alpha,
            "run_spread_pct": info.run_spread_pct,
        },
        "totals": {
            "tests": total.tests,
            "windows": total.windows,
            "inferences": total.inferences,
            "energy_j": total.energy_j,
            "kwh": total.kwh,
            "figures": figures_word(results) if results else None,
            "g_co2e": total.g_co2e,
            "phone_charges": total.phone_charges,
            "regressed": sum(
                1 for r in results if r.verdict.regressed and r.verdict.check != COMPARE
            ),
            "over_budget": sum(1 for r in results if r.verdict.over_budget),
            "compare_regressed": sum(
                1 for r in results if r.verdict.regressed and r.verdict.check == COMPARE
            ),
            "summary": verdict_line(results),
        },
        "tests": [test_entry(r, info) for r in results],
    }


def render(results: Sequence[Result], info: RunInfo) -> str:
    """The report as JSON text (UTF-8, indented, trailing newline)."""
    data = plain(build(results, info))
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the report."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# -- reading a report back ----------------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """One result of a report read back: its record and what the run made of it."""

    record: Record
    verdict: str
    check: str
    outcome: str
    """The test's outcome; "" when the report does not say."""


@dataclass(frozen=True)
class Report:
    """A report read back from disk."""

    path: Path
    version: str
    """The pytest-energy version that wrote it."""
    run: Mapping[str, Any]
    results: tuple[Reported, ...]


def _problem(path: Path, cause: str, fix: str) -> ReportError:
    return ReportError(f"energy report {path}: {cause}. {fix}")


_REWRITE = "Write it again with pytest --energy-json=PATH, or restore it from the CI artifact."


def _reported(path: Path, index: int, raw: object, version: int) -> Reported:
    where = f"tests[{index}]"

    def bad(what: str) -> ReportError:
        return _problem(path, f"{where} {what}", _REWRITE)

    if not isinstance(raw, dict):
        raise bad("is not an object")
    nodeid = raw.get("nodeid")
    if isinstance(nodeid, str) and nodeid:
        where = f"tests[{index}] ({nodeid})"
    if version == 1:  # 0.2's reports: "windows" is a count, and there are no runs
        raw = {key: value for key, value in raw.items() if key != "windows"}
    record = Record.from_plain(raw, bad)
    text = {}
    for key in ("verdict", "check", "outcome"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"has {key} = {value!r}; expected a string")
        text[key] = value or ""
    return Reported(record, text["verdict"], text["check"] or BASELINE, text["outcome"])


def parse_report(text: str, path: Path) -> Report:
    """Parse and check report ``text``; ``path`` is only used in messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _problem(
            path,
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            _REWRITE,
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _problem(
            path,
            f'is not a pytest-energy report (it has no "format": "{FORMAT}")',
            "Pass a file written by pytest --energy-json=PATH, or a baseline .toml file.",
        )
    version = validate.schema_version(
        data, SCHEMA_VERSION, lambda cause, fix: _problem(path, cause, fix or _REWRITE)
    )
    run = data.get("run")
    if not isinstance(run, dict):
        raise _problem(path, 'has no "run" object', _REWRITE)
    tests = data.get("tests")
    if not isinstance(tests, list):
        raise _problem(path, 'has no "tests" list', _REWRITE)
    results = tuple(_reported(path, i, raw, version) for i, raw in enumerate(tests))
    seen: set[tuple[str, str, str]] = set()
    for r in results:
        key = (r.record.hardware, r.record.nodeid, r.check)
        if key in seen:
            raise _problem(path, f"lists {r.record.nodeid} on {r.record.hardware} twice", _REWRITE)
        seen.add(key)
    version_text = run.get("pytest_energy_version")
    return Report(
        path=path,
        version=version_text if isinstance(version_text, str) else "",
        run=run,
        results=results,
    )


def load_report(path: Path) -> Report:
    """Read the JSON report at ``path``. Raises :class:`ReportError` with the cause and the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _problem(
            path,
            "does not exist",
            "Check the path, or write a report with pytest --energy-json=PATH.",
        ) from None
    except IsADirectoryError:
        raise _problem(path, "is a directory", "Pass the report file itself.") from None
    except OSError as exc:
        raise _problem(path, f"cannot be read ({exc.strerror})", "Check its permissions.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(path, "is not UTF-8 text", _REWRITE) from None
    return parse_report(text, path)
