"""Check the nvml meter on a real NVIDIA GPU: how far short windows stray from a long one.

Runs a fixed torch workload (a chain of bf16/fp16 matmuls and a small
``torch.nn.TransformerEncoder`` forward pass) on CUDA, meters it with
:class:`pytest_energy.meters.nvml.NvmlMeter` in windows of several lengths, and prints a
Markdown table: window length, number of windows, mean joules per inference, coefficient of
variation, joules per inference relative to a long reference window, and the overhead of one
window (two CUDA syncs and two meter reads around no work).

One "inference" is one call of the workload. CUDA is synchronised before every read. A random
pause of up to one counter update period separates windows, as the pytest plugin does.

Usage (about 3 minutes on an H100 with the defaults)::

    CUDA_VISIBLE_DEVICES=0 python benchmarks/gpu_validation.py --out results.json

This script needs only ``pytest_energy.meters.nvml``, torch with CUDA and nvidia-ml-py; it
does not use the pytest plugin.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import _common  # noqa: F401  (this checkout's pytest_energy)

from pytest_energy.errors import MeterUnavailable
from pytest_energy.meters.nvml import NvmlMeter

WINDOW_LENGTHS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
WINDOWS_PER_LENGTH = 10
REFERENCE_S = 30.0
REFERENCE_WINDOWS = 2
WARMUP_S = 5.0
OVERHEAD_SAMPLES = 200


# -- pure helpers (tested without a GPU) ----------------------------------------------------


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation over mean; NaN for fewer than two values or a zero mean."""
    if len(values) < 2:
        return math.nan
    mean = statistics.fmean(values)
    if mean == 0:
        return math.nan
    return statistics.stdev(values) / abs(mean)


@dataclass(frozen=True)
class Row:
    """The result for one window length."""

    window_s: float
    windows: int
    mean_duration_s: float
    mean_j_per_inference: float
    cv: float
    relative_to_reference: float
    overhead_us: float


def summarise(
    window_s: float,
    energy_j: Sequence[float],
    duration_s: Sequence[float],
    inferences: Sequence[int],
    *,
    reference_j_per_inference: float,
    overhead_us: float,
) -> Row:
    """One table row from the windows of one length."""
    if not energy_j or not (len(energy_j) == len(duration_s) == len(inferences)):
        raise ValueError("need the same, non-zero number of energies, durations and counts")
    per_inference = [e / n for e, n in zip(energy_j, inferences, strict=True)]
    mean = statistics.fmean(per_inference)
    relative = mean / reference_j_per_inference if reference_j_per_inference else math.nan
    return Row(
        window_s=window_s,
        windows=len(energy_j),
        mean_duration_s=statistics.fmean(duration_s),
        mean_j_per_inference=mean,
        cv=coefficient_of_variation(per_inference),
        relative_to_reference=relative,
        overhead_us=overhead_us,
    )


def _number(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def _without_nan(record: dict[str, Any]) -> dict[str, Any]:
    """NaN becomes ``None`` so the JSON output stays strict JSON."""
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in record.items()
    }


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| window (s) | windows | mean duration (s) | J/inference | CV | vs reference | "
        "overhead/window (µs) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.window_s:g} | {row.windows} | {row.mean_duration_s:.3f} "
            f"| {_number(row.mean_j_per_inference, '.4g')} | {_number(row.cv * 100, '.1f')}% "
            f"| {_number(row.relative_to_reference, '.3f')} | {row.overhead_us:.0f} |"
        )
    return "\n".join(lines)


# -- the GPU run ----------------------------------------------------------------------------


def build_workload(
    torch: Any, dtype: Any, *, size: int = 4096, chain: int = 8
) -> Callable[[], Any]:
    """One inference: ``chain`` square matmuls, then a 4-layer encoder forward pass."""
    device = torch.device("cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    weights = [
        torch.randn(size, size, device=device, dtype=dtype, generator=generator) / math.sqrt(size)
        for _ in range(chain)
    ]
    layer = torch.nn.TransformerEncoderLayer(
        d_model=1024, nhead=16, dim_feedforward=4096, dropout=0.0, batch_first=True
    )
    encoder = torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
    encoder = encoder.to(device=device, dtype=dtype).eval()
    tokens = torch.randn(8, 256, 1024, device=device, dtype=dtype, generator=generator)

    def step() -> Any:
        with torch.inference_mode():
            y = x
            for w in weights:
                y = y @ w
            return y, encoder(tokens)

    return step


def _energy(start: dict[str, float], end: dict[str, float]) -> float:
    return math.fsum(end[domain] - start[domain] for domain in start)


