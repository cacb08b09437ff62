"""What every report file shares: the run header, the verdict line, atomic writes."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__, fileio
from ..errors import EnergyError
from ..results import EnergyResult, Verdict
from ..settings import DEFAULT_PHONE_CHARGE_KWH
from ..stats import LOW_CONFIDENCE_MIN_TOLERANCE_PCT
from .carbon import CarbonIntensity

#: Verdicts, most serious first; reports sort and count with this order.
SEVERITY: tuple[str, ...] = (
    Verdict.OVER_BUDGET,
    Verdict.REGRESSED,
    Verdict.NEW,
    Verdict.IMPROVED,
    Verdict.OK,
)
CHARTS_HINT = "pip install 'pytest-energy[charts]'"


class ReportError(EnergyError, ValueError):
    """A report file cannot be written or read back; the message names the file and the fix."""


@dataclass(frozen=True)
class RunInfo:
    """The header of a report: when, with what, and the carbon figures used."""

    time: str
    """ISO-8601 time of the run, with its UTC offset."""
    version: str = __version__
    meters: tuple[str, ...] = ()
    hardware: tuple[str, ...] = ()
    carbon_intensity_g_per_kwh: float | None = None
    carbon_source: str | None = None
    """e.g. "CodeCarbon offline data for FRA (France, 2023)" or "--energy-carbon-intensity"."""
    country: str | None = None
    phone_charge_kwh: float = DEFAULT_PHONE_CHARGE_KWH
    tolerance_pct: float | None = None
    """The run's tolerance in percent; ``pytest-energy compare`` reuses it."""
    alpha: float | None = None

    @classmethod
    def create(
        cls,
        results: Sequence[EnergyResult],
        *,
        intensity: CarbonIntensity | None = None,
        phone_charge_kwh: float = DEFAULT_PHONE_CHARGE_KWH,
        now: datetime | None = None,
        tolerance_pct: float | None = None,
        alpha: float | None = None,
    ) -> RunInfo:
        """The header for ``results``: meters and hardware are those the results used.

        ``tolerance_pct`` and ``alpha`` default to the values every comparison of the run
        shares (low-confidence comparisons, whose tolerance has a floor, aside), or None
        when they differ or nothing was compared. The plugin should pass its settings'.
        """
        moment = now or datetime.now(timezone.utc)
        if tolerance_pct is None:
            tolerance_pct = _shared(
                r.comparison.tolerance_pct
                for r in results
                if r.comparison and not r.comparison.low_confidence
            )
        if alpha is None:
            alpha = _shared(r.comparison.alpha for r in results if r.comparison)
        return cls(
            time=moment.isoformat(timespec="seconds"),
            meters=tuple(sorted({r.measurement.meter for r in results})),
            hardware=tuple(sorted({r.measurement.hardware for r in results})),
            carbon_intensity_g_per_kwh=intensity.g_per_kwh if intensity else None,
            carbon_source=intensity.source if intensity else None,
            country=intensity.country if intensity else None,
            phone_charge_kwh=phone_charge_kwh,
            tolerance_pct=tolerance_pct,
            alpha=alpha,
        )


def _shared(values: Iterable[float]) -> float | None:
    distinct = set(values)
    return float(distinct.pop()) if len(distinct) == 1 else None


def severity(result: EnergyResult) -> int:
    return SEVERITY.index(result.verdict)


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def verdict_line(results: Sequence[EnergyResult], *, icon: bool = True) -> str:
    """One line for the whole run, e.g. "❌ 1 regression, 1 over budget in 12 measured tests".

    ``icon=False`` leaves out the leading emoji (for output without an emoji font).
    """
    if not results:
        return "No energy measurements in this run."
    measured = plural(len(results), "measured test")
    regressed = sum(1 for r in results if r.regressed)
    over = sum(1 for r in results if r.over_budget)
    if regressed or over:
        parts = []
        if regressed:
            parts.append(plural(regressed, "regression"))
        if over:
            parts.append(f"{over} over budget")
        return f"{'❌ ' if icon else ''}{', '.join(parts)} in {measured}"
    extras = []
    improved = sum(1 for r in results if r.verdict == Verdict.IMPROVED)
    new = sum(1 for r in results if r.verdict == Verdict.NEW)
    if improved:
        extras.append(f"{improved} improved")
    if new:
        extras.append(f"{new} new without a baseline")
    tail = f" ({', '.join(extras)})" if extras else ""
    return f"{'✅ ' if icon else ''}{measured} within budget and baseline{tail}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write a report file atomically, creating its directory. Raises :class:`ReportError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write_text(path, text)
    except OSError as exc:
        raise ReportError(
            f"energy report {path}: cannot be written ({exc.strerror or exc}). Check the path "
            "and its permissions, or choose another path."
        ) from None


