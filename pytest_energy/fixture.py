"""What a test receives as ``energy``, and the state of one test attempt. No pytest here.

One :class:`Attempt` is made at the setup of every attempt of a test (a rerun under
pytest-rerunfailures starts clean). It holds the test's budget, creates the recorder on
the first window (and with it, the session's meter), and keeps the results of
``energy.compare``. The pytest layer stores it in ``item.stash`` and hands an
:class:`EnergyFixture` to the test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .budget import EnergyBudget
from .counts import Counts
from .errors import ConfigError, GateFailure, MeasurementError

if TYPE_CHECKING:
    from .judge import Judge
    from .measure import Probe, Sync
    from .measurer import Measurer
    from .record import Record
    from .schedule import Recorder
    from .stats import Comparison, Status
    from .verdict import Result

T = TypeVar("T")


@dataclass
class Attempt:
    """One attempt of one test: its budget, its recorder and its ``energy.compare`` results."""

    nodeid: str
    budget: EnergyBudget | None
    measurer: Callable[[], Measurer] | None
    """The session's measuring side, created on first use; ``None`` under --energy-disable."""
    judge: Callable[[], Judge] | None = None
    fixture_used: bool = False
    """Whether the plugin's own ``energy`` fixture was set up for this attempt."""
    compares: list[Result] = field(default_factory=list)
    """The verdicts of this attempt's ``energy.compare`` calls."""
    finished: bool = False
    """Set when the test's call phase ended: no window may start after the verdict."""
    _recorder: Recorder | None = field(default=None, repr=False)

    @property
    def marker_tolerance_pct(self) -> float | None:
        return self.budget.tolerance_pct if self.budget else None

    def _check_open(self) -> tuple[Measurer, Judge]:
        if self.measurer is None or self.judge is None:
            raise MeasurementError("energy measurement is disabled (--energy-disable)")
        if self.finished:
            raise MeasurementError(
                "the energy fixture was used after its test finished; measure inside the test "
                "function, not in a finalizer or a later test"
            )
        return self.measurer(), self.judge()

    def recorder(self) -> Recorder:
        """The attempt's recorder; the first call creates the meter."""
        measurer, judge = self._check_open()
        if self._recorder is None:
            settled = judge.settled(self.nodeid, measurer.provenance, self.marker_tolerance_pct)
            self._recorder = measurer.recorder(measurer.plan(settled))
        return self._recorder

    def compare_recorder(self) -> Recorder:
        """A recorder for ``energy.compare``: fixed rounds, so both sides get the same."""
        measurer, _ = self._check_open()
        own = self.recorder()  # the attempt's guard against use after the test
        del own
        return measurer.recorder(measurer.plan(None, compare=True))

    @property
    def started(self) -> Recorder | None:
        """The recorder, if a window was asked for."""
        return self._recorder

    def finish(self) -> Record | None:
        """Close the recorder (no window after the verdict) and return what it recorded."""
        self.finished = True
        if self._recorder is None:
            return None
        self._recorder.close()
        return self._recorder.record(self.nodeid)


@dataclass(frozen=True)
class UpgradeCheck:
    """The outcome of ``energy.compare(current, candidate, ...)``."""

    current: Record
    candidate: Record
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


def _caller_locals(depth: int) -> object:
    try:
        return dict(sys._getframe(depth).f_locals)
    except (ValueError, AttributeError):  # no such frame, or no frame introspection
        return None


