"""The pytest layer's plugin objects; their methods are pytest's hooks.

:class:`EnergyPlugin` runs in every process that runs tests: it holds the session's energy
state, turns markers into budgets at collection and serves the ``energy`` fixture. Once a
session has an energy test it registers :class:`AttemptHooks`, which start a clean
:class:`~pytest_energy.fixture.Attempt` at the setup of every attempt, meter marker-only
tests' call phase, and judge each test in its report; sessions without energy tests never
pay for those per-test hooks. The judged record rides on the test's report
(``report.pytest_energy``, plain values), so under pytest-xdist the controller has it as
soon as the test finishes.

:class:`EnergyReporter` runs where the run is reported (the controller under xdist): it
collects the records from the reports, writes the baseline and the report files, and
prints the summary.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import budget as budget_mod
from .errors import (
    BaselineError,
    ConfigError,
    EnergyError,
    GateFailure,
    MeasurementError,
    MeterError,
)

if TYPE_CHECKING:
    from .fixture import Attempt, EnergyFixture
    from .meters import MeterFactory
    from .report.carbon import CarbonIntensity
    from .session import EnergySession
    from .settings import Settings

attempt_key = pytest.StashKey["Attempt"]()
#: The attribute of a test's report that carries its energy record.
REPORT_ATTR = "pytest_energy"


class EnergyWarning(pytest.PytestWarning):
    """Something about a measurement the user should know, e.g. windows too short."""


def parse_budget(item: pytest.Item) -> budget_mod.EnergyBudget | None:
    """The test's ``energy_budget``: a ``pytest.param(..., marks=...)`` marker wins over the
    function's, the function's over its class's and module's."""
    callspec = getattr(item, "callspec", None)
    param_marks = [m for m in getattr(callspec, "marks", ()) if m.name == "energy_budget"]
    if len(param_marks) > 1:
        raise ConfigError("is given more than one energy_budget marker in one pytest.param")
    if param_marks:
        mark = param_marks[0]
        return budget_mod.from_marker(mark.args, mark.kwargs)
    marks = list(item.iter_markers_with_node("energy_budget"))
    if not marks:
        return None
    closest_node = marks[0][0]
    if sum(1 for node, _ in marks if node is closest_node) > 1:
        raise ConfigError(
            "is marked energy_budget more than once at the same level; keep one (a "
            "pytest.param marker wins over the function's, the function's over a class or "
            "module marker)"
        )
    mark = marks[0][1]
    return budget_mod.from_marker(mark.args, mark.kwargs)


def _runs_tests(config: pytest.Config) -> bool:
    """False for runs that only list or plan: --co, --setup-plan, --fixtures, ..."""
    option = config.option
    return not any(
        getattr(option, name, False)
        for name in ("collectonly", "setupplan", "showfixtures", "show_fixtures_per_test")
    )


class EnergyPlugin:
    """The session's energy state, collection and the fixture, in every process that runs
    tests."""

    def __init__(
        self,
        settings: Settings,
        factory: MeterFactory,
        carbon: CarbonIntensity | None,
        config: pytest.Config,
    ) -> None:
        self.config = config
        self.settings = settings
        self.factory = factory
        self.carbon = carbon
        self._session: EnergySession | None = None
        self._attempt_hooks: AttemptHooks | None = None

    # -- state -------------------------------------------------------------------------
    @property
    def started(self) -> EnergySession | None:
        return self._session

    def session(self) -> EnergySession:
        """The session's energy state; created on first use, so idle runs import little."""
        if self._session is None:
            from .session import EnergySession

            self._session = EnergySession(
                self.settings, self.factory, carbon=self.carbon, notify=self._notify
            )
        return self._session

    def _notify(self, message: str) -> None:
        """Write a line now, past output capturing (a test waiting for a device lock)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"pytest-energy: {message}", yellow=True)

    def attempt(self, item: pytest.Item) -> Attempt | None:
        return item.stash.get(attempt_key, None)

    # -- collection --------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)  # after -k/-m deselection: only selected tests count
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        problems = []
        candidates = 0
        for item in items:
            try:
                parsed = parse_budget(item)
            except ConfigError as exc:
                problems.append(f"{item.nodeid}: @pytest.mark.energy_budget {exc}")
                continue
            if parsed is not None or "energy" in getattr(item, "fixturenames", ()):
                # only these can measure: other tests carry no energy state at all
                item.stash[attempt_key] = self._new_attempt(item, parsed)
                candidates += 1
        if problems:
            raise pytest.UsageError(
                "pytest-energy: invalid energy_budget marker arguments:\n  " + "\n  ".join(problems)
            )
        if candidates:
            self.measure_tests()
        if candidates and not self.settings.disable and _runs_tests(config):
            try:  # a corrupt baseline stops the run before any test; no meter is touched
                self.session().baseline  # noqa: B018
            except BaselineError as exc:
                raise pytest.UsageError(f"pytest-energy: {exc}") from None

    def _new_attempt(self, item: pytest.Item, parsed: budget_mod.EnergyBudget | None) -> Attempt:
        from .fixture import Attempt  # only sessions with energy tests import the fixture

        return Attempt(
            nodeid=item.nodeid,
            budget=parsed,
            session=None if self.settings.disable else self.session,
        )

    def measure_tests(self) -> None:
        """Register the per-test hooks: only sessions with energy tests pay for them."""
        if self.settings.disable or self._attempt_hooks is not None:
            return
        self._attempt_hooks = AttemptHooks(self)
        self.config.pluginmanager.register(self._attempt_hooks, "energy-attempts")

    def fixture(self, request: pytest.FixtureRequest) -> EnergyFixture:
        item = request.node
        attempt = self.attempt(item)
        if attempt is None:  # a test outside the collected items (rare plugins do this)
            attempt = self._new_attempt(item, None)
            item.stash[attempt_key] = attempt
        self.measure_tests()  # a test may ask for the fixture by name at run time
        from .fixture import EnergyFixture

        return EnergyFixture(attempt, skip=pytest.skip)

    # -- end -----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        energy = self._session
        if energy is None:
            return
        try:
            energy.close()
        except MeterError as exc:
            energy.warnings.append(str(exc))


class AttemptHooks:
    """The hooks of each test attempt, registered once a session has an energy test."""

    def __init__(self, plugin: EnergyPlugin) -> None:
        self.plugin = plugin

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        previous = self.plugin.attempt(item)
        if previous is not None:  # every attempt (a rerun too) starts clean
            item.stash[attempt_key] = self.plugin._new_attempt(item, previous.budget)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        attempt = self.plugin.attempt(item)
        if (
            attempt is None
            or attempt.budget is None
            or attempt.fixture_used
            or attempt.session is None
        ):
            outcome = yield
        else:  # marker only: the call phase is the window, also when the test fails
            failure: BaseException | None = None
            with attempt.recorder().window(attempt.budget.inferences):
                try:
                    outcome = yield
                except BaseException as exc:  # re-raised below, once the window is closed
                    failure = exc
            if failure is not None:
                raise failure
        recorder = attempt.started if attempt is not None else None
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

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        attempt = self.plugin.attempt(item)
        if report.when != "call" or attempt is None or attempt.session is None:
            return report
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, GateFailure):
            report.longrepr = str(error)
        elif isinstance(error, MeasurementError):
            report.longrepr = f"energy fixture: {error}"
        elif isinstance(error, EnergyError):
            report.longrepr = f"pytest-energy: {error}"
        try:
            self._judge(item, attempt, report)
        except EnergyError as exc:
            report.outcome = "failed"
            report.longrepr = f"pytest-energy: {exc}"
        return report

    def _judge(self, item: pytest.Item, attempt: Attempt, report: pytest.TestReport) -> None:
        from . import gate
        from .results import to_dict

        measurement = attempt.finish()  # the verdict is final: no window after it
        if measurement is None:
            if attempt.budget is not None and attempt.fixture_used and report.passed:
                report.outcome = "failed"
                report.longrepr = (
                    f"{item.nodeid} is marked energy_budget and uses the energy fixture, but "
                    "measured no window: call energy(fn, ..., inferences=N) or use `with "
                    "energy.measure(inferences=N):` around the inference."
                )
            return
        session = self.plugin.session()
        budget = attempt.budget
        result = session.judge(
            item.nodeid,
            measurement,
            budget_kwh=budget.kwh if budget else None,
            marker_tolerance_pct=attempt.marker_tolerance_pct,
        )
        decision = gate.decide(
            result,
            report.outcome,
            updating=self.plugin.settings.update_baseline,
            strict=self.plugin.settings.strict,
        )
        attempt.result = decision.result
        report.outcome = decision.outcome  # type: ignore[assignment]
        if decision.message:
            report.longrepr = decision.message
        item.user_properties.extend(decision.properties)
        report.user_properties.extend(decision.properties)
        report.sections.append(("energy", gate.section(decision.result)))
        setattr(
            report,
            REPORT_ATTR,
            {"record": to_dict(decision.result), "selection": session.selection},
        )


class EnergyReporter:
    """Collects the records and reports the run, where the run is reported."""

    def __init__(self, plugin: EnergyPlugin, config: pytest.Config) -> None:
        self.plugin = plugin
        self.config = config

    @property
    def settings(self) -> Settings:
        return self.plugin.settings

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        rerun = str(report.outcome) == "rerun"  # pytest-rerunfailures: a retried attempt
        if report.when != "call" or rerun or not data:
            return
        from .results import from_dict

        self.plugin.session().collect(from_dict(data["record"]), data.get("selection", ""))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.settings
        if s.disable or not _runs_tests(self.config):
            return
        energy = self.plugin.started
        if energy is None and not s.report_paths:
            return  # no energy test ran, and no report file is due
        energy = self.plugin.session()
        if s.update_baseline and exitstatus == pytest.ExitCode.INTERRUPTED:
            energy.warnings.append(
                "the energy baseline was not updated because the run was interrupted; "
                "run --energy-update-baseline again to completion"
            )
        elif s.update_baseline:
            try:
                energy.write_baseline()
            except BaselineError as exc:
                energy.write_errors.append(str(exc))
        results = list(energy.results.values())
        step_summary = s.report and results and os.environ.get("GITHUB_STEP_SUMMARY")
        if s.report_paths or step_summary:
            from .report import RunInfo, write_reports  # only when a report is asked for

            info = RunInfo.create(
                results,
                intensity=energy.carbon,
                phone_charge_kwh=s.phone_charge_kwh,
                tolerance_pct=s.tolerance_pct,
                alpha=s.alpha,
            )
            energy.report_lines, errors = write_reports(results, s, info)
            energy.write_errors += errors
        if energy.write_errors:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        energy = self.plugin.started
        if energy is None:
            return
        results = list(energy.results.values())
        errors = list(energy.write_errors)
        if energy.meter_error is not None:
            errors.insert(0, f"pytest-energy: {energy.meter_error}")
        if not (results or errors or energy.report_lines or energy.warnings):
            return
        from .report import terminal

        write = terminalreporter.write_line
        terminalreporter.section("energy")
        for selection in energy.selections:
            write(f"pytest-energy: {selection}")
        if self.settings.report:
            for line in terminal.render(results):
                write(line)
            intensity = energy.carbon
            for line in terminal.totals(
                results,
                intensity.g_per_kwh if intensity else None,
                self.settings.phone_charge_kwh,
                source=intensity.source if intensity else "",
            ):
                write(line)
        ungated = energy.ungated
        if ungated and not self.settings.strict and not self.settings.update_baseline:
            write(
                f"pytest-energy: {len(ungated)} energy test(s) had no comparable baseline entry "
                "and were not gated; record them with --energy-update-baseline, or use "
                "--energy-strict to fail such tests"
            )
        if energy.baseline_written is not None:
            write(
                f"energy baseline: wrote {energy.baseline_written} entr"
                f"{'y' if energy.baseline_written == 1 else 'ies'} to {self.settings.baseline_path}"
            )
        for line in energy.report_lines:
            write(line)
        for warning in energy.warnings:
            write(f"WARNING: pytest-energy: {warning}", yellow=True)
        for error in errors:
            write(f"ERROR: {error}", red=True)
