"""The one record of a test's energy, and its one plain form.

A :class:`Record` is what pytest-energy knows about one test's energy on one hardware:
its identity, its samples (kWh per 1,000 inferences, one per window), the work they
count (:class:`Work`), where the figures come from (:class:`Provenance`), the history of
recorded runs (:class:`RunSummary`) and, for a run measured now, its windows.

Every other shape is derived from it:

* the xdist transport and the JSON report's ``tests[]`` entries are :meth:`Record.to_plain`
  (the report adds derived figures and the verdict);
* ``pytest-energy compare`` and ``merge`` read a report back with :meth:`Record.from_plain`;
* a baseline entry is :meth:`Record.to_plain` without the test id, the hardware (they are
  the entry's keys) and the windows: :data:`STORED_KEYS` lists what it keeps.

Adding a field means adding it here (class, :meth:`to_plain`, :meth:`from_plain`), and a
line in ``report/schema.json``. No pytest here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import __version__, validate
from .stats import median, robust_spread

#: Significant digits kept per sample (kWh per 1,000 inferences of one window): far finer
#: than any meter's repeatability, short enough for a reviewable baseline diff.
SAMPLE_DIGITS = 6
#: Significant digits of a stored run's spread.
SPREAD_DIGITS = 3
J_PER_KWH = 3.6e6

MEASURED = "measured"
ESTIMATED = "estimated"
MODELLED = "modelled"
#: How the work counts of a record were obtained.
GIVEN = "given"
INFERRED = "inferred"

#: Keys of :meth:`Record.to_plain` that a baseline entry stores (its keys name the hardware
#: and the test; the windows stay in the JSON report).
STORED_KEYS = (
    "kwh_per_1000",
    "samples",
    "meter",
    "estimated",
    "deterministic",
    "engine",
    "target",
    "inferences",
    "tokens",
    "images",
    "pytest_energy_version",
    "runs",
)


def round_sample(value: float) -> float:
    """A sample as stored and compared everywhere: :data:`SAMPLE_DIGITS` significant digits.

    Applied once, to each window's figure; the baseline, the JSON report and the xdist
    transport then carry the same numbers, so they never disagree.
    """
    return float(f"{value:.{SAMPLE_DIGITS}g}")


def kwh_per_1000(energy_j: float, inferences: int) -> float:
    """Joules for ``inferences`` inferences to kWh per 1,000 inferences."""
    return energy_j / inferences * 1000.0 / J_PER_KWH


def utc_date(unix_s: float) -> str:
    """``YYYY-MM-DD`` (UTC) of a wall-clock time; "" for an unknown (zero) time."""
    return time.strftime("%Y-%m-%d", time.gmtime(unix_s)) if unix_s > 0 else ""


# -- the parts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What a window, a call or a record counts: inferences, and tokens and images where
    they apply. Every count is a whole number of at least 1, or ``None`` (not counted)."""

    inferences: int
    tokens: int | None = None
    images: int | None = None

    def times(self, calls: int) -> Work:
        """The work of ``calls`` calls that each do this work."""
        return Work(
            self.inferences * calls,
            None if self.tokens is None else self.tokens * calls,
            None if self.images is None else self.images * calls,
        )

    def __add__(self, other: Work) -> Work:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Work(
            self.inferences + other.inferences,
            add(self.tokens, other.tokens),
            add(self.images, other.images),
        )

    @staticmethod
    def total(parts: Sequence[Work]) -> Work:
        result = parts[0]
        for part in parts[1:]:
            result = result + part
        return result


@dataclass(frozen=True)
class Provenance:
    """Where a record's figures come from."""

    meter: str
    hardware: str
    estimated: bool
    deterministic: bool = False
    """The figures depend on the work alone (the roofline model)."""
    engine: str | None = None
    """How the model is served, for meters that model it (roofline: eager or compiled)."""
    target: str | None = None
    """The hardware profile a modelling meter models (roofline: H100-SXM ...)."""
    description: str = ""
    """One sentence on how the figures are obtained, as the meter states it."""

    @property
    def figures(self) -> str:
        """``measured`` (a sensor), ``estimated`` (e.g. CPU time x TDP) or ``modelled``
        (a deterministic model of the work, roofline)."""
        if not self.estimated:
            return MEASURED
        return MODELLED if self.deterministic else ESTIMATED

    def comparable(self, other: Provenance) -> bool:
        """Whether figures of ``other`` may be judged against these: the same meter and the
        same kind of figure. The hardware is compared by the baseline's keys."""
        return self.meter == other.meter and self.estimated == other.estimated


