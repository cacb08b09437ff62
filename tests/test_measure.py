"""Unit tests for pytest_energy.measure with a fake meter and a fake clock."""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pytest_energy import measure
from pytest_energy.errors import CounterWentBackwards, MeasurementError, MeterError
from pytest_energy.measure import (
    J_PER_KWH,
    Measurement,
    Recorder,
    Window,
    WindowPlan,
    cuda_sync,
    effective_min_time,
    energy_delta,
    kwh_per_1000,
)


class FakeMeter:
    """A meter whose cumulative counters the test moves by hand.

    ``counters`` is what ``read()`` returns (a copy); ``script`` (if given) is consumed
    instead, one reading per ``read()``. Every read is logged in ``log``.
    """

    name = "fake"
    hardware = "Fake GPU x1"
    estimated = False

    def __init__(
        self,
        *,
        domains: tuple[str, ...] = ("gpu:0",),
        script: list[dict[str, float]] | None = None,
        update_period: float | None = None,
        throttle: list[tuple[str, ...]] | None = None,
        log: list[str] | None = None,
    ) -> None:
        self.counters = dict.fromkeys(domains, 0.0)
        self.script = list(script) if script is not None else None
        self.reads = 0
        self.closed = False
        self.log = log if log is not None else []
        if update_period is not None:
            self.update_period_s = update_period
        if throttle is not None:
            self._throttle = list(throttle)
            self.throttle_reasons = self._next_throttle

    def _next_throttle(self) -> tuple[str, ...]:
        return self._throttle.pop(0)

    def add(self, joules: float, domain: str = "gpu:0") -> None:
        self.counters[domain] += joules

    def read(self) -> dict[str, float]:
        self.reads += 1
        self.log.append("read")
        if self.script is not None:
            return self.script.pop(0)
        return dict(self.counters)

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """Stands in for the ``time`` module inside ``pytest_energy.measure``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
    **kw: Any,
) -> Recorder:
    sleep_log = sleeps if sleeps is not None else []
    return Recorder(
        meter,
        WindowPlan(rounds=rounds, warmup=warmup, min_time_s=min_time_s),  # type: ignore[arg-type]
        sync=kw.pop("sync", no_sync),
        sleep=sleep_log.append,
        **kw,
    )


# -- kwh_per_1000 and energy_delta ------------------------------------------------------


def test_kwh_per_1000() -> None:
    assert kwh_per_1000(3.6, 1) == 0.001
    assert kwh_per_1000(3.6e6, 1000) == 1.0
    assert kwh_per_1000(7.2, 2) == pytest.approx(0.001)
    assert J_PER_KWH == 3.6e6


def test_energy_delta_sums_per_domain() -> None:
    delta = energy_delta(
        "fake", {"gpu:0": 10.0, "gpu:1": 5.0, "cpu": 0.0}, {"gpu:0": 12.5, "gpu:1": 5.0, "cpu": 3.0}
    )
    assert delta == {"gpu:0": 2.5, "gpu:1": 0.0, "cpu": 3.0}


def test_energy_delta_backwards_counter() -> None:
    with pytest.raises(CounterWentBackwards) as excinfo:
        energy_delta("nvml", {"gpu:0": 100.0}, {"gpu:0": 99.0})
    message = str(excinfo.value)
    assert "backwards" in message
    assert "'nvml'" in message and "'gpu:0'" in message
    assert isinstance(excinfo.value, MeterError)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ({"gpu:0": 1.0}, {"gpu:0": 2.0, "gpu:1": 0.0}),
        ({"gpu:0": 1.0, "gpu:1": 0.0}, {"gpu:0": 2.0}),
        ({"gpu:0": 1.0}, {"gpu:1": 2.0}),
    ],
)
def test_energy_delta_changed_domains(start: dict[str, float], end: dict[str, float]) -> None:
    with pytest.raises(MeterError, match="appeared or disappeared") as excinfo:
        energy_delta("fake", start, end)
    assert not isinstance(excinfo.value, CounterWentBackwards)


@pytest.mark.parametrize(
    ("before", "after"),
    [(float("nan"), 1.0), (1.0, float("nan")), (0.0, float("inf")), (float("-inf"), 0.0)],
)
def test_energy_delta_non_finite(before: float, after: float) -> None:
    with pytest.raises(MeterError, match="non-finite"):
        energy_delta("fake", {"gpu:0": before}, {"gpu:0": after})


# -- Recorder.window --------------------------------------------------------------------


def test_window_records_everything(clock: FakeClock) -> None:
    meter = FakeMeter(domains=("gpu:0", "gpu:1"))
    rec = recorder(meter, idle_power_w=10.0)
    with rec.window(8, tokens=100, images=2):
        meter.add(30.0, "gpu:0")
        meter.add(6.0, "gpu:1")
        clock.advance(2.0)
    assert len(rec.windows) == 1
    (w,) = rec.windows
    assert w.energy_j == 36.0
    assert w.domains_j == {"gpu:0": 30.0, "gpu:1": 6.0}
    assert w.inferences == 8
    assert w.tokens == 100
    assert w.images == 2
    assert w.duration_s == 2.0
    assert w.end_unix_s - w.start_unix_s == 2.0
    assert w.idle_j == 20.0
    assert w.throttle == ()
    assert w.waited_s == 0.0
    assert w.kwh_per_1000 == kwh_per_1000(36.0, 8)


def test_window_idle_energy_is_idle_power_times_duration(clock: FakeClock) -> None:
    rec = recorder(FakeMeter(), idle_power_w=4.0)
    for seconds in (0.5, 2.0):
        with rec.window(1):
            clock.advance(seconds)
    assert [w.idle_j for w in rec.windows] == [2.0, 8.0]


def test_window_without_idle_power_has_no_idle_energy(clock: FakeClock) -> None:
    rec = recorder(FakeMeter())
    with rec.window(1):
        clock.advance(3.0)
    assert rec.windows[0].idle_j == 0.0
    m = rec.measurement()
    assert m is not None
    assert m.dynamic_kwh_per_1000 is None


def test_window_sync_order() -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)
    rec = recorder(meter, sync=lambda: log.append("sync"))
    with rec.window(1):
        log.append("body")
    assert log == ["sync", "read", "body", "sync", "read"]
    log.clear()
    with rec.window(1, sync=lambda: log.append("own-sync")):
        log.append("body")
    assert log == ["own-sync", "read", "body", "own-sync", "read"]


def test_window_guard_wraps_the_reads(clock: FakeClock) -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)

    @contextmanager
    def guard() -> Iterator[None]:
        clock.advance(0.5)  # waiting for the lock
        log.append("lock")
        yield
        log.append("unlock")

    rec = recorder(meter, guard=guard)
    with rec.window(1):
        log.append("body")
    assert log == ["lock", "read", "body", "read", "unlock"]
    assert rec.windows[0].waited_s == 0.5


def test_window_throttle_reasons_are_merged() -> None:
    meter = FakeMeter(throttle=[("thermal",), ("power_cap", "thermal")])
    rec = recorder(meter)
    with rec.window(1):
        pass
    assert rec.windows[0].throttle == ("power_cap", "thermal")


def test_window_short_windows_counted(clock: FakeClock) -> None:
    meter = FakeMeter(update_period=0.1)
    rec = recorder(meter)
    with rec.window(1):
        clock.advance(0.05)
    with rec.window(1):
        clock.advance(0.5)
    assert rec.short_windows == 1


def test_nested_window_raises() -> None:
    meter = FakeMeter()
    rec = recorder(meter)
    with pytest.raises(MeasurementError, match="cannot be nested"), rec.window(1), rec.window(1):
        pass
    assert rec.windows == []
    # the recorder is usable again afterwards
    with rec.window(1):
        meter.add(1.0)
    assert [w.energy_j for w in rec.windows] == [1.0]


def test_window_body_exception_records_nothing() -> None:
    rec = recorder(FakeMeter())
    with pytest.raises(ZeroDivisionError), rec.window(1):
        1 / 0  # noqa: B018
    assert rec.windows == []
    with rec.window(1):
        pass
    assert len(rec.windows) == 1


def test_window_backwards_counter_raises_and_records_nothing() -> None:
    meter = FakeMeter(script=[{"gpu:0": 50.0}, {"gpu:0": 10.0}, {"gpu:0": 10.0}, {"gpu:0": 12.0}])
    rec = recorder(meter)
    with pytest.raises(CounterWentBackwards, match="backwards"), rec.window(1):
        pass
    assert rec.windows == []
    with rec.window(1):
        pass
    assert [w.energy_j for w in rec.windows] == [2.0]


def test_use_after_close_raises() -> None:
    meter = FakeMeter()
    rec = recorder(meter)
    rec.close()
    with pytest.raises(MeasurementError, match="after its test finished"), rec.window(1):
        pass
    with pytest.raises(MeasurementError, match="after its test finished"):
        rec.run(lambda: None, (), {}, inferences=1)
    with pytest.raises(MeasurementError, match="after its test finished"):
        rec.interleave(lambda: None, lambda: None, inferences=1)
    assert meter.reads == 0


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, None])
def test_window_bad_inferences(bad: object) -> None:
    meter = FakeMeter()
    rec = recorder(meter)
    match = "inferences must be a whole number of at least 1"
    with pytest.raises(MeasurementError, match=match), rec.window(bad):  # type: ignore[arg-type]
        pass
    assert meter.reads == 0
    assert not rec._open


@pytest.mark.parametrize(
    ("name", "kwargs"), [("tokens", {"tokens": 0}), ("images", {"images": -2})]
)
def test_window_bad_tokens_images(name: str, kwargs: dict[str, Any]) -> None:
    rec = recorder(FakeMeter())
    with pytest.raises(MeasurementError, match=f"{name} must be"), rec.window(1, **kwargs):
        pass


@pytest.mark.parametrize("bad", [0, -1, True])
def test_run_bad_inferences(bad: object) -> None:
    calls: list[int] = []
    meter = FakeMeter()
    rec = recorder(meter, warmup=1)
    with pytest.raises(MeasurementError, match="inferences"):
        rec.run(lambda: calls.append(1), (), {}, inferences=bad)  # type: ignore[arg-type]
    assert calls == []
    assert meter.reads == 0


# -- Recorder.run -----------------------------------------------------------------------


def test_run_exact_rounds_and_unmetered_warmup() -> None:
    meter = FakeMeter()
    calls: list[tuple[Any, ...]] = []

    def fn(x: int, *, y: int) -> int:
        calls.append((x, y))
        meter.add(2.0)  # every call costs 2 J
        return len(calls)

    rec = recorder(meter, rounds=5, warmup=3, min_time_s=0.0)
    result = rec.run(fn, (1,), {"y": 2}, inferences=4)
    assert len(calls) == 3 + 5
    assert calls[0] == (1, 2)
    assert meter.reads == 2 * 5  # warm-up calls are not metered
    assert len(rec.windows) == 5
    assert [w.energy_j for w in rec.windows] == [2.0] * 5  # warm-up energy is in no window
    assert [w.inferences for w in rec.windows] == [4] * 5
    assert result == 8  # the last call's result


def test_run_tokens_and_images_scale_with_calls(clock: FakeClock) -> None:
    meter = FakeMeter()

    def fn() -> None:
        clock.advance(0.25)

    rec = recorder(meter, rounds=2, warmup=1, min_time_s=1.0)
    rec.run(fn, (), {}, inferences=2, tokens=10, images=3)
    assert [(w.inferences, w.tokens, w.images) for w in rec.windows] == [(8, 40, 12)] * 2


def test_run_without_warmup_uses_one_call_per_window() -> None:
    meter = FakeMeter()
    calls: list[int] = []
    # without a warm-up there is no timing to calibrate from, so min_time_s is not used
    rec = recorder(meter, rounds=4, warmup=0, min_time_s=5.0)
    assert rec._calls_per_window(lambda: calls.append(1), no_sync) == (1, None)
    assert calls == []
    # a short min_time_s keeps a calibration bug from turning into a hang
    rec = recorder(meter, rounds=4, warmup=0, min_time_s=1e-6)
    rec.run(lambda: calls.append(1), (), {}, inferences=1)
    assert len(calls) == 4
    assert [w.inferences for w in rec.windows] == [1] * 4


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
    assert rec._calls_per_window(fn, no_sync) == (expected, "warm")
    assert len(calls) == 2 + timed  # the warm-up, then the timed calibration calls


def test_a_slow_first_call_does_not_shrink_the_windows(clock: FakeClock) -> None:
    # A 3 s first call (CUDA context, lazy loading, autotuning), then 0.15 s steady calls:
    # windows must reach the 1.0 s target, not last one 0.15 s call each.
    durations = iter([3.0] + [0.15] * 1000)

    def fn() -> None:
        clock.advance(next(durations))

    rec = recorder(FakeMeter(), rounds=3, warmup=1, min_time_s=1.0)
    rec.run(fn, (), {}, inferences=1)
    assert [w.inferences for w in rec.windows] == [7, 7, 7]
    assert all(w.duration_s >= 1.0 for w in rec.windows)


def test_windows_that_turn_out_short_get_more_calls(clock: FakeClock) -> None:
    # The calibration saw 0.5 s calls; then the code speeds up to 0.05 s per call. The
    # first window (0.55 s) is long enough; the second (0.1 s) is not, so the third grows.
    durations = iter([0.5] * 4 + [0.05] * 1000)

    def fn() -> None:
        clock.advance(next(durations))

    rec = recorder(FakeMeter(), rounds=3, warmup=1, min_time_s=1.0)
    rec.run(fn, (), {}, inferences=1)
    assert [w.inferences for w in rec.windows] == [2, 2, 20]
    assert rec.windows[-1].duration_s == pytest.approx(1.0)


def test_run_calibrated_windows(clock: FakeClock) -> None:
    meter = FakeMeter()
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        clock.advance(0.25)
        meter.add(1.0)
        return len(calls)

    rec = recorder(meter, rounds=3, warmup=1, min_time_s=1.0)
    assert rec.run(fn, (), {}, inferences=2) == 1 + 3 + 3 * 4
    assert len(calls) == 1 + 3 + 3 * 4  # warm-up, three timed calls, three windows of four
    assert [w.inferences for w in rec.windows] == [8, 8, 8]
    assert [w.energy_j for w in rec.windows] == [4.0, 4.0, 4.0]
    assert [w.duration_s for w in rec.windows] == [1.0, 1.0, 1.0]
    assert meter.reads == 6


def test_min_time_defaults_to_update_periods(clock: FakeClock) -> None:
    meter = FakeMeter(update_period=0.125)
    assert effective_min_time(meter, None) == 1.25
    assert effective_min_time(meter, 0.0) == 0.0
    assert effective_min_time(FakeMeter(), None) == 0.0

    rec = recorder(meter, warmup=1, min_time_s=None)
    assert rec._calls_per_window(lambda: clock.advance(0.25), no_sync)[0] == 5


def test_run_random_phase_offset(clock: FakeClock) -> None:
    period = 0.1
    meter = FakeMeter(update_period=period)
    sleeps: list[float] = []
    rec = recorder(meter, rounds=6, warmup=0, min_time_s=0.0, sleeps=sleeps, rng=random.Random(42))
    rec.run(lambda: clock.advance(0.5), (), {}, inferences=1)
    assert len(sleeps) == 6 - 1
    assert all(0.0 <= s <= period for s in sleeps)
    reference = random.Random(42)
    assert sleeps == [reference.uniform(0.0, period) for _ in range(5)]
    assert len(set(sleeps)) == 5


def test_run_no_phase_offset_without_update_period() -> None:
    sleeps: list[float] = []
    rec = recorder(FakeMeter(), rounds=4, sleeps=sleeps)
    rec.run(lambda: None, (), {}, inferences=1)
    assert sleeps == []


def test_run_sync_override_used_for_warmup_and_windows() -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)
    rec = recorder(meter, rounds=1, warmup=1, sync=lambda: log.append("default-sync"))
    rec.run(lambda: log.append("call"), (), {}, inferences=1, sync=lambda: log.append("sync"))
    assert log == ["sync", "call", "sync", "sync", "read", "call", "sync", "read"]


# -- Recorder.interleave ----------------------------------------------------------------


def test_interleave_alternates_and_keeps_own_windows() -> None:
    meter = FakeMeter()
    order: list[str] = []
    rec = recorder(meter, rounds=3, warmup=1, min_time_s=0.0)
    with rec.window(1):
        meter.add(100.0)
    own = list(rec.windows)

    def a() -> None:
        order.append("A")
        meter.add(1.0)

    def b() -> None:
        order.append("B")
        meter.add(5.0)

    windows_a, windows_b = rec.interleave(a, b, inferences=2, tokens=7)
    warm_ups, windows = ["A", "B"], ["A", "B", "B", "A", "A", "B"]  # ABBA: A B, B A, A B
    assert order == [*warm_ups, *windows]
    assert [w.energy_j for w in windows_a] == [1.0] * 3
    assert [w.energy_j for w in windows_b] == [5.0] * 3
    assert all((w.inferences, w.tokens) == (2, 7) for w in windows_a + windows_b)
    assert rec.windows == own


def test_interleave_uses_the_larger_calibration_for_both(clock: FakeClock) -> None:
    order: list[str] = []

    def a() -> None:
        order.append("A")
        clock.advance(0.25)

    def b() -> None:
        order.append("B")
        clock.advance(0.5)

    rec = recorder(FakeMeter(), rounds=2, warmup=1, min_time_s=1.0)
    windows_a, windows_b = rec.interleave(a, b, inferences=1)
    # warm-up and timed calls: A then 3 x 0.25 s, B then 2 x 0.5 s; then ABBA, 4 calls each
    assert order == ["A"] * 4 + ["B"] * 3 + ["A"] * 4 + ["B"] * 8 + ["A"] * 4
    assert [w.inferences for w in windows_a + windows_b] == [4] * 4


def test_interleave_phase_offsets() -> None:
    sleeps: list[float] = []
    rec = recorder(FakeMeter(update_period=0.2), rounds=3, sleeps=sleeps)
    rec.interleave(lambda: None, lambda: None, inferences=1)
    assert len(sleeps) == 2 * 3 - 1
    assert all(0.0 <= s <= 0.2 for s in sleeps)


def test_interleave_restores_windows_on_error() -> None:
    meter = FakeMeter()
    rec = recorder(meter, rounds=2)
    with rec.window(1):
        pass
    own = list(rec.windows)

    def broken() -> None:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        rec.interleave(lambda: None, broken, inferences=1)
    assert rec.windows == own


# -- measurement() and Measurement ------------------------------------------------------


def test_measurement_from_recorder() -> None:
    meter = FakeMeter()
    meter.provenance = "read from a fake"  # type: ignore[attr-defined]
    rec = recorder(meter)
    assert rec.measurement() is None
    with rec.window(1):
        meter.add(3.6)
    m = rec.measurement()
    assert m is not None
    assert (m.meter, m.hardware, m.estimated, m.provenance) == (
        "fake",
        "Fake GPU x1",
        False,
        "read from a fake",
    )
    assert m.samples == (0.001,)
    other = Window(energy_j=7.2, duration_s=1.0, inferences=1)
    chosen = rec.measurement([other])
    assert chosen is not None
    assert chosen.windows == (other,)


def _w(energy_j: float, inferences: int = 1, **kw: Any) -> Window:
    return Window(
        energy_j=energy_j, duration_s=kw.pop("duration_s", 1.0), inferences=inferences, **kw
    )


def _m(*windows: Window) -> Measurement:
    return Measurement(windows=windows, meter="fake", hardware="hw", estimated=True)


def test_measurement_needs_a_window() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        _m()


def test_measurement_samples_and_medians() -> None:
    m = _m(_w(3.6, 1), _w(36.0, 2), _w(7.2, 1), _w(1000.0, 4))
    assert m.samples == pytest.approx((0.001, 0.005, 0.002, 0.25 / 3.6))
    assert m.kwh_per_1000 == pytest.approx((0.002 + 0.005) / 2)
    # J per inference: 3.6, 18, 7.2, 250 -> median (7.2 + 18) / 2
    assert m.joules_per_inference == pytest.approx(12.6)
    assert m.energy_j == pytest.approx(1046.8)
    assert m.duration_s == 4.0
    assert m.inferences == 8


def test_measurement_median_resists_one_outlier() -> None:
    m = _m(_w(3.6), _w(3.6), _w(3.6e6))
    assert m.kwh_per_1000 == 0.001


def test_measurement_tokens_and_images_absent() -> None:
    m = _m(_w(10.0), _w(20.0))
    assert m.joules_per_token is None
    assert m.joules_per_image is None
    assert m.tokens is None
    assert m.images is None
    assert m.dynamic_kwh_per_1000 is None


def test_measurement_tokens_and_images_present() -> None:
    m = _m(_w(10.0, tokens=5, images=2), _w(30.0, tokens=10, images=3), _w(8.0, tokens=1))
    assert m.joules_per_token == pytest.approx(3.0)  # median of 2, 3, 8
    assert m.joules_per_image == pytest.approx((5.0 + 10.0) / 2)
    assert m.tokens == 16
    assert m.images == 5


def test_measurement_domains_throttle_and_wait() -> None:
    m = _m(
        _w(3.0, domains_j={"gpu:1": 1.0, "gpu:0": 2.0}, waited_s=0.5),
        _w(4.0, domains_j={"gpu:0": 4.0}, throttle=("thermal",)),
        _w(5.0, domains_j={"cpu": 5.0}, throttle=("power_cap", "thermal"), waited_s=0.25),
    )
    assert m.domains_j == {"cpu": 5.0, "gpu:0": 6.0, "gpu:1": 1.0}
    assert list(m.domains_j) == ["cpu", "gpu:0", "gpu:1"]
    assert m.throttled_windows == 2
    assert m.waited_s == 0.75


def test_measurement_dynamic_kwh_subtracts_idle() -> None:
    m = _m(_w(36.0, 10, idle_j=0.0), _w(36.0, 10, idle_j=18.0), _w(72.0, 10, idle_j=36.0))
    # dynamic J: 36, 18, 36 over 10 inferences -> median 36 J / 10
    assert m.dynamic_kwh_per_1000 == pytest.approx(kwh_per_1000(36.0, 10))
    floor = _m(_w(1.0, idle_j=5.0))
    assert floor.dynamic_kwh_per_1000 == 0.0  # never negative


# -- cuda_sync --------------------------------------------------------------------------


class FakeCuda:
    def __init__(self, *, available: bool = True, initialized: bool = True, count: int = 2) -> None:
        self.available = available
        self.initialized = initialized
        self.count = count
        self.synced: list[int] = []

    def is_available(self) -> bool:
        return self.available

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return self.count

    def synchronize(self, index: int | None = None) -> None:
        self.synced.append(index)


def _fake_torch(
    monkeypatch: pytest.MonkeyPatch, cuda: FakeCuda, contexts: set[int] | None = None
) -> None:
    """A fake torch; ``contexts`` are the devices with a CUDA context (None: no query)."""
    module = types.ModuleType("torch")
    module.cuda = cuda  # type: ignore[attr-defined]
    if contexts is not None:
        module._C = types.SimpleNamespace(_cuda_hasPrimaryContext=contexts.__contains__)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", module)


def test_cuda_sync_without_torch_does_not_import_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    cuda_sync()
    assert "torch" not in sys.modules


def test_cuda_sync_synchronizes_only_devices_with_a_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Synchronising device 1 would create a CUDA context there (CUDA 12): it must be skipped.
    cuda = FakeCuda(count=3)
    _fake_torch(monkeypatch, cuda, contexts={0, 2})
    cuda_sync()
    assert cuda.synced == [0, 2]


def test_cuda_sync_without_the_context_query_waits_for_the_current_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuda = FakeCuda(count=3)
    _fake_torch(monkeypatch, cuda)
    cuda_sync()
    assert cuda.synced == [None]


@pytest.mark.parametrize(
    "cuda", [FakeCuda(available=False), FakeCuda(initialized=False)], ids=["unavailable", "uninit"]
)
def test_cuda_sync_skips_uninitialised_cuda(
    monkeypatch: pytest.MonkeyPatch, cuda: FakeCuda
) -> None:
    _fake_torch(monkeypatch, cuda)
    cuda_sync()
    assert cuda.synced == []


def test_recorder_default_sync_is_cuda_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda(count=1)
    _fake_torch(monkeypatch, cuda, contexts={0})
    rec = Recorder(FakeMeter(), WindowPlan(rounds=1, warmup=0, min_time_s=0.0))
    with rec.window(1):
        pass
    assert cuda.synced == [0, 0]  # before both reads


def test_run_and_interleave_inside_a_window_are_nested() -> None:
    meter = FakeMeter()
    rec = recorder(meter)
    with rec.window(1):
        with pytest.raises(MeasurementError, match="cannot be nested"):
            rec.run(lambda: None, (), {}, inferences=1)
        with pytest.raises(MeasurementError, match="cannot be nested"):
            rec.interleave(lambda: None, lambda: None, inferences=1)
    assert len(rec.windows) == 1
    assert meter.reads == 2
