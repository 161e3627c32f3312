"""interop.runtime.Session on the CPU: values, zero-copy, input validation, framework hand-over, providers."""

from __future__ import annotations

import json
import os
import threading

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import interop
from interop.runtime import Session
from tests.runtime.models import binary, mlp, mlp_reference, model, unary

vi = helper.make_tensor_value_info


@pytest.fixture(scope="module")
def mlp_model():
    return mlp()


@pytest.fixture(scope="module")
def sess(mlp_model):
    return Session(mlp_model, threads=1)


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


class Spy:
    """Stands in for ORT's C++ session, recording the buffers it is handed and the ones it returns."""

    def __init__(self, inner):
        self.inner, self.fed, self.returned = inner, {}, []

    def run(self, names, feed, run_options):
        self.fed = {k: v.ctypes.data for k, v in feed.items()}
        out = self.inner.run(names, feed, run_options)
        self.returned = [a.ctypes.data for a in out]
        return out


@pytest.fixture
def spied(mlp_model):
    s = Session(mlp_model, threads=1)
    s._sess = spy = Spy(s._sess)
    return s, spy


# ---- values ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 32])
def test_mlp_matches_numpy(sess, mlp_model, batch):
    x = rand(batch, 784)
    (y,) = sess.run(interop.tensor(x))
    assert isinstance(y, interop.Tensor) and y.shape == (batch, 10) and y.dtype == interop.float32
    assert y.device == interop.device("cpu") and not y.requires_grad
    np.testing.assert_allclose(y.numpy(), mlp_reference(mlp_model, x), rtol=1e-4, atol=1e-4)


def test_model_sources_path_bytes_proto(tmp_path, mlp_model):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model, path)
    x = rand(3, 784)
    want = Session(mlp_model).run(x)[0].numpy()
    for src in (str(path), path, path.read_bytes()):
        np.testing.assert_array_equal(Session(src).run(x)[0].numpy(), want)
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        Session(42)


# ---- zero-copy -----------------------------------------------------------------------------------------------------
def test_tensor_in_tensor_out_makes_no_copies(spied):
    s, spy = spied
    t = interop.tensor(rand(32, 784))
    (y,) = s.run(t)
    assert spy.fed == {"x": t.data_ptr()}  # ORT reads the Tensor's own buffer
    assert spy.returned == [y.data_ptr()]  # the output Tensor is ORT's buffer
    assert not y.data.flags.owndata  # ... which ORT owns (a view, kept alive by its capsule)
    assert (s.stats.copies, s.stats.host_to_device, s.stats.device_to_host) == (0, 0, 0)


def test_numpy_and_torch_inputs_are_not_copied(spied):
    torch = pytest.importorskip("torch")
    s, spy = spied
    a = rand(4, 784)
    s.run(a)
    assert spy.fed["x"] == a.ctypes.data
    t = torch.from_numpy(rand(4, 784, seed=1))
    s.run(t)
    assert spy.fed["x"] == t.data_ptr()
    assert s.stats.copies == 0


def test_non_contiguous_input_is_copied_once_and_counted(spied, mlp_model):
    s, spy = spied
    a = np.asfortranarray(rand(8, 784))
    (y,) = s.run(a)
    assert s.stats.copies == 1 and spy.fed["x"] != a.ctypes.data
    np.testing.assert_allclose(y.numpy(), mlp_reference(mlp_model, a), rtol=1e-4, atol=1e-4)
    torch = pytest.importorskip("torch")
    s.run(torch.from_numpy(rand(784, 8)).t())
    assert s.stats.copies == 2
    s.stats.reset()
    assert s.stats.copies == 0


# ---- inputs of every kind ------------------------------------------------------------------------------------------
def test_inputs_by_position_name_and_dict():
    s = Session(binary("Sub", TensorProto.FLOAT, [2]))
    a, b = np.array([5, 7], np.float32), np.array([1, 2], np.float32)
    for out in (s.run(a, b), s.run(b=b, a=a), s.run(a, b=b), s.run({"a": a, "b": b}), s(a, b)):
        np.testing.assert_array_equal(out[0].numpy(), [4, 5])
    assert s.run(a, b, as_dict=True)["z"].tolist() == [4, 5]


