"""Elementwise ops: arithmetic, math, activations, comparisons, logic, casts.

Binary ops take operands already promoted to one dtype (see `common.promote`); broadcasting is numpy's, and
`sum_to` undoes it in backward. Ops with no attributes are instantiated once and shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import Op, apply_inplace
from ..backend import Device, to_device, xp_of
from ..tensor import Tensor
from .common import method, promote, sum_to

__all__ = ["add", "sub", "mul", "div", "neg", "exp", "log", "tanh", "to_device_op"]


# ---- arithmetic -----------------------------------------------------------------------------------------------------

class Add(Op):
    def forward(self, ctx, a, b):
        return a + b

    def backward(self, ctx, g):
        a, b = ctx.inputs
        return (sum_to(g, a.data.shape) if a.requires_grad else None,
                sum_to(g, b.data.shape) if b.requires_grad else None)

    def to_onnx(self, g, a, b):
        return g.op("Add", a, b)


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
        return g.op("Mul", a, b)


class Div(Op):
    """True division of floating operands (integer operands are promoted before)."""

    saves = (0, 1)

    def forward(self, ctx, a, b):
        return a / b

    def backward(self, ctx, g):
        a, b = ctx.inputs
        ga = gb = None
        if a.requires_grad:
            ga = sum_to(g / b, a.data.shape)
        if b.requires_grad:
            gb = sum_to(-g * a / (b * b), b.data.shape)
        return ga, gb

    def to_onnx(self, g, a, b):
        return g.op("Div", a, b)


class Neg(Op):
    def forward(self, ctx, x):
        return -x

    def backward(self, ctx, g):
        return -g

    def to_onnx(self, g, x):
        return g.op("Neg", x)


_ADD, _SUB, _MUL, _DIV, _NEG = Add(), Sub(), Mul(), Div(), Neg()


def _float_operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = promote(a, b)
    if dtypes.category(a.data.dtype) < 2:
        dt = dtypes.get_default_dtype()
        a, b = a.type(dt), b.type(dt)
    return a, b


@method("add", "__add__")
def add(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    if alpha != 1:
        other = mul(other, alpha)
    a, b = promote(input, other)
    return _ADD(a, b)


@method("sub", "subtract", "__sub__")
def sub(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    if alpha != 1:
        other = mul(other, alpha)
    a, b = promote(input, other)
    if a.data.dtype == dtypes.bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    return _SUB(a, b)


@method("mul", "multiply", "__mul__")
def mul(input: Any, other: Any) -> Tensor:
    a, b = promote(input, other)
    return _MUL(a, b)


@method("div", "divide", "true_divide", "__truediv__")
def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    if rounding_mode == "floor":
        return Tensor.floor_divide(input, other) if isinstance(input, Tensor) else Tensor.__rfloordiv__(other, input)
    if rounding_mode == "trunc":
        a, b = promote(input, other)
        if dtypes.category(a.dtype) < 2:
            return _DIV(a.type(dtypes.float64), b.type(dtypes.float64)).trunc().type(a.dtype)
        return _DIV(a, b).trunc()
    if rounding_mode is not None:
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {rounding_mode!r}")
    return _DIV(*_float_operands(input, other))


@method("neg", "negative", "__neg__")
def neg(input: Tensor) -> Tensor:
    if input.data.dtype == dtypes.bool:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. Use `~` instead.")
    return _NEG(input)


Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__pos__ = lambda self: self


def _inplace(op: Op, name: str):
    def fn(self: Tensor, other: Any, **kw: Any) -> Tensor:
        if not isinstance(other, Tensor) or other.data.dtype != self.data.dtype:
            other = Tensor(xp_of(self.data).asarray(other.data if isinstance(other, Tensor) else other)) \
                if not isinstance(other, Tensor) else other
            dt = dtypes.result_type(self.data, other.data)
            if dt != self.data.dtype:
                if dtypes.category(dt) > dtypes.category(self.data.dtype):
                    raise RuntimeError(f"result type {dtypes.name(dt)} can't be cast to the desired output type "
                                       f"{dtypes.name(self.data.dtype)}")
            other = other.type(self.data.dtype) if other.data.dtype != self.data.dtype else other
        alpha = kw.get("alpha", 1)
        if alpha != 1:
            other = mul(other, alpha)
        return apply_inplace(op, self, other)

    fn.__name__ = name
    return fn


for _name, _op in (("add_", _ADD), ("sub_", _SUB), ("mul_", _MUL), ("div_", _DIV)):
    setattr(Tensor, _name, _inplace(_op, _name))
    setattr(Tensor, f"__i{_name[:-1]}__", getattr(Tensor, _name))
Tensor.__itruediv__ = Tensor.div_
del Tensor.__idiv__


# ---- unary math -----------------------------------------------------------------------------------------------------

class Exp(Op):
    saves_output = True

    def forward(self, ctx, x):
        return xp_of(x).exp(x)

    def backward(self, ctx, g):
        return g * ctx.output()

    def to_onnx(self, g, x):
        return g.op("Exp", x)


class Log(Op):
    saves = (0,)

    def forward(self, ctx, x):
        return xp_of(x).log(x)

    def backward(self, ctx, g):
        return g / ctx.inputs[0]

    def to_onnx(self, g, x):
        return g.op("Log", x)


class Tanh(Op):
    saves_output = True

    def forward(self, ctx, x):
        return xp_of(x).tanh(x)

    def backward(self, ctx, g):
        y = ctx.output()
        return g * (1 - y * y)

    def to_onnx(self, g, x):
        return g.op("Tanh", x)


_EXP, _LOG, _TANH = Exp(), Log(), Tanh()


def _floating(x: Tensor) -> Tensor:
    """Integer inputs of float functions compute in the default dtype, as in PyTorch."""
    return x if dtypes.category(x.data.dtype) >= 2 else x.type(dtypes.get_default_dtype())


@method("exp")
def exp(input: Tensor) -> Tensor:
    return _EXP(_floating(input))


@method("log")
def log(input: Tensor) -> Tensor:
    return _LOG(_floating(input))


@method("tanh")
def tanh(input: Tensor) -> Tensor:
    return _TANH(_floating(input))


# ---- casts and copies -----------------------------------------------------------------------------------------------

class Cast(Op):
    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def forward(self, ctx, x):
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


_CLONE = Clone()


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
                   ("short", dtypes.int16), ("bool", dtypes.bool), ("byte", dtypes.uint8), ("char", dtypes.int8)):
    setattr(Tensor, _name, (lambda dt: lambda self: type_(self, dt))(_dt))
