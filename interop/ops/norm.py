"""Normalization ops: batch_norm, layer_norm, group_norm, rms_norm and instance_norm.

Each is one op over a *view* of its input: x reshaped so the normalized elements lie along `raxes` and the
affine parameters broadcast as `pshape`. Layer norm views (..., *normalized_shape) as (M, K) and normalizes
along 1; group norm views (N, C, *S) as (N, G, C/G, S) and normalizes along (2, 3); batch norm views it as
(N, C, S) and normalizes along (0, 2). One forward and one analytic backward then serve every norm:

    xhat = (x - mean) * rstd,   y = xhat * w + b
    dx   = rstd * (g w - mean(g w) - xhat * mean(g w xhat))     (batch statistics; rms norm drops mean(g w))
    dx   = rstd * g w                                          (given statistics: batch norm in eval)

A plain backward evaluates this on arrays, rearranged into few full-size passes (numpy cannot fuse them); a
create_graph backward evaluates it with Tensor ops, recomputing the batch statistics from x so that they are
differentiated too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .nn import ArrayForm, TensorForm, contract, opmath

__all__ = ["layer_norm", "group_norm", "rms_norm"]

Geometry = tuple[tuple, tuple[int, ...], tuple, tuple[int, ...]]  # view shape, raxes, param shape, param-grad axes


def _scale(y: Any, rstd: Any, w: Any, fresh: bool) -> Any:
    """y * rstd * w (w may be None), in place when `y` is a fresh buffer; rstd and w are multiplied together
    first when their product is smaller than y (batch norm: both per channel)."""
    xp = xp_of(y)
    if w is not None and math.prod(np.broadcast_shapes(rstd.shape, w.shape)) < y.size:
        rstd, w = rstd * w, None
    out = xp.multiply(y, rstd, out=y if fresh else None)
    if w is not None:
        out *= w
    return out


class _Sums:
    """sum(full * small) over axes, where `small` (statistics or parameters, or None) is constant along the
    axes: then it factors out, and the sum of `full` alone is computed once for every such use (batch norm's
    weight, statistics and parameter gradients all reduce the same axes)."""

    def __init__(self):
        self.memo: dict = {}

    def __call__(self, axes: tuple[int, ...], full: Any, small: Any = None) -> Any:
        lead = full.ndim - (small.ndim if small is not None else 0)
        if small is not None and any(small.shape[a - lead] != 1 for a in axes if a >= lead):
            return contract(axes, full, small)
        key = (id(full), axes)
        if key not in self.memo:
            self.memo[key] = contract(axes, full)
        return self.memo[key] if small is None else self.memo[key] * small


class _Normalization(Op):
    """A normalization over a view of x (`geometry`), with optional weight and bias inputs after x.

    `centered`: subtract the mean (not rms norm). Statistics come from the input unless `given_stats` returns
    them (batch norm in eval mode). Backward reads x (`saves`) and the mean and rstd saved by forward.
    """

    saves = (0,)
    centered: ClassVar[bool] = True

    def __init__(self, eps: float, weight: bool, bias: bool):
        self.eps, self.weight, self.bias = eps, weight, bias

    def geometry(self, shape: tuple) -> Geometry:
        raise NotImplementedError

    def params(self, arrays: Sequence[Any]) -> tuple[Any, Any, Sequence[Any]]:
        """(weight or None, bias or None, the remaining inputs) from the inputs after x."""
        w = arrays[0] if self.weight else None
        b = arrays[int(self.weight)] if self.bias else None
        return w, b, arrays[int(self.weight) + int(self.bias):]

    def given_stats(self, rest: Sequence[Any], pshape: tuple) -> tuple[Any, Any] | None:
        return None

    def track(self, rest: Sequence[Any], mean: Any, var: Any, geo: Geometry) -> None:
        """Update running statistics from this batch's (in place)."""

    def forward(self, ctx, x, *params):
        vshape, raxes, pshape, _ = geo = self.geometry(x.shape)
        w, b, rest = self.params(params)
        xv = opmath(x).reshape(vshape)
        given = self.given_stats(rest, pshape)
        if given is None:
            n = math.prod(vshape[a] for a in raxes)
            mean = contract(raxes, xv) / n if self.centered else None
            y = xv - mean if self.centered else xv
            var = contract(raxes, y, y) / n
            self.track(rest, mean, var, geo)
        else:
            mean, var = given
            y = xv - mean
        xp = xp_of(x)
        rstd = var + self.eps
        xp.sqrt(rstd, out=rstd)
        xp.reciprocal(rstd, out=rstd)
        wv = opmath(w).reshape(pshape) if w is not None else None
        y = _scale(y, rstd, wv, fresh=y is not xv)
        if b is not None:
            y += opmath(b).reshape(pshape)
        ctx.mean, ctx.rstd = mean, rstd
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        w, b, rest = self.params(ctx.inputs[1:])
        geo = self.geometry(x.data.shape)
        batch = self.given_stats([t.data for t in rest], geo[2]) is None
        grads = (self._differentiable_grads if state.grad_enabled else self._grads)(ctx, g, x, w, b, geo, batch)
        return (*grads[:1], *[t for t, on in zip(grads[1:], (self.weight, self.bias)) if on], *[None] * len(rest))

    def _grads(self, ctx, g, x, w, b, geo, batch):
        """The closed form on arrays, rearranged for few full-size passes: dx = g w rstd - x k1 + k0 with
        per-group k1 = rstd^2 mean(g w xhat) and k0 (what centers it), from sums of g and g x."""
        vshape, raxes, pshape, gaxes = geo
        xv, gv = opmath(x.data).reshape(vshape), opmath(g.data).reshape(vshape)
        wv = opmath(w.data).reshape(pshape) if w is not None else None
        mean, rstd = ctx.mean, ctx.rstd
        want_w = w is not None and w.requires_grad
        gx = dw = db = None
        gxv = gv * xv if want_w or (x.requires_grad and batch) else None  # g x: shared by both reductions
        sums = _Sums()
        if want_w:
            dw = sums(gaxes, gxv, rstd)
            if mean is not None:
                dw = dw - sums(gaxes, gv, mean * rstd)
            dw = ArrayForm.wrap(dw.reshape(w.data.shape), w)
        if b is not None and b.requires_grad:
            db = ArrayForm.wrap(sums(gaxes, gv).reshape(b.data.shape), b)
        if x.requires_grad:
            dx = _scale(gv, rstd, wv, fresh=False)
            if batch:
                n = math.prod(vshape[a] for a in raxes)
                k1 = sums(raxes, gxv, wv) / n  # mean(g w x)
                if mean is not None:
                    gw_mean = sums(raxes, gv, wv) / n
                    k1 -= mean * gw_mean
                k1 *= rstd * rstd * rstd
                dx -= xp_of(xv).multiply(xv, k1, out=gxv)
                if mean is not None:
                    dx += mean * k1 - rstd * gw_mean
            gx = ArrayForm.wrap(dx.reshape(x.data.shape), x)
        return gx, dw, db

    def _differentiable_grads(self, ctx, g, x, w, b, geo, batch):
        """The closed form on Tensors (create_graph); batch statistics are recomputed from x so that they are
        differentiated too."""
        vshape, raxes, pshape, gaxes = geo
        xv, gv = x.reshape(vshape), g.reshape(vshape)
        if batch:
            mean = xv.mean(raxes, keepdim=True) if self.centered else None
            c = xv - mean if self.centered else xv
            rstd = ((c * c).mean(raxes, keepdim=True) + self.eps).rsqrt()
        else:
            rstd, c = Tensor(ctx.rstd), xv - Tensor(ctx.mean)
        xhat = c * rstd
        gx = dw = db = None
        if x.requires_grad:
            gw = gv * w.reshape(pshape) if w is not None else gv
            d = gw
            if batch:
                d = d - xhat * (gw * xhat).mean(raxes, keepdim=True)
                if self.centered:
                    d = d - gw.mean(raxes, keepdim=True)
            gx = TensorForm.wrap((d * rstd).reshape(x.data.shape), x)
        if w is not None and w.requires_grad:
            dw = TensorForm.wrap((gv * xhat).sum(gaxes, keepdim=True).reshape(w.data.shape), w)
        if b is not None and b.requires_grad:
            db = TensorForm.wrap(gv.sum(gaxes, keepdim=True).reshape(b.data.shape), b)
        return gx, dw, db

    def onnx_affine(self, g: Any, x: str, params: Sequence[str], channels: Any) -> tuple[str, str]:
        """(scale, bias) values for ONNX nodes that require both: ones/zeros of `channels` where absent."""
        w, b, _ = self.params(params)
        dt = g.dtype(x)
        return (w if w is not None else g.const(np.ones(channels, dt)),
                b if b is not None else g.const(np.zeros(channels, dt)))


