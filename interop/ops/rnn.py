"""Recurrent networks: LSTM and GRU, each one op over the whole sequence (all layers and directions).

Per layer and direction the forward makes one GEMM for the input projections of every time step, then loops
over time with one GEMM (the recurrent projection) and a few fused in-place ufuncs into preallocated buffers.
The gate nonlinearities share one `tanh`: sigmoid(z) = 0.5 tanh(z / 2) + 0.5, with the 1/2 folded into the
weight rows of the sigmoid gates. Backward through time precomputes every gate derivative for all steps in a
handful of large vectorized ops, loops over time only for the recurrent GEMM and the cell-state chain, and
finishes with one GEMM per weight gradient from the stacked per-step pre-activation gradients.

Gate orders and parameter layouts are PyTorch's (LSTM rows i, f, g, o; GRU rows r, z, n with b_hn inside the
r-product), so PyTorch state dicts load by name. The ONNX lowering emits ONNX `LSTM` / `GRU` nodes (one per
layer), reordering the rows with a `Gather` on the parameter values that constant folding turns into named
initializers. The backward is written on raw arrays: it is once-differentiable, as cuDNN RNNs in PyTorch are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .. import dtypes
from .._state import state
from ..autograd import Op
from ..backend import device_of, xp_of
from ..creation import default_generator
from ..tensor import Tensor
from .nn import opmath

__all__ = ["lstm", "gru", "lstm_cell", "gru_cell"]


# ---- once-differentiable gradients ---------------------------------------------------------------------------

class _OnceDifferentiable(Op):
    """Carries gradients computed on raw arrays out of a `create_graph` backward. They are correct values, but
    differentiating them again raises, as PyTorch's `once_differentiable` functions (and cuDNN RNNs) do."""

    def __init__(self, name: str, arrays: tuple):
        self.name, self.arrays = name, arrays

    def attrs(self) -> dict[str, Any]:
        return {"name": self.name}

    def forward(self, ctx, *inputs):
        return self.arrays

    def backward(self, ctx, *grads):
        raise RuntimeError(f"double backward through {self.name} is not supported: its backward is computed "
                           "outside the graph (as for cuDNN RNNs in PyTorch); differentiate a composition of "
                           "elementary ops instead if you need higher-order gradients")


def _as_grads(name: str, ctx: Any, grads: tuple[Tensor, ...], arrays: list) -> tuple[Tensor | None, ...]:
    """The input gradients as Tensors; under create_graph they hang off an op that refuses a second backward."""
    if not state.grad_enabled:
        return tuple(None if a is None else Tensor(a) for a in arrays)
    present = tuple(a for a in arrays if a is not None)
    outs = iter(_OnceDifferentiable(name, present)(*grads, *ctx.inputs))
    return tuple(None if a is None else next(outs) for a in arrays)


# ---- shared machinery --------------------------------------------------------------------------------------



def _half_rows(w: Any, n: int) -> Any:
    """A copy of `w` with its first `n` rows halved: those gates are sigmoids, computed as 0.5 tanh(z/2) + 0.5."""
    out = w.copy()
    out[:n] *= 0.5
    return out


def _dropout_mask(out: Any, p: float) -> Any:
    """Inter-layer dropout, drawn as `interop.nn.functional.dropout` draws (manual_seed reproduces it)."""
    keep = default_generator.rng(device_of(out)).random(out.shape, dtype=np.float32) >= p
    mask = keep.astype(out.dtype)
    if p < 1:
        mask *= 1 / (1 - p)
    return mask


