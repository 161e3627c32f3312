"""Linear algebra: matmul (and mm, bmm, dot, `@`), linear, einsum, outer.

Backward passes hand BLAS transposed views (`g @ b.mT`, `a.mT @ g`), never copies, and compute only
the gradients that are needed. On the CPU float16/bfloat16 products run in float32 (numpy has no
half-precision BLAS, and PyTorch accumulates them in float32 too).
"""

from __future__ import annotations

import math
import string
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import Op
from ..backend import xp_of
from ..tensor import Tensor
from .common import method, sum_to
from .reduce import accumulate_dtype

__all__ = ["matmul", "mm", "bmm", "dot", "einsum", "outer", "ger"]


def _lowp(a: Any) -> bool:
    return type(a) is np.ndarray and accumulate_dtype(a.dtype) != a.dtype


def _shape_str(shape: tuple) -> str:
    return "x".join(map(str, shape))


def _matmul_error(a: tuple, b: tuple) -> str:
    """PyTorch's wording for the first way the shapes `a @ b` fail."""
    if not a or not b:
        return f"both arguments to matmul need to be at least 1D, but they are {len(a)}D and {len(b)}D"
    if a[-1] != b[-2 if len(b) > 1 else 0]:
        return f"mat1 and mat2 shapes cannot be multiplied ({_shape_str(a)} and {_shape_str(b)})"
    ba, bb = a[:-2], b[:-2]
    for i in range(1, min(len(ba), len(bb)) + 1):
        if ba[-i] != bb[-i] and ba[-i] != 1 and bb[-i] != 1:
            dim = max(len(ba), len(bb)) - i
            return (f"The size of tensor a ({ba[-i]}) must match the size of tensor b ({bb[-i]}) at "
                    f"non-singleton dimension {dim} (matmul of {_shape_str(a)} and {_shape_str(b)})")
    return f"matmul cannot multiply shapes {_shape_str(a)} and {_shape_str(b)}"


def _mm(a: Any, b: Any) -> Any:
    """`a @ b` on raw arrays. A matrix `b` shared by a contiguous batch of `a` takes one GEMM over the
    flattened batch, not one per batch element."""
    if _lowp(a):
        return _mm(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous and a.size:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return a @ b


class MatMul(Op):
    """torch.matmul (numpy's matmul rules: 1-D operands are promoted then squeezed, batch dims broadcast)."""

    saves = (0, 1)

    def forward(self, ctx, a, b):
        try:
            return _mm(a, b)
        except ValueError:
            raise RuntimeError(_matmul_error(a.shape, b.shape)) from None

    def backward(self, ctx, g):
        a, b = ctx.inputs
        # A 1-D operand is a matrix with a unit dim (a row on the left, a column on the right).
        a2 = a if a.data.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.data.ndim > 1 else b.reshape(-1, 1)
        if a2 is not a or b2 is not b:
            batch = g.data.shape[:g.data.ndim - (a is a2) - (b is b2)]
            g = g.reshape(*batch, a2.data.shape[-2], b2.data.shape[-1])
        ga = gb = None
        if a.requires_grad:
            ga = sum_to(_MATMUL(g, b2.mT), a2.data.shape).reshape(a.data.shape)
        if b.requires_grad:
            if b2.data.ndim == 2 and a2.data.ndim > 2:  # b is shared by the batch: one GEMM, no batch sum
                gb = _MATMUL(a2.reshape(-1, a2.data.shape[-1]).mT, g.reshape(-1, g.data.shape[-1]))
            else:
                gb = sum_to(_MATMUL(a2.mT, g), b2.data.shape)
            gb = gb.reshape(b.data.shape)
        return ga, gb

    def to_onnx(self, g, a, b):
        return g.op("MatMul", a, b)


_MATMUL = MatMul()


def _same_dtype(a: Tensor, b: Tensor) -> None:
    if a.data.dtype != b.data.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: "
                           f"{dtypes.name(a.data.dtype)} != {dtypes.name(b.data.dtype)}")


def _tensor(x: Any, like: Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(xp_of(like.data).asarray(x))


@method("matmul", "__matmul__")
def matmul(input: Tensor, other: Tensor) -> Tensor:
    other = _tensor(other, input)
    _same_dtype(input, other)
    return _MATMUL(input, other)


Tensor.__rmatmul__ = lambda self, other: matmul(_tensor(other, self), self)


@method("mm")
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """The 2-D matrix product (no broadcasting, unlike matmul)."""
    for name, t in (("self", input), ("mat2", mat2)):
        if t.data.ndim != 2:
            raise RuntimeError(f"{name} must be a matrix")
    return matmul(input, mat2)


@method("bmm")
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """The batched matrix product of two 3-D tensors with the same batch size (no broadcasting)."""
    for name, t in (("batch1", input), ("batch2", mat2)):
        if t.data.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    want = [input.data.shape[0], input.data.shape[2]]
    if list(mat2.data.shape[:2]) != want:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: {want} but got: "
                           f"{list(mat2.data.shape[:2])}.")
    return matmul(input, mat2)


