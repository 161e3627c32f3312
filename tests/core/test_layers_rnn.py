"""nn.LSTM, nn.GRU, nn.LSTMCell and nn.GRUCell against PyTorch: the same weights (loaded by name from PyTorch's
state_dict) give the same outputs, final states and gradients of every parameter, input and initial state.
Also: init, errors, inter-layer dropout, once-differentiable backward, ONNX export of the modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn

RNG = np.random.default_rng(0)


def _pair(kind: str, *args, **kwargs):
    """The same layer in both libraries, interop's loaded from PyTorch's state_dict by name."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(*args, **kwargs).double()
    mine = getattr(nn, kind)(*args, **kwargs).double()
    missing = mine.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    assert not missing.missing_keys and not missing.unexpected_keys
    return mine, theirs


def _both(a: np.ndarray) -> tuple[interop.Tensor, torch.Tensor]:
    return interop.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


def _flat(x):
    if isinstance(x, (tuple, list)):
        return [t for o in x for t in _flat(o)]
    return [x]


def _compare(mine, theirs, got, want, inputs):
    got, want = _flat(got), _flat(want)
    assert len(got) == len(want)
    loss_m, loss_t = 0, 0
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape)
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-10, atol=1e-12)
        wt = RNG.standard_normal(tuple(w.shape))
        loss_m = loss_m + (g * interop.tensor(wt)).sum()
        loss_t = loss_t + (w * torch.tensor(wt)).sum()
    loss_m.backward()
    loss_t.backward()
    for (name, p), (tname, tp) in zip(mine.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    for k, (m, t) in enumerate(inputs):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=f"input {k}")


SEQ_CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=1, batch_first=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=1, bias=False),
    dict(num_layers=3, bias=False, bidirectional=True),
]


def _cfg_id(c):
    return "-".join(f"{k}={v}" for k, v in c.items())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("cfg", SEQ_CONFIGS, ids=_cfg_id)
