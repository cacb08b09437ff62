"""The pytest plugin: options, the ``energy`` fixture, the ``energy_budget`` marker, the gate.

Hooks stay thin. Measurement lives in ``measure.py``, statistics in ``stats.py``, the
baseline in ``baseline.py`` and reports in ``report/``; this module only wires them to
pytest and turns their errors into pytest's (usage errors, failed tests, warnings).
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from . import budget as budget_mod
from . import scaleout
from . import settings as settings_mod
from .budget import EnergyBudget
from .errors import (
    BaselineError,
    ConfigError,
    EnergyError,
    MeasurementError,
    MeterError,
    MeterUnavailable,
)
from .meters import resolve

# Measurement, statistics, baselines and reports are imported when a session first needs
# them, so a run without energy tests pays only for this module and the settings.
if TYPE_CHECKING:
    from .measure import Measurement, Recorder, Sync
    from .meters import MeterFactory  # noqa: F401 - used in setup_key's string type
    from .report.carbon import CarbonIntensity
    from .results import EnergyResult
    from .session import EnergySession
    from .stats import Comparison, Status

T = TypeVar("T")

setup_key = pytest.StashKey["tuple[settings_mod.Settings, MeterFactory, CarbonIntensity | None]"]()
session_key = pytest.StashKey["EnergySession"]()
budget_key = pytest.StashKey["EnergyBudget | None"]()
recorder_key = pytest.StashKey["Recorder"]()
result_key = pytest.StashKey["EnergyResult"]()


class EnergyWarning(pytest.PytestWarning):
    """Something about a measurement the user should know, e.g. windows too short."""


# (name, metavar, help); metavar None marks a flag. The option is --energy-<name with
# dashes> and the ini key energy_<name>: one spelling each, resolved in _raw_settings().
OPTIONS: tuple[tuple[str, str | None, str], ...] = (
    ("report", None, "print a per-test energy table in the terminal summary"),
    (
        "baseline",
        "PATH",
        f"baseline TOML file (default: {settings_mod.DEFAULT_BASELINE_NAME} in the rootdir)",
    ),
    (
        "update_baseline",
        None,
        "write this run's results into the baseline (atomic; other entries kept)",
    ),
    (
        "tolerance",
        "PCT",
        "allowed regression in percent, e.g. 5 or 5% "
        f"(default {settings_mod.DEFAULT_TOLERANCE_PCT:g}%)",
    ),
    (
        "alpha",
        "P",
        "significance level of the one-sided Mann-Whitney U test "
        f"(default {settings_mod.DEFAULT_ALPHA:g})",
    ),
    (
        "meter",
        "SPEC",
        "auto (default), nvml, rapl, codecarbon, or module:attribute naming a meter factory",
    ),
    (
        "rounds",
        "N",
        f"measured windows for energy(fn, ...) (default {settings_mod.DEFAULT_ROUNDS})",
    ),
    (
        "warmup",
        "N",
        f"unmeasured warm-up calls before calibration (default {settings_mod.DEFAULT_WARMUP})",
    ),
    (
        "min_time",
        "SECONDS",
        "minimum window length, e.g. 0.5s or 500ms (default: "
        f"{settings_mod.PERIODS_PER_WINDOW} update periods of the meter); 0 disables calibration",
    ),
    ("require_sensor", None, "error out instead of accepting an estimated meter"),
    ("json", "PATH", "write a JSON report (schema: pytest_energy/report/schema.json)"),
    ("markdown", "PATH", "write a Markdown summary, e.g. for a pull-request comment"),
    ("html", "PATH", "write a self-contained HTML report (charts need pytest-energy[charts])"),
    (
        "country",
        "ISO3",
        "carbon intensity of this country (ISO 3166-1 alpha-3, e.g. FRA) from CodeCarbon's "
        "offline data; needs pytest-energy[codecarbon]",
    ),
    ("carbon_intensity", "G_PER_KWH", "carbon intensity in gCO2e per kWh for the carbon figures"),
    (
        "phone_charge_kwh",
        "KWH",
        "kWh per smartphone charge for the equivalents "
        f"(default {settings_mod.DEFAULT_PHONE_CHARGE_KWH:g}, Luccioni et al. 2024)",
    ),
    ("subtract_idle", None, "also report dynamic energy (total minus idle power x duration)"),
    (
        "device_lock",
        "on|off",
        "hold an inter-process lock per metered device around each window, so parallel "
        "workers never count each other's work (default on)",
    ),
    (
        "gpu_per_worker",
        None,
        "under pytest-xdist, pin worker i to GPU i through CUDA_VISIBLE_DEVICES",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("energy", "energy budgets (pytest-energy)")
    for name, metavar, help_text in OPTIONS:
        flag = "--energy-" + name.replace("_", "-")
        dest = "energy_" + name
        escaped = help_text.replace("%", "%%")  # argparse formats help strings
        if metavar is None:
            group.addoption(flag, action="store_true", default=None, dest=dest, help=escaped)
        else:
            group.addoption(flag, default=None, dest=dest, metavar=metavar, help=escaped)
        parser.addini(dest, help_text, default="")


def _raw_settings(config: pytest.Config) -> dict[str, str]:
    """Each setting from the command line, else the ini file; unset ones are left out."""
    raw: dict[str, str] = {}
    for name, _, _ in OPTIONS:
        value = config.getoption("energy_" + name)
        if value is None:
            value = config.getini("energy_" + name)
            if value in ("", None):
                continue
        raw[name] = "true" if value is True else str(value)
    return raw


def _marker_help() -> str:
    signature = inspect.signature(budget_mod.energy_budget)
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    doc = (inspect.getdoc(budget_mod.energy_budget) or "").replace("``", "")
    return f"energy_budget{bare}: " + " ".join(doc.split())


def _carbon_intensity(settings: settings_mod.Settings) -> CarbonIntensity | None:
    if settings.country is None and settings.carbon_intensity_g_per_kwh is None:
        return None  # no carbon figures, and no import of the report package at start-up
    from .report import carbon

    return carbon.resolve(settings)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _marker_help())
    try:
        settings = settings_mod.build(_raw_settings(config), config.rootpath)
        factory = resolve(settings.meter)
        intensity = _carbon_intensity(settings)
        if settings.gpu_per_worker and _is_xdist_worker(config):
            worker = config.workerinput  # type: ignore[attr-defined]
            scaleout.pin_worker(os.environ, worker["workerid"], int(worker["workercount"]))
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None
    config.stash[setup_key] = (settings, factory, intensity)


def _energy(config: pytest.Config) -> EnergySession:
    """The session's energy state, created on first use."""
    session = config.stash.get(session_key, None)
    if session is None:
        from .session import EnergySession

        settings, factory, intensity = config.stash[setup_key]
        session = EnergySession(settings, factory, carbon=intensity)
        config.stash[session_key] = session
    return session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:  # normally closed already, in pytest_sessionfinish
        try:
            session.close()
        except MeterError as exc:
            sys.stderr.write(f"pytest-energy: {exc}\n")


