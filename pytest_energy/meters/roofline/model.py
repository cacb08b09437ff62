"""The time and power model: from an operation's FLOPs and bytes to modelled joules.

Pure Python, no torch: :func:`evaluate` prices a list of :class:`OpRecord` (what
:func:`~.counting.trace` records) on a :class:`~.profiles.Profile` with a set of
:class:`Coefficients`, and the meter prices every operation it counts with the same
:func:`price`, so the two agree to the last energy quantum.

One operation on one board of the target GPU (``peak = peak[dtype]``, ``BW`` the memory
bandwidth, ``TDP`` the board power limit, F its FLOPs and B its bytes)::

    t_compute = (F / peak + compute_half_s) / eta_compute_max        (0 when F = 0)
    t_memory  = (B / BW + memory_half_s) / eta_memory_max            (0 when B = 0)
    t_work    = max(t_compute, t_memory)
    t_gpu     = max(t_work, kernel_min_s)
    eager:    t = max(t_gpu, host_s)         the GPU waits on the host, at active clocks
    compiled: t = t_gpu + graph_gap_s        CUDA graphs: no host in the loop
    E = TDP * (static_power_frac * t + compute_power_frac * F / peak
               + memory_power_frac * B / BW)

The first two lines are the size-dependent efficiencies ``eta_c = eta_compute_max *
F / (F + F_half)`` with ``F_half = compute_half_s * peak`` (and the same for bytes): a small
kernel reaches a small fraction of the peak. If E / t exceeds TDP, the board is power
limited: it clocks down and the operation takes ``t = dynamic / ((1 - static_power_frac) *
TDP)`` instead, so that the average power is exactly TDP.

Energy is split into classes. An operation's class (``matmul``, ``attention``, ``other``,
``collective``) gets the dynamic terms and the static power over ``t_work``, its work at
the achieved rates (stretched by the power limit if that applies); ``overhead`` gets the
static power over the rest of ``t``: the kernel-time floor, the host wait under ``eager``
and the graph gap under ``compiled``. On a tiny model, overhead is most of the energy,
as it is on a real GPU.

Engines. Under ``compiled`` a pointwise operation (``OpRecord.fusible``) is fused into its
neighbouring kernel, as torch.compile / TensorRT / vLLM's fused kernels do: it launches
nothing and moves no bytes of its own (its inputs and outputs live in registers of the
kernel it is fused into, whose own reads and writes are counted), and costs only its
FLOPs at the vector peak. Everything else is one kernel.

Tensor parallelism over N boards (Megatron-style): every matrix product and attention is
split N ways (each board does 1/N of its FLOPs and bytes: sharded weights and heads);
every other operation (norms, residual adds ...) is replicated on each board; each
``collective`` record is a ring all-reduce of its bytes over the profile's interconnect,
``2 (N - 1) / N * bytes`` per board, taking ``collective_latency_s`` plus the transfer
time at ``eta_interconnect_max`` of the link bandwidth, its traffic costing memory
energy. Collectives cost nothing at N = 1. Energies are summed over the N boards; time is
per board (the boards run in parallel).

Energies are whole multiples of :data:`ENERGY_QUANTUM_J` (2**-30 J, about 0.93 nJ), per
operation, so sums are exact integers that do not depend on the order in which operations
are added, and a cumulative total converted to float joules is exact up to 2**23 J
(8.4 MJ): the difference of two readings around a window is then exact too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ConfigError

if TYPE_CHECKING:
    from .profiles import Profile

ENERGY_QUANTUM_EXP = -30
ENERGY_QUANTUM_J = 2.0**ENERGY_QUANTUM_EXP
#: Part of the hardware key: baselines of another model version read as "new".
MODEL_VERSION = "roofline v3"

ENGINES = ("eager", "compiled")
DEFAULT_ENGINE = "eager"
#: The classes an :class:`OpRecord` can have.
OP_CLASSES = ("matmul", "attention", "other", "collective")
#: The classes modelled energy is split into, in :class:`Breakdown` and ``counters()``.
ENERGY_CLASSES = ("matmul", "attention", "other", "collective", "overhead")
#: The most boards ``tensor_parallel`` may model.
MAX_TENSOR_PARALLEL = 1024

FORMULA = (
    "per kernel: t = max((F/peak + compute_half_s)/eta_compute_max, "
    "(B/BW + memory_half_s)/eta_memory_max, kernel_min_s), then max(t, host_s) under eager "
    "or t + graph_gap_s under compiled; energy = TDP x (static_power_frac x t + "
    "compute_power_frac x F/peak + memory_power_frac x B/BW), average power capped at TDP"
)


@dataclass(frozen=True)
class OpRecord:
    """The work of one costed operation, as :func:`~.counting.trace` records it.

    ``count`` is how many times an operation with exactly these figures ran.
    """

    op_class: str
    """``"matmul"``, ``"attention"``, ``"other"`` or ``"collective"``."""
    flops: int
    bytes: int
    """Bytes read and written in device memory; for a collective, the all-reduced size."""
    peak_key: str
    """The peak the op runs at: a dtype key of the profile (``"bf16"``, ``"fp32"`` ...)."""
    count: int = 1
    fusible: bool = False
    """A pointwise op that a ``compiled`` engine fuses into its neighbour."""


@dataclass(frozen=True)
class Coefficients:
    """The model's fitted coefficients; field names are the keys of ``profiles.toml``'s
    ``[coefficients]`` table. See the module docstring for where each one enters."""

    eta_compute_max: float
    """Largest achieved fraction of the dtype's dense peak (large GEMMs)."""
    compute_half_s: float
    """F_half as seconds at peak: a kernel of ``compute_half_s * peak`` FLOPs reaches
    half of ``eta_compute_max``."""
    eta_memory_max: float
    """Largest achieved fraction of the memory bandwidth (large streams)."""
    memory_half_s: float
    """B_half as seconds at the bandwidth."""
    kernel_min_s: float
    """The shortest a kernel takes on the GPU."""
    host_s: float
    """Host time per op in eager PyTorch (Python, dispatch and launch)."""
    graph_gap_s: float
    """Gap between kernels replayed from a CUDA graph (``compiled``)."""
    eta_interconnect_max: float
    """Achieved fraction of the interconnect bandwidth in an all-reduce."""
    collective_latency_s: float
    """Fixed cost of one all-reduce (synchronisation, protocol)."""
    static_power_frac: float
    """Board power while active but doing no work, as a fraction of TDP."""
    compute_power_frac: float
    """Dynamic power at the full dense peak, as a fraction of TDP."""
    memory_power_frac: float
    """Dynamic power at the full memory bandwidth, as a fraction of TDP."""


