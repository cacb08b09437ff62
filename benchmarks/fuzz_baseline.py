"""Fuzz the baseline reader: every file must load or raise BaselineError, nothing else.

Cases are made from valid baselines (written by ``pytest_energy.baseline.dumps`` from random
records, the same entries in the layouts of schema 1 and 2, and a few hand-written valid
layouts) in two ways:

* **benign** edits that keep the meaning (comments, blank lines, CRLF line ends, trailing
  spaces): the file must load, to exactly the entries it was made from;
* **hostile** mutations, one to three stacked: byte flips, truncation, inserted TOML
  fragments, a value swapped for one of another type, random Unicode (control characters,
  a BOM, right-to-left marks, lone surrogates, which are invalid UTF-8), and lines deleted,
  duplicated or swapped.

Each case is written to a file and read with ``pytest_energy.baseline.load``. The outcome:

* **loaded**: it is still a valid baseline; every sample must be finite and >= 0, dumping
  and parsing it again must give the same entries, and the standard library's ``tomllib``
  must accept the text too;
* **rejected**: ``BaselineError`` whose message names the file, the cause and a fix;
* **crashed**: anything else.

Two more checks per hostile case: a file ``tomllib`` accepts is not refused as invalid
TOML (the reader, ``tomli``, and ``tomllib`` agree), and the same text with CRLF line ends
has the same outcome. ``load`` must also leave the file's bytes alone.

Usage::

    python benchmarks/fuzz_baseline.py --count 10000 [--seed 0]

The exit status is 1 when any case crashed, was rejected without a clear message, was
accepted while invalid, disagreed with ``tomllib`` or across line ends, or a benign case
failed. ``tests/test_fuzz_baseline.py`` runs 1,000 cases in the test suite.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import _common  # noqa: F401  (this checkout's pytest_energy)

from pytest_energy.baseline import Baseline, dumps, load, parse
from pytest_energy.errors import BaselineError
from pytest_energy.record import Provenance, Record, RunSummary, Work

BASELINE_NAME = "energy-baseline.toml"

#: Phrases of the fixes that baseline errors suggest; a clear message has one.
FIX_PHRASES = (
    "--energy-update-baseline",
    "pip install -U pytest-energy",
    "--energy-baseline",
    "permissions",
)
#: How the reader says that a file is not TOML (as opposed to TOML with a bad value).
NOT_TOML = "is not valid TOML"

HARDWARE = (
    "NVIDIA H100 80GB HBM3 x1",
    "Intel(R) Xeon(R) Platinum 8480+ x2",
    'rig "7" [lab]',
    "ünïcödé ✓ 日本",
)
NODE_IDS = (
    "tests/test_llm.py::test_generate[8]",
    'tests/test_q.py::test_quote[say "hi"]',
    "tests/test_q.py::test_apostrophe[it's]",
    "tests/test_b.py::TestX::test_bracket[[a]-b]]",
    "tests/test_u.py::test_ünï[日本-✓]",
    "tests/test_esc.py::test_escape[back\\slash-tab\\t]",
    "tests/test_dot.py::test_a.b[#x = 1]",
)
HAND_WRITTEN = (
    # inline tables and literal strings
    "schema_version = 1\n"
    "[hardware.'NVIDIA A100' ]\n"
    "'tests/t.py::test_a' = { samples = [0.5, 0.25], meter = 'nvml', estimated = false, "
    "inferences = 1 }\n",
    # dotted keys, comments, integers as samples
    "# hand edited\nschema_version = 1 # current\n\n"
    'hardware."cpu x1"."tests/t.py::test_b".samples = [1, 2, 3]\n'
    'hardware."cpu x1"."tests/t.py::test_b".meter = "rapl"\n'
    'hardware."cpu x1"."tests/t.py::test_b".estimated = true\n'
    'hardware."cpu x1"."tests/t.py::test_b".inferences = 8\n',
    # an empty baseline
    "schema_version = 3\n",
    # multi-line arrays with trailing commas, unit spelled out, tokens
    "schema_version = 1\n\n"
    '[hardware."GPU"."tests/t.py::test_c[1]"]\n'
    'unit = "kWh/1000 inferences"\n'
    "kwh_per_1000 = 0.002\n"
    "samples = [\n  0.001,\n  0.002,\n  0.003,\n]\n"
    'meter = "nvml"\nestimated = false\ninferences = 512\ntokens = 16384\n'
    'pytest_energy_version = "0.1.0"\n',
    # schema 3 by hand: runs as TOML dates and as strings, an images count, no header
    "schema_version = 3\n"
    '[hardware.GPU."tests/t.py::test_d"]\n'
    "samples = [0.5]\nmeter = 'roofline'\nestimated = true\ndeterministic = true\n"
    "target = 'H100-SXM'\nengine = 'eager'\ninferences = 4\nimages = 4\n"
    'runs = [[1979-05-27, 0.5, 1, 0.0], ["2026-12-01", 0.5, 1, 0.0]]\n',
)

FRAGMENTS = (
    "[hardware]\n",
    "[hardware.x]\n",
    "[[hardware]]\n",
    '[hardware."GPU"."tests/t.py::test_x".extra]\n',
    "schema_version = 3\n",
    "schema_version = 2\n",
    "schema_version = 1\n",
    "runs = []\n",
    "runs = [1]\n",
    'runs = [{ kwh_per_1000 = 1.0, windows = 0, spread_pct = 0.0, date = "" }]\n',
    'runs = [{ kwh_per_1000 = nan, windows = 1, spread_pct = 0.0, date = "" }]\n',
    'runs = [{ kwh_per_1000 = 1.0, windows = 1, spread_pct = 1e400, date = "2026-02-30" }]\n',
    '    { kwh_per_1000 = 1.0, windows = 1, spread_pct = 0.0, date = "2026-02-29" },\n',
    '    { kwh_per_1000 = 1.0, windows = 3, spread_pct = 0.5, date = "2026-12-01" },\n',
    '[[hardware."GPU"."tests/t.py::test_x".runs]]\n',
    '    ["2026-12-01", 0.001, 3, 0.5],\n',
    "    [0000-12-01, 0.001, 3, 0.5],\n",
    '    ["0000-12-01", 0.001, 3, 0.5],\n',
    "    [1979-05-27T07:32:00Z, 0.001, 3, 0.5],\n",
    '    ["2026-12-01", 0.001, 3],\n',
    'runs = [["2026-02-30", 1.0, 1, 0.0]]\n',
    "deterministic = true\n",
    "images = 0\n",
    'target = ""\n',
    "<<<<<<< HEAD\n",
    "=======\n",
    ">>>>>>> branch\n",
    "\ufeff",
    "schema_version = 0\n",
    "samples = []\n",
    "samples = [nan]\n",
    "samples = [-1.0]\n",
    "samples = [inf, 1]\n",
    "samples = [1e400]\n",
    'samples = ["0.5"]\n',
    "samples = [" + "9" * 400 + "]\n",
    "inferences = " + "1" * 4400 + "\n",
    "x = " + "[" * 3000 + "]" * 3000 + "\n",
    "x = " + "[" * 20 + "]" * 20 + "\n",
    "meter = 1\n",
    'estimated = "yes"\n',
    'unit = "J"\n',
    "tokens = -5\n",
    "kwh_per_1000 = nan\n",
    "kwh_per_1000 = 'lots'\n",
    "inferences = 1.5\n",
    "pytest_energy_version = 1\n",
    'version = "2"\n',
    '"a" = {\n',
    "= 1\n",
    "key = \n",
    '"""',
    "'''",
    "\\u0000",
    '"\\ud800"',
    "a = 1979-05-27T07:32:00Z\n",
    "a = 1979-02-30\n",
    "a = 0000-01-01\n",
    "a.b.c = 1\n",
    "inf",
    "nan",
    "0x",
    "1__0",
    "[",
    "]",
    "{",
    "}",
    "=",
    '"',
    "'",
    "#",
    "\n\n",
    "\\",
    ",",
)

