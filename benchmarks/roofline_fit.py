"""Fit the roofline model's coefficients to published GPU measurements, and validate them.

    python benchmarks/roofline_fit.py              # fit, print both tables
    python benchmarks/roofline_fit.py --write      # ... and write profiles.toml
    python benchmarks/roofline_fit.py --shipped    # evaluate profiles.toml as is
    python benchmarks/roofline_fit.py --markdown   # the tables of
                                                                # docs/roofline-validation.md
    python benchmarks/roofline_fit.py --recount    # recount every row's records
    python benchmarks/roofline_fit.py --orderings  # the same work on each GPU
    python benchmarks/roofline_fit.py --input-tokens 512   # sensitivity to the
                                                    # assumed input length of the LLM rows
    python benchmarks/roofline_fit.py --nvml --target H100-SXM   # on a GPU

Needs the benchmark extra ``pip install -e ".[roofline-fit]"`` (scipy for the optimiser,
tomlkit to rewrite profiles.toml without losing its comments).

The data are the rows of ``benchmarks/roofline_calibration.toml`` (published GPU-board
energy, scope G). For each row, ``benchmarks/roofline_workloads.py`` rebuilds the work it
measured on torch's meta device and counts it into op records (cached in
``benchmarks/roofline_records/``). The model (``pytest_energy/meters/roofline/model.py``)
prices those records with a set of coefficients; this script finds the one set, shared by
every GPU (the coefficients are fractions of each board's datasheet TDP, peak and
bandwidth, so they transfer between GPUs), that minimises

    sum over fit rows of  w_row * log(modelled / measured) ** 2
      + sum over coefficients of  (log(value / prior) / log(PRIOR_SPREAD)) ** 2

plus, for the rows whose source publishes a latency or a throughput, TIME_WEIGHT times the
same term for the modelled against the measured time of the row's work (energy alone cannot
tell a slow kernel at low power from a fast one at high power; time can), with
``scipy.optimize.least_squares``. A row's weight is 1 / (rows of the same model on the
same GPU and engine), so that a sweep of batch sizes counts once per model, not once per
point. The prior term is weak (a factor PRIOR_SPREAD = 3 costs as much as one row off by a
factor e): it keeps the coefficients that the rows barely constrain (the interconnect, the
shortest kernel) at physically sensible values instead of letting them drift to a bound.
The priors and their reasons are in :data:`PRIORS`.

The validation rows are never seen by the fit. Reported per split: each row's measured and
modelled value and their ratio, the median |log ratio| (as a percentage: exp(median) - 1),
the share of rows within [0.5x, 2x] and within [0.25x, 4x].

``--nvml`` is the GPU check a session with an NVIDIA GPU runs: it counts a few matrix
products, memory-bound ops and, with ``--models``, bert-base and gpt2 with the roofline
counter, measures each with the NVML energy counter, and prints modelled against measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: F401, E402  (this checkout's pytest_energy)
import roofline_workloads as workloads  # noqa: E402

from pytest_energy.meters.roofline import model, profiles  # noqa: E402

TABLE = HERE / "roofline_calibration.toml"
#: Profiles the calibration rows need that profiles.toml does not ship (user profile files).
PROFILES_TOML = Path(profiles.__file__).with_name("profiles.toml")

#: How far (as a factor) a coefficient may stray from its prior for the cost of one row
#: that is off by a factor e.
PRIOR_SPREAD = 3.0

#: Weight of a row's time residual against its energy residual: time is a constraint that
#: separates the achieved efficiencies from the power fractions, energy is the target.
TIME_WEIGHT = 0.25

#: Starting point and weak prior of each coefficient, with its physical reason.
PRIORS: dict[str, tuple[float, str]] = {
    "eta_compute_max": (0.6, "large GEMMs reach 60-75% of the dense peak (cuBLAS at scale)"),
    "compute_half_s": (
        1e-6,
        "an op of ~1 us of work at peak reaches half its best efficiency; "
        "the model adds it to every op with FLOPs, pointwise ones too, so it is "
        "also the floor of a small kernel, which is about that",
    ),
    "eta_memory_max": (0.7, "streaming kernels reach 60-80% of the HBM bandwidth"),
    "memory_half_s": (
        1e-6,
        "a ~1 us transfer at full bandwidth (3 MB on an H100) reaches half its best rate",
    ),
    "kernel_min_s": (2e-6, "the shortest kernels on A100/H100 take about 2 us"),
    "host_s": (
        1.9e-5,
        "eager PyTorch: about 19 us of Python, dispatch and launch per op (issue 19)",
    ),
    "graph_gap_s": (1e-6, "CUDA graph replay: about 1 us between kernels"),
    "eta_interconnect_max": (0.7, "NCCL all-reduce bus bandwidth: ~70% of NVLink"),
    "collective_latency_s": (1e-5, "a small NCCL all-reduce takes ~10 us"),
    "static_power_frac": (0.3, "an active but waiting board draws ~30% of TDP"),
    "compute_power_frac": (0.7, "TDP-limited at full tensor-core load: static + dynamic ~ TDP"),
    "memory_power_frac": (0.35, "HBM streaming adds ~35% of TDP at full bandwidth"),
}


#: Coefficients fitted separately for one GPU, with the reason; their prior is the shared
#: value, with the same spread. Every other GPU uses the shared coefficients.
OVERRIDES: dict[str, tuple[tuple[str, ...], str]] = {
    "B200": (
        ("eta_compute_max", "static_power_frac"),
        "the B200 rows (ML.ENERGY v3: vLLM 0.11, xDiT 0.4.5) reach a smaller fraction of the "
        "2.25 PFLOPS dense bf16 peak than the H100 rows of the same software, and idle at a "
        "different fraction of their 1,000 W; 10 fit rows (LLM decode at batch 8 to 2,048 on "
        "one and two boards, three diffusion transformers) constrain both",
    ),
}


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One published measurement of the calibration table."""

    id: str
    split: str
    source: str
    model: str
    workload: str
    gpu: str
    gpus: int
    engine: str
    measured: float
    unit: str
    shape: workloads.Shape
    measured_time_s: float | None
    """Seconds the row's whole work took, where the source publishes it."""

    @property
    def per(self) -> int:
        """What the published figure is per: tokens or inferences of one run of the work."""
        if self.unit == "J/output-token":
            return self.shape.batch * self.shape.output_tokens
        return self.shape.batch

    @property
    def group(self) -> tuple[str, str, str, int]:
        return (self.workload, self.gpu, self.engine, self.gpus)


