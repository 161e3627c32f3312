"""Indexing ops: `x[key]`, `x[key] = v`, gather/scatter, index_select, masked_fill/select, topk/sort, nonzero.

A key splits as in PyTorch: its basic part (ints, slices, None, Ellipsis) is a view (`GetItem`), then its
advanced part (integer index tensors and bool masks) indexes that view (`Index`, a copy). Assignment is one
op on the base (`SetItem`, written in place); with `accumulate` it sums repeated indices, which is how every
gather-like op's backward scatters its gradient back. Index tensors are op inputs, never attributes, so an
exported graph keeps token ids and masks as values instead of baking them in as constants.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op, apply_inplace
from ..backend import xp_of
from ..tensor import Tensor
from .common import method, norm_axis, operand, sum_to

__all__ = [
    "gather", "scatter", "scatter_add", "index_select", "index_put", "masked_fill", "masked_select",
    "take_along_dim", "topk", "sort", "argsort", "nonzero", "argwhere",
]

INT64_MAX = 2**63 - 1
_FULL = (None, None, None)  # the slice `:` in a basic key; a key entry is None, an int or (start, stop, step)
_I64 = np.dtype("int64")

topk_result = namedtuple("topk", ["values", "indices"])
sort_result = namedtuple("sort", ["values", "indices"])


# ---- parsing a key -----------------------------------------------------------------------------------------

def _as_tuple_key(key: Any) -> tuple:
    """PyTorch's rule: a short list holding slices, None, Ellipsis, tensors or sequences is a tuple."""
    if isinstance(key, tuple):
        return key
    nested = (slice, Tensor, np.ndarray, list, tuple)
    if isinstance(key, list) and len(key) < 32 and any(
            k is None or k is Ellipsis or isinstance(k, nested) for k in key):
        return tuple(key)
    return (key,)


def _index_tensor(k: Any, x: Tensor) -> Tensor:
    """An index tensor (integer or bool) on x's device, from a Tensor, numpy array or (nested) list."""
    if isinstance(k, Tensor):
        t = k if k.device == x.device else k.to(x.device)
    else:
        a = np.asarray(k)
        if a.size == 0 and a.dtype.kind == "f":
            a = a.astype(_I64)
        elif a.dtype.kind in "iu" and a.dtype != np.uint8:
            a = a.astype(_I64, copy=False)
        t = Tensor(xp_of(x.data).asarray(a))
    kind = t.dtype.kind
    if t.dtype == np.uint8:  # PyTorch's legacy byte masks
        return t.type(dtypes.bool)
    if kind not in "biu":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return t


def _is_bool_scalar(k: Any) -> bool:
    return isinstance(k, Tensor) and k.dtype == dtypes.bool and k.ndim == 0


def _bound(b: Any) -> Any:
    if b is None or isinstance(b, int):
        return b
    if isinstance(b, (np.integer, Tensor)):
        return int(b)
    if not hasattr(b, "__index__"):
        raise TypeError("slice indices must be integers or None or have an __index__ method")
    return b  # a symbolic size during export: kept, so the ONNX Slice follows the dynamic dim


def _slice(s: slice) -> tuple:
    start, stop, step = _bound(s.start), _bound(s.stop), _bound(s.step)
    if isinstance(step, int):
        if step == 0:
            raise ValueError("slice step cannot be zero")
        if step < 0:
            raise ValueError("step must be greater than zero")
    if (start is None or (isinstance(start, int) and start == 0)) and stop is None and step in (None, 1):
        return _FULL
    return start, stop, step


def _items(key: Any, x: Tensor) -> list:
    """The key's entries as None, Ellipsis, int, slice, index Tensor or ("new", Tensor): a Python bool, which
    PyTorch treats as a new axis indexed by [0] (True) or [] (False)."""
    out: list = []
    xp = xp_of(x.data)
    for k in _as_tuple_key(key):
        if k is None or k is Ellipsis or isinstance(k, slice):
            out.append(k)
        elif isinstance(k, (bool, np.bool_)) or _is_bool_scalar(k):
            out.append(("new", Tensor(xp.zeros(1 if bool(k) else 0, _I64))))
        elif isinstance(k, Tensor) and k.ndim == 0 and k.dtype.kind in "iu" and state.capture is None:
            out.append(int(k))  # eager PyTorch selects (a view); during export it stays a value of the graph
        elif isinstance(k, (Tensor, np.ndarray, list, tuple)):
            out.append(_index_tensor(k, x))
        elif isinstance(k, int):
            out.append(k)  # a symbolic size (an int) during export stays one
        elif isinstance(k, np.integer):
            out.append(int(k))
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                             f"are valid indices (got {type(k).__name__})")
    return out


