"""The work of one published measurement, rebuilt on torch's ``meta`` device for the roofline fit.

Every row of ``benchmarks/roofline_calibration.toml`` names a workload (a key of
:data:`WORKLOADS`) and the shape of the work it measured (batch, tokens, steps, resolution,
precision, engine). :func:`records` builds the model from its published configuration on
``torch.device("meta")`` (no weights are allocated or downloaded), runs one row's worth of
inference inside the roofline counter and returns the per-op records that
``pytest_energy.meters.roofline.model.evaluate`` turns into joules. The fit re-evaluates the
same records with every trial set of coefficients, so records are cached, one JSON file per
row, under ``benchmarks/roofline_records/`` (shipped: the fit and its test run from them).

The configuration values below are copied from each model's ``config.json`` on the Hugging
Face Hub (model card named in each entry) and are checked against the published parameter
counts by ``tests/test_roofline_fit.py``.

What one inference is, per kind of workload:

- ``encoder`` / ``vision``: one forward pass of the task head at the row's batch and sequence
  length / image size.
- ``llm``: a prefill of ``input_tokens`` then ``output_tokens - 1`` greedy decode steps with a
  KV cache at the row's batch (the prefill yields the first of the output tokens), through
  ``pytest_energy.generation.run`` under the roofline meter of the row's engine. The serving
  engines of the ML.ENERGY rows batch continuously (requests of different lengths join and
  leave); a static batch of equal requests with the published mean output length is the
  simplification.
- ``diffusion``: the text encoders once (for the prompt, and for the empty negative prompt
  where the pipeline runs classifier-free guidance), the denoiser once per step at twice the
  batch under classifier-free guidance, and one VAE decode. The scheduler's few pointwise ops
  per step, the tokenizers and the image post-processing are left out (well under 1% of the
  work). One denoiser step is counted and multiplied by the step count: every step has the
  same shapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (this checkout's pytest_energy)
import torch

from pytest_energy.meters.roofline import counting

#: Where the per-row record caches live (one JSON file per calibration row).
CACHE_DIR = Path(__file__).resolve().parent / "roofline_records"
#: Bump when a recipe changes what it runs, so that every cached record is recounted.
RECIPE_VERSION = 3

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Shape:
    """The work one calibration row measured (only the fields its workload kind uses)."""

    batch: int
    precision: str
    engine: str
    input_tokens: int = 0
    output_tokens: int = 0
    steps: int = 0
    height: int = 0
    width: int = 0

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]


@dataclass(frozen=True)
class Workload:
    """How to rebuild one model and what one inference of it runs."""

    kind: str
    """``encoder``, ``vision``, ``llm`` or ``diffusion``."""
    source: str
    """The model card(s) whose config.json the values come from."""
    params: int
    """Published parameter count (of the denoiser for diffusion), checked by the tests."""
    build: Callable[[Shape], list[tuple[Callable[[], object], int]]]
    """Returns the inference as segments ``(fn, repeat)``: run ``fn`` once, count it ``repeat``
    times (not used for ``llm`` workloads, which run through the generation module)."""
    count_params: Callable[[], int]
    """Builds the model on meta and counts its parameters (for the test of the config)."""


# --------------------------------------------------------------------------- LLM configs

#: Decoder-only LLMs: transformers config class name and the config.json values.
LLM_CONFIGS: dict[str, tuple[str, dict[str, Any], str, int]] = {
    "llama-3.1-8b": (
        "LlamaConfig",
        dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/meta-llama/Llama-3.1-8B-Instruct config.json",
        8_030_261_248,
    ),
    "llama-3.1-70b": (
        "LlamaConfig",
        dict(
            hidden_size=8192,
            intermediate_size=28672,
            num_hidden_layers=80,
            num_attention_heads=64,
            num_key_value_heads=8,
            vocab_size=128256,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/meta-llama/Llama-3.1-70B-Instruct config.json (Llama-3.3-70B-Instruct "
        "has the same architecture)",
        70_553_706_496,
    ),
    "qwen3-8b": (
        "Qwen3Config",
        dict(
            hidden_size=4096,
            intermediate_size=12288,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/Qwen/Qwen3-8B config.json",
        8_190_735_360,
    ),
    "qwen3-14b": (
        "Qwen3Config",
        dict(
            hidden_size=5120,
            intermediate_size=17408,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/Qwen/Qwen3-14B config.json",
        14_768_307_200,
    ),
    "qwen3-32b": (
        "Qwen3Config",
        dict(
            hidden_size=5120,
            intermediate_size=25600,
            num_hidden_layers=64,
            num_attention_heads=64,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/Qwen/Qwen3-32B config.json",
        32_762_123_264,
    ),
    "mistral-7b": (
        "MistralConfig",
        dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=32000,
            max_position_embeddings=32768,
            rope_theta=10000.0,
            sliding_window=4096,
            tie_word_embeddings=False,
        ),
        "huggingface.co/mistralai/Mistral-7B-v0.1 config.json",
        7_241_732_096,
    ),
    "llama-2-13b": (
        "LlamaConfig",
        dict(
            hidden_size=5120,
            intermediate_size=13824,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=40,
            vocab_size=32000,
            max_position_embeddings=4096,
            rope_theta=10000.0,
            tie_word_embeddings=False,
        ),
        "huggingface.co/meta-llama/Llama-2-13b-hf config.json",
        13_015_864_320,
    ),
    "phi-2": (
        "PhiConfig",
        dict(
            hidden_size=2560,
            intermediate_size=10240,
            num_hidden_layers=32,
            num_attention_heads=32,
            vocab_size=51200,
            partial_rotary_factor=0.4,
            max_position_embeddings=2048,
            tie_word_embeddings=False,
        ),
        "huggingface.co/microsoft/phi-2 config.json",
        2_779_683_840,
    ),
    "gpt2": (
        "GPT2Config",
        dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024),
        "huggingface.co/openai-community/gpt2 config.json",
        124_439_808,
    ),
    "gpt2-xl": (
        "GPT2Config",
        dict(n_embd=1600, n_layer=48, n_head=25, vocab_size=50257, n_positions=1024),
        "huggingface.co/openai-community/gpt2-xl config.json",
        1_557_611_200,
    ),
}


def _llm(name: str, dtype: torch.dtype) -> torch.nn.Module:
    import transformers

    class_name, values, _, _ = LLM_CONFIGS[name]
    config = getattr(transformers, class_name)(**values)
    with torch.device("meta"):
        model: torch.nn.Module = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _llm_records(name: str, shape: Shape) -> list[Any]:
    """The op records of a prefill of ``input_tokens`` and ``output_tokens - 1`` decode steps
    (the prefill yields the first output token), through ``pytest_energy.generation.run``
    under the roofline meter: its KV cache follows the engine (eager transformers'
    DynamicCache copies it every step; ``compiled`` preallocates it, as serving engines do),
    and its decode shortcut counts every step exactly."""
    from pytest_energy import generation
    from pytest_energy.meters.roofline import RooflineMeter

    model = _llm(name, shape.dtype)
    meter = RooflineMeter(engine=shape.engine)
    with meter.observe():
        generation.run(
            model,
            batch_size=shape.batch,
            prompt_tokens=shape.input_tokens,
            new_tokens=shape.output_tokens - 1,
            mark=lambda _phase: None,
            meter=meter,
        )
    return list(meter.trace().records)


# --------------------------------------------------------------------------- encoders, vision

#: (transformers model class, config class, config values, model card, published parameters)
ENCODER_CONFIGS: dict[str, tuple[str, str, dict[str, Any], str, int]] = {
    "distilbert-sst2": (
        "DistilBertForSequenceClassification",
        "DistilBertConfig",
        dict(dim=768, hidden_dim=3072, n_layers=6, n_heads=12, vocab_size=30522, num_labels=2),
        "huggingface.co/distilbert/distilbert-base-uncased-finetuned-sst-2-english config.json",
        66_955_010,
    ),
    "bert-base-multilingual-sentiment": (
        "BertForSequenceClassification",
        "BertConfig",
        dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            vocab_size=105879,
            num_labels=5,
        ),
        "huggingface.co/nlptown/bert-base-multilingual-uncased-sentiment config.json",
        167_360_261,
    ),
    "bert-large-sst2": (
        "BertForSequenceClassification",
        "BertConfig",
        dict(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            vocab_size=30522,
            num_labels=2,
        ),
        "huggingface.co/Cheng98/bert-large-sst2 config.json (bert-large-uncased)",
        335_143_938,
    ),
    "bert-large-squad": (
        "BertForQuestionAnswering",
        "BertConfig",
        dict(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            vocab_size=30522,
        ),
        "huggingface.co/deepset/bert-large-uncased-whole-word-masking-squad2 config.json",
        334_094_338,
    ),
}

#: (transformers model class, config class, config values, model card, published parameters)
VISION_CONFIGS: dict[str, tuple[str, str, dict[str, Any], str, int]] = {
    "resnet-50": (
        "ResNetForImageClassification",
        "ResNetConfig",
        dict(
            embedding_size=64,
            hidden_sizes=[256, 512, 1024, 2048],
            depths=[3, 4, 6, 3],
            layer_type="bottleneck",
            num_labels=1000,
        ),
        "huggingface.co/microsoft/resnet-50 config.json",
        25_557_032,
    ),
    "resnet-18": (
        "ResNetForImageClassification",
        "ResNetConfig",
        dict(
            embedding_size=64,
            hidden_sizes=[64, 128, 256, 512],
            depths=[2, 2, 2, 2],
            layer_type="basic",
            num_labels=1000,
        ),
        "huggingface.co/microsoft/resnet-18 config.json",
        11_689_512,
    ),
    "vit-base-patch16": (
        "ViTForImageClassification",
        "ViTConfig",
        dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
            num_labels=1000,
        ),
        "huggingface.co/google/vit-base-patch16-224 config.json (image_size set per row: the "
        "384 checkpoint differs only in its position embeddings)",
        86_567_656,
    ),
    "vit-large-patch32": (
        "ViTForImageClassification",
        "ViTConfig",
        dict(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            patch_size=32,
            image_size=384,
            num_labels=1000,
        ),
        "huggingface.co/google/vit-large-patch32-384 config.json",
        306_535_400,
    ),
    "convnext-tiny": (
        "ConvNextForImageClassification",
        "ConvNextConfig",
        dict(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3], num_labels=1000),
        "huggingface.co/facebook/convnext-tiny-224 config.json",
        28_589_128,
    ),
}


def _hf_model(
    model_class: str, config_class: str, values: Mapping[str, Any], dtype: torch.dtype
) -> torch.nn.Module:
    import transformers

    config = getattr(transformers, config_class)(**values)
    with torch.device("meta"):
        model: torch.nn.Module = getattr(transformers, model_class)(config).to(dtype)
    return model.eval()


def _encoder_segments(name: str, shape: Shape) -> list[tuple[Callable[[], object], int]]:
    model_class, config_class, values, _, _ = ENCODER_CONFIGS[name]
    model = _hf_model(model_class, config_class, values, shape.dtype)
    with torch.device("meta"):
        ids = torch.zeros(shape.batch, shape.input_tokens, dtype=torch.long)
    return [(lambda: model(input_ids=ids), 1)]


def _vision_segments(name: str, shape: Shape) -> list[tuple[Callable[[], object], int]]:
    model_class, config_class, values, _, _ = VISION_CONFIGS[name]
    values = dict(values)
    if "image_size" in values:
        values["image_size"] = shape.height
    model = _hf_model(model_class, config_class, values, shape.dtype)
    with torch.device("meta"):
        pixels = torch.zeros(shape.batch, 3, shape.height, shape.width, dtype=shape.dtype)
    return [(lambda: model(pixel_values=pixels), 1)]


# --------------------------------------------------------------------------- diffusion parts

#: Text encoders: (config values, model card).
CLIP_L = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    vocab_size=49408,
    projection_dim=768,
    hidden_act="quick_gelu",
)
OPENCLIP_H = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    vocab_size=49408,
    projection_dim=512,
    hidden_act="gelu",
)
OPENCLIP_BIGG = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    vocab_size=49408,
    projection_dim=1280,
    hidden_act="gelu",
)
T5_XXL = dict(
    d_model=4096,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    d_kv=64,
    vocab_size=32128,
    feed_forward_proj="gated-gelu",
    is_encoder_decoder=False,
)

#: The 4-channel VAE of SD 1.x / 2.x / SDXL and the 16-channel one of SD3 and FLUX.1.
VAE_4CH = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
)
VAE_16CH = dict(VAE_4CH, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False)

_SD_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
_SD_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")

#: Denoisers: (diffusers class, config values).
UNET_SD15 = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=_SD_DOWN,
    up_block_types=_SD_UP,
    cross_attention_dim=768,
    attention_head_dim=8,
)
UNET_SD21 = dict(
    UNET_SD15,
    sample_size=96,
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
)
UNET_SDXL = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
SD35_LARGE = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    out_channels=16,
    num_layers=38,
    attention_head_dim=64,
    num_attention_heads=38,
    joint_attention_dim=4096,
    caption_projection_dim=2432,
    pooled_projection_dim=2048,
    pos_embed_max_size=192,
    qk_norm="rms_norm",
)
SD35_MEDIUM = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    out_channels=16,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    pos_embed_max_size=384,
    qk_norm="rms_norm",
    dual_attention_layers=tuple(range(13)),
)
FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
)
PIXART_SIGMA = dict(
    num_attention_heads=16,
    attention_head_dim=72,
    in_channels=4,
    out_channels=8,
    num_layers=28,
    cross_attention_dim=1152,
    sample_size=128,
    patch_size=2,
    caption_channels=4096,
    interpolation_scale=2,
    use_additional_conditions=False,
)


@dataclass(frozen=True)
class Pipeline:
    """A text-to-image pipeline as the roofline sees it."""

    denoiser: str
    """diffusers class name of the denoiser."""
    denoiser_config: Mapping[str, Any]
    text_encoders: tuple[tuple[str, Mapping[str, Any], int], ...]
    """(``clip`` / ``clip-projection`` / ``t5``, config values, sequence length) per encoder."""
    vae: Mapping[str, Any]
    cfg: bool
    """Classifier-free guidance: the denoiser runs on twice the batch, negatives are encoded."""
    vae_fp32: bool = False
    """The pipeline upcasts the VAE to fp32 for the decode (SDXL's ``force_upcast``)."""


PIPELINES: dict[str, tuple[Pipeline, str, int]] = {
    "sd1.5": (
        Pipeline("UNet2DConditionModel", UNET_SD15, (("clip", CLIP_L, 77),), VAE_4CH, cfg=True),
        "huggingface.co/prompthero/openjourney-v4 (Stable Diffusion 1.5 architecture; "
        "runwayml/stable-diffusion-v1-5 unet, text_encoder, vae config.json)",
        859_520_964,
    ),
    "sd2.1": (
        Pipeline("UNet2DConditionModel", UNET_SD21, (("clip", OPENCLIP_H, 77),), VAE_4CH, cfg=True),
        "huggingface.co/stabilityai/stable-diffusion-2-1 unet, text_encoder, vae config.json "
        "(sd-turbo has the same unet)",
        865_910_724,
    ),
    "sdxl": (
        Pipeline(
            "UNet2DConditionModel",
            UNET_SDXL,
            (("clip", CLIP_L, 77), ("clip-projection", OPENCLIP_BIGG, 77)),
            VAE_4CH,
            cfg=True,
            vae_fp32=True,
        ),
        "huggingface.co/stabilityai/stable-diffusion-xl-base-1.0 unet, text_encoder, "
        "text_encoder_2, vae config.json (vae force_upcast = true)",
        2_567_463_684,
    ),
    "sd3.5-large": (
        Pipeline(
            "SD3Transformer2DModel",
            SD35_LARGE,
            (
                ("clip-projection", CLIP_L, 77),
                ("clip-projection", OPENCLIP_BIGG, 77),
                ("t5", T5_XXL, 256),
            ),
            VAE_16CH,
            cfg=True,
        ),
        "huggingface.co/stabilityai/stable-diffusion-3.5-large transformer, text_encoder(_2,_3), "
        "vae config.json",
        8_056_344_128,
    ),
    "sd3.5-medium": (
        Pipeline(
            "SD3Transformer2DModel",
            SD35_MEDIUM,
            (
                ("clip-projection", CLIP_L, 77),
                ("clip-projection", OPENCLIP_BIGG, 77),
                ("t5", T5_XXL, 256),
            ),
            VAE_16CH,
            cfg=True,
        ),
        "huggingface.co/stabilityai/stable-diffusion-3.5-medium transformer, text_encoder(_2,_3), "
        "vae config.json",
        2_243_171_136,
    ),
    "flux.1-dev": (
        Pipeline(
            "FluxTransformer2DModel",
            FLUX_DEV,
            (("clip", CLIP_L, 77), ("t5", T5_XXL, 512)),
            VAE_16CH,
            cfg=False,
        ),
        "huggingface.co/black-forest-labs/FLUX.1-dev transformer, text_encoder(_2), vae "
        "config.json (guidance-distilled: no classifier-free guidance)",
        11_901_408_320,
    ),
    "pixart-sigma": (
        Pipeline(
            "PixArtTransformer2DModel", PIXART_SIGMA, (("t5", T5_XXL, 300),), VAE_4CH, cfg=True
        ),
        "huggingface.co/PixArt-alpha/PixArt-Sigma-XL-2-1024-MS transformer config.json, "
        "text_encoder = T5-XXL encoder (max_sequence_length 300), vae = the SDXL VAE",
        610_856_096,
    ),
}


def _text_encoder(kind: str, values: Mapping[str, Any], dtype: torch.dtype) -> torch.nn.Module:
    import transformers

    with torch.device("meta"):
        model: torch.nn.Module
        if kind == "t5":
            model = transformers.T5EncoderModel(transformers.T5Config(**values))
        elif kind == "clip-projection":
            model = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**values))
        else:
            model = transformers.CLIPTextModel(transformers.CLIPTextConfig(**values))
    return model.to(dtype).eval()


