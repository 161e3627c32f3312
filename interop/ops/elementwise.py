"""Elementwise ops: arithmetic, math, activations, comparisons, logic, rounding, casts and copies.

Binary ops take operands already promoted to one dtype (`common.promote`: PyTorch's type promotion);
broadcasting is numpy's and `sum_to` undoes it in backward. Ops with no attributes are instantiated once and shared.

One-input ops derive from `_Unary` and write their derivative once, as `grad(F, g, x, y)` over a namespace
`F`: a plain backward evaluates it on raw arrays (no Tensor or autograd overhead, in every training step), a
`create_graph` backward on Tensors (so it is itself differentiable). The two can never drift apart.

Numerics follow PyTorch: sigmoid/softplus/elu never overflow in an unused branch, GELU is exact through a
vectorised erf, and the gradients at kinks are PyTorch's (relu'(0) = 0, abs'(0) = 0, clamp passes the gradient
at its bounds, maximum/minimum split it on ties).
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op, apply_inplace
from ..backend import Device, to_device, xp_of
from ..tensor import Tensor
from .common import method, operand, promote, sum_to

__all__ = [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "fmod", "pow", "neg", "negative", "abs", "absolute", "sign", "exp", "expm1", "log",
    "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "leaky_relu", "elu",
    "gelu", "silu", "softplus", "mish", "hardtanh", "erf", "clamp", "clip", "clamp_min", "clamp_max",
    "where", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal",
    "less", "less_equal", "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "isnan", "isinf", "isfinite", "floor",
    "ceil", "round", "trunc", "fix", "reciprocal", "square", "clone", "to_device_op",
]

_SQRT1_2 = 0.7071067811865476  # 1/sqrt(2)
_2_SQRTPI = 1.1283791670955126  # 2/sqrt(pi)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2*pi)
_SQRT_2_PI = 0.7978845608028654  # sqrt(2/pi)
_KAPPA = 0.044715  # the cubic coefficient of tanh-approximated GELU

_TORCH_NAMES = {
    dtypes.bool: "Bool", dtypes.uint8: "Byte", dtypes.int8: "Char", dtypes.int16: "Short",
    dtypes.int32: "Int", dtypes.int64: "Long", dtypes.float16: "Half", dtypes.bfloat16: "BFloat16",
    dtypes.float32: "Float", dtypes.float64: "Double", dtypes.complex64: "ComplexFloat",
    dtypes.complex128: "ComplexDouble",
}


# ---- array kernels -----------------------------------------------------------------------------------------
# Written for numpy and cupy alike; they work in place on one fresh buffer where they can.

def _empty(x: Any) -> Any:
    """A fresh array like `x`: ufuncs writing into it return arrays, never numpy scalars, even for 0-d."""
    return xp_of(x).empty_like(x)


def _poly(z: Any, coeffs: tuple[float, ...]) -> Any:
    """Horner's rule, highest power first, in one temporary."""
    out = z * coeffs[0]
    for c in coeffs[1:-1]:
        out += c
        out *= z
    out += coeffs[-1]
    return out


# Eigen's float32 erf (also XLA's): x P(x^2) / Q(x^2) on [-4, 4], beyond which erf is +-1 in float32.
_ERF32_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
            -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF32_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
            -1.42647390514189e-02)
# Cephes' float64 erf: x T(x^2) / U(x^2) for |x| < 1, else 1 - exp(-x^2) P(|x|) / Q(|x|) (for 1 <= |x| < 8;
# beyond, erf is +-1 in float64).
_ERF_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
          7.00332514112805075473E3, 5.55923013010394962768E4)
_ERF_U = (1.0, 3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
          2.26290000613890934246E4, 4.92673942608635921086E4)
_ERFC_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
           4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
           9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
_ERFC_Q = (1.0, 1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
           9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
           1.65666309194161350182E3, 5.57535340817727675546E2)


def _erf(x: Any) -> Any:
    """Vectorised erf (numpy has none): within 1e-15 of the true value in float64, a few ulp in float32."""
    xp = xp_of(x)
    dt = x.dtype
    if xp is not np:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x if dt.itemsize >= 4 else x.astype(np.float32)).astype(dt, copy=False)
    if x.ndim == 0:  # keep the in-place arithmetic below on arrays, never numpy scalars
        return _erf(x.reshape(1)).reshape(())
    if dt != dtypes.float64:
        c = np.clip(x, -4.0, 4.0, dtype=np.float32)
        z = c * c
        out = _poly(z, _ERF32_P)
        out *= c
        out /= _poly(z, _ERF32_Q)
        np.clip(out, -1.0, 1.0, out=out)
        return out.astype(dt, copy=False)
    a = np.abs(x)
    z = np.minimum(x * x, 1.0)
    small = _poly(z, _ERF_T)
    small *= x
    small /= _poly(z, _ERF_U)
    b = np.clip(a, 1.0, 8.0)
    big = b * b
    np.negative(big, out=big)
    np.exp(big, out=big)
    big *= _poly(b, _ERFC_P)
    big /= _poly(b, _ERFC_Q)
    np.subtract(1.0, big, out=big)
    np.copysign(big, x, out=big)
    small *= a < 1.0  # both branches are finite: a mask product selects exactly, and far faster than np.where
    big *= a >= 1.0
    big += small
    return big


