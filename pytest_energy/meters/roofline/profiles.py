"""GPU profiles for the roofline model: the shipped ``profiles.toml`` and user profile files.

A profile is what the model needs to know about one target GPU: dense peak throughput per
dtype, memory bandwidth, board power limit and interconnect, each with the source it comes
from, plus the model's :class:`~.model.Coefficients`. The shipped file holds one table per
GPU, a shared ``[coefficients]`` table (a GPU's table may override single coefficients in
its own ``coefficients`` sub-table) and a ``[validation]`` table with the band the fitted
model reaches on published measurements. A user profile is a TOML file with the keys of one
GPU table at top level; its coefficients default to the shipped ones.

Every number is range-checked against physical bounds; out of range is a ConfigError that
names the field and the bound.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from . import model

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
#: Top-level tables of profiles.toml that are not GPUs.
RESERVED_TABLES = ("coefficients", "validation")
_REQUIRED = ("hardware", "board_power_w", "memory_bandwidth_gb_s", "peak_tflops")
_OPTIONAL = ("name", "interconnect", "interconnect_gb_s", "coefficients", "sources")
_SOURCE_KEYS = ("peak", "memory_bandwidth", "board_power", "interconnect")
#: Keys of 0.2 profiles, with what replaced them.
_RETIRED = {
    "idle_power_w": "static power is now coefficients.static_power_frac x board_power_w",
    "launch_s": "per-op costs are now coefficients.host_s (eager), graph_gap_s (compiled) "
    "and kernel_min_s",
}
#: (lowest, highest) physical bounds of the datasheet figures, in the file's units.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "board_power_w": (1.0, 10_000.0, "1 W to 10 kW"),
    "memory_bandwidth_gb_s": (1.0, 100_000.0, "1 GB/s to 100 TB/s"),
    "interconnect_gb_s": (1.0, 100_000.0, "1 GB/s to 100 TB/s"),
    "peak_tflops": (0.1, 100_000.0, "0.1 to 100,000 TFLOPS"),
}
_VALIDATION_KEYS = ("rows", "median_error_pct", "within_2x_pct", "source")


@dataclass(frozen=True)
class Validation:
    """The band the fitted model reaches on held-out published measurements."""

    rows: int
    median_error_pct: float
    within_2x_pct: float
    source: str

    def sentence(self) -> str:
        return (
            f"validated against {self.rows} published measurements: median error "
            f"{self.median_error_pct:g}%, {self.within_2x_pct:g}% within 2x ({self.source})"
        )


@dataclass(frozen=True)
class Profile:
    """One target GPU, in SI units."""

    name: str
    hardware: str
    """Marketing name, e.g. ``"NVIDIA H100 SXM"``."""
    peak_ops_s: Mapping[str, float]
    """Dense peak operations per second by dtype key (``"fp32"``, ``"bf16"`` ...)."""
    memory_bandwidth_b_s: float
    board_power_w: float
    interconnect: str | None
    """The GPU-to-GPU link, e.g. ``"NVLink 4"``; None when the profile gives none."""
    interconnect_b_s: float | None
    """Its bandwidth per direction per GPU, in bytes/s."""
    coefficients: model.Coefficients
    sources: Mapping[str, str]
    coefficient_sources: Mapping[str, str]
    validation: Validation | None
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


@lru_cache(maxsize=1)
def _builtin_tables() -> dict[str, Any]:
    tables: dict[str, Any] = tomllib.loads(_data_text())
    return tables


def profile_names() -> list[str]:
    """The names of the shipped profiles, in file order."""
    return [name for name in _builtin_tables() if name not in RESERVED_TABLES]


def _number(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _bounded(where: str, key: str, value: object, bound_key: str | None = None) -> float:
    number = _number(where, key, value)
    low, high, text = BOUNDS[bound_key or key]
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{where}: {key} must be from {text}, got {value!r}")
    return number


def _strings(where: str, key: str, table: object, allowed: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f"{where}: {key} must be a table of strings")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: {key} has unknown key(s) {', '.join(unknown)}; use {', '.join(allowed)}"
        )
    return dict(table)


def _coefficient_table(
    where: str, table: object, *, complete: bool
) -> tuple[dict[str, float], dict[str, str]]:
    """The values and sources of a ``coefficients`` table, range-checked."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: coefficients must be a table of name = value")
    names = model.COEFFICIENT_NAMES
    unknown = sorted(set(table) - set(names) - {"sources"})
    if unknown:
        raise ConfigError(
            f"{where}: coefficients has unknown key(s) {', '.join(unknown)}; use {', '.join(names)}"
        )
    if complete:
        missing = [name for name in names if name not in table]
        if missing:
            raise ConfigError(f"{where}: coefficients is missing {', '.join(missing)}")
    values: dict[str, float] = {}
    for name in names:
        if name in table:
            value = _number(where, f"coefficients.{name}", table[name])
            problem = model.check_coefficient(name, value)
            if problem:
                raise ConfigError(f"{where}: coefficients.{name} {problem}, got {table[name]!r}")
            values[name] = value
    sources = _strings(where, "coefficients.sources", table.get("sources", {}), names)
    return values, sources


