"""Shape ops: reshape/view, flatten, permute/transpose, squeeze/unsqueeze, expand, cat/stack,
split/chunk/unbind, pad, narrow, repeat/tile, flip, roll, tril/triu.

View ops (`is_view`) return numpy/cupy views, so the result shares memory and the version counter with its
input as in PyTorch; the ops that copy in PyTorch (cat, pad, flip, roll, ...) never return an array aliasing
their input. Sizes given to reshape/view/expand/unflatten are kept as the user passed them (with -1, and
symbolic during export capture) and resolved in `forward`, so the exporter emits them unbaked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .common import method, norm_axes, norm_axis, sum_to

__all__ = [
    "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "swapdims", "t", "movedim",
    "moveaxis", "squeeze", "unsqueeze", "expand", "broadcast_to", "cat", "concat", "concatenate", "stack",
    "split", "chunk", "unbind", "pad", "narrow", "tile", "flip", "roll", "tril", "triu",
]

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


# ---- size arguments ----------------------------------------------------------------------------------------

def _shape_args(shape: tuple) -> tuple:
    """`f(2, 3)` and `f((2, 3))` alike; numpy ints become ints, symbolic sizes pass through."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) if isinstance(s, (np.integer, Tensor)) else s for s in shape)


def _is_infer(s: Any) -> bool:
    return isinstance(s, int) and s == -1


def infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one -1 in `shape`, with PyTorch's error when the sizes do not fit."""
    shape = tuple(int(s) for s in shape)
    if min(shape, default=0) >= 0:  # the common case: nothing to infer
        if math.prod(shape) != numel:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        return shape
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
    rest = math.prod(s for s in shape if s != -1)  # exactly one -1 is left
    if rest == 0 and numel == 0:
        raise RuntimeError(f"cannot reshape tensor of 0 elements into shape {list(shape)} because the "
                           "unspecified dimension size -1 can be any value and is ambiguous")
    if rest == 0 or numel % rest:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(numel // rest if s == -1 else s for s in shape)


def _viewable(old: tuple, strides: tuple, new: tuple) -> bool:
    """Whether `new` can view memory of shape `old` with element `strides` (PyTorch's computeStride)."""
    if not old or 0 in old:
        return True
    view_d = len(new) - 1
    chunk = strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[d]
        if d == 0 or (old[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if d > 0:
                chunk = strides[d - 1]
                tensor_numel = view_numel = 1
    return view_d == -1


def _strides(a: Any) -> tuple:
    return tuple(s // a.itemsize for s in a.strides)


def _take(x: Any, axis: int, start: int, stop: int) -> Any:
    return x[(slice(None),) * axis + (slice(start, stop),)]


# ---- reshape, view, flatten --------------------------------------------------------------------------------

class Reshape(Op):
    """A view when the strides allow it, else a fresh contiguous copy (as PyTorch's reshape)."""

    is_view = True

    def __init__(self, shape: tuple):
        self.shape = shape  # as the user passed it: -1 and symbolic sizes kept

    def forward(self, ctx, x):
        if x.flags.c_contiguous:
            return x.reshape(self.shape)
        shape = infer_shape(self.shape, x.size)
        if _viewable(x.shape, _strides(x), shape):
            return x.reshape(shape)
        out = xp_of(x).empty(shape, x.dtype)  # a fresh array (base None), so it is not mistaken for a view
        out.reshape(x.shape)[...] = x
        return out

    def backward(self, ctx, g):
        return g.reshape(ctx.inputs[0].data.shape)

    def to_onnx(self, g, x):
        zero = any(type(s) is int and s == 0 for s in self.shape)  # a literal 0 is a size, not "copy dim"
        return g.op("Reshape", x, g.shape_tensor(self.shape), **({"allowzero": 1} if zero else {}))


def _reshape(input: Tensor, shape: tuple, view: bool = False) -> Tensor:
    data = input.data
    resolved = infer_shape(shape, data.size)
    if view and not data.flags.c_contiguous and not _viewable(data.shape, _strides(data), resolved):
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    if resolved == data.shape:
        return input
    return Reshape(shape)(input)


@method("reshape")
def reshape(input: Tensor, *shape: Any) -> Tensor:
    return _reshape(input, _shape_args(shape))


@method("view")
def view(input: Tensor, *shape: Any) -> Tensor:
    """A view with a new shape; raises where the strides make that impossible (reshape copies instead)."""
    if len(shape) == 1 and isinstance(shape[0], (np.dtype, type, str)):
        raise NotImplementedError("view(dtype) (reinterpreting the bits) is not supported: it has no "
                                  "gradient and no ONNX form; use .to(dtype) to convert the values")
    return _reshape(input, _shape_args(shape), view=True)


@method("view_as")
def view_as(input: Tensor, other: Tensor) -> Tensor:
    return view(input, other.shape)


@method("reshape_as")
def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, other.shape)


def _fold(input: Tensor, dim: int, sizes: tuple, span: int) -> tuple:
    """The shape replacing dims `dim .. dim+span-1` by `sizes`; other dims stay as `input.shape` has them
    (so symbolic under capture). A -1 is resolved here only for empty inputs, where it would be ambiguous."""
    if input.data.size == 0 and any(_is_infer(s) for s in sizes):
        n = math.prod(input.data.shape[dim:dim + span])
        rest = math.prod(s for s in sizes if not _is_infer(s))
        if rest == 0:
            raise RuntimeError(f"cannot infer -1 in sizes {list(sizes)} for a dimension of size {n}")
        sizes = tuple(n // rest if _is_infer(s) else s for s in sizes)
    shape = tuple(input.shape)
    return shape[:dim] + tuple(sizes) + shape[dim + span:]


@method("flatten")
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    nd = input.data.ndim
    if nd == 0:
        return _reshape(input, (1,))
    s, e = norm_axis(start_dim, nd), norm_axis(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    return _reshape(input, _fold(input, s, (-1,), e - s + 1))


@method("unflatten")
def unflatten(input: Tensor, dim: int, sizes: Sequence[Any]) -> Tensor:
    d = norm_axis(dim, input.data.ndim)
    sizes = _shape_args((sizes,))
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = input.data.shape[d]
    known = [int(s) for s in sizes if not _is_infer(s)]
    if len(known) < len(sizes) - 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    p = math.prod(known)
    if not (p == n if len(known) == len(sizes) else (n % p == 0 if p else n == 0)):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim "
                           f"{dim} ({n}) in the input tensor")
    return _reshape(input, _fold(input, d, sizes, 1))


# ---- permutations ------------------------------------------------------------------------------------------

class Permute(Op):
    is_view = True

    def __init__(self, dims: tuple[int, ...]):
        self.dims = dims

    def forward(self, ctx, x):
        return x.transpose(self.dims)

    def backward(self, ctx, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return Permute(tuple(inverse))(g)

    def to_onnx(self, g, x):
        return g.op("Transpose", x, perm=list(self.dims))


def _permute(input: Tensor, dims: tuple[int, ...]) -> Tensor:
    return input if dims == tuple(range(len(dims))) else Permute(dims)(input)


@method("permute")
def permute(input: Tensor, *args: Any, dims: Any = None) -> Tensor:
    dims = _shape_args(args or (dims,))
    nd = input.data.ndim
    if len(dims) != nd:
        raise RuntimeError("permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           "length of the desired ordering of dimensions i.e. input.dim() = "
                           f"{nd} is not equal to len(dims) = {len(dims)}")
    dims = tuple(norm_axis(d, nd) for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _permute(input, dims)


@method("transpose", "swapaxes", "swapdims")
def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    nd = input.data.ndim
    a, b = norm_axis(dim0, nd), norm_axis(dim1, nd)
    dims = list(range(nd))
    if nd:
        dims[a], dims[b] = dims[b], dims[a]
    return _permute(input, tuple(dims))


swapaxes = swapdims = transpose


@method("t")
def t(input: Tensor) -> Tensor:
    """Transpose of a matrix; 0-d and 1-D tensors are returned as they are."""
    if input.data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.data.ndim}D")
    return transpose(input, 0, -1)


def _T(input: Tensor) -> Tensor:
    return _permute(input, tuple(range(input.data.ndim - 1, -1, -1)))


def _mT(input: Tensor) -> Tensor:
    if input.data.ndim < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {input.data.ndim}-D tensor.")
    return transpose(input, -2, -1)


Tensor.T = property(_T, doc="All dims reversed (PyTorch deprecates it for ndim != 2; here it just reverses).")
Tensor.mT = property(_mT, doc="The last two dims swapped.")


def _dim_list(d: Any) -> list[int]:
    return [int(d)] if isinstance(d, (int, np.integer)) else [int(v) for v in d]


@method("movedim", "moveaxis")
def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    nd = input.data.ndim
    src, dst = _dim_list(source), _dim_list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain "
                           f"the same number of dims as destination ({dst} dims)")
    src, dst = [norm_axis(d, nd) for d in src], [norm_axis(d, nd) for d in dst]
    for name, ds in (("source", src), ("destination", dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({ds})")
    rest = iter(d for d in range(nd) if d not in src)
    placed = dict(zip(dst, src))
    return _permute(input, tuple(placed[i] if i in placed else next(rest) for i in range(nd)))


moveaxis = movedim


# ---- squeeze, unsqueeze ------------------------------------------------------------------------------------

class Squeeze(Op):
    is_view = True

    def __init__(self, axes: tuple[int, ...]):
        self.axes = axes  # sorted, non-negative, each of size 1

    def forward(self, ctx, x):
        return x.squeeze(self.axes)

    def backward(self, ctx, g):
        return Unsqueeze(self.axes)(g)

    def to_onnx(self, g, x):
        return g.op("Squeeze", x, g.const(list(self.axes), "int64"))


class Unsqueeze(Op):
    is_view = True

    def __init__(self, axes: tuple[int, ...]):
        self.axes = axes  # sorted, non-negative positions in the output

    def forward(self, ctx, x):
        return xp_of(x).expand_dims(x, self.axes)

    def backward(self, ctx, g):
        return Squeeze(self.axes)(g)

    def to_onnx(self, g, x):
        return g.op("Unsqueeze", x, g.const(list(self.axes), "int64"))


@method("squeeze")
def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dims: all of them, or those of `dim` (an int or a tuple) that have size 1."""
    shape = input.data.shape
    axes = norm_axes(dim, input.data.ndim)
    axes = tuple(i for i in (range(len(shape)) if axes is None else axes) if i < len(shape) and shape[i] == 1)
    return Squeeze(axes)(input) if axes else input


@method("unsqueeze")
def unsqueeze(input: Tensor, dim: int) -> Tensor:
    return Unsqueeze((norm_axis(dim, input.data.ndim + 1),))(input)


# ---- expand ------------------------------------------------------------------------------------------------

def _expanded(sizes: tuple, shape: tuple) -> tuple:
    """The concrete target of `expand(*sizes)` (-1 keeps a dim), with PyTorch's errors."""
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to "
                           f"the number of dimensions in the tensor ({len(shape)})")
    out = []
    for i, s in enumerate(sizes):
        if _is_infer(s):
            if i < lead:
                raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                   f"non-existing dimension {i}")
            s = shape[i - lead]
        s = int(s)
        if i >= lead and shape[i - lead] not in (1, s):
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size "
                               f"({shape[i - lead]}) at non-singleton dimension {i}.  Target sizes: "
                               f"{list(sizes)}.  Tensor sizes: {list(shape)}")
        out.append(s)
    return tuple(out)


class Expand(Op):
    is_view = True

    def __init__(self, shape: tuple):
        self.shape = shape  # as the user passed it: -1 and symbolic sizes kept

    def forward(self, ctx, x):
        return xp_of(x).broadcast_to(x, _expanded(self.shape, x.shape))

    def backward(self, ctx, g):
        return sum_to(g, ctx.inputs[0].data.shape)

    def to_onnx(self, g, x):
        # ONNX Expand broadcasts both ways, so a 1 keeps the input's size where PyTorch writes -1
        return g.op("Expand", x, g.shape_tensor(tuple(1 if _is_infer(s) else s for s in self.shape)))


@method("expand", "broadcast_to")
def expand(input: Tensor, *sizes: Any) -> Tensor:
    sizes = _shape_args(sizes)
    if _expanded(sizes, input.data.shape) == input.data.shape:
        return input
    return Expand(sizes)(input)


broadcast_to = expand


@method("expand_as")
def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, other.shape)


# ---- cat, stack --------------------------------------------------------------------------------------------

class Cat(Op):
    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, ctx, *xs):
        ctx.sizes = tuple(x.shape[self.dim] for x in xs)
        return xp_of(xs[0]).concatenate(xs, axis=self.dim)

    def backward(self, ctx, g):
        parts = Split(self.dim, ctx.sizes)(g)
        return tuple(p if t.requires_grad else None for p, t in zip(parts, ctx.inputs))

    def to_onnx(self, g, *xs):
        return g.op("Concat", *xs, axis=self.dim)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along `dim`, promoting dtypes across inputs; 1-D empty tensors are skipped (PyTorch's
    legacy rule)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if x.data.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    dt = dtypes.result_type(*[x.data for x in tensors])
    kept = [(i, x) for i, x in enumerate(tensors) if x.data.shape != (0,)] or list(enumerate(tensors))
    ref = kept[0][1].data.shape
    d = norm_axis(dim, len(ref))
    for i, x in kept:
        shape = x.data.shape
        if len(shape) != len(ref):
            raise RuntimeError(f"Tensors must have same number of dimensions: got {len(ref)} and {len(shape)}")
        for k, (a, b) in enumerate(zip(ref, shape)):
            if k != d and a != b:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size {a} "
                                   f"but got size {b} for tensor number {i} in the list.")
    return Cat(d)(*[x if x.data.dtype == dt else x.type(dt) for _, x in kept])


