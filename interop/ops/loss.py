"""Loss functions, with PyTorch's arguments and reductions ('none', 'mean', 'sum').

cross_entropy is one op: log-softmax and the negative log-likelihood fused, its gradient the closed form
(softmax - target) scaled per sample; in ONNX, SoftmaxCrossEntropyLoss. nll_loss is NegativeLogLikelihoodLoss.
The elementwise losses (mse, l1, smooth_l1, huber, binary cross-entropy, kl_div) are one op each: the loss
and its derivatives are written once over a math namespace (numpy or interop, see ops.elementwise), reduced in
the same op, and lowered to the few ONNX nodes of their formula.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .common import promote, sum_to
from .elementwise import _array_math, _tensor_math
from .nn import ArrayForm, TensorForm, backward_form, contract, log_softmax, opmath, softmax, softmax_arrays

__all__: list[str] = []

_REDUCTIONS = ("none", "mean", "sum")


def reduction_of(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The reduction, from the deprecated size_average/reduce pair when either is given (PyTorch's rule)."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Any, reduction: str, denominator: Any = None) -> Any:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty or all-ignored batch is nan, as in PyTorch
        return total / (loss.size if denominator is None else denominator)


def _onnx_reduce(g: Any, loss: str, reduction: str) -> str:
    if reduction == "none":
        return loss
    return g.op("ReduceMean" if reduction == "mean" else "ReduceSum", loss, keepdims=0)


def _not_differentiable(fn: str, **tensors: Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and t.requires_grad and state.grad_enabled:
            raise RuntimeError(f"The function '{fn}' is not differentiable with respect to argument '{name}'. "
                               "This input cannot have requires_grad True.")


# ---- elementwise losses ------------------------------------------------------------------------------------

class _Elementwise(Op):
    """A loss l(x, y, *extras) per element, then reduced. `value`, `grad_input` and `grad_target` are written
    over `M`: numpy (forward, plain backward) or interop's elementwise functions (create_graph). The extras
    (weights) are never differentiated."""

    saves = (0, 1)

    def __init__(self, reduction: str):
        self.reduction = reduction

    def value(self, M: Any, x: Any, y: Any, *extras: Any) -> Any:
        raise NotImplementedError

    def grad_input(self, M: Any, g: Any, x: Any, y: Any, *extras: Any) -> Any:
        raise NotImplementedError

    def grad_target(self, M: Any, g: Any, x: Any, y: Any, *extras: Any) -> Any:
        return -self.grad_input(M, g, x, y, *extras)

    def count(self, shape: tuple) -> int:
        """The denominator of the 'mean' reduction."""
        return math.prod(shape)

    def forward(self, ctx, x, y, *extras):
        M = _array_math(xp_of(x))
        with np.errstate(all="ignore"):
            loss = self.value(M, opmath(x), opmath(y), *[opmath(e) for e in extras])
        mean = self.reduction in ("mean", "batchmean")
        out = _reduce(loss, "mean" if mean else self.reduction, self.count(loss.shape) if mean else None)
        return out.astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x, y, *extras = ctx.inputs
        create = state.grad_enabled
        if create:
            M, xs, ys, es, gs = _tensor_math(), x, y, extras, g
        else:
            M, xs, ys, es, gs = (_array_math(xp_of(g.data)), opmath(x.data), opmath(y.data),
                                 [opmath(e.data) for e in extras], opmath(g.data))
        if self.reduction in ("mean", "batchmean"):
            gs = gs / self.count(np.broadcast_shapes(x.data.shape, y.data.shape))
        out = []
        for t, fn in ((x, self.grad_input), (y, self.grad_target)):
            if not t.requires_grad:
                out.append(None)
                continue
            with np.errstate(all="ignore"):
                d = fn(M, gs, xs, ys, *es)
            d = d if create else Tensor(xp_of(g.data).asarray(d, dtype=t.dtype))
            out.append(sum_to(d, t.data.shape))
        return (*out, *[None] * len(extras))

    def onnx_value(self, g: Any, x: str, y: str, *extras: str) -> str:
        raise NotImplementedError

    def to_onnx(self, g, x, y, *extras):
        loss = self.onnx_value(g, x, y, *extras)
        if self.reduction == "batchmean":
            total = g.op("ReduceSum", loss, keepdims=0)
            n = g.op("Cast", g.op("Gather", g.op("Shape", x), g.const(0, "int64")), to=g.dtype(x))
            return g.op("Div", total, n)
        return _onnx_reduce(g, loss, self.reduction)


def _c(g: Any, like: str, v: float) -> str:
    return g.const(v, g.dtype(like))


class MseLoss(_Elementwise):
    def value(self, M, x, y):
        d = x - y
        return d * d

    def grad_input(self, M, g, x, y):
        return (x - y) * (g * 2)

    def onnx_value(self, g, x, y):
        d = g.op("Sub", x, y)
        return g.op("Mul", d, d)


class L1Loss(_Elementwise):
    def value(self, M, x, y):
        return M.abs(x - y)

    def grad_input(self, M, g, x, y):
        return M.sign(x - y) * g

    def onnx_value(self, g, x, y):
        return g.op("Abs", g.op("Sub", x, y))


class SmoothL1Loss(_Elementwise):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (l1 for beta = 0)."""

    def __init__(self, reduction: str, beta: float):
        super().__init__(reduction)
        self.beta = beta

    def value(self, M, x, y):
        d = x - y
        a = M.abs(d)
        if self.beta == 0:
            return a
        return M.where(a < self.beta, d * d * (0.5 / self.beta), a - 0.5 * self.beta)

    def grad_input(self, M, g, x, y):
        d = x - y
        if self.beta == 0:
            return M.sign(d) * g
        return M.where(M.abs(d) < self.beta, d * (1 / self.beta), M.sign(d)) * g

    def onnx_value(self, g, x, y):
        d = g.op("Sub", x, y)
        a = g.op("Abs", d)
        if self.beta == 0:
            return a
        quad = g.op("Mul", g.op("Mul", d, d), _c(g, x, 0.5 / self.beta))
        return g.op("Where", g.op("Less", a, _c(g, x, self.beta)), quad, g.op("Sub", a, _c(g, x, 0.5 * self.beta)))