class _RNN(Op):
    """Inputs: the sequence, then the initial states if `has_hx` (h0 or h0, c0: (num_layers * dirs, batch,
    hidden)), then the weights in PyTorch's flat order (per layer, per direction: w_ih, w_hh[, b_ih, b_hh]).
    Outputs: the last layer's output sequence, then the final states, shaped as PyTorch's."""

    gates: ClassVar[int]
    n_states: ClassVar[int]
    onnx_op: ClassVar[str]

    def __init__(self, num_layers: int, bidirectional: bool, batch_first: bool, has_biases: bool, has_hx: bool,
                 dropout: float = 0.0, train: bool = False):
        self.num_layers, self.bidirectional, self.batch_first = num_layers, bidirectional, batch_first
        self.has_biases, self.has_hx = has_biases, has_hx
        self.dropout, self.train = dropout, train

    @property
    def saves(self) -> tuple[int, ...]:  # backward reads the sequence and the weight matrices
        first = 1 + self.n_states * self.has_hx
        k = 4 if self.has_biases else 2
        n = self.num_layers * (2 if self.bidirectional else 1)
        return (0, *(first + j * k + q for j in range(n) for q in (0, 1)))

    # -- the per-layer kernels, one pair per cell type
    @staticmethod
    def _layer(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, init: tuple, reverse: bool) -> tuple:
        raise NotImplementedError

    @staticmethod
    def _layer_backward(sv: tuple, dy: Any, dlast: list, need_dx: bool, need_w: bool) -> tuple:
        raise NotImplementedError

    # -- the sequence op
    def _split(self, rest: Sequence[Any]) -> tuple[list, list]:
        ns = self.n_states if self.has_hx else 0
        return list(rest[:ns]), list(rest[ns:])

    def _weights(self, ws: list, j: int) -> tuple:
        k = 4 if self.has_biases else 2
        w = ws[j * k:(j + 1) * k]
        return (w[0], w[1], w[2], w[3]) if self.has_biases else (w[0], w[1], None, None)

    def forward(self, ctx, x, *rest):
        xp = xp_of(x)
        hx, ws = self._split(rest)
        hx = [opmath(s) for s in hx]
        ws = [opmath(w) for w in ws]
        seq = opmath(x)
        ct = seq.dtype
        seq = xp.ascontiguousarray(seq.transpose(1, 0, 2) if self.batch_first else seq)
        B = seq.shape[1]
        H = ws[1].shape[1]
        L, D = self.num_layers, 2 if self.bidirectional else 1
        finals = [xp.empty((L * D, B, H), ct) for _ in range(self.n_states)]
        saved, masks = [], []
        for layer in range(L):
            outs = []
            for d in range(D):
                j = layer * D + d
                init = tuple(s[j] for s in hx) if hx else tuple(xp.zeros((B, H), ct) for _ in finals)
                y, last, sv = self._layer(seq, *self._weights(ws, j), init, d == 1)
                for f, s in zip(finals, last):
                    f[j] = s
                outs.append(y)
                saved.append(sv)
            out = outs[0] if D == 1 else xp.concatenate(outs, axis=2)
            if layer < L - 1 and self.train and self.dropout > 0:
                masks.append(_dropout_mask(out, self.dropout))
                out = out * masks[-1]
            seq = out
        ctx.saved, ctx.masks, ctx.hidden = saved, masks, H
        if self.batch_first:
            seq = seq.transpose(1, 0, 2)
        # A one-direction output is a view of the saved hidden states: the copy keeps them safe from in-place
        # edits of the output.
        output = xp.array(seq, dtype=x.dtype, order="C", copy=True)
        return (output, *(f.astype(x.dtype, copy=False) for f in finals))

    def backward(self, ctx, gy, *gstates):
        inputs = ctx.inputs
        xp = xp_of(gy.data)
        L, D, H = self.num_layers, 2 if self.bidirectional else 1, ctx.hidden
        ns = self.n_states if self.has_hx else 0
        first_w = 1 + ns
        k = 4 if self.has_biases else 2
        dseq = opmath(gy.data)
        if self.batch_first:
            dseq = dseq.transpose(1, 0, 2)
        dfinal = [opmath(g.data) for g in gstates]
        need_h = any(t.requires_grad for t in inputs[1:first_w])
        dinit = [xp.empty(g.shape, g.dtype) for g in dfinal] if need_h else []
        wgrads: list[Any] = [None] * (len(inputs) - first_w)
        for layer in reversed(range(L)):
            need_dx = layer > 0 or inputs[0].requires_grad
            dx = None
            for d in range(D):
                j = layer * D + d
                need_w = [inputs[first_w + j * k + q].requires_grad for q in range(k)]
                dy = dseq if D == 1 else dseq[..., d * H:(d + 1) * H]
                dxd, dfirst, dws = self._layer_backward(ctx.saved[j], dy, [g[j] for g in dfinal], need_dx,
                                                        any(need_w))
                if dx is None:
                    dx = dxd
                elif dxd is not None:
                    dx += dxd
                for s, g in zip(dinit, dfirst):
                    s[j] = g
                for q in range(k):
                    if need_w[q]:
                        wgrads[j * k + q] = dws[q].astype(inputs[first_w + j * k + q].dtype, copy=False)
            if layer > 0 and ctx.masks:
                dx *= ctx.masks[layer - 1]
            dseq = dx
        gx = None
        if inputs[0].requires_grad:
            gx = dseq.transpose(1, 0, 2) if self.batch_first else dseq
            gx = xp.ascontiguousarray(gx).astype(inputs[0].dtype, copy=False)
        gh = [None] * ns
        for i in range(ns):
            if inputs[1 + i].requires_grad:
                gh[i] = dinit[i].astype(inputs[1 + i].dtype, copy=False)
        return _as_grads(type(self).__name__, ctx, (gy, *gstates), [gx, *gh, *wgrads])

    # -- ONNX
    @staticmethod
    def _onnx_rows(H: int) -> np.ndarray:
        raise NotImplementedError

    def _onnx_attrs(self) -> dict[str, Any]:
        return {}

    def to_onnx(self, g, x, *rest):
        if self.train and self.dropout > 0 and self.num_layers > 1:
            raise NotImplementedError(f"{type(self).__name__} with dropout between layers in training mode has no "
                                      "ONNX form; export the model in eval mode")
        hx, ws = self._split(rest)
        L, D = self.num_layers, 2 if self.bidirectional else 1
        H = int(g.shape(ws[1])[1])
        rows = g.const(self._onnx_rows(H).reshape(1, -1))  # 2-D indices: Gather adds ONNX's direction axis

        def stacked(*per_dir: str) -> str:
            return per_dir[0] if D == 1 else g.op("Concat", *per_dir, axis=0)

        if len(hx) and L > 1:  # (L * D, batch, H) -> one (D, batch, H) block per layer
            sizes = g.const(np.full(L, D, np.int64))
            hx = [g.op("Split", s, sizes, axis=0, outputs=L) for s in hx]
        seq = g.op("Transpose", x, perm=[1, 0, 2]) if self.batch_first else x
        finals: list[list[str]] = [[] for _ in range(self.n_states)]
        for layer in range(L):
            W, R, B = [], [], []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._weights(ws, layer * D + d)
                W.append(g.op("Gather", w_ih, rows, axis=0))
                R.append(g.op("Gather", w_hh, rows, axis=0))
                if b_ih is not None:
                    B.append(g.op("Concat", g.op("Gather", b_ih, rows, axis=0), g.op("Gather", b_hh, rows, axis=0),
                                  axis=1))
            init = [(s[layer] if L > 1 else s) for s in hx]
            outs = g.op(self.onnx_op, seq, stacked(*W), stacked(*R), stacked(*B) if B else None, None, *init,
                        outputs=1 + self.n_states, hidden_size=H,
                        direction="bidirectional" if D == 2 else "forward", **self._onnx_attrs())
            for f, v in zip(finals, outs[1:]):
                f.append(v)
            y = outs[0]  # (T, D, batch, H)
            last = layer == L - 1
            if D == 1 and not (last and self.batch_first):
                seq = g.op("Squeeze", y, g.axes([1]))
            else:
                perm = [2, 0, 1, 3] if last and self.batch_first else [0, 2, 1, 3]
                seq = g.op("Reshape", g.op("Transpose", y, perm=perm), g.const(np.array([0, 0, -1], np.int64)))
        return (seq, *(f[0] if L == 1 else g.op("Concat", *f, axis=0) for f in finals))


