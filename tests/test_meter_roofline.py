"""The roofline meter's contract: attributes, counters and their energy split, agreement with
the pure model, engines and boards, determinism, and what the model catches.

The meter is used directly (read / observe / counters), as the plugin uses it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_energy.errors import ConfigError, MeterUnavailable  # noqa: E402
from pytest_energy.meters.base import Meter  # noqa: E402
from pytest_energy.meters.roofline import (  # noqa: E402
    DEFAULT_TARGET,
    TARGET_ENV,
    RooflineMeter,
    evaluate,
    load_profile,
    trace,
)
from pytest_energy.meters.roofline.model import ENERGY_CLASSES, quanta  # noqa: E402

FP32 = 4
SPLIT = tuple(f"energy_j:{name}" for name in ENERGY_CLASSES)


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> RooflineMeter:
    monkeypatch.delenv(TARGET_ENV, raising=False)
    return RooflineMeter()


def window(meter: RooflineMeter, fn: Callable[[], object]) -> dict[str, float]:
    """What the plugin records for one window: energy and counter deltas."""
    (domain,) = meter.read()
    energy_before, counts_before = meter.read()[domain], meter.counters()
    with torch.inference_mode(), meter.observe():
        fn()
    counts_after = meter.counters()
    delta = {key: counts_after[key] - counts_before[key] for key in counts_after}
    delta["joules"] = meter.read()[domain] - energy_before
    return delta


def small_gpt2(device: str = "cpu") -> Callable[[], object]:
    transformers = pytest.importorskip("transformers")
    with torch.device(device):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=200, n_positions=64)
        ).eval()
        ids = torch.zeros(3, 24, dtype=torch.long)
    return lambda: model(input_ids=ids).logits


# -- the meter's attributes ---------------------------------------------------------------


def test_attributes(meter: RooflineMeter) -> None:
    assert isinstance(meter, Meter)
    assert meter.name == "roofline"
    assert meter.target == "H100-SXM" and meter.engine == "eager" and meter.tensor_parallel == 1
    assert meter.hardware == "NVIDIA H100 SXM (roofline v3, eager)"
    assert meter.estimated is True
    assert meter.deterministic is True
    assert meter.update_period_s == 0.0
    assert meter.devices == ()
    assert "GPU-board energy (what NVML reads)" in meter.provenance
    assert "target H100-SXM" in meter.provenance
    assert "NVIDIA H100 Tensor Core GPU datasheet" in meter.provenance
    assert meter.profile.validation is not None
    assert meter.profile.validation.sentence() in meter.provenance
    assert meter.read() == {"roofline:H100-SXM": 0.0}
    assert meter.counters() == {"flops": 0.0, "bytes": 0.0, "kernels": 0.0} | dict.fromkeys(
        SPLIT, 0.0
    )
    meter.close()


def test_a_user_profile_is_not_quoted_the_shipped_band(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        'hardware = "Lab GPU"\nboard_power_w = 300\nmemory_bandwidth_gb_s = 1000\n'
        "peak_tflops = { fp32 = 10 }\n"
    )
    assert RooflineMeter(str(path)).provenance.endswith("not yet validated")
    assert not RooflineMeter("B200").provenance.endswith("not yet validated")


def test_the_hardware_key_names_the_model_version_engine_and_boards() -> None:
    # 0.2 recorded "NVIDIA H100 SXM (roofline model)": its baselines must read as new
    compiled = RooflineMeter("H100-SXM", engine="compiled", tensor_parallel=4)
    assert compiled.hardware == "4x NVIDIA H100 SXM (roofline v3, compiled)"
    assert "engine compiled, tensor parallel over 4 boards" in compiled.provenance
    assert RooflineMeter("L4").hardware == "NVIDIA L4 (roofline v3, eager)"
    assert len({RooflineMeter(engine=e).hardware for e in ("eager", "compiled")}) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine": "vllm"}, "unknown roofline engine 'vllm'; use one of eager, compiled"),
        ({"tensor_parallel": 0}, "tensor_parallel must be a whole number of boards from 1"),
        ({"tensor_parallel": "4"}, "tensor_parallel must be a whole number"),
    ],
)
def test_bad_engine_or_boards_is_a_config_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RooflineMeter(**options)  # type: ignore[arg-type]


def test_tensor_parallel_needs_a_profile_with_an_interconnect(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        'hardware = "Lab"\nboard_power_w = 300\nmemory_bandwidth_gb_s = 1000\n'
        "peak_tflops = { fp32 = 10 }\n"
    )
    RooflineMeter(str(path))
    with pytest.raises(ConfigError, match="no interconnect_gb_s"):
        RooflineMeter(str(path), tensor_parallel=2)


def test_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV, "l4")
    meter = RooflineMeter()
    assert meter.target == "L4"
    assert list(meter.read()) == ["roofline:L4"]
    monkeypatch.setenv(TARGET_ENV, "")
    assert RooflineMeter().target == DEFAULT_TARGET
    monkeypatch.setenv(TARGET_ENV, "B300")
    with pytest.raises(ConfigError, match="'B300'"):
        RooflineMeter()


# -- counters and the energy split ---------------------------------------------------------


def test_the_energy_split_sums_to_the_reading_exactly(meter: RooflineMeter) -> None:
    forward = small_gpt2()
    for _ in range(2):
        window(meter, forward)
        counters = meter.counters()
        (total,) = meter.read().values()
        split = [counters[key] for key in SPLIT]
        assert sum(quanta(j) for j in split) == quanta(total)
        assert counters["energy_j:matmul"] > 0 and counters["energy_j:attention"] > 0
        assert counters["energy_j:other"] > 0 and counters["energy_j:overhead"] > 0
        assert counters["energy_j:collective"] == 0  # one board


def test_a_tiny_model_is_mostly_launch_overhead(meter: RooflineMeter) -> None:
    counts = window(meter, small_gpt2())
    assert counts["energy_j:overhead"] / counts["joules"] > 0.8


@pytest.mark.parametrize("engine", ["eager", "compiled"])
@pytest.mark.parametrize("boards", [1, 2])
def test_the_meter_gives_what_evaluate_gives_on_the_same_ops(engine: str, boards: int) -> None:
    forward = small_gpt2()
    meter = RooflineMeter("A100-SXM-80GB", engine=engine, tensor_parallel=boards)
    counts = window(meter, forward)
    with torch.inference_mode():
        records = trace(forward).records
    profile = load_profile("A100-SXM-80GB")
    expected = evaluate(
        profile, profile.coefficients, records, engine=engine, tensor_parallel=boards
    )
    assert counts["joules"] == expected.energy_j
    assert [counts[key] for key in SPLIT] == [expected.joules_of(c) for c in ENERGY_CLASSES]
    assert counts["flops"] == expected.flops and counts["bytes"] == expected.bytes
    assert meter.trace().records == records
    assert meter.tally().time_ps == round(expected.time_s * 1e12)


def test_kernels_and_figures_per_inference_are_in_the_counters(meter: RooflineMeter) -> None:
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64)
    counts = window(meter, lambda: layer(x))
    assert counts["flops"] == 2 * 8 * 64 * 32  # torch's addmm formula: 2mnk, bias not counted
    assert counts["bytes"] == (8 * 64 + 32 * 64 + 32 + 8 * 32) * FP32
    assert counts["kernels"] == 1


def test_a_meta_model_runs_inside_observe_with_no_weights_allocated() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=2,
                num_attention_heads=32,
                num_key_value_heads=8,
                vocab_size=128256,
            )
        ).to(torch.bfloat16)
        ids = torch.zeros(1, 64, dtype=torch.long)
    assert all(p.device.type == "meta" for p in model.parameters())
    meter = RooflineMeter()
    with torch.inference_mode(), meter.observe():
        logits = model(input_ids=ids).logits
    assert logits.device.type == "meta"
    weights = sum(p.numel() for p in model.parameters())
    assert meter.counters()["flops"] > 2 * 64 * (weights - 2 * 128256 * 4096)


# -- determinism ----------------------------------------------------------------------------


def test_same_work_same_figures_to_the_last_digit(meter: RooflineMeter) -> None:
    forward = small_gpt2()
    first = window(meter, forward)
    for _ in range(3):
        assert window(meter, forward) == first
    # a fresh meter (empty cost cache) agrees too
    assert window(RooflineMeter(), forward) == first


def test_thread_count_does_not_change_the_figures() -> None:
    forward = small_gpt2()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = window(RooflineMeter(), forward)
        torch.set_num_threads(2)
        two = window(RooflineMeter(), forward)
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_nothing_outside_observe_is_counted(meter: RooflineMeter) -> None:
    layer = torch.nn.Linear(16, 16)
    x = torch.randn(4, 16)
    layer(x)  # setup, before any window
    assert meter.read() == {"roofline:H100-SXM": 0.0}
    assert meter.counters()["kernels"] == 0
    with meter.observe():
        layer(x)
    counted = meter.counters()
    joules = meter.read()
    layer(x)  # after the window
    torch.matmul(x, x.T)
    assert meter.counters() == counted
    assert meter.read() == joules


def test_observe_can_be_entered_again(meter: RooflineMeter) -> None:
    x = torch.randn(8, 8)
    with meter.observe():
        torch.relu(x)
    with meter.observe():
        torch.relu(x)
    assert meter.counters()["kernels"] == 2


def test_a_grad_free_window_returns_ordinary_tensors(meter: RooflineMeter) -> None:
    # the window skips the autograd keys; what it returns must still work with autograd
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with torch.no_grad(), meter.observe():
        y = layer(x)
    assert not torch.is_inference(y) and not y.requires_grad
    (layer(y).sum()).backward()
    assert layer.weight.grad is not None


# -- what the model catches -----------------------------------------------------------------


def test_a_5_percent_wider_linear_costs_more_at_realistic_size(meter: RooflineMeter) -> None:
    x = torch.randn(512, 1024)
    base = torch.nn.Linear(1024, 1024)
    wider = torch.nn.Linear(1024, 1075)  # 5% more outputs, 5% more weights
    cost = window(meter, lambda: base(x))["joules"]
    cost_wider = window(meter, lambda: wider(x))["joules"]
    # far beyond the 1% that fails a deterministic gate
    assert 0.03 < cost_wider / cost - 1 <= 0.05


def test_batch_32_is_cheaper_per_item_than_batch_1(meter: RooflineMeter) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 3), torch.nn.Softmax(-1)
    )
    items = torch.randn(32, 64)
    one_by_one = window(meter, lambda: [net(items[i : i + 1]) for i in range(32)])
    batched = window(meter, lambda: net(items))
    assert batched["flops"] == pytest.approx(one_by_one["flops"])  # same arithmetic
    assert batched["kernels"] * 32 == one_by_one["kernels"]
    assert batched["joules"] < one_by_one["joules"] / 10  # 32 launches and weight reads -> 1


def test_bfloat16_is_modelled_cheaper_than_float32(meter: RooflineMeter) -> None:
    x = torch.randn(4096, 4096)
    layer = torch.nn.Linear(4096, 4096)
    fp32 = window(meter, lambda: layer(x))
    layer_bf16, x_bf16 = layer.to(torch.bfloat16), x.to(torch.bfloat16)
    bf16 = window(meter, lambda: layer_bf16(x_bf16))
    assert bf16["flops"] == fp32["flops"]
    assert bf16["bytes"] == fp32["bytes"] / 2
    # fp32 matmul at the 67 TFLOPS vector peak vs bf16 at the 989.5 TFLOPS tensor peak
    assert bf16["joules"] < fp32["joules"] / 5


def test_the_target_changes_the_figures_not_the_counts() -> None:
    x = torch.randn(64, 256)
    layer = torch.nn.Linear(256, 256)
    h100 = window(RooflineMeter("H100-SXM"), lambda: layer(x))
    t4 = window(RooflineMeter("T4"), lambda: layer(x))
    for key in ("flops", "bytes", "kernels"):
        assert h100[key] == t4[key]
    assert t4["joules"] != h100["joules"]


def test_a_bigger_memory_bandwidth_makes_decode_cheaper() -> None:
    # a weight-streaming GEMV (batch 8 decode): H200's 4.8 TB/s against H100's 3.35 TB/s
    x = torch.randn(8, 4096, dtype=torch.bfloat16)
    layer = torch.nn.Linear(4096, 14336, bias=False).to(torch.bfloat16)
    h100 = window(RooflineMeter("H100-SXM", engine="compiled"), lambda: layer(x))
    h200 = window(RooflineMeter("H200-SXM", engine="compiled"), lambda: layer(x))
    assert h200["joules"] < h100["joules"]


# -- without torch --------------------------------------------------------------------------


def test_without_torch_the_error_names_torch_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees when absent
    with pytest.raises(MeterUnavailable) as info:
        RooflineMeter()
    text = str(info.value)
    assert info.value.meter == "roofline"
    assert "torch cannot be imported" in text
    assert "pip install torch" in text
    assert "--index-url https://download.pytorch.org/whl/cpu" in text


# -- tensor parallel and engines on a Llama-style model -------------------------------------


def llama_on_meta(layers: int = 2) -> tuple[object, object]:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=layers,
                num_attention_heads=8,
                num_key_value_heads=4,
                vocab_size=32000,
            )
        ).to(torch.bfloat16)
        ids = torch.zeros(4, 128, dtype=torch.long)
    return model, ids


def test_tensor_parallel_adds_two_all_reduces_per_decoder_layer() -> None:
    model, ids = llama_on_meta(layers=3)
    meters = {n: RooflineMeter("H100-SXM", engine="compiled", tensor_parallel=n) for n in (1, 4)}
    for meter in meters.values():
        with torch.inference_mode(), meter.observe():
            model(input_ids=ids)  # type: ignore[operator]
    records = meters[4].trace().records
    assert records == meters[1].trace().records  # the count does not depend on the boards
    (collective,) = [r for r in records if r.op_class == "collective"]
    # one after the attention block's output projection, one after the MLP's down
    # projection, in every layer: each all-reduces the hidden states (4 x 128 x 1024, bf16)
    assert collective.count == 2 * 3
    assert collective.bytes == 4 * 128 * 1024 * 2
    one, four = (meters[n].counters() for n in (1, 4))
    assert one["energy_j:collective"] == 0 < four["energy_j:collective"]
    assert one["flops"] == four["flops"] and one["kernels"] == four["kernels"]
    t1, t4 = meters[1].tally(), meters[4].tally()
    assert t4.target_kernels == 4 * t1.target_kernels + 4 * 2 * 3
    assert t4.time_ps < t1.time_ps  # each board does a quarter of the matrix products
    assert meters[4].hardware == "4x NVIDIA H100 SXM (roofline v3, compiled)"


def test_the_compiled_engine_fuses_pointwise_ops_and_drops_host_time() -> None:
    model, ids = llama_on_meta()
    meters = {e: RooflineMeter("H100-SXM", engine=e) for e in ("eager", "compiled")}
    for meter in meters.values():
        with torch.inference_mode(), meter.observe():
            model(input_ids=ids)  # type: ignore[operator]
    eager, compiled = meters["eager"].tally(), meters["compiled"].tally()
    assert eager.kernels == compiled.kernels == eager.target_kernels
    assert compiled.target_kernels < 0.6 * eager.target_kernels  # pointwise ops fused
    assert sum(compiled.energy_units) < sum(eager.energy_units)
    assert compiled.energy_units[4] < eager.energy_units[4]  # overhead: no host wait


def test_a_tiny_model_is_launch_bound_so_a_wider_layer_does_not_show() -> None:
    # what docs/measurement.md says test-size models gate: the number of ops, not their size
    transformers = pytest.importorskip("transformers")

    def joules(width: int) -> float:
        config = transformers.BertConfig(
            hidden_size=width, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256
        )
        with torch.device("meta"):
            model = transformers.BertForSequenceClassification(config).eval()
            ids = torch.zeros(8, 32, dtype=torch.long)
        return window(RooflineMeter(), lambda: model(input_ids=ids))["joules"]

    assert abs(joules(68) / joules(64) - 1) < 0.01  # 6% wider, under the 1% tolerance