class HuberLoss(_Elementwise):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""

    def __init__(self, reduction: str, delta: float):
        super().__init__(reduction)
        self.delta = delta

    def value(self, M, x, y):
        d = x - y
        a = M.abs(d)
        return M.where(a < self.delta, d * d * 0.5, (a - 0.5 * self.delta) * self.delta)

    def grad_input(self, M, g, x, y):
        return M.clip(x - y, -self.delta, self.delta) * g

    def onnx_value(self, g, x, y):
        d = g.op("Sub", x, y)
        a = g.op("Abs", d)
        quad = g.op("Mul", g.op("Mul", d, d), _c(g, x, 0.5))
        lin = g.op("Mul", g.op("Sub", a, _c(g, x, 0.5 * self.delta)), _c(g, x, self.delta))
        return g.op("Where", g.op("Less", a, _c(g, x, self.delta)), quad, lin)


class BinaryCrossEntropy(_Elementwise):
    """-(y log x + (1 - y) log(1 - x)), each log clamped at -100 (PyTorch's), times the optional weight."""

    def value(self, M, x, y, *w):
        loss = -(y * M.maximum(M.log(x), -100.0) + (1 - y) * M.maximum(M.log(1 - x), -100.0))
        return loss * w[0] if w else loss

    def grad_input(self, M, g, x, y, *w):
        d = (x - y) / M.maximum((1 - x) * x, 1e-12) * g
        return d * w[0] if w else d

    def grad_target(self, M, g, x, y, *w):
        d = (M.log(1 - x) - M.log(x)) * g
        return d * w[0] if w else d

    def onnx_value(self, g, x, y, *w):
        one, floor = _c(g, x, 1), _c(g, x, -100)
        pos = g.op("Mul", y, g.op("Max", g.op("Log", x), floor))
        neg = g.op("Mul", g.op("Sub", one, y), g.op("Max", g.op("Log", g.op("Sub", one, x)), floor))
        loss = g.op("Neg", g.op("Add", pos, neg))
        return g.op("Mul", loss, w[0]) if w else loss


