"""`interop.runtime.Session` against raw ONNX Runtime on the MLP 784-512-256-10, printed as ratios.

CPU (1 intra-op thread, batch 1 and 32): `Session.run` with an interop Tensor in and out against
`onnxruntime.InferenceSession.run(None, {"x": array})`. Bar: overhead <= 5% or <= 10 us, whichever is larger.
GPU (`--gpu`, or whenever a CUDA device is usable): Session on device='cuda' with a cupy input against raw ORT with
IOBinding on the same cupy buffer. Bar: latency ratio <= 1.05, no device-to-host copies.

The two sides run in alternating blocks and each reports the median over blocks of the per-block median, so a noisy
neighbour slows both sides alike. Run: `python -m bench.runtime [--gpu] [--quick]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

import interop
from interop.runtime import Session
from tests.runtime.models import mlp

DIMS = (784, 512, 256, 10)


def _block(fn: Callable[[], object], n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t)
    return statistics.median(ts) / 1e3


def compare(ours: Callable[[], object], raw: Callable[[], object], blocks: int, n: int) -> tuple[float, float]:
    """(ours, raw) median latency in microseconds, measured in alternating blocks after a warm-up."""
    for fn in (ours, raw):
        _block(fn, max(n // 4, 20))
    a, b = [], []
    for _ in range(blocks):
        a.append(_block(ours, n))
        b.append(_block(raw, n))
    return statistics.median(a), statistics.median(b)


def cpu(blocks: int, n: int) -> bool:
    model = mlp(DIMS).SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    raw_sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    sess = Session(model, threads=1)
    ok = True
    print("CPU, 1 thread: Session.run(Tensor) -> Tensor vs InferenceSession.run(None, {'x': ndarray})")
    print(f"{'batch':>5} {'raw us':>9} {'ours us':>9} {'overhead':>9} {'ratio':>6} {'bar us':>7}  verdict")
    for batch in (1, 32):
        x = np.random.default_rng(batch).standard_normal((batch, DIMS[0])).astype(np.float32)
        t = interop.tensor(x)
        feed = {"x": x}
        ours, raw = compare(lambda t=t: sess.run(t), lambda feed=feed: raw_sess.run(None, feed), blocks, n)
        bar = max(0.05 * raw, 10.0)
        good = ours - raw <= bar
        ok &= good
        print(f"{batch:>5} {raw:9.1f} {ours:9.1f} {ours - raw:+9.1f} {ours / raw:6.3f} {bar:7.1f}  "
              f"{'ok' if good else 'OVER'}")
    y = sess.run(t)[0]
    print(f"zero-copy check: stats={sess.stats}, output owns no memory: {not y.data.flags.owndata}")
    return ok


def gpu(blocks: int, n: int) -> bool:
    import cupy as cp

    model = mlp(DIMS).SerializeToString()
    sess = Session(model, device="cuda")
    raw_sess = ort.InferenceSession(model, providers=["CUDAExecutionProvider"])
    if raw_sess.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"raw ORT did not get CUDA: {raw_sess.get_providers()}")
    ok = True
    print(f"GPU ({cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}): Session.run(cupy Tensor) -> cupy "
          f"Tensor vs raw ORT IOBinding on the same buffers; each call waits for the GPU")
    print(f"{'batch':>5} {'raw us':>9} {'ours us':>9} {'ratio':>6}  verdict")
    for batch in (1, 32, 256):
        x = cp.asarray(np.random.default_rng(batch).standard_normal((batch, DIMS[0])).astype(np.float32))
        t = interop.Tensor(x)
        binding = raw_sess.io_binding()

        def raw(x=x, binding=binding):
            binding.bind_input("x", "cuda", 0, np.float32, x.shape, x.data.ptr)
            binding.bind_output("y", "cuda")
            raw_sess.run_with_iobinding(binding)
            return binding.get_outputs()[0]

        def ours(t=t):
            y = sess.run(t)[0]
            cp.cuda.get_current_stream().synchronize()
            return y

        mean_ours, mean_raw = compare(ours, raw, blocks, n)
        good = mean_ours <= 1.05 * mean_raw
        ok &= good
        print(f"{batch:>5} {mean_raw:9.1f} {mean_ours:9.1f} {mean_ours / mean_raw:6.3f}  {'ok' if good else 'OVER'}")
        got = sess.run(t)[0].data
        want = cp.asarray(raw().numpy())
        assert cp.allclose(got, want, rtol=1e-3, atol=1e-4), "GPU outputs differ from raw ORT"
    print(f"device-to-host copies: {sess.stats.device_to_host}, host-to-device: {sess.stats.host_to_device}, "
          f"output type: {type(sess.run(t)[0].data).__module__}")
    ok &= sess.stats.device_to_host == 0 and sess.stats.host_to_device == 0
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="fail when no CUDA device is usable")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = p.parse_args(argv)
    blocks, n = (3, 200) if args.quick else (9, 1000)
    ok = cpu(blocks, n)
    if args.gpu or interop.cuda_available():
        ok &= gpu(blocks, n // 2)
    else:
        print("GPU: skipped (no CUDA device; scripts/gpu-check runs it where one is lent)")
    print("PASS" if ok else "FAIL: over the bar")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
