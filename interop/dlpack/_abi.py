"""The DLPack C ABI (dlpack.h v1.3) seen through ctypes: capsules, the managed-tensor header, deleters.

No C extension: the structs are read and patched in place through their addresses, capsules go through
`ctypes.pythonapi`. Capsule names are static bytes objects (the spec wants names that outlive the capsule).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, NamedTuple

# DLDeviceType
CPU, CUDA, CUDA_HOST, OPENCL, VULKAN, METAL, VPI, ROCM, ROCM_HOST, EXT_DEV, CUDA_MANAGED, ONEAPI, WEBGPU, HEXAGON, \
    MAIA, TRN = 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18
DEVICE_NAMES = {CPU: "kDLCPU", CUDA: "kDLCUDA", CUDA_HOST: "kDLCUDAHost", OPENCL: "kDLOpenCL", VULKAN: "kDLVulkan",
                METAL: "kDLMetal", VPI: "kDLVPI", ROCM: "kDLROCM", ROCM_HOST: "kDLROCMHost", EXT_DEV: "kDLExtDev",
                CUDA_MANAGED: "kDLCUDAManaged", ONEAPI: "kDLOneAPI", WEBGPU: "kDLWebGPU", HEXAGON: "kDLHexagon",
                MAIA: "kDLMAIA", TRN: "kDLTrn"}
HOST_DEVICES = (CPU, CUDA_HOST, ROCM_HOST)  # memory numpy can read in place
CUDA_DEVICES = (CUDA, CUDA_MANAGED)  # memory cupy can read in place

# flags of DLManagedTensorVersioned (IS_SUBBYTE_TYPE_PADDED, 4, only concerns fp4/fp6, which we refuse)
READ_ONLY, IS_COPIED = 1, 2

VERSION = (1, 3)  # the newest DLPack this module reads and writes
LEGACY, VERSIONED = b"dltensor", b"dltensor_versioned"
USED_LEGACY, USED_VERSIONED = b"used_dltensor", b"used_dltensor_versioned"
MAX_NDIM = 64  # numpy's limit, so every tensor we accept can be an array

_api = ctypes.pythonapi
for _name, _res, _args in (
    ("PyCapsule_GetName", ctypes.c_char_p, [ctypes.py_object]),
    ("PyCapsule_GetPointer", ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]),
    ("PyCapsule_IsValid", ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]),
    ("PyCapsule_New", ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]),
):
    _fn = getattr(_api, _name)
    _fn.restype, _fn.argtypes = _res, _args

capsule_name = _api.PyCapsule_GetName
capsule_pointer = _api.PyCapsule_GetPointer
capsule_is_valid = _api.PyCapsule_IsValid
# capsule_new(ptr, VERSIONED, None): a capsule without a destructor, so whoever makes one must `dispose` of it if no
# consumer takes it; that is why such capsules never leave this package.
capsule_new = _api.PyCapsule_New
_CapsuleType = type(capsule_new(1, None, None))


def is_capsule(obj: Any) -> bool:
    return type(obj) is _CapsuleType


# Field order of both structs, read in one go (native layout: sizes 80 and 64 on 64-bit platforms).
#   DLManagedTensorVersioned: version.major, version.minor, manager_ctx, deleter, flags, dl_tensor
#   DLManagedTensor:          dl_tensor, manager_ctx, deleter
#   DLTensor:                 data, device.device_type, device.device_id, ndim, dtype.code, dtype.bits,
#                             dtype.lanes, shape, strides, byte_offset
_TENSOR = "PiiiBBHPPQ"
_VERSIONED = struct.Struct("@IIPPQ" + _TENSOR)
_LEGACY = struct.Struct("@" + _TENSOR + "PP")
assert _VERSIONED.size == 80 and _LEGACY.size == 64
_TENSOR_AT = {True: 32, False: 0}  # offset of dl_tensor
_DTYPE_AT = 20  # offset of dtype inside DLTensor
_FLAGS_AT = 24  # offset of flags in DLManagedTensorVersioned


class Header(NamedTuple):
    """A DLManagedTensorVersioned as read, field for field (what a consumer checks before it trusts one)."""

    major: int
    minor: int
    manager_ctx: int
    deleter: int
    flags: int
    data: int
    device_type: int
    device_id: int
    ndim: int
    code: int
    bits: int
    lanes: int
    shape: int
    strides: int
    byte_offset: int
    versioned = True


class LegacyHeader(NamedTuple):
    """A DLManagedTensor as read, field for field; answers like a `Header` of version 0.0 without flags."""

    data: int
    device_type: int
    device_id: int
    ndim: int
    code: int
    bits: int
    lanes: int
    shape: int
    strides: int
    byte_offset: int
    manager_ctx: int
    deleter: int
    versioned = False
    major = minor = flags = 0


_tuple_new = tuple.__new__  # builds the NamedTuple straight from the unpacked fields, in C


_AT80, _AT64 = ctypes.c_char * 80, ctypes.c_char * 64  # views of the struct's memory, read without a copy


def read_header(ptr: int, versioned: bool) -> Header | LegacyHeader:
    if versioned:
        return _tuple_new(Header, _VERSIONED.unpack_from(_AT80.from_address(ptr)))
    return _tuple_new(LegacyHeader, _LEGACY.unpack_from(_AT64.from_address(ptr)))


def read_int64s(ptr: int, n: int) -> tuple[int, ...]:
    return tuple((ctypes.c_int64 * n).from_address(ptr)) if n else ()


def set_dtype(ptr: int, versioned: bool, code: int, bits: int) -> None:
    at = ptr + _TENSOR_AT[versioned] + _DTYPE_AT
    ctypes.c_uint8.from_address(at).value = code
    ctypes.c_uint8.from_address(at + 1).value = bits


def add_flags(ptr: int, flags: int) -> None:
    """Set flags of a DLManagedTensorVersioned (a legacy DLManagedTensor has none: its shape pointer is there)."""
    ctypes.c_uint64.from_address(ptr + _FLAGS_AT).value |= flags


def set_minor_version(ptr: int, minor: int) -> None:
    ctypes.c_uint32.from_address(ptr + 4).value = minor


_DELETER = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)  # keeps the GIL: deleters may touch Python objects


def dispose(capsule: Any, ptr: int, deleter: int) -> None:
    """Call the deleter of a capsule made by `capsule_new` that no consumer took (spec: a NULL deleter means
    there is nothing to free)."""
    if deleter and capsule_is_valid(capsule, VERSIONED):
        _DELETER(deleter)(ptr)


# ---- the C exchange API (DLPack 1.3): `type(x).__dlpack_c_exchange_api__`, a "dlpack_exchange_api" capsule ------
_FROM_PY = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.POINTER(ctypes.c_void_p))
_WORK_STREAM = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p))


class ExchangeAPI:
    """A producer type's DLPackExchangeAPI table: one C call exports an object as a versioned managed tensor,
    skipping the Python-level `__dlpack__` (about 1 us instead of 2-4 us for torch)."""

    __slots__ = ("_from_py", "_stream")

    def __init__(self, table: int):
        # DLPackExchangeAPI: header {version, prev_api}, allocator, managed_tensor_from_py_object_no_sync,
        # managed_tensor_to_py_object_no_sync, dltensor_from_py_object_no_sync, current_work_stream
        slots = (ctypes.c_void_p * 7).from_address(table)
        self._from_py = _FROM_PY(slots[3])
        self._stream = _WORK_STREAM(slots[6]) if slots[6] else None

    def export(self, obj: Any) -> int:
        """A managed tensor the caller owns (no stream sync: see `work_stream`)."""
        out = ctypes.c_void_p()  # per call: another thread may export between our call and our read
        try:
            failed = self._from_py(obj, out) != 0 or not out.value
        except Exception as e:  # the producer's own error (a sparse or meta torch tensor, say)
            raise BufferError(f"cannot export this {type(obj).__name__} over DLPack: {e}") from e
        if failed:
            raise BufferError(f"{type(obj).__name__}'s DLPack exchange API failed to export it")
        return out.value

    def work_stream(self, device_type: int, device_id: int) -> int:
        """The producer's current stream on a device, which work on the exported tensor must be ordered after."""
        s = ctypes.c_void_p()
        if self._stream is None or self._stream(device_type, device_id, ctypes.byref(s)) != 0:
            raise BufferError("the producer's DLPack exchange API cannot tell its current stream")
        return s.value or 0


def exchange_api(tp: type) -> ExchangeAPI | None:
    """The exchange API a type offers (DLPack >= 1.3 tables only; anything else is ignored)."""
    cap = getattr(tp, "__dlpack_c_exchange_api__", None)
    if not is_capsule(cap) or not capsule_is_valid(cap, b"dlpack_exchange_api"):
        return None
    table = capsule_pointer(cap, b"dlpack_exchange_api")
    major, minor = struct.unpack("@II", ctypes.string_at(table, 8))
    return ExchangeAPI(table) if (major, minor) >= VERSION and major == VERSION[0] else None