def _span(item: Any) -> int:
    """How many of the indexed tensor's dims a key entry consumes."""
    if isinstance(item, (int, slice)):
        return 1
    if isinstance(item, Tensor):
        return item.ndim if item.dtype == dtypes.bool else 1
    return 0


def _out_of_bounds(a: Any, n: int, negative: bool = True) -> int | None:
    """The first offending index value, if any (numpy only: on CUDA the check would sync the host)."""
    if type(a) is not np.ndarray or a.size == 0:
        return None
    lo, hi = int(a.min()), int(a.max())
    if hi >= n:
        return hi
    if lo < (-n if negative else 0):
        return lo
    return None


def _check_index(t: Tensor, d: int, shape: tuple) -> None:
    a = t.data
    if a.dtype == dtypes.bool:
        for j, m in enumerate(a.shape):
            if m != shape[d + j]:
                raise IndexError(f"The shape of the mask {list(a.shape)} at index {j} does not match the "
                                 f"shape of the indexed tensor {list(shape)} at index {d + j}")
        return
    bad = _out_of_bounds(a, shape[d])
    if bad is not None:
        raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {shape[d]}")


def _parse(x: Tensor, key: Any) -> tuple[tuple, tuple[int, ...], list[Tensor]]:
    """Split `key` into the basic key of a view, the view dims where index tensors start, and the tensors."""
    items = _items(key, x)
    shape = x.data.shape
    used = sum(_span(i) for i in items)
    if used > len(shape):
        if not shape and any(isinstance(i, int) for i in items):
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                             "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    if sum(i is Ellipsis for i in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    basic: list = []
    pos: list[int] = []
    tensors: list[Tensor] = []
    d = v = 0  # the input dim and the view dim the next entry applies to
    for it in items:
        if it is None:
            basic.append(None)
            v += 1
        elif it is Ellipsis:
            n = len(shape) - used
            basic.extend([_FULL] * n)
            d, v = d + n, v + n
        elif isinstance(it, int):
            if not -shape[d] <= it < shape[d]:
                raise IndexError(f"index {it} is out of bounds for dimension {d} with size {shape[d]}")
            basic.append(it)
            d += 1
        elif isinstance(it, slice):
            basic.append(_slice(it))
            d, v = d + 1, v + 1
        elif isinstance(it, tuple):  # a Python bool: a new axis, indexed
            basic.append(None)
            pos.append(v)
            tensors.append(it[1])
            v += 1
        else:
            _check_index(it, d, shape)
            k = _span(it)
            basic.extend([_FULL] * k)
            pos.append(v)
            tensors.append(it)
            d, v = d + k, v + k
    while basic and basic[-1] == _FULL:
        basic.pop()
    if len(tensors) > 1:
        _broadcast_index_shapes([t.data for t in tensors])
    return tuple(basic), tuple(pos), tensors


def _broadcast_index_shapes(arrays: list) -> tuple:
    shapes = [(int(a.sum()),) if a.dtype == dtypes.bool else a.shape for a in arrays]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(s)) for s in shapes)) from None


# ---- keys on raw arrays ------------------------------------------------------------------------------------

def _np_key(basic: tuple) -> tuple:
    """The basic key for numpy/cupy; the trailing Ellipsis keeps 0-d results arrays (views), not scalars."""
    return (*(slice(*e) if type(e) is tuple else e for e in basic), Ellipsis)


def _adv_key(pos: tuple, arrays: tuple) -> tuple:
    """The advanced key for numpy/cupy: each index array at its view dim, `:` elsewhere."""
    key: list = []
    d = 0
    for p, a in zip(pos, arrays):
        key += [slice(None)] * (p - d)
        key.append(a)
        d = p + (a.ndim if a.dtype == dtypes.bool else 1)
    return tuple(key)


def _adv_shape(shape: tuple, pos: tuple, arrays: tuple) -> tuple:
    """The shape of `view[adv key]`: the broadcast index shape replaces the indexed dims where they are
    adjacent, and goes first where they are not (numpy's rule; PyTorch's too once ints are applied)."""
    covered: list[int] = []
    for p, a in zip(pos, arrays):
        covered += range(p, p + (a.ndim if a.dtype == dtypes.bool else 1))
    b = _broadcast_index_shapes(list(arrays))
    rest = [n for i, n in enumerate(shape) if i not in covered]
    first = covered[0]
    if covered == list(range(first, first + len(covered))):
        return (*rest[:first], *b, *rest[first:])
    return (*b, *rest)


