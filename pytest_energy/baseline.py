"""The committed TOML baseline: load, validate, merge, and save atomically under a lock.

Layout (schema version 3)::

    # pytest-energy baseline: ...
    # runs: one line per run, oldest first: [date (UTC), median kWh/1000, windows, spread %]
    schema_version = 3
    unit = "kWh/1000 inferences"

    [hardware."NVIDIA H100 80GB HBM3 x1"."tests/test_llm.py::test_generate[bs=8]"]
    kwh_per_1000 = 0.0123          # median of samples, for reviewers; recomputed on load
    samples = [0.0121, 0.0123, 0.0124]
    meter = "nvml"
    estimated = false
    deterministic = false
    inferences = 64
    tokens = 2048
    pytest_energy_version = "0.3.0"
    runs = [
        ["2026-11-30", 0.0125, 10, 1.1],
        ["2026-12-01", 0.0123, 3, 1.2],
    ]

An entry is a :class:`~pytest_energy.record.Record` without its windows
(:data:`~pytest_energy.record.STORED_KEYS`): ``samples`` are the windows of the latest run,
``runs`` the history of recorded runs, so recording a run adds one line and the oldest
run's line drops (at most ``history`` runs are kept). Schema 2 files (``runs`` as inline
tables, a ``unit`` per entry) and schema 1 files (no ``runs``: one run per entry, date
unknown) still load, and are written as schema 3 by the next update.

Entries are keyed by hardware, then by test node id, and written in sorted order so that
diffs in pull requests stay small. The file is parsed with ``tomli`` (the compiled build of
the standard library's ``tomllib``; ``benchmarks/baseline_scale.py`` measures both), and
every value is checked: every problem raises :class:`BaselineError` with a message that
names the file, the cause and the fix. A load never modifies the file, and an update either
leaves the old file or puts the whole new file in place, after checking that the new text
reads back.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli

from . import validate
from .errors import BaselineError
from .fileio import atomic_write_text
from .record import STORED_KEYS, Record

SCHEMA_VERSION = 3
UNIT = "kWh/1000 inferences"
#: Runs kept per entry unless the caller says otherwise (``--energy-history``).
DEFAULT_HISTORY = 5
#: How long an update waits for another process's lock before it says so.
LOCK_NOTICE_S = 1.0

#: Keys an entry may have, per schema version.
_ENTRY_KEYS = {
    1: {"unit", "kwh_per_1000", "samples", "meter", "estimated", "inferences", "tokens",
        "pytest_energy_version"},
}  # fmt: skip
_ENTRY_KEYS[2] = _ENTRY_KEYS[1] | {"runs"}
_ENTRY_KEYS[3] = set(STORED_KEYS)


@dataclass(frozen=True)
class Update:
    """What one run asks to store for one test.

    ``record.runs`` holds this run only. With ``replace_history`` (an accepted regression or
    improvement: a new level starts) the stored history is replaced by it; otherwise (``ok``
    or a new test) it is appended to the history.
    """

    record: Record
    replace_history: bool = False
    known_run: bool = False
    """The record may be the one that wrote the stored entry (``pytest-energy merge`` of a
    run's report): when the entry has the same figures and already holds its run, nothing
    changes, rather than the run being appended twice."""


@dataclass(frozen=True)
class Baseline:
    """All entries of a baseline file: ``entries[hardware][nodeid]``."""

    entries: Mapping[str, Mapping[str, Record]] = field(default_factory=dict)

    def get(self, hardware: str, nodeid: str) -> Record | None:
        tests = self.entries.get(hardware)
        return None if tests is None else tests.get(nodeid)

    def hardware_for(self, nodeid: str) -> list[str]:
        """Hardware keys that have an entry for ``nodeid``."""
        return sorted(hw for hw, tests in self.entries.items() if nodeid in tests)

    def __len__(self) -> int:
        return sum(len(tests) for tests in self.entries.values())

    def merged(self, updates: Mapping[tuple[str, str], Update], *, history: int) -> Baseline:
        """A new baseline with ``updates`` (keyed by hardware and node id) applied; entries
        not named in it are kept as they are.

        An appended run joins the stored history (the latest ``history`` runs are kept) and
        the entry's samples and other fields become the new run's. The history is replaced
        instead when ``replace_history`` is set, or when the stored entry was recorded with
        another meter or estimated flag (its runs are not comparable). An update marked
        ``known_run`` whose record is the entry's own (same figures, run already held)
        changes nothing.
        """
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a whole number >= 1, not {history!r}")
        combined = {hw: dict(tests) for hw, tests in self.entries.items()}
        for (hw, nodeid), change in updates.items():
            new = change.record.stored()
            stored = combined.setdefault(hw, {})
            old = stored.get(nodeid)
            if (
                change.known_run
                and old is not None
                and old.same_figures(new)
                and set(new.runs) <= set(old.runs)
            ):
                continue
            if (
                change.replace_history
                or old is None
                or not old.provenance.comparable(new.provenance)
            ):
                runs = new.runs
            else:
                runs = old.runs + new.runs
            stored[nodeid] = replace(new, runs=runs[-history:])
        return Baseline(combined)


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


# -- TOML text: keys and strings as the writer spells them ------------------------------------

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


def _entry_text(hw_key: str, nodeid: str, entry: Record) -> str:
    # repr is the shortest text that reads back to the same float, and valid TOML for
    # finite values; non-finite values are refused by the read-back check.
    p = entry.provenance
    samples = ", ".join(repr(float(x)) for x in entry.samples)
    optional = "".join(
        f"{name} = {text}\n"
        for name, text in (
            ("engine", None if p.engine is None else _string(p.engine)),
            ("target", None if p.target is None else _string(p.target)),
        )
        if text is not None
    )
    counts = "".join(
        f"{name} = {int(value)}\n"
        for name, value in (("tokens", entry.work.tokens), ("images", entry.work.images))
        if value is not None
    )
    runs = "".join(
        f"    [{_string(r.date)}, {float(r.kwh_per_1000)!r}, {int(r.windows)}, "
        f"{float(r.spread_pct)!r}],\n"
        for r in entry.runs
    )
    return (
        f"\n[hardware.{hw_key}.{_key(nodeid)}]\n"
        f"kwh_per_1000 = {float(entry.kwh_per_1000)!r}\n"
        f"samples = [{samples}]\n"
        f"meter = {_string(p.meter)}\n"
        f"estimated = {'true' if p.estimated else 'false'}\n"
        f"deterministic = {'true' if p.deterministic else 'false'}\n"
        f"{optional}"
        f"inferences = {int(entry.work.inferences)}\n"
        f"{counts}"
        f"pytest_energy_version = {_string(entry.version)}\n"
        f"runs = [\n{runs}]\n"
    )


_HEADER = (
    "# pytest-energy baseline: kWh per 1,000 inferences, one sample per window.\n"
    "# Written by `pytest --energy-update-baseline`; review changes like code.\n"
    "# runs: one line per recorded run, oldest first: "
    "[date (UTC), median kWh/1000, windows, spread %]\n"
)


def dumps(baseline: Baseline) -> str:
    """The baseline as TOML text, in a stable, sorted order."""
    out = [_HEADER, f"schema_version = {SCHEMA_VERSION}\n", f'unit = "{UNIT}"\n']
    for hw, tests in sorted(baseline.entries.items()):
        hw_key = _key(hw)
        out.extend(_entry_text(hw_key, nodeid, tests[nodeid]) for nodeid in sorted(tests))
    return "".join(out)


# -- reading ----------------------------------------------------------------------------------


def _entry(path: Path, hardware: str, nodeid: str, raw: object, version: int) -> Record:
    where = f"entry [hardware.{_key(hardware)}.{_key(nodeid)}]"

    def bad(what: str) -> BaselineError:
        return _problem(path, f"{where} {what}", _RESTORE)

    if not isinstance(raw, dict):
        raise bad("is not a table")
    unknown = sorted(set(raw) - _ENTRY_KEYS[version])
    if unknown:
        raise bad(f"has unknown key(s) {', '.join(unknown)}")
    if version < 3 and raw.get("unit", UNIT) != UNIT:
        raise bad(f"has unit {raw.get('unit')!r}; only {UNIT!r} is supported")
    if version >= 2 and "runs" not in raw:
        raise bad("needs a runs array (one line per recorded run)")
    data = {k: v for k, v in raw.items() if k != "unit"}
    return Record.from_plain({**data, "nodeid": nodeid, "hardware": hardware}, bad)


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
    return _problem(path, f"is not valid TOML ({exc})", _RESTORE)


def parse(text: str, path: Path = Path("energy-baseline.toml")) -> Baseline:
    """Parse and validate baseline ``text``; ``path`` is only used in messages.

    A leading UTF-8 byte order mark (PowerShell writes one) is ignored.
    """
    text = text.removeprefix("\ufeff")
    try:
        data = tomli.loads(text)
    except (tomli.TOMLDecodeError, ValueError, RecursionError) as exc:
        # ValueError: the integer digit limit, a date out of range; RecursionError: nesting
        raise _toml_error(path, text, exc) from None
    version = validate.schema_version(
        data, SCHEMA_VERSION, lambda cause, fix: _problem(path, cause, fix or _RESTORE)
    )
    top = {"schema_version", "hardware"} | ({"unit"} if version >= 3 else set())
    unknown = sorted(set(data) - top)
    if unknown:
        raise _problem(path, f"has unknown top-level key(s) {', '.join(unknown)}", _RESTORE)
    if data.get("unit", UNIT) != UNIT:
        raise _problem(path, f"has unit {data['unit']!r}; only {UNIT!r} is supported", _RESTORE)
    hardware = data.get("hardware", {})
    if not isinstance(hardware, dict):
        raise _problem(path, "has a 'hardware' key that is not a table", _RESTORE)
    entries: dict[str, dict[str, Record]] = {}
    for hw, tests in hardware.items():
        if not isinstance(tests, dict):
            raise _problem(path, f"hardware {hw!r} is not a table of tests", _RESTORE)
        entries[hw] = {
            nodeid: _entry(path, hw, nodeid, raw, version) for nodeid, raw in tests.items()
        }
    return Baseline(entries)


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


# -- writing ----------------------------------------------------------------------------------


def _resolved(path: Path) -> Path:
    """Where ``path`` really is: a symbolic link is written through to its target."""
    return Path(os.path.realpath(path))


def checked_text(path: Path, baseline: Baseline) -> str:
    """The text to write for ``baseline``, after checking that the reader accepts it."""
    refused = "The old file is left unchanged."
    text = dumps(baseline)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _problem(
            path,
            "was not written: a test id, hardware or meter name is not valid Unicode (it "
            "holds a lone surrogate) and cannot be stored as UTF-8",
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


def _write(path: Path, text: str) -> None:
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
def locked(
    path: Path,
    *,
    timeout_s: float,
    on_wait: Callable[[str], None] | None = None,
    notice_s: float = LOCK_NOTICE_S,
) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` so concurrent updates do not lose entries.

    The lock sits beside the resolved file, so every path that leads to the same baseline
    (a symbolic link, a relative path) takes the same lock. After ``notice_s`` of waiting,
    ``on_wait`` is told once who holds it; after ``timeout_s`` (``<= 0`` or ``inf``: never)
    the update gives up with a BaselineError saying the baseline was not updated.
    """
    from filelock import FileLock, Timeout

    from .devicelock import describe_holder, write_holder

    lock_path = _lock_file(path)
    lock = FileLock(str(lock_path), on_acquired=write_holder)
    started = time.monotonic()
    forever = not 0 < timeout_s < float("inf")
    deadline = float("inf") if forever else started + timeout_s
    told = False
    while True:
        step = deadline if told else min(deadline, started + notice_s)
        try:
            lock.acquire(timeout=max(0.0, step - time.monotonic()), poll_interval=0.05)
            break
        except Timeout:
            pass
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
        holder = describe_holder(lock_path, time.time())
        if time.monotonic() >= deadline:
            raise _problem(
                path,
                f"was not updated: gave up after {time.monotonic() - started:.1f} s waiting "
                f"for its lock {lock_path}, {holder}",
                "Another pytest-energy run or merge is updating this baseline: let it finish, "
                "stop it if it is stuck (then delete the lock file), or raise "
                "--energy-lock-timeout (ini energy_lock_timeout); run the update again after",
            )
        if not told:
            told = True
            if on_wait is not None:
                limit = "ever" if forever else f"{timeout_s:.3g} s"
                on_wait(
                    f"waiting for the baseline lock {lock_path} {holder}; waiting up to "
                    f"{limit} (--energy-lock-timeout)"
                )
    try:
        yield
    finally:
        lock.release()


def update(
    path: Path,
    updates: Mapping[tuple[str, str], Update],
    *,
    history: int,
    lock_timeout_s: float,
    on_wait: Callable[[str], None] | None = None,
) -> Baseline:
    """Merge ``updates`` into the file at ``path`` under its lock and replace it atomically.

    The file is re-read under the lock, so entries written meanwhile by another run are kept.
    See :meth:`Baseline.merged` for how runs are appended or replaced. Returns what was
    written. Both the plugin's --energy-update-baseline and ``pytest-energy merge`` write
    through here.
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
    with locked(path, timeout_s=lock_timeout_s, on_wait=on_wait):
        _remove_stale_temporaries(target)
        merged = load(path).merged(updates, history=history)
        _write(path, checked_text(path, merged))
    return merged


def replace_all(path: Path, baseline: Baseline, *, lock_timeout_s: float) -> None:
    """Replace the file at ``path`` with exactly ``baseline`` (``merge --replace``), under
    the same lock and checks as :func:`update`."""
    with locked(path, timeout_s=lock_timeout_s):
        _remove_stale_temporaries(_resolved(path))
        _write(path, checked_text(path, baseline))


_TEMP_SUFFIX = re.compile(r"[A-Za-z0-9_]{8}\.tmp")


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporary files left by writers of ``target`` that were killed mid-save.

    Called with the lock held: every writer of the file holds it while its temporary file
    exists, so any such file found now belongs to a dead process. Names are matched exactly
    (``.<name>.<8 characters>.tmp``, as ``fileio.temporary_name`` makes them), never as a
    pattern: a baseline called ``energy-*.toml`` leaves other files alone.
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
