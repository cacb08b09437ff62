"""The CPU-time estimate and torch's intra-op threads: does a 2x bigger model cost 2x?

The ``codecarbon`` meter estimates energy as this process's CPU time times a share of the
CPU's TDP. With more than one intra-op thread, torch's worker threads spin-wait for each
other between operations, and on a small or shared runner that waiting is CPU time too: it
depends on scheduling, not on the model.

For each thread count (1, then 2 by default) this script meters two ``torch.nn.Linear``
layers, the original and one with twice the output features (2x the weights and FLOPs),
with the ``codecarbon`` meter, in windows that alternate A B B A ... so that drift hits both
alike. It prints the median estimated joules per inference of each and their ratio
(big / original; 2.0 would be the work ratio) with the spread over ``--repeats`` runs.

Usage::

    python benchmarks/estimate_threads.py                 # 1 and 2 threads, 5 repeats
    python benchmarks/estimate_threads.py --threads 1 2 4 --repeats 3 --window 0.3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import _common  # noqa: F401  (this checkout's pytest_energy)

from pytest_energy.meters.codecarbon import CodeCarbonMeter, thread_warning


def _window_j(meter: CodeCarbonMeter, fn: Callable[[], object], count: int) -> float:
    start = meter.read()["cpu:estimate"]
    for _ in range(count):
        fn()
    return (meter.read()["cpu:estimate"] - start) / count


def measure(
    threads: int, *, rounds: int, window_s: float, features: int, batch: int
) -> tuple[float, float]:
    """(median J/inference of the original, of the 2x model) with ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    original = torch.nn.Linear(features, features)
    bigger = torch.nn.Linear(features, 2 * features)
    x = torch.randn(batch, features)

    def run_original() -> object:
        with torch.no_grad():
            return original(x)

    def run_bigger() -> object:
        with torch.no_grad():
            return bigger(x)

    # calibrate: enough calls of the original for one window of window_s
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < window_s / 4:
        run_original()
        calls += 1
    count = max(10, int(calls * 4))
    meter = CodeCarbonMeter()
    per = {"original": [], "bigger": []}  # type: dict[str, list[float]]
    for r in range(rounds):
        order = (("original", run_original), ("bigger", run_bigger))
        for name, fn in order if r % 2 == 0 else reversed(order):
            per[name].append(_window_j(meter, fn, count))
    return statistics.median(per["original"]), statistics.median(per["bigger"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="independent runs per setting")
    parser.add_argument("--rounds", type=int, default=10, help="A/B window pairs per run")
    parser.add_argument("--window", type=float, default=0.2, help="seconds per window")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)

    import torch

    print(
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs "
        f"available; Linear({args.features}, {args.features}) vs "
        f"Linear({args.features}, {2 * args.features}), batch {args.batch}, "
        f"{args.rounds} A/B window pairs of ~{args.window:g} s, {args.repeats} repeats"
    )
    print()
    print(
        "| intra-op threads | original J/inf | 2x model J/inf "
        "| ratio 2x/original (median) | min - max |"
    )
    print("|---:|---:|---:|---:|---|")
    # interleave the thread settings across repeats too
    results: dict[int, list[tuple[float, float]]] = {t: [] for t in args.threads}
    for _ in range(args.repeats):
        for threads in args.threads:
            results[threads].append(
                measure(
                    threads,
                    rounds=args.rounds,
                    window_s=args.window,
                    features=args.features,
                    batch=args.batch,
                )
            )
    for threads in args.threads:
        pairs = results[threads]
        ratios = [big / small for small, big in pairs]
        print(
            f"| {threads} | {statistics.median(s for s, _ in pairs):.3g} | "
            f"{statistics.median(b for _, b in pairs):.3g} | {statistics.median(ratios):.2f} | "
            f"{min(ratios):.2f} - {max(ratios):.2f} |"
        )
    torch.set_num_threads(max(args.threads))
    warning = thread_warning()
    print()
    print(f"thread_warning() with {max(args.threads)} threads: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