class BinaryCrossEntropyWithLogits(_Elementwise):
    """(1 - y) x + (1 + (pos_weight - 1) y) softplus(-x): the sigmoid folded in, stable for any x."""

    def __init__(self, reduction: str, weight: bool, pos_weight: bool):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def _extras(self, extras: tuple) -> tuple[Any, Any]:
        w = extras[0] if self.weight else None
        return w, extras[int(self.weight)] if self.pos_weight else None

    def value(self, M, x, y, *extras):
        w, pw = self._extras(extras)
        sp = M.softplus(-x)
        loss = (1 - y) * x + (sp * ((pw - 1) * y + 1) if pw is not None else sp)
        return loss * w if w is not None else loss

    def grad_input(self, M, g, x, y, *extras):
        w, pw = self._extras(extras)
        s = M.sigmoid(x)
        d = (s * ((pw - 1) * y + 1) - pw * y if pw is not None else s - y) * g
        return d * w if w is not None else d

    def grad_target(self, M, g, x, y, *extras):
        w, pw = self._extras(extras)
        d = ((pw - 1) * M.softplus(-x) - x if pw is not None else -x) * g
        return d * w if w is not None else d

    def onnx_value(self, g, x, y, *extras):
        w, pw = self._extras(extras)
        one = _c(g, x, 1)
        sp = g.op("Softplus", g.op("Neg", x))
        if pw is not None:
            sp = g.op("Mul", sp, g.op("Add", g.op("Mul", g.op("Sub", pw, one), y), one))
        loss = g.op("Add", g.op("Mul", g.op("Sub", one, y), x), sp)
        return g.op("Mul", loss, w) if w is not None else loss


class KlDiv(_Elementwise):
    """target (log target - input), with 0 where target is 0; `log_target`: exp(target) (target - input).
    'batchmean' divides the sum by the batch size."""

    def __init__(self, reduction: str, log_target: bool):
        super().__init__(reduction)
        self.log_target = log_target

    def count(self, shape):
        if self.reduction == "batchmean":
            return shape[0] if shape else 1
        return super().count(shape)

    def value(self, M, x, y):
        if self.log_target:
            return M.exp(y) * (y - x)
        return M.where(y == 0, 0.0, y * M.log(y)) - y * x

    def grad_input(self, M, g, x, y):
        return -(M.exp(y) if self.log_target else y) * g

    def grad_target(self, M, g, x, y):
        if self.log_target:
            return M.exp(y) * (y - x + 1) * g
        return (M.log(y) + 1 - x) * g

    def onnx_value(self, g, x, y):
        if self.log_target:
            return g.op("Mul", g.op("Exp", y), g.op("Sub", y, x))
        zero = _c(g, x, 0)
        xlogy = g.op("Where", g.op("Equal", y, zero), zero, g.op("Mul", y, g.op("Log", y)))
        return g.op("Sub", xlogy, g.op("Mul", y, x))


# ---- cross_entropy, nll_loss -------------------------------------------------------------------------------

def _class_targets(t: Any, ignore_index: int, classes: int) -> tuple[Any, Any]:
    """(targets with ignored entries at class 0, the mask of counted ones); out-of-range targets raise."""
    xp = xp_of(t)
    valid = t != ignore_index
    tc = xp.where(valid, t, 0).astype(np.int64, copy=False)
    if type(tc) is np.ndarray and tc.size and (tc.min() < 0 or tc.max() >= classes):
        raise IndexError(f"Target {int(tc[(tc < 0) | (tc >= classes)][0])} is out of bounds.")
    return tc, valid


