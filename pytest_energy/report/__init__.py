"""Renderers: pure functions from a list of :class:`~pytest_energy.results.EnergyResult`.

:func:`write_all` is the one call the plugin makes at the end of a session: it renders the
reports the settings ask for and writes each file atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..results import EnergyResult
from ..settings import Settings
from . import charts, html, json, markdown
from .carbon import CarbonIntensity
from .common import CHARTS_HINT, ReportError, RunInfo, atomic_write_text

__all__ = ["CarbonIntensity", "ReportError", "RunInfo", "write_all"]


def write_all(
    results: Sequence[EnergyResult],
    settings: Settings,
    info: RunInfo,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Write the JSON, Markdown and HTML reports that ``settings`` name.

    With ``--energy-report`` on, ``GITHUB_STEP_SUMMARY`` set in ``environ`` (default:
    ``os.environ``) and at least one measured test, the Markdown summary is also appended to
    that file. Report files are written even for a run with no measured test. Returns one line per
    file written, for the terminal. Raises :class:`ReportError` when a file cannot be
    written; the files written before it stay in place.
    """
    env = os.environ if environ is None else environ
    lines: list[str] = []
    if settings.json_path is not None:
        atomic_write_text(settings.json_path, json.render(results, info))
        lines.append(f"energy report: wrote JSON to {settings.json_path}")
    summary: str | None = None
    if settings.markdown_path is not None:
        summary = markdown.render(results, info)
        atomic_write_text(settings.markdown_path, summary)
        lines.append(f"energy report: wrote Markdown to {settings.markdown_path}")
    if settings.html_path is not None:
        atomic_write_text(settings.html_path, html.render(results, info))
        missing = "" if charts.available() else f" (no charts: {CHARTS_HINT})"
        lines.append(f"energy report: wrote HTML to {settings.html_path}{missing}")
    step_summary = env.get("GITHUB_STEP_SUMMARY", "")
    if settings.report and step_summary and results:
        path = Path(step_summary)
        try:
            markdown.append_step_summary(path, summary or markdown.render(results, info))
        except OSError as exc:
            raise ReportError(
                f"energy report: cannot append to GITHUB_STEP_SUMMARY file {path} "
                f"({exc.strerror}). Check that the variable names a writable file."
            ) from None
        lines.append("energy report: added the summary to $GITHUB_STEP_SUMMARY")
    return lines
