"""Settings: one frozen dataclass, and the pure parsers that build it.

Every setting has exactly one spelling: the command-line option ``--energy-foo-bar`` and
the ini key ``energy_foo_bar``. ``plugin.py`` resolves each one as command line, then ini,
then the default below, in a single place, and hands the raw strings to :func:`build`.
Parsers raise :class:`~pytest_energy.errors.ConfigError`, which is a ``ValueError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

#: Allowed regression of the median, in percent. With DEFAULT_ROUNDS windows at 2% noise per
#: window, 3% catches 96.5% of +5% regressions with 0.1% false alarms when the baseline was
#: recorded on the runner that checks it (docs/performance.md). Runs on different boards of
#: one GPU model differ by a fixed offset that no statistic removes: use 4-9% there.
DEFAULT_TOLERANCE_PCT = 3.0
#: One-sided Mann-Whitney U significance level.
DEFAULT_ALPHA = 0.01
#: Measured windows for ``energy(fn, ...)``. 10 against 10 windows lets the U test reach
#: p = 1/184756, far below ``DEFAULT_ALPHA``; 8 rounds detect +5% only 93% of the time.
DEFAULT_ROUNDS = 10
DEFAULT_WARMUP = 1
#: Windows last at least this many meter update periods unless --energy-min-time says otherwise.
PERIODS_PER_WINDOW = 10
#: kWh for one full smartphone charge. Power Hungry Processing (Luccioni, Jernite, Strubell,
#: FAccT 2024, final version) uses 0.022 kWh; its earlier preprint used 0.012 kWh.
DEFAULT_PHONE_CHARGE_KWH = 0.022
DEFAULT_BASELINE_NAME = "energy-baseline.toml"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin was told, validated and in SI units."""

    baseline_path: Path
    report: bool = False
    update_baseline: bool = False
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    alpha: float = DEFAULT_ALPHA
    meter: str = "auto"
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    min_time_s: float | None = None
    require_sensor: bool = False
    subtract_idle: bool = False
    device_lock: bool = True
    gpu_per_worker: bool = False
    json_path: Path | None = None
    markdown_path: Path | None = None
    html_path: Path | None = None
    country: str | None = None
    carbon_intensity_g_per_kwh: float | None = None
    phone_charge_kwh: float = DEFAULT_PHONE_CHARGE_KWH


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


def parse_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ConfigError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {text!r}")
    return value


def parse_percent(text: str) -> float:
    """``"5"`` or ``"5%"`` to ``5.0``; between 0 and 100 inclusive."""
    raw = text.strip()
    try:
        value = parse_float(raw[:-1] if raw.endswith("%") else raw)
    except ConfigError:
        raise ConfigError(f"expected a number of percent such as 5 or 5%, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise ConfigError(f"expected a percentage between 0 and 100, got {text!r}")
    return value


def parse_probability(text: str) -> float:
    value = parse_float(text)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"expected a probability strictly between 0 and 1, got {text!r}")
    return value


def parse_count(text: str, *, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"expected a whole number of at least {minimum}, got {text!r}")
    return value


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$")


def parse_duration(text: str) -> float:
    """``"0.5"``, ``"0.5s"`` or ``"500ms"`` to seconds; never negative."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(
            f"expected a non-negative duration such as 0.5, 0.5s or 500ms, got {text!r}"
        )
    value = float(match.group(1))
    if not math.isfinite(value):
        raise ConfigError(f"expected a finite duration, got {text!r}")
    return value / 1000.0 if match.group(2) == "ms" else value


def parse_positive_float(text: str) -> float:
    value = parse_float(text)
    if value <= 0:
        raise ConfigError(f"expected a positive number, got {text!r}")
    return value


def parse_country(text: str) -> str:
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ConfigError(f"expected an ISO 3166-1 alpha-3 country code such as FRA, got {text!r}")
    return value


def parse_meter(text: str) -> str:
    value = text.strip()
    if not value:
        raise ConfigError("expected a meter name such as auto, or module:attribute")
    return value


#: ini/option name (without the ``energy_`` prefix) -> (Settings field, parser).
PARSERS: Mapping[str, tuple[str, Callable[[str], object]]] = {
    "report": ("report", parse_bool),
    "baseline": ("baseline_path", Path),
    "update_baseline": ("update_baseline", parse_bool),
    "tolerance": ("tolerance_pct", parse_percent),
    "alpha": ("alpha", parse_probability),
    "meter": ("meter", parse_meter),
    "rounds": ("rounds", lambda text: parse_count(text, minimum=1)),
    "warmup": ("warmup", lambda text: parse_count(text, minimum=0)),
    "min_time": ("min_time_s", parse_duration),
    "require_sensor": ("require_sensor", parse_bool),
    "subtract_idle": ("subtract_idle", parse_bool),
    "device_lock": ("device_lock", parse_bool),
    "gpu_per_worker": ("gpu_per_worker", parse_bool),
    "json": ("json_path", Path),
    "markdown": ("markdown_path", Path),
    "html": ("html_path", Path),
    "country": ("country", parse_country),
    "carbon_intensity": ("carbon_intensity_g_per_kwh", parse_positive_float),
    "phone_charge_kwh": ("phone_charge_kwh", parse_positive_float),
}


def build(raw: Mapping[str, str], rootdir: Path) -> Settings:
    """Build :class:`Settings` from raw option strings keyed as in :data:`PARSERS`.

    Relative paths are taken relative to ``rootdir``. Raises ``ConfigError`` naming the
    option and the accepted forms.
    """
    values: dict[str, object] = {}
    for key, text in raw.items():
        field, parser = PARSERS[key]
        try:
            value = parser(text)
        except ConfigError as exc:
            raise ConfigError(f"--energy-{key.replace('_', '-')} / energy_{key}: {exc}") from None
        if isinstance(value, Path) and not value.is_absolute():
            value = rootdir / value
        values[field] = value
    values.setdefault("baseline_path", rootdir / DEFAULT_BASELINE_NAME)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.country and settings.carbon_intensity_g_per_kwh is not None:
        raise ConfigError(
            "--energy-country and --energy-carbon-intensity both set the carbon intensity; "
            "give only one of them"
        )
    return settings
