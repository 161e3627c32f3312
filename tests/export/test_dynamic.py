"""Dynamic axes: symbolic sizes in the graph, never baked constants, never specialised on the example."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop import nn
from interop.export import ExportError, verify

from .helpers import dims, ops, run


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


def test_batch_one_example_still_gives_a_dynamic_batch():
    model = MLP()
    proto = interop.export(model, (interop.randn(1, 4),), dynamic={"x": {0: "batch"}})
    assert dims(proto.graph.input[0]) == ["batch", 4]
    assert dims(proto.graph.output[0]) == ["batch", 3]
    assert "Shape" not in ops(proto)  # nothing reads the batch size: no shape computation at all
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = model(interop.tensor(x)).detach().numpy()
    np.testing.assert_allclose(run(proto, x)[0], want, rtol=1e-5, atol=1e-6)


class Heads(nn.Module):
    """The attention reshapes: sizes read from x.shape, -1, and arithmetic on sizes."""

    def __init__(self, d=8, h=2):
        super().__init__()
        self.h, self.qkv = h, nn.Linear(d, 3 * d)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).reshape(b, -1, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / (d // self.h) ** 0.5
        out = att.tanh() @ v
        return out.transpose(1, 2).reshape(b, s, d) * (s // 2)


def test_shape_arithmetic_exports_as_graph_computation():
    model = Heads()
    x = interop.randn(2, 6, 8)
    proto = interop.export(model, (x,), dynamic={"x": {0: "batch", 1: "seq"}})  # verify: example, 1, 2x
    assert dims(proto.graph.input[0]) == ["batch", "seq", 8]
    assert dims(proto.graph.output[0]) == ["batch", "seq", 8]
    assert ops(proto).count("Shape") <= 3  # one Shape(x, start, end) per distinct slice, shared by CSE
    report = verify(model, (x,), proto, shapes=[{"batch": 3, "seq": 1}, {"batch": 1, "seq": 11}])
    assert report.ok and len(report.checks) == 2, str(report)


def test_static_export_has_no_shape_computation():
    proto = interop.export(Heads(), (interop.randn(2, 6, 8),))
    assert not {"Shape", "Concat", "Constant", "Identity"} & set(ops(proto))


def test_inputs_sharing_a_symbol_and_sizes_as_operands():
    def f(x, mask):
        n = x.shape[1]
        return (x * mask).sum(1) / n + x.size(0)

    x, mask = interop.randn(3, 5), interop.ones(3, 5)
    proto = interop.export(f, (x, mask), dynamic={"x": {0: "batch", 1: "n"}, "mask": {0: "batch", 1: "n"}})
    a = np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32)
    m = (np.arange(28).reshape(4, 7) % 2).astype(np.float32)
    want = f(interop.tensor(a), interop.tensor(m)).numpy()
    np.testing.assert_allclose(run(proto, a, m)[0], want, rtol=1e-5)


def test_constants_built_from_dynamic_sizes_follow_them():
    def f(x):
        b, s = x.shape
        pos = interop.arange(s)  # a range over a dynamic size
        bias = interop.zeros(b, 1) + 0.5  # a fill whose shape is dynamic
        return x + pos + bias

    proto = interop.export(f, (interop.randn(2, 5),), dynamic={"x": {0: "batch", 1: "seq"}})
    assert {"Range", "Expand"} <= set(ops(proto))
    x = np.zeros((3, 9), np.float32)
    np.testing.assert_allclose(run(proto, x)[0], np.arange(9)[None].repeat(3, 0) + 0.5)


def test_output_axes_can_be_renamed():
    proto = interop.export(MLP(), (interop.randn(2, 4),), dynamic={"x": {0: "batch"}, "output": {0: "N"}})
    assert dims(proto.graph.output[0]) == ["N", 3]
    proto = interop.export(MLP(), (interop.randn(2, 4),), dynamic={"x": [0]})
    assert dims(proto.graph.input[0]) == ["x_dim0", 4]


def test_shape_dependent_control_flow_is_refused():
    def f(x):
        if x.shape[0] > 2:  # BRANCH
            return x * 2
        return x.exp()

    with pytest.raises(ExportError, match="different graph when the dynamic axes change size"):
        interop.export(f, (interop.randn(2, 3),), dynamic={"x": {0: "batch"}})


def test_sizes_turned_into_python_ints_are_reported():
    def f(x):
        n = int(x.shape[0])  # a plain int: the Reshape would bake it in
        return x.reshape(n, -1) * float(x.shape[1])  # and a float baked as a constant

    with pytest.raises(ExportError) as e:
        interop.export(f, (interop.randn(2, 3, 4),), dynamic={"x": {0: "batch", 1: "seq"}})
    text = str(e.value)
    assert "Reshape attribute shape=(2, -1) was computed from a dynamic size" in text
    assert "whose value depends on the dynamic axes" in text
    assert "test_dynamic.py:" in text


def test_dynamic_spec_errors():
    x = interop.randn(2, 3)
    with pytest.raises(ValueError, match="neither inputs"):
        interop.export(MLP(), (interop.randn(2, 4),), dynamic={"y": {0: "batch"}})
    with pytest.raises(ValueError, match="out of range"):
        interop.export(lambda x: x + 1, (x,), dynamic={"x": {2: "batch"}})
    with pytest.raises(ValueError, match="same example size"):
        interop.export(lambda x, y: x + y.sum(), (x, interop.randn(3)),
                       dynamic={"x": {0: "n"}, "y": {0: "n"}})


def test_model_that_rejects_other_sizes_says_so():
    def f(x):
        if x.shape[0] != 2:
            raise ValueError("only batch 2")
        return x + 1

    with pytest.raises(ExportError, match="fails when its dynamic axes take other sizes"):
        interop.export(f, (interop.randn(2, 3),), dynamic={"x": {0: "batch"}})


def test_sizes_of_intermediates_are_read_in_one_shape_node():
    lin = nn.Linear(4, 6)

    def f(x):
        h = lin(x)
        b, s, _ = h.shape
        return h.reshape(b, s, 2, -1).sum(-1)

    dynamic = {"x": {0: "batch", 1: "seq"}}
    raw = interop.export(f, (interop.randn(2, 3, 4),), dynamic=dynamic, optimize=False)
    assert ops(raw).count("Shape") == 1
    assert dims(raw.graph.output[0]) == ["batch", "seq", 2]
    # optimized, the target is the constant [0, 0, 2, -1]: no Shape at all
    assert "Shape" not in ops(interop.export(f, (interop.randn(2, 3, 4),), dynamic=dynamic))


def test_sizes_kept_from_another_export_are_refused():
    kept = []

    def first(x):
        kept.append(x.shape[0])  # the real run's SymInt is the last one kept
        return x + 1

    def second(x):
        return x.reshape(kept[-1], -1, 1) + 1

    interop.export(first, (interop.randn(2, 3),), dynamic={"x": {0: "batch"}}, verify=False)
    with pytest.raises(ExportError, match="symbolic size from another export"):
        interop.export(second, (interop.randn(2, 3),), dynamic={"x": {0: "batch"}})
