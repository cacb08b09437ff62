"""Gate quality: how often the energy gate fails a test that did not change, and how often it
catches one that did.

Simulates pairs of runs (a baseline run and a candidate run), each a list of per-window kWh
figures, judges every pair by the gate's decision rule, :func:`pytest_energy.stats.compare`,
and prints Markdown tables.

Noise model (multiplicative, generated with a seeded numpy ``Generator``):

* Per window: lognormal with median 1 and log-sd ``sqrt(ln(1 + CV^2))``, so that the
  windows' coefficient of variation is exactly ``CV``; ``--noise normal`` uses ``1 + CV * Z``.
  Power Hungry Processing's logs show run-to-run CVs of about 3-5% for 10-second runs and
  about 2% for 100-300-second runs; the tables use CV = 1%, 2% and 5%.
* Per run: each run, baseline and candidate alike, draws one offset shared by all of its
  windows: lognormal with median 1 and log-sd ``run_sd`` (``1 + run_sd * Z`` with
  ``--noise normal``). ``run_sd = 0`` is the same runner for both runs; 1% and 2.5% stand
  for different boards of the same GPU model (Yang et al., SC'24, report about +-5% board to
  board on A100 and H100).
* A true change multiplies every window of the candidate run by ``1 + change``.

How the verdicts are computed. Tables 1-5 judge one baseline run against one candidate
run with the within-run rule, ``compare(..., run_spread_pct=0)`` (rule ``"u-test"``: the
run level is taken not to move, so no prediction bound). ``compare`` returns the ratio of
the medians and the exact one-sided Mann-Whitney p-value, over the windows that are not
outliers; neither depends on the tolerance or alpha, and the verdict for any (tolerance,
alpha) follows from them and the window counts by the condition in :func:`fails`. The exact
p-value costs about 0.6 ms at 8 windows a side and 17 ms at 16 in pure Python, so by default
(the *fast* path) the ratio is computed with numpy and the p-value comes from
``stats.mann_whitney_greater`` itself, called once per distinct (windows, windows, rank sum)
and reused: without ties the exact p-value depends on nothing else. Pairs with tied values
(none occur with continuous noise), and pairs in which ``compare`` may flag an outlier
window (:func:`may_flag`, which errs towards yes), are passed to ``compare``. Three checks
keep this honest: the ratio, p-value and window counts of the first :data:`VERIFY_PAIRS`
pairs of every cell must equal what ``compare`` returns; :func:`check_rule` compares
:func:`fails` with ``compare``'s verdict under every (tolerance, alpha) the tables use; and
``--direct`` judges every pair with ``compare`` (slow: use it with ``--quick`` or
``--pairs``), which must print the same tables for the same seed. The script stops on any
disagreement.

Tables 6-14 (:func:`run_across`) are about the rule across runs (baseline schema 2): a run
history, the prediction bound, outlier windows, outlying runs, adaptive rounds and the
paired A B B A analysis. They judge every simulated run with ``stats.compare``,
``stats.settled`` and ``stats.compare_paired`` themselves. The noise models
(:class:`NoiseModel`) add, to the per-window lognormal CV, a per-run offset, AR(1)
correlation between consecutive windows, outlier windows (+30%), a linear drift across a
run's windows, a fixed number of +30% windows in the latest baseline run, and recorded runs
multiplied by a factor (a hand-edited or broken run: 10x, 3x, ...). Table 7 is analytic:
the smallest change that any rule can detect at a known run spread
(:func:`smallest_detectable_pct`). ``--quick`` runs them at small sizes (100 runs per cell)
and ``Plan.across_trials = 0`` skips them; ``--history-outliers`` prints table 14 alone.

Usage::

    python benchmarks/gate_quality.py                  # full run
    python benchmarks/gate_quality.py --quick          # small run
    python benchmarks/gate_quality.py --quick --direct # the same, every pair through compare()
    python benchmarks/gate_quality.py --rounds 10 --tolerance 3 --alpha 0.01  # gate under test
    python benchmarks/gate_quality.py --from-json run1.json run2.json run3.json  # real noise
    python benchmarks/gate_quality.py --history-outliers   # table 14 only (~20 s)

The gate under test defaults to the defaults in ``pytest_energy/settings.py``.
``--history-outliers`` uses only names that ``pytest_energy.stats`` has had since 0.2, so it
also runs against an older checkout (docs/measurement.md gives the "before" figures so).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import _common  # noqa: F401  (this checkout's pytest_energy)
import numpy as np

from pytest_energy import settings as energy_settings
from pytest_energy import stats
from pytest_energy.record import RunSummary
from pytest_energy.settings import DEFAULT_RUN_SPREAD_PCT

#: The targets the tables are judged against.
TARGET_FALSE_ALARM = 0.01
TARGET_DETECTION = 0.95
TARGET_CHANGE = 0.05
TARGET_CV = 0.02

CVS = (0.01, 0.02, 0.05)
RUN_SDS = (0.0, 0.01, 0.025)
CHANGES = (0.0, 0.02, 0.05, 0.10, 0.20)
SWEEP_ROUNDS = (4, 6, 8, 10, 12, 16)
SWEEP_TOLERANCES = (2.0, 2.5, 3.0, 4.0, 5.0)
SWEEP_ALPHAS = (0.05, 0.01, 0.001)
OFFSET_RUN_SDS = (0.0, 0.005, 0.01, 0.025, 0.05)
OFFSET_TOLERANCES = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
FEW_WINDOWS = (1, 3)
FEW_TOLERANCES = (3.0, 5.0, 10.0)
#: pytest-benchmark's ``--benchmark-compare-fail=median:5%``.
NAIVE_PCT = 5.0
#: The gate as released in 0.1.0: rounds, tolerance, alpha.
V010 = (8, 5.0, 0.01)
#: Pairs per cell whose ratio and p-value are checked against ``compare``.
VERIFY_PAIRS = 12
#: Pairs per window count in :func:`check_rule`.
RULE_PAIRS = 4


@dataclass(frozen=True)
class Scenario:
    """One cell of the simulation."""

    rounds: int
    """Windows in the candidate run."""
    baseline_rounds: int
    """Windows in the baseline run."""
    cv: float
    """Coefficient of variation of a window around its run's level."""
    run_sd: float
    """Spread of the per-run offset (0: the same runner for both runs)."""
    change: float
    """True relative change of the candidate, e.g. 0.05 for +5%."""
    shared_baselines: int = 0
    """If > 0, only this many baselines are drawn, each reused for pairs/shared_baselines
    consecutive candidates (one recorded baseline judging many pull requests)."""

    def seed_words(self) -> list[int]:
        return [
            self.rounds,
            self.baseline_rounds,
            round(self.cv * 1e5),
            round(self.run_sd * 1e5),
            round(self.change * 1e5) + 10**6,
            self.shared_baselines,
        ]


