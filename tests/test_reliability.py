"""Reliability: wrong input, misbehaving meters, and jobs killed halfway (issue 6).

Three groups, each test marked ``@pytest.mark.reliability(group, row)`` so that
``benchmarks/reliability_table.py`` counts it (tests elsewhere carry the marker too):

* ``test_bad_input[<category>/<case>]``: one table, :data:`BAD_INPUTS`. Each case is a
  real pytest run (pytester, in process) with ``--energy-update-baseline`` next to an
  existing, valid baseline: the worst moment for a bad input. It must stop with a clear
  error (cause and fix in the output, no INTERNALERROR) and change no file: every file in
  the run's directory keeps its bytes, and no temporary or lock file appears. The cases
  that ``tests/test_plugin.py`` already runs are not repeated here; the table script counts
  those too. ``test_bad_<category>_*`` tests are bad inputs that need a unit-level setup.
* ``test_fault_*``: a meter that fails, a counter that goes backwards, a GPU that is lost,
  an interrupted or killed baseline write, two concurrent writers.
* Inputs that look odd but are valid and must work: a missing baseline, node ids with
  quotes, brackets, Unicode and parametrize ids, markers on several levels.

A case with ``bug=...`` is a package bug, expected to fail (strict xfail) until it is fixed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import load_script

import pytest_energy.baseline as baseline_io
from pytest_energy.baseline import Baseline, dumps, load
from pytest_energy.errors import BaselineError
from pytest_energy.record import Provenance, Record, Work

TESTS = Path(__file__).resolve().parent
BASELINE = "energy-baseline.toml"
HW = "test-rig"

#: Every in-process run. ``no:hypothesispytest``: hypothesis' plugin re-imports most of
#: hypothesis in each in-process run (pytester restores ``sys.modules``), 1-3 s a run.
BASE_ARGS = (
    "--energy-meter=fakemeter:ScriptedMeter",
    "--energy-min-time=0",
    "--energy-rounds=3",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
)

PASSING = """
def test_ok(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
"""


def as_updates(*records: Record) -> dict[tuple[str, str], baseline_io.Update]:
    """Records as the updates of a run that records a new level for each."""
    return {(r.hardware, r.nodeid): baseline_io.Update(r, replace_history=True) for r in records}


def entry(
    kwh: float, windows: int = 3, meter: str = "scripted", *, nodeid: str, hw: str = HW
) -> Record:
    return Record(
        nodeid=nodeid,
        provenance=Provenance(meter=meter, hardware=hw, estimated=False),
        samples=(kwh,) * windows,
        work=Work(windows),
        version="0.1.0",
    )


def baseline_of(*records: Record) -> Baseline:
    entries: dict[str, dict[str, Record]] = {}
    for r in records:
        entries.setdefault(r.hardware, {})[r.nodeid] = r
    return Baseline(entries)


def update(path: Path, updates: dict[tuple[str, str], baseline_io.Update]) -> None:
    baseline_io.update(path, updates, history=5, lock_timeout_s=30)


#: The baseline next to every bad-input run: one entry of a test that is not run.
OTHER = "test_case.py::test_other"
VALID_BASELINE = dumps(baseline_of(entry(0.002, nodeid=OTHER))).encode()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and directory under ``root`` (bytes for files), bar ``__pycache__``."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        out[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return out


def output_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_output_has(result: pytest.RunResult, *needles: str) -> None:
    """Plain substrings (fnmatch would read the brackets of node ids as character sets)."""
    output = output_of(result)
    for needle in needles:
        assert needle in output, f"{needle!r} not in the output:\n{output}"


# -- the table of bad inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """One wrong input and what the run must say about it.

    ``expect``: ``usage`` (the run stops with a usage error), ``failed`` (the one test
    fails), ``error`` (the one test errors, e.g. in teardown) or ``write`` (the tests pass
    but writing the baseline fails, so the run fails). ``needles`` must all appear in the
    output: the cause, and then the fix.
    """

    id: str
    expect: str
    needles: tuple[str, ...]
    test: str = PASSING
    baseline: bytes | None = VALID_BASELINE
    baseline_is_dir: bool = False
    args: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    ini: str = ""
    read_only: bool = False
    bug: str = ""

    @property
    def category(self) -> str:
        return self.id.split("/", 1)[0]


def _baseline_with(entry_body: str, head: str = "schema_version = 1\n") -> bytes:
    return (head + f'\n[hardware.{HW}."test_case.py::test_other"]\n' + entry_body).encode()


_ENTRY = (
    'unit = "kWh/1000 inferences"\n'
    "kwh_per_1000 = 0.002\n"
    "samples = [0.002, 0.002, 0.002]\n"
    'meter = "scripted"\n'
    "estimated = false\n"
    "inferences = 3\n"
    'pytest_energy_version = "0.1.0"\n'
)


def _entry_replacing(old: str, new: str) -> bytes:
    assert old in _ENTRY
    return _baseline_with(_ENTRY.replace(old, new))


_RESTORE = "git checkout -- <file>"  # the fix named by every "repair the file" error
NAMES_FILE = "energy baseline {path}: "  # {path} is filled in with the run's baseline path


def _baseline_case(
    name: str, content: bytes, cause: str, fix: str = _RESTORE, **kw: str
) -> BadInput:
    return BadInput(
        f"baseline/{name}",
        "usage",
        (NAMES_FILE, cause, fix),
        baseline=content,
        **kw,  # type: ignore[arg-type]
    )


BASELINE_CASES = [
    _baseline_case("binary-garbage", bytes(range(256)) * 4, "is not UTF-8 text"),
    _baseline_case(
        "truncated", VALID_BASELINE[: VALID_BASELINE.index(b"0.002,") + 3], "is not valid TOML"
    ),
    _baseline_case("empty-file", b"", "has no valid schema_version"),
    _baseline_case("plain-text", b"energy baseline goes here\n", "is not valid TOML"),
    _baseline_case(
        "schema-newer",
        VALID_BASELINE.replace(b"schema_version = 3", b"schema_version = 4"),
        "has schema_version 4, newer than this pytest-energy understands",
        "pip install -U pytest-energy",
    ),
    _baseline_case(
        "schema-zero",
        VALID_BASELINE.replace(b"schema_version = 3", b"schema_version = 0"),
        "has no valid schema_version (a whole number from 1; got 0)",
    ),
    _baseline_case(
        "schema-string",
        VALID_BASELINE.replace(b"schema_version = 3", b'schema_version = "3"'),
        "has no valid schema_version",
    ),
    _baseline_case(
        "samples-string",
        _entry_replacing("[0.002, 0.002, 0.002]", '"0.002"'),
        "needs a non-empty list of samples",
    ),
    _baseline_case(
        "meter-integer", _entry_replacing('"scripted"', "3"), "needs a meter (a non-empty string)"
    ),
    _baseline_case(
        "inferences-float",
        _entry_replacing("inferences = 3", "inferences = 1.5"),
        "has inferences = 1.5; expected a whole number >= 1",
    ),
    _baseline_case(
        "estimated-string",
        _entry_replacing("estimated = false", 'estimated = "no"'),
        "needs estimated = true or false",
    ),
    _baseline_case(
        "sample-negative",
        _entry_replacing("[0.002, 0.002, 0.002]", "[0.002, -0.002]"),
        "has a sample that is negative, NaN or infinite: -0.002",
    ),
    _baseline_case(
        "sample-nan",
        _entry_replacing("[0.002, 0.002, 0.002]", "[nan]"),
        "has a sample that is negative, NaN or infinite: nan",
    ),
    _baseline_case(
        "sample-infinite",
        _entry_replacing("[0.002, 0.002, 0.002]", "[0.002, inf]"),
        "has a sample that is negative, NaN or infinite: inf",
    ),
    _baseline_case(
        "duplicate-key",
        _baseline_with(_ENTRY + 'meter = "nvml"\n'),
        "is not valid TOML (Cannot overwrite a value",
    ),
    _baseline_case(
        "duplicate-table",
        _baseline_with(_ENTRY) + _baseline_with(_ENTRY, head=""),
        "is not valid TOML (Cannot declare",
    ),
    _baseline_case(
        "unknown-entry-key",
        _baseline_with(_ENTRY + "kwh = 0.1\n"),
        "has unknown key(s) kwh",
    ),
    _baseline_case(
        "hardware-not-a-table",
        b'schema_version = 1\nhardware = "H100"\n',
        "has a 'hardware' key that is not a table",
    ),
    BadInput(
        "baseline/directory",
        "usage",
        (NAMES_FILE, "is a directory", "Point --energy-baseline"),
        baseline=None,
        baseline_is_dir=True,
    ),
    BadInput(
        "baseline/read-only",
        "write",
        (NAMES_FILE, "is read-only", "Make it writable (chmod u+w)"),
        read_only=True,
    ),
    BadInput(
        "baseline/parent-directory-missing",
        "write",
        ("does not exist", "Create the directory"),
        baseline=None,
        args=("--energy-baseline=no/such/dir/b.toml",),
    ),
    _baseline_case(
        "summary-kwh-nan",
        _entry_replacing("kwh_per_1000 = 0.002", "kwh_per_1000 = nan"),
        "kwh_per_1000",
    ),
    _baseline_case(
        "summary-kwh-string",
        _entry_replacing("kwh_per_1000 = 0.002", 'kwh_per_1000 = "lots"'),
        "kwh_per_1000",
    ),
    _baseline_case(
        "sample-integer-beyond-float",
        _entry_replacing("[0.002, 0.002, 0.002]", "[1" + "0" * 400 + "]"),
        "has a sample",
    ),
    _baseline_case(
        "integer-with-5000-digits",
        _entry_replacing("inferences = 3", "inferences = " + "9" * 5000),
        "is not valid TOML",
    ),
    _baseline_case(
        "deeply-nested-array",
        VALID_BASELINE + b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "is not valid TOML",
    ),
]


def _marked(decorator: str) -> str:
    return f"import pytest, fakemeter\n\n{decorator}\ndef test_ok():\n    fakemeter.spend(3.6)\n"


def _marker_case(name: str, decorator: str, *needles: str) -> BadInput:
    return BadInput(
        f"marker/{name}",
        "usage",
        ("test_case.py::test_ok: @pytest.mark.energy_budget", *needles),
        test=_marked(decorator),
    )


MARKER_CASES = [
    _marker_case(
        "kwh-infinite",
        "@pytest.mark.energy_budget(kwh=float('inf'))",
        "kwh must be a finite number, got inf",
    ),
    _marker_case(
        "kwh-bool", "@pytest.mark.energy_budget(kwh=True)", "kwh must be a number, got True (bool)"
    ),
    _marker_case(
        "kwh-list",
        "@pytest.mark.energy_budget(kwh=[0.05])",
        "kwh must be a number, got [0.05] (list)",
    ),
    _marker_case(
        "kwh-none",
        "@pytest.mark.energy_budget(kwh=None)",
        "kwh is required, e.g. energy_budget(kwh=0.05)",
    ),
    _marker_case(
        "inferences-zero",
        "@pytest.mark.energy_budget(kwh=1, inferences=0)",
        "inferences must be a whole number of at least 1, got 0",
    ),
    _marker_case(
        "inferences-float",
        "@pytest.mark.energy_budget(kwh=1, inferences=2.5)",
        "inferences must be a whole number of at least 1, got 2.5",
    ),
    _marker_case(
        "inferences-string",
        "@pytest.mark.energy_budget(kwh=1, inferences='8')",
        "inferences must be a whole number of at least 1, got '8'",
    ),
    _marker_case(
        "tolerance-negative",
        "@pytest.mark.energy_budget(kwh=1, tolerance=-5)",
        "tolerance: expected a percentage between 0 and 100",
    ),
    _marker_case(
        "tolerance-over-100",
        "@pytest.mark.energy_budget(kwh=1, tolerance='200%')",
        "tolerance: expected a percentage between 0 and 100, got '200%'",
    ),
    _marker_case(
        "tolerance-nan",
        "@pytest.mark.energy_budget(kwh=1, tolerance=float('nan'))",
        "tolerance must be a finite number",
    ),
    _marker_case(
        "two-positional",
        "@pytest.mark.energy_budget(1, 2)",
        "takes at most one positional argument (kwh), got 2",
    ),
    _marker_case(
        "kwh-twice",
        "@pytest.mark.energy_budget(1, kwh=2)",
        "kwh given both positionally and by name",
    ),
    _marker_case(
        "keyword-typo",
        "@pytest.mark.energy_budget(kwh=1, inference=8)",
        "unknown argument(s) inference; accepted: kwh, inferences, tolerance",
    ),
    BadInput(
        "marker/twice-on-a-class",
        "usage",
        (
            "test_case.py::TestTwice::test_ok",
            "marked energy_budget more than once at the same level; keep one",
        ),
        test="import pytest\n\n@pytest.mark.energy_budget(kwh=1)\n"
        "@pytest.mark.energy_budget(kwh=2)\nclass TestTwice:\n    def test_ok(self):\n"
        "        pass\n",
    ),
    BadInput(
        "marker/twice-in-pytestmark",
        "usage",
        (
            "test_case.py::test_ok",
            "marked energy_budget more than once at the same level; keep one",
        ),
        test="import pytest\n\npytestmark = [pytest.mark.energy_budget(kwh=1), "
        "pytest.mark.energy_budget(kwh=2)]\n\ndef test_ok():\n    pass\n",
    ),
]

#: Meter modules for the option cases: a factory that raises, one that needs an argument,
#: one returning a half meter, a module with a missing dependency, one that fails on import.
METER_MODULES = (
    (
        "brokenmeters",
        "class Raising:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('no sensor on this runner')\n\n\n"
        "def needs_device(device):\n"
        "    raise AssertionError('never called with an argument')\n\n\n"
        "class NoClose:\n"
        "    name = 'half'\n"
        "    hardware = 'rig'\n"
        "    estimated = False\n\n"
        "    def read(self):\n"
        "        return {'x': 0.0}\n",
    ),
    ("missingdep", "import a_dependency_that_is_not_installed  # noqa: F401\n"),
    ("failsonimport", "raise RuntimeError('vendor library libfoo.so not found')\n"),
    ("exitsonimport", "import sys\n\nsys.exit('no GPU here')\n"),
    (
        "oddmeters",
        "import sys\n\nfrom fakemeter import ScriptedMeter\n\n\n"
        "def exits():\n    sys.exit(3)\n\n\n"
        "def make(**attrs):\n"
        "    return type('Odd', (ScriptedMeter,), attrs)\n\n\n"
        "def _raises(self):\n    raise RuntimeError('nvmlDeviceGetName failed')\n\n\n"
        "EmptyName = make(name='')\n"
        "IntName = make(name=42)\n"
        "WordEstimated = make(estimated='no')\n"
        "NoneEstimated = make(estimated=None)\n"
        "StrDeterministic = make(deterministic='yes')\n"
        "IntDevices = make(devices=5)\n"
        "StrDevices = make(devices='gpu:0')\n"
        "class NoneHardware(ScriptedMeter):\n"
        "    def __init__(self):\n        super().__init__()\n        self.hardware = None\n\n\n"
        "class IntHardware(ScriptedMeter):\n"
        "    def __init__(self):\n        super().__init__()\n        self.hardware = 7\n\n\n"
        "class SurrogateHardware(ScriptedMeter):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n        self.hardware = 'rig-\\udce9'\n\n\n"
        "class RaisingHardware(ScriptedMeter):\n"
        "    hardware = property(_raises, lambda self, value: None)\n",
    ),
)


def _option_case(
    name: str, args: tuple[str, ...], *needles: str, bug: str = "", ini: str = ""
) -> BadInput:
    return BadInput(
        f"option/{name}", "usage", needles, args=args, files=METER_MODULES, bug=bug, ini=ini
    )


OPTION_CASES = [
    _option_case(
        "alpha-zero",
        ("--energy-alpha=0",),
        "--energy-alpha / energy_alpha: expected a probability strictly between 0 and 1, got '0'",
    ),
    _option_case(
        "alpha-word",
        ("--energy-alpha=high",),
        "--energy-alpha / energy_alpha: expected a number, got 'high'",
    ),
    _option_case(
        "tolerance-nan",
        ("--energy-tolerance=nan",),
        "--energy-tolerance / energy_tolerance: expected a ",
        "got 'nan'",
    ),
    _option_case(
        "tolerance-infinite-percent",
        ("--energy-tolerance=inf%",),
        "--energy-tolerance / energy_tolerance: expected a ",
        "got 'inf",
    ),
    _option_case(
        "tolerance-ini-word",
        (),
        "--energy-tolerance / energy_tolerance: expected a ",
        "got 'ten'",
        ini="[pytest]\nenergy_tolerance = ten\n",
    ),
    _option_case(
        "rounds-word",
        ("--energy-rounds=many",),
        "--energy-rounds / energy_rounds: expected auto or a whole number of at least 1, got 'many'",
    ),
    _option_case(
        "rounds-negative",
        ("--energy-rounds=-3",),
        "--energy-rounds / energy_rounds: expected auto or a whole number of at least 1, got '-3'",
    ),
    _option_case(
        "rounds-fraction",
        ("--energy-rounds=2.5",),
        "--energy-rounds / energy_rounds: expected auto or a whole number of at least 1, got '2.5'",
    ),
    _option_case(
        "warmup-negative",
        ("--energy-warmup=-1",),
        "--energy-warmup / energy_warmup: expected a whole number of at least 0, got '-1'",
    ),
    _option_case(
        "min-time-minutes",
        ("--energy-min-time=5min",),
        "--energy-min-time / energy_min_time: expected a non-negative duration such as "
        "0.5, 0.5s or 500ms, got '5min'",
    ),
    _option_case(
        "report-ini-maybe",
        (),
        "--energy-report / energy_report: expected true or false, got 'maybe'",
        ini="[pytest]\nenergy_report = maybe\n",
    ),
    _option_case(
        "meter-empty",
        ("--energy-meter=",),
        "--energy-meter / energy_meter: expected a meter name such as auto, or module:attribute",
    ),
    _option_case(
        "meter-no-attribute",
        ("--energy-meter=fakemeter:",),
        "meter spec 'fakemeter:' must be a name or module:attribute",
    ),
    _option_case(
        "meter-no-module",
        ("--energy-meter=:ScriptedMeter",),
        "meter spec ':ScriptedMeter' must be a name or module:attribute",
    ),
    _option_case(
        "meter-missing-dependency",
        ("--energy-meter=missingdep:Meter",),
        "module 'missingdep' cannot be imported (No module named "
        "'a_dependency_that_is_not_installed')",
        "on sys.path",
    ),
    _option_case(
        "meter-half-a-meter",
        ("--energy-meter=brokenmeters:NoClose",),
        "meter spec 'brokenmeters:NoClose' returned NoClose, which is not a meter: it lacks close",
        "see pytest_energy.Meter",
    ),
    _option_case(
        "meter-module-fails-on-import",
        ("--energy-meter=failsonimport:Meter",),
        "meter spec 'failsonimport:Meter'",
        "vendor library libfoo.so not found",
    ),
    _option_case(
        "meter-factory-raises",
        ("--energy-meter=brokenmeters:Raising",),
        "brokenmeters:Raising",
        "no sensor on this runner",
    ),
    _option_case(
        "meter-module-calls-sys-exit",
        ("--energy-meter=exitsonimport:Meter",),
        "meter spec 'exitsonimport:Meter': importing module 'exitsonimport' raised SystemExit",
        "must not call sys.exit",
    ),
    _option_case(
        "meter-factory-calls-sys-exit",
        ("--energy-meter=oddmeters:exits",),
        "meter spec 'oddmeters:exits': creating the meter raised SystemExit: 3",
        "not sys.exit",
    ),
    _option_case(
        "meter-name-empty",
        ("--energy-meter=oddmeters:EmptyName",),
        "the meter's name is ''; it must be a non-empty string",
    ),
    _option_case(
        "meter-name-int",
        ("--energy-meter=oddmeters:IntName",),
        "the meter's name is 42; it must be a non-empty string",
    ),
    _option_case(
        "meter-estimated-word",
        ("--energy-meter=oddmeters:WordEstimated",),
        "the meter's estimated is 'no' (str); it must be True or False",
    ),
    _option_case(
        "meter-estimated-none",
        ("--energy-meter=oddmeters:NoneEstimated",),
        "the meter's estimated is None (NoneType); it must be True or False",
    ),
    _option_case(
        "meter-deterministic-word",
        ("--energy-meter=oddmeters:StrDeterministic",),
        "the meter's deterministic is 'yes' (str); it must be True or False",
    ),
    _option_case(
        "meter-devices-int",
        ("--energy-meter=oddmeters:IntDevices",),
        "the meter's devices is 5; it must be None",
        "() (no device lock",
    ),
    _option_case(
        "meter-devices-str",
        ("--energy-meter=oddmeters:StrDevices",),
        "the meter's devices is 'gpu:0'; it must be None",
    ),
    _option_case(
        "meter-hardware-none",
        ("--energy-meter=oddmeters:NoneHardware",),
        "the meter's hardware is None; it must be a non-empty string",
    ),
    _option_case(
        "meter-hardware-int",
        ("--energy-meter=oddmeters:IntHardware",),
        "the meter's hardware is 7; it must be a non-empty string",
    ),
    _option_case(
        "meter-hardware-lone-surrogate",
        ("--energy-meter=oddmeters:SurrogateHardware",),
        "contains a lone surrogate",
        "errors='replace'",
    ),
    _option_case(
        "meter-hardware-property-raises",
        ("--energy-meter=oddmeters:RaisingHardware",),
        "reading the meter's 'hardware' raised RuntimeError: nvmlDeviceGetName failed",
        "Fix the meter's hardware property",
    ),
    _option_case(
        "meter-factory-needs-argument",
        ("--energy-meter=brokenmeters:needs_device",),
        "brokenmeters:needs_device",
        "missing 1 required positional argument",
    ),
]


#: Meters are created at the first window, not at start-up: a meter that cannot be created
#: (its factory fails, or it returns something that is not a valid meter) fails that test
#: with the one paragraph, instead of stopping a run that may have no energy test at all.
_CREATED_AT_FIRST_WINDOW = {
    "meter-half-a-meter",
    "meter-factory-raises",
    "meter-factory-needs-argument",
    "meter-factory-calls-sys-exit",
    "meter-name-empty",
    "meter-name-int",
    "meter-estimated-word",
    "meter-estimated-none",
    "meter-deterministic-word",
    "meter-devices-int",
    "meter-devices-str",
    "meter-hardware-none",
    "meter-hardware-int",
    "meter-hardware-lone-surrogate",
    "meter-hardware-property-raises",
}
OPTION_CASES = [
    dataclasses.replace(case, expect="failed")
    if case.id.split("/", 1)[1] in _CREATED_AT_FIRST_WINDOW
    else case
    for case in OPTION_CASES
]


def _misuse(name: str, body: str, *needles: str, expect: str = "failed", bug: str = "") -> BadInput:
    return BadInput(f"fixture/{name}", expect, needles, test=body, bug=bug)


FIXTURE_CASES = [
    _misuse(
        "inferences-string",
        "def test_ok(energy):\n    with energy.measure(inferences='3'):\n        pass\n",
        "energy fixture: inferences must be a whole number of at least 1, got '3'",
    ),
    _misuse(
        "inferences-bool",
        "def test_ok(energy):\n    energy(lambda: None, inferences=True)\n",
        "energy fixture: inferences must be a whole number of at least 1, got True",
    ),
    _misuse(
        "inferences-float",
        "def test_ok(energy):\n    with energy.measure(inferences=2.5):\n        pass\n",
        "energy fixture: inferences must be a whole number of at least 1, got 2.5",
    ),
    _misuse(
        "tokens-zero",
        "def test_ok(energy):\n    with energy.measure(inferences=1, tokens=0):\n        pass\n",
        "energy fixture: tokens must be a whole number of at least 1, got 0",
    ),
    _misuse(
        "images-negative",
        "def test_ok(energy):\n    energy(lambda: None, inferences=1, images=-1)\n",
        "energy fixture: images must be a whole number of at least 1, got -1",
    ),
    _misuse(
        "inferences-missing",
        "def test_ok(energy):\n    energy(lambda: None)\n",
        "the energy fixture needs the number of inferences one call does, and it could not be "
        "read from what the function returned",
        "Pass inferences=N.",
    ),
    _misuse(
        "call-inside-measure",
        "def test_ok(energy):\n    with energy.measure(inferences=1):\n"
        "        energy(lambda: None, inferences=1)\n",
        "energy fixture: energy.measure() windows cannot be nested",
        "measure the blocks one after the other",
    ),
    _misuse(
        "measure-inside-call",
        "def test_ok(energy):\n    def infer():\n"
        "        with energy.measure(inferences=1):\n            pass\n"
        "    energy(infer, inferences=1)\n",
        "energy fixture: energy.measure() windows cannot be nested",
    ),
    _misuse(
        "compare-bad-tolerance",
        "def test_ok(energy):\n    energy.compare(lambda: None, "
        "lambda: None, inferences=1, tolerance='abc')\n",
        "energy.compare(tolerance=...): expected a ",
        "got 'abc'",
    ),
    _misuse(
        "compare-inferences-zero",
        "def test_ok(energy):\n    energy.compare(lambda: None, lambda: None, inferences=0)\n",
        "energy fixture: inferences must be a whole number of at least 1, got 0",
    ),
    _misuse(
        "measure-in-a-finalizer",
        "def test_ok(energy, request):\n"
        "    def late():\n"
        "        with energy.measure(inferences=1):\n"
        "            energy.meter.spend(3.6)\n"
        "    request.addfinalizer(late)\n",
        "used after its test finished",
        expect="error",
    ),
]

BAD_INPUTS = BASELINE_CASES + MARKER_CASES + OPTION_CASES + FIXTURE_CASES


#: The row of benchmarks/reliability_table.py's table that each category counts in.
BAD_INPUT_ROWS = {
    "baseline": "baseline file, whole run",
    "marker": "marker arguments",
    "option": "options and meter specs",
    "fixture": "fixture misuse",
}


def _params() -> list[object]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[
                pytest.mark.reliability("bad input", BAD_INPUT_ROWS[case.category]),
                *([pytest.mark.xfail(strict=True, reason=f"bug: {case.bug}")] if case.bug else []),
            ],
        )
        for case in BAD_INPUTS
    ]


def test_bad_input_ids_are_unique() -> None:
    ids = [case.id for case in BAD_INPUTS]
    assert len(ids) == len(set(ids))
    assert {case.category for case in BAD_INPUTS} == set(BAD_INPUT_ROWS)


@pytest.mark.parametrize("case", _params())
def test_bad_input(
    meter_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: BadInput
) -> None:
    pytester = meter_pytester
    pytester.makepyfile(test_case=case.test, **dict(case.files))
    if case.ini:
        pytester.makeini(case.ini)
    path = pytester.path / BASELINE
    if case.baseline_is_dir:
        path.mkdir()
        (path / "keep.txt").write_text("not a baseline\n")
    elif case.baseline is not None:
        path.write_bytes(case.baseline)
    if case.read_only:
        _pretend_read_only(monkeypatch, path)
    before = snapshot(pytester.path)

    result = pytester.runpytest(*BASE_ARGS, "--energy-update-baseline", *case.args)

    output = output_of(result)
    assert "INTERNALERROR" not in output
    if case.expect == "usage":
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "Traceback" not in output
    elif case.expect == "failed":
        result.assert_outcomes(failed=1)
    elif case.expect == "error":
        result.assert_outcomes(passed=1, errors=1)
    else:
        assert case.expect == "write"
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=1)
    assert_output_has(result, *(needle.replace("{path}", str(path)) for needle in case.needles))
    assert snapshot(pytester.path) == before  # no file changed, none appeared


def _pretend_read_only(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``os.access(path, W_OK)`` false: the tests run as root, whom chmod does not stop."""
    real_access = os.access

    def access(target: object, mode: int, *args: object, **kwargs: object) -> bool:
        if mode & os.W_OK and Path(str(target)).resolve() == path.resolve():
            return False
        return real_access(target, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_bad_baseline_read_only_file_is_refused_by_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit level: ``update()`` on a read-only file. Root ignores mode bits, so ``os.access``
    is what makes it read-only here; ``chattr +i`` would need a filesystem that supports it."""
    path = tmp_path / BASELINE
    path.write_bytes(VALID_BASELINE)
    _pretend_read_only(monkeypatch, path)
    with pytest.raises(BaselineError) as excinfo:
        update(path, as_updates(entry(0.001, nodeid="test_case.py::test_ok")))
    assert str(excinfo.value) == (
        f"energy baseline {path}: is read-only. Make it writable (chmod u+w) before "
        "--energy-update-baseline."
    )
    assert snapshot(tmp_path) == {BASELINE: VALID_BASELINE}  # no lock, no temporary file


# -- odd but valid inputs ----------------------------------------------------------------------


@pytest.mark.reliability("valid input", "odd but valid inputs must work")
def test_missing_baseline_is_empty_and_is_created_on_update(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(test_case=PASSING)
    result = meter_pytester.runpytest(*BASE_ARGS, "--energy-report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_case.py::test_ok * new *"])
    assert not (meter_pytester.path / BASELINE).exists()
    meter_pytester.runpytest(*BASE_ARGS, "--energy-update-baseline").assert_outcomes(passed=1)
    written = load(meter_pytester.path / BASELINE)
    assert written.get(HW, "test_case.py::test_ok") is not None


#: Parameters whose ids need quoting in TOML keys; with id escaping turned off (ini below)
#: the Unicode ones reach the node id as they are.
AWKWARD_PARAMS = [
    'say "hi"',
    "it's",
    "[bracket]",
    "]",
    "a.b",
    "#hash = 1",
    "back\\slash",
    "tab\there",
    "new\nline",
    "x::y",
    "ünïcödé ✓ 日本",
    "emoji \U0001f600",
    "right-to-left \u202e",
    "",
]


@pytest.mark.reliability("valid input", "odd but valid inputs must work")
def test_awkward_node_ids_round_trip_through_the_baseline(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makeini(
        "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    )
    meter_pytester.makepyfile(
        **{
            "test_awkward": f"""
import pytest

AWKWARD = {AWKWARD_PARAMS!r}


@pytest.mark.parametrize("name", AWKWARD)
def test_param(energy, name):
    energy(lambda: energy.meter.spend(3.6), inferences=1)


class TestNested:
    @pytest.mark.parametrize("n", [1.5, None, "x"])
    @pytest.mark.parametrize("m", [[1, 2], {{"k": "v"}}], ids=["list[1]", 'dict{{"k"}}'])
    def test_grid(self, energy, n, m):
        energy(lambda: energy.meter.spend(3.6), inferences=1)


def test_café_ünï(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
""",
            "test_日本": "def test_x(energy):\n    energy(lambda: energy.meter.spend(3.6), "
            "inferences=1)\n",
        }
    )
    expected = len(AWKWARD_PARAMS) + 6 + 1 + 1

    def verdicts(*args: str) -> dict[str, str]:
        recorder = meter_pytester.inline_run(*BASE_ARGS, *args)
        out: dict[str, str] = {}
        for report in recorder.getreports("pytest_runtest_logreport"):
            if report.when == "call":
                assert report.passed, report.longrepr
                out[report.nodeid] = str(dict(report.user_properties)["energy_verdict"])
        return out

    first = verdicts("--energy-update-baseline")
    assert len(first) == expected and set(first.values()) == {"new"}
    stored = load(meter_pytester.path / BASELINE)
    assert set(stored.entries[HW]) == set(first)  # every node id, exactly as pytest spells it
    assert any("日本" in nodeid for nodeid in first) and any('"hi"' in n for n in first)
    second = verdicts()
    assert second.keys() == first.keys()
    assert set(second.values()) == {"ok"}  # each test found its own entry again


@pytest.mark.reliability("valid input", "odd but valid inputs must work")
def test_marker_closest_level_wins_function_over_class_over_module(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        test_levels="""
import pytest, fakemeter

pytestmark = pytest.mark.energy_budget(kwh=0.0001)  # 3.6 J is 0.001: over this one


@pytest.mark.energy_budget(kwh=0.01)
class TestClassWins:
    def test_class_budget(self):
        fakemeter.spend(3.6)

    @pytest.mark.energy_budget(kwh=0.0005)
    def test_function_budget(self):
        fakemeter.spend(3.6)


def test_module_budget():
    fakemeter.spend(3.6)
"""
    )
    result = meter_pytester.runpytest(*BASE_ARGS)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_function_budget used 0.001 kWh per 1,000 inferences, over its budget of 0.0005*",
            "*test_module_budget used 0.001 kWh per 1,000 inferences, over its budget of 0.0001*",
        ],
        consecutive=False,
    )


# -- faults: meters that fail ----------------------------------------------------------------------

#: A meter that fails on the N-th read after a test arms it: ``arm(n, exc)``.
FAULTY_METER = """
import math

from fakemeter import ScriptedMeter
from pytest_energy.errors import MeterError

_armed = []


def arm(reads, error):
    _armed[:] = [reads, error]


class FaultyMeter(ScriptedMeter):
    name = "faulty"
    domains = ("npu:0", "npu:1")
    lost = set()
    nan = False

    def read(self):
        if _armed:
            _armed[0] -= 1
            if _armed[0] == 0:
                error = _armed[1]
                _armed.clear()
                raise error
        return {
            d: (math.nan if self.nan else self.total / 2)
            for d in self.domains
            if d not in self.lost
        }
"""

#: Three tests around the faulty one, and the faulty one's old baseline entry.
AROUND = """
import fakemeter, faultymeter, pytest
from pytest_energy.errors import MeterError


def test_a(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)


{faulty}


def test_c(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)


def test_plain():
    assert True
"""


def _run_with_fault(
    pytester: pytest.Pytester, faulty: str, *args: str
) -> tuple[pytest.RunResult, dict[str, Record | None], list[str]]:
    """Run four tests, one faulty, with --energy-update-baseline over an existing baseline.

    Returns the result, the entries afterwards, and the files beside the baseline.
    """
    pytester.makepyfile(faultymeter=FAULTY_METER, test_case=AROUND.format(faulty=faulty))
    old = baseline_of(
        entry(0.005, meter="faulty", nodeid="test_case.py::test_b"),
        entry(0.002, meter="faulty", nodeid="test_case.py::test_other"),
    )
    path = pytester.path / BASELINE
    path.write_text(dumps(old))
    result = pytester.runpytest(
        *BASE_ARGS, "--energy-meter=faultymeter:FaultyMeter", "--energy-update-baseline", *args
    )
    after = load(path)
    entries = {
        name: after.get(HW, f"test_case.py::{name}")
        for name in ("test_a", "test_b", "test_c", "test_other")
    }
    assert entries["test_b"] == old.get(HW, "test_case.py::test_b")  # the faulty test's entry kept
    assert entries["test_other"] == old.get(HW, "test_case.py::test_other")
    assert entries["test_a"] is not None and entries["test_c"] is not None  # the others written
    beside = sorted(
        p.name
        for p in pytester.path.iterdir()
        if p.name.startswith(BASELINE) or p.name.startswith("." + BASELINE)
    )
    assert beside == [BASELINE, BASELINE + ".lock"]  # no temporary file left
    assert "INTERNALERROR" not in output_of(result)
    return result, entries, beside


@pytest.mark.parametrize(
    ("faulty", "message"),
    [
        pytest.param(
            # 4th read: the end of the second window of three
            "def test_b(energy):\n"
            "    faultymeter.arm(4, MeterError('sensor reported error 0x1f'))\n"
            "    energy(lambda: energy.meter.spend(3.6), inferences=1)\n",
            "pytest-energy: sensor reported error 0x1f",
            id="meter-error-at-an-end-read",
        ),
        pytest.param(
            # 3rd read: the start of the second window
            "def test_b(energy):\n"
            "    faultymeter.arm(3, RuntimeError('i2c bus timeout'))\n"
            "    energy(lambda: energy.meter.spend(3.6), inferences=1)\n",
            "RuntimeError: i2c bus timeout",
            id="untyped-error-at-a-start-read",
        ),
        pytest.param(
            "@pytest.mark.energy_budget(kwh=1)\n"
            "def test_b():\n"
            "    faultymeter.arm(1, MeterError('sensor reported error 0x2a'))\n"
            "    fakemeter.spend(3.6)\n",
            "pytest-energy: sensor reported error 0x2a",
            id="meter-error-closing-a-marker-window",
        ),
    ],
)
@pytest.mark.reliability("fault", "meter read() raises mid-window")
def test_fault_meter_read_raises_mid_run(
    meter_pytester: pytest.Pytester, faulty: str, message: str
) -> None:
    result, _, _ = _run_with_fault(meter_pytester, faulty)
    result.assert_outcomes(passed=3, failed=1)
    assert_output_has(result, message, "FAILED test_case.py::test_b")


@pytest.mark.parametrize(
    ("faulty", "message"),
    [
        pytest.param(
            # a 32-bit millijoule counter wraps during the second window
            "def test_b(energy):\n"
            "    energy.meter.total = 4294967.0\n"
            "    calls = []\n\n"
            "    def infer():\n"
            "        calls.append(1)\n"
            "        energy.meter.spend(0.2)\n"
            "        if len(calls) == 3:\n"
            "            energy.meter.total -= 4294967.296\n\n"
            "    energy(infer, inferences=1)\n",
            "the 'npu:0' counter went backwards from 2.14748e+06 J to 0.152 J",
            id="wraparound-mid-run",
        ),
        pytest.param(
            "@pytest.fixture\n"
            "def warm():\n"
            "    fakemeter.spend(100.0)\n\n\n"
            "@pytest.mark.energy_budget(kwh=1)\n"
            "def test_b(warm):\n"
            "    fakemeter.LIVE[0].total = 0.0  # driver reloaded: the counter restarts\n",
            "counter went backwards from",
            id="driver-reload-in-a-marker-window",
        ),
    ],
)
@pytest.mark.reliability("fault", "counter goes backwards")
def test_fault_counter_going_backwards_is_rejected(
    meter_pytester: pytest.Pytester, faulty: str, message: str
) -> None:
    result, _, _ = _run_with_fault(meter_pytester, faulty)
    result.assert_outcomes(passed=3, failed=1)
    assert_output_has(
        result,
        message,
        "J during the window (driver reload or an unhandled wraparound); the window was rejected",
    )


@pytest.mark.parametrize(
    ("faulty", "message"),
    [
        pytest.param(
            "def test_b(energy):\n"
            "    try:\n"
            "        with energy.measure(inferences=1):\n"
            "            energy.meter.spend(3.6)\n"
            "            energy.meter.lost = {'npu:1'}  # the device fell off mid-window\n"
            "    finally:\n"
            "        energy.meter.lost = set()  # and is back for the next test\n",
            "pytest-energy: meter 'faulty' reported domains ['npu:0', 'npu:1'] at the start of "
            "the window and ['npu:0'] at its end; a device appeared or disappeared mid-window",
            id="domain-disappears",
        ),
        pytest.param(
            "def test_b(energy):\n"
            "    try:\n"
            "        with energy.measure(inferences=1):\n"
            "            energy.meter.nan = True\n"
            "    finally:\n"
            "        energy.meter.nan = False\n",
            "pytest-energy: meter 'faulty': read() returned nan for 'npu:0'; readings must be "
            "finite numbers of joules",
            id="reading-is-nan",
        ),
    ],
)
@pytest.mark.reliability("fault", "device disappears / NaN reading")
def test_fault_meter_reading_changes_shape(
    meter_pytester: pytest.Pytester, faulty: str, message: str
) -> None:
    result, _, _ = _run_with_fault(meter_pytester, faulty)
    result.assert_outcomes(passed=3, failed=1)
    assert_output_has(result, message)


#: The nvml meter on a fake pynvml (tests/fake_pynvml.py) with one H100.
FAKE_NVML_METER = f"""
import sys

sys.path.insert(0, {str(TESTS)!r})
from fake_pynvml import FakeGpu, FakePynvml, NVML_ERROR_GPU_NOT_FOUND  # noqa: E402
from pytest_energy.meters.nvml import NvmlMeter  # noqa: E402

FAKE = FakePynvml([FakeGpu(energy_mj=1000)])
GPU = FAKE.gpus[0]


def make():
    return NvmlMeter(pynvml=FAKE, environ={{}})


def spend(joules):
    GPU.energy_mj += int(joules * 1000)
"""

#: Windows here are far shorter than NVML's update period, so the plugin warns; this suite's
#: ``filterwarnings = error`` reaches in-process runs and would fail those tests for it.
NVML_ARGS = ("--energy-meter=fakenvml:make", "-W", "default::pytest.PytestWarning")

NVML_TESTS = """
import fakenvml


def test_before(energy):
    with energy.measure(inferences=1):
        fakenvml.spend(3.6)


def test_lost(energy):
    with energy.measure(inferences=1):
        fakenvml.spend(3.6)
        {how}


def test_after_plain():
    assert True
"""


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("fakenvml.GPU.lost = True", id="gpu-falls-off-the-bus"),
        pytest.param(
            "fakenvml.GPU.errors['nvmlDeviceGetTotalEnergyConsumption'] = "
            "fakenvml.NVML_ERROR_GPU_NOT_FOUND",
            id="device-handle-disappears",
        ),
    ],
)
@pytest.mark.reliability("fault", "NVML GPU lost, whole run (fake pynvml)")
def test_fault_nvml_gpu_lost_mid_run(meter_pytester: pytest.Pytester, how: str) -> None:
    meter_pytester.makepyfile(fakenvml=FAKE_NVML_METER, test_case=NVML_TESTS.format(how=how))
    path = meter_pytester.path / BASELINE
    hardware = "NVIDIA H100 80GB HBM3 x1"
    old = baseline_of(entry(0.005, meter="nvml", nodeid="test_case.py::test_lost", hw=hardware))
    path.write_text(dumps(old))
    result = meter_pytester.runpytest(*BASE_ARGS, *NVML_ARGS, "--energy-update-baseline")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-energy: GPU gpu:0 (NVIDIA H100 80GB HBM3, GPU-*) was lost during the run "
            "(reading its energy counter gave NVML error *); the measurement is invalid.*",
            "FAILED test_case.py::test_lost*",
        ],
        consecutive=False,
    )
    assert "INTERNALERROR" not in output_of(result)
    after = load(path)
    assert after.get(hardware, "test_case.py::test_lost") == old.get(
        hardware, "test_case.py::test_lost"
    )
    assert after.get(hardware, "test_case.py::test_before") is not None


@pytest.mark.reliability("fault", "NVML GPU lost, whole run (fake pynvml)")
def test_fault_nvml_gpu_lost_before_the_run_fails_the_energy_tests_with_one_paragraph(
    meter_pytester: pytest.Pytester,
) -> None:
    meter_pytester.makepyfile(
        fakenvml=FAKE_NVML_METER + "\nGPU.lost = True\n", test_case=NVML_TESTS.format(how="pass")
    )
    path = meter_pytester.path / BASELINE
    path.write_bytes(VALID_BASELINE)
    before = snapshot(meter_pytester.path)
    result = meter_pytester.runpytest(*BASE_ARGS, *NVML_ARGS, "--energy-update-baseline")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()
    paragraph = (
        "*energy meter 'nvml' is unavailable: could not read the name of GPU 0: the GPU has "
        "fallen off the bus. Fix: reset the GPU (`nvidia-smi -r`) or reboot the machine*"
    )
    result.stdout.fnmatch_lines([paragraph, "ERROR: pytest-energy: " + paragraph.lstrip("*")])
    assert snapshot(meter_pytester.path) == before  # nothing measured, nothing written


#: Meters that fail outside a window: on the first read, made when the session starts (the
#: per-device lock asks the meter which domains it has), and on close().
EDGE_METERS = """
from fakemeter import ScriptedMeter
from pytest_energy.errors import MeterError


class DeadOnArrival(ScriptedMeter):
    def read(self):
        raise MeterError("sensor unplugged")


class FailsToClose(ScriptedMeter):
    def close(self):
        super().close()
        raise MeterError("driver refused to shut down")
"""


@pytest.mark.reliability("fault", "meter fails outside a window")
def test_fault_meter_failing_its_first_read(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(edgemeters=EDGE_METERS, test_case=PASSING)
    (meter_pytester.path / BASELINE).write_bytes(VALID_BASELINE)
    before = snapshot(meter_pytester.path)
    result = meter_pytester.runpytest(
        *BASE_ARGS, "--energy-meter=edgemeters:DeadOnArrival", "--energy-update-baseline"
    )
    output = output_of(result)
    assert "INTERNALERROR" not in output
    assert "pytest-energy" in output and "sensor unplugged" in output
    assert snapshot(meter_pytester.path) == before


@pytest.mark.reliability("fault", "meter fails outside a window")
def test_fault_meter_failing_to_close(meter_pytester: pytest.Pytester) -> None:
    meter_pytester.makepyfile(edgemeters=EDGE_METERS, test_case=PASSING)
    result = meter_pytester.runpytest_subprocess(
        *BASE_ARGS, "--energy-meter=edgemeters:FailsToClose"
    )
    output = output_of(result)
    result.assert_outcomes(passed=1)
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "driver refused to shut down" in output


SLOW_METER = """
from fakemeter import ScriptedMeter


class Slow(ScriptedMeter):
    update_period_s = 10.0  # a counter refreshed every 10 s: every window here is too short
"""


@pytest.mark.reliability("fault", "windows shorter than the meter's period")
def test_fault_short_windows_under_filterwarnings_error(meter_pytester: pytest.Pytester) -> None:
    """A meter whose counter refreshes more slowly than the windows last, in a project that
    turns warnings into errors. The warning used to be raised from pytest_runtest_makereport,
    which ended the session in INTERNALERROR; it now belongs to the test's call phase."""
    meter_pytester.makeini("[pytest]\nfilterwarnings = error\n")
    meter_pytester.makepyfile(
        slowmeter=SLOW_METER,
        test_case="def test_short(energy):\n    with energy.measure(inferences=1):\n"
        "        energy.meter.spend(3.6)\n\n\ndef test_after():\n    assert True\n",
    )
    result = meter_pytester.runpytest(*BASE_ARGS, "--energy-meter=slowmeter:Slow")
    assert "INTERNALERROR" not in output_of(result)
    result.assert_outcomes(passed=1, failed=1)  # the warning fails that test; the next one runs
    assert_output_has(
        result, "FAILED test_case.py::test_short", "shorter than the meter's update period"
    )


# -- faults: interrupted and concurrent baseline writes -----------------------------------------


@pytest.mark.reliability("fault", "Ctrl-C / SIGTERM during an update")
def test_fault_keyboard_interrupt_during_an_update_run(meter_pytester: pytest.Pytester) -> None:
    """Ctrl-C halfway through ``--energy-update-baseline``: the file is whole afterwards.

    The entries of tests that passed before the interrupt are written (merged); nothing of
    the interrupted test is.
    """
    meter_pytester.makepyfile(
        test_case="""
def test_first(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)


def test_second(energy):
    with energy.measure(inferences=1):
        raise KeyboardInterrupt


def test_third(energy):
    energy(lambda: energy.meter.spend(3.6), inferences=1)
"""
    )
    path = meter_pytester.path / BASELINE
    path.write_bytes(VALID_BASELINE)
    result = meter_pytester.runpytest(*BASE_ARGS, "--energy-update-baseline", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    after = load(path)  # parses: whole
    assert after.get(HW, "test_case.py::test_other") == entry(0.002, nodeid=OTHER)
    assert set(after.entries[HW]) <= {"test_case.py::test_other", "test_case.py::test_first"}
    assert sorted(p.name for p in meter_pytester.path.iterdir() if BASELINE in p.name) in (
        [BASELINE],
        [BASELINE, BASELINE + ".lock"],
    )


def _lock_is_free(path: Path) -> bool:
    import fcntl  # POSIX only, like the tests that use this

    with open(path.with_name(path.name + ".lock"), "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


def _raise(exc: BaseException) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    return fail


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
@pytest.mark.parametrize(
    ("target", "exc"),
    [
        pytest.param("dumps", KeyboardInterrupt(), id="ctrl-c-while-serialising"),
        pytest.param("os.fsync", KeyboardInterrupt(), id="ctrl-c-while-flushing-the-temp-file"),
        pytest.param("os.replace", SystemExit(143), id="sigterm-handler-before-the-rename"),
    ],
)
@pytest.mark.reliability("fault", "Ctrl-C / SIGTERM during an update")
def test_fault_interrupted_inside_update_keeps_the_old_file_and_frees_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, exc: BaseException
) -> None:
    path = tmp_path / BASELINE
    path.write_bytes(VALID_BASELINE)
    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(getattr(baseline_io, owner) if owner else baseline_io, name, _raise(exc))
    new = entry(0.001, nodeid="test_case.py::test_new")
    with pytest.raises(type(exc)):
        update(path, as_updates(new))
    monkeypatch.undo()
    after = snapshot(tmp_path)
    assert sorted(after) == [BASELINE, BASELINE + ".lock"]  # no temporary file left
    assert after[BASELINE] == VALID_BASELINE
    assert _lock_is_free(path)
    update(path, as_updates(new))  # works again
    assert load(path).get(HW, "test_case.py::test_new") == new


@pytest.mark.reliability("fault", "Ctrl-C / SIGTERM during an update")
@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_fault_interrupted_just_after_creating_the_temporary_file_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C that lands the instant the temporary file exists, before the code that
    created it has returned its name (``benchmarks/kill_loop.py --signal INT`` found this
    in 2-3 of 100 SIGINTs: inside ``tempfile.mkstemp``): the file is still removed."""
    path = tmp_path / BASELINE
    path.write_bytes(VALID_BASELINE)
    real_open = os.open

    def open_then_interrupt(file: str, flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]
        if str(file).endswith(".tmp"):
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        update(path, as_updates(entry(0.001, nodeid="test_case.py::test_new")))
    monkeypatch.undo()
    after = snapshot(tmp_path)
    assert sorted(after) == [BASELINE, BASELINE + ".lock"]  # no temporary file left
    assert after[BASELINE] == VALID_BASELINE
    assert _lock_is_free(path)


@pytest.mark.reliability("fault", "Ctrl-C / SIGTERM during an update")
def test_fault_a_killed_writers_temporary_file_is_deleted_by_the_next_update(
    tmp_path: Path,
) -> None:
    """What a SIGKILL inside a write leaves (a file named as ``fileio.temporary_name``
    names them) is what ``update()``'s clean-up removes."""
    from pytest_energy.fileio import temporary_name

    path = tmp_path / BASELINE
    path.write_bytes(VALID_BASELINE)
    stale = tmp_path / temporary_name(path)
    stale.write_text("half a baseline", encoding="utf-8")
    update(path, as_updates(entry(0.001, nodeid="test_case.py::test_new")))
    assert sorted(snapshot(tmp_path)) == [BASELINE, BASELINE + ".lock"]


@pytest.fixture(scope="module")
def kill_loop() -> ModuleType:
    return load_script("kill_loop")


@pytest.mark.reliability("fault", "killed while saving (short loop)")
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "kills"), [("SIGKILL", 20), ("SIGINT", 6)])
def test_fault_killed_while_saving_leaves_the_old_or_the_new_file(
    tmp_path: Path, kill_loop: ModuleType, sig: str, kills: int
) -> None:
    """A short run of benchmarks/kill_loop.py (100-200 kills there). A SIGKILL inside a
    write leaves a temporary file, which the next update() deletes; a SIGINT leaves none."""
    result = kill_loop.kill_loop(tmp_path, kills, sig=getattr(signal, sig), entries=100, seed=kills)
    assert sum(result.outcomes.values()) == kills
    assert result.corrupted == 0, result.lines()
    assert result.load_errors == []
    assert result.stray_files == []
    assert result.update_after_kills_ok
    assert result.temp_files_after_update == 0
    if sig == "SIGINT":
        assert result.left_temp == 0, result.lines()


@pytest.mark.reliability("fault", "SIGINT into pytest --energy-update-baseline (short loop)")
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_fault_sigint_into_update_baseline_runs_keeps_the_baseline_whole(tmp_path: Path) -> None:
    """One SIGINT of ``benchmarks/interrupt_pytest.py`` (100 there), while the baseline is
    written: the baseline is the old or the whole new file, no temporary file is left, and
    the run ends with pytest's interrupted summary. (The SIGINTs at other moments, and
    where a raw traceback can still come from, are counted by the script.)"""
    result = load_script("interrupt_pytest").pytest_loop(tmp_path, 1, modes=("write",), seed=1)
    assert len(result.interrupts) == 1
    for interrupt in result.interrupts:
        assert interrupt.baseline in ("old", "new"), interrupt
        assert interrupt.temp_files == []
        assert not interrupt.internal_error, interrupt.output
    written = [i for i in result.interrupts if i.phase == "baseline write"]
    for interrupt in written:  # inside the plugin's own baseline write: pytest's summary
        assert interrupt.interrupted_summary and not interrupt.tracebacks, interrupt.output


def test_benchmarks_find_where_each_traceback_in_a_childs_output_was_raised() -> None:
    pluggy = "/venv/site-packages/pluggy/_execution.py"

    def traceback(*frames: tuple[str, int, str]) -> str:
        lines = [f'  File "{f}", line {n}, in {fn}\n    code\n' for f, n, fn in frames]
        return "Traceback (most recent call last):\n" + "".join(lines) + "KeyboardInterrupt\n"

    output = (
        traceback(
            (pluggy, 147, "_multicall"),
            ("/venv/site-packages/_pytest/terminal.py", 900, "pytest_terminal_summary"),
            ("/repo/pytest_energy/report/__init__.py", 15, "<module>"),
            ("/usr/lib/python3.11/typing.py", 1, "inner"),
        )
        + "\n!!!!!!! KeyboardInterrupt !!!!!!!\n"
        + traceback(
            (pluggy, 147, "_multicall"),
            ("/venv/site-packages/_hypothesis_pytestplugin.py", 404, "pytest_terminal_summary"),
            ("/usr/lib/python3.11/typing.py", 1, "inner"),
        )
        + traceback(("<frozen runpy>", 198, "_run_module_as_main"))
    )
    assert load_script("_common").traceback_origins(output) == [
        "pytest-energy: pytest_energy/report/__init__.py:15 in <module>",
        "hook: _hypothesis_pytestplugin.py:404 in pytest_terminal_summary",
        "outside any hook: <frozen runpy>:198 in _run_module_as_main",
    ]


@pytest.mark.reliability("fault", "two concurrent writers")
@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_fault_concurrent_updates_keep_every_entry(tmp_path: Path, kill_loop: ModuleType) -> None:
    """Two processes, 25 update() calls each, distinct node ids, at the same time; the
    unlocked control (the same read, merge and write without the lock) runs to its end:
    its writers no longer delete each other's temporary files."""
    (tmp_path / "locked").mkdir()
    result = kill_loop.race(tmp_path / "locked", 25, use_lock=True)
    assert result.present == result.expected == 50, result.line()
    assert result.temp_files == 0
    assert sorted(p.name for p in (tmp_path / "locked").iterdir()) == [BASELINE, BASELINE + ".lock"]
    (tmp_path / "unlocked").mkdir()
    control = kill_loop.race(tmp_path / "unlocked", 25, use_lock=False)
    assert 0 < control.present <= control.expected
    assert sorted(p.name for p in (tmp_path / "unlocked").iterdir()) == [BASELINE]


def test_reliability_table_counts_the_marked_tests_by_group_and_row(
    pytester: pytest.Pytester,
) -> None:
    """benchmarks/reliability_table.py's plugin on a small suite: what it keeps, how it
    counts each outcome, and that a marker naming no group is a problem, not a row."""
    script = load_script("reliability_table")
    pytester.makeini("[pytest]\nmarkers =\n    reliability(group, row): counted\n")
    pytester.makepyfile(
        test_marked="""
import pytest

@pytest.mark.reliability("fault", "a row")
@pytest.mark.parametrize("n", [1, 2])
def test_handled(n):
    pass

@pytest.mark.reliability("fault", "a row")
@pytest.mark.xfail(strict=True, reason="bug: known")
def test_known_bug():
    assert False

@pytest.mark.reliability("bad input", "another row")
def test_regressed():
    assert False

@pytest.mark.reliability("no such group", "x")
def test_misnamed():
    pass

def test_not_counted():
    assert False
"""
    )
    collector = script.Collector()
    result = pytester.runpytest("-p", "no:cacheprovider", plugins=[collector])
    result.assert_outcomes(passed=2, xfailed=1, failed=1, deselected=2)
    assert collector.rows == {
        ("fault", "a row"): script.Outcomes(passed=2, xfailed=1),
        ("bad input", "another row"): script.Outcomes(failed=1),
    }
    assert collector.bugs == {"test_marked.py::test_known_bug": "bug: known"}
    assert [p.split(":")[0] for p in collector.problems] == [
        "test_marked.py",  # test_misnamed's marker
        "test_marked.py",  # test_regressed failed
    ]
    lines = script.table(collector)
    assert "| bad input | another row | 1 | 0 | 0 | 1 |" in lines
    assert "| fault | a row | 3 | 2 | 1 | 0 |" in lines
    assert "| **fault** | **all** | **3** | **2** | **1** | **0** |" in lines


# -- hostile values at the writers (issue 14, item 4) -------------------------------------------

FLOAT32_METER = """
import numpy as np

from fakemeter import ScriptedMeter


class Float32Meter(ScriptedMeter):
    def read(self):
        return {"fake:0": np.float32(self.total)}
"""


@pytest.mark.reliability("fault", "hostile values at the report writers, whole run")
def test_fault_numpy_readings_and_a_non_utf8_file_name_still_write_every_report(
    meter_pytester: pytest.Pytester,
) -> None:
    pytester = meter_pytester
    pytester.makepyfile(f32meter=FLOAT32_METER)
    name = os.fsdecode(b"test_caf\xe9.py")  # Latin-1 bytes: not UTF-8
    (pytester.path / name).write_text(PASSING, encoding="utf-8")
    result = pytester.runpytest(
        *BASE_ARGS,
        "--energy-meter=f32meter:Float32Meter",
        "--energy-json=e.json",
        "--energy-markdown=e.md",
        "--energy-html=e.html",
    )
    output = output_of(result)
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK

    def refuse(constant: str) -> object:
        raise AssertionError(f"not strict JSON: {constant}")

    document = json.loads((pytester.path / "e.json").read_text("utf-8"), parse_constant=refuse)
    (test,) = document["tests"]
    assert test["nodeid"] == "test_caf\\xe9.py::test_ok"
    assert test["samples"] == [pytest.approx(0.001, rel=1e-6)] * 3
    assert "test_caf\\xe9.py::test_ok" in (pytester.path / "e.md").read_text("utf-8")
    assert "test_caf\\xe9.py::test_ok" in (pytester.path / "e.html").read_text("utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_loop_never_leaves_a_child_running(kill_loop: ModuleType) -> None:
    """A child that outlives its signal (SIGINT under load) is killed, not left spinning."""
    import subprocess

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGINT)
    assert kill_loop._common.reap(child, grace_s=0.2) is False
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()