@dataclass(frozen=True)
class RunSummary:
    """One recorded run of a test: its median, windows, within-run spread and date."""

    kwh_per_1000: float
    windows: int
    spread_pct: float
    """Robust within-run spread, percent: ``1.4826 * MAD / median * 100`` (0 with fewer than
    two windows or a median that is not positive and finite)."""
    date: str
    """UTC date ``YYYY-MM-DD``; "" when unknown (runs migrated from schema 1)."""

    @classmethod
    def of(cls, samples: Sequence[float], date: str) -> RunSummary:
        """Summarise one run's windows; the median is rounded like a sample and the spread
        to :data:`SPREAD_DIGITS` digits, so a stored run's line is stable."""
        return cls(
            kwh_per_1000=round_sample(median(samples)),
            windows=len(samples),
            spread_pct=float(f"{robust_spread(samples) * 100.0:.{SPREAD_DIGITS}g}"),
            date=date,
        )

    def stored(self) -> RunSummary:
        """This run as a file keeps it: median rounded like a sample, spread to
        :data:`SPREAD_DIGITS` digits (idempotent)."""
        kwh = round_sample(self.kwh_per_1000)
        spread = float(f"{self.spread_pct:.{SPREAD_DIGITS}g}")
        if kwh == self.kwh_per_1000 and spread == self.spread_pct:
            return self
        return replace(self, kwh_per_1000=kwh, spread_pct=spread)


@dataclass(frozen=True)
class Window:
    """One metered span of work: the difference of two meter reads."""

    energy_j: float
    duration_s: float
    work: Work
    domains_j: Mapping[str, float] = field(default_factory=dict)
    start_unix_s: float = 0.0
    """Wall-clock start (``time.time()``), comparable across processes."""
    end_unix_s: float = 0.0
    throttle: tuple[str, ...] = ()
    """Throttle reasons the meter saw during the window (thermal, power cap ...)."""
    waited_s: float = 0.0
    """Time spent waiting for the device lock before the window (or its call) started."""
    idle_j: float = 0.0
    """Idle energy over the window's duration, when --energy-subtract-idle measured it."""
    counts: Mapping[str, float] = field(default_factory=dict)
    """Work the meter counted (``flops``, ``bytes``, ``kernels``, ``energy_j:<class>``)."""
    phases_j: Mapping[str, float] = field(default_factory=dict)
    """Energy by phase of the work (``prefill``, ``decode``), when the work marks phases."""

    @property
    def kwh_per_1000(self) -> float:
        return round_sample(kwh_per_1000(self.energy_j, self.work.inferences))

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {
            "energy_j": float(self.energy_j),
            "duration_s": float(self.duration_s),
            "inferences": self.work.inferences,
            "tokens": self.work.tokens,
            "images": self.work.images,
            "domains_j": {str(k): float(v) for k, v in self.domains_j.items()},
            "start_unix_s": float(self.start_unix_s),
            "end_unix_s": float(self.end_unix_s),
            "throttle": list(self.throttle),
            "waited_s": float(self.waited_s),
            "idle_j": float(self.idle_j),
        }
        if self.counts:
            plain["counts"] = {str(k): float(v) for k, v in self.counts.items()}
        if self.phases_j:
            plain["phases_j"] = {str(k): float(v) for k, v in self.phases_j.items()}
        return plain

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> Window:
        """Inverse of :meth:`to_plain`, for data this package wrote (the xdist transport)."""
        return cls(
            energy_j=float(data["energy_j"]),
            duration_s=float(data["duration_s"]),
            work=Work(data["inferences"], data.get("tokens"), data.get("images")),
            domains_j=dict(data.get("domains_j", {})),
            start_unix_s=float(data.get("start_unix_s", 0.0)),
            end_unix_s=float(data.get("end_unix_s", 0.0)),
            throttle=tuple(data.get("throttle", ())),
            waited_s=float(data.get("waited_s", 0.0)),
            idle_j=float(data.get("idle_j", 0.0)),
            counts=dict(data.get("counts", {})),
            phases_j=dict(data.get("phases_j", {})),
        )


