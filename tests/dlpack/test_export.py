"""Tensor.__dlpack__ / __dlpack_device__ / interop.to_dlpack, checked at the capsule level."""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np
import pytest

import interop
from interop.dlpack import _abi

from .mock import capsule_name, consume, inspect

DTYPE_CODES = {
    "bool": (6, 8), "int8": (0, 8), "int16": (0, 16), "int32": (0, 32), "int64": (0, 64), "uint8": (1, 8),
    "uint16": (1, 16), "uint32": (1, 32), "uint64": (1, 64), "float16": (2, 16), "float32": (2, 32),
    "float64": (2, 64), "complex64": (5, 64), "complex128": (5, 128), "bfloat16": (4, 16),
    "float8_e4m3fn": (10, 8), "float8_e5m2": (12, 8),
}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name, None) or name)


def tensor(shape=(2, 3), dtype="float32") -> interop.Tensor:
    return interop.Tensor(np.arange(int(np.prod(shape))).reshape(shape).astype(np_dtype(dtype)))


@pytest.mark.parametrize("dtype", DTYPE_CODES)
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "legacy"])
def test_capsule_fields(dtype, versioned):
    t = tensor(dtype=dtype)
    cap = t.__dlpack__(max_version=(1, 3) if versioned else None)
    info = inspect(cap)
    assert info["name"] == ("dltensor_versioned" if versioned else "dltensor")
    assert info["dtype"] == (*DTYPE_CODES[dtype], 1)
    assert info["data"] == t.data_ptr() and info["byte_offset"] == 0 and info["device"] == (1, 0)
    assert info["shape"] == (2, 3) and info["strides"] == (3, 1)  # strides always filled (DLPack 1.2)
    if versioned:
        assert info["version"][0] == 1 and info["flags"] == 0
        if DTYPE_CODES[dtype][0] >= 7:
            assert info["version"][1] >= 1  # float8 codes are DLPack 1.1
    consume(cap)


def test_dlpack_device_is_plain_ints():
    dev = tensor().__dlpack_device__()
    assert dev == (1, 0) and type(dev[0]) is int and type(dev[1]) is int


def test_0d_and_zero_size():
    info = inspect(tensor(())[...].__dlpack__(max_version=(1, 0)))
    assert info["ndim"] == 0
    info = inspect(tensor((0, 3)).__dlpack__(max_version=(1, 0)))
    assert info["shape"] == (0, 3) and info["strides"] is not None


def test_requires_grad_is_refused_suggesting_detach():
    t = interop.ones(3, requires_grad=True)
    with pytest.raises(BufferError, match=r"detach\(\)"):
        t.__dlpack__()
    with pytest.raises(BufferError, match="detach"):
        np.from_dlpack(t * 2)
    assert np.from_dlpack(t.detach()).tolist() == [1, 1, 1]


def test_read_only_exports_with_the_flag_or_is_refused_as_legacy():
    t = tensor()
    t.data.flags.writeable = False
    t._readonly = True
    info = inspect(t.__dlpack__(max_version=(1, 0)))
    assert info["flags"] & _abi.READ_ONLY and not info["flags"] & _abi.IS_COPIED
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__()
    with pytest.raises(BufferError, match="read-only"):
        interop.to_dlpack(t)
    a = np.from_dlpack(t)
    assert not a.flags.writeable
    # a copy is the consumer's own: writable, and flagged as a copy
    info = inspect(t.__dlpack__(max_version=(1, 0), copy=True))
    assert info["flags"] == _abi.IS_COPIED and info["data"] != t.data_ptr()
    assert inspect(t.__dlpack__(copy=True))["name"] == "dltensor"


def test_read_only_tensor_on_writable_memory_still_flags():
    t = tensor()
    t._readonly = True  # e.g. imported read-only from cupy, whose arrays have no writeable flag
    assert inspect(t.__dlpack__(max_version=(1, 3)))["flags"] == _abi.READ_ONLY
    assert not np.from_dlpack(t).flags.writeable


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float8_e5m2"])
def test_copy_semantics(dtype):
    t = tensor(dtype=dtype)
    same = inspect(t.__dlpack__(max_version=(1, 0), copy=False))
    assert same["data"] == t.data_ptr() and same["flags"] == 0
    new = inspect(t.__dlpack__(max_version=(1, 0), copy=True))
    assert new["data"] != t.data_ptr() and new["flags"] == _abi.IS_COPIED
    assert new["dtype"] == (*DTYPE_CODES[dtype], 1)
    copied = np.from_dlpack(interop.Tensor(t.data.view(np.uint8)), copy=True)
    copied[...] = 0
    assert t.data.view(np.uint8).any()  # writing the copy leaves the tensor alone
    with pytest.raises(ValueError, match="copy"):
        t.__dlpack__(copy="always")


