"""Tiny Hugging Face models for tests/test_counts.py, built from configs without downloads.

Each model gets random weights from a fixed seed and a word-level tokenizer over
:data:`WORDS`; it is saved with ``save_pretrained`` and loaded back with
``from_pretrained``, so the loading code a hub checkpoint goes through runs too.
:class:`EndAt` and :class:`StopAfter` decide where sequences end through the mechanisms
``generate`` offers (a logits processor, a stopping criterion), so a test knows each
sequence's length by construction, whatever the random weights predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LogitsProcessor,
    PreTrainedTokenizerFast,
    StoppingCriteria,
    T5Config,
    T5ForConditionalGeneration,
    pipeline,
)

SEED = 1234
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "<s>", "</s>")
#: Words of shop text, for tokenizers whose ids the tests do not look at.
TEXT = "the a an kettle lamp mug shirt box is was good bad great broke works arrived late red blue"
WORDS = SPECIALS + tuple(TEXT.split())
PAD, UNK, CLS, SEP, BOS, EOS = range(len(SPECIALS))


def tokenizer(**kwargs: Any) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over :data:`WORDS` (``kwargs``: its special tokens)."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", **kwargs)


def gpt2(folder: Path) -> tuple[Any, Any]:
    """A GPT-2 language model and a left-padding tokenizer, set up as GPT-2 usually is:
    end-of-text is the BOS, the EOS and the padding token."""
    tokenizer(eos_token="</s>", bos_token="</s>", pad_token="</s>").save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(WORDS),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    torch.manual_seed(SEED)
    GPT2LMHeadModel(config).save_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, AutoTokenizer.from_pretrained(folder, padding_side="left")


def t5(folder: Path) -> Any:
    """A T5 encoder-decoder: the decoder starts with the padding token, as in t5-small."""
    config = T5Config(
        vocab_size=len(WORDS),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    torch.manual_seed(SEED)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return AutoModelForSeq2SeqLM.from_pretrained(folder).eval()


def bart(folder: Path) -> Any:
    """A BART encoder-decoder: its decoder starts with the EOS token, as in bart-base."""
    config = BartConfig(
        vocab_size=len(WORDS),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        decoder_start_token_id=EOS,
        forced_eos_token_id=None,
    )
    torch.manual_seed(SEED)
    BartForConditionalGeneration(config).save_pretrained(folder)
    return AutoModelForSeq2SeqLM.from_pretrained(folder).eval()


def classifier(folder: Path) -> Any:
    """A ``text-classification`` pipeline over a tiny BERT with three labels."""
    tokenizer(
        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", model_max_length=32
    ).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
        pad_token_id=PAD,
    )
    torch.manual_seed(SEED)
    BertForSequenceClassification(config).save_pretrained(folder)
    return pipeline("text-classification", model=str(folder), tokenizer=str(folder), device="cpu")


def _text_encoder_parts() -> tuple[Any, Any, Any]:
    """The CLIP text encoder, tokenizer and VAE that both diffusers pipelines share."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    clip_tokenizer = tokenizer(
        pad_token="[PAD]", bos_token="<s>", eos_token="</s>", model_max_length=16
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(WORDS),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=16,
        norm_num_groups=4,
    )
    return clip_tokenizer, text_encoder, vae


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    # Stable Diffusion 1.5's noise schedule, every setting given.
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _unet_sizes(dims: str) -> dict[str, Any]:
    """The denoiser's sizes, for a 2D (image) or 3D (video) UNet."""
    return dict(
        in_channels=4,
        out_channels=4,
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=(f"CrossAttnDownBlock{dims}", f"DownBlock{dims}"),
        up_block_types=(f"UpBlock{dims}", f"CrossAttnUpBlock{dims}"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def _round_trip(pipeline: Any, folder: Path) -> Any:
    """``pipeline`` saved with ``save_pretrained`` and loaded back with ``from_pretrained``."""
    pipeline.save_pretrained(folder)
    loaded = type(pipeline).from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def stable_diffusion(folder: Path) -> Any:
    """A Stable Diffusion pipeline making 16x16 images from 8x8 latents."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(SEED)
    clip_tokenizer, text_encoder, vae = _text_encoder_parts()
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        unet=UNet2DConditionModel(**_unet_sizes("2D")),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _round_trip(pipeline, folder)


def text_to_video(folder: Path) -> Any:
    """A text-to-video pipeline (ModelScope's architecture) making 16x16 frames."""
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(SEED)
    clip_tokenizer, text_encoder, vae = _text_encoder_parts()
    pipeline = TextToVideoSDPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        unet=UNet3DConditionModel(**_unet_sizes("3D")),
        scheduler=_scheduler(),
    )
    return _round_trip(pipeline, folder)


class EndAt(LogitsProcessor):
    """Make prompt ``i``'s sequences emit ``eos`` as their new token number ``ends[i] + 1``,
    and never before; ``None`` never ends it. So a sequence ending at step ``s`` has
    ``s + 1`` new tokens, the EOS included.

    ``prompt_width`` is the width of the ids ``generate`` starts from (the padded prompt;
    the decoder prompt for encoder-decoder models); ``repeat`` the rows per prompt
    (``num_beams`` or ``num_return_sequences``).
    """

    def __init__(
        self, ends: Sequence[int | None], eos: int, prompt_width: int, repeat: int = 1
    ) -> None:
        self.ends = ends
        self.eos = eos
        self.prompt_width = prompt_width
        self.repeat = repeat

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        scores = scores.clone()
        for row in range(scores.shape[0]):
            end = self.ends[row // self.repeat]
            if end == step:
                scores[row] = -float("inf")
                scores[row, self.eos] = 0.0
            else:
                scores[row, self.eos] = -float("inf")
        return scores  # type: ignore[return-value]


class StopAfter(StoppingCriteria):
    """End every sequence once it has ``count`` new tokens, with no EOS token."""

    def __init__(self, count: int, prompt_width: int) -> None:
        self.count = count
        self.prompt_width = prompt_width

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        done = input_ids.shape[1] - self.prompt_width >= self.count
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)
