"""Reductions: sum, mean, var, std, prod, max/min, amax/amin, argmax/argmin, logsumexp, cumsum, all/any, norm.

Every op reduces over `axes` (a sorted tuple, None = all). float16/bfloat16 accumulate in float32 and
integer sum/prod/cumsum in int64, as PyTorch does (numpy's float16 cumsum and bfloat16 sum lose whole
digits otherwise). Backward formulas that pick elements (max, prod at zeros, norms) build their masks as
constant arrays from the saved data, so gradients stay differentiable (create_graph) where they should.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any, ClassVar

import numpy as np

from .. import dtypes
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .common import method, norm_axes, norm_axis

__all__ = ["sum", "mean", "var", "std", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp",
           "cumsum", "all", "any", "norm"]

_LOW_PRECISION = (dtypes.float16, dtypes.bfloat16)
_REAL = {dtypes.complex64: dtypes.float32, dtypes.complex128: dtypes.float64}
max_return = namedtuple("max", ["values", "indices"])
min_return = namedtuple("min", ["values", "indices"])


def kept_shape(shape: tuple, axes: tuple[int, ...] | None) -> tuple:
    """The shape of a keepdim reduction over `axes` (None = all)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def accumulate_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a reduction accumulates in."""
    return dtypes.float32 if dtype in _LOW_PRECISION else dtype


def _reduced_axes(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """PyTorch's reading of `dim`: None or () reduce everything, and a 0-d tensor has no axes."""
    axes = norm_axes(dim, ndim)
    return None if not axes or ndim == 0 else axes


def _count(shape: tuple, axes: tuple[int, ...] | None) -> int:
    return math.prod(shape) if axes is None else math.prod(shape[a] for a in axes)


def _floating(x: Tensor, what: str) -> None:
    if dtypes.category(x.data.dtype) < 2:
        raise RuntimeError(f"{what}: Expected a floating point or complex tensor as input. "
                           f"Got {dtypes.name(x.data.dtype)}")


def _const(like: Tensor, array: Any) -> Tensor:
    """A constant (never differentiated) Tensor from an array computed off `like`'s data."""
    return Tensor(array.astype(like.data.dtype, copy=False))


class _Reduction(Op):
    """A reduction over `axes` (None = all) that keeps the reduced dims when `keepdim`."""

    onnx_op: ClassVar[str] = ""

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def spread(self, t: Tensor, shape: tuple) -> Tensor:
        """A reduced tensor broadcast back over the input's `shape` (a view, no copy)."""
        if not self.keepdim:
            t = t.reshape(kept_shape(shape, self.axes))
        return t.expand(shape)

    def kept(self, a: Any, shape: tuple) -> Any:
        """A reduced raw array with the reduced dims kept, to compare against the input of `shape`."""
        return a if self.keepdim else a.reshape(kept_shape(shape, self.axes))

    def lower(self, g: Any, x: str, op_type: str | None = None, keepdim: bool | None = None) -> str:
        axes = [] if self.axes is None else [g.const(list(self.axes), "int64")]
        keep = self.keepdim if keepdim is None else keepdim
        return g.op(op_type or self.onnx_op, x, *axes, keepdims=int(keep))

    def to_onnx(self, g, x):
        return self.lower(g, x)


class _TypedReduction(_Reduction):
    """A reduction with PyTorch's `dtype=` (the result type; it accumulates in `accumulate_dtype(dtype)`)."""

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool, dtype: np.dtype):
        super().__init__(axes, keepdim)
        self.dtype = dtype

    def result(self, out: Any) -> Any:
        return out.astype(self.dtype, copy=False)

    def grad_back(self, g: Tensor, x: Tensor) -> Tensor:
        """A gradient in the input's dtype."""
        return g if g.data.dtype == x.data.dtype else g.type(x.data.dtype)

    def to_onnx(self, g, x):
        if g.dtype(x) != self.dtype:
            x = g.op("Cast", x, to=self.dtype)
        return self.lower(g, x)


# ---- sum, mean, prod ---------------------------------------------------------------------------------------

class Sum(_TypedReduction):
    onnx_op = "ReduceSum"

    def forward(self, ctx, x):
        return self.result(x.sum(axis=self.axes, keepdims=self.keepdim, dtype=accumulate_dtype(self.dtype)))

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        return self.grad_back(self.spread(g, x.data.shape), x)


class Mean(_TypedReduction):
    onnx_op = "ReduceMean"

    def forward(self, ctx, x):
        return self.result(x.mean(axis=self.axes, keepdims=self.keepdim, dtype=accumulate_dtype(self.dtype)))

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        shape = x.data.shape
        return self.grad_back(self.spread(g, shape) / _count(shape, self.axes), x)


