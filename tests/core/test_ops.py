"""Every registered op, checked four ways: it records itself, forward vs numpy, gradients vs finite differences
(float64), and values and gradients vs PyTorch (float32). The ONNX face is checked in tests/export."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop._state import state
from interop.autograd import Op, gradcheck

from .opcases import OpCase, all_cases

CASES = all_cases()
torch = pytest.importorskip("torch")


class Recorder:
    """The smallest capture: records which ops ran (no symbolic shapes)."""

    def __init__(self):
        self.ops: list[str] = []

    def record(self, node):
        self.ops.append(type(node.op).__name__)

    def shape_of(self, t):
        return t.data.shape

    def refuse_concrete(self, t, what):
        pass

    def alias(self, old, new):
        pass


def _tensors(case: OpCase, dtype=None, requires_grad=True):
    out = []
    for i, a in enumerate(case.inputs):
        a = np.asarray(a)
        if a.dtype.kind == "f" and dtype is not None:
            a = a.astype(dtype)
        t = interop.tensor(a)
        if requires_grad and i in case.float_inputs() and case.grad:
            t.requires_grad_()
        out.append(t)
    return out


def _outs(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def test_every_op_has_a_case():
    covered = {c.op for c in CASES}
    missing = sorted(set(Op.registry) - covered)
    assert not missing, f"ops with no OpCase in tests/core/opcases: {missing}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_records_its_op(case):
    rec = Recorder()
    state.capture = rec
    try:
        case.fn(*_tensors(case, dtype=np.float32, requires_grad=False))
    finally:
        state.capture = None
    assert case.op in rec.ops, f"{case.name} was meant to exercise {case.op} but recorded {rec.ops}"


@pytest.mark.parametrize("case", [c for c in CASES if c.ref is not None], ids=lambda c: c.id)
def test_forward_matches_numpy(case):
    got = _outs(case.fn(*_tensors(case, requires_grad=False)))
    want = _outs(case.ref(*[np.asarray(a) for a in case.inputs]))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, f"shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g.numpy(force=True).astype(np.float64) if w.dtype.kind == "f" else
                                   g.numpy(force=True), w, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=lambda c: c.id)
def test_gradients_match_finite_differences(case):
    ts = _tensors(case, dtype=np.float64)
    assert gradcheck(case.fn, ts, atol=case.fd_atol, rtol=case.fd_rtol)


def _torch_inputs(case, requires_grad):
    out = []
    for i, a in enumerate(case.inputs):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        t = torch.from_numpy(a.copy())
        if requires_grad and i in case.float_inputs() and case.grad:
            t.requires_grad_()
        out.append(t)
    return out


@pytest.mark.parametrize("case", [c for c in CASES if c.torch], ids=lambda c: c.id)
def test_matches_pytorch(case):
    mine = _tensors(case, dtype=np.float32)
    theirs = _torch_inputs(case, requires_grad=True)
    got = _outs(case.fn(*mine))
    want = _outs((case.torch_fn or case.fn)(*theirs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape), f"shape {tuple(g.shape)} != {tuple(w.shape)}"
        assert str(g.dtype) == str(w.dtype).removeprefix("torch."), f"dtype {g.dtype} != {w.dtype}"
        np.testing.assert_allclose(g.numpy(force=True), w.detach().numpy(), rtol=case.rtol, atol=case.atol)
    if not case.grad:
        return
    # weight each output by fixed random values, so every output element's gradient is checked
    rng = np.random.default_rng(0)
    loss_mine, loss_theirs = 0, 0
    for g, w in zip(got, want):
        if not w.requires_grad:
            continue
        wt = rng.standard_normal(tuple(w.shape)).astype(np.float32)
        loss_mine = loss_mine + (g * interop.tensor(wt)).sum()
        loss_theirs = loss_theirs + (w * torch.from_numpy(wt)).sum()
    if isinstance(loss_theirs, int):
        return
    loss_theirs.backward()
    loss_mine.backward()
    for i in case.float_inputs():
        tg = theirs[i].grad
        mg = mine[i].grad
        if tg is None:
            assert mg is None or not np.any(mg.numpy()), f"input {i}: PyTorch has no gradient, interop does"
            continue
        assert mg is not None, f"input {i}: no gradient"
        np.testing.assert_allclose(mg.numpy(), tg.numpy(), rtol=max(case.rtol, 1e-4) * 10,
                                   atol=case.atol * 10, err_msg=f"gradient of input {i}")
