"""Convolution, pooling and upsampling layers against PyTorch: parameter names, shapes and initialisation, repr,
outputs and parameter/input gradients with PyTorch's weights loaded; argument errors; higher-order gradients;
export errors; and the same ops on cupy (gpu) against the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
import interop.nn.functional as F
from interop.autograd import gradcheck

rng = np.random.default_rng(0)

LAYERS = [
    ("Conv1d", (3, 4, 3), {}, (2, 3, 9)),
    ("Conv1d", (4, 6, 2), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False}, (2, 4, 9)),
    ("Conv1d", (3, 4, 4), {"padding": "same", "padding_mode": "circular"}, (2, 3, 7)),
    ("Conv2d", (1, 16, 3), {}, (4, 1, 8, 8)),
    ("Conv2d", (4, 6, (3, 2)), {"stride": (2, 1), "padding": (1, 2), "groups": 2}, (2, 4, 7, 6)),
    ("Conv2d", (3, 4, 3), {"padding": "same", "dilation": 2, "padding_mode": "reflect"}, (2, 3, 7, 6)),
    ("Conv2d", (3, 4, (2, 3)), {"padding": 1, "padding_mode": "replicate", "bias": False}, (2, 3, 5, 6)),
    ("Conv2d", (3, 6, 3), {"padding": "valid", "groups": 3}, (3, 6, 6)),  # unbatched input
    ("ConvTranspose1d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 3, 5)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2, "dilation": (1, 2)}, (2, 4, 4, 3)),
    ("ConvTranspose2d", (3, 2, (2, 3)), {"bias": False, "output_padding": (1, 0), "stride": (2, 1)}, (1, 3, 3, 4)),
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 10)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 7)),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "dilation": 1}, (2, 3, 7, 7)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (2, 3, 9)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 6, 7)),
    ("AvgPool2d", (2,), {"divisor_override": 3}, (2, 3, 6, 6)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 7)),
    ("AdaptiveAvgPool2d", ((1, 1),), {}, (2, 3, 5, 6)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 7, 6)),
    ("Upsample", (), {"scale_factor": 2}, (2, 3, 3, 4)),
    ("Upsample", (), {"size": (5, 7), "mode": "bilinear"}, (2, 3, 3, 4)),
    ("Upsample", (), {"scale_factor": 1.5, "mode": "linear", "align_corners": True}, (2, 3, 4)),
    ("UpsamplingNearest2d", (), {"size": 5}, (1, 2, 3, 3)),
    ("UpsamplingBilinear2d", (), {"scale_factor": 2}, (1, 2, 3, 3)),
]


def _pair(name, args, kwargs):
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    mine = getattr(nn, name)(*args, **kwargs).to(interop.float64)
    mine.load_state_dict({k: interop.tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})
    return mine, theirs


@pytest.mark.parametrize("name,args,kwargs,shape", LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYERS)])
def test_layer_matches_pytorch(name, args, kwargs, shape):
    mine, theirs = _pair(name, args, kwargs)
    assert repr(mine) == repr(theirs)
    assert [(k, tuple(p.shape)) for k, p in mine.named_parameters()] == \
        [(k, tuple(p.shape)) for k, p in theirs.named_parameters()]
    x = rng.standard_normal(shape)
    xm, xt = interop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = mine(xm), theirs(xt)
    np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(tuple(yt.shape))
    (ym * interop.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (k, p), (_, q) in zip(mine.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name,args", [("Conv2d", (8, 16, 3)), ("Conv1d", (6, 4, 5, 1, 0, 1, 2)),
                                       ("ConvTranspose2d", (8, 4, 3))])
def test_conv_init_matches_pytorch_bounds(name, args):
    interop.manual_seed(0)
    layer = getattr(nn, name)(*args)
    w = layer.weight.detach().numpy()
    fan_in = w.shape[1] * math.prod(w.shape[2:])
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias share it
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound
    b = layer.bias.detach().numpy()
    assert np.abs(b).max() <= bound and len(np.unique(b)) == b.size


def test_conv_transpose_output_size():
    mine, theirs = _pair("ConvTranspose2d", (2, 3, 3), {"stride": 2, "padding": 1})
    x = rng.standard_normal((1, 2, 4, 5))
    for size in ([8, 9], [1, 3, 8, 10], (7, 10)):
        got = mine(interop.tensor(x), output_size=size)
        np.testing.assert_allclose(got.detach().numpy(), theirs(torch.tensor(x), output_size=size).detach().numpy(),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="valid sizes range from"):
        mine(interop.tensor(x), output_size=[10, 9])


def test_max_pool_layer_return_indices():
    mine, theirs = _pair("MaxPool2d", (3,), {"stride": 2, "padding": 1, "return_indices": True})
    x = rng.standard_normal((2, 3, 7, 6))
    (vm, im), (vt, it) = mine(interop.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_array_equal(vm.numpy(), vt.numpy())
    assert im.dtype == interop.int64
    np.testing.assert_array_equal(im.numpy(), it.numpy())


def test_max_pool_ties_route_to_the_first_maximum():
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, 0.0, 2.0], [2.0, 2.0, 2.0]]]], np.float32)
    xm, xt = interop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.max_pool2d(xm, 2, 1).sum().backward()
    torch.nn.functional.max_pool2d(xt, 2, 1).sum().backward()
    np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())


def test_max_pool_infinite_gradient_stays_on_the_argmax():
    x = interop.tensor(rng.standard_normal((1, 1, 4, 4)), requires_grad=True)
    y = F.max_pool2d(x, 2)
    y.backward(interop.tensor(np.full((1, 1, 2, 2), np.inf)))
    g = x.grad.numpy()
    assert np.isinf(g).sum() == 4 and not np.isnan(g).any() and (g[np.isfinite(g)] == 0).all()


def test_max_pool_allows_inplace_edit_of_its_output():
    x = interop.tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    y = F.max_pool2d(x, 2)
    F.relu(y, inplace=True).sum().backward()  # PyTorch keeps indices, not the output: this is legal there too
    assert x.grad.numpy().sum() == (F.max_pool2d(x.detach(), 2).numpy() > 0).sum()


def _second_order(fn, *inputs):
    """gradcheck of d/d(inputs) of <grad of fn, fixed random weights>: exercises every backward's backward."""
    ws = []

    def first(*xs):
        with interop.enable_grad():  # gradcheck's finite differences run under no_grad
            out = fn(*xs)
            if not ws:
                ws.append(interop.tensor(rng.standard_normal(out.shape)))
            gs = interop.grad((out * ws[0]).sum(), list(xs), create_graph=True)
            return tuple(g * g for g in gs)

    return gradcheck(first, [interop.tensor(a, requires_grad=True) for a in inputs])


