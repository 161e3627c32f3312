"""Producer x consumer x dtype x layout on the CPU: interop to and from numpy, torch, JAX and ONNX Runtime.

Each cell checks values, zero-copy (data pointers, and a write on one side seen on the other), flags (read-only
where the producer is immutable) and lifetime (the other side is dropped first, the result still reads right).
Cells an upstream library cannot do are asserted to fail cleanly (an exception, never a crash), with the reason.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import interop

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
ort = pytest.importorskip("onnxruntime")

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "bfloat16",
          "float32", "float64", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"]
ML = {"bfloat16", "float8_e4m3fn", "float8_e5m2"}  # numpy cannot exchange these over DLPack itself
LAYOUTS = {  # numpy views of a 64-byte-aligned (4, 6) array
    "C": lambda a: a,
    "Fortran": lambda a: _aligned(a, "F"),
    "transposed": lambda a: a.T,
    "sliced": lambda a: a[:, ::2],
    "negative": lambda a: a[::-1],
    "offset": lambda a: a[1:],
    "0-d": lambda a: a[1, 2, ...],
    "zero-size": lambda a: a[:0],
    "size-1 dims": lambda a: a[::5],  # shape (1, 6), an odd stride on the size-1 dim: still C-contiguous
}
DENSE = ("C", "0-d", "zero-size")  # the layouts JAX arrays and OrtValues have
TORCH_LAYOUTS = {  # the same views made by torch (which has no negative strides)
    "C": lambda t: t, "Fortran": lambda t: t.t().contiguous().t(), "transposed": lambda t: t.t(),
    "sliced": lambda t: t[:, ::2], "offset": lambda t: t[1:], "0-d": lambda t: t[1, 2], "zero-size": lambda t: t[:0],
    "size-1 dims": lambda t: t[::5],
}


@pytest.fixture(scope="module", autouse=True)
def jax_x64():
    """Without x64 JAX turns 64-bit dtypes into 32-bit ones (a copy)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def _dtype(name: str) -> np.dtype:
    return np.dtype(getattr(ml_dtypes, name, None) or name)


def _aligned(a: np.ndarray, order: str = "C") -> np.ndarray:
    """A copy of `a` at a 64-byte-aligned address (JAX imports zero-copy only from those)."""
    raw = np.empty(a.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape[::-1] if order == "F" else a.shape)
    out = out.T if order == "F" else out
    out[...] = a
    return out


def _template(dtype: str) -> np.ndarray:
    vals = np.arange(24).reshape(4, 6) % 7
    return _aligned((vals % 2).astype(bool) if dtype == "bool" else vals.astype(_dtype(dtype)))


def _bump(a: np.ndarray) -> np.ndarray:
    """Different values of the same dtype, for the write checks."""
    return ~a if a.dtype == bool else (a.astype(np.float64) + 1).astype(a.dtype) if a.dtype.kind == "V" or \
        a.dtype in {_dtype(n) for n in ML} else a + 1


