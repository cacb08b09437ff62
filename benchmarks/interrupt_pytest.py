"""SIGINT into ``pytest --energy-update-baseline`` runs: is the baseline whole, is a
temporary file left, and does a raw traceback appear?

Runs ``pytest --energy-update-baseline`` ``--runs`` times on a small generated project (10
energy tests over a deterministic meter, beside a baseline of 300 other entries with a
5-run history, so that every run appends a run to its tests' histories) and sends each run
one SIGINT: a third at a random moment of the whole run ("anywhere", interpreter start-up
included), a third at a random moment after the session started ("session"), a third
just after the baseline's temporary file appeared ("write"). A run that ended before its
signal is run again. After each run it checks that the baseline is the old file or the
whole new one with every history intact, counts leftover temporary files, and reads the
output for a raw traceback (``Traceback (most recent call last)``), ``INTERNALERROR`` or
``Exception ignored``; pytest's own interrupted summary (``!!! KeyboardInterrupt !!!``
and one location line) is the expected ending. The project's conftest stamps pytest's
phases, so each SIGINT is counted in the phase it landed in, and each traceback is traced
to the frame it came from (``_common.traceback_origins``).

Usage::

    python benchmarks/interrupt_pytest.py --runs 100 [--seed N] [--show-output]
    python benchmarks/interrupt_pytest.py --pytest-arg=-p --pytest-arg=no:hypothesispytest

The exit status is 1 when a run left a damaged baseline or a temporary file, or printed a
raw traceback or INTERNALERROR (in any phase). ``tests/test_reliability.py`` runs one
SIGINT in the baseline write.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _common
from kill_loop import (
    BASELINE_NAME,
    HARDWARE,
    HISTORY,
    content,
    serialised,
    temp_files,
    wait_for_new_temp,
)

from pytest_energy import baseline as baseline_io
from pytest_energy.errors import BaselineError
from pytest_energy.record import kwh_per_1000, round_sample

# -- the project -----------------------------------------------------------------------------

PROJECT_TESTS = 10
PROJECT_OTHERS = 300
PHASES_FILE = "phases.log"
#: pytest's phases as the project's conftest stamps them; "start-up" is everything before
#: the conftest is imported (the interpreter, pytest, and the plugins pytest loads).
PHASES = (
    "start-up",
    "conftest imported",
    "configured",
    "session started",
    "collected",
    "tests running",
    "session finishing",
    "terminal summary",
    "unconfiguring",
)

METER = '''\
"""A deterministic meter for benchmarks/interrupt_pytest.py: every read adds 1 J."""


class Meter:
    name = "kill-loop"
    hardware = "kill-loop rig x1"
    estimated = False
    devices = ()  # takes no device lock

    def __init__(self):
        self.total = 0.0

    def read(self):
        self.total += 1.0
        return {"kill-loop:0": self.total}

    def close(self):
        pass
'''

CONFTEST = '''\
"""Stamps pytest's phases for benchmarks/interrupt_pytest.py (time.time(), phase)."""

import os
import time

import pytest

