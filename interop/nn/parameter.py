"""Parameter: a Tensor that a Module registers as one of its trainable weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; assigning one to a Module attribute registers it.

    `Parameter(t)` shares `t`'s memory and version counter, as PyTorch's does. Ops on a Parameter return plain
    Tensors, so only the weights themselves are Parameters.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtypes.get_default_dtype())
        src = data if isinstance(data, Tensor) else None
        super().__init__(src.data if src is not None else data, False)
        if src is not None:
            self._vc, self._readonly = src._vc, src._readonly
        if requires_grad:
            if dtypes.category(self.data.dtype) < 2:
                raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
            self.requires_grad = True

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
