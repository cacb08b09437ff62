"""Time a large baseline: what a plain run, an update and ``pytest-energy show`` pay.

Generates a baseline of ``--entries`` tests (default 50,000, on two hardware keys, 10
windows each, ``--runs`` recorded runs each, default 5) in a temporary directory, then
times, best of ``--repeat``:

* **load path** (what a plain run pays): ``baseline.load`` plus one lookup per test (of
  every test, and of 100 tests), and ``hardware_for`` for a test that is not in the file;
* **update** (``--energy-update-baseline``): ``baseline.update`` with one new run for every
  test, and for 100 tests (load under the lock, merge, dumps, read-back check, atomic
  write);
* **show**: ``pytest_energy.cli.main(["show", FILE])`` with stdout sent to /dev/null.

Usage::

    python benchmarks/baseline_scale.py [--entries 50000] [--runs 5] [--repeat 3]

Run against an older checkout (``PYTHONPATH=<old checkout>``) it writes that version's
format and uses its ``update(path, entries)`` signature, so the same command gives the
before and after figures. Issue 14's targets: load path <= 3 s, update <= 6 s.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_energy import baseline as baseline_io
from pytest_energy import cli

HARDWARE = ("NVIDIA H100 80GB HBM3 x1", "Intel(R) Xeon(R) Platinum 8480+ x2 (RAPL)")
WINDOWS = 10
TARGETS_S = {"load path": 3.0, "update": 6.0}


def _samples(rng: random.Random, level: float) -> tuple[float, ...]:
    return tuple(float(f"{level * rng.gauss(1.0, 0.02):.6g}") for _ in range(WINDOWS))


def _entry(rng: random.Random, level: float, runs: int, day: int) -> Any:
    samples = _samples(rng, level)
    kwargs: dict[str, Any] = {
        "samples": samples,
        "meter": "nvml",
        "estimated": False,
        "pytest_energy_version": "0.2.0",
        "inferences": 64,
    }
    if hasattr(baseline_io, "RunSummary"):
        summary = baseline_io.RunSummary.of
        history = [
            summary(_samples(rng, level), f"2026-11-{day - runs + i:02d}") for i in range(1, runs)
        ]
        kwargs["runs"] = (*history, summary(samples, f"2026-11-{day:02d}"))
    return baseline_io.BaselineEntry(**kwargs)


def nodeids(entries: int) -> list[tuple[str, str]]:
    per_hw = entries // len(HARDWARE)
    return [
        (hw, f"tests/models/test_family_{i // 250:03d}.py::test_infer[bs={i % 8}-model_{i}]")
        for hw in HARDWARE
        for i in range(per_hw)
    ]


def generate(path: Path, entries: int, runs: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    keys = nodeids(entries)
    table: dict[str, dict[str, Any]] = {}
    for hw, nodeid in keys:
        table.setdefault(hw, {})[nodeid] = _entry(rng, rng.uniform(1e-4, 1e-1), runs, 20)
    baseline_io.save(path, baseline_io.Baseline(table))
    return keys


def _update_args(keys: list[tuple[str, str]], runs: int) -> tuple[Any, dict[str, Any]]:
    rng = random.Random(1)
    new = {(hw, n): _entry(rng, rng.uniform(1e-4, 1e-1), 1, 21) for hw, n in keys}
    updates: dict[str, dict[str, Any]] = {}
    if "history" in inspect.signature(baseline_io.update).parameters:
        for (hw, nodeid), entry in new.items():
            updates.setdefault(hw, {})[nodeid] = baseline_io.Update(entry, replace_history=False)
        return updates, {"history": runs}
    for (hw, nodeid), entry in new.items():
        updates.setdefault(hw, {})[nodeid] = entry
    return updates, {}


def schema_1_text(baseline: Any) -> str:
    """The same entries as the schema-1 writer (tomli_w, no runs) laid them out."""
    import tomli_w

    document = {
        "schema_version": 1,
        "hardware": {
            hw: {
                nodeid: {
                    key: value for key, value in tests[nodeid].to_toml().items() if key != "runs"
                }
                for nodeid in sorted(tests)
            }
            for hw, tests in sorted(baseline.entries.items())
        },
    }
    return tomli_w.dumps(document)


def best_of(repeat: int, step: Callable[[], object]) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (the CPU figure is steadier on a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per entry (schema 2)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--with-schema-1",
        action="store_true",
        help="also time loading the same entries from a schema-1 file (before its first update)",
    )
    parser.add_argument(
        "--profile",
        choices=["load path", "load path, 100 tests", "update", "update, 100 tests", "show"],
        help="cProfile one step",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "energy-baseline.toml"
        t0 = time.perf_counter()
        keys = generate(path, args.entries, args.runs)
        size_mb = path.stat().st_size / 1e6
        print(
            f"pytest_energy from {Path(baseline_io.__file__).parent}; schema "
            f"{baseline_io.SCHEMA_VERSION}; {len(keys)} entries x {WINDOWS} windows"
            + (f" x {args.runs} runs" if hasattr(baseline_io, "RunSummary") else "")
            + f": {size_mb:.1f} MB (generated in {time.perf_counter() - t0:.1f} s)"
        )
        updates, extra = _update_args(keys, args.runs)
        pristine = path.read_bytes()

        def load_path(lookups: list[tuple[str, str]]) -> Callable[[], None]:
            def step() -> None:
                baseline = baseline_io.load(path)
                for hw, nodeid in lookups:
                    entry = baseline.get(hw, nodeid)
                    assert entry is not None and entry.kwh_per_1000 >= 0
                baseline.hardware_for("tests/test_new.py::test_not_recorded")

            return step

        def update(some: dict[str, dict[str, Any]]) -> Callable[[], None]:
            def step() -> None:
                path.write_bytes(pristine)
                baseline_io.update(path, some, **extra)

            return step

        def schema_1_load() -> None:
            baseline = baseline_io.load(old_path)
            for hw, nodeid in keys:
                baseline.get(hw, nodeid)

        old_path = Path(scratch) / "schema-1.toml"
        if args.with_schema_1:
            old_path.write_text(schema_1_text(baseline_io.load(path)), encoding="utf-8")

        hw0 = keys[0][0]
        few = {hw0: dict(list(updates[hw0].items())[:100])}

        def show() -> None:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                code = cli.main(["show", str(path)])
            assert code == 0, code

        steps = {
            "load path": load_path(keys),
            "load path, 100 tests": load_path(keys[:100]),
            "update": update(updates),
            "update, 100 tests": update(few),
            "show": show,
        }
        if args.with_schema_1:
            steps["load path, schema-1 file"] = schema_1_load
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(steps[args.profile])
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            return 0
        print(f"  {'step':<22} {'wall s':>7} {'CPU s':>7}  best of {args.repeat}")
        for name, step in steps.items():
            wall, cpu = best_of(args.repeat, step)
            target = TARGETS_S.get(name.split(",")[0])
            verdict = ""
            if target is not None:
                met = "met" if max(wall, cpu) <= target else "MISSED"
                verdict = f"  (target <= {target:g} s: {met})"
            print(f"  {name:<22} {wall:7.2f} {cpu:7.2f}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
