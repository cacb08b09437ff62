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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from . import __version__
from . import baseline as baseline_io
from .baseline import Baseline, BaselineEntry
from .errors import BaselineError, ConfigError
from .report.common import ReportError
from .report.json import Report, load_report
from .results import fmt_num
from .settings import (
    DEFAULT_ALPHA,
    DEFAULT_BASELINE_NAME,
    DEFAULT_TOLERANCE_PCT,
    parse_percent,
    parse_probability,
)
from .stats import (
    DEFAULT_RUN_SPREAD_PCT,
    Status,
    coefficient_of_variation,
    compare,
    median,
    round_sample,
)

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 128 + 13  # killed by SIGPIPE, as the shell reports it


class InputError(Exception):
    """A command-line input cannot be used; the message names the cause and the fix."""


@dataclass(frozen=True)
class Source:
    """A baseline or report, as baseline entries keyed by hardware then node id."""

    path: Path
    kind: str
    """"report" or "baseline"."""
    entries: dict[str, dict[str, BaselineEntry]]
    run: Mapping[str, object] = field(default_factory=dict)
    """A report's ``run`` object (tolerance_pct, alpha ...); empty for a baseline."""


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
    return Source(path, kind, report_entries(report), dict(report.run))


def report_entries(report: Report) -> dict[str, dict[str, BaselineEntry]]:
    """A report's records as baseline entries, samples rounded as the baseline rounds them."""
    entries: dict[str, dict[str, BaselineEntry]] = {}
    for record in report.records:
        entries.setdefault(record.hardware, {})[record.nodeid] = BaselineEntry(
            samples=tuple(round_sample(x) for x in record.samples),
            meter=record.meter,
            estimated=record.estimated,
            pytest_energy_version=report.version,
            inferences=record.inferences,
            tokens=record.tokens,
        )
    return entries


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
                e.meter,
                "yes" if e.estimated else "no",
                e.pytest_energy_version or "-",
                *_runs(e),
            ]
            for nodeid, e in sorted(tests.items())
        ]
        _table(
            [
                *("test", "kWh/1000", "windows", "inferences", "meter", "estimated", "version"),
                *("runs", "run spread", "run medians (oldest first)", "last run"),
            ],
            rows,
            {1, 2, 3, 7, 8},
            out,
        )
    return EXIT_OK


def _runs(entry: BaselineEntry) -> list[str]:
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
    compared: bool = False
    regressed: bool = False


def compare_sources(old: Source, new: Source, *, tolerance_pct: float, alpha: float) -> list[Row]:
    """One row per test of ``new`` (and per test only in ``old``), judged by the gate's rule."""
    rows: list[Row] = []
    for hardware in sorted(new.entries):
        for nodeid, entry in sorted(new.entries[hardware].items()):
            before = old.entries.get(hardware, {}).get(nodeid)
            if before is None:
                elsewhere = sorted(hw for hw, tests in old.entries.items() if nodeid in tests)
                verdict = (
                    f"not comparable: OLD has it only on {'; '.join(elsewhere)}"
                    if elsewhere
                    else "new: not in OLD"
                )
                rows.append(Row(nodeid, hardware, None, entry.kwh_per_1000, "-", verdict))
                continue
            if not before.comparable(entry.meter, entry.estimated):
                verdict = (
                    f"not comparable: meter {before.meter}{' (estimated)' * before.estimated} "
                    f"in OLD, {entry.meter}{' (estimated)' * entry.estimated} in NEW"
                )
                rows.append(
                    Row(nodeid, hardware, before.kwh_per_1000, entry.kwh_per_1000, "-", verdict)
                )
                continue
            deterministic = _deterministic_meter(entry.meter)
            c = compare(
                entry.samples,
                before.samples,
                tolerance_pct=tolerance_pct,
                alpha=alpha,
                history=before.runs,
                run_spread_pct=None if deterministic else _prior_spread(entry),
                deterministic=deterministic,
            )
            change = f"{c.change_pct:+.1f}%" if math.isfinite(c.change_pct) else "+inf%"
            verdict = c.status.value + (" (low confidence)" if c.low_confidence else "")
            rows.append(
                Row(
                    nodeid,
                    hardware,
                    before.kwh_per_1000,
                    entry.kwh_per_1000,
                    change,
                    verdict,
                    compared=True,
                    regressed=c.status is Status.REGRESSED,
                )
            )
    for hardware in sorted(old.entries):
        for nodeid, entry in sorted(old.entries[hardware].items()):
            if nodeid not in new.entries.get(hardware, {}):
                rows.append(
                    Row(nodeid, hardware, entry.kwh_per_1000, None, "-", "missing: not in NEW")
                )
    return rows


