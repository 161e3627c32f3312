"""interop.from_dlpack against a hostile producer: validation, version negotiation, flags, ownership."""

from __future__ import annotations

import gc

import ml_dtypes
import numpy as np
import pytest

import interop
from interop.dlpack import _abi

from .mock import Producer, Wrap, capsule_name


@pytest.fixture
def producer():
    p = Producer()
    yield p
    gc.collect()
    assert p.stray == 0, "a deleter ran twice"


def _arr(shape=(2, 3), dtype=np.float32):
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)


def test_zero_copy_and_deleter_once(producer):
    a = _arr()
    t = interop.from_dlpack(producer.capsule(a))
    assert t.data_ptr() == a.ctypes.data and not t.requires_grad and t.is_leaf and not t._readonly
    t.data[0, 0] = 42
    assert a[0, 0] == 42
    assert producer.deleted == [0]
    t2 = t[1]  # a view keeps the producer's memory alive too
    del t
    assert producer.deleted == [0]
    del t2
    assert producer.deleted == [1]


def test_unconsumed_capsule_is_freed_by_its_destructor(producer):
    cap = producer.capsule(_arr())
    del cap
    assert producer.deleted == [1]


@pytest.mark.parametrize("kind", ["versioned", "legacy"])
def test_double_consumption_is_an_error(producer, kind):
    cap = producer.capsule(_arr(), versioned=kind == "versioned")
    t = interop.from_dlpack(cap)
    assert capsule_name(cap).startswith("used_")
    with pytest.raises(ValueError, match="more than once"):
        interop.from_dlpack(cap)
    del t, cap
    assert producer.deleted == [1]


def test_major_version_mismatch_rejected_deleter_still_called(producer):
    cap = producer.capsule(_arr(), version=(2, 0))
    with pytest.raises(BufferError, match="version 2.0"):
        interop.from_dlpack(cap)
    assert capsule_name(cap) == "dltensor_versioned"  # not taken: its own destructor frees it
    del cap
    assert producer.deleted == [1]


def test_newer_minor_version_is_read(producer):
    t = interop.from_dlpack(producer.capsule(_arr(), version=(1, 99)))
    assert t.tolist() == [[0, 1, 2], [3, 4, 5]]


CORRUPT = {
    "negative ndim": (dict(ndim=-1), "ndim=-1"),
    "ndim over 64": (dict(ndim=65), "ndim=65"),
    "NULL shape with ndim > 0": (dict(shape=None), "NULL"),
    "NULL data with elements": (dict(data=None), "NULL data"),
    "unknown device type": (dict(device_type=99), "device type 99"),
    "kDLExtDev": (dict(device_type=12), "kDLExtDev"),
    "ROCm": (dict(device_type=10), "kDLROCM"),
    "vector lanes": (dict(lanes=4), "float32x4"),
    "unknown type code": (dict(code=99), "code 99"),
    "complex32": (dict(code=5, bits=32), "complex32"),
    "1-bit bool": (dict(code=6, bits=1), "bool1"),
    "int24": (dict(code=0, bits=24), "int24"),
    "float4": (dict(code=17, bits=4), "float4_e2m1fn"),
    "opaque handle": (dict(code=3, bits=64), "opaque"),
}


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "legacy"])
@pytest.mark.parametrize("case", CORRUPT, ids=list(CORRUPT))
def test_corrupt_or_unsupported_header_raises_and_frees(producer, case, versioned):
    fields, match = CORRUPT[case]
    cap = producer.capsule(_arr(), versioned=versioned, **fields)
    with pytest.raises(BufferError, match=match):
        interop.from_dlpack(cap)
    del cap
    assert producer.deleted == [1]


def test_negative_shape_is_refused(producer):
    a = _arr()
    cap = producer.capsule(a)
    # the shape array lives in the producer's bookkeeping: corrupt it in place
    dims = producer._alive[next(iter(producer._alive))][1][2]
    dims[0] = -2
    with pytest.raises(BufferError, match="negative shape"):
        interop.from_dlpack(cap)
    del cap
    assert producer.deleted == [1]


def test_not_a_dlpack_capsule():
    other = _abi.capsule_new(1, _abi.VERSIONED, None)  # a valid capsule, renamed below
    from .mock import _set_name

    _set_name(other, b"something_else")
    with pytest.raises(TypeError, match="capsule named"):
        interop.from_dlpack(other)
    with pytest.raises(AttributeError, match="__dlpack__"):
        interop.from_dlpack([1, 2, 3])