# ---- layer norm, rms norm ----------------------------------------------------------------------------------

class LayerNorm(_Normalization):
    """Normalizes over the last `ndims` dims."""

    def __init__(self, ndims: int, eps: float, weight: bool, bias: bool):
        super().__init__(eps, weight, bias)
        self.ndims = ndims

    def geometry(self, shape):
        k = math.prod(shape[len(shape) - self.ndims:])
        return (math.prod(shape[:len(shape) - self.ndims]), k), (1,), (k,), (0,)

    def to_onnx(self, g, x, *params):
        scale = self.onnx_affine(g, x, params, g.shape(x)[g.rank(x) - self.ndims:])[0]
        bias = params[-1] if self.bias else None
        return g.op("LayerNormalization", x, scale, bias, axis=-self.ndims, epsilon=float(self.eps))


class RmsNorm(LayerNorm):
    """x / sqrt(mean(x^2) + eps) * weight over the last `ndims` dims."""

    centered = False

    def __init__(self, ndims: int, eps: float, weight: bool):
        super().__init__(ndims, eps, weight, False)

    def to_onnx(self, g, x, *params):
        dt, axes = g.dtype(x), list(range(-self.ndims, 0))
        if g.opset >= 23:
            scale = self.onnx_affine(g, x, params, g.shape(x)[g.rank(x) - self.ndims:])[0]
            return g.op("RMSNormalization", x, scale, axis=-self.ndims, epsilon=float(self.eps))
        ms = g.op("ReduceMean", g.op("Mul", x, x), g.const(axes, "int64"), keepdims=1)
        inv = g.op("Reciprocal", g.op("Sqrt", g.op("Add", ms, g.const(self.eps, dt))))
        y = g.op("Mul", x, inv)
        return g.op("Mul", y, params[0]) if self.weight else y


