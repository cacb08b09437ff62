from __future__ import annotations

import textwrap

import pytest

#: Scripted meters for pytester runs. Tests spend joules explicitly, either through
#: ``energy.meter.spend(j)`` or, without the fixture, the module-level ``spend(j)``.
FAKE_METER = textwrap.dedent(
    '''
    import os

    LIVE = []


    def spend(joules):
        for meter in LIVE:
            meter.total += joules


    class ScriptedMeter:
        name = "scripted"
        estimated = False

        def __init__(self):
            self.hardware = os.environ.get("FAKE_HARDWARE", "test-rig")
            self.total = 0.0
            LIVE.append(self)

        def spend(self, joules):
            self.total += joules

        def read(self):
            return {"fake:0": self.total}

        def close(self):
            LIVE.remove(self)


    class EstimatedMeter(ScriptedMeter):
        name = "guess"
        estimated = True


    class FixedMeter(ScriptedMeter):
        """A deterministic meter (a model of the work, as roofline is): it spends only what
        a test spends, so a window that spends nothing counted no work."""

        name = "fixed"
        estimated = True
        deterministic = True
        devices = ()

        def __init__(self):
            super().__init__()
            self.hardware = "model rig (fixed model)"


    class PoweredMeter(ScriptedMeter):
        """Draws a constant 5 W on top of what tests spend."""

        def read(self):
            import time

            return {"fake:0": self.total + 5.0 * time.monotonic()}
    '''
)


@pytest.fixture
def meter_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs can use ``--energy-meter=fakemeter:ScriptedMeter``."""
    pytester.makepyfile(fakemeter=FAKE_METER)
    pytester.syspathinsert()
    return pytester


@pytest.fixture
def xdist_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester for pytest-xdist runs: ``--energy-meter=conftest:ScriptedMeter``.

    xdist workers start from the controller's start-up ``sys.path``, so the meter lives in
    the rootdir conftest, which every worker imports (and puts on ``sys.path``) itself.
    """
    pytester.makeconftest(FAKE_METER)
    return pytester


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort keeps every worker's order the same): started last,
    one would keep one xdist worker busy alone at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
