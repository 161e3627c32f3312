"""Session on CUDA: inputs and outputs bound in place, ordered with the caller's stream, no host round trips.

Runs where a GPU is lent (scripts/gpu-check); skipped with a reason elsewhere.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto

import interop
from interop.runtime import Session, backend
from tests.runtime.models import binary, mlp, mlp_reference

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.fixture(scope="module")
def m():
    return mlp()


@pytest.fixture(scope="module")
def sess(m, cp):
    return Session(m, device="cuda")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(got, m, x):  # ORT's CUDA Gemm uses TF32 by default
    np.testing.assert_allclose(got, mlp_reference(m, x), rtol=1e-2, atol=1e-2)


def test_runs_on_the_cuda_provider(sess):
    assert sess.providers[0] == "CUDAExecutionProvider"
    assert sess.device == interop.device("cuda:0")


def test_cupy_in_cupy_out_binds_in_place(sess, m, cp, monkeypatch):
    from interop.runtime import _cuda

    bound = {}

    class Recording(_cuda.C.SessionIOBinding):
        def bind_input(self, name, *args):
            bound[name] = args[-1]
            super().bind_input(name, *args)

    monkeypatch.setattr(_cuda.C, "SessionIOBinding", Recording)
    x = rand(32, 784)
    t = interop.Tensor(cp.asarray(x))
    sess.stats.reset()
    (y,) = sess.run(t)
    assert bound == {"x": t.data_ptr()}  # ORT read the Tensor's device buffer
    assert type(y.data) is cp.ndarray and y.device == interop.device("cuda:0")
    assert isinstance(y.data.data.mem, cp.cuda.UnownedMemory)  # ORT's own buffer, not a cupy copy
    assert (sess.stats.copies, sess.stats.host_to_device, sess.stats.device_to_host) == (0, 0, 0)
    close(cp.asnumpy(y.data), m, x)


def test_torch_cuda_in_torch_out(sess, m):
    torch = pytest.importorskip("torch")
    x = rand(8, 784, seed=1)
    sess.stats.reset()
    y = sess.run(torch.from_numpy(x).cuda(), output="torch")[0]
    assert isinstance(y, torch.Tensor) and y.is_cuda and y.dtype == torch.float32
    assert sess.stats.host_to_device == 0 and sess.stats.device_to_host == 0
    close(y.cpu().numpy(), m, x)


def test_waits_for_the_producer_stream(sess, m, cp):
    """The input is still being written on another stream when run() is called: ORT must wait for it."""
    x = rand(64, 784, seed=2)
    host = cp.asarray(x)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        a = cp.ones((4096, 4096), cp.float32) / 4096
        for _ in range(20):  # keep the stream busy for a while
            a = a @ a
        xin = host + a[:64, :784] * 0  # written only after the matmuls
        (y,) = sess.run(interop.Tensor(xin))
        got = cp.asnumpy(y.data, stream=stream)
        stream.synchronize()
    close(got, m, x)


def test_user_compute_stream_from_torch(m):
    torch = pytest.importorskip("torch")
    ts = torch.cuda.Stream()
    s = Session(m, device="cuda", user_compute_stream=ts)
    x = rand(16, 784, seed=3)
    with torch.cuda.stream(ts):
        xt = torch.from_numpy(x).to("cuda", non_blocking=True) * 1.0
        y = s.run(xt, output="torch")[0]
        got = y.cpu().numpy()
    close(got, m, x)


def test_host_values_are_counted(sess, m):
    x = rand(4, 784, seed=4)
    sess.stats.reset()
    y = sess.run(x, output="numpy")[0]
    assert type(y) is np.ndarray
    assert sess.stats.host_to_device == 1 and sess.stats.device_to_host == 1
    close(y, m, x)


def test_bool_on_cuda(cp):
    s = Session(binary("And", TensorProto.BOOL, [4]), device="cuda")
    a, b = cp.asarray([True, True, False, False]), cp.asarray([True, False, True, False])
    y = s.run(a, b)[0]
    assert y.dtype == interop.bool and type(y.data) is cp.ndarray
    assert y.tolist() == [True, False, False, False]


def test_wrong_device_inputs_raise(m, cp):
    with pytest.raises(ValueError, match=r"input 'x' is on cuda:0 but the session runs on cpu"):
        Session(m).run(cp.zeros((1, 784), cp.float32))


def test_threads_share_a_cuda_session(sess, m, cp):
    xs = [rand(4, 784, seed=10 + k) for k in range(4)]
    wants = [mlp_reference(m, x) for x in xs]
    errors = []

    def worker(k):
        xin = interop.Tensor(cp.asarray(xs[k]))
        for _ in range(25):
            got = cp.asnumpy(sess.run(xin)[0].data)
            if not np.allclose(got, wants[k], rtol=1e-2, atol=1e-2):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_warmup_and_backend_on_cuda(sess, m):
    sess.warmup(iterations=2, batch=32)
    assert backend.supports_device("CUDA")
    x = rand(2, 784, seed=5)
    (y,) = backend.prepare(m, "CUDA").run([x])
    close(y, m, x)
