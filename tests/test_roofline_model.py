"""The roofline energy model in isolation (model.py): no torch, records priced by hand."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest

from pytest_energy.errors import ConfigError
from pytest_energy.meters.roofline import model
from pytest_energy.meters.roofline.model import Coefficients, OpRecord, evaluate
from pytest_energy.meters.roofline.profiles import load_profile

H100 = load_profile("H100-SXM")
C = H100.coefficients
TDP, PEAK_BF16, BW = 700.0, 989.5e12, 3.35e12


def joules(record: OpRecord, **options: object) -> float:
    return evaluate(H100, C, [record], **options).energy_j  # type: ignore[arg-type]


def hand(flops: float, nbytes: float, peak: float, *, engine: str = "eager") -> float:
    """The documented formula for one kernel, written out."""
    t_compute = (flops / peak + C.compute_half_s) / C.eta_compute_max if flops else 0.0
    t_memory = (nbytes / BW + C.memory_half_s) / C.eta_memory_max if nbytes else 0.0
    t = max(t_compute, t_memory, C.kernel_min_s)
    t = max(t, C.host_s) if engine == "eager" else t + C.graph_gap_s
    dynamic = TDP * (C.compute_power_frac * flops / peak + C.memory_power_frac * nbytes / BW)
    energy = TDP * C.static_power_frac * t + dynamic
    if energy > TDP * t:
        energy = TDP * dynamic / (TDP * (1 - C.static_power_frac))
    return energy


@pytest.mark.parametrize("engine", ["eager", "compiled"])
@pytest.mark.parametrize(
    ("flops", "nbytes"),
    [(0, 4096), (2 * 4096**3, 3 * 2 * 4096**2), (2 * 8 * 4096 * 4096, 2 * 4096 * 4096), (10, 0)],
    ids=["tiny copy", "big gemm", "gemv", "scalar"],
)
def test_one_kernel_follows_the_documented_formula(flops: int, nbytes: int, engine: str) -> None:
    record = OpRecord("matmul", flops, nbytes, "bf16")
    expected = hand(flops, nbytes, PEAK_BF16, engine=engine)
    assert joules(record, engine=engine) == pytest.approx(expected, rel=1e-9, abs=2**-30)


def test_a_power_limited_gemm_stretches_and_never_exceeds_tdp() -> None:
    # static + eta x compute power above 1: the board would draw more than TDP
    frac = 2.0 * (1 - C.static_power_frac) / C.eta_compute_max
    hungry = dataclasses.replace(C, compute_power_frac=frac)
    record = OpRecord("matmul", 2 * 16384**3, 3 * 2 * 16384**2, "bf16")
    capped = evaluate(H100, hungry, [record])
    assert capped.energy_j / capped.time_s == pytest.approx(TDP, rel=1e-6)
    uncapped_time = (record.flops / PEAK_BF16 + C.compute_half_s) / C.eta_compute_max + C.host_s
    assert capped.time_s > uncapped_time  # clocked down: slower
    assert capped.energy_j == pytest.approx(
        TDP
        * (frac * record.flops / PEAK_BF16 + C.memory_power_frac * record.bytes / BW)
        / (1 - C.static_power_frac),
        rel=1e-9,
    )
    plain = evaluate(H100, C, [record])
    assert plain.energy_j / plain.time_s < TDP


def test_eager_pays_host_time_and_compiled_does_not() -> None:
    tiny = OpRecord("other", 256, 2048, "fp32")
    eager = evaluate(H100, C, [tiny], engine="eager")
    compiled = evaluate(H100, C, [tiny], engine="compiled")
    t_work = max(
        (256 / 67e12 + C.compute_half_s) / C.eta_compute_max,
        (2048 / BW + C.memory_half_s) / C.eta_memory_max,
    )
    assert C.host_s > max(t_work, C.kernel_min_s)  # a tiny op: the host is the bottleneck
    assert eager.time_s == pytest.approx(C.host_s)
    assert compiled.time_s == pytest.approx(max(t_work, C.kernel_min_s) + C.graph_gap_s)
    # the GPU waits on the host at active clocks: static power over the host time
    assert eager.joules_of("overhead") == pytest.approx(
        TDP * C.static_power_frac * (C.host_s - t_work), abs=2**-29
    )
    # the same work, and the static power for the host time instead of the graph gap
    assert eager.energy_j - compiled.energy_j == pytest.approx(
        TDP * C.static_power_frac * (eager.time_s - compiled.time_s), rel=1e-6
    )
    assert eager.energy_j > 4 * compiled.energy_j


def test_compiled_fuses_pointwise_ops() -> None:
    pointwise = OpRecord("other", 10**6, 8 * 10**6, "fp32", fusible=True)
    fused = evaluate(H100, C, [pointwise], engine="compiled")
    assert fused.kernels == 0
    assert fused.bytes == 8 * 10**6  # counted work is unchanged; the engine moves none of it
    assert fused.energy_j == pytest.approx(
        TDP * (C.static_power_frac / C.eta_compute_max + C.compute_power_frac) * 10**6 / 67e12,
        abs=2**-29,
    )
    assert fused.joules_of("overhead") == 0
    eager = evaluate(H100, C, [pointwise], engine="eager")
    assert eager.kernels == 1 and eager.energy_j > 100 * fused.energy_j


def test_energy_classes_add_up_and_records_are_additive() -> None:
    records = [
        OpRecord("matmul", 2 * 512 * 4096 * 4096, 2 * (512 * 4096 * 2 + 4096**2), "bf16"),
        OpRecord("attention", 4 * 8 * 32 * 512 * 512 * 128, 10**7, "bf16"),
        OpRecord("other", 512 * 4096, 4 * 512 * 4096, "fp32", count=7, fusible=True),
        OpRecord("collective", 0, 512 * 4096 * 2, "bf16", count=2),
    ]
    for engine in model.ENGINES:
        for boards in (1, 4):
            whole = evaluate(H100, C, records, engine=engine, tensor_parallel=boards)
            assert sum(whole.units) == whole.energy_units
            assert whole.energy_j == pytest.approx(
                sum(whole.joules_of(c) for c in model.ENERGY_CLASSES), abs=0
            )
            parts = [evaluate(H100, C, [r], engine=engine, tensor_parallel=boards) for r in records]
            assert whole.units == tuple(map(sum, zip(*(p.units for p in parts), strict=True)))
            one = dataclasses.replace(records[2], count=1)
            single = evaluate(H100, C, [one], engine=engine, tensor_parallel=boards)
            assert parts[2].units == tuple(7 * u for u in single.units)


def test_tensor_parallel_splits_matrix_products_and_adds_all_reduces() -> None:
    gemm = OpRecord("matmul", 2 * 8 * 8192 * 28672, 2 * 8192 * 28672, "bf16")
    norm = OpRecord("other", 8 * 8192, 4 * 8 * 8192, "fp32")
    reduce = OpRecord("collective", 0, 8 * 8192 * 2, "bf16")
    one = evaluate(H100, C, [gemm, norm, reduce], engine="compiled")
    four = evaluate(H100, C, [gemm, norm, reduce], engine="compiled", tensor_parallel=4)
    assert one.joules_of("collective") == 0 and one.kernels == 2
    assert four.kernels == 4 * 3
    # each board streams a quarter of the weights: about a quarter of the time
    assert four.time_s < one.time_s / 2
    per_board = evaluate(
        H100, C, [OpRecord("matmul", gemm.flops // 4, gemm.bytes // 4, "bf16")], engine="compiled"
    )
    assert four.joules_of("matmul") == pytest.approx(4 * per_board.joules_of("matmul"), rel=1e-9)
    link = 2 * 3 / 4 * reduce.bytes
    t_reduce = link / (C.eta_interconnect_max * 450e9) + C.collective_latency_s + C.graph_gap_s
    expected = 4 * (TDP * C.static_power_frac * t_reduce + TDP * C.memory_power_frac * link / BW)
    collective_only = evaluate(H100, C, [reduce], engine="compiled", tensor_parallel=4)
    assert collective_only.energy_j == pytest.approx(expected, abs=2**-29)
    assert collective_only.time_s == pytest.approx(t_reduce, rel=1e-9)


def test_fp8_and_bf16_peaks_and_fallbacks() -> None:
    a100 = load_profile("A100-SXM-80GB")
    gemm = OpRecord("matmul", 2 * 8192**3, 3 * 8192**2, "fp8")
    # an A100 has no fp8: it runs at its fp16 peak
    assert (
        evaluate(a100, C, [gemm]).energy_j
        == evaluate(a100, C, [dataclasses.replace(gemm, peak_key="fp16")]).energy_j
    )
    assert joules(gemm) < joules(dataclasses.replace(gemm, peak_key="bf16"))


def test_bad_engine_and_board_counts_name_the_accepted_values() -> None:
    record = [OpRecord("other", 1, 1, "fp32")]
    with pytest.raises(ConfigError, match="eager, compiled"):
        evaluate(H100, C, record, engine="vllm")
    for boards in (0, -1, 1.5, True, 2000):
        with pytest.raises(ConfigError, match="tensor_parallel must be a whole number"):
            evaluate(H100, C, record, tensor_parallel=boards)  # type: ignore[arg-type]


def test_tensor_parallel_needs_an_interconnect() -> None:
    bare = dataclasses.replace(H100, interconnect=None, interconnect_b_s=None)
    record = [OpRecord("collective", 0, 1024, "bf16")]
    assert evaluate(bare, C, record).energy_j == 0
    with pytest.raises(ConfigError, match="no interconnect_gb_s"):
        evaluate(bare, C, record, tensor_parallel=2)


def test_coefficient_bounds() -> None:
    good = dataclasses.asdict(C)
    assert model.coefficients_from(good) == C
    for name, bad in [
        ("eta_compute_max", 0.0),
        ("eta_memory_max", 1.5),
        ("host_s", 2e-3),
        ("kernel_min_s", -1e-6),
        ("static_power_frac", 1.0),
        ("memory_power_frac", math.inf),
        ("graph_gap_s", math.nan),
    ]:
        with pytest.raises(ConfigError, match=f"{name} must be"):
            model.coefficients_from({**good, name: bad})
    with pytest.raises(ConfigError, match="missing host_s"):
        model.coefficients_from({k: v for k, v in good.items() if k != "host_s"})
    assert set(model.COEFFICIENT_BOUNDS) == {f.name for f in dataclasses.fields(Coefficients)}


def test_extreme_but_valid_figures_stay_finite() -> None:
    # the slowest and fastest allowed hardware with the largest allowed per-op costs
    slow = dataclasses.replace(
        H100, memory_bandwidth_b_s=1e9, peak_ops_s={"fp32": 0.1e12}, board_power_w=10_000
    )
    slow_c = dataclasses.replace(C, host_s=1e-3, kernel_min_s=1e-3, memory_half_s=1e-3)
    records = [OpRecord("other", 10**15, 10**15, "fp32", count=10**6)]
    result = evaluate(slow, slow_c, records)
    assert math.isfinite(result.energy_j) and result.energy_j > 0


def test_energy_is_whole_quanta_and_readings_subtract_exactly() -> None:
    result = evaluate(H100, C, [OpRecord("matmul", 10**12, 10**6, "bf16")])
    assert all(isinstance(u, int) for u in result.units)
    big, small = 3 * 2**50 + 12345, 987_654_321
    assert model.joules(big + small) - model.joules(big) == model.joules(small)
    assert model.quanta(model.joules(small)) == small


def test_the_model_needs_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert evaluate(H100, C, [OpRecord("other", 1, 8, "fp32")]).energy_j > 0
