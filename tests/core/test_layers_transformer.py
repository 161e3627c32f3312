"""MultiheadAttention and the Transformer layers against PyTorch: given PyTorch's state_dict (same names, same
shapes), outputs, attention weights, input gradients and every parameter gradient match, in training mode
(dropout 0) and in eval mode (where PyTorch takes its fused fast paths). Also: dropout inside attention, double
backward through the attention op, export to ONNX (fused Attention at opset 23) and PyTorch's error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
from interop.nn import functional as F

# some cases mix bool and float masks on purpose (both libraries canonicalize them alike, and both warn)
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched")


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def pair(name, *args, **kw):
    """The same layer in both libraries, with PyTorch's (random) weights loaded into interop's."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(*args, **kw)
    mine = getattr(nn, name)(*args, **kw)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for (k, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
        assert tuple(a.shape) == tuple(b.shape), k
    mine.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return theirs, mine


def run_both(theirs, mine, args, kwargs=None, train=True, atol=2e-5, grad=True):
    """Call both layers; compare every output, then (with fixed random weights on the outputs) the gradients of
    the float inputs and of every parameter. `args`: arrays (a repeated array object is passed as the same
    tensor, so self-attention's packed path is taken); `kwargs`: arrays or plain values."""
    kwargs = kwargs or {}
    theirs.train(train)
    mine.train(train)
    outs = []
    for lib in (torch, interop):
        made = {}

        def tensor(a, rg, lib=lib, made=made):
            if not isinstance(a, np.ndarray):
                return a
            if id(a) not in made:
                t = lib.tensor(a)
                if rg and a.dtype.kind == "f":
                    t.requires_grad_()
                made[id(a)] = t
            return made[id(a)]

        ins = [tensor(a, grad) for a in args]
        kw = {k: tensor(v, False) for k, v in kwargs.items()}
        with (lib.enable_grad() if grad else lib.no_grad()):
            out = (theirs if lib is torch else mine)(*ins, **kw)
        out = [o for o in (out if isinstance(out, tuple) else (out,)) if o is not None]
        outs.append((ins, out))
    (t_in, t_out), (m_in, m_out) = outs
    assert len(t_out) == len(m_out)
    for t, m in zip(t_out, m_out):
        assert tuple(m.shape) == tuple(t.shape)
        np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), atol=atol, rtol=1e-4)
    if not grad:
        return
    weights = [data(*t.shape, seed=7 + i) for i, t in enumerate(t_out)]
    sum(((t * torch.tensor(w)).sum() for t, w in zip(t_out, weights)), torch.zeros(())).backward()
    sum(((m * interop.tensor(w)).sum() for m, w in zip(m_out, weights)), interop.zeros(())).backward()
    for i, (t, m) in enumerate(zip(t_in, m_in)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=atol * 5, rtol=1e-3,
                                       err_msg=f"input {i}")
    t_params = dict(theirs.named_parameters())
    for k, p in mine.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[k].grad.numpy(), atol=atol * 5, rtol=1e-3, err_msg=k)


def padding(n, s, seed=3):
    """A key padding mask (True = ignore) that leaves every row at least one key."""
    m = np.random.default_rng(seed).random((n, s)) > 0.6
    m[:, 0] = False
    return m


# ---- MultiheadAttention -----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_self_attention_packed(batch_first):
    theirs, mine = pair("MultiheadAttention", 16, 4, batch_first=batch_first)
    x = data(3, 5, 16)
    run_both(theirs, mine, [x, x, x])  # need_weights=True: the averaged weights are compared too
    run_both(theirs, mine, [x, x, x], {"need_weights": False})
    run_both(theirs, mine, [x, x, x], {"average_attn_weights": False})


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_masks(batch_first):
    theirs, mine = pair("MultiheadAttention", 16, 4, batch_first=batch_first)
    n, s = 3, 5
    x = data(n, s, 16) if batch_first else data(s, n, 16)
    kpm = padding(n, s)
    causal = np.triu(np.ones((s, s), bool), 1)
    per_head = np.random.default_rng(5).random((n * 4, s, s)) > 0.7
    per_head[..., 0] = False
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": kpm})
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": kpm, "need_weights": False})
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": np.where(kpm, -1e9, 0.0).astype(np.float32),
                                       "attn_mask": data(s, s, seed=4)})
    run_both(theirs, mine, [x, x, x], {"attn_mask": causal, "key_padding_mask": kpm})
    run_both(theirs, mine, [x, x, x], {"attn_mask": per_head})
    run_both(theirs, mine, [x, x, x], {"attn_mask": causal, "is_causal": True, "need_weights": False})
    run_both(theirs, mine, [x, x, x], {"attn_mask": causal, "is_causal": True, "key_padding_mask": kpm,
                                       "need_weights": False})


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_cross_attention(batch_first):
    theirs, mine = pair("MultiheadAttention", 16, 2, batch_first=batch_first)
    q = data(2, 4, 16, seed=1) if batch_first else data(4, 2, 16, seed=1)
    mem = data(2, 6, 16, seed=2) if batch_first else data(6, 2, 16, seed=2)
    run_both(theirs, mine, [q, mem, mem], {"key_padding_mask": padding(2, 6)})  # key is value: two GEMMs
    run_both(theirs, mine, [q, mem, data(*mem.shape, seed=3)])  # three projections


