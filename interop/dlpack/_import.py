"""The consumer side: `from_dlpack`.

A managed tensor comes from one of three places: a producer type's C exchange API (DLPack 1.3; torch has one), its
Python `__dlpack__` (asked for a versioned capsule, falling back step by step for producers that only know the
legacy signature), or a raw capsule. Its header is validated here, so corrupt input raises instead of crashing; then
numpy (host memory) or cupy (CUDA memory) builds the array and owns the deleter, in C. What they get wrong is fixed
afterwards: numpy imports every legacy capsule read-only, though DLPack before 1.0 has no read-only notion (torch and
cupy import those writable, and so do we, except from producers known to hand out immutable buffers: JAX); cupy
ignores READ_ONLY (the Tensor is marked read-only instead); neither knows bfloat16 or float8 (imported as unsigned
integers of the same width, then viewed).
"""

from __future__ import annotations

from math import prod
from typing import Any, NamedTuple

import numpy as np

from ..backend import Device, device_of, to_device
from ..backend import device as as_device
from ..tensor import Tensor
from . import _abi, _dtypes
from ._export import _device_name

_ndarray = np.ndarray
_np_from_dlpack = np.from_dlpack
_ACCEPTED = _abi.HOST_DEVICES + _abi.CUDA_DEVICES
_UINT8 = np.dtype(np.uint8)


def from_dlpack(ext_tensor: Any, *, device: str | Device | int | None = None, copy: bool | None = None) -> Tensor:
    """A Tensor on the memory of any DLPack producer (an object with `__dlpack__`, or a `dltensor` /
    `dltensor_versioned` capsule), on the producer's device unless `device` says otherwise. `copy` True always
    copies, False never does (BufferError where it would have to), None copies only to change device. The result
    is a leaf that does not require grad, and is read-only where the producer said so."""
    tp = type(ext_tensor)
    if device is None and copy is None:  # the zero-copy fast paths
        if tp is _ndarray:  # numpy's own C consumer
            try:
                a = _np_from_dlpack(ext_tensor)
            except BufferError:
                pass  # bfloat16/float8 (numpy won't export them) and refusals, handled (or explained) below
            else:
                return _tensor(a, not a.flags.writeable)
        else:
            p = _PRODUCERS.get(tp)
            if p is not None and p.exchange is not None:
                a, readonly = _from_exchange(ext_tensor, p)
                t = Tensor(a)
                if readonly:
                    t._readonly = True
                return t
    if copy not in (None, True, False):
        raise ValueError(f"copy must be None, True or False, got {copy!r}")
    target = None if device is None else as_device(device)
    if _abi.is_capsule(ext_tensor):
        a, readonly = _consume(ext_tensor, immutable=False)
    elif tp is _ndarray or isinstance(ext_tensor, Tensor) or (tp.__module__ == "cupy" and tp.__name__ == "ndarray"):
        a, readonly = _alias(ext_tensor)  # our own kinds of memory (and stream): an alias, any layout or dtype
    else:
        p = _producer(tp)
        if p.exchange is not None and target is None:
            a, readonly = _from_exchange(ext_tensor, p)
        else:
            a, readonly = _from_protocol(ext_tensor, p, target, copy)
    copied = False
    if target is not None and device_of(a) != target:
        if copy is False:
            raise BufferError(f"moving a {device_of(a)} tensor to {target} needs a copy but copy=False")
        a, copied = to_device(a, target), True
    elif copy:
        a, copied = a.copy(order="K"), True
    return _tensor(a, readonly and not copied)


def _alias(x: Any) -> tuple[Any, bool]:
    """numpy and cupy arrays and interop tensors need no capsule (numpy won't export bfloat16/float8, an export
    to an unknown consumer would copy negative strides, and cupy's current stream is ours): checked as their
    `__dlpack__` would check them, then viewed."""
    if isinstance(x, Tensor):
        if x.requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        return x.data.view(), x._readonly or (type(x.data) is _ndarray and not x.data.flags.writeable)
    _dtypes.to_dl(x.dtype)
    return x.view(), type(x) is _ndarray and not x.flags.writeable


def _tensor(a: Any, readonly: bool) -> Tensor:
    t = Tensor(a)
    if readonly:
        t._readonly = True
    return t


