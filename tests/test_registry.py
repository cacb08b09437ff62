"""The meter registry: built-in names, the entry-point group, module:attribute specs, auto."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from pytest_energy import meters
from pytest_energy.errors import ConfigError, MeterError, MeterUnavailable
from pytest_energy.meters.auto import AutoMeter, CompositeMeter


class Fixed:
    estimated = False

    def __init__(self, name: str = "fixed", joules: float = 1.0, domain: str = "x:0") -> None:
        self.name = name
        self.hardware = f"{name}-hw"
        self.joules = joules
        self.domain = domain
        self.closed = False

    def read(self) -> dict[str, float]:
        return {self.domain: self.joules}

    def close(self) -> None:
        self.closed = True


def test_entry_point_meters_resolve_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = EntryPoint("acme", f"{__name__}:Fixed", meters.ENTRY_POINT_GROUP)

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [plugin] if group == meters.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(meters, "entry_points", fake_entry_points)
    assert meters.resolve("acme") is Fixed
    assert "acme" in meters.known_names()
    with pytest.raises(
        ConfigError,
        match="choose one of acme, amdsmi, apple, auto, codecarbon, jetson, nvml, rapl, roofline",
    ):
        meters.resolve("nope")


def test_builtin_names_win_over_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = EntryPoint("rapl", f"{__name__}:Fixed", meters.ENTRY_POINT_GROUP)
    monkeypatch.setattr(meters, "entry_points", lambda group: [shadow])
    assert meters.resolve("rapl") is not Fixed


def test_composite_reports_every_domain_and_closes_all() -> None:
    gpu, cpu = Fixed("gpu", 5.0, "gpu:0"), Fixed("cpu", 2.0, "cpu:package-0")
    both = CompositeMeter([gpu, cpu])
    assert both.read() == {"gpu:0": 5.0, "cpu:package-0": 2.0}
    assert both.name == "gpu+cpu" and both.hardware == "gpu-hw + cpu-hw"
    assert both.estimated is False
    both.close()
    assert gpu.closed and cpu.closed


def test_composite_refuses_colliding_domains() -> None:
    with pytest.raises(MeterError, match="both report domain 'x:0'"):
        CompositeMeter([Fixed("a"), Fixed("b")]).read()


def test_auto_uses_every_sensor_and_not_the_estimate() -> None:
    made = {
        "nvml": Fixed("nvml", 5.0, "gpu:0"),
        "rapl": Fixed("rapl", 2.0, "cpu:package-0"),
    }
    tried: list[str] = []

    def try_create(spec: str) -> object:
        tried.append(spec)
        if spec == "codecarbon":
            raise AssertionError("the estimate must not be tried when a sensor works")
        return made.get(spec) or MeterUnavailable(spec, f"no {spec} here")

    auto = AutoMeter(create=try_create)  # type: ignore[arg-type]
    assert auto.read() == {"gpu:0": 5.0, "cpu:package-0": 2.0}
    assert auto.name == "nvml+rapl"
    assert tried == ["nvml", "amdsmi", "apple", "jetson", "rapl"]  # issue 21's order
    assert auto.unavailable == {
        "amdsmi": "no amdsmi here",
        "apple": "no apple here",
        "jetson": "no jetson here",
    }


def test_auto_takes_an_amd_gpu_and_the_cpu_in_order() -> None:
    made = {"amdsmi": Fixed("amdsmi", 7.0, "amdgpu:0"), "rapl": Fixed("rapl", 2.0, "cpu:package-0")}
    auto = AutoMeter(create=lambda spec: made.get(spec) or MeterUnavailable(spec, "absent"))  # type: ignore[arg-type]
    assert auto.name == "amdsmi+rapl" and auto.hardware == "amdsmi-hw + rapl-hw"
    assert list(auto.unavailable) == ["nvml", "apple", "jetson"]


def test_auto_falls_back_to_the_estimate_and_says_why() -> None:
    estimate = Fixed("codecarbon")
    estimate.estimated = True

    def try_create(spec: str) -> object:
        if spec == "codecarbon":
            return estimate
        return MeterUnavailable(spec, f"no {spec} here")

    auto = AutoMeter(create=try_create)  # type: ignore[arg-type]
    assert auto.estimated is True
    assert auto.unavailable == {
        spec: f"no {spec} here" for spec in ("nvml", "amdsmi", "apple", "jetson", "rapl")
    }


def test_auto_with_nothing_at_all_names_every_reason_and_the_fix() -> None:
    with pytest.raises(MeterUnavailable) as excinfo:
        AutoMeter(create=lambda spec: MeterUnavailable(spec, f"no {spec}"))
    text = str(excinfo.value)
    for spec in ("nvml", "amdsmi", "apple", "jetson", "rapl", "codecarbon"):
        assert f"{spec}: no {spec}" in text
    assert "pip install 'pytest-energy[codecarbon]'" in text


def test_every_built_in_meter_is_unavailable_here_with_a_reason_not_a_crash() -> None:
    """On this CI machine (no GPU, no Mac, no Jetson), each new meter says why in one line."""
    for spec in ("amdsmi", "apple", "jetson"):
        outcome = meters.try_create(spec)
        if isinstance(outcome, MeterUnavailable):
            assert outcome.meter == spec and outcome.reason and "\n" not in str(outcome)
        else:  # the machine has that hardware after all
            outcome.close()


def test_start_up_knows_the_same_built_in_meters_as_the_registry() -> None:
    from pytest_energy.settings import BUILTIN_METERS

    assert tuple(meters.BUILTIN) == BUILTIN_METERS


# -- update_period_s is checked when the meter is created (issue 20, item 3) ---------------------


class Periodic(Fixed):
    def __init__(self, period: object) -> None:
        super().__init__()
        self.update_period_s = period


@pytest.mark.parametrize(
    ("period", "problem"),
    [
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        (-0.5, "negative"),
        (1e9, "over 60 s"),
        (60.5, "over 60 s"),
        ("0.1", "not a number"),
        (True, "not a number"),
    ],
)
def test_a_bad_update_period_is_refused_at_creation_naming_the_attribute(
    period: object, problem: str
) -> None:
    meter = Periodic(period)
    with pytest.raises(ConfigError) as excinfo:
        meters.create(lambda: meter, "mod:Periodic")
    text = str(excinfo.value)
    assert "update_period_s" in text and problem in text
    assert repr(period) in text
    assert "\n" not in text  # one paragraph
    assert meter.closed  # a refused meter is closed, not leaked


@pytest.mark.parametrize("period", [0, 0.0, 0.001, 1, 60.0, None])
def test_a_sane_update_period_is_accepted(period: object) -> None:
    meter = Periodic(period)
    assert meters.create(lambda: meter, "mod:Periodic") is meter


UNBOUNDED_PERIOD = """
class Meter:
    name = "sluggish"
    hardware = "rig"
    estimated = False
    update_period_s = {period}

    def read(self):
        return {{"x:0": 1.0}}

    def close(self):
        pass