def test_mha_kdim_vdim_bias_kv_zero_attn_no_bias():
    theirs, mine = pair("MultiheadAttention", 8, 2, kdim=5, vdim=3, batch_first=True)
    assert mine.in_proj_weight is None and tuple(mine.k_proj_weight.shape) == (8, 5)
    run_both(theirs, mine, [data(2, 4, 8), data(2, 6, 5, seed=1), data(2, 6, 3, seed=2)],
             {"key_padding_mask": padding(2, 6)})
    theirs, mine = pair("MultiheadAttention", 8, 2, add_bias_kv=True, add_zero_attn=True)
    x = data(4, 2, 8)
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": np.where(padding(2, 4), -np.inf, 0).astype(np.float32),
                                       "attn_mask": data(4, 4, seed=5)})
    theirs, mine = pair("MultiheadAttention", 8, 2, bias=False, batch_first=True)
    assert mine.in_proj_bias is None and mine.out_proj.bias is None
    run_both(theirs, mine, [x, x, x])


def test_mha_unbatched():
    theirs, mine = pair("MultiheadAttention", 8, 2, batch_first=True)  # batch_first is ignored for 2-D inputs
    x = data(5, 8)
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": padding(1, 5)[0]})
    run_both(theirs, mine, [x, data(7, 8, seed=1), data(7, 8, seed=2)], {"average_attn_weights": False})


def test_mha_eval_fast_path():
    """PyTorch's eval fast path (native MHA, taken under no_grad) gives the same numbers."""
    theirs, mine = pair("MultiheadAttention", 16, 4, batch_first=True)
    x = data(3, 5, 16)
    run_both(theirs, mine, [x, x, x], {"key_padding_mask": padding(3, 5)}, train=False, grad=False)
    run_both(theirs, mine, [x, x, x], {"need_weights": False}, train=False, grad=False)


def test_mha_repr_and_reset():
    m = nn.MultiheadAttention(8, 2)
    assert repr(m) == repr(torch.nn.MultiheadAttention(8, 2))
    assert np.all(m.in_proj_bias.detach().numpy() == 0) and np.all(m.out_proj.bias.detach().numpy() == 0)
    bound = math.sqrt(6 / (8 + 24))  # xavier_uniform over (3E, E)
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and w.std() > bound / 3


def test_mha_errors_read_like_pytorch():
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        nn.MultiheadAttention(0, 2)
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(8, 2)
    x = interop.tensor(data(4, 2, 8))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is \(3, 4\), but should be \(4, 4\)"):
        m(x, x, x, attn_mask=interop.zeros(3, 4))
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        m(x, x[0], x[0])
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask are supported"):
        m(x, x, x, key_padding_mask=interop.zeros(2, 4, dtype=interop.int64))


def test_functional_multi_head_attention_forward():
    theirs = torch.nn.MultiheadAttention(8, 2)
    x = data(4, 3, 8)
    args = [theirs.in_proj_weight, theirs.in_proj_bias, None, None, False, 0.0, theirs.out_proj.weight,
            theirs.out_proj.bias]
    static = {"static_k": data(6, 5, 4, seed=1), "static_v": data(6, 5, 4, seed=2)}  # (N * heads, S, head_dim)
    for kw in ({}, static):
        want = torch.nn.functional.multi_head_attention_forward(
            *[torch.tensor(x)] * 3, 8, 2, *args, **{k: torch.tensor(v) for k, v in kw.items()})
        got = F.multi_head_attention_forward(
            *[interop.tensor(x)] * 3, 8, 2,
            *[interop.tensor(a.detach().numpy()) if isinstance(a, torch.Tensor) else a for a in args],
            **{k: interop.tensor(v) for k, v in kw.items()})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), atol=1e-5)


# ---- encoder and decoder layers ---------------------------------------------------------------------------

LAYER_CONFIGS = [(bf, nf, act) for bf in (True, False) for nf in (False, True) for act in ("relu", "gelu")]