@method("dot")
def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """The inner product of two 1-D tensors."""
    if input.data.ndim != 1 or tensor.data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.data.ndim}D and {tensor.data.ndim}D tensors")
    n, m = input.data.shape[0], tensor.data.shape[0]
    if n != m:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same "
                           f"number of elements, but got {n} and {m} elements respectively")
    return matmul(input, tensor)


@method("outer", "ger")
def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """The outer product of two 1-D tensors (a broadcast multiply; ONNX has no fused form)."""
    for name, t in (("self", input), ("vec2", vec2)):
        if t.data.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.data.ndim}-D")
    return input.reshape(-1, 1) * vec2


ger = outer


# ---- linear ------------------------------------------------------------------------------------------------

class Linear(Op):
    """y = x @ W.T + b in one op: the functional form of nn.Linear."""

    saves = (0, 1)

    def forward(self, ctx, x, w, b=None):
        out = _mm(x, w.T)
        if b is not None:
            out += b
        return out

    def backward(self, ctx, g):
        x, w = ctx.inputs[0], ctx.inputs[1]
        gx = _MATMUL(g, w) if x.requires_grad else None
        gw = gb = None
        if w.requires_grad:  # (batch, out).T @ (batch, in), every leading dim flattened into the batch
            g2 = g if g.data.ndim == 2 else g.reshape(-1, g.data.shape[-1])
            x2 = x if x.data.ndim == 2 else x.reshape(-1, x.data.shape[-1])
            gw = _MATMUL(g2.mT, x2)
        if len(ctx.inputs) > 2 and ctx.inputs[2].requires_grad:
            gb = g if g.data.ndim == 1 else g.sum(tuple(range(g.data.ndim - 1)))
        return gx, gw, gb

    def to_onnx(self, g, x, w, b=None):
        if g.rank(x) == 2:
            return g.op("Gemm", x, w, b, transB=1)
        out = g.op("MatMul", x, g.op("Transpose", w, perm=[1, 0]))  # the exporter folds this transpose
        return out if b is None else g.op("Add", out, b)


_LINEAR = Linear()


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """torch.nn.functional.linear: input (..., in), weight (out, in), bias (out,)."""
    _same_dtype(input, weight)
    if weight.data.ndim != 2:
        raise RuntimeError(f"linear(): weight must be 2-D (out, in), not {weight.data.ndim}-D")
    shape = input.data.shape
    if not shape or shape[-1] != weight.data.shape[1]:
        rows = math.prod(shape[:-1]) if shape else 1
        cols = shape[-1] if shape else 1
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
                           f"{weight.data.shape[1]}x{weight.data.shape[0]})")
    if bias is None:
        return _LINEAR(input, weight)
    _same_dtype(input, bias)
    return _LINEAR(input, weight, bias)


# ---- einsum ---------------------------------------------------------------------------------------------

_ELL = "..."


def _terms(subscripts: str) -> list[str]:
    """'a...b' -> ['a', '...', 'b']."""
    head, sep, tail = subscripts.partition(_ELL)
    return [*head, *([_ELL] if sep else []), *tail]