# -- the record -------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """Everything known about one test's energy on one hardware (see the module docstring).

    ``kwh_per_1000`` and the J figures are medians over windows, so one disturbed window
    does not move them. ``work`` is the total over the samples' windows.
    """

    nodeid: str
    provenance: Provenance
    samples: tuple[float, ...]
    work: Work
    runs: tuple[RunSummary, ...] = ()
    """Recorded runs, oldest first: a baseline entry's history, or this run alone."""
    windows: tuple[Window, ...] = ()
    """This run's windows; empty for a record read from a baseline."""
    counts: str = GIVEN
    """Whether the work counts were ``given`` by the test or ``inferred`` from its output."""
    version: str = __version__
    """The pytest-energy version that recorded it."""

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Record needs at least one sample")
        if type(self.samples) is not tuple:
            object.__setattr__(self, "samples", tuple(self.samples))
        if not self.runs:
            object.__setattr__(self, "runs", (RunSummary.of(self.samples, ""),))
        elif type(self.runs) is not tuple:
            object.__setattr__(self, "runs", tuple(self.runs))

    @classmethod
    def of_windows(
        cls,
        nodeid: str,
        provenance: Provenance,
        windows: Sequence[Window],
        *,
        counts: str = GIVEN,
    ) -> Record:
        """This run's record of ``windows`` (at least one), with one run summary."""
        if not windows:
            raise ValueError("a Record needs at least one window")
        samples = tuple(w.kwh_per_1000 for w in windows)
        return cls(
            nodeid=nodeid,
            provenance=provenance,
            samples=samples,
            work=Work.total([w.work for w in windows]),
            runs=(RunSummary.of(samples, utc_date(windows[0].start_unix_s)),),
            windows=tuple(windows),
            counts=counts,
        )

    # -- identity and provenance ------------------------------------------------------
    @property
    def meter(self) -> str:
        return self.provenance.meter

    @property
    def hardware(self) -> str:
        return self.provenance.hardware

    @property
    def estimated(self) -> bool:
        return self.provenance.estimated

    @property
    def deterministic(self) -> bool:
        return self.provenance.deterministic

    @property
    def figures(self) -> str:
        return self.provenance.figures

    # -- figures ------------------------------------------------------------------------
    @property
    def kwh_per_1000(self) -> float:
        return median(self.samples)

    @property
    def joules_per_inference(self) -> float:
        return self.kwh_per_1000 * J_PER_KWH / 1000.0

    @property
    def inferences(self) -> int:
        return self.work.inferences

    @property
    def tokens(self) -> int | None:
        return self.work.tokens

    @property
    def images(self) -> int | None:
        return self.work.images

    def _per(self, count: int | None) -> float | None:
        if not count:
            return None
        return self.joules_per_inference * self.work.inferences / count

    @property
    def joules_per_token(self) -> float | None:
        return self._per(self.work.tokens)

    @property
    def joules_per_image(self) -> float | None:
        return self._per(self.work.images)

    @property
    def energy_j(self) -> float:
        """Total energy of this run's windows (0.0 for a stored record)."""
        return math.fsum(w.energy_j for w in self.windows)

    @property
    def duration_s(self) -> float:
        return math.fsum(w.duration_s for w in self.windows)

    @property
    def domains_j(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for window in self.windows:
            for domain, joules in window.domains_j.items():
                totals[domain] = totals.get(domain, 0.0) + joules
        return dict(sorted(totals.items()))

    @property
    def throttled_windows(self) -> int:
        return sum(1 for w in self.windows if w.throttle)

    @property
    def throttle_reasons(self) -> list[str]:
        return sorted({reason for w in self.windows for reason in w.throttle})

    @property
    def waited_s(self) -> float:
        return math.fsum(w.waited_s for w in self.windows)

    @property
    def dynamic_kwh_per_1000(self) -> float | None:
        """Median kWh/1000 with idle energy removed, when idle was measured."""
        if not any(w.idle_j for w in self.windows):
            return None
        return median(
            kwh_per_1000(max(w.energy_j - w.idle_j, 0.0), w.work.inferences) for w in self.windows
        )

    def per_inference(self, counter: str) -> float | None:
        """Median of a meter counter (``flops``, ``bytes``, ``kernels``) per inference."""
        values = [
            w.counts[counter] / w.work.inferences for w in self.windows if counter in w.counts
        ]
        return median(values) if values else None

    @property
    def flops_per_inference(self) -> float | None:
        return self.per_inference("flops")

    @property
    def bytes_per_inference(self) -> float | None:
        return self.per_inference("bytes")

    @property
    def kernels_per_inference(self) -> float | None:
        return self.per_inference("kernels")

    @property
    def split_j_per_inference(self) -> dict[str, float] | None:
        """Modelled energy per inference by op class (``matmul``, ``attention``, ``other``,
        ``collective``, ``overhead``), when the meter splits it (roofline); medians over windows."""
        classes = sorted(
            {
                k.partition(":")[2]
                for w in self.windows
                for k in w.counts
                if k.startswith("energy_j:")
            }
        )
        if not classes:
            return None
        split = {}
        for name in classes:
            value = self.per_inference(f"energy_j:{name}")
            if value is not None:
                split[name] = value
        return split

    def _phase_total(self, phase: str) -> float | None:
        if not any(phase in w.phases_j for w in self.windows):
            return None
        return math.fsum(w.phases_j.get(phase, 0.0) for w in self.windows)

    @property
    def prefill_j_per_inference(self) -> float | None:
        """Prefill energy over all windows divided by their inferences (``energy.generate``)."""
        total = self._phase_total("prefill")
        return None if total is None else total / self.work.inferences

    @property
    def decode_j_per_token(self) -> float | None:
        """Decode energy over all windows divided by their tokens (``energy.generate``)."""
        total = self._phase_total("decode")
        if total is None or not self.work.tokens:
            return None
        return total / self.work.tokens

    # -- the one plain form -----------------------------------------------------------------
    def to_plain(self) -> dict[str, Any]:
        """Plain dicts, lists, floats and strings; :meth:`from_plain` reads it back."""
        p = self.provenance
        return {
            "nodeid": self.nodeid,
            "meter": p.meter,
            "hardware": p.hardware,
            "estimated": p.estimated,
            "deterministic": p.deterministic,
            "figures": p.figures,
            "engine": p.engine,
            "target": p.target,
            "provenance": p.description,
            "kwh_per_1000": self.kwh_per_1000,
            "samples": [float(x) for x in self.samples],
            "inferences": self.work.inferences,
            "tokens": self.work.tokens,
            "images": self.work.images,
            "counts": self.counts,
            "pytest_energy_version": self.version,
            "runs": [
                {
                    "date": r.date,
                    "kwh_per_1000": r.kwh_per_1000,
                    "windows": r.windows,
                    "spread_pct": r.spread_pct,
                }
                for r in self.runs
            ],
            "windows": [w.to_plain() for w in self.windows],
        }

    @classmethod
    def from_plain(
        cls, data: Mapping[str, Any], bad: validate.Bad = validate.raise_value_error
    ) -> Record:
        """Read :meth:`to_plain`'s form (or a baseline entry's subset, with ``nodeid`` and
        ``hardware`` filled in), checking every value; ``bad`` turns a problem into the
        caller's error (naming its file). Derived keys (``kwh_per_1000``, ``figures``) are
        ignored: figures are recomputed from the samples."""
        nodeid = validate.text("nodeid", data.get("nodeid"), bad)
        samples = validate.samples(data.get("samples"), bad)
        stated = data.get("kwh_per_1000")
        if stated is not None and validate.energy(stated) is None:
            raise bad(
                f"has kwh_per_1000 = {validate.shown(stated)}; it must be a non-negative "
                "number (it is the "
                "median of the samples, recomputed on load: edit the samples to change it)"
            )
        provenance = Provenance(
            meter=validate.text("meter", data.get("meter"), bad),
            hardware=validate.text("hardware", data.get("hardware"), bad),
            estimated=validate.flag("estimated", data.get("estimated"), bad),
            deterministic=validate.flag("deterministic", data.get("deterministic", False), bad),
            engine=validate.optional_text("engine", data.get("engine"), bad),
            target=validate.optional_text("target", data.get("target"), bad),
            description=validate.optional_text("provenance", data.get("provenance"), bad) or "",
        )
        inferences = validate.count("inferences", data.get("inferences"), bad, minimum=1)
        work = Work(
            inferences or 1,
            validate.count("tokens", data.get("tokens"), bad, optional=True, minimum=1),
            validate.count("images", data.get("images"), bad, optional=True, minimum=1),
        )
        counts = data.get("counts", GIVEN)
        if counts not in (GIVEN, INFERRED):
            raise bad(f'has counts = {counts!r}; expected "given" or "inferred"')
        version = validate.optional_text(
            "pytest_energy_version", data.get("pytest_energy_version"), bad
        )
        raw_runs = data.get("runs")
        runs = validate.runs(raw_runs, bad) if raw_runs is not None else ()
        raw_windows = data.get("windows") or ()
        if not isinstance(raw_windows, (list, tuple)):
            raise bad("has windows that are not a list")
        try:
            windows = tuple(Window.from_plain(w) for w in raw_windows)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"has a window that cannot be read ({type(exc).__name__}: {exc})") from None
        return cls(
            nodeid=nodeid,
            provenance=provenance,
            samples=samples,
            work=work,
            runs=runs,
            windows=windows,
            counts=counts,
            version=version or "",
        )

    def stored(self) -> Record:
        """This record as a baseline keeps it: no windows, runs rounded as stored."""
        return replace(self, windows=(), runs=tuple(r.stored() for r in self.runs))

    def same_figures(self, other: Record) -> bool:
        """The same samples, work and provenance at the stored precision: the record of the
        run that wrote a baseline entry and the entry agree, whatever their run dates."""
        return (
            tuple(map(round_sample, self.samples)) == tuple(map(round_sample, other.samples))
            and self.work == other.work
            and self.provenance.meter == other.provenance.meter
            and self.provenance.hardware == other.provenance.hardware
            and self.provenance.estimated == other.provenance.estimated
        )
