"""Elementwise behaviour the per-op OpCases cannot express: type promotion, in-place semantics, errors,
gradients at kinks, higher derivatives, numerics at the extremes, ONNX opset gating and the CUDA paths."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import interop
from interop.autograd import gradcheck
from interop.ops import elementwise as ew

from .opcases import OpCase
from .opcases.elementwise import CASES, nnf

torch = pytest.importorskip("torch")


def _both(data, dtype="float64", requires_grad=True):
    """The same values as an interop and a torch tensor."""
    a = np.asarray(data, dtype=dtype)
    return (interop.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


# ---- type promotion ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, want", [
    (lambda m: m.tensor([1, 2], dtype=m.int32) + 2.5, "float32"),
    (lambda m: m.tensor([1.0], dtype=m.float16) + m.tensor(1.0, dtype=m.float64), "float16"),
    (lambda m: m.tensor([1]) + m.tensor([1.0], dtype=m.float16), "float16"),
    (lambda m: m.tensor([1], dtype=m.uint8) + m.tensor([1], dtype=m.int8), "int16"),
    (lambda m: m.tensor([True]) + m.tensor([True]), "bool"),
    (lambda m: m.tensor([True]) * 2, "int64"),
    (lambda m: m.tensor([3, 4]) / m.tensor([2, 2]), "float32"),
    (lambda m: m.tensor([3, 4]) // 2, "int64"),
    (lambda m: m.tensor([3, 4], dtype=m.int32) % m.tensor(2), "int32"),
    (lambda m: m.tensor([3, 4]) < 3.5, "bool"),
    (lambda m: m.tensor([3, 4]).exp(), "float32"),
    (lambda m: m.tensor([True]).sigmoid(), "float32"),
    (lambda m: m.tensor([3, 4]) ** 2, "int64"),
    (lambda m: m.tensor([3, 4]) ** 0.5, "float32"),
    (lambda m: 2 ** m.tensor([3, 4]), "int64"),
    (lambda m: m.tensor([3, 4]).clamp(min=1.5), "float32"),
    (lambda m: m.where(m.tensor([True, False]), 1, 2.5), "float32"),
    (lambda m: m.where(m.tensor([True, False]), m.tensor([1, 2]), 2.5), "float32"),
    (lambda m: m.maximum(m.tensor([1]), m.tensor([1.5], dtype=m.float64)), "float64"),
    (lambda m: m.tensor([1, 2]).square(), "int64"),
    (lambda m: m.tensor([-1, 2], dtype=m.int8).abs(), "int8"),
    (lambda m: m.tensor([1.0, 2.0]).logical_and(m.tensor([1, 0])), "bool"),
    (lambda m: m.tensor([1, 2]).reciprocal(), "float32"),
    (lambda m: m.tensor([2, 3]).floor(), "int64"),
], ids=range(24))
def test_type_promotion_matches_pytorch(make, want):
    ours, theirs = make(interop), make(torch)
    assert str(ours.dtype) == want == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda m: m.tensor([1, 2]).__iadd__(2.5),
     "result type Float can't be cast to the desired output type Long"),
    (lambda m: m.tensor([True]).add_(1), "result type Long can't be cast to the desired output type Bool"),
    (lambda m: m.tensor([1, 2]).mul_(1.5), "result type Float can't be cast to the desired output type Long"),
    (lambda m: m.tensor([1, 2]).div_(2), "result type Float can't be cast to the desired output type Long"),
    (lambda m: m.tensor([1, 2]).exp_(), "result type Float can't be cast to the desired output type Long"),
    (lambda m: m.tensor([1, 2], dtype=m.int32).add_(m.tensor([1.0])),
     "can't be cast to the desired output type Int"),
], ids=range(6))
def test_inplace_result_type_errors_match_pytorch(make, message):
    for m in (torch, interop):
        with pytest.raises(RuntimeError, match=message):
            make(m)


def test_inplace_keeps_the_tensor_dtype():
    for m in (torch, interop):
        h = m.tensor([1.0, 2.0], dtype=m.float16)
        h += m.tensor([0.5, 0.25], dtype=m.float64)
        i = m.tensor([7, -7], dtype=m.int8)
        i += m.tensor([1, 1])
        i //= 2
        i %= 3
        i **= 2
        assert str(h.dtype).endswith("float16") and str(i.dtype).endswith("int8")
        assert h.tolist() == [1.5, 2.25] and i.tolist() == [1, 0]


# ---- errors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, exc, message", [
    (lambda m: m.tensor([1.0]) & m.tensor([1.0]), RuntimeError,
     "bitwise_and_cpu\" not implemented for 'Float'"),
    (lambda m: ~m.tensor([1.0]), TypeError, "only implemented on integer and Boolean-type tensors"),
    (lambda m: m.tensor([True]) - m.tensor([True]), RuntimeError,
     "Subtraction, the `-` operator, with two bool"),
    (lambda m: -m.tensor([True]), RuntimeError,
     "Negation, the `-` operator, on a bool tensor is not supported"),
    (lambda m: m.tensor([2]) ** -1, RuntimeError, "Integers to negative integer powers are not allowed."),
    (lambda m: m.div(m.tensor([1.0]), 2, rounding_mode="x"), RuntimeError,
     "expected rounding_mode to be one of"),
    (lambda m: m.where(m.tensor([1.0]), 1.0, 2.0), RuntimeError,
     "where expected condition to be a boolean tensor"),
    (lambda m: m.clamp(m.tensor([1.0])), RuntimeError, "At least one of 'min' or 'max' must not be None"),
    (lambda m: nnf(m.tensor([1.0])).gelu(m.tensor([1.0]), approximate="x"), RuntimeError,
     "approximate argument must be either none or tanh"),
    (lambda m: nnf(m.tensor([1])).silu(m.tensor([1])), RuntimeError, "not implemented for 'Long'"),
    (lambda m: m.tensor([1]).add(1, alpha=0.5), RuntimeError, "argument alpha must not be a floating point"),
    (lambda m: m.tensor([1.0, 2.0]).fill_(m.tensor([3.0])), RuntimeError, "fill_ only supports 0-dimension"),
    (lambda m: m.tensor([1.0, 2.0]).copy_(m.tensor([1.0, 2.0, 3.0])), RuntimeError, "must match the size"),
    (lambda m: m.tensor([5]) // 0, ZeroDivisionError, "by zero"),
    (lambda m: m.tensor([5]) % m.tensor([0]), ZeroDivisionError, "by zero"),
    (lambda m: m.tensor([1.0]).__add__([1]) + 1, TypeError, "unsupported operand"),
], ids=range(16))
def test_errors(fn, exc, message):
    with pytest.raises(exc, match=message):
        fn(interop)
    if exc is not ZeroDivisionError:  # PyTorch raises RuntimeError("ZeroDivisionError") there
        with pytest.raises(exc):
            fn(torch)


def test_comparison_with_non_tensors_is_python_equality():
    t = interop.tensor([1.0])
    assert (t == None) is False and (t != None) is True  # noqa: E711 - the operator is what is tested
    assert (t == "a") is False


def test_float_division_by_zero_is_silent_and_ieee():
    a = interop.tensor([1.0, -1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = (a / 0).numpy()
        r = (a % 0).numpy()
        lg = interop.tensor([0.0, -1.0]).log().numpy()
    assert q[0] == np.inf and q[1] == -np.inf and np.isnan(q[2]) and np.isnan(r).all()
    assert lg[0] == -np.inf and np.isnan(lg[1])


# ---- gradients at kinks and special points follow PyTorch --------------------------------------------------

@pytest.mark.parametrize("fn, data", [
    (lambda m, x: x.relu(), [0.0, -1.0, 2.0]),
    (lambda m, x: x.abs(), [0.0, -1.0, 2.0]),
    (lambda m, x: x.sign(), [0.0, -1.0, 2.0]),
    (lambda m, x: x.clamp(-1, 2), [-1.0, 2.0, 0.5, 3.0]),
    (lambda m, x: x.clamp(min=-1), [-1.0, 2.0, -3.0]),
    (lambda m, x: nnf(x).hardtanh(x, -1.0, 2.0), [-1.0, 2.0, 0.5, 3.0]),
    (lambda m, x: nnf(x).leaky_relu(x, 0.1), [0.0, -1.0, 2.0]),
    (lambda m, x: nnf(x).elu(x, 0.7), [0.0, -1.0, 2.0]),
    (lambda m, x: nnf(x).gelu(x), [0.0, -1.0, 2.0]),
    (lambda m, x: x.sqrt(), [0.0, 4.0]),
    (lambda m, x: x**0.0, [0.0, 2.0]),
    (lambda m, x: x.round(), [0.5, 1.5, -2.2]),
    (lambda m, x: x.floor() + x.ceil() + x.trunc(), [0.5, 1.5, -2.2]),
    (lambda m, x: x.div(1.5, rounding_mode="floor"), [0.5, 1.5, -2.2]),
], ids=range(14))
def test_gradient_at_special_points(fn, data):
    mine, theirs = _both(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(interop, mine).sum().backward()
    fn(torch, theirs).sum().backward()
    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda m, a, b: m.maximum(a, b), lambda m, a, b: m.minimum(a, b), lambda m, a, b: a**b,
    lambda m, a, b: m.remainder(a, b), lambda m, a, b: m.fmod(a, b), lambda m, a, b: a.clamp(b, b + 1),
    lambda m, a, b: a.clamp(min=b), lambda m, a, b: m.where(a > b, a, b * 2),
], ids=["maximum", "minimum", "pow", "remainder", "fmod", "clamp_tensor", "clamp_tensor_min", "where"])
def test_binary_gradients_at_ties_and_zeros(fn):
    a_i, a_t = _both([[0.0, 0.0, 2.0, 1.0], [3.0, -1.5, 2.0, 0.5]])
    b_i, b_t = _both([2.0, 0.0, -1.0, 1.0])
    fn(interop, a_i, b_i).sum().backward()
    fn(torch, a_t, b_t).sum().backward()
    np.testing.assert_allclose(a_i.grad.numpy(), a_t.grad.numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(b_i.grad.numpy(), b_t.grad.numpy(), rtol=1e-12, equal_nan=True)


# ---- higher-order gradients --------------------------------------------------------------------------------

SECOND = {
    "tanh": lambda m, x: x.tanh(), "sigmoid": lambda m, x: x.sigmoid(),
    "gelu": lambda m, x: nnf(x).gelu(x), "gelu_tanh": lambda m, x: nnf(x).gelu(x, approximate="tanh"),
    "silu": lambda m, x: nnf(x).silu(x), "softplus": lambda m, x: nnf(x).softplus(x, 1.5),
    "mish": lambda m, x: nnf(x).mish(x), "elu": lambda m, x: nnf(x).elu(x),
    "erf": lambda m, x: x.erf(), "exp": lambda m, x: x.exp(), "log": lambda m, x: (x * x + 1).log(),
    "rsqrt": lambda m, x: (x * x + 1).rsqrt(), "tan": lambda m, x: (x * 0.5).tan(),
    "pow": lambda m, x: (x * x + 1) ** 1.5, "sin_cos": lambda m, x: x.sin() * x.cos(),
    "reciprocal": lambda m, x: (x * x + 1).reciprocal(), "expm1_log1p": lambda m,
        x: x.expm1() + (x * x).log1p(),
    "div": lambda m, x: x / (x * x + 1), "maximum": lambda m, x: m.maximum(x * x * x, x),
}


@pytest.mark.parametrize("name", SECOND)
def test_second_and_third_derivatives_match_pytorch(name):
    fn = SECOND[name]
    data = [-2.5, -1.3, -0.4, 0.3, 0.9, 2.1]
    mine, theirs = _both(data)
    results = []
    for m, x in ((interop, mine), (torch, theirs)):
        (d1,) = m.autograd.grad(fn(m, x).sum(), x, create_graph=True)
        (d2,) = m.autograd.grad(d1.sum(), x, create_graph=True)
        (d3,) = m.autograd.grad(d2.sum(), x)
        results.append([np.asarray(d.detach().numpy()) for d in (d1, d2, d3)])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _unary_cases() -> list[OpCase]:
    return [c for c in CASES if c.grad and issubclass(ew.Op.registry[c.op], ew._Unary)
            and any(np.asarray(a).dtype.kind == "f" for a in c.inputs)]


@pytest.mark.parametrize("case", _unary_cases(), ids=lambda c: c.id)
def test_array_and_tensor_backward_agree(case):
    """The fast array-path gradient and the differentiable create_graph one come from the same formula."""
    def grads(create_graph):
        xs = [interop.tensor(np.asarray(a),
              requires_grad=np.asarray(a).dtype.kind == "f") for a in case.inputs]
        diff = [x for x in xs if x.requires_grad]
        out = case.fn(*xs)
        w = interop.tensor(np.random.default_rng(0).standard_normal(out.shape))
        return [g.detach().numpy() for g in interop.autograd.grad((out * w).sum(), diff,
                create_graph=create_graph)]

    for fast, graph in zip(grads(False), grads(True)):
        np.testing.assert_allclose(fast, graph, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("case", [c for c in _unary_cases() if c.name in {
    "Tanh", "Sigmoid", "gelu_exact", "gelu_tanh", "Silu", "Softplus", "Mish", "Elu", "Erf", "LeakyRelu",
        "Rsqrt",
    "Tan", "pow_negative_fraction"}], ids=lambda c: c.id)
def test_second_derivative_matches_finite_differences(case):
    def first(x):
        with interop.enable_grad():  # gradcheck evaluates fn under no_grad for its finite differences
            (d,) = interop.autograd.grad(case.fn(x).sum(), x, create_graph=True)
        return d

    x = interop.tensor(np.asarray(case.inputs[0], dtype=np.float64), requires_grad=True)
    assert gradcheck(first, [x], atol=1e-5, rtol=1e-3)


# ---- numerics ----------------------------------------------------------------------------------------------

EXTREME = [-1e4, -800.0, -100.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 100.0, 800.0, 1e4]


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "silu", "mish", "elu", "gelu", "gelu_tanh", "tanh",
                                  "erf", "log_sigmoid"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extremes_are_stable_silent_and_match_pytorch(name, dtype):
    def fn(x):
        if name == "gelu_tanh":
            return nnf(x).gelu(x, approximate="tanh")
        if name == "log_sigmoid":
            return x.sigmoid().log()
        return getattr(nnf(x), name)(x) if hasattr(nnf(x), name) else getattr(x, name)()

    mine, theirs = _both(EXTREME, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fn(mine)
        y.sum().backward()
    w = fn(theirs)
    w.sum().backward()
    tol = {"rtol": 1e-5, "atol": 1e-30} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-300}
    np.testing.assert_allclose(y.detach().numpy(), w.detach().numpy(), **tol)
    np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), **tol)


def test_erf_accuracy():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-300, 1 - 1e-16, 1.0, 6.0, 8.0, 27.0]])
    want = np.array([math.erf(v) for v in x])
    got = interop.tensor(x).erf().numpy()
    assert np.max(np.abs(got - want)) <= 3e-16
    assert np.signbit(got[x == 0]).tolist() == np.signbit(x[x == 0]).tolist()
    got32 = interop.tensor(x, dtype=interop.float32).erf().numpy()
    assert np.max(np.abs(got32 - want)) < 5e-7
    special = interop.tensor([np.inf, -np.inf, np.nan]).erf().numpy()
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_computes_in_float32_and_keeps_its_dtype(dtype):
    x32 = np.linspace(-3, 3, 13, dtype=np.float32)
    special = {"clamp": lambda t: t.clamp(-1.5, 0.5), "rsqrt": lambda t: (t.abs() + 0.1).rsqrt()}
    for name in ["exp", "sigmoid", "tanh", "erf", "gelu", "silu", "softplus", "mish", "elu", "leaky_relu",
                 "hardtanh", "rsqrt", "square", "relu", "clamp"]:
        x = interop.tensor(x32, dtype=dtype, requires_grad=True)
        fn = special.get(name, getattr(ew, name))
        y = fn(x)
        y.sum().backward()
        assert y.dtype == x.dtype and x.grad.dtype == x.dtype, name
        ref = fn(interop.tensor(np.asarray(x.detach().numpy(), np.float32))).numpy()
        np.testing.assert_allclose(y.detach().numpy().astype(np.float32), ref, rtol=1e-2, atol=1e-2,
                                   err_msg=name)


# ---- in-place semantics ------------------------------------------------------------------------------------

def test_inplace_on_saved_output_raises_like_pytorch():
    for m in (torch, interop):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_on_leaf_that_requires_grad_raises():
    for m in (torch, interop):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError,
                           match="a leaf Variable that requires grad is being used in an in-place"):
            x.mul_(2)
        with m.no_grad():  # the optimizer's way
            x.mul_(2)
            x.sub_(m.tensor([0.5, 0.5]), alpha=2)
        assert x.tolist() == [1.0, 3.0] and x._version == 2


def test_inplace_chain_on_non_leaf_matches_pytorch():
    def run(m, x, b):
        y = x * 2
        y.mul_(3)
        y += b
        y.clamp_(max=1.5)  # backward reads clamp_'s input: it keeps its own copy (PyTorch's original_self)
        y.sub_(b, alpha=0.5)
        y.div_(2)
        y.neg_()
        y.pow_(2)
        y.exp_()
        return y

    xi, xt = _both([[-1.0, 0.3, 0.7], [0.9, -0.2, 1.4]])
    bi, bt = _both([0.5, -0.25, 0.1])
    yi, yt = run(interop, xi, bi), run(torch, xt, bt)
    yi.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(yi.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xi.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bi.grad.numpy(), bt.grad.numpy(), rtol=1e-12)
    assert yi._version == yt._version


def test_inplace_on_a_saved_value_raises_as_in_pytorch():
    for m in (torch, interop):
        x = m.tensor([0.5, 1.5], requires_grad=True)
        y = x * 2
        y.sigmoid_()
        y.pow_(2)  # sigmoid's backward needs its output, which pow_ overwrote
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_writes_through_views_and_shares_the_version():
    base = interop.arange(6.0)
    view = base.reshape(2, 3)
    view.add_(1)
    view.clamp_(max=4.0)
    detached = base.detach()
    detached[0:1].zero_() if hasattr(interop.Tensor, "__getitem__") else detached.mul_(1)
    assert base.tolist()[1:] == [2.0, 3.0, 4.0, 4.0, 4.0]
    assert base._version == view._version == detached._version >= 3
    t = interop.tensor([1.0, 2.0])
    before = id(t)
    t += 1
    t *= t
    assert id(t) == before and t.tolist() == [4.0, 9.0]


def test_readonly_tensors_refuse_inplace_ops():
    t = interop.tensor([1.0, 2.0])
    t._readonly = True
    for op in (lambda: t.add_(1), lambda: t.relu_(), lambda: t.copy_(interop.tensor([3.0])),
               lambda: t.zero_()):
        with pytest.raises(RuntimeError, match="read-only"):
            op()
    assert t.tolist() == [1.0, 2.0]


def test_copy_fill_zero_match_pytorch():
    for m in (torch, interop):
        dst = m.zeros(2, 3)
        src = m.tensor([1.5, -2.5, 3.0], dtype=m.float64, requires_grad=True)
        y = dst * 1
        y.copy_(src)
        (y * m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum().backward()
        assert src.grad.tolist() == [5.0, 7.0, 9.0] and str(src.grad.dtype).endswith("float64")
        ints = m.tensor([[1, 2, 3], [4, 5, 6]])
        ints.copy_(m.tensor([3.7, -2.7, 0.2]))
        assert ints.tolist() == [[3, -2, 0], [3, -2, 0]]
        v = m.tensor(2.0, requires_grad=True)
        z = m.ones(4) * 1
        z.fill_(v)
        (z * 3).sum().backward()
        assert v.grad.item() == 12.0
        z2 = m.ones(3, dtype=m.int32)
        z2.fill_(2.9)
        assert z2.tolist() == [2, 2, 2] and z2.zero_().tolist() == [0, 0, 0]


# ---- ONNX lowering at different opsets ---------------------------------------------------------------------

class _FakeBuilder:
    """Records node types; enough of the export builder's interface for the lowering choices tested here."""

    def __init__(self, opset: int, dtype=np.dtype("float32")):
        self.opset, self.types, self._dtype = opset, [], dtype

    def op(self, op_type, *inputs, outputs=1, **attrs):
        self.types.append(op_type)
        return f"v{len(self.types)}"

    def const(self, value, dtype=None):
        return "const"

    def dtype(self, v):
        return self._dtype

    def rank(self, v):
        return 1


