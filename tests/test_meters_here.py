"""The built-in meters on a machine like CI's: no GPU driver, no RAPL, CodeCarbon installed."""

from __future__ import annotations

import ctypes.util
from fnmatch import fnmatch
from pathlib import Path

import pytest

NO_SENSORS = (
    not Path("/sys/class/powercap").exists() and ctypes.util.find_library("nvidia-ml") is None
)
pytestmark = pytest.mark.skipif(not NO_SENSORS, reason="this machine has an energy sensor")

WORK = """
def test_work(energy):
    energy(lambda: sum(i * i for i in range(20000)), inferences=1)
"""


def test_auto_picks_the_estimate_and_says_why(pytester: pytest.Pytester) -> None:
    pytest.importorskip("codecarbon")
    pytester.makepyfile(WORK)
    result = pytester.runpytest("--energy-report", "--energy-rounds=2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-energy: meter auto -> codecarbon (estimated) on *(no sensor)",
            "  estimated: process CPU time*",
            "  not used: nvml: *",
            "  not used: rapl: */sys/class/powercap does not exist*",
            "*::test_work * new * codecarbon (estimated)",
        ]
    )


@pytest.mark.parametrize(
    ("meter", "cause", "fix"),
    [
        ("nvml", "NVML library*was not found", "Fix: install the NVIDIA driver*"),
        ("rapl", "/sys/class/powercap does not exist", "Fix: on bare-metal Linux*"),
    ],
)
def test_unavailable_sensor_stops_with_one_paragraph(
    pytester: pytest.Pytester, meter: str, cause: str, fix: str
) -> None:
    pytester.makepyfile(WORK)
    result = pytester.runpytest(f"--energy-meter={meter}", "-p", "no:cacheprovider")
    # The meter starts at the first window: the energy test fails with the paragraph, and
    # the summary repeats it once.
    result.assert_outcomes(failed=1)
    assert "Traceback" not in result.stdout.str()
    (line,) = [x for x in result.outlines if x.startswith("ERROR: pytest-energy:")]
    assert f"energy meter '{meter}' is unavailable" in line
    for pattern in (cause, fix):
        assert fnmatch(line, f"*{pattern}*"), f"{pattern!r} not in {line!r}"


def test_no_energy_tests_means_no_meter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--energy-meter=nvml", "--energy-report", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pytest-energy" not in result.stdout.str()
    assert "= energy =" not in result.stdout.str()


def test_deselected_energy_tests_start_no_meter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORK + "\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest("--energy-meter=nvml", "-k", "plain", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=1)
