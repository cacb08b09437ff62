"""The pytest11 entry point of pytest-energy: a table of contents.

* ``pytest_addoption``: every ``--energy-*`` option and ini key, generated from the one
  options table (:class:`pytest_energy.settings.Settings`).
* ``pytest_configure``: resolves the settings, registers the marker, and registers the
  plugin objects of ``hooks.py`` (measurement and verdicts in every process; collection,
  files and summary where the run is reported) and, under pytest-xdist, ``xdist.py``.
* ``energy``: the fixture, served by the registered plugin.

Measurement, statistics, the baseline and the reports are plain modules that know nothing
of pytest; ``hooks.py`` wires them in.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from . import budget as budget_mod
from . import settings as settings_mod
from .errors import ConfigError
from .hooks import EnergyPlugin, EnergyReporter, EnergyWarning, InterruptGuard

if TYPE_CHECKING:
    from .fixture import EnergyFixture
    from .meters import Meter, MeterFactory

__all__ = ["EnergyWarning"]

plugin_key = pytest.StashKey[EnergyPlugin]()


#: What a flag given a value (``--energy-report=x.json``) is told instead of argparse's
#: "ignored explicit argument".
FLAG_VALUE_HINTS = {
    "report": "use --energy-json/--energy-markdown/--energy-html=PATH",
}


class _FlagGivenAValue(argparse.BooleanOptionalAction):
    """An on/off flag that the command line gave a value: says which option takes one.

    Registered only when the arguments hold ``--energy-X=...`` (a flag with ``nargs="?"``
    would otherwise swallow a following test path)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.nargs = "?"

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, str):
            name = self.dest.removeprefix("energy_")
            hint = FLAG_VALUE_HINTS.get(name, f"--energy-{name.replace('_', '-')} takes no value")
            raise argparse.ArgumentError(self, f"takes no value ({values!r} given): {hint}")
        super().__call__(parser, namespace, values, option_string)


def _given_a_value(pluginmanager: pytest.PytestPluginManager) -> set[str]:
    """The ``--energy-*`` flags that the command line (or PYTEST_ADDOPTS) gave a value."""
    import contextlib
    import os
    import shlex

    config = pluginmanager.get_plugin("pytestconfig")
    args = list(getattr(getattr(config, "invocation_params", None), "args", ()) or ())
    with contextlib.suppress(ValueError):  # unbalanced quotes: pytest reports them itself
        args += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    return {str(a).partition("=")[0] for a in args if str(a).startswith("--energy-") and "=" in a}


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("energy", "energy budgets (pytest-energy)")
    valued = _given_a_value(pluginmanager)
    for _, opt in settings_mod.options():
        escaped = opt.help.replace("%", "%%")  # argparse formats help strings
        if opt.is_flag:
            action = _FlagGivenAValue if opt.flag in valued else argparse.BooleanOptionalAction
            group.addoption(
                opt.flag,
                action=action,
                default=None,
                dest=opt.dest,
                help=escaped,
            )
            parser.addini(opt.dest, opt.help, type="bool", default=None)
        else:
            group.addoption(
                opt.flag, default=None, dest=opt.dest, metavar=opt.metavar, help=escaped
            )
            parser.addini(opt.dest, opt.help, default="")


def _marker_help() -> str:
    signature = inspect.signature(budget_mod.energy_budget)
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    doc = (inspect.getdoc(budget_mod.energy_budget) or "").replace("``", "")
    return f"energy_budget{bare}: " + " ".join(doc.split())


def _settings(config: pytest.Config) -> settings_mod.Settings:
    def ini(opt: settings_mod.Option) -> settings_mod.Raw:
        try:
            value = config.getini(opt.dest)
        except (ValueError, pytest.UsageError) as exc:  # a bool ini key that is not a boolean
            given = str(exc).removeprefix("invalid truth value ")
            raise ConfigError(
                f"{opt.flag} / {opt.dest}: expected true or false, got {given}"
            ) from None
        return value  # type: ignore[no-any-return]

    return settings_mod.resolve(
        lambda opt: config.getoption(opt.dest),
        ini,
        invocation_dir=config.invocation_params.dir,
        rootdir=config.rootpath,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _marker_help())
    if config.option.help or config.option.version:
        return  # --help must work whatever the ini file says
    try:
        settings = _settings(config)
        factory = _meter_factory(settings)
        carbon = None
        if settings.country or settings.carbon_intensity_g_per_kwh is not None:
            from .report import carbon as carbon_mod  # only when carbon figures are asked for

            carbon = carbon_mod.resolve(settings)
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None
    plugin = EnergyPlugin(settings, factory, carbon, config)
    config.stash[plugin_key] = plugin
    config.pluginmanager.register(plugin, "energy-plugin")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    config.pluginmanager.register(EnergyReporter(plugin, config), "energy-reporter")
    config.pluginmanager.register(InterruptGuard(config), "energy-interrupt-guard")
    if settings.gpu_per_worker:
        from . import xdist

        if xdist.active(config):
            config.pluginmanager.register(xdist.GpuPinning(), "energy-xdist")


def _meter_factory(settings: settings_mod.Settings) -> MeterFactory:
    """The meter's factory. A built-in name is checked and imported only when the first
    window needs the meter; a module:attribute or entry-point spec is checked now, so that
    a typo stops the run before any test."""
    spec = settings.meter
    if spec in settings_mod.BUILTIN_METERS and spec != "roofline":

        def builtin() -> Meter:
            from .meters import check_spec

            return check_spec(spec)()

        return builtin
    from .meters import check_spec

    return check_spec(
        spec,
        target=settings.target,
        tensor_parallel=settings.tensor_parallel,
        engine=settings.engine,
    )


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> Iterator[EnergyFixture]:
    """Meter inference: ``energy(fn, inferences=N)``, ``energy.call(fn, args, kwargs,
    inferences=N)`` or ``with energy.measure(inferences=N):``.

    Only the measured windows count; fixture setup such as model loading never does.
    """
    plugin = request.config.stash.get(plugin_key, None)
    if plugin is None:
        raise pytest.UsageError("pytest-energy is not configured in this session")
    yield plugin.fixture(request)
