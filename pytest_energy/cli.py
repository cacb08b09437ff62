"""The ``pytest-energy`` command: look at baselines and reports without running pytest.

``show [BASELINE]``
    What a baseline holds, by hardware and test.
``compare OLD NEW``
    Compare two JSON reports, or a report with a baseline, by the gate's rule.
``merge OUT IN...``
    Merge baselines and reports from several CI jobs into the baseline OUT, keeping OUT's
    other entries (``--replace``: OUT holds only the inputs' entries).
``targets``
    The GPU profiles the ``roofline`` meter can model (``--energy-target``).

Exit status: 0 success; 1 a regression (``compare``) or a conflict (``merge``); 2 bad
input (missing or corrupt file, bad option), in which case nothing is written. Output cut
short by a closed pipe (``show | head``) ends quietly with status 141, as POSIX tools do.
"""

from __future__ import annotations

import argparse
import configparser
import errno
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import __version__, gate
from . import baseline as baseline_io
from . import settings as settings_mod
from .baseline import Baseline, Update
from .errors import BaselineError, ConfigError
from .record import Record
from .report.common import ReportError, fmt_num
from .report.json import Report, load_report
from .settings import (
    DEFAULT_ALPHA,
    DEFAULT_BASELINE_NAME,
    DEFAULT_DETERMINISTIC_TOLERANCE_PCT,
    DEFAULT_TOLERANCE_PCT,
    Settings,
    parse_percent,
    parse_probability,
)
from .stats import coefficient_of_variation, median
from .verdict import BASELINE, NEW, Verdict, judge

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 128 + 13  # killed by SIGPIPE, as the shell reports it


class InputError(Exception):
    """A command-line input cannot be used; the message names the cause and the fix."""


@dataclass(frozen=True)
class Source:
    """A baseline or report, as records keyed by hardware then node id."""

    path: Path
    kind: str
    """"report" or "baseline"."""
    entries: dict[str, dict[str, Record]]
    run: Mapping[str, object] = field(default_factory=dict)
    """A report's ``run`` object (tolerance_pct, alpha ...); empty for a baseline."""
    recording: dict[tuple[str, str], str] = field(default_factory=dict)
    """For a report: how --energy-update-baseline would have recorded each test (``append``,
    ``replace`` or ``""``: not at all, for a test that failed, went over budget or
    regressed)."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "report"
    if suffix == ".toml":
        return "baseline"
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:256].lstrip()
    except OSError:
        return "baseline"
    return "report" if head.startswith("{") else "baseline"


def _missing(path: Path) -> InputError:
    return InputError(
        f"{path} does not exist. Check the path; a baseline is written by "
        "pytest --energy-update-baseline and a report by pytest --energy-json=PATH."
    )


def read_source(path: Path) -> Source:
    """Read a baseline (TOML) or a report (JSON), telling them apart by extension or content."""
    if not path.exists():
        raise _missing(path)
    kind = _kind(path)
    if kind == "baseline":
        try:
            loaded = baseline_io.load(path)
        except BaselineError as exc:
            raise InputError(str(exc)) from None
        return Source(path, kind, {hw: dict(tests) for hw, tests in loaded.entries.items()})
    try:
        report = load_report(path)
    except ReportError as exc:
        raise InputError(str(exc)) from None
    return _report_source(path, report)


def _report_source(path: Path, report: Report) -> Source:
    """A report's baseline-checked records (``energy.compare`` results are not baselines)."""
    entries: dict[str, dict[str, Record]] = {}
    recording: dict[tuple[str, str], str] = {}
    for reported in report.results:
        if reported.check != BASELINE:
            continue
        record = reported.record
        entries.setdefault(record.hardware, {})[record.nodeid] = record
        verdict = Verdict(status=reported.verdict or NEW, check=reported.check)
        # a report of 0.2 says no outcome: a failing verdict failed its test
        outcome = reported.outcome or ("failed" if verdict.failed else "passed")
        recording[(record.hardware, record.nodeid)] = gate.recording(verdict, outcome)
    return Source(path, "report", entries, dict(report.run), recording)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], out: TextIO
) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    lines = [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]
    out.write("\n".join(lines) + "\n")  # one write: a 50,000-row table is one syscall


