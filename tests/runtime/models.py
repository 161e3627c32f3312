"""Small ONNX models built with onnx.helper, for the runtime tests and benchmarks (no exporter needed)."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21
IR = 10


def model(nodes: list, inputs: list, outputs: list, initializers: tuple = (), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR)
    onnx.checker.check_model(m, full_check=True)
    return m


def mlp(dims: tuple = (784, 512, 256, 10), seed: int = 0) -> onnx.ModelProto:
    """The benchmark MLP: Gemm+Relu layers, dynamic batch ('batch', 784) -> ('batch', 10)."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"),
                  numpy_helper.from_array(rng.standard_normal(b).astype(np.float32) * 0.1, f"fc{i}.bias")]
        out = "y" if i == len(dims) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [out]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            x = f"r{i}"
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dims[0]])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dims[-1]])], inits)


def mlp_reference(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The MLP's output in numpy (float64), from the model's own weights."""
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    h = x.astype(np.float64)
    n = len(w) // 2
    for i in range(n):
        h = h @ w[f"fc{i}.weight"] + w[f"fc{i}.bias"]
        if i < n - 1:
            h = np.maximum(h, 0)
    return h


def binary(op: str, dtype: int, shape: list, out_dtype: int | None = None) -> onnx.ModelProto:
    """z = op(a, b) with both inputs of `shape`."""
    vi = helper.make_tensor_value_info
    return model([helper.make_node(op, ["a", "b"], ["z"])], [vi("a", dtype, shape), vi("b", dtype, shape)],
                 [vi("z", dtype if out_dtype is None else out_dtype, shape)])


def unary(op: str, dtype: int, shape: list, out_dtype: int | None = None, **attrs) -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    return model([helper.make_node(op, ["x"], ["y"], **attrs)], [vi("x", dtype, shape)],
                 [vi("y", dtype if out_dtype is None else out_dtype, shape)])
