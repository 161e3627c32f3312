"""Shape ops beyond the OpCases: view aliasing and version counters, copies that must not alias, PyTorch's
errors, identities, symbolic sizes kept in op attributes, ONNX lowering choices, higher-order gradients, GPU parity."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop._state import state
from interop.autograd import gradcheck
from interop.ops import shape as S
from interop.symbolic import sym_dim

from .opcases.shape import CASES as SHAPE_CASES

torch = pytest.importorskip("torch")
DEV = "cuda"  # what test_gpu_matches_cpu compares with the CPU


def _base():
    return interop.arange(24.0).reshape(2, 3, 4)


VIEWS = {
    "view": lambda x: x.view(6, 4),
    "reshape": lambda x: x.reshape(-1),
    "flatten": lambda x: x.flatten(1),
    "unflatten": lambda x: x.unflatten(2, (2, 2)),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 1),
    "T": lambda x: x.T,
    "mT": lambda x: x.mT,
    "movedim": lambda x: x.movedim(0, -1),
    "squeeze": lambda x: x.narrow(0, 0, 1).squeeze(0),
    "unsqueeze": lambda x: x.unsqueeze(1),
    "narrow": lambda x: x.narrow(-1, 1, 2),
    "split": lambda x: x.split(2, -1)[1],
    "chunk": lambda x: x.chunk(3, 1)[2],
    "unbind": lambda x: x.unbind(1)[1],
    "view_of_transpose": lambda x: x.transpose(0, 1).view(3, 2, 4),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_views_share_memory_and_version_counter(name):
    x = _base()
    v = VIEWS[name](x)
    assert v is not x and np.shares_memory(v.data, x.data)
    before = x.numpy().copy()
    v.add_(100)
    assert x._version == v._version == 1
    changed = x.numpy() != before
    assert changed.sum() == v.numel() and np.all(x.numpy()[changed] == before[changed] + 100)


def test_expand_shares_memory_and_version_counter():
    x = interop.ones(3, 1)
    y = x.expand(3, 4)
    assert np.shares_memory(y.data, x.data) and y._vc is x._vc
    x.mul_(2)
    assert y._version == 1 and np.all(y.numpy() == 2)


def test_view_of_leaf_that_requires_grad_then_inplace_raises():
    x = interop.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError):
        x.view(6).add_(1)


def test_version_check_sees_inplace_edit_through_a_view():
    x = interop.tensor([1.0, 2.0, 3.0], requires_grad=True) * 1
    y = x * x  # saves x
    with interop.no_grad():
        x.view(3, 1).mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_view_stride_error_and_reshape_copy():
    x = _base().transpose(1, 2)
    with pytest.raises(RuntimeError, match=r"view size is not compatible with input tensor's size and "
                                           r"stride .* Use \.reshape\(\.\.\.\) instead\."):
        x.view(-1)
    assert x.view(2, 4, 3).shape == (2, 4, 3)  # no-op view stays possible
    assert x.view(2, 4, 3, 1).shape == (2, 4, 3, 1)  # size-1 dims are free
    y = x.reshape(-1)
    assert not np.shares_memory(y.data, x.data) and y._vc is not x._vc
    np.testing.assert_array_equal(y.numpy(), np.swapaxes(_base().numpy(), 1, 2).reshape(-1))
    y.add_(1)
    assert x._version == 0
    with pytest.raises(NotImplementedError, match=r"use \.to"):
        x.view(interop.int32)


@pytest.mark.parametrize("shape,strides,new", [
    ((2, 3, 4), (12, 1, 3), (2, 12)), ((2, 3, 4), (12, 4, 1), (6, 4)), ((4, 3), (1, 4), (12,)),
    ((4, 3), (1, 4), (2, 2, 3)), ((4, 3), (1, 4), (4, 3, 1)), ((2, 1, 3), (3, 100, 1), (6,)),
    ((6,), (2,), (2, 3)), ((3, 4), (8, 1), (12,)), ((3, 4), (8, 1), (3, 2, 2)), ((0, 3), (3, 1), (3, 0)),
])
def test_viewable_matches_pytorch(shape, strides, new):
    storage = torch.zeros(1000)
    t = storage.as_strided(shape, strides)
    try:
        t.view(new)
        want = True
    except RuntimeError:
        want = False
    assert S._viewable(shape, strides, new) is want


COPIES = {
    "flip": lambda x: x.flip(0), "roll": lambda x: x.roll(1, 0), "tril": lambda x: x.tril(),
    "pad_crop": lambda x: interop.pad(x, (-1, -1)),
    "pad_reflect": lambda x: interop.pad(x, (0, 0), mode="reflect"),
    "cat_one": lambda x: interop.cat([x]), "stack_one": lambda x: interop.stack([x]),
    "tile": lambda x: x.repeat(1, 1, 1),
}


@pytest.mark.parametrize("name", list(COPIES))
def test_copying_ops_do_not_alias(name):
    x = _base()
    y = COPIES[name](x)
    assert not np.shares_memory(y.data, x.data) and y._vc is not x._vc
    y.add_(1)
    np.testing.assert_array_equal(x.numpy(), np.arange(24.0).reshape(2, 3, 4))


def test_identities_return_the_input():
    x = _base()
    assert x.reshape(2, 3, 4) is x and x.view(2, -1, 4) is x and x.flatten(1, 1) is x
    assert x.permute(0, 1, 2) is x and x.transpose(1, 1) is x and x.squeeze(0) is x and x.squeeze() is x
    assert x.expand(2, 3, 4) is x and x.expand(-1, -1, -1) is x and x.narrow(0, 0, 2) is x
    v = interop.ones(3)
    assert v.T is v and v.t() is v and interop.movedim(v, 0, 0) is v


def _errors(lib, x):
    F = lib.nn.functional if lib is torch else interop
    return [
        lambda: x.permute(0, 1), lambda: x.permute(0, 0, 1), lambda: x.view(-1, -1), lambda: x.view(5, -1),
        lambda: x.view(-2, 12), lambda: x.expand(2, 4, 4), lambda: x.expand(-1, 2, 3, 4),
        lambda: x.expand(3, 4), lambda: lib.cat([x, lib.ones(2, 2, 4)], 2),
        lambda: lib.cat([x, lib.ones(2, 3)]), lambda: lib.cat([]), lambda: lib.stack([x, lib.ones(2, 3, 5)]),
        lambda: x.split([2, 2], 1), lambda: x.chunk(0), lambda: x.split(0), lambda: x.narrow(1, 2, 2),
        lambda: x.narrow(1, 4, 0), lambda: x.unflatten(1, (2, 2)), lambda: x.flatten(2, 1),
        lambda: lib.ones(3).tril(), lambda: lib.ones(3).mT, lambda: x.repeat(2, 2), lambda: x.roll((1, 2)),
        lambda: x.roll((1, 2), (0,)), lambda: x.squeeze(3), lambda: x.unsqueeze(4),
        lambda: x.movedim((0, 1), (1,)), lambda: x.movedim((0, 0), (1, 0)), lambda: x.movedim((0, 1), (1, 1)),
        lambda: F.pad(x, (1, 2, 3)), lambda: F.pad(x, (1,) * 8), lambda: F.pad(x, (4, 0), mode="reflect"),
        lambda: F.pad(x, (5, 0), mode="circular"), lambda: F.pad(x, (-3, -3)), lambda: x.t(),
    ]


REWORDED = {7: "expand(torch.FloatTensor{[2, 3, 4]}, size=[3, 4]): names torch's types",
            33: "torch reports an internal narrow() failure for F.pad(x, (-3, -3))"}


@pytest.mark.parametrize("i", range(len(_errors(torch, torch.ones(2, 3, 4)))))
def test_errors_match_pytorch(i):
    with pytest.raises(Exception) as theirs:
        _errors(torch, torch.ones(2, 3, 4))[i]()
    with pytest.raises(type(theirs.value)) as mine:
        _errors(interop, interop.ones(2, 3, 4))[i]()
    if i not in REWORDED:
        assert str(mine.value) == str(theirs.value).split("\n")[0]


EDGE = {
    "flatten_empty": lambda L, x: x.flatten(1), "unflatten_empty": lambda L, x: x.unflatten(0, (-1, 1)),
    "chunk_empty": lambda L, x: x.chunk(3), "split_empty": lambda L, x: x.split(2),
    "unbind_empty": lambda L, x: x.unbind(), "cat_empty_rows": lambda L, x: L.cat([x, x]),
    "stack_empty": lambda L, x: L.stack([x, x], -1),
}


@pytest.mark.parametrize("name", list(EDGE))
def test_empty_tensors_match_pytorch(name):
    got = EDGE[name](interop, interop.zeros(0, 3, 4))
    want = EDGE[name](torch, torch.zeros(0, 3, 4))
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]


def test_cat_promotes_and_skips_legacy_empty():
    a, b = interop.ones(2, 3, dtype=interop.int32), interop.zeros(0, dtype=interop.float64)
    y = interop.cat([b, a, b], dim=-1)
    assert y.dtype == interop.float64 and y.shape == (2, 3)
    assert interop.cat([interop.zeros(0), interop.zeros(0)]).shape == (0,)


class _SymCapture:
    """A capture whose first dim of every tensor is symbolic, as the exporter's is on a dynamic batch axis."""

    def __init__(self):
        self.nodes = []

    def record(self, node):
        self.nodes.append(node)

    def shape_of(self, t):
        s = t.data.shape
        return (sym_dim(s[0], id(t), 0, "batch"), *s[1:]) if s else s

    def refuse_concrete(self, t, what):
        pass

    def alias(self, a, b):
        pass


