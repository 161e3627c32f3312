"""Graph passes: each checked on small hand-built graphs (structure and ONNX Runtime results) and end to end."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import interop
from interop import nn
from interop.export import passes
from interop.export.builder import Builder, Graph
from interop.export.serialize import to_model

from .helpers import ops, run

F32 = np.dtype(np.float32)


def _graph(*inputs: tuple[str, tuple]) -> tuple[Graph, Builder]:
    graph = Graph(21)
    for name, shape in inputs:
        graph.inputs.append(name)
        graph.types[name] = (F32, shape)
    return graph, Builder(graph, metadata=False)


def _outputs(graph: Graph, *names: str, shape: tuple = ()) -> None:
    for n in names:
        graph.outputs.append(n)
        graph.types.setdefault(n, (F32, shape))


def _ops(graph: Graph) -> list[str]:
    return [n.op_type for n in graph.nodes]


def test_constant_folding_keeps_parameter_names_and_results():
    graph, g = _graph(("x", (2, 3)))
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph.inits["fc.weight"] = w
    graph.types["fc.weight"] = (F32, (4, 3))
    graph.params.add("fc.weight")
    wt = g.op("Transpose", "fc.weight", perm=[1, 0])
    two = g.op("Add", g.const(np.float32(1)), g.const(np.float32(1)))
    y = g.op("Mul", g.op("MatMul", "x", wt), g.op("Cast", two, to=np.dtype(np.float32)))
    _outputs(graph, y, shape=(2, 4))
    x = np.ones((2, 3), np.float32)
    before = run(to_model(graph), x)[0]
    passes.optimize(graph)
    assert _ops(graph) == ["MatMul", "Mul"]
    assert "fc.weight__Transpose" in graph.inits and "fc.weight" not in graph.inits
    np.testing.assert_allclose(run(to_model(graph), x)[0], before)


def test_folding_never_inflates_constants_and_skips_random_ops():
    graph, g = _graph(("x", (1000, 1000)))
    big = g.op("Expand", g.const(np.float32(2)), g.const(np.array([1000, 1000], np.int64)))
    noise = g.op("RandomNormal", shape=[2], dtype=1)
    noise2 = g.op("RandomNormal", shape=[2], dtype=1)
    _outputs(graph, g.op("Mul", "x", big), shape=(1000, 1000))
    _outputs(graph, g.op("Add", noise, noise2), shape=(2,))
    passes.optimize(graph)
    assert _ops(graph).count("RandomNormal") == 2 and "Expand" in _ops(graph)


def test_shapes_of_static_values_fold():
    graph, g = _graph(("x", (2, 3)))
    y = g.op("Expand", g.const(np.float32(1)), g.op("Shape", "x", start=-1))
    _outputs(graph, g.op("Add", "x", y), shape=(2, 3))
    passes.optimize(graph)
    assert _ops(graph) == ["Add"]  # Shape of a static value, then the small Expand, were folded
    assert graph.inits[graph.nodes[0].inputs[1]].tolist() == [1, 1, 1]
    np.testing.assert_allclose(run(to_model(graph), np.zeros((2, 3), np.float32))[0], np.ones((2, 3)))


def test_cse_dce_and_identity_removal():
    graph, g = _graph(("x", (3,)))
    a = g.op("Relu", "x")
    b = g.op("Relu", "x")  # the same as a
    g.op("Exp", a)  # dead
    unused = g.const(np.ones(5, np.float32))  # dead initializer
    c = g.op("Identity", g.op("Add", a, b))
    d = g.op("Identity", "x")  # an output that is an input: the Identity must stay
    _outputs(graph, c, d, shape=(3,))
    passes.optimize(graph)
    assert sorted(_ops(graph)) == ["Add", "Identity", "Relu"]
    assert unused not in graph.inits
    add = next(n for n in graph.nodes if n.op_type == "Add")
    assert add.inputs[0] == add.inputs[1] and add.outputs == [c]
    np.testing.assert_allclose(run(to_model(graph), np.array([-1, 0, 2], np.float32))[0], [0, 0, 4])


def test_constant_nodes_become_initializers():
    graph, g = _graph(("x", (2,)))
    c = g.op("Constant", value=np.array([3.0, 4.0], np.float32))
    _outputs(graph, g.op("Mul", "x", c), shape=(2,))
    passes.optimize(graph)
    assert _ops(graph) == ["Mul"] and c in graph.inits


@pytest.mark.parametrize("conv_bias", [True, False])
def test_batchnorm_folds_into_the_preceding_conv(conv_bias):
    rng = np.random.default_rng(0)
    graph, g = _graph(("x", (2, 3, 8, 8)))
    weights = {"conv.weight": rng.standard_normal((4, 3, 3, 3)), "conv.bias": rng.standard_normal(4),
               "bn.weight": rng.uniform(0.5, 2, 4), "bn.bias": rng.standard_normal(4),
               "bn.running_mean": rng.standard_normal(4), "bn.running_var": rng.uniform(0.5, 2, 4)}
    for name, arr in weights.items():
        graph.inits[name] = arr.astype(np.float32)
        graph.types[name] = (F32, arr.shape)
        graph.params.add(name)
    g._meta = {"interop.source": "model.py:3"}
    y = g.op("Conv", "x", "conv.weight", "conv.bias" if conv_bias else None, pads=[1, 1, 1, 1])
    stats = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
    z = g.op("BatchNormalization", y, *stats, epsilon=1e-3)
    _outputs(graph, g.op("Relu", z), shape=(2, 4, 8, 8))
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    before = run(to_model(graph), x)[0]
    passes.optimize(graph)
    assert _ops(graph) == ["Conv", "Relu"]
    conv = graph.nodes[0]
    assert conv.inputs[1] == "conv.weight" and conv.inputs[2] == "conv.bias"
    assert conv.meta["interop.rewrite"] == "FuseBatchNormIntoConv"
    assert not {"bn.weight", "bn.running_var"} & set(graph.inits)
    np.testing.assert_allclose(run(to_model(graph), x)[0], before, rtol=1e-4, atol=1e-5)


def test_batchnorm_is_kept_when_the_conv_output_is_shared():
    graph, g = _graph(("x", (1, 1, 4, 4)))
    for name, shape in {"w": (1, 1, 1, 1), "s": (1,), "b": (1,), "m": (1,), "v": (1,)}.items():
        graph.inits[name] = np.ones(shape, np.float32)
        graph.types[name] = (F32, shape)
    y = g.op("Conv", "x", "w")
    z = g.op("BatchNormalization", y, "s", "b", "m", "v")
    _outputs(graph, g.op("Add", y, z), shape=(1, 1, 4, 4))
    passes.optimize(graph)
    assert "BatchNormalization" in _ops(graph)


def test_exported_graphs_hold_no_identity_or_constant_nodes():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            y = self.fc(x).clone()
            return y.sum(), (y + 1).contiguous()

    proto = interop.export(M(), (interop.randn(2, 3),))
    assert not {"Identity", "Constant"} & set(ops(proto))


def test_optimize_false_keeps_the_raw_lowering():
    model = nn.Linear(4, 4)
    x = interop.randn(2, 3, 4)
    raw = interop.export(model, (x,), optimize=False)
    opt = interop.export(model, (x,))
    assert len(raw.graph.node) > len(opt.graph.node)
    np.testing.assert_allclose(run(raw, x.numpy())[0], run(opt, x.numpy())[0], rtol=1e-6)
    onnx.checker.check_model(raw, full_check=True)


def _reshape_graph(target_pieces, allowzero: int = 0) -> Graph:
    """x (b, 6) and z (b, c): Reshape(x, Concat(pieces)) where pieces are g.op/g.const calls on the builder."""
    graph, g = _graph(("x", ("b", 6)), ("z", ("b", "c")))
    shape = g.op("Concat", *target_pieces(g), axis=0)
    y = g.op("Reshape", "x", shape, **({"allowzero": 1} if allowzero else {}))
    _outputs(graph, y, shape=("b", 2, 3))
    return graph


@pytest.mark.parametrize("source", ["x", "z"])
def test_reshape_targets_read_from_shapes_become_constants(source):
    # the batch size read from x itself, or from z whose dim 0 is the same symbol
    graph = _reshape_graph(lambda g: [g.op("Shape", source, start=0, end=1), g.const(np.array([2, 3]))])
    passes.optimize(graph)
    assert _ops(graph) == ["Reshape"]
    assert graph.inits[graph.nodes[0].inputs[1]].tolist() == [0, 2, 3]
    for b in (1, 4):
        x = np.arange(6 * b, dtype=np.float32).reshape(b, 6)
        got = run(to_model(graph), x, np.zeros((b, 5), np.float32))[0]
        np.testing.assert_array_equal(got, x.reshape(b, 2, 3))


def test_one_unknown_size_becomes_minus_one_and_two_stay_computed():
    # z's dim 1 ("c") is not x's: it is the one size left, so -1
    graph = _reshape_graph(lambda g: [g.op("Shape", "z", start=1, end=2), g.const(np.array([2, 3]))])
    passes.optimize(graph)
    assert graph.inits[graph.nodes[0].inputs[1]].tolist() == [-1, 2, 3]
    # two sizes the pass cannot tie to x: the graph keeps computing the target
    graph = _reshape_graph(lambda g: [g.op("Shape", "z", start=1, end=2), g.op("Shape", "z", start=1, end=2),
                                         g.const(np.array([3]))])
    passes.optimize(graph)
    assert "Shape" in _ops(graph)
    # allowzero=1 makes 0 a size, so nothing changes either
    graph = _reshape_graph(lambda g: [g.op("Shape", "x", start=0, end=1), g.const(np.array([2, 3]))], 1)
    passes.optimize(graph)
    assert "Shape" in _ops(graph)


def test_dynamic_batch_graph_is_as_small_as_the_static_one():
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    x = interop.randn(2, 5, 16)
    static = interop.export(layer, (x,))
    dynamic = interop.export(layer, (x,), dynamic={"src": {0: "batch"}})  # verify=True: runs at other batches
    assert len(dynamic.graph.node) == len(static.graph.node)
    assert "Shape" not in ops(dynamic)


def test_shapes_of_the_same_symbolic_sizes_are_read_once():
    graph, g = _graph(("q", ("b", "s", 4)), ("k", ("b", "s", 4)), ("v", ("b", "t", 4)))
    sq, sk, sv = (g.op("Shape", x, start=1, end=2) for x in ("q", "k", "v"))
    outs = [g.op("Range", g.const(np.int64(0)), g.op("Squeeze", s), g.const(np.int64(1))) for s in (sq, sk, sv)]
    for o in outs:
        graph.outputs.append(o)
        graph.types[o] = (np.dtype(np.int64), ("?",))
    passes.optimize(graph)
    assert _ops(graph).count("Shape") == 2  # q's and k's seq is one read; v's "t" is another


def test_post_norm_residual_is_a_sum_so_ort_keeps_its_fast_cpu_kernels():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8)

        def forward(self, x):
            y = self.norm(x + self.fc(x))  # post-norm: the Add's only use is the LayerNormalization
            return y + self.fc(y)  # a residual that goes on: stays an Add

    x = interop.randn(2, 3, 8)
    proto = interop.export(Block().eval(), (x,))  # verify=True: the same values as eager
    producer = {o: n for n in proto.graph.node for o in n.output}
    ln = next(n for n in proto.graph.node if n.op_type == "LayerNormalization")
    assert producer[ln.input[0]].op_type == "Sum"
    assert ops(proto).count("Add") == 3  # the two biases and the last residual
