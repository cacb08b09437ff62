"""Settings: the one table of options, the frozen dataclass it describes, and pure parsers.

Every setting is declared once, as a field of :class:`Settings` made with :func:`option`.
That declaration is the options table: it names the command-line option
``--energy-foo-bar`` and the ini key ``energy_foo_bar``, its parser, its default and its
help text. The pytest layer generates argparse options and ini keys from it
(:func:`options`), and :func:`resolve` turns what the user gave into a ``Settings``:
command line, then ini file, then the default, in that one place.

Parsers raise :class:`~pytest_energy.errors.ConfigError`, which is a ``ValueError``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError

#: Allowed regression of the median, in percent, for meters with noise (sensors, the CPU-time
#: estimate). With 10 windows at 2% noise per window, 3% catches 96.5% of +5% regressions
#: with 0.1% false alarms on the runner that recorded the baseline (docs/measurement.md).
DEFAULT_TOLERANCE_PCT = 3.0
#: Allowed change for deterministic meters (roofline): their figures move only when the work
#: does, so anything above rounding is a real change.
DEFAULT_DETERMINISTIC_TOLERANCE_PCT = 1.0
#: One-sided significance level of the gate's tests.
DEFAULT_ALPHA = 0.01
#: Windows per energy(fn, ...) call when --energy-rounds is a number and for tests that have
#: no baseline yet (so that the baseline they record is good).
DEFAULT_ROUNDS = 10
#: Upper bound of adaptive rounds (--energy-rounds=auto).
DEFAULT_MAX_ROUNDS = 20
#: Fewest windows adaptive rounds take before they may stop; a lower --energy-max-rounds
#: lowers it, so that at most that many windows are taken.
MIN_ADAPTIVE_ROUNDS = 5
DEFAULT_WARMUP = 1
#: Windows last at least this many meter update periods unless --energy-min-time says otherwise.
PERIODS_PER_WINDOW = 10
#: Recorded runs kept per baseline entry.
DEFAULT_HISTORY = 5
#: Prior run-to-run spread of a test's run median, in percent, per meter kind
#: (--energy-run-spread): the spread of the prediction bound until a baseline entry has 3
#: recorded runs, pooled with theirs after. See docs/measurement.md, "Gate quality".
DEFAULT_RUN_SPREAD_PCT: Mapping[str, float] = MappingProxyType({"measured": 2.0, "estimated": 5.0})
#: kWh for one full smartphone charge. Power Hungry Processing (Luccioni, Jernite, Strubell,
#: FAccT 2024, final version) uses 0.022 kWh; its earlier preprint used 0.012 kWh.
DEFAULT_PHONE_CHARGE_KWH = 0.022
#: Longest wait for another process's window on the same device before the test fails.
DEFAULT_LOCK_TIMEOUT_S = 600.0
DEFAULT_TARGET = "H100-SXM"
#: How the roofline meter models serving (--energy-engine).
ENGINES = ("eager", "compiled")
DEFAULT_BASELINE_NAME = "energy-baseline.toml"
#: The meters that ship with pytest-energy (``pytest_energy.meters.BUILTIN`` maps each to its
#: class); named here so that start-up can accept one without importing the meters.
BUILTIN_METERS = ("auto", "nvml", "amdsmi", "apple", "jetson", "rapl", "codecarbon", "roofline")


@dataclass(frozen=True)
class Rule:
    """How one record is judged: built by :meth:`Settings.rule`, the one place that does."""

    tolerance_pct: float
    alpha: float
    run_spread_pct: float | None
    """The prior run-to-run spread (None for a deterministic meter, which has none)."""
    deterministic: bool
    paired: bool = False
    """``energy.compare``: adjacent windows of two callables, judged as pairs."""


@dataclass(frozen=True)
class Option:
    """How one setting is spelled and parsed; the field's metadata in :class:`Settings`."""

    name: str
    """``tolerance`` for ``--energy-tolerance`` and ``energy_tolerance``."""
    parse: Callable[[str], Any]
    help: str
    metavar: str | None = None
    """``None`` marks an on/off flag: ``--energy-x`` / ``--no-energy-x``, an ini ``bool``."""

    @property
    def flag(self) -> str:
        return "--energy-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "energy_" + self.name

    @property
    def is_flag(self) -> bool:
        return self.metavar is None


