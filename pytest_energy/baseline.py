"""The committed TOML baseline: load, validate, merge, and save atomically under a lock.

Layout (schema version 2)::

    schema_version = 2

    [hardware."NVIDIA H100 80GB HBM3 x1"."tests/test_llm.py::test_generate[bs=8]"]
    unit = "kWh/1000 inferences"
    kwh_per_1000 = 0.0123          # median of samples, for reviewers; recomputed on load
    samples = [0.0121, 0.0123, 0.0124]
    meter = "nvml"
    estimated = false
    inferences = 64
    pytest_energy_version = "0.1.0"
    runs = [
        { kwh_per_1000 = 0.0125, windows = 10, spread_pct = 1.1, date = "2026-11-30" },
        { kwh_per_1000 = 0.0123, windows = 3, spread_pct = 1.2, date = "2026-12-01" },
    ]

``samples`` are the windows of the latest run; ``runs`` is the history of recorded runs,
oldest first, one line each, so that recording a run adds one line and the oldest run's
line drops (at most ``history`` runs are kept). ``runs`` is an array of tables, written
inline; ``[[...runs]]`` tables read the same. Schema 1 files (no ``runs``) read as one run
per entry, made from its samples with an unknown date, and are written as schema 2 by the
next update.

Entries are keyed by hardware, then by test node id, and written in sorted order so that
diffs in pull requests stay small. Every problem raises :class:`BaselineError` with a
message that names the file, the cause and the fix; a load never modifies the file, and a
save either leaves the old file or puts the whole new file in place, after checking that
the new text reads back.

Speed: the writer emits one canonical layout, and the reader has a fast path for exactly
that layout, and for the layout the schema-1 writer used (one regular expression per
entry, admitting only values the full validation accepts). Anything else (hand edits,
comments, CRLF, any invalid value) goes through ``tomllib`` and the full validation, so the
fast path never decides what is valid: it returns what the full reader would, or defers.
Entries read by the fast path are decoded when first looked up, and an update writes the
entries it did not touch back as the exact text they were read from.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import re
import stat
import sys
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import validate
from .errors import BaselineError
from .fileio import atomic_write_text
from .stats import SPREAD_DIGITS, RunSummary, median, round_sample

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION = 2
UNIT = "kWh/1000 inferences"
#: Runs kept per entry unless the caller says otherwise (``--energy-history``).
DEFAULT_HISTORY = 5

_ENTRY_KEYS = {
    "unit",
    "kwh_per_1000",
    "samples",
    "meter",
    "estimated",
    "inferences",
    "tokens",
    "pytest_energy_version",
}
_ENTRY_KEYS_V2 = _ENTRY_KEYS | {"runs"}
_RUN_KEYS = ("kwh_per_1000", "windows", "spread_pct", "date")


def _stored_run(run: RunSummary) -> RunSummary:
    """``run`` as the file keeps it: the median rounded like a sample, the spread to
    :data:`SPREAD_DIGITS` digits (idempotent; short, stable lines in the file)."""
    kwh = round_sample(run.kwh_per_1000)
    spread = float(f"{run.spread_pct:.{SPREAD_DIGITS}g}")
    if kwh == run.kwh_per_1000 and spread == run.spread_pct:
        return run
    return RunSummary(kwh_per_1000=kwh, windows=run.windows, spread_pct=spread, date=run.date)


@dataclass(frozen=True)
class BaselineEntry:
    """One test's stored windows on one hardware, and the history of its recorded runs.

    ``runs`` left empty is filled with one run made from ``samples`` (date unknown).
    """

    samples: tuple[float, ...]
    meter: str
    estimated: bool
    pytest_energy_version: str
    inferences: int = 0
    tokens: int | None = None
    runs: tuple[RunSummary, ...] = ()

    def __post_init__(self) -> None:
        if type(self.samples) is not tuple:
            object.__setattr__(self, "samples", tuple(self.samples))
        if not self.runs:
            object.__setattr__(self, "runs", (RunSummary.of(self.samples, ""),))
        elif not isinstance(self.runs, tuple):
            object.__setattr__(self, "runs", tuple(self.runs))

    @property
    def kwh_per_1000(self) -> float:
        return median(self.samples)

    def comparable(self, meter: str, estimated: bool) -> bool:
        """Whether figures of ``meter`` (measured or ``estimated``) may be judged against
        this entry: only those of the meter, and the kind of figure, that recorded it."""
        return self.meter == meter and self.estimated == estimated

    def to_toml(self) -> dict[str, Any]:
        """The entry as the table :func:`dumps` writes (for callers that want a mapping)."""
        table: dict[str, Any] = {
            "unit": UNIT,
            "kwh_per_1000": self.kwh_per_1000,
            "samples": list(self.samples),
            "meter": self.meter,
            "estimated": self.estimated,
            "inferences": self.inferences,
        }
        if self.tokens is not None:
            table["tokens"] = self.tokens
        table["pytest_energy_version"] = self.pytest_energy_version
        table["runs"] = [
            {
                "kwh_per_1000": r.kwh_per_1000,
                "windows": r.windows,
                "spread_pct": r.spread_pct,
                "date": r.date,
            }
            for r in self.runs
        ]
        return table


@dataclass(frozen=True)
class Update:
    """What one run asks to store for one test.

    ``entry.runs`` holds this run only. With ``replace_history`` (an accepted regression or
    improvement: a new level starts) the stored history is replaced by it; otherwise (``ok``
    or a new test) it is appended to the history.
    """

    entry: BaselineEntry
    replace_history: bool


@dataclass(frozen=True)
class Baseline:
    """All entries of a baseline file: ``entries[hardware][nodeid]``."""

    entries: Mapping[str, Mapping[str, BaselineEntry]] = field(default_factory=dict)

    def get(self, hardware: str, nodeid: str) -> BaselineEntry | None:
        tests = self.entries.get(hardware)
        return None if tests is None else tests.get(nodeid)

    def hardware_for(self, nodeid: str) -> list[str]:
        """Hardware keys that have an entry for ``nodeid``."""
        return sorted(hw for hw, tests in self.entries.items() if nodeid in tests)

    def merged(self, updates: Mapping[str, Mapping[str, Update]], *, history: int) -> Baseline:
        """A new baseline with ``updates`` applied; entries not named in it are kept as they are.

        An appended run joins the stored history (the latest ``history`` runs are kept) and
        the entry's samples and other fields become the new run's. A new run's median and
        spread are stored rounded (see :func:`_stored_run`). The history is replaced
        instead when ``replace_history`` is set, or when the stored entry was recorded with
        another meter or estimated flag (its runs are not comparable).
        """
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a whole number >= 1, not {history!r}")
        with _gc_paused():
            return Baseline(self._merged(updates, history))

    def _merged(
        self, updates: Mapping[str, Mapping[str, Update]], history: int
    ) -> dict[str, dict[str, BaselineEntry] | _Tests]:
        combined: dict[str, dict[str, BaselineEntry] | _Tests] = {
            hw: tests.copy() if isinstance(tests, _Tests) else dict(tests)
            for hw, tests in self.entries.items()
        }
        for hw, tests in updates.items():
            stored = combined.setdefault(hw, {})
            for nodeid, change in tests.items():
                new = change.entry
                old = stored.get(nodeid)
                fresh = tuple(map(_stored_run, new.runs))
                if (
                    change.replace_history
                    or old is None
                    or not old.comparable(new.meter, new.estimated)
                ):
                    runs = fresh[-history:]
                else:
                    runs = (old.runs + fresh)[-history:]
                stored[nodeid] = BaselineEntry(
                    samples=new.samples,
                    meter=new.meter,
                    estimated=new.estimated,
                    pytest_energy_version=new.pytest_energy_version,
                    inferences=new.inferences,
                    tokens=new.tokens,
                    runs=runs,
                )
        return combined

    def __len__(self) -> int:
        return sum(len(tests) for tests in self.entries.values())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a loop that builds many small objects.

    Decoding 50,000 entries makes hundreds of thousands of objects and no cycles; the
    collector's passes over them cost about 40% of the loop. Reference counting still
    frees everything; the collector's previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- messages ---------------------------------------------------------------------------------


def _problem(path: Path, cause: str, fix: str) -> BaselineError:
    return BaselineError(f"energy baseline {path}: {cause}. {fix}")


_RESTORE = (
    "Fix the file by hand, restore it from version control (git checkout -- <file>), or "
    "delete it and record a new one with --energy-update-baseline."
)
_CONFLICT_FIX = (
    "Resolve the conflict (keep one side of each conflicting entry and delete the marker "
    "lines), or take one side (git checkout --ours/--theirs -- <file>) and re-record the "
    "other tests with --energy-update-baseline, or combine both sides' files with "
    "`pytest-energy merge OUT IN...`."
)
_CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7})(?: |$)", re.MULTILINE)


# -- TOML text: keys, strings and numbers exactly as the writer spells them --------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(text: str) -> str:
    """``text`` as a TOML basic string."""
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def _key(key: str) -> str:
    """``key`` as a TOML key: bare when it can be, else a basic string."""
    return key if _BARE_KEY.fullmatch(key) else _string(key)


_quote = _key  # the spelling used in messages


def _float(x: float) -> str:
    # repr is the shortest text that reads back to the same float, and is valid TOML for
    # finite values ("1e-05", "0.0123", "1.5e+300"); inf/nan are refused by the read-back.
    return repr(float(x))


def _entry_lines(hw_key: str, nodeid: str, entry: BaselineEntry, out: list[str]) -> None:
    samples = ", ".join(map(repr, map(float, entry.samples)))
    tokens = "" if entry.tokens is None else f"tokens = {int(entry.tokens)}\n"
    runs = "".join(
        f"    {{ kwh_per_1000 = {float(r.kwh_per_1000)!r}, windows = {int(r.windows)}, "
        f"spread_pct = {float(r.spread_pct)!r}, date = {_string(r.date)} }},\n"
        for r in entry.runs
    )
    out.append(
        f"\n[hardware.{hw_key}.{_key(nodeid)}]\n"
        f'unit = "{UNIT}"\n'
        f"kwh_per_1000 = {_float(entry.kwh_per_1000)}\n"
        f"samples = [{samples}]\n"
        f"meter = {_string(entry.meter)}\n"
        f"estimated = {'true' if entry.estimated else 'false'}\n"
        f"inferences = {int(entry.inferences)}\n"
        f"{tokens}"
        f"pytest_energy_version = {_string(entry.pytest_energy_version)}\n"
        f"runs = [\n{runs}]\n"
    )


_HEADER = (
    "# pytest-energy baseline: kWh per 1,000 inferences, one sample per window.\n"
    "# Written by `pytest --energy-update-baseline`; review changes like code.\n"
)


def dumps(baseline: Baseline) -> str:
    """Serialize in a stable, sorted order, in the canonical layout the fast reader knows."""
    with _gc_paused():
        return _dumps(baseline)


def _dumps(baseline: Baseline) -> str:
    out = [_HEADER, f"schema_version = {SCHEMA_VERSION}\n"]
    for hw, tests in sorted(baseline.entries.items()):
        hw_key = _key(hw)
        if isinstance(tests, _Tests):
            items = tests._items  # entries never decoded are written back as they were read
            for nodeid in sorted(items):
                held = items[nodeid]
                if isinstance(held, BaselineEntry):
                    _entry_lines(hw_key, nodeid, held, out)
                elif held.re is _ENTRY:
                    out.append(held.group())
                else:  # read from schema 1: written as schema 2
                    _entry_lines(hw_key, nodeid, _decode(held), out)
        else:
            for nodeid in sorted(tests):
                _entry_lines(hw_key, nodeid, tests[nodeid], out)
    return "".join(out)


# -- reading: the fast path for the canonical layout --------------------------------------------


class _NotCanonical(Exception):
    """The text is not exactly what :func:`dumps` writes: read it with the full parser."""


# A basic string: no raw control characters, only the escapes the writer uses, and no
# \u escape of a surrogate (not a Unicode scalar value; tomllib rejects it).
# Written as an "unrolled loop" (plain characters, then escape + plain characters), which
# is fast and cannot backtrack catastrophically.
_PLAIN = r'[^"\\\x00-\x1f\x7f]*'
_ESC = r'\\(?:[\\"btnfr]|u(?![dD][89abAB])[0-9A-Fa-f]{4})'
_BODY = rf"{_PLAIN}(?:{_ESC}{_PLAIN})*"
_K = rf'(?:[A-Za-z0-9_-]+|"{_BODY}")'
_S = rf'"{_BODY}"'
_S1 = rf'"(?!"){_BODY}"'  # not empty
# Non-negative numbers that are always finite as floats: at most 20 integer digits and a
# positive exponent below 100. Anything else (1e300, 1e400, -0.0) takes the slow path.
_F = r"(?:0|[1-9][0-9]{0,19})(?:\.[0-9]+)?(?:e(?:-[0-9]{1,3}|\+?[0-9]{1,2}))?"
_I = r"(?:0|[1-9][0-9]{0,17})"
_W = r"[1-9][0-9]{0,17}"  # windows >= 1
# Months 01-12 and days 01-31 here; days 29-31 are checked against the calendar.
_DATE = r"(?:[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))?"
_RUN_LINE = (
    rf"    \{{ kwh_per_1000 = {_F}, windows = {_W}, spread_pct = {_F}, "
    rf'date = "{_DATE}" \}},\n'
)
_ENTRY = re.compile(
    rf"\n\[hardware\.({_K})\.({_K})\]\n"
    rf'unit = "kWh/1000 inferences"\n'
    rf"kwh_per_1000 = {_F}\n"
    rf"samples = \[({_F}(?:, {_F})*)\]\n"
    rf"meter = ({_S1})\n"
    rf"estimated = (true|false)\n"
    rf"inferences = ({_I})\n"
    rf"(?:tokens = ({_I})\n)?"
    rf"pytest_energy_version = ({_S})\n"
    rf"runs = \[\n((?:{_RUN_LINE})+)\]\n"
)
# Schema 1 as its writer (tomli_w) laid it out: samples one per line, no runs.
_ENTRY_V1 = re.compile(
    rf"\n\[hardware\.({_K})\.({_K})\]\n"
    rf'unit = "kWh/1000 inferences"\n'
    rf"kwh_per_1000 = {_F}\n"
    rf"samples = \[\n((?:    {_F},\n)+)\]\n"
    rf"meter = ({_S1})\n"
    rf"estimated = (true|false)\n"
    rf"inferences = ({_I})\n"
    rf"(?:tokens = ({_I})\n)?"
    rf"pytest_energy_version = ({_S})\n"
)
_RUN_RE = re.compile(
    rf"    \{{ kwh_per_1000 = ({_F}), windows = ({_W}), spread_pct = ({_F}), "
    rf'date = "({_DATE})" \}},\n'
)
_RUN_DATE = re.compile(r'date = "([0-9-]*)"')
_HEAD_RE = re.compile(r"(?:#[^\x00-\x08\x0a-\x1f\x7f]*\n)*schema_version = ([12])\n")
_UNESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|(.))")
_SHORT = {'"': '"', "\\": "\\", "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r"}


def _unescape_one(match: re.Match[str]) -> str:
    hexdigits, char = match.groups()
    return _SHORT[char] if hexdigits is None else chr(int(hexdigits, 16))


def _unquote(token: str) -> str:
    if token[0] != '"':
        return token
    body = token[1:-1]
    return _UNESCAPE.sub(_unescape_one, body) if "\\" in body else body


def _date_ok(text: str) -> bool:
    if text == "":
        return True
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) is None:
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _decode(m: re.Match[str]) -> BaselineEntry:
    """The entry of one :data:`_ENTRY` (or :data:`_ENTRY_V1`) match; every value was
    validated by the expression."""
    if m.re is _ENTRY_V1:
        _hw, _nodeid, lines, meter, estimated, inferences, tokens, version = m.groups()
        return BaselineEntry(
            tuple(map(float, lines[4:-2].split(",\n    "))),
            _unquote(meter),
            estimated == "true",
            _unquote(version),
            int(inferences),
            None if tokens is None else int(tokens),
        )
    _hw, _nodeid, samples, meter, estimated, inferences, tokens, version, runs_text = m.groups()
    return BaselineEntry(
        tuple(map(float, samples.split(", "))),
        _unquote(meter),
        estimated == "true",
        _unquote(version),
        int(inferences),
        None if tokens is None else int(tokens),
        tuple(
            RunSummary(float(kwh), int(windows), float(spread), date)
            for kwh, windows, spread, date in _RUN_RE.findall(runs_text)
        ),
    )


class _Tests(Mapping[str, BaselineEntry]):
    """One hardware's entries, read from canonical text and decoded on first access.

    A plain run looks up a few tests in a file of thousands; the text of each entry has
    been fully validated by the time this exists, so decoding later cannot fail.
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, BaselineEntry | re.Match[str]]) -> None:
        self._items = items

    def __getitem__(self, nodeid: str) -> BaselineEntry:
        held = self._items[nodeid]
        if isinstance(held, BaselineEntry):
            return held
        entry = self._items[nodeid] = _decode(held)
        return entry

    def __setitem__(self, nodeid: str, entry: BaselineEntry) -> None:  # for merged() only
        self._items[nodeid] = entry

    def __contains__(self, nodeid: object) -> bool:
        return nodeid in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> _Tests:
        return _Tests(dict(self._items))

    def _decode_all(self) -> dict[str, BaselineEntry]:
        items = self._items
        with _gc_paused():
            for nodeid, held in items.items():
                if not isinstance(held, BaselineEntry):
                    items[nodeid] = _decode(held)
        return items  # type: ignore[return-value]  # every value is decoded now

    def items(self) -> ItemsView[str, BaselineEntry]:
        """All entries, decoded in one pass (faster than one lookup at a time)."""
        return self._decode_all().items()

    def values(self) -> ValuesView[BaselineEntry]:
        return self._decode_all().values()

    def __repr__(self) -> str:
        return f"_Tests({len(self)} entries)"