def _carrier(dtype: np.dtype) -> str:
    return {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64", 16: "complex128"}[dtype.itemsize] \
        if dtype.kind not in "bc" else dtype.name


def _torch_of(a: np.ndarray):
    """A torch tensor on a copy of `a`'s values (torch.from_numpy knows neither bfloat16 nor float8)."""
    c = np.ascontiguousarray(a)
    name = a.dtype.name
    if a.dtype.kind in "bc" or name not in ML:
        return torch.from_numpy(c.copy())
    return torch.from_numpy(c.view(_carrier(a.dtype)).copy()).view(getattr(torch, name))


# ---- one side of a cell: how to make a source, read values, a data pointer; how to consume --------------------
def _values(x) -> list:
    if isinstance(x, (ort.OrtValue, jax.Array)):  # (a JAX array caches its values once read: look at its memory)
        return torch.from_dlpack(x).tolist()
    return np.asarray(x).tolist() if isinstance(x, np.ndarray) else x.tolist()


def _ptr(x) -> int:
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if isinstance(x, ort.OrtValue):
        return x.data_ptr()
    if isinstance(x, jax.Array):
        return x.unsafe_buffer_pointer()
    return x.data_ptr()


CONSUMERS = {
    "interop": interop.from_dlpack,
    "numpy": np.from_dlpack,
    "torch": torch.from_dlpack,
    "jax": jnp.from_dlpack,
    "ort": ort.OrtValue.from_dlpack,
}


def _export_outcome(consumer: str, dtype: str, layout: str, src: np.ndarray) -> str:
    """'alias' (zero-copy), 'copy' (values only) or 'refused' (a clean exception), with upstream reasons."""
    if consumer == "numpy" and dtype in ML:
        return "refused"  # numpy 2.4 imports neither kDLBfloat nor the float8 codes
    if consumer == "ort":
        if dtype in ("bool", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"):
            return "refused"  # ORT 1.31's DLPack predates kDLBool, and has no complex or float8
        if not src.flags.c_contiguous and layout != "negative":
            return "refused"  # "ORT only supports contiguous tensor for now"
    if consumer == "jax" and layout == "sliced":
        return "refused"  # jax: non-compact strides are UNIMPLEMENTED
    if consumer != "interop" and layout == "negative":
        return "copy"  # we never hand out negative strides: they abort torch (pytorch#188023)
    if consumer == "jax" and src.ctypes.data % 64:
        return "copy"  # jax copies data that is not 64-byte aligned
    return "alias"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_export(consumer, dtype, layout):
    base = _template(dtype)
    src = LAYOUTS[layout](base)
    t = interop.Tensor(src)
    ref = src.tolist()
    outcome = _export_outcome(consumer, dtype, layout, src)
    if outcome == "refused":
        with pytest.raises((BufferError, RuntimeError, ValueError, TypeError)):
            CONSUMERS[consumer](t)
        return
    out = CONSUMERS[consumer](t)
    assert _values(out) == ref
    if src.size and outcome == "alias":
        assert _ptr(out) == t.data_ptr()
        src[...] = _bump(src)  # a write on our side shows on theirs
        ref = src.tolist()
        assert _values(out) == ref
    elif src.size:
        assert _ptr(out) != t.data_ptr()
    if consumer in ("numpy", "interop"):
        assert np.asarray(out.data if consumer == "interop" else out).flags.writeable
    del t, src, base  # drop our side first: theirs must still read right
    assert _values(out) == ref


# ---- the other direction: their tensors into interop -------------------------------------------------------
def _producer_cases():
    for dtype in DTYPES:
        for layout in LAYOUTS:
            yield "numpy", dtype, layout
            if layout in TORCH_LAYOUTS:
                yield "torch", dtype, layout
            if layout in DENSE:
                yield "jax", dtype, layout
                if dtype not in ML and not dtype.startswith("complex"):  # OrtValues of numpy arrays
                    yield "ort", dtype, layout


def _make(producer: str, dtype: str, layout: str):
    """(the producer's tensor, a numpy view of the same memory or None, its values)"""
    base = _template(dtype)
    if producer == "numpy":
        src = LAYOUTS[layout](base)
        return src, src, src.tolist()
    if producer == "torch":
        x = TORCH_LAYOUTS[layout](_torch_of(base))
        return x, None, x.tolist()
    dense = np.ascontiguousarray(LAYOUTS[layout](base))
    if producer == "jax":
        x = jnp.asarray(dense)
        return x, None, dense.tolist()
    return ort.OrtValue.ortvalue_from_numpy(dense), dense, dense.tolist()


@pytest.mark.parametrize(("producer", "dtype", "layout"), list(_producer_cases()))
def test_import(producer, dtype, layout):
    src, view, ref = _make(producer, dtype, layout)
    t = interop.from_dlpack(src)
    assert t.dtype == _dtype(dtype) and t.shape == tuple(np.shape(view) if view is not None else src.shape)
    assert t.tolist() == ref and not t.requires_grad and t.is_leaf
    if t.numel():
        assert t.data_ptr() == _ptr(src)
    if producer == "jax":  # immutable: imported read-only (its legacy capsule cannot say so)
        assert t._readonly
        with pytest.raises(RuntimeError, match="read-only"):
            t.zero_()
    else:
        assert not t._readonly
        if t.numel():
            t.data[...] = _bump(t.data)  # a write on our side shows on theirs
            ref = t.tolist()
            assert _values(src) == ref
    del src, view  # drop their side first
    assert t.tolist() == ref


def test_round_trips_stay_on_the_same_memory():
    a = _template("float32")
    t = interop.from_dlpack(torch.from_dlpack(interop.from_dlpack(np.from_dlpack(interop.Tensor(a)))))
    assert t.data_ptr() == a.ctypes.data
    j = jnp.from_dlpack(interop.Tensor(a))
    assert interop.from_dlpack(j).data_ptr() == a.ctypes.data


def test_read_only_both_ways():
    r = _template("float32")
    r.flags.writeable = False
    t = interop.from_dlpack(r)
    assert t._readonly
    assert not np.from_dlpack(t).flags.writeable  # exported with READ_ONLY, numpy honours it
    x = torch.from_dlpack(t)  # torch ignores READ_ONLY (as the spec lets consumers do)
    assert x.data_ptr() == r.ctypes.data
    with pytest.raises(BufferError, match="read-only"):
        jnp.from_dlpack(t)  # JAX asks for a legacy capsule, which cannot say read-only
    with pytest.raises(BufferError, match="read-only"):
        ort.OrtValue.from_dlpack(t)


def test_requires_grad_refused_by_every_consumer():
    t = interop.ones(3, requires_grad=True)
    for consume in CONSUMERS.values():
        with pytest.raises(BufferError, match="detach"):
            consume(t)
    with pytest.raises(BufferError, match="detach"):
        interop.from_dlpack(torch.ones(3, requires_grad=True))


def test_torch_bits_are_refused_not_silently_dropped():
    z = torch.tensor([1 + 2j, 3 - 4j])
    with pytest.raises(BufferError, match="conjugate"):
        interop.from_dlpack(z.conj())
    with pytest.raises(BufferError, match="negative bit"):
        interop.from_dlpack(z.conj().imag)  # torch's own __dlpack__ would give the wrong sign here
    assert interop.from_dlpack(z.conj().resolve_conj()).tolist() == [1 - 2j, 3 + 4j]


def test_torch_legacy_capsule_and_to_dlpack():
    x = torch.arange(4.0)
    t = interop.from_dlpack(torch.utils.dlpack.to_dlpack(x))
    assert t.data_ptr() == x.data_ptr() and not t._readonly
    t.data[0] = 5
    assert x[0] == 5
    y = torch.utils.dlpack.from_dlpack(interop.to_dlpack(t))
    assert y.data_ptr() == x.data_ptr()


def test_torch_pinned_like_and_exchange_api_paths_agree():
    """torch tensors come through its C exchange API; the Python protocol must give the same tensor."""
    from interop.dlpack import _import

    x = torch.arange(6.0).reshape(2, 3).t()
    fast = interop.from_dlpack(x)
    slow = interop.from_dlpack(x, copy=False, device="cpu")  # a device argument takes the protocol path
    assert fast.data_ptr() == slow.data_ptr() == x.data_ptr() and fast.stride() == slow.stride() == (1, 3)
    assert _import._PRODUCERS[torch.Tensor].exchange is not None


def test_copy_true_always_copies_even_where_jax_would_alias():
    j = jnp.arange(8.0)
    t = interop.from_dlpack(j, copy=True)
    assert t.data_ptr() != j.unsafe_buffer_pointer() and not t._readonly
    t.add_(1)
    assert j.tolist() == list(range(8))


def test_ort_bool_comes_back_as_bool():
    ov = ort.OrtValue.ortvalue_from_numpy(np.array([True, False, True]))
    t = interop.from_dlpack(ov)
    assert t.dtype == interop.bool and t.tolist() == [True, False, True] and t.data_ptr() == ov.data_ptr()


def test_torch_tensors_without_strided_memory_are_refused():
    for x in (torch.ones(3).to_sparse(), torch.ones(3, device="meta")):
        with pytest.raises(BufferError):
            interop.from_dlpack(x)
