"""Convolution: conv1d, conv2d, conv_transpose1d, conv_transpose2d.

One GEMM per product. The input's columns are laid out channel-major, (C·kh·kw, N·Ho·Wo), gathered from one
strided view (as_strided: no Python loop over the batch or positions) whose innermost axis runs along output
rows, so the copy moves whole rows (or, for stride-1 convs with short rows, whole input planes: see "wide
columns" below) and every GEMM operand is contiguous. Batch-major "NHWC" columns would copy runs of kw floats,
about 5x slower here.

    forward      out (O, N·Ho·Wo) = W (O, C·kh·kw) @ cols, then one transposing copy to NCHW, fused with the bias
    weight grad  gW = g @ cols.T, the columns gathered again (cheaper than keeping kh·kw copies of each input)
    input grad   gcols = W.T @ g, then col2im: kh·kw strided slice-adds, one per kernel offset (no np.add.at)

Where each sample's output plane is large next to the weight matrix (first layers), the same products run as
one batched matmul over the samples instead (see "the array kernels"). Groups run the same products as one
batched matmul over a leading group axis. conv's input gradient is conv_transpose's forward and
conv_transpose's input gradient is conv's forward, so each op's backward is the other op (which also makes
higher-order gradients work); 1-D convolutions run as 2-D ones of height 1.
float16/bfloat16 compute in float32 on the CPU (numpy has no half-precision BLAS).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .. import dtypes
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .reduce import accumulate_dtype

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]

Pads = tuple[tuple[int, int], ...]


# ---- geometry and strided helpers (shared with the pooling ops) --------------------------------------------

def lowp(a: Any) -> bool:
    """A half-precision CPU array, which the GEMMs here compute in float32."""
    return type(a) is np.ndarray and accumulate_dtype(a.dtype) != a.dtype


def as_2d(a: Any) -> Any:
    """A 1-D (N, C, L) array as a 2-D one of height 1 (a view)."""
    return a[:, :, None, :] if a.ndim == 3 else a


def two(t: tuple, fill: Any) -> tuple:
    """Per-dim attributes of a 1-D op as 2-D ones (`fill` for the unit height)."""
    return (fill, *t) if len(t) == 1 else t


def out_size(n: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def padded(x: Any, pads: Pads, value: Any = 0) -> Any:
    """`x` (N, C, H, W) with `pads` ((top, bottom), (left, right)) of `value` around its last two dims."""
    (t, b), (left, r) = pads
    if not (t or b or left or r):
        return x
    n, c, h, w = x.shape
    xp = xp_of(x)
    out = xp.zeros((n, c, h + t + b, w + left + r), x.dtype) if value == 0 else \
        xp.full((n, c, h + t + b, w + left + r), value, x.dtype)
    out[:, :, t:t + h, left:left + w] = x
    return out


def cropped(buf: Any, pads: Pads, shape: tuple) -> Any:
    """The centre of a padded buffer, contiguous."""
    (t, _), (left, _) = pads
    h, w = shape[-2:]
    if buf.shape[-2:] == (h, w):
        return buf
    return xp_of(buf).ascontiguousarray(buf[:, :, t:t + h, left:left + w])


def offsets(kernel: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> Iterator[tuple[int, tuple]]:
    """(kernel offset index, the slice of a padded (..., H, W) array its window entries occupy), in the kernel's
    row-major order: a pooling or col2im step is one strided numpy call per offset."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (..., slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                               slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


# ---- the array kernels --------------------------------------------------------------------------------------
#
# Columns hold, per (channel, kernel offset), each sample's output positions as one run of L entries with the
# output rows `pitch` apart: L = (Ho - 1)·pitch + Wo. The exact layout has pitch = Wo. A stride-1 conv with short
# output rows uses the padded input width instead (pitch = Wp, "wide" columns): every run is then a plain slice of
# the flattened input plane, so im2col copies and col2im adds whole runs rather than rows of Wo (3x and 1.6x
# faster for 11-wide rows here), while the GEMMs carry the Wp - Wo entries between rows along (outputs there are
# dropped, gradients there are zero). Long rows copy well already, so they keep the exact layout.
#
# The products are one GEMM over the whole batch, except where each sample's output plane is large next to the
# weight matrix (a first layer with few input channels): there the single GEMM is skinny and memory-bound in
# OpenBLAS, and a batched matmul over the samples is 2-4x faster here, and reads and writes NCHW directly, with
# no transposing copies.

