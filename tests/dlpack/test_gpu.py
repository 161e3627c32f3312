"""DLPack on CUDA: interop (cupy-backed) to and from cupy, torch, JAX and ONNX Runtime; streams; host copies.

Stream checks hold a producer stream busy with a spin kernel, then look at the consumer stream right after the
exchange: it must be waiting (an event was inserted) while the host is not (no synchronization).
"""

from __future__ import annotations

import time

import ml_dtypes
import numpy as np
import pytest

import interop
from interop.dlpack import _abi, _import

from .mock import inspect

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")

SPIN_MS = 300


@pytest.fixture(scope="module")
def spin():
    """spin(stream): keep a cupy stream busy for SPIN_MS, returning at once on the host. Every kernel the stream
    tests launch runs once first: with CUDA's lazy loading a kernel's first launch loads its module, which can wait
    for the device to go idle (a host sync that is not ours)."""
    kernel = cupy.RawKernel(r"""
    extern "C" __global__ void spin(unsigned long long ns) {
        unsigned long long start, now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
        do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while (now - start < ns);
    }""", "spin")

    def run(stream, ms=SPIN_MS):
        with stream:
            kernel((1,), (1,), (np.uint64(ms * 1_000_000),))

    warm = cupy.cuda.Stream(non_blocking=True)
    run(warm, 0)
    with warm:
        a = cupy.zeros(1 << 20, cupy.float32)
        a += 1
        a.sum()
        interop.from_dlpack(torch.full((1 << 20,), 3.0, device="cuda")).data.sum()
    with torch.cuda.stream(torch.cuda.Stream()):
        torch.from_dlpack(interop.Tensor(a)).sum()
        torch.full((1 << 20,), 3.0, device="cuda").sum()
    torch.cuda.synchronize()
    warm.synchronize()
    return run


@pytest.fixture(scope="module", autouse=True)
def jax_x64():
    try:
        import jax
    except ImportError:
        yield
        return
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def _ptr(x) -> int:
    if isinstance(x, cupy.ndarray):
        return x.data.ptr
    if hasattr(x, "unsafe_buffer_pointer"):
        return x.unsafe_buffer_pointer()
    return x.data_ptr()


def _jax():
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("jax has no GPU backend here")
    return jax


CONSUMERS = {
    "cupy": lambda t: cupy.from_dlpack(t),
    "torch": lambda t: torch.from_dlpack(t),
    "jax": lambda t: _jax().numpy.from_dlpack(t),
    "interop": interop.from_dlpack,
}


def _cuda_array(values: np.ndarray):
    try:
        return cupy.asarray(values)
    except (TypeError, ValueError) as e:
        pytest.skip(f"this cupy cannot hold {values.dtype}: {e}")


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16", "bfloat16", "complex64"])
def test_export_zero_copy(consumer, dtype):
    a = _cuda_array((np.arange(24).reshape(4, 6) % 5).astype(getattr(ml_dtypes, dtype, dtype)))
    t = interop.Tensor(a)
    assert t.__dlpack_device__() == (2, 0)
    try:
        out = CONSUMERS[consumer](t)
    except (TypeError, BufferError, RuntimeError) as e:
        if consumer == "cupy" and dtype == "bfloat16":
            pytest.skip(f"this cupy imports no bfloat16: {e}")
        raise
    assert _ptr(out) == t.data_ptr()
    raw = t.data.view(cupy.uint8)
    raw ^= 1  # our write shows on theirs
    cupy.cuda.get_current_stream().synchronize()
    got = out.data if consumer == "interop" else interop.from_dlpack(out).data
    assert bool((got.view(cupy.uint8) == raw).all())
    del t, a, raw  # theirs outlives ours
    assert got.shape == (4, 6)