def _validation(where: str, table: object) -> Validation | None:
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: validation must be a table")
    unknown = sorted(set(table) - set(_VALIDATION_KEYS))
    missing = [key for key in _VALIDATION_KEYS if key not in table]
    if unknown or missing:
        raise ConfigError(f"{where}: validation needs exactly {', '.join(_VALIDATION_KEYS)}")
    rows = table["rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 100_000:
        raise ConfigError(f"{where}: validation.rows must be a whole number from 1, got {rows!r}")
    median = _number(where, "validation.median_error_pct", table["median_error_pct"])
    within = _number(where, "validation.within_2x_pct", table["within_2x_pct"])
    if not (math.isfinite(median) and 0 <= median <= 10_000):
        raise ConfigError(f"{where}: validation.median_error_pct must be from 0 to 10,000")
    if not (math.isfinite(within) and 0 <= within <= 100):
        raise ConfigError(f"{where}: validation.within_2x_pct must be from 0 to 100")
    source = table["source"]
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: validation.source must be a non-empty string")
    return Validation(rows, median, within, source.strip())


@lru_cache(maxsize=1)
def shared_coefficients() -> tuple[model.Coefficients, Mapping[str, str], Validation | None]:
    """The shipped ``[coefficients]`` (with their sources) and ``[validation]`` tables."""
    tables = _builtin_tables()
    where = "roofline profiles (built-in)"
    values, sources = _coefficient_table(where, tables.get("coefficients", {}), complete=True)
    return model.coefficients_from(values), sources, _validation(where, tables.get("validation"))


def parse_profile(name: str, table: Mapping[str, Any], origin: str) -> Profile:
    """Validate one profile table and convert it to SI units; raises ConfigError."""
    where = f"roofline profile {name!r} ({origin})"
    retired = [key for key in _RETIRED if key in table]
    if retired:
        raise ConfigError(
            f"{where}: {', '.join(retired)} is no longer a profile key ("
            + "; ".join(_RETIRED[key] for key in retired)
            + "); remove it, and override a coefficient in a [coefficients] table if needed"
        )
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
            "board_power_w = 300, memory_bandwidth_gb_s = 1000, "
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
        key: _bounded(where, f"peak_tflops.{key}", peaks[key], "peak_tflops") * 1e12
        for key in DTYPES
        if key in peaks
    }
    interconnect = table.get("interconnect")
    if interconnect is not None and (not isinstance(interconnect, str) or not interconnect):
        raise ConfigError(f"{where}: interconnect must be a non-empty string")
    link = table.get("interconnect_gb_s")
    link_b_s = None if link is None else _bounded(where, "interconnect_gb_s", link) * 1e9
    shared, shared_sources, validation = shared_coefficients()
    values, sources = _coefficient_table(where, table.get("coefficients", {}), complete=False)
    coefficients = model.coefficients_from({**dataclasses.asdict(shared), **values})
    coefficient_sources = {**shared_sources, **sources}
    for key in set(values) - set(sources):  # an override without a source says so
        coefficient_sources[key] = f"set in {origin}"
    return Profile(
        name=str(table.get("name", name)),
        hardware=hardware.strip(),
        peak_ops_s=peak_ops_s,
        memory_bandwidth_b_s=_bounded(
            where, "memory_bandwidth_gb_s", table["memory_bandwidth_gb_s"]
        )
        * 1e9,
        board_power_w=_bounded(where, "board_power_w", table["board_power_w"]),
        interconnect=interconnect,
        interconnect_b_s=link_b_s,
        coefficients=coefficients,
        sources=_strings(where, "sources", table.get("sources", {}), _SOURCE_KEYS),
        coefficient_sources=coefficient_sources,
        # the band covers the shipped profiles with their fitted overrides (the B200's), not a
        # user's file, whose figures or coefficients the validation rows never saw
        validation=validation if origin == "built-in" else None,
        origin=origin,
    )


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".toml") or "/" in text or "\\" in text


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (case-insensitive), or a user's profile from a ``.toml`` file.

    Raises ConfigError for an unknown name (listing the valid ones) and for a file that is
    missing, not TOML, or not a valid profile. A UTF-8 byte-order mark is accepted.
    """
    text = name_or_path.strip()
    if _looks_like_path(text):
        path = Path(text)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
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
    names = profile_names()
    by_lower = {key.lower(): key for key in names}
    key = by_lower.get(text.lower())
    if key is None:
        raise ConfigError(
            f"unknown energy target {name_or_path!r}; choose one of {', '.join(names)}, "
            "or give the path of a .toml profile (see `pytest-energy targets`)"
        )
    return parse_profile(key, _builtin_tables()[key], "built-in")


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
        "link GB/s",
    ]
    rows: list[list[str]] = []
    for name in profile_names():
        p = load_profile(name)

        def peak(key: str, p: Profile = p) -> str:
            value = p.peak_ops_s.get(key)
            return "-" if value is None else f"{value / 1e12:g}"

        link = "-" if p.interconnect_b_s is None else f"{p.interconnect_b_s / 1e9:g}"
        rows.append(
            [
                name,
                p.hardware,
                *(peak(k) for k in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")),
                f"{p.memory_bandwidth_b_s / 1e9:g}",
                f"{p.board_power_w:g}",
                link,
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
        "dtype. link: interconnect bandwidth per direction (tensor parallelism)."
    )
    lines.append(
        "Use: pytest --energy-meter=roofline --energy-target=NAME, or "
        "--energy-target=path/to/profile.toml"
    )
    return lines
