"""dtypes are numpy dtype objects (bfloat16 from ml_dtypes), with PyTorch's type promotion.

numpy's own promotion differs from PyTorch's where users notice (int64 + float16 is float16 in PyTorch, float64 in
numpy; a Python float never widens a float16 tensor), so binary ops ask `result_type` here, never numpy.
"""

from __future__ import annotations

import builtins
from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16", "float32", "float64",
    "complex64", "complex128", "get_default_dtype", "set_default_dtype", "promote_types", "result_type",
    "is_floating_point", "finfo", "iinfo",
]

bool = np.dtype(np.bool_)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)

half, float, double, long, int, short = float16, float32, float64, int64, int32, int16

_NAMES = {
    bool: "bool", int8: "int8", int16: "int16", int32: "int32", int64: "int64", uint8: "uint8",
    float16: "float16", bfloat16: "bfloat16", float32: "float32", float64: "float64",
    complex64: "complex64", complex128: "complex128",
}

# Category: 0 bool, 1 integer, 2 floating, 3 complex.
_CATEGORY = {bool: 0, int8: 1, int16: 1, int32: 1, int64: 1, uint8: 1,
             float16: 2, bfloat16: 2, float32: 2, float64: 2, complex64: 3, complex128: 3}

_default = [float32]
builtins_float, builtins_int, builtins_bool = builtins.float, builtins.int, builtins.bool


def get_default_dtype() -> np.dtype:
    return _default[0]


def set_default_dtype(d: Any) -> None:
    d = as_dtype(d)
    if _CATEGORY.get(d) != 2:
        raise TypeError(f"default dtype must be a floating point dtype, got {name(d)}")
    _default[0] = d


def name(d: np.dtype) -> str:
    return _NAMES.get(d, str(d))


def as_dtype(d: Any) -> np.dtype:
    """Accept interop/numpy dtypes, Python types and names ('float32', 'bfloat16')."""
    if isinstance(d, np.dtype):
        out = d
    elif d is builtins_float:
        return _default[0]
    elif d is builtins_int:
        return int64
    elif d is builtins_bool:
        return bool
    elif isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    else:
        try:
            out = np.dtype(d)
        except TypeError:
            raise TypeError(f"not a dtype: {d!r}") from None
    if out not in _CATEGORY:
        raise TypeError(f"unsupported dtype {out}: interop supports {', '.join(_NAMES.values())}")
    return out


_BY_NAME = {v: k for k, v in _NAMES.items()} | {"half": float16, "float": float32, "double": float64,
                                               "long": int64, "int": int32, "short": int16}


def is_floating_point(d: np.dtype) -> builtins.bool:
    return _CATEGORY.get(d) == 2


def is_complex(d: np.dtype) -> builtins.bool:
    return _CATEGORY.get(d) == 3


def category(d: np.dtype) -> builtins.int:
    return _CATEGORY[d]


def _promote_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    if a == b:
        return a
    ca, cb = _CATEGORY[a], _CATEGORY[b]
    if ca != cb:
        hi, lo = (a, b) if ca > cb else (b, a)
        if _CATEGORY[hi] == 3 and _CATEGORY[lo] == 2 and lo == float64:
            return complex128
        return hi
    if ca == 2 and {a, b} == {float16, bfloat16}:
        return float32
    return np.promote_types(a, b)


_PROMOTE: dict[tuple[np.dtype, np.dtype], np.dtype] = {
    (a, b): _promote_pair(a, b) for a in _CATEGORY for b in _CATEGORY
}


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    return _PROMOTE[a, b]


def _scalar_dtype(x: object) -> np.dtype:
    t = type(x)
    if t is builtins_bool:
        return bool
    if t is builtins_int:
        return int64
    if t is builtins_float:
        return _default[0]
    if t is complex:
        return complex64 if _default[0] != float64 else complex128
    if isinstance(x, builtins_int):  # int subclasses: symbolic sizes during export
        return int64
    raise TypeError(f"unsupported operand type {t.__name__}")


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """PyTorch's combine_categories: a lower-priority group only wins when it is of a higher category."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    ch, cl = _CATEGORY[higher], _CATEGORY[lower]
    if ch == 3:
        return higher
    if cl == 3:
        return (complex128 if higher == float64 else complex64) if ch == 2 else lower
    if ch == 2:
        return higher
    if ch == 0 or cl == 2:
        return _PROMOTE[higher, lower]
    return higher


def result_type(*operands: Any) -> np.dtype:
    """PyTorch's result_type: dimensioned tensors outrank 0-d tensors, which outrank Python scalars, within a
    category; a higher category (bool < int < float < complex) always wins, taking that group's dtype."""
    dim = zero = wrapped = None
    for x in operands:
        d = getattr(x, "dtype", None)
        if d is None:
            d = _scalar_dtype(x)
            wrapped = d if wrapped is None else _PROMOTE[wrapped, d]
        elif x.ndim == 0:
            zero = d if zero is None else _PROMOTE[zero, d]
        else:
            dim = d if dim is None else _PROMOTE[dim, d]
    return _combine(dim, _combine(zero, wrapped))


def finfo(d: Any) -> Any:
    d = as_dtype(d)
    return ml_dtypes.finfo(d) if d == bfloat16 else np.finfo(d)


def iinfo(d: Any) -> np.iinfo:
    return np.iinfo(as_dtype(d))