UNITS = ("J/output-token", "J/inference", "J/image")


def load_rows(path: Path = TABLE) -> list[Row]:
    """The rows of the calibration table, checked."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    rows: list[Row] = []
    for raw in data["row"]:
        where = f"{path.name} row {raw.get('id')!r}"
        if raw["scope"] != "G":
            raise ValueError(f"{where}: scope {raw['scope']!r}; only G rows can be fitted")
        if raw["split"] not in ("fit", "validate"):
            raise ValueError(f"{where}: split must be fit or validate")
        if raw["unit"] not in UNITS:
            raise ValueError(f"{where}: unit must be one of {', '.join(UNITS)}")
        if raw["workload"] not in workloads.WORKLOADS:
            raise ValueError(f"{where}: no workload {raw['workload']!r}")
        width, height = (int(v) for v in raw.get("resolution", "0x0").split("x"))
        shape = workloads.Shape(
            batch=int(raw["batch"]),
            precision=raw["precision"],
            engine=raw["engine"],
            input_tokens=int(raw.get("input_tokens", 0)),
            output_tokens=int(raw.get("output_tokens", 0)),
            steps=int(raw.get("steps", 0)),
            height=height,
            width=width,
        )
        rows.append(
            Row(
                raw["id"],
                raw["split"],
                raw["source"],
                raw["model"],
                raw["workload"],
                raw["gpu"],
                int(raw["gpus"]),
                raw["engine"],
                float(raw["measured"]),
                raw["unit"],
                shape,
                float(raw["measured_time_s"]) if "measured_time_s" in raw else None,
            )
        )
    ids = Counter(row.id for row in rows)
    duplicates = [key for key, n in ids.items() if n > 1]
    if duplicates:
        raise ValueError(f"{path.name}: duplicate row ids {', '.join(duplicates)}")
    return rows


def row_records(
    row: Row, *, recount: bool = False, cache_dir: Path = workloads.CACHE_DIR
) -> list[model.OpRecord]:
    """The op records of one row's work (from the cache unless ``recount``)."""
    raw = workloads.cached(row.id, row.workload, row.shape, recount=recount, cache_dir=cache_dir)
    return [model.OpRecord(*values) for values in raw]