# ---- LSTM ------------------------------------------------------------------------------------------------------

def _ifog(w: Any, H: int) -> Any:
    """PyTorch's rows (i, f, g, o) as (i, f, o, g) with the sigmoid rows halved: one tanh then serves all four
    gates, and the three sigmoids are one strided affine fix-up."""
    out = xp_of(w).concatenate([w[:2 * H], w[3 * H:], w[2 * H:3 * H]])
    out[:3 * H] *= 0.5
    return out


class LSTM(_RNN):
    """torch.lstm over a whole sequence: the op behind nn.LSTM (and nn.LSTMCell, a one-step sequence)."""

    gates, n_states, onnx_op = 4, 2, "LSTM"

    @staticmethod
    def _layer(x, w_ih, w_hh, b_ih, b_hh, init, reverse):
        xp = xp_of(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        wh = _ifog(w_hh, H).T
        # gates of every step at once: (T, B, 4H), rows i, f, o, g; the loop adds the recurrent term in place
        A = xp.matmul(x.reshape(T * B, I), _ifog(w_ih, H).T).reshape(T, B, 4 * H)
        if b_ih is not None:
            A += _ifog(b_ih + b_hh, H)
        hs = xp.empty((T + 1, B, H), x.dtype)  # h0 then the outputs, in time order for either direction
        cs = xp.empty((T + 1, B, H), x.dtype)
        tc = xp.empty((T, B, H), x.dtype)  # tanh(c_t)
        first = T if reverse else 0
        hs[first], cs[first] = init
        rec = xp.empty((B, 4 * H), x.dtype)
        tmp = xp.empty((B, H), x.dtype)
        H3 = 3 * H
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            prev, now = (t + 1, t) if reverse else (t, t + 1)
            a = A[t]
            xp.matmul(hs[prev], wh, out=rec)
            a += rec
            xp.tanh(a, out=a)
            s = a[:, :H3]
            s *= 0.5
            s += 0.5
            c = cs[now]
            xp.multiply(a[:, H:2 * H], cs[prev], out=c)
            xp.multiply(a[:, :H], a[:, H3:], out=tmp)
            c += tmp
            xp.tanh(c, out=tc[t])
            xp.multiply(a[:, 2 * H:H3], tc[t], out=hs[now])
        ys = slice(0, T) if reverse else slice(1, T + 1)
        prevs = slice(1, T + 1) if reverse else slice(0, T)
        return hs[ys], (hs[T - first], cs[T - first]), (x, w_ih, w_hh, A, hs[prevs], cs[prevs], tc, reverse)

    @staticmethod
    def _layer_backward(sv, dy, dlast, need_dx, need_w):
        x, w_ih, w_hh, A, h_prev, c_prev, tc, reverse = sv
        xp = xp_of(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        i, f, o, g = A[..., :H], A[..., H:2 * H], A[..., 2 * H:3 * H], A[..., 3 * H:]
        # d(pre-activation) = factor * (dc for i, f, g; dh for o), factors in PyTorch's row order i, f, g, o
        P = xp.empty((T, B, 4, H), x.dtype)
        for slot, (gate, other) in enumerate(((i, g), (f, c_prev))):
            xp.subtract(1, gate, out=P[:, :, slot])
            P[:, :, slot] *= gate
            P[:, :, slot] *= other
        xp.multiply(g, g, out=P[:, :, 2])
        xp.subtract(1, P[:, :, 2], out=P[:, :, 2])
        P[:, :, 2] *= i
        xp.subtract(1, o, out=P[:, :, 3])
        P[:, :, 3] *= o
        P[:, :, 3] *= tc
        K = xp.multiply(tc, tc)  # dc_t += dh_t * o (1 - tanh(c)^2)
        xp.subtract(1, K, out=K)
        K *= o
        dG = xp.empty((T, B, 4 * H), x.dtype)
        dG4 = dG.reshape(T, B, 4, H)
        dh = xp.array(dlast[0], copy=True)
        dc = xp.array(dlast[1], copy=True)
        tmp = xp.empty((B, H), x.dtype)
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            dh += dy[t]
            xp.multiply(dh, K[t], out=tmp)
            dc += tmp
            xp.multiply(P[t, :, :3], dc[:, None], out=dG4[t, :, :3])
            xp.multiply(P[t, :, 3], dh, out=dG4[t, :, 3])
            dc *= f[t]
            xp.matmul(dG[t], w_hh, out=dh)
        dG2 = dG.reshape(T * B, 4 * H)
        dx = xp.matmul(dG2, w_ih).reshape(T, B, I) if need_dx else None
        dws = ()
        if need_w:
            db = dG2.sum(axis=0)
            dws = (xp.matmul(dG2.T, x.reshape(T * B, I)), xp.matmul(dG2.T, h_prev.reshape(T * B, H)), db, db.copy())
        return dx, (dh, dc), dws

    @staticmethod
    def _onnx_rows(H):  # ONNX's LSTM gates are i, o, f, c(g)
        return np.concatenate([np.arange(0, H), np.arange(3 * H, 4 * H), np.arange(H, 3 * H)]).astype(np.int64)


# ---- GRU -------------------------------------------------------------------------------------------------------

class GRU(_RNN):
    """torch.gru over a whole sequence: the op behind nn.GRU (and nn.GRUCell)."""

    gates, n_states, onnx_op = 3, 1, "GRU"

    @staticmethod
    def _layer(x, w_ih, w_hh, b_ih, b_hh, init, reverse):
        xp = xp_of(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        H2 = 2 * H
        wh = _half_rows(w_hh, H2).T
        A = xp.matmul(x.reshape(T * B, I), _half_rows(w_ih, H2).T).reshape(T, B, 3 * H)
        b_hn = None
        if b_ih is not None:
            b = b_ih.copy()
            b[:H2] += b_hh[:H2]  # b_hr, b_hz add to the input projection; b_hn stays inside the r-product
            b[:H2] *= 0.5
            A += b
            b_hn = b_hh[H2:]
        hs = xp.empty((T + 1, B, H), x.dtype)
        hn = xp.empty((T, B, H), x.dtype)  # W_hn h + b_hn, which r multiplies
        first = T if reverse else 0
        hs[first] = init[0]
        rec = xp.empty((B, 3 * H), x.dtype)
        tmp = xp.empty((B, H), x.dtype)
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            prev, now = (t + 1, t) if reverse else (t, t + 1)
            a = A[t]
            xp.matmul(hs[prev], wh, out=rec)
            rz = a[:, :H2]
            rz += rec[:, :H2]
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            if b_hn is None:
                hn[t] = rec[:, H2:]
            else:
                xp.add(rec[:, H2:], b_hn, out=hn[t])
            n = a[:, H2:]
            xp.multiply(a[:, :H], hn[t], out=tmp)
            n += tmp
            xp.tanh(n, out=n)
            h = hs[now]
            xp.subtract(hs[prev], n, out=h)
            h *= a[:, H:H2]
            h += n
        ys = slice(0, T) if reverse else slice(1, T + 1)
        prevs = slice(1, T + 1) if reverse else slice(0, T)
        return hs[ys], (hs[T - first],), (x, w_ih, w_hh, A, hs[prevs], hn, reverse)

    @staticmethod
    def _layer_backward(sv, dy, dlast, need_dx, need_w):
        x, w_ih, w_hh, A, h_prev, hn, reverse = sv
        xp = xp_of(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        r, z, n = A[..., :H], A[..., H:2 * H], A[..., 2 * H:]
        # dn_pre = dh (1 - z)(1 - n^2); the recurrent-projection gradient per step is dh * P (rows r, z, n)
        Pn = xp.multiply(n, n)
        xp.subtract(1, Pn, out=Pn)
        Pn *= xp.subtract(1, z)
        P = xp.empty((T, B, 3, H), x.dtype)
        xp.subtract(1, r, out=P[:, :, 0])
        P[:, :, 0] *= r
        P[:, :, 0] *= hn
        P[:, :, 0] *= Pn
        xp.subtract(1, z, out=P[:, :, 1])
        P[:, :, 1] *= z
        P[:, :, 1] *= xp.subtract(h_prev, n)
        xp.multiply(Pn, r, out=P[:, :, 2])
        dR = xp.empty((T, B, 3 * H), x.dtype)  # gradient of h W_hh^T + b_hh
        dR3 = dR.reshape(T, B, 3, H)
        dH = xp.empty((T, B, H), x.dtype)  # the total dh of each step
        dh = xp.array(dlast[0], copy=True)
        tmp = xp.empty((B, H), x.dtype)
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            xp.add(dh, dy[t], out=dH[t])
            xp.multiply(P[t], dH[t][:, None], out=dR3[t])
            xp.matmul(dR[t], w_hh, out=dh)
            xp.multiply(dH[t], z[t], out=tmp)
            dh += tmp
        dX = dR.copy()  # gradient of x W_ih^T + b_ih: the same but for n, which r does not multiply
        xp.multiply(dH, Pn, out=dX.reshape(T, B, 3, H)[:, :, 2])
        dX2, dR2 = dX.reshape(T * B, 3 * H), dR.reshape(T * B, 3 * H)
        dx = xp.matmul(dX2, w_ih).reshape(T, B, I) if need_dx else None
        dws = ()
        if need_w:
            dws = (xp.matmul(dX2.T, x.reshape(T * B, I)), xp.matmul(dR2.T, h_prev.reshape(T * B, H)), dX2.sum(axis=0),
                   dR2.sum(axis=0))
        return dx, (dh,), dws

    @staticmethod
    def _onnx_rows(H):  # ONNX's GRU gates are z, r, h(n)
        return np.concatenate([np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)]).astype(np.int64)

    def _onnx_attrs(self):
        return {"linear_before_reset": 1}  # PyTorch applies r after the recurrent product (b_hn inside)


# ---- functional forms (torch.lstm, torch.gru, torch.lstm_cell, torch.gru_cell) -------------------------------

def _check(name: str, input: Tensor, states: Sequence[Tensor], params: Sequence[Tensor], has_biases: bool,
           num_layers: int, bidirectional: bool, batch_first: bool, gates: int) -> None:
    D = 2 if bidirectional else 1
    per = 4 if has_biases else 2
    if len(params) != num_layers * D * per:
        raise RuntimeError(f"{name}: expected {num_layers * D * per} parameters for num_layers={num_layers}, "
                           f"bidirectional={bidirectional}, has_biases={has_biases}, got {len(params)}")
    if input.data.ndim != 3:
        raise RuntimeError(f"input must have 3 dimensions, got {input.data.ndim}")
    if input.data.shape[1 if batch_first else 0] == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    if dtypes.category(input.dtype) != 2:
        raise RuntimeError(f"{name}: expected a floating-point input, got {dtypes.name(input.dtype)}")
    for p in params:
        if p.dtype != input.dtype:
            raise ValueError(f"input must have the type {dtypes.name(p.dtype)}, got type {dtypes.name(input.dtype)}")
    H = params[1].data.shape[1]
    batch = input.data.shape[0 if batch_first else 1]
    size = input.data.shape[2]
    for layer in range(num_layers):
        for d in range(D):
            w_ih, w_hh = params[(layer * D + d) * per:(layer * D + d) * per + 2]
            want_in = size if layer == 0 else D * H
            if tuple(w_ih.data.shape) != (gates * H, want_in) or tuple(w_hh.data.shape) != (gates * H, H):
                raise RuntimeError(f"{name}: layer {layer} expects weight_ih of shape {(gates * H, want_in)} and "
                                   f"weight_hh of shape {(gates * H, H)}, got {tuple(w_ih.data.shape)} and "
                                   f"{tuple(w_hh.data.shape)}")
            if has_biases:
                for b in params[(layer * D + d) * per + 2:(layer * D + d) * per + 4]:
                    if tuple(b.data.shape) != (gates * H,):
                        raise RuntimeError(f"{name}: biases must have shape {(gates * H,)}, got "
                                           f"{tuple(b.data.shape)}")
    want = [num_layers * D, batch, H]
    for k, s in enumerate(states):
        if list(s.data.shape) != want:
            which = "Expected hidden size" if len(states) == 1 else f"Expected hidden[{k}] size"
            raise RuntimeError(f"{which} {tuple(want)}, got {list(s.data.shape)}")
        if s.dtype != input.dtype:
            raise RuntimeError(f"{name}: expected the hidden state's dtype {dtypes.name(input.dtype)}, got "
                               f"{dtypes.name(s.dtype)}")


def _run(op_type: type[_RNN], input: Tensor, states: Sequence[Tensor], params: Sequence[Tensor], has_biases: bool,
         num_layers: int, dropout: float, train: bool, bidirectional: bool, batch_first: bool) -> tuple:
    name = op_type.__name__.lower()
    _check(name, input, states, params, has_biases, num_layers, bidirectional, batch_first, op_type.gates)
    if not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                         "being zeroed")
    op = op_type(int(num_layers), bool(bidirectional), bool(batch_first), bool(has_biases), bool(states),
                 float(dropout), bool(train))
    return op(input, *states, *params)


def lstm(input: Tensor, hx: Sequence[Tensor] | None, params: Sequence[Tensor], has_biases: bool, num_layers: int,
         dropout: float, train: bool, bidirectional: bool, batch_first: bool) -> tuple[Tensor, Tensor, Tensor]:
    """torch.lstm: a multi-layer LSTM over `input` ((seq, batch, in), or (batch, seq, in) with batch_first).
    `hx` is (h0, c0) or None (zeros); `params` are the weights in nn.LSTM's order. Returns (output, h_n, c_n)."""
    states = tuple(hx) if hx is not None else ()
    if len(states) not in (0, 2):
        raise RuntimeError(f"lstm: hx must be (h0, c0), got {len(states)} tensor(s)")
    return _run(LSTM, input, states, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


def gru(input: Tensor, hx: Tensor | None, params: Sequence[Tensor], has_biases: bool, num_layers: int,
        dropout: float, train: bool, bidirectional: bool, batch_first: bool) -> tuple[Tensor, Tensor]:
    """torch.gru: a multi-layer GRU; `hx` is h0 or None (zeros). Returns (output, h_n)."""
    return _run(GRU, input, () if hx is None else (hx,), params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)


def _cell(op_type: type[_RNN], input: Tensor, states: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor,
          b_ih: Tensor | None, b_hh: Tensor | None) -> tuple:
    """One step of a cell is a one-step, one-layer sequence: the same op, kernels and ONNX node."""
    name = f"{op_type.__name__.lower()}_cell"
    if input.data.ndim != 2:
        raise RuntimeError(f"{name}: expected input of shape (batch, input_size), got {list(input.data.shape)}")
    if (b_ih is None) != (b_hh is None):
        raise RuntimeError(f"{name}: pass both b_ih and b_hh, or neither")
    if input.data.shape[1] != w_ih.data.shape[-1]:
        raise RuntimeError(f"input has inconsistent input_size: got {input.data.shape[1]} expected "
                           f"{w_ih.data.shape[-1]}")
    for k, s in enumerate(states):
        if s.data.ndim != 2 or s.data.shape[0] != input.data.shape[0]:
            raise RuntimeError(f"Input batch size {input.data.shape[0]} doesn't match hidden{k} batch size "
                               f"{s.data.shape[0] if s.data.ndim else 0}")
        if s.data.shape[1] != w_hh.data.shape[-1]:
            raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {s.data.shape[1]}, expected "
                               f"{w_hh.data.shape[-1]}")
    params = (w_ih, w_hh) if b_ih is None else (w_ih, w_hh, b_ih, b_hh)
    out = _run(op_type, input.unsqueeze(0), tuple(s.unsqueeze(0) for s in states), params, b_ih is not None, 1,
               0.0, False, False, False)
    return tuple(s.squeeze(0) for s in out[1:])


def lstm_cell(input: Tensor, hx: Sequence[Tensor] | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
              b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """torch.lstm_cell: one LSTM step on (batch, in) with `hx` = (h, c) of (batch, hidden). Returns (h', c')."""
    return _cell(LSTM, input, () if hx is None else tuple(hx), w_ih, w_hh, b_ih, b_hh)


def gru_cell(input: Tensor, hx: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
    """torch.gru_cell: one GRU step on (batch, in) with `hx` (batch, hidden). Returns h'."""
    return _cell(GRU, input, () if hx is None else (hx,), w_ih, w_hh, b_ih, b_hh)[0]