_WIDE_MAX = 1.25  # the most extra GEMM work wide columns may cost
_SHORT_ROW = 16
_PER_SAMPLE = 4  # per-sample products once Ho·Wo >= (C/G·kh·kw)·(O/G) / _PER_SAMPLE


class _Plan(NamedTuple):
    pitch: int
    per_sample: bool


def _plan(width: int, stride: tuple, out_hw: tuple, ckg: int, og: int) -> _Plan:
    """The column layout and product form for a padded input `width` wide, an (Ho, Wo) output and per-group
    weight matrices of (O/G, C/G·kh·kw)."""
    oh, ow = out_hw
    if _PER_SAMPLE * oh * ow >= ckg * og:
        return _Plan(ow, True)
    wide = stride == (1, 1) and ow < _SHORT_ROW and (oh - 1) * width + ow <= _WIDE_MAX * oh * ow
    return _Plan(width if wide else ow, False)


def _strided_out(a: Any, n: int, c: int, out_hw: tuple, pitch: int) -> Any:
    """The (N, C, Ho, Wo) view of a channel-major (C, N·L) array in the pitch layout."""
    oh, ow = out_hw
    run = (oh - 1) * pitch + ow
    it = a.itemsize
    return xp_of(a).lib.stride_tricks.as_strided(a, (n, c, oh, ow), (run * it, n * run * it, pitch * it, it))


