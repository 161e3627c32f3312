"""`onnx.backend` on `interop.runtime.Session`, so onnx's own backend test suite (and any onnx.backend user) runs here.

Use the module like onnxruntime.backend: `backend.prepare(model, "CPU").run([x])`, `backend.run_model(...)`,
`backend.run_node(...)`, `backend.supports_device("CUDA")`. Outputs are numpy arrays (the backend API's contract).
Unlike the stock `onnxruntime.backend`, device "CPU" means the CPU here even on an onnxruntime-gpu install, and "CUDA"
means CUDA or an error, never a quiet CPU run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .providers import cuda_problem
from .session import Session

__all__ = ["InteropBackend", "InteropRep", "is_compatible", "prepare", "run_model", "run_node", "supports_device"]


class InteropRep(BackendRep):
    """A prepared model: `run(inputs)` takes a list (by position) or a dict (by name) and returns a tuple."""

    def __init__(self, session: Session):
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, dict):
            return tuple(self.session.run(output="numpy", **inputs))
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        return tuple(self.session.run(*inputs, output="numpy"))


class InteropBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """False for models newer than this onnxruntime reads (IR or ai.onnx opset) and devices it cannot use."""
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        return model.ir_version <= _max_ir() and opset <= _max_opset() and cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> InteropRep:
        """`kwargs` are `Session` options (threads, optimization, providers, provider options)."""
        return InteropRep(Session(model, device=_device(device), **kwargs))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple:
        """Run one node on `inputs` (a list or dict of arrays) as a one-node model."""
        names = [n for n in node.input if n]
        values = inputs if isinstance(inputs, dict) else dict(zip(names, inputs))
        graph_inputs = [_value_info(n, v) for n, v in values.items()]
        infos = outputs_info or [None] * len(node.output)
        graph_outputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(i[0])), i[1])
                         if i else helper.make_empty_tensor_value_info(n) for n, i in zip(node.output, infos)]
        opset = kwargs.pop("opset_version", None) or _max_opset()
        opsets = [helper.make_opsetid(node.domain, opset)]
        if node.domain:
            opsets.append(helper.make_opsetid("", _max_opset()))
        model = helper.make_model(helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs, graph_outputs),
                                  opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
        return cls.prepare(model, device, **kwargs).run(values)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        d = Device(device)
        if d.type == DeviceType.CPU:
            return True
        return d.type == DeviceType.CUDA and cuda_problem(d.device_id) is None and _has_cupy()


def _device(device: str) -> str:
    d = Device(device)
    return "cpu" if d.type == DeviceType.CPU else f"cuda:{d.device_id}"


def _value_info(name: str, v: Any) -> onnx.ValueInfoProto:
    if isinstance(v, list):
        elem = helper.np_dtype_to_tensor_dtype(np.asarray(v[0]).dtype) if v else onnx.TensorProto.FLOAT
        return helper.make_tensor_sequence_value_info(name, elem, None)
    a = np.asarray(v)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)


@lru_cache(maxsize=1)
def _max_opset() -> int:
    """The newest ai.onnx opset that both onnx and this onnxruntime know (ORT refuses opsets 'under development')."""
    return next(v for v in range(onnx.defs.onnx_opset_version(), 0, -1) if _loads(None, v))


@lru_cache(maxsize=1)
def _max_ir() -> int:
    """The newest IR version this onnxruntime reads."""
    return next(v for v in range(onnx.IR_VERSION, 0, -1) if _loads(v, 7))


def _loads(ir: int | None, opset: int) -> bool:
    opsets = [helper.make_opsetid("", opset)]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ir or helper.find_min_ir_version_for(opsets))
    try:
        Session(model)
    except Exception:
        return False
    return True


def _has_cupy() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


is_compatible = InteropBackend.is_compatible
prepare = InteropBackend.prepare
run_model = InteropBackend.run_model
run_node = InteropBackend.run_node
supports_device = InteropBackend.supports_device
