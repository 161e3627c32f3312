"""Attention: scaled_dot_product_attention as one op with an analytic, fused backward.

    S = q k^T * scale + bias,   P = softmax(S),   O = dropout(P) v
    dv = P'^T dO,   dP = (dO v^T) * keep,   dS = P * (dP - rowsum(dP * P)),   dq = dS k * scale,   dk = dS^T q * scale

`bias` is the additive form of the masks: a float mask as given, a bool mask (True = attend, PyTorch's SDPA
convention) as 0 / -inf, the causal mask (query i sees keys j <= i) as -inf above the diagonal. A query row that
sees no key gives a zero output row (PyTorch's and ONNX Attention's rule), not NaN.

Speed on numpy: the score matrix is stored key-major, as an (S, *batch, L) buffer, so the softmax reductions over
the keys run across contiguous rows of batch * L elements (numpy reduces a short last axis ~20x slower). Every
product is one BLAS call per (batch, head) on transposed views, never a copy: q k^T is written straight into that
buffer, P v reads it transposed. The output (and dq, dk, dv) are laid out in memory like the query (key, value),
so when the heads are a view of a (batch, seq, heads * dim) projection, merging them back is a view too. GQA
(enable_gqa) views the query heads as (kv_heads, group) and broadcasts keys and values over the group instead of
repeating them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op, grad
from ..backend import device_of, xp_of
from ..creation import default_generator, zeros
from ..tensor import Tensor
from .elementwise import where
from .linalg import linear
from .nn import _check_p, opmath, softmax
from .shape import cat, pad

__all__: list[str] = []  # the public function lives in interop.nn.functional, as in PyTorch


# ---- array kernels -----------------------------------------------------------------------------------------

def _laid_like(like: Any, shape: tuple, dtype: Any) -> Any:
    """An empty array of `shape` (same rank as `like`) whose axes are ordered in memory as `like`'s are, its last
    axis innermost."""
    xp = xp_of(like)
    nd = len(shape)
    if like.ndim != nd or like.flags.c_contiguous:
        return xp.empty(shape, dtype)
    order = [*sorted(range(nd - 1), key=lambda i: -like.strides[i]), nd - 1]
    return xp.empty([shape[i] for i in order], dtype).transpose(np.argsort(order))


def _mm(a: Any, b: Any, like: Any) -> Any:
    """a @ b, written into an array laid out like `like`."""
    shape = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    return xp_of(a).matmul(a, b, out=_laid_like(like, shape, like.dtype))


def _reduce_to(a: Any, shape: tuple) -> Any:
    """Sum a broadcast gradient back to `shape`."""
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def _grouped(a: Any, groups: int, kv: bool) -> Any:
    """GQA: a query's (..., Hq, L, E) viewed as (..., Hk, G, L, E); keys and values (`kv`), and masks with one
    head, get a unit group axis to broadcast over."""
    if groups == 1 or a.ndim < 3:
        return a
    h = a.shape[-3]
    if kv or h == 1:
        return a[..., None, :, :]
    return a.reshape((*a.shape[:-3], h // groups, groups, *a.shape[-2:]))


def _causal_bias(xp: Any, n_q: int, n_k: int, dtype: Any) -> Any:
    """-inf where key j comes after query i (PyTorch's top-left aligned tril), 0 elsewhere."""
    return xp.triu(xp.full((n_q, n_k), -np.inf, dtype), 1)


def _bias(mask: Any, causal: bool, n_q: int, n_k: int, dtype: Any) -> Any:
    """The additive (..., L, S) form of the masks, or None."""
    xp = xp_of(mask) if mask is not None else None
    bias = None
    if mask is not None:
        bias = xp.where(mask, dtype.type(0), dtype.type(-np.inf)) if mask.dtype == dtypes.bool else opmath(mask)
    if causal:
        c = _causal_bias(xp or np, n_q, n_k, dtype)
        bias = c if bias is None else bias + c
    return bias


def _softmax_keys(s: Any, masked: bool) -> None:
    """Softmax over axis 0 of the key-major score buffer, in place; rows that see no key become 0."""
    xp = xp_of(s)
    m = s.max(axis=0)
    if masked:
        m[m == -np.inf] = 0  # such a row is all -inf: exp(-inf - 0) = 0 everywhere, not NaN
    s -= m
    xp.exp(s, out=s)
    z = s.sum(axis=0)
    if masked:
        xp.maximum(z, 1, out=z)  # a visible row sums to >= 1 (its max gives exp(0)); a hidden one to 0
    xp.reciprocal(z, out=z)
    s *= z


class ScaledDotProductAttention(Op):
    """softmax(q k^T * scale + bias) v over the last two dims, batch dims broadcast; inputs (q, k, v[, mask]).

    `groups`: query heads per key/value head (GQA). `dropout_p` drops attention weights (the kept-and-scaled
    mask is saved for backward; ONNX graphs are for inference, so the lowering leaves dropout out, as the Dropout
    op's does). `need_weights`: also return the (dropped) attention weights (..., L, S).
    """

    saves = (0, 1, 2)

    def __init__(self, scale: float, is_causal: bool = False, dropout_p: float = 0.0, groups: int = 1,
                 need_weights: bool = False):
        self.scale, self.is_causal, self.dropout_p = scale, is_causal, dropout_p
        self.groups, self.need_weights = groups, need_weights

    def _views(self, q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
        """q, k, v grouped (GQA) and broadcast to one batch shape (views)."""
        g = self.groups
        q, k, v = _grouped(q, g, False), _grouped(k, g, True), _grouped(v, g, True)
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        xp = xp_of(q)
        return tuple(a if a.shape[:-2] == batch else xp.broadcast_to(a, batch + a.shape[-2:]) for a in (q, k, v))

    def _ungroup(self, a: Any) -> Any:
        """(..., Hk, G, L, X) back to the query's (..., Hq, L, X)."""
        return a if self.groups == 1 else a.reshape((*a.shape[:-4], -1, *a.shape[-2:]))

    def forward(self, ctx, q, k, v, mask=None):
        xp, dt = xp_of(q), q.dtype
        qw, kw, vw = self._views(opmath(q), opmath(k), opmath(v))
        n_q, n_k, batch, wt = qw.shape[-2], kw.shape[-2], qw.shape[:-2], qw.dtype
        buf = xp.empty((n_k, *batch, n_q), wt)  # the scores, key-major: seen as (*batch, S, L) = (q k^T)^T
        st = xp.moveaxis(buf, 0, -2)
        xp.matmul(kw, qw.swapaxes(-1, -2), out=st)
        buf *= self.scale
        bias = _bias(None if mask is None else _grouped(mask, self.groups, False), self.is_causal, n_q, n_k, wt)
        if bias is not None:
            want = (*batch, n_q, n_k)
            full = np.broadcast_shapes(want, bias.shape)
            if full != want:
                raise RuntimeError(f"output with shape {list(want)} doesn't match the broadcast shape {list(full)}")
            st += bias.swapaxes(-1, -2)
        _softmax_keys(buf, bias is not None)
        ctx.p, ctx.keep = buf, None
        pd = buf
        if self.dropout_p > 0:
            keep = default_generator.rng(device_of(q)).random(buf.shape, dtype=np.float32) >= self.dropout_p
            ctx.keep = keep.astype(wt)
            if self.dropout_p < 1:
                ctx.keep *= 1 / (1 - self.dropout_p)
            pd = buf * ctx.keep
        p_t = xp.moveaxis(pd, 0, -1)  # (*batch, L, S)
        out = self._ungroup(_mm(p_t, vw, qw)).astype(dt, copy=False)
        if not self.need_weights:
            return out
        return out, self._ungroup(xp.ascontiguousarray(p_t)).astype(dt, copy=False)

    def backward(self, ctx, *grads):
        if state.grad_enabled:
            return self._composite_backward(ctx, grads)
        q, k, v = ctx.inputs[:3]
        mask = ctx.inputs[3] if len(ctx.inputs) > 3 else None
        qw, kw, vw = self._views(opmath(q.data), opmath(k.data), opmath(v.data))
        xp = xp_of(qw)
        g = _grouped(opmath(grads[0].data), self.groups, False)  # dO, over the full batch already
        p, keep = ctx.p, ctx.keep
        gq = gk = gv = gm = None
        if v.requires_grad:  # dv = P'^T dO
            gv = _mm(xp.moveaxis(p if keep is None else p * keep, 0, -2), g, vw)
        if q.requires_grad or k.requires_grad or (mask is not None and mask.requires_grad):
            ds = xp.empty_like(p)  # dP^T, then dS^T, key-major like P
            xp.matmul(vw, g.swapaxes(-1, -2), out=xp.moveaxis(ds, 0, -2))
            if self.need_weights:
                ds += xp.moveaxis(_grouped(opmath(grads[1].data), self.groups, False), -1, 0)
            if keep is not None:
                ds *= keep
            ds -= (ds * p).sum(axis=0)
            ds *= p
            if q.requires_grad:
                gq = _mm(xp.moveaxis(ds, 0, -1), kw, qw)
                gq *= self.scale
            if k.requires_grad:
                gk = _mm(xp.moveaxis(ds, 0, -2), qw, kw)
                gk *= self.scale
            if mask is not None and mask.requires_grad:
                gm = xp.moveaxis(ds, 0, -1)
        return tuple(None if a is None else
                     Tensor(_reduce_to(a, _grouped(t.data, self.groups, i in (1, 2)).shape).reshape(t.data.shape)
                            .astype(t.data.dtype, copy=False))
                     for i, (a, t) in enumerate(zip((gq, gk, gv, gm), ctx.inputs)))

    def _composite_backward(self, ctx, grads):
        """create_graph: the forward redone as differentiable Tensor ops (with the saved dropout mask) and
        differentiated by the engine, so the gradient is itself differentiable."""
        inputs = ctx.inputs
        outs = _composite(self, *inputs, keep=ctx.keep, hidden=ctx.p.sum(axis=0) == 0)
        want = [t for t in inputs if t.requires_grad]
        got = iter(grad(outs, want, grad_outputs=grads[:len(outs)], create_graph=True, allow_unused=True))
        return tuple(next(got) if t.requires_grad else None for t in inputs)

    # -- ONNX ---------------------------------------------------------------------------------------------
    def to_onnx(self, g, q, k, v, mask=None):
        # onnx 1.23's shape inference gives Attention's weights output a key axis of 0 when the key length is
        # dynamic, which would declare a wrong output shape: weights with a dynamic key length take the MatMul form
        weights_ok = not self.need_weights or isinstance(g.shape(k)[-2], int)
        if g.opset >= 23 and weights_ok and _fits_attention(g, q, k, v, mask, self.groups):
            return self._onnx_attention(g, q, k, v, mask)
        return self._onnx_matmul(g, q, k, v, mask)

    def _onnx_attention(self, g, q, k, v, mask):
        """The fused Attention node (opset 23) on 4-D (batch, heads, seq, dim) operands: lower ranks get leading
        unit dims (masks broadcast from the right, so they need none)."""
        rank = g.rank(q)
        lift = g.const(list(range(4 - rank)), "int64") if rank < 4 else None
        ins = [g.op("Unsqueeze", x, lift) if lift else x for x in (q, k, v)]
        if mask is not None and tuple(g.shape(mask)[-2:]) != (g.shape(q)[-2], g.shape(k)[-2]):
            # ONNX Runtime wants the mask's last two dims to be (L, S) exactly: broadcast those two only
            mr = g.rank(mask)
            mask = g.op("Expand", mask, g.op("Concat", g.const([1] * max(mr - 2, 0), "int64"),
                                             g.op("Shape", q, start=-2, end=-1), g.op("Shape", k, start=-2, end=-1),
                                             axis=0))
        attrs = {"scale": float(self.scale), "is_causal": int(self.is_causal)}
        if self.need_weights:  # qk_matmul_output in mode 3: the softmax output
            y, _, _, w = g.op("Attention", *ins, mask, outputs=4, qk_matmul_output_mode=3, **attrs)
            outs = [y, w]
        else:
            outs = [g.op("Attention", *ins, mask, **attrs)]
        if lift:
            outs = [g.op("Squeeze", o, lift) for o in outs]
        return tuple(outs) if self.need_weights else outs[0]

    def _onnx_matmul(self, g, q, k, v, mask):
        """Below opset 23 (or for operands Attention does not take): MatMul, Mul, masks, Softmax, MatMul."""
        dt, rank = g.dtype(q), g.rank(k)
        if self.groups > 1:
            k, v = (_onnx_repeat_heads(g, x, self.groups) for x in (k, v))
        perm = list(range(rank))
        perm[-2:] = perm[-1], perm[-2]
        s = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=perm)), g.const(self.scale, dt))
        ninf = g.const(-np.inf, dt)
        if mask is not None:
            s = g.op("Where", mask, s, ninf) if g.dtype(mask) == dtypes.bool else g.op("Add", s, mask)
        if self.is_causal:
            s = g.op("Where", _onnx_causal(g, q, k), s, ninf)
        p = g.op("Softmax", s, axis=-1)
        if mask is not None:  # rows that see no key: 0, not NaN
            p = g.op("Where", g.op("IsNaN", p), g.const(0, dt), p)
        out = g.op("MatMul", p, v)
        return (out, p) if self.need_weights else out


