"""Pooling and resampling: max_pool1d/2d, avg_pool1d/2d, adaptive_avg_pool1d/2d, interpolate.

Pools run one strided numpy call per kernel offset over all windows at once (no Python loop over the batch or
positions): the max is a running `maximum` over the kh·kw offset views, and while a gradient may be needed the
offset of each window's first maximum is tracked beside it (what PyTorch's indices encode), so backward routes
each gradient to it with kh·kw masked strided writes. Average pooling sums the offset views and spreads the
gradient back the same way. Every backward is an op whose own backward is the forward's gather, so higher-order
gradients work. Resampling is separable: per spatial axis a gather (nearest) or a two-tap blend (linear), and
its gradient a sorted segment sum (np.add.reduceat), never np.add.at on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .conv import as_2d, cropped, lowp, ntuple, offsets, padded, two
from .index import Gather

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "adaptive_avg_pool1d"]  # the ones torch has at top level


# ---- shared geometry ----------------------------------------------------------------------------------------

def _pool_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: with ceil_mode the last window must still start inside the input or the
    left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


class _Pool(Op):
    """Kernel, stride, padding (both sides), dilation and ceil_mode, per spatial dim (1 or 2 of them)."""

    def __init__(self, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, ceil_mode: bool):
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.ceil_mode = ceil_mode

    def _geom(self) -> tuple:
        return two(self.kernel, 1), two(self.stride, 1), two(self.dilation, 1)

    def _layout(self, shape: tuple) -> tuple:
        """(pads ((top, bottom), (left, right)) that hold every window, the output's (Ho, Wo)) for a 2-D input
        shape; the end pad grows where ceil_mode lets the last window overhang."""
        kernel, stride, dilation = self._geom()
        pads, out = [], []
        for n, k, s, p, d in zip(shape[2:], kernel, stride, two(self.padding, 0), dilation):
            m = _pool_size(n, k, s, p, d, self.ceil_mode)
            out.append(m)
            pads.append((p, max((m - 1) * s + d * (k - 1) + 1 - n - p, 0)))
        return tuple(pads), tuple(out)

    def _views(self, xpd: Any, out_hw: tuple) -> list:
        return [xpd[w] for _, w in offsets(*self._geom(), out_hw)]

    def _disjoint(self) -> bool:
        """Whether no input entry is in two windows (then a backward write per offset never collides)."""
        return all(s >= d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride, self.dilation))

    def _onnx_attrs(self) -> dict:
        return {"kernel_shape": list(self.kernel), "strides": list(self.stride), "pads": list(self.padding) * 2,
                "ceil_mode": int(self.ceil_mode)}


def _of_rank(out: Any, x: Any) -> Any:
    """A 2-D result back in `x`'s rank (1-D pools run with a unit height)."""
    return out.reshape(*out.shape[:2], out.shape[3]) if x.ndim == 3 else out


def _shape_2d(shape: tuple) -> tuple:
    return shape if len(shape) == 4 else (*shape[:2], 1, shape[2])


def _padded_shape(shape: tuple, pads: tuple) -> tuple:
    return (*shape[:2], *(n + lo + hi for n, (lo, hi) in zip(shape[2:], pads)))


def _lowest(dt: np.dtype) -> Any:
    if dtypes.category(dt) >= 2:
        return -np.inf
    return False if dt == dtypes.bool else np.iinfo(dt).min


# ---- max pooling --------------------------------------------------------------------------------------------

class MaxPool(_Pool):
    """max_pool1d/2d; padding is -inf. With return_indices a second output holds each max's flat index in its
    (H, W) plane, as PyTorch's; ONNX MaxPool (whose indices count over the whole tensor: the lowering rebases).
    Backward reads only the argmax offsets kept by the forward, not the input."""

    def __init__(self, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, ceil_mode: bool,
                 return_indices: bool):
        super().__init__(kernel, stride, padding, dilation, ceil_mode)
        self.return_indices = return_indices

    def forward(self, ctx, x):
        xp = xp_of(x)
        x4 = as_2d(x)
        pads, out_hw = self._layout(x4.shape)
        views = self._views(padded(x4, pads, _lowest(x.dtype)), out_hw)
        out = views[0].copy()
        argk = None
        if self.return_indices or state.grad_enabled:
            kind = np.dtype(np.uint8 if len(views) < 256 else np.int32).type
            argk = xp.zeros(out.shape, kind)
        for k, v in enumerate(views[1:], 1):
            if argk is not None:
                # offsets come in increasing order, so "k where v beats the max so far" is a running maximum of
                # (v > max)·k: vectorized, unlike masked writes; strictly greater keeps the first of tied
                # maxima, as PyTorch's indices do
                xp.maximum(argk, xp.greater(v, out) * kind(k), out=argk)
            xp.maximum(out, v, out=out)
        ctx.argk = argk
        if self.return_indices:
            return _of_rank(out, x), _of_rank(self._plane_index(argk, x4.shape, pads), x)
        return _of_rank(out, x)

    def _plane_index(self, argk: Any, shape: tuple, pads: tuple) -> Any:
        """Each window's argmax as a flat index into its (H, W) plane, from the kernel offset."""
        xp = xp_of(argk)
        (_, kw), (sh, sw), (dh, dw) = self._geom()
        oh, ow = argk.shape[2:]
        a = argk.astype(np.int64)
        rows = (xp.arange(oh) * sh - pads[0][0]).reshape(-1, 1) + a // kw * dh
        cols = xp.arange(ow) * sw - pads[1][0] + a % kw * dw
        return rows * shape[3] + cols

    def backward(self, ctx, g, *_):  # the indices output has no gradient
        return _MaxPoolAdjoint(self, ctx.inputs[0].data.shape)(g, Tensor(ctx.argk))

    def to_onnx(self, g, x):
        attrs = dict(self._onnx_attrs(), dilations=list(self.dilation))
        if not self.return_indices:
            return g.op("MaxPool", x, **attrs)
        out, flat = g.op("MaxPool", x, outputs=2, **attrs)
        # ONNX counts indices over all of (N, C, H, W); each plane's first index comes from the indices of a
        # 1x1 MaxPool (so dynamic sizes work), and is subtracted.
        nd = len(self.kernel)
        _, every = g.op("MaxPool", x, outputs=2, kernel_shape=[1] * nd)
        first = g.op("Slice", every, g.const([0] * nd, "int64"), g.const([1] * nd, "int64"),
                     g.const(list(range(2, 2 + nd)), "int64"))
        return out, g.op("Sub", flat, first)


class _MaxPoolAdjoint(Op):
    """Max pooling's backward: each output gradient goes to its window's argmax, one masked strided write per
    kernel offset. Linear in the gradient; its own backward gathers at the argmaxes."""

    def __init__(self, pool: MaxPool, shape: tuple):
        self.pool, self.shape = pool, shape

    def forward(self, ctx, g, argk):
        xp = xp_of(g)
        g4, a4 = as_2d(g), as_2d(argk)
        shape = _shape_2d(self.shape)
        pads, out_hw = self.pool._layout(shape)
        buf = xp.zeros(_padded_shape(shape, pads), g.dtype)
        disjoint = self.pool._disjoint()
        # g·mask is exact for finite g (inf·0 would be NaN) and on the CPU about 10x faster than np.where
        mul = xp is np and bool(np.isfinite(g4).all())
        for k, w in offsets(*self.pool._geom(), out_hw):
            hit = a4 == k
            part = g4 * hit if mul else xp.where(hit, g4, 0)
            if disjoint:
                buf[w] = part
            else:
                buf[w] += part
        return cropped(buf, pads, shape).reshape(self.shape)

    def backward(self, ctx, gg):
        g, argk = ctx.inputs
        shape = _shape_2d(self.shape)
        pads, _ = self.pool._layout(shape)
        a4 = as_2d(argk.data)
        idx = Tensor(self.pool._plane_index(a4, shape, pads).reshape(*a4.shape[:2], -1))
        flat = gg.reshape(*self.shape[:2], -1)
        return Gather(2)(flat, idx).reshape(g.data.shape), None


# ---- average pooling ----------------------------------------------------------------------------------------

class AvgPool(_Pool):
    """avg_pool1d/2d: the window sums over kh·kw offset views, divided per window (PyTorch's divisor: the
    window clipped to the padded input with count_include_pad, else to the input; or divisor_override).
    ONNX AveragePool."""

    def __init__(self, kernel: tuple, stride: tuple, padding: tuple, ceil_mode: bool, count_include_pad: bool,
                 divisor_override: int | None):
        super().__init__(kernel, stride, padding, (1,) * len(kernel), ceil_mode)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _divisor(self, shape: tuple, out_hw: tuple, like: Any) -> Any:
        """A scalar, or an (Ho, Wo) array where windows at the borders count fewer entries."""
        if self.divisor_override:
            return self.divisor_override
        kernel, stride, _ = self._geom()
        sizes = []
        for n, k, s, p, m in zip(shape[2:], kernel, stride, two(self.padding, 0), out_hw):
            start = np.arange(m) * s - p
            end = np.minimum(start + k, n + p)
            sizes.append(end - start if self.count_include_pad else np.minimum(end, n) - np.maximum(start, 0))
        div = np.multiply.outer(*sizes)
        if (div == div.flat[0]).all():
            return int(div.flat[0])
        return xp_of(like).asarray(div, like.dtype)

    def forward(self, ctx, x):
        if lowp(x):
            return self.forward(ctx, x.astype(np.float32)).astype(x.dtype)
        x4 = as_2d(x)
        pads, out_hw = self._layout(x4.shape)
        views = self._views(padded(x4, pads), out_hw)
        out = views[0].copy()
        for v in views[1:]:
            out += v
        out /= self._divisor(x4.shape, out_hw, out)
        return _of_rank(out, x)

    def backward(self, ctx, g):
        return _AvgPoolAdjoint(self, ctx.inputs[0].data.shape)(g)

    def to_onnx(self, g, x):
        attrs = self._onnx_attrs()
        if not self.divisor_override:
            return g.op("AveragePool", x, count_include_pad=int(self.count_include_pad), **attrs)
        # ONNX has no divisor_override: a full window's average times k·k/divisor, exact while no window overhangs
        shape = g.shape(x)
        overhang = not all(isinstance(n, int) for n in shape[2:]) or any(
            hi > p for (_, hi), p in zip(self._layout(_shape_2d(shape))[0][-len(self.kernel):], self.padding))
        if overhang:
            raise NotImplementedError(f"avg_pool with divisor_override={self.divisor_override} and ceil_mode "
                                      f"windows that overhang the input (input {list(shape)}) has no ONNX form")
        out = g.op("AveragePool", x, count_include_pad=1, **attrs)
        return g.op("Mul", out, g.const(math.prod(self.kernel) / self.divisor_override, g.dtype(x)))


class _AvgPoolAdjoint(Op):
    """Average pooling's backward: each output gradient over its divisor, added back onto its window with one
    strided add per kernel offset. Linear, and its own backward is the pooling itself."""

    def __init__(self, pool: AvgPool, shape: tuple):
        self.pool, self.shape = pool, shape

    def forward(self, ctx, g):
        if lowp(g):
            return self.forward(ctx, g.astype(np.float32)).astype(g.dtype)
        xp = xp_of(g)
        shape = _shape_2d(self.shape)
        pads, out_hw = self.pool._layout(shape)
        share = as_2d(g) / self.pool._divisor(shape, out_hw, g)
        buf = xp.zeros(_padded_shape(shape, pads), g.dtype)
        for _, w in offsets(*self.pool._geom(), out_hw):
            buf[w] += share
        return cropped(buf, pads, shape).reshape(self.shape)

    def backward(self, ctx, gg):
        return self.pool(gg)


# ---- adaptive average pooling -------------------------------------------------------------------------------

def _bins(n: int, m: int) -> np.ndarray:
    """(m, n): row i averages PyTorch's adaptive bin [floor(i·n/m), ceil((i+1)·n/m))."""
    i = np.arange(m)
    start, end = i * n // m, -(-(i + 1) * n // m)
    j = np.arange(n)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside / (end - start)[:, None]


def _along(x: Any, axis: int, mat: Any) -> Any:
    """`mat` (m, n) applied along `axis` of `x` as one GEMM over everything else."""
    xp = xp_of(x)
    moved = xp.moveaxis(x, axis, -1)
    flat = xp.ascontiguousarray(moved).reshape(-1, moved.shape[-1])
    out = (flat @ xp.asarray(mat, x.dtype).T).reshape(*moved.shape[:-1], mat.shape[0])
    return xp.ascontiguousarray(xp.moveaxis(out, -1, axis))


class AdaptiveAvgPool(Op):
    """adaptive_avg_pool1d/2d: output (1, 1) is a mean; otherwise each axis is a GEMM with its (out, in) bin
    averaging matrix (exact for any sizes, bins overlapping or not). ONNX GlobalAveragePool, or AveragePool where
    every input size is a multiple of its output size."""

    def __init__(self, output_size: tuple):
        self.output_size = output_size

    def _global(self) -> bool:
        return all(o == 1 for o in self.output_size)

    def forward(self, ctx, x):
        if lowp(x):
            return self.forward(ctx, x.astype(np.float32)).astype(x.dtype)
        axes = tuple(range(2, x.ndim))
        if self._global():
            return x.mean(axis=axes, keepdims=True)
        for a, m in zip(axes, self.output_size):
            x = _along(x, a, _bins(x.shape[a], m))
        return x

    def backward(self, ctx, g):
        return _AdaptiveAdjoint(self, ctx.inputs[0].data.shape)(g)

    def to_onnx(self, g, x):
        if self._global():
            return g.op("GlobalAveragePool", x)
        sizes = g.shape(x)[2:]
        if all(isinstance(n, int) and n % m == 0 for n, m in zip(sizes, self.output_size)):
            k = [n // m for n, m in zip(sizes, self.output_size)]
            return g.op("AveragePool", x, kernel_shape=k, strides=k)
        raise NotImplementedError(f"adaptive average pooling from input size {list(sizes)} to output size "
                                  f"{list(self.output_size)}: ONNX has no adaptive pooling, and AveragePool "
                                  "expresses it only where each input size is a multiple of the output size")


class _AdaptiveAdjoint(Op):
    """Adaptive average pooling's backward: the transposed bin matrices (a broadcast for the global mean). Its
    own backward is the pooling."""

    def __init__(self, pool: AdaptiveAvgPool, shape: tuple):
        self.pool, self.shape = pool, shape

    def forward(self, ctx, g):
        if lowp(g):
            return self.forward(ctx, g.astype(np.float32)).astype(g.dtype)
        xp = xp_of(g)
        if self.pool._global():
            out = xp.empty(self.shape, g.dtype)
            out[...] = g / math.prod(self.shape[2:])
            return out
        for a, m in zip(range(2, g.ndim), self.pool.output_size):
            g = _along(g, a, _bins(self.shape[a], m).T)
        return g

    def backward(self, ctx, gg):
        return self.pool(gg)


# ---- interpolation ------------------------------------------------------------------------------------------

def _source(n: int, m: int, scale: float | None, mode: str, align_corners: bool, dt: Any) -> tuple:
    """For each of `m` output positions along an axis of `n`: (index, next index, weight of the next), computed
    as PyTorch does in its math type `dt` (float32 for float32 and below), so the floors land alike. Like
    PyTorch, an axis whose size does not change is copied whatever the scale, and nearest doubling halves."""
    if m == n:
        return np.arange(n), None, None
    dst = np.arange(m, dtype=dt)
    if mode == "nearest":
        if m == 2 * n:
            return np.arange(m) // 2, None, None
        step = dt.type(1.0 / scale) if scale else dt.type(n) / dt.type(m)
        i0 = np.minimum(np.floor(dst * step).astype(np.int64), n - 1)
        return i0, None, None
    if align_corners:
        step = dt.type(n - 1) / dt.type(m - 1) if m > 1 else dt.type(0)
        src = step * dst
    else:
        step = dt.type(1.0 / scale) if scale else dt.type(n) / dt.type(m)
        src = np.maximum(step * (dst + dt.type(0.5)) - dt.type(0.5), dt.type(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    lam = np.clip(src - i0, 0, 1).astype(dt)
    return i0, np.minimum(i0 + 1, n - 1), lam


def _weights(lam: Any, axis: int, ndim: int, xp: Any, dtype: Any) -> tuple:
    shape = [1] * ndim
    shape[axis] = -1
    w1 = xp.asarray(lam.reshape(shape), dtype)
    return 1 - w1, w1


def _segment_sum(v: Any, idx: np.ndarray, n: int, axis: int) -> Any:
    """out[..., j, ...] = sum of v[..., i, ...] over i with idx[i] == j (idx sorted): np.add.reduceat on the
    CPU, atomics (add.at) on CUDA."""
    xp = xp_of(v)
    shape = list(v.shape)
    shape[axis] = n
    key = (slice(None),) * axis
    if xp is not np:
        out = xp.zeros(shape, v.dtype)
        xp.add.at(out, (*key, xp.asarray(idx)), v)
        return out
    starts = np.flatnonzero(np.diff(idx, prepend=-1))
    sums = np.add.reduceat(v, starts, axis=axis)
    if starts.size == n:
        return sums
    out = np.zeros(shape, v.dtype)
    out[(*key, idx[starts])] = sums
    return out


class Interpolate(Op):
    """interpolate/Upsample, modes nearest (PyTorch's floor rule), linear and bilinear (align_corners or
    half-pixel), from `size` or `scale` (the user's scale factors, which PyTorch also uses for the coordinates).
    Separable: one gather or two-tap blend per spatial axis. ONNX Resize over the spatial axes."""

    def __init__(self, mode: str, size: tuple | None, scale: tuple | None, align_corners: bool):
        self.mode, self.size, self.scale, self.align_corners = mode, size, scale, align_corners

    def _plan(self, shape: tuple, dtype: Any) -> list:
        dt = np.dtype(np.float64) if dtype == dtypes.float64 else np.dtype(np.float32)
        plan = []
        for i, n in enumerate(shape[2:]):
            scale = self.scale[i] if self.scale is not None else None
            m = self.size[i] if self.size is not None else math.floor(n * scale)
            plan.append((i + 2, n, *_source(n, m, scale, self.mode, self.align_corners, dt)))
        return plan

    def forward(self, ctx, x):
        if lowp(x):
            return self.forward(ctx, x.astype(np.float32)).astype(x.dtype)
        xp = xp_of(x)
        for axis, _, i0, i1, lam in self._plan(x.shape, x.dtype):
            a = xp.take(x, xp.asarray(i0), axis=axis)
            if lam is not None:
                w0, w1 = _weights(lam, axis, x.ndim, xp, x.dtype)
                a *= w0
                a += xp.take(x, xp.asarray(i1), axis=axis) * w1
            x = a
        return x

    def backward(self, ctx, g):
        return _InterpolateAdjoint(self, ctx.inputs[0].data.shape)(g)

    def to_onnx(self, g, x):
        nd = g.rank(x) - 2
        if self.mode == "nearest":
            attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        else:
            attrs = {"mode": "linear",
                     "coordinate_transformation_mode": "align_corners" if self.align_corners else "half_pixel"}
        axes = list(range(2, 2 + nd))
        if self.scale is not None:
            return g.op("Resize", x, None, g.const(list(self.scale), "float32"), axes=axes, **attrs)
        return g.op("Resize", x, None, None, g.const(list(self.size), "int64"), axes=axes, **attrs)


class _InterpolateAdjoint(Op):
    """Interpolation's backward: per axis (in reverse), each output gradient summed back onto the input
    entries it was read from, weighted. Linear; its own backward is the interpolation."""

    def __init__(self, interp: Interpolate, shape: tuple):
        self.interp, self.shape = interp, shape

    def forward(self, ctx, g):
        if lowp(g):
            return self.forward(ctx, g.astype(np.float32)).astype(g.dtype)
        xp = xp_of(g)
        for axis, n, i0, i1, lam in reversed(self.interp._plan(self.shape, g.dtype)):
            if lam is None:
                g = _segment_sum(g, i0, n, axis)
                continue
            w0, w1 = _weights(lam, axis, g.ndim, xp, g.dtype)
            g = _segment_sum(g * w0, i0, n, axis) + _segment_sum(g * w1, i1, n, axis)
        return g

    def backward(self, ctx, gg):
        return self.interp(gg)


# ---- the functional forms -----------------------------------------------------------------------------------

def _unbatched(op: Op, nd: int, input: Tensor) -> Any:
    """`op` on a batched input; an unbatched one gets a unit batch dim for the call, as in PyTorch."""
    if input.data.ndim == nd + 2:
        return op(input)
    out = op(input.unsqueeze(0))
    return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)


def _check_input(fname: str, nd: int, input: Tensor) -> None:
    shape = input.data.shape
    if len(shape) not in (nd + 1, nd + 2) or 0 in shape[-nd - 1:]:
        raise RuntimeError(f"{fname}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with non-zero sizes for "
                           f"input, but got input of size: {list(shape)}")


def _window_args(nd: int, kernel_size: Any, stride: Any, padding: Any) -> tuple:
    kernel = ntuple(kernel_size, nd, "kernel_size")
    empty = stride is None or (isinstance(stride, (tuple, list)) and not stride)
    stride = kernel if empty else ntuple(stride, nd, "stride")
    padding = ntuple(padding, nd, "padding")
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_size={list(kernel)}")
    if min(stride) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got stride={list(stride)}")
    return kernel, stride, padding


def _check_output(op: _Pool, input: Tensor) -> None:
    shape = _shape_2d(tuple(input.data.shape) if input.data.ndim == len(op.kernel) + 2 else
                      (1, *input.data.shape))
    _, out = op._layout(shape)
    if min(out) <= 0:
        ins = "x".join(map(str, input.data.shape[-len(op.kernel) - 1:]))
        outs = "x".join(map(str, (input.data.shape[-len(op.kernel) - 1], *out[-len(op.kernel):])))
        raise RuntimeError(f"Given input size: ({ins}). Calculated output size: ({outs}). Output size is too small")


def _max_pool(nd: int, fname: str, input: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool) -> Any:
    _check_input(fname, nd, input)
    kernel, stride, padding = _window_args(nd, kernel_size, stride, padding)
    dilation = ntuple(dilation, nd, "dilation")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={list(dilation)}")
    for p, k, d in zip(padding, kernel, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    op = MaxPool(kernel, stride, padding, dilation, bool(ceil_mode), bool(return_indices))
    _check_output(op, input)
    return _unbatched(op, nd, input)


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """torch.nn.functional.max_pool1d: input (N, C, L) or (C, L); stride defaults to kernel_size."""
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """torch.nn.functional.max_pool2d: input (N, C, H, W) or (C, H, W); stride defaults to kernel_size;
    return_indices adds each max's flat index in its (H, W) plane."""
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(nd: int, fname: str, input: Tensor, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: int | None) -> Tensor:
    _check_input(fname, nd, input)
    if not dtypes.is_floating_point(input.data.dtype):
        raise RuntimeError(f"\"{fname}\" not implemented for '{dtypes.name(input.data.dtype)}'")
    kernel, stride, padding = _window_args(nd, kernel_size, stride, padding)
    for p, k in zip(padding, kernel):
        if p < 0 or p > k // 2:
            raise RuntimeError(f"pad should be at most half of kernel size, but got pad={p} and kernel_size={k}")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    op = AvgPool(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                 None if divisor_override is None else int(divisor_override))
    _check_output(op, input)
    return _unbatched(op, nd, input)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """torch.nn.functional.avg_pool1d."""
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """torch.nn.functional.avg_pool2d; divisor_override replaces every window's divisor."""
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive(nd: int, fname: str, input: Tensor, output_size: Any) -> Tensor:
    shape = input.data.shape
    if len(shape) not in (nd + 1, nd + 2) or 0 in shape[-nd:]:
        raise RuntimeError(f"{fname}(): Expected {nd + 1}D or {nd + 2}D tensor, but got {list(shape)}")
    sizes = (output_size,) * nd if output_size is None or isinstance(output_size, (int, np.integer)) else \
        tuple(output_size)
    if len(sizes) != nd:
        raise RuntimeError(f"{fname}: output_size must be {nd}")
    sizes = tuple(int(n) if o is None else int(o) for o, n in zip(sizes, shape[-nd:]))
    if min(sizes) < 0:
        raise RuntimeError(f"{fname}: elements of output_size must be greater than or equal to 0 but received "
                           f"{list(sizes)}")
    return _unbatched(AdaptiveAvgPool(sizes), nd, input)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool1d."""
    return _adaptive(1, "adaptive_avg_pool1d", input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool2d: output_size an int or a pair (None keeps that input size)."""
    return _adaptive(2, "adaptive_avg_pool2d", input, output_size)


_MODES = {"nearest": (1, 2), "linear": (1,), "bilinear": (2,)}
_NEEDS = {"linear": "3D", "bilinear": "4D"}


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """torch.nn.functional.interpolate for 3-D and 4-D inputs: modes 'nearest', 'linear' (3-D) and 'bilinear'
    (4-D); exactly one of size and scale_factor."""
    nd = input.data.ndim - 2
    if mode not in _MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (supported: nearest, linear, "
                                  "bilinear)")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if nd not in _MODES[mode]:
        raise NotImplementedError(f"Got {input.data.ndim}D input, but {mode} mode needs {_NEEDS[mode]} input"
                                  if mode in _NEEDS else f"Input Error: Only 3D and 4D input Tensors supported "
                                  f"(got {input.data.ndim}D) for the modes: nearest | linear | bilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None else
                         "either size or scale_factor should be defined")
    spatial = list(input.data.shape[2:])
    scale = None
    if size is not None:
        size = (size,) * nd if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != nd:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {spatial} and output size of {list(size)}. Please provide input "
                             "tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) format.")
        size = tuple(int(s) for s in size)
    else:
        scale = (scale_factor,) * nd if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(scale) != nd:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {spatial} and scale_factor of shape {list(scale)}. Please "
                             "provide input tensor in (N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, "
                             "...,sK) format.")
        scale = tuple(float(s) for s in scale)
        if recompute_scale_factor:
            size, scale = tuple(math.floor(n * s) for n, s in zip(spatial, scale)), None
    out = size if size is not None else tuple(math.floor(n * s) for n, s in zip(spatial, scale))
    if min(out) <= 0:
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({spatial}) and "
                           f"output ({list(out)})")
    return Interpolate(mode, size, scale, bool(align_corners))(input)