# --------------------------------------------------------------------------- the model of a row


@dataclass(frozen=True)
class Prepared:
    row: Row
    profile: profiles.Profile
    records: tuple[model.OpRecord, ...]


def prepare(
    rows: Sequence[Row],
    *,
    recount: bool = False,
    progress: Callable[[str], None] | None = None,
    cache_dir: Path = workloads.CACHE_DIR,
) -> list[Prepared]:
    out = []
    for row in rows:
        start = time.perf_counter()
        records = tuple(row_records(row, recount=recount, cache_dir=cache_dir))
        if progress is not None:
            progress(f"{row.id}: {len(records)} records, {time.perf_counter() - start:.1f} s")
        out.append(Prepared(row, profiles.load_profile(row.gpu), records))
    return out


def breakdown(item: Prepared, coefficients: model.Coefficients) -> model.Breakdown:
    """The model's energy and time of a row's whole work."""
    return model.evaluate(
        item.profile,
        coefficients,
        item.records,
        engine=item.row.engine,
        tensor_parallel=item.row.gpus,
    )


def modelled(item: Prepared, coefficients: model.Coefficients) -> float:
    """The modelled value of a row, in the row's unit."""
    return breakdown(item, coefficients).energy_j / item.row.per


# --------------------------------------------------------------------------- the fit

NAMES: tuple[str, ...] = model.COEFFICIENT_NAMES
#: The fitted parameters beyond the shared coefficients: (GPU, coefficient).
EXTRA: tuple[tuple[str, str], ...] = tuple(
    (gpu, name) for gpu, (names, _) in OVERRIDES.items() for name in names
)


@dataclass(frozen=True)
class Fitted:
    """The shared coefficients and the per-GPU overrides of :data:`OVERRIDES`."""

    shared: model.Coefficients
    per_gpu: Mapping[str, Mapping[str, float]]

    def for_gpu(self, gpu: str) -> model.Coefficients:
        return dataclasses.replace(self.shared, **self.per_gpu.get(gpu, {}))

    def values(self) -> list[tuple[str, float]]:
        """(``name`` or ``GPU.name``, value), shared first."""
        out = [(name, float(getattr(self.shared, name))) for name in NAMES]
        out += [(f"{gpu}.{name}", float(self.per_gpu[gpu][name])) for gpu, name in EXTRA]
        return out


def shipped() -> Fitted:
    """The coefficients profiles.toml ships: shared, and the overridden ones per GPU."""
    shared = profiles.shared_coefficients()[0]
    per_gpu = {
        gpu: {name: float(getattr(profiles.load_profile(gpu).coefficients, name)) for name in names}
        for gpu, (names, _) in OVERRIDES.items()
    }
    return Fitted(shared, per_gpu)


def _bounds(name: str) -> tuple[float, float]:
    """The range of a coefficient's logarithm (a lower bound of 0 becomes 1e-9)."""
    low, high, _ = model.COEFFICIENT_BOUNDS[name]
    return math.log(max(low, 1e-9)), math.log(high)