@dataclass(frozen=True)
class Judged:
    """``compare``'s median ratio and one-sided p-value for every simulated pair of a cell."""

    scenario: Scenario
    ratio: np.ndarray
    p_regressed: np.ndarray
    n_current: np.ndarray
    """Windows of the candidate that compare() judged (those that are not outliers)."""
    n_baseline: np.ndarray
    _reachable: dict[float, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pairs(self) -> int:
        return len(self.ratio)

    def reachable(self, alpha: float) -> np.ndarray:
        """Per pair: whether the U test on the windows judged can reach ``alpha``."""
        if alpha not in self._reachable:
            sizes, index = np.unique(
                np.stack([self.n_current, self.n_baseline], axis=1), axis=0, return_inverse=True
            )
            can = np.array([stats.can_reach(alpha, int(a), int(b)) for a, b in sizes])
            self._reachable[alpha] = can[index.reshape(-1)]
        return self._reachable[alpha]


@dataclass(frozen=True)
class Gate:
    """A decision rule: the gate (median ratio and U test) or the naive median rule."""

    rounds: int
    tolerance_pct: float
    alpha: float | None
    """``None`` for the naive rule: fail whenever the median rises by more than the tolerance."""

    @property
    def label(self) -> str:
        if self.alpha is None:
            return f"naive: median > +{self.tolerance_pct:g}%"
        return f"gate: {self.rounds} rounds, {self.tolerance_pct:g}%, alpha {self.alpha:g}"


def fails(judged: Judged, tolerance_pct: float, alpha: float | None) -> np.ndarray:
    """Which pairs fail, by ``compare``'s regression condition (or the naive rule)."""
    if alpha is None:
        return judged.ratio > 1.0 + tolerance_pct / 100.0
    reachable = judged.reachable(alpha)
    # without a reachable U test compare() decides on the ratio alone (low confidence),
    # against a tolerance floor
    floor = max(tolerance_pct, stats.LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
    tested = (judged.ratio > 1.0 + tolerance_pct / 100.0) & (judged.p_regressed < alpha)
    return np.where(reachable, tested, judged.ratio > 1.0 + floor / 100.0)


# -- simulation -----------------------------------------------------------------------------


def _noise(
    rng: np.random.Generator, sd: float, shape: tuple[int, ...], kind: str, *, exact_cv: bool
) -> np.ndarray:
    z = rng.standard_normal(shape)
    if kind == "normal":
        return 1.0 + sd * z
    sigma = math.sqrt(math.log1p(sd * sd)) if exact_cv else sd
    return np.exp(sigma * z)


def draw(scenario: Scenario, pairs: int, *, seed: int, noise: str) -> tuple[np.ndarray, np.ndarray]:
    """Candidate windows (pairs x rounds) and baseline windows (pairs x baseline_rounds)."""
    s = scenario
    rng = np.random.default_rng([seed, *s.seed_words()])
    n_base = s.shared_baselines or pairs
    base_offset = _noise(rng, s.run_sd, (n_base, 1), noise, exact_cv=False)
    base = base_offset * _noise(rng, s.cv, (n_base, s.baseline_rounds), noise, exact_cv=True)
    if s.shared_baselines:
        base = np.repeat(base, -(-pairs // n_base), axis=0)[:pairs]
    cand_offset = _noise(rng, s.run_sd, (pairs, 1), noise, exact_cv=False)
    cand = (
        (1.0 + s.change) * cand_offset * _noise(rng, s.cv, (pairs, s.rounds), noise, exact_cv=True)
    )
    return cand, base


class PValues:
    """``stats.mann_whitney_greater`` memoised by (n_current, n_baseline, rank sum).

    Valid for samples without ties only, where the exact p-value is a function of the rank
    sum of the current sample. Each entry is computed by the real function on the first
    simulated pair that reaches it.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int], float] = {}
        self.calls = 0
        self.direct = 0
        """Pairs that the fast path passed to ``compare`` (ties, possible outliers)."""

    def get(
        self, n1: int, n2: int, rank_sum: int, current: np.ndarray, baseline: np.ndarray
    ) -> float:
        key = (n1, n2, rank_sum)
        p = self._cache.get(key)
        if p is None:
            p = stats.mann_whitney_greater(current.tolist(), baseline.tolist())
            self._cache[key] = p
            self.calls += 1
        return p


def within_run(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    tolerance_pct: float = energy_settings.DEFAULT_TOLERANCE_PCT,
    alpha: float = energy_settings.DEFAULT_ALPHA,
) -> stats.Comparison:
    """The rule of tables 1-5: ``compare`` with a prior run spread of 0 and no history."""
    return stats.compare(
        current, baseline, tolerance_pct=tolerance_pct, alpha=alpha, run_spread_pct=0.0
    )


Judgement = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Ratio, p-value and the window counts judged, per pair."""


def judge_direct(cand: np.ndarray, base: np.ndarray) -> Judgement:
    """Ratio, p-value and window counts of every pair from ``stats.compare`` itself."""
    pairs = len(cand)
    ratio, p_regressed = np.empty(pairs), np.empty(pairs)
    n1, n2 = np.empty(pairs, dtype=int), np.empty(pairs, dtype=int)
    for i in range(pairs):
        c = within_run(cand[i].tolist(), base[i].tolist())
        ratio[i], p_regressed[i] = c.ratio, c.p_regressed
        n1[i] = cand.shape[1] - len(c.outliers_current)
        n2[i] = base.shape[1] - len(c.outliers_baseline)
    return ratio, p_regressed, n1, n2


def may_flag(cand: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per pair: whether ``compare`` may set an outlier window aside. The condition of
    ``stats.robust.outliers`` with the pooled spread, loosened by 0.1% so that rounding
    can only send more pairs to ``compare``."""
    sides = [x for x in (cand, base) if x.shape[1] >= stats.MIN_OUTLIER_WINDOWS]
    if not sides:
        return np.zeros(len(cand), dtype=bool)
    relative = np.concatenate(
        [np.abs(x / np.median(x, axis=1, keepdims=True) - 1.0) for x in sides], axis=1
    )
    spread = stats.MAD_TO_SD * np.median(relative, axis=1, keepdims=True)
    limit = 0.999 * stats.OUTLIER_THRESHOLD * np.maximum(spread, stats.OUTLIER_FLOOR_PCT / 100)
    return (relative > limit).any(axis=1)


def judge_fast(cand: np.ndarray, base: np.ndarray, pvalues: PValues) -> Judgement:
    """The same numbers as :func:`judge_direct`, with the p-values memoised by rank sum."""
    n1, n2 = cand.shape[1], base.shape[1]
    ratio = np.median(cand, axis=1) / np.median(base, axis=1)
    pooled = np.concatenate([cand, base], axis=1)
    order = np.argsort(pooled, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks, order, np.arange(1, n1 + n2 + 1)[None, :].repeat(len(pooled), 0), axis=1
    )
    rank_sums = ranks[:, :n1].sum(axis=1)
    tied = (np.diff(np.take_along_axis(pooled, order, axis=1), axis=1) == 0).any(axis=1)
    direct = tied | may_flag(cand, base)
    pvalues.direct += int(direct.sum())
    p_regressed = np.empty(len(cand))
    n_current, n_baseline = np.full(len(cand), n1), np.full(len(cand), n2)
    for i in range(len(cand)):
        if direct[i]:
            ratio[i], p_regressed[i], n_current[i], n_baseline[i] = (
                x[0] for x in judge_direct(cand[i : i + 1], base[i : i + 1])
            )
        else:
            p_regressed[i] = pvalues.get(n1, n2, int(rank_sums[i]), cand[i], base[i])
    return ratio, p_regressed, n_current, n_baseline


def verify(judged: Judged, cand: np.ndarray, base: np.ndarray) -> None:
    """Check the first pairs' figures against ``compare``; stop on a difference."""
    ratio, p, n1, n2 = judge_direct(cand[:VERIFY_PAIRS], base[:VERIFY_PAIRS])
    for i in range(min(VERIFY_PAIRS, judged.pairs)):
        if not (
            math.isclose(ratio[i], judged.ratio[i], rel_tol=1e-12)
            and p[i] == judged.p_regressed[i]
            and (n1[i], n2[i]) == (judged.n_current[i], judged.n_baseline[i])
        ):
            raise AssertionError(
                f"pair {i} of {judged.scenario}: the simulation has ratio {judged.ratio[i]!r}, "
                f"p {judged.p_regressed[i]!r}; stats.compare says {ratio[i]!r}, {p[i]!r}"
            )


def check_rule(settings: Iterable[tuple[float, float]], *, seed: int = 2024) -> int:
    """Check :func:`fails` against ``compare``'s verdict under every setting.

    Uses small random pairs with few and with many windows, so that both branches of the rule
    (ratio alone, ratio and U test) are exercised. Returns the number of verdicts checked.
    """
    settings = list(settings)
    rng = np.random.default_rng([seed, 99])
    checked = 0
    for rounds in (1, 3, 4, 6, 8):
        for change in (0.0, 0.03, 0.06, 0.12):
            cand = (1.0 + change) * np.exp(0.03 * rng.standard_normal((RULE_PAIRS, rounds)))
            base = np.exp(0.03 * rng.standard_normal((RULE_PAIRS, rounds)))
            judged = Judged(Scenario(rounds, rounds, 0.03, 0.0, change), *judge_direct(cand, base))
            for tol, alpha in settings:
                mine = fails(judged, tol, alpha)
                for i in range(RULE_PAIRS):
                    c = within_run(
                        cand[i].tolist(), base[i].tolist(), tolerance_pct=tol, alpha=alpha
                    )
                    if bool(mine[i]) != (c.status is stats.Status.REGRESSED):
                        raise AssertionError(
                            f"fails() disagrees with stats.compare at tolerance {tol}%, alpha "
                            f"{alpha}, {rounds} windows: the gate's rule changed; update fails()"
                        )
                    checked += 1
    return checked


class Cells:
    """Simulated cells, memoised so that tables sharing a cell share its draw."""

    def __init__(
        self,
        pairs: int,
        *,
        seed: int = 2024,
        noise: str = "lognormal",
        direct: bool = False,
    ) -> None:
        self.pairs = pairs
        self.seed = seed
        self.noise = noise
        self.direct = direct
        self.pvalues = PValues()
        self._cache: dict[Scenario, Judged] = {}

    def judged(self, scenario: Scenario, pairs: int | None = None) -> Judged:
        if scenario not in self._cache:
            cand, base = draw(scenario, pairs or self.pairs, seed=self.seed, noise=self.noise)
            if self.direct:
                judged = Judged(scenario, *judge_direct(cand, base))
            else:
                judged = Judged(scenario, *judge_fast(cand, base, self.pvalues))
            verify(judged, cand, base)
            self._cache[scenario] = judged
        return self._cache[scenario]

    def get(self, rounds: int, cv: float, run_sd: float, change: float) -> Judged:
        return self.judged(Scenario(rounds, rounds, cv, run_sd, change))

    def rate(self, gate: Gate, cv: float, run_sd: float, change: float) -> float:
        return float(
            fails(self.get(gate.rounds, cv, run_sd, change), gate.tolerance_pct, gate.alpha).mean()
        )


def smallest_tolerance(
    judged: Judged, alpha: float | None, target: float = TARGET_FALSE_ALARM
) -> float:
    """Smallest tolerance, in steps of 0.1%, whose false-alarm rate is at most ``target``."""
    for tenth in range(0, 1001):
        tol = tenth / 10.0
        if float(fails(judged, tol, alpha).mean()) <= target:
            return tol
    return math.inf


# -- formatting -----------------------------------------------------------------------------


def pct(rate: float) -> str:
    return f"{100.0 * rate:.1f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


# -- the tables -----------------------------------------------------------------------------


def rules_table(cells: Cells, gates: Sequence[Gate]) -> str:
    """Failure rates of each rule for every CV, run offset and true change."""
    header = ["CV/window", "run offset sd", "rule", "fails, no change (false alarm)"]
    header += [f"fails, +{c * 100:g}%" for c in CHANGES if c > 0]
    rows = []
    for cv in CVS:
        for run_sd in RUN_SDS:
            for gate in gates:
                row = [f"{cv * 100:g}%", f"{run_sd * 100:g}%", gate.label]
                row += [pct(cells.rate(gate, cv, run_sd, change)) + "%" for change in CHANGES]
                rows.append(row)
    return table(header, rows)


def sweep_table(cells: Cells, rounds_list: Sequence[int]) -> tuple[str, list[Gate]]:
    """False alarms / detection of +5% at CV 2%, same runner, for every setting.

    Returns the table and the settings that meet both targets.
    """
    header = ["rounds", "alpha"] + [f"tol {t:g}%: FA / det+5%" for t in SWEEP_TOLERANCES]
    rows = []
    passing = []
    for rounds in rounds_list:
        for alpha in SWEEP_ALPHAS:
            mark = "" if stats.can_reach(alpha, rounds, rounds) else " (ratio only)"
            row = [str(rounds), f"{alpha:g}{mark}"]
            for tol in SWEEP_TOLERANCES:
                gate = Gate(rounds, tol, alpha)
                fa = cells.rate(gate, TARGET_CV, 0.0, 0.0)
                det = cells.rate(gate, TARGET_CV, 0.0, TARGET_CHANGE)
                ok = fa <= TARGET_FALSE_ALARM and det >= TARGET_DETECTION
                text = f"{pct(fa)} / {pct(det)}"
                row.append(f"**{text}**" if ok else text)
                if ok:
                    passing.append(gate)
            rows.append(row)
    return table(header, rows), passing


def offsets_table(cells: Cells, gate: Gate) -> str:
    """What run-level offsets (different runners) do to the gate and to the naive rule."""
    assert gate.alpha is not None
    header = ["run offset sd", "rule"]
    header += [f"tol {t:g}%: FA / det+5% / det+10%" for t in OFFSET_TOLERANCES]
    header.append("smallest tol with FA <= 1%")
    rows = []
    for run_sd in OFFSET_RUN_SDS:
        for alpha, name in ((gate.alpha, f"gate, alpha {gate.alpha:g}"), (None, "naive median")):
            row = [f"{run_sd * 100:g}%", name]
            for tol in OFFSET_TOLERANCES:
                rates = [
                    float(
                        fails(cells.get(gate.rounds, TARGET_CV, run_sd, change), tol, alpha).mean()
                    )
                    for change in (0.0, 0.05, 0.10)
                ]
                row.append(" / ".join(pct(r) for r in rates))
            smallest = smallest_tolerance(cells.get(gate.rounds, TARGET_CV, run_sd, 0.0), alpha)
            row.append(f"{smallest:.1f}%")
            rows.append(row)
    return table(header, rows)


def fixed_baseline_table(cells: Cells, gate: Gate, baselines: int, per: int) -> str:
    """One recorded baseline judging ``per`` candidates each: the spread of per-baseline rates."""
    assert gate.alpha is not None
    header = [
        "CV/window",
        "baseline windows",
        "FA: mean",
        "FA: worst 10% of baselines",
        "baselines with FA > 2%",
        "det+5%: mean",
        "det+5%: worst 10% of baselines",
    ]
    rows = []
    for cv in (TARGET_CV, 0.05):
        for baseline_rounds in (gate.rounds, 2 * gate.rounds):
            rates = []
            for change in (0.0, TARGET_CHANGE):
                scenario = Scenario(gate.rounds, baseline_rounds, cv, 0.0, change, baselines)
                failed = fails(
                    cells.judged(scenario, baselines * per), gate.tolerance_pct, gate.alpha
                )
                rates.append(failed.reshape(baselines, per).mean(axis=1))
            fa, det = rates
            rows.append(
                [
                    f"{cv * 100:g}%",
                    str(baseline_rounds),
                    pct(float(fa.mean())) + "%",
                    pct(float(np.quantile(fa, 0.9))) + "%",
                    f"{int((fa > 0.02).sum())} of {baselines}",
                    pct(float(det.mean())) + "%",
                    pct(float(np.quantile(det, 0.1))) + "%",
                ]
            )
    return table(header, rows)


def few_windows_table(cells: Cells, alpha: float) -> str:
    """Tests with one or a few windows: the ratio alone decides (low confidence)."""
    header = ["windows per run", "CV/window"]
    header += [f"tol {t:g}%: FA / det+5% / det+10%" for t in FEW_TOLERANCES]
    header.append("smallest tol with FA <= 1%")
    rows = []
    for rounds in FEW_WINDOWS:
        for cv in CVS:
            row = [str(rounds), f"{cv * 100:g}%"]
            for tol in FEW_TOLERANCES:
                rates = [
                    float(fails(cells.get(rounds, cv, 0.0, change), tol, alpha).mean())
                    for change in (0.0, 0.05, 0.10)
                ]
                row.append(" / ".join(pct(r) for r in rates))
            row.append(f"{smallest_tolerance(cells.get(rounds, cv, 0.0, 0.0), alpha):.1f}%")
            rows.append(row)
    return table(header, rows)


# -- noise measured on real hardware -----------------------------------------------------------


@dataclass(frozen=True)
class MeasuredNoise:
    """A test's window-to-window and run-to-run spread, estimated from several runs."""

    nodeid: str
    hardware: str
    runs: int
    windows: int
    cv: float
    """Pooled within-run spread of the windows (log scale, as a CV)."""
    run_sd: float
    """Spread of the run levels beyond what the window noise explains (log scale)."""


def estimate_noise(reports: Sequence[dict[str, object]]) -> list[MeasuredNoise]:
    """Estimate per-test noise from JSON reports (``--energy-json``) of repeated runs.

    Uses tests with at least two windows in at least two runs, on the same hardware and
    meter. Within a run, the variance of log(sample) estimates the window noise; the
    variance of the runs' mean log(sample), less the part the window noise explains,
    estimates the run-level offset.
    """
    runs: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for report in reports:
        tests = report.get("tests", [])
        assert isinstance(tests, list)
        for test in tests:
            samples = np.asarray(test.get("samples") or [], dtype=float)
            if len(samples) >= 2 and (samples > 0).all():
                key = (str(test["nodeid"]), str(test["hardware"]), str(test["meter"]))
                runs.setdefault(key, []).append(np.log(samples))
    found = []
    for (nodeid, hardware, _), logs in sorted(runs.items()):
        if len(logs) < 2:
            continue
        within = float(np.mean([np.var(x, ddof=1) for x in logs]))
        windows = int(np.mean([len(x) for x in logs]))
        between = float(np.var([x.mean() for x in logs], ddof=1)) - within / windows
        found.append(
            MeasuredNoise(
                nodeid=nodeid,
                hardware=hardware,
                runs=len(logs),
                windows=windows,
                cv=math.sqrt(math.expm1(within)),
                run_sd=math.sqrt(max(between, 0.0)),
            )
        )
    return found


def measured_table(noise: Sequence[MeasuredNoise], gate: Gate, pairs: int, seed: int) -> str:
    """The gate's false alarms and detection at each test's measured noise."""
    assert gate.alpha is not None
    cells = Cells(pairs, seed=seed)
    header = [
        "test",
        "hardware",
        "runs",
        "windows",
        "CV/window",
        "run offset sd",
        "FA (no change)",
        "det+5%",
        "det+10%",
        "smallest tol with FA <= 1%",
    ]
    rows = []
    for n in noise:
        cv, run_sd = round(n.cv, 4), round(n.run_sd, 4)
        rates = [cells.rate(gate, cv, run_sd, change) for change in (0.0, 0.05, 0.10)]
        smallest = smallest_tolerance(cells.get(gate.rounds, cv, run_sd, 0.0), gate.alpha)
        rows.append(
            [
                n.nodeid,
                n.hardware,
                str(n.runs),
                str(n.windows),
                f"{n.cv * 100:.2f}%",
                f"{n.run_sd * 100:.2f}%",
                *(pct(r) + "%" for r in rates),
                f"{smallest:.1f}%",
            ]
        )
    return table(header, rows)


# -- across runs: history, prediction bound, outliers, adaptive rounds ------------------------

#: The gate's defaults for the tables below: tolerance, alpha.
ACROSS_TOLERANCE_PCT = 3.0
ACROSS_ALPHA = 0.01
#: Windows per recorded baseline run and per fixed-count candidate run.
ACROSS_WINDOWS = 10
#: Tests in the simulated suite of table 9.
SUITE_TESTS = 50
#: Runs per chain in table 10 (re-recording after each accepted verdict).
CHAIN_RUNS = 40


@dataclass(frozen=True)
class NoiseModel:
    """Noise of one test's runs, beyond the per-window lognormal CV (see :func:`run_windows`)."""

    label: str
    cv: float = TARGET_CV
    run_sd: float = 0.0
    """Log-sd of the per-run offset shared by all windows of a run."""
    rho: float = 0.0
    """AR(1) correlation of consecutive windows' log noise (stationary sd unchanged)."""
    outlier_rate: float = 0.0
    """Probability that a window is an outlier, multiplied by 1 + outlier_size."""
    outlier_size: float = 0.30
    drift_sd: float = 0.0
    """Each run drifts linearly across its windows, first to last window, by a normal amount
    with this sd (warm-up, thermal throttling, a neighbour starting)."""
    baseline_outliers: int = 0
    """Exactly this many windows of the latest baseline run are multiplied by 1.3."""
    run_factors: tuple[tuple[int, float], ...] = ()
    """(index, factor): every window of that recorded run is multiplied by the factor (a
    hand-edited or broken run; -1 is the latest run, whose windows are the baseline)."""

    def words(self) -> list[int]:
        return [
            round(self.cv * 1e5),
            round(self.run_sd * 1e5),
            round(self.rho * 1e5),
            round(self.outlier_rate * 1e5),
            round(self.outlier_size * 1e5),
            round(self.drift_sd * 1e5),
            self.baseline_outliers,
            *(w for i, f in self.run_factors for w in (i + 100, round(f * 1e5))),
        ]


def run_windows(rng: np.random.Generator, model: NoiseModel, runs: int, windows: int) -> np.ndarray:
    """``runs`` x ``windows`` multiplicative noise: run offset x AR(1) lognormal x outliers x
    drift. Median about 1."""
    sigma = math.sqrt(math.log1p(model.cv * model.cv))
    z = rng.standard_normal((runs, windows))
    e = np.empty_like(z)
    e[:, 0] = z[:, 0]
    keep = math.sqrt(1.0 - model.rho * model.rho)
    for t in range(1, windows):
        e[:, t] = model.rho * e[:, t - 1] + keep * z[:, t]
    x = np.exp(sigma * e + model.run_sd * rng.standard_normal((runs, 1)))
    if model.outlier_rate:
        x *= np.where(rng.random((runs, windows)) < model.outlier_rate, 1 + model.outlier_size, 1)
    if model.drift_sd:
        shape = np.linspace(-0.5, 0.5, windows)[None, :] if windows > 1 else np.zeros((1, 1))
        x *= 1.0 + model.drift_sd * rng.standard_normal((runs, 1)) * shape
    return x


@dataclass(frozen=True)
class Setup:
    """What the gate knows: how many baseline runs, which prior, which rule."""

    label: str
    history_runs: int
    """Recorded baseline runs (the latest one's windows are the baseline)."""
    prior_pct: float
    """``run_spread_pct`` given to compare(); 0 with a one-run baseline: the U test alone."""

    def judge(
        self,
        current: Sequence[float],
        baseline: Sequence[float],
        history: Sequence[RunSummary],
    ) -> stats.Comparison:
        return stats.compare(
            current,
            baseline,
            tolerance_pct=ACROSS_TOLERANCE_PCT,
            alpha=ACROSS_ALPHA,
            history=history,
            run_spread_pct=self.prior_pct,
        )


#: The prior run spread a measured meter's rule starts from.
MEASURED_PRIOR = DEFAULT_RUN_SPREAD_PCT["measured"]
#: The within-run rule alone: what tables 1-5 measure, and what a one-run baseline gets with
#: ``--energy-run-spread=0``.
WITHIN = Setup("U test alone (prior 0%), one-run baseline", 1, 0.0)
NEW_1 = Setup(f"one-run baseline, prior {MEASURED_PRIOR:g}%", 1, MEASURED_PRIOR)
NEW_5 = Setup(f"5-run baseline, prior {MEASURED_PRIOR:g}%", 5, MEASURED_PRIOR)


def _draw_test(
    rng: np.random.Generator, model: NoiseModel, trials: int, history_runs: int, windows: int
) -> tuple[np.ndarray, np.ndarray]:
    """History (trials x runs x ACROSS_WINDOWS) and candidate noise (trials x windows)."""
    hist = run_windows(rng, model, trials * history_runs, ACROSS_WINDOWS).reshape(
        trials, history_runs, ACROSS_WINDOWS
    )
    if model.baseline_outliers:
        for i in range(trials):
            picked = rng.choice(ACROSS_WINDOWS, model.baseline_outliers, replace=False)
            hist[i, -1, picked] *= 1.30
    for index, factor in model.run_factors:
        hist[:, index, :] *= factor
    cand = run_windows(rng, model, trials, windows)
    return hist, cand


def _summaries(runs: np.ndarray) -> list[RunSummary]:
    return [RunSummary.of(r.tolist(), "") for r in runs]


def across_rate(model: NoiseModel, setup: Setup, change: float, trials: int, *, seed: int) -> float:
    """Share of simulated runs that compare() calls regressed (fixed ACROSS_WINDOWS windows)."""
    rng = np.random.default_rng([seed, 61, *model.words(), setup.history_runs, round(change * 1e5)])
    hist, cand = _draw_test(rng, model, trials, setup.history_runs, ACROSS_WINDOWS)
    cand = cand * (1.0 + change)
    failed = 0
    for i in range(trials):
        c = setup.judge(cand[i].tolist(), hist[i, -1].tolist(), _summaries(hist[i]))
        failed += c.status is stats.Status.REGRESSED
    return failed / trials


@dataclass(frozen=True)
class Adaptive:
    mean_windows: float
    failed: float


def adaptive_rate(
    model: NoiseModel,
    setup: Setup,
    change: float,
    trials: int,
    *,
    seed: int,
    max_rounds: int = energy_settings.DEFAULT_MAX_ROUNDS,
) -> Adaptive:
    """``--energy-rounds=auto``: windows are added until stats.settled() says stop."""
    rng = np.random.default_rng([seed, 62, *model.words(), setup.history_runs, round(change * 1e5)])
    hist, cand = _draw_test(rng, model, trials, setup.history_runs, max_rounds)
    cand = cand * (1.0 + change)
    used = 0
    failed = 0
    for i in range(trials):
        base = hist[i, -1].tolist()
        summaries = _summaries(hist[i])
        windows = cand[i].tolist()
        n = 1
        while not stats.settled(
            windows[:n],
            base,
            tolerance_pct=ACROSS_TOLERANCE_PCT,
            alpha=ACROSS_ALPHA,
            history=summaries,
            run_spread_pct=setup.prior_pct,
            max_rounds=max_rounds,
        ):
            n += 1
        used += n
        c = setup.judge(windows[:n], base, summaries)
        failed += c.status is stats.Status.REGRESSED
    return Adaptive(used / trials, failed / trials)


def suite_rate(
    setup: Setup, run_sd: float, runs: int, *, seed: int, tests: int = SUITE_TESTS
) -> tuple[float, float]:
    """A suite of ``tests`` unchanged tests; every run shares one offset across its tests (the
    board, the day). Returns (share of suite runs with any failed test, per-test rate)."""
    rng = np.random.default_rng([seed, 63, setup.history_runs, round(run_sd * 1e5)])
    model = NoiseModel("suite", run_sd=0.0)
    any_failed = 0
    failures = 0
    for _ in range(runs):
        offsets = np.exp(run_sd * rng.standard_normal(setup.history_runs + 1))
        hist = (
            run_windows(rng, model, tests * setup.history_runs, ACROSS_WINDOWS).reshape(
                tests, setup.history_runs, ACROSS_WINDOWS
            )
            * offsets[None, :-1, None]
        )
        cand = run_windows(rng, model, tests, ACROSS_WINDOWS) * offsets[-1]
        failed = 0
        for t in range(tests):
            c = setup.judge(cand[t].tolist(), hist[t, -1].tolist(), _summaries(hist[t]))
            failed += c.status is stats.Status.REGRESSED
        any_failed += failed > 0
        failures += failed
    return any_failed / runs, failures / (runs * tests)


def chain_rates(
    setup: Setup, run_sd: float, chains: int, *, seed: int, keep: int = 5
) -> tuple[float, float]:
    """An unchanged test judged CHAIN_RUNS times, the baseline updated after every run as
    ``--energy-update-baseline`` does: an "improved" verdict whose hint is shown (beyond the
    prediction bound; with the U test alone, every "improved") is accepted and replaces the
    history with that run; an ok run is appended to it (at most ``keep`` runs). Returns the
    false-alarm rates of runs 1-10 and 31-40."""
    rng = np.random.default_rng([seed, 64, setup.history_runs, round(run_sd * 1e5)])
    model = NoiseModel("chain", run_sd=run_sd)
    early = late = 0
    for _ in range(chains):
        first = run_windows(rng, model, setup.history_runs, ACROSS_WINDOWS)
        runs = [r.tolist() for r in first]
        for j in range(CHAIN_RUNS):
            cur = run_windows(rng, model, 1, ACROSS_WINDOWS)[0].tolist()
            c = setup.judge(cur, runs[-1], [RunSummary.of(r, "") for r in runs])
            if c.status is stats.Status.REGRESSED:
                early += j < 10
                late += j >= CHAIN_RUNS - 10
            elif c.status is stats.Status.IMPROVED and c.improved_beyond_bound:
                runs = [cur]
            else:
                runs = [*runs, cur][-keep:]
    return early / (10 * chains), late / (10 * chains)


def abba_rates(
    drift: float, change: float, trials: int, *, seed: int, rounds: int = ACROSS_WINDOWS
) -> tuple[float, float]:
    """energy.compare in one run: A and B alternate A B B A ..., the run drifts linearly by
    ``drift`` from its first window to its last. Returns the regressed share by compare() on
    the two sets of windows and by compare_paired()."""
    rng = np.random.default_rng([seed, 65, round(drift * 1e5), round(change * 1e5)])
    sigma = math.sqrt(math.log1p(TARGET_CV * TARGET_CV))
    slots = 2 * rounds
    trend = 1.0 + drift * np.linspace(0.0, 1.0, slots)
    unpaired = paired = 0
    for _ in range(trials):
        x = np.exp(sigma * rng.standard_normal(slots)) * trend
        a_idx = [2 * r + (r % 2) for r in range(rounds)]  # A B, B A, A B, ...
        b_idx = [2 * r + 1 - (r % 2) for r in range(rounds)]
        a = x[a_idx].tolist()
        b = (x[b_idx] * (1.0 + change)).tolist()
        u = within_run(b, a, tolerance_pct=ACROSS_TOLERANCE_PCT, alpha=ACROSS_ALPHA)
        p = stats.compare_paired(a, b, tolerance_pct=ACROSS_TOLERANCE_PCT, alpha=ACROSS_ALPHA)
        unpaired += u.status is stats.Status.REGRESSED
        paired += p.status is stats.Status.REGRESSED
    return unpaired / trials, paired / trials


def smallest_detectable_pct(
    run_sd: float, cv: float, windows: int, history_runs: int, false_alarm: float, power: float
) -> float:
    """The physical limit: the smallest true change that any rule detects with ``power`` at
    ``false_alarm`` per run, when the run spread is known exactly and a run's level is the
    mean of its windows' logs (the best any statistic can do at normal noise):
    ``(z_fa + z_power) * sqrt(run_sd^2 + s^2 / windows) * sqrt(1 + 1 / history_runs)``,
    with ``s`` the log-sd of a window."""
    s2 = math.log1p(cv * cv)
    tau = math.sqrt(run_sd * run_sd + s2 / windows)
    z = stats.normal_quantile(1 - false_alarm) + stats.normal_quantile(power)
    return math.expm1(z * tau * math.sqrt(1 + 1 / history_runs)) * 100.0


# -- the tables across runs ------------------------------------------------------------------


def limit_table() -> str:
    header = [
        "run spread",
        "baseline runs",
        "FA 1%, power 95%",
        "FA 0.2%, power 95%",
        "FA 0.1%, power 96.5%",
    ]
    rows = []
    for run_sd in (0.0, 0.005, 0.01, 0.02):
        for k in (1, 3, 5, 10):
            row = [f"{run_sd * 100:g}%", str(k)]
            for fa, power in ((0.01, 0.95), (0.002, 0.95), (0.001, 0.965)):
                limit = smallest_detectable_pct(run_sd, TARGET_CV, ACROSS_WINDOWS, k, fa, power)
                row.append(f"{limit:.1f}%")
            rows.append(row)
    return table(header, rows)


@dataclass(frozen=True)
class TargetRow:
    case: str
    setting: str
    measured: str
    target: str
    met: bool


def target_rows(trials: int, seed: int) -> list[TargetRow]:
    rows = []
    m1 = NoiseModel("run spread 1%", run_sd=0.01)
    fa = across_rate(m1, NEW_5, 0.0, 4 * trials, seed=seed)
    det = across_rate(m1, NEW_5, 0.10, max(trials // 4, 1), seed=seed)
    rows.append(
        TargetRow(
            "CV 2%, run spread 1%, 5-run baseline",
            f"prior {MEASURED_PRIOR:g}% (default) pooled with the history",
            f"FA {pct(fa)}%, +10% detected {pct(det)}%",
            "FA <= 0.2%, +10% >= 95%",
            fa <= 0.002 and det >= 0.95,
        )
    )
    one = Setup("one-run, prior 1%", 1, 1.0)
    fa = across_rate(m1, one, 0.0, 4 * trials, seed=seed)
    rows.append(
        TargetRow(
            "one-run baseline, run spread 1% (prior)",
            "prior 1%",
            f"FA {pct(fa)}%",
            "FA <= 1%",
            fa <= 0.01,
        )
    )
    mo = NoiseModel("two +30% baseline windows", run_sd=0.01, baseline_outliers=2)
    det = across_rate(mo, NEW_1, 0.20, max(trials // 4, 1), seed=seed)
    rows.append(
        TargetRow(
            "two +30% outlier windows in the baseline",
            f"one-run baseline, run spread 1%, prior {MEASURED_PRIOR:g}%",
            f"+20% detected {pct(det)}%",
            "+20% >= 99%",
            det >= 0.99,
        )
    )
    ma = NoiseModel("AR(1) 0.5", rho=0.5)
    fa = across_rate(ma, NEW_1, 0.0, 4 * trials, seed=seed)
    rows.append(
        TargetRow(
            "AR(1), rho 0.5",
            f"same runner, one-run baseline, prior {MEASURED_PRIOR:g}%",
            f"FA {pct(fa)}%",
            "FA <= 1%",
            fa <= 0.01,
        )
    )
    a0 = adaptive_rate(m1, NEW_5, 0.0, max(trials // 2, 1), seed=seed)
    a10 = adaptive_rate(m1, NEW_5, 0.10, max(trials // 4, 1), seed=seed)
    rows.append(
        TargetRow(
            "adaptive rounds, unchanged test",
            f"as row 1, max {energy_settings.DEFAULT_MAX_ROUNDS} windows",
            f"mean {a0.mean_windows:.2f} windows (FA {pct(a0.failed)}%); +10%: "
            f"{pct(a10.failed)}% detected, mean {a10.mean_windows:.2f} windows",
            "mean <= 6, +10% >= 95%",
            a0.mean_windows <= 6 and a10.failed >= 0.95,
        )
    )
    m10 = NoiseModel("one 10x run", run_sd=0.01, run_factors=((2, 10.0),))
    fa = across_rate(m10, NEW_5, 0.0, 4 * trials, seed=seed)
    det = across_rate(m10, NEW_5, 0.10, max(trials // 4, 1), seed=seed)
    det30 = across_rate(m10, NEW_5, 0.30, max(trials // 4, 1), seed=seed)
    rows.append(
        TargetRow(
            "one run of the 5-run history at 10x",
            "as row 1",
            f"FA {pct(fa)}%, +10% detected {pct(det)}%, +30% {pct(det30)}%",
            "FA <= 1%, +10% >= 95%",
            fa <= 0.01 and det >= 0.95,
        )
    )
    m10_latest = NoiseModel("latest run 10x", run_sd=0.01, run_factors=((-1, 10.0),))
    fa = across_rate(m10_latest, NEW_5, 0.0, 4 * trials, seed=seed)
    det = across_rate(m10_latest, NEW_5, 0.10, max(trials // 4, 1), seed=seed)
    rows.append(
        TargetRow(
            "the latest run (the baseline's windows) at 10x",
            "as row 1",
            f"FA {pct(fa)}%, +10% detected {pct(det)}%",
            "FA <= 1%, +10% >= 95%",
            fa <= 0.01 and det >= 0.95,
        )
    )
    suite, _ = suite_rate(NEW_5, 0.01, max(trials // 10, 1), seed=seed)
    rows.append(
        TargetRow(
            f"{SUITE_TESTS} unchanged tests, run spread 1%, 5-run baselines",
            "as row 1; one offset per run shared by all tests",
            f"{pct(suite)}% of runs fail any test",
            "<= 10%",
            suite <= 0.10,
        )
    )
    return rows


def targets_table(rows: Sequence[TargetRow]) -> str:
    return table(
        ["case", "setting", "measured", "target", "met"],
        [[r.case, r.setting, r.measured, r.target, "yes" if r.met else "**no**"] for r in rows],
    )


NOISE_MODELS = (
    NoiseModel("i.i.d., same runner"),
    NoiseModel("run spread 0.5%", run_sd=0.005),
    NoiseModel("run spread 1%", run_sd=0.01),
    NoiseModel("run spread 2%", run_sd=0.02),
    NoiseModel("run spread 3%", run_sd=0.03),
    NoiseModel("AR(1) rho 0.5", rho=0.5),
    NoiseModel("AR(1) rho 0.8", rho=0.8),
    NoiseModel("5% outlier windows (+30%)", outlier_rate=0.05),
    NoiseModel("two +30% windows in the baseline", baseline_outliers=2),
    NoiseModel("drift, sd 3% per run", drift_sd=0.03),
    NoiseModel("run spread 1% + AR(1) 0.5 + 5% outliers", run_sd=0.01, rho=0.5, outlier_rate=0.05),
)


def noise_table(trials: int, seed: int) -> str:
    setups = (WITHIN, NEW_1, NEW_5)
    header = ["noise (CV 2% per window)"] + [f"{s.label}: FA / +5% / +10% / +20%" for s in setups]
    rows = []
    for model in NOISE_MODELS:
        row = [model.label]
        for setup in setups:
            rates = [across_rate(model, setup, 0.0, trials, seed=seed)]
            rates += [
                across_rate(model, setup, ch, max(trials // 4, 1), seed=seed)
                for ch in (0.05, 0.10, 0.20)
            ]
            row.append(" / ".join(pct(r) for r in rates))
        rows.append(row)
    return table(header, rows)


def same_runner_table(trials: int, seed: int) -> str:
    """The same-runner i.i.d. case with the spread prior set to 0 (a dedicated runner)."""
    model = NoiseModel("i.i.d., same runner")
    setups = (WITHIN, Setup("5-run baseline, prior 0%", 5, 0.0), NEW_1, NEW_5)
    header = ["rule", "FA", "+2%", "+5%", "+10%"]
    rows = []
    for setup in setups:
        rates = [across_rate(model, setup, 0.0, trials, seed=seed)]
        rates += [across_rate(model, setup, ch, trials, seed=seed) for ch in (0.02, 0.05, 0.10)]
        rows.append([setup.label, *(pct(r) + "%" for r in rates)])
    return table(header, rows)


def adaptive_table(trials: int, seed: int) -> str:
    cases = (
        (NoiseModel("run spread 1%", run_sd=0.01), NEW_5),
        (NoiseModel("run spread 1%", run_sd=0.01), NEW_1),
        (NoiseModel("run spread 1%", run_sd=0.01), Setup("5-run baseline, prior 1%", 5, 1.0)),
        (NoiseModel("i.i.d., same runner"), WITHIN),
    )
    header = [
        "noise",
        "rule",
        "no change: windows / FA",
        "+5%: windows / detected",
        "+10%: windows / detected",
        f"fixed {ACROSS_WINDOWS} windows: FA / +5% / +10%",
    ]
    rows = []
    for model, setup in cases:
        row = [model.label, setup.label]
        for ch, n in ((0.0, trials), (0.05, max(trials // 2, 1)), (0.10, max(trials // 2, 1))):
            a = adaptive_rate(model, setup, ch, n, seed=seed)
            row.append(f"{a.mean_windows:.2f} / {pct(a.failed)}%")
        fixed = [across_rate(model, setup, ch, trials, seed=seed) for ch in (0.0, 0.05, 0.10)]
        row.append(" / ".join(pct(r) for r in fixed))
        rows.append(row)
    return table(header, rows)


def suite_table(runs: int, seed: int) -> str:
    header = ["run spread", "rule", "runs with a failed test", "per test"]
    rows = []
    for run_sd in (0.0, 0.01, 0.02):
        for setup in (WITHIN, NEW_1, NEW_5):
            any_failed, per_test = suite_rate(setup, run_sd, runs, seed=seed)
            rows.append(
                [f"{run_sd * 100:g}%", setup.label, pct(any_failed) + "%", pct(per_test) + "%"]
            )
    return table(header, rows)


def chain_table(chains: int, seed: int) -> str:
    header = ["run spread", "rule", "FA, runs 1-10", "FA, runs 31-40"]
    rows = []
    for run_sd in (0.01, 0.02):
        for setup in (Setup("prior 0%, from a one-run baseline", 1, 0.0), NEW_5):
            early, late = chain_rates(setup, run_sd, chains, seed=seed)
            rows.append([f"{run_sd * 100:g}%", setup.label, pct(early) + "%", pct(late) + "%"])
    return table(header, rows)


#: Table 14: (label, recorded runs, run spread, (index, factor) of the runs multiplied);
#: index 2 is the middle run of five, -1 the latest, whose windows are the baseline.
HISTORY_OUTLIERS = (
    ("clean history", 5, 0.01, ()),
    ("clean history", 5, 0.02, ()),
    ("clean history", 5, 0.03, ()),
    ("one run at 10x", 5, 0.01, ((2, 10.0),)),
    ("the latest run at 10x (its windows too)", 5, 0.01, ((-1, 10.0),)),
    ("one run at 3x", 5, 0.01, ((2, 3.0),)),
    ("one run at +20%", 5, 0.01, ((2, 1.2),)),
    ("one run at 0.1x", 5, 0.01, ((2, 0.1),)),
    ("two runs, at 10x and 3x", 5, 0.01, ((1, 10.0), (3, 3.0))),
    ("one run at 10x", 3, 0.01, ((1, 10.0),)),
)
HISTORY_CHANGES = (0.10, 0.30, 2.0, 4.0)


def history_outliers_table(trials: int, seed: int) -> str:
    """Outlying recorded runs: CV 2%, the default prior."""
    header = ["history", "runs", "run spread", "FA"]
    header += [f"+{c * 100:g}%" for c in HISTORY_CHANGES]
    header.append("runs set aside, no change (mean)")
    rows = []
    for label, runs, run_sd, factors in HISTORY_OUTLIERS:
        model = NoiseModel(label, run_sd=run_sd, run_factors=factors)
        setup = Setup(label, runs, MEASURED_PRIOR)
        rates = [across_rate(model, setup, 0.0, trials, seed=seed)]
        rates += [
            across_rate(model, setup, ch, max(trials // 4, 1), seed=seed) for ch in HISTORY_CHANGES
        ]
        aside = set_aside_mean(model, setup, trials, seed=seed)
        row = [label, str(runs), f"{run_sd * 100:g}%", *(pct(r) + "%" for r in rates), aside]
        rows.append(row)
    return table(header, rows)


def set_aside_mean(model: NoiseModel, setup: Setup, trials: int, *, seed: int) -> str:
    """Mean number of runs an unchanged test's comparison sets aside ("-" before 0.3)."""
    rng = np.random.default_rng([seed, 66, *model.words(), setup.history_runs])
    hist, cand = _draw_test(rng, model, trials, setup.history_runs, ACROSS_WINDOWS)
    total = 0
    for i in range(trials):
        c = setup.judge(cand[i].tolist(), hist[i, -1].tolist(), _summaries(hist[i]))
        if not hasattr(c, "outlying_runs"):
            return "-"
        total += len(c.outlying_runs)
    return f"{total / trials:.3f}"


def abba_table(trials: int, seed: int) -> str:
    header = ["drift over the run", "compare(): FA / +5%", "compare_paired(): FA / +5%"]
    rows = []
    for drift in (0.0, 0.05, 0.10):
        u0, p0 = abba_rates(drift, 0.0, trials, seed=seed)
        u5, p5 = abba_rates(drift, 0.05, trials, seed=seed)
        rows.append([f"{drift * 100:g}%", f"{pct(u0)} / {pct(u5)}", f"{pct(p0)} / {pct(p5)}"])
    return table(header, rows)


HISTORY_OUTLIERS_HEADING = (
    "## 14. Outlying runs in the history: regressed share, percent (CV 2%, 10 windows a run, "
    "prior 2%; {runs} runs per false-alarm cell, {changes} per change)\n"
)


def run_across(trials: int, *, seed: int, out: Callable[[str], None] = print) -> list[TargetRow]:
    """Print the tables of the rule across runs; return the target rows."""
    started = time.perf_counter()
    out(
        f"## 6. Across runs: the targets (tolerance {ACROSS_TOLERANCE_PCT:g}%, alpha "
        f"{ACROSS_ALPHA:g}, {ACROSS_WINDOWS} windows a run, CV {TARGET_CV:.0%}, "
        f"{4 * trials} runs per false-alarm cell)\n"
    )
    rows = target_rows(trials, seed)
    out(targets_table(rows))
    out("")
    out(
        "## 7. The physical limit: smallest change detectable at a known run spread "
        "(CV 2%, 10 windows)\n"
    )
    out(limit_table())
    out("")
    out("## 8. Noise models: regressed share, percent (FA with no change, then detection)\n")
    out(noise_table(trials, seed))
    out("")
    out("## 9. Same runner, i.i.d. noise: before and the new rule (percent)\n")
    out(same_runner_table(trials, seed))
    out("")
    out("## 10. Adaptive rounds (--energy-rounds=auto, stats.settled)\n")
    out(adaptive_table(max(trials // 2, 1), seed))
    out("")
    out(
        f"## 11. A suite of {SUITE_TESTS} unchanged tests, one run offset shared by all "
        "tests of a run\n"
    )
    out(suite_table(max(trials // 20, 1), seed))
    out("")
    out(f"## 12. Re-recording after the 'improved' hint, {CHAIN_RUNS} runs of an unchanged test\n")
    out(chain_table(max(trials // 20, 1), seed))
    out("")
    out("## 13. energy.compare, A B B A order, with drift within the run\n")
    out(abba_table(max(trials // 4, 1), seed))
    out("")
    out(HISTORY_OUTLIERS_HEADING.format(runs=trials, changes=max(trials // 4, 1)))
    out(history_outliers_table(trials, seed))
    out("")
    out(
        f"Across-run tables simulated in {time.perf_counter() - started:.0f} s, every verdict "
        "by stats.compare, stats.settled or stats.compare_paired."
    )
    return rows


# -- main -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    pairs: int
    sweep_rounds: tuple[int, ...]
    fixed_baselines: int
    candidates_per_baseline: int
    across_trials: int = 40
    """Simulated runs per no-change cell of the across-run tables (6-13); 0 skips them."""


FULL = Plan(
    pairs=10000,
    sweep_rounds=SWEEP_ROUNDS,
    fixed_baselines=50,
    candidates_per_baseline=400,
    across_trials=4000,
)
QUICK = Plan(
    pairs=300,
    sweep_rounds=(4, 6, 8, 10),
    fixed_baselines=10,
    candidates_per_baseline=40,
    across_trials=100,
)


def run(
    plan: Plan,
    gate: Gate,
    *,
    seed: int = 2024,
    noise: str = "lognormal",
    direct: bool = False,
    out: Callable[[str], None] = print,
) -> list[Gate]:
    """Print every table; return the sweep's settings that meet both targets."""
    assert gate.alpha is not None
    started = time.perf_counter()
    tolerances = sorted(
        {*SWEEP_TOLERANCES, *OFFSET_TOLERANCES, *FEW_TOLERANCES, gate.tolerance_pct, V010[1]}
    )
    alphas = sorted({*SWEEP_ALPHAS, gate.alpha, V010[2]})
    settings = [(t, a) for t in tolerances for a in alphas]
    rule_checks = check_rule(settings, seed=seed)
    cells = Cells(plan.pairs, seed=seed, noise=noise, direct=direct)
    v010 = Gate(*V010)
    gates = [Gate(V010[0], NAIVE_PCT, None), v010]
    if gate != v010:
        gates.append(gate)

    out(f"# Gate quality ({noise} noise, seed {seed}, {plan.pairs} pairs per cell)\n")
    out(
        f"Gate under test: {gate.label}. Targets: false alarms <= {TARGET_FALSE_ALARM:.0%} with "
        f"no change, and detection >= {TARGET_DETECTION:.0%} of a +{TARGET_CHANGE:.0%} regression, "
        f"at CV {TARGET_CV:.0%} per window on the same runner.\n"
    )
    out("## 1. How often each rule fails a test (percent of simulated baseline/candidate pairs)\n")
    out(rules_table(cells, gates))
    out("")

    out(
        f"## 2. Sweep at CV {TARGET_CV:.0%}, same runner: "
        "false alarms / detection of +5% (percent)\n"
    )
    text, passing = sweep_table(cells, plan.sweep_rounds)
    out(text)
    out("")
    out(
        "Bold: meets both targets. '(ratio only)': with that many windows the U test cannot "
        "reach alpha, so compare() decides on the median ratio alone.\n"
    )
    out("Settings meeting both targets: " + (", ".join(g.label for g in passing) or "none") + "\n")

    out(
        "## 3. Run-level offsets (baseline and candidate on different runners), "
        f"{gate.rounds} rounds, CV {TARGET_CV:.0%}\n"
    )
    out(offsets_table(cells, gate))
    out("")

    out(f"## 4. One baseline reused for many candidates ({gate.label}, same runner)\n")
    out(fixed_baseline_table(cells, gate, plan.fixed_baselines, plan.candidates_per_baseline))
    out("")
    out(f"{plan.fixed_baselines} baselines, {plan.candidates_per_baseline} candidates each.\n")

    out(
        "## 5. Tests with one or three windows (marker-only tests, one energy.measure block), "
        f"alpha {gate.alpha:g}\n"
    )
    out(few_windows_table(cells, gate.alpha))
    out("")

    mode = (
        "every pair judged by stats.compare"
        if direct
        else (
            f"p-values memoised by rank sum ({cells.pvalues.calls} calls of "
            f"stats.mann_whitney_greater), {cells.pvalues.direct} pairs with a possible outlier "
            "window or a tie judged by stats.compare"
        )
    )
    out(
        f"Simulated in {time.perf_counter() - started:.0f} s; {mode}. Checks against "
        f"stats.compare: ratio, p-value and window counts of the first {VERIFY_PAIRS} pairs of "
        f"every cell, and "
        f"{rule_checks} verdicts under {len(settings)} (tolerance, alpha) settings.\n"
    )
    if plan.across_trials:
        run_across(plan.across_trials, seed=seed, out=out)
    return passing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (300 pairs per cell)")
    parser.add_argument("--pairs", type=int, default=None, help="pairs per cell (default 10000)")
    parser.add_argument(
        "--direct", action="store_true", help="judge every pair with stats.compare (slow)"
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--noise", choices=("lognormal", "normal"), default="lognormal")
    parser.add_argument("--rounds", type=int, default=energy_settings.DEFAULT_ROUNDS)
    parser.add_argument("--tolerance", type=float, default=energy_settings.DEFAULT_TOLERANCE_PCT)
    parser.add_argument("--alpha", type=float, default=energy_settings.DEFAULT_ALPHA)
    parser.add_argument(
        "--history-outliers",
        action="store_true",
        help="print only table 14 (outlying recorded runs), at the full size or --quick's",
    )
    parser.add_argument(
        "--from-json",
        nargs="+",
        type=Path,
        metavar="REPORT",
        help="instead of the tables: estimate each test's noise from JSON reports of repeated "
        "runs (--energy-json) and give the gate's error rates at that noise",
    )
    args = parser.parse_args(argv)
    gate = Gate(args.rounds, args.tolerance, args.alpha)
    if args.from_json:
        reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.from_json]
        noise = estimate_noise(reports)
        if not noise:
            parser.error("no test has two or more windows in two or more of these reports")
        print(f"# Gate quality at measured noise ({gate.label}, {len(reports)} reports)\n")
        print(measured_table(noise, gate, args.pairs or 4000, args.seed))
        return 0
    plan = QUICK if args.quick else FULL
    if args.history_outliers:
        trials = plan.across_trials
        print(HISTORY_OUTLIERS_HEADING.format(runs=trials, changes=max(trials // 4, 1)))
        print(history_outliers_table(trials, args.seed))
        return 0
    if args.pairs is not None:
        plan = replace(plan, pairs=args.pairs)
    run(
        plan,
        gate,
        seed=args.seed,
        noise=args.noise,
        direct=args.direct,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
