"""The judging side of a session: the baseline and the rule. No pytest here.

:class:`Judge` loads the baseline on first use and judges each test's record with
:func:`pytest_energy.verdict.judge` by the rule :meth:`Settings.rule` builds, in the process
that ran the test (a worker under xdist), so the test's own report carries its verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from . import baseline as baseline_io
from . import stats
from .baseline import Baseline
from .record import Provenance, Record
from .settings import Rule, Settings
from .verdict import BASELINE, COMPARE, Verdict, judge


class Judge:
    """Judges records against the session's baseline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._baseline: Baseline | None = None

    @property
    def baseline(self) -> Baseline:
        """The baseline file, read on first use (a BaselineError says what is wrong)."""
        if self._baseline is None:
            self._baseline = baseline_io.load(self.settings.baseline_path)
        return self._baseline

    def rule(self, provenance: Provenance, marker_tolerance_pct: float | None) -> Rule:
        return self.settings.rule(
            deterministic=provenance.deterministic,
            estimated=provenance.estimated,
            marker_tolerance_pct=marker_tolerance_pct,
        )

    def entry(self, provenance: Provenance, nodeid: str) -> Record | None:
        """The baseline entry a test's record would be judged against, if comparable."""
        entry = self.baseline.get(provenance.hardware, nodeid)
        if entry is None or not entry.provenance.comparable(provenance):
            return None
        return entry

    def settled(
        self, nodeid: str, provenance: Provenance, marker_tolerance_pct: float | None
    ) -> Callable[[Sequence[float]], bool] | None:
        """For adaptive rounds: whether more windows can still change this test's verdict;
        None for a test without a comparable baseline entry, and for a deterministic meter
        (one window says everything)."""
        entry = self.entry(provenance, nodeid)
        rule = self.rule(provenance, marker_tolerance_pct)
        if entry is None or rule.run_spread_pct is None:
            return None
        spread = rule.run_spread_pct
        s = self.settings

        def settled(samples: Sequence[float]) -> bool:
            return stats.settled(
                samples,
                entry.samples,
                tolerance_pct=rule.tolerance_pct,
                alpha=rule.alpha,
                history=entry.runs,
                run_spread_pct=spread,
                max_rounds=s.max_rounds,
            )

        return settled

    def judge(
        self, record: Record, *, budget_kwh: float | None, marker_tolerance_pct: float | None
    ) -> Verdict:
        """A test's record against its baseline entry and budget."""
        entry = self.baseline.get(record.hardware, record.nodeid)
        verdict = judge(
            record,
            entry,
            self.rule(record.provenance, marker_tolerance_pct),
            budget_kwh=budget_kwh,
            check=BASELINE,
        )
        if entry is None:
            elsewhere = self.baseline.hardware_for(record.nodeid)
            if elsewhere:
                verdict = replace(
                    verdict,
                    note=(
                        f"the baseline has this test only for other hardware "
                        f"({'; '.join(elsewhere)}); this run is on {record.hardware}"
                    ),
                )
        return verdict

    def judge_compare(
        self, candidate: Record, current: Record, *, tolerance_pct: float | None
    ) -> Verdict:
        """``energy.compare``: the candidate's windows against the current version's, as
        pairs; ``tolerance_pct`` is the call's or the test's marker's, if given."""
        rule = self.settings.rule(
            deterministic=candidate.deterministic,
            estimated=candidate.estimated,
            marker_tolerance_pct=tolerance_pct,
            paired=True,
        )
        return judge(candidate, current, rule, check=COMPARE)
