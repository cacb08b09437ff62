"""Kill processes that are writing the baseline, and check that the file is never a mix.

Two experiments on ``pytest_energy.baseline.update``, the function behind
``--energy-update-baseline`` (``interrupt_pytest.py`` sends SIGINTs to whole pytest runs):

**Kill loop** (``--kills N``). A child process rewrites one baseline over and over,
alternating between two contents, A and B, whose entries have the same node ids and a
5-run history but differ in every figure. The parent sends it a signal (SIGKILL by
default), then checks the file: its bytes must be exactly A's or B's serialisation, and it
must load. Half the kills come after a random delay of up to about three update() calls
("uniform"); the other half wait until the child's temporary file appears and then come
within about the time a write takes ("targeted"), so that enough kills land between the
first byte written and the rename. After each kill the parent counts the temporary files
left beside the baseline (``.<name>.*.tmp``): a SIGKILL (or an unhandled SIGTERM) inside a
write leaves one, which the next ``update()`` deletes; a SIGINT must leave none, and for
one that does, the child's traceback says where it landed.

**Race** (``--race N``). Two processes each add many entries with distinct node ids to the
same baseline at the same time. With ``update()`` (and its lock) every entry of both must
be there at the end. The control writers do the same read, merge and atomic write without
the lock (``load``, ``Baseline.merged``, ``fileio.atomic_write_text``): they lose entries,
which shows that the check can see a loss.

Usage::

    python benchmarks/kill_loop.py --kills 200                # SIGKILL at random points
    python benchmarks/kill_loop.py --kills 100 --signal INT   # or TERM
    python benchmarks/kill_loop.py --race 200                 # two writers, lock vs no lock

The exit status is 1 when a kill left a corrupted, missing or unloadable baseline or an
unexpected file, a SIGINT left a temporary file, or the locked race lost an entry.
``tests/test_reliability.py`` runs short versions of both.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import _common

from pytest_energy import baseline as baseline_io
from pytest_energy.baseline import Baseline
from pytest_energy.errors import BaselineError
from pytest_energy.fileio import atomic_write_text
from pytest_energy.record import Record

HARDWARE = "kill-loop rig x1"
BASELINE_NAME = "energy-baseline.toml"
SAMPLES_PER_ENTRY = 8
HISTORY = 5
Content = Mapping[str, Mapping[str, Record]]
Updates = dict[tuple[str, str], baseline_io.Update]


# -- the two contents -------------------------------------------------------------------------


def node_id(index: int) -> str:
    """A node id with the characters that need quoting in TOML keys."""
    return f'tests/test_model_{index % 7}.py::test_infer[batch={index}-"q\'s"-ü]'


def content(level: float, entries: int, *, first: int = 0) -> dict[str, dict[str, Record]]:
    """``entries`` baseline entries whose samples all sit near ``level``, each with a
    :data:`HISTORY`-run history."""
    tests = {}
    for index in range(first, first + entries):

        def samples(run: int, index: int = index) -> list[float]:
            return [level + index * 1e-6 + run * 1e-7 + k * 1e-9 for k in range(SAMPLES_PER_ENTRY)]

        history = [(f"2026-11-{20 + run:02d}", samples(run)) for run in range(HISTORY - 1)]
        tests[node_id(index)] = _common.stored_record(
            node_id(index),
            HARDWARE,
            samples(HISTORY),
            meter="kill-loop",
            tokens=2048 if index % 2 else None,
            history=history,
            version="kill-loop",
        )
    return {HARDWARE: tests}


def contents(entries: int) -> tuple[Content, Content]:
    """A and B: the same node ids, different figures everywhere."""
    return content(0.001, entries), content(0.002, entries)


def as_updates(entries: Content) -> Updates:
    """Entries as one run's updates that set each entry (history included) anew."""
    return {
        (hw, nodeid): baseline_io.Update(record, replace_history=True)
        for hw, tests in entries.items()
        for nodeid, record in tests.items()
    }


def _update(path: Path, entries: Content) -> None:
    baseline_io.update(path, as_updates(entries), history=HISTORY, lock_timeout_s=60)


def serialised(entries: Content) -> bytes:
    """The exact bytes ``update()`` writes when the file holds only these entries."""
    return baseline_io.dumps(Baseline(entries)).encode("utf-8")