def _expand_masks(pos: tuple, arrays: tuple) -> tuple[tuple[int, ...], tuple]:
    """Masks as their nonzero coordinates: one integer array per masked dim."""
    dims: list[int] = []
    out: list = []
    for p, a in zip(pos, arrays):
        if a.dtype == dtypes.bool:
            nz = xp_of(a).nonzero(a)
            dims += range(p, p + len(nz))
            out += nz
        else:
            dims.append(p)
            out.append(a)
    return tuple(dims), tuple(out)


def _index_add(t: Any, pos: tuple, arrays: tuple, v: Any) -> None:
    """`t[adv key] += v`, summing repeated indices. np.add.at is 5-10x faster on a 1-D array with flat element
    positions than on rows (measured: 512 ids into 1000x128, 72 vs 430 us), so a contiguous target whose index
    dims are adjacent (embedding gradients, `x[:, idx]`) gets flat positions; other keys use add.at as is."""
    xp = xp_of(t)
    dims, ints = _expand_masks(pos, arrays)
    key = _adv_key(dims, ints)
    v = xp.broadcast_to(v, _adv_shape(t.shape, dims, ints))
    m = len(dims)
    if xp is not np or not t.flags.c_contiguous or v.size == 0 or dims != tuple(range(dims[0], dims[0] + m)):
        xp.add.at(t, key, v)  # cupy: atomics
        return
    d0 = dims[0]
    outer, inner = math.prod(t.shape[:d0]), math.prod(t.shape[d0 + m:])
    rows = np.ravel_multi_index(np.broadcast_arrays(*ints), t.shape[d0:d0 + m], mode="wrap").reshape(-1)
    span = math.prod(t.shape[d0:d0 + m]) * inner
    flat = (np.arange(outer)[:, None, None] * span + rows[None, :, None] * inner + np.arange(inner)).reshape(-1)
    np.add.at(t.reshape(-1), flat, v.reshape(-1))


def _along(index: Any, dim: int) -> tuple:
    """The key that picks `x[..., index[i, j, k], ...]` (at `dim`) for every position of `index`."""
    xp = xp_of(index)
    nd = index.ndim
    return tuple(index if d == dim else xp.arange(n).reshape([-1 if e == d else 1 for e in range(nd)])
                 for d, n in enumerate(index.shape))


def _zeros(shape: tuple, like: Tensor) -> Tensor:
    return Tensor(xp_of(like.data).zeros(shape, like.data.dtype))


# ---- ONNX lowering of keys ---------------------------------------------------------------------------------

def _lower_basic(g: Any, x: str, basic: tuple) -> str:
    """Slice (starts/ends/axes/steps), then Squeeze the int-indexed dims, then Unsqueeze the None dims; a
    single int index is one Gather."""
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    d = o = 0  # input dim, output dim
    for e in basic:
        if e is None:
            unsqueeze.append(o)
            o += 1
            continue
        if type(e) is tuple:
            if e != _FULL:
                start, stop, step = e
                starts.append(0 if start is None else start)
                ends.append(INT64_MAX if stop is None else stop)
                steps.append(1 if step is None else step)
                axes.append(d)
            o += 1
        else:
            starts.append(e)
            ends.append(INT64_MAX if e == -1 else e + 1)
            steps.append(1)
            axes.append(d)
            squeeze.append(d)
        d += 1
    if len(axes) == 1 and squeeze and not unsqueeze and type(starts[0]) is int:
        return g.op("Gather", x, g.const(starts[0], "int64"), axis=axes[0])
    if axes:
        # shape_tensor: a bound that was a symbolic size (`x[:, :n]` during export) stays graph computation
        bounds = [g.shape_tensor(tuple(v)) for v in (starts, ends)]
        x = g.op("Slice", x, *bounds, g.const(axes, "int64"), g.shape_tensor(tuple(steps)))
    if squeeze:
        x = g.op("Squeeze", x, g.const(squeeze, "int64"))
    if unsqueeze:
        x = g.op("Unsqueeze", x, g.const(unsqueeze, "int64"))
    return x


