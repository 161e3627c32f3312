"""Indexing beyond the per-op cases: PyTorch's key semantics, views, in-place assignment and autograd, errors,
the accumulation paths, sorting ties, and CUDA."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import interop
from interop.ops.index import _index_add, _topk_indices

torch = pytest.importorskip("torch")

X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)


def both(a):
    return interop.tensor(a), torch.tensor(a)


def _key(k, lib):
    """A key with its numpy index arrays turned into the library's tensors."""
    if isinstance(k, tuple):
        return tuple(_key(e, lib) for e in k)
    if isinstance(k, np.ndarray):
        return interop.tensor(k) if lib == "interop" else torch.from_numpy(k)
    return k


MASK = (X[..., 0] % 3) == 0  # (3, 4)
KEYS = [
    1, -1, (1, 2, 3), (-1, -4, -5), slice(None), slice(1, None), slice(None, -1), slice(-2, None, 2),
    (slice(None), 1), (Ellipsis, 2), (1, Ellipsis, None), (None, 1, None), (slice(5, 9),),
    (slice(0, 100, 3),),
    [0, 2], [[0, 1], [1, 2]], [-1, 0, -3], [True, False, True], np.array([2, 0, 2]), np.array([[0], [2]]),
    (np.array([0, 2]), np.array([1, 3])), (0, slice(None), [1, 2]), ([0, 1], None, [1, 2]),
    (slice(None), [0, 1], 0),
    ([0, 1], 0, [1, 2]), (slice(None), np.array([[0, 1]]), np.array([[1], [2]])), (np.array([[0]]), 1),
    MASK, (MASK, 1), (MASK, [0, 4, 2, 1, 3][: int(MASK.sum())]), (slice(None), MASK[0]),
    (True,), (False,), (None, True, Ellipsis, False), (1, True), (Ellipsis, np.array([4, 4, 0])),
    (np.array([], dtype=np.int64),), (slice(1, 2), np.array([3, 1]), slice(None, None, 2)),
]


LEGACY = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # PyTorch's own, for list keys


@LEGACY
@pytest.mark.parametrize("key", KEYS, ids=lambda k: repr(k)[:60])
def test_getitem_matches_pytorch(key):
    mine, theirs = both(X)
    got, want = mine[_key(key, "interop")], theirs[_key(key, "torch")]
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@LEGACY
@pytest.mark.parametrize("key", KEYS, ids=lambda k: repr(k)[:60])
def test_setitem_matches_pytorch(key):
    mine, theirs = both(X)
    shape = tuple(theirs[_key(key, "torch")].shape)
    value = np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32)  # broadcast over dim 0
    mine[_key(key, "interop")] = interop.tensor(value)
    theirs[_key(key, "torch")] = torch.from_numpy(value)
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@LEGACY
def test_zero_d_index_tensor_selects_a_view_and_list_of_tensors_is_a_tuple():
    mine, theirs = both(X)
    v = mine[interop.tensor(1)]
    assert v._base is mine and tuple(v.shape) == (4, 5)
    got = mine[[interop.tensor([0, 1]), interop.tensor([1, 2])]]
    want = theirs[[torch.tensor([0, 1]), torch.tensor([1, 2])]]
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_basic_indexing_is_a_view_sharing_memory_and_version():
    x = interop.tensor(X.copy())
    row, scalar, every = x[1], x[1, 2, 3], x[...]
    for v in (row, scalar, every):
        assert v._base is x and v._vc is x._vc and np.shares_memory(v.data, x.data)
    assert scalar.ndim == 0
    row.add_(1)
    assert x[1, 0, 0].item() == X[1, 0, 0] + 1 and x._version == 1
    x[1, 2, 3] = -7
    assert scalar.item() == -7 and row._version == 2
    assert not np.shares_memory(x[[0, 1]].data, x.data)  # advanced indexing copies
    assert [r.shape for r in x] == [(4, 5)] * 3


def test_setitem_bumps_version_and_respects_leaf_rules():
    x = interop.tensor(X.copy())
    v0 = x._version
    x[0] = 1.0
    x[[1, 2], 0] = interop.tensor([5.0])
    assert x._version == v0 + 2
    w = interop.tensor(X.copy(), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0] = 0.0
    with interop.no_grad():
        w[0] = 0.0  # initialising a parameter
    assert w[0].sum().item() == 0 and w.is_leaf
    buf = interop.zeros(3, dtype=interop.int64)
    buf[1] = 2.7  # cast to the target's dtype
    assert buf.tolist() == [0, 2, 0]


def _setitem_graph(lib, x, v, i):
    y = x * 2
    y[1:, i] = v  # basic + advanced, value broadcast over the first dim
    y[0, 0, 0] = v[0] * 3  # a second assignment on the same tensor
    return (y * y).sum()