def _fast_parse(text: str) -> Baseline:
    """Read text in exactly the layout :func:`dumps` writes (or the schema-1 writer wrote),
    or raise :class:`_NotCanonical`.

    The expressions above admit only values the full validation accepts (non-negative
    finite numbers, windows >= 1, a non-empty meter, valid strings, dates that exist).
    Entries are decoded when first looked up.
    """
    head = _HEAD_RE.match(text)
    if head is None:
        raise _NotCanonical
    pos = head.end()
    end = len(text)
    schema_2 = head.group(1) == "2"
    entries: dict[str, _Tests] = {}
    by_token: dict[str, dict[str, BaselineEntry | re.Match[str]]] = {}  # hardware as spelled
    match = (_ENTRY if schema_2 else _ENTRY_V1).match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _NotCanonical
        pos = m.end()
        hw, nodeid = m.group(1, 2)
        items = by_token.get(hw)
        if items is None:
            key = _unquote(hw)
            if key not in entries:
                entries[key] = _Tests({})
            items = by_token[hw] = entries[key]._items
        nodeid = _unquote(nodeid)
        if nodeid in items:
            raise _NotCanonical  # a duplicate table: tomllib names it
        items[nodeid] = m
        if not schema_2:
            continue
        runs = m.group(9)  # only numbers and dates: '-29"' can only end a date
        if ('-29"' in runs or '-30"' in runs or '-31"' in runs) and not all(
            _date_ok(date) for date in _RUN_DATE.findall(runs)
        ):
            raise _NotCanonical
    return Baseline(entries)


