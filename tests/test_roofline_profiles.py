"""Roofline GPU profiles (profiles.py, profiles.toml): shipped figures, user files, bounds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_energy.errors import ConfigError
from pytest_energy.meters.roofline import model
from pytest_energy.meters.roofline.profiles import (
    Validation,
    load_profile,
    parse_profile,
    profile_names,
    shared_coefficients,
    targets_table,
)

SHIPPED = (
    "H100-SXM",
    "H100-PCIe",
    "H200-SXM",
    "B200",
    "A100-SXM-80GB",
    "A100-SXM-40GB",
    "A100-PCIe-40GB",
    "L40S",
    "L4",
    "A10G",
    "T4",
    "MI300X",
)


def test_shipped_profiles_have_every_figure_with_a_source() -> None:
    assert profile_names() == list(SHIPPED)
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert {"fp32", "fp16"} <= set(profile.peak_ops_s)
        assert set(profile.sources) == {"peak", "memory_bandwidth", "board_power", "interconnect"}
        assert all(profile.sources.values())
        assert profile.interconnect and profile.interconnect_b_s
        assert set(profile.coefficient_sources) == set(model.COEFFICIENT_NAMES)
        assert all(profile.coefficient_sources.values())
    h100 = load_profile("H100-SXM")
    assert h100.peak_ops_s["bf16"] == 989.5e12  # dense, not the 1,979 with sparsity
    assert h100.memory_bandwidth_b_s == 3.35e12
    assert h100.interconnect == "NVLink 4" and h100.interconnect_b_s == 450e9
    assert load_profile("H100-PCIe").interconnect == "PCIe Gen5 x16"
    assert load_profile("A100-SXM-80GB").peak("fp8") == 312e12  # no fp8: runs as fp16
    assert load_profile("T4").peak("bf16") == 65e12


def test_h200_and_b200() -> None:
    h100, h200, b200 = (load_profile(n) for n in ("H100-SXM", "H200-SXM", "B200"))
    assert h200.peak_ops_s == h100.peak_ops_s  # the same GH100 compute
    assert h200.memory_bandwidth_b_s == 4.8e12 and h200.board_power_w == 700
    assert b200.peak_ops_s["bf16"] == 2250e12 and b200.peak_ops_s["fp8"] == 4500e12
    assert b200.memory_bandwidth_b_s == 8e12 and b200.board_power_w == 1000
    assert b200.interconnect_b_s == 900e9


def test_shipped_coefficients_are_fitted_and_every_shipped_profile_quotes_the_band() -> None:
    # benchmarks/roofline_fit.py writes the values, their sources and [validation]
    _, sources, validation = shared_coefficients()
    assert set(sources) == set(model.COEFFICIENT_NAMES)
    assert all("roofline_fit.py" in text for text in sources.values())
    assert validation is not None and validation.rows >= 30
    # the B200 overrides two coefficients with fitted values; its rows were validated with them
    b200 = load_profile("B200")
    assert b200.coefficients != shared_coefficients()[0]
    for name in SHIPPED:
        assert load_profile(name).validation == validation, name


USER_PROFILE = """\
hardware = "Lab GPU 9000"
board_power_w = 300
memory_bandwidth_gb_s = 1000
peak_tflops = { fp32 = 10, fp16 = 100 }
[sources]
peak = "our own measurement"
"""


def top(line: str) -> str:
    """USER_PROFILE with one more top-level key."""
    return USER_PROFILE.replace("[sources]", f"{line}\n[sources]")


def test_user_profile_file_takes_the_shipped_coefficients(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(USER_PROFILE)
    profile = load_profile(str(path))
    assert profile.name == "lab" and profile.origin == str(path)
    assert profile.peak("bf16") == 100e12  # falls back to fp16
    assert profile.coefficients == shared_coefficients()[0]
    assert profile.interconnect is None and profile.validation is None
    path.write_text(USER_PROFILE + "[coefficients]\nhost_s = 5e-6\n")
    tuned = load_profile(str(path))
    assert tuned.coefficients.host_s == 5e-6
    assert tuned.coefficient_sources["host_s"] == f"set in {path}"


def test_a_profile_with_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + USER_PROFILE.encode())
    assert load_profile(str(path)).hardware == "Lab GPU 9000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (USER_PROFILE.replace('hardware = "Lab GPU 9000"\n', ""), "missing key.*hardware"),
        (USER_PROFILE.replace("fp32 = 10, ", ""), "needs at least fp32"),
        (USER_PROFILE.replace("fp16 = 100", "fp4 = 100"), "unknown dtype.*fp4"),
        (top("lunch_s = 1"), "unknown key.*lunch_s"),
        (USER_PROFILE.replace("= 1000", '= "fast"'), "memory_bandwidth_gb_s must be a number"),
        ("hardware = ", "not valid TOML"),
        # physical bounds, named with the field
        (USER_PROFILE.replace("= 1000", "= -1"), r"memory_bandwidth_gb_s must be from 1 GB/s"),
        (USER_PROFILE.replace("= 1000", "= 1e-300"), r"memory_bandwidth_gb_s must be from 1 GB/s"),
        (USER_PROFILE.replace("= 1000", "= 2e5"), r"1 GB/s to 100 TB/s"),
        (USER_PROFILE.replace("= 300", "= 0.5"), r"board_power_w must be from 1 W to 10 kW"),
        (USER_PROFILE.replace("= 300", "= 20000"), r"board_power_w must be from 1 W to 10 kW"),
        (USER_PROFILE.replace("fp16 = 100", "fp16 = 1e6"), r"peak_tflops.fp16 must be from 0.1"),
        (USER_PROFILE.replace("fp32 = 10", "fp32 = 0.01"), r"peak_tflops.fp32 must be from 0.1"),
        (top("interconnect_gb_s = 0"), r"interconnect_gb_s must be from 1 GB/s"),
        (USER_PROFILE + "[coefficients]\nhost_s = 1e300\n", r"coefficients.host_s must be from 0"),
        (USER_PROFILE + "[coefficients]\neta_memory_max = 0\n", r"eta_memory_max must be above 0"),
        (USER_PROFILE + "[coefficients]\nwarp_s = 1\n", r"coefficients has unknown key.*warp_s"),
        # the 0.2 keys, with what replaced them
        (top("launch_s = 1e300"), r"launch_s is no longer a profile key.*host_s"),
        (top("idle_power_w = 30"), r"idle_power_w is no longer.*static_power_frac"),
    ],
)
def test_invalid_user_profile(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_validation_table() -> None:
    table = {
        "hardware": "X",
        "board_power_w": 100,
        "memory_bandwidth_gb_s": 100,
        "peak_tflops": {"fp32": 1},
    }
    profile = parse_profile("x", table, "built-in")
    assert profile.validation == shared_coefficients()[2]
    band = Validation(24, 31.0, 87.5, "benchmarks/roofline_fit.py, 2026-12-10")
    assert band.sentence() == (
        "validated against 24 published measurements: median error 31%, 87.5% within 2x "
        "(benchmarks/roofline_fit.py, 2026-12-10)"
    )


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*H100-SXM"):
        load_profile(str(tmp_path / "nope.toml"))


def test_unknown_target_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown energy target 'H900'") as info:
        load_profile("H900")
    for name in SHIPPED:
        assert name in str(info.value)
    assert load_profile("h200-sxm").name == "H200-SXM"


def test_targets_table_lists_every_profile() -> None:
    lines = targets_table()
    assert lines[0].split()[:2] == ["target", "hardware"]
    for name in SHIPPED:
        assert any(line.startswith(name + " ") for line in lines)
    h100 = next(line for line in lines if line.startswith("H100-SXM "))
    assert h100.split()[-3:] == ["3350", "700", "450"]


def test_targets_command(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_energy.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "A100-PCIe-40GB" in out and "AMD Instinct MI300X" in out and "B200" in out


def test_profiles_need_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert load_profile("L40S").hardware == "NVIDIA L40S"
    assert targets_table()
