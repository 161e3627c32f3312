"""softmax, log_softmax, dropout (deterministic: p=0; the random mask is tested in test_layers_norm), embedding
and one_hot."""

from __future__ import annotations

import numpy as np

import interop

from . import OpCase, rnd


def lib(t):
    """t's library (interop or torch): cases run the same code on both."""
    if isinstance(t, interop.Tensor):
        return interop
    import torch

    return torch


def F(t):
    return lib(t).nn.functional


def ints(*values):
    return np.array(values, np.int64)


def log_softmax_ref(a, axis):
    s = a - a.max(axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis, keepdims=True))


def softmax_ref(a, axis):
    return np.exp(log_softmax_ref(a, axis))


IDS = ints([1, 4, 1, 0], [9, 4, 4, 2])  # repeated ids: their gradients add up
CASES = [
    OpCase("Softmax", lambda a: F(a).softmax(a, 1), [rnd(3, 5)], lambda a: softmax_ref(a, 1), name="softmax_2d"),
    OpCase("Softmax", lambda a: F(a).softmax(a, 0), [rnd(3, 5)], lambda a: softmax_ref(a, 0), name="softmax_dim0"),
    OpCase("Softmax", lambda a: a.softmax(-1), [rnd(2, 3, 6)], lambda a: softmax_ref(a, -1),
           name="softmax_3d_last", dynamic={0: {0: "batch", 1: "seq"}}),
    OpCase("Softmax", lambda a: F(a).softmax(a * 40, 1), [rnd(3, 5)], lambda a: softmax_ref(a * 40, 1),
           name="softmax_large_logits"),
    OpCase("Softmax", lambda a: F(a).softmin(a, 1), [rnd(3, 5)], lambda a: softmax_ref(-a, 1), name="softmax_min"),
    OpCase("LogSoftmax", lambda a: F(a).log_softmax(a, 1), [rnd(3, 5)], lambda a: log_softmax_ref(a, 1),
           name="log_softmax_2d", dynamic={0: {0: "batch"}}),
    OpCase("LogSoftmax", lambda a: a.log_softmax(0), [rnd(4, 2, 3)], lambda a: log_softmax_ref(a, 0),
           name="log_softmax_dim0"),
    OpCase("LogSoftmax", lambda a: F(a).log_softmax(a * 100, -1), [rnd(2, 7)],
           lambda a: log_softmax_ref(a * 100, -1), name="log_softmax_large_logits"),
    OpCase("LogSoftmax", lambda a: F(a).log_softmax(a, 1, dtype=lib(a).float64), [rnd(3, 4)],
           lambda a: log_softmax_ref(a, 1), name="log_softmax_dtype"),
    # dropout with p=0 is deterministic: the op runs (and records) with an all-ones mask
    OpCase("Dropout", lambda a: F(a).dropout(a, 0.0), [rnd(3, 4)], lambda a: a, name="dropout_p0"),
    OpCase("Dropout", lambda a: F(a).dropout2d(a, 0.0), [rnd(2, 3, 2, 2)], lambda a: a, name="dropout2d_p0"),
    OpCase("Embedding", lambda w, i: F(w).embedding(i, w), [rnd(10, 3), IDS], lambda w, i: w[i],
           name="embedding", dynamic={1: {0: "batch", 1: "seq"}}),
    # padding rows get no gradient: the case masks them out of the output so finite differences agree
    OpCase("Embedding", lambda w, i: F(w).embedding(i, w, padding_idx=4) * (i != 4).unsqueeze(-1), [rnd(10, 3), IDS],
           lambda w, i: w[i] * (i != 4)[..., None], name="embedding_padding_idx"),
    OpCase("Embedding", lambda w, i: F(w).embedding(i, w, padding_idx=-1) * (i != 9).unsqueeze(-1),
           [rnd(10, 3), ints(9, 0, 9, 3)], lambda w, i: w[i] * (i != 9)[..., None],
           name="embedding_1d_negative_padding_idx"),
    # scale_grad_by_freq's gradient is not a derivative: checked against PyTorch in test_layers_norm
    OpCase("Embedding", lambda w, i: F(w).embedding(i, w, scale_grad_by_freq=True), [rnd(10, 3), IDS],
           lambda w, i: w[i], name="embedding_scale_grad_by_freq", grad=False),
    OpCase("OneHot", lambda i: F(i).one_hot(i, 5), [ints([0, 3], [4, 1])],
           lambda i: np.eye(5, dtype=np.int64)[i], name="one_hot", grad=False, dynamic={0: {0: "batch"}}),
    OpCase("OneHot", lambda i: F(i).one_hot(i), [ints(2, 0, 1)], lambda i: np.eye(3, dtype=np.int64)[i],
           name="one_hot_inferred", grad=False,
           export=False, export_skip="num_classes=-1 reads the data: export refuses it (pass num_classes)"),
]