class Einsum(Op):
    """einsum on an explicit equation of single-letter subscripts ('ij,jk->ik'; `einsum` spells out '...')."""

    def __init__(self, equation: str):
        self.equation = equation

    def forward(self, ctx, *xs):
        xp = xp_of(xs[0])
        if _lowp(xs[0]):
            return self._einsum(xp, [x.astype(np.float32) for x in xs]).astype(xs[0].dtype)
        out = self._einsum(xp, xs)
        if len(xs) == 1 and xp.may_share_memory(out, xs[0]):  # a transpose or diagonal: numpy gives a view
            out = out.copy()
        return out

    def _einsum(self, xp: Any, xs: Any) -> Any:
        return xp.einsum(self.equation, *xs, optimize="greedy" if len(xs) > 1 else False)

    def backward(self, ctx, g):
        ins, out = self.equation.split("->")
        terms = ins.split(",")
        return tuple(self._grad(ctx.inputs, terms, out, i, g) if t.requires_grad else None
                     for i, t in enumerate(ctx.inputs))

    def _grad(self, inputs: tuple[Tensor, ...], terms: list[str], out: str, i: int, g: Tensor) -> Tensor:
        """d(out)/d(operand i): an einsum of the output gradient with the other operands, written to operand
        i's subscripts. Repeated subscripts of operand i get fresh labels tied to the first by identity
        matrices; subscripts only operand i has (summed in the forward) are broadcast back afterwards."""
        shape = inputs[i].data.shape
        fresh = iter(c for c in string.ascii_letters if c not in self.equation)
        operands = [g] + [t for j, t in enumerate(inputs) if j != i]
        subs = [out] + [term for j, term in enumerate(terms) if j != i]
        target = ""
        for c, n in zip(terms[i], shape):
            if c in target:
                new = next(fresh)
                operands.append(Tensor(xp_of(g.data).eye(n, dtype=g.data.dtype)))
                subs.append(c + new)
                c = new
            target += c
        available = "".join(subs)
        kept = "".join(c for c in target if c in available)
        r = Einsum(",".join(subs) + "->" + kept)(*operands)
        if kept != target:
            r = r.reshape([n if c in kept else 1 for c, n in zip(target, shape)]).expand(shape)
        return r

    def to_onnx(self, g, *xs):
        return g.op("Einsum", *xs, equation=self.equation)


def _parse(equation: str, shapes: list[tuple]) -> tuple[list[str], str]:
    """The equation's terms and output with every '...' spelled out as letters, right-aligned across operands
    (so '...' broadcasts like any size-1 dim)."""
    ins, arrow, out = equation.replace(" ", "").partition("->")
    terms = [_terms(t) for t in ins.split(",")]
    if len(terms) != len(shapes):
        more = "more" if len(shapes) > len(terms) else "fewer"
        raise RuntimeError(f"einsum(): {more} operands were provided than specified in the equation")
    n_ell = []
    for k, (term, shape) in enumerate(zip(terms, shapes)):
        labels = len(term) - (_ELL in term)
        if labels > len(shape) or (_ELL not in term and labels != len(shape)):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({labels}) does not "
                               f"match the number of dimensions ({len(shape)}) for operand {k}"
                               + ("" if _ELL in term else " and no ellipsis was given"))
        n_ell.append(len(shape) - labels)
    if arrow:
        out_term = _terms(out)
        for c in out_term:
            if c != _ELL and out_term.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    else:  # implicit output: the ellipsis, then the labels seen once, sorted
        flat = [c for term in terms for c in term if c != _ELL]
        out_term = [_ELL] * any(_ELL in t for t in terms) + sorted(c for c in set(flat) if flat.count(c) == 1)
    letters = [c for c in string.ascii_letters if c not in equation]
    ell = letters[:max(n_ell, default=0)]
    if len(letters) < len(ell):
        raise RuntimeError("einsum(): too many subscripts in the equation (at most 52 letters)")

    def spell(term: list[str], n: int) -> str:
        return "".join("".join(ell[len(ell) - n:]) if c == _ELL else c for c in term)

    return [spell(t, n) for t, n in zip(terms, n_ell)], spell(out_term, len(ell))


def _broadcast_labels(terms: list[str], operands: list[Tensor]) -> list[Tensor]:
    """Check each label's size across operands. A size-1 dim meeting a larger size is broadcast (torch's rule)
    by expanding that operand, so the Einsum op itself only sees matching sizes."""
    sizes: dict[str, int] = {}
    for k, (term, t) in enumerate(zip(terms, operands)):
        mine: dict[str, int] = {}
        for c, n in zip(term, t.data.shape):
            if mine.setdefault(c, n) != n:
                raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} but the sizes don't "
                                   f"match, {n} != {mine[c]}")
            prev = sizes.setdefault(c, n)
            if n != prev and 1 not in (n, prev):
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {k} which does not "
                                   f"broadcast with previously seen size {prev}")
            if prev == 1:
                sizes[c] = n
    out = []
    for term, t in zip(terms, operands):
        want = tuple(sizes[c] for c in term)
        out.append(t if want == t.data.shape else t.expand(want))
    return out


def einsum(equation: str, *operands: Any) -> Tensor:
    """torch.einsum: operands as arguments or one list; implicit output ('ij,jk') as in numpy."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for t in operands[1:]:
        if t.data.dtype != operands[0].data.dtype:
            raise RuntimeError(f"einsum(): expected scalar type {dtypes.name(operands[0].data.dtype)} but "
                               f"found {dtypes.name(t.data.dtype)}")
    terms, out = _parse(equation, [t.data.shape for t in operands])
    return Einsum(",".join(terms) + "->" + out)(*_broadcast_labels(terms, list(operands)))
