"""Overhead of the roofline meter's dispatch mode: metered vs unmetered forward passes on CPU.

    python benchmarks/roofline_overhead.py [--rounds 15] [--threads 1]

For tiny BERT and GPT-2 configurations at a modest size (built from configs, no download),
it times each forward pass without the meter (A), inside ``RooflineMeter.observe()`` (B) and
inside an empty ``TorchDispatchMode`` that only passes each op through (C: what any dispatch
mode costs, the floor under B), interleaved A, B, C, A, B, C ... so that drift on a shared
machine hits all alike, and prints the ratio of the medians B/A (and of the minima, which a
busy shared machine disturbs less) and C/A. The issue's target is B/A at most 3x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import _common  # this checkout's pytest_energy; the example's configs
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

from pytest_energy.meters.roofline import RooflineMeter


class PassThrough(TorchDispatchMode):  # type: ignore[misc]
    """A dispatch mode that does nothing but run each op: the floor of any counting mode."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as the meter's mode: no torch._dynamo.disable wrapper per op

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        return func(*args, **(kwargs or {}))


def cases() -> dict[str, tuple[Callable[[], object], int]]:
    torch.manual_seed(0)
    bert = BertForSequenceClassification(
        BertConfig(
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
            vocab_size=1000,
            max_position_embeddings=256,
        )
    ).eval()
    gpt2 = GPT2LMHeadModel(
        GPT2Config(n_layer=4, n_head=4, n_embd=256, vocab_size=1000, n_positions=256)
    ).eval()
    # the example project's tiny sizes, from its own configs; ids drawn from 1,000 tokens
    example = _common.example_models()
    bert_v1 = BertForSequenceClassification(
        BertConfig(**example.CLASSIFIER[("tiny", "v1")], vocab_size=1000)
    ).eval()
    gpt2_tiny = GPT2LMHeadModel(GPT2Config(**example.GENERATOR["tiny"], vocab_size=1000)).eval()
    reviews = torch.randint(0, 1000, (8, 32))
    bert_ids = torch.randint(0, 1000, (8, 128))
    gpt2_ids = torch.randint(0, 1000, (4, 128))
    prompt = torch.randint(0, 1000, (1, 16))

    def bert_forward() -> object:
        return bert(input_ids=bert_ids).logits

    def gpt2_forward() -> object:
        return gpt2(input_ids=gpt2_ids).logits

    def gpt2_generate() -> object:
        return gpt2.generate(
            prompt, max_new_tokens=16, do_sample=False, pad_token_id=0, use_cache=True
        )

    def example_classify() -> object:
        return bert_v1(input_ids=reviews).logits

    def example_generate() -> object:
        return gpt2_tiny.generate(
            prompt, max_new_tokens=16, do_sample=False, pad_token_id=0, use_cache=True
        )

    return {
        "example classifier v1 2x64, batch 8 x 32": (example_classify, 8),
        "example generator 2x128, generate 16 tokens": (example_generate, 1),
        "bert 4x256, batch 8 x 128 tokens": (bert_forward, 8),
        "gpt2 4x256, batch 4 x 128 tokens": (gpt2_forward, 4),
        "gpt2 4x256, generate 16 tokens (KV cache)": (gpt2_generate, 1),
    }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    meter = RooflineMeter()
    rows = []
    with torch.inference_mode():
        for label, (fn, _batch) in cases().items():
            fn()  # warm-up, unmetered
            with meter.observe():
                fn()  # warm-up, metered: fills the cost cache as a real first window would
            plain: list[float] = []
            metered: list[float] = []
            empty: list[float] = []
            for _ in range(args.rounds):
                plain.append(timed(fn))
                with meter.observe():
                    metered.append(timed(fn))
                with PassThrough():
                    empty.append(timed(fn))
            before = meter.tally().kernels
            with meter.observe():
                fn()
            kernels = meter.tally().kernels - before
            a, b = statistics.median(plain), statistics.median(metered)
            c = statistics.median(empty)
            rows.append((label, kernels, a * 1e3, b * 1e3, b / a, min(metered) / min(plain), c / a))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    header = (
        f"{'case':<44} {'kernels':>7} {'plain ms':>9} {'metered ms':>10} {'ratio':>6} "
        f"{'min ratio':>9} {'empty mode':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, kernels, a_ms, b_ms, ratio, min_ratio, empty_ratio in rows:
        print(
            f"{label:<44} {kernels:>7} {a_ms:>9.2f} {b_ms:>10.2f} {ratio:>5.2f}x {min_ratio:>8.2f}x"
            f" {empty_ratio:>9.2f}x"
        )


if __name__ == "__main__":
    main()
