"""Unit tests for pytest_energy.schedule: warm-up, calibration, rounds, interleaving and
counts, with a fake meter and a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fakes import FakeClock, FakeMeter

from pytest_energy import measure
from pytest_energy.counts import Counts
from pytest_energy.errors import MeasurementError
from pytest_energy.measure import Probe, WindowMeter, provenance_of
from pytest_energy.record import Work
from pytest_energy.schedule import Recorder, WindowPlan


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(measure, "time", fake)
    return fake


def no_sync() -> None:
    pass


def recorder(
    meter: FakeMeter,
    *,
    rounds: int = 3,
    warmup: int = 0,
    min_time_s: float | None = 0.0,
    sleeps: list[float] | None = None,
    guard: Any = None,
    settled: Any = None,
    max_rounds: int | None = None,
    infer: Any = None,
    rng: random.Random | None = None,
    sync: Any = no_sync,
) -> Recorder:
    sleep_log = sleeps if sleeps is not None else []
    kwargs = {"guard": guard} if guard is not None else {}
    return Recorder(
        WindowMeter(meter, sync=sync, **kwargs),  # type: ignore[arg-type]
        WindowPlan(
            rounds=rounds,
            warmup=warmup,
            min_time_s=min_time_s,
            max_rounds=max_rounds,
            settled=settled,
        ),
        provenance_of(meter),  # type: ignore[arg-type]
        infer=infer,
        rng=rng,
        sleep=sleep_log.append,
    )


def call(fn: Any) -> Any:
    """``fn`` as the body of a call (ignoring its probe)."""

    def body(probe: Probe) -> Any:
        return fn()

    return body


# -- run: rounds, warm-up, calibration --------------------------------------------------


def test_run_exact_rounds_and_unmetered_warmup() -> None:
    meter = FakeMeter()
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        meter.add(2.0)  # every call costs 2 J
        return len(calls)

    rec = recorder(meter, rounds=5, warmup=3)
    assert rec.run(call(fn), Counts(4)) == 8  # the last call's result
    assert len(calls) == 3 + 5
    assert meter.reads == 2 * 5  # warm-up calls are not metered
    assert [w.energy_j for w in rec.windows] == [2.0] * 5
    assert [w.work for w in rec.windows] == [Work(4)] * 5


def test_tokens_and_images_scale_with_the_calls_of_a_window(clock: FakeClock) -> None:
    meter = FakeMeter()

    def fn() -> None:
        meter.add(1.0)
        clock.advance(0.25)

    rec = recorder(meter, rounds=2, warmup=1, min_time_s=1.0)
    rec.run(call(fn), Counts(2, 10, 3))
    assert [w.work for w in rec.windows] == [Work(8, 40, 12)] * 2


def test_a_slow_first_call_does_not_shrink_the_windows(clock: FakeClock) -> None:
    # A 3 s first call (CUDA context, lazy loading, autotuning), then 0.15 s steady calls:
    # windows must reach the 1.0 s target, not last one 0.15 s call each.
    durations = iter([3.0] + [0.15] * 1000)
    meter = FakeMeter()

    def fn() -> None:
        meter.add(1.0)
        clock.advance(next(durations))

    rec = recorder(meter, rounds=3, warmup=1, min_time_s=1.0)
    rec.run(call(fn), Counts(1))
    assert [w.work.inferences for w in rec.windows] == [7, 7, 7]
    assert all(w.duration_s >= 1.0 for w in rec.windows)


def test_a_window_that_would_be_short_takes_more_calls(clock: FakeClock) -> None:
    # The calibration saw 0.5 s calls; then the code speeds up to 1/16 s per call. Every
    # window still lasts the minimum: a window keeps calling until it has, and the next
    # window starts from as many calls.
    durations = iter([0.5] * 4 + [0.0625] * 1000)
    meter = FakeMeter()

    def fn() -> None:
        meter.add(1.0)
        clock.advance(next(durations))

    rec = recorder(meter, rounds=3, warmup=1, min_time_s=1.0)
    rec.run(call(fn), Counts(1))
    assert all(w.duration_s >= 1.0 for w in rec.windows)
    assert [w.work.inferences for w in rec.windows] == [9, 16, 16]


def test_every_window_of_a_microsecond_callable_lasts_the_minimum() -> None:
    """A callable of a few microseconds, on the real clock: no window is shorter than
    --energy-min-time (0.2 s), however the calibration came out (issue 20, item 7)."""
    meter = FakeMeter()

    def tiny() -> None:
        meter.add(1e-6)

    rec = recorder(meter, rounds=3, warmup=1, min_time_s=0.2)
    rec.run(call(tiny), Counts(1))
    assert len(rec.windows) == 3
    assert min(w.duration_s for w in rec.windows) >= 0.2


def test_without_a_warmup_the_first_timed_calls_calibrate(clock: FakeClock) -> None:
    """--energy-warmup=0 still calibrates (issue 20, item 8): the first window is not one
    call."""
    meter = FakeMeter()
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        meter.add(1.0)
        clock.advance(0.25)

    rec = recorder(meter, rounds=2, warmup=0, min_time_s=1.0)
    rec.run(call(fn), Counts(1))
    assert [w.work.inferences for w in rec.windows] == [4, 4]
    assert len(calls) == 3 + 8  # three timed calibration calls, then two windows of four


@pytest.mark.parametrize(
    ("call_s", "min_time_s", "expected", "timed"),
    [
        (0.25, 1.0, 4, 3),
        (0.25, 1.1, 5, 3),
        (0.25, 0.1, 1, 1),  # one timed call already fills a window
        (2.0, 1.0, 1, 1),
        (0.125, 1.0, 8, 3),
    ],
)
def test_calls_per_window_calibration(
    clock: FakeClock, call_s: float, min_time_s: float, expected: int, timed: int
) -> None:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        clock.advance(call_s)
        return "warm"

    rec = recorder(FakeMeter(), warmup=2, min_time_s=min_time_s)
    assert rec._calls_per_window(call(fn), no_sync) == (expected, "warm")
    assert len(calls) == 2 + timed  # the warm-up, then the timed calibration calls


def test_min_time_defaults_to_ten_update_periods(clock: FakeClock) -> None:
    rec = recorder(FakeMeter(update_period=0.125), warmup=1, min_time_s=None)
    assert rec._calls_per_window(call(lambda: clock.advance(0.25)), no_sync)[0] == 5


def test_random_phase_offsets_between_windows(clock: FakeClock) -> None:
    period = 0.1
    meter = FakeMeter(update_period=period)
    sleeps: list[float] = []

    def fn() -> None:
        meter.add(1.0)
        clock.advance(0.5)

    rec = recorder(meter, rounds=6, sleeps=sleeps, rng=random.Random(42))
    rec.run(call(fn), Counts(1))
    reference = random.Random(42)
    assert sleeps == [reference.uniform(0.0, period) for _ in range(5)]


def test_the_guard_is_held_once_around_warmup_calibration_and_windows(
    clock: FakeClock,
) -> None:
    """A neighbour process never meters this test's warm-up or calibration calls (issue 20,
    item 11): the device lock is taken once for the whole call."""
    log: list[str] = []

    @contextmanager
    def guard() -> Iterator[None]:
        log.append("lock")
        yield
        log.append("unlock")

    meter = FakeMeter()

    def fn() -> None:
        log.append("call")
        meter.add(1.0)
        clock.advance(0.5)

    rec = recorder(meter, rounds=2, warmup=1, min_time_s=1.0, guard=guard)
    rec.run(call(fn), Counts(1))
    assert log[0] == "lock" and log[-1] == "unlock"
    assert log.count("lock") == 1
    assert log.count("call") == 1 + 2 + 2 * 2  # warm-up, calibration, two windows of two


def test_sync_override_is_used_for_warmup_and_windows() -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)

    def fn() -> None:
        log.append("call")
        meter.add(1.0)

    rec = recorder(meter, rounds=1, warmup=1, sync=lambda: log.append("default-sync"))
    rec.run(call(fn), Counts(1), sync=lambda: log.append("sync"))
    assert log == ["sync", "call", "sync", "sync", "read", "call", "sync", "read"]


# -- adaptive rounds ------------------------------------------------------------------------


def test_adaptive_rounds_stop_when_settled() -> None:
    meter = FakeMeter()
    seen: list[int] = []

    def settled(samples: Any) -> bool:
        seen.append(len(samples))
        return len(samples) >= 6

    def fn() -> None:
        meter.add(1.0)

    rec = recorder(meter, rounds=5, max_rounds=20, settled=settled)
    rec.run(call(fn), Counts(1))
    assert len(rec.windows) == 6
    assert seen == [5, 6]


def test_max_rounds_below_the_adaptive_minimum_caps_the_windows() -> None:
    """--energy-max-rounds=3 takes at most 3 windows (issue 20, item 6)."""
    meter = FakeMeter()

    def fn() -> None:
        meter.add(1.0)

    rec = recorder(meter, rounds=5, max_rounds=3, settled=lambda samples: False)
    rec.run(call(fn), Counts(1))
    assert len(rec.windows) == 3


# -- counts ------------------------------------------------------------------------------


def test_counts_not_given_are_inferred_from_each_call_and_summed() -> None:
    meter = FakeMeter()
    outputs = iter([3, 5, 7, 9, 11])

    def infer(output: object, **kw: object) -> Counts:
        assert isinstance(output, int)
        return Counts(inferences=1, tokens=output)

    def fn() -> int:
        meter.add(1.0)
        return next(outputs)

    rec = recorder(meter, rounds=2, warmup=1, infer=infer)
    rec.run(call(fn), Counts())
    assert [w.work for w in rec.windows] == [Work(1, 5), Work(1, 7)]  # the warm-up's 3 not
    record = rec.record("t")
    assert record is not None and record.counts == "inferred" and record.tokens == 12


def test_a_given_count_wins_over_an_inferred_one() -> None:
    meter = FakeMeter()

    def fn() -> int:
        meter.add(1.0)
        return 1

    rec = recorder(meter, rounds=1, infer=lambda out, **kw: Counts(inferences=9, tokens=99))
    rec.run(call(fn), Counts(inferences=2))
    assert rec.windows[0].work == Work(2, 99)


def test_nothing_inferable_asks_for_inferences() -> None:
    meter = FakeMeter()

    def fn() -> object:
        meter.add(1.0)
        return object()

    rec = recorder(meter, rounds=1, infer=lambda out, **kw: Counts())
    with pytest.raises(MeasurementError, match="Pass inferences=N"):
        rec.run(call(fn), Counts())


def test_all_counts_given_never_calls_the_inference() -> None:
    meter = FakeMeter()

    def fn() -> None:
        meter.add(1.0)

    def infer(output: object, **kw: object) -> Counts:
        raise AssertionError("not needed")

    rec = recorder(meter, rounds=2, infer=infer)
    rec.run(call(fn), Counts(1, 2, 3))
    assert rec.record("t") is not None and rec.record("t").counts == "given"  # type: ignore[union-attr]


def test_a_measure_block_reports_what_it_produced() -> None:
    meter = FakeMeter()
    rec = recorder(meter, infer=lambda out, **kw: Counts(inferences=len(out), images=len(out)))
    with rec.window(Counts()) as probe:
        meter.add(2.0)
        probe.produced([1, 2, 3])
        probe.produced([4])
    assert rec.windows[0].work == Work(4, None, 4)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_counts_are_refused_before_any_call(bad: object) -> None:
    calls: list[int] = []
    meter = FakeMeter()
    rec = recorder(meter, warmup=1)
    with pytest.raises(MeasurementError, match="inferences must be a whole number"):
        rec.run(call(lambda: calls.append(1)), Counts(bad))  # type: ignore[arg-type]
    assert calls == [] and meter.reads == 0


# -- interleave --------------------------------------------------------------------------


def test_interleave_alternates_and_keeps_its_windows_apart() -> None:
    meter = FakeMeter()
    order: list[str] = []
    rec = recorder(meter, rounds=3, warmup=1)
    with rec.window(Counts(1)):
        meter.add(100.0)
    own = list(rec.windows)

    def a() -> None:
        order.append("A")
        meter.add(1.0)

    def b() -> None:
        order.append("B")
        meter.add(5.0)

    windows_a, windows_b = rec.interleave(a, b, Counts(2, 7), rounds=3)
    assert order == ["A", "B", "A", "B", "B", "A", "A", "B"]  # warm-ups, then A B, B A, A B
    assert [w.energy_j for w in windows_a] == [1.0] * 3
    assert [w.energy_j for w in windows_b] == [5.0] * 3
    assert all(w.work == Work(2, 7) for w in windows_a + windows_b)
    assert rec.windows == own


def test_interleave_uses_the_larger_calibration_for_both(clock: FakeClock) -> None:
    meter = FakeMeter()
    order: list[str] = []

    def a() -> None:
        order.append("A")
        meter.add(1.0)
        clock.advance(0.25)

    def b() -> None:
        order.append("B")
        meter.add(1.0)
        clock.advance(0.5)

    rec = recorder(meter, rounds=2, warmup=1, min_time_s=1.0)
    windows_a, windows_b = rec.interleave(a, b, Counts(1), rounds=2)
    # warm-up and timed calls: A then 3 x 0.25 s, B then 2 x 0.5 s; then ABBA, 4 calls each
    assert order == ["A"] * 4 + ["B"] * 3 + ["A"] * 4 + ["B"] * 8 + ["A"] * 4
    assert [w.work.inferences for w in windows_a + windows_b] == [4] * 4


def test_use_after_close_raises() -> None:
    meter = FakeMeter()
    rec = recorder(meter)
    rec.close()
    with pytest.raises(MeasurementError, match="after its test finished"):
        rec.run(call(lambda: None), Counts(1))
    with pytest.raises(MeasurementError, match="after its test finished"):
        rec.interleave(lambda: None, lambda: None, Counts(1), rounds=1)
    assert meter.reads == 0


def test_record_of_the_attempt() -> None:
    meter = FakeMeter()
    rec = recorder(meter, rounds=2)
    assert rec.record("t") is None
    rec.run(call(lambda: meter.add(3.6)), Counts(1))
    record = rec.record("tests/t.py::test_x")
    assert record is not None
    assert record.nodeid == "tests/t.py::test_x"
    assert record.samples == (0.001, 0.001)
    assert record.meter == "fake" and record.figures == "measured"
    assert len(record.runs) == 1 and record.runs[0].windows == 2