@pytest.mark.parametrize("batch_first,norm_first,activation", LAYER_CONFIGS)
def test_encoder_layer(batch_first, norm_first, activation):
    theirs, mine = pair("TransformerEncoderLayer", 16, 4, 32, dropout=0.0, batch_first=batch_first,
                        norm_first=norm_first, activation=activation)
    n, s = 3, 6
    x = data(n, s, 16) if batch_first else data(s, n, 16)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(s).numpy()
    run_both(theirs, mine, [x])
    run_both(theirs, mine, [x], {"src_key_padding_mask": padding(n, s)})
    run_both(theirs, mine, [x], {"src_mask": causal, "is_causal": True})
    run_both(theirs, mine, [x], {"src_mask": np.triu(np.ones((s, s), bool), 1), "src_key_padding_mask": padding(n, s)})


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_eval_fast_path(norm_first):
    """In eval under no_grad PyTorch runs its fused encoder-layer kernel; the numbers agree."""
    theirs, mine = pair("TransformerEncoderLayer", 16, 4, 32, batch_first=True, norm_first=norm_first)
    x = data(3, 6, 16)
    run_both(theirs, mine, [x], train=False, grad=False)
    run_both(theirs, mine, [x], {"src_key_padding_mask": padding(3, 6)}, train=False, grad=False)


def test_encoder_layer_callable_activation():
    theirs, mine = pair("TransformerEncoderLayer", 8, 2, 16, dropout=0.0)
    theirs.activation, mine.activation = torch.nn.functional.silu, F.silu
    run_both(theirs, mine, [data(4, 2, 8)])
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")


@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_stack(batch_first):
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=batch_first)
    theirs = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(16), enable_nested_tensor=False)
    mine = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=batch_first), 2,
                                 norm=nn.LayerNorm(16), enable_nested_tensor=False)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert "layers.1.self_attn.in_proj_weight" in mine.state_dict()
    assert mine.layers[0].linear1.weight is not mine.layers[1].linear1.weight  # deep copies
    mine.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    n, s = 2, 5
    x = data(n, s, 16) if batch_first else data(s, n, 16)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(s).numpy()
    run_both(theirs, mine, [x], {"mask": causal})  # is_causal=None: detected from the mask
    run_both(theirs, mine, [x], {"mask": causal, "src_key_padding_mask": padding(n, s)})


@pytest.mark.parametrize("batch_first,norm_first,activation", LAYER_CONFIGS[::3])
def test_decoder_layer(batch_first, norm_first, activation):
    theirs, mine = pair("TransformerDecoderLayer", 16, 4, 32, dropout=0.0, batch_first=batch_first,
                        norm_first=norm_first, activation=activation)
    n, t, s = 2, 4, 6
    tgt = data(n, t, 16, seed=1) if batch_first else data(t, n, 16, seed=1)
    mem = data(n, s, 16, seed=2) if batch_first else data(s, n, 16, seed=2)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(t).numpy()
    run_both(theirs, mine, [tgt, mem])
    run_both(theirs, mine, [tgt, mem], {"tgt_mask": causal, "tgt_is_causal": True, "memory_key_padding_mask":
                                        padding(n, s), "tgt_key_padding_mask": padding(n, t)})


def test_transformer():
    torch.manual_seed(0)
    kw = dict(d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=24, dropout=0.0,
              batch_first=True)
    theirs, mine = torch.nn.Transformer(**kw), nn.Transformer(**kw)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    mine.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    src, tgt = data(2, 6, 16, seed=1), data(2, 4, 16, seed=2)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    run_both(theirs, mine, [src, tgt], {"tgt_mask": mask.numpy(), "src_key_padding_mask": padding(2, 6),
                                        "memory_key_padding_mask": padding(2, 6)})
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        mine(interop.tensor(src), interop.tensor(data(3, 4, 16)))


# ---- dropout inside attention, double backward ------------------------------------------------------------

def test_attention_dropout_statistics_and_gradient():
    q, k, v = (interop.tensor(data(2, 2, 64, 8, seed=i)) for i in range(3))
    interop.manual_seed(0)
    out, w = _with_weights(q, k, v, 0.25)
    plain = _with_weights(q, k, v, 0.0)[1].numpy()
    dropped = w.numpy() == 0
    assert abs(dropped.mean() - 0.25) < 0.02  # each weight is dropped with probability p
    np.testing.assert_allclose(w.numpy()[~dropped], plain[~dropped] / 0.75, rtol=1e-5)  # survivors scaled
    np.testing.assert_allclose(out.numpy(), w.numpy() @ v.numpy(), rtol=1e-4, atol=1e-5)
    interop.manual_seed(0)
    np.testing.assert_array_equal(_with_weights(q, k, v, 0.25)[1].numpy(), w.numpy())  # seeded: reproducible
    # the backward uses the forward's mask: finite differences agree when every call draws the same mask
    q, k, v = (interop.tensor(data(1, 2, 3, 4, seed=i).astype(np.float64), requires_grad=True) for i in range(3))

    def fn(q, k, v):
        interop.manual_seed(1)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    assert interop.autograd.gradcheck(fn, (q, k, v))