def _uses_energy(item: pytest.Item) -> bool:
    return (
        "energy" in getattr(item, "fixturenames", ())
        or item.stash.get(budget_key, None) is not None
    )


def _parse_budget(item: pytest.Item) -> EnergyBudget | None:
    marks = list(item.iter_markers_with_node("energy_budget"))
    if not marks:
        return None
    closest_node = marks[0][0]
    if sum(1 for node, _ in marks if node is closest_node) > 1:
        raise ConfigError(
            "is marked energy_budget more than once at the same level; keep one (the marker "
            "closest to the test wins over class or module markers)"
        )
    mark = marks[0][1]
    return budget_mod.from_marker(mark.args, mark.kwargs)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only selected tests count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        try:
            item.stash[budget_key] = _parse_budget(item)
        except ConfigError as exc:
            problems.append(f"{item.nodeid}: @pytest.mark.energy_budget {exc}")
    if problems:
        raise pytest.UsageError(
            "pytest-energy: invalid energy_budget marker arguments:\n  " + "\n  ".join(problems)
        )
    if any(_uses_energy(item) for item in items):
        _start(_energy(config))


def _start(session: EnergySession) -> None:
    """Create the meter and load the baseline up front, so a problem stops the run early."""
    try:
        session.meter  # noqa: B018 - created for its side effect
        session.baseline  # noqa: B018
    except (MeterUnavailable, MeterError, ConfigError, BaselineError) as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None


