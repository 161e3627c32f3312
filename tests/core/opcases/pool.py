"""MaxPool, AvgPool, AdaptiveAvgPool and Interpolate: kernel/stride/padding/dilation, ceil_mode, return_indices,
count_include_pad, divisor_override, adaptive bins that overlap, nearest and (bi)linear with and without
align_corners, from sizes and from scale factors. The numpy references visit each output position (or pixel
formula) directly."""

from __future__ import annotations

import math

import numpy as np

from . import OpCase, rnd
from .conv import functional

BATCH = {0: {0: "batch"}}


def _per_dim(v, nd):
    return (v,) * nd if isinstance(v, (int, float)) else tuple(v)


def _out_size(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + p else out


def max_pool_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    nd = x.ndim - 2
    k = _per_dim(kernel_size, nd)
    s, p, d = _per_dim(stride or kernel_size, nd), _per_dim(padding, nd), _per_dim(dilation, nd)
    sizes = [_out_size(n, *a, ceil_mode) for n, *a in zip(x.shape[2:], k, s, p, d)]
    vals = np.full((*x.shape[:2], *sizes), -np.inf)
    idx = np.zeros(vals.shape, np.int64)
    for pos in np.ndindex(*sizes):
        for kpos in np.ndindex(*k):  # row-major, strictly greater: the first max wins, as in PyTorch
            ipos = tuple(o * t - q + j * e for o, t, q, j, e in zip(pos, s, p, kpos, d))
            if all(0 <= i < n for i, n in zip(ipos, x.shape[2:])):
                v = x[(..., *ipos)]
                better = v > vals[(..., *pos)]
                vals[(..., *pos)] = np.where(better, v, vals[(..., *pos)])
                idx[(..., *pos)] = np.where(better, np.ravel_multi_index(ipos, x.shape[2:]), idx[(..., *pos)])
    return (vals, idx) if return_indices else vals


def avg_pool_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
    nd = x.ndim - 2
    k, s, p = _per_dim(kernel_size, nd), _per_dim(stride or kernel_size, nd), _per_dim(padding, nd)
    sizes = [_out_size(n, *a, 1, ceil_mode) for n, *a in zip(x.shape[2:], k, s, p)]
    out = np.zeros((*x.shape[:2], *sizes))
    for pos in np.ndindex(*sizes):
        start = [o * t - q for o, t, q in zip(pos, s, p)]
        end = [min(a + m, n + q) for a, m, n, q in zip(start, k, x.shape[2:], p)]
        padded = math.prod(b - a for a, b in zip(start, end))
        lo = [max(a, 0) for a in start]
        hi = [min(b, n) for b, n in zip(end, x.shape[2:])]
        box = x[(..., *(slice(a, b) for a, b in zip(lo, hi)))]
        div = divisor_override or (padded if count_include_pad else math.prod(b - a for a, b in zip(lo, hi)))
        out[(..., *pos)] = box.sum(axis=tuple(range(2, x.ndim))) / div
    return out


def adaptive_ref(x, output_size):
    nd = x.ndim - 2
    sizes = [n if o is None else o for o, n in zip(_per_dim(output_size, nd), x.shape[2:])]
    out = np.zeros((*x.shape[:2], *sizes))
    for pos in np.ndindex(*sizes):
        box = tuple(slice(i * n // m, -(-(i + 1) * n // m)) for i, n, m in zip(pos, x.shape[2:], sizes))
        out[(..., *pos)] = x[(..., *box)].mean(axis=tuple(range(2, x.ndim)))
    return out


def _taps(n, m, scale, mode, align_corners):
    """PyTorch's source taps for each output position along one axis: [(index, weight), ...]."""
    if m == n:
        return [[(i, 1.0)] for i in range(m)]
    step = 1.0 / scale if scale else n / m
    if mode == "nearest":
        return [[(i // 2 if m == 2 * n else min(math.floor(i * step), n - 1), 1.0)] for i in range(m)]
    taps = []
    for i in range(m):
        src = i * ((n - 1) / (m - 1) if m > 1 else 0) if align_corners else max((i + 0.5) * step - 0.5, 0)
        i0 = min(math.floor(src), n - 1)
        lam = src - i0
        taps.append([(i0, 1 - lam), (min(i0 + 1, n - 1), lam)])
    return taps


def interpolate_ref(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    nd = x.ndim - 2
    scales = _per_dim(scale_factor, nd) if scale_factor is not None else (None,) * nd
    sizes = _per_dim(size, nd) if size is not None else [math.floor(n * c) for n, c in zip(x.shape[2:], scales)]
    axes = [_taps(n, m, c, mode, align_corners) for n, m, c in zip(x.shape[2:], sizes, scales)]
    out = np.zeros((*x.shape[:2], *sizes))
    for pos in np.ndindex(*sizes):
        for combo in np.ndindex(*[len(axes[a][p]) for a, p in enumerate(pos)]):
            taps = [axes[a][p][c] for a, (p, c) in enumerate(zip(pos, combo))]
            out[(..., *pos)] += math.prod(w for _, w in taps) * x[(..., *(i for i, _ in taps))]
    return out


def _case(op, fname, ref, inputs, name, **kw):
    extra = {k: kw.pop(k) for k in ("dynamic", "export", "export_skip") if k in kw}
    return OpCase(op, lambda *ts: getattr(functional(ts[0]), fname)(*ts, **kw), inputs,
                  lambda *a: ref(*a, **kw), name=name, **extra)


def max_pool(fname, x, name, *args, **kw):
    return _case("MaxPool", fname, max_pool_ref, [x], name, **dict(zip(("kernel_size", "stride", "padding"),
                                                                        args)), **kw)


def avg_pool(fname, x, name, *args, **kw):
    return _case("AvgPool", fname, avg_pool_ref, [x], name, **dict(zip(("kernel_size", "stride", "padding"),
                                                                        args)), **kw)


def adaptive(fname, x, name, output_size, **kw):
    return _case("AdaptiveAvgPool", fname, adaptive_ref, [x], name, output_size=output_size, **kw)


def interp(x, name, **kw):
    return _case("Interpolate", "interpolate", interpolate_ref, [x], name, **kw)


_NOT_DIVISIBLE = "to_onnx raises by design (ONNX has no adaptive pooling when an input size is not a multiple of " \
                 "the output size); tests/core/test_layers_conv.py checks the error"

CASES = [
    max_pool("max_pool2d", rnd(2, 3, 6, 6), "max_pool2d_2", 2, dynamic=BATCH),
    max_pool("max_pool2d", rnd(1, 2, 7, 6), "max_pool2d_overlapping_pad", 3, 2, 1),
    max_pool("max_pool2d", rnd(1, 2, 6, 7), "max_pool2d_dilation", 2, 1, 1, dilation=2),
    max_pool("max_pool2d", rnd(1, 2, 5, 7), "max_pool2d_ceil_mode", 2, ceil_mode=True),
    max_pool("max_pool2d", rnd(1, 2, 6, 7), "max_pool2d_rect_ceil", (2, 3), (1, 2), (1, 0), ceil_mode=True),
    max_pool("max_pool2d", rnd(2, 2, 5, 6), "max_pool2d_return_indices", 3, 2, 1, return_indices=True,
             dynamic=BATCH),
    OpCase("MaxPool", lambda t: functional(t).max_pool2d(t, 2, 1), [rnd(2, 5, 5)],
           lambda a: max_pool_ref(a[None], 2, 1)[0], name="max_pool2d_unbatched"),
    max_pool("max_pool1d", rnd(2, 3, 9), "max_pool1d_ceil_pad", 3, 2, 1, ceil_mode=True),
    max_pool("max_pool1d", rnd(1, 2, 8), "max_pool1d_return_indices_dilation", 2, 2, 1, dilation=2,
             return_indices=True),
    avg_pool("avg_pool2d", rnd(2, 3, 6, 6), "avg_pool2d_2", 2, dynamic=BATCH),
    avg_pool("avg_pool2d", rnd(1, 2, 7, 6), "avg_pool2d_pad_include", 3, 2, 1),
    avg_pool("avg_pool2d", rnd(1, 2, 7, 6), "avg_pool2d_pad_exclude", 3, 2, 1, count_include_pad=False),
    avg_pool("avg_pool2d", rnd(1, 2, 6, 5), "avg_pool2d_ceil_overhang", 3, 2, 1, ceil_mode=True),
    avg_pool("avg_pool2d", rnd(1, 2, 6, 5), "avg_pool2d_ceil_exclude", (2, 3), 2, (1, 0), ceil_mode=True,
             count_include_pad=False),
    avg_pool("avg_pool2d", rnd(1, 2, 6, 6), "avg_pool2d_divisor_override", 3, 1, 1, divisor_override=4),
    avg_pool("avg_pool1d", rnd(2, 3, 9), "avg_pool1d_exclude_ceil", 3, 2, 1, ceil_mode=True,
             count_include_pad=False),
    adaptive("adaptive_avg_pool2d", rnd(2, 3, 5, 7), "adaptive_avg_pool2d_global", 1, dynamic=BATCH),
    adaptive("adaptive_avg_pool2d", rnd(1, 2, 6, 4), "adaptive_avg_pool2d_divisible", (3, 2)),
    adaptive("adaptive_avg_pool2d", rnd(1, 2, 5, 7), "adaptive_avg_pool2d_overlapping_bins", (3, 4),
             export=False, export_skip=_NOT_DIVISIBLE),
    adaptive("adaptive_avg_pool2d", rnd(1, 2, 6, 5), "adaptive_avg_pool2d_none", (None, 1)),
    adaptive("adaptive_avg_pool1d", rnd(2, 3, 8), "adaptive_avg_pool1d", 4),
    interp(rnd(2, 3, 3, 4), "interpolate_nearest_scale2", scale_factor=2, dynamic=BATCH),
    interp(rnd(1, 2, 3, 4), "interpolate_nearest_size", size=(5, 7)),
    interp(rnd(1, 2, 6, 4), "interpolate_nearest_down", scale_factor=0.5),
    interp(rnd(2, 2, 3, 4), "interpolate_bilinear_scale2", scale_factor=2, mode="bilinear", align_corners=False,
           dynamic=BATCH),
    interp(rnd(1, 2, 3, 4), "interpolate_bilinear_align_size", size=(5, 3), mode="bilinear", align_corners=True),
    interp(rnd(1, 2, 4, 3), "interpolate_bilinear_scale_1_5", scale_factor=1.5, mode="bilinear"),
    interp(rnd(1, 2, 6, 5), "interpolate_bilinear_down", size=(4, 2), mode="bilinear"),
    interp(rnd(2, 3, 4), "interpolate_linear_1d", size=7, mode="linear"),
    interp(rnd(2, 3, 4), "interpolate_linear_1d_align", scale_factor=2, mode="linear", align_corners=True),
    interp(rnd(2, 3, 4), "interpolate_nearest_1d", scale_factor=3),
]