@pytest.mark.parametrize("op, opset, dtype, want", [
    (ew.Gelu("none"), 20, "float32", ["Gelu"]),
    (ew.Gelu("tanh"), 21, "float32", ["Gelu"]),
    (ew.Gelu("none"), 18, "float32", ["Mul", "Erf", "Mul", "Add", "Mul"]),
    (ew.Gelu("tanh"), 19, "float32", ["Mul", "Mul", "Mul", "Add", "Mul", "Tanh", "Mul", "Add", "Mul"]),
    (ew.Silu(), 24, "float32", ["Sigmoid", "Mul"]),
    (ew.Softplus(), 21, "float32", ["Softplus"]),
    (ew.Softplus(2.0, 1.0), 21, "float32", ["Mul", "Softplus", "Div", "Greater", "Where"]),
    (ew.Mish(), 18, "float32", ["Mish"]),
    (ew.Relu(), 21, "int64", ["Max"]),
    (ew.Hardtanh(-1.0, 1.0), 21, "float32", ["Clip"]),
    (ew.Round(0), 21, "float32", ["Round"]),
    (ew.Div("trunc"), 21, "int64", ["Div"]),
], ids=range(12))
def test_onnx_lowering_choices(op, opset, dtype, want):
    g = _FakeBuilder(opset, np.dtype(dtype))
    op.to_onnx(g, *["x"] * (2 if isinstance(op, ew.Div) else 1))
    assert g.types == want


