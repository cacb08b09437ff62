"""The ``codecarbon`` meter: an estimate from CPU time and CodeCarbon's CPU power table.

For machines with no energy sensor, CI runners included. The arithmetic is that of
CodeCarbon's process tracking mode (TDP times sockets, shared over logical CPUs, charged per
CPU-second), computed from CPU time when read instead of by a sampling thread::

    energy_j = cpu_s * tdp_w * packages / logical_cpus

``cpu_s`` is the CPU time of this process, all threads (``time.process_time()``), plus the
CPU time of child processes that have exited and been waited for (the ``children_*``
fields of ``os.times()``). Children still running, and processes that are not our
descendants, are not counted. A busy neighbour therefore does not move the figure, but
work handed to a still-running worker process is missed until that worker is reaped.

``tdp_w`` is the thermal design power of one CPU package from ``cpu_power.csv``, the table
that ships in the ``codecarbon`` package. Only that data file is read, found with
``importlib.util.find_spec``. CodeCarbon itself is never imported, and its
``EmissionsTracker`` (threads, files, network) is never built. A CPU that is not in the
table gets CodeCarbon's fallback of 4 W per logical CPU, and ``provenance`` says so.

This is a crude model. It ignores frequency scaling, idle power, memory and GPUs. It is
good for catching relative regressions on identical CI machines, not for absolute figures.
"""

from __future__ import annotations

import csv
import functools
import importlib
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import ConfigError, CounterWentBackwards, MeterUnavailable
from .rapl import cpu_model_name

NAME = "codecarbon"
#: This process's own CPU time is precise (CLOCK_PROCESS_CPUTIME_ID), but the children's
#: CPU time from ``os.times()`` moves in clock ticks of 10 ms (USER_HZ=100). Windows shorter
#: than that are dominated by the rounding.
UPDATE_PERIOD_S = 0.01
#: CodeCarbon's fallback for a CPU it cannot find in its table: 4 W per logical CPU
#: (``codecarbon.core.cpu.DEFAULT_POWER_PER_CORE``; a test checks the two agree).
DEFAULT_W_PER_LOGICAL_CPU = 4.0
INSTALL_FIX = "pip install 'pytest-energy[codecarbon]'"
_TABLE = ("data", "hardware", "cpu_power.csv")
_NOISE = re.compile(r"\((?:r|tm)\)|[®™]|@\s*[\d.]+\s*[gm]hz")
_TOKEN = re.compile(r"[a-z0-9+]+")
_CPU_TIME = "process CPU time (with waited-for children)"


# -- CodeCarbon's CPU power table ----------------------------------------------------------