def test_sizes_stay_symbolic_in_op_attributes():
    x, other = interop.ones(2, 3, 4), interop.ones(2, 5, 4)
    cap = state.capture = _SymCapture()
    try:
        outs = [x.flatten(1), x.reshape(x.shape[0], -1), x.view(-1, 2, 2).unflatten(1, (1, -1)),
                x.narrow(1, 0, 1).expand_as(other), x.unsqueeze(1).expand(-1, 3, 3, 4)]
    finally:
        state.capture = None
    assert [o.shape for o in outs] == [(2, 12), (2, 12), (6, 1, 2, 2), (2, 5, 4), (2, 3, 3, 4)]
    attrs = [n.op.shape for n in cap.nodes if type(n.op).__name__ in ("Reshape", "Expand")]
    assert attrs[0] == (2, -1) and attrs[0][0].name == "batch"
    assert attrs[1] == (2, -1) and attrs[1][0].name == "batch"
    assert attrs[2] == (-1, 2, 2) and attrs[3] == (6, 1, -1, 2) and attrs[3][0].name == "batch"
    assert attrs[4] == (2, 5, 4) and attrs[4][0].name == "batch"
    assert attrs[5] == (-1, 3, 3, 4)


class _FakeG:
    """Records what to_onnx asks for."""

    def __init__(self, opset=21, shape=(2, 3, 4)):
        self.opset, self.calls, self._shape = opset, [], shape

    def op(self, op_type, *inputs, outputs=1, **attrs):
        self.calls.append((op_type, len(inputs), attrs))
        return tuple(f"{op_type}{i}" for i in range(outputs)) if outputs > 1 else op_type

    def const(self, value, dtype=None):
        return np.asarray(value).tolist()

    def shape_tensor(self, shape):
        return list(shape)

    def dtype(self, v):
        return np.dtype("float32")

    def rank(self, v):
        return len(self._shape)

    def shape(self, v):
        return self._shape


