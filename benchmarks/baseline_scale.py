"""Time a large baseline: what a plain run, an update and ``pytest-energy show`` pay.

Generates a baseline of ``--entries`` tests (default 2,000, on two hardware keys, 10
windows each, ``--runs`` recorded runs each, default 10) in a temporary directory, then
times each step with each TOML reader, A/B interleaved (``tomli``, the dependency, then
the standard library's ``tomllib``, then the other way round ...):

* **load** (what a plain run pays): ``baseline.load`` plus one lookup per test and
  ``hardware_for`` of a test that is not in the file;
* **update** (``--energy-update-baseline``): ``baseline.update`` with one new run for every
  test, and for 100 tests (under the lock: read, merge, dumps, read-back check, atomic
  write). The file is put back before every call, untimed;
* **show**: ``pytest_energy.cli.main(["show", FILE])`` with stdout sent to /dev/null.

The reader is switched by pointing ``pytest_energy.baseline``'s ``tomli`` name at the
module under test: both have the same ``loads`` and ``TOMLDecodeError``.

Usage::

    python benchmarks/baseline_scale.py [--entries 2000] [--runs 10] [--repeat 7]
    python benchmarks/baseline_scale.py --profile update       # cProfile one step (tomli)

Issue 18's targets, for 2,000 entries with 10 runs: load <= 1 s, update (every entry)
<= 2 s, on a 2-core machine. The verdict uses the median wall time with ``tomli``.
The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

import _common

from pytest_energy import baseline as baseline_io
from pytest_energy import cli
from pytest_energy.record import Record

HARDWARE = ("NVIDIA H100 80GB HBM3 x1", "Intel(R) Xeon(R) Platinum 8480+ x2 (RAPL)")
WINDOWS = 10
TARGETS_S = {"load": 1.0, "update": 2.0}
STEPS = ("load", "update", "update, 100 tests", "show")


def _samples(rng: random.Random, level: float) -> list[float]:
    return [float(f"{level * rng.gauss(1.0, 0.02):.6g}") for _ in range(WINDOWS)]


def nodeids(entries: int) -> list[tuple[str, str]]:
    """(hardware, node id) of ``entries`` tests, half on each hardware key."""
    per_hw = entries // len(HARDWARE)
    return [
        (hw, f"tests/models/test_family_{i // 250:03d}.py::test_infer[bs={i % 8}-model_{i}]")
        for hw in HARDWARE
        for i in range(per_hw)
    ]


def _record(rng: random.Random, hw: str, nodeid: str, runs: int, day: int) -> Record:
    level = rng.uniform(1e-4, 1e-1)
    history = [(f"2026-11-{day - runs + i:02d}", _samples(rng, level)) for i in range(1, runs)]
    return _common.stored_record(
        nodeid, hw, _samples(rng, level), history=history, date=f"2026-11-{day:02d}"
    )


def generate(path: Path, entries: int, runs: int, seed: int = 0) -> list[tuple[str, str]]:
    """Write the baseline; return its keys."""
    rng = random.Random(seed)
    keys = nodeids(entries)
    table: dict[str, dict[str, Record]] = {}
    for hw, nodeid in keys:
        table.setdefault(hw, {})[nodeid] = _record(rng, hw, nodeid, runs, 20)
    path.write_text(baseline_io.dumps(baseline_io.Baseline(table)), encoding="utf-8")
    return keys


def new_runs(keys: list[tuple[str, str]]) -> dict[tuple[str, str], baseline_io.Update]:
    """One new run (dated the next day) of every test, appended to its history."""
    rng = random.Random(1)
    return {
        (hw, nodeid): baseline_io.Update(_record(rng, hw, nodeid, 1, 21)) for hw, nodeid in keys
    }


@contextlib.contextmanager
def reader(module: ModuleType) -> Iterator[None]:
    """Parse baselines with ``module`` (``tomli`` or ``tomllib``) inside the block."""
    original = baseline_io.tomli
    baseline_io.tomli = module
    try:
        yield
    finally:
        baseline_io.tomli = original


def readers() -> dict[str, ModuleType]:
    """The readers to compare: the dependency and, on Python 3.11+, the standard library's."""
    import tomli

    found: dict[str, ModuleType] = {"tomli": tomli}
    with contextlib.suppress(ImportError):
        import tomllib

        found["tomllib"] = tomllib
    return found


