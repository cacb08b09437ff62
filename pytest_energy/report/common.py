"""What every report file shares: the run header, the verdict line, atomic writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

    @classmethod
    def create(
        cls,
        results: Sequence[EnergyResult],
        *,
        intensity: CarbonIntensity | None = None,
        phone_charge_kwh: float = DEFAULT_PHONE_CHARGE_KWH,
        now: datetime | None = None,
    ) -> RunInfo:
        """The header for ``results``: meters and hardware are those the results used."""
        moment = now or datetime.now(timezone.utc)
        return cls(
            time=moment.isoformat(timespec="seconds"),
            meters=tuple(sorted({r.measurement.meter for r in results})),
            hardware=tuple(sorted({r.measurement.hardware for r in results})),
            carbon_intensity_g_per_kwh=intensity.g_per_kwh if intensity else None,
            carbon_source=intensity.source if intensity else None,
            country=intensity.country if intensity else None,
            phone_charge_kwh=phone_charge_kwh,
        )


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
            "other estimates from the same meter and machine."
        )
    return notes