# -- show ---------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    path: Path = args.baseline
    if not path.exists():
        raise _missing(path)
    source = read_source(path)
    if source.kind != "baseline":
        raise InputError(
            f"{path} is a JSON report, not a baseline. Pass a baseline .toml file, or turn "
            f"reports into one with: pytest-energy merge energy-baseline.toml {path}"
        )
    count = sum(len(tests) for tests in source.entries.values())
    print(
        f"{path}: {count} entr{'y' if count == 1 else 'ies'} on {len(source.entries)} hardware",
        file=out,
    )
    for hardware in sorted(source.entries):
        tests = source.entries[hardware]
        print(file=out)
        print(f"[{hardware}]", file=out)
        rows = [
            [
                nodeid,
                fmt_num(e.kwh_per_1000),
                str(len(e.samples)),
                str(e.inferences),
                "-" if e.tokens is None else str(e.tokens),
                "-" if e.images is None else str(e.images),
                e.meter,
                e.figures,
                e.version or "-",
                *_runs(e),
            ]
            for nodeid, e in sorted(tests.items())
        ]
        _table(
            [
                *("test", "kWh/1000", "windows", "inferences", "tokens", "images", "meter"),
                *("figures", "version", "runs", "run spread", "run medians (oldest first)"),
                "last run",
            ],
            rows,
            {1, 2, 3, 4, 5, 9, 10},
            out,
        )
    return EXIT_OK


def _runs(entry: Record) -> list[str]:
    """The entry's recorded runs: count, run-to-run spread, medians and the last date."""
    medians = [run.kwh_per_1000 for run in entry.runs]
    spread = "-"
    if len(medians) >= 2:
        center = median(medians)
        if center > 0:
            spread = f"{coefficient_of_variation(medians) * 100:.2g}%"
    dates = [run.date for run in entry.runs if run.date]
    return [
        str(len(entry.runs)),
        spread,
        " ".join(fmt_num(x) for x in medians),
        dates[-1] if dates else "-",
    ]


# -- compare ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    nodeid: str
    hardware: str
    old: float | None
    new: float | None
    change: str
    verdict: str
    rule: str = "-"
    compared: bool = False
    regressed: bool = False


def compare_sources(old: Source, new: Source, settings: Settings) -> list[Row]:
    """One row per test of ``new`` (and per test only in ``old``), judged as the plugin
    judges: :func:`pytest_energy.verdict.judge` by the rule ``settings`` build for the
    record's kind of figures."""
    rows: list[Row] = []
    for hardware in sorted(new.entries):
        for nodeid, record in sorted(new.entries[hardware].items()):
            before = old.entries.get(hardware, {}).get(nodeid)
            if before is None:
                elsewhere = sorted(hw for hw, tests in old.entries.items() if nodeid in tests)
                verdict = (
                    f"not comparable: OLD has it only on {'; '.join(elsewhere)}"
                    if elsewhere
                    else "new: not in OLD"
                )
                rows.append(Row(nodeid, hardware, None, record.kwh_per_1000, "-", verdict))
                continue
            rule = settings.rule(deterministic=record.deterministic, estimated=record.estimated)
            judged = judge(record, before, rule)
            c = judged.comparison
            if c is None:
                verdict = f"not comparable: {judged.note}"
                rows.append(
                    Row(nodeid, hardware, before.kwh_per_1000, record.kwh_per_1000, "-", verdict)
                )
                continue
            change = f"{c.change_pct:+.1f}%" if math.isfinite(c.change_pct) else "+inf%"
            rows.append(
                Row(
                    nodeid,
                    hardware,
                    before.kwh_per_1000,
                    record.kwh_per_1000,
                    change,
                    judged.status + (" (low confidence)" if c.low_confidence else ""),
                    rule=f"{c.rule} {c.tolerance_pct:g}%",
                    compared=True,
                    regressed=judged.regressed,
                )
            )
    for hardware in sorted(old.entries):
        for nodeid, record in sorted(old.entries[hardware].items()):
            if nodeid not in new.entries.get(hardware, {}):
                rows.append(
                    Row(nodeid, hardware, record.kwh_per_1000, None, "-", "missing: not in NEW")
                )
    return rows


_INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def ini_values(path: Path) -> dict[str, str]:
    """The pytest ini options in ``path`` (pytest.ini, tox.ini, setup.cfg or pyproject.toml)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}). Check --ini.") from None
    if path.suffix == ".toml":
        import tomli

        try:
            data = tomli.loads(text)
        except tomli.TOMLDecodeError as exc:
            raise InputError(f"{path} is not valid TOML ({exc}).") from None
        options = data.get("tool", {}).get("pytest", {}).get("ini_options", {})
        return {str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise InputError(f"{path} cannot be parsed ({exc}).") from None
    section = "tool:pytest" if path.name == "setup.cfg" else "pytest"
    return dict(parser[section]) if parser.has_section(section) else {}


def find_ini(directory: Path) -> Path | None:
    """The first pytest configuration file in ``directory`` that has a pytest section."""
    for name in _INI_FILES:
        candidate = directory / name
        if candidate.is_file() and (name in ("pytest.ini", ".pytest.ini") or ini_values(candidate)):
            return candidate
    return None


#: The options a report's ``run`` records, by option name.
_RECORDED = {"tolerance": "tolerance_pct", "alpha": "alpha", "run_spread": "run_spread_pct"}


def resolve_settings(
    flags: Mapping[str, str | None], ini_path: Path | None, sources: Sequence[Source]
) -> tuple[Settings, dict[str, str]]:
    """The settings that judge, resolved as the plugin resolves them
    (:func:`pytest_energy.settings.resolve`): the command line (``flags``), else the pytest
    configuration (``ini_path``), else the values a report recorded (NEW's, then OLD's),
    else the defaults. Returns them and where each rule setting came from."""
    ini = ini_values(ini_path) if ini_path is not None else {}
    where: dict[str, str] = {}

    def cli(opt: settings_mod.Option) -> str | None:
        value = flags.get(opt.name)
        if value is not None:
            where[opt.name] = f"--{opt.name.replace('_', '-')}"
        return value

    def config(opt: settings_mod.Option) -> str | None:
        if opt.dest in ini:
            where.setdefault(opt.name, f"{opt.dest} in {ini_path}")
            return ini[opt.dest]
        key = _RECORDED.get(opt.name)
        for source in sources:
            value = source.run.get(key) if key else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                where.setdefault(opt.name, f"recorded in {source.path}")
                return repr(float(value))
        return None

    cwd = Path.cwd()
    try:
        resolved = settings_mod.resolve(cli, config, invocation_dir=cwd, rootdir=cwd)
    except ConfigError as exc:
        raise InputError(f"{exc}") from None
    return resolved, where


def _rule_line(settings: Settings, where: Mapping[str, str]) -> str:
    if settings.tolerance_pct is not None:
        tolerance = f"tolerance {settings.tolerance_pct:g}% ({where.get('tolerance', 'given')})"
    else:
        tolerance = (
            f"tolerance {DEFAULT_TOLERANCE_PCT:g}% for measured and estimated figures, "
            f"{DEFAULT_DETERMINISTIC_TOLERANCE_PCT:g}% for modelled ones (default)"
        )
    alpha = f"alpha {settings.alpha:g} ({where.get('alpha', 'default')})"
    return (
        f"rule: the gate's, per record: {tolerance}; {alpha}; the one-sided U test and "
        "the prediction bound of the recorded runs, or for a deterministic meter the median "
        "ratio alone"
    )


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    old = read_source(args.old)
    new = read_source(args.new)
    ini_path: Path | None = args.ini if args.ini is not None else find_ini(Path.cwd())
    flags = {
        name: None if value is None else repr(value)
        for name, value in (
            ("tolerance", args.tolerance),
            ("alpha", args.alpha),
            ("run_spread", args.run_spread),
        )
    }
    settings, where = resolve_settings(flags, ini_path, (new, old))
    rows = compare_sources(old, new, settings)
    print(f"OLD: {old.path} ({old.kind})", file=out)
    print(f"NEW: {new.path} ({new.kind})", file=out)
    print(_rule_line(settings, where), file=out)
    print(file=out)
    if not rows:
        print("Neither input holds any test.", file=out)
        return EXIT_OK
    _table(
        ["test", "hardware", "OLD kWh/1000", "NEW kWh/1000", "change", "rule", "verdict"],
        [
            [r.nodeid, r.hardware, fmt_num(r.old), fmt_num(r.new), r.change, r.rule, r.verdict]
            for r in rows
        ],
        {2, 3, 4},
        out,
    )
    regressed = sum(1 for r in rows if r.regressed)
    compared = sum(1 for r in rows if r.compared)
    print(file=out)
    if regressed:
        print(f"{regressed} regression(s) in {compared} compared test(s).", file=out)
        return EXIT_FOUND
    print(f"No regression in {compared} compared test(s).", file=out)
    return EXIT_OK


# -- merge --------------------------------------------------------------------------------


@dataclass
class Merge:
    """What the inputs of ``merge`` ask to store, and what they may not."""

    updates: dict[tuple[str, str], Update] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)
    """Tests of a report that --energy-update-baseline would not record."""


def merge_sources(sources: Sequence[Source]) -> Merge:
    """The updates the inputs ask for, as --energy-update-baseline would make them.

    A report's test is recorded as the plugin records it (:func:`pytest_energy.gate.recording`:
    a passing ``ok`` or ``new`` run is appended to the entry's history, an accepted new level
    replaces it, and a test that failed, went over budget or regressed is not recorded); a
    baseline input's entry comes with its history. The same test on the same hardware may
    come from several inputs only with the same figures (a baseline and the report of the
    run that wrote it): the one with the longer history is kept. Different figures are a
    conflict, and no entry is chosen.
    """
    merge = Merge()
    origin: dict[tuple[str, str], Path] = {}
    for source in sources:
        for hardware, tests in source.entries.items():
            for nodeid, record in tests.items():
                key = (hardware, nodeid)
                if source.kind == "report":
                    how = source.recording.get(key, "append")
                    if not how:
                        merge.not_recorded.append(f"{nodeid} on {hardware} ({source.path})")
                        continue
                    update = Update(record, replace_history=how == "replace", known_run=True)
                else:
                    update = Update(record, replace_history=True)
                held = merge.updates.get(key)
                if held is None:
                    merge.updates[key] = update
                    origin[key] = source.path
                elif not held.record.same_figures(record):
                    merge.conflicts.append(
                        f"{nodeid} on {hardware}: {origin[key]} has "
                        f"{fmt_num(held.record.kwh_per_1000)} kWh/1000 from "
                        f"{len(held.record.samples)} window(s) ({held.record.meter}), "
                        f"{source.path} has {fmt_num(record.kwh_per_1000)} from "
                        f"{len(record.samples)} window(s) ({record.meter})"
                    )
                elif len(record.runs) > len(held.record.runs):
                    merge.updates[key] = update
                    origin[key] = source.path
    return merge


def _merge_target(out_path: Path, inputs: Sequence[Path], replace_all: bool) -> Baseline | None:
    """OUT read as a baseline (None when it does not exist yet or ``--replace``).

    Refuses an OUT that is a JSON report, or any file that is not a baseline: forgetting OUT
    (``merge a.json b.json``) must not write TOML over a report.
    """
    as_input = any(_same_file(out_path, path) for path in inputs)
    if out_path.suffix.lower() == ".json" or (out_path.exists() and _kind(out_path) != "baseline"):
        hint = (
            " It is also listed as an input: did you forget OUT?"
            if as_input
            else " Did you forget OUT?"
        )
        what = "is a JSON report" if out_path.exists() else "names a JSON report (.json)"
        raise InputError(
            f"OUT {out_path} {what}, not a baseline; refusing to write a baseline over "
            f"it.{hint} Usage: pytest-energy merge OUT.toml IN... , e.g. "
            f"pytest-energy merge energy-baseline.toml {' '.join(map(str, inputs))}"
        )
    if not out_path.exists():
        return None
    if out_path.is_dir() or not out_path.is_file():
        raise InputError(f"OUT {out_path} is not a regular file. Pass a baseline .toml path.")
    try:
        target = baseline_io.load(out_path)  # a corrupt OUT stops here, before any write
    except BaselineError as exc:
        raise InputError(str(exc)) from None
    return None if replace_all else target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def cmd_merge(args: argparse.Namespace, out: TextIO) -> int:
    out_path: Path = args.out
    target = _merge_target(out_path, args.inputs, args.replace)
    # OUT listed as an input too is already the base of the merge (unless --replace).
    inputs = [p for p in args.inputs if target is None or not _same_file(p, out_path)]
    if target is None and not inputs:
        raise InputError(f"nothing to merge: the only input is OUT {out_path} itself.")
    sources = [read_source(path) for path in inputs]
    ini_path: Path | None = args.ini if args.ini is not None else find_ini(Path.cwd())
    settings, _ = resolve_settings({}, ini_path, ())
    merge = merge_sources(sources)
    if merge.conflicts:
        print(
            f"pytest-energy merge: {len(merge.conflicts)} conflict(s); {out_path} was not "
            "written. Each test may come from one input per hardware (identical copies are "
            "fine); drop the stale input or re-run that job.",
            file=out,
        )
        for line in merge.conflicts:
            print(f"  conflict: {line}", file=out)
        return EXIT_FOUND
    longest = max((len(u.record.runs) for u in merge.updates.values()), default=1)
    history = max(settings.history, longest)
    try:
        if args.replace:
            written = Baseline().merged(merge.updates, history=history)
            baseline_io.replace_all(out_path, written, lock_timeout_s=settings.lock_timeout_s)
        else:
            written = baseline_io.update(
                out_path,
                merge.updates,
                history=history,
                lock_timeout_s=settings.lock_timeout_s,
                on_wait=lambda message: print(f"pytest-energy merge: {message}", file=sys.stderr),
            )
    except BaselineError as exc:
        raise InputError(str(exc)) from None
    kept = len(written) - len(merge.updates)
    kept_text = f", {kept} of them kept from {out_path}" if target is not None else ""
    print(
        f"wrote {len(written)} entr{'y' if len(written) == 1 else 'ies'} on "
        f"{sum(1 for tests in written.entries.values() if tests)} hardware to {out_path} "
        f"(from {len(sources)} input(s){kept_text})",
        file=out,
    )
    if merge.not_recorded:
        print(
            f"not recorded: {len(merge.not_recorded)} test(s) that failed, went over budget or "
            "regressed, as --energy-update-baseline would not record them:",
            file=out,
        )
        for line in merge.not_recorded:
            print(f"  {line}", file=out)
    return EXIT_OK


# -- targets ------------------------------------------------------------------------------


def cmd_targets(args: argparse.Namespace, out: TextIO) -> int:
    from .meters import SUMMARY
    from .meters.auto import ESTIMATE, SENSORS
    from .meters.roofline import targets_table

    for line in targets_table():
        print(line, file=out)
    print(file=out)
    print(f"meters (--energy-meter): auto tries {', '.join(SENSORS)}, then {ESTIMATE}", file=out)
    width = max(map(len, SUMMARY))
    for name, what in SUMMARY.items():
        print(f"  {name.ljust(width)}  {what}", file=out)
    return EXIT_OK


# -- entry point --------------------------------------------------------------------------


def _option(parse: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse ``type`` that reports a parser's ConfigError as a usage error."""

    def convert(text: str) -> float:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pytest-energy",
        description="Inspect, compare and merge pytest-energy baselines and JSON reports.",
        epilog="Exit status: 0 ok, 1 regression or conflict found, 2 bad input.",
    )
    top.add_argument("--version", action="version", version=f"pytest-energy {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    show = commands.add_parser("show", help="list what a baseline holds, by hardware and test")
    show.add_argument(
        "baseline",
        nargs="?",
        type=Path,
        default=Path(DEFAULT_BASELINE_NAME),
        metavar="BASELINE",
        help=f"baseline TOML file (default: ./{DEFAULT_BASELINE_NAME})",
    )
    show.set_defaults(run=cmd_show)

    cmp = commands.add_parser(
        "compare",
        help="compare two JSON reports, or a report with a baseline; exit 1 on a regression",
    )
    cmp.add_argument("old", type=Path, metavar="OLD", help="report (.json) or baseline (.toml)")
    cmp.add_argument("new", type=Path, metavar="NEW", help="report (.json) or baseline (.toml)")
    cmp.add_argument(
        "--tolerance",
        type=_option(parse_percent),
        default=None,
        metavar="PCT",
        help="allowed regression in percent (default: energy_tolerance from --ini or the "
        "pytest configuration in the current directory, else the tolerance recorded in NEW's "
        f"or OLD's report, else {DEFAULT_TOLERANCE_PCT:g}, or "
        f"{DEFAULT_DETERMINISTIC_TOLERANCE_PCT:g} for a deterministic meter)",
    )
    cmp.add_argument(
        "--alpha",
        type=_option(parse_probability),
        default=None,
        metavar="P",
        help="significance level of the gate's one-sided tests (default: as for --tolerance, "
        f"energy_alpha, then the reports, else {DEFAULT_ALPHA:g})",
    )
    cmp.add_argument(
        "--run-spread",
        type=_option(parse_percent),
        default=None,
        metavar="PCT",
        help="prior run-to-run spread in percent (default: as for --tolerance; else 2 for "
        "measured and 5 for estimated figures)",
    )
    cmp.add_argument(
        "--ini",
        type=Path,
        default=None,
        metavar="PATH",
        help="pytest configuration file (pytest.ini, pyproject.toml, tox.ini, setup.cfg) to read "
        "energy_tolerance, energy_alpha and energy_run_spread from (default: the one in the "
        "current directory)",
    )
    cmp.set_defaults(run=cmd_compare)

    merge = commands.add_parser(
        "merge",
        help="merge baselines and reports into the baseline OUT, keeping its other entries; "
        "exit 1 on conflicting entries",
    )
    merge.add_argument(
        "out",
        type=Path,
        metavar="OUT",
        help="baseline TOML file to update (created if missing; never a JSON report)",
    )
    merge.add_argument(
        "inputs", type=Path, nargs="+", metavar="IN", help="baselines (.toml) and reports (.json)"
    )
    merge.add_argument(
        "--replace",
        action="store_true",
        help="drop OUT's existing entries: OUT holds only the inputs' entries",
    )
    merge.add_argument(
        "--ini",
        type=Path,
        default=None,
        metavar="PATH",
        help="pytest configuration file to read energy_history and energy_lock_timeout from "
        "(default: the one in the current directory)",
    )
    merge.set_defaults(run=cmd_merge)

    targets = commands.add_parser(
        "targets",
        help="list the GPU profiles the roofline meter models (--energy-target) and the meters",
    )
    targets.set_defaults(run=cmd_targets)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        code: int = args.run(args, sys.stdout)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except InputError as exc:
        print(f"pytest-energy {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        return _broken_pipe()
    return code


def _broken_pipe() -> int:
    """The reader went away (``show | head``): stop quietly, as POSIX tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit must not fail again
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
