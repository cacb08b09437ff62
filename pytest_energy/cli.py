"""The ``pytest-energy`` command: look at baselines and reports without running pytest.

``show [BASELINE]``
    What a baseline holds, by hardware and test.
``compare OLD NEW``
    Compare two JSON reports, or a report with a baseline, by the gate's rule.
``merge OUT IN...``
    Combine baselines and reports from several CI jobs into one baseline.
``targets``
    The GPU profiles the ``roofline`` meter can model (``--energy-target``).

Exit status: 0 success; 1 a regression (``compare``) or a conflict (``merge``); 2 bad
input (missing or corrupt file, bad option), in which case nothing is written.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import __version__
from . import baseline as baseline_io
from .baseline import Baseline, BaselineEntry
from .errors import BaselineError, ConfigError
from .report.common import ReportError
from .report.json import load_report
from .results import fmt_num
from .settings import (
    DEFAULT_ALPHA,
    DEFAULT_BASELINE_NAME,
    DEFAULT_TOLERANCE_PCT,
    parse_percent,
    parse_probability,
)
from .stats import Status, compare

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """A command-line input cannot be used; the message names the cause and the fix."""


@dataclass(frozen=True)
class Source:
    """A baseline or report, as baseline entries keyed by hardware then node id."""

    path: Path
    kind: str
    """"report" or "baseline"."""
    entries: dict[str, dict[str, BaselineEntry]]


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
    entries: dict[str, dict[str, BaselineEntry]] = {}
    for record in report.records:
        entries.setdefault(record.hardware, {})[record.nodeid] = BaselineEntry(
            samples=record.samples,
            meter=record.meter,
            estimated=record.estimated,
            pytest_energy_version=report.version,
            inferences=record.inferences,
            tokens=record.tokens,
        )
    return Source(path, kind, entries)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], out: TextIO
) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)


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
            ]
            for nodeid, e in sorted(tests.items())
        ]
        _table(
            ["test", "kWh/1000", "windows", "inferences", "meter", "estimated", "version"],
            rows,
            {1, 2, 3},
            out,
        )
    return EXIT_OK


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
            if before.meter != entry.meter or before.estimated != entry.estimated:
                verdict = (
                    f"not comparable: meter {before.meter}{' (estimated)' * before.estimated} "
                    f"in OLD, {entry.meter}{' (estimated)' * entry.estimated} in NEW"
                )
                rows.append(
                    Row(nodeid, hardware, before.kwh_per_1000, entry.kwh_per_1000, "-", verdict)
                )
                continue
            c = compare(entry.samples, before.samples, tolerance_pct=tolerance_pct, alpha=alpha)
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


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    old = read_source(args.old)
    new = read_source(args.new)
    rows = compare_sources(old, new, tolerance_pct=args.tolerance, alpha=args.alpha)
    print(f"OLD: {old.path} ({old.kind})", file=out)
    print(f"NEW: {new.path} ({new.kind})", file=out)
    print(
        f"rule: tolerance {args.tolerance:g}%, one-sided Mann-Whitney U at alpha {args.alpha:g}",
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


def merge_sources(sources: Sequence[Source]) -> tuple[Baseline, list[str]]:
    """All entries of ``sources`` in one baseline, and a line per conflicting entry.

    The same test on the same hardware may appear in several inputs only when the entries
    are identical; otherwise it is a conflict and no entry is chosen.
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
                elif held != entry:
                    conflicts.append(
                        f"{nodeid} on {hardware}: {origin[(hardware, nodeid)]} has "
                        f"{fmt_num(held.kwh_per_1000)} kWh/1000 from {len(held.samples)} window(s) "
                        f"({held.meter}), {source.path} has {fmt_num(entry.kwh_per_1000)} from "
                        f"{len(entry.samples)} window(s) ({entry.meter})"
                    )
    return Baseline(merged), conflicts


def cmd_merge(args: argparse.Namespace, out: TextIO) -> int:
    sources = [read_source(path) for path in args.inputs]
    merged, conflicts = merge_sources(sources)
    if conflicts:
        print(
            f"pytest-energy merge: {len(conflicts)} conflict(s); {args.out} was not written. "
            "Each test may come from one input per hardware (identical copies are fine); "
            "drop the stale input or re-run that job.",
            file=out,
        )
        for line in conflicts:
            print(f"  conflict: {line}", file=out)
        return EXIT_FOUND
    try:
        baseline_io.save(args.out, merged)
    except BaselineError as exc:
        raise InputError(str(exc)) from None
    print(
        f"wrote {len(merged)} entr{'y' if len(merged) == 1 else 'ies'} on "
        f"{sum(1 for tests in merged.entries.values() if tests)} hardware to {args.out} "
        f"(from {len(sources)} input(s))",
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
        default=DEFAULT_TOLERANCE_PCT,
        metavar="PCT",
        help=f"allowed regression in percent (default {DEFAULT_TOLERANCE_PCT:g})",
    )
    cmp.add_argument(
        "--alpha",
        type=_option(parse_probability),
        default=DEFAULT_ALPHA,
        metavar="P",
        help=f"significance level of the one-sided Mann-Whitney U test (default {DEFAULT_ALPHA:g})",
    )
    cmp.set_defaults(run=cmd_compare)

    merge = commands.add_parser(
        "merge",
        help="combine baselines and reports into one baseline; exit 1 on conflicting entries",
    )
    merge.add_argument("out", type=Path, metavar="OUT", help="baseline TOML file to write")
    merge.add_argument(
        "inputs", type=Path, nargs="+", metavar="IN", help="baselines (.toml) and reports (.json)"
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
        return args.run(args, sys.stdout)  # type: ignore[no-any-return]
    except InputError as exc:
        print(f"pytest-energy {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
