"""GPU profiles for the roofline model: the shipped ``profiles.toml`` and user profile files.

A profile is what the model needs to know about one target GPU: dense peak throughput per
dtype, memory bandwidth, board power limit, idle power and a per-kernel launch cost, each
with the source it comes from. The shipped profiles live in ``profiles.toml`` next to this
module; a user profile is a TOML file with the same keys as one shipped table, at top level.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_TARGET = "H100-SXM"

#: dtype keys a profile may give a peak for, widest first.
DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "int8", "fp8")
#: Where a chip without a dtype runs it instead (a T4 has no bf16, an A100 no fp8).
FALLBACK: dict[str, str] = {
    "fp64": "fp32",
    "tf32": "fp32",
    "bf16": "fp16",
    "fp16": "fp32",
    "fp8": "fp16",
    "int8": "fp16",
}
_REQUIRED = ("hardware", "board_power_w", "idle_power_w", "memory_bandwidth_gb_s", "peak_tflops")
_OPTIONAL = ("launch_s", "sources", "name")
_SOURCE_KEYS = ("peak", "memory_bandwidth", "board_power", "idle_power", "launch")
DEFAULT_LAUNCH_S = 4e-6


@dataclass(frozen=True)
class Profile:
    """One target GPU, in SI units."""

    name: str
    hardware: str
    """Marketing name, e.g. ``"NVIDIA H100 SXM"``; the meter adds ``" (roofline model)"``."""
    peak_ops_s: Mapping[str, float]
    """Dense peak operations per second by dtype key (``"fp32"``, ``"bf16"`` ...)."""
    memory_bandwidth_b_s: float
    board_power_w: float
    idle_power_w: float
    launch_s: float
    sources: Mapping[str, str]
    origin: str
    """``"built-in"`` or the path of the user's file."""

    def peak(self, dtype_key: str) -> float:
        """Peak ops/s for ``dtype_key``, following :data:`FALLBACK` when the chip lacks it."""
        key = dtype_key
        while key not in self.peak_ops_s:
            key = FALLBACK.get(key, "fp32")
        return self.peak_ops_s[key]


def _data_text() -> str:
    return resources.files(__package__).joinpath("profiles.toml").read_text(encoding="utf-8")


def _builtin_tables() -> dict[str, Any]:
    tables: dict[str, Any] = tomllib.loads(_data_text())
    return tables


def profile_names() -> list[str]:
    """The names of the shipped profiles, in file order."""
    return list(_builtin_tables())


