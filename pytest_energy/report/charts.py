"""Charts for the HTML report, drawn with matplotlib into inline SVG.

matplotlib is optional (``pip install 'pytest-energy[charts]'``) and imported only when a
chart is drawn. Figures are built with :class:`matplotlib.figure.Figure` directly: pyplot is
never imported, no backend is selected, and the global ``rcParams`` change only inside an
``rc_context`` around each drawing. Text is drawn as paths, so the SVG needs no font.
"""

from __future__ import annotations

import html
import io
import re
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..verdict import IMPROVED, NEW, OK, OVER_BUDGET, REGRESSED, Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {
    OVER_BUDGET: "#b91c1c",
    REGRESSED: "#dc2626",
    IMPROVED: "#15803d",
    NEW: "#2563eb",
    OK: "#374151",
}
#: The modelled energy's classes, in stacking order, with their colours and legend labels.
SPLIT = (
    ("matmul", "#1d4ed8", "matrix products"),
    ("attention", "#7c3aed", "attention"),
    ("other", "#0f766e", "other kernels"),
    ("collective", "#be185d", "collectives (tensor parallel)"),
    ("overhead", "#d97706", "launch and host"),
)
BASELINE_COLOR = "#6b7280"
BUDGET_COLOR = "#b45309"


@dataclass(frozen=True)
class Chart:
    """One drawn chart: a title, a sentence on how to read it, and the ``<svg>`` markup."""

    key: str
    title: str
    caption: str
    svg: str


def _legend_below(ax: Axes, rows: int, **kwargs: Any) -> None:
    """The legend in three columns under a chart of ``rows`` rows, clear of its x label."""
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 1.0 / (rows + 3)),
        ncols=3,
        frameon=False,
        **kwargs,
    )


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def label(index: int, nodeid: str, width: int = 56) -> str:
    """A short row label, ``"3. …test_x[param]"``, numbered like the HTML table."""
    text = " ".join(nodeid.split())
    if len(text) > width:
        text = "…" + text[-(width - 1) :]
    # A pair of "$" would switch matplotlib to mathtext; show them as typed.
    return f"{index}. " + text.replace("$", r"\$")


def _svg(figure: Any, title: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.DOTALL)
    return text.replace(
        "<svg ", f'<svg role="img" aria-label="{html.escape(title, quote=True)}" ', 1
    ).strip()


def _rows(ax: Axes, results: Sequence[Result]) -> None:
    positions = list(range(len(results)))
    ax.set_yticks(positions, [label(i + 1, _name(r)) for i, r in enumerate(results)])
    ax.set_ylim(len(results) - 0.5, -0.5)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _name(result: Result) -> str:
    from .common import safe_text

    return safe_text(result.nodeid) + (" (compare)" if result.verdict.check == "compare" else "")


def _figure(rows: int) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(9.0, 1.2 + 0.3 * rows), layout="constrained")


def overview(results: Sequence[Result]) -> Chart:
    """This run's median per test against its baseline and its budget (log scale)."""
    title = "kWh per 1,000 inferences: this run, baseline and budget"
    figure = _figure(len(results))
    ax = figure.subplots()
    _rows(ax, results)
    for y, result in enumerate(results):
        color = COLORS[result.verdict.status]
        kwh = result.record.kwh_per_1000
        reference = result.verdict.reference
        budget = result.verdict.budget_kwh
        if reference is not None:
            ax.plot(
                [reference.kwh_per_1000, kwh],
                [y, y],
                color=color,
                linewidth=1.0,
                alpha=0.6,
            )
            ax.plot(
                reference.kwh_per_1000,
                y,
                marker="D",
                markersize=5,
                markerfacecolor="white",
                markeredgecolor=BASELINE_COLOR,
                linestyle="none",
            )
        if budget is not None:
            ax.plot(
                budget,
                y,
                marker="|",
                markersize=14,
                markeredgewidth=2.0,
                color=BUDGET_COLOR,
                linestyle="none",
            )
        ax.plot(kwh, y, marker="o", markersize=6, color=color, linestyle="none")
    ax.set_xscale("log")
    ax.set_xlabel("kWh per 1,000 inferences (median of windows, log scale)")
    ax.plot([], [], marker="o", color=COLORS[OK], linestyle="none", label="this run")
    ax.plot(
        [],
        [],
        marker="D",
        markerfacecolor="white",
        markeredgecolor=BASELINE_COLOR,
        linestyle="none",
        label="baseline",
    )
    ax.plot(
        [],
        [],
        marker="|",
        markersize=10,
        markeredgewidth=2.0,
        color=BUDGET_COLOR,
        linestyle="none",
        label="budget",
    )
    _legend_below(ax, len(results))
    return Chart(
        key="overview",
        title=title,
        caption=(
            "Dots are this run's medians, coloured by verdict (red: regressed or over budget, "
            "green: improved, blue: new); diamonds are baseline medians (for an "
            "energy.compare row, the current version's); bars are budgets."
        ),
        svg=_svg(figure, title),
    )