def _producers():
    yield "cupy", lambda: cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
    yield "torch", lambda: torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    yield "torch-transposed", lambda: torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4).t()
    yield "torch-bfloat16", lambda: torch.arange(12, device="cuda").reshape(3, 4).to(torch.bfloat16)
    yield "torch-float8", lambda: torch.arange(12, device="cuda").reshape(3, 4).to(torch.float8_e4m3fn)
    yield "cupy-negative", lambda: cupy.arange(12, dtype=cupy.float32).reshape(3, 4)[::-1, ::2]
    yield "jax", lambda: _jax().numpy.arange(12, dtype="float32").reshape(3, 4)


def _readback(src) -> np.ndarray:
    """The producer's own view of its values, on the host, as float32."""
    if isinstance(src, cupy.ndarray):
        return cupy.asnumpy(src).astype(np.float32)
    return src.float().cpu().numpy()


@pytest.mark.parametrize("producer", [name for name, _ in _producers()])
def test_import_zero_copy(producer):
    src = dict(_producers())[producer]()
    n = int(np.prod(src.shape))
    u = interop.from_dlpack(src)
    assert u.device == interop.device("cuda:0") and u.data_ptr() == _ptr(src)
    assert u.shape == tuple(src.shape) and not u.requires_grad
    if producer == "jax":
        assert u._readonly
        return
    assert not u._readonly
    before = _readback(src)
    raw = u.data.view(cupy.uint8) if u.dtype.itemsize == 1 else None
    if raw is None:
        u.data[...] = u.data.astype(cupy.float32) + 1 if u.dtype.kind == "f" else u.data + 1
    else:
        raw += 8  # float8: any change of the bits
    cupy.cuda.get_current_stream().synchronize()
    assert not (_readback(src) == before).all()  # a write on our side shows on theirs
    del src
    assert u.numel() == n


def test_ort_cuda_if_available():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider")
    ov = ort.OrtValue.ortvalue_from_shape_and_type([2, 3], np.float32, "cuda", 0)
    u = interop.from_dlpack(ov)
    assert u.data_ptr() == ov.data_ptr() and u.device == interop.device("cuda")
    t = interop.Tensor(cupy.ones((2, 3), cupy.float32))
    assert ort.OrtValue.from_dlpack(t).data_ptr() == t.data_ptr()


def test_export_orders_the_consumer_stream_after_ours(spin):
    """torch on its own stream consumes a tensor our stream is still writing: an event wait, no host sync."""
    ours = cupy.cuda.Stream(non_blocking=True)
    theirs = torch.cuda.Stream()
    with ours:
        a = cupy.zeros(1 << 20, cupy.float32)
        spin(ours)
        a += 1  # queued behind the spin
        t = interop.Tensor(a)
        start = time.perf_counter()
        with torch.cuda.stream(theirs):
            x = torch.from_dlpack(t)
            y = x.sum()  # queued on their stream: must see the write
        host = time.perf_counter() - start
    assert host < SPIN_MS / 1e3 / 3, "the export blocked the host"
    assert not theirs.query(), "their stream does not wait for ours"
    theirs.synchronize()
    assert y.item() == 1 << 20


def test_stream_minus_one_orders_nothing(spin):
    ours = cupy.cuda.Stream(non_blocking=True)
    with ours:
        t = interop.Tensor(cupy.ones(16, cupy.float32))
        spin(ours)
        cap = t.__dlpack__(stream=-1, max_version=(1, 3))
    assert cupy.cuda.Stream.null.done and not ours.done  # (None would have made the legacy stream wait)
    del cap
    ours.synchronize()


@pytest.mark.parametrize("stream", [None, 1, 2])
def test_default_stream_values(spin, stream):
    """None and 1 are the legacy default stream, 2 the per-thread default stream (spec values)."""
    ours = cupy.cuda.Stream(non_blocking=True)
    with ours:
        t = interop.Tensor(cupy.ones(16, cupy.float32))
        spin(ours)
        cap = t.__dlpack__(stream=stream, max_version=(1, 3))
    target = cupy.cuda.Stream.null if stream in (None, 1) else cupy.cuda.Stream.ptds
    assert not target.done  # now waits on ours
    ours.synchronize()
    target.synchronize()
    assert inspect(cap)["device"] == (2, 0)


