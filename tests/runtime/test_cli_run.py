"""`interop run` and `interop info` on a small exported model: two inputs with a dynamic batch axis, two outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import interop
from interop import nn
from interop.cli import main

from .models import model as onnx_model


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, z):
        h = self.lin(x)
        return h.relu() + z, h.sum(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(path, model): TwoHeads exported with inputs x[batch, 4], z[batch, 3] and outputs y[batch, 3], s[batch]."""
    interop.manual_seed(0)
    m = TwoHeads()
    path = tmp_path_factory.mktemp("cli_run") / "two.onnx"
    interop.export(m, (interop.randn(2, 4), interop.randn(2, 3)), str(path), input_names=["x", "z"],
                   output_names=["y", "s"], dynamic={"x": {0: "batch"}, "z": {0: "batch"}})
    return str(path), m


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(1)
    x, z = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "z.npy", z)
    return x, z, str(tmp_path / "x.npy"), str(tmp_path / "z.npy")


def _eager(m, x, z):
    with interop.no_grad():
        y, s = m(interop.tensor(x), interop.tensor(z))
    return y.numpy(), s.numpy()


def test_run_writes_npz(exported, inputs, tmp_path, capsys):
    path, m = exported
    x, z, fx, fz = inputs
    out = tmp_path / "out.npz"
    assert main(["run", path, "--input", f"x={fx}", "--input", f"z={fz}", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    y, s = _eager(m, x, z)
    with np.load(out, allow_pickle=False) as got:
        assert sorted(got.files) == ["s", "y"]
        np.testing.assert_allclose(got["y"], y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["s"], s, rtol=1e-5, atol=1e-6)
        assert got["y"].dtype == np.float32 and got["s"].shape == (5,)
    assert sorted(os.listdir(tmp_path)) == ["out.npz", "x.npy", "z.npy"]  # no temporary file left behind


def test_run_prints_names_shapes_and_preview(exported, inputs, capsys):
    path, m = exported
    x, z, fx, fz = inputs
    assert main(["run", path, "-i", fx, "-i", fz]) == 0  # unnamed: the model's inputs in order
    text = capsys.readouterr().out
    assert "CPUExecutionProvider" in text
    assert "y: float32 (5, 3)" in text and "s: float32 (5,)" in text
    y, s = _eager(m, x, z)
    assert f"{y[0, 0]:.4f}"[:5] in text  # the preview shows the values
    assert f"min {s.min():.4g}" in text


def test_run_mixes_positional_and_named(exported, inputs, tmp_path):
    path, m = exported
    x, z, fx, fz = inputs
    out = tmp_path / "o.npz"
    assert main(["run", path, "-i", f"z={fz}", "-i", fx, "-o", str(out)]) == 0
    with np.load(out) as got:
        np.testing.assert_allclose(got["y"], _eager(m, x, z)[0], rtol=1e-5, atol=1e-6)


def test_run_replaces_output_atomically(exported, inputs, tmp_path, capsys):
    path, _ = exported
    fx = inputs[2]
    out = tmp_path / "o.npz"
    out.write_bytes(b"old")
    assert main(["run", path, "-i", f"x={fx}", "-o", str(out)]) == 2  # z is missing: nothing is written
    assert out.read_bytes() == b"old"
    assert "missing input 'z'" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("unknown", "unknown input 'w'"),
    ("twice", "multiple values for input 'x'"),
    ("too_many", "3 unnamed inputs given, but the model takes 2"),
    ("missing_file", "no such file"),
    ("dtype", "expected dtype float32, got float64"),
    ("pickle", "allow_pickle=False"),
    ("npz", "is an .npz archive"),
    ("shape", "input 'x'"),
    ("device", "cuda"),
])
def test_run_user_errors_exit_2(exported, inputs, tmp_path, capsys, case, message):
    if case == "device" and interop.cuda_available():
        pytest.skip("this machine has CUDA")
    path, _ = exported
    _, _, fx, fz = inputs
    np.save(tmp_path / "f64.npy", np.zeros((5, 4)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "arch.npz", x=np.zeros((5, 4), np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((5, 7), np.float32))
    argv = {
        "unknown": ["-i", f"x={fx}", "-i", f"w={fz}"],
        "twice": ["-i", fx, "-i", f"x={fx}", "-i", f"z={fz}"],
        "too_many": ["-i", fx, "-i", fz, "-i", fz],
        "missing_file": ["-i", f"x={tmp_path / 'nope.npy'}", "-i", f"z={fz}"],
        "dtype": ["-i", f"x={tmp_path / 'f64.npy'}", "-i", f"z={fz}"],
        "pickle": ["-i", f"x={tmp_path / 'obj.npy'}", "-i", f"z={fz}"],
        "npz": ["-i", f"x={tmp_path / 'arch.npz'}", "-i", f"z={fz}"],
        "shape": ["-i", f"x={tmp_path / 'bad.npy'}", "-i", f"z={fz}"],
        "device": ["-i", fx, "-i", fz, "--device", "cuda"],
    }[case]
    assert main(["run", path, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interop run: error:") and message in err, err


def test_run_missing_or_corrupt_model_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.onnx")]) == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["run", str(tmp_path / "junk.onnx")]) == 2
    assert "not an ONNX model" in capsys.readouterr().err


def test_run_string_tensors_round_trip_without_pickle(tmp_path):
    vi = onnx.helper.make_tensor_value_info
    m = onnx_model([onnx.helper.make_node("Identity", ["t"], ["u"])], [vi("t", onnx.TensorProto.STRING, ["n"])],
                   [vi("u", onnx.TensorProto.STRING, ["n"])])
    onnx.save(m, str(tmp_path / "id.onnx"))
    np.save(tmp_path / "t.npy", np.array(["ab", "cde"], dtype=object).astype(str))
    assert main(["run", str(tmp_path / "id.onnx"), "-i", str(tmp_path / "t.npy"), "-o", str(tmp_path / "u.npz")]) == 0
    with np.load(tmp_path / "u.npz", allow_pickle=False) as got:
        assert got["u"].tolist() == ["ab", "cde"]


def test_info(exported, capsys):
    path, _ = exported
    assert main(["info", path]) == 0
    text = capsys.readouterr().out
    for want in ("opset:      ai.onnx 21", "IR version: 10", "x: float32[batch, 4]", "z: float32[batch, 3]",
                 "y: float32[batch, 3]", "s: float32[batch]", "providers:  ", "CPUExecutionProvider",
                 f"size:       {os.path.getsize(path):,} bytes"):
        assert want in text, text
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert "cuda:       " in text


def test_module_entry_point(exported, inputs, tmp_path):
    """`python -m interop.cli run` as a user types it: exit 0 and the outputs on stdout."""
    path, _ = exported
    _, _, fx, fz = inputs
    res = subprocess.run([sys.executable, "-m", "interop.cli", "run", path, "--input", f"x={fx}", "--input",
                          f"z={fz}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "y: float32 (5, 3)" in res.stdout


@pytest.mark.gpu
def test_run_on_cuda(exported, inputs, tmp_path):
    path, m = exported
    x, z, fx, fz = inputs
    out = tmp_path / "out.npz"
    assert main(["run", path, "-i", fx, "-i", fz, "--device", "cuda", "-o", str(out)]) == 0
    with np.load(out) as got:
        np.testing.assert_allclose(got["y"], _eager(m, x, z)[0], rtol=1e-4, atol=1e-5)
