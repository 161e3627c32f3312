"""Losses: cross_entropy (class indices with weights, ignore_index and label smoothing; class probabilities),
nll_loss, and the elementwise losses, in every reduction."""

from __future__ import annotations

import numpy as np

from . import OpCase, pos, rnd
from .nn import F, ints, log_softmax_ref


def _reduce(loss, reduction, denominator=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if denominator is None else denominator)


def _per_class(w, ndim):
    return 1.0 if w is None else w.reshape((-1,) + (1,) * (ndim - 2))


def nll_ref(logp, t, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's cross entropy on log-probabilities: weighted nll, plus label smoothing's uniform term."""
    c = logp.shape[1]
    if t.dtype.kind == "f":
        loss = -(logp * (t * (1 - eps) + eps / c) * _per_class(w, logp.ndim)).sum(1)
        return _reduce(loss, reduction)
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    wt = (w[tc] if w is not None else 1.0) * valid
    nll = -np.take_along_axis(logp, tc[:, None], 1)[:, 0] * wt
    smooth = -(logp * _per_class(w, logp.ndim)).sum(1) * valid
    return _reduce(nll * (1 - eps) + smooth * (eps / c), reduction, wt.sum())


def ce_ref(x, t, w=None, **kw):
    return nll_ref(log_softmax_ref(x, 1), t, w, **kw)


def _ce(**kw):
    return lambda x, t, *w: F(x).cross_entropy(x, t, *w, **kw)


def _nll(**kw):
    return lambda x, t, *w: F(x).nll_loss(x, t, *w, **kw)


T = ints(1, 0, 4, 2)
T_IGNORED = ints(1, -100, 4, 2)
T_SPATIAL = ints([[0, 2, 1], [2, 2, 0]], [[1, 7, 0], [0, 1, 7]])  # (2, 2, 3) for input (2, 3, 2, 3); 7 ignored
PROBS = pos(4, 5, seed=3)
W5 = pos(5, seed=4)


def _bce_input(*shape):
    return rnd(*shape, low=0.05, high=0.95)


def _elementwise(op, name, fn, ref, inputs, **kw):
    return OpCase(op, fn, inputs, ref, name=name, **kw)


def _mse(x, y):
    return (x - y) ** 2


def _smooth_l1(beta):
    def ref(x, y):
        d = np.abs(x - y)
        return d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)

    return ref


def _huber(delta):
    def ref(x, y):
        d = np.abs(x - y)
        return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))

    return ref


def _bce(x, y, w=1.0):
    return -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100)) * w


def _bce_logits(x, y, w=1.0, pw=None):
    sp = np.logaddexp(0, -x)
    lw = 1.0 if pw is None else 1 + (pw - 1) * y
    return ((1 - y) * x + lw * sp) * w


def _kl(x, y, log_target=False):
    if log_target:
        return np.exp(y) * (y - x)
    return y * (np.log(y) - x)


A, B = rnd(3, 4), rnd(3, 4, seed=7)
BATCH2 = {0: {0: "batch"}, 1: {0: "batch"}}  # input and target share a dynamic batch
CASES = [
    # cross_entropy, class indices
    OpCase("CrossEntropy", _ce(), [rnd(4, 5), T], ce_ref, name="cross_entropy", dynamic=BATCH2),
    OpCase("CrossEntropy", _ce(), [rnd(4, 5), T_IGNORED], ce_ref, name="cross_entropy_ignore_index_default"),
    OpCase("CrossEntropy", _ce(ignore_index=2), [rnd(4, 5), T], lambda x, t: ce_ref(x, t, ignore_index=2),
           name="cross_entropy_ignore_index"),
    OpCase("CrossEntropy", _ce(), [rnd(4, 5), T, W5], ce_ref, grad_inputs=(0,), name="cross_entropy_weight"),
    OpCase("CrossEntropy", _ce(ignore_index=-100, reduction="sum"), [rnd(4, 5), T_IGNORED, W5],
           lambda x, t, w: ce_ref(x, t, w, reduction="sum"), grad_inputs=(0,), name="cross_entropy_weight_sum"),
    OpCase("CrossEntropy", _ce(reduction="none"), [rnd(4, 5), T_IGNORED],
           lambda x, t: ce_ref(x, t, reduction="none"), name="cross_entropy_none"),
    OpCase("CrossEntropy", _ce(label_smoothing=0.2), [rnd(4, 5), T], lambda x, t: ce_ref(x, t, eps=0.2),
           name="cross_entropy_label_smoothing"),
    OpCase("CrossEntropy", _ce(label_smoothing=0.1, ignore_index=2), [rnd(4, 5), T, W5],
           lambda x, t, w: ce_ref(x, t, w, eps=0.1, ignore_index=2), grad_inputs=(0,),
           name="cross_entropy_smoothing_weight_ignore"),
    OpCase("CrossEntropy", _ce(label_smoothing=0.3, reduction="none"), [rnd(4, 5), T_IGNORED, W5],
           lambda x, t, w: ce_ref(x, t, w, eps=0.3, reduction="none"), grad_inputs=(0,),
           name="cross_entropy_smoothing_none"),
    OpCase("CrossEntropy", _ce(label_smoothing=0.3, reduction="sum"), [rnd(4, 5), T_IGNORED],
           lambda x, t: ce_ref(x, t, eps=0.3, reduction="sum"), name="cross_entropy_smoothing_sum"),
    OpCase("CrossEntropy", _ce(ignore_index=7), [rnd(2, 3, 2, 3), T_SPATIAL],
           lambda x, t: ce_ref(x, t, ignore_index=7), name="cross_entropy_spatial", dynamic=BATCH2),
    OpCase("CrossEntropy", _ce(ignore_index=7, reduction="none"), [rnd(2, 3, 2, 3), T_SPATIAL, pos(3)],
           lambda x, t, w: ce_ref(x, t, w, ignore_index=7, reduction="none"), grad_inputs=(0,),
           name="cross_entropy_spatial_weight_none"),
    OpCase("CrossEntropy", _ce(), [rnd(5), np.array(3)], lambda x, t: ce_ref(x[None], t[None]),
           name="cross_entropy_unbatched"),
    # cross_entropy, class probabilities (differentiable in the target too)
    OpCase("CrossEntropy", _ce(), [rnd(4, 5), PROBS], ce_ref, name="cross_entropy_probs"),
    OpCase("CrossEntropy", _ce(label_smoothing=0.25, reduction="sum"), [rnd(4, 5), PROBS, W5],
           lambda x, t, w: ce_ref(x, t, w, eps=0.25, reduction="sum"), grad_inputs=(0, 1),
           name="cross_entropy_probs_smoothing_weight"),
    OpCase("CrossEntropy", _ce(reduction="none"), [rnd(2, 3, 4), pos(2, 3, 4)],
           lambda x, t: ce_ref(x, t, reduction="none"), name="cross_entropy_probs_spatial_none"),
    # nll_loss
    OpCase("NllLoss", _nll(), [rnd(4, 5), T_IGNORED], nll_ref, name="nll_loss", dynamic=BATCH2),
    OpCase("NllLoss", _nll(ignore_index=4), [rnd(4, 5), T, W5], lambda x, t, w: nll_ref(x, t, w, ignore_index=4),
           grad_inputs=(0,), name="nll_loss_weight_ignore"),
    OpCase("NllLoss", _nll(reduction="none"), [rnd(4, 5), T], lambda x, t: nll_ref(x, t, reduction="none"),
           name="nll_loss_none"),
    OpCase("NllLoss", _nll(reduction="sum", ignore_index=7), [rnd(2, 3, 2, 3), T_SPATIAL, pos(3)],
           lambda x, t, w: nll_ref(x, t, w, reduction="sum", ignore_index=7), grad_inputs=(0,),
           name="nll_loss_spatial_weight_sum"),
    # elementwise losses
    OpCase("MseLoss", lambda x, y: F(x).mse_loss(x, y), [A, B], lambda x, y: _mse(x, y).mean(), name="mse_loss",
           dynamic=BATCH2),
    OpCase("MseLoss", lambda x, y: F(x).mse_loss(x, y, reduction="sum"), [A, B], lambda x, y: _mse(x, y).sum(),
           name="mse_loss_sum"),
    OpCase("MseLoss", lambda x, y: F(x).mse_loss(x, y, reduction="none"), [A, B], _mse, name="mse_loss_none"),
    OpCase("MseLoss", lambda x, y, w: F(x).mse_loss(x, y, weight=w), [A, B, pos(3, 4)],
           lambda x, y, w: (_mse(x, y) * w).sum() / w.sum(), name="mse_loss_weighted"),
    OpCase("L1Loss", lambda x, y: F(x).l1_loss(x, y), [A, B], lambda x, y: np.abs(x - y).mean(), name="l1_loss"),
    OpCase("L1Loss", lambda x, y: F(x).l1_loss(x, y, reduction="none"), [A, B], lambda x, y: np.abs(x - y),
           name="l1_loss_none"),
    OpCase("SmoothL1Loss", lambda x, y: F(x).smooth_l1_loss(x, y), [A, B],
           lambda x, y: _smooth_l1(1.0)(x, y).mean(), name="smooth_l1_loss"),
    OpCase("SmoothL1Loss", lambda x, y: F(x).smooth_l1_loss(x, y, reduction="sum", beta=0.5), [A, B],
           lambda x, y: _smooth_l1(0.5)(x, y).sum(), name="smooth_l1_loss_beta"),
    OpCase("SmoothL1Loss", lambda x, y: F(x).smooth_l1_loss(x, y, reduction="none", beta=0.0), [A, B],
           _smooth_l1(0.0), name="smooth_l1_loss_beta0"),
    OpCase("HuberLoss", lambda x, y: F(x).huber_loss(x, y), [A, B], lambda x, y: _huber(1.0)(x, y).mean(),
           name="huber_loss"),
    OpCase("HuberLoss", lambda x, y: F(x).huber_loss(x, y, reduction="none", delta=0.7), [A, B], _huber(0.7),
           name="huber_loss_delta"),
    OpCase("BinaryCrossEntropy", lambda x, y: F(x).binary_cross_entropy(x, y), [_bce_input(3, 4), pos(3, 4) / 2],
           lambda x, y: _bce(x, y).mean(), name="binary_cross_entropy"),
    OpCase("BinaryCrossEntropy", lambda x, y, w: F(x).binary_cross_entropy(x, y, w, reduction="none"),
           [_bce_input(3, 4), pos(3, 4) / 2, pos(4)], _bce, grad_inputs=(0, 1), name="binary_cross_entropy_weight"),
    OpCase("BinaryCrossEntropyWithLogits", lambda x, y: F(x).binary_cross_entropy_with_logits(x, y),
           [rnd(3, 4, low=-30, high=30), pos(3, 4) / 2], lambda x, y: _bce_logits(x, y).mean(),
           name="binary_cross_entropy_with_logits", dynamic=BATCH2),
    OpCase("BinaryCrossEntropyWithLogits",
           lambda x, y, w, pw: F(x).binary_cross_entropy_with_logits(x, y, w, reduction="sum", pos_weight=pw),
           [A, pos(3, 4) / 2, pos(3, 1), pos(4, seed=2)], lambda x, y, w, pw: _bce_logits(x, y, w, pw).sum(),
           grad_inputs=(0, 1), name="binary_cross_entropy_with_logits_weight_pos_weight"),
    OpCase("BinaryCrossEntropyWithLogits",
           lambda x, y, pw: F(x).binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw),
           [A, pos(3, 4) / 2, pos(4, seed=2)], lambda x, y, pw: _bce_logits(x, y, pw=pw), grad_inputs=(0, 1),
           name="binary_cross_entropy_with_logits_pos_weight_none"),
    OpCase("KlDiv", lambda x, y: F(x).kl_div(x, y, reduction="batchmean"), [log_softmax_ref(A, 1), pos(3, 4)],
           lambda x, y: _kl(x, y).sum() / 3, name="kl_div_loss_batchmean", dynamic=BATCH2),
    OpCase("KlDiv", lambda x, y: F(x).kl_div(x, y, reduction="sum"), [A, pos(3, 4)], lambda x, y: _kl(x, y).sum(),
           name="kl_div_loss_sum"),
    OpCase("KlDiv", lambda x, y: F(x).kl_div(x, y, reduction="none", log_target=True), [A, B],
           lambda x, y: _kl(x, y, True), name="kl_div_loss_log_target_none"),
]
