"""Test tools for DLPack: a ctypes mirror of dlpack.h, a capsule inspector, a hostile producer and a consumer.

`Producer.capsule(array, ...)` builds a (legacy or versioned) capsule around a numpy array with any header field
overridden, and counts its deleter's calls, so tests can check "exactly once" on success and on every refusal.
`consume(capsule)` plays a C consumer of our exports: renames the capsule and calls the deleter once.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from interop.dlpack import _dtypes

c_void_p, c_int, c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_uint64 = (
    ctypes.c_void_p, ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint8, ctypes.c_uint16,
    ctypes.c_uint32, ctypes.c_uint64)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", c_int), ("device_id", c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int32), ("dtype", DLDataType),
                ("shape", c_void_p), ("strides", c_void_p), ("byte_offset", c_uint64)]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", c_void_p)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", c_void_p), ("deleter", c_void_p),
                ("flags", c_uint64), ("dl_tensor", DLTensor)]


assert ctypes.sizeof(DLTensor) == 48 and ctypes.sizeof(DLManagedTensor) == 64
assert ctypes.sizeof(DLManagedTensorVersioned) == 80

_api = ctypes.pythonapi
_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", _api))
_pointer = ctypes.PYFUNCTYPE(c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_set_name = ctypes.PYFUNCTYPE(c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_SetName", _api))
_new = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, ctypes.c_char_p, c_void_p)(("PyCapsule_New", _api))
# inside a capsule destructor the capsule is dying: look at it through a raw pointer, never as an object
_raw_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, c_void_p)(("PyCapsule_GetName", _api))
_raw_pointer = ctypes.PYFUNCTYPE(c_void_p, c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_DELETER = ctypes.CFUNCTYPE(None, c_void_p)
_USED = {b"dltensor": b"used_dltensor", b"dltensor_versioned": b"used_dltensor_versioned"}
_DESTRUCTOR = ctypes.CFUNCTYPE(None, c_void_p)


def capsule_name(cap: Any) -> str:
    return _name(cap).decode()


def inspect(cap: Any) -> dict:
    """Everything in an unconsumed capsule's managed tensor, as Python values."""
    name = _name(cap)
    versioned = name == b"dltensor_versioned"
    ptr = _pointer(cap, name)
    m = (DLManagedTensorVersioned if versioned else DLManagedTensor).from_address(ptr)
    t = m.dl_tensor
    shape = tuple((c_int64 * t.ndim).from_address(t.shape)) if t.shape and t.ndim > 0 else None
    strides = tuple((c_int64 * t.ndim).from_address(t.strides)) if t.strides and t.ndim > 0 else None
    return {"name": name.decode(), "version": (m.version.major, m.version.minor) if versioned else None,
            "flags": m.flags if versioned else None, "data": t.data or 0,
            "device": (t.device.device_type, t.device.device_id), "ndim": t.ndim,
            "dtype": (t.dtype.code, t.dtype.bits, t.dtype.lanes), "shape": shape, "strides": strides,
            "byte_offset": t.byte_offset, "deleter": m.deleter or 0}


def consume(cap: Any) -> None:
    """What a C consumer does with our capsule: take it (rename), later call the deleter exactly once."""
    name = _name(cap)
    ptr = _pointer(cap, name)
    _set_name(cap, _USED[name])  # capsule names must outlive the capsule: static bytes
    m = (DLManagedTensorVersioned if name == b"dltensor_versioned" else DLManagedTensor).from_address(ptr)
    _DELETER(m.deleter)(ptr)


class Producer:
    """Makes capsules around numpy arrays, with any field of the header overridden; counts deleter calls."""

    def __init__(self):
        self.deleted: list[int] = []  # deleter calls, by capsule number (in order of creation)
        self.stray = 0  # deleter calls for a tensor already deleted (a double free)
        self._alive: dict[int, tuple] = {}  # managed-tensor address -> (number, what it keeps alive)
        self._deleter = _DELETER(self._delete)
        self._destructor = _DESTRUCTOR(self._destruct)

    def _delete(self, ptr: int) -> None:
        entry = self._alive.pop(ptr, None)
        if entry is None:
            self.stray += 1
        else:
            self.deleted[entry[0]] += 1

    def _destruct(self, capsule: int) -> None:
        """PyCapsule destructor: run the deleter only if no consumer took the capsule."""
        name = _raw_name(capsule)
        if name in (b"dltensor", b"dltensor_versioned"):
            ptr = _raw_pointer(capsule, name)
            if self._alive.get(ptr, (0, (0, 0)))[1][1]:  # the deleter unless it is NULL
                self._delete(ptr)

    def capsule(self, a: np.ndarray, *, versioned: bool = True, version: tuple[int, int] = (1, 3), flags: int = 0,
                deleter: bool = True, strides: Any = "auto", byte_offset: int = 0, data: Any = "auto",
                shape: Any = "auto", **fields: Any) -> Any:
        """A capsule for `a` (fields: ndim, code, bits, lanes, device_type, device_id override the header);
        its number in `deleted` is `self.last`."""
        code, bits = _dtypes.TO_DL[a.dtype]
        dims = (c_int64 * max(a.ndim, 1))(*a.shape)
        steps = (c_int64 * max(a.ndim, 1))(*(s // a.itemsize for s in a.strides))
        m = DLManagedTensorVersioned() if versioned else DLManagedTensor()
        t = m.dl_tensor
        t.data = (a.ctypes.data - byte_offset) if data == "auto" else data
        t.device = DLDevice(fields.pop("device_type", 1), fields.pop("device_id", 0))
        t.ndim = fields.pop("ndim", a.ndim)
        t.dtype = DLDataType(fields.pop("code", code), fields.pop("bits", bits), fields.pop("lanes", 1))
        t.shape = ctypes.addressof(dims) if shape == "auto" else shape
        t.strides = ctypes.addressof(steps) if strides == "auto" else strides
        t.byte_offset = byte_offset
        assert not fields, fields
        if versioned:
            m.version = DLPackVersion(*version)
            m.flags = flags
        m.deleter = ctypes.cast(self._deleter, c_void_p).value if deleter else None
        self.last = len(self.deleted)
        self.deleted.append(0)
        self._alive[ctypes.addressof(m)] = (self.last, (m, m.deleter, dims, steps, a))
        return _new(ctypes.addressof(m), b"dltensor_versioned" if versioned else b"dltensor",
                    ctypes.cast(self._destructor, c_void_p).value)


class Wrap:
    """A producer object handing out prepared capsules; `legacy=True` takes only the pre-1.0 signature."""

    def __init__(self, make: Any, device: tuple[int, int] = (1, 0), legacy: bool = False):
        self.make, self.device, self.legacy, self.kwargs = make, device, legacy, []

    def __dlpack__(self, **kwargs: Any) -> Any:
        if self.legacy and kwargs.keys() - {"stream"}:
            raise TypeError(f"__dlpack__() got an unexpected keyword argument {next(iter(kwargs))!r}")
        self.kwargs.append(kwargs)
        return self.make()

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device
