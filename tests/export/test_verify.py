"""Verification: eager vs ONNX Runtime at several sizes, and locating the first diverging op."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop import nn
from interop.autograd import Function
from interop.export import VerificationError, verify


class Model(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = act

    def forward(self, x):
        return self.act(self.fc(x)).exp()


class WrongLowering(Function):
    """Eager doubles; the ONNX lowering triples: a broken op, as a lowering bug would be."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2

    @staticmethod
    def symbolic(g, x):
        return g.op("Mul", x, g.const(3.0, g.dtype(x)))


class StaticReshape(Function):
    """A lowering that bakes the example's shape into a Reshape: right at the example size only."""

    @staticmethod
    def forward(ctx, x):
        return x.reshape(-1)

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def symbolic(g, x):
        return g.op("Reshape", x, g.const([int(np.prod([d for d in g.shape(x) if isinstance(d, int)]) * 2)],
                                          "int64"))


def test_report_covers_the_example_and_other_sizes():
    model, x = Model(nn.Tanh()), interop.randn(2, 4)
    proto = interop.export(model, (x,), dynamic={"x": {0: "batch"}})
    report = verify(model, (x,), proto)
    assert report.ok
    assert [c.sizes for c in report.checks] == [{"batch": 2}, {"batch": 1}, {"batch": 4}]
    assert all(c.max_abs < 1e-5 for c in report.checks)
    assert "OK" in str(report) and "[batch=1] output (1, 4)" in str(report)


def test_mismatch_names_the_first_diverging_op():
    model = Model(WrongLowering.apply)
    x = interop.randn(3, 4)
    with pytest.raises(VerificationError) as e:
        interop.export(model, (x,))
    text = str(e.value)
    assert "MISMATCH" in text
    line = Model.forward.__code__.co_firstlineno + 1
    assert f"FunctionOp at tests/export/test_verify.py:{line}" in text
    assert not e.value.report.ok


def test_verify_alone_locates_the_divergence_too():
    model, x = Model(WrongLowering.apply), interop.randn(3, 4)
    proto = interop.export(model, (x,), verify=False)
    report = verify(model, (x,), proto)
    assert not report.ok and "FunctionOp" in report.divergence and "test_verify.py" in report.divergence


def test_a_lowering_right_only_at_the_example_size_is_caught_at_other_sizes():
    def f(x):
        return StaticReshape.apply(x * 2) + 1

    x = interop.randn(2, 3)
    proto = interop.export(f, (x,), dynamic={"x": {0: "batch"}}, verify=False)
    report = verify(f, (x,), proto)
    bad = [c for c in report.checks if not c.ok]
    assert bad and all(c.sizes != {"batch": 2} for c in bad), str(report)
    assert "FunctionOp" in report.divergence


def test_sizes_the_eager_model_rejects_are_skipped():
    def f(x):
        if x.shape[0] == 1:
            raise ValueError("needs two rows")
        return x + 1

    x = interop.randn(2, 3)
    proto = interop.export(f, (x,), verify=False)
    report = verify(f, (x,), proto, shapes=[{}])
    assert report.ok and not report.skipped
    proto = interop.export(lambda x: x + 1, (x,), dynamic={"x": {0: "n"}}, verify=False)
    report = verify(f, (x,), proto)
    assert report.ok and len(report.skipped) == 1 and "needs two rows" in report.skipped[0]
