"""Unit tests for pytest_energy.record: the one record, its figures and its plain form."""

from __future__ import annotations

import json
import math

import pytest

from pytest_energy.record import (
    GIVEN,
    INFERRED,
    J_PER_KWH,
    SAMPLE_DIGITS,
    STORED_KEYS,
    Provenance,
    Record,
    RunSummary,
    Window,
    Work,
    kwh_per_1000,
    round_sample,
)

ROOFLINE = Provenance(
    meter="roofline",
    hardware="NVIDIA H100 SXM (roofline v3, eager)",
    estimated=True,
    deterministic=True,
    engine="eager",
    target="H100-SXM",
    description="modelled, not measured",
)
NVML = Provenance(meter="nvml", hardware="NVIDIA H100 80GB HBM3 x1", estimated=False)


def window(energy_j: float, work: Work | None = None, **kw: object) -> Window:
    return Window(
        energy_j=energy_j,
        duration_s=1.0,
        work=work or Work(4),
        start_unix_s=1.7e9,
        **kw,  # type: ignore[arg-type]
    )  # type: ignore[arg-type]


def test_round_sample_is_six_significant_digits() -> None:
    assert SAMPLE_DIGITS == 6
    assert round_sample(0.0123456789) == 0.0123457
    assert round_sample(round_sample(1 / 3)) == round_sample(1 / 3)


def test_run_summary_of_a_run() -> None:
    # median 1.0; absolute deviations 0.1, 0, 0.2 -> MAD 0.1; 1.4826 * 0.1 / 1.0 * 100
    assert RunSummary.of([1.1, 1.0, 0.8], "2026-12-01") == RunSummary(1.0, 3, 14.8, "2026-12-01")
    assert RunSummary.of([0.5], "").spread_pct == 0.0


def test_work_adds_and_scales() -> None:
    assert Work(2, 10).times(3) == Work(6, 30, None)
    assert Work(1, None, 2) + Work(3, 4, None) == Work(4, 4, 2)
    assert Work(1) + Work(1) == Work(2, None, None)


@pytest.mark.parametrize(
    ("provenance", "figures"),
    [
        (NVML, "measured"),
        (Provenance("codecarbon", "cpu", estimated=True), "estimated"),
        (ROOFLINE, "modelled"),
    ],
)
def test_figures_say_measured_estimated_or_modelled(provenance: Provenance, figures: str) -> None:
    assert provenance.figures == figures


def test_the_figures_of_a_record_of_windows() -> None:
    windows = [
        window(7.2, Work(4, 40), idle_j=3.6),
        window(14.4, Work(8, 80), idle_j=3.6),
        window(7.2, Work(4, 40), idle_j=3.6),
    ]
    r = Record.of_windows("t", NVML, windows)
    assert r.samples == (kwh_per_1000(7.2, 4),) * 3  # 1.8 J per inference each
    assert r.kwh_per_1000 == 0.0005
    assert r.joules_per_inference == pytest.approx(1.8)
    assert r.work == Work(16, 160)
    assert r.joules_per_token == pytest.approx(0.18)
    assert r.joules_per_image is None
    assert r.energy_j == pytest.approx(28.8) and r.duration_s == 3.0
    assert r.dynamic_kwh_per_1000 == pytest.approx(kwh_per_1000(3.6, 4))
    assert r.runs == (RunSummary(0.0005, 3, 0.0, "2023-11-14"),)
    assert r.counts == GIVEN and r.figures == "measured"


def test_the_median_resists_one_disturbed_window() -> None:
    r = Record.of_windows("t", NVML, [window(3.6), window(3.6), window(360.0)])
    assert r.kwh_per_1000 == kwh_per_1000(3.6, 4)