def _lower_adv(g: Any, x: str, rank: int, pos: tuple, idx: tuple) -> str:
    """One index tensor: Gather on its axis, or Compress for a mask (its dims merged first when it has
    several). Several: GatherND over the indexed dims moved to the front, then the result dims moved back in
    place when the indexed dims were adjacent (PyTorch's rule)."""
    if len(idx) == 1:
        p, i = pos[0], idx[0]
        if g.dtype(i) != dtypes.bool:
            return g.op("Gather", x, i, axis=p)
        k = g.rank(i)
        if k != 1:
            lead = g.const([0] * p + [-1], "int64")
            shape = lead if p + k == rank else g.op("Concat", lead, g.op("Shape", x, start=p + k), axis=0)
            x = g.op("Reshape", x, shape)
            i = g.op("Reshape", i, g.const([-1], "int64"))
        return g.op("Compress", x, i, axis=p)
    comps, dims, nb = [], [], 1
    for p, i in zip(pos, idx):
        if g.dtype(i) == dtypes.bool:
            nz = g.op("NonZero", i)
            for j in range(g.rank(i)):
                comps.append(g.op("Gather", nz, g.const(j, "int64"), axis=0))
                dims.append(p + j)
        else:
            comps.append(i if g.dtype(i) == _I64 else g.op("Cast", i, to=_I64))
            dims.append(p)
            nb = max(nb, g.rank(i))
    if any(g.dtype(i) == dtypes.bool for i in idx) or len({g.shape(i) for i in idx}) > 1:
        total = comps[0]
        for c in comps[1:]:
            total = g.op("Add", total, c)
        shape = g.op("Shape", total)
        comps = [g.op("Expand", c, shape) for c in comps]
    last = g.const([-1], "int64")
    index = g.op("Concat", *[g.op("Unsqueeze", c, last) for c in comps], axis=-1)
    rest = [d for d in range(rank) if d not in dims]
    if dims + rest != list(range(rank)):
        x = g.op("Transpose", x, perm=dims + rest)
    out = g.op("GatherND", x, index)
    p0 = dims[0]
    if p0 > 0 and dims == list(range(p0, p0 + len(dims))):
        perm = [nb + j for j in range(p0)] + list(range(nb)) + [nb + j for j in range(p0, len(rest))]
        out = g.op("Transpose", out, perm=perm)
    return out


def _basic_rank(rank: int, basic: tuple) -> int:
    ints = sum(1 for e in basic if e is not None and type(e) is not tuple)
    return rank - ints + sum(e is None for e in basic)


# ---- the indexing ops --------------------------------------------------------------------------------------

class GetItem(Op):
    """Basic indexing: a view (ints select, slices narrow, None adds a dim)."""

    is_view = True

    def __init__(self, basic: tuple):
        self.basic = basic

    def forward(self, ctx, x):
        return x[_np_key(self.basic)]

    def backward(self, ctx, g):
        return SetItem(self.basic, ())(_zeros(ctx.inputs[0].data.shape, g), g)

    def to_onnx(self, g, x):
        return _lower_basic(g, x, self.basic)


class Index(Op):
    """Advanced indexing by integer index tensors and bool masks (inputs 1..n, at view dims `pos`)."""

    def __init__(self, pos: tuple[int, ...]):
        self.pos = pos

    def forward(self, ctx, x, *idx):
        return x[_adv_key(self.pos, idx)]

    def backward(self, ctx, g):
        x, *idx = ctx.inputs
        return SetItem((), self.pos, accumulate=True)(_zeros(x.data.shape, g), g, *idx), *[None] * len(idx)

    def to_onnx(self, g, x, *idx):
        return _lower_adv(g, x, g.rank(x), self.pos, idx)