def _denoiser(pipeline: Pipeline, dtype: torch.dtype) -> torch.nn.Module:
    import diffusers

    with torch.device("meta"):
        model: torch.nn.Module = getattr(diffusers, pipeline.denoiser)(**pipeline.denoiser_config)
    return model.to(dtype).eval()


def _denoiser_call(
    pipeline: Pipeline, model: torch.nn.Module, shape: Shape, n: int
) -> Callable[[], object]:
    """One denoiser step on ``n`` samples with the inputs the pipeline gives it."""
    dtype = shape.dtype
    cfg = dict(pipeline.denoiser_config)
    seq_t5 = next((length for kind, _, length in pipeline.text_encoders if kind == "t5"), 77)
    with torch.device("meta"):
        t = torch.zeros(n, dtype=dtype)
        if pipeline.denoiser == "UNet2DConditionModel":
            latents = torch.zeros(n, 4, shape.height // 8, shape.width // 8, dtype=dtype)
            context = torch.zeros(n, 77, cfg["cross_attention_dim"], dtype=dtype)
            kwargs: dict[str, Any] = {}
            if cfg.get("addition_embed_type") == "text_time":
                kwargs["added_cond_kwargs"] = {
                    "text_embeds": torch.zeros(n, 1280, dtype=dtype),
                    "time_ids": torch.zeros(n, 6, dtype=dtype),
                }
            return lambda: model(latents, t, encoder_hidden_states=context, **kwargs)
        if pipeline.denoiser == "SD3Transformer2DModel":
            latents = torch.zeros(n, 16, shape.height // 8, shape.width // 8, dtype=dtype)
            context = torch.zeros(n, 77 + seq_t5, cfg["joint_attention_dim"], dtype=dtype)
            pooled = torch.zeros(n, cfg["pooled_projection_dim"], dtype=dtype)
            return lambda: model(
                hidden_states=latents,
                encoder_hidden_states=context,
                pooled_projections=pooled,
                timestep=t,
            )
        if pipeline.denoiser == "FluxTransformer2DModel":
            tokens = (shape.height // 16) * (shape.width // 16)
            latents = torch.zeros(n, tokens, cfg["in_channels"], dtype=dtype)
            context = torch.zeros(n, seq_t5, cfg["joint_attention_dim"], dtype=dtype)
            pooled = torch.zeros(n, cfg["pooled_projection_dim"], dtype=dtype)
            img_ids = torch.zeros(tokens, 3, dtype=dtype)
            txt_ids = torch.zeros(seq_t5, 3, dtype=dtype)
            guidance = torch.zeros(n, dtype=dtype)
            return lambda: model(
                hidden_states=latents,
                encoder_hidden_states=context,
                pooled_projections=pooled,
                timestep=t,
                img_ids=img_ids,
                txt_ids=txt_ids,
                guidance=guidance,
            )
        if pipeline.denoiser == "PixArtTransformer2DModel":
            latents = torch.zeros(n, 4, shape.height // 8, shape.width // 8, dtype=dtype)
            context = torch.zeros(n, seq_t5, cfg["caption_channels"], dtype=dtype)
            mask = torch.ones(n, seq_t5, dtype=dtype)
            return lambda: model(
                latents,
                encoder_hidden_states=context,
                timestep=t,
                encoder_attention_mask=mask,
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
            )
    raise ValueError(f"no call recipe for denoiser {pipeline.denoiser}")


def _vae_decode(
    values: Mapping[str, Any], shape: Shape, dtype: torch.dtype
) -> Callable[[], object]:
    import diffusers

    with torch.device("meta"):
        vae = diffusers.AutoencoderKL(**values).to(dtype).eval()
        z = torch.zeros(
            shape.batch, values["latent_channels"], shape.height // 8, shape.width // 8, dtype=dtype
        )
    return lambda: vae.decode(z)


def _diffusion_segments(name: str, shape: Shape) -> list[tuple[Callable[[], object], int]]:
    pipeline = PIPELINES[name][0]
    dtype = shape.dtype
    prompts = 2 if pipeline.cfg else 1
    segments: list[tuple[Callable[[], object], int]] = []
    for kind, values, length in pipeline.text_encoders:
        encoder = _text_encoder(kind, values, dtype)
        with torch.device("meta"):
            ids = torch.zeros(shape.batch, length, dtype=torch.long)
        # diffusers encodes the prompt and the negative prompt in two calls of the batch each
        segments.append((lambda encoder=encoder, ids=ids: encoder(input_ids=ids), prompts))
    denoiser = _denoiser(pipeline, dtype)
    segments.append((_denoiser_call(pipeline, denoiser, shape, prompts * shape.batch), shape.steps))
    vae_dtype = torch.float32 if pipeline.vae_fp32 else dtype
    segments.append((_vae_decode(pipeline.vae, shape, vae_dtype), 1))
    return segments


# --------------------------------------------------------------------------- the table of workloads


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _workloads() -> dict[str, Workload]:
    table: dict[str, Workload] = {}
    for name, (_, _, source, params) in LLM_CONFIGS.items():
        table[name] = Workload(
            "llm",
            source,
            params,
            build=lambda shape: [],
            count_params=lambda name=name: _count(_llm(name, torch.bfloat16)),
        )
    for name, (model_class, config_class, values, source, params) in ENCODER_CONFIGS.items():
        table[name] = Workload(
            "encoder",
            source,
            params,
            build=lambda shape, name=name: _encoder_segments(name, shape),
            count_params=lambda m=model_class, c=config_class, v=values: _count(
                _hf_model(m, c, v, torch.float32)
            ),
        )
    for name, (model_class, config_class, values, source, params) in VISION_CONFIGS.items():
        table[name] = Workload(
            "vision",
            source,
            params,
            build=lambda shape, name=name: _vision_segments(name, shape),
            count_params=lambda m=model_class, c=config_class, v=values: _count(
                _hf_model(m, c, v, torch.float32)
            ),
        )
    for name, (pipeline, source, params) in PIPELINES.items():
        table[name] = Workload(
            "diffusion",
            source,
            params,
            build=lambda shape, name=name: _diffusion_segments(name, shape),
            count_params=lambda pipeline=pipeline: _count(_denoiser(pipeline, torch.float32)),
        )
    return table


#: Every workload a calibration row may name.
WORKLOADS: dict[str, Workload] = _workloads()


# --------------------------------------------------------------------------- counting and the cache


def count(name: str, shape: Shape) -> list[list[Any]]:
    """Count one inference of workload ``name`` at ``shape``: merged op records as lists
    ``[op_class, flops, bytes, peak_key, count, fusible]`` (``model.OpRecord``'s fields)."""
    merged: dict[tuple[str, int, int, str, bool], int] = {}

    def add(records: Any, repeat: int) -> None:
        for r in records:
            key = (r.op_class, int(r.flops), int(r.bytes), r.peak_key, bool(r.fusible))
            merged[key] = merged.get(key, 0) + int(r.count) * repeat

    if WORKLOADS[name].kind == "llm":
        add(_llm_records(name, shape), 1)
    else:
        with torch.inference_mode():
            for fn, repeat in WORKLOADS[name].build(shape):
                add(counting.trace(fn).records, repeat)
    return [
        [op_class, flops, nbytes, peak, n, fusible]
        for (op_class, flops, nbytes, peak, fusible), n in sorted(merged.items())
    ]


def cache_key(name: str, shape: Shape) -> str:
    """A fingerprint of what the records depend on: the recipe, its config and the shape."""
    workload = WORKLOADS[name]
    text = json.dumps(
        {
            "recipe": RECIPE_VERSION,
            "counting": getattr(counting, "COUNTING_VERSION", 0),
            "workload": name,
            "source": workload.source,
            "shape": dataclasses.asdict(shape),
            "torch": torch.__version__.split("+")[0],
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(
    row_id: str, name: str, shape: Shape, *, recount: bool = False, cache_dir: Path = CACHE_DIR
) -> list[list[Any]]:
    """The records of one row, from ``cache_dir/<row_id>.json`` when its key still matches."""
    path = cache_dir / f"{row_id}.json"
    key = cache_key(name, shape)
    if not recount and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") == key:
            rows: list[list[Any]] = data["records"]
            return rows
    rows = count(name, shape)
    cache_dir.mkdir(parents=True, exist_ok=True)
    payload = {"row": row_id, "workload": name, "key": key, "records": rows}
    path.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
    return rows


def iter_names() -> Iterator[str]:
    """Workload names, in table order."""
    return iter(WORKLOADS)