def _columns(x: Any, kernel: tuple, stride: tuple, pads: Pads, dilation: tuple, groups: int, out_hw: tuple,
             og: int) -> tuple:
    """im2col: ((G, C/G·kh·kw, N·L) contiguous, plan), from one strided view of the padded input."""
    xp = xp_of(x)
    xpd = padded(x, pads)
    n, c, _, wp = xpd.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    plan = _plan(wp, stride, out_hw, c // groups * kh * kw, og)
    as_strided = xp.lib.stride_tricks.as_strided
    if plan.pitch == ow:
        sn, sc, s_h, s_w = xpd.strides
        view = as_strided(xpd, (c, kh, kw, n, oh, ow), (sc, dh * s_h, dw * s_w, sn, sh * s_h, sw * s_w))
    else:
        xpd = xp.ascontiguousarray(xpd)
        sn, sc, s_h, s_w = xpd.strides
        view = as_strided(xpd, (c, kh, kw, n, (oh - 1) * plan.pitch + ow), (sc, dh * s_h, dw * s_w, sn, s_w))
    return xp.ascontiguousarray(view).reshape(groups, c // groups * kh * kw, -1), plan


def _rows(g: Any, groups: int, pitch: int) -> Any:
    """(N, O, Ho, Wo) -> (G, O/G, N·L) in the pitch layout (zeros between rows): channels first, for a GEMM."""
    xp = xp_of(g)
    n, o, oh, ow = g.shape
    if pitch == ow:
        rows = g if n == 1 else xp.ascontiguousarray(g.transpose(1, 0, 2, 3))
    else:
        rows = xp.zeros((o, n * ((oh - 1) * pitch + ow)), g.dtype)
        _strided_out(rows, n, o, (oh, ow), pitch)[...] = g
    return rows.reshape(groups, o // groups, -1)


def _per_sample_view(cols: Any, n: int) -> Any:
    """(G, K, N·L) columns as (N, G, K, L): each sample's matrix, for a batched matmul."""
    groups, k = cols.shape[:2]
    return cols.reshape(groups, k, n, -1).transpose(2, 0, 1, 3)


def _conv_forward(x: Any, w: Any, b: Any, stride: tuple, pads: Pads, dilation: tuple, groups: int) -> Any:
    """out (N, O, Ho, Wo)."""
    xp = xp_of(x)
    n = x.shape[0]
    o, _, kh, kw = w.shape
    out_hw = (out_size(x.shape[2], kh, stride[0], *pads[0], dilation[0]),
              out_size(x.shape[3], kw, stride[1], *pads[1], dilation[1]))
    cols, plan = _columns(x, (kh, kw), stride, pads, dilation, groups, out_hw, o // groups)
    w3 = w.reshape(groups, o // groups, -1)
    if plan.per_sample or (n == 1 and plan.pitch == out_hw[1]):  # the products are NCHW already
        out = xp.matmul(w3, _per_sample_view(cols, n)).reshape(n, o, *out_hw)
        if b is not None:
            out += b.reshape(o, 1, 1)
        return out
    res = xp.matmul(w3, cols).reshape(o, -1)
    out = xp.empty((n, o, *out_hw), res.dtype)
    src = _strided_out(res, n, o, out_hw, plan.pitch)  # one transposing copy to NCHW, with the bias
    if b is None:
        out[...] = src
    else:
        xp.add(src, b.reshape(o, 1, 1), out=out)
    return out


def _conv_input_grad(g: Any, w: Any, shape: tuple, stride: tuple, pads: Pads, dilation: tuple,
                     groups: int) -> Any:
    """The gradient of conv's input of `shape` (N, C, H, W): gcols = W.T @ g, then col2im by strided adds."""
    xp = xp_of(g)
    n, _, oh, ow = g.shape
    o, cg, kh, kw = w.shape
    c = cg * groups
    (t, b), (left, r) = pads
    hp, wp = shape[2] + t + b, shape[3] + left + r
    plan = _plan(wp, stride, (oh, ow), cg * kh * kw, o // groups)
    wt = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)
    buf = xp.zeros((n, c, hp, wp), g.dtype)
    if plan.pitch == ow:
        if plan.per_sample:  # (N, C, kh, kw, Ho, Wo), viewed channel-major
            gcols = xp.matmul(wt, g.reshape(n, groups, o // groups, -1)).reshape(n, c, kh, kw, oh, ow)
            gcols = gcols.transpose(1, 2, 3, 0, 4, 5)
        else:
            gcols = xp.matmul(wt, _rows(g, groups, ow)).reshape(c, kh, kw, n, oh, ow)
        dst = buf.transpose(1, 0, 2, 3)
        for k, where in offsets((kh, kw), stride, dilation, (oh, ow)):
            dst[where] += gcols[:, k // kw, k % kw]
    else:  # each kernel offset's runs land on one slice of every flattened plane
        run = (oh - 1) * plan.pitch + ow
        gcols = xp.matmul(wt, _rows(g, groups, plan.pitch)).reshape(c, kh, kw, n, run)
        dst = buf.reshape(n, c, hp * wp).transpose(1, 0, 2)
        for i in range(kh):
            for j in range(kw):
                start = i * dilation[0] * wp + j * dilation[1]
                dst[:, :, start:start + run] += gcols[:, i, j]
    return cropped(buf, pads, shape)


def _conv_weight_grad(cols: Any, plan: _Plan, g: Any, w_shape: tuple, groups: int) -> Any:
    """gW = g_rows @ cols.T: one GEMM, computed as (cols @ g_rows.T).T (the faster orientation for OpenBLAS
    here), or summed over per-sample products."""
    xp = xp_of(g)
    n, o = g.shape[:2]
    if plan.per_sample:
        per = xp.matmul(g.reshape(n, groups, o // groups, -1), _per_sample_view(cols, n).transpose(0, 1, 3, 2))
        return per.sum(axis=0).reshape(w_shape)
    gwt = xp.matmul(cols, _rows(g, groups, plan.pitch).transpose(0, 2, 1))  # (G, C/G·kh·kw, O/G)
    return xp.ascontiguousarray(gwt.transpose(0, 2, 1)).reshape(w_shape)


# ---- ops ----------------------------------------------------------------------------------------------------

class _ConvOp(Op):
    """What Conv and ConvTranspose share: per spatial dim, the stride, the padding as (begin, end), the
    dilation; and the groups. The attributes keep the op's own rank (1 or 2); `_geom` gives them 2-D."""

    saves = (0, 1)

    def __init__(self, stride: tuple, padding: Pads, dilation: tuple, groups: int):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def _geom(self) -> tuple:
        return two(self.stride, 1), two(self.padding, (0, 0)), two(self.dilation, 1), self.groups

    def _onnx_attrs(self, g: Any, w: str) -> dict:
        kernel = g.shape(w)[2:]
        attrs = {"strides": list(self.stride), "pads": [p[0] for p in self.padding] + [p[1] for p in self.padding],
                 "dilations": list(self.dilation), "group": self.groups}
        if all(isinstance(k, int) for k in kernel):
            attrs["kernel_shape"] = list(kernel)
        return attrs

    def _run(self, kernel: Any, x: Any, w: Any, b: Any) -> Any:
        """`kernel` on 2-D float32-or-wider arrays, the result in `x`'s rank and dtype."""
        if lowp(x):
            f32 = np.float32
            return self._run(kernel, x.astype(f32), w.astype(f32), None if b is None else b.astype(f32)) \
                .astype(x.dtype)
        out = kernel(as_2d(x), as_2d(w), b)
        return out.reshape(*out.shape[:2], out.shape[3]) if x.ndim == 3 else out

    def _bias_grad(self, ctx: Any, g: Tensor) -> Tensor | None:
        if len(ctx.inputs) < 3 or not ctx.inputs[2].requires_grad:
            return None
        return g.sum((0, *range(2, g.data.ndim)))

    def _conv(self) -> Conv:
        return Conv(self.stride, self.padding, self.dilation, self.groups)

    def _conv_onto(self, x: Tensor, w: Tensor, shape: tuple) -> Tensor:
        """The conv of `x` with `w`, cut to the spatial size of `shape`: a transposed conv whose output padding
        is not below its stride adds rows that no window of the conv it inverts reaches."""
        out = self._conv()(x, w)
        if out.data.shape[2:] != shape[2:]:
            out = out[(..., *(slice(0, n) for n in shape[2:]))]
        return out

    def _transposed(self, in_shape: tuple, out_shape: tuple, w_shape: tuple) -> ConvTranspose:
        """The ConvTranspose that maps a conv output of `out_shape` back onto the input's `in_shape`: the output
        padding restores the rows a strided conv's last window did not reach."""
        extra = tuple(n + lo + hi - d * (k - 1) - 1 - (m - 1) * s for n, m, k, s, (lo, hi), d in
                      zip(in_shape[2:], out_shape[2:], w_shape[2:], self.stride, self.padding, self.dilation))
        return ConvTranspose(self.stride, self.padding, self.dilation, self.groups, extra)


class Conv(_ConvOp):
    """conv1d/conv2d: x (N, C, *spatial), w (O, C/groups, *kernel), optional bias (O,). ONNX Conv."""

    def forward(self, ctx, x, w, b=None):
        return self._run(self._forward2d, x, w, b)

    def _forward2d(self, x, w, b):
        stride, pads, dilation, groups = self._geom()
        return _conv_forward(x, w, b, stride, pads, dilation, groups)

    def backward(self, ctx, g):
        x, w = ctx.inputs[0], ctx.inputs[1]
        gx = self._transposed(x.data.shape, g.data.shape, w.data.shape)(g, w) if x.requires_grad else None
        gw = _ConvWeight(self, w.data.shape)(x, g) if w.requires_grad else None
        return gx, gw, self._bias_grad(ctx, g)

    def to_onnx(self, g, x, w, b=None):
        return g.op("Conv", x, w, b, **self._onnx_attrs(g, w))


class ConvTranspose(_ConvOp):
    """conv_transpose1d/2d: x (N, C_in, *spatial), w (C_in, C_out/groups, *kernel), optional bias (C_out,).
    The output is (in - 1)·stride - begin - end + dilation·(k - 1) + 1 + output_padding. ONNX ConvTranspose."""

    def __init__(self, stride: tuple, padding: Pads, dilation: tuple, groups: int, output_padding: tuple):
        super().__init__(stride, padding, dilation, groups)
        self.output_padding = output_padding

    def forward(self, ctx, x, w, b=None):
        return self._run(self._forward2d, x, w, b)

    def _forward2d(self, x, w, b):
        stride, pads, dilation, groups = self._geom()
        extra = two(self.output_padding, 0)
        spatial = [(n - 1) * s - lo - hi + d * (k - 1) + 1 + e
                   for n, s, (lo, hi), d, k, e in zip(x.shape[2:], stride, pads, dilation, w.shape[2:], extra)]
        shape = (x.shape[0], w.shape[1] * groups, *spatial)
        out = _conv_input_grad(x, w, shape, stride, pads, dilation, groups)
        if b is not None:
            out += b.reshape(-1, 1, 1)
        return out

    def backward(self, ctx, g):
        x, w = ctx.inputs[0], ctx.inputs[1]
        gx = self._conv_onto(g, w, x.data.shape) if x.requires_grad else None
        gw = _ConvWeight(self._conv(), w.data.shape)(g, x) if w.requires_grad else None
        return gx, gw, self._bias_grad(ctx, g)

    def to_onnx(self, g, x, w, b=None):
        attrs = self._onnx_attrs(g, w)
        if all(e < s for e, s in zip(self.output_padding, self.stride)):
            return g.op("ConvTranspose", x, w, b, output_padding=list(self.output_padding), **attrs)
        # ONNX Runtime refuses output_padding >= stride (PyTorch allows it below the dilation). Output padding only
        # keeps end rows the padding would crop: take them off the end padding instead, and add the rows past the
        # last one any input reaches as zeros (then the bias, which covers them too).
        nd = len(self.stride)
        rest = [max(e - hi, 0) for (_, hi), e in zip(self.padding, self.output_padding)]
        attrs["pads"] = [lo for lo, _ in self.padding] + [hi - min(hi, e) for (_, hi), e in
                                                           zip(self.padding, self.output_padding)]
        if not any(rest):
            return g.op("ConvTranspose", x, w, b, **attrs)
        y = g.op("ConvTranspose", x, w, **attrs)
        y = g.op("Pad", y, g.const([0] * nd + rest, "int64"), None, g.const(list(range(2, 2 + nd)), "int64"))
        return y if b is None else g.op("Add", y, g.op("Unsqueeze", b, g.const(list(range(1, nd + 1)), "int64")))


class _ConvWeight(Op):
    """The weight gradient of `conv` as an op of (input, grad_output), so it is differentiable in turn. It is
    bilinear: its backward is a conv_transpose (for the input) and a conv (for the output gradient). The input's
    columns are gathered again here rather than kept from the forward: a copy per step costs far less than
    holding kh·kw times every conv input between forward and backward (PyTorch keeps only the input too)."""

    def __init__(self, conv: Conv, w_shape: tuple):
        self.conv, self.w_shape = conv, w_shape

    def forward(self, ctx, x, g):
        if lowp(x):
            return self.forward(ctx, x.astype(np.float32), g.astype(np.float32)).astype(x.dtype)
        stride, pads, dilation, groups = self.conv._geom()
        g = as_2d(g)
        cols, plan = _columns(as_2d(x), two(self.w_shape[2:], 1), stride, pads, dilation, groups, g.shape[2:],
                              self.w_shape[0] // groups)
        return _conv_weight_grad(cols, plan, g, self.w_shape, groups)

    def backward(self, ctx, gg):
        x, g = ctx.inputs
        gx = self.conv._transposed(x.data.shape, g.data.shape, self.w_shape)(g, gg) if x.requires_grad else None
        gg_out = self.conv._conv_onto(x, gg, g.data.shape) if g.requires_grad else None
        return gx, gg_out


# ---- the functional forms -----------------------------------------------------------------------------------

def ntuple(v: Any, n: int, name: str) -> tuple[int, ...]:
    """An int or a sequence as `n` ints (a kernel_size, stride, ... argument)."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    t = tuple(int(e) for e in v)
    if len(t) == 1 and n > 1:
        return t * n
    if len(t) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                           f"{n} spatial dimensions, but got {name}={list(t)}")
    return t


def _check_operands(fname: str, nd: int, input: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    if input.data.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fname}, but got "
                           f"input of size: {list(input.data.shape)}")
    if weight.data.ndim != nd + 2:
        raise RuntimeError(f"weight should have {nd + 2} dimensions for {fname}, but got weight of size "
                           f"{list(weight.data.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.data.dtype != input.data.dtype:
            raise RuntimeError(f"Input type ({dtypes.name(input.data.dtype)}) and {name} type "
                               f"({dtypes.name(t.data.dtype)}) should be the same")
    if not dtypes.is_floating_point(input.data.dtype):
        raise RuntimeError(f"\"{fname}\" not implemented for '{dtypes.name(input.data.dtype)}'")


def _check_geometry(stride: tuple, dilation: tuple, groups: int) -> None:
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def _check_bias(weight: Tensor, bias: Tensor | None, channels: int) -> None:
    if bias is not None and tuple(bias.data.shape) != (channels,):
        raise RuntimeError(f"Given weight of size {list(weight.data.shape)}, expected bias to be 1-dimensional with "
                           f"{channels} elements, but got bias of size {list(bias.data.shape)} instead")


def _batched(fn: Any, nd: int, input: Tensor, *args: Any) -> Tensor:
    """Run `fn` on a batched input; an unbatched one gets a unit batch dim for the call, as in PyTorch."""
    if input.data.ndim == nd + 2:
        return fn(input, *args)
    return fn(input.unsqueeze(0), *args).squeeze(0)


def _same_padding(kernel: tuple, dilation: tuple, stride: tuple) -> Pads:
    """padding='same': the total d·(k-1) per dim, the odd one on the end side (as PyTorch pads)."""
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))


def _conv_padding(padding: Any, nd: int, kernel: tuple, dilation: tuple, stride: tuple) -> Pads:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            return _same_padding(kernel, dilation, stride)
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    pad = ntuple(padding, nd, "padding")
    if any(p < 0 for p in pad):
        raise RuntimeError("negative padding is not supported")
    return tuple((p, p) for p in pad)


def _conv(nd: int, fname: str, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Tensor:
    _check_operands(fname, nd, input, weight, bias)
    stride, dilation, groups = ntuple(stride, nd, "stride"), ntuple(dilation, nd, "dilation"), int(groups)
    _check_geometry(stride, dilation, groups)
    kernel = tuple(weight.data.shape[2:])
    pads = _conv_padding(padding, nd, kernel, dilation, stride)
    o, cg = weight.data.shape[:2]
    if o % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size {list(weight.data.shape)} instead")
    _check_bias(weight, bias, o)

    def run(x: Tensor) -> Tensor:
        if x.data.shape[1] != cg * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.data.shape)}, expected "
                               f"input{list(x.data.shape)} to have {cg * groups} channels, but got "
                               f"{x.data.shape[1]} channels instead")
        sizes = [n + lo + hi for n, (lo, hi) in zip(x.data.shape[2:], pads)]
        reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        if any(r > n for r, n in zip(reach, sizes)):
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, sizes))}). Kernel "
                               f"size: ({' x '.join(map(str, reach))}). Kernel size can't be greater than actual "
                               "input size")
        op = Conv(stride, pads, dilation, groups)
        return op(x, weight) if bias is None else op(x, weight, bias)

    return _batched(run, nd, input)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv1d: input (N, C, L) or (C, L); padding an int, a 1-tuple, 'valid' or 'same'."""
    return _conv(1, "conv1d", input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: input (N, C, H, W) or (C, H, W); padding an int, a pair, 'valid' or 'same'."""
    return _conv(2, "conv2d", input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(nd: int, fname: str, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any,
                    padding: Any, output_padding: Any, groups: int, dilation: Any) -> Tensor:
    _check_operands(fname, nd, input, weight, bias)
    stride, dilation, groups = ntuple(stride, nd, "stride"), ntuple(dilation, nd, "dilation"), int(groups)
    _check_geometry(stride, dilation, groups)
    pad, extra = ntuple(padding, nd, "padding"), ntuple(output_padding, nd, "output_padding")
    if any(p < 0 for p in pad):
        raise RuntimeError("negative padding is not supported")
    if any(e < 0 or (e >= s and e >= d) for e, s, d in zip(extra, stride, dilation)):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                           f"output_padding={list(extra)}, stride={list(stride)} and dilation={list(dilation)}")
    cin, cog = weight.data.shape[:2]
    if cin % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size {list(weight.data.shape)} instead")
    _check_bias(weight, bias, cog * groups)
    kernel = weight.data.shape[2:]

    def run(x: Tensor) -> Tensor:
        if x.data.shape[1] != cin:
            raise RuntimeError(f"Given transposed=1, weight of size {list(weight.data.shape)}, expected "
                               f"input{list(x.data.shape)} to have {cin} channels, but got {x.data.shape[1]} "
                               "channels instead")
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + 1 + e for n, s, p, d, k, e in
                 zip(x.data.shape[2:], stride, pad, dilation, kernel, extra)]
        if any(n <= 0 for n in sizes):
            raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, x.data.shape[2:]))}). "
                               f"Calculated output size per channel: ({' x '.join(map(str, sizes))}). Output "
                               "size is too small")
        op = ConvTranspose(stride, tuple((p, p) for p in pad), dilation, groups, extra)
        return op(x, weight) if bias is None else op(x, weight, bias)

    return _batched(run, nd, input)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """torch.nn.functional.conv_transpose1d: weight (C_in, C_out/groups, k)."""
    return _conv_transpose(1, "conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """torch.nn.functional.conv_transpose2d: weight (C_in, C_out/groups, kh, kw); note groups before dilation."""
    return _conv_transpose(2, "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation)
