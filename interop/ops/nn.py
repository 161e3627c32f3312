"""Neural-network ops: softmax, log_softmax, dropout, embedding and one_hot (and helpers the norm and loss
families share).

A backward runs on raw arrays when no graph is recorded for the gradient (no Tensor or autograd overhead in
every training step) and with Tensor ops under create_graph (so the gradient is itself differentiable). Where
one formula serves both, it is written over a *form* (`backward_form()`: ArrayForm or TensorForm), which
supplies what differs (unwrapping, constants, reductions; arithmetic reads the same on both). Where numpy needs
a rearranged formula to be fast (softmax, the norms), the two are written side by side, and the tests check
both against PyTorch (second derivatives included).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op, apply_inplace
from ..backend import device_of, xp_of
from ..creation import default_generator
from ..tensor import Tensor
from .common import method, norm_axis
from .elementwise import _float_only
from .index import _out_of_bounds, index_put

__all__ = ["softmax", "log_softmax"]

_HALF = (dtypes.float16, dtypes.bfloat16)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def opmath(a: Any) -> Any:
    """float16/bfloat16 arrays compute in float32 (as PyTorch's kernels do) and round once at the end."""
    return a.astype(np.float32) if a.dtype in _HALF else a


def contract(axes: tuple[int, ...], a: Any, b: Any = None) -> Any:
    """sum(a * b) over `axes`, dims kept; `b` (optional, e.g. statistics or parameters) broadcasts against `a`
    through size-1 dims.

    On numpy: axes where b is 1 are summed first (one-operand einsum: 2-4x faster than `sum` on strided axes);
    what is left is a matrix-vector product where it can be (BLAS, 10x faster than einsum there), else a
    two-operand einsum (which multiplies without a temporary)."""
    shape = a.shape if b is None else np.broadcast_shapes(a.shape, b.shape)
    out_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
    if xp_of(a) is not np or a.size < 4096:  # (small arrays: einsum's setup costs more than it saves)
        return (a if b is None else a * b).sum(axis=axes, keepdims=True)
    if b is None:
        return _einsum(axes, a).reshape(out_shape)
    b = b.reshape((1,) * (a.ndim - b.ndim) + b.shape)
    varies = [i for i, n in enumerate(b.shape) if n != 1]
    summed = tuple(i for i in axes if i not in varies and a.shape[i] != 1)
    if summed:
        a = _einsum(summed, a).reshape(tuple(1 if i in summed else n for i, n in enumerate(a.shape)))
    dot = [i for i in axes if i in varies]
    if dot and all(i in axes for i in varies):  # b varies only along reduced axes: a matrix-vector product
        vec = b.reshape([b.shape[i] for i in varies])
        return np.tensordot(a, vec, axes=(dot, list(range(len(dot))))).reshape(out_shape)
    return _einsum(axes, a, b).reshape(out_shape)


def _einsum(axes: tuple[int, ...], *operands: Any) -> Any:
    """sum(prod(operands)) over `axes` (operands of one rank; size-1 dims broadcast), reduced dims dropped."""
    squeezed, subs = [], []
    for arr in operands:
        dims = [i for i, n in enumerate(arr.shape) if n != 1]
        squeezed.append(arr.reshape([arr.shape[i] for i in dims]))
        subs.append("".join(_LETTERS[i] for i in dims))
    used = set("".join(subs))
    out = "".join(_LETTERS[i] for i in range(operands[0].ndim) if i not in axes and _LETTERS[i] in used)
    return np.einsum(f"{','.join(subs)}->{out}", *squeezed)


class ArrayForm:
    """A backward formula over raw arrays: the fast path when no graph is recorded for the gradient."""

    @staticmethod
    def of(t: Tensor) -> Any:
        return opmath(t.data)

    @staticmethod
    def const(a: Any) -> Any:
        return a

    @staticmethod
    def wrap(a: Any, like: Tensor) -> Tensor:
        return Tensor(a.astype(like.data.dtype, copy=False))

    @staticmethod
    def sum(a: Any, axes: tuple[int, ...]) -> Any:
        return contract(axes, a)


class TensorForm:
    """The same formula over Tensors (create_graph: the gradient is recorded and differentiable)."""

    @staticmethod
    def of(t: Tensor) -> Tensor:
        return t

    @staticmethod
    def const(a: Any) -> Tensor:
        return Tensor(a)

    @staticmethod
    def wrap(t: Tensor, like: Tensor) -> Tensor:
        return t if t.dtype == like.dtype else t.type(like.dtype)

    @staticmethod
    def sum(t: Tensor, axes: tuple[int, ...]) -> Tensor:
        return t.sum(axes, keepdim=True)


def backward_form() -> type:
    """The form of the backward being run: Tensors under create_graph, else arrays."""
    return TensorForm if state.grad_enabled else ArrayForm


# ---- softmax, log_softmax ------------------------------------------------------------------------------------

def amax(x: Any, axis: int) -> Any:
    """max along `axis`, dims kept. numpy reduces a short last axis one row at a time (about 0.1 us a row):
    a transposed copy reduces along long rows instead, 3-5x faster (measured for rows under 128)."""
    k = x.shape[axis]
    if _short_rows(x, axis):
        return np.ascontiguousarray(x.reshape(-1, k).T).max(axis=0).reshape((*x.shape[:-1], 1))
    return x.max(axis=axis, keepdims=True)


def _short_rows(x: Any, axis: int) -> bool:
    return xp_of(x) is np and axis == x.ndim - 1 and x.shape[axis] < 128 and x.size > x.shape[axis]


def softmax_arrays(x: Any, axis: int, normalize: bool = True) -> tuple[Any, Any, Any]:
    """(softmax(x), shift, log(sum(exp(x - shift)))) along `axis`: logsumexp is shift + the last, kept apart
    so that x - shift - log(sum) rounds like PyTorch's log_softmax. With normalize=False the first is exp(x - shift).

    The shift is each row's max; for short rows (attention scores, class logits) the whole array's max is
    tried first, which is 5x cheaper, and kept when every row's sum stays >= 1e-20 (each row's max within 46
    of the global one: its large terms keep full float32 precision); otherwise (and for inf/nan) per-row."""
    xp = xp_of(x)
    with np.errstate(all="ignore"):  # rows of -inf (or with nan) give nan, silently, as in PyTorch
        shift = x.max() if _short_rows(x, axis) else None
        if shift is not None:
            p, s = _exp_sum(xp, x, shift, axis)
            if not s.min() >= 1e-20:
                shift = None
        if shift is None:
            shift = amax(x, axis)
            p, s = _exp_sum(xp, x, shift, axis)
        if normalize:
            p /= s
        return p, shift, xp.log(s, out=s)


def _exp_sum(xp: Any, x: Any, shift: Any, axis: int) -> tuple[Any, Any]:
    p = xp.subtract(x, shift)
    xp.exp(p, out=p)
    return p, contract((axis,), p)


class Softmax(Op):
    """Backward: y (g - sum(g y))."""

    saves_output = True

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, ctx, x):
        if x.shape[self.axis] == 0:
            return x.copy()
        return softmax_arrays(opmath(x), self.axis)[0].astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        y = ctx.output()
        if state.grad_enabled:
            return y * (g - (g * y).sum(self.axis, keepdim=True))
        yd, gd = opmath(y.data), opmath(g.data)
        out = gd - contract((self.axis,), gd, yd)
        out *= yd
        return ArrayForm.wrap(out, g)

    def to_onnx(self, g, x):
        return g.op("Softmax", x, axis=self.axis)


