"""Optimizer: the base of SGD, Adam, AdamW and RMSprop, with PyTorch's param groups and state-dict format.

Updates run directly on the parameters' arrays with in-place ufuncs (`out=`), outside autograd; parameters
stay the same objects, so a model moved with `.to()` keeps its optimizer. Each optimizer's state is a dict of
Tensors per parameter ("step", "exp_avg", ...), laid out as PyTorch lays it out, so `state_dict()` is
PyTorch's format."""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import enable_grad
from ..backend import to_device, xp_of
from ..nn.module import zero_grad_
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]



def check_nonnegative(**values: float) -> None:
    """PyTorch's argument checks: `check_nonnegative(learning_rate=lr, epsilon=eps)` raises
    "Invalid learning rate: ..." / "Invalid epsilon value: ..." for a negative (or NaN) value."""
    for name, v in values.items():
        if not v >= 0.0:
            label = "learning rate" if name == "learning_rate" else f"{name} value"
            raise ValueError(f"Invalid {label}: {v}")

class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required: Any = _Required()  # the default of an option that every param group must give


_UNORDERED = ("optimizer parameters need to be organized in ordered collections, but the ordering of tensors "
              "in sets will change between runs. Please use a list instead.")


def _typename(v: Any) -> str:
    return f"interop.{type(v).__name__}" if isinstance(v, Tensor) else type(v).__name__


class Optimizer:
    """Holds `param_groups` (dicts of "params" plus per-group options) and per-parameter `state`.

    Subclasses implement `_update(p, grad, state, group)`, which changes `p.data` in place.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[tuple, Any] = {}
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            f"dicts, but got {_typename(params)}")
        if isinstance(params, set):
            raise TypeError(_UNORDERED)
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing options take the optimizer's defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(_UNORDERED)
        params = param_group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(p))
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required optimization parameter "
                                 + name)
            param_group.setdefault(name, default)
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; each copy is "
                          "updated", stacklevel=3)
        if {id(p) for g in self.param_groups for p in g["params"]} & set(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                zero_grad_(p, set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. `closure` (re-evaluates the model and returns
        the loss) runs first, with grad enabled."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        states = self.state
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                st = states.get(p)
                if st is None:
                    st = {}
                self._update(p, g.data, st, group)
                if st:  # stateless updates (plain SGD) keep no entry, as in PyTorch
                    states[p] = st
                p._vc[0] += 1
        return loss

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---- helpers for the updates ---------------------------------------------------------------------------
    def _buffer(self, a: Any, slot: int = 0) -> Any:
        """A scratch array shaped like `a`, reused across parameters and steps (one per slot, dtype and
        device, as large as the largest parameter), so a step allocates nothing."""
        xp = xp_of(a)
        key = (slot, a.dtype, xp.__name__, getattr(getattr(a, "device", None), "id", None))
        buf = self._scratch.get(key)
        if buf is None or buf.size < a.size:
            buf = self._scratch[key] = xp.empty(a.size, a.dtype)
        return buf[: a.size].reshape(a.shape)

    def _direction(self, p: Any, grad: Any, weight_decay: float, maximize: bool) -> Any:
        """The gradient with `maximize` and L2 `weight_decay` applied (grad itself when neither is set)."""
        if not weight_decay and not maximize:
            return grad
        d = self._buffer(p, 1)
        if weight_decay:
            xp_of(p).multiply(p, weight_decay, out=d)
            if maximize:
                d -= grad
            else:
                d += grad
        else:
            xp_of(grad).negative(grad, out=d)
        return d

    def _lerp(self, a: Any, end: Any, weight: float) -> None:
        """a.lerp_(end, weight) with PyTorch's two formulas (exact at both ends), in place."""
        t = self._buffer(a)
        xp = xp_of(a)
        xp.subtract(end, a, out=t)
        if abs(weight) < 0.5:
            t *= weight
            a += t
        else:
            t *= 1 - weight
            xp.subtract(end, t, out=a)

    def _square_avg(self, v: Any, d: Any, beta: float) -> None:
        """v.mul_(beta).addcmul_(d, d, value=1 - beta) in place: the running mean of squared gradients that Adam
        and RMSprop share, rounded as PyTorch rounds it."""
        t = self._buffer(v)
        xp_of(v).multiply(d, d, out=t)
        t *= 1 - beta
        v *= beta
        v += t

    @staticmethod
    def _init_state(state: dict[str, Any], p: Any, *names: str) -> None:
        """A fresh state: the step counter (a float32 0-d tensor, as in PyTorch) and zeroed tensors like `p`.
        """
        state["step"] = Tensor(np.zeros((), np.float32))
        for name in names:
            state[name] = Tensor(xp_of(p).zeros_like(p))

    @staticmethod
    def _step_count(state: dict[str, Any]) -> float:
        """Advance the step counter and return its new value."""
        st = state["step"].data
        st += 1
        return float(st)

    # ---- state dict ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {param index: {name: Tensor}}, "param_groups": [{options..., "params": [indices]}]}, with
        parameters numbered in group order, as PyTorch numbers them. Values are the live state, not copies."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by `state_dict` (of this optimizer or one built the same way).
        State is copied, cast to each parameter's dtype and moved to its device ("step" keeps its own)."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        by_index = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                            chain.from_iterable(g["params"] for g in self.param_groups)))
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for k, saved in state_dict["state"].items():
            if k not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {k!r}, which no parameter group has")
            p = by_index[k]
            state[p] = {name: _restore(v, p, name) for name, v in saved.items()}
        for g, s in zip(self.param_groups, saved_groups):
            s["params"] = g["params"]
        self.param_groups = saved_groups
        self.state = state

    def __repr__(self) -> str:
        out = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            out += f"\nParameter Group {i}\n"
            out += "".join(f"    {k}: {group[k]}\n" for k in sorted(group) if k != "params")
        return out + ")"


def _restore(v: Any, p: Tensor, name: str) -> Any:
    """A private copy of one saved state value, on p's device and (for floating values but "step") p's dtype.
    """
    if name == "step" and not isinstance(v, Tensor):
        v = np.asarray(v, np.float32)
    if not isinstance(v, Tensor) and not hasattr(v, "dtype"):
        return v
    raw = v.data if isinstance(v, Tensor) else v
    arr = to_device(np.asarray(raw) if isinstance(raw, np.generic) else raw, p.device)
    cast = name != "step" and dtypes.category(arr.dtype) >= 2
    return Tensor(arr.astype(p.dtype if cast else arr.dtype, copy=True))
