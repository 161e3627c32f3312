"""How values cross into and out of ONNX Runtime: the dtype table, per-input validators, output wrapping.

Everything a `Session.run` call checks is precomputed here once per input, so the hot path is a dtype compare, a rank
compare and a loop over the fixed dimensions. ORT's own numpy API cannot carry the ml_dtypes types (bfloat16, float8,
int4, ...), so those travel as OrtValues built from the raw bytes instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from ..dlpack import from_dlpack
from ..tensor import Tensor

# ORT's element name (as in 'tensor(float)') -> (onnx.TensorProto enum, numpy dtype).
ELEMENTS: dict[str, tuple[int, np.dtype]] = {
    name: (code, np.dtype(dt)) for name, code, dt in [
        ("float", 1, np.float32), ("uint8", 2, np.uint8), ("int8", 3, np.int8), ("uint16", 4, np.uint16),
        ("int16", 5, np.int16), ("int32", 6, np.int32), ("int64", 7, np.int64), ("string", 8, object),
        ("bool", 9, np.bool_), ("float16", 10, np.float16), ("double", 11, np.float64), ("uint32", 12, np.uint32),
        ("uint64", 13, np.uint64), ("complex64", 14, np.complex64), ("complex128", 15, np.complex128),
        ("bfloat16", 16, ml_dtypes.bfloat16), ("float8e4m3fn", 17, ml_dtypes.float8_e4m3fn),
        ("float8e4m3fnuz", 18, ml_dtypes.float8_e4m3fnuz), ("float8e5m2", 19, ml_dtypes.float8_e5m2),
        ("float8e5m2fnuz", 20, ml_dtypes.float8_e5m2fnuz), ("uint4", 21, ml_dtypes.uint4), ("int4", 22, ml_dtypes.int4),
        ("float4e2m1", 23, ml_dtypes.float4_e2m1fn), ("float8e8m0", 24, ml_dtypes.float8_e8m0fnu),
        ("uint2", 25, ml_dtypes.uint2), ("int2", 26, ml_dtypes.int2),
    ]
}
ONNX_CODE = {dt: code for code, dt in ELEMENTS.values()}
FIRST_EXOTIC = 16  # element codes from here on are ml_dtypes types that ORT's numpy API refuses
_PACKED_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}  # ORT packs these several to a byte, ml_dtypes stores one per byte

# Which kinds of Python value may fill a tensor of each numpy kind: a Python int fills a float input, never the
# reverse (no silent truncation); ml_dtypes floats ('V') take what float inputs take.
_PY_KINDS = {"b": "b", "i": "bi", "u": "bi", "f": "bif", "c": "bifc", "V": "bif", "O": "OU"}


class IOInfo(NamedTuple):
    """One model input or output: `shape` holds ints for fixed dimensions and str (or None) for symbolic ones."""

    name: str
    dtype: np.dtype | None  # None for non-tensor values (sequences, maps, optionals of those)
    shape: tuple[int | str | None, ...] | None
    type: str  # ORT's type string, e.g. 'tensor(float)' or 'seq(tensor(int64))'

    def __repr__(self) -> str:
        if self.dtype is None:
            return f"{self.name}: {self.type}"
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


def io_info(arg: Any) -> IOInfo:
    """IOInfo from an ORT NodeArg."""
    t = arg.type
    elem = ELEMENTS.get(t[7:-1]) if t.startswith("tensor(") else None
    shape = None if elem is None or arg.shape is None else tuple(arg.shape)
    return IOInfo(arg.name, None if elem is None else elem[1], shape, t)


class Input:
    """The precomputed check for one model input."""

    __slots__ = ("code", "dtype", "fixed", "info", "name", "rank", "required")

    def __init__(self, info: IOInfo, required: bool = True):
        self.info, self.name, self.dtype, self.required = info, info.name, info.dtype, required
        self.code = ONNX_CODE.get(info.dtype, 0)
        self.rank = None if info.shape is None else len(info.shape)
        self.fixed = () if info.shape is None else tuple((i, d) for i, d in enumerate(info.shape) if type(d) is int)

    def check(self, a: Any) -> None:
        """Raise, naming this input, unless `a` has its dtype, rank and fixed dimensions."""
        if a.dtype != self.dtype or (self.rank is not None and a.ndim != self.rank):
            self._fail(a)
        shape = a.shape
        for i, d in self.fixed:
            if shape[i] != d:
                self._fail(a)

    def _fail(self, a: Any) -> None:
        want = _shape_str(self.info.shape)
        if a.dtype != self.dtype:
            raise TypeError(f"input '{self.name}': expected dtype {self.dtype.name}, got {a.dtype.name}")
        if a.ndim != self.rank:
            raise ValueError(f"input '{self.name}': expected rank {self.rank} with shape {want}, "
                             f"got rank {a.ndim} with shape {tuple(a.shape)}")
        bad = next(i for i, d in self.fixed if a.shape[i] != d)
        raise ValueError(f"input '{self.name}': expected shape {want}, got {tuple(a.shape)} "
                         f"(dimension {bad} must be {self.info.shape[bad]})")

    def convert(self, v: Any) -> Any:
        """Anything but a Tensor or ndarray (the fast path): DLPack tensors, numpy and Python scalars, lists."""
        if isinstance(v, Tensor):
            return v.data
        if isinstance(v, np.ndarray | np.generic):
            return np.asarray(v)
        if self.dtype is None:  # a sequence, map or optional input: ORT takes Python lists and dicts as they are
            return _unwrap(v)
        if type(v).__module__.startswith("cupy"):
            return v
        if hasattr(v, "__dlpack__"):
            return from_dlpack(v).data
        if isinstance(v, bool | int | float | complex | str | list | tuple):
            return self._from_python(v)
        if hasattr(v, "__array__") or hasattr(v, "__array_interface__"):
            return np.asarray(v)
        raise TypeError(f"input '{self.name}': expected a Tensor, an array, a DLPack tensor or a Python number, "
                        f"got {type(v).__name__}")

    def _from_python(self, v: Any) -> np.ndarray:
        a = np.asarray(v, dtype=object) if self.dtype.kind == "O" else np.asarray(v)
        if a.dtype.kind not in _PY_KINDS.get(self.dtype.kind, ""):
            raise TypeError(f"input '{self.name}': expected dtype {self.dtype.name}, got a Python value "
                            f"of dtype {a.dtype.name}")
        return a.astype(self.dtype, copy=False)


def _shape_str(shape: tuple | None) -> str:
    if shape is None:
        return "unknown"
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _unwrap(v: Any) -> Any:
    """Sequence and map inputs: Tensors inside become the arrays ORT expects."""
    if isinstance(v, Tensor):
        return v.data
    if isinstance(v, list | tuple):
        return [_unwrap(e) for e in v]
    if isinstance(v, dict):
        return {k: _unwrap(e) for k, e in v.items()}
    return v


def wrap(v: Any) -> Any:
    """ORT's output (an array, or a list/dict of them for sequence and map outputs) as interop Tensors."""
    if isinstance(v, list):
        return [wrap(e) for e in v]
    if isinstance(v, dict):
        return {k: wrap(e) for k, e in v.items()}
    return v if v is None else Tensor(v)


