"""What the roofline meter counts (costs.py, counting.py): FLOPs, bytes and kernels of single
operations by hand, one test per counting rule and per counting bug of issue 19, and device
independence (cpu, meta, every grad mode).

Counts are read through the meter's ``counters()`` and ``tally().matmul_flops``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from pytest_energy.meters.roofline import RooflineMeter  # noqa: E402

FP32 = 4
GRAD_MODES = {
    "inference_mode": torch.inference_mode,
    "no_grad": torch.no_grad,
    "grad": torch.enable_grad,
}


def count(
    fn: Callable[[], object], mode: str = "inference_mode", meter: RooflineMeter | None = None
) -> dict[str, float]:
    """FLOPs, bytes, kernels, matrix-product FLOPs and joules of one window running ``fn``."""
    meter = meter or RooflineMeter("H100-SXM")
    (domain,) = meter.read()
    before, joules, matmul = meter.counters(), meter.read()[domain], meter.tally().matmul_flops
    with GRAD_MODES[mode](), meter.observe():
        fn()
    after = meter.counters()
    figures = {key: after[key] - before[key] for key in ("flops", "bytes", "kernels")}
    figures["matmul_flops"] = meter.tally().matmul_flops - matmul
    figures["joules"] = meter.read()[domain] - joules
    return figures


# -- rules, by hand -------------------------------------------------------------------------


def test_conv2d_flops_and_bytes() -> None:
    conv = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    counts = count(lambda: conv(x))
    # 2 FLOPs per multiply-add: each of the 2*4*8*8 outputs sums 3*3*3 products
    assert counts["flops"] == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)
    assert counts["bytes"] == (2 * 3 * 8 * 8 + 4 * 3 * 3 * 3 + 4 + 2 * 4 * 8 * 8) * FP32
    assert counts["kernels"] == 1


def test_linear_under_inference_mode_costs_what_its_decomposition_costs() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    x = torch.randn(4, 6, 32)  # 3-d input: linear reshapes around addmm
    figures = {mode: count(lambda: net(x), mode) for mode in GRAD_MODES}
    assert figures["inference_mode"] == figures["no_grad"] == figures["grad"]
    assert figures["grad"]["flops"] == 2 * 24 * 32 * 48 + 24 * 48 + 2 * 24 * 48 * 8


def test_attention_is_one_kernel_with_the_attention_formula() -> None:
    b, h, s, d = 2, 4, 16, 8
    q, k, v = (torch.randn(b, h, s, d) for _ in range(3))
    for mode in GRAD_MODES:
        counts = count(lambda: F.scaled_dot_product_attention(q, k, v), mode)
        # Q @ K^T and P @ V: two batched matmuls of 2*b*h*s*s*d FLOPs each
        assert counts["flops"] == 2 * (2 * b * h * s * s * d)
        # reads q, k, v; writes the output and the float32 log-sum-exp (b, h, s)
        assert counts["bytes"] == (3 * b * h * s * d + b * h * s * d + b * h * s) * FP32
        assert counts["kernels"] == 1
        assert counts["matmul_flops"] == counts["flops"]


def test_causal_attention_counts_the_unmasked_half() -> None:
    b, h, s, d = 1, 2, 64, 16
    q, k, v = (torch.randn(b, h, s, d) for _ in range(3))
    full = count(lambda: F.scaled_dot_product_attention(q, k, v))
    causal = count(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert causal["flops"] == full["flops"] * (s + 1) // (2 * s)  # s(s+1)/2 of s^2 pairs
    assert causal["bytes"] == full["bytes"]
    assert causal["joules"] < full["joules"]


def test_grouped_query_attention_reads_the_smaller_keys() -> None:
    q = torch.randn(1, 8, 32, 16)
    k, v = torch.randn(1, 2, 32, 16), torch.randn(1, 2, 32, 16)
    counts = count(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    assert counts["flops"] == 2 * (2 * 8 * 32 * 32 * 16)
    assert counts["bytes"] == (8 * 32 * 16 * 2 + 2 * 2 * 32 * 16 + 8 * 32) * FP32


def test_views_are_free_and_not_kernels() -> None:
    x = torch.randn(4, 6)
    counts = count(
        lambda: (x.view(24), x.t(), x.permute(1, 0), x.expand(2, 4, 6), x.detach(), x[1:3], x.T),
    )
    assert counts == dict.fromkeys(counts, 0.0)


def test_in_place_metadata_ops_are_no_kernels() -> None:
    def metadata() -> None:
        x = torch.empty(4, 1, 6)
        x.squeeze_(1)
        x.unsqueeze_(0)
        x.squeeze_()
        x.t_()
        x.transpose_(0, 1)
        x.as_strided_((6, 4), (1, 6))
        x.swapdims_(0, 1)

    assert count(metadata)["kernels"] == 0


def test_a_reshape_that_copies_is_counted_and_a_cast_is_a_kernel() -> None:
    x = torch.randn(6, 4).t()  # not contiguous: reshape must copy
    counts = count(lambda: x.reshape(24))
    assert counts["kernels"] == 1 and counts["bytes"] == 2 * 24 * FP32
    assert count(lambda: x.reshape(4, 6))["kernels"] == 0  # a view: free
    y = torch.randn(8, 8)
    cast = count(lambda: y.to(torch.float16))
    assert cast["kernels"] == 1 and cast["bytes"] == 64 * FP32 + 64 * 2
    assert count(lambda: y.to(torch.float32))["kernels"] == 0  # already fp32: no copy


def test_pointwise_and_reduction_rules() -> None:
    x = torch.randn(10, 20)
    counts = count(lambda: torch.relu(x))
    assert counts["flops"] == 200  # 1 per output element
    assert counts["bytes"] == 2 * 200 * FP32
    counts = count(lambda: x.sum(dim=1))
    assert counts["flops"] == 200  # 1 per input element
    assert counts["bytes"] == (200 + 10) * FP32


def test_an_embedding_reads_only_the_selected_rows() -> None:
    table = torch.nn.Embedding(50_000, 64)
    ids = torch.tensor([[1, 7, 7, 42]])
    counts = count(lambda: table(ids))
    assert counts["bytes"] == 4 * 8 + 2 * 4 * 64 * FP32  # int64 ids, rows read and written
    assert counts["flops"] == 4 * 64


def test_an_embedding_bag_reads_every_row_it_sums() -> None:
    bag = torch.nn.EmbeddingBag(50_000, 64, mode="sum")
    ids = torch.randint(0, 50_000, (40,))
    offsets = torch.tensor([0, 10, 20, 30])
    counts = count(lambda: bag(ids, offsets))
    rows = 40 * 64 * FP32  # 40 rows read, summed into 4 bags
    assert counts["flops"] == 40 * 64
    assert counts["kernels"] == 1
    # + the ids and offsets, the output and the bag bookkeeping outputs
    assert rows + 4 * 64 * FP32 <= counts["bytes"] <= rows + 4 * 64 * FP32 + 2_000


def test_eval_dropout_costs_nothing_whatever_the_grad_mode() -> None:
    layer = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Dropout(0.1)).eval()
    x = torch.randn(4, 16)
    assert [count(lambda: layer(x), mode)["kernels"] for mode in GRAD_MODES] == [1.0] * 3


# -- matrix products without a registry formula ---------------------------------------------


@pytest.mark.parametrize(
    ("op", "flops"),
    [
        (lambda w, x: w @ x[:, 0], 2 * 4096 * 4096),  # mv
        (lambda w, x: torch.addmv(x[:, 0], w, x[:, 1]), 2 * 4096 * 4096),
        (lambda w, x: torch.dot(x[:, 0], x[:, 1]), 2 * 4096),
        (lambda w, x: torch.vdot(x[:, 0], x[:, 1]), 2 * 4096),
        (lambda w, x: torch.addr(w, x[:, 0], x[:, 1]), 2 * 4096 * 4096),
        (lambda w, x: torch.addbmm(w[:64, :64], x.T.reshape(2, 64, 64), x.T.reshape(2, 64, 64)), 0),
    ],
    ids=["mv", "addmv", "dot", "vdot", "addr", "addbmm"],
)
def test_matrix_vector_products_count_two_flops_per_multiply_add(
    op: Callable[[object, object], object], flops: int
) -> None:
    w = torch.randn(4096, 4096)
    x = torch.randn(4096, 2)
    counts = count(lambda: op(w, x))
    expected = flops or 2 * 2 * 64 * 64 * 64
    assert counts["flops"] == expected
    assert counts["matmul_flops"] == expected
    assert counts["kernels"] == 1


def test_addmm_with_a_fused_activation() -> None:
    bias, a, b = torch.randn(32), torch.randn(16, 64), torch.randn(64, 32)
    counts = count(lambda: torch.ops.aten._addmm_activation(bias, a, b, use_gelu=True))
    assert counts["flops"] == counts["matmul_flops"] == 2 * 16 * 64 * 32


def test_weight_only_int8_and_int4_matmuls() -> None:
    m, k, n = 4, 256, 128
    a = torch.randn(m, k, dtype=torch.bfloat16)
    w8 = torch.randint(-128, 127, (n, k), dtype=torch.int8)
    scales = torch.randn(n, dtype=torch.bfloat16)
    int8 = count(lambda: torch._weight_int8pack_mm(a, w8, scales))
    assert int8["flops"] == int8["matmul_flops"] == 2 * m * n * k
    assert int8["bytes"] == (m * k * 2 + n * k + n * 2) + m * n * 2
    packed = torch._convert_weight_to_int4pack_for_cpu(
        torch.randint(0, 15, (n, k), dtype=torch.int32), 2
    )
    zeros = torch.randn(k // 32, n, 2, dtype=torch.bfloat16)
    int4 = count(lambda: torch._weight_int4pack_mm_for_cpu(a, packed, 32, zeros))
    assert int4["flops"] == int4["matmul_flops"] == 2 * m * n * k


# -- precision: what a GPU would run -------------------------------------------------------


def test_fp32_matmuls_follow_the_matmul_precision() -> None:
    x = torch.randn(512, 1024)
    layer = torch.nn.Linear(1024, 1024)
    highest = count(lambda: layer(x))["joules"]
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        tf32 = count(lambda: layer(x))["joules"]
    finally:
        torch.set_float32_matmul_precision(previous)
    assert tf32 < highest / 2
    assert count(lambda: layer(x))["joules"] == highest


def test_fp32_convolutions_run_in_tf32_as_cudnn_does_by_default() -> None:
    assert torch.backends.cudnn.allow_tf32  # cuDNN's default
    conv = torch.nn.Conv2d(256, 256, kernel_size=3, padding=1)
    x = torch.randn(8, 256, 32, 32)
    tf32 = count(lambda: conv(x))["joules"]
    from pytest_energy.meters.roofline import trace

    (record,) = trace(lambda: conv(x)).records
    assert record.peak_key == "tf32"
    try:
        torch.backends.cudnn.allow_tf32 = False
        fp32 = count(lambda: conv(x))["joules"]
    finally:
        torch.backends.cudnn.allow_tf32 = True
    assert tf32 < fp32 / 2


# -- writes ---------------------------------------------------------------------------------


def test_copy_into_a_slice_moves_its_bytes_once_each_way() -> None:
    destination = torch.zeros(64, 64)
    source = torch.randn(64, 16)
    counts = count(lambda: destination[:, :16].copy_(source))
    assert counts["bytes"] == 2 * 64 * 16 * FP32  # read the source, write the slice
    assert counts["kernels"] == 1


@pytest.mark.parametrize(
    "write", [lambda x: x.zero_(), lambda x: x.fill_(3.0), lambda x: x.normal_()]
)
def test_fills_write_without_reading(write: Callable[[object], object]) -> None:
    x = torch.empty(64, 64)
    assert count(lambda: write(x))["bytes"] == 64 * 64 * FP32


CACHE = (1, 8, 4096, 128)  # one layer's key cache: 4096 slots of 8 heads x 128
TOKEN = 8 * 128 * FP32  # one position's keys


def test_index_copy_into_a_kv_cache_counts_one_position() -> None:
    cache = torch.zeros(CACHE)
    new = torch.randn(1, 8, 1, 128)
    position = torch.tensor([17])
    counts = count(lambda: cache.index_copy_(2, position, new))
    assert counts["bytes"] == 8 + TOKEN + TOKEN  # the index, the source read, the write
    assert counts["flops"] == 8 * 128
    # out of place: a copy of the whole cache first
    functional = count(lambda: cache.index_copy(2, position, new))
    assert functional["bytes"] == 2 * 4096 * TOKEN + 8 + 2 * TOKEN


def test_index_put_into_a_kv_cache_counts_one_position() -> None:
    cache = torch.zeros(CACHE)
    new = torch.randn(1, 8, 1, 128)
    position = torch.tensor([17])

    def write() -> None:
        cache[:, :, position] = new

    assert count(write)["bytes"] == 8 + TOKEN + TOKEN
    accumulate = count(lambda: torch.ops.aten.index_put_(cache, [None, None, position], new, True))
    assert accumulate["bytes"] == 8 + TOKEN + 2 * TOKEN  # reads what it adds to


def test_scatter_counts_the_index_the_source_used_and_the_written_elements() -> None:
    cache = torch.zeros(CACHE)
    source = torch.randn(1, 8, 4, 128)  # larger than what the index uses
    index = torch.full((1, 8, 1, 128), 17)
    counts = count(lambda: cache.scatter_(2, index, source))
    assert counts["bytes"] == 8 * 8 * 128 + TOKEN + TOKEN
    added = count(lambda: cache.scatter_add_(2, index, source))
    assert added["bytes"] == 8 * 8 * 128 + TOKEN + 2 * TOKEN
    filled = count(lambda: cache.index_fill_(2, torch.tensor([3, 4]), 0.0))
    assert filled["bytes"] == 2 * 8 + 2 * TOKEN


# -- the fused fast paths of nn.TransformerEncoderLayer / nn.MultiheadAttention -------------


def encoder_matmul_flops(*, layers: int, batch: int, seq: int, width: int, ffn: int) -> int:
    """Matrix-product FLOPs of a transformer encoder: qkv, attention, out-projection, FFN."""
    per_layer = (
        2 * batch * seq * width * (3 * width + width + 2 * ffn) + 4 * batch * seq * seq * width
    )
    return layers * per_layer


def encoder(device: str = "cpu") -> tuple[torch.nn.Module, torch.Tensor]:
    with torch.device(device):
        torch.manual_seed(0)
        layer = torch.nn.TransformerEncoderLayer(64, 4, dim_feedforward=256, batch_first=True)
        model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        x = torch.randn(2, 16, 64)
    return model.eval(), x


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_the_transformer_encoder_fast_path_is_costed_as_its_layers(mode: str) -> None:
    model, x = encoder()
    seen: list[str] = []
    from torch.utils._python_dispatch import TorchDispatchMode

    class Names(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with GRAD_MODES[mode](), Names():
        model(x)
    assert "aten._transformer_encoder_layer_fwd.default" in seen  # the fast path was taken
    fast = count(lambda: model(x), mode)
    assert fast["matmul_flops"] == encoder_matmul_flops(
        layers=2, batch=2, seq=16, width=64, ffn=256
    )
    meta_model, meta_x = encoder("meta")  # meta takes the ordinary path
    assert count(lambda: meta_model(meta_x), mode) == fast
    x.requires_grad_(True)  # grad on: the ordinary path on CPU too
    grad = count(lambda: model(x), "grad")
    assert grad["matmul_flops"] == fast["matmul_flops"]
    # under autograd, matmul folds the strided (length, batch, width) input of the
    # in-projection into a matrix, a copy, where without grad it runs one batched product
    assert grad["kernels"] == fast["kernels"] + 2


def test_the_multi_head_attention_fast_path_is_costed_as_its_projections() -> None:
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    x = torch.randn(2, 16, 64)
    with torch.device("meta"):
        meta = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
        mx = torch.empty(2, 16, 64)
    projections = 2 * 2 * 16 * 64 * 4 * 64
    for weights in (False, True):
        fast = count(lambda w=weights: attention(x, x, x, need_weights=w), "no_grad")
        assert fast["matmul_flops"] == projections + 4 * 2 * 16 * 16 * 64
        assert count(lambda w=weights: meta(mx, mx, mx, need_weights=w), "no_grad") == fast


# -- device independence --------------------------------------------------------------------


def tiny_models() -> dict[str, Callable[[str], Callable[[], object]]]:
    transformers = pytest.importorskip("transformers")

    def build(make_model: Callable[[], object], make_inputs: Callable[[], dict[str, object]]):  # type: ignore[no-untyped-def]
        def on(device: str) -> Callable[[], object]:
            with torch.device(device):
                torch.manual_seed(0)
                model = make_model().eval()  # type: ignore[attr-defined]
                inputs = make_inputs()
            return lambda: model(**inputs)

        return on

    ids = lambda: {"input_ids": torch.zeros(2, 32, dtype=torch.long)}  # noqa: E731
    return {
        "bert": build(
            lambda: transformers.BertModel(
                transformers.BertConfig(
                    hidden_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=128,
                    vocab_size=500,
                )
            ),
            ids,
        ),
        "gpt2": build(
            lambda: transformers.GPT2LMHeadModel(
                transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=500)
            ),
            ids,
        ),
        "llama": build(
            lambda: transformers.LlamaForCausalLM(
                transformers.LlamaConfig(
                    hidden_size=64,
                    intermediate_size=128,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    num_key_value_heads=2,
                    vocab_size=500,
                )
            ),
            ids,
        ),
        "resnet": build(
            lambda: transformers.ResNetModel(
                transformers.ResNetConfig(
                    embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"
                )
            ),
            lambda: {"pixel_values": torch.zeros(1, 3, 64, 64)},
        ),
        "vit": build(
            lambda: transformers.ViTModel(
                transformers.ViTConfig(
                    hidden_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=128,
                    image_size=32,
                    patch_size=8,
                )
            ),
            lambda: {"pixel_values": torch.zeros(1, 3, 32, 32)},
        ),
    }


def unet(device: str) -> Callable[[], object]:
    diffusers = pytest.importorskip("diffusers")
    with torch.device(device):
        torch.manual_seed(0)
        model = diffusers.UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        ).eval()
        latents, step = torch.zeros(2, 4, 16, 16), torch.zeros((), dtype=torch.long)
        context = torch.zeros(2, 7, 32)
    return lambda: model(latents, step, encoder_hidden_states=context).sample


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "resnet", "vit", "unet"])
def test_a_model_counts_the_same_on_cpu_and_meta_in_every_grad_mode(name: str) -> None:
    on = unet if name == "unet" else tiny_models()[name]
    by_mode = {}
    for mode in GRAD_MODES:
        cpu, meta = count(on("cpu"), mode), count(on("meta"), mode)
        for key, value in cpu.items():
            assert meta[key] == pytest.approx(value, rel=0.005), (mode, key)
        by_mode[mode] = cpu
    assert by_mode["no_grad"] == by_mode["inference_mode"]
    if name != "unet":  # the UNet's strided matmuls fold (copy) under autograd, as in torch
        assert by_mode["grad"] == by_mode["inference_mode"]