#: (lowest, highest) allowed value of each coefficient; a ``(`` lower bound is exclusive.
COEFFICIENT_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "eta_compute_max": (0.0, 1.0, False),
    "compute_half_s": (0.0, 1e-3, True),
    "eta_memory_max": (0.0, 1.0, False),
    "memory_half_s": (0.0, 1e-3, True),
    "kernel_min_s": (0.0, 1e-3, True),
    "host_s": (0.0, 1e-3, True),
    "graph_gap_s": (0.0, 1e-3, True),
    "eta_interconnect_max": (0.0, 1.0, False),
    "collective_latency_s": (0.0, 1e-3, True),
    "static_power_frac": (0.0, 0.95, True),
    "compute_power_frac": (0.0, 2.0, True),
    "memory_power_frac": (0.0, 2.0, True),
}
COEFFICIENT_NAMES = tuple(field.name for field in dataclasses.fields(Coefficients))


def bound_text(name: str) -> str:
    """The allowed range of coefficient ``name``, for error messages."""
    low, high, inclusive = COEFFICIENT_BOUNDS[name]
    return f"{'from' if inclusive else 'above'} {low:g} to {high:g}"


def check_coefficient(name: str, value: float) -> str | None:
    """Why ``value`` is out of range for coefficient ``name``; None when it is in range."""
    low, high, inclusive = COEFFICIENT_BOUNDS[name]
    in_range = (low <= value if inclusive else low < value) and value <= high
    return None if in_range and math.isfinite(value) else f"must be {bound_text(name)}"