def _number(where: str, key: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ConfigError(f"{where}: {key} must be a finite number {bound}, got {value!r}")
    return number


def parse_profile(name: str, table: Mapping[str, Any], origin: str) -> Profile:
    """Validate one profile table and convert it to SI units; raises ConfigError."""
    where = f"roofline profile {name!r} ({origin})"
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a profile has "
            f"{', '.join(_REQUIRED + _OPTIONAL)}"
        )
    missing = [key for key in _REQUIRED if key not in table]
    if missing:
        raise ConfigError(
            f'{where}: missing key(s) {", ".join(missing)}. Example: hardware = "My GPU", '
            "board_power_w = 300, idle_power_w = 40, memory_bandwidth_gb_s = 1000, "
            "peak_tflops = { fp32 = 20, fp16 = 150 }"
        )
    hardware = table["hardware"]
    if not isinstance(hardware, str) or not hardware.strip():
        raise ConfigError(f"{where}: hardware must be a non-empty string, got {hardware!r}")
    peaks = table["peak_tflops"]
    if not isinstance(peaks, Mapping) or not peaks:
        raise ConfigError(f"{where}: peak_tflops must be a table of dtype = TFLOPS")
    bad = sorted(set(peaks) - set(DTYPES))
    if bad:
        raise ConfigError(
            f"{where}: peak_tflops has unknown dtype(s) {', '.join(bad)}; use {', '.join(DTYPES)}"
        )
    if "fp32" not in peaks:
        raise ConfigError(f"{where}: peak_tflops needs at least fp32 (the fallback of every dtype)")
    peak_ops_s = {
        key: _number(where, f"peak_tflops.{key}", peaks[key]) * 1e12
        for key in DTYPES
        if key in peaks
    }
    board = _number(where, "board_power_w", table["board_power_w"])
    idle = _number(where, "idle_power_w", table["idle_power_w"], positive=False)
    if idle >= board:
        raise ConfigError(
            f"{where}: idle_power_w ({idle:g}) must be below board_power_w ({board:g})"
        )
    launch = _number(where, "launch_s", table.get("launch_s", DEFAULT_LAUNCH_S), positive=False)
    sources = table.get("sources", {})
    if not isinstance(sources, Mapping) or not all(isinstance(v, str) for v in sources.values()):
        raise ConfigError(f"{where}: sources must be a table of strings")
    unknown_sources = sorted(set(sources) - set(_SOURCE_KEYS))
    if unknown_sources:
        raise ConfigError(
            f"{where}: sources has unknown key(s) {', '.join(unknown_sources)}; "
            f"use {', '.join(_SOURCE_KEYS)}"
        )
    return Profile(
        name=str(table.get("name", name)),
        hardware=hardware.strip(),
        peak_ops_s=peak_ops_s,
        memory_bandwidth_b_s=_number(where, "memory_bandwidth_gb_s", table["memory_bandwidth_gb_s"])
        * 1e9,
        board_power_w=board,
        idle_power_w=idle,
        launch_s=launch,
        sources=dict(sources),
        origin=origin,
    )


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".toml") or "/" in text or "\\" in text


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (case-insensitive), or a user's profile from a ``.toml`` file.

    Raises ConfigError for an unknown name (listing the valid ones) and for a file that is
    missing, not TOML, or not a valid profile.
    """
    text = name_or_path.strip()
    if _looks_like_path(text):
        path = Path(text)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"roofline profile file {path} does not exist; give a shipped target "
                f"({', '.join(profile_names())}) or the path of a .toml profile"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"roofline profile file {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"roofline profile file {path} is not valid TOML: {exc}") from None
        return parse_profile(path.stem, data, str(path))
    tables = _builtin_tables()
    by_lower = {key.lower(): key for key in tables}
    key = by_lower.get(text.lower())
    if key is None:
        raise ConfigError(
            f"unknown energy target {name_or_path!r}; choose one of {', '.join(tables)}, "
            "or give the path of a .toml profile (see `pytest-energy targets`)"
        )
    return parse_profile(key, tables[key], "built-in")


def targets_table() -> list[str]:
    """Lines of a table of the shipped profiles, for ``pytest-energy targets``."""
    header = [
        "target",
        "hardware",
        "fp32",
        "tf32",
        "bf16",
        "fp16",
        "fp8",
        "int8",
        "GB/s",
        "W",
        "idle W",
    ]
    rows: list[list[str]] = []
    for name in profile_names():
        p = load_profile(name)

        def peak(key: str, p: Profile = p) -> str:
            value = p.peak_ops_s.get(key)
            return "-" if value is None else f"{value / 1e12:g}"

        rows.append(
            [
                name,
                p.hardware,
                *(peak(k) for k in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")),
                f"{p.memory_bandwidth_b_s / 1e9:g}",
                f"{p.board_power_w:g}",
                f"{p.idle_power_w:g}",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    lines = [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in rows]
    lines.append("")
    lines.append(
        "Dense peak TFLOPS (TOPS for int8) from each vendor datasheet; '-' runs at a fallback "
        "dtype. Idle power is an estimate."
    )
    lines.append(
        "Use: pytest --energy-meter=roofline --energy-target=NAME, or "
        "--energy-target=path/to/profile.toml"
    )
    return lines