def test_setitem_gradient_matches_pytorch():
    rng = np.random.default_rng(1)
    xs, vs = rng.standard_normal((3, 4, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    idx = np.array([2, 0])
    mx, mv = interop.tensor(xs, requires_grad=True), interop.tensor(vs, requires_grad=True)
    tx, tv = torch.tensor(xs, requires_grad=True), torch.tensor(vs, requires_grad=True)
    _setitem_graph("interop", mx, mv, interop.tensor(idx)).backward()
    _setitem_graph("torch", tx, tv, torch.from_numpy(idx)).backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(mv.grad.numpy(), tv.grad.numpy(), rtol=1e-5)


def test_inplace_on_a_tensor_saved_for_backward_raises():
    x = interop.tensor(X.copy(), requires_grad=True)
    y = x.exp()
    y[0] = 0.0  # Exp's backward reads its output
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    a = interop.tensor(X.copy(), requires_grad=True) * 1
    b = a * a  # Mul reads both inputs
    a[interop.tensor([0, 1])] = 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        b.sum().backward()


def test_assignment_after_another_use_keeps_that_use_gradient():
    grads = []
    for lib in (interop, torch):
        w = lib.tensor([1.0, 2.0, 4.0], requires_grad=True)
        y = w * 1
        a = y + 3  # uses y before the assignment: its gradient must reach w whole
        y[0] = 0.0
        (a.sum() + y.sum()).backward()
        grads.append(w.grad.tolist())
    assert grads[0] == grads[1]


def test_index_put_accumulates_like_pytorch():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((5, 3)).astype(np.float32)
    vals = rng.standard_normal((6, 3)).astype(np.float32)
    idx = np.array([4, 0, 4, 4, 1, 0])
    mine = interop.tensor(base).index_put((interop.tensor(idx),), interop.tensor(vals), accumulate=True)
    theirs = torch.tensor(base).index_put((torch.from_numpy(idx),), torch.tensor(vals), accumulate=True)
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6)
    m = interop.tensor(base)
    m.index_put_((None, interop.tensor([2, 2])), interop.tensor(1.0), accumulate=True)
    t = torch.tensor(base)
    t[:, [2, 2]] += 0  # PyTorch's None entry means ':' as well
    t.index_put_((torch.arange(5)[:, None], torch.tensor([2, 2])), torch.tensor(1.0), accumulate=True)
    np.testing.assert_allclose(m.numpy(), t.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, ml_dtypes.bfloat16, np.int64])
def test_index_add_paths_agree_with_add_at(dtype):
    """The bincount path (rows of 128+ floats), non-adjacent index dims, negative indices and masks."""
    rng = np.random.default_rng(3)
    for shape, pos, arrays, vshape in [
        ((7, 200), (0,), (np.array([[1, -6, 1], [6, 0, 1]]),), (2, 3, 200)),
        ((3, 6, 150), (1,), (np.array([5, 5, -1, 2]),), (3, 4, 150)),
        ((5, 3, 140), (0, 2), (np.array([[0], [4]]), np.array([1, 1, 139])), (2, 3, 3)),
        ((4, 5, 3), (0, 1), (np.array([3, 3, 0]), np.array([1, 1, 4])), (3, 3)),
        ((4, 130), (0,), (rng.standard_normal(4) > 0,), (1, 130)),
    ]:
        t = np.zeros(shape, dtype)
        v = rng.standard_normal(vshape).astype(dtype)
        want = np.zeros(shape, np.float64)
        key = [slice(None)] * len(shape)
        for p, a in zip(pos, arrays):
            key[p] = a
        np.add.at(want, tuple(key), v.astype(np.float64))
        _index_add(t, pos, arrays, v)
        tol = 2e-2 if np.dtype(dtype).itemsize == 2 else 1e-6
        np.testing.assert_allclose(t.astype(np.float64), want, rtol=tol, atol=tol)


def test_embedding_like_gradient_accumulates_repeats():
    w = interop.tensor(np.ones((10, 256), np.float32), requires_grad=True)
    ids = interop.tensor([[1, 1, 3], [1, 9, 3]])
    w[ids].sum().backward()
    counts = np.bincount([1, 1, 3, 1, 9, 3], minlength=10)
    np.testing.assert_array_equal(w.grad.numpy(), np.repeat(counts[:, None], 256, 1).astype(np.float32))