def _at_targets(tc: Any) -> tuple:
    """The fancy-index key of x[n, tc[n, ...], ...] for x of shape (N, C, *d)."""
    idx = tc.reshape((*tc.shape[:1], 1, *tc.shape[1:]))
    xp = xp_of(tc)
    return tuple(idx if d == 1 else xp.arange(n).reshape([-1 if e == d else 1 for e in range(idx.ndim)])
                 for d, n in enumerate(idx.shape))


def _class_axis(a: Any) -> Any:
    """(N, *d) -> (N, 1, *d): a per-sample array or Tensor against (N, C, *d)."""
    return a.reshape((*a.shape[:1], 1, *a.shape[1:])) if a.ndim else a


def _per_class(w: Any, ndim: int) -> Any:
    """A (C,) class weight against (N, C, *d)."""
    return w.reshape((w.shape[0],) + (1,) * (ndim - 2))


def _target_weights(w: Any, tc: Any, valid: Any, dtype: np.dtype) -> Any:
    return w[tc] * valid if w is not None else valid.astype(dtype)


def _grad_scale(F: type, g: Tensor, reduction: str, denominator: Any) -> Any:
    """d(loss)/d(per-sample loss), against (N, 1, *d): g itself, or divided by the mean's denominator."""
    s = F.of(g)
    if reduction == "mean":
        s = s / denominator
    return _class_axis(s) if reduction == "none" else s


def _onehot(key: tuple, shape: tuple, dtype: np.dtype) -> Any:
    out = xp_of(key[1]).zeros(shape, dtype)
    out[key] = 1
    return out