def test_python_and_numpy_scalars():
    s = Session(binary("Mul", TensorProto.FLOAT, []))
    assert s.run(3, 2.5)[0].item() == 7.5
    assert s.run(np.float32(2), np.array(4, np.float32))[0].item() == 8
    i = Session(binary("Add", TensorProto.INT64, [3]))
    assert i.run([1, 2, 3], (1, 1, 1))[0].tolist() == [2, 3, 4]
    with pytest.raises(TypeError, match=r"input 'a': expected dtype int64, got a Python value of dtype float64"):
        i.run(1.5, [1, 2, 3])
    with pytest.raises(TypeError, match=r"input 'a': expected dtype float32, got float64"):
        s.run(np.float64(1), 2)


def test_bool_inputs_from_numpy_torch_and_interop():
    s = Session(binary("And", TensorProto.BOOL, [4]))
    a, b = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    want = [True, False, False, False]
    assert s.run(a, b)[0].tolist() == want
    assert s.run(interop.tensor(a), [True] * 4)[0].tolist() == a.tolist()
    torch = pytest.importorskip("torch")
    out = s.run(torch.from_numpy(a), torch.from_numpy(b), output="torch")[0]
    assert out.dtype == torch.bool and out.tolist() == want


def test_jax_input_and_output():
    jnp = pytest.importorskip("jax.numpy")
    s = Session(unary("Neg", TensorProto.FLOAT, [3]))
    out = s.run(jnp.arange(3, dtype=jnp.float32), output="jax")[0]
    assert type(out).__module__.startswith("jax") and out.tolist() == [0, -1, -2]


def test_dtypes_round_trip():
    for proto, dt in [(TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64),
                      (TensorProto.INT32, np.int32), (TensorProto.INT8, np.int8), (TensorProto.UINT8, np.uint8)]:
        s = Session(binary("Add", proto, [2, "n"]))
        a = np.arange(6).reshape(2, 3).astype(dt)
        y = s.run(a, a)[0]
        assert y.dtype == np.dtype(dt) and y.tolist() == (a + a).tolist()


def test_strings():
    s = Session(model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", TensorProto.STRING, [2])],
                      [vi("y", TensorProto.STRING, [2])]))
    assert s.run(["ab", "c"], output="numpy")[0].tolist() == ["ab", "c"]


def test_bfloat16_and_float8_cross_as_raw_bytes():
    to16 = Session(unary("Cast", TensorProto.FLOAT, [3], TensorProto.BFLOAT16, to=TensorProto.BFLOAT16))
    y = to16.run(np.array([1, 2.5, -3], np.float32))[0]
    assert y.dtype == interop.bfloat16 and y.numpy().astype(np.float32).tolist() == [1, 2.5, -3]
    back = Session(unary("Cast", TensorProto.BFLOAT16, [3], TensorProto.FLOAT, to=TensorProto.FLOAT))
    assert back.run(y)[0].tolist() == [1, 2.5, -3]
    f8 = ml_dtypes.float8_e4m3fn
    c = Session(unary("Cast", TensorProto.FLOAT, [3], TensorProto.FLOAT8E4M3FN, to=TensorProto.FLOAT8E4M3FN))
    out = c.run(np.array([0.5, 1, 448], np.float32), output="numpy")[0]
    assert out.dtype == np.dtype(f8) and out.astype(np.float32).tolist() == [0.5, 1, 448]