def _lower(op, opset=21):
    g = _FakeG(opset)
    op.to_onnx(g, "x")
    return g.calls


def test_onnx_lowering_choices():
    assert _lower(S.Reshape((0, 5))) == [("Reshape", 2, {"allowzero": 1})]
    assert _lower(S.Reshape((2, -1))) == [("Reshape", 2, {})]
    assert _lower(S.Split(0, (2, 2, 1))) == [("Split", 1, {"axis": 0, "num_outputs": 3})]
    assert _lower(S.Split(0, (1, 3))) == [("Split", 2, {"axis": 0})]
    assert [c[0] for c in _lower(S.Pad((1, 2), "circular", 0), 18)] == ["Slice", "Slice", "Concat"]
    assert _lower(S.Pad((1, 2), "circular", 0), 19) == [("Pad", 4, {"mode": "wrap"})]
    assert _lower(S.Pad((1, 2), "replicate", 0)) == [("Pad", 4, {"mode": "edge"})]
    assert [c[0] for c in _lower(S.Pad((-1, 2), "reflect", 0))] == ["Slice", "Pad"]
    assert _lower(S.Trilu(True, 1)) == [("Trilu", 2, {"upper": 1})]
    assert _lower(S.Roll((4,), (2,))) == []  # a full turn is the identity


def test_pad_reflect_double_backward():
    """The gradient of pad is itself differentiable (create_graph): check d(grad)/d(weights) numerically."""
    x = interop.tensor(np.random.default_rng(0).standard_normal((2, 5)), requires_grad=True)

    def grad_of_pad(w):
        with interop.enable_grad():  # gradcheck's finite differences run under no_grad
            y = interop.pad(x, (2, 3), mode="reflect")
            (g,) = interop.grad((y * y * w).sum(), x, create_graph=True)
        return g

    w = interop.tensor(np.random.default_rng(1).standard_normal((2, 10)), requires_grad=True)
    assert gradcheck(grad_of_pad, [w])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_second_order_matches_pytorch(mode):
    a = np.random.default_rng(2).standard_normal((1, 2, 4, 5))
    pads = (2, -1, 1, 3) if mode != "reflect" else (2, -1, 1, 2)

    def run(lib, F):
        x = lib.tensor(a, requires_grad=True)
        y = F(x, pads, mode=mode)
        (g,) = lib.autograd.grad((y * y).sum(), x, create_graph=True) if lib is torch else \
            interop.grad((y * y).sum(), x, create_graph=True)
        (gg,) = (lib.autograd.grad if lib is torch else interop.grad)((g * g).sum(), x)
        return g.detach().numpy(), gg.numpy()

    mine = run(interop, interop.pad)
    theirs = run(torch, torch.nn.functional.pad)
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m, t, rtol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c.id)
def test_gpu_matches_cpu(case):
    """Every shape OpCase on CUDA (cupy) against the CPU: values and the gradients of a weighted sum."""
    results = []
    for dev in ("cpu", DEV):
        ts = []
        for i, a in enumerate(case.inputs):
            a = np.asarray(a)
            t = interop.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, device=dev)
            ts.append(t.requires_grad_() if case.grad and i in case.float_inputs() else t)
        outs = case.fn(*ts)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        assert all(o.device.type == dev for o in outs)
        rng = np.random.default_rng(0)
        loss = sum((o * interop.tensor(rng.standard_normal(o.shape).astype(np.float32), device=dev)).sum()
                   for o in outs if o.requires_grad)
        if case.grad:
            loss.backward()
        results.append([o.detach().cpu().numpy() for o in outs] +
                       [t.grad.cpu().numpy() for t in ts if t.grad is not None])
    assert len(results[0]) == len(results[1])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-6, atol=1e-6)
