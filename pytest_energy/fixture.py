"""What a test receives as ``energy``, and the state of one test attempt. No pytest here.

One :class:`Attempt` is made at the setup of every attempt of a test (a rerun under
pytest-rerunfailures starts clean). It holds the test's budget, creates the recorder on
the first window (and with it, the session's meter), and keeps the judged record. The
pytest layer stores it in ``item.stash`` and hands an :class:`EnergyFixture` to the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .budget import EnergyBudget
from .errors import ConfigError, GateFailure, MeasurementError

if TYPE_CHECKING:
    from .measure import Measurement, Recorder, Sync
    from .results import EnergyResult
    from .session import EnergySession
    from .stats import Comparison, Status

T = TypeVar("T")


@dataclass
class Attempt:
    """One attempt of one test: its budget, its recorder and its judged record."""

    nodeid: str
    budget: EnergyBudget | None
    session: Callable[[], EnergySession] | None
    """The session's energy state, created on first use; ``None`` under --energy-disable."""
    fixture_used: bool = False
    """Whether the plugin's own ``energy`` fixture was set up for this attempt."""
    result: EnergyResult | None = None
    finished: bool = False
    """Set when the test's call phase ended: no window may start after the verdict."""
    _recorder: Recorder | None = field(default=None, repr=False)

    @property
    def marker_tolerance_pct(self) -> float | None:
        return self.budget.tolerance_pct if self.budget else None

    def recorder(self) -> Recorder:
        """The attempt's recorder; the first call creates the meter."""
        if self.session is None:
            raise MeasurementError("energy measurement is disabled (--energy-disable)")
        if self.finished:
            raise MeasurementError(
                "the energy fixture was used after its test finished; measure inside the test "
                "function, not in a finalizer or a later test"
            )
        if self._recorder is None:
            self._recorder = self.session().recorder(self.nodeid, self.marker_tolerance_pct)
        return self._recorder

    @property
    def started(self) -> Recorder | None:
        """The recorder, if a window was asked for."""
        return self._recorder

    def finish(self) -> Measurement | None:
        """Close the recorder (no window after the verdict) and return what it measured."""
        self.finished = True
        if self._recorder is None:
            return None
        self._recorder.close()
        return self._recorder.measurement()


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


def _rounds(count: int) -> str:
    return "one window each" if count == 1 else f"{count} ABBA-interleaved windows each"


class EnergyFixture:
    """What a test receives as ``energy``.

    ``energy(fn, *args, inferences=N, **kwargs)`` and ``energy.call(fn, args=(),
    kwargs={}, inferences=N)`` meter repeated calls; ``with energy.measure(inferences=N):``
    meters one block; ``energy.compare(current, candidate, inferences=N)`` meters two
    callables interleaved. Under ``--energy-disable`` the code runs once, unmetered.
    """

    def __init__(self, attempt: Attempt, *, skip: Callable[[str], NoReturn]) -> None:
        self._attempt = attempt
        self._skip = skip
        attempt.fixture_used = True

    @property
    def disabled(self) -> bool:
        return self._attempt.session is None

    @property
    def meter(self) -> Any:
        """The meter in use (a :class:`pytest_energy.Meter`), ``None`` when disabled."""
        return None if self.disabled else self._attempt.recorder().meter

    @property
    def result(self) -> Measurement | None:
        """This test's windows so far, or ``None`` before the first one."""
        recorder = self._attempt.started
        return recorder.measurement() if recorder is not None else None

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
        if self.disabled:
            yield
            return
        with self._attempt.recorder().window(inferences, tokens, images, sync=sync):
            yield

    def call(
        self,
        fn: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        inferences: int,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> T:
        """Call ``fn(*args, **kwargs)`` with warm-up and calibrated, repeated windows.

        The unambiguous form of ``energy(fn, ...)``: ``fn``'s own arguments travel in
        ``args`` and ``kwargs``, so ``fn`` may take ``images=`` or ``tokens=`` itself.
        ``inferences``, ``tokens`` and ``images`` count what ONE call of ``fn`` does.
        Returns the last call's result.
        """
        kwargs = dict(kwargs or {})
        if self.disabled:
            return fn(*args, **kwargs)
        return self._attempt.recorder().run(
            fn, args, kwargs, inferences=inferences, tokens=tokens, images=images, sync=sync
        )

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
        """``energy.call(fn, args, kwargs, ...)`` with ``fn``'s arguments inline.

        ``inferences``, ``tokens``, ``images`` and ``sync`` belong to the fixture; when
        ``fn`` takes an argument of one of those names, use :meth:`call`.
        """
        return self.call(
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
        """Meter ``current`` and ``candidate`` in ABBA order; fail if the candidate costs more.

        Adjacent windows of the two form pairs, and the paired ratios decide: a rise above
        the tolerance, confirmed by a one-sided test on the pairs (for a deterministic
        meter, the ratio alone). No stored baseline is involved.
        """
        if self.disabled:
            self._skip("energy.compare needs a meter, and --energy-disable is set")
        from .results import fmt_num
        from .settings import parse_percent
        from .stats import Status, compare, compare_paired

        session = self._attempt.session() if self._attempt.session else None
        assert session is not None
        marker = self._attempt.marker_tolerance_pct
        if tolerance is not None:
            try:
                marker = parse_percent(str(tolerance))
            except ConfigError as exc:
                raise MeasurementError(f"energy.compare(tolerance=...): {exc}") from None
        recorder = self._attempt.recorder()
        tolerance_pct = session.tolerance_pct(marker)
        windows_a, windows_b = recorder.interleave(
            current,
            candidate,
            inferences=inferences,
            tokens=tokens,
            images=images,
            sync=sync,
            rounds=session.compare_rounds(),
        )
        a = recorder.measurement(windows_a)
        b = recorder.measurement(windows_b)
        assert a is not None and b is not None
        alpha = session.settings.alpha
        if session.deterministic():
            comparison = compare(
                b.samples, a.samples, tolerance_pct=tolerance_pct, alpha=alpha, deterministic=True
            )
            evidence = "deterministic meter: the ratio decides"
        else:
            comparison = compare_paired(
                a.samples, b.samples, tolerance_pct=tolerance_pct, alpha=alpha
            )
            evidence = f"paired one-sided test p={comparison.p_regressed:.2g}"
        if comparison.status is Status.REGRESSED:
            raise GateFailure(
                f"the candidate costs {comparison.change_pct:+.1f}% energy per inference against "
                f"the current version ({fmt_num(b.kwh_per_1000)} vs {fmt_num(a.kwh_per_1000)} kWh "
                f"per 1,000 inferences, {_rounds(len(windows_a))}, tolerance "
                f"{tolerance_pct:g}%, {evidence}"
                f"{', low confidence' if comparison.low_confidence else ''})."
            )
        return UpgradeCheck(current=a, candidate=b, comparison=comparison)
