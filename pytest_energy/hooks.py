"""The pytest layer's plugin objects; their methods are pytest's hooks.

:class:`EnergyPlugin` runs in every process that runs tests: it turns markers into budgets
at collection, serves the ``energy`` fixture, and owns the session's
:class:`~pytest_energy.measurer.Measurer` and :class:`~pytest_energy.judge.Judge`. Once a
session has an energy test it registers :class:`AttemptHooks`, which start a clean
:class:`~pytest_energy.fixture.Attempt` at the setup of every attempt, meter marker-only
tests' call phase, and judge each test in its report; sessions without energy tests never
pay for those per-test hooks. The judged results ride on the test's report
(``report.pytest_energy``, plain values), so under pytest-xdist the controller has them as
soon as the test finishes.

:class:`EnergyReporter` runs where the run is reported (the controller under xdist): it
collects the results from the reports into a :class:`~pytest_energy.collector.Collector`,
writes the baseline and the report files, and prints the summary.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import budget as budget_mod
from .collector import REPORT_ATTR, Collector, Written, payload
from .errors import (
    BaselineError,
    ConfigError,
    EnergyError,
    GateFailure,
    MeasurementError,
)

if TYPE_CHECKING:
    from .fixture import Attempt, EnergyFixture
    from .judge import Judge
    from .measurer import Measurer
    from .meters import MeterFactory
    from .report.carbon import CarbonIntensity
    from .settings import Settings
    from .verdict import Result

attempt_key = pytest.StashKey["Attempt"]()
#: Where a worker leaves its session notes for the controller (``workeroutput``).
WORKER_NOTES = "pytest_energy_notes"


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


def write_past_capture(config: pytest.Config, message: str) -> None:
    """Write a line to the terminal now, even while a test's output is being captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        reporter.write_line(f"pytest-energy: {message}", yellow=True)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(f"pytest-energy: {message}", yellow=True)