class CrossEntropy(Op):
    """log_softmax + nll (or + the probability-target cross entropy) along dim 1 of (N, C, *d), with class
    weights, ignore_index and label smoothing. The gradient is (softmax * a - b) per sample: a, b the target's
    (smoothed, weighted) share, so backward is one pass over the saved softmax."""

    saves = (0, 1)

    def __init__(self, reduction: str, ignore_index: int, label_smoothing: float, weight: bool, probs: bool):
        self.reduction, self.ignore_index, self.label_smoothing = reduction, ignore_index, label_smoothing
        self.weight, self.probs = weight, probs

    def forward(self, ctx, x, t, *w):
        xw = opmath(x)
        c, eps = x.shape[1], self.label_smoothing
        wb = _per_class(opmath(w[0]), x.ndim) if w else None
        ctx.p, shift, logsum = softmax_arrays(xw, 1)
        if self.probs:  # -sum(logp * q) over classes, logp = (x - shift) - log(sum): rounded as PyTorch's
            wq = opmath(t) * (1 - eps) + eps / c if eps else opmath(t)
            ctx.wq = wq = wq * wb if wb is not None else wq
            ctx.logp = logp = xw - shift
            logp -= logsum
            loss = -contract((1,), logp, wq)[:, 0]
            ctx.denominator = loss.size
        else:
            tc, valid = _class_targets(t, self.ignore_index, c)
            wt = _target_weights(opmath(w[0]) if w else None, tc, valid, xw.dtype)
            ctx.key = key = _at_targets(tc)
            loss = (logsum - (xw[key] - shift))[:, 0] * wt
            if eps:  # the uniform target's share: -sum(w logp) over classes
                total = wb.sum() if wb is not None else c
                smooth = total * logsum - contract((1,), xw - shift, wb)
                loss = loss * (1 - eps) + smooth[:, 0] * valid * (eps / c)
            ctx.valid, ctx.wt = valid, wt
            ctx.denominator = xp_of(wt).asarray(wt.sum())
        return _reduce(loss, self.reduction, ctx.denominator).astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x, q = ctx.inputs[:2]
        F = backward_form()
        s = _grad_scale(F, g, self.reduction, ctx.denominator)
        w = ctx.inputs[2].data if self.weight else None  # class weights are constants (not differentiable)
        if self.probs:
            return (*self._prob_grads(F, ctx, x, q, w, s), None)
        return (self._class_grad(F, ctx, x, w, s) if x.requires_grad else None), None, None

    def _class_grad(self, F: type, ctx: Any, x: Tensor, w: Any, s: Any) -> Tensor:
        c, eps = x.data.shape[1], self.label_smoothing
        hit = _class_axis(ctx.wt * (1 - eps))  # the target class's share
        a, spread = hit, None  # the softmax's coefficient; the smoothing's share of every class
        if eps:
            valid = _class_axis(ctx.valid.astype(ctx.p.dtype))
            a = hit + valid * ((w.sum() if w is not None else c) * eps / c)
            spread = valid * (eps / c) * (_per_class(w, x.ndim) if w is not None else 1.0)
        if F is ArrayForm:
            dx = ctx.p * (s * a)
            dx[ctx.key] -= s * hit
            if spread is not None:
                dx -= spread * s
        else:
            b = _onehot(ctx.key, x.data.shape, ctx.p.dtype) * hit
            if spread is not None:
                b = b + spread
            dx = (softmax(x, 1) * F.const(a) - F.const(b)) * s
        return F.wrap(dx, x)

    def _prob_grads(self, F: type, ctx: Any, x: Tensor, q: Tensor, w: Any, s: Any) -> tuple:
        c, eps = x.data.shape[1], self.label_smoothing
        wb = _per_class(w, x.ndim) if w is not None else None
        if F is TensorForm:
            p, wq = softmax(x, 1), (q * (1 - eps) + eps / c if eps else q)
            if wb is not None:
                wq = wq * F.const(wb)
        else:
            p, wq = ctx.p, ctx.wq
        gx = F.wrap((p * F.sum(wq, (1,)) - wq) * s, x) if x.requires_grad else None
        gq = None
        if q.requires_grad:
            logp = log_softmax(x, 1) if F is TensorForm else ctx.logp
            d = logp * (-(1 - eps)) * s
            gq = F.wrap(d * F.const(wb) if wb is not None else d, q)
        return gx, gq

    def to_onnx(self, g, x, t, *w):
        if self.probs or self.label_smoothing:
            return self._onnx_smoothed(g, x, t, *w)
        return g.op("SoftmaxCrossEntropyLoss", x, _onnx_labels(g, t), *w, reduction=self.reduction,
                    ignore_index=self.ignore_index)

    def _onnx_smoothed(self, g: Any, x: str, t: str, *w: str) -> str:
        """Probability targets or label smoothing, which SoftmaxCrossEntropyLoss lacks: from LogSoftmax."""
        dt, eps, c, r = g.dtype(x), self.label_smoothing, g.shape(x)[1], self.reduction
        logp = g.op("LogSoftmax", x, axis=1)
        wb = g.op("Reshape", w[0], g.const([-1] + [1] * (g.rank(x) - 2), "int64")) if w else None
        classes = g.const([1], "int64")
        if self.probs:
            q = g.op("Add", g.op("Mul", t, g.const(1 - eps, dt)), g.const(eps / c, dt)) if eps else t
            if wb is not None:
                q = g.op("Mul", q, wb)
            return _onnx_reduce(g, g.op("Neg", g.op("ReduceSum", g.op("Mul", logp, q), classes, keepdims=0)), r)
        labels = _onnx_labels(g, t)
        nll = g.op("NegativeLogLikelihoodLoss", logp, labels, *w, reduction=r, ignore_index=self.ignore_index)
        valid = g.op("Not", g.op("Equal", labels, g.const(self.ignore_index, "int64")))
        zero = g.const(0, dt)
        per_class = g.op("Mul", logp, wb) if wb is not None else logp
        smooth = g.op("Where", valid, g.op("Neg", g.op("ReduceSum", per_class, classes, keepdims=0)), zero)
        if r == "sum":
            smooth = g.op("ReduceSum", smooth, keepdims=0)
        elif r == "mean":
            if w:
                picked = g.op("Gather", w[0], g.op("Where", valid, labels, g.const(0, "int64")))
                wt = g.op("Where", valid, picked, zero)
            else:
                wt = g.op("Cast", valid, to=dt)
            smooth = g.op("Div", g.op("ReduceSum", smooth, keepdims=0), g.op("ReduceSum", wt, keepdims=0))
        return g.op("Add", g.op("Mul", nll, g.const(1 - eps, dt)), g.op("Mul", smooth, g.const(eps / c, dt)))