def _with_weights(q, k, v, p):
    from interop.ops.attention import attention

    return attention(q, k, v, dropout_p=p, need_weights=True)


def test_attention_double_backward_matches_pytorch():
    mask = np.random.default_rng(3).random((3, 3)) > 0.3
    mask[:, 0] = True
    grads = []
    for lib in (torch, interop):
        q, k, v = (lib.tensor(data(2, 3, 4, seed=i).astype(np.float64), requires_grad=True) for i in range(3))
        fn = torch.nn.functional.scaled_dot_product_attention if lib is torch else F.scaled_dot_product_attention
        out = fn(q, k, v, attn_mask=lib.tensor(mask))
        gq, gk, gv = (torch.autograd.grad if lib is torch else interop.autograd.grad)(
            (out * out).sum(), (q, k, v), create_graph=True)
        second = (torch.autograd.grad if lib is torch else interop.autograd.grad)(
            (gq * gq).sum() + (gk * gv).sum(), (q, k, v))
        grads.append([g.detach().numpy() for g in (gq, gk, gv, *second)])
    for t, m in zip(*grads):
        np.testing.assert_allclose(m, t, rtol=1e-7, atol=1e-9)


def test_sdpa_errors_read_like_pytorch():
    q = interop.tensor(data(2, 3, 4))
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=interop.ones(3, 3, dtype=interop.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="Expected query, key, and value to have the same dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype to be bool or float or to match query dtype"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=interop.zeros(3, 3, dtype=interop.int64))
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=interop.zeros(5, 2, 3, 3))
    with pytest.raises(RuntimeError, match="Number of heads in key and value must divide"):
        F.scaled_dot_product_attention(interop.tensor(data(1, 3, 2, 4)), q[None], q[None], enable_gqa=True)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


# ---- export -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [21, 23])
def test_encoder_exports_with_dynamic_batch_and_sequence(opset):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    interop.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2).eval()
    x = interop.tensor(data(2, 5, 16))
    kpm = interop.tensor(padding(2, 5))

    def encode(x, kpm):
        return model(x, src_key_padding_mask=kpm)

    proto = interop.export(encode, (x, kpm), input_names=["x", "kpm"], opset=opset,
                           dynamic={"x": {0: "batch", 1: "seq"}, "kpm": {0: "batch", 1: "seq"}}, verify=False)
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Attention") == (2 if opset >= 23 else 0) and ops.count("LayerNormalization") == 4
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, s in ((2, 5), (3, 7)):
        xs, ks = data(n, s, 16, seed=n), padding(n, s, seed=s)
        with interop.no_grad():
            want = model(interop.tensor(xs), src_key_padding_mask=interop.tensor(ks)).numpy()
        got = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), (xs, ks))})[0]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_causal_mha_exports_with_dynamic_sequence():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    interop.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()

    def causal_self_attention(x):
        return F.scaled_dot_product_attention(x.unflatten(-1, (2, 4)).transpose(1, 2),
                                              x.unflatten(-1, (2, 4)).transpose(1, 2),
                                              x.unflatten(-1, (2, 4)).transpose(1, 2), is_causal=True)

    for fn in (causal_self_attention, lambda x: mha(x, x, x)[0]):
        x = interop.tensor(data(2, 5, 8))
        proto = interop.export(fn, (x,), input_names=["x"], dynamic={"x": {1: "seq"}}, verify=False)
        onnx.checker.check_model(proto, full_check=True)
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        for s in (5, 9):
            xs = data(2, s, 8, seed=s)
            with interop.no_grad():
                want = fn(interop.tensor(xs)).numpy()
            np.testing.assert_allclose(sess.run(None, {"x": xs})[0], want, atol=1e-5, rtol=1e-4)


# ---- GPU ----------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_attention_on_cuda_matches_cpu():
    mask = np.random.default_rng(3).random((1, 5, 7)) > 0.3
    res = []
    for dev in ("cpu", "cuda"):
        q, k, v = (interop.tensor(data(2, 3, n, 8, seed=i), device=dev, requires_grad=True)
                   for i, n in enumerate((5, 7, 7)))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=interop.tensor(mask, device=dev))
        (out * out).sum().backward()
        res.append([t.detach().cpu().numpy() for t in (out, q.grad, k.grad, v.grad)])
    for a, b in zip(*res):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-4)
