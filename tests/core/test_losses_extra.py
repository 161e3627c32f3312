"""Loss modules and functional losses against PyTorch: every class with its options, weight buffers, legacy
reduction arguments, second derivatives, low precision, edge cases and PyTorch's error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
import interop.nn.functional as F

rng = np.random.default_rng(0)


def data(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(a, b, atol=1e-5, rtol=1e-4):
    a = a.numpy(force=True) if isinstance(a, interop.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def lib_tensor(lib, a, grad=False):
    t = lib.tensor(a)
    return t.requires_grad_() if grad else t


PROBS = np.abs(data(4, 5)) / 3
TARGET = np.array([1, 0, 4, -100])
MODULES = [
    ("CrossEntropyLoss", {}, data(4, 5), TARGET),
    ("CrossEntropyLoss", {"weight": np.abs(data(5)) + 0.1, "label_smoothing": 0.1, "reduction": "sum"}, data(4, 5),
     TARGET),
    ("CrossEntropyLoss", {"ignore_index": 2, "reduction": "none"}, data(2, 3, 4),
     np.array([[0, 2, 1, 1], [2, 2, 0, 1]])),
    ("CrossEntropyLoss", {"label_smoothing": 0.2}, data(4, 5), PROBS),
    ("NLLLoss", {"weight": np.abs(data(5)) + 0.1}, data(4, 5), TARGET),
    ("NLLLoss", {"reduction": "sum", "ignore_index": 0}, data(4, 5), np.array([1, 0, 4, 3])),
    ("MSELoss", {}, data(3, 4), data(3, 4)),
    ("MSELoss", {"reduction": "sum"}, data(3, 4), data(3, 4)),
    ("L1Loss", {"reduction": "none"}, data(3, 4), data(3, 4)),
    ("SmoothL1Loss", {"beta": 0.5}, data(3, 4), data(3, 4)),
    ("HuberLoss", {"delta": 0.3, "reduction": "sum"}, data(3, 4), data(3, 4)),
    ("BCELoss", {"weight": np.abs(data(4))}, 1 / (1 + np.exp(-data(3, 4))), np.abs(data(3, 4)) / 3),
    ("BCEWithLogitsLoss", {"pos_weight": np.abs(data(4)), "weight": np.abs(data(3, 1))}, data(3, 4) * 10,
     np.abs(data(3, 4)) / 3),
    ("KLDivLoss", {"reduction": "batchmean"}, np.log(np.abs(data(3, 4)) + 0.1), np.abs(data(3, 4))),
    ("KLDivLoss", {"reduction": "sum", "log_target": True}, data(3, 4), data(3, 4)),
]


@pytest.mark.parametrize(("name", "kwargs", "x", "t"), MODULES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MODULES)])
def test_loss_module_matches_pytorch(name, kwargs, x, t):
    out = []
    for lib in (interop, torch):
        kw = {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        m = getattr(lib.nn, name)(**kw)
        xi, ti = lib_tensor(lib, x, True), lib_tensor(lib, t, t.dtype.kind == "f")
        y = m(xi, ti)
        y.backward(lib.ones(tuple(y.shape)))
        out.append((m, y, xi.grad, ti.grad))
    (mi, yi, gxi, gti), (mt, yt, gxt, gtt) = out
    assert repr(mi) == repr(mt)
    assert list(mi.state_dict()) == list(mt.state_dict())  # weight / pos_weight buffers, as in PyTorch
    close(yi, yt)
    close(gxi, gxt)
    if gtt is not None:
        close(gti, gtt)


@pytest.mark.parametrize("fn", [
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.argmax(1)),
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.argmax(1), label_smoothing=0.3, reduction="sum"),
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.softmax(1), label_smoothing=0.1),
    lambda L, x, t: L.nn.functional.nll_loss(L.log_softmax(x, 1), t.argmax(1)),
    lambda L, x, t: L.nn.functional.mse_loss(x, t),
    lambda L, x, t: L.nn.functional.smooth_l1_loss(x, t, beta=2.0),
    lambda L, x, t: L.nn.functional.binary_cross_entropy(x.sigmoid(), t.sigmoid()),
    lambda L, x, t: L.nn.functional.binary_cross_entropy_with_logits(x, t.sigmoid()),
    lambda L, x, t: L.nn.functional.kl_div(L.log_softmax(x, 1), t.softmax(1), reduction="batchmean"),
], ids=["ce", "ce_smoothing", "ce_probs", "nll", "mse", "smooth_l1", "bce", "bce_logits", "kl_div"])
def test_create_graph_second_derivatives_match_pytorch(fn):
    """A gradient penalty: d/dx of |d loss/dx|^2 (and d/dt where the target is differentiable)."""
    x, t = np.random.default_rng(3).standard_normal((2, 4, 5))
    grads = []
    for lib in (interop, torch):
        xs, ts = lib.tensor(x, requires_grad=True), lib.tensor(t, requires_grad=True)
        (gx,) = lib.autograd.grad(fn(lib, xs, ts), [xs], create_graph=True)
        penalty = (gx * gx).sum()
        grads.append([gx.detach(), *lib.autograd.grad(penalty, [xs, ts], allow_unused=True)])
    for a, b in zip(*grads):
        if b is None:
            assert a is None or not np.any(a.numpy())
        else:
            close(a, b, atol=1e-10, rtol=1e-7)


def test_cross_entropy_all_ignored_is_nan_and_unbatched():
    x = data(3, 4)
    got = F.cross_entropy(interop.tensor(x), interop.tensor([-100, -100, -100]))
    assert np.isnan(got.item()) and np.isnan(torch.nn.functional.cross_entropy(
        torch.tensor(x), torch.tensor([-100, -100, -100])).item())
    xi = interop.tensor(x[0], requires_grad=True)
    xt = torch.tensor(x[0], requires_grad=True)
    for red in ("mean", "none"):
        yi, yt = F.cross_entropy(xi, interop.tensor(2), reduction=red), torch.nn.functional.cross_entropy(
            xt, torch.tensor(2), reduction=red)
        assert tuple(yi.shape) == tuple(yt.shape) == ()
        close(yi, yt)


def test_cross_entropy_matches_pytorch_on_large_logits_and_half_precision():
    x = data(8, 6) * 200
    t = rng.integers(0, 6, 8)
    close(F.cross_entropy(interop.tensor(x), interop.tensor(t)),
          torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)), rtol=1e-5)
    for dt, tdt in ((interop.float16, torch.float16), (interop.bfloat16, torch.bfloat16)):
        xi = interop.tensor(x / 100).type(dt).requires_grad_()
        xt = torch.tensor(x / 100).to(tdt).requires_grad_()
        yi, yt = F.cross_entropy(xi, interop.tensor(t)), torch.nn.functional.cross_entropy(xt, torch.tensor(t))
        assert yi.dtype == dt
        yi.backward()
        yt.backward()
        close(yi.float(), yt.float(), atol=2e-2, rtol=2e-2)
        assert xi.grad.dtype == dt
        close(xi.grad.float(), xt.grad.float(), atol=2e-2, rtol=2e-2)


def test_weighted_elementwise_losses_match_pytorch():
    x, y, w = data(3, 4), data(3, 4), np.abs(data(3, 4))
    for name in ("mse_loss", "l1_loss", "huber_loss"):
        for red in ("mean", "sum", "none"):
            res = []
            for lib in (interop, torch):
                xs, ws = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
                out = getattr(lib.nn.functional, name)(xs, lib.tensor(y), reduction=red, weight=ws)
                out.sum().backward()
                res.append((out, xs.grad, ws.grad))
            for a, b in zip(*res):
                close(a, b)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        F.mse_loss(interop.tensor(x), interop.tensor(y), weight=interop.tensor(w[0]))


def test_broadcast_target_warns_and_matches_pytorch():
    x, y = data(3, 4), data(4)
    with pytest.warns(UserWarning, match="Using a target size"):
        got = F.mse_loss(interop.tensor(x), interop.tensor(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch.nn.functional.mse_loss(torch.tensor(x), torch.tensor(y))
    close(got, want)


def test_legacy_reduction_arguments():
    x, y = data(3, 4), data(3, 4)
    for kw, red in (({"size_average": False}, "sum"), ({"reduce": False}, "none"), ({"size_average": True}, "mean")):
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            got = F.l1_loss(interop.tensor(x), interop.tensor(y), **kw)
        close(got, torch.nn.functional.l1_loss(torch.tensor(x), torch.tensor(y), reduction=red))
        with pytest.warns(UserWarning):
            assert nn.MSELoss(**kw).reduction == red
    with pytest.raises(ValueError, match="bogus is not a valid value for reduction"):
        F.mse_loss(interop.tensor(x), interop.tensor(y), reduction="bogus")


def test_kl_div_mean_warns_like_pytorch():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(interop.tensor(data(2, 3)), interop.tensor(np.abs(data(2, 3))))


def test_pytorch_error_messages():
    x = interop.tensor(data(3, 4))
    with pytest.raises(IndexError, match="Target 7 is out of bounds."):
        F.cross_entropy(x, interop.tensor([0, 1, 7]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        F.cross_entropy(x, interop.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        F.cross_entropy(x, interop.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 4 classes"):
        F.nll_loss(x, interop.tensor([0, 1, 2]), weight=interop.ones(3))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.cross_entropy(x, interop.tensor([0, 1, 2]), weight=interop.ones(4, requires_grad=True))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'pos_weight'"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=interop.ones(4, requires_grad=True))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(x, interop.zeros(3, 4))
    with pytest.raises(ValueError, match="Using a target size"):
        F.binary_cross_entropy(x.sigmoid(), interop.zeros(4))
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta"):
        F.huber_loss(x, x, delta=0.0)


def test_mlp_classifier_trains_like_pytorch():
    """A few SGD steps of a small classifier with dropout off and label smoothing: the same losses."""
    x, y = data(32, 10), rng.integers(0, 3, 32)
    models = [n.Sequential(n.Linear(10, 16), n.LayerNorm(16), n.ReLU(), n.Dropout(0.0), n.Linear(16, 3))
              for n in (torch.nn, nn)]
    models[1].load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in models[0].state_dict().items()})
    losses = []
    for lib, model in zip((torch, interop), models):
        opt = lib.optim.SGD(model.parameters(), lr=0.5)
        loss_fn = lib.nn.CrossEntropyLoss(label_smoothing=0.05)
        run = []
        for _ in range(5):
            opt.zero_grad()
            loss = loss_fn(model(lib.tensor(x)), lib.tensor(y))
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    assert losses[1][-1] < losses[1][0]


@pytest.mark.gpu
@pytest.mark.parametrize("fn", [
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.argmax(1)),
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.argmax(1), weight=t[0].abs(), label_smoothing=0.2,
                                                  ignore_index=1, reduction="none"),
    lambda L, x, t: L.nn.functional.cross_entropy(x, t.softmax(1), label_smoothing=0.1),
    lambda L, x, t: L.nn.functional.nll_loss(x, t.argmax(1), reduction="sum"),
    lambda L, x, t: L.nn.functional.mse_loss(x, t),
    lambda L, x, t: L.nn.functional.huber_loss(x, t, reduction="sum"),
    lambda L, x, t: L.nn.functional.binary_cross_entropy_with_logits(x, t.sigmoid(), pos_weight=t[0].abs()),
    lambda L, x, t: L.nn.functional.kl_div(x, t.softmax(1), reduction="batchmean"),
], ids=["ce", "ce_options", "ce_probs", "nll", "mse", "huber", "bce_logits", "kl_div"])
def test_cuda_matches_cpu(fn):
    x, t = data(4, 5), data(4, 5)
    res = []
    for dev in ("cpu", "cuda"):
        xs = interop.tensor(x, device=dev, requires_grad=True)
        y = fn(interop, xs, interop.tensor(t, device=dev))
        y.sum().backward()
        res.append([y.detach().cpu(), xs.grad.cpu()])
    for a, b in zip(*res):
        close(b, a)