SWAP_VALUES = (
    '"text"',
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "nan",
    "inf",
    "-inf",
    "[]",
    "[1, 2]",
    '["a"]',
    "[true]",
    "[[1]]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "0000-01-01",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    '""',
    "'literal'",
    "0x10",
    "1e400",
    "-" + "9" * 400,
    "[" + "9" * 400 + "]",
)

UNICODE_POOL = (
    "\x00",
    "\x01",
    "\x7f",
    "\t",
    "\r",
    "\ufeff",
    "\u202e",
    "\u200b",
    "\u00e9",
    "\u65e5",
    "\U0001f600",
    "\ud800",
    "\udfff",
    "\u2028",
)


# -- seeds -----------------------------------------------------------------------------------


def _random_record(rng: random.Random, hardware: str, nodeid: str) -> Record:
    magnitude = rng.choice([0.0, 1e-12, 1e-6, 1e-3, 1.0, 1e6])
    windows = rng.randint(1, 8)

    def samples() -> tuple[float, ...]:
        return tuple(magnitude * rng.uniform(0.5, 2.0) for _ in range(windows))

    runs = [RunSummary.of(samples(), rng.choice(["", "2026-11-30"])) for _ in range(3)]
    latest = samples()
    deterministic = rng.random() < 0.2
    return Record(
        nodeid=nodeid,
        provenance=Provenance(
            meter=rng.choice(["nvml", "rapl", "codecarbon", "scripted", 'my "meter"']),
            hardware=hardware,
            estimated=deterministic or rng.random() < 0.3,
            deterministic=deterministic,
            target="H100-SXM" if deterministic else None,
            engine=rng.choice([None, "eager"]) if deterministic else None,
        ),
        samples=latest,
        work=Work(
            rng.choice([1, 8, 512, 2**40]),
            rng.choice([None, 1, 16384]),
            rng.choice([None, None, 4]),
        ),
        runs=(*runs[: rng.randint(0, 3)], RunSummary.of(latest, "2026-12-01")),
        version=rng.choice(["0.1.0", "", "1.0.0rc1"]),
    ).stored()