def test_a_roofline_record_carries_its_counts_and_energy_split() -> None:
    counts = {
        "flops": 8e9,
        "bytes": 4e6,
        "kernels": 40.0,
        "energy_j:matmul": 2.0,
        "energy_j:attention": 1.0,
        "energy_j:other": 0.5,
        "energy_j:overhead": 0.5,
    }
    r = Record.of_windows("t", ROOFLINE, [window(4.0, counts=counts)])
    assert r.flops_per_inference == 2e9 and r.kernels_per_inference == 10.0
    split = r.split_j_per_inference
    assert split == {"attention": 0.25, "matmul": 0.5, "other": 0.125, "overhead": 0.125}
    assert math.fsum(split.values()) == pytest.approx(r.energy_j / r.inferences)


def test_prefill_and_decode_add_up_to_the_energy() -> None:
    """``energy.generate``: prefill J per inference x batch + decode J per token x tokens is
    the record's energy."""
    windows = [
        window(10.0, Work(8, 256), phases_j={"prefill": 4.0, "decode": 6.0}),
        window(11.0, Work(8, 256), phases_j={"prefill": 4.5, "decode": 6.5}),
    ]
    r = Record.of_windows("t", NVML, windows)
    assert r.prefill_j_per_inference == pytest.approx(8.5 / 16)
    assert r.decode_j_per_token == pytest.approx(12.5 / 512)
    total = r.prefill_j_per_inference * r.inferences + r.decode_j_per_token * r.tokens  # type: ignore[operator]
    assert total == pytest.approx(r.energy_j)


def test_to_plain_and_back_is_the_same_record_through_json() -> None:
    windows = [
        window(
            7.2,
            Work(4, 40, 4),
            counts={"flops": 1.0},
            phases_j={"prefill": 7.2},
            throttle=("thermal",),
            domains_j={"gpu:0": 7.2},
        ),
    ]
    r = Record.of_windows("tests/t.py::test_x[é]", ROOFLINE, windows, counts=INFERRED)
    plain = json.loads(json.dumps(r.to_plain()))
    assert Record.from_plain(plain) == r
    assert plain["figures"] == "modelled" and plain["counts"] == "inferred"


def test_a_baseline_entry_is_the_stored_subset() -> None:
    r = Record.of_windows("t", ROOFLINE, [window(7.2)])
    stored = r.stored()
    assert stored.windows == () and stored.samples == r.samples
    assert set(STORED_KEYS) <= set(r.to_plain())
    assert "windows" not in STORED_KEYS and "nodeid" not in STORED_KEYS


def test_same_figures_ignores_the_run_dates() -> None:
    a = Record("t", NVML, (0.001, 0.002), Work(4), runs=(RunSummary(0.0015, 2, 1.0, "2026-12-01"),))
    b = Record("t", NVML, (0.001, 0.002), Work(4), runs=(RunSummary(0.0015, 2, 1.0, ""),))
    assert a.same_figures(b)
    assert not a.same_figures(Record("t", NVML, (0.001, 0.003), Work(4)))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"samples": []}, "non-empty list of samples"),
        ({"meter": ""}, "needs a meter"),
        ({"estimated": "no"}, "needs estimated = true or false"),
        ({"inferences": 0}, "has inferences = 0"),
        ({"tokens": -1}, "has tokens = -1"),
        ({"counts": "guessed"}, "has counts = 'guessed'"),
        ({"runs": [["2026-13-01", 1.0, 1, 0.0]]}, "date = '2026-13-01'"),
        ({"windows": 3}, "windows that are not a list"),
        ({"windows": [{"energy_j": 1.0}]}, "has a window that cannot be read"),
    ],
)
def test_from_plain_checks_every_value(change: dict[str, object], needle: str) -> None:
    plain = Record("t", NVML, (0.5,), Work(1)).to_plain() | change
    with pytest.raises(ValueError, match="record ") as excinfo:
        Record.from_plain(plain)
    assert needle in str(excinfo.value)


def test_a_record_needs_a_sample() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Record("t", NVML, (), Work(1))
    with pytest.raises(ValueError, match="at least one window"):
        Record.of_windows("t", NVML, [])


def test_j_per_kwh() -> None:
    assert J_PER_KWH == 3.6e6