class SetItem(Op):
    """`x[key] = value` (`+=` with accumulate, summing repeated indices), written into input 0's memory:
    callers pass the tensor being assigned (through apply_inplace) or a fresh one (gradients), never one that
    another op still reads.

    ONNX: a mask set to one value is a Where; any other key indexes a tensor of flat positions (Range) with
    the getitem lowering and scatters the broadcast value there (ScatterElements, reduction add sums)."""

    def __init__(self, basic: tuple, pos: tuple[int, ...], accumulate: bool = False):
        self.basic, self.pos, self.accumulate = basic, pos, accumulate

    def forward(self, ctx, x, v, *idx):
        xv = x[_np_key(self.basic)]
        if not idx:
            if self.accumulate:
                xv += v
            else:
                xv[...] = v
        elif self.accumulate:
            _index_add(xv, self.pos, idx, v)
        else:
            xv[_adv_key(self.pos, idx)] = v
        return x

    def backward(self, ctx, g):
        x, v, *idx = ctx.inputs
        gx = gv = None
        if x.requires_grad:  # assignment: what was written there no longer depends on x
            gx = g if self.accumulate else SetItem(self.basic, self.pos)(g.clone(), _zeros((), g), *idx)
        if v.requires_grad:
            gv = sum_to(_index(g, self.basic, self.pos, idx), v.data.shape)
        return gx, gv, *[None] * len(idx)

    def to_onnx(self, g, x, v, *idx):
        if (not self.accumulate and not self.basic and len(idx) == 1 and g.dtype(idx[0]) == dtypes.bool
                and all(n == 1 for n in g.shape(v))):
            mask, rank, k = idx[0], g.rank(x), g.rank(idx[0])
            if rank > self.pos[0] + k:
                mask = g.op("Unsqueeze", mask, g.const(list(range(k, rank - self.pos[0])), "int64"))
            if g.rank(v):
                v = g.op("Reshape", v, g.const([], "int64"))
            return g.op("Where", mask, v, x)
        one = g.const(1, "int64")
        flat = g.op("Range", g.const(0, "int64"), g.op("Size", x), one)
        where = _lower_basic(g, g.op("Reshape", flat, g.op("Shape", x)), self.basic)
        if idx:
            where = _lower_adv(g, where, _basic_rank(g.rank(x), self.basic), self.pos, idx)
        last = g.const([-1], "int64")
        values = g.op("Expand", v, g.op("Shape", where))
        out = g.op("ScatterElements", g.op("Reshape", x, last), g.op("Reshape", where, last),
                   g.op("Reshape", values, last), axis=0, reduction="add" if self.accumulate else "none")
        return g.op("Reshape", out, g.op("Shape", x))


def _index(x: Tensor, basic: tuple, pos: tuple, tensors: Any) -> Tensor:
    out = x if tensors and not basic else GetItem(basic)(x)
    return Index(pos)(out, *tensors) if tensors else out


@method("__getitem__")
def getitem(self: Tensor, key: Any) -> Tensor:
    return _index(self, *_parse(self, key))


def _value_for(x: Tensor, basic: tuple, pos: tuple, tensors: list, value: Any) -> Tensor:
    """The assigned value as a tensor of x's dtype, checked against the indexing result's shape before
    anything is written (an error inside apply_inplace would leave the graph half rewired)."""
    v = operand(value, x.data.dtype, x)
    shape = x.data[_np_key(basic)].shape
    if tensors:
        shape = _adv_shape(shape, pos, tuple(t.data for t in tensors))
    lead = 0
    while v.ndim - lead > len(shape) and v.data.shape[lead] == 1:  # PyTorch drops a value's leading 1s
        lead += 1
    if lead:
        v = v.reshape(v.shape[lead:])
    try:
        ok = np.broadcast_shapes(v.data.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(v.data.shape)} cannot be broadcast "
                           f"to indexing result of shape {list(shape)}")
    return v


@method("__setitem__")
def setitem(self: Tensor, key: Any, value: Any) -> None:
    basic, pos, tensors = _parse(self, key)
    apply_inplace(SetItem(basic, pos), self, _value_for(self, basic, pos, tensors, value), *tensors)


@method("index_put_")
def index_put_(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """`input[indices] = values` (`+=` with accumulate, summing repeats); None in `indices` is `:`."""
    key = tuple(slice(None) if i is None else i for i in indices)
    basic, pos, tensors = _parse(input, key)
    value = _value_for(input, basic, pos, tensors, values)
    return apply_inplace(SetItem(basic, pos, accumulate), input, value, *tensors)


@method("index_put")
def index_put(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    return index_put_(input.clone(), indices, values, accumulate)


@method("index_select")
def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """Rows of `input` along `dim` (an `Index` op: Gather in ONNX)."""
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype not in (dtypes.int32, dtypes.int64):
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index, got "
                           f"{dtypes.name(index.dtype)}")
    dim = norm_axis(dim, input.ndim)
    if index.ndim == 0:
        index = index.reshape(1)
    if input.ndim == 0:
        return Index((0,))(input.reshape(1), index).reshape(())
    _check_index(index, dim, input.data.shape)
    return Index((dim,))(input, index)


# ---- masks -------------------------------------------------------------------------------------------------

class MaskedFill(Op):
    """`value` (a 0-d tensor of input's dtype) where `mask`, input elsewhere; ONNX Where."""

    def forward(self, ctx, x, mask, value):
        return xp_of(x).where(mask, value, x)

    def backward(self, ctx, g):
        _, mask, value = ctx.inputs
        gx = _MASKED_FILL(g, mask, _zeros((), g))
        return gx, None, (g - gx).sum() if value.requires_grad else None

    def to_onnx(self, g, x, mask, value):
        return g.op("Where", mask, value, x)


_MASKED_FILL = MaskedFill()


def _fill_operands(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    if mask.dtype != dtypes.bool:
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{dtypes.name(mask.dtype)}")
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.ndim} dimension(s).")
    try:
        ok = np.broadcast_shapes(input.data.shape, mask.data.shape) == input.data.shape
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"The expanded size of the mask {list(mask.data.shape)} must match the existing "
                           f"size {list(input.data.shape)} of the tensor it fills")
    return operand(value, input.data.dtype, input)


