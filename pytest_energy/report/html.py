"""The ``--energy-html`` report: one self-contained HTML file, readable offline.

Everything is inline: CSS, a small script that sorts the table when a header is clicked,
and the charts as SVG (drawn by :mod:`.charts` when matplotlib is installed). Nothing is
loaded from the network: no CDN, no web font, no remote image. All text that comes from
the tests (node ids, hardware and meter names, notes) is HTML-escaped.

Opening the file with ``#sort=<column>`` or ``#sort=<column>-desc`` in the URL sorts the
table on load, e.g. ``report.html#sort=change-desc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..verdict import SEVERITY, Result
from . import charts as charts_mod
from .carbon import g_co2e
from .common import (
    CHARTS_HINT,
    Row,
    RunInfo,
    caveats,
    failed,
    fmt_num,
    plural,
    present,
    rows,
    safe_info,
    verdict_line,
)
from .terminal import totals as totals_lines

_CSS = """
:root { color-scheme: light; --bad: #fee2e2; --bad-edge: #dc2626; --good: #dcfce7;
  --new: #dbeafe; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: #111827; margin: 0 auto; padding: 24px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
.verdict { font-size: 16px; font-weight: 600; padding: 8px 12px; border-radius: 6px;
  display: inline-block; }
.verdict.bad { background: var(--bad); color: #7f1d1d; }
.verdict.good { background: var(--good); color: #14532d; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; }
ul.totals { margin: 4px 0; padding-left: 20px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: #f9fafb; position: sticky; top: 0; white-space: nowrap; }
th button { all: inherit; cursor: pointer; padding: 0; }
th button:focus-visible { outline: 2px solid #2563eb; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.test { overflow-wrap: anywhere; min-width: 18em; }
td.meter { min-width: 9em; }
td.v { white-space: nowrap; font-weight: 600; }
td .note { color: var(--muted); font-size: 12px; font-family: system-ui, sans-serif;
  white-space: normal; }
tr.regressed, tr.over-budget { background: var(--bad); }
tr.regressed td:first-child, tr.over-budget td:first-child {
  box-shadow: inset 4px 0 var(--bad-edge); }
tr.improved { background: var(--good); }
tr.new { background: var(--new); }
.tag { font-size: 11px; color: var(--muted); }
.hint, figcaption, footer { color: var(--muted); font-size: 12.5px; }
figure { margin: 16px 0; }
figure svg { max-width: 100%; height: auto; }
.no-charts { background: #fef3c7; padding: 8px 12px; border-radius: 6px; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("energy-table");
  if (!table || !table.tHead || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function key(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    if (!numeric) { return raw.toLowerCase(); }
    return raw === "" ? NaN : parseFloat(raw);
  }
  function sortBy(index, descending) {
    var numeric = heads[index].getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index, numeric), y = key(b, index, numeric);
      if (numeric) {
        if (isNaN(x) || isNaN(y)) { return (isNaN(x) ? 1 : 0) - (isNaN(y) ? 1 : 0); }
        return descending ? y - x : x - y;
      }
      return descending ? y.localeCompare(x) : x.localeCompare(y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    heads[index].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(heads, function (head, index) {
    head.addEventListener("click", function () {
      sortBy(index, head.getAttribute("aria-sort") === "ascending");
    });
  });
  var wanted = /^#sort=([a-z0-9_]+?)(-desc)?$/.exec(window.location.hash);
  if (wanted) {
    Array.prototype.forEach.call(heads, function (head, index) {
      if (head.getAttribute("data-key") === wanted[1]) { sortBy(index, Boolean(wanted[2])); }
    });
  }
  table.setAttribute("data-sort-ready", "true");
})();
"""


def _num(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _sort_value(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


class _Column:
    def __init__(self, key: str, title: str, numeric: bool) -> None:
        self.key = key
        self.title = title
        self.numeric = numeric

    def th(self) -> str:
        kind = "num" if self.numeric else "text"
        css = ' class="num"' if self.numeric else ""
        return (
            f'<th scope="col" data-key="{self.key}" data-type="{kind}"{css}>'
            f'<button type="button">{escape(self.title)}</button></th>'
        )


def _cell(text: str, sort: str | None = None, css: str = "num") -> str:
    attr = "" if sort is None else f' data-sort="{escape(sort, quote=True)}"'
    return f'<td class="{css}"{attr}>{text}</td>'


def _numeric(value: float | None, spec: str = ".4g") -> str:
    return _cell(_num(value, spec), _sort_value(value))


def _columns(body: Sequence[Row], info: RunInfo) -> list[_Column]:
    cols = [
        _Column("n", "#", True),
        _Column("test", "test", False),
        _Column("verdict", "verdict", True),
        _Column("kwh", "kWh/1000", True),
        _Column("baseline", "baseline", True),
        _Column("change", "change", True),
        _Column("budget", "budget", True),
        _Column("j_inference", "J/inference", True),
    ]
    if present(body, "joules_per_token"):
        cols.append(_Column("j_token", "J/token", True))
    if present(body, "joules_per_image"):
        cols.append(_Column("j_image", "J/image", True))
    if info.carbon_intensity_g_per_kwh is not None:
        cols.append(_Column("co2", "gCO2e/1000", True))
    cols += [
        _Column("windows", "windows", True),
        _Column("meter", "meter · hardware", False),
    ]
    return cols


def _row(index: int, result: Result, r: Row, columns: Sequence[_Column], info: RunInfo) -> str:
    note = f'<div class="note">{escape(r.note)}</div>' if r.note else ""
    if r.compare:
        note += '<div class="note">energy.compare: the candidate against the current version</div>'
    throttled_count = result.record.throttled_windows
    throttled = (
        f'<div class="note">{plural(throttled_count, "window")} throttled</div>'
        if throttled_count
        else ""
    )
    verdict = r.verdict + (" *" if r.low_confidence else "")
    cells = {
        "n": _cell(str(index), str(index)),
        "test": f'<td class="test mono">{escape(r.test)}{note}</td>',
        "verdict": _cell(escape(verdict), str(SEVERITY.index(r.verdict)), css="v"),
        "kwh": _cell(fmt_num(r.kwh_per_1000), _sort_value(r.kwh_per_1000)),
        "baseline": _cell(fmt_num(r.reference_kwh_per_1000), _sort_value(r.reference_kwh_per_1000)),
        "change": _cell(r.change_text, _sort_value(r.change_pct)),
        "budget": _cell(fmt_num(r.budget_kwh), _sort_value(r.budget_kwh)),
        "j_inference": _numeric(r.joules_per_inference),
        "j_token": _numeric(r.joules_per_token),
        "j_image": _numeric(r.joules_per_image),
        "co2": _numeric(g_co2e(r.kwh_per_1000, info.carbon_intensity_g_per_kwh)),
        "windows": _cell(f"{r.windows}{throttled}", str(r.windows)),
        "meter": (
            f'<td class="meter"><span class="mono">{escape(r.meter)}</span> '
            f'<span class="tag">{escape(r.figures)}</span>'
            f'<div class="note">{escape(r.hardware)}</div></td>'
        ),
    }
    css = r.verdict.replace(" ", "-")
    return (
        f'<tr class="{css}" data-verdict="{escape(r.verdict, quote=True)}">'
        + "".join(cells[c.key] for c in columns)
        + "</tr>"
    )


def _run_header(info: RunInfo) -> str:
    carbon = "not set (use --energy-country or --energy-carbon-intensity)"
    if info.carbon_intensity_g_per_kwh is not None:
        carbon = f"{info.carbon_intensity_g_per_kwh:.4g} gCO2e/kWh"
        if info.carbon_source:
            carbon += f" ({info.carbon_source})"
    items = [
        ("time", info.time),
        ("pytest-energy", info.version),
        ("meters", ", ".join(info.meters) or "-"),
        ("hardware", "; ".join(info.hardware) or "-"),
        ("carbon intensity", carbon),
        ("phone charge", f"{info.phone_charge_kwh:g} kWh"),
    ]
    return (
        '<dl class="run">'
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
        + "</dl>"
    )


def _charts(results: Sequence[Result]) -> str:
    drawn = charts_mod.render(results)
    if drawn is None:
        return (
            '<p class="no-charts" id="no-charts">Charts need matplotlib, which is not installed. '
            f"Install it with <code>{escape(CHARTS_HINT)}</code> and run the tests again.</p>"
        )
    return "".join(
        f'<figure id="chart-{c.key}"><figcaption><strong>{escape(c.title)}.</strong> '
        f"{escape(c.caption)}</figcaption>{c.svg}</figure>"
        for c in drawn
    )


def render(results: Sequence[Result], info: RunInfo) -> str:
    """The whole report as one HTML document."""
    info = safe_info(info)
    summary = verdict_line(results, icon=False)
    bad = failed(results)
    body = rows(results)
    columns = _columns(body, info)
    totals = totals_lines(
        results,
        info.carbon_intensity_g_per_kwh,
        info.phone_charge_kwh,
        source=info.carbon_source or "",
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pytest-energy report · {escape(summary)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>⚡ pytest-energy report</h1>",
        f'<p class="verdict {"bad" if bad else "good"}" id="verdict">'
        f"{'✗' if bad else '✓'} {escape(summary)}</p>",
        _run_header(info),
        "</header>",
    ]
    if totals:
        parts.append(
            '<ul class="totals" id="totals">'
            + "".join(f"<li>{escape(line)}</li>" for line in totals)
            + "</ul>"
        )
    if results:
        parts += [
            "<h2>Tests</h2>",
            '<p class="hint">Click a column header to sort. Figures are medians over '
            "windows, in kWh per 1,000 inferences unless the column says otherwise; "
            "highlighted rows regressed or went over budget.</p>",
            '<div class="table-wrap"><table id="energy-table">',
            "<thead><tr>" + "".join(c.th() for c in columns) + "</tr></thead>",
            "<tbody>",
            *(
                _row(i, result, r, columns, info)
                for i, (result, r) in enumerate(zip(results, body, strict=True), start=1)
            ),
            "</tbody></table></div>",
            *(f'<p class="hint">{escape(n)}</p>' for n in caveats(results)),
            '<h2>Charts</h2><section id="charts">',
            _charts(results),
            "</section>",
        ]
    parts += [
        f"<footer><p>Written by pytest-energy {escape(info.version)}.</p></footer>",
        f"<script>{_SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
