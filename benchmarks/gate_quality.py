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

How the verdicts are computed. ``compare`` returns the ratio of the medians and the exact
one-sided Mann-Whitney p-value; neither depends on the tolerance or alpha, and the verdict
for any (tolerance, alpha) follows from them by the condition in :func:`fails`. The exact
p-value costs about 0.6 ms at 8 windows a side and 17 ms at 16 in pure Python, so by default
(the *fast* path) the ratio is computed with numpy and the p-value comes from
``stats.mann_whitney_greater`` itself, called once per distinct (windows, windows, rank sum)
and reused: without ties the exact p-value depends on nothing else. Pairs with tied values
(none occur with continuous noise) are passed to ``compare``. Three checks keep this honest:
the ratio and p-value of the first :data:`VERIFY_PAIRS` pairs of every cell must equal what
``compare`` returns; :func:`check_rule` compares :func:`fails` with ``compare``'s verdict under
every (tolerance, alpha) the tables use; and ``--direct`` judges every pair with ``compare``
(slow: use it with ``--quick`` or ``--pairs``), which must print the same tables for the same
seed. The script stops on any disagreement.

Usage::

    python benchmarks/gate_quality.py                  # full run
    python benchmarks/gate_quality.py --quick          # small run
    python benchmarks/gate_quality.py --quick --direct # the same, every pair through compare()
    python benchmarks/gate_quality.py --rounds 10 --tolerance 3 --alpha 0.01  # gate under test
    python benchmarks/gate_quality.py --from-json run1.json run2.json run3.json  # real noise

The gate under test defaults to the defaults in ``pytest_energy/settings.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

try:
    from pytest_energy import settings as energy_settings
    from pytest_energy import stats
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pytest_energy import settings as energy_settings
    from pytest_energy import stats

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

    @property
    def pairs(self) -> int:
        return len(self.ratio)


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
    s = judged.scenario
    if not stats.can_reach(alpha, s.rounds, s.baseline_rounds):
        # compare() decides on the ratio alone (low confidence), with a tolerance floor
        floor = max(tolerance_pct, stats.LOW_CONFIDENCE_MIN_TOLERANCE_PCT)
        return judged.ratio > 1.0 + floor / 100.0
    return (judged.ratio > 1.0 + tolerance_pct / 100.0) & (judged.p_regressed < alpha)


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


def judge_direct(cand: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratio and p-value of every pair from ``stats.compare`` itself."""
    pairs = len(cand)
    ratio = np.empty(pairs)
    p_regressed = np.empty(pairs)
    tol, alpha = energy_settings.DEFAULT_TOLERANCE_PCT, energy_settings.DEFAULT_ALPHA
    for i in range(pairs):
        c = stats.compare(cand[i].tolist(), base[i].tolist(), tolerance_pct=tol, alpha=alpha)
        ratio[i] = c.ratio
        p_regressed[i] = c.p_regressed
    return ratio, p_regressed


def judge_fast(
    cand: np.ndarray, base: np.ndarray, pvalues: PValues
) -> tuple[np.ndarray, np.ndarray]:
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
    p_regressed = np.empty(len(cand))
    for i in range(len(cand)):
        if tied[i]:
            c = stats.compare(cand[i].tolist(), base[i].tolist(), tolerance_pct=5.0, alpha=0.01)
            ratio[i], p_regressed[i] = c.ratio, c.p_regressed
        else:
            p_regressed[i] = pvalues.get(n1, n2, int(rank_sums[i]), cand[i], base[i])
    return ratio, p_regressed


def verify(judged: Judged, cand: np.ndarray, base: np.ndarray) -> None:
    """Check the first pairs' ratio and p-value against ``compare``; stop on a difference."""
    for i in range(min(VERIFY_PAIRS, judged.pairs)):
        c = stats.compare(cand[i].tolist(), base[i].tolist(), tolerance_pct=5.0, alpha=0.01)
        if not (
            math.isclose(c.ratio, judged.ratio[i], rel_tol=1e-12)
            and c.p_regressed == judged.p_regressed[i]
        ):
            raise AssertionError(
                f"pair {i} of {judged.scenario}: the simulation has ratio {judged.ratio[i]!r}, "
                f"p {judged.p_regressed[i]!r}; stats.compare says {c.ratio!r}, {c.p_regressed!r}"
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
            ratio, p = judge_direct(cand, base)
            judged = Judged(Scenario(rounds, rounds, 0.03, 0.0, change), ratio, p)
            for tol, alpha in settings:
                mine = fails(judged, tol, alpha)
                for i in range(RULE_PAIRS):
                    c = stats.compare(
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
                ratio, p = judge_direct(cand, base)
            else:
                ratio, p = judge_fast(cand, base, self.pvalues)
            judged = Judged(scenario, ratio, p)
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


# -- main -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    pairs: int
    sweep_rounds: tuple[int, ...]
    fixed_baselines: int
    candidates_per_baseline: int


FULL = Plan(pairs=10000, sweep_rounds=SWEEP_ROUNDS, fixed_baselines=50, candidates_per_baseline=400)
QUICK = Plan(pairs=300, sweep_rounds=(4, 6, 8, 10), fixed_baselines=10, candidates_per_baseline=40)


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
            "stats.mann_whitney_greater)"
        )
    )
    out(
        f"Simulated in {time.perf_counter() - started:.0f} s; {mode}. Checks against "
        f"stats.compare: ratio and p-value of the first {VERIFY_PAIRS} pairs of every cell, and "
        f"{rule_checks} verdicts under {len(settings)} (tolerance, alpha) settings."
    )
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