def _table_path() -> Path:
    """``cpu_power.csv`` inside the installed codecarbon package, without importing it."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise MeterUnavailable(
            NAME,
            "the codecarbon package is not installed, and this meter reads its CPU power table.",
            INSTALL_FIX,
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*_TABLE)
        if path.is_file():
            return path
    raise MeterUnavailable(
        NAME,
        f"the installed codecarbon package has no {'/'.join(_TABLE)}, so CPU power cannot be "
        "looked up.",
        f"install a release that ships the table: {INSTALL_FIX}",
    )


def _tokens(cpu_name: str) -> frozenset[str]:
    """Lower-case words of a CPU name, without (R), (TM) and clock speed."""
    return frozenset(_TOKEN.findall(_NOISE.sub(" ", cpu_name.lower())))


@functools.lru_cache(maxsize=4)
def _load_table(path: Path) -> tuple[tuple[str, frozenset[str], float], ...]:
    rows: list[tuple[str, frozenset[str], float]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header: Name,TDP
        for row in reader:
            if len(row) < 2:
                continue
            try:
                tdp_w = float(row[1])
            except ValueError:
                continue
            name = row[0].strip()
            tokens = _tokens(name)
            if tokens and tdp_w > 0:
                rows.append((name, tokens, tdp_w))
    return tuple(rows)


def match_cpu_power(cpu_model: str) -> tuple[str, float] | None:
    """The entry of CodeCarbon's table for ``cpu_model``: ``(table name, TDP in W)``.

    Names are compared as sets of lower-case words, ignoring "(R)", "(TM)" and "@ 2.40GHz".
    An entry matches when all its words appear in ``cpu_model``, so
    "13th Gen Intel(R) Core(TM) i5-1335U" finds "Intel Core i5-1335U". The most specific
    match (the most words) wins. Several equally specific matches with different TDPs are
    ambiguous and give ``None``, as does no match. Raises :class:`MeterUnavailable` when
    codecarbon is not installed.
    """
    model = _tokens(cpu_model)
    if not model:
        return None
    best: list[tuple[str, float]] = []
    best_size = 0
    for name, tokens, tdp_w in _load_table(_table_path()):
        if tokens == model:
            return name, tdp_w
        if tokens <= model:
            if len(tokens) > best_size:
                best, best_size = [(name, tdp_w)], len(tokens)
            elif len(tokens) == best_size:
                best.append((name, tdp_w))
    if not best or len({tdp_w for _, tdp_w in best}) > 1:
        return None
    return best[0]


def cpu_tdp_w(cpu_model: str, *, logical_cpus: int | None = None) -> tuple[float, bool]:
    """TDP in watts for ``cpu_model``, and whether CodeCarbon's table has the model.

    Found: the table's TDP, which is per CPU package. Not found: CodeCarbon's fallback of
    4 W per logical CPU times ``logical_cpus`` (default ``os.cpu_count()``), which covers
    the whole machine. Raises :class:`MeterUnavailable` when codecarbon is not installed.
    """
    match = match_cpu_power(cpu_model)
    if match is not None:
        return match[1], True
    cpus = logical_cpus if logical_cpus is not None else (os.cpu_count() or 1)
    return DEFAULT_W_PER_LOGICAL_CPU * cpus, False


# -- this machine ----------------------------------------------------------------------------


def _detect_cpu_model() -> str:
    """``model name`` from /proc/cpuinfo; py-cpuinfo elsewhere (slower: it may spawn a process)."""
    try:
        model = cpu_model_name(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model = None
    if model:
        return model
    try:
        cpuinfo = importlib.import_module("cpuinfo")  # py-cpuinfo, a codecarbon dependency
        brand = cpuinfo.get_cpu_info().get("brand_raw")
    except Exception:  # a missing or failing probe leaves the model unknown
        brand = None
    return " ".join(str(brand).split()) if brand else "unknown CPU"


def _detect_packages() -> int:
    """Distinct ``physical id`` values in /proc/cpuinfo; 1 when it does not say."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    ids = {
        value.strip()
        for key, sep, value in (line.partition(":") for line in text.splitlines())
        if sep and key.strip() == "physical id"
    }
    return max(len(ids), 1)