def test_work(energy):
    energy(lambda: None, inferences=1)
"""


@pytest.mark.parametrize("period", ["float('nan')", "1e9"])
def test_a_bad_update_period_fails_the_run_with_the_paragraph_not_a_hang(
    pytester: pytest.Pytester, period: str
) -> None:
    pytester.makepyfile(test_sluggish=UNBOUNDED_PERIOD.format(period=period))
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        "--energy-meter=test_sluggish:Meter", "-p", "no:cacheprovider", timeout=60
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "median of no samples" not in out and "Traceback" not in out
    assert "the meter's update_period_s is" in out


# -- the composite keeps its sub-meters' devices (issue 20, item 9) ------------------------------


class Declared(Fixed):
    def __init__(self, name: str, domain: str, devices: tuple[str, ...]) -> None:
        super().__init__(name, 1.0, domain)
        self.devices = devices


def test_composite_keeps_declared_devices_and_defaults_the_rest() -> None:
    from pytest_energy.devicelock import devices_of

    gpu = Declared("gpu", "gpu:0", ("GPU-aaaa",))
    estimate = Declared("est", "cpu:estimate", ())
    cpu = Fixed("cpu", 2.0, "cpu:package-0")  # declares nothing: its domains, qualified
    both = CompositeMeter([gpu, estimate, cpu])
    assert both.devices == ("GPU-aaaa", "cpu-hw-cpu:package-0")
    assert devices_of(both, both.read()) == ("GPU-aaaa", "cpu-hw-cpu:package-0")


def test_auto_on_the_cpu_estimate_alone_takes_no_device_lock() -> None:
    """docs/measurement.md: the estimate follows this process's CPU time and takes no lock, so
    under ``-n auto`` its windows must not serialise across workers."""
    pytest.importorskip("codecarbon")
    from pytest_energy.devicelock import devices_of
    from pytest_energy.meters.codecarbon import CodeCarbonMeter

    def create(spec: str) -> object:
        if spec == "codecarbon":
            return CodeCarbonMeter(cpu_model="Intel Xeon Gold 6148", process_time=lambda: 1.0)
        return MeterUnavailable(spec, f"no {spec} here")

    auto = AutoMeter(create=create)  # type: ignore[arg-type]
    assert auto.name == "codecarbon" and auto.estimated
    assert auto.devices == ()
    assert devices_of(auto, auto.read()) == ()


def test_every_builtin_meter_is_named_once_and_described() -> None:
    from pytest_energy.meters import BUILTIN, SUMMARY
    from pytest_energy.meters.auto import ESTIMATE, SENSORS
    from pytest_energy.settings import BUILTIN_METERS

    assert tuple(BUILTIN) == BUILTIN_METERS == tuple(SUMMARY)
    assert set(SENSORS) | {ESTIMATE, "auto", "roofline"} == set(BUILTIN)


def test_targets_lists_the_meters_in_autos_order(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_energy.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert (
        "meters (--energy-meter): auto tries nvml, amdsmi, apple, jetson, rapl, then codecarbon"
        in out
    )
    assert "  roofline    modelled:" in out and "  codecarbon  estimated:" in out
