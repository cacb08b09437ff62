"""The roofline meter through the plugin, plugged in as ``module:factory``.

The recorder enters ``meter.observe()`` around each window and reads ``counters()``, so
a window models the torch operations inside it and reports FLOPs and bytes per inference.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")
# Imported here, before any in-process run: pytester unloads what a run imported, and torch
# cannot be imported a second time in one process.
import torch  # noqa: F401

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
    result = pytester.runpytest("-p", "no:cacheprovider", METER, "--energy-json=report.json", *args)
    result.assert_outcomes(passed=1)
    with open(os.path.join(str(pytester.path), "report.json"), encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def record(report: dict) -> dict:  # type: ignore[type-arg]
    (entry,) = report["tests"]
    assert entry["energy_j"] > 0, "the window modelled nothing: observe() was not entered"
    return entry  # type: ignore[no-any-return]


def test_a_passing_run_reports_modelled_energy_the_same_every_time(
    pytester: pytest.Pytester,
) -> None:
    first = record(run_json(pytester, "--energy-update-baseline"))
    assert first["meter"] == "roofline"
    assert first["estimated"] is True
    assert first["hardware"] == "NVIDIA H100 SXM (roofline v3, eager)"
    assert list(first["domains_j"]) == ["roofline:H100-SXM"]
    assert first["flops_per_inference"] == 2 * 256 * 128
    assert first["bytes_per_inference"] == (256 + 128 + 256 * 128 / 64 + 128 / 64) * 4
    second = record(run_json(pytester))
    assert second["samples"] == first["samples"]  # to the last digit
    assert second["verdict"] == "ok" and second["change_pct"] == 0.0


def test_the_target_comes_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ENERGY_TARGET", "L4")
    entry = record(run_json(pytester))
    assert entry["hardware"] == "NVIDIA L4 (roofline v3, eager)"


LINEAR = """
import os, torch

WIDTH = int(os.environ.get("WIDTH", "4096"))

def test_linear(energy):
    torch.manual_seed(0)
    layer = torch.nn.Linear(WIDTH, WIDTH)
    x = torch.randn(64, WIDTH)
    with torch.inference_mode():
        energy(layer, x, inferences=64)
"""


def test_a_five_percent_bigger_layer_fails_the_gate(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_lin=LINEAR)
    args = ("--energy-meter=roofline", "-p", "no:cacheprovider")
    pytester.runpytest(*args, "--energy-update-baseline").assert_outcomes(passed=1)
    # 5% wider: about 10% more FLOPs and weight bytes. At this size the layer is compute-bound
    # on the target; a tiny layer would be launch-bound, and 5% of it would not show.
    monkeypatch.setenv("WIDTH", "4301")
    bigger = pytester.runpytest(*args)
    bigger.assert_outcomes(failed=1)
    bigger.stdout.fnmatch_lines(
        ["*test_linear regressed*tolerance 1%); deterministic meter: no significance test*"]
    )


def test_a_user_profile_file_and_an_unknown_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lin=LINEAR)
    profile = pytester.path / "mygpu.toml"
    profile.write_text(
        'name = "MyGPU"\nhardware = "Example Accelerator 1"\nmemory_bandwidth_gb_s = 1000\n'
        "board_power_w = 300\n"
        "peak_tflops = { fp32 = 50, tf32 = 100, fp16 = 200, bf16 = 200, int8 = 400 }\n"
        '[sources]\npeak = "made up for a test"\n'
    )
    result = pytester.runpytest(
        "--energy-meter=roofline", f"--energy-target={profile}", "--energy-json=report.json",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((pytester.path / "report.json").read_text())["tests"]
    assert entry["hardware"] == "Example Accelerator 1 (roofline v3, eager)"
    unknown = pytester.runpytest("--energy-meter=roofline", "--energy-target=H900")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*unknown energy target 'H900'; choose one of H100-SXM*"])