def test_import_orders_our_stream_after_the_producers(spin):
    """torch writes on its stream; we import on another (cupy's current): our stream must wait, the host not."""
    producer = torch.cuda.Stream()
    busy = cupy.cuda.Stream(non_blocking=True)
    spin(busy)
    producer.wait_stream(torch.cuda.ExternalStream(busy.ptr))  # torch's stream is now behind the spin
    with torch.cuda.stream(producer):
        x = torch.full((1 << 20,), 3.0, device="cuda")
        ours = cupy.cuda.Stream(non_blocking=True)
        with ours:
            start = time.perf_counter()
            u = interop.from_dlpack(x)
            s = u.data.sum()
            host = time.perf_counter() - start
    path = "C exchange API" if _import._PRODUCERS[type(x)].exchange is not None else "Python protocol"
    assert host < SPIN_MS / 1e3 / 3, f"the import blocked the host ({path})"
    assert not ours.done, f"our stream does not wait for torch's ({path})"
    ours.synchronize()
    assert float(s) == 3.0 * (1 << 20)


def test_host_copies():
    t = interop.Tensor(cupy.arange(6, dtype=cupy.float32))
    info = inspect(t.__dlpack__(max_version=(1, 3), dl_device=(1, 0)))
    assert info["device"] == (1, 0) and info["flags"] & _abi.IS_COPIED
    assert np.from_dlpack(t, device="cpu").tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(BufferError, match="copy=False"):
        t.__dlpack__(max_version=(1, 3), dl_device=(1, 0), copy=False)
    x = torch.arange(6.0, device="cuda")
    h = interop.from_dlpack(x, device="cpu")
    assert h.device == interop.device("cpu") and h.tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(BufferError, match="copy=False"):
        interop.from_dlpack(x, device="cpu", copy=False)
    c = interop.from_dlpack(np.arange(3.0), device="cuda")
    assert c.device == interop.device("cuda") and c.tolist() == [0, 1, 2]


def test_read_only_and_copies_on_cuda():
    t = interop.Tensor(cupy.arange(4, dtype=cupy.float32))
    t._readonly = True
    info = inspect(t.__dlpack__(max_version=(1, 3)))
    assert info["flags"] == _abi.READ_ONLY
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__()
    u = interop.from_dlpack(t.__dlpack__(max_version=(1, 3)))  # cupy ignores READ_ONLY: the Tensor says it
    assert u._readonly and u.data_ptr() == t.data_ptr()
    c = inspect(interop.Tensor(cupy.arange(4.0)).__dlpack__(max_version=(1, 3), copy=True))
    assert c["flags"] == _abi.IS_COPIED  # cupy refuses copy=True on the device; we copy on our stream


def test_negative_strides_on_cuda_are_copied_for_torch():
    t = interop.Tensor(cupy.arange(12, dtype=cupy.float32).reshape(3, 4)[::-1])
    x = torch.from_dlpack(t)
    assert x.data_ptr() != t.data_ptr() and x.tolist() == t.tolist()


def test_memory_is_freed_when_the_last_side_goes():
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    x = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    u = interop.from_dlpack(x)
    y = torch.from_dlpack(u)
    del x
    assert torch.cuda.memory_allocated() >= base + (64 << 20)
    del u
    assert torch.cuda.memory_allocated() >= base + (64 << 20)
    del y
    assert torch.cuda.memory_allocated() == base


def test_round_trips_do_not_leak_device_memory():
    x = torch.ones(256, device="cuda")
    for _ in range(1000):
        torch.from_dlpack(interop.from_dlpack(cupy.from_dlpack(interop.from_dlpack(x))))
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated(), cupy.get_default_memory_pool().used_bytes()
    for _ in range(10_000):
        torch.from_dlpack(interop.from_dlpack(cupy.from_dlpack(interop.from_dlpack(x))))
    torch.cuda.synchronize()
    assert (torch.cuda.memory_allocated(), cupy.get_default_memory_pool().used_bytes()) == base
