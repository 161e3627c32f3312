"""Capture: what gets recorded, how values are named, and what refuses to be traced."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import interop
from interop import nn
from interop.autograd import Function
from interop.export import ExportError

from .helpers import ops, run


def _line(fn, marker: str) -> int:
    """The line number of the statement containing `marker` in `fn`'s source file."""
    with open(fn.__code__.co_filename) as fh:
        src = fh.read().splitlines()
    return next(i + 1 for i, line in enumerate(src) if marker in line)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(4, 8)
        self.linear2 = nn.Linear(8, 4)

    def forward(self, x):
        return self.linear2(self.linear1(x).relu())  # BLOCK-FORWARD


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_records_every_op_without_needing_gradients():
    lin = nn.Linear(3, 2)  # parameters require grad, the input does not
    proto = interop.export(lin, interop.randn(4, 3), verify=False)
    assert ops(proto) == ["Gemm"]
    assert lin.weight.grad is None


def test_initializers_and_nodes_are_named_by_module_path():
    model = Encoder()
    x = interop.randn(2, 4)
    proto = interop.export(model, (x,))
    inits = {t.name for t in proto.graph.initializer}
    assert {"layers.0.linear1.weight", "layers.1.linear2.bias"} <= inits
    names = [n.name for n in proto.graph.node]
    assert any(n.startswith("/layers.0.linear1/") for n in names)
    assert any(n.startswith("/layers.1.linear2/") for n in names)
    assert len(set(names)) == len(names)
    meta = {p.key: p.value for p in proto.graph.node[0].metadata_props}
    assert meta["interop.source"].endswith(f"test_capture.py:{_line(Block.forward, 'BLOCK-FORWARD')}")
    assert meta["interop.module"] == "layers.0.linear1: Linear"
    np.testing.assert_allclose(run(proto, x.numpy())[0], model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_metadata_can_be_stripped():
    proto = interop.export(Encoder(), interop.randn(2, 4), metadata=False, verify=False)
    assert all(len(n.metadata_props) == 0 for n in proto.graph.node)


def test_tied_weights_stay_one_initializer():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(6, 6, bias=False)
            self.dec = nn.Linear(6, 6, bias=False)
            self.dec.weight = self.enc.weight

        def forward(self, x):
            return self.dec(self.enc(x).tanh())

    model = Tied()
    proto = interop.export(model, interop.randn(3, 6))
    assert [t.name for t in proto.graph.initializer] == ["enc.weight"]


def test_constants_become_deduplicated_initializers():
    def f(x, y):
        return x * 2.5 + y * 2.5 - 1

    proto = interop.export(f, (interop.randn(3), interop.randn(3)))
    assert len(proto.graph.initializer) == 2
    assert not {"Constant", "Identity"} & set(ops(proto))


def test_modules_export_in_eval_mode_and_keep_their_flags():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x * 2 if self.training else x * 3

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Probe(), Probe()

        def forward(self, x):
            return self.a(x) + self.b(x)

    model = Outer()
    model.b.eval()
    x = interop.ones(2)
    proto = interop.export(model, (x,), verify=False)
    assert seen == [False, False]
    assert model.training and model.a.training and not model.b.training
    np.testing.assert_allclose(run(proto, x.numpy())[0], [6.0, 6.0])


def test_in_place_ops_on_intermediates_inputs_and_constants():
    def f(x):
        y = x * 2
        y.add_(1)  # an intermediate
        m = interop.zeros(3)
        z = x + m  # reads the constant before it changes
        m.add_(5)  # a constant written in place
        x.mul_(3)  # the input itself
        return y + z + m + x

    x = np.array([1.0, 2.0, 3.0], np.float32)
    proto = interop.export(f, (interop.tensor(x.copy()),))
    want = f(interop.tensor(x.copy())).numpy()
    np.testing.assert_allclose(run(proto, x)[0], want)
    np.testing.assert_allclose(run(proto, x + 1)[0], f(interop.tensor(x + 1)).numpy())


def test_detached_tensors_resolve_to_their_values():
    def f(x):
        h = (x * 2).detach()
        return h + x.detach()

    x = interop.randn(4)
    proto = interop.export(f, (x,))
    assert not proto.graph.initializer[1:]  # only the scalar 2: nothing was baked
    np.testing.assert_allclose(run(proto, np.ones(4, np.float32))[0], np.full(4, 3.0))


CONVERSIONS = {
    "bool": lambda s: bool(s > 0),
    "item": lambda s: s.item(),
    "int": lambda s: int(s),
    "float": lambda s: float(s),
    "tolist": lambda s: s.tolist(),
    "numpy": lambda s: s.numpy(),
    "array": lambda s: np.asarray(s),
}


@pytest.mark.parametrize("convert", list(CONVERSIONS))
def test_python_values_of_traced_tensors_raise_with_file_and_line(convert):
    def f(x):
        return x * CONVERSIONS[convert](x.sum())

    with pytest.raises(ExportError) as e:
        interop.export(f, (interop.randn(3),), verify=False)
    assert f"test_capture.py:{CONVERSIONS[convert].__code__.co_firstlineno}" in str(e.value)


def test_python_values_of_weights_are_allowed():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(interop.tensor([3.0]))

        def forward(self, x):
            return x * self.scale.item()

    proto = interop.export(Scaled(), (interop.ones(2),))
    np.testing.assert_allclose(run(proto, np.ones(2, np.float32))[0], [3.0, 3.0])


class NoLowering(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_unsupported_ops_are_all_listed_with_counts_and_locations():
    def f(x):
        a = NoLowering.apply(x)  # FIRST
        b = NoLowering.apply(a)  # SECOND
        return NoLowering.apply(b) + NoLowering.apply(x)  # THIRD

    with pytest.raises(ExportError) as e:
        interop.export(f, (interop.randn(2),))
    text = str(e.value)
    assert "FunctionOp x4" in text and "no `symbolic(g, *inputs)` lowering" in text
    for marker in ("# FIRST", "# SECOND", "# THIRD"):
        assert f"test_capture.py:{_line(f, marker)}" in text


def test_outputs_must_be_tensors():
    with pytest.raises(ExportError, match="returned a int"):
        interop.export(lambda x: (x * 2, 3), (interop.randn(2),))


def test_names_of_nested_inputs_and_dict_outputs():
    def f(a, pair):
        return {"sum": a + pair[0], "prod": a * pair[1]}

    t = [interop.randn(2) for _ in range(3)]
    proto = interop.export(f, (t[0], (t[1], t[2])))
    assert [i.name for i in proto.graph.input] == ["a", "pair_0", "pair_1"]
    assert [o.name for o in proto.graph.output] == ["sum", "prod"]
    proto = interop.export(f, (t[0], (t[1], t[2])), input_names=["p", "q", "r"], output_names=["s", "m"])
    assert [i.name for i in proto.graph.input] == ["p", "q", "r"]
    with pytest.raises(ValueError, match="input_names has 2 names"):
        interop.export(f, (t[0], (t[1], t[2])), input_names=["p", "q"])


def test_identity_model_and_repeated_outputs():
    def f(x):
        y = x + 1
        return x, y, y

    x = interop.randn(3)
    proto = interop.export(f, (x,))
    got = run(proto, x.numpy())
    np.testing.assert_allclose(got[0], x.numpy())
    np.testing.assert_allclose(got[2], x.numpy() + 1)


def test_capture_overhead_stays_out_of_eager_mode():
    """Outside export nothing is recorded and no stack is walked (the capture hook is only set during export)."""
    from interop._state import state

    interop.export(lambda x: x + 1, (interop.randn(2),), verify=False)
    assert state.capture is None
    assert "onnx" in sys.modules  # the exporter itself was imported on first use


def test_export_leaves_no_recorded_tensors_in_reference_cycles():
    """A cycle holding the traced tensors keeps the whole recorded graph alive until a full collection."""
    model = Block()
    x = interop.randn(2, 4)
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        interop.export(model, (x,), dynamic={"x": {0: "batch"}}, verify=False)
        gc.collect()
        leaked = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    assert not leaked & {"Tensor", "Node", "Capture", "Graph"}
    assert was == gc.isenabled()