@method("masked_fill")
def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    return _MASKED_FILL(input, mask, _fill_operands(input, mask, value))


@method("masked_fill_")
def masked_fill_(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    return apply_inplace(_MASKED_FILL, input, mask, _fill_operands(input, mask, value))


@method("masked_select")
def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The elements where `mask` (both broadcast) is true, as a 1-D tensor (`Index`: Compress in ONNX)."""
    if mask.dtype != dtypes.bool:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {dtypes.name(mask.dtype)}")
    shape = _broadcast_shape(input.shape, mask.shape) or (1,)
    x = input.reshape(1) if input.ndim == 0 else input
    m = mask.reshape(1) if mask.ndim == 0 else mask
    return Index((0,))(x.expand(shape), m.expand(shape))


def _broadcast_shape(a: tuple, b: tuple) -> tuple:
    """The broadcast shape, keeping symbolic sizes (during export) rather than their example values."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    for d, (x, y) in enumerate(zip(a, b)):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                               f"non-singleton dimension {d}")
    return tuple(y if x == 1 else x for x, y in zip(a, b))


# ---- gather / scatter --------------------------------------------------------------------------------------

class Gather(Op):
    """`out[i][j][k] = x[index[i][j][k]][j][k]` (for dim 0); ONNX GatherElements."""

    saves = (1,)

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, ctx, x, index):
        return x[_along(index, self.dim)]

    def backward(self, ctx, g):
        x, index = ctx.inputs
        return Scatter(self.dim, "add")(_zeros(x.data.shape, g), index, g), None

    def to_onnx(self, g, x, index):
        xs, js = g.shape(x), g.shape(index)
        if any(isinstance(a, int) and isinstance(b, int) and a != b
               for d, (a, b) in enumerate(zip(xs, js)) if d != self.dim):  # PyTorch reads the leading block
            ends = [INT64_MAX if d == self.dim else n for d, n in enumerate(js)]
            x = g.op("Slice", x, g.const([0] * len(js), "int64"), g.const(ends, "int64"))
        return g.op("GatherElements", x, index, axis=self.dim)


class Scatter(Op):
    """`out = x.clone(); out[index[i][j]][j] = src[i][j]` (dim 0); `reduce` "add" sums and "multiply"
    multiplies into `out`, repeated indices included. A 0-d `src` is a value broadcast to index's shape.
    ONNX ScatterElements."""

    saves = (1,)

    def __init__(self, dim: int, reduce: str | None = None):
        self.dim, self.reduce = dim, reduce

    def forward(self, ctx, x, index, src):
        xp = xp_of(x)
        out = x.copy()
        if src.ndim != index.ndim:
            src = xp.broadcast_to(src, index.shape)
        elif src.shape != index.shape:  # PyTorch reads the leading block of a larger src
            src = src[tuple(slice(0, n) for n in index.shape)]
        key = _along(index, self.dim)
        if self.reduce is None:
            out[key] = src
        elif self.reduce == "add":
            _index_add(out, tuple(range(out.ndim)), key, src)
        elif xp is np:
            np.multiply.at(out, key, src)
        else:  # cupy has no multiply.at; this deprecated PyTorch reduction runs on the host
            host = out.get()
            np.multiply.at(host, tuple(k.get() for k in key), src.get())
            out = xp.asarray(host)
        return out

    def backward(self, ctx, g):
        if self.reduce == "multiply":
            raise RuntimeError("the derivative for scatter with reduce='multiply' is not implemented")
        x, index, src = ctx.inputs
        gx = gsrc = None
        if x.requires_grad:
            gx = g if self.reduce == "add" else Scatter(self.dim)(g, index, _zeros((), g))
        if src.requires_grad:
            gs = Gather(self.dim)(g, index)
            gsrc = sum_to(gs, ()) if src.ndim != index.ndim else _pad(gs, src.data.shape)
        return gx, None, gsrc

    def to_onnx(self, g, x, index, src):
        if g.rank(src) != g.rank(index):
            src = g.op("Expand", src, g.op("Shape", index))
        elif g.shape(src) != g.shape(index):
            src = g.op("Slice", src, g.const([0] * g.rank(index), "int64"), g.op("Shape", index))
        reduction = {None: "none", "add": "add", "multiply": "mul"}[self.reduce]
        return g.op("ScatterElements", x, index, src, axis=self.dim, reduction=reduction)