# -- reading: any TOML, fully validated ---------------------------------------------------------


def _runs(raw: object, bad: validate.Bad) -> tuple[RunSummary, ...]:
    if not isinstance(raw, list) or not raw:
        raise bad(
            "needs a non-empty runs array (one table per recorded run: kwh_per_1000, windows, "
            "spread_pct, date)"
        )
    runs = []
    for index, run in enumerate(raw):
        label = f"runs[{index}]"

        def bad_run(what: str, label: str = label) -> Exception:
            return bad(f"has {label} that {what}")

        if not isinstance(run, dict):
            raise bad_run("is not a table")
        unknown = sorted(set(run) - set(_RUN_KEYS))
        if unknown:
            raise bad_run(f"has unknown key(s) {', '.join(unknown)}")
        missing = [key for key in _RUN_KEYS if key not in run]
        if missing:
            raise bad_run(f"lacks {', '.join(missing)}")
        numbers = {}
        for key in ("kwh_per_1000", "spread_pct"):
            number = validate.energy(run[key])
            if number is None:
                value = run[key]
                shown = "a number too large for a float" if isinstance(value, int) else repr(value)
                raise bad_run(f"has {key} = {shown}; expected a finite number >= 0")
            numbers[key] = number
        windows = run["windows"]
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise bad_run(f"has windows = {windows!r}; expected a whole number >= 1")
        date = run["date"]
        if isinstance(date, datetime.date) and not isinstance(date, datetime.datetime):
            date = date.isoformat()
        if not isinstance(date, str) or not _date_ok(date):
            raise bad_run(
                f'has date = {date!r}; expected a "YYYY-MM-DD" string (UTC) or "" (unknown)'
            )
        runs.append(RunSummary(numbers["kwh_per_1000"], windows, numbers["spread_pct"], date))
    return tuple(runs)