# ---- the ml_dtypes types, which cross as raw bytes in OrtValues -----------------------------------------------------
def to_ortvalue(C: Any, a: np.ndarray, code: int, cpu: Any) -> Any:
    """An ORT CPU OrtValue over `a` (zero-copy unless the element type is packed several to a byte)."""
    if code < FIRST_EXOTIC:
        return C.OrtValue.ortvalue_from_numpy(a, cpu)
    bits = _PACKED_BITS.get(code)
    if bits is None:
        return C.OrtValue.ortvalue_from_numpy_with_onnx_type(a.view(f"u{a.itemsize}"), code)
    ov = C.OrtValue.ortvalue_from_shape_and_onnx_type(list(a.shape), code, cpu)
    packed = _pack(a.view(np.uint8).reshape(-1), bits)
    _host_bytes(ov.data_ptr(), packed.size, ov)[:] = packed
    return ov


def from_ortvalue(ov: Any, dtype: np.dtype, code: int) -> np.ndarray:
    """A CPU OrtValue as a numpy array: a view of ORT's buffer that keeps the OrtValue alive."""
    if code < FIRST_EXOTIC:
        return ov.numpy()
    shape = tuple(ov.shape())
    n = int(np.prod(shape))
    bits = _PACKED_BITS.get(code)
    if bits is None:
        return _host_bytes(ov.data_ptr(), n * dtype.itemsize, ov).view(dtype).reshape(shape)
    raw = _host_bytes(ov.data_ptr(), (n * bits + 7) // 8, ov)
    return _unpack(raw, bits, n).view(dtype).reshape(shape)


class _Bytes:
    """Exposes `nbytes` of memory at `ptr` to numpy, holding `owner` (the OrtValue) for as long as the view lives."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, ptr: int, nbytes: int, owner: Any):
        self.__array_interface__ = {"data": (ptr, False), "shape": (nbytes,), "typestr": "|u1", "version": 3}
        self.owner = owner


def _host_bytes(ptr: int, nbytes: int, owner: Any) -> np.ndarray:
    if nbytes == 0:
        return np.empty(0, np.uint8)
    return np.asarray(_Bytes(ptr, nbytes, owner))


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack one-per-byte sub-byte codes, first element in the lowest bits (ONNX's layout)."""
    per = 8 // bits
    pad = (-codes.size) % per
    c = np.concatenate([codes, np.zeros(pad, np.uint8)]).reshape(-1, per) & ((1 << bits) - 1)
    return np.bitwise_or.reduce(c << (np.arange(per, dtype=np.uint8) * bits), axis=1).astype(np.uint8)


def _unpack(raw: np.ndarray, bits: int, n: int) -> np.ndarray:
    per = 8 // bits
    c = (raw[:, None] >> (np.arange(per, dtype=np.uint8) * bits)) & ((1 << bits) - 1)
    return np.ascontiguousarray(c.reshape(-1)[:n])