def _fits_attention(g: Any, q: str, k: str, v: str, mask: str | None, groups: int) -> bool:
    """Whether ONNX Attention takes these operands: 2-4-D, one batch shape (it does not broadcast; heads may
    differ under GQA), a mask of no higher rank."""
    rank = g.rank(q)
    if not 2 <= rank <= 4 or g.rank(k) != rank or g.rank(v) != rank or (mask is not None and g.rank(mask) > rank):
        return False
    qs, ks, vs = g.shape(q), g.shape(k), g.shape(v)
    lead = rank - 3 if groups > 1 else rank - 2
    return qs[:lead] == ks[:lead] == vs[:lead]


def _onnx_causal(g: Any, q: str, k: str) -> str:
    """The (L, S) bool mask j <= i: a constant for static lengths, else built from the shapes in the graph."""
    n_q, n_k = g.shape(q)[-2], g.shape(k)[-2]
    if isinstance(n_q, int) and isinstance(n_k, int):
        return g.const(np.tril(np.ones((n_q, n_k), bool)))
    zero, one = g.const(0, "int64"), g.const(1, "int64")

    def positions(x: str) -> str:
        n = g.op("Squeeze", g.op("Shape", x, start=-2, end=-1), g.const([0], "int64"))
        return g.op("Range", zero, n, one)

    return g.op("LessOrEqual", positions(k), g.op("Unsqueeze", positions(q), g.const([1], "int64")))


