from __future__ import annotations

import numpy as np

import interop

from . import OpCase, rnd


def lib(t):
    """The namespace of `t` (torch or interop), so one `fn` runs on both."""
    if isinstance(t, interop.Tensor):
        return interop
    import torch

    return torch


def fpad(t, *args, **kw):
    """F.pad of `t`'s library."""
    return (interop.pad if isinstance(t, interop.Tensor) else lib(t).nn.functional.pad)(t, *args, **kw)


def np_pad(a, pad, mode="constant", value=0.0):
    """numpy reference of F.pad for non-negative pads."""
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    np_mode = {"replicate": "edge", "circular": "wrap"}.get(mode, mode)
    return np.pad(a, widths, np_mode, **({"constant_values": value} if mode == "constant" else {}))


def np_split(a, sizes, axis):
    return tuple(np.split(a, np.cumsum(sizes)[:-1], axis=axis))


def _rev(a):
    return a.permute(*reversed(range(a.ndim)))  # torch's .T warns for ndim != 2


BATCH = {0: {0: "batch"}}
ints = np.arange(12, dtype=np.int64).reshape(3, 4)

CASES = [
    # reshape / view / flatten / unflatten
    OpCase("Reshape", lambda a: a.reshape(4, -1), [rnd(2, 6)], lambda a: a.reshape(4, -1)),
    OpCase("Reshape", lambda a: a.reshape((-1, 3, 2)), [rnd(2, 6)], lambda a: a.reshape(-1, 3, 2),
           name="reshape_tuple"),
    OpCase("Reshape", lambda a: a.reshape(a.shape[0], -1), [rnd(2, 3, 4)], lambda a: a.reshape(2, -1),
           name="reshape_dynamic", dynamic=BATCH),
    OpCase("Reshape", lambda a: a.transpose(0, 1).reshape(-1), [rnd(3, 4)], lambda a: a.T.reshape(-1),
           name="reshape_noncontiguous"),
    OpCase("Reshape", lambda a: a.reshape(1, 1), [rnd()], lambda a: a.reshape(1, 1), name="reshape_0d"),
    OpCase("Reshape", lambda a: a.reshape(()), [rnd(1)], lambda a: a.reshape(()), name="reshape_to_0d"),
    OpCase("Reshape", lambda a: a.view(3, 2, 2), [rnd(2, 6)], lambda a: a.reshape(3, 2, 2), name="view"),
    OpCase("Reshape", lambda a: a.view(-1, 6).view_as(a), [rnd(2, 3, 2)], lambda a: a, name="view_as"),
    OpCase("Reshape", lambda a: a.flatten(1), [rnd(2, 3, 4)], lambda a: a.reshape(2, 12), name="flatten",
           dynamic=BATCH),
    OpCase("Reshape", lambda a: a.flatten(), [rnd(2, 3, 4)], lambda a: a.reshape(-1), name="flatten_all"),
    OpCase("Reshape", lambda a: a.flatten(-3, -2), [rnd(2, 3, 4)], lambda a: a.reshape(6, 4),
           name="flatten_negative"),
    OpCase("Reshape", lambda a: a.flatten(), [rnd()], lambda a: a.reshape(1), name="flatten_0d"),
    OpCase("Reshape", lambda a: a.unflatten(-1, (2, -1)), [rnd(3, 4)], lambda a: a.reshape(3, 2, 2),
           name="unflatten", dynamic=BATCH),
    # permutations
    OpCase("Permute", lambda a: a.permute(2, 0, 1), [rnd(2, 3, 4)], lambda a: a.transpose(2, 0, 1)),
    OpCase("Permute", lambda a: a.permute((-1, 0, -2)), [rnd(2, 3, 4)], lambda a: a.transpose(2, 0, 1),
           name="permute_tuple_negative"),
    OpCase("Permute", lambda a: lib(a).permute(a, dims=(1, 0)), [rnd(2, 3)], lambda a: a.T,
           name="permute_dims_kw"),
    OpCase("Permute", lambda a: a.transpose(0, -1), [rnd(2, 3, 4)], lambda a: a.swapaxes(0, -1),
           name="transpose"),
    OpCase("Permute", lambda a: lib(a).swapaxes(a, 1, 0), [rnd(2, 3)], lambda a: a.T, name="swapaxes"),
    OpCase("Permute", lambda a: a.t(), [rnd(2, 3)], lambda a: a.T, name="t"),
    OpCase("Permute", lambda a: a.T, [rnd(2, 3, 4)], lambda a: a.T, torch_fn=_rev, name="T_3d"),
    OpCase("Permute", lambda a: a.mT, [rnd(2, 3, 4)], lambda a: a.swapaxes(-1, -2), name="mT"),
    OpCase("Permute", lambda a: a.movedim((0, 1), (2, 0)), [rnd(2, 3, 4)],
           lambda a: np.moveaxis(a, (0, 1), (2, 0)), name="movedim"),
    OpCase("Permute", lambda a: lib(a).moveaxis(a, -1, 0), [rnd(2, 3, 4)], lambda a: np.moveaxis(a, -1, 0),
           name="moveaxis"),
    # squeeze / unsqueeze
    OpCase("Squeeze", lambda a: a.squeeze(), [rnd(1, 3, 1)], lambda a: a.squeeze()),
    OpCase("Squeeze", lambda a: a.squeeze(-1), [rnd(1, 3, 1)], lambda a: a.squeeze(-1), name="squeeze_dim"),
    OpCase("Squeeze", lambda a: a.squeeze((0, 1)), [rnd(1, 3, 1)], lambda a: a.squeeze(0),
           name="squeeze_dims"),
    OpCase("Squeeze", lambda a: a.squeeze(0), [rnd(1)], lambda a: a.squeeze(0), name="squeeze_to_0d"),
    OpCase("Squeeze", lambda a: a.transpose(0, 2).squeeze(0), [rnd(3, 2, 1)],
           lambda a: a.transpose(2, 1, 0)[0], name="squeeze_noncontiguous"),
    OpCase("Unsqueeze", lambda a: a.unsqueeze(-1), [rnd(2, 3)], lambda a: a[..., None]),
    OpCase("Unsqueeze", lambda a: a.unsqueeze(1), [rnd(2, 3)], lambda a: a[:, None], name="unsqueeze_mid"),
    OpCase("Unsqueeze", lambda a: a.unsqueeze(0), [rnd()], lambda a: np.asarray(a)[None],
           name="unsqueeze_0d"),
    # expand
    OpCase("Expand", lambda a: a.expand(3, 2, 4), [rnd(2, 1)], lambda a: np.broadcast_to(a, (3, 2, 4))),
    OpCase("Expand", lambda a: a.expand(-1, 4), [rnd(3, 1)], lambda a: np.broadcast_to(a, (3, 4)),
           name="expand_keep", dynamic=BATCH),
    OpCase("Expand", lambda a: a.expand(2, 3), [rnd()], lambda a: np.broadcast_to(a, (2, 3)),
           name="expand_0d"),
    OpCase("Expand", lambda a: lib(a).broadcast_to(a, (2, 3, 4)), [rnd(3, 1)],
           lambda a: np.broadcast_to(a, (2, 3, 4)), name="broadcast_to"),
    OpCase("Expand", lambda a, b: a.expand_as(b), [rnd(1, 4), rnd(3, 4)],
           lambda a, b: np.broadcast_to(a, b.shape), name="expand_as", grad_inputs=(0,)),
    OpCase("Expand", lambda a: a.mT.expand(2, 4, 3), [rnd(3, 4)], lambda a: np.broadcast_to(a.T, (2, 4, 3)),
           name="expand_noncontiguous"),
    # cat / stack
    OpCase("Cat", lambda a, b: lib(a).cat((a, b), -1), [rnd(2, 3), rnd(2, 2)],
           lambda a, b: np.concatenate((a, b), -1)),
    OpCase("Cat", lambda a, b, c: lib(a).cat([a, b, c]), [rnd(1, 3), rnd(2, 3), rnd(3, 3)],
           lambda a, b, c: np.concatenate((a, b, c)), name="cat_three"),
    OpCase("Cat", lambda a, b: lib(a).cat([a, b], dim=1), [rnd(2, 3), ints[:2]],
           lambda a, b: np.concatenate((a, b), 1), name="cat_promotes"),
    OpCase("Cat", lambda a, b: lib(a).cat([a, b]), [rnd(2, 3), rnd(0)], lambda a, b: a,
           name="cat_skips_empty", grad_inputs=(0,)),
    OpCase("Cat", lambda a, b: lib(a).concat([a.mT, b], 0), [rnd(3, 2), rnd(1, 3)],
           lambda a, b: np.concatenate((a.T, b)), name="concat_noncontiguous"),
    OpCase("Cat", lambda a, b: lib(a).concatenate([a, b], axis=0), [rnd(0, 3), rnd(2, 3)],
           lambda a, b: np.concatenate((a, b)), name="concatenate_empty_rows"),
    OpCase("Cat", lambda a, b: lib(a).stack([a, b]), [rnd(2, 3), rnd(2, 3, seed=1)],
           lambda a, b: np.stack((a, b)), name="stack"),
    OpCase("Cat", lambda a, b: lib(a).stack([a, b], dim=-1), [rnd(2, 3), rnd(2, 3, seed=1)],
           lambda a, b: np.stack((a, b), -1), name="stack_last"),
    OpCase("Cat", lambda a, b: lib(a).stack((a, b)), [rnd(), rnd(seed=1)], lambda a, b: np.stack((a, b)),
           name="stack_0d"),
    # split / chunk / unbind / narrow
    OpCase("Split", lambda a: a.split(2, -1), [rnd(3, 5)], lambda a: np_split(a, (2, 2, 1), 1)),
    OpCase("Split", lambda a: a.split([1, 3, 1], 1), [rnd(3, 5)], lambda a: np_split(a, (1, 3, 1), 1),
           name="split_sizes"),
    OpCase("Split", lambda a: lib(a).split(a, [0, 3]), [rnd(3, 2)], lambda a: np_split(a, (0, 3), 0),
           name="split_empty_piece"),
    OpCase("Split", lambda a: a.chunk(3), [rnd(6, 2)], lambda a: np_split(a, (2, 2, 2), 0), name="chunk"),
    OpCase("Split", lambda a: a.chunk(4, -1), [rnd(2, 5)], lambda a: np_split(a, (2, 2, 1), 1),
           name="chunk_uneven"),
    OpCase("Split", lambda a: a.unbind(1), [rnd(2, 3)], lambda a: tuple(a.T), name="unbind"),
    OpCase("Split", lambda a: a.mT.unbind(), [rnd(2, 3)], lambda a: tuple(a.T), name="unbind_noncontiguous"),
    OpCase("Narrow", lambda a: a.narrow(-1, 1, 2), [rnd(2, 4)], lambda a: a[:, 1:3]),
    OpCase("Narrow", lambda a: lib(a).narrow(a, 0, -2, 2), [rnd(3, 2)], lambda a: a[1:],
           name="narrow_neg_start"),
    OpCase("Narrow", lambda a: a.mT.narrow(0, 1, 1), [rnd(2, 3)], lambda a: a.T[1:2],
           name="narrow_noncontiguous"),
    # pad
    OpCase("Pad", lambda a: fpad(a, (1, 2), value=0.5), [rnd(2, 3)], lambda a: np_pad(a, (1, 2), value=0.5)),
    OpCase("Pad", lambda a: fpad(a, (1, 0, 2, 1)), [rnd(2, 3)], lambda a: np_pad(a, (1, 0, 2, 1)),
           name="pad_2d"),
    OpCase("Pad", lambda a: fpad(a, (-1, 2, 0, -1)), [rnd(2, 3)],
           lambda a: np.pad(a[:1, 1:], ((0, 0), (0, 2))), name="pad_negative_crops"),
    OpCase("Pad", lambda a: fpad(a, (1, 2), mode="reflect"), [rnd(2, 3, 4)],
           lambda a: np_pad(a, (1, 2), "reflect"), name="pad_reflect"),
    OpCase("Pad", lambda a: fpad(a, (2, 1, 1, 2), mode="reflect"), [rnd(1, 2, 4, 5)],
           lambda a: np_pad(a, (2, 1, 1, 2), "reflect"), name="pad_reflect_2d"),
    OpCase("Pad", lambda a: fpad(a, (-1, 2), mode="reflect"), [rnd(2, 5)],
           lambda a: np_pad(a[:, 1:], (0, 2), "reflect"), name="pad_reflect_negative"),
    OpCase("Pad", lambda a: fpad(a.mT, (1, 1), mode="reflect"), [rnd(2, 4, 3)],
           lambda a: np_pad(a.swapaxes(1, 2), (1, 1), "reflect"), name="pad_reflect_noncontiguous"),
    OpCase("Pad", lambda a: fpad(a, (2, 1, 1, 0), mode="replicate"), [rnd(1, 3, 4)],
           lambda a: np_pad(a, (2, 1, 1, 0), "replicate"), name="pad_replicate"),
    OpCase("Pad", lambda a: fpad(a, (2, 3), mode="circular"), [rnd(2, 2, 4)],
           lambda a: np_pad(a, (2, 3), "circular"), name="pad_circular"),
    OpCase("Pad", lambda a: fpad(a, (1, 1, 0, 2), value=7), [ints],
           lambda a: np_pad(a, (1, 1, 0, 2), value=7), name="pad_int", grad=False),
    # repeat / tile
    OpCase("Tile", lambda a: a.repeat(2, 1, 3), [rnd(2, 3)], lambda a: np.tile(a, (2, 1, 3))),
    OpCase("Tile", lambda a: a.repeat(1, 2), [rnd(3, 2)], lambda a: np.tile(a, (1, 2)), name="repeat_2d"),
    OpCase("Tile", lambda a: a.tile((2,)), [rnd(2, 3)], lambda a: np.tile(a, 2), name="tile_short"),
    OpCase("Tile", lambda a: a.repeat(2, 3), [rnd()], lambda a: np.tile(a, (2, 3)), name="repeat_0d"),
    OpCase("Tile", lambda a: a.mT.repeat(2, 1), [rnd(2, 3)], lambda a: np.tile(a.T, (2, 1)),
           name="repeat_noncontiguous"),
    # flip / roll
    OpCase("Flip", lambda a: a.flip(0), [rnd(3, 4)], lambda a: a[::-1]),
    OpCase("Flip", lambda a: a.flip(-1, 0), [rnd(3, 4)], lambda a: a[::-1, ::-1], name="flip_two"),
    OpCase("Flip", lambda a: lib(a).flip(a, dims=(1,)), [rnd(2, 3, 2)], lambda a: a[:, ::-1],
           name="flip_dims_kw"),
    OpCase("Flip", lambda a: a.mT.flip(0), [rnd(3, 4)], lambda a: a.T[::-1], name="flip_noncontiguous"),
    OpCase("Roll", lambda a: a.roll(1), [rnd(3, 4)], lambda a: np.roll(a, 1), name="roll_flat"),
    OpCase("Roll", lambda a: a.roll(-1, 0), [rnd(3, 4)], lambda a: np.roll(a, -1, 0), name="roll_dim"),
    OpCase("Roll", lambda a: a.roll((1, -6), (0, -1)), [rnd(3, 4)], lambda a: np.roll(a, (1, -6), (0, 1)),
           name="roll_dims"),
    # tril / triu
    OpCase("Trilu", lambda a: a.tril(), [rnd(3, 4)], np.tril, name="tril"),
    OpCase("Trilu", lambda a: a.triu(1), [rnd(2, 3, 4)], lambda a: np.triu(a, 1), name="triu_batched"),
    OpCase("Trilu", lambda a: lib(a).tril(a, diagonal=-1), [rnd(4, 3)], lambda a: np.tril(a, -1),
           name="tril_negative"),
    OpCase("Trilu", lambda a: a.mT.triu(), [rnd(3, 4)], lambda a: np.triu(a.T), name="triu_noncontiguous"),
]