def tomli_build(module: ModuleType) -> str:
    """Whether the installed tomli is the compiled (mypyc) build or pure Python."""
    parser = sys.modules.get(f"{module.__name__}._parser")
    where = getattr(parser, "__file__", "") or ""
    kind = "compiled" if where.endswith((".so", ".pyd")) else "pure Python"
    return f"tomli {getattr(module, '__version__', '?')} ({kind})"


def steps(path: Path, keys: list[tuple[str, str]], history: int) -> dict[str, Callable[[], None]]:
    updates = new_runs(keys)
    few = dict(list(updates.items())[:100])

    def load() -> None:
        baseline = baseline_io.load(path)
        for hw, nodeid in keys:
            entry = baseline.get(hw, nodeid)
            assert entry is not None and entry.kwh_per_1000 >= 0
        assert baseline.hardware_for("tests/test_new.py::test_not_recorded") == []

    def update(some: Mapping[tuple[str, str], baseline_io.Update]) -> Callable[[], None]:
        def step() -> None:
            written = baseline_io.update(path, some, history=history, lock_timeout_s=60)
            assert len(written) == len(keys)

        return step

    def show() -> None:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            code = cli.main(["show", str(path)])
        assert code == 0, code

    return {"load": load, "update": update(updates), "update, 100 tests": update(few), "show": show}


def profile(step: Callable[[], None], restore: Callable[[], None], top: int = 25) -> str:
    restore()
    profiler = cProfile.Profile()
    profiler.runcall(step)
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=10, help="recorded runs per entry")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per step and reader")
    parser.add_argument("--profile", choices=STEPS, help="cProfile one step with tomli instead")
    args = parser.parse_args(argv)

    found = readers()
    print(_common.machine())
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "energy-baseline.toml"
        keys = generate(path, args.entries, args.runs)
        pristine = path.read_bytes()

        def restore() -> None:
            path.write_bytes(pristine)

        work = steps(path, keys, args.runs)
        lines = pristine.count(b"\n")
        print(
            f"baseline: {len(keys)} entries x {WINDOWS} windows x {args.runs} runs, "
            f"{len(pristine) / 1e6:.2f} MB, {lines} lines; "
            f"{tomli_build(found['tomli'])}"
        )
        if args.profile:
            with reader(found["tomli"]):
                print(profile(work[args.profile], restore))
            return 0
        variants: dict[str, dict[str, Callable[[], None]]] = {}
        for step_name, step in work.items():
            variants[step_name] = {}
            for name, module in found.items():

                def run(module: ModuleType = module, step: Callable[[], None] = step) -> None:
                    with reader(module):
                        step()

                variants[step_name][name] = run
        print(
            f"\nmedian (min) of {args.repeat} calls per step and reader, interleaved; the "
            "file is restored before each call, untimed\n"
        )
        names = list(found)
        header = " | ".join(f"{n} wall s | {n} CPU s" for n in names)
        ratio = " | tomllib / tomli (wall)" if "tomllib" in found else ""
        print(f"| step | {header}{ratio} | target |")
        print("|---" * (2 + 2 * len(names) + (1 if ratio else 0)) + "|")
        missed = []
        for step_name in STEPS:
            timings = _common.interleaved(variants[step_name], args.repeat, before=restore)
            cells = " | ".join(
                f"{timings[n].median_wall_s:.3f} ({min(timings[n].wall_s):.3f}) | "
                f"{timings[n].median_cpu_s:.3f}"
                for n in names
            )
            ratio_cell = ""
            if "tomllib" in found:
                ratio_cell = (
                    f" | {timings['tomllib'].median_wall_s / timings['tomli'].median_wall_s:.2f}x"
                )
            target = TARGETS_S.get(step_name)
            verdict = "-"
            if target is not None:
                met = timings["tomli"].median_wall_s <= target
                verdict = f"<= {target:g} s: {'met' if met else 'MISSED'}"
                if not met:
                    missed.append(step_name)
            print(f"| {step_name} | {cells}{ratio_cell} | {verdict} |", flush=True)
    print(f"\nafter: {_common.machine()}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
