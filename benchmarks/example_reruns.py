"""Unchanged reruns of the example project against its committed baseline: how many fail?

    python benchmarks/example_reruns.py [--runs 20] [-- extra pytest arguments]

Runs ``pytest example_project --energy-report`` (as .ci/run does) ``--runs`` times, each in
a fresh subprocess from the repository root with this checkout first on ``PYTHONPATH``, and
prints one row per run (outcome, the pytest summary, wall seconds) and the total. With the
example's deterministic ``roofline`` meter and its 1% tolerance, no run should fail, and
every test should report the same kWh/1000 in every run; the script checks both, and that
the committed baseline file is left unchanged. It exits with status 1 if any run failed,
any figure differed between runs, or the baseline changed.

Arguments after ``--`` go to pytest, e.g. ``-- --energy-target=A100-SXM-80GB`` (then every
test reports "new": the committed baseline is for the default target). With a meter that
is not deterministic (``-- --energy-meter=codecarbon``), pass ``--allow-drift`` so that
figures moving between runs are reported but do not set the exit status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common

ROOT = _common.ROOT
EXAMPLE = ROOT / "example_project"
BASELINE = EXAMPLE / "energy-baseline.toml"
SUMMARY = re.compile(r"=+ (.*\d+ (?:passed|failed|error).*?) in [\d.]+s")


@dataclass
class Run:
    number: int
    returncode: int
    wall_s: float
    summary: str
    verdicts: dict[str, str] = field(default_factory=dict)
    kwh_per_1000: dict[str, float] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return "passed" if self.returncode == 0 else f"FAILED (exit {self.returncode})"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_once(number: int, python: str, extra: list[str], workdir: Path) -> Run:
    report = workdir / f"run-{number}.json"
    command = [
        python,
        "-m",
        "pytest",
        "example_project",
        "--energy-report",
        "-p",
        "no:cacheprovider",
        f"--energy-json={report}",
        *extra,
    ]
    env = _common.child_env()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    output = done.stdout + done.stderr
    found = SUMMARY.findall(output)
    run = Run(number, done.returncode, wall_s, found[-1] if found else "no pytest summary")
    if report.is_file():
        for test in json.loads(report.read_text())["tests"]:
            run.verdicts[test["nodeid"]] = test["verdict"]
            if test.get("kwh_per_1000") is not None:
                run.kwh_per_1000[test["nodeid"]] = test["kwh_per_1000"]
    if done.returncode != 0:
        log = workdir / f"run-{number}.log"
        log.write_text(output)
        print(f"run {number} failed; its output is in {log}", file=sys.stderr)
    return run


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="number of reruns (default 20)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter with pytest-energy's dependencies"
    )
    parser.add_argument(
        "--keep", type=Path, help="folder for the JSON reports and failed runs' logs"
    )
    parser.add_argument(
        "--allow-drift",
        action="store_true",
        help="figures that differ between runs do not fail the script (non-deterministic meters)",
    )
    options = parser.parse_args(args)
    if options.runs < 1:
        parser.error("--runs must be at least 1")

    before = digest(BASELINE)
    workdir = options.keep or Path(tempfile.mkdtemp(prefix="example-reruns-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"pytest example_project --energy-report, {options.runs} runs, from {ROOT}")
    print(f"extra pytest arguments: {' '.join(extra) or '(none)'}\n")
    print("| run | outcome | pytest summary | wall s |")
    print("|---:|---|---|---:|")
    runs: list[Run] = []
    for number in range(1, options.runs + 1):
        run = run_once(number, options.python, extra, workdir)
        runs.append(run)
        print(f"| {number} | {run.outcome} | {run.summary} | {run.wall_s:.1f} |", flush=True)

    failed = [run.number for run in runs if run.returncode != 0]
    walls = sorted(run.wall_s for run in runs)
    figures: dict[str, set[float]] = {}
    verdicts: dict[str, set[str]] = {}
    for run in runs:
        for nodeid, kwh in run.kwh_per_1000.items():
            figures.setdefault(nodeid, set()).add(kwh)
        for nodeid, verdict in run.verdicts.items():
            verdicts.setdefault(nodeid, set()).add(verdict)
    moving = {nodeid: values for nodeid, values in figures.items() if len(values) > 1}
    baseline_changed = digest(BASELINE) != before

    print(f"\ntotal: {len(runs)} runs, {len(failed)} failed{f' (runs {failed})' if failed else ''}")
    print(
        f"wall s per run: median {walls[len(walls) // 2]:.1f}, "
        f"min {walls[0]:.1f}, max {walls[-1]:.1f}"
    )
    print(
        f"energy tests: {len(figures)}; verdicts seen: "
        f"{', '.join(sorted(set().union(*verdicts.values()))) if verdicts else '(none)'}"
    )
    if moving:
        print("figures that differed between runs:")
        for nodeid, values in sorted(moving.items()):
            print(f"  {nodeid}: {', '.join(f'{v:.6g}' for v in sorted(values))}")
    else:
        print("every test reported the same kWh/1000 in every run")
    print(f"committed baseline {'CHANGED' if baseline_changed else 'unchanged'}: {BASELINE}")
    print(f"JSON reports in {workdir}")
    drifted = bool(moving) and not options.allow_drift
    return 1 if failed or drifted or baseline_changed else 0


if __name__ == "__main__":
    sys.exit(main())