class _Producer(NamedTuple):
    """What we know about a producer type, looked up once per type."""

    exchange: _abi.ExchangeAPI | None  # its DLPack 1.3 C exchange API
    torch_like: bool  # has torch's requires_grad / conj / neg bits, which its exports must be checked for
    immutable: bool  # its buffers must not be written (JAX), though its legacy capsules cannot say so
    bool_as_uint8: bool  # exports bool as uint8, its DLPack predating kDLBool (ONNX Runtime's OrtValue)


_PRODUCERS: dict[type, _Producer] = {}
_TORCH_BITS = ("requires_grad", "is_conj", "is_neg")


def _producer(tp: type) -> _Producer:
    p = _PRODUCERS.get(tp)
    if p is None:
        if not hasattr(tp, "__dlpack__"):
            raise AttributeError(f"from_dlpack expects an object with __dlpack__ and __dlpack_device__ or a DLPack "
                                 f"capsule, got {tp.__module__}.{tp.__qualname__}")
        root = tp.__module__.partition(".")[0]
        p = _PRODUCERS[tp] = _Producer(_abi.exchange_api(tp), all(hasattr(tp, n) for n in _TORCH_BITS),
                                       root in ("jax", "jaxlib"), root == "onnxruntime")
    return p


def _check_torch_bits(obj: Any) -> None:
    """torch's exchange API exports tensors that require grad and ignores the conjugate and negative bits
    (giving wrong values; its `__dlpack__` ignores the negative bit too): refuse as its `__dlpack__` would."""
    if obj.requires_grad:
        raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
    if obj.is_conj():
        raise BufferError("Can't export tensors with the conjugate bit set; call .resolve_conj() first")
    if obj.is_neg():
        raise BufferError("Can't export tensors with the negative bit set; call .resolve_neg() first")


def _from_exchange(obj: Any, p: _Producer) -> tuple[Any, bool]:
    """One C call for a versioned managed tensor, which we own until numpy/cupy takes it. numpy is tried first,
    unchecked (the producer is compiled code, and numpy validates what it reads): host memory of a dtype numpy
    knows is the common case. Anything it refuses untouched gets the careful path."""
    if p.torch_like and (obj.requires_grad or obj.is_conj() or obj.is_neg()):
        _check_torch_bits(obj)
    ptr = p.exchange.export(obj)
    cap = _abi.capsule_new(ptr, _abi.VERSIONED, None)
    try:
        a = _np_from_dlpack(_Hand(cap))
    except Exception:
        if not _abi.capsule_is_valid(cap, _abi.VERSIONED):
            raise  # numpy took it (and ran the deleter)
    else:
        return a, not a.flags.writeable
    h = _abi.read_header(ptr, True)
    try:
        if h.device_type in _abi.CUDA_DEVICES and h.major == 1:  # no sync was done: order our stream after theirs
            from ._cuda import order_after

            order_after(p.exchange.work_stream(h.device_type, h.device_id), h.device_id)
        return _build(cap, ptr, h, p.immutable, trusted=True)
    except BaseException:
        _abi.dispose(cap, ptr, h.deleter)
        raise


def _from_protocol(obj: Any, p: _Producer, target: Device | None, copy: bool | None) -> tuple[Any, bool]:
    """The Python protocol: ask for the stream and device we need, then consume the capsule."""
    if p.torch_like:
        _check_torch_bits(obj)
    dev_type, dev_id = (int(x) for x in obj.__dlpack_device__())
    kwargs: dict[str, Any] = {"max_version": _abi.VERSION}
    if dev_type in _abi.CUDA_DEVICES:
        if target is not None and target.type == "cpu":
            if copy is False:
                raise BufferError(f"moving a {_device_name((dev_type, dev_id))} tensor to the CPU needs a copy but "
                                  "copy=False")
            kwargs["dl_device"] = (_abi.CPU, 0)  # the producer copies to the host (and synchronizes)
        else:
            from ._cuda import consumer_stream

            kwargs["stream"] = consumer_stream(dev_id)
    elif dev_type not in _abi.HOST_DEVICES:
        raise BufferError(f"cannot import a tensor on {_device_name((dev_type, dev_id))}: {_READS}")
    if copy is False:
        kwargs["copy"] = False
    a, readonly = _consume(_ask(obj, kwargs), immutable=p.immutable)
    if p.bool_as_uint8 and a.dtype == _UINT8 and obj.data_type() == "tensor(bool)":
        a = a.view(np.bool_)
    return a, readonly


