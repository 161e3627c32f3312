"""Ownership: deleters run exactly once, on any thread, whichever side goes first; no leaks over 100,000 trips."""

from __future__ import annotations

import gc
import sys
import threading

import ml_dtypes
import numpy as np
import pytest

import interop

from .mock import Producer

torch = pytest.importorskip("torch")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_100k_round_trips_leave_resident_memory_flat():
    """interop -> torch -> interop (C exchange API) -> numpy -> interop, the fast paths, 100,000 times."""
    base = np.arange(16, dtype=np.float32)
    refs = sys.getrefcount(base)

    def trip():
        t = interop.from_dlpack(np.from_dlpack(interop.from_dlpack(torch.from_dlpack(interop.Tensor(base)))))
        assert t.data_ptr() == base.ctypes.data

    for _ in range(10_000):  # warm up allocator pools and caches
        trip()
    before = _rss()
    for _ in range(100_000):
        trip()
    gc.collect()
    assert _rss() - before < 2 << 20  # a leaked 64-byte struct per trip would be 6.4 MB
    assert sys.getrefcount(base) == refs


def test_slow_paths_do_not_leak():
    """Legacy capsules, carriers, copies, the protocol path and refusals, 10,000 times each (refcounts catch a
    deleter that never runs: every managed tensor holds its array)."""
    p = Producer()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = a.astype(ml_dtypes.bfloat16)
    x = torch.arange(12.0).reshape(3, 4)
    refs = sys.getrefcount(a), sys.getrefcount(b)

    def trip():
        interop.from_dlpack(p.capsule(a, versioned=False))
        interop.from_dlpack(torch.from_dlpack(interop.Tensor(b)))
        np.from_dlpack(interop.Tensor(a[::-1]))
        interop.from_dlpack(x, device="cpu", copy=True)
        interop.from_dlpack(torch.utils.dlpack.to_dlpack(x))
        with pytest.raises(BufferError):
            interop.from_dlpack(p.capsule(a, lanes=2))

    for _ in range(1_000):
        trip()
    before = _rss()
    for _ in range(10_000):
        trip()
    gc.collect()
    assert _rss() - before < 2 << 20  # (the mock producer's own bookkeeping grows by ~160 KB)
    assert (sys.getrefcount(a), sys.getrefcount(b)) == refs
    assert set(p.deleted) == {1} and p.stray == 0


def test_deleter_runs_on_the_thread_that_frees():
    p = Producer()
    holder = [interop.from_dlpack(p.capsule(np.ones(4, np.float32)))]
    seen = []

    def read_then_free():
        seen.append((p.deleted[0], holder[0].tolist()))
        holder.clear()
        seen.append((p.deleted[0], threading.current_thread() is not threading.main_thread()))

    thread = threading.Thread(target=read_then_free)
    thread.start()
    thread.join()
    assert seen == [(0, [1, 1, 1, 1]), (1, True)]


def test_reference_cycles_are_collected_once():
    p = Producer()
    t = interop.from_dlpack(p.capsule(np.ones(4, np.float32)))
    cycle = [t]
    cycle.append(cycle)
    del t, cycle
    gc.collect()
    assert p.deleted == [1]


@pytest.mark.parametrize("first", ["producer", "consumer"])
def test_either_side_may_go_first(first):
    x = torch.arange(6.0)
    t = interop.from_dlpack(x)  # torch -> interop
    y = torch.from_dlpack(interop.Tensor(t.data))  # and back out to torch
    if first == "producer":
        del x
        assert t.tolist() == y.tolist() == [0, 1, 2, 3, 4, 5]
    else:
        del t, y
        assert x.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_refused_exchange_api_import_still_runs_the_deleter():
    """torch's C exchange API hands us the tensor before we can see its dtype: a refusal must free it."""
    before = _rss()
    x = torch.zeros(64 << 20, dtype=torch.complex32)  # 256 MB, a dtype we refuse
    assert _rss() - before > 200 << 20
    with pytest.raises(BufferError, match="complex32"):
        interop.from_dlpack(x)
    del x
    gc.collect()
    assert _rss() - before < 16 << 20
