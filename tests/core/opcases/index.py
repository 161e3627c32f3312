from __future__ import annotations

import numpy as np

from . import OpCase, rnd


def ints(*values):
    return np.array(values, np.int64)


def _assign(a, key, v):
    """`y = a.clone(); y[key] = v` on interop or torch tensors, or numpy arrays."""
    y = a.copy() if isinstance(a, np.ndarray) else a.clone()
    y[key] = v
    return y


def _set(key):
    """fn (also the numpy ref) assigning an input, or the number 0.5 when the case has no second input."""
    return lambda a, v=0.5: _assign(a, key, v)


def _set_at_two(a, i, j, v):
    return _assign(a, (i, slice(None), j), v)


def _index_put(a, i, v):
    y = a.copy()
    np.add.at(y, i, v)
    return y


def _gather_ref(a, dim, i):
    block = tuple(slice(0, n) if d != dim else slice(None) for d, n in enumerate(i.shape))
    return np.take_along_axis(a[block], i, dim)


def _scatter_ref(a, dim, i, src, op=None):
    y = a.copy()
    key = tuple(i if d == dim else np.arange(n).reshape([-1 if e == d else 1 for e in range(i.ndim)])
                for d, n in enumerate(i.shape))
    src = np.broadcast_to(src, i.shape) if np.ndim(src) == 0 else src[tuple(slice(0, n) for n in i.shape)]
    if op is None:
        y[key] = src
    else:
        op.at(y, key, src)
    return y


def _topk_ref(a, k, dim, largest):
    order = np.argsort(-a if largest else a, axis=dim, kind="stable")
    idx = np.take(order, np.arange(k), axis=dim)
    return np.take_along_axis(a, idx, dim), idx