def _deterministic_meter(name: str) -> bool:
    """Whether ``name`` is a built-in meter whose figures depend on the work alone."""
    from .meters import BUILTIN, resolve

    if name not in BUILTIN:
        return False
    try:
        return getattr(resolve(name), "deterministic", False) is True
    except ConfigError:
        return False


def _prior_spread(entry: BaselineEntry) -> float:
    """The gate's prior run-to-run spread for the entry's kind of meter."""
    return DEFAULT_RUN_SPREAD_PCT["estimated" if entry.estimated else "measured"]


_INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def ini_values(path: Path) -> dict[str, str]:
    """The pytest ini options in ``path`` (pytest.ini, tox.ini, setup.cfg or pyproject.toml)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}). Check --ini.") from None
    if path.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
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


def _from_run(
    sources: Sequence[Source], key: str, check: Callable[[str], float]
) -> tuple[float, str] | None:
    for source in sources:
        value = source.run.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return check(repr(float(value))), f"recorded in {source.path}"
            except ConfigError:
                continue
    return None


def resolve_rule(
    args: argparse.Namespace, new: Source, old: Source
) -> tuple[tuple[float, str], tuple[float, str]]:
    """(value, where it came from) for the tolerance and alpha: the option, else the value
    recorded in NEW's then OLD's report, else the ini's, else the default."""
    ini_path: Path | None = args.ini if args.ini is not None else find_ini(Path.cwd())
    ini = ini_values(ini_path) if ini_path is not None else {}
    rule = []
    for option, key, parse, default in (
        ("tolerance", "tolerance_pct", parse_percent, DEFAULT_TOLERANCE_PCT),
        ("alpha", "alpha", parse_probability, DEFAULT_ALPHA),
    ):
        given = getattr(args, option)
        if given is not None:
            rule.append((given, f"--{option}"))
            continue
        recorded = _from_run((new, old), key, parse)
        if recorded is not None:
            rule.append(recorded)
            continue
        ini_key = f"energy_{option}"
        if ini_key in ini:
            try:
                rule.append((parse(ini[ini_key]), f"{ini_key} in {ini_path}"))
            except ConfigError as exc:
                raise InputError(f"{ini_path}: {ini_key}: {exc}") from None
            continue
        rule.append((default, "default"))
    return rule[0], rule[1]


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    old = read_source(args.old)
    new = read_source(args.new)
    (tolerance, tolerance_from), (alpha, alpha_from) = resolve_rule(args, new, old)
    rows = compare_sources(old, new, tolerance_pct=tolerance, alpha=alpha)
    print(f"OLD: {old.path} ({old.kind})", file=out)
    print(f"NEW: {new.path} ({new.kind})", file=out)
    print(
        f"rule: tolerance {tolerance:g}% ({tolerance_from}), one-sided Mann-Whitney U at "
        f"alpha {alpha:g} ({alpha_from})",
        file=out,
    )
    print(file=out)
    if not rows:
        print("Neither input holds any test.", file=out)
        return EXIT_OK
    _table(
        ["test", "hardware", "OLD kWh/1000", "NEW kWh/1000", "change", "verdict"],
        [[r.nodeid, r.hardware, fmt_num(r.old), fmt_num(r.new), r.change, r.verdict] for r in rows],
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


def same_entry(a: BaselineEntry, b: BaselineEntry) -> bool:
    """Equal entries, samples compared at the baseline's 6 significant digits."""
    return replace(a, samples=tuple(map(round_sample, a.samples))) == replace(
        b, samples=tuple(map(round_sample, b.samples))
    )


def merge_sources(sources: Sequence[Source]) -> tuple[Baseline, list[str]]:
    """All entries of ``sources`` in one baseline, and a line per conflicting entry.

    The same test on the same hardware may appear in several inputs only when the entries
    are the same (samples compared at 6 significant digits, so a baseline and the JSON
    report of the run that wrote it agree); otherwise it is a conflict and no entry is chosen.
    """
    merged: dict[str, dict[str, BaselineEntry]] = {}
    origin: dict[tuple[str, str], Path] = {}
    conflicts: list[str] = []
    for source in sources:
        for hardware, tests in source.entries.items():
            for nodeid, entry in tests.items():
                held = merged.setdefault(hardware, {}).get(nodeid)
                if held is None:
                    merged[hardware][nodeid] = entry
                    origin[(hardware, nodeid)] = source.path
                elif not same_entry(held, entry):
                    conflicts.append(
                        f"{nodeid} on {hardware}: {origin[(hardware, nodeid)]} has "
                        f"{fmt_num(held.kwh_per_1000)} kWh/1000 from {len(held.samples)} window(s) "
                        f"({held.meter}), {source.path} has {fmt_num(entry.kwh_per_1000)} from "
                        f"{len(entry.samples)} window(s) ({entry.meter})"
                    )
    return Baseline(merged), conflicts


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
    merged, conflicts = merge_sources(sources)
    if conflicts:
        print(
            f"pytest-energy merge: {len(conflicts)} conflict(s); {out_path} was not written. "
            "Each test may come from one input per hardware (identical copies are fine); "
            "drop the stale input or re-run that job.",
            file=out,
        )
        for line in conflicts:
            print(f"  conflict: {line}", file=out)
        return EXIT_FOUND
    kept = 0
    if target is not None:
        # Entries of the inputs replace OUT's with their own run history; every other entry
        # of OUT is kept as it is.
        updates = {
            hw: {
                nodeid: baseline_io.Update(entry, replace_history=True)
                for nodeid, entry in tests.items()
            }
            for hw, tests in merged.entries.items()
        }
        longest = max(
            (len(e.runs) for tests in merged.entries.values() for e in tests.values()), default=1
        )
        result = target.merged(updates, history=max(longest, 1))
        kept = len(result) - len(merged)
        merged = result
    try:
        baseline_io.save(out_path, merged)
    except BaselineError as exc:
        raise InputError(str(exc)) from None
    kept_text = f", {kept} of them kept from {out_path}" if target is not None else ""
    print(
        f"wrote {len(merged)} entr{'y' if len(merged) == 1 else 'ies'} on "
        f"{sum(1 for tests in merged.entries.values() if tests)} hardware to {out_path} "
        f"(from {len(sources)} input(s){kept_text})",
        file=out,
    )
    return EXIT_OK


# -- targets ------------------------------------------------------------------------------


def cmd_targets(args: argparse.Namespace, out: TextIO) -> int:
    from .meters.roofline import targets_table

    for line in targets_table():
        print(line, file=out)
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
        help="allowed regression in percent (default: the tolerance recorded in NEW's or OLD's "
        "report, else energy_tolerance from --ini or the pytest configuration in the current "
        f"directory, else {DEFAULT_TOLERANCE_PCT:g})",
    )
    cmp.add_argument(
        "--alpha",
        type=_option(parse_probability),
        default=None,
        metavar="P",
        help="significance level of the one-sided Mann-Whitney U test (default: as for "
        f"--tolerance, from the reports, energy_alpha, else {DEFAULT_ALPHA:g})",
    )
    cmp.add_argument(
        "--ini",
        type=Path,
        default=None,
        metavar="PATH",
        help="pytest configuration file (pytest.ini, pyproject.toml, tox.ini, setup.cfg) to read "
        "energy_tolerance and energy_alpha from (default: the one in the current directory)",
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
    merge.set_defaults(run=cmd_merge)

    targets = commands.add_parser(
        "targets", help="list the GPU profiles the roofline meter models (--energy-target)"
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
