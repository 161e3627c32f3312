"""scaled_dot_product_attention: no mask, bool and float masks (broadcast over batch and heads, with a row that
sees no key), causal (square and L > S, dynamic lengths), scale, 2-D and 3-D operands, key/value broadcast over
the batch, GQA, and the attention-weights output MultiheadAttention uses. dropout_p is 0 here (the random mask is
tested in test_layers_transformer)."""

from __future__ import annotations

import math

import numpy as np

import interop
from interop.ops.attention import attention

from . import OpCase, rnd


def F(t):
    if isinstance(t, interop.Tensor):
        return interop.nn.functional
    import torch.nn.functional

    return torch.nn.functional


def sdpa(**kw):
    def fn(q, k, v, *mask):
        return F(q).scaled_dot_product_attention(q, k, v, *mask, **kw)

    return fn


def ref(q, k, v, mask=None, is_causal=False, scale=None, groups=1, weights=False):
    """softmax(q k^T scale + bias) v in float64 numpy; rows that see no key give zeros."""
    if groups > 1:
        k, v = np.repeat(k, groups, axis=-3), np.repeat(v, groups, axis=-3)
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isinf(m), 0, m))
    z = e.sum(-1, keepdims=True)
    p = e / np.where(z == 0, 1, z)
    return (p @ v, p) if weights else p @ v


def qkv(b, h, n_q, n_k, e=8, ev=6, hk=None):
    return [rnd(b, h, n_q, e, seed=1), rnd(b, hk or h, n_k, e, seed=2), rnd(b, hk or h, n_k, ev, seed=3)]


BOOL_MASK = np.random.default_rng(4).random((2, 1, 4, 5)) > 0.4
BOOL_MASK[1, 0, 2] = False  # a query that sees no key: zeros, in PyTorch and ONNX Attention alike
FLOAT_MASK = rnd(4, 5, seed=5)
PADDING_MASK = np.array([[True, True, False, True, False], [True, False, True, True, True]])[:, None, None]
GQA_MASK = np.random.default_rng(6).random((6, 4, 5)) > 0.3


def _torch_weights(q, k, v):
    import torch

    return torch.nn.functional.scaled_dot_product_attention(q, k, v), torch.softmax(q @ k.mT / math.sqrt(8), -1)


CASES = [
    OpCase("ScaledDotProductAttention", sdpa(), qkv(2, 3, 4, 5), ref, name="attention"),
    OpCase("ScaledDotProductAttention", sdpa(), [*qkv(2, 3, 4, 5), BOOL_MASK],
           lambda q, k, v, m: ref(q, k, v, m), name="attention_bool_mask_broadcast_heads"),
    OpCase("ScaledDotProductAttention", sdpa(), [*qkv(2, 3, 4, 5), PADDING_MASK],
           lambda q, k, v, m: ref(q, k, v, m), name="attention_key_padding_mask",
           dynamic={0: {0: "batch"}, 1: {0: "batch"}, 2: {0: "batch"}, 3: {0: "batch"}}),
    OpCase("ScaledDotProductAttention", sdpa(), [*qkv(2, 3, 4, 5), FLOAT_MASK],
           lambda q, k, v, m: ref(q, k, v, m), name="attention_float_mask_broadcast_batch_heads"),
    OpCase("ScaledDotProductAttention", sdpa(), [*qkv(2, 3, 4, 5), np.where(BOOL_MASK, 0.0, -np.inf)],
           lambda q, k, v, m: ref(q, k, v, m), name="attention_float_mask_with_inf", grad_inputs=(0, 1, 2)),
    OpCase("ScaledDotProductAttention", sdpa(is_causal=True), qkv(2, 3, 5, 5), lambda q, k, v: ref(q, k, v, None, True),
           name="attention_causal", dynamic={0: {2: "seq"}, 1: {2: "seq"}, 2: {2: "seq"}}),
    OpCase("ScaledDotProductAttention", sdpa(is_causal=True, scale=0.3), qkv(1, 2, 6, 4),
           lambda q, k, v: ref(q, k, v, None, True, 0.3), name="attention_causal_longer_query_scale",
           dynamic={0: {2: "tgt"}, 1: {2: "src"}, 2: {2: "src"}}),
    OpCase("ScaledDotProductAttention", sdpa(scale=0.5), [rnd(3, 4, 8), rnd(3, 7, 8, seed=1), rnd(3, 7, 2, seed=2)],
           lambda q, k, v: ref(q, k, v, None, False, 0.5), name="attention_3d", dynamic={0: {0: "batch"},
                                                                                     1: {0: "batch"}, 2: {0: "batch"}}),
    OpCase("ScaledDotProductAttention", sdpa(), [rnd(4, 8), rnd(5, 8, seed=1), rnd(5, 3, seed=2), FLOAT_MASK],
           lambda q, k, v, m: ref(q, k, v, m), name="attention_2d_float_mask"),
    OpCase("ScaledDotProductAttention", sdpa(), [rnd(2, 3, 4, 8), rnd(1, 3, 5, 8, seed=1), rnd(1, 3, 5, 6, seed=2)],
           ref, name="attention_kv_broadcast_batch"),
    OpCase("ScaledDotProductAttention", sdpa(enable_gqa=True), qkv(2, 6, 4, 5, hk=3),
           lambda q, k, v: ref(q, k, v, groups=2), name="attention_gqa", dynamic={0: {0: "batch"}, 1: {0: "batch"},
                                                                               2: {0: "batch"}}),
    OpCase("ScaledDotProductAttention", sdpa(enable_gqa=True), [*qkv(2, 6, 4, 5, hk=3), GQA_MASK],
           lambda q, k, v, m: ref(q, k, v, m, groups=2), name="attention_gqa_bool_mask"),
    OpCase("ScaledDotProductAttention", lambda q, k, v: attention(q, k, v, need_weights=True), qkv(2, 3, 4, 5, ev=8),
           lambda q, k, v: ref(q, k, v, weights=True), torch_fn=_torch_weights, name="attention_with_weights"),
    OpCase("ScaledDotProductAttention", lambda q, k, v: attention(q, k, v, need_weights=True), qkv(2, 3, 4, 5, ev=8),
           lambda q, k, v: ref(q, k, v, weights=True), torch_fn=_torch_weights,
           name="attention_with_weights_dynamic_keys", dynamic={1: {2: "src"}, 2: {2: "src"}}),
]
