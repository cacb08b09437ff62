"""The ``--energy-report`` table for the terminal summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..results import EnergyResult, Verdict, fmt_num
from . import carbon
from .common import caveats, safe_results

#: The run's total wait for device locks below which no note is shown: scheduling noise
#: and ordinary hand-overs between xdist workers add up to milliseconds, not seconds.
LOCK_WAIT_NOTE_S = 1.0
#: A window that waited at least this long counts as one that queued for the device.
LOCK_WAIT_WINDOW_S = 0.01


def _change(result: EnergyResult) -> str:
    return "-" if result.change_pct is None else f"{result.change_pct:+.1f}%"


def _verdict(result: EnergyResult) -> str:
    return result.verdict + ("*" if result.low_confidence else "")


def rows(results: Sequence[EnergyResult]) -> tuple[list[str], list[list[str]]]:
    """Header and cell text of the table; J/token and J/image appear only when used."""
    with_tokens = any(r.measurement.joules_per_token is not None for r in results)
    with_images = any(r.measurement.joules_per_image is not None for r in results)
    with_flops = any(r.measurement.flops_per_inference is not None for r in results)
    header = ["test", "inferences", "kWh/1000", "J/inference"]
    header += ["J/token"] * with_tokens + ["J/image"] * with_images
    header += ["GFLOP/inference"] * with_flops
    header += ["baseline", "change", "verdict", "meter"]
    body = []
    for r in results:
        m = r.measurement
        row = [
            r.nodeid,
            str(m.inferences),
            fmt_num(m.kwh_per_1000),
            fmt_num(m.joules_per_inference),
        ]
        if with_tokens:
            row.append(fmt_num(m.joules_per_token))
        if with_images:
            row.append(fmt_num(m.joules_per_image))
        if with_flops:
            flops = m.flops_per_inference
            row.append(fmt_num(None if flops is None else flops / 1e9))
        meter = m.meter + (" (estimated)" if m.estimated else "")
        row += [fmt_num(r.baseline_kwh_per_1000), _change(r), _verdict(r), meter]
        body.append(row)
    return header, body


def render(results: Sequence[EnergyResult]) -> list[str]:
    """Lines of the energy table, followed by footnotes; empty when nothing was measured."""
    if not results:
        return []
    results = safe_results(results)
    header, body = rows(results)
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
    lines += footnotes(results)
    return lines


def footnotes(results: Sequence[EnergyResult]) -> list[str]:
    notes = caveats(results)
    improved = [r for r in results if r.improved_beyond_bound]
    if improved:
        notes.append(
            f"{len(improved)} test(s) improved beyond the run-to-run noise: record the new "
            "level with --energy-update-baseline (it replaces their run history) and commit "
            "the baseline."
        )
    new = [r for r in results if r.verdict == Verdict.NEW]
    if new:
        notes.append(
            f"{len(new)} test(s) have no baseline for this hardware (new): record one with "
            "--energy-update-baseline."
        )
    waited_s = sum(r.measurement.waited_s for r in results)
    if waited_s >= LOCK_WAIT_NOTE_S:
        waited = sum(
            1 for r in results for w in r.measurement.windows if w.waited_s >= LOCK_WAIT_WINDOW_S
        )
        notes.append(
            f"{waited} window(s) waited {waited_s:.2f} s in total for a device lock held by "
            "another process metering the same device."
        )
    throttled = [r for r in results if r.measurement.throttled_windows]
    for r in throttled:
        reasons = sorted({x for w in r.measurement.windows for x in w.throttle})
        notes.append(
            f"{r.nodeid}: {r.measurement.throttled_windows} window(s) taken while throttled "
            f"({', '.join(reasons)})."
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
    results: Sequence[EnergyResult],
    intensity: float | None,
    phone_charge_kwh: float,
    *,
    source: str = "",
) -> list[str]:
    """Lines on what the whole run measured: joules and kWh, gCO2e when an intensity is
    known (``source`` says where it came from), and the smartphone-charge equivalent."""
    if not results:
        return []
    results = safe_results(results)
    total = carbon.totals(results, intensity, phone_charge_kwh)
    tests = f"{total.tests} test{'s' if total.tests != 1 else ''}"
    windows = f"{total.windows} window{'s' if total.windows != 1 else ''}"
    how = "estimated" if all(r.measurement.estimated for r in results) else "measured"
    lines = [
        f"total: {_plain(total.energy_j)} J ({_plain(total.kwh)} kWh) {how} in {windows} of {tests}"
    ]
    if total.g_co2e is not None and intensity is not None:
        where = f", {source}" if source else ""
        lines.append(f"carbon: {_plain(total.g_co2e)} gCO2e at {intensity:.4g} gCO2e/kWh{where}")
    lines.append(
        f"equivalent: {_plain(total.phone_charges)} smartphone charges "
        f"({phone_charge_kwh:g} kWh per charge)"
    )
    return lines