def _onnx_labels(g: Any, t: str) -> str:
    return t if g.dtype(t) == dtypes.int64 else g.op("Cast", t, to=dtypes.int64)


class NllLoss(Op):
    """-input[n, target[n]] (times the class weight), for log-probabilities input of shape (N, C, *d)."""

    def __init__(self, reduction: str, ignore_index: int, weight: bool):
        self.reduction, self.ignore_index, self.weight = reduction, ignore_index, weight

    def forward(self, ctx, x, t, *w):
        tc, valid = _class_targets(t, self.ignore_index, x.shape[1])
        wt = _target_weights(opmath(w[0]) if w else None, tc, valid, opmath(x).dtype)
        ctx.key, ctx.wt = _at_targets(tc), wt
        ctx.denominator = xp_of(wt).asarray(wt.sum())
        loss = -(opmath(x)[ctx.key][:, 0] * wt)
        return _reduce(loss, self.reduction, ctx.denominator).astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        if not x.requires_grad:
            return None, None, None
        F = backward_form()
        s = _grad_scale(F, g, self.reduction, ctx.denominator)
        hit = _class_axis(ctx.wt)
        if F is ArrayForm:
            dx = xp_of(hit).zeros(x.data.shape, hit.dtype)
            dx[ctx.key] = -(s * hit)
        else:
            dx = F.const(_onehot(ctx.key, x.data.shape, hit.dtype) * -hit) * s
        return F.wrap(dx, x), None, None

    def to_onnx(self, g, x, t, *w):
        return g.op("NegativeLogLikelihoodLoss", x, _onnx_labels(g, t), *w, reduction=self.reduction,
                    ignore_index=self.ignore_index)


# ---- the functional forms ----------------------------------------------------------------------------------

def _class_problem(name: str, input: Tensor, target: Tensor, weight: Tensor | None,
                   probs: bool) -> tuple[Tensor, Tensor, bool]:
    """Check shapes and dtypes; a single (C,) sample becomes a batch of one (the flag says to undo it)."""
    if input.ndim == 0:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    shape, tshape = tuple(input.data.shape), tuple(target.data.shape)
    c = shape[1]
    if weight is not None and tuple(weight.data.shape) != (c,):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no classes but got "
                           f"weight tensor of shape: {list(weight.data.shape)}")
    if probs:
        if tshape != shape:
            raise RuntimeError(f"{name}: expected class-probability target of the input's shape {list(shape)}, "
                               f"got {list(tshape)}")
    else:
        if dtypes.category(target.dtype) != 1:
            raise RuntimeError(f"expected target dtype to be Long or Byte, but got {dtypes.name(target.dtype)}")
        if tshape[:1] != shape[:1]:
            raise ValueError(f"Expected input batch_size ({shape[0]}) to match target batch_size "
                             f"({tshape[0] if tshape else 0}).")
        if tshape != shape[:1] + shape[2:]:
            raise RuntimeError(f"Expected target size {list(shape[:1] + shape[2:])}, got {list(tshape)}")
    return input, target, unbatched


