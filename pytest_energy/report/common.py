"""What every report shares: the run header, the one row of a result, the verdict line,
the caveats, atomic writes and the coercion of text that UTF-8 cannot hold."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__, fileio
from ..errors import EnergyError
from ..record import ESTIMATED, MEASURED, MODELLED
from ..settings import DEFAULT_PHONE_CHARGE_KWH, Settings
from ..stats import LOW_CONFIDENCE_MIN_TOLERANCE_PCT
from ..verdict import COMPARE, IMPROVED, NEW, OVER_BUDGET, Result
from .carbon import CarbonIntensity

CHARTS_HINT = "pip install 'pytest-energy[charts]'"


class ReportError(EnergyError, ValueError):
    """A report file cannot be written or read back; the message names the file and the fix."""


@dataclass(frozen=True)
class RunInfo:
    """The header of a report: when, with what, and the settings that judged it."""

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
    """--energy-tolerance as given (None: each meter kind's default); ``pytest-energy
    compare`` resolves the rule from these as the plugin did."""
    alpha: float | None = None
    run_spread_pct: float | None = None

    @classmethod
    def create(
        cls,
        results: Sequence[Result],
        *,
        settings: Settings | None = None,
        intensity: CarbonIntensity | None = None,
        now: datetime | None = None,
    ) -> RunInfo:
        """The header for ``results``: meters and hardware are those the results used."""
        moment = now or datetime.now(timezone.utc)
        return cls(
            time=moment.isoformat(timespec="seconds"),
            meters=tuple(sorted({r.record.meter for r in results})),
            hardware=tuple(sorted({r.record.hardware for r in results})),
            carbon_intensity_g_per_kwh=intensity.g_per_kwh if intensity else None,
            carbon_source=intensity.source if intensity else None,
            country=intensity.country if intensity else None,
            phone_charge_kwh=settings.phone_charge_kwh if settings else DEFAULT_PHONE_CHARGE_KWH,
            tolerance_pct=settings.tolerance_pct if settings else None,
            alpha=settings.alpha if settings else None,
            run_spread_pct=settings.run_spread_pct if settings else None,
        )


def fmt_num(value: float | None) -> str:
    """A figure to four significant figures; '-' when absent."""
    return "-" if value is None else f"{value:.4g}"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


# -- one row per result, the same in every renderer -------------------------------------------


@dataclass(frozen=True)
class Row:
    """The figures every report shows for one result."""

    test: str
    """The node id; ``energy.compare`` results add `` (compare)``."""
    compare: bool
    inferences: int
    kwh_per_1000: float
    joules_per_inference: float
    joules_per_token: float | None
    joules_per_image: float | None
    gflop_per_inference: float | None
    kernels_per_inference: float | None
    reference_kwh_per_1000: float | None
    """The baseline's median, or the current version's for a compare."""
    change_pct: float | None
    budget_kwh: float | None
    verdict: str
    low_confidence: bool
    meter: str
    figures: str
    hardware: str
    windows: int
    note: str

    @property
    def verdict_text(self) -> str:
        return self.verdict + ("*" if self.low_confidence else "")

    @property
    def change_text(self) -> str:
        return "-" if self.change_pct is None else f"{self.change_pct:+.1f}%"


def row(result: Result) -> Row:
    r = result.record
    v = result.verdict
    flops = r.flops_per_inference
    compare = v.check == COMPARE
    return Row(
        test=safe_text(r.nodeid) + (" (compare)" if compare else ""),
        compare=compare,
        inferences=r.inferences,
        kwh_per_1000=r.kwh_per_1000,
        joules_per_inference=r.joules_per_inference,
        joules_per_token=r.joules_per_token,
        joules_per_image=r.joules_per_image,
        gflop_per_inference=None if flops is None else flops / 1e9,
        kernels_per_inference=r.kernels_per_inference,
        reference_kwh_per_1000=None if v.reference is None else v.reference.kwh_per_1000,
        change_pct=v.change_pct,
        budget_kwh=v.budget_kwh,
        verdict=v.status,
        low_confidence=v.low_confidence,
        meter=safe_text(r.meter),
        figures=r.figures,
        hardware=safe_text(r.hardware),
        windows=len(r.samples),
        note=safe_text(v.note),
    )


def rows(results: Sequence[Result]) -> list[Row]:
    return [row(r) for r in results]


def present(rows_: Sequence[Row], name: str) -> bool:
    """Whether any row has the optional figure ``name`` (a column appears only then)."""
    return any(getattr(r, name) is not None for r in rows_)


# -- the run in a line ---------------------------------------------------------------------


def figures_word(results: Sequence[Result]) -> str:
    """ "measured", "modelled" or "estimated" when every result's figures are of that kind;
    otherwise the kinds with their counts, e.g. "3 measured, 2 modelled"."""
    kinds = [r.record.figures for r in results]
    distinct = [k for k in (MEASURED, MODELLED, ESTIMATED) if k in kinds]
    if len(distinct) == 1:
        return distinct[0]
    return ", ".join(f"{kinds.count(k)} {k}" for k in distinct)


def _tests(results: Sequence[Result]) -> str:
    tests = len({r.nodeid for r in results})
    word = figures_word(results)
    if "," in word:
        return f"{plural(tests, 'test')} ({word})"
    return plural(tests, f"{word} test")


def verdict_line(results: Sequence[Result], *, icon: bool = True) -> str:
    """One line for the whole run, e.g. "❌ 1 regression, 1 over budget in 12 measured tests".

    Every verdict counts, ``energy.compare`` ones too. ``icon=False`` leaves out the
    leading emoji (for output without an emoji font).
    """
    if not results:
        return "No energy measurements in this run."
    regressed = sum(1 for r in results if r.verdict.regressed and r.verdict.check != COMPARE)
    compared = sum(1 for r in results if r.verdict.regressed and r.verdict.check == COMPARE)
    over = sum(1 for r in results if r.verdict.status == OVER_BUDGET)
    if regressed or over or compared:
        parts = []
        if regressed:
            parts.append(plural(regressed, "regression"))
        if over:
            parts.append(f"{over} over budget")
        if compared:
            parts.append(plural(compared, "costlier candidate") + " (energy.compare)")
        return f"{'❌ ' if icon else ''}{', '.join(parts)} in {_tests(results)}"
    extras = []
    improved = sum(1 for r in results if r.verdict.status == IMPROVED)
    new = sum(1 for r in results if r.verdict.status == NEW)
    if improved:
        extras.append(f"{improved} improved")
    if new:
        extras.append(f"{new} new without a baseline")
    tail = f" ({', '.join(extras)})" if extras else ""
    return f"{'✅ ' if icon else ''}{_tests(results)} within budget and baseline{tail}"


def failed(results: Sequence[Result]) -> bool:
    """Whether any energy verdict of the run is a failing one (regressed, over budget, a
    costlier ``energy.compare`` candidate)."""
    return any(r.verdict.failed for r in results)


def caveats(results: Sequence[Result]) -> list[str]:
    """The footnotes every renderer shows under its table, when they apply."""
    notes = []
    if any(r.verdict.low_confidence for r in results):
        notes.append(
            "* low confidence: too few windows for the significance test; the median ratio "
            f"decided, against a tolerance of at least {LOW_CONFIDENCE_MIN_TOLERANCE_PCT:g}%."
        )
    kinds = {r.record.figures for r in results}
    if MODELLED in kinds:
        notes.append(
            "modelled: figures come from a model of the work (roofline: the test's torch "
            "operations on the target GPU), not from a sensor; compare them only with "
            "figures of the same meter, target and engine."
        )
    if ESTIMATED in kinds:
        notes.append(
            "estimated: figures are estimated (e.g. from CPU time and a TDP table), not read "
            "from a sensor; compare them only with figures of the same meter on the same "
            "hardware."
        )
    return notes


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


# -- text that UTF-8 cannot hold -------------------------------------------------------------

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


def safe_info(info: RunInfo) -> RunInfo:
    """``info`` with UTF-8-safe strings."""
    changes: dict[str, object] = {}
    for name in ("time", "version", "carbon_source", "country"):
        value = getattr(info, name)
        if isinstance(value, str) and safe_text(value) != value:
            changes[name] = safe_text(value)
    for name in ("meters", "hardware"):
        values = getattr(info, name)
        if any(safe_text(v) != v for v in values):
            changes[name] = tuple(safe_text(v) for v in values)
    return replace(info, **changes) if changes else info  # type: ignore[arg-type]


def distinct(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
