"""Counting the work of torch operations: a TorchDispatchMode that tallies FLOPs and bytes.

Every operation that reaches torch's dispatcher while the mode is active is classified once
(per ``OpOverload``) and costed once per distinct (operation, input shapes and dtypes, output
shapes and dtypes) combination; later calls with the same signature reuse the cached cost.

Rules, in order:

0. Operations defined by other operations (CompositeImplicitAutograd, e.g.
   ``aten.scaled_dot_product_attention``, ``aten.to``, ``aten.reshape`` under
   ``torch.inference_mode()``) are decomposed, so casts and copying reshapes are kernels,
   and the operations they run are counted. ``aten.linear``, the commonest, is costed whole,
   with the figures of its ``t`` + ``addmm`` decomposition (2 FLOPs per multiply-add; input,
   weight, bias read, output written).
1. Views and metadata operations (``view``, ``t``, ``permute``, ``expand``, ``as_strided``,
   ``detach``, ``alias``, ``_unsafe_view``, ``empty`` ..., every op whose schema says it
   returns a view) cost nothing and are not kernels.
2. Matrix products, convolutions and attention use torch's own formulas from
   ``torch.utils.flop_counter.flop_registry``. Attention kernels that the registry does not
   list (``aten._scaled_dot_product_flash_attention_for_cpu`` and the other
   ``_scaled_dot_product_*attention*`` forward kernels) get the registry's attention formula;
   ``aten._int_mm`` gets the matrix-product formula. These run at the tensor-core peak of
   their dtype.
3. Reductions (ops tagged ``torch.Tag.reduction``: sum, mean, amax, ...) cost 1 FLOP per
   element of their largest input.
4. Every other operation (pointwise, normalisation, softmax, copies, indexing ...) costs
   1 FLOP per output element. Rules 3 and 4 run at the vector fp32 peak (fp64 for float64).

Bytes are the logical sizes (``numel * element_size``) of all tensor inputs read and all
tensor outputs written; an ``out=`` tensor counts once, as an output. Gathers (``embedding``,
``index_select``, ``index``, ``gather``, ``take``) read only the selected rows of their first
argument: they count the index tensors, plus the output's size twice (rows read, written).

Only the thread that entered the mode is observed: work that torch runs in other Python
threads (or outside torch: numpy, tokenizers, custom CUDA) is not counted.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ...errors import MeterUnavailable
from . import model
from .profiles import Profile

NAME = "roofline"
TORCH_FIX = (
    "install torch (`pip install torch`; on a CPU-only CI runner the CPU wheel is enough: "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`), or choose "
    "another meter."
)
#: At most this many distinct op signatures are cached; the cache is cleared when full.
CACHE_LIMIT = 200_000

# op kinds
_ZERO = 0
_FORMULA = 1
_ATTENTION = 2
_INT_MM = 3
_REDUCTION = 4
_ELEMENTWISE = 5
_DECOMPOSE = 6
_GATHER = 7
_LINEAR = 8
_MATMUL_KINDS = frozenset({_FORMULA, _ATTENTION, _INT_MM, _LINEAR})

#: Ops that read only the rows of their first argument that the indices select.
_GATHER_NAMES = frozenset(
    {"embedding", "embedding_bag", "_embedding_bag", "index_select", "index", "gather", "take"}
)

#: Metadata ops whose schema does not mark them as views, by OpOverloadPacket name.
_ZERO_COST_NAMES = frozenset(
    {
        "_unsafe_view",
        "_reshape_alias",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "resize_",
        "detach_",
        "set_",
        "_local_scalar_dense",
        "is_same_size",
        "is_nonzero",
        "sym_size",
        "sym_stride",
        "sym_numel",
        "sym_storage_offset",
        "size",
        "stride",
        "dim",
        "_has_compatible_shallow_copy_type",
        "record_stream",
        "_assert_async",
        "_assert_tensor_metadata",
        "_functional_assert_async",
    }
)

_DTYPE_KEYS: dict[str, str] = {
    "torch.float64": "fp64",
    "torch.float32": "fp32",
    "torch.float16": "fp16",
    "torch.bfloat16": "bf16",
    "torch.int8": "int8",
    "torch.uint8": "int8",
    "torch.float8_e4m3fn": "fp8",
    "torch.float8_e5m2": "fp8",
    "torch.float8_e4m3fnuz": "fp8",
    "torch.float8_e5m2fnuz": "fp8",
}


def import_torch() -> types.ModuleType:
    """Import torch, or raise MeterUnavailable naming torch and how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise MeterUnavailable(
            NAME,
            f"it models the torch operations a test runs, and torch cannot be imported ({exc}).",
            TORCH_FIX,
        ) from None
    return torch