class Prod(_TypedReduction):
    """Product; its gradient is the product of the other elements, exact when the input holds zeros."""

    onnx_op = "ReduceProd"
    saves = (0,)
    saves_output = True

    def forward(self, ctx, x):
        return self.result(x.prod(axis=self.axes, keepdims=self.keepdim, dtype=accumulate_dtype(self.dtype)))

    def backward(self, ctx, g):
        # Away from zeros d(prod)/dx_i = prod / x_i. At a zero the others' product is the product of the
        # input with its zeros set to 1, when that zero is the only one of its slice (else 0). The masks
        # are constants, so the second derivative is right too.
        x = ctx.inputs[0]
        shape = x.data.shape
        zero = x.data == 0
        zf = zero.astype(x.data.dtype)
        safe = x * _const(x, 1 - zf) + _const(x, zf)
        lone = zero.sum(axis=self.axes, keepdims=True) == 1
        others = Prod(self.axes, True, self.dtype)(safe).expand(shape) * _const(x, zf * lone)
        out = self.spread(ctx.output(), shape)
        return self.grad_back(self.spread(g, shape) * (out / safe * _const(x, 1 - zf) + others), x)


def _sum_dtype(x: Tensor, dtype: Any) -> np.dtype:
    """The result dtype of sum/prod/cumsum: `dtype`, else int64 for integers and bool, else the input's."""
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    return dtypes.int64 if dtypes.category(x.data.dtype) < 2 else x.data.dtype


@method("sum")
def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return Sum(_reduced_axes(dim, input.data.ndim), keepdim, _sum_dtype(input, dtype))(input)


@method("mean")
def mean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    dt = input.data.dtype if dtype is None else dtypes.as_dtype(dtype)
    if dtypes.category(dt) < 2:
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating "
                           f"point or complex dtype. Got: {dtypes.name(dt)}")
    return Mean(_reduced_axes(dim, input.data.ndim), keepdim, dt)(input)


@method("prod")
def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"prod(): argument 'dim' must be int, not {type(dim).__name__}")
    return Prod(_reduced_axes(dim, input.data.ndim), keepdim, _sum_dtype(input, dtype))(input)


# ---- var, std ----------------------------------------------------------------------------------------------

class _Moment(_Reduction):
    """Variance (or its square root) with Bessel's `correction`."""

    root: ClassVar[bool] = False
    saves = (0,)

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool, correction: float):
        super().__init__(axes, keepdim)
        self.correction = correction

    def forward(self, ctx, x):
        acc = accumulate_dtype(x.dtype)
        out = x.var(axis=self.axes, ddof=self.correction, keepdims=self.keepdim, dtype=acc)
        if self.root:
            out = xp_of(x).sqrt(out)
        return out.astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        shape = x.data.shape
        centered = x - x.mean(self.axes, keepdim=True)
        scale = self.spread(g, shape) / (_count(shape, self.axes) - self.correction)
        if self.root:
            return centered * (scale / self.spread(ctx.output(), shape))
        return centered * (scale * 2)

    def to_onnx(self, g, x):
        mean = self.lower(g, x, "ReduceMean", keepdim=True)
        center = g.op("Sub", x, mean)
        if not self.correction:
            out = self.lower(g, g.op("Mul", center, center), "ReduceMean")
            return g.op("Sqrt", out) if self.root else out
        shape = g.shape(x)
        reduced = shape if self.axes is None else [shape[a] for a in self.axes]
        if builtins.all(isinstance(n, int) for n in reduced):
            n = g.const(math.prod(reduced) - self.correction, g.dtype(x))
        else:  # a dynamic reduced dim: count = numel(x) / numel(mean)
            n = g.op("Cast", g.op("Div", g.op("Size", x), g.op("Size", mean)), to=g.dtype(x))
            n = g.op("Sub", n, g.const(self.correction, g.dtype(x)))
        out = g.op("Div", self.lower(g, center, "ReduceSumSquare"), n)
        return g.op("Sqrt", out) if self.root else out


class Var(_Moment):
    pass


class Std(_Moment):
    root = True
    saves_output = True


def _moment(cls: type[_Moment], input: Tensor, dim: Any, unbiased: bool | None, keepdim: bool,
            correction: float | None) -> Tensor:
    if isinstance(dim, bool):  # the legacy var(unbiased) overload
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{cls.__name__.lower()}(): pass either unbiased or correction, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    _floating(input, f"{cls.__name__.lower()}()")
    return cls(_reduced_axes(dim, input.data.ndim), keepdim, correction)(input)


