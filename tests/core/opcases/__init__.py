"""Declarative per-op test cases: every registered Op must be exercised by at least one OpCase.

Each op family has a module here (elementwise.py, reduce.py, ...) defining `CASES: list[OpCase]`. The checks in
tests/core/test_ops.py (numpy reference, finite differences, PyTorch) and tests/export/test_op_export.py (ONNX
checker + ONNX Runtime) run over all of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class OpCase:
    op: str  # the registered Op class this case must record
    fn: Callable[..., Any]  # fn(*tensors) -> Tensor | tuple; also run on torch tensors unless torch_fn is given
    inputs: Sequence[np.ndarray]  # float inputs in float64; integer/bool inputs are never differentiated
    ref: Callable[..., Any] | None = None  # numpy reference on the raw arrays (None: torch is the only oracle)
    torch_fn: Callable[..., Any] | None = None  # None: use `fn` itself on torch tensors (same API)
    name: str = ""
    grad: bool = True  # check gradients of the float inputs (False for non-differentiable ops)
    grad_inputs: tuple[int, ...] | None = None  # which inputs to differentiate (default: every float input)
    atol: float = 1e-5  # float32 tolerance vs PyTorch
    rtol: float = 1e-4
    fd_atol: float = 1e-5  # finite-difference tolerance (float64)
    fd_rtol: float = 1e-3
    torch: bool = True  # False when PyTorch has no equivalent (say why in `name`)
    export: bool = True  # False only with a reason in export_skip
    export_skip: str = ""
    dynamic: dict = field(default_factory=dict)  # {input_index: {axis: name}} exercised by the export check
    export_atol: float = 1e-5  # float32 tolerance vs ONNX Runtime

    def __post_init__(self):
        if not self.name:
            self.name = self.op

    @property
    def id(self) -> str:
        return self.name

    def float_inputs(self) -> tuple[int, ...]:
        if self.grad_inputs is not None:
            return self.grad_inputs
        return tuple(i for i, a in enumerate(self.inputs) if np.asarray(a).dtype.kind == "f")


def rnd(*shape: int, low: float = -2.0, high: float = 2.0, seed: int = 0, dtype: Any = np.float64) -> np.ndarray:
    """Deterministic uniform test data."""
    return np.random.default_rng(seed + sum(shape)).uniform(low, high, size=shape).astype(dtype)


def pos(*shape: int, seed: int = 0) -> np.ndarray:
    """Strictly positive data, away from 0 (for log, sqrt, pow, division)."""
    return rnd(*shape, low=0.5, high=2.0, seed=seed)


def all_cases() -> list[OpCase]:
    cases: list[OpCase] = []
    for mod in pkgutil.iter_modules(__path__):
        cases.extend(importlib.import_module(f"{__name__}.{mod.name}").CASES)
    return cases
