"""Shared by the export tests: run a ModelProto in ONNX Runtime, list its ops."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

_OPTS = ort.SessionOptions()
_OPTS.log_severity_level = 3


def run(model, *inputs) -> list[np.ndarray]:
    """Run `model` (a ModelProto or a path) on the CPU provider with positional inputs."""
    src = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(src, _OPTS, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(x) for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def dims(vi) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