def test_int4_is_packed_and_unpacked():
    to4 = Session(unary("Cast", TensorProto.INT8, [5], TensorProto.INT4, to=TensorProto.INT4))
    y = to4.run(np.array([-8, -1, 0, 3, 7], np.int8), output="numpy")[0]
    assert y.dtype == np.dtype(ml_dtypes.int4) and y.astype(np.int8).tolist() == [-8, -1, 0, 3, 7]
    back = Session(unary("Cast", TensorProto.INT4, [5], TensorProto.INT8, to=TensorProto.INT8))
    assert back.run(y)[0].tolist() == [-8, -1, 0, 3, 7]


def test_sequence_output_and_input():
    seq = helper.make_tensor_sequence_value_info
    s = Session(model([helper.make_node("SequenceConstruct", ["a", "b"], ["s"])],
                      [vi("a", TensorProto.FLOAT, [2]), vi("b", TensorProto.FLOAT, [2])],
                      [seq("s", TensorProto.FLOAT, None)]))
    out = s.run(np.ones(2, np.float32), np.zeros(2, np.float32))[0]
    assert isinstance(out, list) and [t.tolist() for t in out] == [[1, 1], [0, 0]]
    n = Session(model([helper.make_node("SequenceLength", ["s"], ["n"])], [seq("s", TensorProto.FLOAT, None)],
                      [vi("n", TensorProto.INT64, [])]))
    assert n.run([interop.ones(2), np.zeros(3, np.float32)])[0].item() == 2
    assert n.inputs[0].dtype is None and n.inputs[0].type == "seq(tensor(float))"


def test_overridable_initializer_by_name():
    bias = numpy_helper.from_array(np.array([10, 20], np.float32), "bias")
    m = model([helper.make_node("Add", ["x", "bias"], ["y"])],
              [vi("x", TensorProto.FLOAT, [2]), vi("bias", TensorProto.FLOAT, [2])], [vi("y", TensorProto.FLOAT, [2])],
              [bias])
    s = Session(m)
    assert s.input_names == ["x"]
    assert s.run(np.ones(2, np.float32))[0].tolist() == [11, 21]
    assert s.run(np.ones(2, np.float32), bias=np.zeros(2, np.float32))[0].tolist() == [1, 1]


# ---- validation before ORT sees anything --------------------------------------------------------------------------
@pytest.mark.parametrize("call, err, msg", [
    (lambda s: s.run(rand(2, 784, dtype=np.float64)), TypeError, r"input 'x': expected dtype float32, got float64"),
    (lambda s: s.run(rand(784)), ValueError,
     r"input 'x': expected rank 2 with shape \(batch, 784\), got rank 1 with shape \(784,\)"),
    (lambda s: s.run(rand(2, 100)), ValueError,
     r"input 'x': expected shape \(batch, 784\), got \(2, 100\) \(dimension 1 must be 784\)"),
    (lambda s: s.run(), ValueError, r"missing input 'x'; the model's inputs are x"),
    (lambda s: s.run(x=rand(1, 784), mask=1), ValueError, r"unknown input 'mask'; the model's inputs are x"),
    (lambda s: s.run(rand(1, 784), rand(1, 784)), TypeError, r"the model takes 1 input\(s\) \(x\), got 2"),
    (lambda s: s.run(rand(1, 784), x=rand(1, 784)), TypeError, r"got multiple values for input 'x'"),
    (lambda s: s.run(object()), TypeError, r"input 'x': expected a Tensor, an array, a DLPack tensor"),
    (lambda s: s.run(rand(1, 784), output="pandas"), ValueError, r"output must be one of"),
    (lambda s: s.run(rand(1, 784), output="cupy"), ValueError, r"output='cupy' needs a CUDA session"),
])
def test_errors_name_the_input(sess, call, err, msg):
    with pytest.raises(err, match=msg):
        call(sess)


# ---- outputs -----------------------------------------------------------------------------------------------------
def test_hand_over_to_numpy_and_torch(sess):
    x = rand(2, 784)
    want = sess.run(x)[0].numpy()
    a = sess.run(x, output="numpy")[0]
    assert type(a) is np.ndarray and not a.flags.owndata
    np.testing.assert_array_equal(a, want)
    torch = pytest.importorskip("torch")
    t = sess.run(x, output="torch", as_dict=True)["y"]
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), want)


