"""Reductions and linear algebra beyond the OpCases: errors, ties, return types, dtypes, 2nd-order grads."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop.ops.linalg import linear

from .opcases.linalg import CASES as LINALG_CASES
from .opcases.reduce import CASES as REDUCE_CASES

torch = pytest.importorskip("torch")


def _pair(a, requires_grad=True):
    a = np.asarray(a)
    return (interop.tensor(a.copy(), requires_grad=requires_grad),
            torch.tensor(a.copy(), requires_grad=requires_grad))


def _close(mine, theirs, **kw):
    np.testing.assert_allclose(mine.numpy(force=True), theirs.detach().numpy(), **kw)


# ---- shape and dtype errors name both operands, in PyTorch's words -----------------------------------------

@pytest.mark.parametrize(("a", "b", "message"), [
    ((2, 3), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    ((2, 3), (4,), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4\)"),
    ((3,), (4,), r"mat1 and mat2 shapes cannot be multiplied \(3 and 4\)"),
    ((7, 2, 3), (7, 4, 5), r"mat1 and mat2 shapes cannot be multiplied \(7x2x3 and 7x4x5\)"),
    ((7, 2, 3), (6, 3, 5), r"size of tensor a \(7\) must match the size of tensor b \(6\).*7x2x3 and 6x3x5"),
    ((2, 3), (), r"at least 1D, but they are 2D and 0D"),
])
def test_matmul_shape_errors(a, b, message):
    with pytest.raises(RuntimeError, match=message):
        interop.ones(a) @ interop.ones(b)


def test_matmul_family_errors():
    with pytest.raises(RuntimeError, match="same dtype, but got: float32 != float64"):
        interop.ones(2, 3) @ interop.ones(3, 2).double()
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        interop.ones(2, 3).mm(interop.ones(4, 5))
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        interop.mm(interop.ones(3), interop.ones(3, 2))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        interop.bmm(interop.ones(2, 3), interop.ones(2, 3, 4))
    with pytest.raises(RuntimeError, match=r"batch2 tensor to be: \[2, 3\] but got: \[2, 4\]"):
        interop.bmm(interop.ones(2, 3, 3), interop.ones(2, 4, 5))
    with pytest.raises(RuntimeError, match="1D tensors expected, but got 2D and 1D tensors"):
        interop.dot(interop.ones(3, 1), interop.ones(3))
    with pytest.raises(RuntimeError, match=r"expected tensor \[3\] and src \[4\]"):
        interop.dot(interop.ones(3), interop.ones(4))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(14x3 and 5x4\)"):
        linear(interop.ones(2, 7, 3), interop.ones(4, 5))
    with pytest.raises(RuntimeError, match="outer: Expected 1-D argument self, but got 2-D"):
        interop.outer(interop.ones(2, 3), interop.ones(3))


def test_einsum_errors():
    with pytest.raises(RuntimeError, match="fewer operands were provided"):
        interop.einsum("ij,jk", interop.ones(2, 3))
    with pytest.raises(RuntimeError, match="subscript j has size 4 for operand 1 which does not broadcast"):
        interop.einsum("ij,jk->ik", interop.ones(2, 3), interop.ones(4, 5))
    with pytest.raises(RuntimeError, match="subscript i is repeated for operand 0 but the sizes don't match"):
        interop.einsum("ii->i", interop.ones(2, 3))
    with pytest.raises(RuntimeError, match="output subscript i appears more than once"):
        interop.einsum("ij->ii", interop.ones(2, 2))
    with pytest.raises(RuntimeError, match="does not match the number of dimensions"):
        interop.einsum("ijk->i", interop.ones(2, 2))
    with pytest.raises(RuntimeError, match="expected scalar type float32 but found float64"):
        interop.einsum("i,i", interop.ones(2), interop.ones(2).double())


def test_reduction_errors():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        interop.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match=r"Expected a floating point or complex tensor as input\. Got"):
        interop.tensor([1, 2]).norm()
    with pytest.raises(TypeError, match="prod\\(\\): argument 'dim' must be int, not tuple"):
        interop.ones(2, 3).prod((0, 1))
    with pytest.raises(TypeError, match="either unbiased or correction"):
        interop.ones(2, 3).var(0, True, correction=1)
    with pytest.raises(RuntimeError, match=r"linalg\.matrix_norm: dim must be a 2-tuple"):
        interop.ones(2, 3, 4).norm(p="fro", dim=(0, 1, 2))
    with pytest.raises(NotImplementedError, match="'nuc'"):
        interop.ones(2, 3).norm(p="nuc")
    with pytest.raises(IndexError, match="Dimension out of range"):
        interop.ones(2, 3).sum(2)


# ---- max / min ---------------------------------------------------------------------------------------------

def test_max_dim_ties_send_the_gradient_to_the_first_index():
    data = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 0.5, 2.0, -1.0]], np.float32)
    for name in ("max", "min"):
        x, tx = _pair(data if name == "max" else -data)
        out, tout = getattr(x, name)(1), getattr(tx, name)(1)
        assert out.indices.tolist() == tout.indices.tolist() == [1, 0]
        out.values.sum().backward()
        tout.values.sum().backward()
        _close(x.grad, tx.grad)


def test_max_returns_a_named_tuple_and_max_of_a_tensor_is_maximum():
    x = interop.tensor([[1.0, 5.0], [4.0, 2.0]])
    out = x.max(dim=0, keepdim=True)
    values, indices = out
    assert values is out.values and indices is out.indices and out[0] is values
    assert values.tolist() == [[4.0, 5.0]] and indices.tolist() == [[1, 0]]
    assert indices.dtype == interop.int64 and not values.requires_grad
    assert repr(out).startswith("max(values=tensor(")
    assert interop.max(x, interop.tensor([3.0, 3.0])).tolist() == [[3.0, 5.0], [4.0, 3.0]]
    assert x.min(interop.tensor(2.0)).tolist() == [[1.0, 2.0], [2.0, 2.0]]


def test_full_max_splits_ties_evenly():
    x, tx = _pair([1.0, 3.0, 3.0, 3.0])
    x.max().backward()
    tx.max().backward()
    _close(x.grad, tx.grad)
    np.testing.assert_allclose(x.grad.numpy(), [0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)


def test_zero_dim_inputs():
    x, tx = _pair(np.float32(2.5))
    for fn in (lambda t: t.max(0).values, lambda t: t.sum(0), lambda t: t.cumsum(0), lambda t: t.amax(-1),
               lambda t: t.logsumexp(0), lambda t: t.prod(0), lambda t: t.norm()):
        _close(fn(x), fn(tx))
    assert x.argmax(0, keepdim=True).shape == tx.argmax(0, keepdim=True).shape == ()
    assert x.max(0).indices.item() == 0


# ---- dtypes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_low_precision_reductions_accumulate_in_float32(name):
    x = interop.full((20000,), 0.1, dtype=getattr(interop, name))
    tx = torch.full((20000,), 0.1, dtype=getattr(torch, name))
    for fn in (lambda t: t.sum(), lambda t: t.mean(), lambda t: t.cumsum(0)[-1], lambda t: t.norm(),
               lambda t: t.logsumexp(0), lambda t: t.var()):
        got, want = fn(x), fn(tx)
        assert got.dtype == x.dtype
        np.testing.assert_allclose(float(got.float()), float(want.float()), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_low_precision_products(name):
    rng = np.random.default_rng(0)
    a, w, b = rng.standard_normal((4, 64)), rng.standard_normal((8, 64)), rng.standard_normal(8)
    dt = getattr(interop, name)
    ia, iw, ib = (interop.tensor(v).type(dt) for v in (a, w, b))
    want = (ia.float() @ iw.float().mT + ib.float()).numpy()
    for got in (linear(ia, iw, ib), ia @ iw.mT + ib, interop.einsum("ij,kj->ik", ia, iw) + ib):
        assert got.dtype == dt
        np.testing.assert_allclose(got.float().numpy(), want, rtol=2e-2, atol=0.1)


def test_integer_and_bool_results_follow_pytorch():
    ints = [[3, -1, 4], [1, 5, -9]]
    for dt in ("int8", "int32", "int64", "bool", "uint8"):
        x = interop.tensor(ints).type(getattr(interop, dt))
        tx = torch.tensor(ints).to(getattr(torch, dt))
        fns = [lambda t: t.sum(), lambda t: t.prod(1), lambda t: t.cumsum(0), lambda t: t.all(1),
               lambda t: t.any(), lambda t: t.amax(0)]
        for fn in fns + ([lambda t: t.argmin(1)] if dt != "bool" else []):  # torch has no bool argmin
            got, want = fn(x), fn(tx)
            assert str(got.dtype) == str(want.dtype).removeprefix("torch."), (dt, got.dtype, want.dtype)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    x = interop.tensor([1.5, 2.5])
    assert x.sum(dtype=interop.float64).dtype == interop.float64
    assert x.cumsum(0, dtype=interop.float64).dtype == interop.float64
    assert x.mean(dtype=interop.float64).dtype == interop.float64
    assert x.norm(dtype=interop.float64).dtype == interop.float64


def test_all_any_with_empty_dim_reduce_nothing_but_sum_reduces_everything():
    data = [[1, 0], [2, 3]]
    x, tx = interop.tensor(data), torch.tensor(data)
    assert x.all(dim=()).tolist() == tx.all(dim=()).tolist()
    assert x.sum(dim=()).item() == tx.sum(dim=()).item() == 6
    assert x.float().amax(dim=[]).item() == 3


# ---- gradients ---------------------------------------------------------------------------------------------

def test_norm_gradient_is_zero_at_zero():
    for p in (2, 3, 1.5):
        x, tx = _pair(np.zeros(3, np.float32))
        x.norm(p).backward()
        tx.norm(p).backward()
        _close(x.grad, tx.grad)
        assert not np.any(x.grad.numpy())


def test_var_std_legacy_and_correction_forms_match_pytorch():
    x, tx = _pair(np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32))
    for fn in (lambda t: t.var(False), lambda t: t.std(1, True, True), lambda t: t.var(0, unbiased=False),
               lambda t: t.std(correction=0), lambda t: t.var(dim=1, correction=2, keepdim=True)):
        _close(fn(x), fn(tx), rtol=1e-5)


def test_linear_computes_only_the_gradients_needed():
    x = interop.randn(4, 3)
    w = interop.randn(5, 3, requires_grad=True)
    b = interop.randn(5)
    linear(x, w, b).sum().backward()
    assert x.grad is None and b.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.ones((4, 5)).T @ x.numpy(), rtol=1e-5)


def _second_order(fn, *arrays):
    """d/dx of (d sum(fn(x)) / dx . v): create_graph through the op's backward, against PyTorch."""
    mine = [interop.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    for ts, lib in ((mine, interop), (theirs, torch)):
        out = fn(*ts)
        grads = lib.autograd.grad(out.sum(), ts, create_graph=True) if lib is torch else \
            interop.grad(out.sum(), ts, create_graph=True)
        sum((g * g).sum() for g in grads).backward()
    for m, t in zip(mine, theirs):
        _close(m.grad, t.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fn", [
    lambda a, b: (a @ b).tanh(),
    lambda a, b: interop.einsum("ij,jk->ik", a, b).tanh() if isinstance(a, interop.Tensor) else
    torch.einsum("ij,jk->ik", a, b).tanh(),
    lambda a, b: linear(a, b.mT).tanh() if isinstance(a, interop.Tensor) else
    torch.nn.functional.linear(a, b.mT).tanh(),
], ids=["matmul", "einsum", "linear"])
def test_second_order_products(fn):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    _second_order(fn, a.astype(np.float32), b.astype(np.float32))


