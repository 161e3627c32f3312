"""Helpers shared by the op families: operand promotion, broadcasting gradients back, axis normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..backend import xp_of
from ..symbolic import SymInt
from ..tensor import Tensor


def operand(x: Any, dtype: np.dtype, like: Tensor) -> Tensor:
    """`x` as a Tensor of `dtype` on `like`'s device: Python scalars and arrays become constants, tensors of another
    dtype get a recorded cast (so gradients flow through it)."""
    if isinstance(x, Tensor):
        return x if x.data.dtype == dtype else x.type(dtype)
    t = Tensor(xp_of(like.data).asarray(x, dtype=dtype))
    if isinstance(x, SymInt) and state.capture is not None:  # a dynamic size as an operand: computed in the graph
        state.capture.sym_const(t, x)
    return t


def promote(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of PyTorch's result dtype."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.data.dtype == b.data.dtype:  # Parameters too
        return a, b
    like = a if isinstance(a, Tensor) else b
    dt = dtypes.result_type(a.data if isinstance(a, Tensor) else a, b.data if isinstance(b, Tensor) else b)
    return operand(a, dt, like), operand(b, dt, like)


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Reduce a broadcast gradient back to `shape` (the one place broadcasting is undone)."""
    gshape = g.data.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and gshape[i + lead] != 1)
    out = g.sum(dim=axes, keepdim=True) if axes else g
    return out.reshape(shape) if out.data.shape != shape else out


def norm_axis(axis: int, ndim: int) -> int:
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(ndim, 1)}, {max(ndim, 1) - 1}], "
                         f"but got {axis})")
    return axis % max(ndim, 1)


def norm_axes(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """`dim` (None, an int or a sequence) as a sorted tuple of non-negative axes; None means all."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        return (norm_axis(int(dim), ndim),)
    axes = tuple(sorted({norm_axis(int(d), ndim) for d in dim}))
    return axes if axes or ndim == 0 else ()


def method(*names: str):
    """Attach a function to Tensor under `names` (an op family registers its own methods)."""

    def deco(fn):
        for n in names:
            setattr(Tensor, n, fn)
        return fn

    return deco