def _sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)): exp overflows to inf for very negative x and the quotient is the right 0."""
    xp = xp_of(x)
    out = xp.negative(x, out=_empty(x))
    with np.errstate(over="ignore"):
        xp.exp(out, out=out)
    out += 1
    return xp.reciprocal(out, out=out)


def _softplus(x: Any, beta: float = 1.0, threshold: float = math.inf) -> Any:
    """log(1 + exp(beta x)) / beta as max(bx, 0) + log1p(exp(-|bx|)), which never overflows; x itself where
    beta x > threshold."""
    xp = xp_of(x)
    bx = x * beta if beta != 1 else x
    out = xp.abs(bx, out=_empty(x))
    xp.negative(out, out=out)
    xp.exp(out, out=out)
    xp.log1p(out, out=out)
    out += xp.maximum(bx, 0)
    if beta != 1:
        out /= beta
    if threshold != math.inf:
        linear = bx > threshold
        if xp is not np or linear.any():  # numpy's masked copy is slow: skip it when nothing is linear
            xp.copyto(out, x, where=linear)
    return out


class _ArrayMath:
    """numpy or cupy plus what they lack: a derivative formula reads the same on arrays and Tensors."""

    def __init__(self, xp: Any):
        self.xp = xp

    def __getattr__(self, name: str) -> Any:
        return getattr(self.xp, name)

    erf = staticmethod(_erf)
    sigmoid = staticmethod(_sigmoid)
    softplus = staticmethod(_softplus)


@functools.cache
def _array_math(xp: Any) -> _ArrayMath:
    return _ArrayMath(xp)


def _tensor_math() -> Any:
    """This module: its public functions are the Tensor versions of the names in `_ArrayMath`."""
    return sys.modules[__name__]


def _check_int_divisor(b: Any) -> None:
    """Integer division by zero raises, as in PyTorch on the CPU (on CUDA the check would cost a sync)."""
    if type(b) is np.ndarray and (b == 0).any():
        raise ZeroDivisionError("integer division or modulo by zero")


_HALF = frozenset({dtypes.float16, dtypes.bfloat16})


def _silent(backward: Callable) -> Callable:
    """For gradient formulas that compute inf/nan in branches a `where` then discards (0 * inf at a == 0)."""

    @functools.wraps(backward)
    def run(self, ctx, *grads):
        with np.errstate(all="ignore"):
            return backward(self, ctx, *grads)

    return run


def _zeros_like(g: Tensor) -> Tensor:
    return Tensor(xp_of(g.data).zeros_like(g.data))


# ---- the one-input base ------------------------------------------------------------------------------------

class _Unary(Op):
    """A one-input elementwise op: `compute(x)` is its forward on arrays (by default the xp ufunc `fn`),
    `onnx` its ONNX node, `grad(F, g, x, y)` its derivative over arrays or Tensors (`y`: the output, if `saves_output`).

    `opmath`: float16/bfloat16 inputs compute in float32 and round once at the end, as in PyTorch (more
    accurate; numpy would widen bfloat16 mixed with Python floats anyway); off for ops exact in any dtype.
    `quiet`: inf/nan results are legitimate (exp overflow, log(0)); numpy must not warn where PyTorch doesn't.
    """

    fn: ClassVar[str] = ""
    onnx: ClassVar[str] = ""
    opmath: ClassVar[bool] = True
    quiet: ClassVar[bool] = False

    def compute(self, x: Any) -> Any:
        return getattr(xp_of(x), self.fn)(x)

    def forward(self, ctx, x):
        if self.opmath and x.dtype in _HALF:
            return self.forward(ctx, x.astype(np.float32)).astype(x.dtype)
        if self.quiet:
            with np.errstate(all="ignore"):
                return self.compute(x)
        return self.compute(x)

    def grad(self, F: Any, g: Any, x: Any, y: Any) -> Any:
        raise NotImplementedError

    def backward(self, ctx, g):
        x = ctx.inputs[0]
        y = ctx.output() if self.saves_output else None
        if state.grad_enabled:  # create_graph: a differentiable formula
            return self.grad(_tensor_math(), g, x, y)
        gd = g.data
        with np.errstate(all="ignore"):  # inf/nan gradients propagate silently, as in PyTorch
            out = self.grad(_array_math(xp_of(gd)), gd, x.data, None if y is None else y.data)
        if type(out) is not type(gd) or out.dtype != gd.dtype:  # numpy scalars from 0-d math, widened dtypes
            out = xp_of(gd).asarray(out, dtype=gd.dtype)
        return Tensor(out)

    def to_onnx(self, g, x):
        return g.op(self.onnx, x)


class _Flat(_Unary):
    """Piecewise-constant ops (sign and rounding): zero gradient everywhere, as in PyTorch."""

    opmath = False

    def backward(self, ctx, g):
        return _zeros_like(g)


# ---- arithmetic --------------------------------------------------------------------------------------------

class Add(Op):
    def forward(self, ctx, a, b):
        return a + b

    def backward(self, ctx, g):
        a, b = ctx.inputs
        shape = g.data.shape
        return (None if not a.requires_grad else g if a.data.shape == shape else sum_to(g, a.data.shape),
                None if not b.requires_grad else g if b.data.shape == shape else sum_to(g, b.data.shape))

    def to_onnx(self, g, a, b):
        return g.op("Or" if g.dtype(a) == dtypes.bool else "Add", a, b)


class Sub(Op):
    def forward(self, ctx, a, b):
        return a - b

    def backward(self, ctx, g):
        a, b = ctx.inputs
        return (sum_to(g, a.data.shape) if a.requires_grad else None,
                sum_to(-g, b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        return g.op("Sub", a, b)


class Mul(Op):
    saves = (0, 1)

    def forward(self, ctx, a, b):
        return a * b

    def backward(self, ctx, g):
        a, b = ctx.inputs
        return (sum_to(g * b, a.data.shape) if a.requires_grad else None,
                sum_to(g * a, b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        return g.op("And" if g.dtype(a) == dtypes.bool else "Mul", a, b)


class Div(Op):
    """Division: true (floating operands, promoted before), or rounded toward zero ('trunc') or down
    ('floor'), which keep integer dtypes, are exact for integers and have a zero gradient (as in PyTorch)."""

    saves = (0, 1)

    def __init__(self, rounding_mode: str | None = None):
        self.rounding_mode = rounding_mode

    def forward(self, ctx, a, b):
        mode = self.rounding_mode
        xp = xp_of(a)
        if a.dtype.kind == "f" or a.dtype == dtypes.bfloat16:
            with np.errstate(all="ignore"):  # x/0 is +-inf or nan, silently (as in PyTorch)
                if mode is None:
                    return a / b
                return xp.floor_divide(a, b) if mode == "floor" else xp.trunc(a / b)
        _check_int_divisor(b)
        q = xp.floor_divide(a, b)
        if mode == "trunc":  # floor -> trunc: one up where the quotient is negative and inexact
            q = q + (((a - q * b) != 0) & ((a < 0) != (b < 0)))
        return q

    @_silent
    def backward(self, ctx, g):
        a, b = ctx.inputs
        if self.rounding_mode is not None:
            return (_zeros_like(a) if a.requires_grad else None, _zeros_like(b) if b.requires_grad else None)
        ga = gb = None
        if a.requires_grad:
            ga = sum_to(g / b, a.data.shape)
        if b.requires_grad:
            gb = sum_to(-g * a / (b * b), b.data.shape)
        return ga, gb

    def to_onnx(self, g, a, b):
        q = g.op("Div", a, b)
        mode, dt = self.rounding_mode, g.dtype(a)
        if mode is None:
            return q
        if dtypes.is_floating_point(dt):
            return g.op("Floor", q) if mode == "floor" else _onnx_trunc(g, q)
        if mode == "trunc":  # ONNX integer Div truncates
            return q
        r = g.op("Sub", a, g.op("Mul", q, b))
        return g.op("Sub", q, g.op("Cast", _onnx_sign_mismatch(g, r, b, dt), to=dt))


class Remainder(Op):
    """a - floor(a / b) * b: the result takes the divisor's sign (Python's %)."""

    saves = (0, 1)

    def forward(self, ctx, a, b):
        if a.dtype.kind in "biu":
            _check_int_divisor(b)
        with np.errstate(all="ignore"):
            return xp_of(a).remainder(a, b)

    @_silent
    def backward(self, ctx, g):
        a, b = ctx.inputs
        return (sum_to(g, a.data.shape) if a.requires_grad else None,
                sum_to(-g * div(a, b, rounding_mode="floor"), b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        dt = g.dtype(a)
        if not dtypes.is_floating_point(dt):
            return g.op("Mod", a, b, fmod=0)
        r = g.op("Mod", a, b, fmod=1)  # ONNX wants fmod=1 for floats: move it to the divisor's sign
        return g.op("Where", _onnx_sign_mismatch(g, r, b, dt), g.op("Add", r, b), r)


class Fmod(Op):
    """a - trunc(a / b) * b: the result takes the dividend's sign (C's fmod)."""

    saves = (0, 1)

    def forward(self, ctx, a, b):
        if a.dtype.kind in "biu":
            _check_int_divisor(b)
        with np.errstate(all="ignore"):
            return xp_of(a).fmod(a, b)

    @_silent
    def backward(self, ctx, g):
        a, b = ctx.inputs
        return (sum_to(g, a.data.shape) if a.requires_grad else None,
                sum_to(-g * div(a, b, rounding_mode="trunc"), b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        return g.op("Mod", a, b, fmod=1)


def _onnx_sign_mismatch(g: Any, r: str, b: str, dt: np.dtype) -> str:
    """r != 0 and sign(r) != sign(b): where a truncated quotient/remainder needs the floor correction."""
    zero = g.const(0, dt)
    return g.op("And", g.op("Not", g.op("Equal", r, zero)),
                g.op("Xor", g.op("Less", r, zero), g.op("Less", b, zero)))


def _onnx_trunc(g: Any, x: str) -> str:
    """ONNX has no Trunc: sign(x) * floor(|x|)."""
    return g.op("Mul", g.op("Sign", x), g.op("Floor", g.op("Abs", x)))


class Pow(Op):
    """a ** b with a tensor exponent (a scalar exponent is `PowScalar`)."""

    saves = (0, 1)
    saves_output = True

    def forward(self, ctx, a, b):
        if a.dtype.kind in "iu" and type(b) is np.ndarray and (b < 0).any():
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        with np.errstate(all="ignore"):
            return xp_of(a).power(a, b)

    @_silent
    def backward(self, ctx, g):
        a, b = ctx.inputs
        ga = gb = None
        if a.requires_grad:  # b a^(b-1), and 0 where b == 0 (even at a == 0)
            ga = sum_to(where(b == 0, 0.0, g * b * a ** (b - 1)), a.data.shape)
        if b.requires_grad:  # a^b log(a), and 0 where a == 0 and b >= 0 (PyTorch's convention)
            y = ctx.output()
            skip = (a == 0) & (b >= 0)
            gb = sum_to(where(skip, 0.0, g * y * log(where(skip, 1.0, a))), b.data.shape)
        return ga, gb

    def to_onnx(self, g, a, b):
        return g.op("Pow", a, b)


class PowScalar(_Unary):
    """x ** exponent for a Python-number exponent (numpy's fast paths for 2, 0.5, -1, ...)."""

    saves = (0,)
    quiet = True

    def __init__(self, exponent: float):
        self.exponent = exponent

    def compute(self, x):
        return x ** self.exponent

    def grad(self, F, g, x, y):
        return g * self.exponent * x ** (self.exponent - 1)

    def backward(self, ctx, g):
        return _zeros_like(g) if self.exponent == 0 else super().backward(ctx, g)

    def to_onnx(self, g, x):
        dt = g.dtype(x)
        return g.op("Pow", x, g.const(self.exponent, dt if dt.itemsize >= 4 else dtypes.float32))


class _Extremum(Op):
    """maximum/minimum: the gradient goes to the winner, split 0.5/0.5 on ties (as in PyTorch)."""

    saves = (0, 1)
    wins: ClassVar[Callable[[Any, Any], Any]]

    def forward(self, ctx, a, b):
        return getattr(xp_of(a), self.fn)(a, b)

    def backward(self, ctx, g):
        a, b = ctx.inputs
        tie = (g * 0.5) * (a == b)
        return (sum_to(g * self.wins(a, b) + tie, a.data.shape) if a.requires_grad else None,
                sum_to(g * self.wins(b, a) + tie, b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        return g.op(self.onnx, a, b)


class Maximum(_Extremum):
    fn, onnx, wins = "maximum", "Max", operator.gt


class Minimum(_Extremum):
    fn, onnx, wins = "minimum", "Min", operator.lt


# ---- unary math --------------------------------------------------------------------------------------------

class Neg(_Unary):
    fn, onnx = "negative", "Neg"
    opmath = False

    def grad(self, F, g, x, y):
        return -g


class Abs(_Unary):
    fn, onnx = "abs", "Abs"
    saves = (0,)
    opmath = False

    def grad(self, F, g, x, y):
        return g * F.sign(x)


class Exp(_Unary):
    fn, onnx = "exp", "Exp"
    saves_output = True
    quiet = True

    def grad(self, F, g, x, y):
        return g * y


class Expm1(_Unary):
    fn = "expm1"
    saves_output = True
    quiet = True

    def grad(self, F, g, x, y):
        return g * (y + 1)

    def to_onnx(self, g, x):
        return g.op("Sub", g.op("Exp", x), g.const(1, g.dtype(x)))


class Log(_Unary):
    fn, onnx = "log", "Log"
    saves = (0,)
    quiet = True

    def grad(self, F, g, x, y):
        return g / x


class Log1p(_Unary):
    fn = "log1p"
    saves = (0,)
    quiet = True

    def grad(self, F, g, x, y):
        return g / (x + 1)

    def to_onnx(self, g, x):
        return g.op("Log", g.op("Add", x, g.const(1, g.dtype(x))))


class Sqrt(_Unary):
    fn, onnx = "sqrt", "Sqrt"
    saves_output = True
    quiet = True

    def grad(self, F, g, x, y):
        return g / (y * 2)


class Rsqrt(_Unary):
    saves_output = True
    quiet = True

    def compute(self, x):
        xp = xp_of(x)
        out = xp.sqrt(x, out=_empty(x))
        return xp.reciprocal(out, out=out)

    def grad(self, F, g, x, y):
        return g * y * y * y * -0.5

    def to_onnx(self, g, x):
        return g.op("Reciprocal", g.op("Sqrt", x))


class Reciprocal(_Unary):
    fn, onnx = "reciprocal", "Reciprocal"
    saves_output = True
    quiet = True

    def grad(self, F, g, x, y):
        return -g * y * y


class Sin(_Unary):
    fn, onnx = "sin", "Sin"
    saves = (0,)

    def grad(self, F, g, x, y):
        return g * F.cos(x)


class Cos(_Unary):
    fn, onnx = "cos", "Cos"
    saves = (0,)

    def grad(self, F, g, x, y):
        return -g * F.sin(x)


class Tan(_Unary):
    fn, onnx = "tan", "Tan"
    saves_output = True
    quiet = True

    def grad(self, F, g, x, y):
        return g * (y * y + 1)


class Tanh(_Unary):
    fn, onnx = "tanh", "Tanh"
    saves_output = True

    def grad(self, F, g, x, y):
        return g * (1 - y * y)


class Erf(_Unary):
    onnx = "Erf"
    saves = (0,)

    def compute(self, x):
        return _erf(x)

    def grad(self, F, g, x, y):
        return g * F.exp(-(x * x)) * _2_SQRTPI


# ---- activations -------------------------------------------------------------------------------------------

class Sigmoid(_Unary):
    onnx = "Sigmoid"
    saves_output = True

    def compute(self, x):
        return _sigmoid(x)

    def grad(self, F, g, x, y):
        return g * y * (1 - y)


class Relu(_Unary):
    onnx = "Relu"
    saves_output = True
    opmath = False

    def compute(self, x):
        return xp_of(x).maximum(x, 0)

    def grad(self, F, g, x, y):
        return g * (y > 0)

    def to_onnx(self, g, x):
        dt = g.dtype(x)  # ONNX Runtime runs Relu on floats only
        return g.op("Relu", x) if dtypes.is_floating_point(dt) else g.op("Max", x, g.const(0, dt))


class LeakyRelu(_Unary):
    saves = (0,)

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def compute(self, x):
        xp, s = xp_of(x), self.negative_slope
        out = xp.multiply(x, s, out=_empty(x))  # max(x, s x) for s <= 1, else min(x, s x): one buffer
        return (xp.maximum if s <= 1 else xp.minimum)(out, x, out=out)

    def grad(self, F, g, x, y):  # mask products, not where: exact for finite g, and far faster on numpy
        return g * (x > 0) + (g * self.negative_slope) * (x <= 0)

    def to_onnx(self, g, x):
        return g.op("LeakyRelu", x, alpha=float(self.negative_slope))


class Elu(_Unary):
    saves = (0,)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def compute(self, x):
        xp = xp_of(x)
        out = xp.minimum(x, 0, out=_empty(x))  # expm1 of the negative part only: no overflow for large x
        xp.expm1(out, out=out)
        out *= self.alpha
        out += xp.maximum(x, 0)  # exact: one of the two terms is 0
        return out

    def grad(self, F, g, x, y):  # alpha exp(x), not y + alpha, which is 0 where expm1(x) rounds to -1
        return g * ((x > 0) + (x <= 0) * (F.exp(F.clip(x, None, 0)) * self.alpha))

    def to_onnx(self, g, x):
        return g.op("Elu", x, alpha=float(self.alpha))


class Gelu(_Unary):
    """x Phi(x), exact through erf or with PyTorch's tanh approximation; the fused ONNX Gelu from opset 20."""

    saves = (0,)

    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def compute(self, x):
        if self.approximate == "none":
            out = _erf(x * _SQRT1_2)
        else:
            xp = xp_of(x)
            out = xp.multiply(x, x, out=_empty(x))
            out *= _KAPPA
            out += 1
            out *= x
            out *= _SQRT_2_PI
            xp.tanh(out, out=out)
        out += 1
        out *= x
        out *= 0.5
        return out

    def grad(self, F, g, x, y):
        if self.approximate == "none":
            cdf = (F.erf(x * _SQRT1_2) + 1) * 0.5
            return g * (cdf + x * F.exp(x * x * -0.5) * _INV_SQRT_2PI)
        x2 = x * x
        t = F.tanh((x2 * _KAPPA + 1) * x * _SQRT_2_PI)
        left = x * 0.5
        return g * ((t + 1) * 0.5 + left * (1 - t * t) * ((x2 * (3 * _KAPPA) + 1) * _SQRT_2_PI))

    def to_onnx(self, g, x):
        if g.opset >= 20:
            return g.op("Gelu", x, approximate=self.approximate)
        dt = g.dtype(x)
        if self.approximate == "none":
            inner = g.op("Erf", g.op("Mul", x, g.const(_SQRT1_2, dt)))
        else:
            cube = g.op("Mul", g.op("Mul", x, x), x)
            arg = g.op("Add", x, g.op("Mul", cube, g.const(_KAPPA, dt)))
            inner = g.op("Tanh", g.op("Mul", arg, g.const(_SQRT_2_PI, dt)))
        half_x = g.op("Mul", x, g.const(0.5, dt))
        return g.op("Mul", half_x, g.op("Add", inner, g.const(1, dt)))


class Silu(_Unary):
    saves = (0,)

    def compute(self, x):
        out = _sigmoid(x)
        out *= x
        return out

    def grad(self, F, g, x, y):
        s = F.sigmoid(x)
        return g * s * (x * (1 - s) + 1)

    def to_onnx(self, g, x):
        # Not ONNX's Swish (opset 24): a function op with no ONNX Runtime kernel, which ORT 1.31 inlines to this
        # very Sigmoid * x at opset 24 and refuses above it.
        return g.op("Mul", x, g.op("Sigmoid", x))


class Softplus(_Unary):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as in PyTorch)."""

    saves = (0,)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta, self.threshold = beta, threshold

    def compute(self, x):
        return _softplus(x, self.beta, self.threshold)

    def grad(self, F, g, x, y):
        bx = x * self.beta
        return g * ((bx > self.threshold) + (bx <= self.threshold) * F.sigmoid(bx))

    def to_onnx(self, g, x):
        dt = g.dtype(x)
        beta, threshold = float(self.beta), float(self.threshold)
        bx = x if beta == 1 else g.op("Mul", x, g.const(beta, dt))
        out = g.op("Softplus", bx)
        if beta != 1:
            out = g.op("Div", out, g.const(beta, dt))
        if math.exp(-threshold) <= dtypes.finfo(dt).eps * max(threshold, 0.0):
            return out  # the linear region differs from softplus by less than an ulp: one fused node
        return g.op("Where", g.op("Greater", bx, g.const(threshold, dt)), x, out)


class Mish(_Unary):
    saves = (0,)

    def compute(self, x):
        out = _softplus(x)
        xp_of(x).tanh(out, out=out)
        out *= x
        return out

    def grad(self, F, g, x, y):
        t = F.tanh(F.softplus(x))
        return g * (t + x * F.sigmoid(x) * (1 - t * t))

    def to_onnx(self, g, x):
        return g.op("Mish", x)


class Clamp(_Unary):
    """Clamp to Python-number bounds (None = unbounded); NaN stays NaN. The gradient passes where
    min <= x <= max, bounds included (PyTorch's clamp)."""

    saves = (0,)
    inclusive: ClassVar[bool] = True

    def __init__(self, min: float | None = None, max: float | None = None):
        self.min, self.max = min, max

    def compute(self, x):
        return xp_of(x).clip(x, self.min, self.max)

    def grad(self, F, g, x, y):
        above, below = (operator.ge, operator.le) if self.inclusive else (operator.gt, operator.lt)
        keep = None
        if self.min is not None:
            keep = above(x, self.min)
        if self.max is not None:
            keep = below(x, self.max) if keep is None else keep & below(x, self.max)
        return g * keep

    def to_onnx(self, g, x):
        dt = g.dtype(x)
        return g.op("Clip", x, None if self.min is None else g.const(self.min, dt),
                    None if self.max is None else g.const(self.max, dt))


class Hardtanh(Clamp):
    """Clamp to [min_val, max_val] whose gradient stops at the bounds themselves (PyTorch's hardtanh)."""

    inclusive = False


class ClampTensor(Op):
    """Clamp to tensor bounds (a missing bound is +-inf or the integer limit): min(max(x, lo), hi)."""

    saves = (0, 1, 2)

    def forward(self, ctx, x, lo, hi):
        xp = xp_of(x)
        return xp.minimum(xp.maximum(x, lo), hi)

    def backward(self, ctx, g):  # PyTorch's clamp_backward / clamp_backward_min_max
        x, lo, hi = ctx.inputs
        gx = glo = ghi = None
        if x.requires_grad:
            gx = sum_to(g * ((x >= lo) & (x <= hi)), x.data.shape)
        if lo.requires_grad:
            glo = sum_to(g * ((x < lo) & (lo < hi)), lo.data.shape)
        if hi.requires_grad:
            ghi = sum_to(g * ((x > hi) | (hi < lo)), hi.data.shape)
        return gx, glo, ghi

    def to_onnx(self, g, x, lo, hi):
        if g.rank(lo) == 0 and g.rank(hi) == 0:
            return g.op("Clip", x, lo, hi)
        return g.op("Min", g.op("Max", x, lo), hi)


class Where(Op):
    saves = (0,)

    def forward(self, ctx, c, a, b):
        return xp_of(a).where(c, a, b)

    def backward(self, ctx, g):
        c, a, b = ctx.inputs  # mask products, not where: as exact for finite g, and far faster on numpy
        return (None, sum_to(g * c, a.data.shape) if a.requires_grad else None,
                sum_to(g * ~c, b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, c, a, b):
        return g.op("Where", c, a, b)


# ---- comparisons, logic, tests -----------------------------------------------------------------------------
# Not differentiable: their outputs are bool (or integer for bitwise ops), which never require grad.

class _Binary(Op):
    """A non-differentiable two-input op: `fn(a, b)` on arrays, `onnx` its node."""

    fn: ClassVar[Callable[[Any, Any], Any]]
    onnx: ClassVar[str] = ""

    def forward(self, ctx, a, b):
        return self.fn(a, b)

    def to_onnx(self, g, a, b):
        return g.op(self.onnx, a, b)


class Eq(_Binary):
    fn, onnx = operator.eq, "Equal"


class Ne(_Binary):
    fn = operator.ne

    def to_onnx(self, g, a, b):
        return g.op("Not", g.op("Equal", a, b))


class Lt(_Binary):
    fn, onnx = operator.lt, "Less"


class Le(_Binary):
    fn, onnx = operator.le, "LessOrEqual"


class Gt(_Binary):
    fn, onnx = operator.gt, "Greater"


class Ge(_Binary):
    fn, onnx = operator.ge, "GreaterOrEqual"


class And(_Binary):
    """& on bool (logical) or integer (bitwise) tensors."""

    fn = operator.and_

    def to_onnx(self, g, a, b):
        return g.op("And" if g.dtype(a) == dtypes.bool else "BitwiseAnd", a, b)


class Or(_Binary):
    fn = operator.or_

    def to_onnx(self, g, a, b):
        return g.op("Or" if g.dtype(a) == dtypes.bool else "BitwiseOr", a, b)


class Xor(_Binary):
    fn = operator.xor

    def to_onnx(self, g, a, b):
        return g.op("Xor" if g.dtype(a) == dtypes.bool else "BitwiseXor", a, b)


class Not(_Unary):
    fn = "invert"
    opmath = False

    def to_onnx(self, g, x):
        return g.op("Not" if g.dtype(x) == dtypes.bool else "BitwiseNot", x)


class _Test(_Unary):
    """isnan/isinf: integer inputs are never NaN or infinite (cast for ONNX, whose tests take floats)."""

    opmath = False

    def to_onnx(self, g, x):
        return g.op(self.onnx, _onnx_float(g, x))


def _onnx_float(g: Any, x: str) -> str:
    return x if dtypes.is_floating_point(g.dtype(x)) else g.op("Cast", x, to=dtypes.float32)


class IsNan(_Test):
    fn, onnx = "isnan", "IsNaN"


class IsInf(_Test):
    fn, onnx = "isinf", "IsInf"


class IsFinite(_Unary):
    fn = "isfinite"
    opmath = False

    def to_onnx(self, g, x):
        x = _onnx_float(g, x)
        return g.op("Not", g.op("Or", g.op("IsNaN", x), g.op("IsInf", x)))


# ---- sign and rounding (floating inputs; integers are returned as they are) --------------------------------

class Sign(_Flat):
    fn, onnx = "sign", "Sign"


class Floor(_Flat):
    fn, onnx = "floor", "Floor"


class Ceil(_Flat):
    fn, onnx = "ceil", "Ceil"


class Trunc(_Flat):
    fn = "trunc"

    def to_onnx(self, g, x):
        return _onnx_trunc(g, x)


class Round(_Flat):
    """Round half to even, at `decimals` decimal places (PyTorch's and ONNX's rule)."""

    def __init__(self, decimals: int = 0):
        self.decimals = decimals

    def compute(self, x):
        return xp_of(x).round(x, self.decimals)

    def to_onnx(self, g, x):
        d = self.decimals
        if d == 0:
            return g.op("Round", x)
        scale = g.const(10.0 ** (d if d > 0 else -d), g.dtype(x))
        if d > 0:
            return g.op("Div", g.op("Round", g.op("Mul", x, scale)), scale)
        return g.op("Mul", g.op("Round", g.op("Div", x, scale)), scale)


# ---- casts and copies --------------------------------------------------------------------------------------

class Cast(Op):
    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def forward(self, ctx, x):
        if x.dtype.kind == "f" and self.dtype.kind in "iub":
            with np.errstate(invalid="ignore"):  # nan/inf -> integer is undefined, silently (as in PyTorch)
                return x.astype(self.dtype)
        return x.astype(self.dtype)

    def backward(self, ctx, g):
        src = ctx.inputs[0].data.dtype
        return g.type(src) if g.data.dtype != src else g

    def to_onnx(self, g, x):
        return g.op("Cast", x, to=self.dtype)


class Clone(Op):
    def forward(self, ctx, x):
        return x.copy()

    def backward(self, ctx, g):
        return g

    def to_onnx(self, g, x):
        return x


class ToDevice(Op):
    """A copy to another device; on export it is the identity (ONNX graphs are device-neutral)."""

    def __init__(self, device: Device):
        self.device = device

    def forward(self, ctx, x):
        return to_device(x, self.device)

    def backward(self, ctx, g):
        return g.to(ctx.inputs[0].device)

    def to_onnx(self, g, x):
        return x


class Copy(Op):
    """`dst.copy_(src)`'s value: src cast to dst's dtype and broadcast to its shape. Only src gets a gradient.
    The output is a broadcast view: `apply_inplace` writes it into dst."""

    def forward(self, ctx, dst, src):
        xp = xp_of(dst)
        try:
            return xp.broadcast_to(src.astype(dst.dtype, copy=False), dst.shape)
        except ValueError:
            n = max(dst.ndim, src.ndim)
            a, b = (1,) * (n - dst.ndim) + dst.shape, (1,) * (n - src.ndim) + src.shape
            dim = max(i for i in range(n) if b[i] not in (1, a[i]))
            raise RuntimeError(f"The size of tensor a ({a[dim]}) must match the size of tensor b ({b[dim]}) at "
                               f"non-singleton dimension {dim}") from None

    def backward(self, ctx, g):
        src = ctx.inputs[1]
        if not src.requires_grad:
            return None, None
        gs = g.type(src.dtype) if g.dtype != src.dtype else g
        return None, sum_to(gs, src.data.shape)

    def to_onnx(self, g, dst, src):
        return g.op("Expand", g.op("Cast", src, to=g.dtype(dst)), g.op("Shape", dst))


# ---- shared instances --------------------------------------------------------------------------------------

_ADD, _SUB, _MUL, _DIV, _NEG = Add(), Sub(), Mul(), Div(), Neg()
_DIV_TRUNC, _DIV_FLOOR, _REMAINDER, _FMOD, _POW = Div("trunc"), Div("floor"), Remainder(), Fmod(), Pow()
_MAXIMUM, _MINIMUM, _WHERE, _CLAMP_T, _COPY = Maximum(), Minimum(), Where(), ClampTensor(), Copy()
_ABS, _EXP, _EXPM1, _LOG, _LOG1P, _SQRT, _RSQRT = Abs(), Exp(), Expm1(), Log(), Log1p(), Sqrt(), Rsqrt()
_RECIPROCAL, _SIN, _COS, _TAN, _TANH, _ERF = Reciprocal(), Sin(), Cos(), Tan(), Tanh(), Erf()
_SIGMOID, _RELU, _SILU, _MISH = Sigmoid(), Relu(), Silu(), Mish()
_EQ, _NE, _LT, _LE, _GT, _GE = Eq(), Ne(), Lt(), Le(), Gt(), Ge()
_AND, _OR, _XOR, _NOT, _ISNAN, _ISINF, _ISFINITE = And(), Or(), Xor(), Not(), IsNan(), IsInf(), IsFinite()
_SIGN, _FLOOR, _CEIL, _TRUNC, _CLONE = Sign(), Floor(), Ceil(), Trunc(), Clone()


# ---- dtype rules -------------------------------------------------------------------------------------------

def _floating(x: Tensor) -> Tensor:
    """Integer and bool inputs of float functions compute in the default dtype, as in PyTorch."""
    return x if dtypes.category(x.data.dtype) >= 2 else x.type(dtypes.get_default_dtype())


def _float_only(x: Tensor, name: str) -> Tensor:
    """NN activations (gelu, silu, ...) have no integer kernels in PyTorch; neither do they here."""
    if dtypes.category(x.data.dtype) < 2:
        raise RuntimeError(f'"{name}" not implemented for \'{_TORCH_NAMES[x.data.dtype]}\'')
    return x


def _integral(x: Tensor, name: str) -> Tensor:
    if dtypes.category(x.data.dtype) > 1:
        raise RuntimeError(f'"{name}" not implemented for \'{_TORCH_NAMES[x.data.dtype]}\'')
    return x


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _check_cast(result: np.dtype, out: np.dtype) -> None:
    """PyTorch's can_cast for in-place results: never float -> integer, integer -> bool, complex -> real."""
    if dtypes.category(result) > dtypes.category(out):
        raise RuntimeError(f"result type {_TORCH_NAMES[result]} can't be cast to the desired output type "
                           f"{_TORCH_NAMES[out]}")


def _is_operand(x: Any) -> bool:
    return isinstance(x, (Tensor, numbers.Number, np.ndarray, np.generic))


# ---- arithmetic functions ----------------------------------------------------------------------------------

def _scaled(input: Any, other: Any, alpha: Any) -> Any:
    """`alpha * other` for add/sub, refusing a float alpha on integer tensors as PyTorch does."""
    if alpha == 1:
        return other
    if isinstance(alpha, float) and dtypes.category(dtypes.result_type(_raw(input), _raw(other))) < 2:
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    return mul(other, alpha) if isinstance(other, Tensor) else other * alpha


@method("add")
def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    return _ADD(*promote(input, _scaled(input, other, alpha)))


@method("sub", "subtract")
def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    a, b = promote(input, _scaled(input, other, alpha))
    if a.data.dtype == dtypes.bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    return _SUB(a, b)


subtract = sub


@method("mul", "multiply")
def mul(input: Any, other: Any) -> Tensor:
    return _MUL(*promote(input, other))


multiply = mul


def _true_operands(input: Any, other: Any) -> tuple[Tensor, Tensor]:
    a, b = promote(input, other)
    if dtypes.category(a.data.dtype) < 2:  # integer true division is floating, as in PyTorch
        dt = dtypes.get_default_dtype()
        a, b = a.type(dt), b.type(dt)
    return a, b


_ROUNDING = {None: _DIV, "trunc": _DIV_TRUNC, "floor": _DIV_FLOOR}


def _div_op(rounding_mode: str | None) -> Div:
    op = _ROUNDING.get(rounding_mode)
    if op is None:
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                           f"{rounding_mode!r}")
    return op


@method("div", "divide", "true_divide")
def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    op = _div_op(rounding_mode)
    return op(*(_true_operands(input, other) if rounding_mode is None else promote(input, other)))


divide = true_divide = div


@method("floor_divide")
def floor_divide(input: Any, other: Any) -> Tensor:
    return _DIV_FLOOR(*promote(input, other))


@method("remainder")
def remainder(input: Any, other: Any) -> Tensor:
    return _REMAINDER(*promote(input, other))


@method("fmod")
def fmod(input: Any, other: Any) -> Tensor:
    return _FMOD(*promote(input, other))


def _pow_scalar_dtype(input: Tensor, exponent: Any) -> np.dtype:
    dt = dtypes.result_type(input.data, exponent)
    if dtypes.category(dt) == 1 and exponent < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return dt


@method("pow")
def pow(input: Any, exponent: Any) -> Tensor:
    """input ** exponent; a Python-number exponent is an attribute (`PowScalar`), a tensor one an input."""
    if isinstance(input, Tensor) and isinstance(exponent, (int, float)):
        dt = _pow_scalar_dtype(input, exponent)
        return PowScalar(exponent)(input if input.dtype == dt else input.type(dt))
    return _POW(*promote(input, exponent))


@method("neg", "negative")
def neg(input: Tensor) -> Tensor:
    if input.data.dtype == dtypes.bool:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    return _NEG(input)


negative = neg


@method("abs", "absolute")
def abs(input: Tensor) -> Tensor:
    if input.data.dtype == dtypes.bool:
        raise RuntimeError("\"abs\" not implemented for 'Bool'")
    return _ABS(input)


absolute = abs


@method("reciprocal")
def reciprocal(input: Tensor) -> Tensor:
    return _RECIPROCAL(_floating(input))


@method("square")
def square(input: Tensor) -> Tensor:
    return pow(input, 2)


@method("maximum")
def maximum(input: Any, other: Any) -> Tensor:
    return _MAXIMUM(*promote(input, other))


@method("minimum")
def minimum(input: Any, other: Any) -> Tensor:
    return _MINIMUM(*promote(input, other))


# ---- math functions ----------------------------------------------------------------------------------------

@method("exp")
def exp(input: Tensor) -> Tensor:
    return _EXP(_floating(input))


@method("expm1")
def expm1(input: Tensor) -> Tensor:
    return _EXPM1(_floating(input))


@method("log")
def log(input: Tensor) -> Tensor:
    return _LOG(_floating(input))


@method("log1p")
def log1p(input: Tensor) -> Tensor:
    return _LOG1P(_floating(input))


@method("sqrt")
def sqrt(input: Tensor) -> Tensor:
    return _SQRT(_floating(input))


@method("rsqrt")
def rsqrt(input: Tensor) -> Tensor:
    return _RSQRT(_floating(input))


@method("sin")
def sin(input: Tensor) -> Tensor:
    return _SIN(_floating(input))


@method("cos")
def cos(input: Tensor) -> Tensor:
    return _COS(_floating(input))


@method("tan")
def tan(input: Tensor) -> Tensor:
    return _TAN(_floating(input))


@method("tanh")
def tanh(input: Tensor) -> Tensor:
    return _TANH(_floating(input))


@method("erf")
def erf(input: Tensor) -> Tensor:
    return _ERF(_floating(input))


# ---- activations -------------------------------------------------------------------------------------------

@method("sigmoid")
def sigmoid(input: Tensor) -> Tensor:
    return _SIGMOID(_floating(input))


@method("relu")
def relu(input: Tensor) -> Tensor:
    return _RELU(input)


@method("leaky_relu")
def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return LeakyRelu(negative_slope)(_float_only(input, "leaky_relu"))


@method("elu")
def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    return Elu(alpha)(_float_only(input, "elu"))


_GELU = {"none": Gelu("none"), "tanh": Gelu("tanh")}


@method("gelu")
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    op = _GELU.get(approximate)
    if op is None:
        raise RuntimeError("approximate argument must be either none or tanh.")
    return op(_float_only(input, "gelu"))


@method("silu")
def silu(input: Tensor) -> Tensor:
    return _SILU(_float_only(input, "silu"))


@method("softplus")
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus(beta, threshold)(_float_only(input, "softplus"))


@method("mish")
def mish(input: Tensor) -> Tensor:
    return _MISH(_float_only(input, "mish"))


def _bound(x: Tensor, v: Any) -> Any:
    """A Python-number bound in the tensor's dtype (for integers truncated and saturated, as in PyTorch)."""
    if v is None:
        return None
    if dtypes.category(x.dtype) == 1:
        info = np.iinfo(x.dtype)
        return min(max(int(v), int(info.min)), int(info.max))
    return float(v)


@method("hardtanh")
def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return Hardtanh(_bound(input, min_val), _bound(input, max_val))(input)


def _clamp_args(input: Tensor, min: Any, max: Any) -> tuple[Op, tuple[Tensor, ...]]:
    """The op and operands of clamp: scalar bounds become attributes, tensor bounds inputs."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        dt = dtypes.result_type(input.data, *[b for b in (min, max) if b is not None])
        x = input if input.dtype == dt else input.type(dt)
        return Clamp(_bound(x, min), _bound(x, max)), (x,)
    dt = dtypes.result_type(*[_raw(b) for b in (input, min, max) if b is not None])
    lo, hi = (-math.inf, math.inf) if dtypes.category(dt) >= 2 else (np.iinfo(dt).min, np.iinfo(dt).max)
    return _CLAMP_T, tuple(operand(v, dt, input) for v in (input, lo if min is None else min,
                                                             hi if max is None else max))


@method("clamp", "clip")
def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    op, args = _clamp_args(input, min, max)
    return op(*args)


clip = clamp


@method("clamp_min")
def clamp_min(input: Tensor, min: Any) -> Tensor:
    return clamp(input, min, None)


@method("clamp_max")
def clamp_max(input: Tensor, max: Any) -> Tensor:
    return clamp(input, None, max)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """input where condition holds, else other; either may be a Python scalar."""
    if condition.data.dtype != dtypes.bool:
        if condition.data.dtype != dtypes.uint8:
            raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor with dtype "
                               f"{_TORCH_NAMES[condition.data.dtype]}")
        condition = condition.type(dtypes.bool)
    if isinstance(input, Tensor) or isinstance(other, Tensor):
        a, b = promote(input, other)
    else:
        dt = dtypes.result_type(input, other)
        a, b = operand(input, dt, condition), operand(other, dt, condition)
    return _WHERE(condition, a, b)


Tensor.where = lambda self, condition, other: where(condition, self, other)


# ---- comparisons and logic ---------------------------------------------------------------------------------

def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    return fn


def _compare(op: Op) -> Callable[[Any, Any], Tensor]:
    def fn(input: Any, other: Any) -> Tensor:
        return op(*promote(input, other))

    return _named(fn, type(op).__name__.lower())


eq, ne, lt, le, gt, ge = (_compare(op) for op in (_EQ, _NE, _LT, _LE, _GT, _GE))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
for _names, _fn in ((("eq",), eq), (("ne", "not_equal"), ne), (("lt", "less"), lt),
                    (("le", "less_equal"), le), (("gt", "greater"), gt), (("ge", "greater_equal"), ge)):
    method(*_names)(_fn)


def _logical(op: Op) -> Callable[[Any, Any], Tensor]:
    def fn(input: Any, other: Any) -> Tensor:
        a, b = (x.type(dtypes.bool) if isinstance(x, Tensor) else x for x in (input, other))
        return op(*promote(a, b))

    return _named(fn, f"logical_{type(op).__name__.lower()}")


def _bitwise(op: Op) -> Callable[[Any, Any], Tensor]:
    name = f"bitwise_{type(op).__name__.lower()}"

    def fn(input: Any, other: Any) -> Tensor:
        a, b = promote(input, other)
        return op(_integral(a, f"{name}_cpu"), b)

    return _named(fn, name)


logical_and, logical_or, logical_xor = _logical(_AND), _logical(_OR), _logical(_XOR)
bitwise_and, bitwise_or, bitwise_xor = _bitwise(_AND), _bitwise(_OR), _bitwise(_XOR)
for _name in ("logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"):
    method(_name)(globals()[_name])


@method("logical_not")
def logical_not(input: Tensor) -> Tensor:
    return _NOT(input.type(dtypes.bool))


@method("bitwise_not")
def bitwise_not(input: Tensor) -> Tensor:
    return _NOT(_integral(input, "bitwise_not_cpu"))


@method("isnan")
def isnan(input: Tensor) -> Tensor:
    return _ISNAN(input)


@method("isinf")
def isinf(input: Tensor) -> Tensor:
    return _ISINF(input)


@method("isfinite")
def isfinite(input: Tensor) -> Tensor:
    return _ISFINITE(input)


# ---- sign and rounding -------------------------------------------------------------------------------------

@method("sign")
def sign(input: Tensor) -> Tensor:
    return _SIGN(input)


def _rounding(op: Op) -> Callable[[Tensor], Tensor]:
    def fn(input: Tensor) -> Tensor:  # integers are already whole: a copy, as in PyTorch
        return op(input) if dtypes.category(input.data.dtype) >= 2 else _CLONE(input)

    return _named(fn, type(op).__name__.lower())


floor, ceil, trunc = _rounding(_FLOOR), _rounding(_CEIL), _rounding(_TRUNC)
fix = trunc
for _names, _fn in ((("floor",), floor), (("ceil",), ceil), (("trunc", "fix"), trunc)):
    method(*_names)(_fn)


@method("round")
def round(input: Tensor, *, decimals: int = 0) -> Tensor:
    return _rounding(Round(decimals))(input)


# ---- casts and copies --------------------------------------------------------------------------------------

@method("type")
def type_(input: Tensor, dtype: Any = None) -> Any:
    if dtype is None:
        return f"interop.{dtypes.name(input.data.dtype)}"
    dt = dtypes.as_dtype(dtype)
    return input if input.data.dtype == dt else Cast(dt)(input)


@method("clone")
def clone(input: Tensor) -> Tensor:
    return _CLONE(input)


@method("contiguous")
def contiguous(input: Tensor) -> Tensor:
    return input if input.data.flags.c_contiguous else _CLONE(input)


def to_device_op(input: Tensor, device: Device) -> Tensor:
    return ToDevice(device)(input)


for _name, _dt in (("float", dtypes.float32), ("double", dtypes.float64), ("half", dtypes.float16),
                   ("bfloat16", dtypes.bfloat16), ("long", dtypes.int64), ("int", dtypes.int32),
                   ("short", dtypes.int16), ("bool", dtypes.bool), ("byte", dtypes.uint8),
                   ("char", dtypes.int8)):
    setattr(Tensor, _name, (lambda dt: lambda self: type_(self, dt))(_dt))


# ---- operators ---------------------------------------------------------------------------------------------

def _dunder(fn: Callable[[Any, Any], Tensor], reflected: bool = False,
            fast: Op | None = None) -> Callable[[Tensor, Any], Any]:
    """An operator: NotImplemented for operands that are not numbers or arrays (so `t == None` is False).
    `fast` is the op itself, called directly for two floating tensors of one dtype (no promotion to do): the
    operator path is the per-op overhead of every eager model."""
    if reflected:
        return lambda self, other: fn(other, self) if _is_operand(other) else NotImplemented
    if fast is not None:
        def operator(self: Tensor, other: Any) -> Any:
            if isinstance(other, Tensor) and other.data.dtype is self.data.dtype and self.data.dtype.kind == "f":
                return fast(self, other)
            return fn(self, other) if _is_operand(other) else NotImplemented

        return operator
    return lambda self, other: fn(self, other) if _is_operand(other) else NotImplemented


def _invert(self: Tensor) -> Tensor:
    if dtypes.category(self.data.dtype) > 1:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return _NOT(self)


_FAST = {"add": _ADD, "sub": _SUB, "mul": _MUL, "truediv": _DIV}
for _op, _fn in (("add", add), ("sub", sub), ("mul", mul), ("truediv", div), ("floordiv", floor_divide),
                 ("mod", remainder), ("pow", pow), ("and", bitwise_and), ("or", bitwise_or),
                 ("xor", bitwise_xor)):
    setattr(Tensor, f"__{_op}__", _dunder(_fn, fast=_FAST.get(_op)))
    setattr(Tensor, f"__r{_op}__", _dunder(_fn, reflected=True))
for _op, _fn in (("eq", eq), ("ne", ne), ("lt", lt), ("le", le), ("gt", gt), ("ge", ge)):
    setattr(Tensor, f"__{_op}__", _dunder(_fn))
Tensor.__neg__ = neg
Tensor.__abs__ = abs
Tensor.__invert__ = _invert
Tensor.__pos__ = lambda self: self


# ---- in-place ----------------------------------------------------------------------------------------------
# Each goes through `apply_inplace` (version counter, the leaf and read-only checks). Operands are cast to the
# tensor's dtype first, after checking PyTorch's rule that the op's result type fits it.

def _binary_(op: Op, self: Tensor, other: Any, result: np.dtype | None = None) -> Tensor:
    _check_cast(result or dtypes.result_type(self.data, _raw(other)), self.dtype)
    return apply_inplace(op, self, operand(other, self.dtype, self))


def _unary_(op: Op, self: Tensor, floating: bool = False) -> Tensor:
    if floating and dtypes.category(self.dtype) < 2:
        _check_cast(dtypes.get_default_dtype(), self.dtype)
    return apply_inplace(op, self)


def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    return _binary_(_ADD, self, _scaled(self, other, alpha))


def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    if self.dtype == dtypes.bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return _binary_(_SUB, self, _scaled(self, other, alpha))


def mul_(self: Tensor, other: Any) -> Tensor:
    return _binary_(_MUL, self, other)


def div_(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    if rounding_mode is not None:
        return _binary_(_div_op(rounding_mode), self, other)
    result = dtypes.result_type(self.data, _raw(other))
    return _binary_(_DIV, self, other, result if dtypes.category(result) >= 2 else dtypes.get_default_dtype())


def pow_(self: Tensor, exponent: Any) -> Tensor:
    if isinstance(exponent, numbers.Number):
        _check_cast(_pow_scalar_dtype(self, exponent), self.dtype)
        return apply_inplace(PowScalar(exponent), self)
    return _binary_(_POW, self, exponent)


def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
    op, args = _clamp_args(self, min, max)
    _check_cast(args[0].dtype, self.dtype)
    return apply_inplace(op, self, *[operand(a, self.dtype, self) for a in args[1:]])


def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    """Copy src's values in: broadcast, cast to this dtype, moved to this device (differentiable in src)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    if src.device != self.device:
        src = to_device_op(src, self.device)
    return apply_inplace(_COPY, self, src)


def fill_(self: Tensor, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        if value.data.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.data.ndim} dimensions.")
        return copy_(self, value)
    return apply_inplace(_COPY, self, Tensor(xp_of(self.data).asarray(value, dtype=self.dtype)))


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


for _fn in (add_, sub_, mul_, div_, pow_, clamp_, copy_, fill_, zero_):
    setattr(Tensor, _fn.__name__, _fn)
Tensor.clip_ = clamp_
Tensor.subtract_, Tensor.multiply_, Tensor.divide_, Tensor.true_divide_ = sub_, mul_, div_, div_
Tensor.floor_divide_ = lambda self, other: _binary_(_DIV_FLOOR, self, other)
Tensor.remainder_ = lambda self, other: _binary_(_REMAINDER, self, other)
Tensor.fmod_ = lambda self, other: _binary_(_FMOD, self, other)
Tensor.clamp_min_ = lambda self, min: clamp_(self, min, None)
Tensor.clamp_max_ = lambda self, max: clamp_(self, None, max)

_UNARY_INPLACE = {  # name: (op, whether it computes in floating point)
    "exp": (_EXP, True), "expm1": (_EXPM1, True), "log": (_LOG, True), "log1p": (_LOG1P, True),
    "sqrt": (_SQRT, True), "rsqrt": (_RSQRT, True), "sin": (_SIN, True), "cos": (_COS, True),
    "tan": (_TAN, True), "tanh": (_TANH, True), "erf": (_ERF, True), "reciprocal": (_RECIPROCAL, True),
    "sigmoid": (_SIGMOID, True),
    "neg": (_NEG, False), "negative": (_NEG, False), "abs": (_ABS, False), "absolute": (_ABS, False),
    "relu": (_RELU, False), "sign": (_SIGN, False), "silu": (_SILU, False), "mish": (_MISH, False),
}
for _name, (_op, _fl) in _UNARY_INPLACE.items():
    setattr(Tensor, f"{_name}_", (lambda op, fl: lambda self: _unary_(op, self, floating=fl))(_op, _fl))


def _round_(op: Op, self: Tensor) -> Tensor:
    return self if dtypes.category(self.dtype) < 2 else _unary_(op, self)


Tensor.floor_ = lambda self: _round_(_FLOOR, self)
Tensor.ceil_ = lambda self: _round_(_CEIL, self)
Tensor.trunc_ = Tensor.fix_ = lambda self: _round_(_TRUNC, self)
Tensor.round_ = lambda self, *, decimals=0: _round_(Round(decimals), self)
Tensor.leaky_relu_ = lambda self, negative_slope=0.01: _unary_(LeakyRelu(negative_slope),
                                                               _float_only(self, "leaky_relu"))
Tensor.elu_ = lambda self, alpha=1.0: _unary_(Elu(alpha), _float_only(self, "elu"))
Tensor.hardtanh_ = lambda self, min_val=-1.0, max_val=1.0: _unary_(
    Hardtanh(_bound(self, min_val), _bound(self, max_val)), self)
Tensor.square_ = lambda self: pow_(self, 2)
Tensor.logical_not_ = lambda self: copy_(self, logical_not(self))
Tensor.bitwise_not_ = lambda self: _unary_(_NOT, _integral(self, "bitwise_not_cpu"))
Tensor.__iand__ = lambda self, other: _binary_(_AND, _integral(self, "bitwise_and_cpu"), other)
Tensor.__ior__ = lambda self, other: _binary_(_OR, _integral(self, "bitwise_or_cpu"), other)
Tensor.__ixor__ = lambda self, other: _binary_(_XOR, _integral(self, "bitwise_xor_cpu"), other)
for _op, _fn in (("add", add_), ("sub", sub_), ("mul", mul_), ("truediv", div_),
                 ("floordiv", Tensor.floor_divide_), ("mod", Tensor.remainder_), ("pow", pow_)):
    setattr(Tensor, f"__i{_op}__", _fn)
