"""The tables the op counter classifies operations by: op kinds and op names.

Names are ``OpOverloadPacket`` names (``aten.index_copy_`` -> ``"index_copy_"``); the rules
that use them are in costs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# op kinds
ZERO = 0
DECOMPOSE = 1
FORMULA = 2
LINEAR = 3
MATMUL = 4
INT_MM = 5
ATTENTION = 6
REPLAY = 7
GATHER = 8
EMBEDDING_BAG = 9
INDEXED_WRITE = 10
WRITE_ONLY = 11
REDUCTION = 12
ELEMENTWISE = 13

#: Ops that read only the rows of their first argument that the indices select.
GATHER_NAMES = frozenset({"embedding", "index_select", "index", "gather", "take"})
EMBEDDING_BAG_NAMES = frozenset({"_embedding_bag", "_embedding_bag_forward_only"})
#: Matrix products without a registry formula: name -> FLOPs from (args, out).
MATMUL_FLOPS: dict[str, Callable[[Sequence[Any], Any], int]] = {
    "mv": lambda a, out: 2 * a[0].numel(),
    "addmv": lambda a, out: 2 * a[1].numel(),
    "dot": lambda a, out: 2 * a[0].numel(),
    "vdot": lambda a, out: 2 * a[0].numel(),
    "addbmm": lambda a, out: 2 * a[1].numel() * a[2].shape[-1],
    "addr": lambda a, out: 2 * a[1].numel() * a[2].numel(),
    "_addmm_activation": lambda a, out: 2 * a[1].numel() * a[2].shape[-1],
    "_weight_int8pack_mm": lambda a, out: 2 * out.numel() * a[0].shape[-1],
    "_weight_int4pack_mm": lambda a, out: 2 * out.numel() * a[0].shape[-1],
    "_weight_int4pack_mm_for_cpu": lambda a, out: 2 * out.numel() * a[0].shape[-1],
    "_weight_int4pack_mm_with_scales_and_zeros": lambda a, out: 2 * out.numel() * a[0].shape[-1],
    "_dyn_quant_matmul_4bit": lambda a, out: 2 * out.numel() * a[0].shape[-1],
}
#: Those whose first argument is an addend, not a matrix: the dtype comes from the second.
MATRIX_SECOND = frozenset({"addmv", "addbmm", "addr", "_addmm_activation"})
#: Ops that write their first argument without reading it.
WRITE_ONLY_NAMES = frozenset(
    {
        "copy_",
        "fill_",
        "zero_",
        "normal_",
        "uniform_",
        "random_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
    }
)
INDEXED_WRITE_NAMES = frozenset(
    {
        "index_copy",
        "index_copy_",
        "index_add",
        "index_add_",
        "index_reduce",
        "index_reduce_",
        "index_fill",
        "index_fill_",
        "index_put",
        "index_put_",
        "_index_put_impl_",
        "scatter",
        "scatter_",
        "scatter_add",
        "scatter_add_",
        "scatter_reduce",
        "scatter_reduce_",
    }
)
#: Indexed writes that read the elements they write (read-modify-write).
ACCUMULATING = frozenset({"index_add", "index_reduce", "scatter_add", "scatter_reduce"})
#: The fused fast paths, costed by replaying the slow path (fastpath.py).
REPLAY_NAMES = frozenset({"_transformer_encoder_layer_fwd", "_native_multi_head_attention"})

#: Metadata ops whose schema does not mark them as views, by OpOverloadPacket name.
ZERO_COST_NAMES = frozenset(
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
        "lift_fresh",
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
        "_fused_sdp_choice",
    }
)

DTYPE_KEYS: dict[str, str] = {
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