@pytest.mark.parametrize("fn", [
    lambda a: a.logsumexp(1), lambda a: a.var(0), lambda a: a.std(1), lambda a: a.norm(dim=1),
    lambda a: a.norm(3, dim=0), lambda a: a.prod(1), lambda a: a.cumsum(1) * a, lambda a: a.mean(0) * a,
], ids=["logsumexp", "var", "std", "norm2", "norm3", "prod", "cumsum", "mean"])
def test_second_order_reductions(fn):
    _second_order(fn, np.random.default_rng(3).uniform(0.5, 2, (3, 4)).astype(np.float32))


def test_prod_second_order_with_one_zero_in_a_slice():
    data = np.array([[1.5, 0.0, -2.0, 0.5], [0.5, 1.25, 3.0, 2.0]], np.float32)
    _second_order(lambda a: a.prod(1), data)


def test_rmatmul_with_an_array_and_matmul_of_views():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = interop.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    out = a @ x
    np.testing.assert_allclose(out.detach().numpy(), a @ np.ones((3, 2)))
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a.T @ np.ones((2, 2)))


def test_einsum_backward_through_broadcast_and_diagonals_matches_pytorch():
    rng = np.random.default_rng(4)
    cases = [("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("bii,bi->b", [(2, 3, 3), (2, 3)]),
             ("iii->i", [(3, 3, 3)]), ("ij,ij->", [(3, 4), (1, 4)]), ("i...,...i", [(3, 2), (2, 3)])]
    for eq, shapes in cases:
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        mine = [interop.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        out, tout = interop.einsum(eq, *mine), torch.einsum(eq, *theirs)
        _close(out, tout, rtol=1e-5, atol=1e-5)
        wt = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
        (out * interop.tensor(wt)).sum().backward()
        (tout * torch.tensor(wt)).sum().backward()
        for m, t in zip(mine, theirs):
            _close(m.grad, t.grad, rtol=1e-5, atol=1e-5)


def test_einsum_of_a_transpose_does_not_alias_its_input():
    x = interop.ones(2, 3)
    y = interop.einsum("ij->ji", x)
    y.add_(1)
    assert x.tolist() == [[1.0] * 3] * 2


# ---- CUDA --------------------------------------------------------------------------------------------------

def _run_on(case, device):
    ts = []
    for i, a in enumerate(case.inputs):
        a = np.asarray(a)
        t = interop.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, device=device)
        if case.grad and i in case.float_inputs():
            t.requires_grad_()
        ts.append(t)
    outs = case.fn(*ts)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    loss = sum((o.float() * (k + 1)).sum() for k, o in enumerate(outs) if o.requires_grad)
    if case.grad and not isinstance(loss, int):
        loss.backward()
    return [o.cpu().detach().numpy() for o in outs] + [t.grad.cpu().numpy() for t in ts if t.grad is not None]


@pytest.mark.gpu
@pytest.mark.parametrize("case", REDUCE_CASES + LINALG_CASES, ids=lambda c: c.id)
def test_cuda_matches_cpu(case):
    cpu, cuda = _run_on(case, "cpu"), _run_on(case, "cuda")
    assert len(cpu) == len(cuda)
    for c, g in zip(cpu, cuda):
        assert c.dtype == g.dtype and c.shape == g.shape
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-4)
