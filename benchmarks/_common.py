"""What the scripts in benchmarks/ share; not a benchmark itself.

Every script starts with ``import _common`` (a script's own folder is first on
``sys.path`` when it runs), which makes ``pytest_energy`` importable from this checkout
when it is not installed, without importing it. ``tests/benchmark_scripts.py`` imports
the scripts the same way.

Also here: the environment and clean-up of child processes, where the tracebacks in a
child's output come from, A/B interleaved timing, a one-line description of the machine,
and baseline records of a given shape.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_energy.record import Record

ROOT = Path(__file__).resolve().parents[1]
#: The example project, whose model configs the roofline scripts price (never copied).
EXAMPLE = ROOT / "example_project"

# Found, not imported: a script that runs pytest in-process must not import the package
# before pytest does (pytest could then not rewrite its asserts, and warns).
if importlib.util.find_spec("pytest_energy") is None:  # a checkout, not installed
    sys.path.insert(0, str(ROOT))
_SPEC = importlib.util.find_spec("pytest_energy")
assert _SPEC is not None and _SPEC.origin is not None, "pytest_energy not found"
#: Where the package that scripts import lives: child processes must import the same one.
PACKAGE_ROOT = Path(_SPEC.origin).resolve().parents[1]


# -- child processes ------------------------------------------------------------------------


def child_env(*extra_paths: str, pycache: Path | None = None) -> dict[str, str]:
    """The environment for a child Python: this checkout's package first on ``PYTHONPATH``
    (then ``extra_paths``), and no ``PYTEST_ADDOPTS``/``PYTEST_PLUGINS`` from the caller.

    ``pycache``: where bytecode goes (``PYTHONPYCACHEPREFIX``), so that repeated runs find
    it, as they would with the package installed, and nothing is written into the checkout.
    """
    drop = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    paths = [str(PACKAGE_ROOT), *extra_paths, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


#: How long a signalled child may take to exit before it is killed outright.
CHILD_GRACE_S = 60.0


def reap(proc: subprocess.Popen[str], grace_s: float = CHILD_GRACE_S) -> bool:
    """Wait for ``proc`` to exit; after ``grace_s`` kill it. ``False`` when it had to be
    killed: a child is never left running, whatever the signal and the machine's load."""
    try:
        proc.wait(timeout=grace_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def spin(seconds: float) -> None:
    """Wait without giving up the CPU: on a busy machine sleep() can oversleep a whole write."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


# -- tracebacks in a child's output ----------------------------------------------------------

TRACEBACK = "Traceback (most recent call last)"
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.MULTILINE)
_OURS = f"{os.sep}pytest_energy{os.sep}"


def short_frame(frame: tuple[str, str, str]) -> str:
    """A traceback frame (file, line, function) as ``file:line in function``, the file
    from the package on."""
    file, line, function = frame
    parts = Path(file).parts
    if "pytest_energy" in parts:
        file = "/".join(parts[len(parts) - 1 - parts[::-1].index("pytest_energy") :])
    elif "site-packages" in parts:
        file = "/".join(parts[len(parts) - parts[::-1].index("site-packages") :])
    elif "lib" in parts:  # the standard library: python3.X/module.py
        file = "/".join(parts[len(parts) - parts[::-1].index("lib") :])
    return f"{file}:{line} in {function}"


def traceback_origins(output: str) -> list[str]:
    """Where each raw traceback in ``output`` was raised: the innermost pytest_energy frame
    if there is one ("pytest-energy: ..."), else the innermost hook implementation, the
    frame that pluggy called ("hook: ..."), else the innermost frame ("outside any
    hook: ...")."""
    found = []
    for block in output.split(TRACEBACK)[1:]:
        frames = FRAME.findall(block)
        ours = [f for f in frames if _OURS in f[0]]
        hooks = [
            frame
            for caller, frame in itertools.pairwise(frames)
            if caller[0].endswith(f"pluggy{os.sep}_execution.py") and "pluggy" not in frame[0]
        ]
        where = (ours or hooks or frames or [("(no frame)", "0", "?")])[-1]
        kind = "pytest-energy" if ours else "hook" if hooks else "outside any hook"
        found.append(f"{kind}: {short_frame(where)}")
    return found


def innermost_frames(output: str) -> list[str]:
    """The innermost frame of each traceback in ``output``, and the pytest_energy frame
    that led there, as ``file:line in function (from file:line in function)``."""
    found = []
    for block in output.split(TRACEBACK)[1:]:
        frames = FRAME.findall(block)
        if frames:
            ours = [f for f in frames if _OURS in f[0]]
            via = f" (from {short_frame(ours[-1])})" if ours and ours[-1] != frames[-1] else ""
            found.append(short_frame(frames[-1]) + via)
    return found


# -- timing ---------------------------------------------------------------------------------


@dataclass
class Timings:
    """Wall and CPU seconds of one variant, one entry per repetition."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def median_wall_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s)


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    before: Callable[[], object] | None = None,
) -> dict[str, Timings]:
    """Time each variant ``repeats`` times, interleaved A B B A ..., so that a change of the
    machine's load hits every variant alike. ``before`` runs untimed before every call."""
    names = list(variants)
    result = {name: Timings() for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            if before is not None:
                before()
            t0, c0 = time.perf_counter(), time.process_time()
            variants[name]()
            result[name].wall_s.append(time.perf_counter() - t0)
            result[name].cpu_s.append(time.process_time() - c0)
    return result


def machine() -> str:
    """The machine and software, and the load average now: every table prints it."""
    import pytest_energy

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.platform()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}, pytest-energy {pytest_energy.__version__} from "
        f"{PACKAGE_ROOT}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


# -- records --------------------------------------------------------------------------------


def stored_record(
    nodeid: str,
    hardware: str,
    samples: Sequence[float],
    *,
    meter: str = "nvml",
    inferences: int = 64,
    tokens: int | None = None,
    history: Sequence[tuple[str, Sequence[float]]] = (),
    date: str = "2026-12-01",
    version: str = "0.3.0",
) -> Record:
    """A baseline entry: ``samples`` are the latest run's windows (recorded on ``date``),
    ``history`` the earlier runs as (date, windows), oldest first."""
    from pytest_energy.record import Provenance, Record, RunSummary, Work

    runs = [RunSummary.of(windows, day) for day, windows in history]
    runs.append(RunSummary.of(samples, date))
    return Record(
        nodeid=nodeid,
        provenance=Provenance(meter=meter, hardware=hardware, estimated=False),
        samples=tuple(samples),
        work=Work(inferences, tokens),
        runs=tuple(runs),
        version=version,
    ).stored()


def example_models() -> Any:
    """The example project's ``service.models``: its configs at each size, as the example
    builds them (importing it needs torch)."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    from service import models

    return models
