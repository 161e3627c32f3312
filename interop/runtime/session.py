"""`Session`: an ONNX Runtime session that takes and returns interop Tensors (and any DLPack tensor), zero-copy.

The per-call cost over a raw `InferenceSession.run` is a few attribute lookups: each input's check (dtype, rank,
fixed dimensions) and the name lists are built once here. CPU runs hand numpy arrays straight to ORT's C++ session,
which reads contiguous arrays in place and returns outputs that are views of its own buffers; CUDA runs bind device
memory with IOBinding (see `_cuda`).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import _pybind_state as C

from ..backend import Device, xp_of
from ..backend import device as as_device
from ..tensor import Tensor
from ._io import FIRST_EXOTIC, Input, IOInfo, from_ortvalue, io_info, to_ortvalue, wrap
from .providers import CPU_EP, CUDA_EP, check_cuda, create_session

__all__ = ["Session", "IOInfo", "Stats"]

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_CPU_DEVICE = C.OrtDevice(C.OrtDevice.cpu(), C.OrtDevice.default_memory(), 0)


class Stats:
    """Data movement a session made on the caller's behalf; zero on the zero-copy paths."""

    __slots__ = ("copies", "device_to_host", "host_to_device")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.copies = 0  # non-contiguous inputs made contiguous (once each)
        self.host_to_device = 0  # host inputs given to a CUDA session
        self.device_to_host = 0  # CUDA outputs handed over as numpy

    def __repr__(self) -> str:
        return (f"Stats(copies={self.copies}, host_to_device={self.host_to_device}, "
                f"device_to_host={self.device_to_host})")