def option(
    name: str,
    parse: Callable[[str], Any],
    help: str,
    *,
    metavar: str | None = None,
    default: Any = None,
) -> Any:
    """A :class:`Settings` field declared together with its option (see :class:`Option`)."""
    return field(default=default, metadata={"option": Option(name, parse, help, metavar=metavar)})


# -- parsers ---------------------------------------------------------------------------


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


def parse_rounds(text: str) -> int | None:
    """``"auto"`` (``None``: adaptive) or a fixed number of windows of at least 1."""
    if text.strip().lower() == "auto":
        return None
    try:
        return parse_count(text, minimum=1)
    except ConfigError:
        raise ConfigError(f"expected auto or a whole number of at least 1, got {text!r}") from None


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


def parse_name(text: str) -> str:
    value = text.strip()
    if not value:
        raise ConfigError("expected a name, got an empty value")
    return value


def parse_meter(text: str) -> str:
    value = text.strip()
    if not value:
        raise ConfigError("expected a meter name such as auto, or module:attribute")
    return value


def parse_engine(text: str) -> str:
    value = text.strip().lower()
    if value not in ENGINES:
        raise ConfigError(f"expected one of {', '.join(ENGINES)}, got {text!r}")
    return value


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ConfigError("expected a file path, got an empty value")
    return Path(text)


