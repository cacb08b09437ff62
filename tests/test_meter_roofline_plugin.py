"""The roofline meter through the plugin, plugged in as ``module:factory``.

The recorder enters ``meter.observe()`` around each window and reads ``counters()``, so
a window models the torch operations inside it and reports FLOPs and bytes per inference.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")

METER = "--energy-meter=pytest_energy.meters.roofline:RooflineMeter"

TEST_FILE = """
import torch

def test_linear(energy):
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 128)
    x = torch.randn(64, 256)
    with torch.inference_mode():
        energy(layer, x, inferences=64)
"""


def run_json(pytester: pytest.Pytester, *args: str) -> dict:  # type: ignore[type-arg]
    pytester.makepyfile(test_roofline_plugin=TEST_FILE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", METER, "--energy-json=report.json", *args
    )
    result.assert_outcomes(passed=1)
    with open(os.path.join(str(pytester.path), "report.json"), encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def record(report: dict) -> dict:  # type: ignore[type-arg]
    (entry,) = report["tests"]
    assert entry["energy_j"] > 0, "the window modelled nothing: observe() was not entered"
    return entry  # type: ignore[no-any-return]


def test_a_passing_run_reports_modelled_energy(pytester: pytest.Pytester) -> None:
    entry = record(run_json(pytester))
    assert entry["meter"] == "roofline"
    assert entry["estimated"] is True
    assert entry["hardware"] == "NVIDIA H100 SXM (roofline model)"
    assert list(entry["domains_j"]) == ["roofline:H100-SXM"]
    assert entry["flops_per_inference"] == 2 * 256 * 128
    assert entry["bytes_per_inference"] == (256 + 128 + 256 * 128 / 64 + 128 / 64) * 4


def test_the_same_run_twice_gives_the_same_samples(pytester: pytest.Pytester) -> None:
    first = record(run_json(pytester))
    second = record(run_json(pytester))
    assert first["samples"] == second["samples"]


def test_the_target_comes_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ENERGY_TARGET", "L4")
    entry = record(run_json(pytester))
    assert entry["hardware"] == "NVIDIA L4 (roofline model)"
