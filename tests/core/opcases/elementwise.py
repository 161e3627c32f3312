"""OpCases of the elementwise family. Each `fn` runs on interop and torch tensors alike: `ns(t)` is the
tensor's framework (interop or torch), `nnf(t)` its functional-activation namespace (torch.nn.functional for
torch). Inputs of non-smooth ops stay away from their kinks so finite differences are meaningful."""

from __future__ import annotations

import numpy as np

import interop
from interop import device
from interop.ops import elementwise as ew
from interop.ops.elementwise import to_device_op

from . import OpCase, pos, rnd


def ns(t):
    if isinstance(t, interop.Tensor):
        return interop
    import torch

    return torch


def nnf(t):
    if isinstance(t, interop.Tensor):
        return ew
    import torch.nn.functional

    return torch.nn.functional


def away(*shape: int, gap: float = 0.1, seed: int = 0, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Data at least `gap` away from 0 (for relu, abs, sign, ... and their kinks)."""
    x = rnd(*shape, low=low, high=high, seed=seed)
    return np.where(np.abs(x) < gap, np.copysign(gap, x) + x, x)


INTS = np.array([[-7, 7, 5], [-5, 3, -3]])
DIVISORS = np.array([2, -3, 4])
BOOLS = np.array([[True, False, True], [False, False, True]])
BOOLS2 = np.array([True, True, False])
SPECIAL = np.array([1.5, np.nan, np.inf, -np.inf, 0.0, -2.0])


def _erf(x):
    from math import erf

    return np.vectorize(erf)(x)


def _gelu(x, approximate="none"):
    if approximate == "none":
        return 0.5 * x * (1 + _erf(x / np.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


CASES = [
    # ---- arithmetic
    OpCase("Add", lambda a, b: a + b, [rnd(3, 4), rnd(4)], np.add, name="add_broadcast"),
    OpCase("Add", lambda a: a + 2.5, [rnd(2, 3)], lambda a: a + 2.5, name="add_scalar"),
    OpCase("Add", lambda a, b: 1 + a + b, [np.array(0.7), rnd(2, 3)], lambda a, b: 1 + a + b, name="radd_0d"),
    OpCase("Add", lambda a, b: ns(a).add(a, b, alpha=-2), [rnd(2, 3), rnd(3, seed=1)], lambda a, b: a - 2 * b,
           name="add_alpha"),
    OpCase("Add", lambda a, b: a + b, [INTS, DIVISORS], np.add, name="add_int"),
    OpCase("Add", lambda a, b: a + b, [BOOLS, BOOLS2], np.logical_or, name="add_bool"),
    OpCase("Sub", lambda a, b: a - b, [rnd(3, 1), rnd(1, 4)], np.subtract, name="sub_broadcast"),
    OpCase("Sub", lambda a: 3 - a, [rnd(4)], lambda a: 3 - a, name="rsub_scalar"),
    OpCase("Mul", lambda a, b: a * b, [rnd(2, 3), rnd(2, 3, seed=1)], np.multiply),
    OpCase("Mul", lambda a, b: a * b, [rnd(2, 1, 3), rnd(4, 1)], np.multiply, name="mul_broadcast"),
    OpCase("Mul", lambda a: a * 3, [INTS], lambda a: a * 3, name="mul_int_scalar"),
    OpCase("Mul", lambda a, b: a * b, [BOOLS, BOOLS2], np.logical_and, name="mul_bool"),
    OpCase("Div", lambda a, b: a / b, [rnd(2, 3), pos(3)], np.divide),
    OpCase("Div", lambda a: 2 / a, [pos(2, 3)], lambda a: 2 / a, name="rdiv_scalar"),
    OpCase("Div", lambda a, b: a / b, [INTS, DIVISORS], lambda a, b: (a / b).astype(np.float32),
           name="div_int"),
    OpCase("Div", lambda a, b: a.div(b, rounding_mode="trunc"), [rnd(2, 3) * 5, away(3)],
           lambda a, b: np.trunc(a / b), name="div_trunc"),
    OpCase("Div", lambda a, b: a.div(b, rounding_mode="floor"), [rnd(2, 3) * 5, away(3)], np.floor_divide,
           name="div_floor"),
    OpCase("Div", lambda a, b: a.div(b, rounding_mode="trunc"), [INTS, DIVISORS], lambda a, b: np.fix(a / b),
           name="div_trunc_int"),
    OpCase("Div", lambda a, b: a // b, [INTS, DIVISORS], np.floor_divide, name="floor_divide_int"),
    OpCase("Div", lambda a: a // 0.75, [rnd(2, 3) * 3], lambda a: a // 0.75, grad=False,
           name="floor_divide_scalar"),  # PyTorch has no floor_divide derivative (interop's is 0, as for div)
    OpCase("Remainder", lambda a, b: a % b, [rnd(2, 3) * 5, away(3)], np.remainder),
    OpCase("Remainder", lambda a, b: a % b, [INTS, DIVISORS], np.remainder, name="remainder_int"),
    OpCase("Remainder", lambda a: a.remainder(-1.5), [rnd(2, 3) * 5], lambda a: np.remainder(a, -1.5),
           name="remainder_scalar"),
    OpCase("Fmod", lambda a, b: a.fmod(b), [rnd(2, 3) * 5, away(3)], np.fmod),
    OpCase("Fmod", lambda a, b: a.fmod(b), [INTS, DIVISORS], np.fmod, name="fmod_int"),
    OpCase("Pow", lambda a, b: a**b, [pos(2, 3), rnd(3)], np.power),
    OpCase("Pow", lambda a: 2**a, [rnd(2, 3)], lambda a: 2**a, name="rpow_scalar"),
    OpCase("Pow", lambda a, b: a**b, [np.abs(INTS), np.array([2, 0, 3])], np.power, name="pow_int"),
    OpCase("PowScalar", lambda a: a**2, [rnd(2, 3)], np.square),
    OpCase("PowScalar", lambda a: a**-1.5, [pos(4)], lambda a: a**-1.5, name="pow_negative_fraction"),
    OpCase("PowScalar", lambda a: a.pow(0.5), [pos(4)], np.sqrt, name="pow_half"),
    OpCase("PowScalar", lambda a: a.square(), [INTS], np.square, name="square_int"),
    OpCase("PowScalar", lambda a: a**2.5, [np.abs(INTS)], lambda a: (a**2.5).astype(np.float32),
           name="pow_int_float_exponent"),
    OpCase("Maximum", lambda a, b: a.maximum(b), [rnd(3, 4), rnd(4, seed=1)], np.maximum),
    OpCase("Minimum", lambda a, b: ns(a).minimum(a, b), [rnd(3, 4), rnd(3, 1, seed=1)], np.minimum),
    OpCase("Maximum", lambda a, b: a.maximum(b), [INTS, DIVISORS], np.maximum, name="maximum_int"),
    # ---- unary math
    OpCase("Neg", lambda a: -a, [rnd(5)], np.negative),
    OpCase("Neg", lambda a: -a, [INTS], np.negative, name="neg_int"),
    OpCase("Abs", lambda a: a.abs(), [away(2, 3)], np.abs),
    OpCase("Abs", lambda a: abs(a), [INTS], np.abs, name="abs_int"),
    OpCase("Exp", lambda a: a.exp(), [rnd(2, 3)], np.exp),
    OpCase("Exp", lambda a: a.exp(), [np.array(0.7)], np.exp, name="exp_0d"),
    OpCase("Exp", lambda a: a.exp(), [INTS], lambda a: np.exp(a).astype(np.float32), name="exp_int",
           rtol=1e-5),
    OpCase("Expm1", lambda a: a.expm1(), [rnd(2, 3)], np.expm1),
    OpCase("Log", lambda a: a.log(), [pos(2, 3)], np.log),
    OpCase("Log1p", lambda a: a.log1p(), [rnd(2, 3, low=-0.5, high=3)], np.log1p),
    OpCase("Sqrt", lambda a: a.sqrt(), [pos(2, 3)], np.sqrt),
    OpCase("Sqrt", lambda a: a.sqrt(), [np.abs(INTS)], lambda a: np.sqrt(a).astype(np.float32),
           name="sqrt_int"),
    OpCase("Rsqrt", lambda a: a.rsqrt(), [pos(2, 3)], lambda a: 1 / np.sqrt(a)),
    OpCase("Reciprocal", lambda a: a.reciprocal(), [away(2, 3)], np.reciprocal),
    OpCase("Sin", lambda a: a.sin(), [rnd(2, 3)], np.sin),
    OpCase("Cos", lambda a: a.cos(), [rnd(2, 3)], np.cos),
    OpCase("Tan", lambda a: a.tan(), [rnd(2, 3, low=-1.2, high=1.2)], np.tan),
    OpCase("Tanh", lambda a: a.tanh(), [rnd(2, 3)], np.tanh),
    OpCase("Tanh", lambda a: a.tanh(), [np.array([-30.0, -3, 0.5, 3, 30])], np.tanh, name="tanh_saturated"),
    OpCase("Erf", lambda a: a.erf(), [rnd(3, 4, low=-3, high=3)], _erf),
    # ---- activations
    OpCase("Sigmoid", lambda a: a.sigmoid(), [rnd(2, 3, low=-4, high=4)], _sigmoid),
    OpCase("Sigmoid", lambda a: a.sigmoid(), [np.array([-800.0, -30, 0, 30, 800])], _sigmoid,
           name="sigmoid_extreme"),
    OpCase("Relu", lambda a: a.relu(), [away(3, 4)], lambda a: np.maximum(a, 0)),
    OpCase("Relu", lambda a: a.relu(), [INTS], lambda a: np.maximum(a, 0), name="relu_int"),
    OpCase("LeakyRelu", lambda a: nnf(a).leaky_relu(a, 0.2), [away(3, 4)], lambda a: np.where(a > 0, a,
           0.2 * a)),
    OpCase("LeakyRelu", lambda a: nnf(a).leaky_relu(a, -1.5), [away(3, 4)],
           lambda a: np.where(a > 0, a, -1.5 * a), name="leaky_relu_steep"),
    OpCase("Elu", lambda a: nnf(a).elu(a, 0.7), [away(3, 4, low=-3, high=3)],
           lambda a: np.where(a > 0, a, 0.7 * np.expm1(a))),
    OpCase("Gelu", lambda a: nnf(a).gelu(a), [rnd(3, 4, low=-4, high=4)], _gelu, name="gelu_exact"),
    OpCase("Gelu", lambda a: nnf(a).gelu(a, approximate="tanh"), [rnd(3, 4, low=-4, high=4)],
           lambda a: _gelu(a, "tanh"), name="gelu_tanh"),
    OpCase("Silu", lambda a: nnf(a).silu(a), [rnd(3, 4, low=-5, high=5)], lambda a: a * _sigmoid(a)),
    OpCase("Softplus", lambda a: nnf(a).softplus(a), [rnd(3, 4, low=-5, high=5)], _softplus),
    OpCase("Softplus", lambda a: nnf(a).softplus(a, 2.0, 3.0), [away(3, 4, low=-3, high=3) + 0.73],
           lambda a: _softplus(a, 2.0, 3.0), name="softplus_beta_threshold"),
    OpCase("Mish", lambda a: nnf(a).mish(a), [rnd(3, 4, low=-5, high=5)],
           lambda a: a * np.tanh(_softplus(a))),
    OpCase("Hardtanh", lambda a: nnf(a).hardtanh(a), [away(3, 4) + 1.05], lambda a: np.clip(a, -1, 1)),
    OpCase("Hardtanh", lambda a: nnf(a).hardtanh(a, -0.5, 2.0), [INTS], lambda a: np.clip(a, 0, 2),
           name="hardtanh_int"),
    # ---- clamp and where
    OpCase("Clamp", lambda a: a.clamp(-0.5, 0.75), [away(3, 4) + 0.55], lambda a: np.clip(a, -0.5, 0.75)),
    OpCase("Clamp", lambda a: a.clamp(min=0.25), [away(3, 4) + 0.3], lambda a: np.maximum(a, 0.25),
           name="clamp_min_only"),
    OpCase("Clamp", lambda a: ns(a).clip(a, max=2), [INTS], lambda a: np.minimum(a, 2), name="clip_int"),
    OpCase("Clamp", lambda a: a.clamp(min=1.5), [INTS], lambda a: np.maximum(a, 1.5).astype(np.float32),
           name="clamp_int_float_bound"),
    OpCase("ClampTensor", lambda a, lo, hi: a.clamp(lo, hi), [rnd(3, 4), rnd(4, seed=1) - 1, rnd(3, 1,
           seed=2) + 1],
           lambda a, lo, hi: np.minimum(np.maximum(a, lo), hi)),
    OpCase("ClampTensor", lambda a, lo: a.clamp(min=lo), [rnd(3, 4), rnd(4, seed=1)], np.maximum,
           name="clamp_tensor_min_only"),
    OpCase("ClampTensor", lambda a, lo, hi: a.clamp(lo, hi), [rnd(3, 4), np.array(-0.5), np.array(0.5)],
           lambda a, lo, hi: np.clip(a, lo, hi), name="clamp_tensor_0d"),
    OpCase("Where", lambda c, a, b: ns(a).where(c, a, b), [BOOLS, rnd(2, 3), rnd(3, seed=1)], np.where),
    OpCase("Where", lambda c, a: ns(a).where(c, a, 0.0), [BOOLS2, rnd(2, 3)], lambda c, a: np.where(c, a, 0),
           name="where_scalar"),
    OpCase("Where", lambda c, a: a.where(c, -1), [BOOLS2, INTS], lambda c, a: np.where(c, a, -1),
           name="where_method_int"),
    # ---- comparisons, logic and tests
    OpCase("Eq", lambda a, b: a == b, [INTS, np.array([-7, 3, -3])], np.equal),
    OpCase("Ne", lambda a, b: a != b, [INTS, np.array([-7, 3, -3])], np.not_equal),
    OpCase("Lt", lambda a, b: a < b, [rnd(3, 4), rnd(4, seed=1)], np.less, grad=False),
    OpCase("Le", lambda a: a <= 0.5, [rnd(3, 4)], lambda a: a <= 0.5, grad=False),
    OpCase("Gt", lambda a, b: a > b, [INTS, DIVISORS], np.greater),
    OpCase("Ge", lambda a, b: a.greater_equal(b), [rnd(3, 4), rnd(4, seed=1)], np.greater_equal, grad=False),
    OpCase("Lt", lambda a: a < 1.5, [INTS], lambda a: a < 1.5, name="lt_int_float_scalar"),
    OpCase("And", lambda a, b: a & b, [BOOLS, BOOLS2], np.logical_and, grad=False),
    OpCase("And", lambda a, b: a & b, [INTS, DIVISORS], np.bitwise_and, name="bitwise_and_int"),
    OpCase("And", lambda a, b: a.logical_and(b), [rnd(2, 3), INTS], np.logical_and, grad=False,
           name="logical_and_mixed"),
    OpCase("Or", lambda a, b: a | b, [BOOLS, BOOLS2], np.logical_or),
    OpCase("Or", lambda a, b: ns(a).bitwise_or(a, b), [INTS, DIVISORS], np.bitwise_or, name="bitwise_or_int"),
    OpCase("Xor", lambda a, b: a ^ b, [BOOLS, BOOLS2], np.logical_xor),
    OpCase("Xor", lambda a, b: a.logical_xor(b), [INTS, DIVISORS], np.logical_xor, name="logical_xor_int"),
    OpCase("Not", lambda a: ~a, [BOOLS], np.logical_not),
    OpCase("Not", lambda a: ~a, [INTS], np.invert, name="bitwise_not_int"),
    OpCase("Not", lambda a: a.logical_not(), [rnd(2, 3)], np.logical_not, grad=False,
           name="logical_not_float"),
    OpCase("IsNan", lambda a: a.isnan(), [SPECIAL], np.isnan, grad=False),
    OpCase("IsInf", lambda a: a.isinf(), [SPECIAL], np.isinf, grad=False),
    OpCase("IsFinite", lambda a: a.isfinite(), [SPECIAL], np.isfinite, grad=False),
    OpCase("IsFinite", lambda a: a.isfinite(), [INTS], np.isfinite, name="isfinite_int"),
    # ---- sign and rounding: zero gradients, inputs away from the jumps
    OpCase("Sign", lambda a: a.sign(), [away(3, 4)], np.sign),
    OpCase("Sign", lambda a: a.sign(), [INTS], np.sign, name="sign_int"),
    OpCase("Floor", lambda a: a.floor(), [rnd(3, 4) * 3 + 0.05], np.floor),
    OpCase("Ceil", lambda a: a.ceil(), [rnd(3, 4) * 3 + 0.05], np.ceil),
    OpCase("Trunc", lambda a: a.trunc(), [rnd(3, 4) * 3 + 0.05], np.trunc),
    OpCase("Round", lambda a: a.round(), [np.array([0.5, 1.5, 2.5, -0.5, -1.7, 3.2])], np.round, grad=False,
           name="round_half_even"),
    OpCase("Round", lambda a: a.round(decimals=1), [rnd(3, 4) * 3 + 0.013], lambda a: np.round(a, 1),
           name="round_decimals"),
    OpCase("Round", lambda a: a.round(decimals=-1), [rnd(3, 4) * 300 + 1.3], lambda a: np.round(a, -1),
           name="round_negative_decimals"),
    # ---- casts and copies
    OpCase("Cast", lambda a: a.double() * 2, [rnd(4)], lambda a: a * 2, name="cast_to_float64"),
    OpCase("Cast", lambda a: a.long(), [rnd(4) * 3], lambda a: np.trunc(a).astype(np.int64), grad=False,
           name="cast_to_int64"),
    OpCase("Clone", lambda a: a.clone(), [rnd(3)], np.copy),
    OpCase("ToDevice", lambda a: to_device_op(a, device("cpu")), [rnd(3)], np.copy,
           torch_fn=lambda a: a.to("cpu"),
           name="to_device_cpu"),
    OpCase("Copy", lambda a, b: a.clone().copy_(b), [rnd(2, 3), rnd(3, seed=1)],
           lambda a, b: np.broadcast_to(b, a.shape), grad_inputs=(1,), name="copy_broadcast"),
    OpCase("Copy", lambda a, b: a.clone().copy_(b), [INTS, rnd(2, 3) * 4], lambda a,
           b: np.trunc(b).astype(a.dtype),
           grad=False, name="copy_float_into_int"),
    OpCase("Copy", lambda a, v: a.clone().fill_(v) * 2, [rnd(2, 3), np.array(1.25)],
           lambda a, v: np.full(a.shape, 2.5), grad_inputs=(1,), name="fill_tensor"),
    # ---- in-place forms record the same ops
    OpCase("Mul", lambda a, b: a.clone().mul_(b).add_(1), [rnd(2, 3), rnd(3, seed=1)], lambda a, b: a * b + 1,
           name="inplace_mul_add"),
    OpCase("Sigmoid", lambda a: (a * 1).sigmoid_(), [rnd(2, 3)], _sigmoid, name="inplace_sigmoid"),
]
