"""The ``--energy-report`` table for the terminal summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..verdict import Result
from . import carbon
from .common import caveats, figures_word, fmt_num, present, rows

#: The run's total wait for device locks below which no note is shown: scheduling noise
#: and ordinary hand-overs between xdist workers add up to milliseconds, not seconds.
LOCK_WAIT_NOTE_S = 1.0
#: A window that waited at least this long counts as one that queued for the device.
LOCK_WAIT_WINDOW_S = 0.01
#: Columns shown only when some row has the figure: (title, Row attribute).
OPTIONAL_COLUMNS = (
    ("J/token", "joules_per_token"),
    ("J/image", "joules_per_image"),
    ("GFLOP/inference", "gflop_per_inference"),
    ("kernels/inference", "kernels_per_inference"),
)


def table(results: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    """Header and cell text of the table; optional columns appear only when used."""
    body_rows = rows(results)
    shown = [(title, name) for title, name in OPTIONAL_COLUMNS if present(body_rows, name)]
    header = ["test", "inferences", "kWh/1000", "J/inference", *(t for t, _ in shown)]
    header += ["baseline", "change", "verdict", "meter"]
    body = []
    for r in body_rows:
        cells = [
            r.test,
            str(r.inferences),
            fmt_num(r.kwh_per_1000),
            fmt_num(r.joules_per_inference),
        ]
        cells += [fmt_num(getattr(r, name)) for _, name in shown]
        cells += [
            fmt_num(r.reference_kwh_per_1000),
            r.change_text,
            r.verdict_text,
            f"{r.meter} ({r.figures})",
        ]
        body.append(cells)
    return header, body


def render(results: Sequence[Result], *, updating: bool = False) -> list[str]:
    """Lines of the energy table, followed by footnotes; empty when nothing was measured."""
    if not results:
        return []
    header, body = table(results)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {i for i, name in enumerate(header) if name not in ("test", "verdict", "meter")}

    def fmt(line: list[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(line) for line in body]
    lines += footnotes(results, updating=updating)
    return lines


def footnotes(results: Sequence[Result], *, updating: bool = False) -> list[str]:
    notes = caveats(results)
    if any(r.verdict.check == "compare" for r in results):
        notes.append(
            "(compare): an energy.compare check: the candidate against the current version "
            "measured in the same run; baseline is the current version's figure."
        )
    improved = [r for r in results if r.verdict.improved_beyond_bound]
    if improved and not updating:
        notes.append(
            f"{len(improved)} test(s) improved beyond the run-to-run noise: record the new "
            "level with --energy-update-baseline (it replaces their run history) and commit "
            "the baseline."
        )
    windows = [w for r in results for w in r.record.windows]
    waited_s = math.fsum(w.waited_s for w in windows)
    if waited_s >= LOCK_WAIT_NOTE_S:
        waited = sum(1 for w in windows if w.waited_s >= LOCK_WAIT_WINDOW_S)
        notes.append(
            f"{waited} window(s) waited {waited_s:.2f} s in total for a device lock held by "
            "another process metering the same device."
        )
    for r in results:
        if r.record.throttled_windows:
            notes.append(
                f"{r.nodeid}: {r.record.throttled_windows} window(s) taken while throttled "
                f"({', '.join(r.record.throttle_reasons)})."
            )
    return notes


def _plain(value: float) -> str:
    """Four significant figures without an exponent: 398,779, 0.1108, 0.00009178."""
    if not math.isfinite(value) or value <= 0:
        return f"{value:g}"
    if float(f"{value:.4g}") >= 1000:
        return f"{value:,.0f}"
    decimals = max(0, 3 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f}"


def totals(
    results: Sequence[Result],
    intensity: float | None,
    phone_charge_kwh: float,
    *,
    source: str = "",
) -> list[str]:
    """Lines on what the whole run metered: joules and kWh (measured, modelled or
    estimated), gCO2e when an intensity is known (``source`` says where it came from), and
    the smartphone-charge equivalent."""
    if not results:
        return []
    total = carbon.totals(results, intensity, phone_charge_kwh)
    tests = f"{total.tests} test{'s' if total.tests != 1 else ''}"
    windows = f"{total.windows} window{'s' if total.windows != 1 else ''}"
    kinds = figures_word(results)
    energy = f"total: {_plain(total.energy_j)} J ({_plain(total.kwh)} kWh)"
    if "," in kinds:  # several kinds of figure: say how many of each
        lines = [f"{energy} in {windows} of {tests} ({kinds})"]
    else:
        lines = [f"{energy} {kinds} in {windows} of {tests}"]
    if total.g_co2e is not None and intensity is not None:
        where = f", {source}" if source else ""
        lines.append(f"carbon: {_plain(total.g_co2e)} gCO2e at {intensity:.4g} gCO2e/kWh{where}")
    lines.append(
        f"equivalent: {_plain(total.phone_charges)} smartphone charges "
        f"({phone_charge_kwh:g} kWh per charge)"
    )
    return lines