def run_windows(
    meter: NvmlMeter,
    step: Callable[[], Any],
    sync: Callable[[], None],
    *,
    calls: int,
    count: int,
    rng: random.Random,
) -> tuple[list[float], list[float], list[int]]:
    """``count`` windows of ``calls`` inferences each: (joules, seconds, inferences)."""
    energies, durations = [], []
    for _ in range(count):
        time.sleep(rng.uniform(0.0, meter.update_period_s))
        sync()
        start = meter.read()
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        sync()
        end = meter.read()
        durations.append(time.perf_counter() - t0)
        energies.append(_energy(start, end))
    return energies, durations, [calls] * count


def read_overhead_us(meter: NvmlMeter, sync: Callable[[], None], samples: int) -> float:
    """Mean time of sync + read + sync + read around no work, in microseconds."""
    total_s = 0.0
    for _ in range(samples):
        t0 = time.perf_counter()
        sync()
        meter.read()
        sync()
        meter.read()
        total_s += time.perf_counter() - t0
    return total_s / samples * 1e6


def _fail(message: str) -> NoReturn:
    sys.exit(f"gpu_validation: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--windows",
        type=float,
        nargs="+",
        default=list(WINDOW_LENGTHS_S),
        help="window lengths in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=WINDOWS_PER_LENGTH, help="windows per length"
    )
    parser.add_argument("--reference-s", type=float, default=REFERENCE_S)
    parser.add_argument("--reference-windows", type=int, default=REFERENCE_WINDOWS)
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random phase offsets")
    args = parser.parse_args(argv)

    try:
        torch = importlib.import_module("torch")
    except ImportError:
        _fail("torch is not installed; install a CUDA build of torch")
    if not torch.cuda.is_available():
        _fail(
            "no CUDA GPU is visible (torch.cuda.is_available() is False); run this on a machine "
            "with an NVIDIA GPU, its driver and a CUDA build of torch"
        )
    try:
        pynvml = importlib.import_module("pynvml")
        meter = NvmlMeter(pynvml=pynvml)
    except (ImportError, MeterUnavailable) as exc:
        _fail(str(exc))

    try:
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        domains = sorted(meter.read())
        print(f"GPU: {meter.hardware}  (torch device: {torch.cuda.get_device_name(0)})")
        print(f"driver: {driver}  torch: {torch.__version__}  python: {platform.python_version()}")
        print(f"method: {meter.method}  ({meter.provenance})")
        if len(domains) > 1:
            print(
                f"note: {len(domains)} GPUs are metered and summed but the workload runs on one; "
                "set CUDA_VISIBLE_DEVICES to a single GPU for clean figures"
            )

        step = build_workload(torch, dtype)
        sync = torch.cuda.synchronize
        rng = random.Random(args.seed)

        warm_until = time.perf_counter() + WARMUP_S
        while time.perf_counter() < warm_until:
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(20):
            step()
        sync()
        step_s = (time.perf_counter() - t0) / 20
        print(f"one inference takes {step_s * 1e3:.2f} ms")

        def calls_for(window_s: float) -> int:
            return max(1, round(window_s / step_s))

        overhead_us = read_overhead_us(meter, sync, OVERHEAD_SAMPLES)
        ref_j, _ref_s, ref_n = run_windows(
            meter,
            step,
            sync,
            calls=calls_for(args.reference_s),
            count=args.reference_windows,
            rng=rng,
        )
        reference = math.fsum(ref_j) / sum(ref_n)

        rows = []
        for window_s in args.windows:
            energies, durations, counts = run_windows(
                meter, step, sync, calls=calls_for(window_s), count=args.repeats, rng=rng
            )
            rows.append(
                summarise(
                    window_s,
                    energies,
                    durations,
                    counts,
                    reference_j_per_inference=reference,
                    overhead_us=overhead_us,
                )
            )
        throttle = meter.throttle_reasons()
    finally:
        meter.close()

    print(
        f"\nreference: {args.reference_windows} x {args.reference_s:g} s windows, "
        f"{reference:.4g} J/inference"
    )
    print(format_table(rows))
    if throttle:
        print(f"clock slowdowns active at the end: {', '.join(throttle)}")
    if args.out is not None:
        result = {
            "gpu": meter.hardware,
            "torch_device": torch.cuda.get_device_name(0),
            "driver": driver,
            "torch": torch.__version__,
            "method": meter.method,
            "provenance": meter.provenance,
            "dtype": args.dtype,
            "step_s": step_s,
            "reference_s": args.reference_s,
            "reference_windows": args.reference_windows,
            "reference_j_per_inference": reference,
            "throttle_reasons_at_end": list(throttle),
            "rows": [_without_nan(asdict(row)) for row in rows],
        }
        args.out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
