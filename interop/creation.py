"""Tensor factories and the global random generator (PyTorch's names and defaults)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes
from .backend import Device, device_of, to_device
from .backend import device as as_device
from .tensor import Tensor

__all__ = [
    "tensor", "as_tensor", "zeros", "ones", "full", "empty", "arange", "linspace", "eye", "rand", "randn",
    "randint", "randperm", "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like",
    "randint_like", "manual_seed", "seed", "Generator",
]


def _infer_dtype(data: Any) -> np.dtype:
    """PyTorch's inference for Python data: bools stay bool, ints become int64, floats the default dtype."""
    a = np.asarray(data)
    if a.dtype.kind == "b":
        return dtypes.bool
    if a.dtype.kind in "iu":
        return dtypes.int64 if a.dtype.kind == "i" or a.dtype != np.uint64 else a.dtype
    if a.dtype.kind == "f":
        return dtypes.get_default_dtype()
    if a.dtype.kind == "c":
        return dtypes.complex128 if dtypes.get_default_dtype() == dtypes.float64 else dtypes.complex64
    raise TypeError(f"can't build a tensor from data of type {a.dtype}")


def _place(a: Any, device: Any) -> Any:
    return a if device is None else to_device(a, as_device(device))


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, numpy/cupy arrays or tensors)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy"):
        dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.as_dtype(data.dtype)
        arr = data.astype(dt, copy=True)
        dev = device if device is not None else device_of(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flatten(data)):
            data = _to_nested(data)
        dt = dtypes.as_dtype(dtype) if dtype is not None else _infer_dtype(data)
        arr = np.array(data, dtype=dt)
        dev = device
    t = Tensor(_place(arr, dev))
    if requires_grad:
        t.requires_grad_()
    return t


def _flatten(data: Any):
    for x in data:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x


def _to_nested(data: Any) -> Any:
    if isinstance(data, (list, tuple)):
        return [_to_nested(x) for x in data]
    return data.item() if isinstance(data, Tensor) else data


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like `tensor`, but shares memory with a numpy/cupy array or Tensor when dtype and device already match."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (dtype is not None or device is not None) else data
    if isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy"):
        dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.as_dtype(data.dtype)
        arr = data if data.dtype == dt else data.astype(dt)
        return Tensor(_place(arr, device))
    return tensor(data, dtype=dtype, device=device)


def _size(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _new(fill: Any, size: Sequence[Any], dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    dt = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    dev = as_device(device)
    xp = dev.xp
    shape = _size(size)
    if dev.type == "cuda":
        import cupy

        with cupy.cuda.Device(dev.index or 0):
            arr = xp.empty(shape, dt) if fill is None else xp.full(shape, fill, dt)
    else:
        arr = xp.empty(shape, dt) if fill is None else xp.full(shape, fill, dt)
    t = Tensor(arr)
    if requires_grad:
        t.requires_grad_()
    return t


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(0, size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(1, size, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(None, size, dtype, device, requires_grad)


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = dtypes.result_type(fill_value) if not isinstance(fill_value, float) else None
    return _new(fill_value, (size,), dtype, device, requires_grad)


def _like(x: Tensor, dtype: Any, device: Any) -> tuple[Any, Any]:
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return _new(0, input.data.shape, dt, dev, requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return _new(1, input.data.shape, dt, dev, requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return _new(None, input.data.shape, dt, dev, requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return _new(fill_value, input.data.shape, dt, dev, requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.int64 if all(isinstance(v, int) for v in (start, end, step)) else dtypes.get_default_dtype()
    dt = dtypes.as_dtype(dtype)
    t = Tensor(_place(np.arange(start, end, step).astype(dt), device))
    return t.requires_grad_() if requires_grad else t


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    dt = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    t = Tensor(_place(np.linspace(start, end, steps).astype(dt), device))
    return t.requires_grad_() if requires_grad else t


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    t = Tensor(_place(np.eye(n, m, dtype=dt), device))
    return t.requires_grad_() if requires_grad else t


# ---- random ----------------------------------------------------------------------------------------------------

class Generator:
    """A seeded source of randomness: numpy's PCG64 on the CPU, cupy's generator on CUDA."""

    def __init__(self, device: Any = "cpu"):
        self.device: Device = as_device(device)
        self.manual_seed(np.random.SeedSequence().entropy % (2**63))

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self._np = np.random.default_rng(self._seed)
        self._cp: dict[int, Any] = {}
        return self

    def initial_seed(self) -> int:
        return self._seed

    def rng(self, device: Device) -> Any:
        if device.type == "cpu":
            return self._np
        idx = device.index or 0
        if idx not in self._cp:
            import cupy

            with cupy.cuda.Device(idx):
                self._cp[idx] = cupy.random.default_rng(self._seed + idx)
        return self._cp[idx]

    def get_state(self) -> dict:
        return {"seed": self._seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, st: dict) -> None:
        self._seed = st["seed"]
        self._np.bit_generator.state = st["bit_generator"]


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed every device's default generator."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    s = int(np.random.SeedSequence().entropy % (2**63))
    default_generator.manual_seed(s)
    return s


def _random(kind: str, size: Sequence[Any], dtype: Any, device: Any, generator: Generator | None,
            requires_grad: bool, **kw: Any) -> Tensor:
    dt = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    dev = as_device(device)
    rng = (generator or default_generator).rng(dev)
    shape = _size(size)
    if kind == "rand":
        arr = rng.random(shape, dtype=np.float64 if dt == dtypes.float64 else np.float32)
    elif kind == "randn":
        arr = rng.standard_normal(shape, dtype=np.float64 if dt == dtypes.float64 else np.float32)
    else:
        arr = rng.integers(kw["low"], kw["high"], size=shape, dtype=np.int64)
    t = Tensor(arr.astype(dt, copy=False))
    return t.requires_grad_() if requires_grad else t


def rand(*size: Any, dtype: Any = None, device: Any = None, generator: Generator | None = None,
         requires_grad: bool = False) -> Tensor:
    return _random("rand", size, dtype, device, generator, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, generator: Generator | None = None,
          requires_grad: bool = False) -> Tensor:
    return _random("randn", size, dtype, device, generator, requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), *, dtype: Any = None, device: Any = None,
            generator: Generator | None = None) -> Tensor:
    if high is None:
        low, high = 0, low
    return _random("randint", (size,), dtype or dtypes.int64, device, generator, False, low=low, high=high)


def randperm(n: int, *, dtype: Any = None, device: Any = None, generator: Generator | None = None) -> Tensor:
    dev = as_device(device)
    arr = (generator or default_generator).rng(dev).permutation(n)
    return Tensor(arr.astype(dtypes.as_dtype(dtype or dtypes.int64)))


def rand_like(input: Tensor, *, dtype: Any = None, device: Any = None) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return rand(input.data.shape, dtype=dt, device=dev)


def randn_like(input: Tensor, *, dtype: Any = None, device: Any = None) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return randn(input.data.shape, dtype=dt, device=dev)


def randint_like(input: Tensor, low: int, high: int | None = None, *, dtype: Any = None,
                 device: Any = None) -> Tensor:
    dt, dev = _like(input, dtype, device)
    return randint(low, high, input.data.shape, dtype=dt, device=dev)

