"""Normalization, dropout, embedding and softmax layers against PyTorch: state_dict names and shapes, outputs,
parameter gradients, running statistics over training steps, second derivatives, and the dropout mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
import interop.nn.functional as F

rng = np.random.default_rng(0)


def data(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def load_from(tm: torch.nn.Module, im: nn.Module) -> None:
    im.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def close(a, b, atol=1e-5, rtol=1e-4):
    a = a.numpy(force=True) if isinstance(a, interop.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def perturb(m: torch.nn.Module) -> None:
    """Random affine parameters (the defaults, ones and zeros, would hide mistakes)."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(data(*p.shape)))


def run_both(tm, im, x: np.ndarray, steps: int = 1):
    """Forward and backward (of a fixed random weighting) in both; returns the last outputs."""
    for _ in range(steps):
        xt, xi = torch.tensor(x, requires_grad=True), interop.tensor(x, requires_grad=True)
        yt, yi = tm(xt), im(xi)
        wt = data(*yt.shape)
        (yt * torch.from_numpy(wt)).sum().backward()
        (yi * interop.tensor(wt)).sum().backward()
        close(yi, yt)
        close(xi.grad, xt.grad, atol=1e-4)
    for name, p in tm.named_parameters():
        close(dict(im.named_parameters())[name].grad, p.grad, atol=1e-4)
    return yt, yi


def state_signature(m):
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.").removeprefix("interop."))
            for k, v in m.state_dict().items()]


LAYERS = [
    ("BatchNorm1d", (4,), {}, (6, 4)),
    ("BatchNorm1d", (3,), {"affine": False}, (5, 3, 7)),
    ("BatchNorm2d", (3,), {"momentum": None}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), {"track_running_stats": False}, (4, 3, 2, 2)),
    ("BatchNorm3d", (2,), {"bias": False}, (2, 2, 3, 2, 2)),
    ("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True}, (2, 3, 6)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 4, 4)),
    ("InstanceNorm2d", (3,), {"affine": True}, (3, 4, 4)),
    ("LayerNorm", (6,), {}, (2, 3, 6)),
    ("LayerNorm", ((3, 6),), {"bias": False, "eps": 1e-3}, (2, 3, 6)),
    ("LayerNorm", (6,), {"elementwise_affine": False}, (4, 6)),
    ("GroupNorm", (2, 6), {}, (3, 6, 4)),
    ("GroupNorm", (3, 6), {"affine": False}, (2, 6, 2, 2)),
    ("RMSNorm", (6,), {}, (2, 3, 6)),
    ("RMSNorm", ([3, 6],), {"eps": 1e-4}, (2, 3, 6)),
    ("RMSNorm", (6,), {"elementwise_affine": False}, (5, 6)),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "shape"), LAYERS,
                         ids=[f"{n}-{i}" for i, (n, *_) in enumerate(LAYERS)])
def test_layer_matches_pytorch(name, args, kwargs, shape):
    tm, im = getattr(torch.nn, name)(*args, **kwargs), getattr(nn, name)(*args, **kwargs)
    assert repr(im) == repr(tm)
    assert state_signature(im) == state_signature(tm)
    for vi, vt in zip(im.state_dict().values(), tm.state_dict().values()):
        close(vi, vt)  # PyTorch's initial values: ones, zeros, and a 0 batch count
    perturb(tm)
    load_from(tm, im)
    x = data(*shape) * 3 + 1
    run_both(tm, im, x, steps=3)  # training mode: batch statistics, running ones updated each step
    for (k, vi), vt in zip(im.state_dict().items(), tm.state_dict().values()):
        assert vi.dtype == interop.int64 if k.endswith("num_batches_tracked") else True
        close(vi, vt, atol=1e-5)
    tm.eval(), im.eval()
    close(im(interop.tensor(x)), tm(torch.tensor(x)))


def test_batch_norm_eval_gradients_and_running_stats_untouched():
    tm, im = torch.nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    perturb(tm)
    with torch.no_grad():
        tm.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        tm.running_var.copy_(torch.tensor([0.5, 2.0, 1.5]))
    load_from(tm, im)
    tm.eval(), im.eval()
    before = im.running_mean.numpy().copy()
    run_both(tm, im, data(2, 3, 4, 4))
    np.testing.assert_array_equal(im.running_mean.numpy(), before)
    assert int(im.num_batches_tracked) == 0