def process_cpu_s() -> float:
    """CPU seconds of this process (all threads) plus its exited, waited-for children."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _watts(value: float) -> str:
    return f"{value:g} W"


class CodeCarbonMeter:
    """Estimated CPU energy of this process: CPU time times a share of the CPU's TDP.

    Keyword arguments override detection, for tests and for machines that misreport:
    ``cpu_model`` (default: /proc/cpuinfo or py-cpuinfo), ``logical_cpus`` (default
    ``os.cpu_count()``), ``packages`` (CPU sockets, default: distinct physical ids in
    /proc/cpuinfo), ``process_time`` (CPU seconds so far, default :func:`process_cpu_s`).

    :meth:`read` returns ``{"cpu:estimate": joules}`` for the CPU time used since the
    process started.
    """

    name: str = NAME
    estimated: bool = True
    update_period_s: float = UPDATE_PERIOD_S
    #: The estimate follows this process's own CPU time, which other processes cannot
    #: disturb, so its windows need no inter-process device lock.
    devices: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        cpu_model: str | None = None,
        logical_cpus: int | None = None,
        process_time: Callable[[], float] | None = None,
        packages: int | None = None,
    ) -> None:
        _table_path()  # fails first and fast when codecarbon is missing
        self.cpu_model: str = cpu_model or _detect_cpu_model()
        self.logical_cpus: int = logical_cpus if logical_cpus is not None else (os.cpu_count() or 1)
        self.packages: int = packages if packages is not None else _detect_packages()
        if self.logical_cpus < 1 or self.packages < 1:
            raise ConfigError(
                f"meter {NAME!r}: logical_cpus ({self.logical_cpus}) and packages "
                f"({self.packages}) must be at least 1"
            )
        self._process_time = process_time or process_cpu_s
        self._last_cpu_s = 0.0

        match = match_cpu_power(self.cpu_model)
        self.tdp_found: bool = match is not None
        self.tdp_w: float
        self.power_per_cpu_w: float
        cpus = _plural(self.logical_cpus, "logical CPU")
        if match is not None:
            table_name, self.tdp_w = match
            self.power_per_cpu_w = self.tdp_w * self.packages / self.logical_cpus
            sockets = f" * {self.packages} packages" if self.packages > 1 else ""
            source = f"CodeCarbon {_version()} cpu_power table: {table_name}"
            model = f"{_CPU_TIME} * {_watts(self.tdp_w)} TDP{sockets} / {cpus} ({source})"
        else:
            # CodeCarbon's fallback is machine-wide: 4 W for every logical CPU.
            self.tdp_w = DEFAULT_W_PER_LOGICAL_CPU * self.logical_cpus
            self.power_per_cpu_w = DEFAULT_W_PER_LOGICAL_CPU
            model = (
                f"{_CPU_TIME} * {_watts(self.tdp_w)} / {cpus} (CPU {self.cpu_model!r} not in "
                f"CodeCarbon {_version()}'s cpu_power table; assumed {_watts(self.tdp_w)}, its "
                f"default of {_watts(DEFAULT_W_PER_LOGICAL_CPU)} per logical CPU)"
            )
        self.provenance: str = f"estimated: {model}; GPU, DRAM and idle power not included"
        sockets_hw = f" x{self.packages}" if self.packages > 1 else ""
        # The logical CPU count is part of the model, so runners of different sizes differ.
        self.hardware: str = f"{self.cpu_model}{sockets_hw}, {cpus} (no sensor)"

    def read(self) -> dict[str, float]:
        """Estimated joules since the process started; never decreases."""
        cpu_s = float(self._process_time())
        if cpu_s < self._last_cpu_s:
            raise CounterWentBackwards(
                f"process CPU time went backwards from {self._last_cpu_s} s to {cpu_s} s"
            )
        self._last_cpu_s = cpu_s
        return {"cpu:estimate": cpu_s * self.power_per_cpu_w}

    def close(self) -> None:
        """Nothing to release: no threads, files or handles are held."""


def thread_warning(modules: Mapping[str, object] | None = None) -> str | None:
    """A one-paragraph warning when torch runs more than one intra-op thread, else None.

    Looks only at ``modules`` (default ``sys.modules``): it never imports torch. Call it
    once per session when the CPU-time estimate is in use.
    """
    torch = (sys.modules if modules is None else modules).get("torch")
    get_num_threads = getattr(torch, "get_num_threads", None)
    if not callable(get_num_threads):
        return None
    try:
        threads = int(get_num_threads())
    except Exception:
        return None
    if threads <= 1:
        return None
    return (
        f"torch runs {threads} intra-op threads, and the {NAME!r} estimate counts CPU time: "
        "on a shared or small runner, threads that spin-wait for their peers count as work, "
        "so the figures follow scheduling noise more than the model (a 2x bigger "
        "torch.nn.Linear can measure cheaper than the original; see docs/reliability.md). "
        "Fix: call torch.set_num_threads(1) in your conftest.py (or set OMP_NUM_THREADS=1), "
        "or use a meter that models the work, --energy-meter=roofline."
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codecarbon")
    except PackageNotFoundError:
        return "(unknown version)"
