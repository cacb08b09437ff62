"""The committed TOML baseline: load, validate, merge, and save atomically under a lock.

Layout (schema version 1)::

    schema_version = 1

    [hardware."NVIDIA H100 80GB HBM3 x1"."tests/test_llm.py::test_generate[bs=8]"]
    unit = "kWh/1000 inferences"
    kwh_per_1000 = 0.0123          # median of samples, for reviewers; recomputed on load
    samples = [0.0121, 0.0123, ...]
    meter = "nvml"
    estimated = false
    inferences = 64
    pytest_energy_version = "0.1.0"

Entries are keyed by hardware, then by test node id, and written in sorted order so that
diffs in pull requests stay small. Every problem raises :class:`BaselineError` with a
message that names the file, the cause and the fix; a load never modifies the file, and a
save either leaves the old file or puts the whole new file in place.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from . import validate
from .errors import BaselineError
from .fileio import atomic_write_text
from .stats import median

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION = 1
UNIT = "kWh/1000 inferences"
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


@dataclass(frozen=True)
class BaselineEntry:
    """One test's stored windows on one hardware."""

    samples: tuple[float, ...]
    meter: str
    estimated: bool
    pytest_energy_version: str
    inferences: int = 0
    tokens: int | None = None

    @property
    def kwh_per_1000(self) -> float:
        return median(self.samples)

    def to_toml(self) -> dict[str, Any]:
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
        return table


@dataclass(frozen=True)
class Baseline:
    """All entries of a baseline file: ``entries[hardware][nodeid]``."""

    entries: Mapping[str, Mapping[str, BaselineEntry]] = field(default_factory=dict)

    def get(self, hardware: str, nodeid: str) -> BaselineEntry | None:
        return self.entries.get(hardware, {}).get(nodeid)

    def hardware_for(self, nodeid: str) -> list[str]:
        """Hardware keys that have an entry for ``nodeid``."""
        return sorted(hw for hw, tests in self.entries.items() if nodeid in tests)

    def merged(self, updates: Mapping[str, Mapping[str, BaselineEntry]]) -> Baseline:
        """A new baseline with ``updates`` replacing or adding entries; others are kept."""
        combined: dict[str, dict[str, BaselineEntry]] = {
            hw: dict(tests) for hw, tests in self.entries.items()
        }
        for hw, tests in updates.items():
            combined.setdefault(hw, {}).update(tests)
        return Baseline(combined)

    def __len__(self) -> int:
        return sum(len(tests) for tests in self.entries.values())


def _problem(path: Path, cause: str, fix: str) -> BaselineError:
    return BaselineError(f"energy baseline {path}: {cause}. {fix}")


_RESTORE = (
    "Fix the file by hand, restore it from version control (git checkout -- <file>), or "
    "delete it and record a new one with --energy-update-baseline."
)


def _entry(path: Path, hardware: str, nodeid: str, raw: object) -> BaselineEntry:
    where = f"entry [hardware.{_quote(hardware)}.{_quote(nodeid)}]"

    def bad(what: str) -> BaselineError:
        return _problem(path, f"{where} {what}", _RESTORE)

    if not isinstance(raw, dict):
        raise bad("is not a table")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
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
    version = raw.get("pytest_energy_version", "")
    if not isinstance(version, str):
        raise bad("has a pytest_energy_version that is not a string")
    return BaselineEntry(
        samples=numbers,
        meter=meter,
        estimated=estimated,
        pytest_energy_version=version,
        inferences=validate.count("inferences", raw.get("inferences", 0), bad) or 0,
        tokens=validate.count("tokens", raw.get("tokens"), bad, optional=True),
    )


def _quote(key: str) -> str:
    return tomli_w.dumps({key: 0}).split(" = ")[0]


def parse(text: str, path: Path) -> Baseline:
    """Parse and validate baseline ``text``; ``path`` is only used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _problem(path, f"is not valid TOML ({exc})", _RESTORE) from None
    except (ValueError, RecursionError) as exc:  # integer digit limit, absurd nesting
        raise _problem(
            path, f"is not valid TOML that pytest-energy can read ({exc})", _RESTORE
        ) from None
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
        entries[hw] = {nodeid: _entry(path, hw, nodeid, raw) for nodeid, raw in tests.items()}
    return Baseline(entries)


def load(path: Path) -> Baseline:
    """Read the baseline at ``path``; a missing file is an empty baseline."""
    if path.is_dir():
        raise _problem(
            path,
            "is a directory",
            "Point --energy-baseline (or energy_baseline in the ini file) at a .toml file.",
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Baseline()
    except OSError as exc:
        raise _problem(
            path, f"cannot be read ({exc.strerror})", "Check the file's permissions."
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(path, "is not UTF-8 text", _RESTORE) from None
    return parse(text, path)


def dumps(baseline: Baseline) -> str:
    """Serialize in a stable, sorted order."""
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    hardware = {
        hw: {nodeid: tests[nodeid].to_toml() for nodeid in sorted(tests)}
        for hw, tests in sorted(baseline.entries.items())
        if tests
    }
    if hardware:
        document["hardware"] = hardware
    header = (
        "# pytest-energy baseline: kWh per 1,000 inferences, one sample per window.\n"
        "# Written by `pytest --energy-update-baseline`; review changes like code.\n"
    )
    return header + tomli_w.dumps(document)


def save(path: Path, baseline: Baseline) -> None:
    """Write ``baseline`` to ``path`` atomically (temporary file, fsync, rename)."""
    try:
        atomic_write_text(path, dumps(baseline))
    except OSError as exc:
        if not path.parent.is_dir():
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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` so concurrent updates do not lose entries."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise _problem(
            path,
            f"cannot create its lock file {lock_path.name} ({exc.strerror})",
            "Make the baseline's directory writable.",
        ) from None
    try:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def update(path: Path, updates: Mapping[str, Mapping[str, BaselineEntry]]) -> Baseline:
    """Merge ``updates`` into the file at ``path`` under its lock and save it atomically.

    The file is re-read under the lock, so entries written meanwhile by another run are kept.
    Returns what was written.
    """
    if not path.parent.is_dir():
        raise _problem(
            path,
            f"cannot be written: its directory {path.parent} does not exist",
            "Create the directory or choose another --energy-baseline path.",
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise _problem(
            path, "is read-only", "Make it writable (chmod u+w) before --energy-update-baseline."
        )
    with locked(path):
        _remove_stale_temporaries(path)
        merged = load(path).merged(updates)
        save(path, merged)
    return merged


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files left by writers that were killed mid-save.

    Called with the lock held: every writer of ``path`` through :func:`update` holds it while
    its temporary file exists, so any such file found now belongs to a dead process.
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