def test_negative_strides_are_copied_or_refused():
    """torch aborts the process on negative strides (pytorch#188023): never hand them out."""
    base = tensor((3, 4))
    t = interop.Tensor(base.data[::-1, ::2])
    info = inspect(t.__dlpack__(max_version=(1, 0)))
    assert info["flags"] == _abi.IS_COPIED and all(s >= 0 for s in info["strides"])
    assert info["data"] != t.data_ptr()
    legacy = inspect(t.__dlpack__())
    assert all(s >= 0 for s in legacy["strides"])
    with pytest.raises(BufferError, match="negative strides"):
        t.__dlpack__(max_version=(1, 0), copy=False)
    np.testing.assert_array_equal(np.from_dlpack(t), t.data)


def test_other_non_contiguous_layouts_stay_zero_copy():
    base = tensor((3, 4))
    for view in (base.data.T, base.data[:, ::2], base.data[1:, 1:], np.asfortranarray(base.data)):
        t = interop.Tensor(view)
        info = inspect(t.__dlpack__(max_version=(1, 0)))
        assert info["data"] == t.data_ptr() and info["flags"] == 0
        assert info["strides"] == tuple(s // 4 for s in view.strides)


def test_strides_not_a_multiple_of_the_item_size_are_copied():
    rec = np.zeros(4, dtype=[("a", np.int8), ("b", np.float32)])
    rec["b"] = [1, 2, 3, 4]
    t = interop.Tensor(rec["b"])
    info = inspect(t.__dlpack__(max_version=(1, 0)))
    assert info["flags"] == _abi.IS_COPIED
    assert np.from_dlpack(t).tolist() == [1, 2, 3, 4]
    with pytest.raises(BufferError, match="item size"):
        t.__dlpack__(copy=False)


def test_unsupported_dtypes_name_themselves():
    with pytest.raises(BufferError, match=r"byte order.*>f4"):
        interop.Tensor(np.zeros(2, ">f4")).__dlpack__()
    with pytest.raises(BufferError, match="datetime64"):
        interop.Tensor(np.zeros(2, "datetime64[s]")).__dlpack__()
    with pytest.raises(BufferError, match="float4_e2m1fn"):
        interop.Tensor(np.zeros(2, ml_dtypes.float4_e2m1fn)).__dlpack__()


def test_devices_and_streams():
    t = tensor()
    assert inspect(t.__dlpack__(max_version=(1, 0), dl_device=(1, 0)))["data"] == t.data_ptr()
    with pytest.raises(BufferError, match="unsupported device"):
        t.__dlpack__(dl_device=(2, 0))
    assert inspect(t.__dlpack__(stream=-1))["data"] == t.data_ptr()  # -1: "no synchronization", fine on CPU
    with pytest.raises(ValueError, match="stream"):
        t.__dlpack__(stream=1)


def test_capsule_keeps_memory_alive_and_deleter_runs_once():
    data = tensor().data
    refs = sys.getrefcount(data)
    cap = interop.Tensor(data).__dlpack__(max_version=(1, 0))
    assert sys.getrefcount(data) == refs + 1
    a = np.from_dlpack(_Hand(cap))
    assert capsule_name(cap) == "used_dltensor_versioned"
    del cap
    assert a.tolist() == [[0, 1, 2], [3, 4, 5]]
    del a
    assert sys.getrefcount(data) == refs  # the deleter ran, once
    t = interop.Tensor(data)
    cap = interop.to_dlpack(t)
    consume(cap)  # a C consumer: rename, delete
    assert sys.getrefcount(data) == refs + 1  # (+1: t)
    del cap
    assert sys.getrefcount(data) == refs + 1
    for _ in range(3):  # unconsumed capsules are freed by their destructor
        t.__dlpack__(max_version=(1, 0))
        t.__dlpack__()
    assert sys.getrefcount(data) == refs + 1


class _Hand:
    def __init__(self, cap):
        self.cap = cap

    def __dlpack__(self, **_):
        return self.cap
