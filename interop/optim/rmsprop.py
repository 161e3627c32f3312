"""RMSprop (optionally centered, with momentum), matching PyTorch's update step for step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backend import xp_of
from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):
        check_nonnegative(learning_rate=lr, epsilon=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, maximize=maximize))

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        a = p.data
        xp = xp_of(a)
        alpha, momentum, lr = group["alpha"], group["momentum"], group["lr"]
        if not state:
            self._init_state(state, a, "square_avg", *(("momentum_buffer",) if momentum > 0 else ()),
                             *(("grad_avg",) if group["centered"] else ()))
        self._step_count(state)
        d = self._direction(a, grad, group["weight_decay"], group["maximize"])
        sq = state["square_avg"].data
        self._square_avg(sq, d, alpha)
        t = self._buffer(a)
        if group["centered"]:
            ga = state["grad_avg"].data
            self._lerp(ga, d, 1 - alpha)
            xp.multiply(ga, ga, out=t)
            xp.subtract(sq, t, out=t)
            xp.sqrt(t, out=t)
        else:
            xp.sqrt(sq, out=t)
        t += group["eps"]
        xp.divide(d, t, out=t)
        if momentum > 0:
            buf = state["momentum_buffer"].data
            buf *= momentum
            buf += t
            xp.multiply(buf, lr, out=t)
        else:
            t *= lr
        a -= t