def _weights(weight: Tensor | None) -> tuple[Tensor, ...]:
    return () if weight is None else (weight,)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits `input` (N, C, *d) against class indices (N, *d) or class probabilities."""
    reduction = reduction_of(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    _not_differentiable("nll_loss_forward", weight=weight)
    probs = dtypes.category(target.dtype) >= 2
    x, t, unbatched = _class_problem("cross_entropy", input, target, weight, probs)
    op = CrossEntropy(reduction, int(ignore_index), float(label_smoothing), weight is not None, probs)
    out = op(x, t, *_weights(weight))
    return out.squeeze(0) if unbatched and reduction == "none" else out


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities `input` (N, C, *d) at class indices `target` (N, *d)."""
    reduction = reduction_of(size_average, reduce, reduction)
    _not_differentiable("nll_loss_forward", weight=weight)
    x, t, unbatched = _class_problem("nll_loss", input, target, weight, False)
    out = NllLoss(reduction, int(ignore_index), weight is not None)(x, t, *_weights(weight))
    return out.squeeze(0) if unbatched and reduction == "none" else out


def _pair(input: Tensor, target: Tensor, warn: bool = True) -> tuple[Tensor, Tensor]:
    if warn and tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)
    return promote(input, target)


def _weighted(loss: Tensor, input: Tensor, weight: Tensor, reduction: str, normalized: bool) -> Tensor:
    """An elementwise loss times `weight` (of input's shape), reduced: 'mean' divides by the weights' sum when
    `normalized` (mse, l1), by the element count otherwise (huber), as PyTorch's."""
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum" or not normalized:
        return loss.sum() if reduction == "sum" else loss.mean()
    return loss.sum() / weight.sum()


def _elementwise(op_cls: type[_Elementwise], input: Tensor, target: Tensor, reduction: str,
                 weight: Tensor | None, normalized: bool, *args: Any) -> Tensor:
    x, y = _pair(input, target)
    if weight is None:
        return op_cls(reduction, *args)(x, y)
    return _weighted(op_cls("none", *args)(x, y), input, weight, reduction, normalized)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    return _elementwise(MseLoss, input, target, reduction_of(size_average, reduce, reduction), weight, True)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    return _elementwise(L1Loss, input, target, reduction_of(size_average, reduce, reduction), weight, True)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    return _elementwise(SmoothL1Loss, input, target, reduction_of(size_average, reduce, reduction), None, True,
                        float(beta))


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    return _elementwise(HuberLoss, input, target, reduction_of(None, None, reduction), weight, False, float(delta))


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """Cross entropy of probabilities `input` against `target`; each log is clamped at -100, as in PyTorch."""
    reduction = reduction_of(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                         f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size.")
    _not_differentiable("binary_cross_entropy", weight=weight)
    a = input.data
    if type(a) is np.ndarray and a.size and (a.min() < 0 or a.max() > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    x, y = promote(input, target)
    return BinaryCrossEntropy(reduction)(x, y, *_weights(weight))


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy of sigmoid(input), computed from the logits without overflow."""
    reduction = reduction_of(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input size ({tuple(input.shape)})")
    _not_differentiable("binary_cross_entropy_with_logits", weight=weight, pos_weight=pos_weight)
    x, y = promote(input, target)
    op = BinaryCrossEntropyWithLogits(reduction, weight is not None, pos_weight is not None)
    return op(x, y, *_weights(weight), *_weights(pos_weight))


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || input) for log-probabilities `input`; 'batchmean' is the true KL divergence per sample."""
    if size_average is not None or reduce is not None or reduction != "batchmean":
        reduction = reduction_of(size_average, reduce, reduction)
        if reduction == "mean" and size_average is None and reduce is None:
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                          "'batchmean' divides only by the batch size, and aligns with the KL div math "
                          "definition.'mean' will be changed to behave the same as 'batchmean' in the next major "
                          "release.", stacklevel=2)
    x, y = promote(input, target)
    return KlDiv(reduction, bool(log_target))(x, y)