# ---- CUDA (cupy) paths -------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("case", [c for c in CASES if c.op not in {"ToDevice"}], ids=lambda c: c.id)
def test_cuda_matches_cpu(case):
    def run(dev):
        arrays = [np.asarray(a) for a in case.inputs]
        xs = [interop.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, device=dev) for a in arrays]
        for i in case.float_inputs():
            if case.grad:
                xs[i].requires_grad_()
        outs = case.fn(*xs)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        diff = [x for x in xs if x.requires_grad]
        gs = []
        if diff and any(o.requires_grad for o in outs):
            loss = sum((o * 1.0).sum() for o in outs if o.requires_grad)
            gs = [g for g in interop.autograd.grad(loss, diff, allow_unused=True) if g is not None]
        return [o.detach().cpu().numpy() for o in outs], [g.cpu().numpy() for g in gs]

    (out_c, g_c), (out_g, g_g) = run("cpu"), run("cuda")
    for a, b in zip(out_c + g_c, out_g + g_g):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


@pytest.mark.gpu
def test_cuda_copy_across_devices_and_erf():
    dst = interop.zeros(2, 3, device="cuda")
    src = interop.tensor([1.0, 2.0, 3.0], dtype=interop.float64, requires_grad=True)
    y = dst * 1
    y.copy_(src)
    assert y.device.type == "cuda" and y.cpu().tolist() == [[1.0, 2.0, 3.0]] * 2
    y.sum().backward()
    assert src.grad.device.type == "cpu" and src.grad.tolist() == [2.0, 2.0, 2.0]
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(interop.tensor(x, device="cuda").erf().cpu().numpy(),
                               [math.erf(v) for v in x], atol=1e-15)