def to_fitted(x: Sequence[float]) -> Fitted:
    shared = model.Coefficients(
        **{name: math.exp(v) for name, v in zip(NAMES, x[: len(NAMES)], strict=True)}
    )
    per_gpu: dict[str, dict[str, float]] = {}
    for (gpu, name), v in zip(EXTRA, x[len(NAMES) :], strict=True):
        per_gpu.setdefault(gpu, {})[name] = math.exp(v)
    return Fitted(shared, per_gpu)


def weights(items: Sequence[Prepared]) -> list[float]:
    sizes = Counter(item.row.group for item in items)
    return [1.0 / sizes[item.row.group] for item in items]


def residuals(x: Sequence[float], items: Sequence[Prepared], w: Sequence[float]) -> list[float]:
    fitted = to_fitted(x)
    out: list[float] = []
    for item, wi in zip(items, w, strict=True):
        b = breakdown(item, fitted.for_gpu(item.row.gpu))
        out.append(math.sqrt(wi) * math.log(b.energy_j / item.row.per / item.row.measured))
        if item.row.measured_time_s is not None:
            out.append(math.sqrt(wi * TIME_WEIGHT) * math.log(b.time_s / item.row.measured_time_s))
    spread = math.log(PRIOR_SPREAD)
    out += [
        (v - math.log(PRIORS[name][0])) / spread
        for name, v in zip(NAMES, x[: len(NAMES)], strict=True)
    ]
    out += [
        (v - x[NAMES.index(name)]) / spread
        for (_, name), v in zip(EXTRA, x[len(NAMES) :], strict=True)
    ]
    return out


def fit(items: Sequence[Prepared], *, verbose: int = 0) -> Fitted:
    """The coefficients that best explain ``items`` (scipy.optimize.least_squares, TRF),
    started from the priors."""
    from scipy.optimize import least_squares

    names = list(NAMES) + [name for _, name in EXTRA]
    x0 = [math.log(PRIORS[name][0]) for name in names]
    lows, highs = zip(*(_bounds(name) for name in names), strict=True)
    x0 = [min(max(v, lo + 1e-9), hi - 1e-9) for v, lo, hi in zip(x0, lows, highs, strict=True)]
    result = least_squares(
        residuals,
        x0,
        bounds=(lows, highs),
        args=(items, weights(items)),
        method="trf",
        x_scale=1.0,
        diff_step=1e-4,
        xtol=1e-10,
        ftol=1e-10,
        gtol=1e-10,
        max_nfev=400,
        verbose=verbose,
    )
    return to_fitted(result.x)


