"""Fixed results shared by the report tests (and by the example in docs/reports.md).

One result per case a report must show: regressed, improved, new, over budget, estimated,
with tokens, with images, and a node id full of characters that need escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from pytest_energy.record import J_PER_KWH, Provenance, Record, Window, Work
from pytest_energy.report.carbon import CarbonIntensity
from pytest_energy.report.common import RunInfo
from pytest_energy.settings import DEFAULT_ALPHA, DEFAULT_TOLERANCE_PCT, Rule
from pytest_energy.verdict import Result, judge

GPU = "NVIDIA H100 80GB HBM3 x1"
CPU = "Intel(R) Xeon(R) Platinum 8480+ (estimated)"
#: Window-to-window wobble around a median of 1.0 (median of these is exactly 1.0).
WOBBLE = (0.98, 1.01, 0.99, 1.02, 1.0, 0.97, 1.03, 1.0)
WEIRD_NODEID = "tests/test_odd.py::test_escape[<b>&\"'</b>-&amp;-café-µs→|x`y]"
NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
FRANCE = CarbonIntensity(56.039, "CodeCarbon offline data for FRA (France, 2023)", "FRA")


def windows(
    kwh: float,
    inferences: int = 64,
    *,
    count: int = 8,
    tokens: int | None = None,
    images: int | None = None,
    throttle: Sequence[tuple[str, ...]] = (),
) -> tuple[Window, ...]:
    """``count`` windows whose kWh per 1,000 inferences wobble around ``kwh``."""
    result = []
    for i in range(count):
        factor = WOBBLE[i % len(WOBBLE)]
        energy = kwh * factor * J_PER_KWH * inferences / 1000.0
        result.append(
            Window(
                energy_j=energy,
                duration_s=1.5 * factor,
                work=Work(inferences, tokens, images),
                domains_j={"gpu0": energy},
                start_unix_s=1_736_942_400.0 + 2 * i,
                end_unix_s=1_736_942_401.5 + 2 * i,
                throttle=throttle[i] if i < len(throttle) else (),
            )
        )
    return tuple(result)


def entry(
    kwh: float,
    *,
    count: int = 8,
    meter: str = "nvml",
    estimated: bool = False,
    nodeid: str = "",
    hardware: str = GPU,
) -> Record:
    """A baseline entry whose samples wobble around ``kwh``."""
    return Record(
        nodeid=nodeid or "baseline",
        provenance=Provenance(meter=meter, hardware=hardware, estimated=estimated),
        samples=tuple(kwh * WOBBLE[i % len(WOBBLE)] for i in range(count)),
        work=Work(64 * count),
    )


def result(
    nodeid: str,
    ws: tuple[Window, ...],
    *,
    baseline: Record | None = None,
    budget_kwh: float | None = None,
    meter: str = "nvml",
    hardware: str = GPU,
    estimated: bool = False,
    outcome: str = "passed",
) -> Result:
    record = Record.of_windows(
        nodeid,
        Provenance(
            meter=meter,
            hardware=hardware,
            estimated=estimated,
            description="NVML total energy counter" if not estimated else "modelled from CPU TDP",
        ),
        ws,
    )
    rule = Rule(
        tolerance_pct=DEFAULT_TOLERANCE_PCT,
        alpha=DEFAULT_ALPHA,
        run_spread_pct=0.0,  # the within-run rule: these baselines are one run, same runner
        deterministic=False,
    )
    verdict = judge(record, baseline, rule, budget_kwh=budget_kwh)
    failed = verdict.failed
    return Result(record, verdict, outcome="failed" if failed else outcome)


def results() -> list[Result]:
    """The fixed run, in the order pytest would have run it."""
    return [
        result(
            "tests/test_bert.py::test_embed[bs=16]",
            windows(0.0024),
            baseline=entry(0.0020),
        ),
        result(
            "tests/test_bert.py::test_embed[bs=64]",
            windows(0.0012, inferences=256),
            baseline=entry(0.0016),
        ),
        result("tests/test_vit.py::test_classify_new", windows(0.0031)),
        result(
            "tests/test_whisper.py::test_transcribe",
            windows(0.061, inferences=16),
            baseline=entry(0.060),
            budget_kwh=0.05,
        ),
        result(
            "tests/test_cpu.py::test_tiny_mlp",
            windows(0.00042, inferences=512, count=3),
            baseline=entry(0.00041, count=3, meter="codecarbon", estimated=True),
            meter="codecarbon",
            hardware=CPU,
            estimated=True,
        ),
        result(
            "tests/test_llm.py::test_generate[llama-3-8b]",
            windows(0.41, inferences=8, tokens=8 * 256),
            baseline=entry(0.40),
            budget_kwh=0.5,
        ),
        result(
            "tests/test_diffusion.py::test_sdxl[steps=30]",
            windows(
                2.2, inferences=4, images=4, throttle=[(), ("thermal",), ("power cap", "thermal")]
            ),
            baseline=entry(2.25),
        ),
        result(WEIRD_NODEID, windows(0.0008), baseline=entry(0.0008)),
    ]


def by_nodeid() -> dict[str, Result]:
    return {r.nodeid: r for r in results()}


def run_info(*, carbon: bool = True, phone_charge_kwh: float | None = None) -> RunInfo:
    from pytest_energy.settings import Settings

    settings = (
        Settings() if phone_charge_kwh is None else Settings(phone_charge_kwh=phone_charge_kwh)
    )
    return RunInfo.create(
        results(), settings=settings, intensity=FRANCE if carbon else None, now=NOW
    )


ROOFLINE_HW = "NVIDIA H100 SXM (roofline v3, eager)"


def modelled(nodeid: str, kwh: float, split: dict[str, float], inferences: int = 8) -> Result:
    """A roofline record of one window whose modelled energy divides as ``split`` (shares)."""
    energy = kwh * J_PER_KWH * inferences / 1000.0
    counts = {f"energy_j:{name}": energy * share for name, share in split.items()}
    counts |= {"flops": 2e9 * inferences, "bytes": 1e7 * inferences, "kernels": 40.0 * inferences}
    window = Window(energy_j=energy, duration_s=0.0, work=Work(inferences), counts=counts,
                    start_unix_s=1_736_942_400.0)  # fmt: skip
    record = Record.of_windows(
        nodeid,
        Provenance(
            "roofline",
            ROOFLINE_HW,
            estimated=True,
            deterministic=True,
            engine="eager",
            target="H100-SXM",
            description="modelled, not measured",
        ),
        [window],
    )
    rule = Rule(tolerance_pct=1.0, alpha=DEFAULT_ALPHA, run_spread_pct=None, deterministic=True)
    return Result(record, judge(record, None, rule), outcome="passed")


def modelled_results() -> list[Result]:
    """A tiny, launch-bound model and a production-size one, as the roofline meter sees them."""
    return [
        modelled("tests/test_tiny.py::test_vit_tiny", 2e-7,
                 {"matmul": 0.06, "attention": 0.02, "other": 0.02, "overhead": 0.9}),
        modelled("tests/test_llm.py::test_llama_8b_decode", 0.13,
                 {"matmul": 0.55, "attention": 0.2, "other": 0.1, "overhead": 0.15}),
    ]  # fmt: skip
