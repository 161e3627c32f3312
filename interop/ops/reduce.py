"""Reductions: sum, mean, var, std, prod, max/min, amax/amin, argmax/argmin, logsumexp, cumsum, all/any, norm."""

from __future__ import annotations

from typing import Any

from .. import dtypes
from ..autograd import Op
from ..tensor import Tensor
from .common import method, norm_axes

__all__ = ["sum"]


def kept_shape(shape: tuple, axes: tuple[int, ...] | None) -> tuple:
    """The shape of a keepdim reduction over `axes` (None = all)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Op):
    def __init__(self, axes: tuple[int, ...] | None, keepdim: bool):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, ctx, x):
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, ctx, g):
        shape = ctx.inputs[0].data.shape
        if not self.keepdim:
            g = g.reshape(kept_shape(shape, self.axes))
        return g.expand(shape)

    def to_onnx(self, g, x):
        axes = [] if self.axes is None else [g.const(list(self.axes), "int64")]
        return g.op("ReduceSum", x, *axes, keepdims=int(self.keepdim))


@method("sum")
def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:  # noqa: A001
    if dtype is not None:
        input = input.type(dtype)
    elif dtypes.category(input.data.dtype) < 2:
        input = input.type(dtypes.int64)
    axes = norm_axes(dim, input.data.ndim)
    return Sum(axes, keepdim)(input)
