"""Fit the roofline profile's power coefficients to NVML measurements (needs an NVIDIA GPU).

    PYTHONPATH=. python benchmarks/roofline_fit.py --target H100-SXM [--seconds 3] [--models]

No GPU was available when this was written: the script is ready for the first GPU session,
and its output goes into docs/measurement.md ("Fitting a profile").

For each workload (matrix products in fp32/tf32/bf16 at several sizes, memory-bound pointwise
ops, and with ``--models`` the example project's models at realistic size) it:

1. counts one call on the GPU with the roofline meter: its kernels and modelled busy time
   ``busy_s = sum over kernels of max(flops / peak, bytes / bandwidth)``;
2. measures the same call with the NVML energy counter (``NvmlMeter``), repeated for at
   least ``--seconds`` with ``torch.cuda.synchronize()`` on both sides, giving joules and
   seconds per call;
3. measures idle power over ``--seconds`` of sleep.

Then it fits the model ``energy = P_busy * busy_s + idle_w * launch_s * kernels`` by least
squares over all workloads (two coefficients: the effective busy power ``P_busy``, the
profile's ``board_power_w``, and ``launch_s``, with ``idle_w`` measured), prints the
per-workload error before and after the fit, the modelled vs measured time (how far real
kernels are from the roofline), and a TOML profile with the fitted values for
``--energy-target=path/to/fitted.toml``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pytest_energy.meters.nvml import NvmlMeter
from pytest_energy.meters.roofline import RooflineMeter, load_profile


@dataclass(frozen=True)
class Sample:
    label: str
    kernels: int
    busy_s: float
    measured_j: float
    measured_s: float


def workloads(models: bool) -> dict[str, Callable[[], object]]:
    dev = torch.device("cuda")
    cases: dict[str, Callable[[], object]] = {}
    for n in (512, 2048, 8192):
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            a = torch.randn(n, n, device=dev, dtype=dtype)
            b = torch.randn(n, n, device=dev, dtype=dtype)
            cases[f"mm {name} {n}"] = lambda a=a, b=b: a @ b
    for numel in (2**16, 2**22, 2**27):
        x = torch.randn(numel, device=dev)
        cases[f"gelu fp32 {numel}"] = lambda x=x: torch.nn.functional.gelu(x)
        cases[f"add fp32 {numel}"] = lambda x=x: x + x
    if models:
        from transformers import (
            BertConfig,
            BertForSequenceClassification,
            GPT2Config,
            GPT2LMHeadModel,
        )

        bert = BertForSequenceClassification(BertConfig()).to(dev).eval()
        ids = torch.randint(0, 30000, (32, 128), device=dev)
        cases["bert-base batch 32x128"] = lambda: bert(input_ids=ids).logits
        gpt2 = GPT2LMHeadModel(GPT2Config()).to(dev).eval()
        prompt = torch.randint(0, 50000, (1, 64), device=dev)
        cases["gpt2 generate 64+64"] = lambda: gpt2.generate(
            prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=0
        )
    return cases


def nvml_joules(meter: NvmlMeter) -> float:
    return sum(meter.read().values())


def measure(meter: NvmlMeter, fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Joules and seconds per call of ``fn``, over at least ``seconds``."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(1, math.ceil(seconds / once))
    torch.cuda.synchronize()
    e0, t0 = nvml_joules(meter), time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    e1, t1 = nvml_joules(meter), time.perf_counter()
    return (e1 - e0) / calls, (t1 - t0) / calls


def fit(samples: list[Sample], idle_w: float) -> tuple[float, float]:
    """Least squares for E = p * busy + q * kernels; returns (p, launch_s = q / idle_w)."""
    sxx = sum(s.busy_s**2 for s in samples)
    syy = sum(s.kernels**2 for s in samples)
    sxy = sum(s.busy_s * s.kernels for s in samples)
    sxe = sum(s.busy_s * s.measured_j for s in samples)
    sye = sum(s.kernels * s.measured_j for s in samples)
    det = sxx * syy - sxy**2
    p = (sxe * syy - sye * sxy) / det
    q = (sye * sxx - sxe * sxy) / det
    return p, max(q, 0.0) / idle_w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="H100-SXM", help="profile to start from")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per workload")
    parser.add_argument("--models", action="store_true", help="add realistic bert-base and gpt2")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("roofline_fit.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    profile = load_profile(args.target)
    nvml = NvmlMeter()
    print(f"GPU: {nvml.hardware}; starting profile: {profile.name} ({profile.hardware})")
    e0, t0 = nvml_joules(nvml), time.perf_counter()
    time.sleep(args.seconds)
    idle_w = (nvml_joules(nvml) - e0) / (time.perf_counter() - t0)
    print(f"measured idle power: {idle_w:.1f} W (profile: {profile.idle_power_w:g} W)")
    samples: list[Sample] = []
    with torch.inference_mode():
        for label, fn in workloads(args.models).items():
            roof = RooflineMeter(args.target)
            fn()  # warm-up: allocator, cuBLAS heuristics
            with roof.observe():
                fn()
            tally = roof.tally()
            joules, seconds = measure(nvml, fn, args.seconds)
            samples.append(Sample(label, tally.kernels, tally.busy_ps * 1e-12, joules, seconds))
    p_busy, launch_s = fit(samples, idle_w)

    def model_j(s: Sample, p: float, idle: float, launch: float) -> float:
        return p * s.busy_s + idle * launch * s.kernels

    header = (
        f"{'workload':<24} {'kernels':>7} {'measured J':>11} {'profile J':>10} {'err':>7} "
        f"{'fitted J':>10} {'err':>7} {'model s':>10} {'measured s':>10}"
    )
    print(header)
    print("-" * len(header))
    before: list[float] = []
    after: list[float] = []
    for s in samples:
        prof = model_j(s, profile.board_power_w, profile.idle_power_w, profile.launch_s)
        fitted = model_j(s, p_busy, idle_w, launch_s)
        before.append(prof / s.measured_j - 1)
        after.append(fitted / s.measured_j - 1)
        print(
            f"{s.label:<24} {s.kernels:>7} {s.measured_j:>11.4g} {prof:>10.4g} "
            f"{before[-1]:>+7.0%} {fitted:>10.4g} {after[-1]:>+7.0%} "
            f"{s.busy_s + s.kernels * profile.launch_s:>10.3g} {s.measured_s:>10.3g}"
        )
    print()
    for name, errors in (("profile", before), ("fitted", after)):
        print(
            f"{name}: median |error| {statistics.median(abs(e) for e in errors):.0%}, "
            f"max |error| {max(abs(e) for e in errors):.0%}"
        )
    print()
    print(f"# fitted from {len(samples)} workloads on {nvml.hardware}; save as fitted.toml")
    print(f'hardware = "{profile.hardware} (fitted)"')
    print(f"board_power_w = {p_busy:.1f}  # effective power while busy at the roofline")
    print(f"idle_power_w = {idle_w:.1f}")
    print(f"memory_bandwidth_gb_s = {profile.memory_bandwidth_b_s / 1e9:g}")
    print(f"launch_s = {launch_s:.3g}")
    peaks = ", ".join(f"{k} = {v / 1e12:g}" for k, v in profile.peak_ops_s.items())
    print(f"peak_tflops = {{ {peaks} }}")
    nvml.close()


if __name__ == "__main__":
    main()