@pytest.mark.parametrize("case", ["conv2d", "conv1d_groups", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                                  "adaptive", "bilinear", "nearest"])
def test_second_order_gradients(case):
    x4, x3 = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((1, 4, 6))
    fns = {
        "conv2d": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), x4, rng.standard_normal((3, 2, 2, 3))),
        "conv1d_groups": (lambda x, w: F.conv1d(x, w, groups=2, dilation=2), x3, rng.standard_normal((2, 2, 2))),
        "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=(2, 1), output_padding=(1, 0)), x4,
                             rng.standard_normal((2, 3, 2, 2))),
        "max_pool2d": (lambda x: F.max_pool2d(x, 2, 1) ** 2, x4),
        "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) ** 2, x4),
        "adaptive": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)) ** 2, x4),
        "bilinear": (lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear") ** 2, x4),
        "nearest": (lambda x: F.interpolate(x, size=(7, 3)) ** 2, x4),
    }
    fn, *inputs = fns[case]
    assert _second_order(fn, *inputs)


@pytest.mark.parametrize("groups,padding,stride", [(1, 0, 1), (2, 1, 1), (1, 1, 2)])
def test_column_layouts_and_product_forms_agree(monkeypatch, groups, padding, stride):
    """The conv kernels pick, by shape, exact or wide columns and one GEMM or per-sample products (see
    interop/ops/conv.py); forcing each choice must not change the values or any of the three gradients."""
    x, w, b = rng.standard_normal((2, 4, 9, 11)), rng.standard_normal((4, 4 // groups, 3, 2)), rng.standard_normal(4)
    conv = interop.ops.conv
    results = []
    for per_sample, wide_max in ((1e9, 0.0), (0.0, 0.0), (0.0, 2.0)):  # per-sample, exact, wide (if stride 1)
        monkeypatch.setattr(conv, "_PER_SAMPLE", per_sample)
        monkeypatch.setattr(conv, "_WIDE_MAX", wide_max)
        ts = [interop.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv2d(*ts, padding=padding, stride=stride, groups=groups)
        y.backward(interop.tensor(np.cos(np.arange(y.numel())).reshape(y.shape)))
        results.append([y.detach().numpy()] + [t.grad.numpy() for t in ts])
        out_hw = y.shape[2:]
        want = (11 + 2 * padding, False) if wide_max and stride == 1 else (out_hw[1], per_sample > 1)
        assert conv._plan(11 + 2 * padding, (stride, stride), out_hw, 4 // groups * 6, 4 // groups) == want
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_half_precision_computes_in_float32():
    x, w = rng.standard_normal((2, 3, 6, 6)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    want = F.conv2d(interop.tensor(x), interop.tensor(w)).numpy()
    for dt in (interop.float16, interop.bfloat16):
        got = F.conv2d(interop.tensor(x).to(dt), interop.tensor(w).to(dt))
        assert got.dtype == dt
        np.testing.assert_allclose(got.to(interop.float32).numpy(), want, rtol=0.05, atol=0.1)


def test_noncontiguous_input():
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((4, 3, 2, 2))
    xm = interop.tensor(x).permute(0, 3, 1, 2)  # a (2, 3, 6, 5) view with odd strides
    got = F.conv2d(xm, interop.tensor(w), padding=1)
    want = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(w), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    assert got.is_contiguous()


@pytest.mark.parametrize("call,err,match", [
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(3, 6, 3, groups=2), ValueError, "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(3, 6, 3, groups=0), ValueError, "groups must be a positive integer"),
    (lambda: nn.Conv2d(3, 6, 3, padding="full"), ValueError, "Invalid padding string 'full'"),
    (lambda: nn.Conv2d(3, 6, 3, stride=2, padding="same"), ValueError, "not supported for strided convolutions"),
    (lambda: nn.Conv2d(3, 6, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: nn.ConvTranspose2d(3, 6, 3, padding_mode="reflect"), ValueError, 'Only "zeros" padding mode'),
    (lambda: F.conv2d(interop.ones(1, 3, 5, 5), interop.ones(4, 2, 3, 3)), RuntimeError,
     r"expected input\[1, 3, 5, 5\] to have 2 channels, but got 3 channels instead"),
    (lambda: F.conv2d(interop.ones(1, 3, 2, 2), interop.ones(4, 3, 3, 3)), RuntimeError,
     "Kernel size can't be greater than actual input size"),
    (lambda: F.conv2d(interop.ones(3, 5), interop.ones(4, 3, 3, 3)), RuntimeError,
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d"),
    (lambda: F.conv2d(interop.ones(1, 3, 5, 5), interop.ones(4, 3, 3, 3), interop.ones(3)), RuntimeError,
     "expected bias to be 1-dimensional with 4 elements"),
    (lambda: F.conv2d(interop.ones(1, 3, 5, 5), interop.ones(4, 3, 3, 3, dtype=interop.float64)), RuntimeError,
     r"Input type \(float32\) and weight type \(float64\) should be the same"),
    (lambda: F.conv2d(interop.ones(1, 3, 5, 5), interop.ones(4, 3, 3, 3), stride=0), RuntimeError,
     "non-positive stride"),
    (lambda: F.conv_transpose2d(interop.ones(1, 3, 5, 5), interop.ones(3, 2, 3, 3), stride=2, output_padding=2),
     RuntimeError, "output padding must be smaller than either stride or dilation"),
    (lambda: F.max_pool2d(interop.ones(1, 1, 4, 4), 2, padding=2), RuntimeError,
     "pad should be at most half of effective kernel size"),
    (lambda: F.max_pool2d(interop.ones(1, 1, 2, 2), 3), RuntimeError, "Output size is too small"),
    (lambda: F.avg_pool2d(interop.ones(1, 1, 4, 4), 2, divisor_override=0), RuntimeError, "divisor must be not zero"),
    (lambda: F.interpolate(interop.ones(1, 1, 4, 4), scale_factor=2, mode="nearest", align_corners=True),
     ValueError, "align_corners option can only be set with the interpolating modes"),
    (lambda: F.interpolate(interop.ones(1, 1, 4), scale_factor=2, mode="bilinear"), NotImplementedError,
     "Got 3D input, but bilinear mode needs 4D input"),
    (lambda: F.interpolate(interop.ones(1, 1, 4, 4)), ValueError, "either size or scale_factor should be defined"),
    (lambda: F.interpolate(interop.ones(1, 1, 4, 4), size=2, scale_factor=2), ValueError,
     "only one of size or scale_factor should be defined"),
])
def test_argument_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_adaptive_pool_export_names_the_sizes():
    with pytest.raises(Exception, match=r"input size \[5, 7\] to output size \[3, 4\]"):
        interop.export(nn.AdaptiveAvgPool2d((3, 4)), (interop.ones(1, 2, 5, 7),), verify=False)


def test_interpolate_exports_with_scales_and_sizes():
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    x = interop.tensor(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    for layer in (nn.Upsample(scale_factor=2), nn.Upsample(size=(6, 7), mode="bilinear", align_corners=True),
                  nn.Upsample(scale_factor=(1.5, 2), mode="bilinear")):
        proto = interop.export(layer, (x,), input_names=["x"], verify=False)
        resize = [n for n in proto.graph.node if n.op_type == "Resize"]
        assert len(resize) == 1 and len(proto.graph.node) == 1
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], layer(x).numpy(), rtol=1e-5, atol=1e-6)


# ---- cupy ----------------------------------------------------------------------------------------------------

GPU_CASES = {
    "conv2d": (lambda x, w: F.conv2d(x, w, None, 2, 1, 1, 2), (2, 4, 9, 8), (6, 2, 3, 3)),
    "conv1d": (lambda x, w: F.conv1d(x, w, padding="same", dilation=2), (2, 3, 9), (4, 3, 3)),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                         (2, 4, 5, 5), (4, 3, 3, 3)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (2, 3, 9, 8)),
    "max_pool2d_disjoint": (lambda x: F.max_pool2d(x, 2), (2, 3, 8, 8)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (2, 3, 9, 8)),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 5)), (2, 3, 7, 9)),
    "bilinear": (lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), (2, 3, 5, 6)),
    "nearest": (lambda x: F.interpolate(x, size=(7, 13)), (2, 3, 5, 6)),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(GPU_CASES))
def test_ops_on_cupy_match_cpu(name):
    fn, *shapes = GPU_CASES[name]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for dev in ("cpu", "cuda"):
        ts = [interop.tensor(a, device=dev, requires_grad=True) for a in arrays]
        y = fn(*ts)
        y.backward(interop.ones(y.shape, device=dev))
        results.append([y.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in ts])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)
