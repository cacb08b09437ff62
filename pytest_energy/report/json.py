"""The ``--energy-json`` report: a versioned document, described by ``schema.json``.

Top level::

    {"format": "pytest-energy-report", "schema_version": 1,
     "run": {...}, "totals": {...}, "tests": [{...}, ...]}

Numbers that JSON cannot hold (an infinite change against a zero baseline) are written as
``null``. :func:`load_report` reads a report back for the ``pytest-energy`` command.
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
from ..results import EnergyResult
from .carbon import g_co2e, totals
from .common import (
    ReportError,
    RunInfo,
    safe_float,
    safe_info,
    safe_results,
    safe_text,
    verdict_line,
)

FORMAT = "pytest-energy-report"
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema.json")


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    number = safe_float(value)
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


def record(result: EnergyResult, info: RunInfo) -> dict[str, Any]:
    """One test's entry in ``tests``."""
    m = result.measurement
    c = result.comparison
    reasons = sorted({reason for w in m.windows for reason in w.throttle})
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
        }
    work = {
        "flops_per_inference": m.flops_per_inference,
        "bytes_per_inference": m.bytes_per_inference,
    }
    extra: dict[str, Any] = {k: v for k, v in work.items() if v is not None}
    if result.baseline is not None:
        extra["baseline_runs"] = [
            {
                "kwh_per_1000": run.kwh_per_1000,
                "windows": run.windows,
                "spread_pct": run.spread_pct,
                "date": run.date,
            }
            for run in result.baseline.runs
        ]
    return extra | {
        "nodeid": result.nodeid,
        "verdict": result.verdict,
        "outcome": getattr(result, "outcome", "") or None,
        "inferences": m.inferences,
        "tokens": m.tokens,
        "images": m.images,
        "windows": len(m.windows),
        "samples": list(m.samples),
        "kwh_per_1000": m.kwh_per_1000,
        "joules_per_inference": m.joules_per_inference,
        "joules_per_token": m.joules_per_token,
        "joules_per_image": m.joules_per_image,
        "dynamic_kwh_per_1000": m.dynamic_kwh_per_1000,
        "energy_j": m.energy_j,
        "duration_s": m.duration_s,
        "domains_j": m.domains_j,
        "budget_kwh": result.budget_kwh,
        "baseline_kwh_per_1000": result.baseline_kwh_per_1000,
        "baseline_samples": list(result.baseline.samples) if result.baseline else None,
        "change_pct": _num(result.change_pct),
        "low_confidence": result.low_confidence,
        "comparison": comparison,
        "g_co2e_per_1000": g_co2e(m.kwh_per_1000, info.carbon_intensity_g_per_kwh),
        "meter": m.meter,
        "hardware": m.hardware,
        "estimated": m.estimated,
        "provenance": m.provenance,
        "throttled_windows": m.throttled_windows,
        "throttle_reasons": reasons,
        "note": result.note,
    }


def build(results: Sequence[EnergyResult], info: RunInfo) -> dict[str, Any]:
    """The whole report as plain JSON-ready data."""
    results, info = safe_results(results), safe_info(info)
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
        },
        "totals": {
            "tests": total.tests,
            "windows": total.windows,
            "inferences": total.inferences,
            "energy_j": total.energy_j,
            "kwh": total.kwh,
            "g_co2e": total.g_co2e,
            "phone_charges": total.phone_charges,
            "regressed": sum(1 for r in results if r.regressed),
            "over_budget": sum(1 for r in results if r.over_budget),
            "summary": verdict_line(results),
        },
        "tests": [record(r, info) for r in results],
    }


def render(results: Sequence[EnergyResult], info: RunInfo) -> str:
    """The report as JSON text (UTF-8, indented, trailing newline)."""
    data = plain(build(results, info))
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the report."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# -- reading a report back ----------------------------------------------------------------


@dataclass(frozen=True)
class ReportRecord:
    """The fields of one test that ``pytest-energy compare`` and ``merge`` need."""

    nodeid: str
    hardware: str
    meter: str
    estimated: bool
    samples: tuple[float, ...]
    inferences: int
    tokens: int | None
    verdict: str
    budget_kwh: float | None


@dataclass(frozen=True)
class Report:
    """A report read back from disk."""

    path: Path
    version: str
    """The pytest-energy version that wrote it."""
    run: Mapping[str, Any]
    records: tuple[ReportRecord, ...]


def _problem(path: Path, cause: str, fix: str) -> ReportError:
    return ReportError(f"energy report {path}: {cause}. {fix}")


_REWRITE = "Write it again with pytest --energy-json=PATH, or restore it from the CI artifact."


def _record(path: Path, index: int, raw: object) -> ReportRecord:
    where = f"tests[{index}]"

    def bad(what: str) -> ReportError:
        return _problem(path, f"{where} {what}", _REWRITE)

    if not isinstance(raw, dict):
        raise bad("is not an object")
    nodeid = raw.get("nodeid")
    if not isinstance(nodeid, str) or not nodeid:
        raise bad("has no nodeid")
    where = f"tests[{index}] ({nodeid})"
    for key in ("hardware", "meter"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise bad(f"has no {key} (a string)")
    if not isinstance(raw.get("estimated"), bool):
        raise bad("needs estimated = true or false")
    samples = validate.samples(raw.get("samples"), bad)
    inferences = validate.count("inferences", raw.get("inferences"), bad) or 0
    tokens = validate.count("tokens", raw.get("tokens"), bad, optional=True)
    budget = raw.get("budget_kwh")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))):
        raise bad(f"has budget_kwh = {budget!r}; expected a number or null")
    verdict = raw.get("verdict", "")
    return ReportRecord(
        nodeid=nodeid,
        hardware=raw["hardware"],
        meter=raw["meter"],
        estimated=raw["estimated"],
        samples=samples,
        inferences=inferences,
        tokens=tokens,
        verdict=verdict if isinstance(verdict, str) else "",
        budget_kwh=None if budget is None else float(budget),
    )


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
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _problem(path, "has no valid integer schema_version", _REWRITE)
    if version > SCHEMA_VERSION:
        raise _problem(
            path,
            f"has schema_version {version}, newer than this pytest-energy understands "
            f"({SCHEMA_VERSION})",
            "Upgrade pytest-energy (pip install -U pytest-energy) to read it.",
        )
    run = data.get("run")
    if not isinstance(run, dict):
        raise _problem(path, 'has no "run" object', _REWRITE)
    tests = data.get("tests")
    if not isinstance(tests, list):
        raise _problem(path, 'has no "tests" list', _REWRITE)
    records = tuple(_record(path, i, raw) for i, raw in enumerate(tests))
    seen: set[tuple[str, str]] = set()
    for r in records:
        key = (r.hardware, r.nodeid)
        if key in seen:
            raise _problem(path, f"lists {r.nodeid} on {r.hardware} twice", _REWRITE)
        seen.add(key)
    version_text = run.get("pytest_energy_version")
    return Report(
        path=path,
        version=version_text if isinstance(version_text, str) else "",
        run=run,
        records=records,
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
