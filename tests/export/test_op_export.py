"""Every OpCase (tests/core/opcases) through export -> onnx.checker(full_check) -> ONNX Runtime vs eager.

float32 at several opsets (the fused forms are gated on g.opset), then float64 and float16 where ONNX
Runtime's CPU provider has the kernels; cases with dynamic axes are also run at other sizes of those axes.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import interop
from interop.autograd import Op
from interop.export import verify

from ..core.opcases import OpCase, all_cases

CASES = all_cases()
EXPORTED = [c for c in CASES if c.export]
_OPTS = ort.SessionOptions()
_OPTS.log_severity_level = 3


def _tensors(case: OpCase, dtype: np.dtype) -> list:
    out = []
    for a in case.inputs:
        a = np.asarray(a)
        out.append(interop.tensor(a.astype(dtype) if a.dtype.kind == "f" else a))
    return out


def _outs(x) -> list:
    if isinstance(x, (tuple, list)):
        return [t for o in x for t in _outs(o)]
    return [x]


def _export_and_run(case: OpCase, dtype: np.dtype, opset: int = 21):
    ts = _tensors(case, dtype)
    names = [f"in{i}" for i in range(len(ts))]
    dynamic = {names[i]: axes for i, axes in case.dynamic.items()} or None
    proto = interop.export(case.fn, tuple(ts), input_names=names, dynamic=dynamic, opset=opset, verify=False)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), _OPTS, providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: t.numpy() for n, t in zip(names, ts)})
    want = [t.numpy(force=True) for t in _outs(case.fn(*ts))]
    return proto, ts, got, want


def _check(got, want, atol, rtol):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g)
        assert g.shape == w.shape, f"output {i}: shape {g.shape} != eager {w.shape}"
        assert g.dtype == w.dtype, f"output {i}: dtype {g.dtype} != eager {w.dtype}"
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), atol=atol, rtol=rtol,
                                       err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {i}")


def test_every_op_has_an_onnx_lowering():
    missing = sorted(name for name, cls in Op.registry.items() if cls.to_onnx is Op.to_onnx)
    assert not missing, f"ops without to_onnx: {missing}"


def test_export_skips_say_why():
    silent = [c.name for c in CASES if not c.export and not c.export_skip.strip()]
    assert not silent, f"cases with export=False need export_skip (the reason): {silent}"


@pytest.mark.parametrize("opset", [21, 18, 23, 26])
@pytest.mark.parametrize("case", EXPORTED, ids=lambda c: c.id)
def test_export_matches_eager_float32(case, opset):
    _, ts, got, want = _export_and_run(case, np.dtype(np.float32), opset)
    _check(got, want, case.export_atol, max(case.rtol, 1e-4))
    if case.dynamic and opset == 21:
        names = [f"in{i}" for i in range(len(ts))]
        dynamic = {names[i]: axes for i, axes in case.dynamic.items()}
        proto = interop.export(case.fn, tuple(ts), input_names=names, dynamic=dynamic, verify=False)
        report = verify(case.fn, tuple(ts), proto, atol=case.export_atol, rtol=max(case.rtol, 1e-4))
        assert report.ok, str(report)
        assert len({tuple(c.sizes.items()) for c in report.checks}) > 1, str(report)


def _maybe_unsupported(case: OpCase, dtype: np.dtype):
    try:
        return _export_and_run(case, dtype)
    except Exception as e:
        text = str(e)
        if "NOT_IMPLEMENTED" in text or "data type is not supported" in text or "does not support double" in text:
            pytest.skip(f"ONNX Runtime's CPU provider has no {dtype} kernel here: "
                        f"{text.splitlines()[0][:200]}")
        raise


FLOATING = [c for c in EXPORTED if any(np.asarray(a).dtype.kind == "f" for a in c.inputs)]


@pytest.mark.parametrize("case", FLOATING, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_export_matches_eager_other_dtypes(case, dtype):
    dt = np.dtype(dtype)
    try:
        ref = case.fn(*_tensors(case, dt))
    except Exception as e:  # the eager op itself does not take this dtype (e.g. numpy linalg and float16)
        pytest.skip(f"eager {case.op} does not run in {dtype}: {e}")
    if any(t.dtype != dt for t in _outs(ref) if t.dtype.kind == "f"):
        pytest.skip(f"{case.op} computes {dtype} inputs in another dtype")
    _, _, got, want = _maybe_unsupported(case, dt)
    tol = max(case.export_atol, 1e-7) if dt == np.float64 else max(case.export_atol, 1e-2)
    rtol = max(case.rtol, 1e-4) if dt == np.float64 else 1e-2
    _check(got, want, tol, rtol)
