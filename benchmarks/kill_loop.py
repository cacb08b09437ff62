"""Kill processes that are writing the baseline, and check that the file is never a mix.

Two experiments on ``pytest_energy.baseline.update``, the function behind
``--energy-update-baseline``:

**Kill loop.** A child process rewrites one baseline over and over, alternating between two
large contents, A and B, that share their node ids but differ in every sample. The parent
sends it a signal (SIGKILL by default), then checks the file: its bytes must be exactly A's
or exactly B's serialisation, and it must load. Half the kills come after a random delay of
up to about three update() calls ("uniform"); the other half wait until the child's
temporary file appears and then come within about the time a write takes ("targeted"), so
that enough kills land between the first byte written and the rename. The parent also counts
the files left beside the baseline: ``.<name>.*.tmp`` files from a write that was cut short,
the ``<name>.lock`` file, and anything else (which would be a real stray).

**Race.** Two processes each add many entries with distinct node ids to the same baseline
at the same time. With the ``.lock`` file every entry of both must be there at the end. The
same run without the lock (``locked`` replaced by a no-op in the writers) is the control:
it shows that the check can see lost entries.

Usage::

    python benchmarks/kill_loop.py --kills 200                # SIGKILL at random points
    python benchmarks/kill_loop.py --kills 200 --signal TERM  # or INT (KeyboardInterrupt)
    python benchmarks/kill_loop.py --race 200                 # two writers, lock vs no lock

The exit status is 1 when a kill left a corrupted or missing baseline, or when the locked
race lost an entry. ``tests/test_reliability.py`` runs short versions of both.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_energy import baseline as baseline_io
from pytest_energy.baseline import Baseline, BaselineEntry
from pytest_energy.errors import BaselineError

HARDWARE = "kill-loop rig x1"
BASELINE_NAME = "energy-baseline.toml"
SAMPLES_PER_ENTRY = 8
Updates = Mapping[str, Mapping[str, BaselineEntry]]


# -- the two contents -------------------------------------------------------------------------


def node_id(index: int) -> str:
    """A node id with the characters that need quoting in TOML keys."""
    return f'tests/test_model_{index % 7}.py::test_infer[batch={index}-"q\'s"-ü]'


def content(level: float, entries: int) -> dict[str, dict[str, BaselineEntry]]:
    """``entries`` baseline entries whose samples all sit near ``level``."""
    tests = {}
    for index in range(entries):
        samples = tuple(level + index * 1e-6 + k * 1e-9 for k in range(SAMPLES_PER_ENTRY))
        tests[node_id(index)] = BaselineEntry(
            samples=samples,
            meter="kill-loop",
            estimated=False,
            pytest_energy_version="kill-loop",
            inferences=64,
            tokens=2048 if index % 2 else None,
        )
    return {HARDWARE: tests}


def contents(entries: int) -> tuple[Updates, Updates]:
    """A and B: the same node ids, different samples everywhere."""
    return content(0.001, entries), content(0.002, entries)


def as_updates(entries: Updates) -> Mapping[str, Mapping[str, baseline_io.Update]]:
    """Plain entries as one run's updates that set each entry's level anew."""
    return {
        hw: {nodeid: baseline_io.Update(e, replace_history=True) for nodeid, e in tests.items()}
        for hw, tests in entries.items()
    }


def _update(path: Path, entries: Updates) -> None:
    baseline_io.update(path, as_updates(entries), history=baseline_io.DEFAULT_HISTORY)


def serialised(updates: Updates) -> bytes:
    """The exact bytes ``update()`` writes when the file holds only these entries."""
    return baseline_io.dumps(Baseline(updates)).encode("utf-8")


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
    """Add ``updates`` entries named ``<prefix>::test_<k>``, one ``update()`` call each."""
    if not use_lock:
        # The control experiment. Without the lock the other writer's live temporary file
        # is not stale, so the clean-up that relies on the lock is switched off too.
        baseline_io.locked = _no_lock
        baseline_io._remove_stale_temporaries = lambda path: None
    print("ready", flush=True)
    sys.stdin.readline()  # "go": both writers start together
    for k in range(updates):
        entry = BaselineEntry(
            samples=(0.001 * (k + 1),), meter="race", estimated=False, pytest_energy_version="race"
        )
        _update(path, {HARDWARE: {f"{prefix}::test_{k}": entry}})


@contextlib.contextmanager
def _no_lock(path: Path) -> Iterator[None]:
    yield


def _spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    # the child must import the same pytest_energy as this process
    package_root = str(Path(baseline_io.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
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
    in_write_by_mode: Counter[str] = field(default_factory=Counter)
    """Kills after which a new ``.tmp`` file was left: the kill landed inside a write."""
    temp_files: int = 0
    partial_temp_files: int = 0
    stray_files: list[str] = field(default_factory=list)
    lock_file: bool = False
    update_after_kills_ok: bool = False
    forced: int = 0
    """Children that outlived the signal by CHILD_GRACE_S (SIGINT on a loaded machine) and
    were killed with SIGKILL, so that none is left running."""

    @property
    def corrupted(self) -> int:
        return self.outcomes["corrupted"] + self.outcomes["missing"]

    @property
    def in_write(self) -> int:
        return sum(self.in_write_by_mode.values())

    def lines(self) -> list[str]:
        by_mode = ", ".join(
            f"{mode} {self.kills_by_mode[mode]} ({self.in_write_by_mode[mode]} left a .tmp file, "
            "i.e. died inside a write)"
            for mode in ("uniform", "targeted")
        )
        return [
            f"kills: {self.kills} with SIG{self.signal_name}: {by_mode}",
            f"  uniform = random delay of 0 to {self.max_delay_s * 1000:.0f} ms (one update() "
            f"took {self.update_s * 1000:.0f} ms here); targeted = 0 to "
            f"{self.write_s * 1000:.0f} ms after the temporary file appeared",
            f"baseline: {self.entries} entries, {self.file_bytes} bytes per content",
            f"file after each kill: A {self.outcomes['A']}, B {self.outcomes['B']}, "
            f"corrupted {self.outcomes['corrupted']}, missing {self.outcomes['missing']}, "
            f"failed to load {len(self.load_errors)}",
            f"temporary files left: {self.temp_files} (.{BASELINE_NAME}.*.tmp, "
            f"{self.partial_temp_files} of them partial): each is a write cut short; load() never "
            "reads them and the next update() deletes them under the lock",
            f"other stray files: {len(self.stray_files)}"
            + (f" ({', '.join(self.stray_files)})" if self.stray_files else ""),
            f"lock file {BASELINE_NAME}.lock present: {'yes' if self.lock_file else 'no'}; "
            f"update() after the kills: {'ok' if self.update_after_kills_ok else 'FAILED'}",
            f"CORRUPTED BASELINES: {self.corrupted}",
        ]


def _temp_files(directory: Path) -> set[str]:
    prefix = f".{BASELINE_NAME}."
    with os.scandir(directory) as entries:
        return {e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp")}


#: How long a signalled child may take to exit before it is killed outright.
CHILD_GRACE_S = 60.0


def _reap(proc: subprocess.Popen[str], grace_s: float = CHILD_GRACE_S) -> bool:
    """Wait for ``proc`` to exit; after ``grace_s`` kill it. ``False`` when it had to be
    killed: a child is never left spinning, whatever the signal and the machine's load."""
    try:
        proc.wait(timeout=grace_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def _wait_for_new_temp(directory: Path, known: set[str], timeout_s: float) -> bool:
    """Poll (busily: a write lasts milliseconds) until a temporary file not in ``known`` exists."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if _temp_files(directory) - known:
            return True
    return False


def _time_update(directory: Path, a: Updates, b: Updates) -> float:
    """Seconds for one update() call in this process."""
    path = directory / "timing.toml"
    baseline_io.save(path, Baseline(a))
    t0 = time.perf_counter()
    for updates in (b, a, b, a):
        _update(path, updates)
    update_s = (time.perf_counter() - t0) / 4
    path.unlink()
    path.with_name(path.name + ".lock").unlink()
    return update_s


def _spin(seconds: float) -> None:
    """Wait without giving up the CPU: on a busy machine sleep() can oversleep a whole write."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _observe_writes(directory: Path, a: Updates, entries: int, cycles: int = 4) -> float:
    """Median seconds a rewriting child's temporary file exists, as seen by polling.

    Measured on a child like the ones killed, so it includes this machine's load.
    """
    directory.mkdir()
    path = directory / BASELINE_NAME
    baseline_io.save(path, Baseline(a))
    proc = _spawn("--child", str(path), "--entries", str(entries))
    seen: list[float] = []
    try:
        for _ in range(cycles):
            known = _temp_files(directory)
            if not _wait_for_new_temp(directory, known, timeout_s=30):
                break
            t0 = time.perf_counter()
            new = _temp_files(directory) - known
            while new & _temp_files(directory):
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
    baseline_io.save(path, Baseline(a))
    result = KillLoopResult(
        kills=kills,
        signal_name=sig.name.removeprefix("SIG"),
        entries=entries,
        file_bytes=len(serialised(a)),
        update_s=update_s,
        write_s=write_s,
        max_delay_s=max_delay_s,
    )
    temps = _temp_files(directory)
    for _ in range(kills):
        mode = "targeted" if rng.random() < targeted else "uniform"
        proc = _spawn("--child", str(path), "--entries", str(entries))
        if mode == "targeted" and _wait_for_new_temp(directory, temps, timeout_s=30):
            _spin(rng.uniform(0.0, write_s))
        else:
            time.sleep(rng.uniform(0.0, max_delay_s))
        proc.send_signal(sig)
        if not _reap(proc):
            result.forced += 1
        assert proc.stdout is not None
        proc.stdout.close()
        result.kills_by_mode[mode] += 1
        now = _temp_files(directory)
        if now - temps:
            result.in_write_by_mode[mode] += 1
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
    full = {len(serialised(a)), len(serialised(b))}
    result.temp_files = len(temps)
    result.partial_temp_files = sum(
        1 for name in temps if (directory / name).stat().st_size not in full
    )
    known = {BASELINE_NAME, BASELINE_NAME + ".lock"} | temps
    result.stray_files = sorted(p.name for p in directory.iterdir() if p.name not in known)
    result.lock_file = (directory / (BASELINE_NAME + ".lock")).exists()
    try:
        _update(path, a)  # the lock of a killed writer must not be stuck
        result.update_after_kills_ok = path.read_bytes() == serialised(a)
    except BaselineError:
        result.update_after_kills_ok = False
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
        how = "with the .lock file" if self.use_lock else "WITHOUT the lock (control)"
        return (
            f"2 writers x {self.updates_per_writer} update() calls {how}: {self.present} of "
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
        codes.append(proc.returncode if _reap(proc, grace_s=600) else -9)
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
        temp_files=len(_temp_files(directory)),
        seconds=seconds,
    )


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
                failed |= use_lock and result.lost > 0
            return 1 if failed else 0
        loop = kill_loop(
            directory,
            args.kills,
            sig=signal.Signals[f"SIG{args.signal}"],
            entries=args.entries,
            seed=args.seed,
        )
        print("\n".join(loop.lines()))
        return 1 if loop.corrupted or loop.load_errors or loop.stray_files else 0


if __name__ == "__main__":
    sys.exit(main())
