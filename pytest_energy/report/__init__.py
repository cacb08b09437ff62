"""Renderers: pure functions from a list of :class:`~pytest_energy.verdict.Result`.

:func:`write_reports` is the one call the plugin makes at the end of a session: it renders
the reports the settings ask for and writes each file atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..settings import Settings
from ..verdict import Result
from . import charts, common, html, json, markdown
from .carbon import CarbonIntensity
from .common import CHARTS_HINT, ReportError, RunInfo, atomic_write_text

__all__ = [
    "CarbonIntensity",
    "ReportError",
    "RunInfo",
    "write_reports",
]


def write_reports(
    results: Sequence[Result],
    settings: Settings,
    info: RunInfo,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Write the JSON, Markdown and HTML reports that ``settings`` name, each on its own.

    With ``--energy-report`` on, ``GITHUB_STEP_SUMMARY`` set in ``environ`` (default:
    ``os.environ``) and at least one measured test, the Markdown summary is also appended to
    that file. Report files are written even for a run with no measured test. Returns
    ``(lines, errors)``: one line per file written, for the terminal, and one line per file
    that could not be written. A failing report never stops the others.
    """
    env = os.environ if environ is None else environ
    lines: list[str] = []
    errors: list[str] = []

    def attempt(path: Path, what: str, job: Callable[[], str | None]) -> None:
        try:
            note = job()
        except ReportError as exc:
            errors.append(str(exc))
        except Exception as exc:  # a renderer bug must not lose the other reports
            errors.append(
                f"energy report {path}: the {what} report could not be rendered "
                f"({type(exc).__name__}: {common.safe_text(exc)}). This is a bug in "
                "pytest-energy: please report it with the test ids and meter in use. "
                "The other reports were written."
            )
        else:
            lines.append(note or f"energy report: wrote {what} to {path}")

    summary: list[str] = []

    def markdown_job(path: Path) -> str | None:
        summary.append(markdown.render(results, info))
        atomic_write_text(path, summary[0])
        return None

    def html_job(path: Path) -> str:
        atomic_write_text(path, html.render(results, info))
        missing = "" if charts.available() else f" (no charts: {CHARTS_HINT})"
        return f"energy report: wrote HTML to {path}{missing}"

    if settings.json_path is not None:
        path = settings.json_path
        attempt(path, "JSON", lambda: atomic_write_text(path, json.render(results, info)))
    if settings.markdown_path is not None:
        md_path = settings.markdown_path
        attempt(md_path, "Markdown", lambda: markdown_job(md_path))
    if settings.html_path is not None:
        html_path = settings.html_path
        attempt(html_path, "HTML", lambda: html_job(html_path))
    step_summary = env.get("GITHUB_STEP_SUMMARY", "")
    if settings.report and step_summary and results:
        step_path = Path(step_summary)

        def step_job() -> str:
            try:
                text = summary[0] if summary else markdown.render(results, info)
                markdown.append_step_summary(step_path, text)
            except OSError as exc:
                raise ReportError(
                    f"energy report: cannot append to GITHUB_STEP_SUMMARY file {step_path} "
                    f"({exc.strerror}). Check that the variable names a writable file."
                ) from None
            return "energy report: added the summary to $GITHUB_STEP_SUMMARY"

        attempt(step_path, "GITHUB_STEP_SUMMARY", step_job)
    return lines, errors