@method("var")
def var(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    return _moment(Var, input, dim, unbiased, keepdim, correction)


@method("std")
def std(input: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    return _moment(Std, input, dim, unbiased, keepdim, correction)


# ---- max, min, amax, amin, argmax, argmin ------------------------------------------------------------------

def _bool_reduce(g: Any, x: str, reduce: Any) -> str:
    """`reduce(x)` for a bool `x`: ONNX reduces bools only from opset 20."""
    if g.opset >= 20:
        return reduce(g, x)
    return g.op("Cast", reduce(g, g.op("Cast", x, to=dtypes.uint8)), to=dtypes.bool)


class _Extreme(_Reduction):
    """amax/amin: ties share the gradient evenly, as in PyTorch."""

    saves = (0,)
    saves_output = True
    fn: ClassVar[str] = ""

    def forward(self, ctx, x):
        return getattr(x, self.fn)(axis=self.axes, keepdims=self.keepdim)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        hit = x.data == self.kept(ctx.output().data, x.data.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = hit / hit.sum(axis=self.axes, keepdims=True)
        return self.spread(g, x.data.shape) * _const(x, share)

    def to_onnx(self, g, x):
        if g.dtype(x) == dtypes.bool:
            return _bool_reduce(g, x, self.lower)
        return self.lower(g, x)


class Amax(_Extreme):
    onnx_op, fn = "ReduceMax", "max"


class Amin(_Extreme):
    onnx_op, fn = "ReduceMin", "min"


class _ExtremeDim(Op):
    """max/min along one dim: (values, indices); the gradient goes to the selected (first) index only."""

    saves = (0,)
    fn: ClassVar[str] = ""
    onnx_ops: ClassVar[tuple[str, str]] = ("", "")

    def __init__(self, axis: int, keepdim: bool):
        self.axis, self.keepdim = axis, keepdim

    def forward(self, ctx, x):
        xp = xp_of(x)
        if x.ndim == 0:
            return x.copy(), xp.zeros((), dtypes.int64)
        idx = getattr(x, self.fn)(axis=self.axis, keepdims=True)
        values = xp.take_along_axis(x, idx, self.axis)
        ctx.idx = idx
        if not self.keepdim:
            values, idx = values.squeeze(self.axis), idx.squeeze(self.axis)
        return values, idx.astype(dtypes.int64, copy=False)

    def backward(self, ctx, g, _):
        x = ctx.inputs[0]
        if x.data.ndim == 0:
            return g
        xp = xp_of(x.data)
        shape = x.data.shape
        picked = xp.arange(shape[self.axis]).reshape([-1 if i == self.axis else 1 for i in range(len(shape))])
        if not self.keepdim:
            g = g.reshape(kept_shape(shape, (self.axis,)))
        return g.expand(shape) * _const(x, picked == ctx.idx)

    def to_onnx(self, g, x):
        reduce, arg = self.onnx_ops
        if g.rank(x) == 0:
            return g.op("Identity", x), g.const(0, "int64")
        axes = g.const([self.axis], "int64")
        values = g.op(reduce, x, axes, keepdims=int(self.keepdim))
        return values, g.op(arg, x, axis=self.axis, keepdims=int(self.keepdim))


class Max(_ExtremeDim):
    fn, onnx_ops = "argmax", ("ReduceMax", "ArgMax")


class Min(_ExtremeDim):
    fn, onnx_ops = "argmin", ("ReduceMin", "ArgMin")


class _Arg(Op):
    """argmax/argmin; `axis` None means over the flattened input."""

    onnx_op: ClassVar[str] = ""
    fn: ClassVar[str] = ""

    def __init__(self, axis: int | None, keepdim: bool):
        self.axis, self.keepdim = axis, keepdim

    def forward(self, ctx, x):
        fn = getattr(x, self.fn)
        if self.axis is None:
            out = fn()
            return out.reshape((1,) * x.ndim) if self.keepdim else out
        return fn(axis=self.axis, keepdims=self.keepdim)

    def to_onnx(self, g, x):
        if self.axis is None:
            out = g.op(self.onnx_op, g.op("Reshape", x, g.const([-1], "int64")), axis=0, keepdims=0)
            return g.op("Reshape", out, g.const([1] * g.rank(x), "int64")) if self.keepdim else out
        return g.op(self.onnx_op, x, axis=self.axis, keepdims=int(self.keepdim))


class ArgMax(_Arg):
    onnx_op, fn = "ArgMax", "argmax"


class ArgMin(_Arg):
    onnx_op, fn = "ArgMin", "argmin"


def _extreme(amax_cls: type[_Extreme], dim_cls: type[_ExtremeDim], fallback: str, input: Tensor, dim: Any,
             keepdim: bool) -> Any:
    if isinstance(dim, Tensor):  # max(input, other) is the elementwise maximum
        return getattr(Tensor, fallback)(input, dim)
    if dim is None:
        return amax_cls(None, False)(input)
    axis = norm_axis(int(dim), input.data.ndim)
    values, indices = dim_cls(axis, keepdim)(input)
    return (max_return if dim_cls is Max else min_return)(values, indices)


@method("max")
def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """The largest element; with `dim`, (values, indices) along it; with a tensor, the elementwise maximum."""
    return _extreme(Amax, Max, "maximum", input, dim, keepdim)


@method("min")
def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """The smallest element; with `dim`, (values, indices) along it; with a tensor, the elementwise min."""
    return _extreme(Amin, Min, "minimum", input, dim, keepdim)


@method("amax")
def amax(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return Amax(_reduced_axes(dim, input.data.ndim), keepdim)(input)


@method("amin")
def amin(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    return Amin(_reduced_axes(dim, input.data.ndim), keepdim)(input)


def _arg(cls: type[_Arg], input: Tensor, dim: int | None, keepdim: bool) -> Tensor:
    if dim is None:
        return cls(None, keepdim)(input)
    axis = norm_axis(int(dim), input.data.ndim)
    return cls(None, False)(input) if input.data.ndim == 0 else cls(axis, keepdim)(input)


@method("argmax")
def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg(ArgMax, input, dim, keepdim)


@method("argmin")
def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg(ArgMin, input, dim, keepdim)


# ---- logsumexp, cumsum -------------------------------------------------------------------------------------

class LogSumExp(_Reduction):
    """log(sum(exp(x))), shifted by the max so large inputs neither overflow nor lose precision."""

    onnx_op = "ReduceLogSumExp"
    saves = (0,)
    saves_output = True

    def forward(self, ctx, x):
        xp = xp_of(x)
        work = x.astype(accumulate_dtype(x.dtype), copy=False)
        shift = work.max(axis=self.axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        out = xp.log(xp.exp(work - shift).sum(axis=self.axes, keepdims=True)) + shift
        if not self.keepdim:
            out = out.reshape(()) if self.axes is None else out.squeeze(self.axes)
        return out.astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        shape = x.data.shape
        return self.spread(g, shape) * (x - self.spread(ctx.output(), shape)).exp()


class CumSum(Op):
    """Inclusive cumulative sum; `reverse` sums from the end (the backward of the forward sum)."""

    def __init__(self, axis: int, dtype: np.dtype, reverse: bool = False):
        self.axis, self.dtype, self.reverse = axis, dtype, reverse

    def forward(self, ctx, x):
        xp = xp_of(x)
        if x.ndim == 0:
            return x.astype(self.dtype)
        if self.reverse:
            x = xp.flip(x, self.axis)
        out = xp.cumsum(x, self.axis, dtype=accumulate_dtype(self.dtype)).astype(self.dtype, copy=False)
        return xp.ascontiguousarray(xp.flip(out, self.axis)) if self.reverse else out

    def backward(self, ctx, g):
        src = ctx.inputs[0].data.dtype
        out = CumSum(self.axis, g.data.dtype, not self.reverse)(g)
        return out if out.data.dtype == src else out.type(src)

    def to_onnx(self, g, x):
        scalar = g.rank(x) == 0
        if g.dtype(x) != self.dtype:
            x = g.op("Cast", x, to=self.dtype)
        if scalar:
            return g.op("Identity", x)
        return g.op("CumSum", x, g.const(self.axis, "int64"), reverse=int(self.reverse))


@method("logsumexp")
def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    if dtypes.category(input.data.dtype) < 2:
        input = input.type(dtypes.get_default_dtype())
    return LogSumExp(_reduced_axes(dim, input.data.ndim), keepdim)(input)


@method("cumsum")
def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return CumSum(norm_axis(int(dim), input.data.ndim), _sum_dtype(input, dtype))(input)


# ---- all, any ----------------------------------------------------------------------------------------------

class _Logical(_Reduction):
    """all/any; the result is bool (uint8 for uint8 input, as in PyTorch)."""

    fn: ClassVar[str] = ""

    def forward(self, ctx, x):
        out = getattr(x, self.fn)(axis=self.axes, keepdims=self.keepdim)
        return out.astype(dtypes.uint8) if x.dtype == dtypes.uint8 else out

    def to_onnx(self, g, x):
        src = g.dtype(x)
        if src != dtypes.bool:
            x = g.op("Cast", x, to=dtypes.bool)
        out = x if self.axes == () else _bool_reduce(g, x, self.lower)
        return g.op("Cast", out, to=dtypes.uint8) if src == dtypes.uint8 else out


class ReduceAll(_Logical):
    onnx_op, fn = "ReduceMin", "all"


class ReduceAny(_Logical):
    onnx_op, fn = "ReduceMax", "any"


def _logical_axes(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """all/any read dim=() as "reduce nothing" (unlike sum), as PyTorch does."""
    return () if isinstance(dim, (tuple, list)) and not dim else _reduced_axes(dim, ndim)


@method("all")
def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return ReduceAll(_logical_axes(dim, input.data.ndim), keepdim)(input)


@method("any")
def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return ReduceAny(_logical_axes(dim, input.data.ndim), keepdim)(input)


# ---- norm --------------------------------------------------------------------------------------------------

class Norm(_Reduction):
    """The vector p-norm over `axes`; its gradient is 0 where the norm is 0, as in PyTorch."""

    saves = (0,)
    saves_output = True

    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool, p: float):
        super().__init__(axes, keepdim)
        self.p = p

    def forward(self, ctx, x):
        xp, p, kw = xp_of(x), self.p, {"axis": self.axes, "keepdims": self.keepdim}
        work = x.astype(accumulate_dtype(x.dtype), copy=False)
        a = xp.abs(work)
        if p == 2:
            out = xp.sqrt((a * a).sum(**kw))
        elif p == 1:
            out = a.sum(**kw)
        elif p == math.inf:
            out = a.max(**kw)
        elif p == -math.inf:
            out = a.min(**kw)
        elif p == 0:
            out = (a != 0).sum(**kw)
        else:
            out = (a ** p).sum(**kw) ** (1 / p)
        return out.astype(_REAL.get(x.dtype, x.dtype), copy=False)

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        shape = x.data.shape
        p, xd = self.p, x.data
        if p == 0:
            return None
        xp = xp_of(xd)
        sign = xp.sign(xd)
        g = self.spread(g, shape)
        if p == 1:
            return g * _const(x, sign)
        out = self.kept(ctx.output().data, shape)
        if p in (math.inf, -math.inf):
            hit = xp.abs(xd) == out
            return g * _const(x, sign * hit / hit.sum(axis=self.axes, keepdims=True))
        zero = (out == 0).astype(xd.dtype)
        norm = self.spread(ctx.output(), shape) + _const(x, xp.broadcast_to(zero, shape))  # 1 where it is 0
        if p == 2:
            return x * (g / norm)
        scale = g / norm ** (p - 1) * _const(x, xp.broadcast_to(1 - zero, shape))
        if p < 1:  # |x|^(p-1) is infinite at 0: compute it at 1 there and mask it out
            z = (xd == 0).astype(xd.dtype)
            mag = (x * _const(x, sign) + _const(x, z)) ** (p - 1) * _const(x, sign)
        else:
            mag = (x * _const(x, sign)) ** (p - 1) * _const(x, sign)
        return mag * scale

    def to_onnx(self, g, x):
        p = self.p
        if p == 2:
            return self.lower(g, x, "ReduceL2")
        if p == 1:
            return self.lower(g, x, "ReduceL1")
        if p in (math.inf, -math.inf):
            return self.lower(g, g.op("Abs", x), "ReduceMax" if p > 0 else "ReduceMin")
        if p == 0:
            nonzero = g.op("Not", g.op("Equal", x, g.const(0, g.dtype(x))))
            return self.lower(g, g.op("Cast", nonzero, to=g.dtype(x)), "ReduceSum")
        powered = g.op("Pow", g.op("Abs", x), g.const(p, g.dtype(x)))
        return g.op("Pow", self.lower(g, powered, "ReduceSum"), g.const(1 / p, g.dtype(x)))


@method("norm")
def norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """The vector p-norm (2 for 'fro') over `dim` (all by default)."""
    if dtype is not None:
        input = input.type(dtype)
    _floating(input, "linalg.vector_norm")
    if p == "fro":
        if dim is not None and not isinstance(dim, (int, np.integer)) and len(dim) > 2:
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
        p = 2
    elif isinstance(p, str):
        raise NotImplementedError(f"norm(p={p!r}) is not supported; use p='fro' or a number")
    return Norm(_reduced_axes(dim, input.data.ndim), keepdim, float(p))(input)
