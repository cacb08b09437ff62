"""Reply drafting: continue a prompt with a GPT-2 language model.

Decoding is greedy and always produces exactly ``max_new_tokens`` tokens per prompt (the
end-of-text token does not stop it early), so the number of tokens, and with it the
energy per token, does not depend on what the random weights happen to predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .settings import device


@dataclass(frozen=True)
class Drafts:
    texts: list[str]
    new_tokens: int
    """Tokens generated, summed over prompts (prompt tokens not included)."""


class ReplyWriter:
    def __init__(self, checkpoint: Path) -> None:
        # Left padding keeps each prompt's last token next to the generated ones.
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint).to(device()).eval()

    @torch.inference_mode()
    def draft(self, prompts: Sequence[str], max_new_tokens: int = 32) -> Drafts:
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(device())
        output = self.model.generate(
            **batch,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = output[:, batch["input_ids"].shape[1] :]
        return Drafts(
            texts=self.tokenizer.batch_decode(new, skip_special_tokens=True),
            new_tokens=new.numel(),
        )