concat = cat


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    return cat(tensors, axis)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    ref = tensors[0].data.shape
    for i, x in enumerate(tensors):
        if x.data.shape != ref:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 "
                               f"and {list(x.data.shape)} at entry {i}")
    d = norm_axis(dim, len(ref) + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)


# ---- split, chunk, unbind, narrow --------------------------------------------------------------------------

def _even_split(total: int, k: int) -> tuple[int, ...]:
    """ONNX Split's `num_outputs` rule: pieces of ceil(total / k), the last one smaller."""
    size = -(-total // k)
    return tuple(min(size, total - i * size) for i in range(k))


class Split(Op):
    is_view = True

    def __init__(self, dim: int, sizes: tuple[int, ...]):
        self.dim, self.sizes = dim, sizes

    def forward(self, ctx, x):
        bounds = np.cumsum((0, *self.sizes)).tolist()
        return tuple(_take(x, self.dim, a, b) for a, b in itertools.pairwise(bounds))

    def backward(self, ctx, *gs):
        return Cat(self.dim)(*gs)

    def to_onnx(self, g, x):
        k = len(self.sizes)
        if k > 1 and self.sizes == _even_split(sum(self.sizes), k):  # no baked sizes: fits dynamic dims
            out = g.op("Split", x, axis=self.dim, num_outputs=k, outputs=k)
        else:
            out = g.op("Split", x, g.const(list(self.sizes), "int64"), axis=self.dim, outputs=k)
        return out if isinstance(out, tuple) else (out,)


@method("split")
def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of `split_size` along `dim` (the last one smaller), or pieces of the listed sizes."""
    d = norm_axis(dim, tensor.data.ndim)
    n = tensor.data.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n != 0):
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = tuple(min(size, n - i) for i in range(0, n, size)) if n else (0,)
    else:
        sizes = tuple(int(s) for s in split_size_or_sections)
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                               f"size at dimension {d}), but got split_sizes={list(sizes)}")
    return Split(d, sizes)(tensor)


@method("chunk")
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = norm_axis(dim, input.data.ndim)
    n = input.data.shape[d]
    if n == 0:
        return Split(d, (0,) * chunks)(input)
    return split(input, -(-n // chunks), d)


@method("unbind")
def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    if input.data.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = norm_axis(dim, input.data.ndim)
    n = input.data.shape[d]
    if n == 0:
        return ()
    return tuple(Squeeze((d,))(p) for p in Split(d, (1,) * n)(input))


class Narrow(Op):
    is_view = True

    def __init__(self, dim: int, start: int, length: int):
        self.dim, self.start, self.length = dim, start, length

    def forward(self, ctx, x):
        return _take(x, self.dim, self.start, self.start + self.length)

    def backward(self, ctx, g):
        x = ctx.inputs[0].data
        pads = [0] * (2 * (x.ndim - self.dim))
        pads[-2:] = self.start, x.shape[self.dim] - self.start - self.length
        return Pad(tuple(pads), "constant", 0)(g)

    def to_onnx(self, g, x):
        return g.op("Slice", x, g.const([self.start], "int64"), g.const([self.start + self.length], "int64"),
                    g.const([self.dim], "int64"))


@method("narrow")
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """A view of `length` entries of `dim` from `start` (which may be negative)."""
    d = norm_axis(dim, input.data.ndim)
    n = input.data.shape[d]
    start, length = int(start), int(length)
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    start %= max(n, 1)
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    if start == 0 and length == n:
        return input
    return Narrow(d, start, length)(input)


# ---- pad ---------------------------------------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_pairs(pad: tuple, ndim: int) -> list[tuple[int, int, int]]:
    """(axis, before, after) for each padded axis: `pad` lists the last dim first, as PyTorch's F.pad."""
    return [(ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]


def _source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each output position of a non-constant pad of an axis of size `n`, the input position it reads.
    Negative pads crop first, then the rest is padded from the cropped part (PyTorch's order)."""
    c0 = max(-lo, 0)
    m = n - c0 - max(-hi, 0)
    j = np.arange(-max(lo, 0), m + max(hi, 0))
    if mode == "reflect":
        j = np.abs(j)
        j = np.where(j > m - 1, 2 * (m - 1) - j, j)
    elif mode == "replicate":
        j = np.clip(j, 0, m - 1)
    else:
        j = j % m
    return j + c0


def _constant_pad(x: Any, pad: tuple, value: Any) -> Any:
    xp = xp_of(x)
    crop: list[Any] = [slice(None)] * x.ndim
    widths = [(0, 0)] * x.ndim
    for axis, lo, hi in _pad_pairs(pad, x.ndim):
        crop[axis] = slice(max(-lo, 0), x.shape[axis] - max(-hi, 0))
        widths[axis] = (max(lo, 0), max(hi, 0))
    fill = np.asarray(value).astype(x.dtype).item()  # PyTorch casts the value to the tensor's dtype
    return xp.pad(x[tuple(crop)], widths, constant_values=fill)


class Pad(Op):
    """F.pad: `pad` is (before, after) pairs from the last dim backwards; negative pads crop."""

    def __init__(self, pad: tuple[int, ...], mode: str, value: float):
        self.pad, self.mode, self.value = pad, mode, value

    def forward(self, ctx, x):
        if self.mode == "constant":
            return _constant_pad(x, self.pad, self.value)
        xp = xp_of(x)
        out = x
        for axis, lo, hi in _pad_pairs(self.pad, x.ndim):
            if lo or hi:
                out = xp.take(out, xp.asarray(_source_index(x.shape[axis], lo, hi, self.mode)), axis=axis)
        return out.copy() if out is x else out

    def backward(self, ctx, g):
        return _PadAdjoint(self.pad, self.mode, ctx.inputs[0].data.shape)(g)

    def to_onnx(self, g, x):
        pairs = [(a, lo, hi) for a, lo, hi in _pad_pairs(self.pad, g.rank(x)) if lo or hi]
        if not pairs:
            return g.op("Identity", x)
        if self.mode == "constant":
            return _onnx_pad(g, x, pairs, "constant", g.const(self.value, g.dtype(x)))
        if any(lo < 0 or hi < 0 for _, lo, hi in pairs):  # crop first, then pad from the cropped part
            axes = [a for a, _, _ in pairs]
            x = g.op("Slice", x, g.const([max(-lo, 0) for _, lo, _ in pairs], "int64"),
                     g.const([-hi if hi < 0 else _INT64_MAX for _, _, hi in pairs], "int64"),
                     g.const(axes, "int64"))
            pairs = [(a, max(lo, 0), max(hi, 0)) for a, lo, hi in pairs if lo > 0 or hi > 0]
            if not pairs:
                return x
        if self.mode == "circular" and g.opset < 19:  # Pad's "wrap" mode came in opset 19
            for a, lo, hi in pairs:
                parts = [x]
                if lo:
                    parts.insert(0, _onnx_slice(g, x, a, -lo, _INT64_MAX))
                if hi:
                    parts.append(_onnx_slice(g, x, a, 0, hi))
                x = g.op("Concat", *parts, axis=a)
            return x
        return _onnx_pad(g, x, pairs, _PAD_MODES[self.mode], None)


def _onnx_pad(g: Any, x: str, pairs: list, mode: str, value: str | None) -> str:
    pads = [lo for _, lo, _ in pairs] + [hi for _, _, hi in pairs]
    axes = g.const([a for a, _, _ in pairs], "int64")
    return g.op("Pad", x, g.const(pads, "int64"), value, axes, mode=mode)


def _onnx_slice(g: Any, x: str, axis: int, start: int, end: int) -> str:
    return g.op("Slice", x, g.const([start], "int64"), g.const([end], "int64"), g.const([axis], "int64"))


class _PadAdjoint(Op):
    """Pad's backward: crops the centre and adds each padded entry back onto the entry it was read from. It is
    linear, and its own backward is the pad again, so higher-order gradients work."""

    def __init__(self, pad: tuple[int, ...], mode: str, shape: tuple):
        self.pad, self.mode, self.shape = pad, mode, shape

    def forward(self, ctx, g):
        if self.mode == "constant":
            return _constant_pad(g, tuple(-p for p in self.pad), 0)
        xp = xp_of(g)
        for axis, lo, hi in _pad_pairs(self.pad, g.ndim):
            if lo or hi:
                n = self.shape[axis]
                out = xp.zeros((*g.shape[:axis], n, *g.shape[axis + 1:]), g.dtype)
                xp.add.at(out, (slice(None),) * axis + (xp.asarray(_source_index(n, lo, hi, self.mode)),), g)
                g = out
        return g

    def backward(self, ctx, gg):
        return Pad(self.pad, self.mode, 0)(gg)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad; modes 'constant', 'reflect', 'replicate', 'circular'; negative pads crop."""
    pad = tuple(int(p) for p in pad)
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    nd = input.data.ndim
    if len(pad) // 2 > nd:
        raise RuntimeError("Padding length should be less than or equal to two times the input dimension but "
                           f"got padding length {len(pad)} and input of dimension {nd}")
    for axis, lo, hi in _pad_pairs(pad, nd):
        n = input.data.shape[axis]
        m = n - max(-lo, 0) - max(-hi, 0)
        if n + lo + hi < 0 or m < 0:
            raise RuntimeError(f"The input size {n}, plus negative padding {lo} and {hi} resulted in a "
                               f"negative output size, which is invalid. Check dimension {axis} of your input.")
        grow = max(lo, 0), max(hi, 0)
        if mode == "reflect" and max(grow) >= m:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({lo}, {hi}) at dimension {axis} of input "
                               f"{list(input.data.shape)}")
        if mode == "circular" and max(grow) > m:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if mode == "replicate" and max(grow) and m == 0:
            raise RuntimeError(f"padding of an empty dimension ({axis}) with mode 'replicate' is not possible")
    return Pad(pad, mode, 0 if value is None else value)(input)


# ---- repeat, tile ------------------------------------------------------------------------------------------

class Tile(Op):
    def __init__(self, reps: tuple[int, ...]):
        self.reps = reps

    def forward(self, ctx, x):
        return xp_of(x).tile(x, self.reps)

    def backward(self, ctx, g):
        shape = ctx.inputs[0].data.shape
        interleaved = tuple(v for r, n in zip(self.reps, shape) for v in (r, n))
        return g.reshape(interleaved).sum(dim=tuple(range(0, 2 * len(shape), 2)))

    def to_onnx(self, g, x):
        return g.op("Tile", x, g.const(list(self.reps), "int64"))


def _tile(input: Tensor, reps: tuple[int, ...]) -> Tensor:
    """Tile with `len(reps) >= ndim`, adding leading dims as needed."""
    reps = tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(reps)}")
    lead = len(reps) - input.data.ndim
    if lead:
        input = Unsqueeze(tuple(range(lead)))(input)
    return Tile(reps)(input) if reps else input.clone()


@method("repeat")
def repeat(input: Tensor, *sizes: Any) -> Tensor:
    sizes = _shape_args(sizes)
    if len(sizes) < input.data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    return _tile(input, sizes)


@method("tile")
def tile(input: Tensor, dims: Any) -> Tensor:
    """`repeat` where fewer `dims` than the input's get leading 1s (numpy's tile)."""
    dims = _shape_args((dims,) if isinstance(dims, (int, np.integer)) else tuple(dims))
    return _tile(input, (1,) * (input.data.ndim - len(dims)) + dims)


# ---- flip, roll --------------------------------------------------------------------------------------------

class Flip(Op):
    def __init__(self, dims: tuple[int, ...]):
        self.dims = dims

    def forward(self, ctx, x):
        return xp_of(x).flip(x, self.dims).copy()  # flip returns a view; PyTorch's flip copies

    def backward(self, ctx, g):
        return self(g)

    def to_onnx(self, g, x):
        k = len(self.dims)
        return g.op("Slice", x, g.const([-1] * k, "int64"), g.const([_INT64_MIN] * k, "int64"),
                    g.const(list(self.dims), "int64"), g.const([-1] * k, "int64"))


@method("flip")
def flip(input: Tensor, *args: Any, dims: Any = None) -> Tensor:
    dims = _shape_args(args or (dims,))
    axes = norm_axes(dims, input.data.ndim)
    if len(axes) != len(dims):
        raise RuntimeError("flip: dims has duplicates")
    return Flip(axes)(input) if axes else input.clone()


class Roll(Op):
    def __init__(self, shifts: tuple[int, ...], dims: tuple[int, ...] | None):
        self.shifts, self.dims = shifts, dims  # dims None: roll the flattened tensor

    def forward(self, ctx, x):
        return xp_of(x).roll(x, self.shifts[0] if self.dims is None else self.shifts, axis=self.dims)

    def backward(self, ctx, g):
        return Roll(tuple(-s for s in self.shifts), self.dims)(g)

    def to_onnx(self, g, x):
        if self.dims is None:
            shape = g.shape(x)
            n = math.prod(shape) if all(isinstance(s, int) for s in shape) else None
            flat = _onnx_roll(g, g.op("Reshape", x, g.const([-1], "int64")), 0, self.shifts[0], n)
            return g.op("Reshape", flat, g.op("Shape", x))
        shape = g.shape(x)
        for s, d in zip(self.shifts, self.dims):
            x = _onnx_roll(g, x, d, s, shape[d])
        return x


def _onnx_roll(g: Any, x: str, axis: int, shift: int, n: Any) -> str:
    """Concat(x[k:], x[:k]) with k = -shift (mod n where n is known, else |shift| < n is assumed)."""
    k = -shift
    if isinstance(n, int):
        k = k % n if n else 0
    if k == 0:
        return x
    return g.op("Concat", _onnx_slice(g, x, axis, k, _INT64_MAX), _onnx_slice(g, x, axis, 0, k), axis=axis)


@method("roll")
def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    shifts = tuple(_dim_list(shifts))
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return Roll(shifts, None)(input)
    dims = tuple(norm_axis(d, input.data.ndim) for d in _dim_list(dims))
    if len(dims) != len(shifts):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll(shifts, dims)(input)


# ---- tril, triu --------------------------------------------------------------------------------------------

class Trilu(Op):
    """tril (upper=False) / triu (upper=True) over the last two dims, as ONNX's Trilu."""

    def __init__(self, upper: bool, diagonal: int):
        self.upper, self.diagonal = upper, diagonal

    def forward(self, ctx, x):
        xp = xp_of(x)
        return (xp.triu if self.upper else xp.tril)(x, self.diagonal)

    def backward(self, ctx, g):
        return self(g)

    def to_onnx(self, g, x):
        return g.op("Trilu", x, g.const(self.diagonal, "int64"), upper=int(self.upper))


def _trilu(input: Tensor, upper: bool, diagonal: int) -> Tensor:
    if input.data.ndim < 2:
        raise RuntimeError(f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions")
    return Trilu(upper, int(diagonal))(input)


@method("tril")
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    return _trilu(input, False, diagonal)


@method("triu")
def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    return _trilu(input, True, diagonal)