# -- the options table -------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything the plugin was told, validated and in SI units. Each field is an option."""

    report: bool = option("report", parse_bool, "print a per-test energy table", default=False)
    baseline_path: Path = option(
        "baseline",
        parse_path,
        f"baseline TOML file (default: {DEFAULT_BASELINE_NAME} in the rootdir)",
        metavar="PATH",
        default=Path(DEFAULT_BASELINE_NAME),
    )
    update_baseline: bool = option(
        "update_baseline",
        parse_bool,
        "write this run's results into the baseline (atomic; other entries kept)",
        default=False,
    )
    tolerance_pct: float | None = option(
        "tolerance",
        parse_percent,
        "allowed regression in percent, e.g. 5 or 5% (default "
        f"{DEFAULT_TOLERANCE_PCT:g}%, or {DEFAULT_DETERMINISTIC_TOLERANCE_PCT:g}% for a "
        "deterministic meter such as roofline)",
        metavar="PCT",
    )
    alpha: float = option(
        "alpha",
        parse_probability,
        f"significance level of the gate's one-sided tests (default {DEFAULT_ALPHA:g})",
        metavar="P",
        default=DEFAULT_ALPHA,
    )
    meter: str = option(
        "meter",
        parse_meter,
        "auto (default), nvml, rapl, codecarbon, roofline, a meter registered in the "
        "pytest_energy.meters entry-point group, or module:attribute naming a meter factory",
        metavar="SPEC",
        default="auto",
    )
    target: str | None = option(
        "target",
        parse_name,
        f"GPU the roofline meter models (default {DEFAULT_TARGET}; `pytest-energy targets` "
        "lists them), or the path of a profile .toml file",
        metavar="NAME",
    )
    tensor_parallel: int = option(
        "tensor_parallel",
        lambda text: parse_count(text, minimum=1),
        "boards of --energy-target the roofline meter models, the model's matrix products "
        "split across them with an all-reduce per attention and MLP block (default 1)",
        metavar="N",
        default=1,
    )
    engine: str = option(
        "engine",
        parse_engine,
        "how the roofline meter models serving: eager (PyTorch eager, as transformers and "
        "diffusers run; the default) or compiled (CUDA graphs and fused kernels, as vLLM or "
        "TensorRT)",
        metavar="eager|compiled",
        default="eager",
    )
    rounds: int | None = option(
        "rounds",
        parse_rounds,
        "measured windows per energy(fn, ...) call: auto (default: add windows until the "
        f"verdict is settled, at most --energy-max-rounds; {DEFAULT_ROUNDS} for a test without "
        "a baseline) or a fixed number",
        metavar="N|auto",
    )
    max_rounds: int = option(
        "max_rounds",
        lambda text: parse_count(text, minimum=1),
        f"most windows adaptive rounds take (default {DEFAULT_MAX_ROUNDS}); below "
        f"{MIN_ADAPTIVE_ROUNDS} it also lowers the fewest they take, so at most N are taken",
        metavar="N",
        default=DEFAULT_MAX_ROUNDS,
    )
    warmup: int = option(
        "warmup",
        lambda text: parse_count(text, minimum=0),
        f"unmeasured warm-up calls before calibration (default {DEFAULT_WARMUP})",
        metavar="N",
        default=DEFAULT_WARMUP,
    )
    min_time_s: float | None = option(
        "min_time",
        parse_duration,
        "minimum window length, e.g. 0.5s or 500ms (default: "
        f"{PERIODS_PER_WINDOW} update periods of the meter); 0 disables calibration",
        metavar="SECONDS",
    )
    history: int = option(
        "history",
        lambda text: parse_count(text, minimum=1),
        f"recorded runs kept per baseline entry (default {DEFAULT_HISTORY})",
        metavar="N",
        default=DEFAULT_HISTORY,
    )
    run_spread_pct: float | None = option(
        "run_spread",
        parse_percent,
        "prior run-to-run spread in percent, used until a baseline entry has 3 recorded runs "
        "(default per meter kind, see docs/measurement.md)",
        metavar="PCT",
    )
    strict: bool = option(
        "strict",
        parse_bool,
        "fail tests that have no comparable baseline entry instead of passing them ungated",
        default=False,
    )
    require_sensor: bool = option(
        "require_sensor",
        parse_bool,
        "error out instead of accepting an estimated meter",
        default=False,
    )
    disable: bool = option(
        "disable",
        parse_bool,
        "run energy tests unmetered: markers are still validated, nothing is measured, "
        "judged or written",
        default=False,
    )
    json_path: Path | None = option(
        "json",
        parse_path,
        "write a JSON report (schema: pytest_energy/report/schema.json)",
        metavar="PATH",
    )
    markdown_path: Path | None = option(
        "markdown",
        parse_path,
        "write a Markdown summary, e.g. for a pull-request comment",
        metavar="PATH",
    )
    html_path: Path | None = option(
        "html",
        parse_path,
        "write a self-contained HTML report (charts need pytest-energy[charts])",
        metavar="PATH",
    )
    country: str | None = option(
        "country",
        parse_country,
        "carbon intensity of this country (ISO 3166-1 alpha-3, e.g. FRA) from CodeCarbon's "
        "offline data; needs pytest-energy[codecarbon]",
        metavar="ISO3",
    )
    carbon_intensity_g_per_kwh: float | None = option(
        "carbon_intensity",
        parse_positive_float,
        "carbon intensity in gCO2e per kWh for the carbon figures",
        metavar="G_PER_KWH",
    )
    phone_charge_kwh: float = option(
        "phone_charge_kwh",
        parse_positive_float,
        "kWh per smartphone charge for the equivalents "
        f"(default {DEFAULT_PHONE_CHARGE_KWH:g}, Luccioni et al. 2024)",
        metavar="KWH",
        default=DEFAULT_PHONE_CHARGE_KWH,
    )
    subtract_idle: bool = option(
        "subtract_idle",
        parse_bool,
        "also report dynamic energy (total minus idle power x duration)",
        default=False,
    )
    device_lock: bool = option(
        "device_lock",
        parse_bool,
        "hold an inter-process lock per metered device around each window, so parallel "
        "workers never count each other's work (default on)",
        metavar="on|off",
        default=True,
    )
    lock_timeout_s: float = option(
        "lock_timeout",
        parse_duration,
        "longest wait for another process's window on the same device before the test fails "
        f"(default {DEFAULT_LOCK_TIMEOUT_S:g}s)",
        metavar="SECONDS",
        default=DEFAULT_LOCK_TIMEOUT_S,
    )
    gpu_per_worker: bool = option(
        "gpu_per_worker",
        parse_bool,
        "under pytest-xdist, pin worker i to GPU i through CUDA_VISIBLE_DEVICES",
        default=False,
    )

    def rule(
        self,
        *,
        deterministic: bool,
        estimated: bool,
        marker_tolerance_pct: float | None = None,
        paired: bool = False,
    ) -> Rule:
        """The rule for one record: the tolerance is the test's marker's, else the option's,
        else the default for the meter's kind; the prior run spread is the option's, else the
        default for measured or estimated figures. The one place a rule is built."""
        if marker_tolerance_pct is not None:
            tolerance = marker_tolerance_pct
        elif self.tolerance_pct is not None:
            tolerance = self.tolerance_pct
        else:
            tolerance = (
                DEFAULT_DETERMINISTIC_TOLERANCE_PCT if deterministic else DEFAULT_TOLERANCE_PCT
            )
        spread: float | None = None
        if not deterministic:
            spread = self.run_spread_pct
            if spread is None:
                spread = DEFAULT_RUN_SPREAD_PCT["estimated" if estimated else "measured"]
        return Rule(
            tolerance_pct=tolerance,
            alpha=self.alpha,
            run_spread_pct=spread,
            deterministic=deterministic,
            paired=paired,
        )

    @property
    def report_paths(self) -> dict[str, Path]:
        """The report files asked for, by option name."""
        paths = {"json": self.json_path, "markdown": self.markdown_path, "html": self.html_path}
        return {name: path for name, path in paths.items() if path is not None}


