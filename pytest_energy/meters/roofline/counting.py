"""Counting the work of torch operations: a TorchDispatchMode that records what each costs.

:func:`trace` (or :func:`tracing`) records the operations a function runs as
:class:`~.model.OpRecord` s, aggregated by their figures, without a meter: what
``model.evaluate`` prices. The meter counts the same way and prices each operation with the
same model. What each operation costs is in costs.py.

How operations reach the counter. The mode sees what torch's dispatcher runs below
autograd. So that a model counts the same whatever the device and the grad mode:

- in a window without grad (``torch.no_grad()``, ``torch.inference_mode()``), the autograd
  keys are skipped for the window (``torch._C._AutoDispatchBelowAutograd``, which
  inference mode does anyway), so composite operations (``scaled_dot_product_attention``,
  ``linear``, ``layer_norm`` ...) arrive whole: attention is costed as one fused kernel
  and the rest are decomposed and their parts counted; the outputs are ordinary tensors;
- in a window with grad on, composites decompose before the dispatcher, so a
  ``TorchFunctionMode`` catches ``scaled_dot_product_attention`` at the Python API (on
  ``meta`` it would otherwise run the unfused math path) and the dispatch mode counts
  nothing inside it.

Only the thread that entered the mode is observed: work that torch runs in other Python
threads (or outside torch: numpy, tokenizers, custom CUDA) is not counted.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

from ...errors import MeterUnavailable
from . import costs as _costs
from . import optables as _tables
from .costs import Cost, OpCounter
from .model import OpRecord

NAME = "roofline"
TORCH_FIX = (
    "install torch (`pip install torch`; on a CPU-only CI runner the CPU wheel is enough: "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`), or choose "
    "another meter."
)

_DROPOUTS = frozenset({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"})


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


def _eval_dropout(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``func`` is a dropout called with ``train=False``."""
    if _costs.op_name(func) not in _DROPOUTS:
        return False
    train = kwargs.get("train", args[2] if len(args) > 2 else True)
    return train is False


def _linear_is_one_kernel(args: tuple[Any, ...]) -> bool:
    """Whether ``aten.linear(input, weight, bias)`` runs as one addmm / mm, as its
    composite does for a 2-d input with a bias, a contiguous 3-d input with a bias, or a
    contiguous input without one; otherwise it runs matmul (copying a strided input)
    and adds the bias separately, and is decomposed like any composite."""
    x = args[0]
    bias = args[2] if len(args) > 2 else None
    if bias is None:
        return bool(x.is_contiguous())
    return x.dim() == 2 or (x.dim() == 3 and bool(x.is_contiguous()))


def _flash_layout(torch: types.ModuleType, out: Any, query: Any) -> Any:
    """A meta attention output laid out in memory as a fused kernel writes it: like the query.

    The fused kernels on CPU and CUDA allocate their output with the query's strides, so
    that the transpose models do next (back to (B, L, H, D)) is contiguous for free; the
    math path that meta runs returns it contiguous, which would cost an extra copy.
    """
    if (
        isinstance(out, torch.Tensor)
        and out.device.type == "meta"
        and isinstance(query, torch.Tensor)
        and out.shape == query.shape
        and out.dtype == query.dtype
    ):
        return torch.empty_like(query)
    return out


def _replay(
    torch: types.ModuleType,
    counter: OpCounter,
    mode: Any,
    func: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    out: Any,
) -> tuple[Cost, ...]:
    """The costs of a fused fast path: its slow path, replayed on meta tensors."""
    key = counter.key(func, args, kwargs, out)
    try:
        cached = counter.cached(key)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    from .fastpath import REFERENCES

    copies: dict[int, Any] = {}

    def meta(value: Any) -> Any:
        if isinstance(value, torch.Tensor):  # one copy per tensor: `query is key` holds
            if id(value) not in copies:
                copies[id(value)] = torch.empty_strided(
                    value.size(), value.stride(), dtype=value.dtype, device="meta"
                )
            return copies[id(value)]
        return value

    reference = REFERENCES[_costs.op_name(func)]
    saved, counter.sink = counter.sink, []
    try:
        with torch.inference_mode(), mode:
            reference(*(meta(a) for a in args), **{k: meta(v) for k, v in kwargs.items()})
        replayed = tuple(counter.sink)
    finally:
        counter.sink = saved
    with suppress(TypeError):  # an unhashable argument: not cached
        counter.remember(key, replayed)
    return replayed


