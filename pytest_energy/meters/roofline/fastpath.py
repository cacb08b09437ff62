"""The slow paths of torch's fused transformer fast paths, for costing them.

``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` in eval mode with grad off take
a fused fast path on CPU and CUDA (``aten._transformer_encoder_layer_fwd``,
``aten._native_multi_head_attention``), and their ordinary path everywhere else (on ``meta``,
with grad on, in training). The counter runs the real fused kernel for the result, and costs
it by replaying the ordinary path below on ``meta`` copies of its arguments, once per
signature: so a model counts the same operations whichever path the host took.

Each function here takes the fused op's arguments (its schema order) and does what the
module's ordinary forward does with them in eval mode: layer norms, the in-projection, one
fused attention, the out-projection, the feed-forward block (dropout is an identity in eval).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F


def _masks(mask: Any, mask_type: int | None) -> tuple[Any, Any]:
    """(attn_mask, key_padding_mask) from a fast path's merged mask (``MHA.merge_masks``)."""
    if mask is None:
        return None, None
    if mask_type == 1:  # key padding mask, (batch, source)
        return None, mask
    if mask_type == 2:  # merged, (batch, heads, target, source)
        return mask.reshape(-1, *mask.shape[-2:]), None
    return mask, None  # attention mask, (target, source)


def native_multi_head_attention(
    query: Any,
    key: Any,
    value: Any,
    embed_dim: int,
    num_head: int,
    qkv_weight: Any,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    mask: Any = None,
    need_weights: bool = True,
    average_attn_weights: bool = True,
    mask_type: int | None = None,
) -> Any:
    """``nn.MultiheadAttention(batch_first=True).forward`` on the fast path's arguments."""
    if key is value:
        if query is key:
            query = key = value = query.transpose(1, 0)
        else:
            query, key = (x.transpose(1, 0) for x in (query, key))
            value = key
    else:
        query, key, value = (x.transpose(1, 0) for x in (query, key, value))
    attn_mask, key_padding_mask = _masks(mask, mask_type)
    out, weights = F.multi_head_attention_forward(
        query,
        key,
        value,
        embed_dim,
        num_head,
        qkv_weight,
        qkv_bias,
        None,
        None,
        False,
        0.0,
        proj_weight,
        proj_bias,
        training=False,
        key_padding_mask=key_padding_mask,
        need_weights=need_weights,
        attn_mask=attn_mask,
        average_attn_weights=average_attn_weights,
    )
    return out.transpose(1, 0), weights


def transformer_encoder_layer_fwd(
    src: Any,
    embed_dim: int,
    num_heads: int,
    qkv_weight: Any,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    use_gelu: bool,
    norm_first: bool,
    eps: float,
    norm_weight_1: Any,
    norm_bias_1: Any,
    norm_weight_2: Any,
    norm_bias_2: Any,
    ffn_weight_1: Any,
    ffn_bias_1: Any,
    ffn_weight_2: Any,
    ffn_bias_2: Any,
    mask: Any = None,
    mask_type: int | None = None,
) -> Any:
    """``nn.TransformerEncoderLayer(batch_first=True).forward`` in eval mode."""
    shape = (embed_dim,)

    def attention(x: Any) -> Any:
        return native_multi_head_attention(
            x,
            x,
            x,
            embed_dim,
            num_heads,
            qkv_weight,
            qkv_bias,
            proj_weight,
            proj_bias,
            mask,
            False,
            True,
            mask_type,
        )[0]

    def feed_forward(x: Any) -> Any:
        hidden = F.linear(x, ffn_weight_1, ffn_bias_1)
        hidden = F.gelu(hidden) if use_gelu else F.relu(hidden)
        return F.linear(hidden, ffn_weight_2, ffn_bias_2)

    x = src
    if norm_first:
        x = x + attention(F.layer_norm(x, shape, norm_weight_1, norm_bias_1, eps))
        return x + feed_forward(F.layer_norm(x, shape, norm_weight_2, norm_bias_2, eps))
    x = F.layer_norm(x + attention(x), shape, norm_weight_1, norm_bias_1, eps)
    return F.layer_norm(x + feed_forward(x), shape, norm_weight_2, norm_bias_2, eps)


#: Fused op name -> the slow path that costs it.
REFERENCES: dict[str, Callable[..., Any]] = {
    "_native_multi_head_attention": native_multi_head_attention,
    "_transformer_encoder_layer_fwd": transformer_encoder_layer_fwd,
}