def _older_schema(baseline: Baseline, version: int, tomli_w: ModuleType) -> str:
    """``baseline`` in the layout of the schema-1 writer (no runs) or schema 2 (runs as
    inline tables), both of which wrote a unit per entry and no deterministic flag."""
    hardware: dict[str, dict[str, dict[str, object]]] = {}
    for hw, tests in sorted(baseline.entries.items()):
        for nodeid in sorted(tests):
            plain = tests[nodeid].to_plain()
            entry: dict[str, object] = {"unit": "kWh/1000 inferences"}
            keys = ("kwh_per_1000", "samples", "meter", "estimated", "inferences", "tokens")
            entry.update({k: plain[k] for k in keys if plain[k] is not None})
            entry["pytest_energy_version"] = plain["pytest_energy_version"]
            if version >= 2:
                entry["runs"] = plain["runs"]
            hardware.setdefault(hw, {})[nodeid] = entry
    document = {"schema_version": version, "hardware": hardware}
    return f"# pytest-energy baseline, schema {version}\n" + tomli_w.dumps(document)


def seeds(rng: random.Random, generated: int = 20) -> list[tuple[bytes, Baseline]]:
    """Valid baseline files and the entries each one holds."""
    import tomli_w

    out: list[tuple[bytes, Baseline]] = []
    for index in range(generated):
        entries: dict[str, dict[str, Record]] = {}
        for hw in rng.sample(HARDWARE, rng.randint(1, 3)):
            for nodeid in rng.sample(NODE_IDS, rng.randint(1, 4)):
                entries.setdefault(hw, {})[nodeid] = _random_record(rng, hw, nodeid)
        baseline = Baseline(entries)
        text = dumps(baseline)
        if parse(text, Path(BASELINE_NAME)) != baseline:
            raise AssertionError(f"seed {index} does not read back as written:\n{text}")
        out.append((text.encode("utf-8"), baseline))
        if index % 4 in (1, 2):  # some in the layouts of the older writers
            old = _older_schema(baseline, index % 4, tomli_w)
            out.append((old.encode("utf-8"), parse(old, Path(BASELINE_NAME))))
    for text in HAND_WRITTEN:
        out.append((text.encode("utf-8"), parse(text, Path(BASELINE_NAME))))
    return out


# -- mutations -------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


def benign(rng: random.Random, text: str) -> tuple[str, str]:
    """An edit that keeps the meaning: (name, new text)."""
    kind = rng.choice(["comment", "blank-lines", "crlf", "trailing-space"])
    lines = _lines(text)
    if kind == "comment":
        at = rng.randint(0, len(lines))
        lines.insert(at, rng.choice(["# a comment\n", '# ünï ✓ [x] = "y"\n', "   # indented\n"]))
    elif kind == "blank-lines":
        for _ in range(rng.randint(1, 4)):
            lines.insert(rng.randint(0, len(lines)), "\n")
    elif kind == "crlf":
        return kind, text.replace("\n", "\r\n")
    else:  # no seed has a multi-line string, so every line may end in blanks
        lines = [line[:-1] + " \t\n" if line.endswith("\n") else line for line in lines]
    return kind, "".join(lines)