def _write(path: Path, entries: Content) -> None:
    path.write_bytes(serialised(entries))


def temp_files(directory: Path, name: str = BASELINE_NAME) -> set[str]:
    """The temporary files of writers of ``name`` in ``directory``."""
    prefix = f".{name}."
    with os.scandir(directory) as found:
        return {e.name for e in found if e.name.startswith(prefix) and e.name.endswith(".tmp")}


def wait_for_new_temp(directory: Path, known: set[str], timeout_s: float) -> bool:
    """Poll (busily: a write lasts milliseconds) until a temporary file not in ``known`` exists."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if temp_files(directory) - known:
            return True
    return False


# -- child processes --------------------------------------------------------------------------


def _child_rewrite(path: Path, entries: int) -> None:
    """Rewrite ``path`` forever, alternating A and B (starting with the one not there)."""
    a, b = contents(entries)
    order = (b, a) if path.read_bytes() == serialised(a) else (a, b)
    print("ready", flush=True)
    while True:
        for updates in order:
            _update(path, updates)


def _child_writer(path: Path, prefix: str, updates: int, use_lock: bool) -> None:
    """Add ``updates`` entries named ``<prefix>::test_<k>``, one write each: through
    ``update()`` (locked) or, for the control, the same steps without the lock."""
    print("ready", flush=True)
    sys.stdin.readline()  # "go": both writers start together
    for k in range(updates):
        nodeid = f"{prefix}::test_{k}"
        record = _common.stored_record(nodeid, HARDWARE, [0.001 * (k + 1)], meter="race")
        change = {(HARDWARE, nodeid): baseline_io.Update(record)}
        if use_lock:
            baseline_io.update(path, change, history=HISTORY, lock_timeout_s=60)
        else:
            merged = baseline_io.load(path).merged(change, history=HISTORY)
            atomic_write_text(path, baseline_io.dumps(merged))


def _spawn(
    *args: str, stdin: int | None = None, stderr: Path | None = None
) -> subprocess.Popen[str]:
    """Start this script as a child (``stderr``: where its error output goes) and wait for
    its "ready"."""
    with open(stderr or os.devnull, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_common.child_env(),
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError(f"child {args} did not start (said {line!r})")
    return proc


# -- kill loop --------------------------------------------------------------------------------


@dataclass
class KillLoopResult:
    kills: int
    signal_name: str
    entries: int
    file_bytes: int
    update_s: float
    write_s: float
    max_delay_s: float
    outcomes: Counter[str] = field(default_factory=Counter)
    """After each kill: "A", "B", "corrupted" (bytes of neither) or "missing"."""
    load_errors: list[str] = field(default_factory=list)
    kills_by_mode: Counter[str] = field(default_factory=Counter)
    left_temp_by_mode: Counter[str] = field(default_factory=Counter)
    """Kills after which a new ``.tmp`` file was there: the kill landed inside a write and
    the writer did not remove its file (the next ``update()`` deletes it)."""
    left_temp_where: list[str] = field(default_factory=list)
    """For each SIGINT that left a file: where the child's traceback says it was."""
    stray_files: list[str] = field(default_factory=list)
    lock_file: bool = False
    update_after_kills_ok: bool = False
    temp_files_after_update: int = 0
    forced: int = 0
    """Children that outlived the signal by CHILD_GRACE_S (SIGINT on a loaded machine) and
    were killed with SIGKILL, so that none is left running."""

    @property
    def corrupted(self) -> int:
        return self.outcomes["corrupted"] + self.outcomes["missing"]

    @property
    def left_temp(self) -> int:
        return sum(self.left_temp_by_mode.values())

    def lines(self) -> list[str]:
        by_mode = ", ".join(
            f"{mode} {self.kills_by_mode[mode]} ({self.left_temp_by_mode[mode]} left a .tmp file)"
            for mode in ("uniform", "targeted")
        )
        return [
            f"kills: {self.kills} with SIG{self.signal_name}: {by_mode}",
            f"  uniform = random delay of 0 to {self.max_delay_s * 1000:.0f} ms (one update() "
            f"took {self.update_s * 1000:.0f} ms here); targeted = 0 to "
            f"{self.write_s * 1000:.1f} ms after the temporary file appeared",
            f"baseline: {self.entries} entries with {HISTORY} runs each, {self.file_bytes} "
            "bytes per content",
            f"file after each kill: A {self.outcomes['A']}, B {self.outcomes['B']}, "
            f"corrupted {self.outcomes['corrupted']}, missing {self.outcomes['missing']}, "
            f"failed to load {len(self.load_errors)}",
            f"kills that left a temporary file (.{BASELINE_NAME}.*.tmp): {self.left_temp}; "
            f"left after the next update(): {self.temp_files_after_update}",
            *(f"  left by a child interrupted at {where}" for where in self.left_temp_where),
            f"other stray files: {len(self.stray_files)}"
            + (f" ({', '.join(self.stray_files)})" if self.stray_files else ""),
            f"lock file {BASELINE_NAME}.lock present: {'yes' if self.lock_file else 'no'}; "
            f"update() after the kills: {'ok' if self.update_after_kills_ok else 'FAILED'}; "
            f"children killed after the grace time: {self.forced}",
            f"CORRUPTED BASELINES: {self.corrupted}",
        ]


