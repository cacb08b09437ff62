"""Meter registry: built-in names, the ``pytest_energy.meters`` entry-point group, and
``module:attribute`` specs.

A spec is resolved to a *factory* (any zero-argument callable, a class works) when the
session starts, so a typo fails fast; the factory is called only when a test first needs
energy, so sessions without energy tests never touch a driver.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

from ..errors import ConfigError, EnergyError, MeterUnavailable
from .base import Meter, provenance, update_period_s

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Meter",
    "MeterFactory",
    "check_spec",
    "create",
    "provenance",
    "resolve",
    "update_period_s",
    "validate",
]

MeterFactory = Callable[[], Meter]
ENTRY_POINT_GROUP = "pytest_energy.meters"

#: Built-in meters, imported only when chosen.
BUILTIN: dict[str, str] = {
    "auto": "pytest_energy.meters.auto:AutoMeter",
    "nvml": "pytest_energy.meters.nvml:NvmlMeter",
    "amdsmi": "pytest_energy.meters.amdsmi:AmdSmiMeter",
    "apple": "pytest_energy.meters.apple:AppleMeter",
    "jetson": "pytest_energy.meters.jetson:JetsonMeter",
    "rapl": "pytest_energy.meters.rapl:RaplMeter",
    "codecarbon": "pytest_energy.meters.codecarbon:CodeCarbonMeter",
    "roofline": "pytest_energy.meters.roofline:RooflineMeter",
}
#: What each built-in meter reads, and the extra it needs (``pytest-energy targets``, the
#: README's meter table).
SUMMARY: dict[str, str] = {
    "auto": "every sensor it finds, in the order below, else the codecarbon estimate",
    "nvml": "measured: NVIDIA GPU energy counters through NVML [nvml]",
    "amdsmi": "measured: AMD Instinct and Radeon energy accumulators through amdsmi [amd]",
    "apple": "measured: Apple Silicon CPU, GPU, ANE and DRAM energy (IOReport) [apple]",
    "jetson": "measured: NVIDIA Jetson INA3221/INA238 power rails, integrated over the window",
    "rapl": "measured: Intel/AMD CPU package and DRAM energy through Linux RAPL",
    "codecarbon": "estimated: this process's CPU time x the CPU's TDP (CodeCarbon data) "
    "[codecarbon]",
    "roofline": "modelled: the test's torch operations on a target GPU (--energy-target) "
    "[roofline]",
}


def _import(target: str, spec: str) -> object:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"meter spec {spec!r} must be a name or module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"meter spec {spec!r}: module {module_name!r} cannot be imported ({exc}). "
            "Check the spelling and that the module is on sys.path: for a module in your "
            'project, set pythonpath = ["."] under [tool.pytest.ini_options] in pyproject.toml '
            "(pythonpath = . in pytest.ini)."
        ) from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"meter spec {spec!r}: importing module {module_name!r} raised "
            f"{type(exc).__name__}: {exc}. Fix the module (a meter module must not call "
            "sys.exit), or choose another meter."
        ) from None
    obj: object = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"meter spec {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def _plugin_meters() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_plugin_meters()))


def resolve(spec: str) -> MeterFactory:
    """Turn ``auto``, a registered name, or ``module:attribute`` into a meter factory."""
    target = BUILTIN.get(spec)
    if target is None and ":" not in spec:
        target = _plugin_meters().get(spec)
        if target is None:
            raise ConfigError(
                f"unknown energy meter {spec!r}; choose one of {', '.join(known_names())}, "
                "or give module:attribute naming a factory that returns a meter"
            )
    factory = _import(target or spec, spec)
    if not callable(factory):
        raise ConfigError(
            f"meter spec {spec!r} names {type(factory).__name__} object, which is not callable; "
            "it must name a class or function returning a meter"
        )
    return factory


def create(factory: MeterFactory, spec: str) -> Meter:
    """Call ``factory`` and check that it returned something usable as a meter."""
    try:
        meter = factory()
    except EnergyError:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"meter spec {spec!r}: creating the meter raised {type(exc).__name__}: {exc}. "
            "The spec must name a class or function that takes no arguments and returns a meter "
            "(and raises an exception, not sys.exit, when it cannot)."
        ) from None
    try:
        validate(meter, spec)
    except ConfigError:
        with contextlib.suppress(Exception):
            meter.close()
        raise
    return meter


_MISSING = object()
#: The longest counter update period a meter may declare. Windows are calibrated to several
#: periods, so a larger value makes one energy test run for many minutes; no real sensor
#: refreshes that slowly.
MAX_UPDATE_PERIOD_S = 60.0


def _attribute(meter: object, attr: str, spec: str, default: object = _MISSING) -> object:
    """``getattr(meter, attr, default)``; a property that raises is a ConfigError."""
    try:
        return getattr(meter, attr, default)
    except EnergyError:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"meter spec {spec!r}: reading the meter's {attr!r} raised {type(exc).__name__}: "
            f"{exc}. Fix the meter's {attr} property so that it returns a value."
        ) from None


def _text(meter: object, attr: str, spec: str, example: str) -> str:
    value = _attribute(meter, attr, spec)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"meter spec {spec!r}: the meter's {attr} is {value!r}; it must be a non-empty "
            f"string, e.g. {example!r} (it keys the baseline and appears in every report)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"meter spec {spec!r}: the meter's {attr} {value!r} contains a lone surrogate, "
            "which no UTF-8 file can hold. Decode the name with errors='replace' in the meter."
        ) from None
    return value


def validate(meter: object, spec: str) -> None:
    """Check a new meter's attributes; raise ConfigError naming the attribute and the fix.

    A meter with ``name=""``, ``name=42`` or ``estimated="no"`` would otherwise write a
    baseline that every later run rejects, or crash the reports at the end of the session.
    """
    required = ("name", "hardware", "estimated", "read", "close")
    missing = [attr for attr in required if _attribute(meter, attr, spec) is _MISSING]
    if missing:
        raise ConfigError(
            f"meter spec {spec!r} returned {type(meter).__name__}, which is not a meter: it lacks "
            f"{', '.join(missing)}. A meter has name, hardware, estimated, read() and close() "
            "(see pytest_energy.Meter)"
        )
    _text(meter, "name", spec, "nvml")
    _text(meter, "hardware", spec, "NVIDIA H100 80GB HBM3 x1")
    for attr in ("read", "close"):
        if not callable(_attribute(meter, attr, spec)):
            raise ConfigError(f"meter spec {spec!r}: the meter's {attr} must be a method")
    for attr in ("estimated", "deterministic"):
        value = _attribute(meter, attr, spec, False)
        if not isinstance(value, bool):
            raise ConfigError(
                f"meter spec {spec!r}: the meter's {attr} is {value!r} "
                f"({type(value).__name__}); it must be True or False"
            )
    _check_update_period(meter, spec)
    devices = _attribute(meter, "devices", spec, None)
    if devices is not None:
        bad = isinstance(devices, (str, bytes)) or not isinstance(devices, Iterable)
        if isinstance(devices, Iterable) and not bad:
            names: tuple[object, ...] = tuple(devices)
            bad = not all(isinstance(name, str) and name for name in names)
        if bad:
            raise ConfigError(
                f"meter spec {spec!r}: the meter's devices is {devices!r}; it must be None "
                "(one device per domain), () (no device lock, for a per-process estimate) or "
                "a tuple of device names"
            )


def _check_update_period(meter: object, spec: str) -> None:
    """A NaN, infinite, negative or absurd period would stall calibration or never end it."""
    value = _attribute(meter, "update_period_s", spec, None)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problem = f"not a number ({type(value).__name__})"
    elif not math.isfinite(value):
        problem = "not a finite number"
    elif value < 0:
        problem = "negative"
    elif value > MAX_UPDATE_PERIOD_S:
        problem = f"over {MAX_UPDATE_PERIOD_S:g} s, which no energy counter needs"
    else:
        return
    raise ConfigError(
        f"meter spec {spec!r}: the meter's update_period_s is {value!r}, {problem}. It must be "
        f"the counter's refresh period in seconds, from 0 (unknown) to {MAX_UPDATE_PERIOD_S:g}: "
        "windows are calibrated to several periods. Fix the meter's update_period_s attribute."
    )


def try_create(spec: str) -> Meter | MeterUnavailable:
    """Create a built-in meter, or return why it is unavailable."""
    try:
        return create(resolve(spec), spec)
    except MeterUnavailable as exc:
        return exc


def check_spec(
    spec: str,
    *,
    target: str | None = None,
    tensor_parallel: int = 1,
    engine: str = "eager",
) -> MeterFactory:
    """A factory for ``spec``, checked now but imported only when a meter is first needed.

    A built-in name costs nothing at start-up; an entry-point name is looked up, and a
    ``module:attribute`` spec imported, now, so that a typo stops the run before any test.
    ``target``, ``tensor_parallel`` and ``engine`` configure the ``roofline`` meter
    (--energy-target, --energy-tensor-parallel, --energy-engine).
    """
    if spec == "roofline":
        _check_roofline(target)
    if spec in BUILTIN:

        def builtin() -> Meter:
            factory = resolve(spec)
            if spec == "roofline":
                meter: Meter = factory(  # type: ignore[call-arg]
                    target, tensor_parallel=tensor_parallel, engine=engine
                )
                return meter
            return factory()

        return builtin
    return resolve(spec)


def _check_roofline(target: str | None) -> None:
    """An unknown target, or no torch, stops the run at start-up (torch is not imported)."""
    import importlib.util

    from .roofline import counting
    from .roofline.meter import target_from_environment
    from .roofline.profiles import load_profile

    load_profile(target or target_from_environment())
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            str(
                MeterUnavailable(
                    "roofline",
                    "it models the torch operations a test runs, and torch is not installed.",
                    counting.TORCH_FIX,
                )
            )
        )
