"""Tensor basics: creation, dtypes and PyTorch's promotion, devices, conversions, repr."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop import dtypes

torch = pytest.importorskip("torch")

DT = {"bool": (interop.bool, torch.bool), "uint8": (interop.uint8, torch.uint8), "int8": (interop.int8, torch.int8),
      "int16": (interop.int16, torch.int16), "int32": (interop.int32, torch.int32),
      "int64": (interop.int64, torch.int64), "float16": (interop.float16, torch.float16),
      "bfloat16": (interop.bfloat16, torch.bfloat16), "float32": (interop.float32, torch.float32),
      "float64": (interop.float64, torch.float64)}


@pytest.mark.parametrize("a", list(DT))
@pytest.mark.parametrize("b", list(DT))
def test_promote_types_matches_pytorch(a, b):
    assert dtypes.name(interop.promote_types(DT[a][0], DT[b][0])) == \
        str(torch.promote_types(DT[a][1], DT[b][1])).removeprefix("torch.")


@pytest.mark.parametrize("dt", list(DT))
@pytest.mark.parametrize("other", [2, 2.5, True, "0d_f64", "0d_i32"])
def test_result_type_with_scalars_and_0d_matches_pytorch(dt, other):
    mine_t = interop.zeros(3, dtype=DT[dt][0])
    theirs_t = torch.zeros(3, dtype=DT[dt][1])
    if other == "0d_f64":
        mine_o, theirs_o = interop.tensor(1.0, dtype=interop.float64), torch.tensor(1.0, dtype=torch.float64)
    elif other == "0d_i32":
        mine_o, theirs_o = interop.tensor(1, dtype=interop.int32), torch.tensor(1, dtype=torch.int32)
    else:
        mine_o = theirs_o = other
    got = dtypes.name(interop.result_type(mine_t.data, mine_o.data if isinstance(mine_o, interop.Tensor)
                                          else mine_o))
    assert got == str(torch.result_type(theirs_t, theirs_o)).removeprefix("torch.")


def test_creation_defaults_follow_pytorch():
    assert interop.tensor([1, 2]).dtype == interop.int64
    assert interop.tensor([1.0, 2]).dtype == interop.float32
    assert interop.tensor([True]).dtype == interop.bool
    assert interop.zeros(2, 3).shape == (2, 3) and interop.ones((2,)).dtype == interop.float32
    assert interop.arange(5).dtype == interop.int64 and interop.arange(0, 1, 0.25).shape == (4,)
    np.testing.assert_allclose(interop.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5), rtol=1e-6)
    np.testing.assert_array_equal(interop.eye(3).numpy(), np.eye(3))
    assert interop.full((2,), 7).dtype == interop.int64 and interop.full((2,), 7.0).dtype == interop.float32
    x = interop.randn(4, 5, dtype=interop.float64)
    assert interop.zeros_like(x).dtype == interop.float64 and interop.ones_like(x).shape == (4, 5)
    assert interop.randint(0, 10, (3,)).dtype == interop.int64
    assert interop.tensor([1.0], requires_grad=True).requires_grad


def test_manual_seed_makes_random_reproducible():
    interop.manual_seed(3)
    a = interop.randn(5)
    interop.manual_seed(3)
    b = interop.randn(5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    u = interop.rand(1000).numpy()
    assert u.min() >= 0 and u.max() < 1


def test_as_tensor_shares_numpy_memory_and_tensor_copies():
    a = np.arange(4, dtype=np.float32)
    assert interop.as_tensor(a).data_ptr() == a.ctypes.data
    assert interop.tensor(a).data_ptr() != a.ctypes.data


def test_conversions():
    t = interop.tensor([[1.5, 2.5]])
    assert t.tolist() == [[1.5, 2.5]]
    assert interop.tensor(3.5).item() == 3.5 and float(interop.tensor([2.0])) == 2.0
    assert int(interop.tensor(7)) == 7 and bool(interop.tensor([1]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(interop.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        interop.tensor([1, 2]).item()
    with pytest.raises(RuntimeError, match="requires grad"):
        interop.tensor([1.0], requires_grad=True).numpy()
    assert np.asarray(t).shape == (1, 2)
    assert t.to(interop.float64).dtype == interop.float64 and t.double().dtype == interop.float64
    assert t.to("cpu") is t and t.to("cpu", interop.float16).dtype == interop.float16
    assert interop.tensor([1.5], dtype=interop.bfloat16).tolist() == [1.5]


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="floating point"):
        interop.tensor([1, 2]).requires_grad_()


def test_device_parsing():
    assert interop.device("cuda:1") == interop.Device("cuda", 1)
    assert str(interop.device("cuda")) == "cuda:0" and interop.device("cpu").type == "cpu"
    assert interop.tensor([1.0]).device == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        interop.device("tpu")


@pytest.mark.parametrize("values,dtype", [
    ([[1.0, 2.0], [3.0, 4.0]], "float32"), ([1.5, -2.25, 3.0], "float32"), ([1, 2, 3], "int64"),
    ([True, False], "bool"), ([1, 2], "int32"), ([0.5, 1.0], "float64"), ([1e-6, 1.0], "float32"),
    ([1e10, 1.0], "float32"), (3.14159, "float32"),
])
def test_repr_matches_pytorch(values, dtype):
    mine = repr(interop.tensor(values, dtype=DT[dtype][0]))
    theirs = repr(torch.tensor(values, dtype=DT[dtype][1])).replace("torch.", "interop.")
    assert mine == theirs


def test_repr_shows_grad_state():
    x = interop.tensor([1.0], requires_grad=True)
    assert repr(x) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(x * 2)


def test_tensor_from_list_of_tensors():
    assert interop.tensor([interop.tensor(1.0), interop.tensor(2.0)]).tolist() == [1.0, 2.0]


@pytest.mark.gpu
def test_cuda_tensor_roundtrip_and_mixed_device_error():
    x = interop.randn(3, 4)
    g = x.cuda()
    assert g.device == "cuda:0" and g.is_cuda
    np.testing.assert_array_equal(g.cpu().numpy(), x.numpy())
    y = (g * 2 + 1).exp().sum()
    np.testing.assert_allclose(y.item(), np.exp(x.numpy() * 2 + 1).sum(), rtol=1e-5)
    with pytest.raises(RuntimeError, match="same device"):
        _ = g + x


@pytest.mark.gpu
def test_cuda_autograd_matches_cpu():
    xs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    grads = []
    for dev in ("cpu", "cuda"):
        x = interop.tensor(xs, device=dev, requires_grad=True)
        ((x * x).exp() / (x + 3)).sum().backward()
        grads.append(x.grad.cpu().numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5)
