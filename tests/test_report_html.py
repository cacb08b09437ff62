"""The self-contained HTML report, its charts, and how a real browser renders it."""

from __future__ import annotations

import html as html_lib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import report_data as data

from pytest_energy.report import charts, html
from pytest_energy.report.common import RunInfo

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def render(**kwargs: object) -> str:
    return html.render(data.results(), data.run_info(**kwargs))  # type: ignore[arg-type]


def need_in_ci(reason: str) -> None:
    """Skip for ``reason`` on a developer machine; fail under CI, which must run everything."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this test may not be skipped")
    pytest.skip(reason)


def need_matplotlib() -> None:
    if not charts.available():
        need_in_ci("matplotlib is not installed (pip install 'pytest-energy[charts]')")


@pytest.fixture(scope="module")
def page() -> str:
    return render()


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import matplotlib`` fail, as on an install without the charts extra."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def body_rows(text: str) -> list[str]:
    tbody = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr\b.*?</tr>", tbody, flags=re.DOTALL)


def test_one_row_per_test_with_verdict_classes(page: str) -> None:
    rows = body_rows(page)
    assert len(rows) == len(data.results())
    classes = [re.match(r'<tr class="([^"]+)"', row).group(1) for row in rows]  # type: ignore[union-attr]
    assert classes == ["regressed", "improved", "new", "over-budget", "ok", "ok", "ok", "ok"]
    assert "tr.regressed, tr.over-budget { background: var(--bad); }" in page


def test_user_text_is_escaped(page: str) -> None:
    assert html_lib.escape(data.WEIRD_NODEID, quote=True) in page
    assert "&lt;b&gt;&amp;&quot;&#x27;&lt;/b&gt;-&amp;amp;-café-µs→|x`y]" in page
    assert "<b>" not in page
    assert "&amp;amp;" in page  # a literal "&amp;" in a node id stays visible as typed


def test_hostile_text_everywhere_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    result = data.result(
        f"tests/test_x.py::test_{evil}", data.windows(0.001), meter=f"m{evil}", hardware=f"hw{evil}"
    )
    info = RunInfo.create([result], now=data.NOW)
    page = html.render([result], info)
    assert evil not in page
    assert page.count("<script>") == 1  # the report's own sorting script


def test_no_external_resources(page: str) -> None:
    assert "<link" not in page
    assert "@import" not in page
    assert not re.search(r"\bsrc\s*=", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    # The only hrefs are references inside the inline SVG (#id).
    for href in re.findall(r"href\s*=\s*\"([^\"]*)\"", page):
        assert href.startswith("#"), href
    assert "@font-face" not in page


def test_table_is_sortable_with_numeric_keys(page: str) -> None:
    assert '<table id="energy-table">' in page
    assert 'data-key="kwh" data-type="num"' in page
    assert 'data-key="test" data-type="text"' in page
    assert 'addEventListener("click"' in page
    regressed = body_rows(page)[0]
    assert (
        'data-sort="20.000000000000004"' in regressed
        or 'data-sort="19.999999999999996"' in regressed
    )


def test_run_header_and_totals(page: str) -> None:
    assert "✗ 1 regression, 1 over budget in 8 tests (7 measured, 1 estimated)" in page
    assert "56.04 gCO2e/kWh (CodeCarbon offline data for FRA (France, 2023))" in page
    assert "<li>equivalent: 5.035 smartphone charges (0.022 kWh per charge)</li>" in page
    assert '<th scope="col" data-key="co2"' in page


def test_without_carbon() -> None:
    page = render(carbon=False)
    assert "not set (use --energy-country or --energy-carbon-intensity)" in page
    assert 'data-key="co2"' not in page


def test_charts_are_inline_svg(page: str) -> None:
    need_matplotlib()
    assert page.count("<svg ") == 2
    assert '<figure id="chart-overview">' in page
    assert '<figure id="chart-spread">' in page
    assert (
        '<svg role="img" aria-label="kWh per 1,000 inferences: this run, baseline and budget"'
        in page
    )
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "<!--" not in page


def test_charts_leave_matplotlib_state_alone() -> None:
    need_matplotlib()
    import matplotlib

    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    backend = matplotlib.get_backend()
    before = dict(matplotlib.rcParams)
    drawn = charts.render(data.results())
    assert drawn is not None and [c.key for c in drawn] == ["overview", "spread"]
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_loaded


def test_charts_are_deterministic() -> None:
    need_matplotlib()
    assert render() == render()


def test_charts_show_dollar_signs_as_typed() -> None:
    need_matplotlib()
    results = [data.result("tests/test_m.py::test_price[$5-$10]", data.windows(0.001))]
    assert charts.label(1, results[0].nodeid) == r"1. tests/test_m.py::test_price[\$5-\$10]"
    drawn = charts.render(results)
    assert drawn is not None and len(drawn) == 2


def test_chart_labels_are_numbered_and_shortened() -> None:
    assert charts.label(3, "a" * 100, width=10) == "3. …" + "a" * 9


def test_without_matplotlib_the_tables_stay_and_the_page_says_how(no_matplotlib: None) -> None:
    assert not charts.available()
    assert charts.render(data.results()) is None
    page = render()
    assert "<svg" not in page
    assert "pip install &#x27;pytest-energy[charts]&#x27;" in page
    assert len(body_rows(page)) == len(data.results())


def test_empty_run() -> None:
    page = html.render([], RunInfo.create([], now=data.NOW))
    assert "No energy measurements in this run." in page
    assert "<table" not in page


# -- in a real browser ---------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        need_in_ci("chromium is not installed (apt-get install -y chromium)")
    assert found is not None
    return found


def browser(tmp_path: Path, url: str, *extra: str) -> str:
    command = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *extra,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_table_and_charts(tmp_path: Path) -> None:
    need_matplotlib()
    path = tmp_path / "energy.html"
    path.write_text(render(), encoding="utf-8")
    dom = browser(tmp_path, path.as_uri(), "--dump-dom")
    assert 'data-sort-ready="true"' in dom  # the inline script ran
    table = dom.split('<table id="energy-table"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<tr class=", table)) == len(data.results())
    assert dom.count("<svg") >= 2
    assert "&lt;b&gt;&amp;\"'&lt;/b&gt;" in dom  # escaped text stays text in the DOM


def test_chromium_sorts_on_load_from_the_url(tmp_path: Path) -> None:
    chromium()
    path = tmp_path / "energy.html"
    path.write_text(render(), encoding="utf-8")
    dom = browser(tmp_path, path.as_uri() + "#sort=change-desc", "--dump-dom")
    table = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    order = re.findall(r'<tr [^>]*><td class="num" data-sort="(\d+)">', table)
    # Rows by change: #1 +20%, #6 +2.5%, #5 +2.4%, #4 +1.7%, #8 0%, #7 -2.2%, #2 -25%,
    # then #3, which has no baseline and so no change.
    assert order == ["1", "6", "5", "4", "8", "7", "2", "3"]
    assert 'data-key="change" data-type="num" class="num" aria-sort="descending"' in dom


def test_modelled_figures_show_where_the_energy_goes_not_a_spread() -> None:
    need_matplotlib()
    results = data.modelled_results()
    page = html.render(results, RunInfo.create(results, now=data.NOW))
    assert '<figure id="chart-split">' in page and '<figure id="chart-spread">' not in page
    assert "Where the modelled energy goes, per inference" in page
    assert "✓ 2 modelled tests within budget and baseline" in page
    assert '<span class="tag">modelled</span>' in page
    mixed = [*results, *data.results()[:2]]
    both = html.render(mixed, RunInfo.create(mixed, now=data.NOW))
    assert '<figure id="chart-split">' in both and '<figure id="chart-spread">' in both


def test_chromium_draws_the_energy_split(tmp_path: Path) -> None:
    """The screenshot check of the stacked bars: the page renders in a real browser, the
    split chart is in its DOM, and a screenshot of it is written."""
    need_matplotlib()
    results = data.modelled_results()
    path = tmp_path / "energy.html"
    path.write_text(html.render(results, RunInfo.create(results, now=data.NOW)), encoding="utf-8")
    dom = browser(tmp_path, path.as_uri(), "--dump-dom")
    split = dom.split('<figure id="chart-split">', 1)[1].split("</figure>", 1)[0]
    assert "<svg" in split and 'aria-label="Where the modelled energy goes, per inference"' in split
    shot = tmp_path / "split.png"
    browser(tmp_path, path.as_uri(), f"--screenshot={shot}", "--window-size=1280,1400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