def _pad(t: Tensor, shape: tuple) -> Tensor:
    """`t` in the leading block of zeros of `shape`."""
    if t.data.shape == shape:
        return t
    return SetItem(tuple((None, n, None) for n in t.data.shape), ())(_zeros(shape, t), t)


def _check_along(name: str, x: Tensor, dim: int, index: Tensor, src: Tensor | None = None) -> None:
    if index.dtype != dtypes.int64:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if index.ndim != x.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for other, what in ((x, "self"), (src, "src")):
        if other is None or other.ndim != index.ndim:
            continue
        for d, (a, b) in enumerate(zip(index.data.shape, other.data.shape)):
            if a > b and (d != dim or what == "src"):
                raise RuntimeError(f"Size does not match at dimension {d} expected index "
                                   f"{list(index.data.shape)} to be no larger than {what} "
                                   f"{list(other.data.shape)} apart from dimension {dim}")
    n = x.data.shape[dim] if x.ndim else 1
    bad = _out_of_bounds(index.data, n, negative=False)
    if bad is not None:
        raise RuntimeError(f"index {bad} is out of bounds for dimension {dim} with size {n}")


@method("gather")
def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    dim = norm_axis(dim, input.ndim)
    _check_along("gather", input, dim, index)
    return Gather(dim)(input, index)


def _scatter(input: Tensor, dim: int, index: Tensor, src: Any, value: Any, reduce: str | None,
             name: str) -> tuple[Scatter, Tensor, Tensor]:
    """The checked op and operands of a scatter: `src` a tensor, or a number (`value`) as a 0-d tensor."""
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"{name}(): reduce argument must be either add or multiply, got {reduce}")
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src
    if src is None:
        if value is None:
            raise TypeError(f"{name}() missing a src tensor or a value")
        src = Tensor(xp_of(input.data).asarray(value, dtype=input.data.dtype))
    elif src.dtype != input.dtype:
        raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
    dim = norm_axis(dim, input.ndim)
    _check_along(name, input, dim, index, src)
    return Scatter(dim, reduce), index, src