def _onnx_repeat_heads(g: Any, x: str, groups: int) -> str:
    """(..., Hk, S, E) -> (..., Hk * groups, S, E), each head repeated `groups` times in a row (GQA)."""
    rank = g.rank(x)
    reps = [1] * (rank + 1)
    reps[rank - 2] = groups
    y = g.op("Tile", g.op("Unsqueeze", x, g.const([rank - 2], "int64")), g.const(reps, "int64"))
    shape = g.op("Concat", g.op("Shape", x, end=rank - 3), g.const([-1], "int64"), g.op("Shape", x, start=-2),
                 axis=0)
    return g.op("Reshape", y, shape)


# ---- the composite (create_graph) --------------------------------------------------------------------------

def _composite(op: ScaledDotProductAttention, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *,
               keep: Any, hidden: Any) -> tuple[Tensor, ...]:
    """The op's forward as Tensor ops: `keep` is the saved dropout mask and `hidden` the rows that saw no key
    (both from the forward, in its key-major layout)."""
    if op.groups > 1:
        q = q.unflatten(-3, (q.shape[-3] // op.groups, op.groups))
        k, v = k.unsqueeze(-3), v.unsqueeze(-3)
        if mask is not None and mask.ndim >= 3:
            h = mask.shape[-3]
            mask = mask.unsqueeze(-3) if h == 1 else mask.unflatten(-3, (h // op.groups, op.groups))
    s = (q @ k.mT) * op.scale
    if mask is not None:
        s = where(mask, s, -math.inf) if mask.dtype == dtypes.bool else s + mask
    if op.is_causal:
        s = s + Tensor(_causal_bias(xp_of(s.data), s.shape[-2], s.shape[-1], s.dtype))
    if hidden.any():  # softmax of a row of -inf is NaN, and so would its gradient be: give those rows zeros
        rows = Tensor(hidden[..., None])
        p = where(rows, 0.0, softmax(where(rows, 0.0, s), -1))
    else:
        p = softmax(s, -1)
    if keep is not None:
        p = p * Tensor(xp_of(keep).moveaxis(keep, 0, -1))
    out = p @ v
    if op.groups > 1:
        out, p = out.flatten(-4, -3), p.flatten(-4, -3)
    return (out, p) if op.need_weights else (out,)


# ---- the functional forms ----------------------------------------------------------------------------------

_C_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
            "int64": "long int", "int32": "int"}


def _c_name(dt: Any) -> str:
    """The C type names PyTorch's SDPA errors use."""
    return _C_NAMES.get(dtypes.name(dt), dtypes.name(dt))


def _check(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None, enable_gqa: bool) -> int:
    """PyTorch's checks, with its wording; returns the GQA group size."""
    q, k, v = query.data, key.data, value.data
    if not (q.dtype == k.dtype == v.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{_c_name(q.dtype)} key.dtype: {_c_name(k.dtype)} and value.dtype: "
                           f"{_c_name(v.dtype)} instead.")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{q.ndim} key.dim: {k.ndim} and value.dim: {v.ndim} instead.")
    if not dtypes.is_floating_point(q.dtype):
        raise RuntimeError(f"scaled_dot_product_attention: expected floating point inputs, got {_c_name(q.dtype)}")
    if attn_mask is not None and attn_mask.dtype != dtypes.bool and attn_mask.dtype != q.dtype:
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                           f"attn_mask.dtype: {_c_name(attn_mask.dtype)} and  query.dtype: {_c_name(q.dtype)} instead.")
    for b, want, got in ((k, q.shape[-1], k.shape[-1]), (v, k.shape[-2], v.shape[-2])):  # the two products
        if got != want:
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"{[math.prod(b.shape[:-2]), want]} but got: {[math.prod(b.shape[:-2]), got]}.")
    if not enable_gqa or q.ndim < 3:
        return 1
    hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
    if hq % hk or hk != hv:
        raise RuntimeError("Number of heads in key and value must divide the number of heads in query")
    return hq // hk


def attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
              need_weights: bool = False) -> Any:
    """scaled_dot_product_attention, plus `need_weights`: also return the (dropped) attention weights
    (..., L, S) from the same op, as MultiheadAttention needs."""
    groups = _check(query, key, value, attn_mask, enable_gqa)
    _check_p(dropout_p)
    s = float(scale) if scale is not None else 1 / math.sqrt(query.data.shape[-1])
    op = ScaledDotProductAttention(s, bool(is_causal), float(dropout_p), groups, bool(need_weights))
    return op(query, key, value) if attn_mask is None else op(query, key, value, attn_mask)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query key^T * scale + mask) value, over (..., L, E) queries and (..., S, E) keys.

    `attn_mask`: bool (True = take part in attention) or float (added to the scores), broadcast over the batch
    dims. `is_causal`: query i sees keys j <= i. `scale` defaults to 1/sqrt(E). `dropout_p` drops attention
    weights whenever it is > 0 (as PyTorch's functional form does: pass 0 in eval). `enable_gqa`: key and value
    may have fewer heads (dim -3) than query, each serving a group of query heads."""
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


# ---- multi-head attention (the composite behind nn.MultiheadAttention) -------------------------------------

def canonical_mask(mask: Tensor | None, name: str, other: Tensor | None, other_name: str,
                    dtype: Any) -> Tensor | None:
    """A bool mask (True = masked out, nn.MultiheadAttention's convention) as a float one: -inf where True."""
    if mask is None:
        return None
    if mask.dtype != dtypes.bool and not dtypes.is_floating_point(mask.dtype):
        raise AssertionError(f"only bool and floating types of {name} are supported")
    if other is not None and other.dtype != mask.dtype:
        warnings.warn(f"Support for mismatched {name} and {other_name} is deprecated. Use same type for both "
                      "instead.", stacklevel=4)
    if mask.dtype != dtypes.bool:
        return mask
    out = where(mask, -math.inf, 0.0)
    return out if out.dtype == dtype else out.type(dtype)


def _check_shapes(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None,
                  attn_mask: Tensor | None, num_heads: int) -> bool:
    """PyTorch's _mha_shape_check: whether the inputs are batched (3-D) or not (2-D)."""
    nd = query.ndim
    if nd not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {nd}-D query tensor")
    kind = "batched (3-D)" if nd == 3 else "unbatched (2-D)"
    if key.ndim != nd or value.ndim != nd:
        raise AssertionError(f"For {kind} `query`, expected `key` and `value` to be {nd}-D but found {key.ndim}-D "
                             f"and {value.ndim}-D tensors respectively")
    if key_padding_mask is not None and key_padding_mask.ndim != nd - 1:
        raise AssertionError(f"For {kind} `query`, expected `key_padding_mask` to be `None` or {nd - 1}-D but found "
                             f"{key_padding_mask.ndim}-D tensor instead")
    if attn_mask is not None:
        if attn_mask.ndim not in (2, 3):
            raise AssertionError(f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D or 3-D but found "
                                 f"{attn_mask.ndim}-D tensor instead")
        if nd == 2 and attn_mask.ndim == 3:
            want = (num_heads, query.shape[0], key.shape[0])
            if tuple(attn_mask.shape) != want:
                raise AssertionError(f"Expected `attn_mask` shape to be {want} but got {tuple(attn_mask.shape)}")
    return nd == 3


def _in_projection(query: Tensor, key: Tensor, value: Tensor, w: Tensor | None, b: Tensor | None,
                   separate: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v projections: one GEMM for self-attention, two when key is value, three otherwise."""
    if w is None:
        bs = b.chunk(3) if b is not None else (None,) * 3
        return tuple(linear(x, wx, bx) for x, wx, bx in zip((query, key, value), separate, bs))
    e = w.shape[1]
    if key is value:
        if query is key:
            return linear(query, w, b).chunk(3, -1)
        w_q, w_kv = w.split([e, 2 * e])
        b_q, b_kv = b.split([e, 2 * e]) if b is not None else (None, None)
        return (linear(query, w_q, b_q), *linear(key, w_kv, b_kv).chunk(2, -1))
    bs = b.chunk(3) if b is not None else (None,) * 3
    return tuple(linear(x, wx, bx) for x, wx, bx in zip((query, key, value), w.chunk(3), bs))


def _append_key(k: Tensor, v: Tensor, extra_k: Tensor, extra_v: Tensor, seq_axis: int,
                masks: list[Tensor | None]) -> tuple[Tensor, Tensor, list[Tensor | None]]:
    """One more key/value position (add_bias_kv, add_zero_attn) and a visible column for it in the masks."""
    return (cat([k, extra_k], seq_axis), cat([v, extra_v], seq_axis),
            [None if m is None else pad(m, (0, 1)) for m in masks])


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
                         in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k: Tensor | None,
                         bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
                         out_proj_bias: Tensor | None, training: bool = True, key_padding_mask: Tensor | None = None,
                         need_weights: bool = True, attn_mask: Tensor | None = None,
                         use_separate_proj_weight: bool = False, q_proj_weight: Tensor | None = None,
                         k_proj_weight: Tensor | None = None, v_proj_weight: Tensor | None = None,
                         static_k: Tensor | None = None, static_v: Tensor | None = None,
                         average_attn_weights: bool = True, is_causal: bool = False,
                         batch_first: bool = False) -> tuple[Tensor, Tensor | None]:
    """torch.nn.functional.multi_head_attention_forward, plus `batch_first` ((N, L, E) inputs, taken as they are
    rather than transposed). Bool masks use its convention: True = masked out.

    The heads are views of the projections, the attention is one op (the weights, when needed, come from that
    same op), and the merged heads are a view of its output (laid out like the query)."""
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:  # batch_first is ignored for unbatched inputs, as in PyTorch
        query, key, value = _unsqueeze_same(query, key, value)
        batch_first = False
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    sa, ba = (1, 0) if batch_first else (0, 1)
    n, n_q, e = query.shape[ba], query.shape[sa], query.shape[2]
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", attn_mask, "attn_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint replaces the mask (PyTorch then passes is_causal to SDPA)
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype)
        is_causal = False  # the mask itself is applied
    if e != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {e}")
    d = e // num_heads
    if d * num_heads != e:
        raise AssertionError(f"embed_dim {e} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                                 f"{tuple(value.shape[:2])}")
        q, k, v = _in_projection(query, key, value, None, in_proj_bias, (q_proj_weight, k_proj_weight, v_proj_weight))
    else:
        if tuple(key.shape) != tuple(value.shape):
            raise AssertionError(f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")
        q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias, ())
    n_k = key.shape[sa]
    if attn_mask is not None:
        want = (n_q, n_k) if attn_mask.ndim == 2 else (n * num_heads, n_q, n_k)
        if tuple(attn_mask.shape) != want:
            raise RuntimeError(f"The shape of the {attn_mask.ndim}D attn_mask is {tuple(attn_mask.shape)}, but "
                               f"should be {want}.")
    masks = [attn_mask, key_padding_mask]
    one = [1, 1, e]
    one[ba] = n
    if bias_k is not None and bias_v is not None:
        k, v, masks = _append_key(k, v, bias_k.expand(*one), bias_v.expand(*one), sa, masks)
    elif bias_k is not None or bias_v is not None:
        raise AssertionError(f"{'bias_k' if bias_k is not None else 'bias_v'} is set but "
                             f"{'bias_v' if bias_k is not None else 'bias_k'} is None")
    q, k, v = (_split_heads(x, num_heads, batch_first) for x in (q, k, v))
    k = _static(static_k, k, n, num_heads, d, "k")
    v = _static(static_v, v, n, num_heads, d, "v")
    if add_zero_attn:
        z = zeros(n, num_heads, 1, d, dtype=k.dtype, device=k.device)
        k, v, masks = _append_key(k, v, z, z, 2, masks)
    mask = _merge_masks(*masks, n, num_heads, k.shape[2])
    o = attention(q, k, v, mask, dropout_p if training else 0.0, is_causal, need_weights=need_weights)
    o, w = o if need_weights else (o, None)
    out = linear(_merge_heads(o, batch_first), out_proj_weight, out_proj_bias)
    if w is not None and average_attn_weights:
        w = w.mean(1)
    if not batched:
        out = out.squeeze(1)
        w = None if w is None else w.squeeze(0)
    return out, w


def _unsqueeze_same(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unbatched inputs get a batch dim at 1; identical inputs stay identical (the packed projection needs it)."""
    q = query.unsqueeze(1)
    k = q if key is query else key.unsqueeze(1)
    return q, k, (k if value is key else value.unsqueeze(1))


def _split_heads(x: Tensor, heads: int, batch_first: bool) -> Tensor:
    """(N, L, E) or (L, N, E) -> (N, H, L, D), a view."""
    x = x.unflatten(-1, (heads, -1))
    return x.transpose(1, 2) if batch_first else x.permute(1, 2, 0, 3)


def _merge_heads(o: Tensor, batch_first: bool) -> Tensor:
    """(N, H, L, D) -> (N, L, E) or (L, N, E): a view, as the attention output is laid out like its query."""
    return (o.transpose(1, 2) if batch_first else o.permute(2, 0, 1, 3)).flatten(2)


def _static(given: Tensor | None, computed: Tensor, n: int, heads: int, d: int, name: str) -> Tensor:
    """static_k / static_v: (N * H, S, D) keys or values used instead of the projected ones."""
    if given is None:
        return computed
    if given.shape[0] != n * heads:
        raise AssertionError(f"expecting static_{name}.size(0) of {n * heads}, but got {given.shape[0]}")
    if given.shape[2] != d:
        raise AssertionError(f"expecting static_{name}.size(2) of {d}, but got {given.shape[2]}")
    return given.unflatten(0, (n, heads))


def _merge_masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: int, heads: int,
                 n_k: int) -> Tensor | None:
    """One additive mask broadcastable to (N, H, L, S): (L, S) or (N * H, L, S) plus (N, S) key padding."""
    if attn_mask is not None and attn_mask.ndim == 3:
        attn_mask = attn_mask.unflatten(0, (n, heads))
    if key_padding_mask is None:
        return attn_mask
    if tuple(key_padding_mask.shape) != (n, n_k):
        raise AssertionError(f"expecting key_padding_mask shape of {(n, n_k)}, but got "
                             f"{tuple(key_padding_mask.shape)}")
    kpm = key_padding_mask.reshape(n, 1, 1, n_k)
    return kpm if attn_mask is None else attn_mask + kpm


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
                                 in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k: Tensor | None,
                                 bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float,
                                 out_proj_weight: Tensor, out_proj_bias: Tensor | None, training: bool = True,
                                 key_padding_mask: Tensor | None = None, need_weights: bool = True,
                                 attn_mask: Tensor | None = None, use_separate_proj_weight: bool = False,
                                 q_proj_weight: Tensor | None = None, k_proj_weight: Tensor | None = None,
                                 v_proj_weight: Tensor | None = None, static_k: Tensor | None = None,
                                 static_v: Tensor | None = None, average_attn_weights: bool = True,
                                 is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
    """PyTorch's functional multi-head attention on (L, N, E) (or unbatched (L, E)) inputs."""
    return multi_head_attention(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training,
                                key_padding_mask, need_weights, attn_mask, use_separate_proj_weight, q_proj_weight,
                                k_proj_weight, v_proj_weight, static_k, static_v, average_attn_weights, is_causal)
