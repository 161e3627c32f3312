"""Gradient clipping: clip_grad_norm_ (= get_total_norm + clip_grads_with_norm_) and clip_grad_value_.

They work on the raw gradient arrays in place, like an optimizer step, and never read a value back to the host
except to honour `error_if_nonfinite`: on CUDA the clip coefficient stays a device scalar.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import dtypes
from ..backend import to_device, xp_of
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]

_Tensors = Tensor | Iterable[Tensor]


def _as_list(tensors: _Tensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters: _Tensors) -> list[Tensor]:
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


def _vector_norm(a: Any, p: float) -> Any:
    """The p-norm of all of `a`'s elements as a 0-d float array (float32 at least) on `a`'s device."""
    return xp_of(a).asarray(_norm(a, p))


def _norm(a: Any, p: float) -> Any:
    xp = xp_of(a)
    if a.dtype.itemsize < 4 or dtypes.category(a.dtype) < 2:
        a = a.astype(np.float32)
    flat = a.reshape(-1)
    if flat.size == 0:
        return xp.zeros((), flat.real.dtype)
    if p == 2:
        return xp.sqrt(xp.vdot(flat, flat).real)
    mag = xp.abs(flat)
    if p == math.inf:
        return mag.max()
    if p == -math.inf:
        return mag.min()
    if p == 0:
        return (mag != 0).sum().astype(mag.dtype)
    if p == 1:
        return mag.sum()
    return (mag**p).sum() ** (1.0 / p)


def get_total_norm(tensors: _Tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The norm of the norms of `tensors`, i.e. their p-norm as if concatenated into one vector."""
    tensors = _as_list(tensors)
    p = float(norm_type)
    if not tensors:
        return Tensor(np.zeros((), dtypes.get_default_dtype()))
    dev = tensors[0].device
    norms = [to_device(_vector_norm(t.data, p), dev) for t in tensors]
    total = _vector_norm(xp_of(norms[0]).stack(norms), p)
    if error_if_nonfinite and not bool(xp_of(total).isfinite(total)):
        raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor(total.astype(tensors[0].dtype))


def clip_grads_with_norm_(parameters: _Tensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale the gradients by min(1, max_norm / (total_norm + 1e-6)), in place."""
    grads = _grads(parameters)
    if not grads:
        return
    total = total_norm.data
    xp = xp_of(total)
    coef = xp.asarray(xp.minimum(float(max_norm) / (total.astype(np.float64) + 1e-6), 1.0))
    for g in grads:
        xp_of(g.data).multiply(g.data, to_device(coef, g.device).astype(g.dtype), out=g.data)
        g._vc[0] += 1


def clip_grad_norm_(parameters: _Tensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Rescale the gradients of `parameters` so their total `norm_type`-norm is at most `max_norm`; returns
    the total norm before clipping. `foreach` is accepted for PyTorch compatibility (updates are always in place)."""
    parameters = _as_list(parameters)
    total = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters: _Tensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    v = float(clip_value)
    for g in _grads(parameters):
        xp_of(g.data).clip(g.data, -v, v, out=g.data)
        g._vc[0] += 1