class LogSoftmax(Op):
    """Backward: g - exp(y) sum(g)."""

    saves_output = True

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, ctx, x):
        if x.shape[self.axis] == 0:
            return x.copy()
        xw = opmath(x)
        _, shift, logsum = softmax_arrays(xw, self.axis, normalize=False)
        with np.errstate(invalid="ignore"):
            out = xp_of(x).subtract(xw, shift)
            out -= logsum
        return out.astype(x.dtype, copy=False)

    def backward(self, ctx, g):
        y = ctx.output()
        if state.grad_enabled:
            return g - y.exp() * g.sum(self.axis, keepdim=True)
        yd, gd = opmath(y.data), opmath(g.data)
        xp = xp_of(gd)
        out = xp.exp(yd)
        out *= contract((self.axis,), gd)
        return ArrayForm.wrap(xp.subtract(gd, out, out=out), g)

    def to_onnx(self, g, x):
        return g.op("LogSoftmax", x, axis=self.axis)


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _along(cls: type[Op], name: str, input: Tensor, dim: int | None, stacklevel: int, dtype: Any) -> Tensor:
    if dtype is not None:
        input = input.type(dtype)
    _float_only(input, name)
    if dim is None:
        dim = _softmax_dim(name, input.ndim, stacklevel + 1)
    if input.ndim == 0:  # a scalar is a one-element distribution
        norm_axis(dim, 0)
        return cls(0)(input.reshape(1)).reshape(())
    return cls(norm_axis(dim, input.ndim))(input)


