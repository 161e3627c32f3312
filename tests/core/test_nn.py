"""nn.Module API, containers, layers, init and gradient clipping, checked against PyTorch where it answers."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
import interop.nn.functional as F


def mlp(n):
    """The same architecture in either framework (`n` is torch.nn or interop.nn)."""
    return n.Sequential(n.Linear(784, 512), n.ReLU(), n.Linear(512, 256), n.ReLU(), n.Linear(256, 10))


def zoo(n):
    return n.Sequential(OrderedDict([
        ("flat", n.Flatten()),
        ("unflat", n.Unflatten(1, (2, 5))),
        ("id", n.Identity()),
        ("body", n.ModuleList([n.Linear(4, 4) for _ in range(3)] + [n.Linear(4, 2, bias=False), n.ReLU()])),
        ("heads", n.ModuleDict({"a": n.LeakyReLU(0.2, inplace=True), "b": n.ELU(alpha=0.5),
                                "c": n.GELU("tanh")})),
        ("acts", n.Sequential(n.SiLU(), n.Mish(), n.Sigmoid(), n.Tanh(), n.Softplus(beta=2.0),
                              n.Hardtanh(-2.0, 2.0), n.ReLU(inplace=True), n.GELU())),
    ]))


def with_state(n):
    """A custom module with buffers (one not persistent), a nested child and an extra_repr."""

    class Block(n.Module):
        def __init__(self):
            super().__init__()
            self.proj = n.Linear(3, 4)
            self.scale = n.Parameter(torch.ones(4) if n is torch.nn else interop.ones(4))
            zeros = torch.zeros if n is torch.nn else interop.zeros
            self.register_buffer("running", zeros(4))
            self.register_buffer("count", zeros((), dtype=torch.int64 if n is torch.nn else interop.int64))
            self.register_buffer("cache", zeros(2), persistent=False)

        def extra_repr(self):
            return "scale=4"

    class Net(n.Module):
        def __init__(self):
            super().__init__()
            self.first = Block()
            self.blocks = n.ModuleList([Block(), Block()])
            self.head = n.Linear(4, 2)

    return Net()


def shapes(sd):
    return [(k, tuple(v.shape)) for k, v in sd.items()]


# ---- repr --------------------------------------------------------------------------------------------------

def test_repr_matches_pytorch_exactly():
    assert repr(mlp(nn)) == repr(mlp(torch.nn))
    assert repr(mlp(nn)) == ("Sequential(\n"
                             "  (0): Linear(in_features=784, out_features=512, bias=True)\n"
                             "  (1): ReLU()\n"
                             "  (2): Linear(in_features=512, out_features=256, bias=True)\n"
                             "  (3): ReLU()\n"
                             "  (4): Linear(in_features=256, out_features=10, bias=True)\n"
                             ")")
    assert repr(zoo(nn)) == repr(zoo(torch.nn))
    assert repr(with_state(nn)) == repr(with_state(torch.nn))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList()) == "ModuleList()"


def test_parameter_repr_and_identity():
    p = nn.Parameter(interop.tensor([1.0, 2.0]))
    assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert isinstance(p, interop.Tensor) and p.requires_grad and p.is_leaf
    t = interop.zeros(3)
    q = nn.Parameter(t, requires_grad=False)
    q.data[0] = 5  # shares memory with the tensor it wraps
    assert t.data[0] == 5 and not q.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(interop.tensor([1, 2]))
    assert type(p * 2) is interop.Tensor  # ops give plain tensors


# ---- state dict --------------------------------------------------------------------------------------------

def test_state_dict_names_order_and_shapes_match_pytorch():
    assert shapes(mlp(nn).state_dict()) == shapes(mlp(torch.nn).state_dict())
    ours, theirs = with_state(nn).state_dict(), with_state(torch.nn).state_dict()
    assert shapes(ours) == shapes(theirs)
    assert "first.cache" not in ours and list(ours)[:5] == ["first.scale", "first.running", "first.count",
                                                              "first.proj.weight", "first.proj.bias"]
    assert ours["first.count"].dtype == interop.int64
    assert not any(v.requires_grad for v in ours.values())  # detached ...
    m = mlp(nn)
    assert m.state_dict()["0.weight"].data_ptr() == m[0].weight.data_ptr()  # ... but sharing memory
    assert m.state_dict(keep_vars=True)["0.weight"] is m[0].weight
    assert list(m.state_dict(prefix="model.")) == ["model." + k for k in m.state_dict()]


def test_pytorch_state_dict_loads_by_name():
    interop.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = mlp(nn), mlp(torch.nn)
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
    x = np.random.default_rng(0).standard_normal((8, 784)).astype(np.float32)
    with interop.no_grad():
        got = ours(interop.tensor(x)).numpy()
    np.testing.assert_allclose(got, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_load_state_dict_strict_errors_name_every_key_and_copy_nothing():
    m = mlp(nn)
    before = m[0].weight.numpy(force=True).copy()
    sd = {k: v.clone() for k, v in mlp(nn).state_dict().items()}
    del sd["2.bias"]
    sd["extra.weight"] = interop.zeros(1)
    sd["4.weight"] = interop.zeros(10, 3)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential:\n\t")
    assert 'Missing key(s) in state_dict: "2.bias". ' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight". ' in msg
    assert ("size mismatch for 4.weight: copying a param with shape (10, 3) from checkpoint, the shape in "
            "current model is (10, 256).") in msg
    np.testing.assert_array_equal(m[0].weight.numpy(force=True), before)  # nothing copied
    # PyTorch words it the same way
    tm = mlp(torch.nn)
    tsd = {k: v.clone() for k, v in tm.state_dict().items()}
    del tsd["2.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2\.bias"\. '):
        tm.load_state_dict(tsd)


def test_load_state_dict_non_strict_and_casts():
    m = mlp(nn)
    sd = mlp(nn).state_dict()
    sd.pop("0.bias")
    sd["junk"] = interop.zeros(1)
    sd["2.weight"] = sd["2.weight"].double()
    res = m.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["0.bias"] and res.unexpected_keys == ["junk"]
    assert m[2].weight.dtype == interop.float32  # cast to the model's dtype
    np.testing.assert_allclose(m[2].weight.numpy(force=True), sd["2.weight"].numpy())
    with pytest.raises(RuntimeError, match="size mismatch"):  # shape errors are errors even when not strict
        m.load_state_dict({"0.bias": interop.zeros(3)}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_load_state_dict_assign():
    m = nn.Linear(2, 3)
    w = interop.ones(3, 2, dtype=interop.float64)
    m.load_state_dict({"weight": w, "bias": interop.zeros(3)}, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad and m.weight.dtype == interop.float64
    assert m.weight.data_ptr() == w.data_ptr()


def test_tied_weights():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Linear(4, 6, bias=False)
            self.out = nn.Linear(6, 4, bias=False)
            self.out.weight = self.emb.weight  # (6, 4) both
            self.shared = self.emb

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["emb.weight"]
    assert len(list(m.parameters())) == 1
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == ["emb.weight", "out.weight",
                                                                          "shared.weight"]
    assert [n for n, _ in m.named_modules()] == ["", "emb", "out"]
    assert list(m.state_dict()) == ["emb.weight", "out.weight", "shared.weight"]  # as PyTorch lists them
    m.load_state_dict({k: interop.full(v.shape, 2.0) for k, v in m.state_dict().items()})
    assert m.out.weight is m.emb.weight and float(m.out.weight.data.sum()) == 48
    m.double()
    assert m.out.weight is m.emb.weight and m.out.weight.dtype == interop.float64


# ---- registration and attribute routing --------------------------------------------------------------------

def test_setattr_routing_and_errors():
    m = nn.Module()
    m.w = nn.Parameter(interop.zeros(2))
    m.child = nn.Linear(1, 1)
    m.register_buffer("buf", interop.zeros(1))
    m.plain = 3
    assert list(m._parameters) == ["w"] and list(m._modules) == ["child"] and list(m._buffers) == ["buf"]
    assert "w" not in m.__dict__ and m.plain == 3
    m.w = None
    assert m._parameters["w"] is None
    assert [n for n, _ in m.named_parameters()] == ["child.weight", "child.bias"]
    with pytest.raises(TypeError, match=r"cannot assign 'interop\.Tensor' as parameter 'w'"):
        m.w = interop.zeros(2)
    with pytest.raises(TypeError, match="as child module 'child'"):
        m.child = 1
    with pytest.raises(TypeError, match="as buffer 'buf'"):
        m.buf = 1
    m.buf = interop.ones(1)
    assert float(m.buf) == 1
    m.child = nn.Parameter(interop.zeros(1))  # a Parameter replaces a module of the same name
    assert "child" not in m._modules and "child" in m._parameters
    del m.child, m.buf
    assert "child" not in m._parameters and "buf" not in m._buffers
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        _ = m.nope
    with pytest.raises(KeyError, match=r"buffer name can.*t contain"):
        m.register_buffer("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("plain", None)
    with pytest.raises(TypeError, match="not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.register_buffer("b", 3)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(interop.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module\.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_traversal_modes_and_helpers():
    m = with_state(nn)
    assert [n for n, _ in m.named_children()] == ["first", "blocks", "head"]
    assert [n for n, _ in m.named_modules()] == ["", "first", "first.proj", "blocks", "blocks.0",
                                                 "blocks.0.proj", "blocks.1", "blocks.1.proj", "head"]
    tm = with_state(torch.nn)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in tm.named_buffers()]
    assert [n for n, _ in m.named_parameters(recurse=False)] == []
    assert [n for n, _ in m.first.named_buffers(prefix="x")] == ["x.running", "x.count", "x.cache"]
    assert m.get_submodule("blocks.1.proj") is m.blocks[1].proj
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        m.get_submodule("blocks.nope")
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("yes")
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    for p in m.parameters():
        p.grad = interop.ones_like(p)
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.data.sum()) == 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert "blocks" in dir(m) and "proj" in dir(m.first)


def test_to_keeps_parameters_and_casts_only_floats():
    m = with_state(nn)
    params = list(m.parameters())
    m.head.weight.grad = interop.ones(2, 4)
    opt = interop.optim.SGD(m.parameters(), lr=0.1)
    assert m.double() is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == interop.float64 for p in m.parameters())
    assert m.head.weight.grad.dtype == interop.float64
    assert m.first.running.dtype == interop.float64 and m.first.count.dtype == interop.int64
    m.to(interop.float16)
    assert m.head.weight.dtype == interop.float16
    m.to("cpu", dtype=interop.bfloat16)
    assert m.head.bias.dtype == interop.bfloat16
    m.float().cpu()
    assert m.first.proj.weight.dtype == interop.float32
    before = m.head.weight.numpy(force=True).copy()
    m.head.weight.grad = interop.ones(2, 4)
    opt.step()  # the optimizer built before the casts still updates the live parameters
    np.testing.assert_allclose(m.head.weight.numpy(force=True), before - 0.1)
    with pytest.raises(TypeError, match="floating point or complex"):
        m.to(interop.int64)
    m.to(interop.zeros(1, dtype=interop.float64))
    assert m.head.weight.dtype == interop.float64


def test_deepcopy_is_independent():
    m = mlp(nn)
    c = copy.deepcopy(m)
    assert repr(c) == repr(m) and c[0].weight is not m[0].weight
    c[0].weight.data[...] = 0
    assert float(np.abs(m[0].weight.data).sum()) > 0


# ---- hooks -------------------------------------------------------------------------------------------------

class Affine(nn.Module):
    def forward(self, x, scale=1.0):
        return x * scale + 1


def test_forward_hooks_run_in_order_and_can_rewrite():
    m, calls = Affine(), []
    h1 = m.register_forward_pre_hook(lambda mod, args: (calls.append("pre"), (args[0] * 10,))[1])
    h2 = m.register_forward_hook(lambda mod, args, out: (calls.append("post"), out * 2)[1])
    m.register_forward_pre_hook(lambda mod, args: calls.append("first"), prepend=True)
    out = m(interop.tensor(1.0))
    assert calls == ["first", "pre", "post"] and float(out) == 22.0
    h1.remove()
    h2.remove()
    h2.remove()  # removing twice is harmless
    assert float(m(interop.tensor(1.0))) == 2.0
    with m.register_forward_hook(lambda mod, args, kwargs, out: out + kwargs["scale"], with_kwargs=True):
        assert float(m(interop.tensor(1.0), scale=3.0)) == 7.0
    assert float(m(interop.tensor(1.0), scale=3.0)) == 4.0
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"scale": 5.0}), with_kwargs=True)
    assert float(m(interop.tensor(1.0))) == 6.0


def test_always_call_hook_and_global_hooks():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    seen = []
    b = Boom()
    b.register_forward_hook(lambda mod, args, out: seen.append(out), always_call=True)
    with pytest.raises(ValueError, match="boom"):
        b(1)
    assert seen == [None]
    names = []
    with nn.register_module_forward_pre_hook(lambda mod, args: names.append(type(mod).__name__)):
        m = nn.Sequential(Affine(), Affine())
        m(interop.tensor(1.0))
    m(interop.tensor(1.0))
    assert names == ["Sequential", "Affine", "Affine"]


# ---- containers --------------------------------------------------------------------------------------------

def test_sequential_indexing_and_edits():
    s = nn.Sequential(nn.Identity(), nn.ReLU(), nn.Tanh())
    assert len(s) == 3 and isinstance(s[-1], nn.Tanh) and isinstance(s[1:], nn.Sequential)
    assert [type(x).__name__ for x in s[1:]] == ["ReLU", "Tanh"] and list(s[1:]._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        s[3]
    s.append(nn.Sigmoid())
    s[0] = nn.SiLU()
    del s[1]
    assert list(s._modules) == ["0", "1", "2"]
    assert [type(x).__name__ for x in s] == ["SiLU", "Tanh", "Sigmoid"]
    s.insert(1, nn.ReLU())
    assert [type(x).__name__ for x in s] == ["SiLU", "ReLU", "Tanh", "Sigmoid"]
    assert isinstance(s.pop(0), nn.SiLU) and len(s) == 3
    assert len(s + nn.Sequential(nn.ReLU())) == 4
    named = nn.Sequential(OrderedDict(a=nn.ReLU(), b=nn.Tanh()))
    assert list(named._modules) == ["a", "b"] and isinstance(named.b, nn.Tanh)
    x = interop.tensor([1.0, 2.0])
    assert nn.Sequential(Affine(), Affine())(x).tolist() == [3.0, 4.0]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.ReLU()).extend([nn.Tanh()])
    ml += [nn.Sigmoid()]
    assert len(ml) == 4 and [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2"]
    md = nn.ModuleDict([("a", nn.ReLU())])
    md["b"] = nn.Linear(1, 1)
    md.update({"c": nn.Tanh()})
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["b.weight", "b.bias"]
    assert isinstance(md.pop("a"), nn.ReLU) and list(md.keys()) == ["b", "c"]
    with pytest.raises(ValueError, match="pair"):
        md.update([nn.ReLU()])


# ---- layers ------------------------------------------------------------------------------------------------

def test_linear_default_init_is_pytorchs_distribution():
    interop.manual_seed(1)
    m = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = m.weight.numpy(force=True), m.bias.numpy(force=True)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound and abs(w.mean()) < 0.01 * bound
    interop.manual_seed(1)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.numpy(force=True), w)  # seeded: reproducible
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=interop.float64).weight.dtype == interop.float64


def test_layers_forward_match_pytorch():
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    leaves = [(a, b) for a, b in zip(zoo(nn).modules(), zoo(torch.nn).modules())
              if not a._modules and not list(a.parameters())]
    assert len(leaves) == 15
    for a, b in leaves:
        got = a(interop.tensor(x.copy())).numpy(force=True)
        np.testing.assert_allclose(got, b(torch.tensor(x.copy())).detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=repr(a))
    y = F.linear(interop.tensor(x), interop.ones(3, 10), interop.zeros(3))
    np.testing.assert_allclose(y.numpy(), np.repeat(x.sum(1, keepdims=True), 3, 1), rtol=1e-5)


def test_activation_modules_gradients():
    x = interop.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    for cls in (nn.ReLU, nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU, nn.LeakyReLU, nn.Mish):
        y = cls()(x).sum()
        y.backward()
        tx = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
        getattr(torch.nn, cls.__name__)()(tx).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=cls.__name__)
        x.grad = None


# ---- init --------------------------------------------------------------------------------------------------

def test_calculate_gain_and_fans_match_pytorch():
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("nope")
    for shape in [(3, 4), (8, 3, 5, 5), (2, 6, 7)]:
        assert nn.init._calculate_fan_in_and_fan_out(interop.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(interop.empty(3))


@pytest.mark.parametrize("fn, kwargs, std", [
    ("xavier_uniform_", {}, math.sqrt(2 / (200 + 300))),
    ("xavier_normal_", {"gain": 2.0}, 2 * math.sqrt(2 / (200 + 300))),
    ("kaiming_uniform_", {"nonlinearity": "relu"}, math.sqrt(2 / 300)),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / 200)),
    ("normal_", {"mean": 0.0, "std": 0.02}, 0.02),
    ("uniform_", {"a": -1.0, "b": 1.0}, 1 / math.sqrt(3)),
])
def test_random_inits_have_the_right_spread(fn, kwargs, std):
    interop.manual_seed(0)
    w = interop.empty(200, 300)
    assert getattr(nn.init, fn)(w, **kwargs) is w
    assert abs(float(w.data.std()) - std) < 0.02 * std and abs(float(w.data.mean())) < 0.02 * std
    interop.manual_seed(0)
    np.testing.assert_array_equal(getattr(nn.init, fn)(interop.empty(200, 300), **kwargs).numpy(), w.numpy())
    g = interop.Generator().manual_seed(5)
    a = getattr(nn.init, fn)(interop.empty(4, 5), generator=g).numpy().copy()
    b = getattr(nn.init, fn)(interop.empty(4, 5), generator=interop.Generator().manual_seed(5)).numpy()
    np.testing.assert_array_equal(a, b)


def test_deterministic_inits():
    w = interop.empty(3, 4, dtype=interop.bfloat16)
    assert nn.init.constant_(w, 0.5).tolist() == [[0.5] * 4] * 3
    assert nn.init.ones_(w).tolist() == [[1.0] * 4] * 3 and nn.init.zeros_(w).tolist() == [[0.0] * 4] * 3
    np.testing.assert_array_equal(nn.init.eye_(interop.empty(3, 4)).numpy(), np.eye(3, 4))
    t = nn.init.trunc_normal_(interop.empty(10000), std=1.0, a=-0.5, b=1.0)
    assert float(t.data.min()) >= -0.5 and float(t.data.max()) <= 1.0 and float(t.data.std()) > 0.3
    q = nn.init.orthogonal_(interop.empty(6, 4), gain=2.0).numpy()
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-5)
    q = nn.init.orthogonal_(interop.empty(3, 2, 4)).numpy().reshape(3, 8)
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-5)
    p = nn.Parameter(interop.zeros(2))
    nn.init.ones_(p)  # in place on a leaf that requires grad: allowed (no_grad inside)
    assert p.requires_grad and p.tolist() == [1.0, 1.0]


# ---- gradient clipping -------------------------------------------------------------------------------------

def _grads_pair(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (4,), (3, 2, 2)]]
    ours = [nn.Parameter(interop.zeros(*a.shape)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.zeros(*a.shape)) for a in arrays]
    for p, t, a in zip(ours, theirs, arrays):
        p.grad, t.grad = interop.tensor(a), torch.tensor(a)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    ours, theirs = _grads_pair()
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.dtype == interop.float32 and total.shape == ()
    np.testing.assert_allclose(total.numpy(), expected.numpy(), rtol=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_value_and_edge_cases():
    ours, theirs = _grads_pair(1)
    nn.utils.clip_grad_value_(ours, 0.3)
    torch.nn.utils.clip_grad_value_(theirs, 0.3)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
    p = nn.Parameter(interop.zeros(2))
    assert float(nn.utils.clip_grad_norm_(p, 1.0)) == 0.0  # no gradients: norm 0
    p.grad = interop.tensor([3.0, 4.0])
    assert float(nn.utils.clip_grad_norm_(p, 10.0)) == 5.0 and p.grad.tolist() == [3.0, 4.0]
    p.grad = interop.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


@pytest.mark.gpu
def test_cuda_module_forward_backward_clip_and_load():
    interop.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    gpu = copy.deepcopy(cpu)
    params = list(gpu.parameters())
    assert gpu.cuda() is gpu and all(p.is_cuda for p in gpu.parameters())
    assert [id(p) for p in gpu.parameters()] == [id(p) for p in params]
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    for m, xt in ((cpu, interop.tensor(x)), (gpu, interop.tensor(x, device="cuda"))):
        (m(xt) ** 2).sum().backward()
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        np.testing.assert_allclose(b.grad.cpu().numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-5)
    total_cpu = nn.utils.clip_grad_norm_(cpu.parameters(), 0.1)
    total_gpu = nn.utils.clip_grad_norm_(gpu.parameters(), 0.1)
    assert total_gpu.is_cuda and float(total_gpu) == pytest.approx(float(total_cpu), rel=1e-5)
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        np.testing.assert_allclose(b.grad.cpu().numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-6)
    gpu.zero_grad(set_to_none=False)
    assert float(gpu[0].weight.grad.sum()) == 0.0
    fresh = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).cuda()
    fresh.load_state_dict({k: v.numpy() for k, v in cpu.state_dict().items()})  # numpy into a CUDA model
    np.testing.assert_array_equal(fresh[2].bias.cpu().detach().numpy(), cpu[2].bias.detach().numpy())
    assert fresh[2].bias.is_cuda
    w = nn.init.kaiming_normal_(interop.empty(64, 32, device="cuda"))
    assert w.is_cuda and abs(float(w.data.std()) - math.sqrt(2 / (1 + 0.01**2) / 32)) < 0.05
    q = nn.init.orthogonal_(interop.empty(6, 4, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    assert gpu.cpu() is gpu and not gpu[0].weight.is_cuda
