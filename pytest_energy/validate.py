"""Checks shared by the readers of stored records (the TOML baseline and the JSON report).

Each takes ``bad``, which turns a description of the problem into the reader's own error
type with the file and the fix, and raises what it returns.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import RunSummary

Bad = Callable[[str], Exception]

#: The fields of one recorded run, in the order of the baseline's compact form.
RUN_FIELDS = ("date", "kwh_per_1000", "windows", "spread_pct")


#: The fix for a file newer than this release.
UPGRADE = "Upgrade pytest-energy (pip install -U pytest-energy) to read it."


def schema_version(
    data: dict[str, object], newest: int, problem: Callable[[str, str | None], Exception]
) -> int:
    """The file's ``schema_version``, a whole number from 1 to ``newest``.
    ``problem(cause, fix)`` makes the reader's error; ``fix`` is None for the reader's own
    fix (restore or rewrite the file), or :data:`UPGRADE` for a newer file."""
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        got = "none" if version is None else repr(version)
        raise problem(f"has no valid schema_version (a whole number from 1; got {got})", None)
    if version > newest:
        raise problem(
            f"has schema_version {version}, newer than this pytest-energy understands ({newest})",
            UPGRADE,
        )
    return version


def raise_value_error(what: str) -> Exception:
    """The default ``bad``: a plain ValueError (for data this package wrote itself)."""
    return ValueError(f"record {what}")


def energy(value: object) -> float | None:
    """``value`` as a float when it is a finite, non-negative number, else ``None``.

    Integers too large for a float (TOML and JSON allow them) count as not finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def shown(value: object) -> str:
    """``value`` for a message: its repr, or what it is when that would be 400 digits."""
    if isinstance(value, int) and not isinstance(value, bool) and energy(abs(value)) is None:
        return "a number too large for a float"
    return repr(value)


def samples(value: object, bad: Bad) -> tuple[float, ...]:
    """A non-empty list of finite, non-negative numbers (kWh per 1,000 inferences)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise bad("needs a non-empty list of samples")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise bad(f"has a sample that is not a number: {item!r}")
        number = energy(item)
        if number is None:
            raise bad(f"has a sample that is negative, NaN or infinite: {shown(item)}")
        numbers.append(number)
    return tuple(numbers)


def count(
    name: str, value: object, bad: Bad, *, optional: bool = False, minimum: int = 0
) -> int | None:
    """A whole number >= ``minimum``; ``None`` is accepted when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"a whole number >= {minimum}" + (" or nothing" if optional else "")
        raise bad(f"has {name} = {value!r}; expected {expected}")
    return value


def optional_text(name: str, value: object, bad: Bad) -> str | None:
    """:func:`text`, or ``None`` for ``None`` or ""."""
    return None if value is None or value == "" else text(name, value, bad)


def text(name: str, value: object, bad: Bad) -> str:
    """A non-empty string. (A lone surrogate, from a file name that is not UTF-8, may pass:
    the writers escape it or refuse it with their own message.)"""
    if not isinstance(value, str) or not value:
        raise bad(f"needs a {name} (a non-empty string), not {value!r:.60}")
    return value


def flag(name: str, value: object, bad: Bad) -> bool:
    if not isinstance(value, bool):
        raise bad(f"needs {name} = true or false, not {value!r:.60}")
    return value


def date(value: object) -> str | None:
    """A ``YYYY-MM-DD`` date string (or a TOML date) as text, "" for unknown; None if bad."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        return None
    if value == "":
        return ""
    if len(value) != 10:
        return None
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return None
    return value


def runs(value: object, bad: Bad) -> tuple[RunSummary, ...]:
    """A non-empty list of recorded runs, each a table with :data:`RUN_FIELDS` or the
    baseline's compact ``[date, kwh_per_1000, windows, spread_pct]``."""
    from .record import RunSummary

    if not isinstance(value, (list, tuple)) or not value:
        raise bad(
            "needs a non-empty runs array (one per recorded run: date, kwh_per_1000, windows, "
            "spread_pct)"
        )
    result = []
    for index, run in enumerate(value):

        def bad_run(what: str, label: str = f"runs[{index}]") -> Exception:
            return bad(f"has {label} that {what}")

        if isinstance(run, (list, tuple)):
            if len(run) != len(RUN_FIELDS):
                raise bad_run(
                    f"has {len(run)} values; expected [{', '.join(RUN_FIELDS)}], e.g. "
                    '["2026-12-01", 0.0123, 10, 1.2]'
                )
            run = dict(zip(RUN_FIELDS, run, strict=True))
        elif not isinstance(run, dict):
            raise bad_run("is neither a table nor a [date, kwh_per_1000, windows, spread_pct] list")
        unknown = sorted(set(run) - set(RUN_FIELDS))
        if unknown:
            raise bad_run(f"has unknown key(s) {', '.join(unknown)}")
        missing = [key for key in RUN_FIELDS if key not in run]
        if missing:
            raise bad_run(f"lacks {', '.join(missing)}")
        numbers = {}
        for key in ("kwh_per_1000", "spread_pct"):
            number = energy(run[key])
            if number is None:
                raise bad_run(f"has {key} = {shown(run[key])}; expected a finite number >= 0")
            numbers[key] = number
        windows = run["windows"]
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise bad_run(f"has windows = {windows!r}; expected a whole number >= 1")
        day = date(run["date"])
        if day is None:
            raise bad_run(
                f'has date = {run["date"]!r}; expected a "YYYY-MM-DD" string (UTC, year 0001 '
                'or later) or "" (unknown)'
            )
        result.append(RunSummary(numbers["kwh_per_1000"], windows, numbers["spread_pct"], day))
    return tuple(result)