class Session:
    """Runs an ONNX model on ONNX Runtime, on `device` ('cpu', 'cuda', 'cuda:N').

    `model` is a path, the serialized bytes or an `onnx.ModelProto`. `providers` replaces the provider list the device
    implies (e.g. `['TensorrtExecutionProvider', 'CUDAExecutionProvider']`); every provider asked for must load, or
    construction fails with the reason. `threads` sets ORT's intra-op threads, `optimization` its graph optimization
    level ('disable', 'basic', 'extended', 'all'), `profile` turns on its profiler (see `end_profiling`).
    `session_options` starts from a given `onnxruntime.SessionOptions`. Other keywords are options of the device's
    provider, e.g. `cudnn_conv_algo_search='HEURISTIC'`, `gpu_mem_limit=...`, or `user_compute_stream=` (an int, a
    cupy or a torch stream) to run ORT on the caller's stream.
    """

    def __init__(self, model: Any, *, device: str | Device = "cpu", providers: Sequence | None = None,
                 threads: int | None = None, optimization: str = "all", profile: bool = False,
                 session_options: ort.SessionOptions | None = None, **provider_options: Any):
        self.device = as_device(device)
        self.stats = Stats()
        if optimization not in _LEVELS:
            raise ValueError(f"optimization must be one of {', '.join(_LEVELS)}, got {optimization!r}")
        so = session_options if session_options is not None else ort.SessionOptions()
        so.graph_optimization_level = _LEVELS[optimization]
        if threads is not None:
            so.intra_op_num_threads = threads
        if profile:
            so.enable_profiling = True
        if providers is not None and provider_options:
            raise TypeError("give provider options inside `providers` as (name, options) pairs when you list them")
        source, self._tmp = _model_source(model)
        self._cuda = None
        if self.device.type == "cuda":
            from ._cuda import CudaIO

            check_cuda(str(self.device))
            self._cuda = CudaIO(self.device.index, provider_options)
            providers = providers or [(CUDA_EP, self._cuda.options), CPU_EP]
        providers = providers or [(CPU_EP, provider_options)]
        self.ort = create_session(source, so, list(providers), str(self.device))
        self._setup()

    def _setup(self) -> None:
        sess = self.ort
        self._sess = sess._sess
        self.inputs = [io_info(a) for a in sess.get_inputs()]
        self.outputs = [io_info(a) for a in sess.get_outputs()]
        self._inputs = [Input(i, required=not i.type.startswith("optional")) for i in self.inputs]
        overridable = [Input(io_info(a), required=False) for a in sess.get_overridable_initializers()]
        self._by_name = {i.name: i for i in self._inputs + overridable}
        self._n = len(self._inputs)
        self._dict_feed = not (self.inputs and self.inputs[0].type.startswith("map"))
        self._out_names = [o.name for o in self.outputs]
        self._out_dtypes = [o.dtype for o in self.outputs]
        self._out_codes = [Input(o).code for o in self.outputs]
        self._tensor_outputs = all(o.dtype is not None for o in self.outputs)
        self._codes = {name: i.code for name, i in self._by_name.items()}
        if self._cuda is not None:
            self._array_type = self._cuda.cp.ndarray
            self._execute = self._run_cuda
        else:
            self._array_type = np.ndarray
            exotic = any(c >= FIRST_EXOTIC for c in [*self._codes.values(), *self._out_codes])
            self._execute = self._run_ortvalues if exotic else self._run_numpy

    # ---- metadata -------------------------------------------------------------------------------------------------
    @property
    def providers(self) -> list[str]:
        """The execution providers ORT actually runs this session on."""
        return self.ort.get_providers()

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self._out_names)

    def end_profiling(self) -> str:
        """Stop the profiler (`profile=True`) and return the path of its Chrome-trace JSON."""
        return self.ort.end_profiling()

    def __repr__(self) -> str:
        return (f"Session(inputs={self.inputs}, outputs={self.outputs}, device='{self.device}', "
                f"providers={self.providers})")

    # ---- running ----------------------------------------------------------------------------------------------------
    def run(self, *args: Any, output: str | None = None, as_dict: bool = False, **named: Any) -> Any:
        """Run the model: inputs by position and/or name (or one dict), outputs as a list in the model's order.

        Inputs may be interop Tensors, numpy arrays, Python numbers or any DLPack tensor (torch, jax, cupy).
        Outputs are interop Tensors on the session's device, sharing ORT's buffers; `output='numpy'|'torch'|'jax'|
        'cupy'` hands them over in that framework instead. `as_dict=True` returns {output name: value}.
        """
        if len(args) == 1 and type(args[0]) is dict and not named and self._dict_feed:
            args, named = (), args[0]
        if named or len(args) != self._n:
            feed = self._gather(args, named)
        else:
            take = self._take
            feed = {inp.name: take(inp, v) for inp, v in zip(self._inputs, args)}
        outs = self._execute(feed)
        if output is not None:
            outs = self._hand_over(outs, output)
        elif self._tensor_outputs:
            outs = [Tensor(a) for a in outs]
        else:
            outs = [wrap(a) for a in outs]
        return dict(zip(self._out_names, outs)) if as_dict else outs

    __call__ = run

    def warmup(self, iterations: int = 1, **dims: int) -> None:
        """Run on zeros, so first-call costs (allocations, cuDNN and TensorRT tuning) are paid now.

        Symbolic dimensions take the size named in `dims` (e.g. `warmup(batch=32)`), else 1.
        """
        feed = {}
        for inp in self._inputs:
            if not inp.required:
                continue
            if inp.dtype is None:
                raise ValueError(f"warmup cannot make a value for input '{inp.name}' of type {inp.info.type}")
            shape = tuple(d if type(d) is int else dims.get(d, 1) for d in inp.info.shape or ())
            feed[inp.name] = (np.full(shape, "", object) if inp.dtype.kind == "O"
                              else self._cuda.zeros(shape, inp.dtype) if self._cuda else np.zeros(shape, inp.dtype))
        for _ in range(iterations):
            self._execute(feed)

    def _take(self, inp: Input, v: Any) -> Any:
        """One input as the array ORT will read: validated, contiguous, on the session's device."""
        a = v.data if type(v) is Tensor else v
        if type(a) is not self._array_type:
            a = self._coerce(inp, a)
            if inp.dtype is None:
                return a
        inp.check(a)
        if not a.flags.c_contiguous:
            self.stats.copies += 1
            a = xp_of(a).ascontiguousarray(a)
        return a

    def _coerce(self, inp: Input, v: Any) -> Any:
        a = inp.convert(v)
        if inp.dtype is None or type(a) is self._array_type:
            return a
        if type(a) is np.ndarray:
            self.stats.host_to_device += 1  # only CUDA sessions get here with a numpy array
            return a
        if self._cuda is None:
            raise ValueError(f"input '{inp.name}' is on cuda:{a.device.id} but the session runs on cpu; "
                             f"move it with .cpu() first, or make the session with device='cuda'")
        raise ValueError(f"input '{inp.name}' is on cuda:{a.device.id} but the session runs on {self.device}")

    def _gather(self, args: tuple, named: dict) -> dict:
        """The general case of argument binding: names, defaults for optional inputs, errors naming the input."""
        if len(args) > self._n:
            raise TypeError(f"the model takes {self._n} input(s) ({', '.join(self.input_names)}), got {len(args)}")
        feed = {}
        for inp, v in zip(self._inputs, args):
            if v is not None or inp.required:
                feed[inp.name] = self._take(inp, v)
        for name, v in named.items():
            inp = self._by_name.get(name)
            if inp is None:
                raise ValueError(f"unknown input '{name}'; the model's inputs are {', '.join(self.input_names)}")
            if name in feed:
                raise TypeError(f"got multiple values for input '{name}'")
            if v is not None or inp.required:
                feed[name] = self._take(inp, v)
        missing = [f"'{i.name}'" for i in self._inputs if i.required and i.name not in feed]
        if missing:
            raise ValueError(f"missing input {', '.join(missing)}; the model's inputs are "
                             f"{', '.join(self.input_names)}")
        return feed

    def _run_numpy(self, feed: dict) -> list:
        return self._sess.run(self._out_names, feed, None)

    def _run_ortvalues(self, feed: dict) -> list:
        """For the ml_dtypes types ORT's numpy API refuses: inputs and outputs cross as OrtValues."""
        codes = self._codes
        values = {n: to_ortvalue(C, a, codes[n], _CPU_DEVICE) for n, a in feed.items()}
        res = self._sess.run_with_ort_values(values, self._out_names, None)
        return [from_ortvalue(res[i], dt, code)
                for i, (dt, code) in enumerate(zip(self._out_dtypes, self._out_codes))]

    def _run_cuda(self, feed: dict) -> list:
        return self._cuda.run(self._sess, feed, self._codes, self._out_names, self._out_dtypes)

    def _hand_over(self, outs: list, output: str) -> list:
        convert = _HAND_OVER.get(output)
        if convert is None:
            raise ValueError(f"output must be one of {', '.join(_HAND_OVER)}, got {output!r}")
        return [_apply(convert, a, self) for a in outs]