def _entry(path: Path, hardware: str, nodeid: str, raw: object, version: int) -> BaselineEntry:
    where = f"entry [hardware.{_quote(hardware)}.{_quote(nodeid)}]"

    def bad(what: str) -> BaselineError:
        return _problem(path, f"{where} {what}", _RESTORE)

    if not isinstance(raw, dict):
        raise bad("is not a table")
    unknown = sorted(set(raw) - (_ENTRY_KEYS if version == 1 else _ENTRY_KEYS_V2))
    if unknown:
        raise bad(f"has unknown key(s) {', '.join(unknown)}")
    if raw.get("unit", UNIT) != UNIT:
        raise bad(f"has unit {raw.get('unit')!r}; only {UNIT!r} is supported")
    numbers = validate.samples(raw.get("samples"), bad)
    # kwh_per_1000 is written for reviewers and recomputed from the samples on load; it
    # must still be a plausible number, so that a broken hand edit is not silently accepted.
    stated = raw.get("kwh_per_1000")
    if stated is not None and validate.energy(stated) is None:
        shown = "a number too large for a float" if isinstance(stated, int) else repr(stated)
        raise bad(
            f"has kwh_per_1000 = {shown}; it must be a non-negative number (it is the median "
            "of the samples, recomputed on load: edit the samples to change it)"
        )
    meter = raw.get("meter")
    if not isinstance(meter, str) or not meter:
        raise bad("needs a meter name (a string)")
    estimated = raw.get("estimated")
    if not isinstance(estimated, bool):
        raise bad("needs estimated = true or false")
    pe_version = raw.get("pytest_energy_version", "")
    if not isinstance(pe_version, str):
        raise bad("has a pytest_energy_version that is not a string")
    inferences = validate.count("inferences", raw.get("inferences", 0), bad) or 0
    tokens = validate.count("tokens", raw.get("tokens"), bad, optional=True)
    runs = _runs(raw.get("runs"), bad) if version >= 2 else ()
    return BaselineEntry(
        samples=numbers,
        meter=meter,
        estimated=estimated,
        pytest_energy_version=pe_version,
        inferences=inferences,
        tokens=tokens,
        runs=runs,
    )


