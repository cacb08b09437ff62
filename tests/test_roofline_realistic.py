"""Counted FLOPs at realistic sizes against published and analytic figures.

Published: torchvision's model tables give ``GFLOPS`` 17.56 for vit_b_16 and 4.09 for
resnet50 (pytorch.org/vision/stable/models.html; they count multiply-adds, so FLOPs are twice
these). The transformer figures are derived from each config: 2 FLOPs per weight per token for
every matrix product, plus attention (``2 * heads * pairs * (d_qk + d_v)``, with pairs
``T (T + 1) / 2`` for causal attention, as flash kernels skip the masked half).

The models are built on ``meta`` (no weights) except where a test needs the CPU fast path.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from benchmark_scripts import load_script

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_energy.meters.roofline import RooflineMeter  # noqa: E402


def measure(fn: Callable[[], object], mode: Callable[[], object] = torch.inference_mode):
    """(flops, matmul_flops, kernels) of one window."""
    meter = RooflineMeter()
    with mode(), meter.observe():  # type: ignore[attr-defined]
        fn()
    tally = meter.tally()
    return tally.flops, tally.matmul_flops, tally.kernels


def causal_pairs(tokens: int) -> int:
    return tokens * (tokens + 1) // 2


def test_bert_base_128_tokens() -> None:
    config = transformers.BertConfig()  # bert-base-uncased
    with torch.device("meta"):
        model = transformers.BertModel(config).eval()
        ids = torch.zeros(1, 128, dtype=torch.long)
    flops, matmul, _ = measure(lambda: model(input_ids=ids))
    d, t, layers, ffn = config.hidden_size, 128, config.num_hidden_layers, config.intermediate_size
    per_layer = 2 * t * d * (4 * d + 2 * ffn) + 2 * config.num_attention_heads * t * t * 2 * (
        d // config.num_attention_heads
    )
    pooler = 2 * d * d
    assert matmul == layers * per_layer + pooler  # 22.4 GFLOP
    assert flops == pytest.approx(matmul, rel=0.01)  # norms, softmax, GELU: under 1%


class _EncoderBlock(torch.nn.Module):
    """torchvision's ViT EncoderBlock, built from nn modules (torchvision is not needed)."""

    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(width, eps=1e-6)
        self.self_attention = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(width, eps=1e-6)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, mlp), torch.nn.GELU(), torch.nn.Linear(mlp, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class ViTB16(torch.nn.Module):
    """ViT-B/16 at 224x224 as torchvision's vit_b_16 builds it."""

    def __init__(self) -> None:
        super().__init__()
        width = 768
        self.conv_proj = torch.nn.Conv2d(3, width, kernel_size=16, stride=16)
        self.class_token = torch.nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embedding = torch.nn.Parameter(torch.zeros(1, 197, width))
        self.layers = torch.nn.Sequential(*(_EncoderBlock(width, 12, 3072) for _ in range(12)))
        self.ln = torch.nn.LayerNorm(width, eps=1e-6)
        self.head = torch.nn.Linear(width, 1000)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.head(x[:, 0])


def test_vit_b_16_matches_torchvision_on_cpu_fast_path_and_on_meta() -> None:
    published = 2 * 17.56e9  # torchvision: vit_b_16, GFLOPS 17.56 (multiply-adds)
    torch.manual_seed(0)
    model = ViTB16().eval()
    images = torch.randn(1, 3, 224, 224)
    cpu = measure(lambda: model(images), torch.no_grad)  # nn.MultiheadAttention's fast path
    with torch.device("meta"):
        meta_model = ViTB16().eval()
        meta_images = torch.empty(1, 3, 224, 224)
    meta = measure(lambda: meta_model(meta_images), torch.no_grad)
    assert cpu == meta
    flops, matmul, _ = cpu
    assert matmul == pytest.approx(published, rel=0.005)
    assert flops == pytest.approx(published, rel=0.01)


def test_resnet_50_matches_torchvision() -> None:
    published = 2 * 4.09e9  # torchvision: resnet50, GFLOPS 4.09 (multiply-adds)
    with torch.device("meta"):
        model = transformers.ResNetModel(transformers.ResNetConfig()).eval()  # resnet-50
        images = torch.empty(1, 3, 224, 224)
    flops, matmul, _ = measure(lambda: model(pixel_values=images))
    assert matmul == pytest.approx(published, rel=0.005)
    assert flops == pytest.approx(published, rel=0.02)  # + batch norm, ReLU, pooling


def gpt2_flops(config: object, tokens: int, *, cached: int = 0, logits: int | None = None) -> int:
    """Matrix-product FLOPs of a GPT-2 forward over ``tokens`` new positions after
    ``cached`` ones: qkv, projection and MLP, attention (causal when nothing is cached and
    more than one token), and the LM head on ``logits`` positions (all, by default)."""
    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size  # type: ignore[attr-defined]
    keys = cached + tokens
    pairs = causal_pairs(tokens) if cached == 0 and tokens > 1 else tokens * keys
    per_layer = 2 * tokens * d * (3 * d + d + 4 * d + 4 * d) + 2 * pairs * 2 * d
    return layers * per_layer + 2 * (tokens if logits is None else logits) * d * vocab


def test_gpt2_forward_1024_tokens() -> None:
    config = transformers.GPT2Config()  # gpt2, 124M
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(config).eval()
        ids = torch.zeros(1, 1024, dtype=torch.long)
    flops, matmul, _ = measure(lambda: model(input_ids=ids))
    assert matmul == gpt2_flops(config, 1024)
    assert flops == pytest.approx(matmul, rel=0.01)


def test_gpt2_generate_with_a_kv_cache() -> None:
    config = transformers.GPT2Config(bos_token_id=0, eos_token_id=1)
    with torch.device("meta"):  # generate needs real tensors: allocate, skip the random init
        model = transformers.GPT2LMHeadModel(config).eval()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    prompt = torch.zeros(1, 32, dtype=torch.long)
    new = 4

    def generate() -> object:
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )

    _, matmul, _ = measure(generate)
    # generate keeps one logit row per forward; an all-ones mask is dropped, so the prefill
    # is causal attention
    prefill = gpt2_flops(config, 32, logits=1)
    decode = sum(gpt2_flops(config, 1, cached=32 + i, logits=1) for i in range(new - 1))
    assert matmul == prefill + decode