def _normalized_shape(input: Tensor, normalized_shape: Any) -> tuple[int, ...]:
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(n) for n in normalized_shape)
    shape = tuple(input.data.shape)
    if len(ns) > len(shape) or shape[len(shape) - len(ns):] != ns:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(map(str, ns))}], but got input of size{list(shape)}")
    return ns


def _check_param(name: str, t: Tensor | None, shape: tuple) -> None:
    if t is not None and tuple(t.data.shape) != tuple(shape):
        raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                           f"{list(t.data.shape)} and normalized_shape = {list(shape)}")


def _present(*ts: Tensor | None) -> tuple[Tensor, ...]:
    return tuple(t for t in ts if t is not None)


def layer_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing `normalized_shape` dims, then scale and shift elementwise."""
    ns = _normalized_shape(input, normalized_shape)
    _check_param("weight", weight, ns)
    _check_param("bias", bias, ns)
    op = LayerNorm(len(ns), float(eps), weight is not None, bias is not None)
    return op(input, *_present(weight, bias))


def rms_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the trailing dims, times weight; eps defaults to the dtype's epsilon."""
    ns = _normalized_shape(input, normalized_shape)
    _check_param("weight", weight, ns)
    if eps is None:
        eps = float(dtypes.finfo(input.dtype).eps)
    return RmsNorm(len(ns), float(eps), weight is not None)(input, *_present(weight))


# ---- group norm, instance norm -----------------------------------------------------------------------------

