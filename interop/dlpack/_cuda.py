"""CUDA stream ordering for DLPack imports, through cupy: an event between streams, never a host synchronization.

Exports need nothing here: cupy's own `ndarray.__dlpack__` already implements the spec's stream semantics (None and
1 = legacy default stream, 2 = per-thread default stream, -1 = no ordering, a pointer = record an event on our
current stream and make the consumer's stream wait on it), and every CUDA export goes through it.
"""

from __future__ import annotations

from ..backend import _cupy

_LEGACY = (0, 1)  # cudaStreamLegacy is 1 in the DLPack convention, 0 in cupy's `Stream.null.ptr`


def consumer_stream(device_id: int) -> int:
    """The `stream` to hand a producer on cuda:`device_id`: our current cupy stream there (spec values 1 and 2 for
    the legacy and per-thread default streams, else the cudaStream_t)."""
    return _cupy().cuda.get_current_stream(device_id).ptr or 1


def order_after(producer_stream: int, device_id: int) -> None:
    """Make our current stream on cuda:`device_id` wait for the work queued so far on `producer_stream`."""
    cp = _cupy()
    ours = cp.cuda.get_current_stream(device_id).ptr
    if ours == producer_stream or (ours in _LEGACY and producer_stream in _LEGACY):
        return
    with cp.cuda.Device(device_id):
        event = cp.cuda.Event(disable_timing=True)  # destroying it with the wait pending is fine in CUDA
        cp.cuda.runtime.eventRecord(event.ptr, producer_stream)
        cp.cuda.runtime.streamWaitEvent(ours, event.ptr)
