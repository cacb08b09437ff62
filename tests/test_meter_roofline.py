"""The roofline meter: counted FLOPs and bytes against hand-computed values, the model's
response to the changes it exists to catch, determinism, profiles and errors.

The meter is used directly (read / observe / counters), as the plugin will use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from benchmark_scripts import load_script

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from pytest_energy.errors import ConfigError, MeterUnavailable  # noqa: E402
from pytest_energy.meters.base import Meter  # noqa: E402
from pytest_energy.meters.roofline import (  # noqa: E402
    DEFAULT_TARGET,
    TARGET_ENV,
    RooflineMeter,
    load_profile,
    profile_names,
    targets_table,
)
from pytest_energy.meters.roofline import model as roofline_model  # noqa: E402

FP32 = 4
SHIPPED = (
    "H100-SXM",
    "H100-PCIe",
    "A100-SXM-80GB",
    "A100-PCIe-40GB",
    "L40S",
    "L4",
    "A10G",
    "T4",
    "MI300X",
)


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


# -- the meter's attributes ---------------------------------------------------------------


def test_attributes(meter: RooflineMeter) -> None:
    assert isinstance(meter, Meter)
    assert meter.name == "roofline"
    assert meter.hardware == "NVIDIA H100 SXM (roofline model)"
    assert meter.estimated is True
    assert meter.deterministic is True
    assert meter.update_period_s == 0.0
    assert meter.devices == ()
    assert "target H100-SXM" in meter.provenance
    assert "max(FLOPs / dense peak[dtype], bytes / memory bandwidth)" in meter.provenance
    assert "NVIDIA H100 Tensor Core GPU datasheet" in meter.provenance
    assert meter.read() == {"roofline:H100-SXM": 0.0}
    assert meter.counters() == {"flops": 0.0, "bytes": 0.0, "kernels": 0.0}
    meter.close()


# -- FLOPs and bytes, by hand ---------------------------------------------------------------


def test_linear_flops_and_bytes(meter: RooflineMeter) -> None:
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64)
    counts = window(meter, lambda: layer(x))
    assert counts["flops"] == 2 * 8 * 64 * 32  # torch's addmm formula: 2mnk, bias not counted
    # reads input, weight, bias; writes the output ("t" of the weight is a free view)
    assert counts["bytes"] == (8 * 64 + 32 * 64 + 32 + 8 * 32) * FP32
    assert counts["kernels"] == 1
    busy = max(2 * 8 * 64 * 32 / 67e12, counts["bytes"] / 3350e9)
    assert counts["joules"] == pytest.approx(700 * busy + 70 * 4e-6, abs=2**-30)


def test_linear_under_inference_mode_costs_what_its_decomposition_costs(
    meter: RooflineMeter,
) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    x = torch.randn(4, 6, 32)  # 3-d input: linear reshapes around addmm
    under_inference_mode = window(meter, lambda: net(x))  # aten.linear arrives whole
    (domain,) = meter.read()
    before, counts = meter.read()[domain], meter.counters()
    with torch.no_grad(), meter.observe():  # it arrives as view + t + addmm + view
        net(x)
    after = {key: value - counts[key] for key, value in meter.counters().items()}
    after["joules"] = meter.read()[domain] - before
    assert after == under_inference_mode
    assert after["flops"] == 2 * 24 * 32 * 48 + 24 * 48 + 2 * 24 * 48 * 8


def test_conv2d_flops_and_bytes(meter: RooflineMeter) -> None:
    conv = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    counts = window(meter, lambda: conv(x))
    # 2 FLOPs per multiply-add: each of the 2*4*8*8 outputs sums 3*3*3 products
    assert counts["flops"] == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)
    assert counts["bytes"] == (2 * 3 * 8 * 8 + 4 * 3 * 3 * 3 + 4 + 2 * 4 * 8 * 8) * FP32
    assert counts["kernels"] == 1


def test_cpu_attention_kernel_counted_with_the_attention_formula(meter: RooflineMeter) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    b, h, s, d = 2, 4, 16, 8
    q, k, v = (torch.randn(b, h, s, d) for _ in range(3))
    plain = FlopCounterMode(display=False)
    with plain:
        F.scaled_dot_product_attention(q, k, v)
    assert plain.get_total_flops() == 0  # the blind spot: the CPU kernel is not registered

    seen: list[str] = []

    def record() -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        class Names(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                seen.append(str(func))
                return func(*args, **(kwargs or {}))

        with Names():
            F.scaled_dot_product_attention(q, k, v)

    record()
    assert "aten._scaled_dot_product_flash_attention_for_cpu.default" in seen
    counts = window(meter, lambda: F.scaled_dot_product_attention(q, k, v))
    # Q @ K^T and P @ V: two batched matmuls of 2*b*h*s*s*d FLOPs each
    assert counts["flops"] == 2 * (2 * b * h * s * s * d)
    # reads q, k, v; writes the output and the float32 log-sum-exp (b, h, s)
    assert counts["bytes"] == (3 * b * h * s * d + b * h * s * d + b * h * s) * FP32
    assert counts["kernels"] == 1
    assert meter.tally().matmul_flops == counts["flops"]


def test_views_are_free_and_not_kernels(meter: RooflineMeter) -> None:
    x = torch.randn(4, 6)
    counts = window(
        meter,
        lambda: (x.view(24), x.t(), x.permute(1, 0), x.expand(2, 4, 6), x.detach(), x[1:3], x.T),
    )
    assert counts == {"flops": 0.0, "bytes": 0.0, "kernels": 0.0, "joules": 0.0}


def test_a_reshape_that_copies_is_counted_under_inference_mode(meter: RooflineMeter) -> None:
    x = torch.randn(6, 4).t()  # not contiguous: reshape must copy
    counts = window(meter, lambda: x.reshape(24))  # window() runs under inference_mode
    assert counts["kernels"] == 1
    assert counts["bytes"] == 2 * 24 * FP32
    assert window(meter, lambda: x.reshape(4, 6))["kernels"] == 0  # a view: free


def test_a_cast_is_a_kernel_under_inference_mode(meter: RooflineMeter) -> None:
    # aten.to's schema says it may return its input, so it looks like a view; it is not
    x = torch.randn(8, 8)
    counts = window(meter, lambda: x.to(torch.float16))
    assert counts["kernels"] == 1
    assert counts["bytes"] == 64 * FP32 + 64 * 2
    assert window(meter, lambda: x.to(torch.float32))["kernels"] == 0  # already fp32: no copy


def test_pointwise_and_reduction_rules(meter: RooflineMeter) -> None:
    x = torch.randn(10, 20)
    counts = window(meter, lambda: torch.relu(x))
    assert counts["flops"] == 200  # 1 per output element
    assert counts["bytes"] == 2 * 200 * FP32
    counts = window(meter, lambda: x.sum(dim=1))
    assert counts["flops"] == 200  # 1 per input element
    assert counts["bytes"] == (200 + 10) * FP32


def test_an_embedding_reads_only_the_selected_rows(meter: RooflineMeter) -> None:
    table = torch.nn.Embedding(50_000, 64)
    ids = torch.tensor([[1, 7, 7, 42]])
    counts = window(meter, lambda: table(ids))
    assert counts["bytes"] == 4 * 8 + 2 * 4 * 64 * FP32  # int64 ids, rows read and written
    assert counts["flops"] == 4 * 64


def gpt2_matmul_flops(
    *, layers: int, width: int, heads: int, vocab: int, prompt: int, new_tokens: int
) -> int:
    """Matrix-product FLOPs of GPT-2's greedy generate with a KV cache, from the architecture.

    Forward pass f processes ``t_f`` new positions (the prompt, then one token at a time)
    against ``n_f`` cached + new keys. Per layer: qkv (width -> 3 width), attention output
    (width -> width), MLP (width -> 4 width -> width), each 2 FLOPs per multiply-add, and
    attention: Q K^T and P V, each 2 * heads * t_f * n_f * head_dim. The LM head runs on the
    last position only (transformers' generate keeps one logit row).
    """
    total = 0
    head_dim = width // heads
    for f in range(new_tokens):
        t = prompt if f == 0 else 1
        n = prompt + f
        linear = 2 * t * width * (3 * width + width + 4 * width + 4 * width)
        attention = 2 * (2 * heads * t * n * head_dim)
        total += layers * (linear + attention) + 2 * width * vocab
    return total


def test_gpt2_generate_with_kv_cache(meter: RooflineMeter, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        vocab_size=100,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=99,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()
    prompt = torch.tensor([[1, 2, 3, 4, 5]])

    def generate() -> object:
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=3,
            min_new_tokens=3,
            do_sample=False,
            pad_token_id=0,
            use_cache=True,
        )

    before = meter.tally()
    counts = window(meter, generate)
    matmul = meter.tally().matmul_flops - before.matmul_flops
    assert matmul == gpt2_matmul_flops(
        layers=2, width=32, heads=2, vocab=100, prompt=5, new_tokens=3
    )
    assert counts["flops"] > matmul  # plus pointwise and reductions
    weights_bytes = sum(p.numel() for p in model.parameters()) * FP32
    assert counts["bytes"] > weights_bytes  # every forward reads every layer's weights
    assert counts["joules"] > 0
    # the same generate again: exactly the same figures
    assert window(meter, generate) == counts


# -- determinism ----------------------------------------------------------------------------


def small_gpt2() -> Callable[[], object]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=200, n_positions=64)
    ).eval()
    ids = torch.randint(0, 200, (3, 24))
    return lambda: model(input_ids=ids).logits


def test_same_work_same_figures_to_the_last_digit(meter: RooflineMeter) -> None:
    forward = small_gpt2()
    first = window(meter, forward)
    for _ in range(3):
        assert window(meter, forward) == first
    # a fresh meter (empty cost cache) agrees too
    assert window(RooflineMeter(), forward) == first


def test_thread_count_does_not_change_the_figures(meter: RooflineMeter) -> None:
    forward = small_gpt2()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = window(meter, forward)
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


def test_observe_can_be_entered_again_and_nested_windows_count_once(meter: RooflineMeter) -> None:
    x = torch.randn(8, 8)
    with meter.observe():
        torch.relu(x)
    with meter.observe():
        torch.relu(x)
    assert meter.counters()["kernels"] == 2


# -- what the model catches -----------------------------------------------------------------


def test_a_5_percent_wider_linear_costs_nearly_5_percent_more(meter: RooflineMeter) -> None:
    x = torch.randn(512, 1024)
    base = torch.nn.Linear(1024, 1024)
    wider = torch.nn.Linear(1024, 1075)  # 5% more outputs, 5% more weights
    cost = window(meter, lambda: base(x))["joules"]
    cost_wider = window(meter, lambda: wider(x))["joules"]
    change = cost_wider / cost - 1
    # FLOPs grow 5%; the fixed launch cost and the unchanged input read keep the energy
    # just under: far beyond the 1% that fails a deterministic gate
    assert 0.045 < change <= 0.05


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
    x = torch.randn(512, 1024)
    layer = torch.nn.Linear(1024, 1024)
    fp32 = window(meter, lambda: layer(x))
    layer_bf16, x_bf16 = layer.to(torch.bfloat16), x.to(torch.bfloat16)
    bf16 = window(meter, lambda: layer_bf16(x_bf16))
    assert bf16["flops"] == fp32["flops"]
    assert bf16["bytes"] == fp32["bytes"] / 2
    # fp32 matmul at the 67 TFLOPS vector peak vs bf16 at the 989.5 TFLOPS tensor peak
    assert bf16["joules"] < fp32["joules"] / 5


def test_tf32_precision_setting_is_modelled(meter: RooflineMeter) -> None:
    x = torch.randn(512, 1024)
    layer = torch.nn.Linear(1024, 1024)
    highest = window(meter, lambda: layer(x))["joules"]
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        tf32 = window(meter, lambda: layer(x))["joules"]
    finally:
        torch.set_float32_matmul_precision(previous)
    assert tf32 < highest / 2
    assert window(meter, lambda: layer(x))["joules"] == highest


def test_the_target_changes_the_figures_not_the_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(64, 256)
    layer = torch.nn.Linear(256, 256)
    h100 = window(RooflineMeter("H100-SXM"), lambda: layer(x))
    t4 = window(RooflineMeter("T4"), lambda: layer(x))
    assert {k: v for k, v in h100.items() if k != "joules"} == {
        k: v for k, v in t4.items() if k != "joules"
    }
    assert t4["joules"] != h100["joules"]


# -- targets and profiles -------------------------------------------------------------------


def test_shipped_profiles() -> None:
    assert profile_names() == list(SHIPPED)
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert 0 < profile.idle_power_w < profile.board_power_w
        assert {"fp32", "fp16"} <= set(profile.peak_ops_s)
        assert set(profile.sources) == {
            "peak",
            "memory_bandwidth",
            "board_power",
            "idle_power",
            "launch",
        }
        assert all(profile.sources.values())
    h100 = load_profile("H100-SXM")
    assert h100.peak_ops_s["bf16"] == 989.5e12  # dense, not the 1,979 with sparsity
    assert h100.memory_bandwidth_b_s == 3.35e12
    assert load_profile("A100-SXM-80GB").peak("fp8") == 312e12  # no fp8: runs as fp16
    assert load_profile("T4").peak("bf16") == 65e12


def test_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV, "l4")
    meter = RooflineMeter()
    assert meter.hardware == "NVIDIA L4 (roofline model)"
    assert list(meter.read()) == ["roofline:L4"]
    monkeypatch.setenv(TARGET_ENV, "")
    assert RooflineMeter().profile.name == DEFAULT_TARGET
    assert RooflineMeter("MI300X").hardware == "AMD Instinct MI300X (roofline model)"


def test_unknown_target_lists_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown energy target 'H200'") as info:
        RooflineMeter("H200")
    for name in SHIPPED:
        assert name in str(info.value)
    monkeypatch.setenv(TARGET_ENV, "B200")
    with pytest.raises(ConfigError, match="'B200'"):
        RooflineMeter()


USER_PROFILE = """\
hardware = "Lab GPU 9000"
board_power_w = 300
idle_power_w = 30
memory_bandwidth_gb_s = 1000
launch_s = 2e-6
peak_tflops = { fp32 = 10, fp16 = 100 }
[sources]
peak = "our own measurement"
"""


def test_user_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(USER_PROFILE)
    meter = RooflineMeter(str(path))
    assert meter.hardware == "Lab GPU 9000 (roofline model)"
    assert list(meter.read()) == ["roofline:lab"]
    assert "our own measurement" in meter.provenance
    profile = meter.profile
    assert profile.peak("bf16") == 100e12  # falls back to fp16
    assert profile.origin == str(path)
    x = torch.randn(4, 4)
    counts = window(meter, lambda: torch.relu(x))
    busy = max(16 / 10e12, 2 * 16 * FP32 / 1000e9)
    assert counts["joules"] == pytest.approx(300 * busy + 30 * 2e-6, abs=2**-30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (USER_PROFILE.replace("idle_power_w = 30", "idle_power_w = 300"), "must be below"),
        (USER_PROFILE.replace('hardware = "Lab GPU 9000"\n', ""), "missing key.*hardware"),
        (USER_PROFILE.replace("fp32 = 10, ", ""), "needs at least fp32"),
        (USER_PROFILE.replace("fp16 = 100", "fp4 = 100"), "unknown dtype.*fp4"),
        (USER_PROFILE.replace("launch_s", "lunch_s"), "unknown key.*lunch_s"),
        (USER_PROFILE.replace("= 1000", '= "fast"'), "memory_bandwidth_gb_s must be a number"),
        (USER_PROFILE.replace("= 1000", "= -1"), "greater than 0"),
        ("hardware = ", "not valid TOML"),
    ],
)
def test_invalid_user_profile(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*H100-SXM"):
        load_profile(str(tmp_path / "nope.toml"))


def test_targets_table_lists_every_profile() -> None:
    lines = targets_table()
    assert lines[0].split()[:2] == ["target", "hardware"]
    for name in SHIPPED:
        assert any(line.startswith(name + " ") for line in lines)
    h100 = next(line for line in lines if line.startswith("H100-SXM "))
    assert h100.split()[-3:] == ["3350", "700", "70"]


def test_targets_command(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_energy.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "A100-PCIe-40GB" in out and "AMD Instinct MI300X" in out


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


def test_profiles_need_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert load_profile("L40S").hardware == "NVIDIA L40S"
    assert targets_table()


# -- the model in isolation -----------------------------------------------------------------


def test_energy_is_whole_quanta() -> None:
    profile = load_profile("A100-SXM-80GB")
    compute_bound = roofline_model.kernel_energy_units(profile, 10**12, 10**6, "fp16")
    assert compute_bound == round((400 * 1e12 / 312e12 + 55 * 4e-6) * 2**30)
    memory_bound = roofline_model.kernel_energy_units(profile, 10, 2039 * 10**6, "fp32")
    assert memory_bound == round((400 * 1e-3 + 55 * 4e-6) * 2**30)
    # a reading is exact, so a window's difference does not depend on what ran before it
    big, small = 3 * 2**50 + 12345, 987_654_321
    assert roofline_model.joules(big + small) - roofline_model.joules(big) == roofline_model.joules(
        small
    )
    assert roofline_model.kernel_time_s(profile, 0, 0, "fp32") == 4e-6


# -- the benchmark scripts' pure parts ------------------------------------------------------


def test_fit_recovers_the_coefficients_it_was_given() -> None:
    pytest.importorskip("pynvml")
    fit = load_script("roofline_fit")
    idle_w, p_busy, launch_s = 60.0, 650.0, 5e-6
    samples = [
        fit.Sample(f"w{i}", kernels, busy, p_busy * busy + idle_w * launch_s * kernels, 0.0)
        for i, (kernels, busy) in enumerate([(1, 1e-3), (200, 2e-4), (5000, 3e-3), (10, 5e-2)])
    ]
    assert fit.fit(samples, idle_w) == pytest.approx((p_busy, launch_s), rel=1e-9)


def test_realistic_table_counts_bert_base_on_the_meta_device() -> None:
    pytest.importorskip("transformers")
    realistic = load_script("roofline_realistic")
    meter = RooflineMeter("A100-SXM-80GB")
    run = realistic.classification(torch.float32)
    with torch.inference_mode(), meter.observe():
        run()
    # 2 FLOPs per weight per token for the encoder's 85M matrix weights, 128 tokens
    encoder_weights = 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    assert meter.tally().matmul_flops > 2 * encoder_weights * 128
    assert meter.counters()["flops"] == pytest.approx(22.4e9, rel=0.01)


def test_eval_dropout_costs_nothing_whatever_the_grad_mode() -> None:
    # Under inference_mode, aten.dropout arrives whole and its decomposition adds a clone;
    # an eval-mode dropout is an identity, so the figures must not depend on the grad mode.
    meter = RooflineMeter("H100-SXM")
    layer = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Dropout(0.1)).eval()
    x = torch.randn(4, 16)

    def kernels(mode: Callable[[], object]) -> float:
        before = meter.counters()["kernels"]
        with mode(), meter.observe():  # type: ignore[attr-defined]
            layer(x)
        return meter.counters()["kernels"] - before

    assert kernels(torch.inference_mode) == kernels(torch.no_grad) == 1.0
