"""Symbolic sizes: what `x.shape[i]` returns on a dynamic axis while a model is being exported.

A `SymInt` is a real `int` (the example size, so eager code keeps running unchanged) that also remembers how
to compute itself in the exported graph: a dimension of some captured value, or `+ - * // %` of other sizes.
Shape ops keep SymInts in their attributes and the exporter turns them into graph computation (`Shape`, `Add`,
`Concat`, ...) instead of constants. This module is core: it never imports onnx.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["SymInt", "is_symbolic", "sym_dim"]

_SYMBOL = {"+": "+", "-": "-", "*": "*", "//": "//", "%": "%"}
_FN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}


class SymInt(int):
    """An int that is also a graph expression.

    `expr` is `("dim", source, axis)` (dimension `axis` of a captured value; `source` is opaque to the core)
    or `(op, a, b)` with `op` in `+ - * // %` and operands SymInt or int. `name` is the readable form, used
    for `dim_param`s (`"batch"`, `"seq+1"`, `"batch*seq"`). Comparisons, hashing and `repr` are the plain int's.
    """

    expr: tuple
    name: str

    def __new__(cls, value: int, expr: tuple, name: str | None = None) -> SymInt:
        self = int.__new__(cls, value)
        self.expr = expr
        self.name = name if name is not None else _render(expr)
        return self

    # arithmetic that stays symbolic (true division, powers, ... give plain numbers: the exporter then sees a
    # baked value and reports it)
    def __add__(self, other: Any) -> Any:
        return _binary("+", self, other)

    def __radd__(self, other: Any) -> Any:
        return _binary("+", other, self)

    def __sub__(self, other: Any) -> Any:
        return _binary("-", self, other)

    def __rsub__(self, other: Any) -> Any:
        return _binary("-", other, self)

    def __mul__(self, other: Any) -> Any:
        return _binary("*", self, other)

    def __rmul__(self, other: Any) -> Any:
        return _binary("*", other, self)

    def __floordiv__(self, other: Any) -> Any:
        return _binary("//", self, other)

    def __rfloordiv__(self, other: Any) -> Any:
        return _binary("//", other, self)

    def __mod__(self, other: Any) -> Any:
        return _binary("%", self, other)

    def __rmod__(self, other: Any) -> Any:
        return _binary("%", other, self)

    def __neg__(self) -> SymInt:
        return _binary("-", 0, self)

    def __pos__(self) -> SymInt:
        return self

    def __abs__(self) -> SymInt:
        return self if int(self) >= 0 else -self

    def __reduce__(self) -> tuple:  # pickling/copying keeps the example value only
        return int, (int(self),)


def _as_int(x: Any) -> int | None:
    """`x` as an int operand, or None when it is not one (floats fall back to plain arithmetic)."""
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    try:
        return operator.index(x) if not isinstance(x, (float, complex)) else None
    except TypeError:
        return None


def _binary(op: str, a: Any, b: Any) -> Any:
    ia, ib = _as_int(a), _as_int(b)
    if ia is None or ib is None:
        return _FN[op](int(a) if isinstance(a, SymInt) else a, int(b) if isinstance(b, SymInt) else b)
    value = _FN[op](int(ia), int(ib))
    a, b = ia, ib
    # identities keep expressions small (and the graph free of `x + 0`, `x * 1`)
    if type(b) is int:
        if (op in "+-" and b == 0) or (op in ("*", "//") and b == 1):
            return a
        if op == "*" and b == 0:
            return 0
    if type(a) is int:
        if op == "+" and a == 0:
            return b
        if op == "*" and a == 1:
            return b
        if op == "*" and a == 0:
            return 0
    return SymInt(value, (op, a, b))


def _render(expr: tuple) -> str:
    op, a, b = expr
    if op == "dim":
        return f"dim{b}"
    sa = a.name if isinstance(a, SymInt) else str(a)
    sb = b.name if isinstance(b, SymInt) else str(b)
    if isinstance(a, SymInt) and len(a.expr) == 3 and a.expr[0] in "+-" and op in ("*", "//", "%"):
        sa = f"({sa})"
    if isinstance(b, SymInt) and b.expr[0] != "dim" and op != "+":
        sb = f"({sb})"
    if op == "-" and a == 0 and type(a) is int:
        return f"-{sb}"
    return f"{sa}{_SYMBOL[op]}{sb}"


def is_symbolic(x: Any) -> bool:
    return isinstance(x, SymInt)


def sym_dim(value: int, source: Any, axis: int, name: str | None = None) -> SymInt:
    """The size of dimension `axis` of `source` (a captured value), `value` in the example run."""
    return SymInt(value, ("dim", source, axis), name)