def options() -> Iterator[tuple[str, Option]]:
    """(Settings field name, Option) for every setting, in declaration order."""
    for f in fields(Settings):
        yield f.name, f.metadata["option"]


#: A value as pytest hands it over: a string (ini or option value) or a bool (a flag).
Raw = str | bool | None


def resolve(
    cli: Callable[[Option], Raw],
    ini: Callable[[Option], Raw],
    *,
    invocation_dir: Path,
    rootdir: Path,
) -> Settings:
    """Each setting from the command line, else the ini file, else its default.

    ``cli`` and ``ini`` return ``None`` (or ``""`` from an ini file) for "not given".
    Relative paths given on the command line are taken relative to ``invocation_dir`` (as
    pytest does for ``--junitxml``), those from the ini file relative to ``rootdir``.
    Raises ``ConfigError`` naming the option and the accepted forms.
    """
    values: dict[str, object] = {}
    for name, opt in options():
        base = invocation_dir
        raw = cli(opt)
        if raw is None:
            raw, base = ini(opt), rootdir
            if raw is None or raw == "":
                continue
        try:
            value = raw if isinstance(raw, bool) else opt.parse(str(raw))
        except ConfigError as exc:
            raise ConfigError(f"{opt.flag} / {opt.dest}: {exc}") from None
        if isinstance(value, Path) and not value.is_absolute():
            value = base / value
        values[name] = value
    return _checked(Settings(**values), rootdir)  # type: ignore[arg-type]


def _checked(settings: Settings, rootdir: Path) -> Settings:
    if not settings.baseline_path.is_absolute():
        settings = replace(settings, baseline_path=rootdir / settings.baseline_path)
    if settings.country and settings.carbon_intensity_g_per_kwh is not None:
        raise ConfigError(
            "--energy-country and --energy-carbon-intensity both set the carbon intensity; "
            "give only one of them"
        )
    seen: dict[Path, str] = {}
    for name, path in {"baseline": settings.baseline_path, **settings.report_paths}.items():
        key = Path(_normalise(path))
        if key in seen:
            raise ConfigError(
                f"--energy-{seen[key]} and --energy-{name} both name {path}; writing one would "
                "destroy the other. Give each report its own file, away from the baseline"
            )
        seen[key] = name
    return settings


def _normalise(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))