def caveats(results: Sequence[EnergyResult]) -> list[str]:
    """The footnotes every renderer shows under its table, when they apply."""
    notes = []
    if any(r.low_confidence for r in results):
        notes.append(
            "* low confidence: too few windows for the significance test; the median ratio "
            f"decided, against a tolerance of at least {LOW_CONFIDENCE_MIN_TOLERANCE_PCT:g}%."
        )
    if any(r.measurement.estimated for r in results):
        notes.append(
            "estimated: figures are modelled, not read from a sensor; compare them only with "
            "other figures of the same meter on the same hardware (for roofline: the same "
            "target GPU)."
        )
    return notes


# -- coercion at the boundary: nothing a meter or a test id holds may crash a writer ---------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def safe_text(value: object) -> str:
    """``value`` as text that UTF-8 can hold: lone surrogates become ``\\xNN`` / ``\\uNNNN``.

    A test file named with a non-UTF-8 byte (``b"\\xff"``) reaches pytest as the surrogate
    ``\\udcff`` and is shown as ``\\xff``; any other lone surrogate as ``\\udXXX``.
    """
    text = value if isinstance(value, str) else str(value)
    return _SURROGATE.sub(_escape_surrogate, text) if _SURROGATE.search(text) else text


def safe_float(value: object) -> float:
    """A plain Python float (numpy.float32 and other reals included); NaN when not a number."""
    if type(value) is float:
        return value
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _safe_optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = safe_float(value)
    return int(number) if math.isfinite(number) else None


def _safe_window(window: object) -> object:
    changes: dict[str, object] = {}
    names = {f.name for f in fields(window)}  # type: ignore[arg-type]
    for name in ("energy_j", "duration_s", "start_unix_s", "end_unix_s", "waited_s", "idle_j"):
        if name in names:
            value = getattr(window, name)
            if type(value) is not float:
                changes[name] = safe_float(value)
    for name in ("tokens", "images"):
        if name in names:
            value = getattr(window, name)
            if value is not None and type(value) is not int:
                changes[name] = _safe_optional_int(value)
    if "inferences" in names and type(window.inferences) is not int:  # type: ignore[attr-defined]
        changes["inferences"] = _safe_optional_int(window.inferences) or 1  # type: ignore[attr-defined]
    for name in ("domains_j", "counts"):
        mapping = getattr(window, name, None)
        if isinstance(mapping, Mapping) and any(
            type(v) is not float or safe_text(k) != k for k, v in mapping.items()
        ):
            changes[name] = {safe_text(k): safe_float(v) for k, v in mapping.items()}
    throttle = getattr(window, "throttle", ())
    if any(safe_text(t) != t for t in throttle):
        changes["throttle"] = tuple(safe_text(t) for t in throttle)
    return replace(window, **changes) if changes else window  # type: ignore[type-var]


def _safe_strings(obj: object, names: Sequence[str]) -> dict[str, object]:
    changes: dict[str, object] = {}
    for name in names:
        value = getattr(obj, name, None)
        if value is not None and (not isinstance(value, str) or safe_text(value) != value):
            changes[name] = safe_text(value)
    return changes


def safe_result(result: EnergyResult) -> EnergyResult:
    """``result`` with every string UTF-8-safe and every number a plain float (copied if needed)."""
    m = result.measurement
    windows = tuple(_safe_window(w) for w in m.windows)
    m_changes: dict[str, object] = _safe_strings(m, ("meter", "hardware", "provenance"))
    if type(m.estimated) is not bool:
        m_changes["estimated"] = bool(m.estimated)
    if any(new is not old for new, old in zip(windows, m.windows, strict=True)):
        m_changes["windows"] = windows
    changes: dict[str, object] = _safe_strings(result, ("nodeid", "note", "outcome"))
    if m_changes:
        changes["measurement"] = replace(m, **m_changes)  # type: ignore[arg-type]
    if result.budget_kwh is not None and type(result.budget_kwh) is not float:
        changes["budget_kwh"] = safe_float(result.budget_kwh)
    return replace(result, **changes) if changes else result  # type: ignore[arg-type]


def safe_results(results: Sequence[EnergyResult]) -> list[EnergyResult]:
    return [safe_result(r) for r in results]


def safe_info(info: RunInfo) -> RunInfo:
    """``info`` with UTF-8-safe strings."""
    changes: dict[str, object] = _safe_strings(
        info, ("time", "version", "carbon_source", "country")
    )
    for name in ("meters", "hardware"):
        values = getattr(info, name)
        if any(safe_text(v) != v for v in values):
            changes[name] = tuple(safe_text(v) for v in values)
    intensity = info.carbon_intensity_g_per_kwh
    if intensity is not None and type(intensity) is not float:
        changes["carbon_intensity_g_per_kwh"] = safe_float(info.carbon_intensity_g_per_kwh)
    return replace(info, **changes) if changes else info  # type: ignore[arg-type]