def test_batch_norm_running_stats_version_counter_and_errors():
    m = nn.BatchNorm1d(2)
    v = m.running_mean._version
    m(interop.tensor(data(4, 2)))
    assert m.running_mean._version > v and int(m.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        m(interop.tensor(data(1, 2)))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        m(interop.tensor(data(1, 2, 3, 3)))
    with pytest.raises(RuntimeError, match="running_mean and running_var must be defined"):
        F.batch_norm(interop.tensor(data(3, 2)), None, None)


def test_layer_and_group_norm_errors():
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[5\], expected input with shape \[\*, 5\]"):
        F.layer_norm(interop.tensor(data(2, 4)), (5,))
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(interop.tensor(data(2, 6, 3)), 4)
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(4, 6)


def _second_order(fn, xs: list[np.ndarray], need: list[bool], lib):
    """d/d(inputs) of sum(v * d(sum(w * fn))/d(inputs)): a create_graph backward, differentiated again."""
    tensors = [lib.tensor(x, requires_grad=r) for x, r in zip(xs, need)]
    out = fn(lib, *tensors)
    r = np.random.default_rng(1)
    w = lib.tensor(r.standard_normal(tuple(out.shape)))
    leaves = [t for t, n in zip(tensors, need) if n]
    grads = lib.autograd.grad((out * w).sum(), leaves, create_graph=True)
    total = sum((g * lib.tensor(r.standard_normal(tuple(g.shape)))).sum() for g in grads)
    second = lib.autograd.grad(total, leaves, allow_unused=True)
    return [g.detach() if g is not None else None for g in grads], second


SECOND_ORDER = {
    "layer_norm": (lambda L, x, w, b: L.nn.functional.layer_norm(x, (5,), w, b), [(3, 5), (5,), (5,)]),
    "rms_norm": (lambda L, x, w: L.nn.functional.rms_norm(x, (5,), w, 1e-5), [(3, 5), (5,)]),
    "group_norm": (lambda L, x, w, b: L.nn.functional.group_norm(x, 2, w, b), [(2, 4, 3), (4,), (4,)]),
    "batch_norm_train": (lambda L, x, w, b: L.nn.functional.batch_norm(x, None, None, w, b, True),
                         [(4, 3, 2), (3,), (3,)]),
    "instance_norm": (lambda L, x, w, b: L.nn.functional.instance_norm(x, weight=w, bias=b),
                      [(2, 3, 4), (3,), (3,)]),
    "softmax": (lambda L, x: L.softmax(x, 1), [(3, 4)]),
    "log_softmax": (lambda L, x: L.log_softmax(x, 0), [(3, 4)]),
    "dropout_p0": (lambda L, x: L.nn.functional.dropout(x, 0.0) * x, [(3, 4)]),
    "embedding": (lambda L, w: L.nn.functional.embedding(L.tensor([[1, 2], [2, 0]]), w, padding_idx=0) ** 2,
                  [(3, 2)]),
}


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_create_graph_second_derivatives_match_pytorch(name):
    fn, shapes = SECOND_ORDER[name]
    xs = [np.random.default_rng(2).standard_normal(s) + (1.0 if i else 0.0) for i, s in enumerate(shapes)]
    need = [True] * len(xs)
    mine_g, mine = _second_order(fn, xs, need, interop)
    theirs_g, theirs = _second_order(fn, xs, need, torch)
    for a, b in zip(mine_g, theirs_g):
        close(a, b, atol=1e-8, rtol=1e-7)
    for a, b in zip(mine, theirs):
        if b is None:
            assert a is None or not np.any(a.numpy())
        else:
            close(a, b, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("fn", [
    lambda L, x, w, b: L.nn.functional.layer_norm(x, (8,), w, b),
    lambda L, x, w, b: L.nn.functional.group_norm(x.reshape(4, 8, 1), 2, w, b),
    lambda L, x, w, b: L.nn.functional.batch_norm(x, None, None, w, b, True),
    lambda L, x, w, b: L.softmax(x * w, 1),
], ids=["layer_norm", "group_norm", "batch_norm", "softmax"])
def test_half_precision_keeps_dtype_and_float32_accuracy(fn):
    """float16/bfloat16 in, the same dtype out, within that dtype's rounding of the float32 result."""
    x, w, b = data(4, 8) * 4 + 2, data(8), data(8)
    rs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    want = fn(torch, *rs)
    want.sum().backward()
    for dt, tol in ((interop.float16, 1e-2), (interop.bfloat16, 5e-2)):
        ts = [interop.tensor(a).type(dt).requires_grad_() for a in (x, w, b)]
        out = fn(interop, *ts)
        assert out.dtype == dt
        out.float().sum().backward()
        close(out.float(), want, atol=tol, rtol=tol)
        for a, r in zip(ts, rs):
            if r.grad is not None:
                assert a.grad.dtype == dt
                close(a.grad.float(), r.grad, atol=4 * tol, rtol=tol)


# ---- dropout -------------------------------------------------------------------------------------------------

def test_dropout_mask_statistics_scaling_and_backward():
    interop.manual_seed(0)
    x = interop.ones(200, 500, requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy() != 0, kept)  # backward reuses the forward's mask
    np.testing.assert_allclose(x.grad.numpy()[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_is_seeded_by_interop_generator():
    x = interop.tensor(data(64, 64))
    interop.manual_seed(123)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    interop.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout_eval_p1_inplace_and_errors():
    x = interop.tensor(data(3, 4))
    assert F.dropout(x, 0.5, training=False) is x
    m = nn.Dropout(0.5).eval()
    assert m(x) is x and repr(m) == "Dropout(p=0.5, inplace=False)"
    assert not F.dropout(x, 1.0).numpy().any()
    y = x.clone()
    assert F.dropout(y, 0.5, inplace=True) is y
    assert np.all((y.numpy() == 0) | np.isclose(y.numpy(), 2 * x.numpy()))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(-0.1)


def test_dropout2d_zeroes_whole_channels():
    interop.manual_seed(1)
    y = nn.Dropout2d(0.5)(interop.ones(8, 16, 3, 3)).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7
    y1 = F.dropout1d(interop.ones(4, 50, 6), 0.5).numpy()
    assert np.all((y1 == 0).all(-1) | (y1 == 2).all(-1))
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        F.dropout1d(interop.ones(2, 2, 2, 2))


# ---- embedding -------------------------------------------------------------------------------------------------

def test_embedding_matches_pytorch_with_padding_and_repeats():
    tm, im = torch.nn.Embedding(10, 4, padding_idx=3), nn.Embedding(10, 4, padding_idx=3)
    assert repr(im) == repr(tm) == "Embedding(10, 4, padding_idx=3)"
    assert not im.weight.numpy(force=True)[3].any()  # the padding row starts at zero
    load_from(tm, im)
    ids = np.array([[3, 1, 1, 9], [0, 3, 1, 2]])
    yt, yi = tm(torch.tensor(ids)), im(interop.tensor(ids))
    close(yi, yt)
    g = data(2, 4, 4)
    yt.backward(torch.from_numpy(g))
    yi.backward(interop.tensor(g))
    close(im.weight.grad, tm.weight.grad)
    assert not im.weight.grad.numpy()[3].any()


def test_embedding_default_init_is_standard_normal():
    interop.manual_seed(0)
    w = nn.Embedding(1000, 64).weight.numpy(force=True)
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


@pytest.mark.parametrize("kwargs", [{"scale_grad_by_freq": True}, {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1},
                                    {"padding_idx": -1, "scale_grad_by_freq": True}])
def test_embedding_options_match_pytorch(kwargs):
    w = data(6, 3)
    ids = np.array([[1, 5, 1], [1, 0, 5]])
    wt, wi = torch.tensor(w, requires_grad=True), interop.tensor(w, requires_grad=True)
    yt = torch.nn.functional.embedding(torch.tensor(ids), wt, **kwargs)
    yi = F.embedding(interop.tensor(ids), wi, **kwargs)
    close(yi, yt)
    close(wi.detach(), wt.detach())  # max_norm renormalizes the looked-up rows in place
    g = data(2, 3, 3)
    yt.backward(torch.from_numpy(g))
    yi.backward(interop.tensor(g))
    close(wi.grad, wt.grad)


def test_embedding_from_pretrained_and_errors():
    w = interop.tensor(data(5, 2))
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad
    close(e(interop.tensor([4, 0])), w.numpy()[[4, 0]])
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    with pytest.raises(IndexError, match="index out of range in self"):
        e(interop.tensor([5]))
    with pytest.raises(IndexError, match="index out of range in self"):
        e(interop.tensor([-1]))
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices'"):
        e(interop.tensor([1.0]))


def test_one_hot_matches_pytorch_and_errors():
    t = np.array([[0, 2], [3, 1]])
    close(F.one_hot(interop.tensor(t), 5), torch.nn.functional.one_hot(torch.tensor(t), 5))
    assert F.one_hot(interop.tensor(t)).shape == (2, 2, 4) and F.one_hot(interop.tensor(t)).dtype == interop.int64
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes"):
        F.one_hot(interop.tensor(t), 3)
    with pytest.raises(RuntimeError, match="Class values must be non-negative"):
        F.one_hot(interop.tensor([-1]), 3)


# ---- softmax modules ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax", "Softmin"])
def test_softmax_modules_match_pytorch(name):
    tm, im = getattr(torch.nn, name)(dim=1), getattr(nn, name)(dim=1)
    assert repr(im) == repr(tm)
    run_both(tm, im, data(3, 5, 2))


def test_softmax_stability_implicit_dim_and_dtype():
    rows = [[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [-100.0, -101.0, -99.0], [-200.0, -300.0, -250.0],
            [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0], [5.0, 4.0, 3.0]]
    for x in (np.array(rows, np.float32), np.array(rows[2:4], np.float32), data(64, 10) * 20):
        for name in ("softmax", "log_softmax"):  # short rows take a shared shift when the rows allow it
            got = getattr(interop, name)(interop.tensor(x), 1)
            want = getattr(torch, name)(torch.tensor(x), 1)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(interop.tensor(data(2, 3)))
    assert y.shape == (2, 3)
    assert F.softmax(interop.tensor(data(2, 3)), 1, dtype=interop.float64).dtype == interop.float64
    close(interop.tensor(data(2, 3)).softmax(-1).sum(-1), np.ones(2))
    assert interop.softmax(interop.tensor(2.0), 0).item() == 1.0


def test_modules_export_in_eval_mode_as_fused_nodes():
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.LayerNorm(8), nn.Softmax(-1))
    model(interop.tensor(data(5, 6)))  # one training step moves the running statistics
    model.eval()
    x = interop.tensor(data(3, 6))
    proto = interop.export(model, (x,), input_names=["x"], verify=False)
    ops = [n.op_type for n in proto.graph.node]
    assert {"BatchNormalization", "LayerNormalization", "Softmax"} <= set(ops) and "Dropout" not in ops
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    close(sess.run(None, {"x": x.numpy()})[0], model(x))


# ---- the cupy path ---------------------------------------------------------------------------------------------

GPU_CASES = {
    "layer_norm": lambda x, w: F.layer_norm(x, (8,), w, w * 0.5),
    "rms_norm": lambda x, w: F.rms_norm(x, (8,), w),
    "group_norm": lambda x, w: F.group_norm(x.reshape(4, 8, 1), 2, w, w),
    "batch_norm_train": lambda x, w: F.batch_norm(x.reshape(2, 8, 2), None, None, w, w, True),
    "batch_norm_eval": lambda x, w: F.batch_norm(x, w.detach() * 0.1, w.detach() ** 2 + 1, w, w),
    "instance_norm": lambda x, w: F.instance_norm(x.reshape(2, 8, 2), weight=w, bias=w),
    "softmax": lambda x, w: F.softmax(x * w, -1),
    "log_softmax": lambda x, w: F.log_softmax(x * w, 0),
    "embedding": lambda x, w: F.embedding(interop.tensor([[1, 3, 1], [0, 7, 3]], device=x.device), x.T @ x,
                                          padding_idx=0) * w[:3, None],
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_CASES)
def test_cuda_matches_cpu(name):
    fn = GPU_CASES[name]
    x, w = data(4, 8), data(8)
    res = []
    for dev in ("cpu", "cuda"):
        xs, ws = interop.tensor(x, device=dev, requires_grad=True), interop.tensor(w, device=dev, requires_grad=True)
        y = fn(xs, ws)
        (y * y).sum().backward()
        res.append([t.detach().cpu() for t in (y, xs.grad, ws.grad)])
    for a, b in zip(*res):
        close(b, a, atol=1e-4)


@pytest.mark.gpu
def test_cuda_dropout_and_running_stats():
    interop.manual_seed(0)
    x = interop.ones(100, 100, device="cuda", requires_grad=True)
    y = F.dropout(x, 0.25)
    y.sum().backward()
    kept = y.detach().cpu().numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_array_equal(x.grad.cpu().numpy() != 0, kept)
    m = nn.BatchNorm1d(3).cuda()
    m(interop.tensor(data(6, 3), device="cuda"))
    assert m.running_mean.is_cuda and int(m.num_batches_tracked.cpu()) == 1