@dataclass
class Tally:
    """Cumulative work and modelled energy; integers, so sums are exact and order-free."""

    flops: int = 0
    bytes: int = 0
    kernels: int = 0
    energy_units: int = 0
    matmul_flops: int = 0
    """The part of ``flops`` in matrix products, convolutions and attention (rule 2)."""
    busy_ps: int = 0
    """Modelled roofline time of the kernels in whole picoseconds, launch costs excluded."""


@dataclass(frozen=True)
class OpCost:
    """The modelled cost of one kernel."""

    flops: int
    bytes: int
    peak_key: str
    energy_units: int
    matmul: bool
    busy_ps: int


class OpCounter:
    """Costs torch operations on a :class:`Profile` and adds them to a :class:`Tally`."""

    def __init__(self, torch: types.ModuleType, profile: Profile) -> None:
        from torch.utils.flop_counter import flop_registry

        self._torch = torch
        self._tensor = torch.Tensor
        self._profile = profile
        self._registry = flop_registry
        aten = torch.ops.aten
        self._sdpa_formula = flop_registry[aten._scaled_dot_product_flash_attention]
        self._mm_formula = flop_registry[aten.mm]
        self._reduction_tag = torch.Tag.reduction
        self._kinds: dict[Any, int] = {}
        self._costs: dict[tuple[Any, ...], OpCost | None] = {}
        self._fp32_key = "fp32"
        self.tally = Tally()

    # -- configuration ----------------------------------------------------------------------

    def refresh_precision(self) -> None:
        """Read torch's float32 matmul precision: "highest" runs fp32, otherwise tf32.

        Called when a window starts; a change clears the cost cache.
        """
        key = "fp32" if self._torch.get_float32_matmul_precision() == "highest" else "tf32"
        if key != self._fp32_key:
            self._fp32_key = key
            self._costs.clear()

    # -- classification ---------------------------------------------------------------------

    def kind(self, func: Any) -> int:
        # keyed by identity: OpOverload objects live as long as torch, and their __hash__
        # is a Python call
        kind = self._kinds.get(id(func))
        if kind is None:
            kind = self._classify(func)
            self._kinds[id(func)] = kind
        return kind

    def _classify(self, func: Any) -> int:
        packet = getattr(func, "overloadpacket", func)
        name = getattr(packet, "__name__", str(packet)).split(".")[-1]
        if name in _ZERO_COST_NAMES:
            return _ZERO
        if packet in self._registry:
            return _FORMULA
        if name == "linear":  # costed whole: the same figures as its t + addmm decomposition
            return _LINEAR
        # before the view test: reshape, flatten ... are views only when no copy is needed
        if self._composite(func):
            return _DECOMPOSE
        if getattr(func, "is_view", False):
            return _ZERO
        if "scaled_dot_product" in name and "attention" in name and "backward" not in name:
            return _ATTENTION
        if name == "_int_mm":
            return _INT_MM
        if name in _GATHER_NAMES:
            return _GATHER
        if self._reduction_tag in getattr(func, "tags", ()):
            return _REDUCTION
        return _ELEMENTWISE

    def _composite(self, func: Any) -> bool:
        """Whether ``func`` is defined by other ops (CompositeImplicitAutograd).

        Such ops normally decompose before they reach a dispatch mode, but under
        ``torch.inference_mode()`` some arrive whole (``aten.linear``,
        ``aten.scaled_dot_product_attention``); the mode then runs their decomposition so
        that the ops doing the work are the ones counted.
        """
        name = getattr(func, "name", None)
        if not callable(name):
            return False
        try:
            return bool(
                self._torch._C._dispatch_has_kernel_for_dispatch_key(
                    name(), self._torch._C.DispatchKey.CompositeImplicitAutograd
                )
            )
        except (RuntimeError, AttributeError):
            return False

    # -- costing ----------------------------------------------------------------------------

    def _key(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        """The cache key of one call: the op, and the signatures of its arguments and output.

        A flat loop over the arguments: this runs for every op in a window.
        """
        tensor = self._tensor
        parts: list[Any] = [id(func)]
        append = parts.append
        for value in args:
            if isinstance(value, tensor):
                append(value.shape)
                append(value.dtype)
            elif value is None or value.__class__ is bool:
                append(value)
            elif isinstance(value, (list, tuple, dict)):
                append(self._signature(value))
            else:
                append(value.__class__)
        if isinstance(out, tensor):
            append(out.shape)
            append(out.dtype)
        else:
            append(self._signature(out))
        if kwargs:
            append(self._signature(kwargs))
        return tuple(parts)

    def _signature(self, value: Any) -> Any:
        if isinstance(value, self._tensor):
            return (value.shape, value.dtype)
        if isinstance(value, dict):
            return tuple((k, self._signature(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return tuple(self._signature(item) for item in value)
        if value is None or isinstance(value, bool):
            return value
        # Other scalars (ints, floats, strings, dtypes) do not change the cost once the
        # output shapes are known, and keying on their values would grow the cache.
        return type(value)

    def _tensors(self, value: Any) -> Iterator[Any]:
        if isinstance(value, self._tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from self._tensors(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from self._tensors(item)

    def _dtype_key(self, tensor: Any) -> str:
        key = _DTYPE_KEYS.get(str(tensor.dtype), "fp32")
        return self._fp32_key if key == "fp32" else key

    def cost(
        self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> OpCost | None:
        """The cost of one call of ``func`` that returned ``out``; None for a metadata op."""
        return self._cost(self.kind(func), func, args, kwargs, out)

    def _cost(
        self, kind: int, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> OpCost | None:
        if kind in (_ZERO, _DECOMPOSE):
            return None
        key = self._key(func, args, kwargs, out)
        try:
            return self._costs[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument: cost it without caching
            return self._compute(kind, func, args, kwargs, out)
        cost = self._compute(kind, func, args, kwargs, out)
        if len(self._costs) >= CACHE_LIMIT:
            self._costs.clear()
        self._costs[key] = cost
        return cost

    def _compute(
        self, kind: int, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> OpCost:
        inputs = list(self._tensors(args))
        inputs += self._tensors({k: v for k, v in kwargs.items() if k != "out"})
        outputs = list(self._tensors(out))
        out_bytes = sum(t.numel() * t.element_size() for t in outputs)
        if kind == _GATHER:  # the table's selected rows (as much as the output), the indices
            nbytes = sum(t.numel() * t.element_size() for t in inputs[1:]) + 2 * out_bytes
        else:
            nbytes = sum(t.numel() * t.element_size() for t in inputs) + out_bytes
        first = inputs[0] if inputs else (outputs[0] if outputs else None)
        dtype_key = self._dtype_key(first) if first is not None else "fp32"
        if kind == _FORMULA:
            flops = int(self._registry[func.overloadpacket](*args, out_val=out, **kwargs))
            peak_key = dtype_key
        elif kind == _LINEAR:  # linear(input, weight[out, in], bias): 2 FLOPs per multiply-add
            flops = 2 * args[0].numel() * args[1].shape[0]
            peak_key = dtype_key
        elif kind == _ATTENTION:
            flops = int(self._sdpa_formula(*args[:3], out_val=out))
            peak_key = dtype_key
        elif kind == _INT_MM:
            flops = int(self._mm_formula(*args[:2], out_val=out))
            peak_key = "int8"
        elif kind == _REDUCTION:
            flops = max((t.numel() for t in inputs), default=0)
            peak_key = model.vector_key(dtype_key)
        else:
            flops = sum(t.numel() for t in outputs)
            peak_key = model.vector_key(dtype_key)
        energy_units = model.kernel_energy_units(self._profile, flops, nbytes, peak_key)
        busy_ps = round(model.busy_s(self._profile, flops, nbytes, peak_key) * 1e12)
        return OpCost(flops, nbytes, peak_key, energy_units, kind in _MATMUL_KINDS, busy_ps)

    def add(
        self, kind: int, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        cost = self._cost(kind, func, args, kwargs, out)
        if cost is None:
            return
        tally = self.tally
        tally.flops += cost.flops
        tally.bytes += cost.bytes
        tally.kernels += 1
        tally.energy_units += cost.energy_units
        tally.busy_ps += cost.busy_ps
        if cost.matmul:
            tally.matmul_flops += cost.flops


_DROPOUTS = frozenset({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"})


def _eval_dropout(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``func`` is a dropout called with ``train=False``."""
    packet = getattr(func, "overloadpacket", func)
    if getattr(packet, "__name__", "").split(".")[-1] not in _DROPOUTS:
        return False
    train = kwargs.get("train", args[2] if len(args) > 2 else True)
    return train is False


def observer(torch: types.ModuleType, counter: OpCounter) -> Callable[[], Any]:
    """A function returning a fresh context manager that counts ops into ``counter``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _CountingMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __torch_dispatch__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            kwargs = kwargs or {}
            kind = counter.kind(func)
            if kind == _DECOMPOSE and _eval_dropout(func, args, kwargs):
                # an identity in eval mode: no kernel, as in eager mode without
                # inference_mode, whose decomposition would add a clone
                return func(*args, **kwargs)
            if kind == _DECOMPOSE:
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            out = func(*args, **kwargs)
            if kind != _ZERO:
                counter.add(kind, func, args, kwargs, out)
            return out

    @contextmanager
    def observe() -> Iterator[None]:
        counter.refresh_precision()
        with _CountingMode():  # type: ignore[no-untyped-call]
            yield

    return observe