MASK = rnd(3, 4, seed=5) > 0
COL, ROW = ints([0], [2]), ints(1, 4, 3)  # broadcast together to (2, 3)
REPEATED = ints([1, 4, 1], [0, 1, 1])
CASES = [
    # basic indexing: views
    OpCase("GetItem", lambda a: a[1, 1:3], [rnd(3, 4, 5)], lambda a: a[1, 1:3], name="getitem_basic"),
    OpCase("GetItem", lambda a: a[-1, ::2, -3:-1], [rnd(3, 4, 5)], lambda a: a[-1, ::2, -3:-1],
           name="getitem_negative_and_step"),
    OpCase("GetItem", lambda a: a[..., None, 1], [rnd(3, 4, 5)], lambda a: a[..., None, 1],
           name="getitem_ellipsis_none"),
    OpCase("GetItem", lambda a: a[:, 1:3], [rnd(3, 4, 5)], lambda a: a[:, 1:3], name="getitem_dynamic_batch",
           dynamic={0: {0: "batch"}}),
    OpCase("GetItem", lambda a: a[1, 2], [rnd(3, 4)], lambda a: a[1, 2], name="getitem_scalar"),
    OpCase("GetItem", lambda a: a[:, -1], [rnd(3, 4)], lambda a: a[:, -1], name="getitem_select_last"),
    # advanced indexing
    OpCase("Index", lambda a, i: a[:, i], [rnd(3, 4, 5), ints(3, 0, 2)], lambda a, i: a[:, i],
           name="index_int_tensor_one_axis"),
    OpCase("Index", lambda a, i: a[i], [rnd(4, 3), ints(-1, 0, -4)], lambda a, i: a[i],
           name="index_negative"),
    OpCase("Index", lambda a: a[[2, 0]], [rnd(3, 4)], lambda a: a[[2, 0]], name="index_list"),
    OpCase("Index", lambda a, i, j: a[i, :, j], [rnd(3, 4, 5), COL, ROW], lambda a, i, j: a[i, :, j],
           name="index_two_broadcast_apart"),
    OpCase("Index", lambda a, i, j: a[:, i, j], [rnd(2, 3, 5, 5), COL, ROW], lambda a, i, j: a[:, i, j],
           name="index_two_broadcast_adjacent"),
    OpCase("Index", lambda a, i: a[1, :, i], [rnd(3, 4, 5), ints(4, 0)], lambda a, i: a[1][:, i],
           name="index_int_then_tensor"),
    OpCase("Index", lambda a, m: a[m], [rnd(3, 4, 5), MASK], lambda a, m: a[m], name="index_bool_mask"),
    OpCase("Index", lambda a, m: a[:, m], [rnd(2, 3, 4), MASK], lambda a, m: a[:, m],
           name="index_bool_mask_inner"),
    OpCase("Index", lambda a, m: a[:, m], [rnd(2, 3), np.array([True, False, True])], lambda a, m: a[:, m],
           name="index_bool_mask_1d"),
    OpCase("Index", lambda a, m, i: a[m, i], [rnd(3, 4), np.array([True, False, True]), ints(3, 1)],
           lambda a, m, i: a[m, i], name="index_mask_and_tensor"),
    OpCase("Index", lambda w, i: w[i], [rnd(6, 130), REPEATED], lambda w, i: w[i],
           name="index_repeated_wide_rows"),
    OpCase("Index", lambda w, i: w[i], [rnd(6, 3), REPEATED], lambda w, i: w[i],
           name="index_repeated_narrow_rows"),
    OpCase("Index", lambda a, i, j: a[i, j], [rnd(3, 140), ints(0, 2, 0), ints(5, 5, 5)],
           lambda a, i, j: a[i, j], name="index_repeated_pairs"),
    OpCase("Index", lambda a, i: a.index_select(1, i), [rnd(3, 4), ints(3, 3, 0)], lambda a, i: a[:, i],
           name="index_select"),
    OpCase("Index", lambda a, m: a.masked_select(m), [rnd(3, 4), rnd(4, seed=2) > 0],
           lambda a, m: a[np.broadcast_to(m, a.shape)], name="masked_select"),
    # assignment
    OpCase("SetItem", _set((slice(1, None), 0)), [rnd(3, 4, 5), rnd(5)], _set((slice(1, None), 0)),
           name="setitem_slice_broadcast_value"),
    OpCase("SetItem", _set((Ellipsis, -1)), [rnd(3, 4)], _set((Ellipsis, -1)), name="setitem_scalar"),
    OpCase("SetItem", lambda a, i, v: _assign(a, (i,), v), [rnd(4, 3), ints(2, 0), rnd(2, 3)],
           lambda a, i, v: _assign(a, (i,), v), name="setitem_int_tensor"),
    OpCase("SetItem", _set_at_two, [rnd(3, 4, 5), COL, ROW, rnd(3, 4)], _set_at_two,
           name="setitem_two_tensors"),
    OpCase("SetItem", lambda a, m: _assign(a, (m,), 0.0), [rnd(3, 4), MASK], lambda a, m: np.where(m, 0.0, a),
           name="setitem_mask_value"),
    OpCase("SetItem", lambda a, i, v: a.clone().index_put_((i,), v, accumulate=True),
           [rnd(4, 3), ints(1, 3, 1, 1), rnd(4, 3)], _index_put, name="index_put_accumulate"),
    # masks
    OpCase("MaskedFill", lambda a, m: a.masked_fill(m, -1.5), [rnd(3, 4), rnd(4, seed=3) > 0],
           lambda a, m: np.where(m, -1.5, a), name="masked_fill_broadcast_mask"),
    OpCase("MaskedFill", lambda a, m, v: a.masked_fill(m, v), [rnd(3, 4), MASK, np.array(0.25)],
           lambda a, m, v: np.where(m, v, a), name="masked_fill_tensor_value"),
    OpCase("MaskedFill", lambda a, m: a.clone().masked_fill_(m, 2.0), [rnd(3, 4), MASK],
           lambda a, m: np.where(m, 2.0, a), name="masked_fill_inplace"),
    # gather / scatter
    OpCase("Gather", lambda a, i: a.gather(0, i), [rnd(3, 4), ints([2, 0, 1, 1], [0, 0, 2, 1])],
           lambda a, i: _gather_ref(a, 0, i), name="gather_dim0"),
    OpCase("Gather", lambda a, i: a.gather(1, i), [rnd(3, 4), ints([3, 3, 0], [1, 2, 0])],
           lambda a, i: _gather_ref(a, 1, i), name="gather_dim1_smaller_index"),
    OpCase("Gather", lambda a, i: a.take_along_dim(i, 1), [rnd(3, 4), ints([3], [0], [1])],
           lambda a, i: np.take_along_axis(a, i, 1), name="take_along_dim"),
    OpCase("Scatter", lambda a, i, s: a.scatter(0, i, s), [rnd(3, 4), ints([2, 0, 1, 1], [0, 1, 2, 0]),
                                                          rnd(2, 4)],
           lambda a, i, s: _scatter_ref(a, 0, i, s), name="scatter_dim0"),
    OpCase("Scatter", lambda a, i: a.scatter(1, i, 0.5), [rnd(3, 4), ints([3, 0], [1, 2])],
           lambda a, i: _scatter_ref(a, 1, i, 0.5), name="scatter_value"),
    OpCase("Scatter", lambda a, i, s: a.scatter_add(1, i, s), [rnd(3, 4), ints([3, 3, 0], [1, 1, 1]),
                                                              rnd(2, 3)],
           lambda a, i, s: _scatter_ref(a, 1, i, s, np.add), name="scatter_add_repeated"),
    OpCase("Scatter", lambda a, i, s: a.scatter(0, i, s, reduce="multiply"), [rnd(3, 4), ints([2, 0, 2, 1]),
                                                                             rnd(1, 4)],
           lambda a, i, s: _scatter_ref(a, 0, i, s, np.multiply), grad=False,
           torch_fn=lambda a, i, s: a.scatter_reduce(0, i, s, "prod"), name="scatter_multiply"),
    # sorting
    OpCase("TopK", lambda a: a.topk(2), [rnd(3, 5)], lambda a: _topk_ref(a, 2, -1, True),
           name="topk_largest"),
    OpCase("TopK", lambda a: a.topk(3, dim=0, largest=False), [rnd(4, 3)],
           lambda a: _topk_ref(a, 3, 0, False), name="topk_smallest_dim0"),
    OpCase("Sort", lambda a: a.sort(dim=0, descending=True), [rnd(4, 3)], lambda a: _topk_ref(a, 4, 0, True),
           name="sort_descending", dynamic={0: {0: "n"}}),
    OpCase("Sort", lambda a: a.sort(), [rnd(3, 5)], lambda a: _topk_ref(a, 5, -1, False),
           name="sort_ascending"),
    OpCase("Sort", lambda a: a.argsort(descending=True), [rnd(3, 5)],
           lambda a: np.argsort(-a, -1, kind="stable"), grad=False, name="argsort"),
    OpCase("NonZero", lambda a: a.nonzero(), [ints([0, 1, 0], [2, 0, 3])], np.argwhere, grad=False),
]
