"""Time and memory of modelling a Llama-3.1-8B-size decode under the roofline meter.

    python benchmarks/roofline_decode.py [--runs 3] [--engine eager|compiled|both]
        [--batch 8] [--prompt 512] [--new 256] [--step-by-step]

The model is built from the Llama-3.1-8B config (hidden 4096, 32 layers, intermediate 14336,
32 heads, 8 KV heads, vocab 128256, bf16) on torch's ``meta`` device: no weights are
allocated. Each run creates a fresh ``RooflineMeter`` (H100-SXM) and runs
``pytest_energy.generation.run`` inside its window: a prefill of ``--prompt`` tokens at
batch ``--batch`` and exactly ``--new`` greedy decode steps, with the decode shortcut (the
first steps run, the rest counted from their per-position growth); ``--step-by-step`` runs
every step instead, for comparison (about two minutes at the default sizes). It prints the
wall time of each run (model built outside the timing), min and median, peak RSS of the
process, and the modelled figures: prefill and decode energy, J per output token, kernels.

The issue-19 target: at most 20 s wall and under 2 GiB peak RSS on the 2-core CI runner.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import _common  # noqa: F401  (this checkout's pytest_energy)
import roofline_workloads as workloads
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pytest_energy import generation
from pytest_energy.meters.roofline import RooflineMeter

#: The published config (benchmarks/roofline_workloads.py, with its source and its checked
#: parameter count).
LLAMA_3_1_8B = workloads.LLM_CONFIGS["llama-3.1-8b"][1]


def build() -> LlamaForCausalLM:
    with torch.device("meta"):
        return LlamaForCausalLM(LlamaConfig(**LLAMA_3_1_8B)).to(torch.bfloat16).eval()


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def one_run(
    model: LlamaForCausalLM, engine: str, args: argparse.Namespace
) -> tuple[float, dict[str, float], float]:
    meter = RooflineMeter("H100-SXM", engine=engine)
    at_prefill: dict[str, float] = {}

    def mark(_: str) -> None:
        at_prefill.update(meter.counters())
        at_prefill["joules"] = next(iter(meter.read().values()))

    start = time.perf_counter()
    with meter.observe():
        generation.run(
            model,
            batch_size=args.batch,
            prompt_tokens=args.prompt,
            new_tokens=args.new,
            mark=mark,
            meter=meter,
            shortcut=False if args.step_by_step else None,
        )
    wall = time.perf_counter() - start
    total = meter.counters()
    total["joules"] = next(iter(meter.read().values()))
    return wall, total, at_prefill["joules"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", choices=("eager", "compiled", "both"), default="both")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--new", type=int, default=256)
    parser.add_argument("--step-by-step", action="store_true", help="run every decode step")
    args = parser.parse_args()
    engines = ("eager", "compiled") if args.engine == "both" else (args.engine,)
    model = build()
    mode = "step by step" if args.step_by_step else "shortcut"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; Llama-3.1-8B config on "
        f"meta, bf16, batch {args.batch}, {args.prompt} prompt + {args.new} new tokens, {mode}"
    )
    for engine in engines:
        walls = []
        for _ in range(args.runs):
            wall, total, prefill_j = one_run(model, engine, args)
            walls.append(wall)
        tokens = args.batch * args.new
        decode_j = total["joules"] - prefill_j
        print(
            f"{engine:>8}: wall s {' '.join(f'{w:.2f}' for w in walls)} "
            f"(min {min(walls):.2f}, median {statistics.median(walls):.2f}); "
            f"prefill {prefill_j:.2f} J, decode {decode_j:.1f} J "
            f"= {decode_j / tokens:.3f} J/token; "
            f"{total['flops'] / 1e12:.2f} TFLOP, {total['kernels']:.0f} kernels, "
            f"overhead {total['energy_j:overhead'] / total['joules']:.0%} of the energy"
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
