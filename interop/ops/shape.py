"""Shape ops: reshape/view, flatten, permute, transpose, squeeze/unsqueeze, expand, cat, stack, split, pad, ..."""

from __future__ import annotations

import math
from typing import Any

from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .common import method, sum_to

__all__ = ["reshape", "expand"]


def infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one -1 in `shape`, with PyTorch's error when the sizes do not fit."""
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or numel % rest:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // rest if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


class Reshape(Op):
    is_view = True

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, ctx, x):
        return x.reshape(self.shape)

    def backward(self, ctx, g):
        return g.reshape(ctx.inputs[0].data.shape)

    def to_onnx(self, g, x):
        return g.op("Reshape", x, g.shape_tensor(self.shape))


class Expand(Op):
    is_view = True

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, ctx, x):
        return xp_of(x).broadcast_to(x, self.shape)

    def backward(self, ctx, g):
        return sum_to(g, ctx.inputs[0].data.shape)

    def to_onnx(self, g, x):
        return g.op("Expand", x, g.shape_tensor(self.shape))


def _shape_args(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


@method("reshape", "view")
def reshape(input: Tensor, *shape: Any) -> Tensor:
    shape = infer_shape(_shape_args(shape), input.data.size)
    if shape == input.data.shape:
        return input
    return Reshape(shape)(input)


@method("expand", "broadcast_to")
def expand(input: Tensor, *shape: Any) -> Tensor:
    shape = _shape_args(shape)
    lead = len(shape) - input.data.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({input.data.ndim})")
    shape = tuple(input.data.shape[i - lead] if s == -1 else int(s) for i, s in enumerate(shape))
    if shape == input.data.shape:
        return input
    return Expand(shape)(input)