def test_metadata_repr_and_warmup(sess):
    (i,), (o,) = sess.inputs, sess.outputs
    assert (i.name, i.dtype, i.shape, i.type) == ("x", np.dtype(np.float32), ("batch", 784), "tensor(float)")
    assert (o.name, o.shape) == ("y", ("batch", 10))
    assert sess.input_names == ["x"] and sess.output_names == ["y"]
    assert sess.providers == ["CPUExecutionProvider"] and sess.device == interop.device("cpu")
    assert repr(sess) == ("Session(inputs=[x: float32[batch, 784]], outputs=[y: float32[batch, 10]], "
                          "device='cpu', providers=['CPUExecutionProvider'])")
    sess.warmup()
    sess.warmup(iterations=2, batch=8)


def test_options(mlp_model, tmp_path):
    x = rand(2, 784)
    want = Session(mlp_model).run(x)[0].numpy()
    for level in ("disable", "basic", "extended", "all"):
        np.testing.assert_allclose(Session(mlp_model, optimization=level).run(x)[0].numpy(), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="optimization must be one of"):
        Session(mlp_model, optimization="max")
    with pytest.raises(TypeError, match="inside `providers`"):
        Session(mlp_model, providers=["CPUExecutionProvider"], arena_extend_strategy="kSameAsRequested")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.profile_file_prefix = str(tmp_path / "prof")
    s = Session(mlp_model, profile=True, session_options=so, threads=2)
    assert s.ort.get_session_options().intra_op_num_threads == 2
    s.run(x)
    path = s.end_profiling()
    with open(path) as f:
        assert any(e.get("name") == "model_run" for e in json.load(f))
    os.remove(path)


def test_threads_share_one_session(sess, mlp_model):
    xs = [rand(4, 784, seed=i) for i in range(8)]
    wants = [mlp_reference(mlp_model, x) for x in xs]
    errors = []

    def worker(k):
        for _ in range(20):
            got = sess.run(xs[k])[0].numpy()
            if not np.allclose(got, wants[k], rtol=1e-4, atol=1e-4):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---- providers: never a silent CPU session ------------------------------------------------------------------------
def test_cuda_that_cannot_load_raises_with_the_reason(mlp_model):
    if interop.cuda_available():
        pytest.skip("a GPU is usable here; tests/runtime/test_cuda.py covers it")
    with pytest.raises(RuntimeError, match=r"device='cuda:0': onnxruntime cannot use CUDA: .+") as e:
        Session(mlp_model, device="cuda")
    assert any(w in str(e.value) for w in ("driver", "library", "built without"))


def test_explicit_providers_must_all_load(mlp_model):
    with pytest.raises(RuntimeError, match=r"onnxruntime .* has no NoSuchExecutionProvider"):
        Session(mlp_model, providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])
    assert Session(mlp_model, providers=["CPUExecutionProvider"]).providers == ["CPUExecutionProvider"]


# ---- the onnx.backend adapter (the full onnx suite is in test_onnx_backend.py) -----------------------------------
def test_backend_api(mlp_model):
    from interop.runtime import backend

    x = rand(2, 784)
    rep = backend.prepare(mlp_model, "CPU")
    (y,) = rep.run([x])
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(rep.run({"x": x})[0], y)
    np.testing.assert_array_equal(backend.run_model(mlp_model, [x])[0], y)
    (c,) = backend.run_node(helper.make_node("Add", ["a", "b"], ["c"]), [np.ones(3, np.float32)] * 2)
    assert c.tolist() == [2, 2, 2]
    assert backend.supports_device("CPU") and backend.is_compatible(mlp_model)
    newer = onnx.ModelProto()
    newer.CopyFrom(mlp_model)
    newer.ir_version = backend._max_ir() + 1
    assert not backend.is_compatible(newer)
