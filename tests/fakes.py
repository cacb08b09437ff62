"""Test doubles shared by the unit tests: a meter moved by hand, a clock moved by hand."""

from __future__ import annotations

from pytest_energy.record import Provenance, Record, RunSummary, Work


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
    """Stands in for the ``time`` module of ``pytest_energy.measure`` and ``schedule``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def record(
    *samples: float,
    nodeid: str = "tests/t.py::test_x",
    meter: str = "nvml",
    hardware: str = "NVIDIA H100 80GB HBM3 x1",
    estimated: bool = False,
    deterministic: bool = False,
    inferences: int = 64,
    tokens: int | None = None,
    images: int | None = None,
    runs: tuple[RunSummary, ...] = (),
) -> Record:
    """A record without windows (as a baseline holds one)."""
    return Record(
        nodeid=nodeid,
        provenance=Provenance(
            meter=meter, hardware=hardware, estimated=estimated, deterministic=deterministic
        ),
        samples=samples or (0.01,),
        work=Work(inferences, tokens, images),
        runs=runs,
    )