def _byte_flip(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if buf:
            i = rng.randrange(len(buf))
            buf[i] ^= rng.randint(1, 255)
    return bytes(buf)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def _insert_fragment(rng: random.Random, data: bytes) -> bytes:
    fragment = rng.choice(FRAGMENTS).encode("utf-8")
    text_lines = data.splitlines(keepends=True)
    if text_lines and rng.random() < 0.6:  # at a line start: a new statement
        at = rng.randint(0, len(text_lines))
        return b"".join(text_lines[:at]) + fragment + b"".join(text_lines[at:])
    at = rng.randint(0, len(data))
    return data[:at] + fragment + data[at:]


def _type_swap(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if b" = " in line]
    if not candidates:
        return _insert_fragment(rng, data)
    i = rng.choice(candidates)
    key = lines[i].split(b" = ", 1)[0]
    lines[i] = key + b" = " + rng.choice(SWAP_VALUES).encode("utf-8") + b"\n"
    return b"".join(lines)


def _unicode(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 5)):
        char = rng.choice(UNICODE_POOL) if rng.random() < 0.7 else chr(rng.randrange(0x110000))
        at = rng.randint(0, len(data))
        data = data[:at] + char.encode("utf-8", "surrogatepass") + data[at:]
    return data


def _line_op(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    if len(lines) < 2:
        return _truncate(rng, data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choice(["delete", "duplicate", "swap"])
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


MUTATORS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "byte-flip": _byte_flip,
    "truncate": _truncate,
    "insert-fragment": _insert_fragment,
    "type-swap": _type_swap,
    "unicode": _unicode,
    "line-op": _line_op,
}


# -- running ---------------------------------------------------------------------------------


@dataclass
class Crash:
    mutations: str
    error: str
    data: bytes


@dataclass
class FuzzReport:
    count: int = 0
    seeds: int = 0
    benign_ok: int = 0
    benign_failed: list[str] = field(default_factory=list)
    loaded: int = 0
    accepted_invalid: list[str] = field(default_factory=list)
    """Loaded, but invalid once loaded, or text that ``tomllib`` rejects."""
    rejected: int = 0
    unclear: list[str] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    refused_valid_toml: list[str] = field(default_factory=list)
    """Refused as not TOML although ``tomllib`` reads it."""
    line_ends_differ: list[str] = field(default_factory=list)
    """Loaded with LF and refused with CRLF line ends, or the other way round."""
    crlf_checked: int = 0
    tomllib_checked: int = 0
    modified: int = 0
    by_mutation: Counter[str] = field(default_factory=Counter)
    rejected_by_mutation: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def hostile(self) -> int:
        return self.count - self.benign_ok - len(self.benign_failed)

    @property
    def clean(self) -> bool:
        return not (
            self.crashes
            or self.unclear
            or self.accepted_invalid
            or self.benign_failed
            or self.refused_valid_toml
            or self.line_ends_differ
            or self.modified
        )

    def lines(self) -> list[str]:
        out = [
            f"baseline files fuzzed: {self.count} from {self.seeds} valid seeds "
            f"({self.seconds:.1f} s)",
            f"  benign edits (must load unchanged in meaning): {self.benign_ok} loaded correctly, "
            f"{len(self.benign_failed)} failed",
            f"  hostile mutations: {self.hostile}",
            f"    still a valid baseline, loaded: {self.loaded} "
            f"({len(self.accepted_invalid)} of them invalid once loaded or refused by tomllib)",
            f"    rejected with BaselineError naming file, cause and fix: {self.rejected}",
            f"    rejected with BaselineError lacking file or fix: {len(self.unclear)}",
            f"    raised anything else: {len(self.crashes)}",
            f"    refused as not TOML although tomllib reads it: {len(self.refused_valid_toml)} "
            f"(of {self.tomllib_checked} checked)",
            f"    other outcome with CRLF line ends: {len(self.line_ends_differ)} "
            f"(of {self.crlf_checked} checked)",
        ]
        for crash in self.crashes[:10]:
            out.append(f"      CRASH after {crash.mutations}: {crash.error}")
        for problem in (
            self.benign_failed + self.unclear + self.accepted_invalid + self.refused_valid_toml
        )[:10] + self.line_ends_differ[:10]:
            out.append(f"      {problem[:300]}")
        out.append(f"  files modified by load(): {self.modified}")
        out.append(
            "  mutations applied (rejected): "
            + ", ".join(
                f"{name} {self.by_mutation[name]} ({self.rejected_by_mutation[name]})"
                for name in MUTATORS
            )
        )
        return out


def _is_clear(message: str, path: Path) -> bool:
    return message.startswith(f"energy baseline {path}: ") and any(
        phrase in message for phrase in FIX_PHRASES
    )


def _problems_once_loaded(baseline: Baseline) -> str:
    for tests in baseline.entries.values():
        for entry in tests.values():
            if not entry.samples or any(not (0 <= x < float("inf")) for x in entry.samples):
                return f"samples {entry.samples!r}"
            if not entry.meter:
                return "empty meter"
    again = parse(dumps(baseline), Path(BASELINE_NAME))
    non_empty = {hw: tests for hw, tests in baseline.entries.items() if tests}
    return "" if again.entries == non_empty else "does not survive dumps -> parse"


def _tomllib_reads(data: bytes) -> bool | None:
    """Whether the standard library's reader accepts ``data`` (``None``: no tomllib)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return None
    try:
        tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def _outcome(data: bytes) -> str:
    """ "loaded" or "rejected" for ``data`` read from memory (the CRLF twin of a case)."""
    try:
        parse(data.decode("utf-8"), Path(BASELINE_NAME))
    except (BaselineError, UnicodeDecodeError):
        return "rejected"
    return "loaded"


def _overwrite(path: Path, data: bytes) -> None:
    """Replace the file's bytes in place: ext4 flushes a file truncated on open, which is slow."""
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()


def _check_hostile(report: FuzzReport, label: str, data: bytes, outcome: str, error: str) -> None:
    """The two cross-checks of a hostile case: tomllib agrees, and line ends do not matter."""
    reads = _tomllib_reads(data)
    if reads is not None:
        report.tomllib_checked += 1
        if outcome == "loaded" and not reads:
            report.accepted_invalid.append(f"{label}: loaded, but tomllib rejects the text")
        if outcome == "rejected" and reads and NOT_TOML in error:
            report.refused_valid_toml.append(f"{label}: {error}")
    # a bare CR already in the text, or a multi-line string, would change with the line ends
    if b"\r" not in data and b'"""' not in data and b"'''" not in data:
        report.crlf_checked += 1
        crlf = _outcome(data.replace(b"\n", b"\r\n"))
        if crlf != outcome:
            report.line_ends_differ.append(f"{label}: {outcome} with LF, {crlf} with CRLF")


def fuzz(count: int, seed: int = 0, directory: Path | None = None) -> FuzzReport:
    """Generate and check ``count`` cases; about one in eight is benign."""
    rng = random.Random(seed)
    pool = seeds(rng)
    report = FuzzReport(seeds=len(pool))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = (directory or Path(scratch)) / BASELINE_NAME
        path.write_bytes(b"")
        for index in range(count):
            data, expected = pool[index % len(pool)] if index < len(pool) else rng.choice(pool)
            is_benign = index < len(pool) or rng.random() < 0.125
            if is_benign:
                names = ["unchanged"] if index < len(pool) else []
                if not names:
                    name, text = benign(rng, data.decode("utf-8"))
                    names, data = [name], text.encode("utf-8")
            else:
                names = rng.sample(list(MUTATORS), rng.randint(1, 3))
                for name in names:
                    data = MUTATORS[name](rng, data)
                    report.by_mutation[name] += 1
            label = "+".join(names)
            _overwrite(path, data)
            report.count += 1
            try:
                loaded = load(path)
            except BaselineError as exc:
                if is_benign:
                    report.benign_failed.append(f"{label}: {exc}")
                elif _is_clear(str(exc), path):
                    report.rejected += 1
                    for name in names:
                        report.rejected_by_mutation[name] += 1
                    _check_hostile(report, label, data, "rejected", str(exc))
                else:
                    report.unclear.append(f"{label}: {exc}")
            except Exception as exc:  # what the fuzzer is looking for
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                report.crashes.append(Crash(label, error, data))
            else:
                if is_benign:
                    if loaded == expected:
                        report.benign_ok += 1
                    else:
                        report.benign_failed.append(f"{label}: loaded different entries")
                else:
                    report.loaded += 1
                    problem = _problems_once_loaded(loaded)
                    if problem:
                        report.accepted_invalid.append(f"{label}: {problem}")
                    _check_hostile(report, label, data, "loaded", "")
            if path.read_bytes() != data:
                report.modified += 1
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="cases (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = fuzz(args.count, args.seed)
    print("\n".join(report.lines()))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