def coefficients_from(values: Mapping[str, float]) -> Coefficients:
    """Coefficients from a complete mapping of names to values; raises ConfigError."""
    missing = [name for name in COEFFICIENT_NAMES if name not in values]
    if missing:
        raise ConfigError(f"roofline coefficients: missing {', '.join(missing)}")
    for name in COEFFICIENT_NAMES:
        problem = check_coefficient(name, values[name])
        if problem:
            raise ConfigError(f"roofline coefficient {name} {problem}, got {values[name]!r}")
    return Coefficients(**{name: float(values[name]) for name in COEFFICIENT_NAMES})


def check_engine(engine: object) -> str:
    """``engine`` if it is one of :data:`ENGINES`; raises ConfigError naming them."""
    if engine not in ENGINES:
        raise ConfigError(
            f"unknown roofline engine {engine!r}; use one of {', '.join(ENGINES)} "
            "(eager: PyTorch eager as transformers and diffusers run it, host cost per op; "
            "compiled: CUDA graphs and fused kernels, as vLLM, TensorRT or torch.compile)"
        )
    return str(engine)


def check_tensor_parallel(boards: object) -> int:
    """``boards`` if it is a whole number of boards from 1 to :data:`MAX_TENSOR_PARALLEL`."""
    if (
        isinstance(boards, bool)
        or not isinstance(boards, int)
        or not (1 <= boards <= MAX_TENSOR_PARALLEL)
    ):
        raise ConfigError(
            f"tensor_parallel must be a whole number of boards from 1 to "
            f"{MAX_TENSOR_PARALLEL}, got {boards!r} (1 models one board)"
        )
    return boards


@dataclass(frozen=True)
class OpPrice:
    """The modelled cost of one operation, summed over the boards."""

    units: tuple[int, int, int, int, int]
    """Energy in quanta by :data:`ENERGY_CLASSES`."""
    time_ps: int
    """Modelled time on one board in whole picoseconds."""
    kernels: int
    """Kernels launched on the target, summed over the boards."""


ZERO_PRICE = OpPrice((0, 0, 0, 0, 0), 0, 0)
_CLASS_INDEX = {name: index for index, name in enumerate(ENERGY_CLASSES)}


def interconnect_b_s(profile: Profile) -> float:
    """The profile's interconnect bandwidth per direction; ConfigError when it has none."""
    if profile.interconnect_b_s is None:
        raise ConfigError(
            f"roofline profile {profile.name!r} has no interconnect_gb_s, so it cannot model "
            "tensor parallelism; add interconnect_gb_s (per direction, per GPU) to the "
            "profile, or model one board (tensor_parallel = 1)"
        )
    return profile.interconnect_b_s


def quanta(energy_j: float) -> int:
    """Joules as whole energy quanta."""
    return round(math.ldexp(energy_j, -ENERGY_QUANTUM_EXP))


def joules(units: int) -> float:
    """Energy units as float joules (exact below 2**23 J)."""
    return math.ldexp(units, ENERGY_QUANTUM_EXP)


