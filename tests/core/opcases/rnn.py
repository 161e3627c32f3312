"""LSTM and GRU (interop.lstm / gru / lstm_cell / gru_cell, torch's functional signatures): one and two layers,
bidirectional, batch_first, with and without initial states and biases, cells; dynamic sequence and batch axes
in the export check. The numpy references are plain per-step loops written from the PyTorch formulas."""

from __future__ import annotations

import numpy as np

import interop

from . import OpCase, rnd


def _lib(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return interop


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _lstm_step(x, state, w_ih, w_hh, b):
    h, c = state
    i, f, g, o = np.split(x @ w_ih.T + h @ w_hh.T + b, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _gru_step(x, state, w_ih, w_hh, b):
    (h,) = state
    b_ih, b_hh = b
    xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, (h,)


def _ref(mode, L, bidir, batch_first, bias, n_states):
    """Reference multi-layer RNN on numpy arrays: (x, *states, *params) -> (output, *final states)."""
    D = 2 if bidir else 1
    step = _lstm_step if mode == "lstm" else _gru_step

    def run(x, *rest):
        states, params = rest[:n_states], rest[n_states:]
        if batch_first:
            x = x.transpose(1, 0, 2)
        T, B = x.shape[:2]
        per = 4 if bias else 2
        H = params[1].shape[1]
        G = params[1].shape[0]
        finals = [np.zeros((L * D, B, H)) for _ in range(2 if mode == "lstm" else 1)]
        for layer in range(L):
            outs = []
            for d in range(D):
                j = layer * D + d
                w_ih, w_hh, *bs = params[j * per:(j + 1) * per]
                if not bs:
                    bs = [np.zeros(G), np.zeros(G)]
                b = bs[0] + bs[1] if mode == "lstm" else bs
                st = tuple(s[j] for s in states) if states else tuple(np.zeros((B, H)) for _ in finals)
                ys = [None] * T
                for t in (reversed(range(T)) if d else range(T)):
                    ys[t], st = step(x[t], st, w_ih, w_hh, b)
                for f, s in zip(finals, st):
                    f[j] = s
                outs.append(np.stack(ys))
            x = np.concatenate(outs, axis=2)
        return (x.transpose(1, 0, 2) if batch_first else x, *finals)

    return run


def _seq(mode, L=1, bidir=False, batch_first=False, bias=True, hx=True, T=3, B=2, I=3, H=2, **kw):
    D = 2 if bidir else 1
    G = 4 if mode == "lstm" else 3
    ns = (2 if mode == "lstm" else 1) if hx else 0
    x = rnd(*((B, T, I) if batch_first else (T, B, I)), low=-1, high=1, seed=1)
    states = [rnd(L * D, B, H, low=-1, high=1, seed=2 + k) for k in range(ns)]
    params, seed = [], 10
    for layer in range(L):
        for _ in range(D):
            shapes = [(G * H, I if layer == 0 else D * H), (G * H, H)] + ([(G * H,), (G * H,)] if bias else [])
            for shape in shapes:
                params.append(rnd(*shape, low=-0.8, high=0.8, seed=seed))
                seed += 1

    def fn(x, *rest):
        lib = _lib(x)
        st, ps = rest[:ns], list(rest[ns:])
        if lib is not interop and not st:  # torch.lstm/gru need the states: zeros
            st = tuple(lib.zeros(L * D, x.shape[0 if batch_first else 1], H, dtype=x.dtype)
                       for _ in range(2 if mode == "lstm" else 1))
        if mode == "lstm":
            return lib.lstm(x, tuple(st) if st else None, ps, bias, L, 0.0, True, bidir, batch_first)
        return lib.gru(x, st[0] if st else None, ps, bias, L, 0.0, True, bidir, batch_first)

    seq_axes = {0: "batch", 1: "seq"} if batch_first else {0: "seq", 1: "batch"}
    dynamic = {0: seq_axes, **{1 + k: {1: "batch"} for k in range(ns)}}
    name = (f"{mode}_{L}layer" + ("_bidirectional" if bidir else "") + ("_batch_first" if batch_first else "")
            + ("" if bias else "_nobias") + ("" if hx else "_nohx"))
    return OpCase(mode.upper(), fn, [x, *states, *params], _ref(mode, L, bidir, batch_first, bias, ns), name=name,
                  dynamic=dynamic, **kw)


def _cell(mode, bias=True, hx=True, B=3, I=4, H=3):
    G = 4 if mode == "lstm" else 3
    ns = (2 if mode == "lstm" else 1) if hx else 0
    x = rnd(B, I, low=-1, high=1, seed=1)
    states = [rnd(B, H, low=-1, high=1, seed=2 + k) for k in range(ns)]
    params = [rnd(G * H, I, low=-0.8, high=0.8, seed=5), rnd(G * H, H, low=-0.8, high=0.8, seed=6)]
    if bias:
        params += [rnd(G * H, low=-0.8, high=0.8, seed=7), rnd(G * H, low=-0.8, high=0.8, seed=8)]

    def fn(x, *rest):
        lib = _lib(x)
        st, ps = rest[:ns], rest[ns:]
        if lib is not interop and not st:
            st = tuple(lib.zeros(x.shape[0], H, dtype=x.dtype) for _ in range(2 if mode == "lstm" else 1))
        if mode == "lstm":
            return lib.lstm_cell(x, tuple(st) if st else None, *ps)
        return lib.gru_cell(x, st[0] if st else None, *ps)

    def ref(x, *rest):
        st, ps = rest[:ns], rest[ns:]
        seq = _ref(mode, 1, False, False, bias, ns)(x[None], *(s[None] for s in st), *ps)
        return tuple(s[0] for s in seq[1:]) if mode == "lstm" else seq[1][0]

    name = f"{mode}_cell" + ("" if bias else "_nobias") + ("" if hx else "_nohx")
    return OpCase(mode.upper(), fn, [x, *states, *params], ref, name=name, dynamic={0: {0: "batch"},
                  **{1 + k: {0: "batch"} for k in range(ns)}})


CASES = [
    *(case for mode in ("lstm", "gru") for case in (
        _seq(mode),
        _seq(mode, bias=False, hx=False),
        _seq(mode, bidir=True),
        _seq(mode, batch_first=True, hx=False),
        _seq(mode, L=2),
        _seq(mode, L=2, bidir=True, batch_first=True, T=4, I=2),
        _seq(mode, L=2, bidir=True, bias=False, hx=False, B=1),
        _cell(mode),
        _cell(mode, bias=False, hx=False),
    )),
]