LAYOUTS = {
    "C": lambda a: a,
    "Fortran": lambda a: np.asfortranarray(a),
    "transposed": lambda a: a.T,
    "sliced": lambda a: a[:, ::2],
    "negative strides": lambda a: a[::-1, ::-1],
    "0-d": lambda a: a[1, 2],
    "zero-size": lambda a: a[:0],
    "size-1 odd strides": lambda a: a[::5, 1:2],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_import_zero_copy(producer, layout):
    src = LAYOUTS[layout](_arr((3, 4)))
    src = np.asarray(src) if np.ndim(src) else src[...]
    t = interop.from_dlpack(producer.capsule(src))
    assert t.shape == src.shape and t.stride() == tuple(s // 4 for s in src.strides)
    np.testing.assert_array_equal(t.data, src)
    if src.size:
        assert t.data_ptr() == src.ctypes.data
        t.data[...] = 7
        assert (src == 7).all()


def test_null_strides_mean_c_order_and_byte_offset_is_honoured(producer):
    a = _arr((3, 4))
    t = interop.from_dlpack(producer.capsule(a, strides=None))
    assert t.stride() == (4, 1) and t.data_ptr() == a.ctypes.data
    sub = a[1:]
    t = interop.from_dlpack(producer.capsule(sub, byte_offset=16))
    np.testing.assert_array_equal(t.data, sub)
    assert t.data_ptr() == sub.ctypes.data


def test_zero_size_with_null_data_and_0d_with_null_shape(producer):
    t = interop.from_dlpack(producer.capsule(np.zeros((0, 3), np.float32), data=None))
    assert t.shape == (0, 3)
    s = np.float32(5)[...]
    t = interop.from_dlpack(producer.capsule(s, shape=None, strides=None))
    assert t.shape == () and t.item() == 5


def test_null_deleter_is_never_called(producer):
    a = _arr()
    t = interop.from_dlpack(producer.capsule(a, deleter=False))
    assert t.tolist()[1] == [3, 4, 5]
    del t
    assert producer.deleted == [0] and producer.stray == 0


def test_read_only_flag_makes_a_read_only_tensor(producer):
    a = _arr()
    t = interop.from_dlpack(producer.capsule(a, flags=_abi.READ_ONLY))
    assert t._readonly and not t.data.flags.writeable
    with pytest.raises(RuntimeError, match="read-only"):
        t.add_(1)
    assert t[0]._readonly and t.detach()._readonly  # views and detached aliases stay read-only
    assert (t + 1).tolist()[0] == [1, 2, 3]  # out-of-place ops are fine
    c = interop.from_dlpack(producer.capsule(a, flags=_abi.READ_ONLY), copy=True)
    assert not c._readonly and c.data_ptr() != a.ctypes.data
    c.add_(1)


def test_legacy_capsules_import_writable(producer):
    """DLPack < 1.0 has no read-only notion: numpy imports them read-only anyway, torch and cupy writable."""
    a = _arr()
    t = interop.from_dlpack(producer.capsule(a, versioned=False))
    assert not t._readonly and t.data.flags.writeable and t.data_ptr() == a.ctypes.data
    t.add_(1)
    assert a[0, 0] == 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e8m0fnu"])
def test_ml_dtypes_import(producer, dtype):
    a = _arr().astype(getattr(ml_dtypes, dtype))
    t = interop.from_dlpack(producer.capsule(a))
    assert t.dtype == a.dtype and t.data_ptr() == a.ctypes.data
    np.testing.assert_array_equal(t.data.view(np.uint8), a.view(np.uint8))


def test_copy_and_device_arguments(producer):
    a = _arr()
    t = interop.from_dlpack(producer.capsule(a), copy=True)
    assert t.data_ptr() != a.ctypes.data and t.tolist() == a.tolist()
    t = interop.from_dlpack(producer.capsule(a), copy=False, device="cpu")
    assert t.data_ptr() == a.ctypes.data
    with pytest.raises(ValueError, match="copy must be"):
        interop.from_dlpack(producer.capsule(a), copy="yes")
    del t
    assert producer.deleted == [1, 1, 1]


def test_negotiation_asks_for_versioned_and_falls_back(producer):
    a = _arr()
    new = Wrap(lambda: producer.capsule(a))
    interop.from_dlpack(new)
    assert new.kwargs == [{"max_version": (1, 3)}]
    old = Wrap(lambda: producer.capsule(a, versioned=False), legacy=True)
    t = interop.from_dlpack(old, copy=False)
    assert old.kwargs == [{}] and t.data_ptr() == a.ctypes.data and not t._readonly
    t = interop.from_dlpack(old, copy=True)
    assert t.data_ptr() != a.ctypes.data


def test_producer_type_error_propagates():
    class Broken:
        def __dlpack__(self, **kwargs):
            raise TypeError("broken producer")

        def __dlpack_device__(self):
            return (1, 0)

    with pytest.raises(TypeError, match="broken producer"):
        interop.from_dlpack(Broken())


def test_unreachable_producer_device_is_refused_before_export():
    w = Wrap(lambda: pytest.fail("exported"), device=(10, 0))
    with pytest.raises(BufferError, match="kDLROCM"):
        interop.from_dlpack(w)


def test_numpy_fast_path_and_ml_dtypes_arrays():
    a = _arr()
    t = interop.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data
    r = _arr()
    r.flags.writeable = False
    assert interop.from_dlpack(r)._readonly
    b = a.astype(ml_dtypes.bfloat16)
    t = interop.from_dlpack(b)
    assert t.dtype == interop.bfloat16 and t.data_ptr() == b.ctypes.data
    with pytest.raises(BufferError, match="datetime64"):
        interop.from_dlpack(np.zeros(2, "datetime64[s]"))
    with pytest.raises(BufferError, match="byte order"):
        interop.from_dlpack(np.zeros(2, ">f4"))


def test_interop_tensor_round_trip_is_an_alias():
    t = interop.arange(6.0).reshape(2, 3)
    u = interop.from_dlpack(t.flip(0) if hasattr(t, "flip") else t)
    assert u.data.base is not None
    v = interop.from_dlpack(t)
    assert v.data_ptr() == t.data_ptr()
    v.data[0, 0] = 9
    assert t[0, 0].item() == 9
    with pytest.raises(BufferError, match="detach"):
        interop.from_dlpack(interop.ones(2, requires_grad=True))
