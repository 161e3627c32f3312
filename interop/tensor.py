"""Tensor: an xp array (numpy or cupy) plus what autograd needs to know about it.

Ops attach their methods and operators to `Tensor` from their own family module (`interop/ops/*.py`), so this file
holds only what is not an op: identity, metadata, conversions, the autograd bookkeeping and `repr`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import dtypes
from ._state import state
from .backend import Device, device_of
from .backend import device as as_device

__all__ = ["Tensor"]


class Tensor:
    """A multi-dimensional array with reverse-mode autograd, on the CPU (numpy) or a CUDA GPU (cupy)."""

    # Every tensor sets the slots; the rarer state (a gradient, hooks, a view's base, flags) keeps its class-level
    # default until set, in an instance dict Python only creates then: a tensor is cheap to make on every op.
    __slots__ = ("__dict__", "__weakref__", "_node", "_vc", "data", "requires_grad")
    grad: Tensor | None = None
    _oi = 0  # which output of `_node` this tensor is
    _base: Tensor | None = None  # the tensor whose memory a view shares
    _hooks: list[Callable] | None = None
    _retain = False
    _readonly = False

    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data
        self.requires_grad = requires_grad
        self._node = None  # the autograd Node that produced this tensor (None for leaves)
        self._vc = [0]  # version counter, shared with views

    # ---- metadata -------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        cap = state.capture
        return self.data.shape if cap is None else cap.shape_of(self)

    def size(self, dim: int | None = None) -> Any:
        shape = self.shape
        return shape if dim is None else shape[dim]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> Device:
        return device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return type(self.data) is not np.ndarray

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def itemsize(self) -> int:
        return self.data.itemsize

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def stride(self, dim: int | None = None) -> Any:
        st = tuple(s // self.data.itemsize for s in self.data.strides)
        return st if dim is None else st[dim]

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def data_ptr(self) -> int:
        d = self.data
        return d.ctypes.data if type(d) is np.ndarray else d.data.ptr

    def is_floating_point(self) -> bool:
        return dtypes.is_floating_point(self.data.dtype)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        return self._node

    @property
    def _version(self) -> int:
        return self._vc[0]

    # ---- conversions ----------------------------------------------------------------------------------------
    def _concrete(self, what: str) -> None:
        cap = state.capture
        if cap is not None:
            cap.refuse_concrete(self, what)

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The CPU array, sharing memory (like PyTorch, refuses tensors that require grad unless detached)."""
        self._concrete(".numpy()")
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on a Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        if type(self.data) is not np.ndarray:
            if not force:
                raise TypeError(f"can't convert {self.device} tensor to numpy. Use Tensor.cpu() to copy it first.")
            return self.data.get()
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        self._concrete("np.asarray()")
        a = self.data if type(self.data) is np.ndarray else self.data.get()
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self) -> Any:
        self._concrete(".item()")
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item() if type(self.data) is np.ndarray else self.data.get().item()

    def tolist(self) -> Any:
        self._concrete(".tolist()")
        a = self.data if type(self.data) is np.ndarray else self.data.get()
        if a.dtype == dtypes.bfloat16:
            a = a.astype(np.float32)
        return a.tolist()

    def __bool__(self) -> bool:
        self._concrete("bool()")
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} elements is ambiguous")
        return bool(self.data.reshape(()))

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __index__(self) -> int:
        if dtypes.category(self.dtype) > 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    __hash__ = object.__hash__

    def to(self, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False) -> Tensor:
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)` or `.to(other_tensor)`, like PyTorch."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, (str, Device, int)) and not (isinstance(a, str) and a in dtypes._BY_NAME):
                device = a
            else:
                dtype = a
        out = self
        if device is not None:
            dev = as_device(device)
            if dev != self.device:
                from .ops.elementwise import to_device_op

                out = to_device_op(out, dev)
        if dtype is not None and dtypes.as_dtype(dtype) != out.dtype:
            out = out.type(dtype)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        return self.to(as_device("cuda" if device is None else device))

    # ---- autograd bookkeeping -------------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """A new tensor on the same memory, out of the graph (shares the version counter, like PyTorch)."""
        t = Tensor(self.data)
        t._vc = self._vc
        t._base = self._base if self._base is not None else self
        t._readonly = self._readonly
        return t

    def detach_(self) -> Tensor:
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._node is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use detach()")
        if requires_grad and dtypes.category(self.dtype) < 2:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._node is not None:
            self._retain = True
            self._node.watched = True

    @property
    def retains_grad(self) -> bool:
        return self._retain

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Any:
        """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces the gradient."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        if self._node is not None:
            self._node.watched = True
        return _HookHandle(self._hooks, hook)

    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        from .autograd import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ---- DLPack: `__dlpack__` / `__dlpack_device__` are attached by interop.dlpack (imported with `interop`), as an
    # op family attaches its methods; a lazy import here would cost ~1 us a call, more than numpy's whole export.

    # ---- repr -----------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return _format(self)


class _HookHandle:
    __slots__ = ("_hook", "_hooks")

    def __init__(self, hooks: list, hook: Callable):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


_IMPLIED_DTYPES = (dtypes.int64, dtypes.bool)


def _format(t: Tensor) -> str:
    a = t.data if type(t.data) is np.ndarray else t.data.get()
    shown = a.astype(np.float32) if a.dtype == dtypes.bfloat16 else a
    opts: dict[str, Any] = {"separator": ", ", "prefix": "tensor(", "threshold": 1000, "edgeitems": 3}
    if shown.dtype.kind == "f" and shown.size:
        with np.errstate(all="ignore"):
            return _format_float(t, a, shown, opts)
    return _finish(t, a, shown, opts)


def _format_float(t: Tensor, a: Any, shown: Any, opts: dict) -> str:
    """PyTorch's choice: integral values as `1.`, else 4 decimals, scientific when the range is extreme."""
    finite = shown[np.isfinite(shown)]
    if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
        opts["formatter"] = {"float_kind": lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)}
    elif finite.size and (np.abs(finite).max() >= 1e8 or np.abs(finite[finite != 0]).min(initial=1) < 1e-4):
        opts["formatter"] = {"float_kind": lambda v: f"{v:.4e}"}
    else:
        opts.update(precision=4, floatmode="fixed")
    return _finish(t, a, shown, opts)


def _finish(t: Tensor, a: Any, shown: Any, opts: dict) -> str:
    body = np.array2string(shown, **opts) if shown.size or shown.ndim == 1 else "[]"
    extras = []
    if t.is_cuda:
        extras.append(f"device='{t.device}'")
    if a.size == 0 and a.ndim != 1:
        extras.append(f"size={tuple(a.shape)}")
    default = dtypes.get_default_dtype()
    if a.dtype not in (*_IMPLIED_DTYPES, default) or (a.size == 0 and a.dtype != default):
        extras.append(f"dtype=interop.{dtypes.name(a.dtype)}")
    if t._node is not None:
        extras.append(f"grad_fn=<{type(t._node.op).__name__}Backward>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