class EnergyPlugin:
    """Collection, the fixture, and the session's measuring and judging sides, in every
    process that runs tests."""

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
        self._measurer: Measurer | None = None
        self._judge: Judge | None = None
        self._attempt_hooks: AttemptHooks | None = None

    # -- state -------------------------------------------------------------------------
    @property
    def started(self) -> Measurer | None:
        return self._measurer

    def measurer(self) -> Measurer:
        """The session's measuring side; created on first use, so idle runs import little."""
        if self._measurer is None:
            from .measurer import Measurer

            self._measurer = Measurer(self.settings, self.factory, notify=self._notify)
        return self._measurer

    def judge(self) -> Judge:
        if self._judge is None:
            from .judge import Judge

            self._judge = Judge(self.settings)
        return self._judge

    def _notify(self, message: str) -> None:
        """A test waits (for a device lock): say so now, past output capture."""
        write_past_capture(self.config, message)

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
                item.stash[attempt_key] = self.new_attempt(item, parsed)
                candidates += 1
        if problems:
            raise pytest.UsageError(
                "pytest-energy: invalid energy_budget marker arguments:\n  " + "\n  ".join(problems)
            )
        if candidates:
            self.measure_tests()
        if candidates and not self.settings.disable and _runs_tests(config):
            try:  # a corrupt baseline stops the run before any test; no meter is touched
                self.judge().baseline  # noqa: B018
            except BaselineError as exc:
                raise pytest.UsageError(f"pytest-energy: {exc}") from None

    def new_attempt(self, item: pytest.Item, parsed: budget_mod.EnergyBudget | None) -> Attempt:
        from .fixture import Attempt  # only sessions with energy tests import the fixture

        disabled = self.settings.disable
        return Attempt(
            nodeid=item.nodeid,
            budget=parsed,
            measurer=None if disabled else self.measurer,
            judge=None if disabled else self.judge,
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
            attempt = self.new_attempt(item, None)
            item.stash[attempt_key] = attempt
        self.measure_tests()  # a test may ask for the fixture by name at run time
        from .fixture import EnergyFixture

        return EnergyFixture(attempt, skip=pytest.skip)

    # -- end -----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        measurer = self._measurer
        if measurer is None:
            return
        notes = measurer.notes  # before close: the lock fallback is the locks'
        problem = measurer.close()
        notes += [problem] if problem else []
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput[WORKER_NOTES] = notes
        else:
            reporter = self.config.pluginmanager.get_plugin("energy-reporter")
            if reporter is not None:
                for note in notes:
                    reporter.collector.add_note(note)


class AttemptHooks:
    """The hooks of each test attempt, registered once a session has an energy test."""

    def __init__(self, plugin: EnergyPlugin) -> None:
        self.plugin = plugin

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        previous = self.plugin.attempt(item)
        if previous is not None:  # every attempt (a rerun too) starts clean
            item.stash[attempt_key] = self.plugin.new_attempt(item, previous.budget)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        from .counts import Counts

        attempt = self.plugin.attempt(item)
        if (
            attempt is None
            or attempt.budget is None
            or attempt.fixture_used
            or attempt.measurer is None
        ):
            outcome = yield
        else:  # marker only: the call phase is the window, also when the test fails
            failure: BaseException | None = None
            funcargs = getattr(item, "funcargs", {})
            with attempt.recorder().window(Counts(attempt.budget.inferences), inspect=[funcargs]):
                try:
                    outcome = yield
                except BaseException as exc:  # re-raised below, once the window is closed
                    failure = exc
            if failure is not None:
                raise failure
        recorder = attempt.started if attempt is not None else None
        if recorder is not None and recorder.meter.short_windows:
            # Warned inside the call phase, so that filterwarnings=error fails this test.
            warnings.warn(
                EnergyWarning(
                    f"{recorder.meter.short_windows} energy window(s) were shorter than the "
                    "meter's update period, so their figures are unreliable; raise "
                    "--energy-min-time or measure more work per window"
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
        if report.when != "call" or attempt is None or attempt.measurer is None:
            return report
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, GateFailure):
            report.longrepr = str(error)
        elif isinstance(error, MeasurementError):
            report.longrepr = f"energy fixture: {error}"
        elif isinstance(error, EnergyError):
            report.longrepr = f"pytest-energy: {error}"
        try:
            results = self._judge(item, attempt, report)
        except EnergyError as exc:
            report.outcome = "failed"
            report.longrepr = f"pytest-energy: {exc}"
            results = []
        measurer = self.plugin.measurer()
        errors = [str(measurer.error)] if measurer.error is not None else []
        if results or errors:
            data = payload(results, measurer.selection, measurer.notes, errors)
            setattr(report, REPORT_ATTR, data)
        return report

    def _judge(
        self, item: pytest.Item, attempt: Attempt, report: pytest.TestReport
    ) -> list[Result]:
        from . import gate
        from .verdict import Result

        settings = self.plugin.settings
        record = attempt.finish()  # the verdict is final: no window after it
        if record is None and not attempt.compares:
            if attempt.budget is not None and attempt.fixture_used and report.passed:
                report.outcome = "failed"
                report.longrepr = (
                    f"{item.nodeid} is marked energy_budget and uses the energy fixture, but "
                    "measured no window: call energy(fn, ..., inferences=N) or use `with "
                    "energy.measure(inferences=N):` around the inference."
                )
            return []
        judged: list[Result] = []
        if record is not None:
            budget = attempt.budget
            verdict = self.plugin.judge().judge(
                record,
                budget_kwh=budget.kwh if budget else None,
                marker_tolerance_pct=attempt.marker_tolerance_pct,
            )
            judged.append(Result(record, verdict))
        judged += attempt.compares
        final: list[Result] = []
        outcome = str(report.outcome)
        messages: list[str] = []
        for result in judged:
            decision = gate.decide(
                result, outcome, updating=settings.update_baseline, strict=settings.strict
            )
            final.append(decision.result)
            if decision.message:
                messages.append(decision.message)
            item.user_properties.extend(decision.properties)
            report.user_properties.extend(decision.properties)
        if messages:
            report.outcome = "failed"
            report.longrepr = "\n".join(messages)
        outcome = str(report.outcome)
        final = [r.with_outcome(outcome, r.baseline_update if outcome == "passed" else "")
                 for r in final]  # fmt: skip
        verbose = item.config.get_verbosity() > 0
        for result in final:
            quiet = result.verdict.status == "new" and outcome == "failed" and not messages
            if not quiet or verbose:
                report.sections.append(("energy", gate.section(result)))
        return final


class InterruptGuard:
    """Ctrl-C during the session's end (the baseline write, the terminal summary, another
    plugin's summary code) ends the run as pytest ends an interrupted one, with its one-line
    summary, instead of a raw traceback. The outermost wrapper of ``pytest_sessionfinish``,
    which also wraps the terminal summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        try:
            return (yield)
        except KeyboardInterrupt:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            self.config.hook.pytest_keyboard_interrupt(excinfo=pytest.ExceptionInfo.from_current())
            return None


class EnergyReporter:
    """Collects the results and reports the run, where the run is reported."""

    def __init__(self, plugin: EnergyPlugin, config: pytest.Config) -> None:
        self.plugin = plugin
        self.config = config
        self.collector = Collector()
        self.written: Written | None = None
        self.report_lines: list[str] = []
        self.errors: list[str] = []
        self.interrupted = False

    @property
    def settings(self) -> Settings:
        return self.plugin.settings

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        rerun = str(report.outcome) == "rerun"  # pytest-rerunfailures: a retried attempt
        if report.when != "call" or rerun or not data:
            return
        try:
            self.collector.collect(data)
        except Exception as exc:  # a bug: say so once, and lose only this test's figures
            self.errors.append(
                f"pytest-energy: the energy results of {report.nodeid} could not be read on "
                f"this side ({type(exc).__name__}: {exc}); they are missing from the reports. "
                "This is a bug in pytest-energy: please report it with the test id and meter."
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """An xdist worker finished: take the notes of its session end (a meter that failed
        to close ...)."""
        for note in getattr(node, "workeroutput", {}).get(WORKER_NOTES, ()):
            self.collector.add_note(note)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.settings
        if s.disable or not _runs_tests(self.config):
            return
        if self.plugin.started is None and not self.collector.results and not s.report_paths:
            return  # no energy test ran, and no report file is due
        try:
            self._finish(exitstatus)
        except KeyboardInterrupt:
            # Ctrl-C while the baseline or a report was being written: say what was (not)
            # written, and end as pytest ends an interrupted run
            self.interrupted = True
            self.errors.append(
                "interrupted while writing the energy baseline or reports; the baseline file "
                "is the old one or the whole new one, never a mix. Run again to write them"
            )
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            self.config.hook.pytest_keyboard_interrupt(excinfo=pytest.ExceptionInfo.from_current())
            return
        if self.errors:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _finish(self, exitstatus: int) -> None:
        s = self.settings
        if s.update_baseline and exitstatus == pytest.ExitCode.INTERRUPTED:
            self.collector.add_note(
                "the energy baseline was not updated because the run was interrupted; "
                "run --energy-update-baseline again to completion"
            )
        elif s.update_baseline:
            try:
                self.written = self.collector.write_baseline(
                    s, on_wait=lambda message: write_past_capture(self.config, message)
                )
            except BaselineError as exc:
                self.errors.append(str(exc))
        results = self.collector.all()
        step_summary = s.report and results and os.environ.get("GITHUB_STEP_SUMMARY")
        if s.report_paths or step_summary:
            from .report import RunInfo, write_reports  # only when a report is asked for

            info = RunInfo.create(
                results,
                settings=s,
                intensity=self.plugin.carbon,
            )
            lines, errors = write_reports(results, s, info)
            self.report_lines += lines
            self.errors += errors

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        collector = self.collector
        measurer = self.plugin.started
        if measurer is not None:
            collector.add_selection(measurer.selection)
            for note in measurer.notes:
                collector.add_note(note)
            if measurer.error is not None:
                collector.add_error(str(measurer.error))
        results = collector.all()
        errors = [f"pytest-energy: {e}" for e in collector.errors] + self.errors
        if not (results or errors or self.report_lines or collector.notes):
            return
        from .report import summary

        terminalreporter.section("energy")
        for line, colour in summary.lines(
            results,
            settings=self.settings,
            selections=collector.selections,
            notes=collector.notes,
            written=self.written,
            report_lines=self.report_lines,
            errors=errors,
            carbon=self.plugin.carbon,
        ):
            terminalreporter.write_line(line, **({colour: True} if colour else {}))
