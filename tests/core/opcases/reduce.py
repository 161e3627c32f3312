from __future__ import annotations

import numpy as np

from interop import float64 as i_float64

from . import OpCase, pos, rnd

# Two-way ties only: a central finite difference splits a 2-way tie 0.5/0.5, which is PyTorch's even split.
TIES = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, -0.5, 0.25, 2.0], [0.5, 1.5, -2.0, 0.75]])
# A slice with one zero, one with two, one with none: prod's gradient at zeros.
ZEROS = np.array([[1.5, 0.0, -2.0, 0.5], [0.0, 1.25, 0.0, 2.0], [0.75, -1.5, 2.0, 1.25]])
INTS = np.array([[3, -1, 4], [1, 5, -9]], dtype=np.int64)
BOOLS = np.array([[True, False, True], [True, True, True]])
BIG = rnd(3, 5, low=-1000, high=1000)


def _keep(fn, axis):
    return lambda a: fn(a, axis=axis, keepdims=True)


CASES = [
    # sum
    OpCase("Sum", lambda a: a.sum(), [rnd(3, 4)], np.sum, name="sum_all"),
    OpCase("Sum", lambda a: a.sum(1, keepdim=True), [rnd(3, 4)], _keep(np.sum, 1), name="sum_keepdim"),
    OpCase("Sum", lambda a: a.sum((-1, 0)), [rnd(2, 3, 4)], lambda a: a.sum((0, 2)), name="sum_neg_dims"),
    OpCase("Sum", lambda a: a.sum(0), [np.asarray(2.5)], lambda a: a, name="sum_0d"),
    OpCase("Sum", lambda a: a.sum(dtype=i_float64), [rnd(3, 4)], np.sum,
           torch_fn=lambda a: a.sum(dtype=a.double().dtype), name="sum_dtype"),
    OpCase("Sum", lambda a: a.sum(1), [INTS], lambda a: a.sum(1), grad=False, name="sum_int64"),
    OpCase("Sum", lambda a: a.sum(), [BOOLS], lambda a: a.sum(dtype=np.int64), grad=False, name="sum_bool"),
    # mean
    OpCase("Mean", lambda a: a.mean(), [rnd(3, 4)], np.mean, name="mean_all"),
    OpCase("Mean", lambda a: a.mean((0, -1), keepdim=True), [rnd(2, 3, 4)], _keep(np.mean, (0, 2)),
           name="mean_keepdim", dynamic={0: {1: "n"}}),
    # var, std
    OpCase("Var", lambda a: a.var(), [rnd(3, 4)], lambda a: a.var(ddof=1), name="var_all",
           dynamic={0: {0: "n"}}),
    OpCase("Var", lambda a: a.var(1, keepdim=True, correction=0), [rnd(3, 5)],
           lambda a: a.var(1, keepdims=True), name="var_correction0_keepdim"),
    OpCase("Var", lambda a: a.var(-1, False), [rnd(2, 3, 4)], lambda a: a.var(-1), name="var_legacy_unbiased",
           dynamic={0: {0: "batch", 2: "n"}}),
    OpCase("Std", lambda a: a.std(0), [rnd(4, 3)], lambda a: a.std(0, ddof=1), name="std_dim"),
    OpCase("Std", lambda a: a.std((0, 2), correction=2, keepdim=True), [rnd(3, 2, 4)],
           lambda a: a.std((0, 2), ddof=2, keepdims=True), name="std_correction2_keepdim"),
    # prod
    OpCase("Prod", lambda a: a.prod(), [rnd(2, 3, low=0.5, high=1.5)], np.prod, name="prod_all"),
    OpCase("Prod", lambda a: a.prod(1), [ZEROS], lambda a: a.prod(1), name="prod_zeros"),
    OpCase("Prod", lambda a: a.prod(-2, keepdim=True), [ZEROS.T.copy()], _keep(np.prod, 0),
           name="prod_zeros_keepdim"),
    OpCase("Prod", lambda a: a.prod(), [ZEROS[:1]], np.prod, name="prod_one_zero_all"),
    OpCase("Prod", lambda a: a.prod(0), [INTS], lambda a: a.prod(0), grad=False, name="prod_int64"),
    # amax / amin and the full max / min (ties split evenly)
    OpCase("Amax", lambda a: a.amax(1), [TIES], lambda a: a.max(1), name="amax_ties"),
    OpCase("Amax", lambda a: a.amax((0, 1), keepdim=True), [rnd(2, 3, 2)], _keep(np.max, (0, 1)),
           name="amax_keepdim"),
    OpCase("Amin", lambda a: a.amin(-1, keepdim=True), [-TIES], _keep(np.min, -1), name="amin_ties"),
    OpCase("Amax", lambda a: a.max(), [TIES[1:2]], np.max, name="max_all_ties"),
    OpCase("Amin", lambda a: a.min(), [rnd(3, 4)], np.min, name="min_all"),
    # max / min along a dim: (values, indices)
    OpCase("Max", lambda a: tuple(a.max(1)), [rnd(3, 4)], lambda a: (a.max(1), a.argmax(1)), name="max_dim"),
    OpCase("Max", lambda a: tuple(a.max(-2, keepdim=True)), [rnd(2, 3, 4)],
           lambda a: (a.max(-2, keepdims=True), a.argmax(-2, keepdims=True)), name="max_dim_keepdim"),
    OpCase("Min", lambda a: tuple(a.min(0)), [rnd(3, 4)], lambda a: (a.min(0), a.argmin(0)), name="min_dim"),
    # argmax / argmin (first index on ties)
    OpCase("ArgMax", lambda a: a.argmax(), [TIES], lambda a: np.argmax(a), grad=False, name="argmax_all"),
    OpCase("ArgMax", lambda a: a.argmax(1, keepdim=True), [TIES], lambda a: a.argmax(1, keepdims=True),
           grad=False, name="argmax_keepdim_ties"),
    OpCase("ArgMax", lambda a: a.argmax(keepdim=True), [TIES], lambda a: np.argmax(a).reshape(1, 1),
           grad=False, name="argmax_all_keepdim"),
    OpCase("ArgMin", lambda a: a.argmin(-2), [-TIES], lambda a: a.argmin(-2), grad=False, name="argmin_ties"),
    # logsumexp
    OpCase("LogSumExp", lambda a: a.logsumexp(1), [rnd(3, 4)], lambda a: np.log(np.exp(a).sum(1)),
           name="logsumexp"),
    OpCase("LogSumExp", lambda a: a.logsumexp((0, 1), keepdim=True), [BIG],
           lambda a: np.log(np.exp(a - a.max()).sum(keepdims=True)) + a.max(), name="logsumexp_large_keepdim",
           atol=1e-3),
    # cumsum
    OpCase("CumSum", lambda a: a.cumsum(1), [rnd(3, 4)], lambda a: a.cumsum(1), name="cumsum"),
    OpCase("CumSum", lambda a: a.cumsum(-3), [rnd(2, 3, 2)], lambda a: a.cumsum(0), name="cumsum_neg_dim"),
    OpCase("CumSum", lambda a: a.cumsum(0), [INTS.astype(np.int32)], lambda a: a.cumsum(0, dtype=np.int64),
           grad=False, name="cumsum_int32_to_int64"),
    # all / any
    OpCase("ReduceAll", lambda a: a.all(), [BOOLS], np.all, grad=False, name="all"),
    OpCase("ReduceAll", lambda a: a.all(1, keepdim=True), [BOOLS], lambda a: a.all(1, keepdims=True),
           grad=False, name="all_keepdim"),
    OpCase("ReduceAny", lambda a: a.any(0), [np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -2.0]])],
           lambda a: a.any(0), grad=False, name="any_float"),
    OpCase("ReduceAny", lambda a: a.any(-1), [INTS * 0], lambda a: a.any(-1), grad=False, name="any_int"),
    # norm
    OpCase("Norm", lambda a: a.norm(), [rnd(3, 4)], np.linalg.norm, name="norm_fro"),
    OpCase("Norm", lambda a: a.norm(dim=1, keepdim=True), [rnd(3, 4)],
           lambda a: np.linalg.norm(a, axis=1, keepdims=True), name="norm_2_keepdim"),
    OpCase("Norm", lambda a: a.norm(p="fro", dim=(0, -1)), [rnd(2, 3, 4)],
           lambda a: np.sqrt((a * a).sum((0, 2))), name="norm_fro_dims"),
    OpCase("Norm", lambda a: a.norm(1, dim=0), [rnd(3, 4)], lambda a: np.abs(a).sum(0), name="norm_1"),
    OpCase("Norm", lambda a: a.norm(float("inf"), dim=1), [TIES], lambda a: np.abs(a).max(1),
           name="norm_inf"),
    OpCase("Norm", lambda a: a.norm(float("-inf")), [rnd(3, 4)], lambda a: np.abs(a).min(),
           name="norm_neg_inf"),
    OpCase("Norm", lambda a: a.norm(3, dim=-1), [rnd(3, 4)], lambda a: (np.abs(a) ** 3).sum(-1) ** (1 / 3),
           name="norm_3"),
    OpCase("Norm", lambda a: a.norm(0.5), [pos(2, 3)], lambda a: (np.abs(a) ** 0.5).sum() ** 2,
           name="norm_half"),
    OpCase("Norm", lambda a: a.norm(0, dim=1), [ZEROS], lambda a: (a != 0).sum(1).astype(a.dtype),
           name="norm_0"),
]
