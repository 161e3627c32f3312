"""Conv and ConvTranspose: strides, padding (ints, pairs, 'same', 'valid'), dilation, groups, with and without
bias, 1-D and 2-D, batched and not. The numpy references loop over output (or input) positions directly, so they
share nothing with the im2col code under test. Shapes are picked so stride-1 cases use both column layouts
(exact and wide, see interop/ops/conv.py)."""

from __future__ import annotations

import numpy as np

import interop

from . import OpCase, rnd

BATCH = {0: {0: "batch"}}


def functional(t):
    """`nn.functional` of `t`'s library, so one `fn` runs on interop and torch tensors alike."""
    if isinstance(t, interop.Tensor):
        return interop.nn.functional
    import torch

    return torch.nn.functional


def _per_dim(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    nd = w.ndim - 2
    if x.ndim == nd + 1:
        return conv_ref(x[None], w, b, stride, padding, dilation, groups)[0]
    s, d, k = _per_dim(stride, nd), _per_dim(dilation, nd), w.shape[2:]
    if padding == "same":
        pads = [(e * (n - 1) // 2, e * (n - 1) - e * (n - 1) // 2) for n, e in zip(k, d)]
    else:
        pads = [(0, 0)] * nd if padding == "valid" else [(p, p) for p in _per_dim(padding, nd)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    sizes = [(n - e * (m - 1) - 1) // t + 1 for n, m, t, e in zip(xp.shape[2:], k, s, d)]
    out = np.zeros((x.shape[0], w.shape[0], *sizes))
    for pos in np.ndindex(*sizes):
        window = tuple(slice(p * t, p * t + e * (m - 1) + 1, e) for p, t, e, m in zip(pos, s, d, k))
        for o in range(w.shape[0]):
            g = o // og
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg), *window)]
            out[(slice(None), o, *pos)] = np.tensordot(patch, w[o], axes=nd + 1)
    return out if b is None else out + b.reshape(-1, *[1] * nd)


def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    nd = w.ndim - 2
    s, p, e, d = (_per_dim(v, nd) for v in (stride, padding, output_padding, dilation))
    k = w.shape[2:]
    cig, cog = x.shape[1] // groups, w.shape[1]
    full = [(n - 1) * t + c * (m - 1) + 1 + q for n, t, c, m, q in zip(x.shape[2:], s, d, k, e)]
    out = np.zeros((x.shape[0], cog * groups, *full))
    for ipos in np.ndindex(*x.shape[2:]):
        for kpos in np.ndindex(*k):
            opos = tuple(i * t + j * c for i, t, j, c in zip(ipos, s, kpos, d))
            for g in range(groups):
                xin = x[(slice(None), slice(g * cig, (g + 1) * cig), *ipos)]
                out[(slice(None), slice(g * cog, (g + 1) * cog), *opos)] += \
                    xin @ w[(slice(g * cig, (g + 1) * cig), slice(None), *kpos)]
    out = out[(slice(None), slice(None), *(slice(q, n - q) for q, n in zip(p, full)))]
    return out if b is None else out + b.reshape(-1, *[1] * nd)


def _conv(op, fname, ref, inputs, name, **kw):
    extra = {k: kw.pop(k) for k in ("dynamic", "fd_atol", "atol") if k in kw}
    return OpCase(op, lambda *ts: getattr(functional(ts[0]), fname)(*ts, **kw), inputs,
                  lambda *a: ref(*a, **kw), name=name, **extra)


def conv2d(inputs, name, **kw):
    return _conv("Conv", "conv2d", conv_ref, inputs, name, **kw)


def conv1d(inputs, name, **kw):
    return _conv("Conv", "conv1d", conv_ref, inputs, name, **kw)


def conv_transpose2d(inputs, name, **kw):
    return _conv("ConvTranspose", "conv_transpose2d", conv_transpose_ref, inputs, name, **kw)


def conv_transpose1d(inputs, name, **kw):
    return _conv("ConvTranspose", "conv_transpose1d", conv_transpose_ref, inputs, name, **kw)


CASES = [
    conv2d([rnd(2, 3, 5, 9), rnd(4, 3, 3, 3, seed=1), rnd(4, seed=2)], "conv2d_bias", dynamic=BATCH),
    conv2d([rnd(2, 3, 6, 5), rnd(4, 3, 3, 2, seed=1)], "conv2d_stride2_pad1_no_bias", stride=2, padding=1),
    conv2d([rnd(1, 2, 7, 6), rnd(3, 2, 3, 2, seed=1), rnd(3, seed=2)], "conv2d_dilation_pad_pair",
           dilation=(2, 1), padding=(2, 1), stride=(1, 2)),
    conv2d([rnd(2, 4, 5, 5), rnd(6, 2, 3, 3, seed=1), rnd(6, seed=2)], "conv2d_groups2", groups=2,
           stride=(1, 2), padding=1),
    conv2d([rnd(1, 3, 5, 6), rnd(3, 1, 3, 3, seed=1)], "conv2d_depthwise", groups=3, padding=1),
    conv2d([rnd(1, 2, 5, 10), rnd(3, 2, 3, 2, seed=1), rnd(3, seed=2)], "conv2d_same_asymmetric",
           padding="same", dilation=(1, 2)),
    conv2d([rnd(1, 2, 4, 5), rnd(3, 2, 2, 2, seed=1)], "conv2d_valid", padding="valid"),
    conv2d([rnd(2, 3, 4, 4), rnd(5, 3, 1, 1, seed=1), rnd(5, seed=2)], "conv2d_1x1"),
    conv2d([rnd(2, 5, 4), rnd(3, 2, 2, 2, seed=1)], "conv2d_unbatched", padding=1),
    conv1d([rnd(2, 3, 7), rnd(4, 3, 3, seed=1), rnd(4, seed=2)], "conv1d_stride2_pad1", stride=2, padding=1,
           dynamic=BATCH),
    conv1d([rnd(1, 3, 8), rnd(3, 1, 2, seed=1)], "conv1d_groups_dilation_same", groups=3, dilation=2,
           padding="same"),
    conv_transpose2d([rnd(2, 3, 3, 8), rnd(3, 2, 3, 3, seed=1), rnd(2, seed=2)], "conv_transpose2d_bias",
                     dynamic=BATCH),
    conv_transpose2d([rnd(1, 2, 3, 3), rnd(2, 3, 3, 3, seed=1)], "conv_transpose2d_stride2_pad1_outpad1",
                     stride=2, padding=1, output_padding=1),
    conv_transpose2d([rnd(1, 4, 3, 3), rnd(4, 1, 2, 3, seed=1), rnd(2, seed=2)],
                     "conv_transpose2d_groups_dilation", groups=2, dilation=(2, 1), stride=(2, 1),
                     output_padding=(1, 0), padding=(1, 0)),
    conv_transpose1d([rnd(2, 2, 4), rnd(2, 3, 3, seed=1), rnd(3, seed=2)], "conv_transpose1d_stride3_outpad2",
                     stride=3, padding=1, output_padding=2),
    # output_padding >= stride (allowed below the dilation): ONNX Runtime takes it only as padding changes
    conv_transpose1d([rnd(1, 2, 5), rnd(2, 2, 2, seed=1)], "conv_transpose1d_outpad_past_reach", dilation=3,
                     output_padding=2),
    conv_transpose2d([rnd(1, 2, 3, 3), rnd(2, 2, 3, 2, seed=1), rnd(2, seed=2)], "conv_transpose2d_outpad_mixed",
                     dilation=(3, 2), padding=(1, 2), output_padding=(2, 1)),
]
