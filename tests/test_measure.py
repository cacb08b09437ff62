"""Unit tests for pytest_energy.measure: one window, the reading boundary, device sync."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fakes import FakeClock, FakeMeter

from pytest_energy import measure
from pytest_energy.errors import CounterWentBackwards, MeasurementError, MeterError
from pytest_energy.measure import (
    WindowMeter,
    checked_reading,
    cuda_sync,
    effective_min_time,
    energy_delta,
    provenance_of,
)
from pytest_energy.record import J_PER_KWH, Work, kwh_per_1000


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(measure, "time", fake)
    return fake


def no_sync() -> None:
    pass


def windows(meter: object, **kw: object) -> WindowMeter:
    return WindowMeter(meter, sync=kw.pop("sync", no_sync), **kw)  # type: ignore[arg-type]


# -- the reading boundary ----------------------------------------------------------------


def test_kwh_per_1000() -> None:
    assert kwh_per_1000(3.6, 1) == 0.001
    assert kwh_per_1000(3.6e6, 1000) == 1.0
    assert J_PER_KWH == 3.6e6


def test_energy_delta_sums_per_domain() -> None:
    delta = energy_delta(
        "fake", {"gpu:0": 10.0, "gpu:1": 5.0, "cpu": 0.0}, {"gpu:0": 12.5, "gpu:1": 5.0, "cpu": 3.0}
    )
    assert delta == {"gpu:0": 2.5, "gpu:1": 0.0, "cpu": 3.0}


def test_energy_delta_backwards_counter() -> None:
    with pytest.raises(CounterWentBackwards, match=r"'gpu:0' counter went backwards from 10 J"):
        energy_delta("fake", {"gpu:0": 10.0}, {"gpu:0": 9.0})


@pytest.mark.parametrize(
    ("start", "end"),
    [({"a": 1.0}, {"b": 1.0}), ({"a": 1.0}, {"a": 1.0, "b": 1.0})],
    ids=["renamed", "appeared"],
)
def test_energy_delta_changed_domains(start: dict[str, float], end: dict[str, float]) -> None:
    with pytest.raises(MeterError, match="appeared or disappeared"):
        energy_delta("fake", start, end)


def test_energy_delta_overflow() -> None:
    with pytest.raises(MeterError, match="overflowed"):
        energy_delta("fake", {"a": -1.7e308}, {"a": 1.7e308})


@pytest.mark.parametrize(
    ("reading", "needle"),
    [
        (None, "returned NoneType"),
        ([1.0], "returned list"),
        ({}, "returned no domains"),
        ({"": 1.0}, "domain name ''"),
        ({3: 1.0}, "domain name 3"),
        ({"a": "1"}, "'1' for 'a'"),
        ({"a": math.nan}, "nan for 'a'"),
        ({"a": math.inf}, "inf for 'a'"),
        ({"a": True}, "True for 'a'"),
    ],
)
def test_checked_reading_rejects_what_is_not_joules(reading: object, needle: str) -> None:
    with pytest.raises(MeterError, match="meter 'm'") as excinfo:
        checked_reading("m", reading)
    assert needle in str(excinfo.value)


def test_checked_reading_coerces_numpy_scalars() -> None:
    numpy = pytest.importorskip("numpy")
    got = checked_reading("m", {"a": numpy.float32(1.5)})
    assert got == {"a": 1.5} and type(got["a"]) is float


# -- one window --------------------------------------------------------------------------


def test_window_records_everything(clock: FakeClock) -> None:
    meter = FakeMeter(domains=("gpu:0", "gpu:1"))
    wm = windows(meter, idle_power_w=10.0)
    with wm.window(Work(8, 100, 2)) as probe:
        meter.add(30.0, "gpu:0")
        meter.add(6.0, "gpu:1")
        clock.advance(2.0)
    w = probe.window
    assert w is not None
    assert w.energy_j == 36.0
    assert w.domains_j == {"gpu:0": 30.0, "gpu:1": 6.0}
    assert w.work == Work(8, 100, 2)
    assert w.duration_s == 2.0
    assert w.end_unix_s - w.start_unix_s == 2.0
    assert w.idle_j == 20.0
    assert w.throttle == () and w.waited_s == 0.0
    assert w.kwh_per_1000 == kwh_per_1000(36.0, 8)


def test_window_sync_order() -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)
    wm = windows(meter, sync=lambda: log.append("sync"))
    with wm.window(Work(1)):
        log.append("body")
        meter.add(1.0)
    assert log == ["sync", "read", "body", "sync", "read"]
    log.clear()
    with wm.window(Work(1), sync=lambda: log.append("own-sync")):
        log.append("body")
        meter.add(1.0)
    assert log == ["own-sync", "read", "body", "own-sync", "read"]


def test_window_guard_wraps_the_reads_and_counts_the_wait(clock: FakeClock) -> None:
    log: list[str] = []
    meter = FakeMeter(log=log)

    @contextmanager
    def guard() -> Iterator[None]:
        clock.advance(0.5)  # waiting for the lock
        log.append("lock")
        yield
        log.append("unlock")

    wm = windows(meter, guard=guard)
    with wm.window(Work(1)) as probe:
        log.append("body")
        meter.add(1.0)
    assert log == ["lock", "read", "body", "read", "unlock"]
    assert probe.window is not None and probe.window.waited_s == 0.5


def test_a_held_guard_is_taken_once_and_its_wait_goes_to_the_first_window(
    clock: FakeClock,
) -> None:
    taken: list[str] = []

    @contextmanager
    def guard() -> Iterator[None]:
        clock.advance(0.25)
        taken.append("lock")
        yield

    meter = FakeMeter()
    wm = windows(meter, guard=guard)
    probes = []
    with wm.held():
        for _ in range(3):
            with wm.window(Work(1)) as probe:
                meter.add(1.0)
            probes.append(probe)
    assert taken == ["lock"]
    assert [p.window.waited_s for p in probes if p.window] == [0.25, 0.0, 0.0]


def test_window_throttle_reasons_are_merged() -> None:
    meter = FakeMeter(throttle=[("thermal",), ("power_cap", "thermal")])
    with windows(meter).window(Work(1)) as probe:
        meter.add(1.0)
    assert probe.window is not None and probe.window.throttle == ("power_cap", "thermal")


def test_window_short_windows_counted(clock: FakeClock) -> None:
    meter = FakeMeter(update_period=0.1)
    wm = windows(meter)
    for seconds in (0.05, 0.5):
        with wm.window(Work(1)):
            meter.add(1.0)
            clock.advance(seconds)
    assert wm.short_windows == 1


def test_nested_window_raises() -> None:
    meter = FakeMeter()
    wm = windows(meter)
    with (
        pytest.raises(MeasurementError, match="cannot be nested"),
        wm.window(Work(1)),
        wm.window(Work(1)),
    ):
        pass
    with wm.window(Work(1)) as probe:  # usable again afterwards
        meter.add(1.0)
    assert probe.window is not None


def test_window_body_exception_gives_no_window() -> None:
    wm = windows(FakeMeter())
    with pytest.raises(ZeroDivisionError), wm.window(Work(1)) as probe:
        1 / 0  # noqa: B018
    assert probe.window is None


def test_window_backwards_counter_raises() -> None:
    meter = FakeMeter(script=[{"gpu:0": 50.0}, {"gpu:0": 10.0}])
    with pytest.raises(CounterWentBackwards, match="backwards"), windows(meter).window(Work(1)):
        pass


def test_use_after_close_raises() -> None:
    meter = FakeMeter()
    wm = windows(meter)
    wm.close()
    with pytest.raises(MeasurementError, match="after its test finished"), wm.window(Work(1)):
        pass
    assert meter.reads == 0


# -- no silent numbers ----------------------------------------------------------------------


def test_a_stuck_counter_fails_the_window(clock: FakeClock) -> None:
    """A counter that did not move over a window of at least its update period is stuck or
    unsupported: the window is refused, never recorded as 0 kWh."""
    meter = FakeMeter(update_period=0.1)
    with pytest.raises(MeterError) as excinfo, windows(meter).window(Work(1)):
        clock.advance(1.5)
    message = str(excinfo.value)
    assert message.startswith("meter 'fake' reported no energy over 1.5 s: a stuck or unsupported")
    assert "--energy-meter" in message


def test_zero_energy_in_a_window_shorter_than_the_update_period_is_not_stuck(
    clock: FakeClock,
) -> None:
    meter = FakeMeter(update_period=0.1)
    wm = windows(meter)
    with wm.window(Work(1)) as probe:
        clock.advance(0.05)  # the counter may not have refreshed yet
    assert probe.window is not None and probe.window.energy_j == 0.0
    assert wm.short_windows == 1


class Deterministic(FakeMeter):
    name = "model"
    estimated = True
    deterministic = True


def test_a_deterministic_meter_keeps_its_counted_no_work_rule() -> None:
    with (
        pytest.raises(MeasurementError, match="counted no work"),
        windows(Deterministic()).window(Work(1)),
    ):
        pass


def _torch() -> types.ModuleType:
    return pytest.importorskip("torch")


def test_a_meta_window_under_a_measuring_meter_is_refused() -> None:
    torch = _torch()
    meter = FakeMeter()
    with torch.device("meta"):
        model = torch.nn.Linear(4, 4)
    x = torch.empty(2, 4, device="meta")
    with pytest.raises(MeasurementError) as excinfo, windows(meter).window(Work(1)) as probe:
        probe.inspect.append({"model": model, "x": x})
        model(x)
        meter.add(0.5)
    message = str(excinfo.value)
    assert "this window ran on torch's meta device" in message
    assert "Linear with its parameters on meta" in message
    assert "--energy-meter=roofline" in message


def test_a_meta_output_is_found_too() -> None:
    torch = _torch()
    meter = FakeMeter()
    with (
        pytest.raises(MeasurementError, match="a tensor of shape \\(3,\\) on meta"),
        windows(meter).window(Work(1)) as probe,
    ):
        probe.produced(torch.empty(3, device="meta"))
        meter.add(1.0)


def test_real_tensors_pass_the_meta_check() -> None:
    torch = _torch()
    meter = FakeMeter()
    model = torch.nn.Linear(4, 4)
    with windows(meter).window(Work(1)) as probe:
        probe.inspect.append({"model": model})
        model(torch.zeros(1, 4))
        meter.add(0.5)
    assert probe.window is not None


# -- phases ------------------------------------------------------------------------------


def test_marks_split_the_window_and_add_up_to_it() -> None:
    meter = FakeMeter()
    with windows(meter).window(Work(8, 64)) as probe:
        meter.add(3.0)
        probe.mark("prefill")
        meter.add(5.0)
        probe.mark("decode")
        meter.add(1.0)  # after the last mark: the last phase's
    w = probe.window
    assert w is not None
    assert w.phases_j == {"prefill": 3.0, "decode": 6.0}
    assert math.fsum(w.phases_j.values()) == w.energy_j == 9.0


def test_repeated_marks_accumulate_per_phase() -> None:
    meter = FakeMeter()
    with windows(meter).window(Work(2)) as probe:
        for _ in range(2):
            meter.add(1.0)
            probe.mark("prefill")
            meter.add(2.0)
            probe.mark("decode")
    assert probe.window is not None and probe.window.phases_j == {"prefill": 2.0, "decode": 4.0}


def test_mark_outside_a_window_is_an_error() -> None:
    wm = windows(FakeMeter())
    with wm.window(Work(1)) as probe:
        wm.meter.add(1.0)  # type: ignore[attr-defined]
    with pytest.raises(MeasurementError, match="inside a window"):
        type(probe)(wm, no_sync).mark("x")


# -- helpers ---------------------------------------------------------------------------------


def test_min_time_defaults_to_update_periods_and_is_zero_for_a_model() -> None:
    assert effective_min_time(FakeMeter(update_period=0.1), None) == pytest.approx(1.0)
    assert effective_min_time(FakeMeter(update_period=0.1), 0.25) == 0.25
    assert effective_min_time(Deterministic(), 5.0) == 0.0


def test_provenance_of_a_meter() -> None:
    class Roofline(Deterministic):
        engine = "compiled"
        target = "H100-SXM"
        provenance = "modelled, not measured"

    p = provenance_of(Roofline())
    assert (p.meter, p.estimated, p.deterministic, p.engine, p.target) == (
        "model",
        True,
        True,
        "compiled",
        "H100-SXM",
    )
    assert p.figures == "modelled" and p.description == "modelled, not measured"
    assert provenance_of(FakeMeter()).figures == "measured"


# -- cuda_sync ------------------------------------------------------------------------------


def _fake_torch(
    has_context: object, available: bool = True, initialized: bool = True
) -> tuple[types.ModuleType, list[object]]:
    calls: list[object] = []
    cuda = types.SimpleNamespace(
        is_available=lambda: available,
        is_initialized=lambda: initialized,
        device_count=lambda: 3,
        synchronize=lambda *args: calls.append(args),
    )
    torch = types.ModuleType("torch")
    torch.cuda = cuda  # type: ignore[attr-defined]
    if has_context is not None:
        torch._C = types.SimpleNamespace(_cuda_hasPrimaryContext=has_context)  # type: ignore[attr-defined]
    return torch, calls


def test_cuda_sync_without_torch_does_not_import_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    cuda_sync()
    assert "torch" not in sys.modules


def test_cuda_sync_synchronizes_only_devices_with_a_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch, calls = _fake_torch(lambda index: index != 1)
    monkeypatch.setitem(sys.modules, "torch", torch)
    cuda_sync()
    assert calls == [(0,), (2,)]


def test_cuda_sync_without_the_context_query_waits_for_the_current_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch, calls = _fake_torch(None)
    monkeypatch.setitem(sys.modules, "torch", torch)
    cuda_sync()
    assert calls == [()]


@pytest.mark.parametrize(("available", "initialized"), [(False, True), (True, False)])
def test_cuda_sync_skips_uninitialised_cuda(
    monkeypatch: pytest.MonkeyPatch, available: bool, initialized: bool
) -> None:
    torch, calls = _fake_torch(lambda index: True, available, initialized)
    monkeypatch.setitem(sys.modules, "torch", torch)
    cuda_sync()
    assert calls == []


def test_cuda_sync_tolerates_a_stub_named_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    assert cuda_sync() is None  # no torch.cuda: nothing to wait for, and no AttributeError