_FD = os.open("phases.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _stamp(phase):
    os.write(_FD, f"{time.time():.6f} {phase}\\n".encode())


_stamp("conftest imported")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    _stamp("configured")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _stamp("session started")


def pytest_collection_finish(session):
    _stamp("collected")


_RUNNING = []


def pytest_runtest_logstart(nodeid, location):
    if not _RUNNING:
        _RUNNING.append(nodeid)
        _stamp("tests running")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    _stamp("session finishing")


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    _stamp("terminal summary")


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    _stamp("unconfiguring")
'''

TESTS = """\
import pytest


@pytest.mark.parametrize("n", range({count}))
def test_model(energy, n):
    energy(lambda: None, inferences=1)
"""

PYTEST_ARGS = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "--energy-update-baseline",
    "--energy-meter=klmeter:Meter",
    "--energy-min-time=0",
    "--energy-rounds=3",
    f"--energy-history={HISTORY}",
    "-q",
)
#: When a run's SIGINT comes: at a random moment of a whole run, of its session, or just
#: after the baseline's temporary file appeared.
MODES = ("anywhere", "session", "write")


def make_project(directory: Path) -> bytes:
    """Write the project; return its baseline's bytes (the tests' entries have a history
    at the level the meter reports, so every test is "ok" and gets one run appended)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "klmeter.py").write_text(METER, encoding="utf-8")
    (directory / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (directory / "test_models.py").write_text(TESTS.format(count=PROJECT_TESTS), encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    entries = content(0.001, PROJECT_OTHERS)[HARDWARE]
    level = round_sample(kwh_per_1000(1.0, 1))  # what the meter gives: 1 J per window
    for n in range(PROJECT_TESTS):
        nodeid = f"test_models.py::test_model[{n}]"
        history = [(f"2026-11-{20 + run:02d}", [level] * 3) for run in range(HISTORY - 1)]
        entries[nodeid] = _common.stored_record(
            nodeid, HARDWARE, [level] * 3, meter="kill-loop", inferences=3, history=history
        )
    data = serialised({HARDWARE: entries})
    (directory / BASELINE_NAME).write_bytes(data)
    return data


@dataclass
class Interrupt:
    """One SIGINT into one pytest run."""

    mode: str
    phase: str
    returncode: int
    baseline: str
    """"old", "new" (the whole new file, histories intact), or what is wrong with it."""
    temp_files: list[str]
    tracebacks: list[str]
    """Where each raw traceback was raised (see :func:`_tracebacks`)."""
    internal_error: bool
    exception_ignored: bool
    interrupted_summary: bool
    output: str = field(repr=False, default="")


@dataclass
class PytestLoopResult:
    runs: int
    run_s: float
    session_s: float
    write_s: float
    interrupts: list[Interrupt] = field(default_factory=list)
    missed: int = 0
    """Runs that ended before their SIGINT was sent (run again, not counted)."""

    @property
    def with_traceback(self) -> list[Interrupt]:
        return [i for i in self.interrupts if i.tracebacks or i.internal_error]

    @property
    def left_temp(self) -> list[Interrupt]:
        return [i for i in self.interrupts if i.temp_files]

    @property
    def bad_baseline(self) -> list[Interrupt]:
        return [i for i in self.interrupts if i.baseline not in ("old", "new")]

    def lines(self) -> list[str]:
        modes = Counter(i.mode for i in self.interrupts)
        out = [
            f"SIGINTs into `pytest --energy-update-baseline` runs: {len(self.interrupts)} "
            f"({', '.join(f'{m} {n}' for m, n in sorted(modes.items()))})",
            f"  one uninterrupted run: {self.run_s:.2f} s, session from {self.session_s:.2f} s, "
            f"baseline write {self.write_s * 1000:.1f} ms ({PROJECT_TESTS} tests, "
            f"{PROJECT_TESTS + PROJECT_OTHERS} entries x {HISTORY} runs); {self.missed} runs "
            "ended before their SIGINT and were run again",
            "",
            "| phase the SIGINT landed in | SIGINTs | pytest's interrupted summary | raw "
            "traceback | INTERNALERROR | temp files left | baseline old / new / bad | exit codes |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for phase in (*PHASES, "baseline write", "(ended before the signal)"):
            hits = [i for i in self.interrupts if i.phase == phase]
            if not hits:
                continue
            baselines = Counter(i.baseline if i.baseline in ("old", "new") else "bad" for i in hits)
            codes = Counter(i.returncode for i in hits)
            out.append(
                f"| {phase} | {len(hits)} | {sum(i.interrupted_summary for i in hits)} | "
                f"{sum(bool(i.tracebacks) for i in hits)} | {sum(i.internal_error for i in hits)} "
                f"| {sum(len(i.temp_files) for i in hits)} | {baselines['old']} / "
                f"{baselines['new']} / {baselines['bad']} | "
                f"{', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))} |"
            )
        out += [
            "",
            f"raw tracebacks or INTERNALERROR: {len(self.with_traceback)}; temporary files "
            f"left: {sum(len(i.temp_files) for i in self.interrupts)}; baselines neither old "
            f"nor new: {len(self.bad_baseline)}; 'Exception ignored' messages: "
            f"{sum(i.exception_ignored for i in self.interrupts)}",
        ]
        where = Counter(f"{i.phase}, {text}" for i in self.with_traceback for text in i.tracebacks)
        for text, n in sorted(where.items()):
            out.append(f"  {n} x traceback in {text}")
        for i in self.bad_baseline:
            out.append(f"  BASELINE after a SIGINT in {i.phase}: {i.baseline}")
        for i in self.left_temp:
            out.append(f"  TEMPORARY FILE after a SIGINT in {i.phase}: {', '.join(i.temp_files)}")
        return out


def _phase_at(stamps: list[tuple[float, str]], moment: float) -> str:
    phase = PHASES[0]
    for stamp, name in stamps:
        if stamp <= moment:
            phase = name
    return phase


def _read_stamps(path: Path) -> list[tuple[float, str]]:
    stamps = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(encoding="utf-8").splitlines():
            stamp, _, name = line.partition(" ")
            stamps.append((float(stamp), name))
    return stamps


def _check_baseline(path: Path, old: bytes, new: bytes) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    if data == old:
        return "old"
    try:
        loaded = baseline_io.load(path)
    except BaselineError as exc:
        return f"does not load: {exc}"
    if data == new:
        return "new"
    # not the calibration run's bytes (none was made, or a date changed at midnight):
    # the histories must still be the old ones with at most one run appended
    before = baseline_io.parse(old.decode("utf-8"))
    for hw, tests in before.entries.items():
        for nodeid, entry in tests.items():
            now = loaded.get(hw, nodeid)
            if now is None:
                return f"lost {nodeid}"
            if now.runs != entry.runs and now.runs[:-1] != entry.runs[-(HISTORY - 1) :]:
                return f"history of {nodeid} damaged"
    return "new"


def _run_pytest(project: Path, log: Path, extra: Sequence[str]) -> subprocess.Popen[str]:
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, *extra],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_common.child_env(str(project)),
        )


def _calibrate(
    project: Path, pristine: bytes, extra: Sequence[str]
) -> tuple[float, float, float, bytes]:
    """Uninterrupted runs: three watched for how long the baseline's temporary file exists
    (the shortest is kept: on a busy machine the polling only adds), then one not watched
    (the busy polling slows a run) for the length of a run and when its session starts.
    Returns those and the baseline the runs write."""
    path = project / BASELINE_NAME
    log = project.parent / "calibration.log"
    lifetimes = []
    for watch in (True, True, True, False):
        path.write_bytes(pristine)
        (project / PHASES_FILE).unlink(missing_ok=True)
        started = time.time()
        proc = _run_pytest(project, log, extra)
        t0 = None
        while watch and proc.poll() is None:
            now = temp_files(project)
            if now and t0 is None:
                t0 = time.perf_counter()
            elif not now and t0 is not None:
                lifetimes.append(time.perf_counter() - t0)
                t0 = None
        proc.wait()
        run_s = time.time() - started
        if proc.returncode != 0:
            output = log.read_text(encoding="utf-8")
            raise RuntimeError(f"the uninterrupted run failed ({proc.returncode}):\n{output}")
    stamps = {name: stamp for stamp, name in _read_stamps(project / PHASES_FILE)}
    new = path.read_bytes()
    if new == pristine:
        raise RuntimeError("the uninterrupted run did not update the baseline")
    path.write_bytes(pristine)
    write_s = min(lifetimes, default=1e-3)  # 1 ms if the polling never saw the file
    return run_s, stamps["session started"] - started, write_s, new


def pytest_loop(
    directory: Path,
    runs: int,
    *,
    seed: int = 0,
    extra: Sequence[str] = (),
    modes: Sequence[str] = MODES,
) -> PytestLoopResult:
    """Pytest runs until ``runs`` SIGINTs were delivered, one per run (a run that ended
    before its signal is run again); the SIGINTs' moments cycle through ``modes``.
    ``extra`` arguments go to every pytest run."""
    rng = random.Random(seed)
    project = directory / "project"
    pristine = make_project(project)
    path = project / BASELINE_NAME
    if set(modes) == {"write"}:  # no timing needed; the new file is checked by its content
        run_s, session_s, write_s, new = 0.0, 0.0, 1e-3, b""
    else:
        run_s, session_s, write_s, new = _calibrate(project, pristine, extra)
    result = PytestLoopResult(runs=runs, run_s=run_s, session_s=session_s, write_s=write_s)
    attempts = 0
    while len(result.interrupts) < runs:
        attempts += 1
        if attempts > 3 * runs + 10:
            raise RuntimeError(f"only {len(result.interrupts)} of {attempts} runs got a SIGINT")
        mode = modes[len(result.interrupts) % len(modes)]
        path.write_bytes(pristine)
        (project / PHASES_FILE).unlink(missing_ok=True)
        log = directory / "run.log"
        proc = _run_pytest(project, log, extra)
        if mode == "anywhere":
            time.sleep(rng.uniform(0.0, run_s))
        elif mode == "session":
            time.sleep(rng.uniform(session_s, run_s))
        elif wait_for_new_temp(project, set(), timeout_s=3 * run_s + 30):
            _common.spin(rng.uniform(0.0, write_s))
        moment = time.time()
        landed_in_write = bool(temp_files(project))
        delivered = proc.poll() is None
        if delivered:
            proc.send_signal(signal.SIGINT)
        _common.reap(proc)
        output = log.read_text(encoding="utf-8", errors="replace")
        log.unlink()
        left = sorted(n for n in os.listdir(project) if n.endswith(".tmp"))
        for name in left:
            (project / name).unlink()
        if not delivered and not left:
            result.missed += 1
            continue
        phase = _phase_at(_read_stamps(project / PHASES_FILE), moment)
        if landed_in_write:
            phase = "baseline write"
        tracebacks = _common.traceback_origins(output)
        result.interrupts.append(
            Interrupt(
                mode=mode,
                phase=phase if delivered else "(ended before the signal)",
                returncode=proc.returncode,
                baseline=_check_baseline(path, pristine, new),
                temp_files=left,
                tracebacks=tracebacks,
                internal_error="INTERNALERROR" in output,
                exception_ignored="Exception ignored" in output,
                interrupted_summary="KeyboardInterrupt !!!" in output,
                output=output,
            )
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="SIGINTs, one per run (100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for every pytest run (e.g. -p no:hypothesispytest)",
    )
    parser.add_argument(
        "--show-output", action="store_true", help="print the output of the runs with a traceback"
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    print(_common.machine())
    with contextlib.ExitStack() as stack:
        directory = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        directory.mkdir(parents=True, exist_ok=True)
        looped = pytest_loop(directory, args.runs, seed=args.seed, extra=args.pytest_arg)
    print("\n".join(looped.lines()))
    for interrupt in looped.with_traceback if args.show_output else ():
        print(f"\n--- output of a run interrupted in {interrupt.phase} ---")
        print(interrupt.output)
    return 1 if looped.with_traceback or looped.left_temp or looped.bad_baseline else 0


if __name__ == "__main__":
    sys.exit(main())