@method("scatter")
def scatter(input: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """Write `src` (a tensor) or `value` (a number) into a copy of input at `index` along `dim`."""
    op, index, src = _scatter(input, dim, index, src, value, reduce, "scatter")
    return op(input, index, src)


@method("scatter_add")
def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    op, index, src = _scatter(input, dim, index, src, None, "add", "scatter_add")
    return op(input, index, src)


@method("scatter_")
def scatter_(input: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
             reduce: str | None = None) -> Tensor:
    op, index, src = _scatter(input, dim, index, src, value, reduce, "scatter_")
    return apply_inplace(op, input, index, src)


@method("scatter_add_")
def scatter_add_(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    op, index, src = _scatter(input, dim, index, src, None, "add", "scatter_add_")
    return apply_inplace(op, input, index, src)


@method("take_along_dim")
def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """`gather` with input and indices broadcast against each other outside `dim` (flat when dim is None)."""
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    if input.ndim != indices.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of "
                           f"dimensions, but got {input.ndim} dimensions for input, and {indices.ndim} "
                           "dimensions for indices")
    dim = norm_axis(dim, input.ndim)
    xs, js = list(input.shape), list(indices.shape)
    both = list(_broadcast_shape((*xs[:dim], 1, *xs[dim + 1:]), (*js[:dim], 1, *js[dim + 1:])))
    return gather(input.expand(*both[:dim], xs[dim], *both[dim + 1:]), dim,
                  indices.expand(*both[:dim], js[dim], *both[dim + 1:]))


# ---- sorting -----------------------------------------------------------------------------------------------

def _argsort(a: Any, dim: int, descending: bool) -> Any:
    """Stable indices that sort `a` along `dim`: equal elements keep their order, as in ONNX TopK, so eager
    and exported results agree on ties too. Descending sorts the flipped array ascending and flips back."""
    xp = xp_of(a)
    if not descending:
        return xp.argsort(a, axis=dim, kind="stable")
    return (a.shape[dim] - 1) - xp.flip(xp.argsort(xp.flip(a, dim), axis=dim, kind="stable"), dim)


def _topk_indices(x: np.ndarray, dim: int, k: int, largest: bool) -> np.ndarray:
    """The k best along `dim` in O(n) plus a sort of k, ties to the lower index (as the stable sort): a
    partition finds the k-th value; the elements at least as good make the k, unless ties at the k-th value
    overflow it, where only the first of those are kept."""
    xl = np.moveaxis(x, dim, -1)
    n = xl.shape[-1]
    at = n - k if largest else k - 1
    kth = np.partition(xl, at, axis=-1)[..., at, None]
    sel = xl >= kth if largest else xl <= kth
    if np.any(np.count_nonzero(sel, -1) != k):
        equal = xl == kth
        sel &= ~equal | (np.cumsum(equal, -1) <= k - np.count_nonzero(sel & ~equal, -1)[..., None])
    idx = np.nonzero(sel.reshape(-1, n))[1].reshape(*xl.shape[:-1], k)
    idx = np.take_along_axis(idx, _argsort(np.take_along_axis(xl, idx, -1), -1, largest), -1)
    return np.moveaxis(idx, -1, dim)


class _Select(Op):
    """The k first elements along `dim` (all of them when k is None) in ascending or descending order, and
    their int64 indices; ONNX TopK (ONNX has no Sort: a sort is a TopK of the whole dim)."""

    def __init__(self, dim: int, k: int | None, largest: bool):
        self.dim, self.k, self.largest = dim, k, largest

    def forward(self, ctx, x):
        xp, dim = xp_of(x), self.dim
        n = x.shape[dim]
        k = n if self.k is None else self.k
        if xp is np and 0 < k < n and not (dtypes.category(x.dtype) >= 2 and np.isnan(x).any()):
            idx = _topk_indices(x, dim, k, self.largest)
        else:
            idx = _argsort(x, dim, self.largest)[(slice(None),) * dim + (slice(0, k),)]
        idx = idx.astype(_I64, copy=False)
        ctx.indices = idx
        return xp.take_along_axis(x, idx, dim), idx

    def backward(self, ctx, gv, gi):
        x = ctx.inputs[0]
        return Scatter(self.dim)(_zeros(x.data.shape, gv), Tensor(ctx.indices), gv)

    def to_onnx(self, g, x):
        if self.k is not None:
            k = g.const([self.k], "int64")
        elif isinstance(g.shape(x)[self.dim], int):
            k = g.const([g.shape(x)[self.dim]], "int64")
        else:
            k = g.op("Shape", x, start=self.dim, end=self.dim + 1)
        return g.op("TopK", x, k, outputs=2, axis=self.dim, largest=int(self.largest), sorted=1)


class TopK(_Select):
    pass


class Sort(_Select):
    pass


def _scalar_dim(input: Tensor, dim: int) -> tuple[Tensor, int]:
    """0-d inputs sort/select as 1-element vectors (as in PyTorch)."""
    return (input.reshape(1), 0) if input.ndim == 0 else (input, norm_axis(dim, input.ndim))


@method("topk")
def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> tuple:
    """The k largest (or smallest) elements along `dim` and their indices, always in sorted order."""
    x, d = _scalar_dim(input, dim)
    if not 0 <= k <= x.data.shape[d]:
        raise RuntimeError("selected index k out of range")
    values, indices = TopK(d, int(k), largest)(x)
    if input.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    return topk_result(values, indices)


@method("sort")
def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> tuple:
    """Sorted values and their indices; always stable (equal elements keep their order, as ONNX TopK does)."""
    x, d = _scalar_dim(input, dim)
    values, indices = Sort(d, None, descending)(x)
    if input.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    return sort_result(values, indices)


@method("argsort")
def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return sort(input, dim, descending, stable).indices


class NonZero(Op):
    """Coordinates of the nonzero elements, one row each: (n, ndim) int64; ONNX NonZero, transposed."""

    def forward(self, ctx, x):
        return xp_of(x).argwhere(x).astype(_I64, copy=False)

    def to_onnx(self, g, x):
        return g.op("Transpose", g.op("NonZero", x), perm=[1, 0])


_NONZERO = NonZero()


@method("nonzero")
def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    if not as_tuple:
        return _NONZERO(input)
    x = input.reshape(1) if input.ndim == 0 else input
    out = _NONZERO(x)
    return tuple(out[:, i] for i in range(x.ndim))


@method("argwhere")
def argwhere(input: Tensor) -> Tensor:
    return _NONZERO(input)