def _recorder(item: pytest.Item) -> Recorder:
    recorder = item.stash.get(recorder_key, None)
    if recorder is None:
        recorder = _energy(item.config).recorder()
        item.stash[recorder_key] = recorder
    return recorder


@dataclass(frozen=True)
class UpgradeCheck:
    """The outcome of ``energy.compare(current, candidate, ...)``."""

    current: Measurement
    candidate: Measurement
    comparison: Comparison

    @property
    def ratio(self) -> float:
        return self.comparison.ratio

    @property
    def change_pct(self) -> float:
        return self.comparison.change_pct

    @property
    def status(self) -> Status:
        return self.comparison.status


@contextmanager
def _as_test_failure() -> Iterator[None]:
    try:
        yield
    except MeasurementError as exc:
        pytest.fail(f"energy fixture: {exc}", pytrace=False)


class EnergyFixture:
    """What a test receives as ``energy``."""

    def __init__(self, recorder: Recorder, tolerance_pct: float, alpha: float) -> None:
        self._recorder = recorder
        self._tolerance_pct = tolerance_pct
        self._alpha = alpha

    @property
    def meter(self) -> Any:
        """The meter in use (a :class:`pytest_energy.Meter`)."""
        return self._recorder.meter

    @property
    def result(self) -> Measurement | None:
        """This test's windows so far, or ``None`` before the first one."""
        return self._recorder.measurement()

    @contextmanager
    def measure(
        self,
        inferences: int,
        *,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> Iterator[None]:
        """Meter the ``with`` block as one window of ``inferences`` inferences."""
        with _as_test_failure(), self._recorder.window(inferences, tokens, images, sync=sync):
            yield

    def __call__(
        self,
        fn: Callable[..., T],
        *args: Any,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
        **kwargs: Any,
    ) -> T:
        """Call ``fn(*args, **kwargs)`` with warm-up and calibrated, repeated windows.

        ``inferences``, ``tokens`` and ``images`` count what ONE call of ``fn`` does.
        Returns the last call's result.
        """
        with _as_test_failure():
            return self._recorder.run(
                fn, args, kwargs, inferences=inferences, tokens=tokens, images=images, sync=sync
            )

    def compare(
        self,
        current: Callable[[], Any],
        candidate: Callable[[], Any],
        *,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        tolerance: float | str | None = None,
        sync: Sync | None = None,
    ) -> UpgradeCheck:
        """Meter ``current`` and ``candidate`` interleaved; fail if the candidate costs more.

        The same rule as the baseline gate decides: a rise of the median above the
        tolerance, confirmed by the significance test. No stored baseline is involved.
        """
        tolerance_pct = self._tolerance_pct
        if tolerance is not None:
            try:
                tolerance_pct = settings_mod.parse_percent(str(tolerance))
            except ConfigError as exc:
                pytest.fail(f"energy.compare(tolerance=...): {exc}", pytrace=False)
        with _as_test_failure():
            windows_a, windows_b = self._recorder.interleave(
                current, candidate, inferences=inferences, tokens=tokens, images=images, sync=sync
            )
        a = self._recorder.measurement(windows_a)
        b = self._recorder.measurement(windows_b)
        assert a is not None and b is not None
        from .results import fmt_num
        from .stats import Status, compare

        comparison = compare(b.samples, a.samples, tolerance_pct=tolerance_pct, alpha=self._alpha)
        check = UpgradeCheck(current=a, candidate=b, comparison=comparison)
        if comparison.status is Status.REGRESSED:
            pytest.fail(
                f"the candidate costs {comparison.change_pct:+.1f}% energy per inference against "
                f"the current version ({fmt_num(b.kwh_per_1000)} vs {fmt_num(a.kwh_per_1000)} kWh "
                f"per 1,000 inferences, {len(windows_a)} interleaved windows each, tolerance "
                f"{tolerance_pct:g}%, Mann-Whitney U p={comparison.p_regressed:.2g}"
                f"{', low confidence' if comparison.low_confidence else ''}).",
                pytrace=False,
            )
        return check


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> Iterator[EnergyFixture]:
    """Meter inference: ``with energy.measure(inferences=N):`` or ``energy(fn, inferences=N)``.

    Only the measured windows count; fixture setup such as model loading never does.
    """
    item = request.node
    session = _energy(request.config)
    try:
        recorder = _recorder(item)
    except (MeterUnavailable, ConfigError) as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None
    item_budget = item.stash.get(budget_key, None)
    tolerance = session.settings.tolerance_pct
    if item_budget is not None and item_budget.tolerance_pct is not None:
        tolerance = item_budget.tolerance_pct
    yield EnergyFixture(recorder, tolerance, session.settings.alpha)
    recorder.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    item_budget = item.stash.get(budget_key, None)
    if item_budget is None or "energy" in getattr(item, "fixturenames", ()):
        outcome = yield
    else:
        with _recorder(item).window(item_budget.inferences):
            outcome = yield
    recorder = item.stash.get(recorder_key, None)
    if recorder is not None and recorder.short_windows:
        # Warned inside the call phase, so that filterwarnings=error fails this test.
        warnings.warn(
            EnergyWarning(
                f"{recorder.short_windows} energy window(s) were shorter than the meter's "
                "update period, so their figures are unreliable; raise --energy-min-time or "
                "measure more work per window"
            ),
            stacklevel=1,
        )
    return outcome


def _judge(item: pytest.Item) -> EnergyResult | None:
    recorder = item.stash.get(recorder_key, None)
    if recorder is not None:
        recorder.close()  # the verdict is final: a window opened in teardown is an error
    measurement = recorder.measurement() if recorder is not None else None
    if measurement is None:
        return None
    session = _energy(item.config)
    item_budget = item.stash.get(budget_key, None)
    result = session.judge(
        item.nodeid,
        measurement,
        budget_kwh=item_budget.kwh if item_budget else None,
        tolerance_pct=item_budget.tolerance_pct if item_budget else None,
    )
    item.stash[result_key] = result
    return result


def _properties(result: EnergyResult) -> list[tuple[str, object]]:
    m = result.measurement
    props: list[tuple[str, object]] = [
        ("energy_kwh_per_1000", m.kwh_per_1000),
        ("energy_joules_per_inference", m.joules_per_inference),
        ("energy_windows", len(m.windows)),
        ("energy_meter", m.meter),
        ("energy_hardware", m.hardware),
        ("energy_estimated", m.estimated),
        ("energy_verdict", result.verdict),
    ]
    if m.joules_per_token is not None:
        props.append(("energy_joules_per_token", m.joules_per_token))
    if m.joules_per_image is not None:
        props.append(("energy_joules_per_image", m.joules_per_image))
    if result.change_pct is not None:
        props.append(("energy_change_pct", result.change_pct))
    if m.dynamic_kwh_per_1000 is not None:
        props.append(("energy_dynamic_kwh_per_1000", m.dynamic_kwh_per_1000))
    return props


def _section(result: EnergyResult) -> str:
    from .results import fmt_num

    m = result.measurement
    lines = [
        f"kWh per 1,000 inferences: {fmt_num(m.kwh_per_1000)} (median of {len(m.windows)} windows)",
        f"J per inference: {m.joules_per_inference:.4g}",
        f"meter: {m.meter}{' (estimated)' if m.estimated else ''} on {m.hardware}",
        f"verdict: {result.verdict}",
    ]
    if m.dynamic_kwh_per_1000 is not None:
        lines.append(
            "dynamic kWh per 1,000 inferences (idle power subtracted): "
            + fmt_num(m.dynamic_kwh_per_1000)
        )
    if result.baseline is not None:
        lines.append(f"baseline: {fmt_num(result.baseline_kwh_per_1000)} kWh per 1,000 inferences")
    if len(m.domains_j) > 1:
        lines.append(
            "energy by domain: "
            + ", ".join(f"{domain} {joules:.4g} J" for domain, joules in m.domains_j.items())
            + f" (total {m.energy_j:.4g} J)"
        )
    if result.note:
        lines.append(f"note: {result.note}")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when != "call":
        return report
    if call.excinfo is not None and isinstance(call.excinfo.value, EnergyError):
        report.longrepr = f"pytest-energy: {call.excinfo.value}"
        return report
    result = _judge(item)
    item_budget = item.stash.get(budget_key, None)
    if result is None:
        if item_budget is not None and report.passed:
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid} is marked energy_budget and uses the energy fixture, but measured "
                "no window: call energy(fn, ..., inferences=N) or use `with "
                "energy.measure(inferences=N):` around the inference."
            )
        return report
    properties = _properties(result)
    item.user_properties.extend(properties)
    report.user_properties.extend(properties)
    report.sections.append(("energy", _section(result)))
    session = _energy(item.config)
    updating = session.settings.update_baseline
    if report.passed and updating:
        session.keep_for_baseline(result)
    if report.passed and (result.over_budget or (result.regressed and not updating)):
        report.outcome = "failed"
        from .results import failure_message

        report.longrepr = failure_message(result)
    return report


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if setup_key not in config.stash:
        return
    settings = config.stash[setup_key][0]
    wants_files = settings.json_path or settings.markdown_path or settings.html_path
    if session_key not in config.stash and (_is_xdist_worker(config) or not wants_files):
        return  # no energy test ran here, and no report file is due
    energy = _energy(config)
    try:
        energy.close()
    except MeterError as exc:
        energy.warnings.append(str(exc))
    if _is_xdist_worker(config):
        # The controller alone reports and writes the baseline (see pytest_testnodedown).
        from .results import to_dict

        config.workeroutput["pytest_energy"] = {  # type: ignore[attr-defined]
            "selection": energy.selection,
            "results": [
                {"result": to_dict(r), "keep": energy.kept(r)} for r in energy.results.values()
            ],
        }
        return
    if energy.settings.update_baseline and exitstatus == pytest.ExitCode.INTERRUPTED:
        energy.warnings.append(
            "the energy baseline was not updated because the run was interrupted; "
            "run --energy-update-baseline again to completion"
        )
    elif energy.settings.update_baseline:
        try:
            energy.write_baseline()
        except BaselineError as exc:
            energy.write_errors.append(str(exc))
    results = list(energy.results.values())
    s = energy.settings
    step_summary = s.report and results and os.environ.get("GITHUB_STEP_SUMMARY")
    if s.json_path or s.markdown_path or s.html_path or step_summary:
        from .report import ReportError, RunInfo, write_all  # only when a report is asked for

        info = RunInfo.create(results, intensity=energy.carbon, phone_charge_kwh=s.phone_charge_kwh)
        try:
            energy.report_lines = write_all(results, s, info)
        except ReportError as exc:
            energy.write_errors.append(str(exc))
    if energy.write_errors:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist controller: collect one worker's results."""
    output = getattr(node, "workeroutput", {}).get("pytest_energy")
    if not output:
        return
    from .results import from_dict

    energy = _energy(node.config)
    energy.add_selection(output["selection"])
    for record in output["results"]:
        result = from_dict(record["result"])
        energy.results[result.nodeid] = result
        if record["keep"]:
            energy.keep_for_baseline(result)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    energy = config.stash.get(session_key, None)
    if energy is None or _is_xdist_worker(config):
        return
    results = list(energy.results.values())
    if not (results or energy.write_errors or energy.report_lines or energy.warnings):
        return
    from .report import terminal

    terminalreporter.section("energy")
    for selection in energy.selections:
        terminalreporter.write_line(f"pytest-energy: {selection}")
    if energy.settings.report:
        for line in terminal.render(results):
            terminalreporter.write_line(line)
        intensity = energy.carbon
        for line in terminal.totals(
            results,
            intensity.g_per_kwh if intensity else None,
            energy.settings.phone_charge_kwh,
            source=intensity.source if intensity else "",
        ):
            terminalreporter.write_line(line)
    if energy.baseline_written is not None:
        terminalreporter.write_line(
            f"energy baseline: wrote {energy.baseline_written} entr"
            f"{'y' if energy.baseline_written == 1 else 'ies'} to {energy.settings.baseline_path}"
        )
    for line in energy.report_lines:
        terminalreporter.write_line(line)
    for warning in energy.warnings:
        terminalreporter.write_line(f"WARNING: pytest-energy: {warning}", yellow=True)
    for error in energy.write_errors:
        terminalreporter.write_line(f"ERROR: {error}", red=True)