def observer(torch: types.ModuleType, counter: OpCounter) -> Callable[[], Any]:
    """A function returning a fresh context manager that counts ops into ``counter``."""
    from torch.overrides import TorchFunctionMode, redispatch_function
    from torch.utils._python_dispatch import TorchDispatchMode

    kinds, cached, counts = counter.kinds, counter.cache, counter.counts
    ZERO, LINEAR, DECOMPOSE = _tables.ZERO, _tables.LINEAR, _tables.DECOMPOSE
    REPLAY, ATTENTION, INDEXED_WRITE = _tables.REPLAY, _tables.ATTENTION, _tables.INDEXED_WRITE
    aten_sdpa = torch.ops.aten.scaled_dot_product_attention.default
    python_sdpa = torch.nn.functional.scaled_dot_product_attention
    python_mha = torch.nn.functional.multi_head_attention_forward

    class _CountingMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # torch wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this
            # says no: 3-4 us per op, as much as the counting itself. Nothing here compiles.
            return False

        def __torch_dispatch__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            # the hot path: every op in a window runs this; names are bound locally
            kwargs = kwargs or {}
            if counter.suspended:
                return func(*args, **kwargs)
            kind = kinds.get(id(func))
            if kind is None:
                kind = counter.kind(func)
            if kind == ZERO:
                return func(*args, **kwargs)
            if kind == LINEAR and not _linear_is_one_kernel(args):
                kind = DECOMPOSE
            if kind == DECOMPOSE:
                if _eval_dropout(func, args, kwargs):
                    # an identity in eval mode: no kernel (its decomposition adds a clone)
                    return func(*args, **kwargs)
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
                kind = _tables.ELEMENTWISE
            out = func(*args, **kwargs)
            costs: tuple[Cost, ...] | None
            if kind == REPLAY:
                costs = _replay(torch, counter, self, func, args, kwargs, out)
            else:
                if kind == ATTENTION:
                    out = _flash_layout(torch, out, args[0])
                try:
                    costs = cached.get(counter.key(func, args, kwargs, out))
                except TypeError:  # an unhashable argument
                    costs = None
                if costs is None or kind == INDEXED_WRITE:
                    costs = counter.costs(kind, func, args, kwargs, out)
            assert costs is not None
            if counter.sink is None and counter.capture is None:
                for cost in costs:
                    counts[cost] = counts.get(cost, 0) + 1
            else:
                counter.add(costs)
            return out

    class _AttentionFunctionMode(TorchFunctionMode):
        """With grad on: catches attention above autograd, where it is still whole."""

        def __torch_function__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            kwargs = kwargs or {}
            if func is not python_sdpa or counter.suspended:
                if func is python_mha:
                    # it calls attention inside, and the mode is off while this handler
                    # runs: re-enter it, skipping this function's own torch-function check
                    with self:
                        return redispatch_function(func, types, args, kwargs)  # type: ignore[no-untyped-call]
                return func(*args, **kwargs)
            counter.suspended = True
            try:
                out = func(*args, **kwargs)
                out = _flash_layout(torch, out, args[0] if args else kwargs.get("query"))
            finally:
                counter.suspended = False
            counter.add(counter.costs(_tables.ATTENTION, aten_sdpa, args, kwargs, out))
            return out

    @contextmanager
    def observe() -> Iterator[None]:
        counter.refresh_precision()
        grad_mode: AbstractContextManager[Any]
        if torch.is_inference_mode_enabled():
            grad_mode = nullcontext()
        elif not torch.is_grad_enabled():
            grad_mode = torch._C._AutoDispatchBelowAutograd()
        else:
            grad_mode = _AttentionFunctionMode()
        with grad_mode, _CountingMode():  # type: ignore[no-untyped-call]
            yield

    return observe


@dataclass(frozen=True)
class Trace:
    """The operations a function ran, aggregated by their figures, in order of first run."""

    records: tuple[OpRecord, ...]

    @property
    def flops(self) -> int:
        return sum(r.flops * r.count for r in self.records if r.op_class != "collective")

    @property
    def bytes(self) -> int:
        return sum(r.bytes * r.count for r in self.records if r.op_class != "collective")

    @property
    def kernels(self) -> int:
        """Costed operations (collectives, which only tensor parallelism runs, excluded)."""
        return sum(r.count for r in self.records if r.op_class != "collective")


def aggregate(counted: Iterable[tuple[Cost, int]]) -> Trace:
    """A :class:`Trace` of ``(cost, calls)`` pairs, merging costs with the same figures."""
    merged: dict[tuple[str, int, int, str, bool], int] = {}
    for cost, calls in counted:
        r = cost.record
        key = (r.op_class, r.flops, r.bytes, r.peak_key, r.fusible)
        merged[key] = merged.get(key, 0) + calls * r.count
    return Trace(
        tuple(
            OpRecord(op_class, flops, nbytes, peak, count, fusible)
            for (op_class, flops, nbytes, peak, fusible), count in merged.items()
        )
    )


class Tracer:
    """Records the operations run inside :meth:`observe`; :meth:`trace` returns them."""

    def __init__(self) -> None:
        torch = import_torch()
        self._counter = OpCounter(torch)
        self._observe: Callable[[], AbstractContextManager[None]] = observer(torch, self._counter)

    def observe(self) -> AbstractContextManager[None]:
        return self._observe()

    def trace(self) -> Trace:
        return aggregate(self._counter.counts.items())


@contextmanager
def tracing() -> Iterator[Tracer]:
    """``with tracing() as tracer: ...`` records what the block runs; ``tracer.trace()``."""
    tracer = Tracer()
    with tracer.observe():
        yield tracer


def trace(fn: Callable[..., object], *args: Any, **kwargs: Any) -> Trace:
    """The operations ``fn(*args, **kwargs)`` runs, as records for ``model.evaluate``."""
    with tracing() as tracer:
        fn(*args, **kwargs)
    return tracer.trace()