def _channels_first(shape: tuple, groups: int) -> Geometry:
    """(N, C, *S) viewed as (N, G, C/G, S): statistics per (sample, group), parameters per channel."""
    n, c, s = shape[0], shape[1], math.prod(shape[2:])
    return (n, groups, c // groups, s), (2, 3), (groups, c // groups, 1), (0, 3)


class GroupNorm(_Normalization):
    def __init__(self, num_groups: int, eps: float, weight: bool, bias: bool):
        super().__init__(eps, weight, bias)
        self.num_groups = num_groups

    def geometry(self, shape):
        return _channels_first(shape, self.num_groups)

    def to_onnx(self, g, x, *params):
        c, rank, dt = g.shape(x)[1], g.rank(x), g.dtype(x)
        if g.opset >= 21:  # per-channel scale and bias (opset 18's were per group)
            scale, bias = self.onnx_affine(g, x, params, c)
            return g.op("GroupNormalization", x, scale, bias, epsilon=float(self.eps), num_groups=self.num_groups)
        k = self.num_groups
        grouped = g.op("Reshape", x, g.const([0, k, -1], "int64"))
        y = g.op("InstanceNormalization", grouped, g.const(np.ones(k, dt)), g.const(np.zeros(k, dt)),
                 epsilon=float(self.eps))
        y = g.op("Reshape", y, g.op("Shape", x))
        per_channel = g.const([-1] + [1] * (rank - 2), "int64")
        w, b, _ = self.params(params)
        if w is not None:
            y = g.op("Mul", y, g.op("Reshape", w, per_channel))
        if b is not None:
            y = g.op("Add", y, g.op("Reshape", b, per_channel))
        return y


class InstanceNorm(_Normalization):
    """Statistics per (sample, channel) over the spatial dims; running statistics (if given after the affine
    inputs) are updated with their batch average, as in PyTorch."""

    def __init__(self, eps: float, weight: bool, bias: bool, momentum: float = 0.0):
        super().__init__(eps, weight, bias)
        self.momentum = momentum

    def geometry(self, shape):
        return _channels_first(shape, shape[1])

    def track(self, rest, mean, var, geo):
        if rest:
            n = geo[0][3]
            _update_running(rest, mean.mean(axis=0).reshape(-1), var.mean(axis=0).reshape(-1), n, self.momentum)

    def to_onnx(self, g, x, *params):
        scale, bias = self.onnx_affine(g, x, params, g.shape(x)[1])
        return g.op("InstanceNormalization", x, scale, bias, epsilon=float(self.eps))


def _update_running(running: Sequence[Any], mean: Any, var: Any, n: int, momentum: float) -> None:
    """running = (1 - momentum) running + momentum batch, with the unbiased batch variance."""
    rm, rv = running
    rm *= 1 - momentum
    rm += (momentum * mean).astype(rm.dtype, copy=False)
    rv *= 1 - momentum
    rv += (momentum * n / max(n - 1, 1) * var).astype(rv.dtype, copy=False)


def _check_affine(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> None:
    c = input.data.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.data.size != c:
            raise RuntimeError(f"Expected {name} to have {c} elements (the number of channels), but got "
                               f"{name} of shape {list(t.data.shape)}")


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize each group of channels of each sample, then scale and shift per channel."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    shape = tuple(input.data.shape)
    if shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(shape)} and num_groups={num_groups}")
    _check_affine(input, weight, bias)
    return GroupNorm(int(num_groups), float(eps), weight is not None, bias is not None)(
        input, *_present(weight, bias))


# ---- batch norm --------------------------------------------------------------------------------------------

def _per_channel(shape: tuple) -> Geometry:
    """(N, C, *S) viewed as (N, C, S): statistics and parameters per channel."""
    return (shape[0], shape[1], math.prod(shape[2:])), (0, 2), (shape[1], 1), (0, 2)


class BatchNorm(_Normalization):
    """Training: batch statistics, and the running ones (inputs after the affine ones) updated in place.
    Eval: the running statistics. ONNX: BatchNormalization, fed the batch statistics in training mode."""

    def __init__(self, training: bool, momentum: float, eps: float, weight: bool, bias: bool, running: bool):
        super().__init__(eps, weight, bias)
        self.training, self.momentum, self.running = training, momentum, running

    def geometry(self, shape):
        return _per_channel(shape)

    def given_stats(self, rest, pshape):
        if self.training:
            return None
        rm, rv = rest
        return opmath(rm).reshape(pshape), opmath(rv).reshape(pshape)

    def track(self, rest, mean, var, geo):
        if rest:
            _update_running(rest, mean.reshape(-1), var.reshape(-1), geo[0][0] * geo[0][2], self.momentum)

    def to_onnx(self, g, x, *params):
        scale, bias = self.onnx_affine(g, x, params, g.shape(x)[1])
        if self.training:
            axes = g.const([a for a in range(g.rank(x)) if a != 1], "int64")
            mean = g.op("ReduceMean", x, axes, keepdims=1)
            center = g.op("Sub", x, mean)
            var = g.op("ReduceMean", g.op("Mul", center, center), axes, keepdims=0)
            mean = g.op("Reshape", mean, g.const([-1], "int64"))
        else:
            mean, var = self.params(params)[2]
        return g.op("BatchNormalization", x, scale, bias, mean, var, epsilon=float(self.eps),
                    momentum=float(1 - self.momentum))


def _bump(*ts: Tensor | None) -> None:
    for t in ts:
        if t is not None:
            t._vc[0] += 1


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize per channel (dim 1) with the batch statistics (training; running ones updated in place with
    the unbiased variance) or the running ones (eval)."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or higher input (got {input.ndim}D input)")
    shape = tuple(input.data.shape)
    _check_affine(input, weight, bias)
    running = running_mean is not None and running_var is not None
    if training:
        if math.prod(shape) // shape[1] == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {shape}")
    elif not running:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    op = BatchNorm(bool(training), float(momentum if momentum is not None else 0.0), float(eps),
                   weight is not None, bias is not None, running)
    out = op(input, *_present(weight, bias), *((running_mean, running_var) if running else ()))
    if training and running:
        _bump(running_mean, running_var)
    return out


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of each sample over its spatial dims; with use_input_stats=False, use the
    running statistics instead (batch norm in eval mode)."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher input to instance_norm (got {input.ndim}D input)")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    shape = tuple(input.data.shape)
    if math.prod(shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(shape)}")
    _check_affine(input, weight, bias)
    running = running_mean is not None and running_var is not None
    op = InstanceNorm(float(eps), weight is not None, bias is not None, float(momentum) if running else 0.0)
    out = op(input, *_present(weight, bias), *((running_mean, running_var) if running else ()))
    if running:
        _bump(running_mean, running_var)
    return out