def price(
    profile: Profile,
    coefficients: Coefficients,
    op_class: str,
    flops: int,
    nbytes: int,
    peak_key: str,
    fusible: bool,
    *,
    engine: str,
    tensor_parallel: int,
) -> OpPrice:
    """The modelled cost of one operation (one instance: a record's ``count`` is not used)."""
    c = coefficients
    boards = tensor_parallel
    tdp = profile.board_power_w
    static_w = c.static_power_frac * tdp
    bandwidth = profile.memory_bandwidth_b_s
    if op_class == "collective":
        if boards == 1:
            return ZERO_PRICE
        link_bytes = 2.0 * (boards - 1) / boards * nbytes
        t_work = link_bytes / (c.eta_interconnect_max * interconnect_b_s(profile))
        dynamic_j = tdp * c.memory_power_frac * link_bytes / bandwidth
        t = t_work + c.collective_latency_s
        kernels = 1
    else:
        if op_class in ("matmul", "attention"):  # sharded: 1/N of the work on each board
            f, b = flops / boards, nbytes / boards
        else:  # replicated on every board
            f, b = float(flops), float(nbytes)
        peak = profile.peak(peak_key)
        if engine == "compiled" and fusible:
            t_work = f / (c.eta_compute_max * peak)
            dynamic_j = tdp * c.compute_power_frac * f / peak
            t = t_work
            kernels = 0
        else:
            t_compute = (f / peak + c.compute_half_s) / c.eta_compute_max if f > 0 else 0.0
            t_memory = (b / bandwidth + c.memory_half_s) / c.eta_memory_max if b > 0 else 0.0
            t_work = max(t_compute, t_memory)
            dynamic_j = tdp * (
                c.compute_power_frac * f / peak + c.memory_power_frac * b / bandwidth
            )
            t = max(t_work, c.kernel_min_s)
            kernels = 1
    if kernels:
        t = max(t, c.host_s) if engine == "eager" else t + c.graph_gap_s
    overhead_j = static_w * (t - t_work)
    energy_j = static_w * t + dynamic_j
    if energy_j > tdp * t:  # over the power limit: the board clocks down, the op stretches
        t = dynamic_j / (tdp - static_w)
        energy_j = tdp * t
    total = quanta(energy_j * boards)
    overhead = quanta(overhead_j * boards)
    units = [0, 0, 0, 0, overhead]
    units[_CLASS_INDEX[op_class]] = total - overhead
    return OpPrice(
        (units[0], units[1], units[2], units[3], units[4]),
        round(t * 1e12),
        kernels * boards,
    )


def price_record(
    profile: Profile,
    coefficients: Coefficients,
    record: OpRecord,
    *,
    engine: str,
    tensor_parallel: int,
) -> OpPrice:
    """:func:`price` of one instance of ``record``."""
    return price(
        profile,
        coefficients,
        record.op_class,
        record.flops,
        record.bytes,
        record.peak_key,
        record.fusible,
        engine=engine,
        tensor_parallel=tensor_parallel,
    )


@dataclass(frozen=True)
class Breakdown:
    """Modelled energy by class and modelled time of a set of operations."""

    units: tuple[int, int, int, int, int]
    """Energy in whole quanta by :data:`ENERGY_CLASSES`; their sum is :attr:`energy_j`."""
    time_s: float
    """Modelled wall time on one board (boards run in parallel)."""
    kernels: int
    """Kernels launched on the target, summed over the boards."""
    flops: int
    bytes: int

    @property
    def energy_units(self) -> int:
        return sum(self.units)

    @property
    def energy_j(self) -> float:
        return joules(self.energy_units)

    def joules_of(self, energy_class: str) -> float:
        """The energy of one of :data:`ENERGY_CLASSES`."""
        return joules(self.units[_CLASS_INDEX[energy_class]])


def evaluate(
    profile: Profile,
    coefficients: Coefficients,
    records: Iterable[OpRecord],
    *,
    engine: str = DEFAULT_ENGINE,
    tensor_parallel: int = 1,
) -> Breakdown:
    """The modelled energy and time of ``records`` on ``profile``: the sum of each record's
    :func:`price` times its ``count``. Raises ConfigError for a bad engine or board count."""
    check_engine(engine)
    check_tensor_parallel(tensor_parallel)
    if tensor_parallel > 1:
        interconnect_b_s(profile)  # raises when the profile has none
    units = [0, 0, 0, 0, 0]
    time_ps = kernels = flops = nbytes = 0
    cache: dict[tuple[str, int, int, str, bool], OpPrice] = {}
    for record in records:
        key = (record.op_class, record.flops, record.bytes, record.peak_key, record.fusible)
        cost = cache.get(key)
        if cost is None:
            cost = price(
                profile,
                coefficients,
                *key,
                engine=engine,
                tensor_parallel=tensor_parallel,
            )
            cache[key] = cost
        n = record.count
        for index, value in enumerate(cost.units):
            units[index] += value * n
        time_ps += cost.time_ps * n
        kernels += cost.kernels * n
        if record.op_class != "collective":
            flops += record.flops * n
            nbytes += record.bytes * n
    return Breakdown(
        (units[0], units[1], units[2], units[3], units[4]),
        time_ps * 1e-12,
        kernels,
        flops,
        nbytes,
    )
