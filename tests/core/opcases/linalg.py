from __future__ import annotations

import numpy as np

import interop
from interop.ops.linalg import linear

from . import OpCase, rnd


def _torch():
    import torch

    return torch


def _linear_ref(x, w, b=None):
    return x @ w.T + (0 if b is None else b)


def _torch_linear(*args):
    return _torch().nn.functional.linear(*args)


def _einsum(eq, *inputs, ref=None, **kw):
    return OpCase("Einsum", lambda *ts: interop.einsum(eq, *ts), list(inputs),
                  ref or (lambda *xs: np.einsum(eq, *xs)), torch_fn=lambda *ts: _torch().einsum(eq, *ts),
                  **kw)


CASES = [
    # matmul and its 2-D / batched / vector forms
    OpCase("MatMul", lambda a, b: a @ b, [rnd(3, 4), rnd(4, 5)], np.matmul, name="matmul_2d"),
    OpCase("MatMul", lambda a, b: a.matmul(b), [rnd(2, 1, 3, 4), rnd(5, 4, 2)], np.matmul,
           name="matmul_broadcast_batch", dynamic={0: {0: "batch"}}),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(2, 3, 4), rnd(4, 5)], np.matmul, name="matmul_3d_2d",
           dynamic={0: {0: "batch", 1: "seq"}}),
    OpCase("MatMul", lambda a, b: a.mT @ b, [rnd(2, 4, 3), rnd(4, 5)], lambda a, b: a.swapaxes(1, 2) @ b,
           name="matmul_3d_2d_noncontiguous"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(4), rnd(4, 5)], np.matmul, name="matmul_1d_2d"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(3, 4), rnd(4)], np.matmul, name="matmul_2d_1d"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(4), rnd(2, 3, 4, 5)], np.matmul, name="matmul_1d_4d"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(2, 3, 4), rnd(4)], np.matmul, name="matmul_3d_1d"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(4), rnd(4, seed=1)], np.matmul, name="matmul_1d_1d"),
    OpCase("MatMul", lambda a, b: a @ b.mT, [rnd(2, 3, 4), rnd(2, 5, 4)], lambda a, b: a @ b.swapaxes(-1, -2),
           name="matmul_transposed_view"),
    OpCase("MatMul", lambda a, b: a.mm(b), [rnd(3, 4), rnd(4, 2)], np.matmul, name="mm"),
    OpCase("MatMul", lambda a, b: a.bmm(b), [rnd(2, 3, 4), rnd(2, 4, 5)], np.matmul, name="bmm"),
    OpCase("MatMul", lambda a, b: a.dot(b), [rnd(5), rnd(5, seed=1)], np.dot, name="dot"),
    OpCase("MatMul", lambda a, b: a @ b, [rnd(3, 4).astype(np.int64) * 3, rnd(4, 2).astype(np.int64) * 3],
           np.matmul, grad=False, name="matmul_int64"),
    # linear: Gemm for 2-D input, MatMul + Add otherwise
    OpCase("Linear", linear, [rnd(4, 3), rnd(5, 3), rnd(5)], _linear_ref, torch_fn=_torch_linear,
           name="linear_2d", dynamic={0: {0: "batch"}}),
    OpCase("Linear", linear, [rnd(2, 4, 3), rnd(5, 3), rnd(5)], _linear_ref, torch_fn=_torch_linear,
           name="linear_3d", dynamic={0: {0: "batch", 1: "seq"}}),
    OpCase("Linear", linear, [rnd(4, 3), rnd(5, 3)], _linear_ref, torch_fn=_torch_linear,
           name="linear_no_bias"),
    OpCase("Linear", linear, [rnd(3), rnd(5, 3), rnd(5)], _linear_ref, torch_fn=_torch_linear,
           name="linear_1d"),
    # einsum
    _einsum("ij,jk->ik", rnd(3, 4), rnd(4, 5), name="einsum_matmul"),
    _einsum("bij,bkj->bik", rnd(2, 3, 4), rnd(2, 5, 4), name="einsum_batched",
            dynamic={0: {0: "batch"}, 1: {0: "batch"}}),
    _einsum("ij,jk", rnd(3, 4), rnd(4, 2), name="einsum_implicit"),
    _einsum("ii->", rnd(4, 4), name="einsum_trace"),
    _einsum("iij->ji", rnd(3, 3, 2), name="einsum_diagonal"),
    _einsum("ij->j", rnd(3, 4), name="einsum_sum"),
    _einsum("ij->ji", rnd(3, 4), name="einsum_transpose"),
    _einsum("i,j->ij", rnd(3), rnd(4), name="einsum_outer"),
    _einsum("ij,jk,kl->il", rnd(2, 3), rnd(3, 4), rnd(4, 2), name="einsum_chain"),
    _einsum("...ij,...jk->...ik", rnd(2, 3, 4), rnd(4, 5), name="einsum_ellipsis_broadcast"),
    _einsum("...i,...i->...", rnd(2, 1, 3), rnd(4, 3), name="einsum_ellipsis_size1"),
    _einsum("a...b,b->...a", rnd(2, 3, 4, 5), rnd(5), name="einsum_ellipsis_middle"),
    _einsum("...i,i->i", rnd(2, 3, 4), rnd(4), name="einsum_ellipsis_summed",
            ref=lambda a, b: np.einsum("abi,i->i", a, b)),
    _einsum("ij,jk->ik", rnd(3, 1), rnd(4, 2), name="einsum_label_broadcast",
            ref=lambda a, b: np.broadcast_to(a, (3, 4)) @ b),
    _einsum("iij,j->i", rnd(3, 3, 2), rnd(2), name="einsum_diagonal_contract"),
    OpCase("Einsum", lambda a, b: interop.einsum("ij,jk", [a, b]), [rnd(3, 4), rnd(4, 2)], np.matmul,
           torch_fn=lambda a, b: _torch().einsum("ij,jk", [a, b]), name="einsum_list"),
    # outer is a broadcast multiply
    OpCase("Mul", lambda a, b: a.outer(b), [rnd(3), rnd(4)], np.outer, name="outer"),
]