class EnergyFixture:
    """What a test receives as ``energy``.

    ``energy(fn, *args, inferences=N, **kwargs)`` and ``energy.call(fn, args=(),
    kwargs={}, inferences=N)`` meter repeated calls; ``with energy.measure(inferences=N):``
    meters one block; ``energy.generate(model, ...)`` meters a prefill and its decode;
    ``energy.compare(current, candidate, inferences=N)`` meters two callables interleaved.
    Counts that are not given are inferred from what the code returns (``produced``).
    Under ``--energy-disable`` the code runs once, unmetered.
    """

    def __init__(self, attempt: Attempt, *, skip: Callable[[str], NoReturn]) -> None:
        self._attempt = attempt
        self._skip = skip
        self._probe: Probe | None = None
        attempt.fixture_used = True

    @property
    def disabled(self) -> bool:
        return self._attempt.measurer is None

    @property
    def meter(self) -> Any:
        """The meter in use (a :class:`pytest_energy.Meter`), ``None`` when disabled."""
        return None if self.disabled else self._attempt.recorder().meter.meter

    @property
    def result(self) -> Record | None:
        """This test's record so far, or ``None`` before the first window."""
        recorder = self._attempt.started
        return recorder.record(self._attempt.nodeid) if recorder is not None else None

    @contextmanager
    def measure(
        self,
        inferences: int | None = None,
        *,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> Iterator[None]:
        """Meter the ``with`` block as one window of ``inferences`` inferences; counts not
        given are inferred from what the block hands to :meth:`produced`."""
        if self.disabled:
            yield
            return
        recorder = self._attempt.recorder()
        with recorder.window(Counts(inferences, tokens, images), sync=sync) as probe:
            self._probe = probe
            try:
                yield
            finally:
                self._probe = None
                # the block's local variables, for the meta-device check (after the block)
                probe.inspect.append(_caller_locals(3))

    def produced(self, output: object, fn: object = None, *args: Any, **kwargs: Any) -> None:
        """Inside ``energy.measure()``: what the block produced, to count the inferences,
        tokens or images not given to ``measure()``. ``fn`` and its arguments are the call
        that returned ``output`` (``model.generate, input_ids``, or a pipeline and its
        inputs): counting the new tokens of a generate output needs its prompt."""
        if self.disabled:
            return
        if self._probe is None:
            raise MeasurementError(
                "energy.produced(output) tells an open energy.measure() window what it "
                "produced; call it inside the `with energy.measure():` block"
            )
        if fn is None:
            self._probe.produced(output)
        else:
            self._probe.produced(output, fn, args, kwargs)

    def call(
        self,
        fn: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        inferences: int | None = None,
        tokens: int | None = None,
        images: int | None = None,
        sync: Sync | None = None,
    ) -> T:
        """Call ``fn(*args, **kwargs)`` with warm-up and calibrated, repeated windows.

        The unambiguous form of ``energy(fn, ...)``: ``fn``'s own arguments travel in
        ``args`` and ``kwargs``, so ``fn`` may take ``images=`` or ``tokens=`` itself.
        ``inferences``, ``tokens`` and ``images`` count what ONE call of ``fn`` does; those
        not given are inferred from what ``fn`` returns. Returns the last call's result.
        """
        kwargs = dict(kwargs or {})
        if self.disabled:
            return fn(*args, **kwargs)

        def body(probe: Probe) -> T:
            return fn(*args, **kwargs)

        return self._attempt.recorder().run(
            body,
            Counts(inferences, tokens, images),
            sync=sync,
            fn=fn,
            args=args,
            kwargs=kwargs,
        )

    def __call__(
        self,
        fn: Callable[..., T],
        *args: Any,
        inferences: int | None = None,
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

    def generate(
        self,
        model: Any,
        *,
        batch_size: int,
        prompt_tokens: int,
        new_tokens: int,
        sync: Sync | None = None,
    ) -> Any:
        """Meter a prefill of ``prompt_tokens`` synthetic tokens per sequence followed by
        exactly ``new_tokens`` greedy decode steps with a KV cache, on a transformers causal
        LM (on ``meta`` for the roofline meter, or real). The record counts
        ``inferences = batch_size`` and ``tokens = batch_size * new_tokens``, and splits the
        energy into prefill (J per inference) and decode (J per token)."""
        from . import generation

        generation.check(model, batch_size, prompt_tokens, new_tokens)

        def run(mark: Callable[[str], None], meter: object) -> Any:
            return generation.run(
                model,
                batch_size=batch_size,
                prompt_tokens=prompt_tokens,
                new_tokens=new_tokens,
                mark=mark,
                meter=meter,
            )

        if self.disabled:
            return run(lambda phase: None, None)
        recorder = self._attempt.recorder()

        def body(probe: Probe) -> Any:
            out = run(probe.mark, recorder.meter.meter)
            probe.mark("decode")
            return out

        return recorder.run(
            body,
            Counts(batch_size, batch_size * new_tokens, None),
            sync=sync,
            fn=model,
        )

    def compare(
        self,
        current: Callable[[], Any],
        candidate: Callable[[], Any],
        *,
        inferences: int | None = None,
        tokens: int | None = None,
        images: int | None = None,
        tolerance: float | str | None = None,
        sync: Sync | None = None,
    ) -> UpgradeCheck:
        """Meter ``current`` and ``candidate`` in ABBA order; fail if the candidate costs more.

        Adjacent windows of the two form pairs, and the paired ratios decide: a rise above
        the tolerance, confirmed by a one-sided test on the pairs (for a deterministic
        meter, the ratio alone). No stored baseline is involved. The verdict is reported
        with the test's other energy figures.
        """
        if self.disabled:
            self._skip("energy.compare needs a meter, and --energy-disable is set")
        from . import gate
        from .settings import parse_percent
        from .verdict import Result

        marker = self._attempt.marker_tolerance_pct
        if tolerance is not None:
            try:
                marker = parse_percent(str(tolerance))
            except ConfigError as exc:
                raise MeasurementError(f"energy.compare(tolerance=...): {exc}") from None
        recorder = self._attempt.compare_recorder()
        windows_a, windows_b = recorder.interleave(
            current,
            candidate,
            Counts(inferences, tokens, images),
            rounds=recorder.plan.rounds,
            sync=sync,
        )
        nodeid = self._attempt.nodeid
        a = recorder.record(nodeid, windows_a)
        b = recorder.record(nodeid, windows_b)
        assert a is not None and b is not None and self._attempt.judge is not None
        verdict = self._attempt.judge().judge_compare(b, a, tolerance_pct=marker)
        self._attempt.compares.append(Result(record=b, verdict=verdict))
        assert verdict.comparison is not None
        if verdict.regressed:
            raise GateFailure(gate.failure_text(b, verdict))
        return UpgradeCheck(current=a, candidate=b, comparison=verdict.comparison)
