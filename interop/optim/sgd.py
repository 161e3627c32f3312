"""SGD with momentum, dampening, Nesterov, weight decay and maximize (PyTorch's update, step for step)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backend import xp_of
from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        check_nonnegative(learning_rate=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        a = p.data
        xp = xp_of(a)
        momentum = group["momentum"]
        d = self._direction(a, grad, group["weight_decay"], group["maximize"])
        t = self._buffer(a)
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                b = xp.array(d, copy=True)
                state["momentum_buffer"] = Tensor(b)
            else:
                b = buf.data
                b *= momentum
                damp = 1 - group["dampening"]
                if damp == 1:
                    b += d
                else:
                    xp.multiply(d, damp, out=t)
                    b += t
            if group["nesterov"]:
                xp.multiply(b, momentum, out=t)
                t += d
                d = t
            else:
                d = b
        xp.multiply(d, group["lr"], out=t)
        a -= t