@method("softmax")
def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim`, computed stably; `dtype` casts the input first."""
    return _along(Softmax, "softmax", input, dim, _stacklevel, dtype)


@method("log_softmax")
def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """x - log(sum(exp(x))) along `dim`, computed stably; `dtype` casts the input first."""
    return _along(LogSoftmax, "log_softmax", input, dim, _stacklevel, dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    if dtype is not None:
        input = input.type(dtype)
    return _along(Softmax, "softmin", -input, dim, _stacklevel, None)


# ---- dropout -----------------------------------------------------------------------------------------------

class Dropout(Op):
    """Zero each element with probability p (or whole channels: the last `feature_dims` dims share one draw)
    and scale the survivors by 1/(1-p). The mask comes from interop's default generator (`manual_seed`) and
    is kept for backward. ONNX graphs are for inference, where dropout is the identity."""

    is_view = True  # p == 0 returns a view of the input, as PyTorch returns the input itself

    def __init__(self, p: float, feature_dims: int = 0):
        self.p, self.feature_dims = p, feature_dims

    def forward(self, ctx, x):
        if self.p == 0:
            ctx.mask = None
            return x.view()
        k = self.feature_dims
        shape = x.shape[:x.ndim - k] + (1,) * k if k else x.shape
        rng = default_generator.rng(device_of(x))
        keep = rng.random(shape, dtype=np.float32) >= self.p
        ctx.mask = keep
        out = x * keep
        if self.p < 1:
            out *= 1 / (1 - self.p)
        return out

    def backward(self, ctx, g):
        if ctx.mask is None:
            return g
        F = backward_form()
        gd = F.of(g) * F.const(ctx.mask)
        if self.p < 1:
            gd = gd * (1 / (1 - self.p))
        return F.wrap(gd, g)

    def to_onnx(self, g, x):
        return x


def _check_p(p: float) -> None:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout(input: Tensor, p: float, training: bool, inplace: bool, feature_dims: int = 0) -> Tensor:
    _check_p(p)
    if not training:
        return input
    op = Dropout(float(p), feature_dims)
    return apply_inplace(op, input) if inplace else op(input)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability p and scale the rest by 1/(1-p); the input itself when not training."""
    return _dropout(input, p, training, inplace)


def _feature_dropout(name: str, batched: int, input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """dropout1d/2d/3d: whole channels are zeroed; `batched` is the rank of a batched input."""
    if input.ndim not in (batched - 1, batched):
        raise RuntimeError(f"{name}: Expected {batched - 1}D or {batched}D input, but received a {input.ndim}D input. ")
    spatial = batched - 2
    if name == "dropout2d" and input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                      "dim. This behavior will change in a future release to interpret the input as one "
                      "without a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
                      "dropout behavior, please switch to using dropout1d instead.", stacklevel=3)
        spatial = 1
    return _dropout(input, p, training, inplace, spatial)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _feature_dropout("dropout1d", 3, input, p, training, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _feature_dropout("dropout2d", 4, input, p, training, inplace)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _feature_dropout("dropout3d", 5, input, p, training, inplace)


# ---- embedding ---------------------------------------------------------------------------------------------

class Embedding(Op):
    """Rows of `weight` picked by integer ids. The gradient sums over repeated ids; rows at `padding_idx`
    get none; `scale_grad_by_freq` divides each row's gradient by its id's count in the batch."""

    saves = (1,)

    def __init__(self, padding_idx: int | None = None, scale_grad_by_freq: bool = False):
        self.padding_idx, self.scale_grad_by_freq = padding_idx, scale_grad_by_freq

    def forward(self, ctx, weight, indices):
        return xp_of(weight).take(weight, indices, axis=0)

    def backward(self, ctx, g):
        weight, indices = ctx.inputs
        if not weight.requires_grad:
            return None, None
        idx = indices.data
        xp = xp_of(idx)
        scale = None
        if self.padding_idx is not None:
            scale = (idx != self.padding_idx).astype(g.dtype)
        if self.scale_grad_by_freq:
            counts = xp.bincount(idx.reshape(-1), minlength=weight.data.shape[0])
            freq = (1 / counts[idx]).astype(g.dtype)
            scale = freq if scale is None else scale * freq
        zeros = xp.zeros(weight.data.shape, g.dtype)
        if state.grad_enabled:
            gw = g if scale is None else g * Tensor(scale[..., None])
            return index_put(Tensor(zeros), (indices,), gw, accumulate=True), None
        gd = g.data if scale is None else g.data * scale[..., None]
        _add_rows(zeros, idx, gd)
        return Tensor(zeros), None

    def to_onnx(self, g, weight, indices):
        return g.op("Gather", weight, indices, axis=0)


def _add_rows(out: Any, idx: Any, rows: Any) -> None:
    """out[idx[i]] += rows[i], summing repeated ids. numpy's add.at is fast on flat indices (about 1 ns an
    element) and 10x slower on whole rows, so each row's elements get their own flat positions."""
    width = out.shape[1]
    xp = xp_of(out)
    if xp is not np:
        xp.add.at(out, idx.reshape(-1), rows.reshape(-1, width))
        return
    flat = (idx.reshape(-1, 1) * width + np.arange(width)).reshape(-1)
    np.add.at(out.reshape(-1), flat, rows.reshape(-1))


def _renorm_rows(weight: Tensor, idx: Any, max_norm: float, norm_type: float) -> None:
    """Rescale, in place and outside autograd, the rows `idx` picks whose norm exceeds max_norm (PyTorch's
    embedding_renorm_)."""
    xp = xp_of(weight.data)
    rows = xp.unique(idx.reshape(-1))
    w = weight.data[rows]
    norms = xp.linalg.norm(w.astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    w[big] *= (max_norm / (norms[big] + 1e-7))[:, None].astype(w.dtype)
    weight.data[rows] = w
    weight._vc[0] += 1


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Look up rows of `weight` (num_embeddings, embedding_dim) by the integer ids in `input`."""
    if sparse:
        raise NotImplementedError("embedding(sparse=True): interop has no sparse gradients; use sparse=False")
    if dtypes.category(input.dtype) != 1:
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {dtypes.name(input.dtype)} instead")
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    n = weight.data.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= n
    if _out_of_bounds(input.data, n, negative=False) is not None:
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _renorm_rows(weight, input.data, max_norm, norm_type)
    return Embedding(padding_idx, scale_grad_by_freq)(weight, input)


# ---- one_hot -----------------------------------------------------------------------------------------------

class OneHot(Op):
    """int64 one-hot vectors of length `num_classes` along a new last dim."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def forward(self, ctx, x):
        xp = xp_of(x)
        return (x[..., None] == xp.arange(self.num_classes)).astype(np.int64)

    def to_onnx(self, g, x):
        depth = g.const(self.num_classes, "int64")
        return g.op("OneHot", x, depth, g.const([0, 1], "int64"), axis=-1)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    if tensor.dtype != dtypes.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    a = tensor.data
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        tensor._concrete("one_hot(num_classes=-1)")
        num_classes = int(a.max()) + 1
    if type(a) is np.ndarray and a.size:
        if a.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if a.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    return OneHot(int(num_classes))(tensor)