def _apply(convert: Callable, a: Any, session: Session) -> Any:
    if isinstance(a, list):
        return [_apply(convert, e, session) for e in a]
    if isinstance(a, dict):
        return {k: _apply(convert, e, session) for k, e in a.items()}
    return a if a is None else convert(a, session)


def _to_numpy(a: Any, session: Session) -> np.ndarray:
    if type(a) is np.ndarray:
        return a
    session.stats.device_to_host += 1
    return a.get()


def _via_dlpack(module: str, attr: str) -> Callable:
    def convert(a: Any, session: Session) -> Any:
        fn = importlib.import_module(module)
        for part in attr.split("."):
            fn = getattr(fn, part)
        return fn(a)

    return convert


def _to_cupy(a: Any, session: Session) -> Any:
    if type(a) is np.ndarray:
        raise ValueError("output='cupy' needs a CUDA session; this one runs on cpu (use output='numpy')")
    return a


_HAND_OVER: dict[str, Callable] = {
    "interop": lambda a, s: Tensor(a),
    "numpy": _to_numpy,
    "torch": _via_dlpack("torch", "from_dlpack"),
    "jax": _via_dlpack("jax", "numpy.from_dlpack"),
    "cupy": _to_cupy,
}


def _model_source(model: Any) -> tuple[str | bytes, Any]:
    """What ORT loads (a path or bytes), plus a temporary directory to keep alive for models over protobuf's 2 GiB."""
    if isinstance(model, str | os.PathLike):
        return os.fspath(model), None
    if isinstance(model, bytes | bytearray | memoryview):
        return bytes(model), None
    if hasattr(model, "SerializeToString"):
        if model.ByteSize() < 2**31:
            return model.SerializeToString(), None
        import onnx

        tmp = tempfile.TemporaryDirectory(prefix="interop-model-")
        path = os.path.join(tmp.name, "model.onnx")
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # save_model moves tensors out of the proto it is given
        onnx.save_model(copy, path, save_as_external_data=True, location="model.onnx.data")
        return path, tmp
    raise TypeError(f"model must be a path, bytes or an onnx.ModelProto, got {type(model).__name__}")