@pytest.mark.parametrize("with_states", [False, True], ids=["zeros", "states"])
def test_sequence_layers_match_pytorch(kind, cfg, with_states):
    T, B, I, H = 5, 3, 4, 6
    mine, theirs = _pair(kind, I, H, **cfg)
    D = 2 if cfg.get("bidirectional") else 1
    x = RNG.standard_normal((B, T, I) if cfg.get("batch_first") else (T, B, I))
    inputs = [_both(x)]
    if with_states:
        inputs += [_both(RNG.standard_normal((cfg["num_layers"] * D, B, H))) for _ in range(2 if kind == "LSTM"
                                                                                             else 1)]
    states_m = [m for m, _ in inputs[1:]]
    states_t = [t for _, t in inputs[1:]]
    hx_m = None if not with_states else (tuple(states_m) if kind == "LSTM" else states_m[0])
    hx_t = None if not with_states else (tuple(states_t) if kind == "LSTM" else states_t[0])
    _compare(mine, theirs, mine(inputs[0][0], hx_m), theirs(inputs[0][1], hx_t), inputs)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_sequence(kind, batch_first):
    mine, theirs = _pair(kind, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = _both(RNG.standard_normal((5, 3)))
    states = [_both(RNG.standard_normal((4, 4))) for _ in range(2 if kind == "LSTM" else 1)]
    hx_m = tuple(m for m, _ in states) if kind == "LSTM" else states[0][0]
    hx_t = tuple(t for _, t in states) if kind == "LSTM" else states[0][1]
    _compare(mine, theirs, mine(x[0], hx_m), theirs(x[1], hx_t), [x, *states])


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_pytorch(kind, bias, batched):
    mine, theirs = _pair(kind, 4, 5, bias=bias)
    shape = (3,) if batched else ()
    x = _both(RNG.standard_normal((*shape, 4)))
    states = [_both(RNG.standard_normal((*shape, 5))) for _ in range(2 if kind == "LSTMCell" else 1)]
    hx_m = tuple(m for m, _ in states) if kind == "LSTMCell" else states[0][0]
    hx_t = tuple(t for _, t in states) if kind == "LSTMCell" else states[0][1]
    _compare(mine, theirs, mine(x[0], hx_m), theirs(x[1], hx_t), [x, *states])


def test_cell_loop_matches_sequence_layer():
    """An LSTMCell unrolled by hand over a sequence equals nn.LSTM with the same weights, gradients included."""
    seq = nn.LSTM(3, 4).double()
    cell = nn.LSTMCell(3, 4).double()
    cell.load_state_dict({k[:-3]: v for k, v in seq.state_dict().items()})
    x = interop.tensor(RNG.standard_normal((6, 2, 3)))
    _, (h, c) = seq(x)
    state = None
    for t in range(6):
        state = cell(x[t], state)
    np.testing.assert_allclose(state[0].detach().numpy(), h[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(state[1].detach().numpy(), c[0].detach().numpy(), rtol=1e-12)
    (state[0].sum() + state[1].sum()).backward()
    (h.sum() + c.sum()).backward()
    np.testing.assert_allclose(cell.weight_hh.grad.numpy(), seq.weight_hh_l0.grad.numpy(), rtol=1e-10)


def test_parameter_names_shapes_and_init_match_pytorch():
    for kind, gates in (("LSTM", 4), ("GRU", 3)):
        mine = getattr(nn, kind)(10, 20, num_layers=2, bidirectional=True)
        theirs = getattr(torch.nn, kind)(10, 20, num_layers=2, bidirectional=True)
        assert [(n, tuple(p.shape)) for n, p in mine.named_parameters()] == \
               [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        assert mine.weight_ih_l1_reverse.shape == (gates * 20, 40)
        assert repr(mine) == repr(theirs)
        bound = 1 / math.sqrt(20)
        values = np.concatenate([p.detach().numpy().ravel() for p in mine.parameters()])
        assert values.min() >= -bound and values.max() <= bound and values.std() > bound / 2
        assert len(mine.all_weights) == 4 and len(mine._flat_weights) == 16
    for kind in ("LSTMCell", "GRUCell"):
        assert [(n, tuple(p.shape)) for n, p in getattr(nn, kind)(3, 4, bias=False).named_parameters()] == \
               [(n, tuple(p.shape)) for n, p in getattr(torch.nn, kind)(3, 4, bias=False).named_parameters()]
    assert repr(nn.LSTM(3, 4, bias=False, batch_first=True, dropout=0.5, num_layers=2)) == \
        repr(torch.nn.LSTM(3, 4, bias=False, batch_first=True, dropout=0.5, num_layers=2))


def test_float32_layer_matches_pytorch_and_keeps_dtype():
    torch.manual_seed(0)
    theirs = torch.nn.GRU(8, 16, batch_first=True)
    mine = nn.GRU(8, 16, batch_first=True)
    mine.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    x = RNG.standard_normal((4, 7, 8)).astype(np.float32)
    out, h = mine(interop.tensor(x))
    assert out.dtype == interop.float32 and h.dtype == interop.float32
    np.testing.assert_allclose(out.detach().numpy(), theirs(torch.tensor(x))[0].detach().numpy(), atol=1e-5)


def test_half_precision_computes_in_float32():
    m = nn.LSTM(4, 3)
    x = interop.tensor(RNG.standard_normal((5, 2, 4)).astype(np.float32))
    ref, _ = m(x)
    out, (h, c) = m.half()(x.half())
    assert out.dtype == interop.float16 and h.dtype == c.dtype == interop.float16
    np.testing.assert_allclose(out.detach().numpy().astype(np.float32), ref.detach().numpy(), atol=5e-3)
    out.float().sum().backward()
    assert m.weight_ih_l0.grad.dtype == interop.float16


def test_errors_use_pytorch_wording():
    m = nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 5"):
        m(interop.zeros(2, 1, 5))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        m(interop.zeros(2, 1, 1, 4))
    with pytest.raises(RuntimeError, match="Expected hidden\\[0\\] size \\(2, 1, 3\\), got \\[1, 1, 3\\]"):
        m(interop.zeros(2, 1, 4), (interop.zeros(1, 1, 3), interop.zeros(2, 1, 3)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx and cx should also be 3-D"):
        m(interop.zeros(2, 1, 4), (interop.zeros(1, 3), interop.zeros(1, 3)))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"):
        nn.GRU(4, 3)(interop.zeros(2, 4), interop.zeros(1, 1, 3))
    with pytest.raises(TypeError, match="hx must be a tuple"):
        m(interop.zeros(2, 1, 4), interop.zeros(2, 1, 3))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        m(interop.zeros(0, 1, 4))
    with pytest.raises(ValueError, match="input must have the type float32, got type float64"):
        m(interop.zeros(2, 1, 4, dtype=interop.float64))
    with pytest.raises(NotImplementedError, match="proj_size > 0"):
        nn.LSTM(4, 8, proj_size=2)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.RNNBase("GRU", 4, 8, proj_size=2)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(4, 3, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.LSTM(4, 0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(4, 3, dropout=0.2)
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        nn.GRUCell(4, 3)(interop.zeros(2, 4), interop.zeros(3, 3))
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 5 expected 4"):
        nn.LSTMCell(4, 3)(interop.zeros(2, 5))
    with pytest.raises(ValueError, match="GRUCell: Expected input to be 1D or 2D, got 3D instead"):
        nn.GRUCell(4, 3)(interop.zeros(1, 2, 4))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_inter_layer_dropout(kind):
    """Training-mode dropout between layers: seeded (manual_seed replays it), equal to running the layers one at
    a time with F.dropout between them, absent in eval mode and from the last layer's output."""
    m = getattr(nn, kind)(3, 4, num_layers=2, dropout=0.5).double()
    x = interop.tensor(RNG.standard_normal((6, 2, 3)))
    interop.manual_seed(1)
    a, _ = m(x)
    interop.manual_seed(1)
    b, _ = m(x)
    c, _ = m(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    first = getattr(nn, kind)(3, 4).double()
    second = getattr(nn, kind)(4, 4).double()
    sd = m.state_dict()
    first.load_state_dict({k: v for k, v in sd.items() if k.endswith("l0")})
    second.load_state_dict({k.replace("l1", "l0"): v for k, v in sd.items() if k.endswith("l1")})
    interop.manual_seed(1)
    y, _ = first(x)
    want, _ = second(nn.functional.dropout(y, 0.5, True))
    np.testing.assert_allclose(a.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    # gradients through the dropped layer input, checked against finite differences with the mask replayed
    w = m.weight_ih_l1

    def f(w_):
        interop.manual_seed(1)
        return interop.ops.rnn.lstm(x, None, [*m._flat_weights[:4], w_, *m._flat_weights[5:]], True, 2, 0.5,
                                    True, False, False)[0] if kind == "LSTM" else \
            interop.ops.rnn.gru(x, None, [*m._flat_weights[:4], w_, *m._flat_weights[5:]], True, 2, 0.5, True,
                                False, False)[0]

    assert interop.autograd.gradcheck(f, [interop.tensor(w.detach().numpy().copy(), requires_grad=True)])
    m.eval()
    e1, _ = m(x)
    e2, _ = m(x)
    np.testing.assert_array_equal(e1.detach().numpy(), e2.detach().numpy())


def test_gradcheck_through_the_layer():
    m = nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True).double()
    x = interop.tensor(RNG.standard_normal((2, 3, 2)), requires_grad=True)
    h0 = interop.tensor(RNG.standard_normal((4, 2, 3)), requires_grad=True)
    assert interop.autograd.gradcheck(lambda x_, h_: m(x_, h_)[0], [x, h0])


def test_create_graph_is_once_differentiable():
    m = nn.LSTM(3, 4).double()
    x = interop.tensor(RNG.standard_normal((5, 2, 3)), requires_grad=True)
    out, _ = m(x)
    (gx,) = interop.grad(out.sum(), x, create_graph=True)
    ref = interop.grad(m(x)[0].sum(), x)[0]
    np.testing.assert_allclose(gx.detach().numpy(), ref.numpy())
    assert gx.requires_grad
    with pytest.raises(RuntimeError, match="double backward through LSTM is not supported"):
        (gx * gx).sum().backward()


def test_in_place_edit_of_a_saved_weight_is_detected():
    m = nn.GRU(3, 4)
    out, _ = m(interop.zeros(2, 1, 3))
    with interop.no_grad():
        m.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_output_is_not_a_view_of_saved_state():
    m = nn.LSTM(3, 4).double()
    x = interop.tensor(RNG.standard_normal((5, 2, 3)))
    out, _ = m(x)
    ref = interop.grad(out.sum(), m.weight_hh_l0, retain_graph=True)[0].numpy().copy()
    with interop.no_grad():
        out.data[...] = 0  # scribbling on the returned array must not corrupt the backward
    np.testing.assert_allclose(interop.grad(out.sum(), m.weight_hh_l0)[0].numpy(), ref)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("cfg", [dict(num_layers=2, bidirectional=True, batch_first=True),
                                 dict(num_layers=1, dropout=0.0)], ids=_cfg_id)
def test_module_exports_to_fused_onnx_nodes(kind, cfg):
    """Eval-mode export: one ONNX LSTM/GRU node per layer, reordered weights folded into initializers named after
    the parameters, dynamic batch and sequence verified in ONNX Runtime at several sizes."""
    onnx = pytest.importorskip("onnx")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, kind)(5, 4, **cfg)

        def forward(self, x, h):
            out, hn = self.rnn(x, h)
            return out, hn[0] if kind == "LSTM" else hn

    net = Net().eval()
    L, D = cfg.get("num_layers", 1), 2 if cfg.get("bidirectional") else 1
    x = interop.randn(3, 7, 5) if cfg.get("batch_first") else interop.randn(7, 3, 5)
    h = interop.randn(L * D, 3, 4)
    h = (h, interop.randn(L * D, 3, 4)) if kind == "LSTM" else h
    seq = {0: "batch", 1: "seq"} if cfg.get("batch_first") else {0: "seq", 1: "batch"}
    names = ["x", "h", "c"] if kind == "LSTM" else ["x", "h"]
    dyn = {"x": seq, **{n: {1: "batch"} for n in names[1:]}}
    proto = interop.export(net, (x, h), input_names=names, dynamic=dyn)  # verifies in ONNX Runtime
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count(kind) == L
    assert not {"Gather", "MatMul", "Sigmoid", "Tanh"} & set(ops)
    inits = {i.name for i in proto.graph.initializer}
    assert any(n.startswith("rnn.weight_hh_l0") for n in inits)
    assert isinstance(proto, onnx.ModelProto)


def test_training_mode_dropout_refuses_export():
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.3)
    with pytest.raises(Exception, match="dropout between layers in training mode"):
        interop.export(lambda x: m(x)[0], (interop.randn(4, 2, 3),), verify=False)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_cuda_matches_cpu(kind):
    m = getattr(nn, kind)(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = interop.randn(3, 6, 4)
    out, _ = m(x)
    out.sum().backward()
    ref_out, ref_grad = out.detach().numpy().copy(), m.weight_hh_l1.grad.numpy().copy()
    m.zero_grad()
    m.cuda()
    out_c, _ = m(x.cuda())
    out_c.sum().backward()
    np.testing.assert_allclose(out_c.detach().cpu().numpy(), ref_out, atol=1e-5)
    np.testing.assert_allclose(m.weight_hh_l1.grad.cpu().numpy(), ref_grad, atol=1e-4)