def _toml_error(path: Path, text: str, exc: Exception) -> BaselineError:
    marker = _CONFLICT_MARKER.search(text)
    if marker is not None:
        line = text.count("\n", 0, marker.start()) + 1
        return _problem(
            path,
            "has unresolved git merge conflict markers (<<<<<<<, =======, >>>>>>>; the first "
            f"at line {line}): two branches changed the same entries",
            _CONFLICT_FIX,
        )
    if isinstance(exc, tomllib.TOMLDecodeError):
        return _problem(path, f"is not valid TOML ({exc})", _RESTORE)
    return _problem(path, f"is not valid TOML that pytest-energy can read ({exc})", _RESTORE)


def _slow_parse(text: str, path: Path) -> Baseline:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        # ValueError: the integer digit limit; RecursionError: absurd nesting
        raise _toml_error(path, text, exc) from None
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _problem(path, "has no integer schema_version", _RESTORE)
    if version > SCHEMA_VERSION:
        raise _problem(
            path,
            f"has schema_version {version}, newer than this pytest-energy understands "
            f"({SCHEMA_VERSION})",
            "Upgrade pytest-energy (pip install -U pytest-energy) to read it.",
        )
    if version < 1:
        raise _problem(path, f"has an unknown schema_version {version}", _RESTORE)
    unknown = sorted(set(data) - {"schema_version", "hardware"})
    if unknown:
        raise _problem(path, f"has unknown top-level key(s) {', '.join(unknown)}", _RESTORE)
    hardware = data.get("hardware", {})
    if not isinstance(hardware, dict):
        raise _problem(path, "has a 'hardware' key that is not a table", _RESTORE)
    entries: dict[str, dict[str, BaselineEntry]] = {}
    for hw, tests in hardware.items():
        if not isinstance(tests, dict):
            raise _problem(path, f"hardware {hw!r} is not a table of tests", _RESTORE)
        entries[hw] = {
            nodeid: _entry(path, hw, nodeid, raw, version) for nodeid, raw in tests.items()
        }
    return Baseline(entries)


