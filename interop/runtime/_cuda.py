"""The CUDA path: inputs and outputs bound in place with IOBinding, ordered by stream events, no host sync.

ORT computes on one stream per session: ours (or the caller's `user_compute_stream`), handed to the CUDA provider.
Before a run that stream waits on the caller's current cupy stream (where the inputs were produced, or where
`cupy.from_dlpack` ordered a torch/jax producer); after it the caller's stream waits on ORT's. Runs skip ORT's
end-of-run `cudaStreamSynchronize`, so nothing blocks the host: the outputs are ready in stream order, like any CUDA
tensor. Each call builds its own IOBinding, so threads can share a session; the two ordering events are made once
per thread (creating CUDA events costs microseconds per call, and a re-recorded event orders correctly because a
wait captures the record that precedes it).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from onnxruntime.capi import _pybind_state as C
from onnxruntime.capi.onnxruntime_inference_collection import OrtDevice

from ..backend import _cupy


def stream_ptr(stream: Any) -> int:
    """A CUDA stream handle from an int, a cupy Stream (`.ptr`) or a torch Stream (`.cuda_stream`)."""
    for attr in ("ptr", "cuda_stream"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    return int(stream)


class CudaIO:
    """Binds one session's inputs and outputs on cuda:`index`."""

    def __init__(self, index: int, options: dict):
        cp = self.cp = _cupy()
        self.index = index
        with cp.cuda.Device(index):
            user = options.get("user_compute_stream")
            self.stream = (cp.cuda.Stream(non_blocking=True) if user is None
                           else cp.cuda.ExternalStream(stream_ptr(user), index))
        self.options = {**options, "device_id": index, "user_compute_stream": str(self.stream.ptr)}
        self.device = OrtDevice.make("cuda", index)._get_c_device()
        self.run_options = C.RunOptions()
        self.run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self._local = threading.local()

    def _events(self) -> tuple[Any, Any]:
        ev = getattr(self._local, "events", None)
        if ev is None:
            with self.cp.cuda.Device(self.index):
                ev = self._local.events = (self.cp.cuda.Event(disable_timing=True),
                                           self.cp.cuda.Event(disable_timing=True))
        return ev

    def run(self, sess: Any, feed: dict, codes: dict, out_names: list, out_dtypes: list) -> list:
        if self.index:
            with self.cp.cuda.Device(self.index):
                return self._run(sess, feed, codes, out_names, out_dtypes)
        return self._run(sess, feed, codes, out_names, out_dtypes)

    def _run(self, sess: Any, feed: dict, codes: dict, out_names: list, out_dtypes: list) -> list:
        cp, dev, ours = self.cp, self.device, self.stream
        binding = C.SessionIOBinding(sess)
        for name, a in feed.items():
            if type(a) is np.ndarray:  # host memory: ORT copies it over (counted by the session)
                binding.bind_input(name, a)
            elif a.device.id != self.index:
                raise ValueError(f"input '{name}' is on cuda:{a.device.id} but the session runs on cuda:{self.index}")
            else:
                binding.bind_input(name, dev, codes[name], a.shape, a.data.ptr)
        for name in out_names:
            binding.bind_output(name, dev)
        caller = cp.cuda.get_current_stream()
        other = caller.ptr != ours.ptr
        if other:
            before, after = self._events()
            ours.wait_event(caller.record(before))
        sess.run_with_iobinding(binding, self.run_options)
        if other:
            caller.wait_event(ours.record(after))
        values = binding.get_outputs()
        return [self._array(values[i], dt) for i, dt in enumerate(out_dtypes)]

    def _array(self, ov: Any, dtype: np.dtype) -> Any:
        """ORT's device buffer as a cupy array, zero-copy; the array holds the OrtValue alive."""
        cp = self.cp
        shape = tuple(ov.shape())
        nbytes = ov.tensor_size_in_bytes()
        if nbytes == 0:
            return cp.empty(shape, dtype)
        mem = cp.cuda.UnownedMemory(ov.data_ptr(), nbytes, ov, self.index)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(mem, 0))

    def zeros(self, shape: tuple, dtype: np.dtype) -> Any:
        with self.cp.cuda.Device(self.index):
            return self.cp.zeros(shape, dtype)
