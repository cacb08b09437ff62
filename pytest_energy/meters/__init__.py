"""Meter registry: built-in names, the ``pytest_energy.meters`` entry-point group, and
``module:attribute`` specs.

A spec is resolved to a *factory* (any zero-argument callable, a class works) when the
session starts, so a typo fails fast; the factory is called only when a test first needs
energy, so sessions without energy tests never touch a driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
]

MeterFactory = Callable[[], Meter]
ENTRY_POINT_GROUP = "pytest_energy.meters"

#: Built-in meters, imported only when chosen.
BUILTIN: dict[str, str] = {
    "auto": "pytest_energy.meters.auto:AutoMeter",
    "nvml": "pytest_energy.meters.nvml:NvmlMeter",
    "rapl": "pytest_energy.meters.rapl:RaplMeter",
    "codecarbon": "pytest_energy.meters.codecarbon:CodeCarbonMeter",
    "roofline": "pytest_energy.meters.roofline:RooflineMeter",
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
            "Check the spelling and that the module is on sys.path (e.g. in your rootdir)."
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"meter spec {spec!r}: importing module {module_name!r} raised "
            f"{type(exc).__name__}: {exc}. Fix the module, or choose another meter."
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
    except Exception as exc:
        raise ConfigError(
            f"meter spec {spec!r}: creating the meter raised {type(exc).__name__}: {exc}. "
            "The spec must name a class or function that takes no arguments and returns a meter."
        ) from None
    required = ("name", "hardware", "estimated", "read", "close")
    missing = [attr for attr in required if not hasattr(meter, attr)]
    if missing:
        raise ConfigError(
            f"meter spec {spec!r} returned {type(meter).__name__}, which is not a meter: it lacks "
            f"{', '.join(missing)}. A meter has name, hardware, estimated, read() and close() "
            "(see pytest_energy.Meter)"
        )
    return meter


def try_create(spec: str) -> Meter | MeterUnavailable:
    """Create a built-in meter, or return why it is unavailable."""
    try:
        return create(resolve(spec), spec)
    except MeterUnavailable as exc:
        return exc


def check_spec(spec: str, *, target: str | None = None) -> MeterFactory:
    """A factory for ``spec``, checked now but imported only when a meter is first needed.

    A built-in name costs nothing at start-up; an entry-point name is looked up, and a
    ``module:attribute`` spec imported, now, so that a typo stops the run before any test.
    ``target`` is the GPU profile the ``roofline`` meter models (--energy-target).
    """
    if spec in BUILTIN:

        def builtin() -> Meter:
            factory = resolve(spec)
            if spec == "roofline":
                return factory(target)  # type: ignore[call-arg]
            return factory()

        return builtin
    return resolve(spec)
