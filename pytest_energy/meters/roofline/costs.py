"""The work of one torch operation: its class, FLOPs, bytes and peak, from shapes and dtypes.

Every operation that reaches torch's dispatcher while a counting window is open is classified
once (per ``OpOverload``) and costed once per distinct (operation, input shapes and dtypes,
output shapes and dtypes) signature; later calls with the same signature reuse the cost.

Rules, in the order they are tried:

0. Views and metadata operations (``view``, ``t``, ``permute``, ``expand``, ``as_strided``,
   ``detach``, ``_unsafe_view``, ``empty`` ..., every op whose schema says it returns a view,
   and the in-place metadata ops tagged ``inplace_view``: ``squeeze_``, ``t_``, ``transpose_``,
   ``as_strided_`` ...) cost nothing and are not kernels.
1. Attention (``aten.scaled_dot_product_attention`` and every ``_scaled_dot_product_*``
   forward kernel) is one fused kernel, as flash attention runs it on the target GPU, whatever
   path the host took: ``2 * B * H_q * pairs * (D_qk + D_v)`` FLOPs, where ``pairs`` is
   ``L_q * L_k``, or for ``is_causal`` the unmasked (top-left causal) pairs, about half;
   bytes: q, k, v, the mask, the output and the fp32 log-sum-exp. Its inner ops are not
   counted. Each attention also records two ``collective`` all-reduces of its output's size,
   which cost something only under tensor parallelism (the attention block's and the MLP
   block's, see model.py).
2. Matrix products and convolutions use torch's own formulas
   (``torch.utils.flop_counter.flop_registry``: mm, addmm, bmm, baddbmm, _scaled_mm,
   convolution ...); ``aten.linear`` (costed whole), ``mv``, ``addmv``, ``dot``, ``vdot``,
   ``addbmm``, ``addr``, ``_addmm_activation``, ``_int_mm`` and the weight-only int8/int4
   matmuls (``_weight_int8pack_mm``, ``_weight_int4pack_mm*``, ``_dyn_quant_matmul_4bit``)
   get 2 FLOPs per multiply-add. They run at the tensor-core peak of their dtype; fp32
   matrix products at tf32 unless ``torch.get_float32_matmul_precision()`` is ``"highest"``,
   fp32 convolutions at tf32 while ``torch.backends.cudnn.allow_tf32`` is set (its default),
   as on a GPU; ``_int_mm`` at int8; weight-only matmuls at their activations' dtype.
3. Fused fast paths (``aten._transformer_encoder_layer_fwd``,
   ``aten._native_multi_head_attention``, which nn.TransformerEncoderLayer and
   nn.MultiheadAttention take in eval mode with grad off on CPU and CUDA) are costed as the
   operations of the path the same module takes elsewhere: the module's slow path is replayed
   once per signature on ``meta`` tensors and its operations counted (see fastpath.py).
4. Gathers (``embedding``, ``index_select``, ``index``, ``gather``, ``take``) read only the
   selected rows: the index tensors plus the output's size twice (rows read, written);
   ``embedding_bag`` reads ``indices.numel()`` rows of its table.
5. Indexed writes (``index_copy``, ``index_put``, ``scatter``, ``index_add``,
   ``scatter_add``, ``scatter_reduce``, ``index_fill``, ``index_reduce``, in place or not)
   count the index, the source elements used and the written elements (read too when they
   accumulate), not the whole destination; the out-of-place forms add a copy of the
   destination. A boolean-mask index is charged as if every element were selected (the
   count depends on data, which the meter does not read).
6. Writes that do not read their destination (``copy_``, ``fill_``, ``zero_``, the random
   fills) count only what they write and their other inputs.
7. Reductions (ops tagged ``torch.Tag.reduction``) cost 1 FLOP per element of their largest
   input; every other op (pointwise, normalisation, softmax, copies ...) 1 FLOP per output
   element. Both run at the vector fp32 peak (fp64 for float64). Pointwise ops (tagged
   ``torch.Tag.pointwise``, and casts) are ``fusible`` under the ``compiled`` engine.

Bytes are otherwise the logical sizes (``numel * element_size``) of all tensor inputs read
and all tensor outputs written; an ``out=`` tensor counts once, as an output.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import optables as tables
from .model import OpPrice, OpRecord
from .optables import (
    ATTENTION,
    DECOMPOSE,
    ELEMENTWISE,
    EMBEDDING_BAG,
    FORMULA,
    GATHER,
    INDEXED_WRITE,
    INT_MM,
    LINEAR,
    MATMUL,
    REDUCTION,
    REPLAY,
    REPLAY_NAMES,
    WRITE_ONLY,
    ZERO,
)

#: At most this many distinct op signatures are cached; the cache is cleared when full.
CACHE_LIMIT = 200_000


def vector_key(dtype_key: str) -> str:
    """The peak that non-matrix operations run at: fp64 for float64, else vector fp32."""
    return "fp64" if dtype_key == "fp64" else "fp32"


class Cost:
    """One costed operation signature: its record and, under a meter, its price.

    Hashed by identity: the counter keeps one object per signature and counts calls of it.
    """

    __slots__ = ("kernel", "price", "record")

    def __init__(self, record: OpRecord, price: OpPrice | None) -> None:
        self.record = record
        self.price = price
        self.kernel = record.op_class != "collective"


def op_name(func: Any) -> str:
    packet = getattr(func, "overloadpacket", func)
    return str(getattr(packet, "__name__", str(packet))).split(".")[-1]


class OpCounter:
    """Classifies and costs torch operations, and counts the calls of each costed signature.

    ``price`` turns a record into its modelled cost (the meter's model); None leaves the
    costs unpriced (:func:`~.counting.trace`).
    """

    def __init__(
        self, torch: types.ModuleType, price: Callable[[OpRecord], OpPrice] | None = None
    ) -> None:
        from torch.utils.flop_counter import flop_registry

        self._torch = torch
        self._tensor = torch.Tensor
        self._price = price
        self._registry = flop_registry
        self._mm_formula = flop_registry[torch.ops.aten.mm]
        self._reduction_tag = torch.Tag.reduction
        self._pointwise_tag = torch.Tag.pointwise
        self._inplace_view_tag = torch.Tag.inplace_view
        self.kinds: dict[int, int] = {}
        """Op kind by ``id(OpOverload)``."""
        self._arguments: dict[int, dict[str, int]] = {}
        self.cache: dict[tuple[Any, ...], tuple[Cost, ...]] = {}
        """Costs by call signature (:meth:`key`)."""
        self._matmul_fp32 = "fp32"
        self._conv_fp32 = "fp32"
        self.counts: dict[Cost, int] = {}
        """Calls of each costed signature since the counter was created."""
        self.capture: list[Cost] | None = None
        """When a list, every counted cost is also appended to it, in dispatch order."""
        self.sink: list[Cost] | None = None
        """When a list, counted costs go there instead of :attr:`counts` (fast-path replay)."""
        self.suspended = False
        """When set, operations pass through uncounted (inside an op costed whole)."""

    # -- configuration ----------------------------------------------------------------------

    def refresh_precision(self) -> None:
        """Read the fp32 precisions a GPU would use; called when a window starts.

        Matrix products follow ``torch.get_float32_matmul_precision()`` ("highest" runs
        fp32, otherwise tf32); convolutions follow ``torch.backends.cudnn.allow_tf32``
        (True by default). A change clears the cost cache.
        """
        torch = self._torch
        matmul = "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"
        conv = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
        if (matmul, conv) != (self._matmul_fp32, self._conv_fp32):
            self._matmul_fp32, self._conv_fp32 = matmul, conv
            self.cache.clear()

    # -- classification ---------------------------------------------------------------------

    def kind(self, func: Any) -> int:
        # keyed by identity: OpOverload objects live as long as torch, and their __hash__
        # is a Python call
        kind = self.kinds.get(id(func))
        if kind is None:
            kind = self._classify(func)
            self.kinds[id(func)] = kind
        return kind

    def _classify(self, func: Any) -> int:
        name = op_name(func)
        tags = getattr(func, "tags", ())
        if name in tables.ZERO_COST_NAMES or self._inplace_view_tag in tags:
            return ZERO
        if "scaled_dot_product" in name and "attention" in name and "backward" not in name:
            return ATTENTION  # before the composite test: costed whole, inner ops uncounted
        if getattr(func, "overloadpacket", None) in self._registry:
            return FORMULA
        if name == "linear":  # costed whole: the same figures as its t + addmm decomposition
            return LINEAR
        if name in REPLAY_NAMES:
            return REPLAY
        # before the view test: reshape, flatten ... are views only when no copy is needed
        if self._composite(func):
            return DECOMPOSE
        if getattr(func, "is_view", False):
            return ZERO
        if name in tables.MATMUL_FLOPS:
            return MATMUL
        if name == "_int_mm":
            return INT_MM
        if name in tables.EMBEDDING_BAG_NAMES:
            return EMBEDDING_BAG
        if name in tables.GATHER_NAMES:
            return GATHER
        if name in tables.INDEXED_WRITE_NAMES:
            return INDEXED_WRITE
        if name in tables.WRITE_ONLY_NAMES:
            return WRITE_ONLY
        if self._reduction_tag in tags:
            return REDUCTION
        return ELEMENTWISE

    def _composite(self, func: Any) -> bool:
        """Whether ``func`` is defined by other ops (CompositeImplicitAutograd).

        Such ops arrive whole when the autograd keys are skipped (``torch.inference_mode()``,
        or a grad-free window); the mode then runs their decomposition so that the ops doing
        the work are the ones counted.
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

    # -- counting ---------------------------------------------------------------------------

    def add(self, costs: tuple[Cost, ...]) -> None:
        if self.sink is not None:
            self.sink.extend(costs)
            return
        counts = self.counts
        for cost in costs:
            counts[cost] = counts.get(cost, 0) + 1
        if self.capture is not None:
            self.capture.extend(costs)

    def make(self, record: OpRecord) -> Cost:
        """A priced :class:`Cost` for ``record`` (one instance; its count is ignored)."""
        return Cost(record, None if self._price is None else self._price(record))

    # -- costing ----------------------------------------------------------------------------

    def key(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
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

    def costs(
        self, kind: int, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> tuple[Cost, ...]:
        """The costs of one call of ``func`` (of ``kind``) that returned ``out``."""
        key = self.key(func, args, kwargs, out)
        if kind == INDEXED_WRITE:  # index_fill's dim changes what it writes
            key = (*key, *(a for a in args if a.__class__ is int))
        try:
            return self.cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument: cost it without caching
            return self._compute(kind, func, args, kwargs, out)
        costs = self._compute(kind, func, args, kwargs, out)
        self.remember(key, costs)
        return costs

    def cached(self, key: Any) -> tuple[Cost, ...] | None:
        return self.cache.get(key)

    def remember(self, key: Any, costs: tuple[Cost, ...]) -> None:
        if len(self.cache) >= CACHE_LIMIT:
            self.cache.clear()
        self.cache[key] = costs

    def _tensors(self, value: Any) -> Iterator[Any]:
        if isinstance(value, self._tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from self._tensors(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from self._tensors(item)

    def _dtype_key(self, tensor: Any, fp32: str = "fp32") -> str:
        key = tables.DTYPE_KEYS.get(str(tensor.dtype), "fp32")
        return fp32 if key == "fp32" else key

    def _argument(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
        """The value of schema argument ``name`` of a call (None when not given)."""
        positions = self._arguments.get(id(func))
        if positions is None:
            schema = getattr(func, "_schema", None)
            arguments = getattr(schema, "arguments", ())
            positions = {argument.name: index for index, argument in enumerate(arguments)}
            self._arguments[id(func)] = positions
        if name in kwargs:
            return kwargs[name]
        index = positions.get(name)
        if index is not None and index < len(args):
            return args[index]
        return None

    def _compute(
        self, kind: int, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> tuple[Cost, ...]:
        if kind == ATTENTION:
            return self._attention(func, args, kwargs)
        size = _nbytes
        inputs = list(self._tensors(args))
        inputs += self._tensors({k: v for k, v in kwargs.items() if k != "out"})
        outputs = list(self._tensors(out))
        out_bytes = sum(size(t) for t in outputs)
        first = inputs[0] if inputs else (outputs[0] if outputs else None)
        fusible = False
        op_class = "other"
        if kind == GATHER:  # the table's selected rows (as much as the output), the indices
            nbytes = sum(size(t) for t in inputs[1:]) + 2 * out_bytes
        elif kind == WRITE_ONLY:  # the destination is written, not read
            nbytes = sum(size(t) for t in inputs[1:]) + out_bytes
        else:
            nbytes = sum(size(t) for t in inputs) + out_bytes
        dtype_key = self._dtype_key(first) if first is not None else "fp32"
        peak_key = vector_key(dtype_key)
        if kind == FORMULA:
            flops = int(self._registry[func.overloadpacket](*args, out_val=out, **kwargs))
            name = op_name(func)
            op_class = "attention" if "attention" in name else "matmul"
            fp32 = self._conv_fp32 if "conv" in name else self._matmul_fp32
            peak_key = self._dtype_key(first, fp32) if first is not None else fp32
        elif kind == LINEAR:  # linear(input, weight[out, in], bias): 2 FLOPs per multiply-add
            flops = 2 * args[0].numel() * args[1].shape[0]
            op_class, peak_key = "matmul", self._dtype_key(args[0], self._matmul_fp32)
        elif kind == MATMUL:
            name = op_name(func)
            flops = tables.MATMUL_FLOPS[name](args, out)
            matrix = args[1] if name in tables.MATRIX_SECOND else args[0]
            op_class, peak_key = "matmul", self._dtype_key(matrix, self._matmul_fp32)
        elif kind == INT_MM:
            flops = int(self._mm_formula(*args[:2], out_val=out))
            op_class, peak_key = "matmul", "int8"
        elif kind == EMBEDDING_BAG:
            weight, indices = args[0], args[1]
            rows = indices.numel()
            flops = rows * weight.shape[-1]
            nbytes = rows * weight.shape[-1] * weight.element_size()
            nbytes += sum(size(t) for t in inputs[1:]) + out_bytes
        elif kind == INDEXED_WRITE:
            flops, nbytes = self._indexed_write(func, args, kwargs, out_bytes)
        elif kind == REDUCTION:
            flops = max((t.numel() for t in inputs), default=0)
        else:
            flops = sum(t.numel() for t in outputs)
            tags = getattr(func, "tags", ())
            fusible = self._pointwise_tag in tags or op_name(func) == "_to_copy"
        return (self.make(OpRecord(op_class, flops, nbytes, peak_key, 1, fusible)),)

    def _attention(
        self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Cost, ...]:
        """One fused attention kernel, and the two all-reduces of its output (TP only)."""
        q, k, v = args[0], args[1], args[2]
        mask = self._argument(func, args, kwargs, "attn_mask")
        if mask is None:
            mask = self._argument(func, args, kwargs, "attn_bias")
        causal = bool(self._argument(func, args, kwargs, "is_causal"))
        length_q, length_k, head_qk, head_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
        heads = q.numel() // max(length_q * head_qk, 1)  # batch x query heads
        pairs = length_q * length_k
        if causal:  # torch's is_causal: the top-left lower triangle
            if length_q <= length_k:
                pairs = length_q * (length_q + 1) // 2
            else:
                pairs = length_k * (length_k + 1) // 2 + (length_q - length_k) * length_k
        flops = 2 * heads * pairs * (head_qk + head_v)
        out_bytes = heads * length_q * head_v * q.element_size()
        lse_bytes = heads * length_q * 4
        nbytes = _nbytes(q) + _nbytes(k) + _nbytes(v) + out_bytes + lse_bytes
        if isinstance(mask, self._tensor):
            nbytes += _nbytes(mask)
        peak_key = self._dtype_key(q, self._matmul_fp32)
        attention = self.make(OpRecord("attention", flops, nbytes, peak_key))
        collective = self.make(OpRecord("collective", 0, out_bytes, peak_key))
        return (attention, collective, collective)

    def _indexed_write(
        self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out_bytes: int
    ) -> tuple[int, int]:
        """FLOPs and bytes of an indexed write: index, source used, written elements."""
        name = op_name(func)
        base = name.rstrip("_").lstrip("_")
        base = "index_put" if base == "index_put_impl" else base
        self_ = args[0]
        element = self_.element_size()
        index_bytes = source_bytes = 0
        written = 0
        accumulate = base in tables.ACCUMULATING
        if base in ("index_copy", "index_add", "index_reduce"):
            index, source = args[2], args[3]
            index_bytes, source_bytes, written = _nbytes(index), _nbytes(source), source.numel()
        elif base == "index_fill":
            dim, index = args[1], args[2]
            slice_numel = self_.numel() // max(self_.shape[dim], 1) if self_.dim() else 1
            index_bytes, written = _nbytes(index), index.numel() * slice_numel
        elif base == "index_put":
            indices, values = args[1], args[2]
            written = self._indexed_numel(self_, indices)
            index_bytes = sum(_nbytes(t) for t in indices if t is not None)
            source_bytes = _nbytes(values)
            accumulate = bool(self._argument(func, args, kwargs, "accumulate"))
        else:  # scatter family: (self, dim, index, src or value, ...)
            index = args[2]
            written = index.numel()
            index_bytes = _nbytes(index)
            source = args[3] if len(args) > 3 else kwargs.get("src", kwargs.get("value"))
            if isinstance(source, self._tensor):
                source_bytes = written * source.element_size()
            accumulate = accumulate or "reduce" in str(getattr(func, "_overloadname", ""))
        nbytes = index_bytes + source_bytes + written * element * (2 if accumulate else 1)
        if not name.endswith("_"):  # out of place: a copy of the destination first
            nbytes += _nbytes(self_) + out_bytes
        return written, nbytes

    def _indexed_numel(self, destination: Any, indices: Sequence[Any]) -> int:
        """Elements ``destination[indices] = values`` writes (bool masks: every element)."""
        torch = self._torch
        shape = list(destination.shape)
        advanced: list[Any] = []
        mask_numel = 1
        dim = 0
        kept = 1
        for index in indices:
            if index is None:
                kept *= shape[dim] if dim < len(shape) else 1
                dim += 1
            elif index.dtype in (torch.bool, torch.uint8):
                mask_numel *= index.numel()
                dim += index.dim()
            else:
                advanced.append(index.shape)
                dim += 1
        for size in shape[dim:]:
            kept *= size
        broadcast = 1
        if advanced:
            for size in torch.broadcast_shapes(*advanced):
                broadcast *= size
        return int(broadcast * mask_numel * kept)


def _nbytes(tensor: Any) -> int:
    """Bytes of the distinct elements a tensor addresses: a broadcast (stride-0) dimension
    of an ``expand`` view is read once, not once per repeat."""
    try:
        strides = tensor.stride()
    except (RuntimeError, NotImplementedError):  # sparse, nested: no strides
        return int(tensor.numel() * tensor.element_size())
    unique = 1
    for size, stride in zip(tensor.shape, strides, strict=True):
        if stride != 0:
            unique *= size
        elif size == 0:
            return 0
    return int(unique * tensor.element_size())
