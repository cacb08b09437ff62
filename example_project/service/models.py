"""Where the service's checkpoints come from.

A production service would name checkpoints on a model hub (``bert-base-uncased``,
``gpt2``, ``stable-diffusion-v1-5``) and let ``from_pretrained`` download them. This
example cannot download anything, so it builds each checkpoint once from a config, with
random weights drawn from a fixed seed, saves it with ``save_pretrained`` and hands its
folder to the same ``from_pretrained`` calls the service would use for a hub checkpoint.

Random weights cost as much energy as trained ones: a forward pass does the same
arithmetic whatever the values are. What changes with training is only whether the output
makes sense, which an energy test does not look at.

Checkpoints live in ``<cache>/<size>/<name>-<hash>``; the hash covers the configs, so
editing a size below builds a new checkpoint instead of reusing a stale one. Delete the
cache folder to rebuild everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from . import vocab
from .settings import Settings

SEED = 1234

# ---------------------------------------------------------------------------------------
# Sizes. "realistic" copies the published configs of bert-base-uncased (bert-large for
# the v2 classifier), gpt2 and Stable Diffusion 1.5; "tiny" keeps each architecture but
# shrinks it until the whole suite runs in a few minutes on two CPU cores.
# ---------------------------------------------------------------------------------------

#: BertForSequenceClassification. v2 is the upgrade: a classifier twice as deep and four
#: times as wide (tiny; it costs 3 to 8 times as much per review on a CPU, depending on
#: the batch size), or bert-large replacing bert-base (realistic).
CLASSIFIER: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("tiny", "v1"): dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256
    ),
    ("tiny", "v2"): dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024
    ),
    ("realistic", "v1"): dict(  # bert-base
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
    ),
    ("realistic", "v2"): dict(  # bert-large
        vocab_size=30522,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
    ),
}
CLASSIFIER_LABELS = ("negative", "neutral", "positive")

#: GPT2LMHeadModel. At realistic size the embedding and output layers have GPT-2's 50,257
#: rows, so each generated token costs what it costs in gpt2, although the local tokenizer
#: only knows the first few hundred ids (the rest decode to empty strings). The same holds
#: for the realistic classifier's and text encoder's vocabularies.
GENERATOR: Mapping[str, Mapping[str, Any]] = {
    "tiny": dict(n_embd=128, n_layer=2, n_head=2, n_positions=256),
    "realistic": dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024),
}

#: Stable Diffusion: UNet2DConditionModel + AutoencoderKL + CLIPTextModel.
IMAGE: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "tiny": dict(
        unet=dict(
            sample_size=16,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
        ),
        vae=dict(
            block_out_channels=(32, 64, 64),
            layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            sample_size=64,
        ),
        text=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        ),
    ),
    "realistic": dict(  # Stable Diffusion 1.5: 512x512 images from 64x64 latents
        unet=dict(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        ),
        vae=dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
        ),
        text=dict(  # CLIP ViT-L/14 text encoder
            vocab_size=49408,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            hidden_act="quick_gelu",
        ),
    ),
}


# ---------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------


def _cached(
    settings: Settings, name: str, spec: Mapping[str, Any], build: Callable[[Path], None]
) -> Path:
    """The folder of checkpoint ``name``, built by ``build(folder)`` the first time.

    The build goes to a temporary folder that is renamed into place, so an interrupted
    build or two test processes building at once never leave a half-written checkpoint.
    """
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    target = settings.cache_dir / settings.size / f"{name}-{digest}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        torch.manual_seed(SEED)
        build(scratch)
        try:
            os.replace(scratch, target)
        except OSError:
            if not target.is_dir():  # not a concurrent build finishing first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def classifier_checkpoint(settings: Settings) -> Path:
    """A BERT text classifier and its WordPiece tokenizer, in the settings' size and version."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = vocab.wordpiece_vocab()
    sizes = dict(CLASSIFIER[settings.size, settings.version])
    spec = {"sizes": sizes, "vocab": words, "labels": CLASSIFIER_LABELS}

    def build(folder: Path) -> None:
        tokenizer = BertTokenizer(vocab=words, model_max_length=128)
        config = BertConfig(
            **{"vocab_size": len(words), **sizes},
            max_position_embeddings=512,
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
            pad_token_id=tokenizer.pad_token_id,
        )
        BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return _cached(settings, f"classifier-{settings.version}", spec, build)


def generator_checkpoint(settings: Settings) -> Path:
    """A GPT-2 language model and its byte-level BPE tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    words, merges = vocab.gpt2_vocab()
    sizes = dict(GENERATOR[settings.size])
    spec = {"sizes": sizes, "vocab": words, "merges": merges, "pad": vocab.GPT2_END}

    def build(folder: Path) -> None:
        # GPT-2 has no padding token; batching prompts needs one, and end-of-text is usual.
        tokenizer = GPT2Tokenizer(vocab=words, merges=merges, pad_token=vocab.GPT2_END)
        end = tokenizer.convert_tokens_to_ids(vocab.GPT2_END)
        config = GPT2Config(
            **{"vocab_size": len(words), **sizes},
            bos_token_id=end,
            eos_token_id=end,
            pad_token_id=end,
        )
        GPT2LMHeadModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return _cached(settings, "generator", spec, build)


def image_checkpoint(settings: Settings) -> Path:
    """A Stable Diffusion pipeline folder: UNet, VAE, CLIP text encoder, tokenizer, scheduler."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words, merges = vocab.clip_vocab()
    parts = IMAGE[settings.size]
    spec = {"parts": parts, "vocab": words, "merges": merges}

    def build(folder: Path) -> None:
        tokenizer = CLIPTokenizer(vocab=words, merges=merges, model_max_length=77)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                **{"vocab_size": len(words), **parts["text"]},
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        unet = UNet2DConditionModel(in_channels=4, out_channels=4, **parts["unet"])
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **parts["vae"])
        # Stable Diffusion 1.5's scheduler settings.
        scheduler = PNDMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            skip_prk_steps=True,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        pipeline = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.save_pretrained(folder)

    return _cached(settings, "image", spec, build)


# ---------------------------------------------------------------------------------------
# The production reply writer, at its real size. Its 8 billion parameters (16 GB in
# bfloat16) would not fit a CI runner's time or memory, and are not needed to price it:
# built on torch's "meta" device, the model has every shape and dtype but no storage, so
# the roofline meter counts its operations without running them.
# ---------------------------------------------------------------------------------------

#: The sizes of Llama 3.1 8B's published config.json (meta-llama/Llama-3.1-8B-Instruct):
#: what determines the cost of a forward pass. Its rope scaling changes the values of the
#: rotary embedding, not its shapes, so it is left out.
PRODUCTION_LLM: Mapping[str, Any] = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    tie_word_embeddings=False,
)


def production_reply_model() -> torch.nn.Module:
    """Llama 3.1 8B's architecture in bfloat16 on the meta device: priced, never run."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**PRODUCTION_LLM))
    return model.to(torch.bfloat16).eval()
