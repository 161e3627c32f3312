"""Adam (optionally AMSGrad, L2 or decoupled weight decay) and AdamW, as PyTorch updates, step for step."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..backend import xp_of
from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        check_nonnegative(learning_rate=lr, epsilon=eps)
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        check_nonnegative(weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        a = p.data
        xp = xp_of(a)
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            extra = ("max_exp_avg_sq",) if group["amsgrad"] else ()
            self._init_state(state, a, "exp_avg", "exp_avg_sq", *extra)
        step = self._step_count(state)
        if group["decoupled_weight_decay"]:
            if wd:
                a *= 1 - lr * wd
            wd = 0
        d = self._direction(a, grad, wd, group["maximize"])
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        self._lerp(m, d, 1 - beta1)
        self._square_avg(v, d, beta2)
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"].data
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        t = self._buffer(a)
        xp.sqrt(v, out=t)
        t /= math.sqrt(1 - beta2**step)
        t += group["eps"]
        xp.divide(m, t, out=t)
        t *= lr / (1 - beta1**step)
        a -= t


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): parameters shrink by lr * weight_decay each
    step, outside the adaptive scaling."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