def parse(text: str, path: Path = Path("energy-baseline.toml")) -> Baseline:
    """Parse and validate baseline ``text``; ``path`` is only used in messages.

    A leading UTF-8 byte order mark (PowerShell writes one) is ignored.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        with _gc_paused():
            return _fast_parse(text)
    except (_NotCanonical, ValueError, OverflowError):
        return _slow_parse(text, path)


def _not_regular(path: Path, mode: int) -> BaselineError:
    if stat.S_ISDIR(mode):
        return _problem(
            path,
            "is a directory",
            "Point --energy-baseline (or energy_baseline in the ini file) at a .toml file.",
        )
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return _problem(
        path,
        f"is {kind}, not a regular file; pytest-energy neither reads nor replaces it",
        "Point --energy-baseline (or energy_baseline in the ini file) at a regular .toml file.",
    )


def load(path: Path) -> Baseline:
    """Read the baseline at ``path``; a missing file is an empty baseline.

    A symbolic link is followed. Anything that is not a regular file (a directory, FIFO,
    device or socket) is refused without being read, so a FIFO cannot hang the run.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(path, before.st_mode)
        fd = os.open(path, flags)
    except FileNotFoundError:
        return Baseline()
    except OSError as exc:
        raise _problem(
            path, f"cannot be read ({exc.strerror or exc})", "Check the file's permissions."
        ) from None
    try:
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):  # swapped between the stat and the open
                raise _not_regular(path, mode)
            raw = handle.read()
    except OSError as exc:
        raise _problem(
            path, f"cannot be read ({exc.strerror or exc})", "Check the file's permissions."
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(path, "is not UTF-8 text", _RESTORE) from None
    return parse(text, path)


# -- writing ------------------------------------------------------------------------------------


def _resolved(path: Path) -> Path:
    """Where ``path`` really is: a symbolic link is written through to its target."""
    return Path(os.path.realpath(path))


def _unencodable(baseline: Baseline) -> str:
    for hw, tests in baseline.entries.items():
        for nodeid, entry in tests.items():
            for name, text in (
                ("hardware name", hw),
                ("test id", nodeid),
                ("meter name", entry.meter),
                ("pytest_energy_version", entry.pytest_energy_version),
            ):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return f"{name} {text!r}"
    return "a name"  # pragma: no cover - dumps only writes the strings above


def _checked_text(path: Path, baseline: Baseline) -> str:
    """The text to write for ``baseline``, after checking that the reader accepts it."""
    refused = "The old file is left unchanged."
    text = dumps(baseline)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _problem(
            path,
            f"was not written: the {_unencodable(baseline)} is not valid Unicode (it holds a "
            "lone surrogate) and cannot be stored as UTF-8",
            f"Rename the test or hardware so that it is valid text. {refused}",
        ) from None
    prefix = f"energy baseline {path}: "
    try:
        parse(text, path)
    except BaselineError as exc:
        cause = str(exc).removeprefix(prefix).split(". Fix the file by hand")[0]
        raise _problem(
            path,
            f"was not written: the new content would not read back ({cause})",
            "A meter or the calling code produced a value the baseline cannot hold (for "
            f"example an infinite window or an empty meter name). {refused}",
        ) from None
    return text


def save(path: Path, baseline: Baseline) -> None:
    """Write ``baseline`` to ``path`` atomically (temporary file, fsync, rename).

    A symbolic link is written through to its target. The text is parsed back before it
    replaces the old file; if it would not read back, nothing is written.
    """
    text = _checked_text(path, baseline)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        if not _resolved(path).parent.is_dir():
            raise _problem(
                path,
                "cannot be written: its directory does not exist",
                "Create the directory or choose another --energy-baseline path.",
            ) from None
        raise _problem(
            path,
            f"cannot be written ({exc.strerror or exc})",
            "Check the permissions of the file and its directory.",
        ) from None


def _lock_file(path: Path) -> Path:
    target = _resolved(path)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` so concurrent updates do not lose entries.

    The lock sits beside the resolved file, so every path that leads to the same baseline
    (a symbolic link, a relative path) takes the same lock.
    """
    from filelock import FileLock

    lock_path = _lock_file(path)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire()
    except PermissionError as exc:
        if lock_path.exists():
            raise _problem(
                path,
                f"cannot take its lock: the lock file {lock_path} is read-only "
                f"({exc.strerror or exc})",
                "Remove the lock file (no pytest-energy run may be updating the baseline "
                "then) or make it writable (chmod u+w).",
            ) from None
        raise _problem(
            path,
            f"cannot create its lock file {lock_path} ({exc.strerror or exc})",
            "Make the baseline's directory writable.",
        ) from None
    except OSError as exc:
        raise _problem(
            path,
            f"cannot take its lock file {lock_path} ({exc.strerror or exc})",
            "Check that the baseline's directory is writable and on a local file system.",
        ) from None
    try:
        yield
    finally:
        lock.release()


def update(path: Path, updates: Mapping[str, Mapping[str, Update]], *, history: int) -> Baseline:
    """Merge ``updates`` into the file at ``path`` under its lock and save it atomically.

    The file is re-read under the lock, so entries written meanwhile by another run are kept.
    See :meth:`Baseline.merged` for how runs are appended or replaced. Returns what was
    written.
    """
    target = _resolved(path)
    if not target.parent.is_dir():
        raise _problem(
            path,
            f"cannot be written: its directory {target.parent} does not exist",
            "Create the directory or choose another --energy-baseline path.",
        )
    try:
        mode = os.stat(target).st_mode
    except OSError:
        mode = None
    if mode is not None:
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        if not os.access(target, os.W_OK):
            raise _problem(
                path,
                "is read-only",
                "Make it writable (chmod u+w) before --energy-update-baseline.",
            )
    with locked(path):
        _remove_stale_temporaries(target)
        merged = load(path).merged(updates, history=history)
        save(path, merged)
    return merged


_TEMP_SUFFIX = re.compile(r"[A-Za-z0-9_]{8}\.tmp")


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporary files left by writers of ``target`` that were killed mid-save.

    Called with the lock held: every writer of the file through :func:`update` holds it
    while its temporary file exists, so any such file found now belongs to a dead process.
    Names are matched exactly (``.<name>.<8 characters>.tmp``, as ``mkstemp`` makes them),
    never as a pattern: a baseline called ``energy-*.toml`` leaves other files alone.
    """
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and _TEMP_SUFFIX.fullmatch(name, len(prefix)):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)