def _ask(obj: Any, kwargs: dict) -> Any:
    """`obj.__dlpack__(**kwargs)`, dropping max_version, then copy, then dl_device for producers that predate them
    (the spec's TypeError fallback; a TypeError from the last try is the producer's own and propagates)."""
    drops = [k for k in ("max_version", "copy", "dl_device") if k in kwargs]
    while True:
        try:
            return obj.__dlpack__(**kwargs)
        except TypeError:
            if not drops:
                raise
            del kwargs[drops.pop(0)]


def _consume(cap: Any, immutable: bool) -> tuple[Any, bool]:
    name = _abi.capsule_name(cap)
    if name == _abi.VERSIONED or name == _abi.LEGACY:
        ptr = _abi.capsule_pointer(cap, name)
        return _build(cap, ptr, _abi.read_header(ptr, name == _abi.VERSIONED), immutable, trusted=False)
    if name in (_abi.USED_VERSIONED, _abi.USED_LEGACY):
        raise ValueError("A DLPack capsule cannot be consumed more than once (this one was already used)")
    raise TypeError(f"expected a DLPack capsule named 'dltensor' or 'dltensor_versioned', got {cap!r}")


def _build(cap: Any, ptr: int, h: _abi.Header | _abi.LegacyHeader, immutable: bool,
           trusted: bool) -> tuple[Any, bool]:
    """Validate a managed tensor, then let numpy or cupy consume it. Until they rename the capsule it is not ours:
    on any error here its producer's destructor (or `dispose`) still runs the deleter."""
    dtype = _validate(h, trusted)
    carrier = _dtypes.CARRIER.get(dtype)
    if carrier is not None:  # numpy/cupy import the same bytes as unsigned integers
        _abi.set_dtype(ptr, h.versioned, _dtypes.UINT, h.bits)
    if h.device_type in _abi.CUDA_DEVICES:
        from ..backend import _cupy

        a = _cupy().from_dlpack(cap)
    else:
        a = _np_from_dlpack(_Hand(cap))
        if not (h.versioned or immutable):
            a = _writable(a)
    readonly = bool(h.flags & _abi.READ_ONLY) or (immutable and not h.versioned)
    return (a if carrier is None else a.view(dtype)), readonly


_READS = "interop reads host memory (kDLCPU, kDLCUDAHost, kDLROCMHost) and CUDA memory (kDLCUDA, kDLCUDAManaged)"


def _validate(h: _abi.Header | _abi.LegacyHeader, trusted: bool) -> np.dtype:
    """The tensor's dtype, once nothing in its header could crash numpy or cupy; BufferError otherwise."""
    if h.major != _abi.VERSION[0] and h.versioned:
        raise BufferError(f"DLPack tensor of version {h.major}.{h.minor}: this consumer reads major version "
                          f"{_abi.VERSION[0]} (up to {_abi.VERSION[0]}.{_abi.VERSION[1]})")
    ndim = h.ndim
    if not 0 <= ndim <= _abi.MAX_NDIM or (ndim and not h.shape):
        raise BufferError(f"corrupt DLPack tensor: ndim={ndim} with shape pointer {h.shape:#x} (ndim must be "
                          f"0..{_abi.MAX_NDIM}, and the shape non-NULL unless ndim is 0)")
    if h.device_type not in _ACCEPTED:
        raise BufferError(f"cannot import a tensor on {_device_name((h.device_type, h.device_id))}: {_READS}")
    dtype = _dtypes.FROM_DL.get((h.code, h.bits)) if h.lanes == 1 else None
    if dtype is None:
        _dtypes.from_dl(h.code, h.bits, h.lanes)  # raises, naming it
    if trusted and h.data:
        return dtype
    shape = _abi.read_int64s(h.shape, ndim)
    if any(n < 0 for n in shape):
        raise BufferError(f"corrupt DLPack tensor: negative shape {list(shape)}")
    if not h.data and prod(shape):
        raise BufferError(f"corrupt DLPack tensor: NULL data pointer for shape {list(shape)}")
    return dtype


class _Hand:
    """Hands numpy a capsule we already hold (its `from_dlpack` only takes objects)."""

    __slots__ = ("capsule",)

    def __init__(self, capsule: Any):
        self.capsule = capsule

    def __dlpack__(self, **_: Any) -> Any:
        return self.capsule


class _Alias:
    """Exposes an array's memory writable; holds the array, and through it the producer's deleter."""

    __slots__ = ("__array_interface__", "base")


def _writable(a: np.ndarray) -> np.ndarray:
    alias = _Alias()
    alias.base = a
    alias.__array_interface__ = {**a.__array_interface__, "data": (a.__array_interface__["data"][0], False)}
    return np.asarray(alias)