def _digits(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def rounded(fitted: Fitted) -> Fitted:
    """The coefficients at 4 significant digits, as profiles.toml stores them."""
    shared = model.Coefficients(**{n: _digits(getattr(fitted.shared, n)) for n in NAMES})
    per_gpu = {g: {n: _digits(v) for n, v in d.items()} for g, d in fitted.per_gpu.items()}
    return Fitted(shared, per_gpu)


# --------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Result:
    row: Row
    modelled: float
    time_s: float
    """The modelled time of the row's whole work."""

    @property
    def ratio(self) -> float:
        return self.modelled / self.row.measured

    @property
    def time_ratio(self) -> float | None:
        t = self.row.measured_time_s
        return None if t is None else self.time_s / t


@dataclass(frozen=True)
class Summary:
    rows: int
    median_abs_log: float
    within_2x: float
    within_4x: float

    @property
    def median_error_pct(self) -> float:
        """The median |log ratio| as a percentage error: a typical row is off by 1 + x%."""
        return 100.0 * (math.exp(self.median_abs_log) - 1.0)


def summarise(results: Sequence[Result]) -> Summary:
    logs = [abs(math.log(r.ratio)) for r in results]
    return Summary(
        len(results),
        statistics.median(logs),
        sum(v <= math.log(2) for v in logs) / len(logs),
        sum(v <= math.log(4) for v in logs) / len(logs),
    )


def evaluate_rows(items: Sequence[Prepared], fitted: Fitted) -> list[Result]:
    out = []
    for item in items:
        b = breakdown(item, fitted.for_gpu(item.row.gpu))
        out.append(Result(item.row, b.energy_j / item.row.per, b.time_s))
    return out


def text_table(results: Sequence[Result]) -> str:
    lines = [
        f"{'row':<62} {'gpu':<15} {'unit':<15} {'measured':>10} {'modelled':>10} "
        f"{'ratio':>6} {'time':>6}"
    ]
    for r in results:
        t = r.time_ratio
        lines.append(
            f"{r.row.id:<62} {r.row.gpu + 'x' + str(r.row.gpus):<15} {r.row.unit:<15} "
            f"{r.row.measured:>10.4g} {r.modelled:>10.4g} {r.ratio:>6.2f} "
            f"{'' if t is None else f'{t:.2f}':>6}"
        )
    return "\n".join(lines)


def markdown_table(results: Sequence[Result]) -> str:
    lines = [
        "| row | model | GPU | engine | batch | measured | modelled | ratio | time ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.time_ratio
        lines.append(
            f"| `{r.row.id}` | {r.row.model} | {r.row.gpu} x{r.row.gpus} | {r.row.engine} | "
            f"{r.row.shape.batch} | {r.row.measured:.4g} {r.row.unit} | {r.modelled:.4g} | "
            f"{r.ratio:.2f} | {'' if t is None else f'{t:.2f}'} |"
        )
    return "\n".join(lines)


def summary_line(name: str, s: Summary) -> str:
    return (
        f"{name}: {s.rows} rows, median |log ratio| {s.median_abs_log:.3f} "
        f"(median error {s.median_error_pct:.0f}%), {s.within_2x:.0%} within 2x, "
        f"{s.within_4x:.0%} within 4x"
    )


def coefficient_lines(fitted: Fitted) -> list[str]:
    return [f"{name} = {value:.4g}" for name, value in fitted.values()]


# --------------------------------------------------------------------------- profiles.toml


def fit_source(n_rows: int, when: datetime.date) -> str:
    return (
        f"fitted by benchmarks/roofline_fit.py to {n_rows} rows of "
        f"benchmarks/roofline_calibration.toml, {when.isoformat()}"
    )


def write_profiles(
    fitted: Fitted, validation: Summary, n_fit: int, when: datetime.date, path: Path = PROFILES_TOML
) -> None:
    """Write the fitted coefficients and the validated band into profiles.toml."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    source = fit_source(n_fit, when)
    table = doc["coefficients"]
    for name in NAMES:
        table[name] = _digits(getattr(fitted.shared, name))
        table["sources"][name] = source
    for gpu, (names, why) in OVERRIDES.items():
        gpu_table = doc[gpu]
        if "coefficients" not in gpu_table:
            gpu_table["coefficients"] = tomlkit.table()
        overrides = gpu_table["coefficients"]
        for name in names:
            overrides[name] = _digits(fitted.per_gpu[gpu][name])
        if "sources" not in overrides:
            overrides["sources"] = tomlkit.table()
        for name in names:
            overrides["sources"][name] = f"{source}, for this GPU only: {why}"
    if "validation" not in doc:
        doc["validation"] = tomlkit.table()
    band = doc["validation"]
    band["rows"] = validation.rows
    band["median_error_pct"] = round(validation.median_error_pct, 1)
    band["within_2x_pct"] = round(100 * validation.within_2x, 1)
    band["source"] = (
        f"validation rows of benchmarks/roofline_calibration.toml, "
        f"docs/roofline-validation.md, {when.isoformat()}"
    )
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


# --------------------------------------------------------------------------- main


def with_input_tokens(rows: Sequence[Row], tokens: int) -> list[Row]:
    """The rows with every ML.ENERGY LLM row's assumed input length set to ``tokens``."""
    return [
        dataclasses.replace(row, shape=dataclasses.replace(row.shape, input_tokens=tokens))
        if row.source == "S1" and row.unit == "J/output-token"
        else row
        for row in rows
    ]


def run_fit(args: argparse.Namespace) -> None:
    rows = load_rows()
    say = (lambda text: print(text, file=sys.stderr)) if args.verbose else None
    cache_dir = workloads.CACHE_DIR
    if args.input_tokens:  # a sensitivity run: recount the changed rows in a cache of its own
        if args.write:
            raise SystemExit("--input-tokens is a sensitivity check; it cannot --write")
        rows = with_input_tokens(rows, args.input_tokens)
        cache_dir = Path(tempfile.gettempdir()) / "roofline-fit" / f"input-{args.input_tokens}"
    items = prepare(rows, recount=args.recount, progress=say, cache_dir=cache_dir)
    fit_items = [i for i in items if i.row.split == "fit"]
    val_items = [i for i in items if i.row.split == "validate"]
    if args.shipped:
        c = shipped()
        title = "coefficients as shipped in profiles.toml"
    else:
        start = time.perf_counter()
        c = rounded(fit(fit_items, verbose=2 if args.verbose else 0))
        title = f"fitted to {len(fit_items)} rows in {time.perf_counter() - start:.0f} s"
    fit_results = evaluate_rows(fit_items, c)
    val_results = evaluate_rows(val_items, c)
    fit_summary, val_summary = summarise(fit_results), summarise(val_results)
    if args.markdown:
        print("### Fit rows\n")
        print(markdown_table(fit_results))
        print(f"\n{summary_line('fit', fit_summary)}\n")
        print("### Validation rows\n")
        print(markdown_table(val_results))
        print(f"\n{summary_line('validation', val_summary)}\n")
        print("### Coefficients\n")
        print("| coefficient | value | prior | why the prior |")
        print("|---|---|---|---|")
        for name, value in c.values():
            base = name.split(".")[-1]
            prior, why = PRIORS[base]
            if "." in name:
                prior, why = (
                    getattr(c.shared, base),
                    "the shared value; " + OVERRIDES[name.split(".")[0]][1],
                )
            print(f"| `{name}` | {value:.4g} | {prior:.4g} | {why} |")
        return
    print(f"# {title}")
    print("\n".join(coefficient_lines(c)))
    print("\n## fit rows")
    print(text_table(fit_results))
    print("\n## validation rows")
    print(text_table(val_results))
    print()
    print(summary_line("fit", fit_summary))
    print(summary_line("validation", val_summary))
    if args.write:
        write_profiles(c, val_summary, len(fit_items), datetime.date.today())
        print(f"\nwrote the coefficients and the [validation] band into {PROFILES_TOML}")


#: Rows whose work --orderings prices on every GPU: compute-bound, memory-bound, host-bound.
ORDERING_ROWS = (
    "s4-stable-diffusion-2-1-image-generation",
    "s1-llama-31-8b-instruct-lm-arena-chat-h100x1-s8",
    "s1-llama-31-8b-instruct-lm-arena-chat-h100x1-s512",
    "s4-meta-llama-3.1-8b-text-generation",
    "s4-bert-large-sst2-text-classification",
)
ORDERING_GPUS = ("H100-SXM", "H200-SXM", "B200", "A100-SXM-80GB", "A100-SXM-40GB", "A100-PCIe-40GB")


def run_orderings() -> None:
    """The same work (a row's records) priced on each GPU with the shipped coefficients."""
    fitted = shipped()
    by_id = {row.id: row for row in load_rows()}
    print("| work (row) | engine | " + " | ".join(ORDERING_GPUS) + " |")
    print("|---|---|" + "---|" * len(ORDERING_GPUS))
    for row_id in ORDERING_ROWS:
        (item,) = prepare([by_id[row_id]])
        cells = []
        for gpu in ORDERING_GPUS:
            c = fitted.for_gpu(gpu)
            b = model.evaluate(profiles.load_profile(gpu), c, item.records, engine=item.row.engine)
            cells.append(f"{b.energy_j / item.row.per:.4g}")
        print(f"| `{row_id}` ({item.row.unit}) | {item.row.engine} | " + " | ".join(cells) + " |")
    per_byte = [
        profiles.load_profile(gpu).board_power_w / profiles.load_profile(gpu).memory_bandwidth_b_s
        for gpu in ORDERING_GPUS
    ]
    print(
        "| TDP / memory bandwidth (pJ/B) | | "
        + " | ".join(f"{v * 1e12:.0f}" for v in per_byte)
        + " |"
    )


def run_nvml(args: argparse.Namespace) -> None:  # pragma: no cover - needs a GPU
    import torch

    from pytest_energy.meters.nvml import NvmlMeter
    from pytest_energy.meters.roofline import counting

    if not torch.cuda.is_available():
        raise SystemExit("--nvml needs a CUDA GPU (torch.cuda.is_available() is False)")
    profile = profiles.load_profile(args.target)
    coefficients = profile.coefficients
    nvml = NvmlMeter()
    dev = torch.device("cuda")
    cases: dict[str, Callable[[], object]] = {}
    for n in (512, 2048, 8192):
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        cases[f"mm bf16 {n}"] = lambda a=a: a @ a
    for numel in (2**16, 2**22, 2**27):
        x = torch.randn(numel, device=dev)
        cases[f"add fp32 {numel}"] = lambda x=x: x + x
    if args.models:
        from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

        bert = BertModel(BertConfig()).to(dev).eval()
        ids = torch.randint(0, 30000, (32, 128), device=dev)
        cases["bert-base 32x128"] = lambda: bert(input_ids=ids)
        gpt2 = GPT2LMHeadModel(GPT2Config()).to(dev).eval()
        prompt = torch.randint(0, 50000, (1, 64), device=dev)
        cases["gpt2 generate 64+64"] = lambda: gpt2.generate(
            prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=0
        )
    print(f"GPU: {nvml.hardware}; profile {profile.name}")
    print(f"{'workload':<24} {'measured J':>11} {'modelled J':>11} {'ratio':>6}")
    with torch.inference_mode():
        for label, fn in cases.items():
            fn()
            torch.cuda.synchronize()
            records = counting.trace(fn).records
            modelled_j = model.evaluate(profile, coefficients, records, engine="eager").energy_j
            start = time.perf_counter()
            calls = 0
            e0 = sum(nvml.read().values())
            while time.perf_counter() - start < args.seconds:
                fn()
                calls += 1
            torch.cuda.synchronize()
            measured_j = (sum(nvml.read().values()) - e0) / calls
            print(
                f"{label:<24} {measured_j:>11.4g} {modelled_j:>11.4g} "
                f"{modelled_j / measured_j:>6.2f}"
            )
    nvml.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write profiles.toml")
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="evaluate the coefficients in profiles.toml; do not fit",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--recount", action="store_true", help="recount every row's records")
    parser.add_argument(
        "--orderings",
        action="store_true",
        help="price a few rows' work on every GPU (shipped coefficients)",
    )
    parser.add_argument(
        "--input-tokens",
        type=int,
        default=0,
        help="sensitivity: assume this input length for the ML.ENERGY LLM rows (not 256)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--nvml", action="store_true", help="measure on this machine's GPU")
    parser.add_argument("--target", default="H100-SXM", help="profile for --nvml")
    parser.add_argument("--seconds", type=float, default=3.0, help="--nvml time per workload")
    parser.add_argument("--models", action="store_true", help="--nvml: add bert-base and gpt2")
    args = parser.parse_args(argv)
    if args.nvml:
        run_nvml(args)
    elif args.orderings:
        run_orderings()
    else:
        run_fit(args)


if __name__ == "__main__":
    main()