def spread(results: Sequence[Result]) -> Chart:
    """Every window of every test, relative to that test's median, with the baseline's
    (for measured and estimated figures: a deterministic model has one window)."""
    title = "Spread of windows around each test's median"
    figure = _figure(len(results))
    ax = figure.subplots()
    _rows(ax, results)
    for y, result in enumerate(results):
        center = result.record.kwh_per_1000
        if center <= 0:
            continue
        color = COLORS[result.verdict.status]
        current = [(s / center - 1.0) * 100.0 for s in result.record.samples]
        if len(current) >= 2:
            ax.boxplot(
                [current],
                positions=[y],
                **_horizontal(),
                widths=0.5,
                showfliers=False,
                patch_artist=True,
                manage_ticks=False,
                boxprops={"facecolor": "#f3f4f6", "edgecolor": color, "linewidth": 0.8},
                medianprops={"color": color, "linewidth": 1.2},
                whiskerprops={"color": color, "linewidth": 0.8},
                capprops={"color": color, "linewidth": 0.8},
            )
        offsets = _jitter(len(current), 0.28)
        ax.plot(
            current,
            [y + d for d in offsets],
            marker="o",
            markersize=3.2,
            color=color,
            alpha=0.85,
            linestyle="none",
        )
        if result.verdict.reference is not None:
            base = [(s / center - 1.0) * 100.0 for s in result.verdict.reference.samples]
            ax.plot(
                base,
                [y + 0.3] * len(base),
                marker="o",
                markersize=3.6,
                markerfacecolor="none",
                markeredgecolor=BASELINE_COLOR,
                linestyle="none",
            )
            ax.plot(
                [statistics.median(base)] * 2,
                [y + 0.15, y + 0.45],
                color=BASELINE_COLOR,
                linewidth=1.2,
            )
    ax.axvline(0.0, color="#9ca3af", linewidth=0.8)
    ax.set_xlabel("window kWh per 1,000 inferences, relative to this run's median (%)")
    ax.plot(
        [],
        [],
        marker="o",
        markersize=3.2,
        color=COLORS[OK],
        linestyle="none",
        label="this run's windows",
    )
    ax.plot(
        [],
        [],
        marker="o",
        markersize=3.6,
        markerfacecolor="none",
        markeredgecolor=BASELINE_COLOR,
        linestyle="none",
        label="baseline windows",
    )
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 1.0 / (len(results) + 3)),
        ncols=2,
        frameon=False,
    )
    return Chart(
        key="spread",
        title=title,
        caption=(
            "One dot per metered window, with a box over this run's windows; hollow circles "
            "below each row are the baseline's windows and the grey tick their median."
        ),
        svg=_svg(figure, title),
    )


def energy_split(results: Sequence[Result]) -> Chart:
    """Where each test's modelled energy goes: a stacked bar per test of the modelled
    joules per inference in matrix products, attention, other kernels and launch/host cost."""
    title = "Where the modelled energy goes, per inference"
    figure = _figure(len(results))
    ax = figure.subplots()
    _rows(ax, results)
    for y, result in enumerate(results):
        split = result.record.split_j_per_inference or {}
        total = sum(split.values())
        left = 0.0
        for name, color, _ in SPLIT:
            share = split.get(name, 0.0) / total * 100.0 if total > 0 else 0.0
            if share > 0:
                ax.barh(y, share, left=left, height=0.6, color=color)
            left += share
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the modelled energy per inference (%)")
    from matplotlib.patches import Patch

    _legend_below(
        ax, len(results), handles=[Patch(facecolor=c, label=text) for _, c, text in SPLIT]
    )
    return Chart(
        key="split",
        title=title,
        caption=(
            "Modelled figures have no window-to-window spread: the bar shows how each test's "
            "modelled energy divides between matrix products, attention, other kernels and "
            "the launch and host cost of each operation. A test that is mostly launch and "
            "host cost is launch-bound: a wider layer there barely moves its figure."
        ),
        svg=_svg(figure, title),
    )


def _horizontal() -> dict[str, Any]:
    """``boxplot``'s horizontal switch: ``orientation`` since matplotlib 3.10, ``vert`` before."""
    import matplotlib

    major, minor = (int(part) for part in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _jitter(count: int, width: float) -> list[float]:
    """Fixed, evenly spread vertical offsets, so a chart is the same on every run."""
    if count <= 1:
        return [0.0] * count
    step = width / (count - 1)
    return [-width / 2 + i * step - 0.05 for i in range(count)]


def render(results: Sequence[Result]) -> list[Chart] | None:
    """The overview, the window spread of measured and estimated figures, and the energy
    split of modelled ones; ``None`` when matplotlib is not installed."""
    if not results:
        return []
    if not available():
        return None
    import matplotlib

    with (
        matplotlib.rc_context(
            {
                "svg.fonttype": "path",  # text as outlines: the SVG needs no font
                "svg.hashsalt": "pytest-energy",  # stable element ids: same input, same file
                "font.size": 8.0,
            }
        ),
        warnings.catch_warnings(),
    ):
        # A glyph missing from the bundled font must not fail a user's session that runs
        # with -W error; the chart then shows a box for that character.
        warnings.simplefilter("ignore")
        drawn = [overview(results)]
        noisy = [r for r in results if not r.record.deterministic]
        if noisy:
            drawn.append(spread(noisy))
        split = [r for r in results if r.record.split_j_per_inference]
        if split:
            drawn.append(energy_split(split))
        return drawn