def _time_update(directory: Path, a: Content, b: Content) -> float:
    """Seconds for one update() call in this process."""
    path = directory / "timing.toml"
    _write(path, a)
    t0 = time.perf_counter()
    for updates in (b, a, b, a):
        _update(path, updates)
    update_s = (time.perf_counter() - t0) / 4
    path.unlink()
    path.with_name(path.name + ".lock").unlink()
    return update_s


def _observe_writes(directory: Path, a: Content, entries: int, cycles: int = 4) -> float:
    """Median seconds a rewriting child's temporary file exists, as seen by polling.

    Measured on a child like the ones killed, so it includes this machine's load.
    """
    directory.mkdir()
    path = directory / BASELINE_NAME
    _write(path, a)
    proc = _spawn("--child", str(path), "--entries", str(entries))
    seen: list[float] = []
    try:
        for _ in range(cycles):
            known = temp_files(directory)
            if not wait_for_new_temp(directory, known, timeout_s=30):
                break
            t0 = time.perf_counter()
            new = temp_files(directory) - known
            while new & temp_files(directory):
                pass
            seen.append(time.perf_counter() - t0)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()
    seen.sort()
    return seen[len(seen) // 2] if seen else 0.01


def kill_loop(
    directory: Path,
    kills: int,
    *,
    sig: signal.Signals = signal.SIGKILL,
    entries: int = 400,
    seed: int = 0,
    targeted: float = 0.5,
) -> KillLoopResult:
    """Kill ``kills`` rewriting children with ``sig`` and classify the file after each.

    A fraction ``targeted`` of the kills waits for the child's temporary file first.
    """
    rng = random.Random(seed)
    a, b = contents(entries)
    good = {serialised(a): "A", serialised(b): "B"}
    path = directory / BASELINE_NAME
    update_s = _time_update(directory, a, b)
    write_s = _observe_writes(directory / "calibration", a, entries)
    max_delay_s = 3 * update_s  # uniform kills land anywhere in about three updates
    _write(path, a)
    result = KillLoopResult(
        kills=kills,
        signal_name=sig.name.removeprefix("SIG"),
        entries=entries,
        file_bytes=len(serialised(a)),
        update_s=update_s,
        write_s=write_s,
        max_delay_s=max_delay_s,
    )
    temps = temp_files(directory)
    errors = directory.parent / f"{directory.name}-child.err"
    for _ in range(kills):
        mode = "targeted" if rng.random() < targeted else "uniform"
        proc = _spawn("--child", str(path), "--entries", str(entries), stderr=errors)
        if mode == "targeted" and wait_for_new_temp(directory, temps, timeout_s=30):
            _common.spin(rng.uniform(0.0, write_s))
        else:
            time.sleep(rng.uniform(0.0, max_delay_s))
        proc.send_signal(sig)
        if not _common.reap(proc):
            result.forced += 1
        assert proc.stdout is not None
        proc.stdout.close()
        result.kills_by_mode[mode] += 1
        now = temp_files(directory)
        if now - temps:
            result.left_temp_by_mode[mode] += 1
            if sig == signal.SIGINT:  # the others kill without a traceback
                output = errors.read_text(encoding="utf-8", errors="replace")
                result.left_temp_where += _common.innermost_frames(output) or ["(no traceback)"]
        temps = now
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            result.outcomes["missing"] += 1
            continue
        result.outcomes[good.get(data, "corrupted")] += 1
        try:
            loaded = baseline_io.load(path)
        except BaselineError as exc:
            result.load_errors.append(str(exc))
        else:
            if data in good and loaded != Baseline(a if good[data] == "A" else b):
                result.load_errors.append("loaded entries differ from what was written")
    known = {BASELINE_NAME, BASELINE_NAME + ".lock"} | temps
    result.stray_files = sorted(p.name for p in directory.iterdir() if p.name not in known)
    result.lock_file = (directory / (BASELINE_NAME + ".lock")).exists()
    try:
        _update(path, a)  # the lock of a killed writer must not be stuck
        result.update_after_kills_ok = path.read_bytes() == serialised(a)
    except BaselineError:
        result.update_after_kills_ok = False
    result.temp_files_after_update = len(temp_files(directory))
    errors.unlink(missing_ok=True)
    return result


# -- race ------------------------------------------------------------------------------------


@dataclass
class RaceResult:
    updates_per_writer: int
    use_lock: bool
    present: int
    expected: int
    temp_files: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.expected - self.present

    def line(self) -> str:
        how = "through update() (locked)" if self.use_lock else "WITHOUT the lock (control)"
        return (
            f"2 writers x {self.updates_per_writer} writes {how}: {self.present} of "
            f"{self.expected} entries present, {self.lost} lost, {self.temp_files} temporary "
            f"files left ({self.seconds:.1f} s)"
        )


def race(directory: Path, updates: int, *, use_lock: bool = True) -> RaceResult:
    """Two processes add ``updates`` entries each to one baseline at the same time."""
    path = directory / BASELINE_NAME
    flag = [] if use_lock else ["--no-lock"]
    writers = [
        _spawn(
            "--writer",
            str(path),
            "--prefix",
            prefix,
            "--updates",
            str(updates),
            *flag,
            stdin=subprocess.PIPE,
        )
        for prefix in ("first", "second")
    ]
    t0 = time.perf_counter()
    for proc in writers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    codes = []
    for proc in writers:
        codes.append(proc.returncode if _common.reap(proc, grace_s=600) else -9)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    seconds = time.perf_counter() - t0
    if any(codes):
        raise RuntimeError(f"a writer failed with exit status {codes}")
    loaded = baseline_io.load(path)
    present = sum(
        1
        for prefix in ("first", "second")
        for k in range(updates)
        if loaded.get(HARDWARE, f"{prefix}::test_{k}") is not None
    )
    return RaceResult(
        updates_per_writer=updates,
        use_lock=use_lock,
        present=present,
        expected=2 * updates,
        temp_files=len(temp_files(directory)),
        seconds=seconds,
    )


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="signals to send (default 200)")
    parser.add_argument(
        "--signal", default="KILL", choices=["KILL", "TERM", "INT"], help="default KILL"
    )
    parser.add_argument("--entries", type=int, default=400, help="entries per content")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--race",
        type=int,
        default=0,
        metavar="N",
        help="instead of the kill loop: two writers with N updates each, with and without the lock",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temporary one)")
    # internal: the child processes
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--updates", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-lock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        _child_rewrite(args.child, args.entries)
        return 0
    if args.writer is not None:
        _child_writer(args.writer, args.prefix, args.updates, not args.no_lock)
        return 0

    print(_common.machine())
    with contextlib.ExitStack() as stack:
        directory = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        directory.mkdir(parents=True, exist_ok=True)
        if args.race:
            failed = False
            for use_lock in (True, False):
                run_dir = directory / ("locked" if use_lock else "unlocked")
                run_dir.mkdir()
                result = race(run_dir, args.race, use_lock=use_lock)
                print(result.line())
                failed |= use_lock and (result.lost > 0 or result.temp_files > 0)
            return 1 if failed else 0
        sig = signal.Signals[f"SIG{args.signal}"]
        loop = kill_loop(directory, args.kills, sig=sig, entries=args.entries, seed=args.seed)
        print("\n".join(loop.lines()))
        leftovers = loop.left_temp if sig == signal.SIGINT else 0
        broken = loop.corrupted or loop.load_errors or loop.stray_files or leftovers
        return 1 if broken or not loop.update_after_kills_ok else 0


if __name__ == "__main__":
    sys.exit(main())