def test_second_order_gradient_through_indexing():
    xs = np.array([0.5, -1.0, 2.0], np.float32)
    mx, tx = interop.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
    for x, idx, grad in ((mx, interop.tensor([0, 2, 2]), interop.grad), (tx, torch.tensor([0, 2, 2]),
                                                                            torch.autograd.grad)):
        y = x[idx]
        (g,) = grad((y * y * y).sum(), x, create_graph=True)
        g[1:].sum().backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("fn, exc, match", [
    (lambda x: x[3], IndexError, "index 3 is out of bounds for dimension 0 with size 3"),
    (lambda x: x[:, -5], IndexError, "index -5 is out of bounds for dimension 1 with size 4"),
    (lambda x: x[interop.tensor([0, 5])], IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    (lambda x: x[:, :, interop.tensor([-6])], IndexError, "index -6 is out of bounds for dimension 2 with"),
    (lambda x: x[::-1], ValueError, "step must be greater than zero"),
    (lambda x: x[::0], ValueError, "slice step cannot be zero"),
    (lambda x: x[0, 0, 0, 0], IndexError, "too many indices for tensor of dimension 3"),
    (lambda x: x[..., ...], IndexError, "single ellipsis"),
    (lambda x: x[interop.tensor([True, False])], IndexError, r"shape of the mask \[2\] at index 0 does not"),
    (lambda x: x[interop.tensor([1.0])], IndexError, "tensors used as indices must be long, int, byte or"),
    (lambda x: x[1.5], IndexError, "only integers, slices"),
    (lambda x: x[[0, 1], :, [0, 1, 2]], IndexError, r"could not be broadcast together with shapes \[2\], \["),
    (lambda x: x[0][0][0][0], IndexError, "invalid index of a 0-dim tensor"),
    (lambda x: x.__setitem__([0, 1], interop.ones(3)), RuntimeError,
     r"value tensor of shape \[3\] cannot be broadcast to indexing result of shape \[2, 4, 5\]"),
    (lambda x: x.gather(1, interop.tensor([[[4]]])), RuntimeError, "index 4 is out of bounds for dimension"),
    (lambda x: x.gather(1, interop.tensor([[-1]])), RuntimeError, "Index tensor must have the same number"),
    (lambda x: x.scatter(0, interop.zeros(1, 1, 9, dtype=interop.int64), 1.0), RuntimeError, "Size does not"),
    (lambda x: x.index_select(0, interop.tensor([[0]])), IndexError, "Index is supposed to be a vector"),
    (lambda x: x.masked_fill(interop.ones(3, 4, 5), 0.0), RuntimeError, "only supports boolean masks"),
    (lambda x: x.masked_fill(interop.ones(2, 1, 1, dtype=interop.bool), 0.0), RuntimeError, "expanded size"),
    (lambda x: x.masked_fill(interop.ones(5, dtype=interop.bool), interop.ones(1)), RuntimeError,
     "0-dimensional value tensor"),
    (lambda x: x.topk(6), RuntimeError, "selected index k out of range"),
    (lambda x: interop.take_along_dim(x, interop.tensor([[[0, 1]]]), 0), RuntimeError,
     r"size of tensor a \(5\) must match the size of tensor b \(2\) at non-singleton dimension 2"),
])
def test_errors_use_pytorch_wording(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn(interop.tensor(X.copy()))


def test_sort_and_topk_ties_and_nans():
    data = np.array([[2.0, 1.0, 2.0, np.nan, 1.0, 2.0], [0.0, 0.0, 3.0, 3.0, -1.0, 0.0]], np.float32)
    x = interop.tensor(data)
    v, i = x.sort(descending=True)
    assert i.tolist() == [[3, 0, 2, 5, 1, 4], [2, 3, 0, 1, 5, 4]]  # NaN first, ties keep their order
    assert np.isnan(v.numpy()[0, 0])
    assert x.sort().indices.tolist() == [[1, 4, 0, 2, 5, 3], [4, 0, 1, 5, 2, 3]]
    assert x.topk(2).indices.tolist() == [[3, 0], [2, 3]]
    assert x.topk(2, largest=False).indices.tolist() == [[1, 4], [4, 0]]
    ties = np.random.default_rng(4).integers(0, 5, (6, 300)).astype(np.float32)
    for k in (1, 7, 299):
        for largest in (True, False):
            order = interop.tensor(ties).sort(descending=largest).indices.numpy()
            np.testing.assert_array_equal(_topk_indices(ties, 1, k, largest), order[:, :k])
    s = interop.tensor(3.0).sort()
    assert s.values.ndim == 0 and s.indices.item() == 0
    assert interop.tensor([3.0, 1.0]).argsort().tolist() == [1, 0]


def test_topk_sort_gradients_scatter_back():
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((4, 6)).astype(np.float32)
    mx, tx = interop.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
    for x, lib in ((mx, interop), (tx, torch)):
        top = lib.topk(x, 3, dim=1)
        srt = lib.sort(x, dim=0, descending=True)
        (top.values.sum() * 2 + (srt.values * lib.arange(4.0).reshape(4, 1)).sum()).backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy())


def test_gather_scatter_family_matches_pytorch():
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([[0, 3, 3], [2, 2, 0]])
    src = rng.standard_normal((2, 3)).astype(np.float32)
    (mx, tx), (mi, ti), (ms, ts) = both(xs), both(idx), both(src)
    pairs = [
        (mx.scatter(1, mi, 2.5), tx.scatter(1, ti, 2.5)),
        (mx.scatter(1, mi, ms, reduce="add"), tx.scatter_add(1, ti, ts)),
        (mx.clone().scatter_(1, mi, ms), tx.clone().scatter_(1, ti, ts)),
        (mx.clone().scatter_add_(1, mi, ms), tx.clone().scatter_add_(1, ti, ts)),
        (interop.take_along_dim(mx, interop.tensor([[1], [0], [3]]), 1),
         torch.take_along_dim(tx, torch.tensor([[1], [0], [3]]), 1)),
        (interop.take_along_dim(mx, interop.tensor([5, 0])), torch.take_along_dim(tx, torch.tensor([5, 0]))),
        (interop.take_along_dim(mx, interop.tensor([[2], [0]]), 0),
         torch.take_along_dim(tx, torch.tensor([[2], [0]]), 0)),
        (mx.index_select(0, interop.tensor(2)), tx.index_select(0, torch.tensor(2))),
        (mx.masked_select(interop.tensor(xs[0] > 0)), tx.masked_select(torch.tensor(xs[0] > 0))),
    ]
    for got, want in pairs:
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_masked_fill_inplace_and_value_gradient():
    xs = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([True, False, True])
    mx, tx = interop.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
    mv, tv = interop.tensor(0.5, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    for x, v, m in ((mx, mv, interop.tensor(mask)), (tx, tv, torch.from_numpy(mask))):
        y = x * 1
        y.masked_fill_(m, v)
        (y * y).sum().backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(mv.grad.numpy(), tv.grad.numpy())


def test_nonzero_forms():
    data = np.array([[0, 2, 0], [1, 0, 3]])
    (m, t) = both(data)
    assert m.nonzero().tolist() == t.nonzero().tolist()
    assert [a.tolist() for a in m.nonzero(as_tuple=True)] == [a.tolist() for a in t.nonzero(as_tuple=True)]
    assert interop.argwhere(m).dtype == interop.int64
    assert interop.tensor(0.0).nonzero().shape == (0, 0)


def test_symbolic_slice_bound_stays_dynamic_in_export():
    exporter = pytest.importorskip("interop.export.exporter")
    pytest.importorskip("onnxruntime")

    def drop_last(x):
        return x[:, : x.shape[1] - 1] * 2

    x = interop.tensor(np.arange(12, dtype=np.float32).reshape(2, 6))
    proto = exporter.export(drop_last, (x,), input_names=["x"], dynamic={"x": {1: "n"}})  # verifies sizes
    assert any(n.op_type == "Slice" for n in proto.graph.node)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    import cupy

    rng = np.random.default_rng(7)
    xs = rng.standard_normal((5, 140)).astype(np.float32)
    ids = np.array([[1, 1, 4], [0, 4, 4]])
    results = []
    for dev in ("cpu", "cuda"):
        x = interop.tensor(xs, device=dev, requires_grad=True)
        i = interop.tensor(ids, device=dev)
        y = x[i]  # advanced: gradient accumulates through cupyx.scatter_add
        z = x[1:, ::2]  # basic view
        g = x.gather(1, interop.tensor(ids[:, :2], device=dev))
        top = x.topk(3, dim=1)
        srt = x.sort(dim=0, descending=True)
        mf = x.masked_fill(interop.tensor(xs > 0, device=dev), 0.0)
        loss = y.sum() + (z * z).sum() + g.sum() * 3 + top.values.sum() + srt.values[0].sum() + mf.sum()
        loss.backward()
        w = x.detach().clone()
        w[[0, 4, 2], 3] = interop.tensor([1.0, 2.0, 3.0], device=dev)
        w.index_put_((i,), interop.tensor(1.0, device=dev), accumulate=True)
        j = interop.tensor(ids, device=dev)
        s = w.scatter_add(1, j, interop.ones(2, 3, device=dev))
        p = w.scatter(1, j, interop.full((2, 3), 3.0, device=dev), reduce="multiply")
        h = x.detach().half()[i]
        outs = [y, z, g, top.values, top.indices, srt.indices, mf, x.grad, w, s, p, h, (x > 0).nonzero(),
                x[x > 1]]
        results.append([o.detach().numpy(force=True) for o in outs])
        if dev == "cuda":
            assert isinstance(y.data, cupy.ndarray) and isinstance(z.data, cupy.ndarray)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