def llama_8b_config() -> object:
    """meta-llama/Llama-3.1-8B's published config, as benchmarks/roofline_workloads.py has it."""
    return transformers.LlamaConfig(
        **load_script("roofline_workloads").LLM_CONFIGS["llama-3.1-8b"][1]
    )


def test_llama_3_1_8b_prefill_of_512_tokens_on_meta() -> None:
    config = llama_8b_config()
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
        ids = torch.zeros(1, 512, dtype=torch.long)
    flops, matmul, _ = measure(lambda: model(input_ids=ids))
    d, ffn = config.hidden_size, config.intermediate_size  # type: ignore[attr-defined]
    heads, kv = config.num_attention_heads, config.num_key_value_heads  # type: ignore[attr-defined]
    head = d // heads
    weights = d * d * 2 + d * kv * head * 2 + 3 * d * ffn  # q, o; k, v; gate, up, down
    layers = config.num_hidden_layers  # type: ignore[attr-defined]
    linear = layers * 2 * 512 * weights + 2 * 512 * d * config.vocab_size  # type: ignore[attr-defined]
    attention = layers * 2 * heads * causal_pairs(512) * 2 * head
    assert matmul == linear + attention
    # 7.75 TFLOP; 7.82 with the full (unmasked) attention the old count used
    assert matmul == pytest.approx(7.754e12, rel=1e-3)
    assert linear + 2 * attention == pytest.approx(7.823e12, rel=1e-3)
    assert flops == pytest.approx(matmul, rel=0.01)
