"""batch_norm (training and eval), layer_norm, group_norm, rms_norm and instance_norm, with and without affine."""

from __future__ import annotations

import numpy as np

from . import OpCase, pos, rnd
from .nn import F

EPS = 1e-5


def _normalize(x, axes, eps=EPS, centered=True):
    mean = x.mean(axes, keepdims=True) if centered else 0.0
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _affine(y, w, b, shape):
    if w is not None:
        y = y * w.reshape(shape)
    return y + b.reshape(shape) if b is not None else y


def layer_norm_ref(x, w=None, b=None, k=1):
    return _affine(_normalize(x, tuple(range(x.ndim - k, x.ndim))), w, b, x.shape[x.ndim - k:])


def rms_norm_ref(x, w=None, eps=EPS):
    return _affine(_normalize(x, (-1,), eps, centered=False), w, None, x.shape[-1:])


def _channel(x):
    return (-1,) + (1,) * (x.ndim - 2)


def group_norm_ref(x, groups, w=None, b=None):
    y = _normalize(x.reshape(x.shape[0], groups, -1), (2,)).reshape(x.shape)
    return _affine(y, w, b, _channel(x))


def instance_norm_ref(x, w=None, b=None):
    return _affine(_normalize(x, tuple(range(2, x.ndim))), w, b, _channel(x))


def batch_norm_ref(x, w=None, b=None):
    return _affine(_normalize(x, (0, *range(2, x.ndim))), w, b, _channel(x))


def batch_norm_eval_ref(x, rm, rv, w=None, b=None):
    y = (x - rm.reshape(_channel(x))) / np.sqrt(rv.reshape(_channel(x)) + EPS)
    return _affine(y, w, b, _channel(x))


X4 = rnd(2, 6, 3, 3)
CASES = [
    OpCase("LayerNorm", lambda x, w, b: F(x).layer_norm(x, (4,), w, b), [rnd(2, 3, 4), rnd(4), rnd(4, seed=1)],
           layer_norm_ref, name="layer_norm", dynamic={0: {0: "batch", 1: "seq"}}),
    OpCase("LayerNorm", lambda x, w, b: F(x).layer_norm(x, (3, 4), w, b),
           [rnd(2, 3, 4), rnd(3, 4), rnd(3, 4, seed=1)], lambda x, w, b: layer_norm_ref(x, w, b, 2),
           name="layer_norm_two_dims"),
    OpCase("LayerNorm", lambda x: F(x).layer_norm(x, [5]), [rnd(3, 5)], layer_norm_ref, name="layer_norm_no_affine"),
    OpCase("LayerNorm", lambda x, w: F(x).layer_norm(x, (5,), w, eps=1e-3), [rnd(3, 5), rnd(5)],
           lambda x, w: _affine(_normalize(x, (-1,), 1e-3), w, None, (5,)), name="layer_norm_weight_only_eps"),
    OpCase("RmsNorm", lambda x, w: F(x).rms_norm(x, (4,), w, 1e-5), [rnd(2, 3, 4), rnd(4)], rms_norm_ref,
           name="rms_norm", dynamic={0: {0: "batch"}}),
    OpCase("RmsNorm", lambda x: F(x).rms_norm(x, [4], eps=1e-5), [rnd(3, 4)], rms_norm_ref,
           name="rms_norm_no_weight"),
    OpCase("GroupNorm", lambda x, w, b: F(x).group_norm(x, 3, w, b), [X4, rnd(6), rnd(6, seed=1)],
           lambda x, w, b: group_norm_ref(x, 3, w, b), name="group_norm", dynamic={0: {0: "batch"}}),
    OpCase("GroupNorm", lambda x: F(x).group_norm(x, 2), [rnd(3, 4, 5)], lambda x: group_norm_ref(x, 2),
           name="group_norm_no_affine_3d"),
    OpCase("GroupNorm", lambda x, w, b: F(x).group_norm(x, 1, w, b), [rnd(2, 4, 3), rnd(4), rnd(4, seed=2)],
           lambda x, w, b: group_norm_ref(x, 1, w, b), name="group_norm_one_group"),
    OpCase("InstanceNorm", lambda x, w, b: F(x).instance_norm(x, weight=w, bias=b), [X4, rnd(6), rnd(6, seed=1)],
           instance_norm_ref, name="instance_norm", dynamic={0: {0: "batch"}}),
    OpCase("InstanceNorm", lambda x: F(x).instance_norm(x), [rnd(2, 3, 5)], instance_norm_ref,
           name="instance_norm_no_affine"),
    OpCase("InstanceNorm", lambda x, rm, rv: F(x).instance_norm(x, rm, rv), [rnd(2, 3, 5), rnd(3), pos(3)],
           lambda x, rm, rv: instance_norm_ref(x), grad_inputs=(0,), name="instance_norm_running_stats"),
    OpCase("BatchNorm", lambda x, rm, rv, w, b: F(x).batch_norm(x, rm, rv, w, b, training=True),
           [rnd(5, 3), rnd(3), pos(3), rnd(3, seed=1), rnd(3, seed=2)],
           lambda x, rm, rv, w, b: batch_norm_ref(x, w, b), grad_inputs=(0, 3, 4), name="batch_norm_train_1d",
           dynamic={0: {0: "batch"}}),
    OpCase("BatchNorm", lambda x, w, b: F(x).batch_norm(x, None, None, w, b, training=True),
           [X4, rnd(6), rnd(6, seed=1)], batch_norm_ref, name="batch_norm_train_no_running_stats"),
    OpCase("BatchNorm", lambda x: F(x).batch_norm(x, None, None, training=True, momentum=0.3), [rnd(4, 2, 3)],
           batch_norm_ref, name="batch_norm_train_no_affine"),
    OpCase("BatchNorm", lambda x, rm, rv, w, b: F(x).batch_norm(x, rm, rv, w, b),
           [X4, rnd(6), pos(6), rnd(6, seed=1), rnd(6, seed=2)], batch_norm_eval_ref, grad_inputs=(0, 3, 4),
           name="batch_norm_eval", dynamic={0: {0: "batch"}}),
    OpCase("BatchNorm", lambda x, rm, rv: F(x).batch_norm(x, rm, rv), [rnd(4, 3), rnd(3), pos(3)],
           batch_norm_eval_ref, grad_inputs=(0,), name="batch_norm_eval_no_affine"),
]
