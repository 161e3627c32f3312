"""`interop export` and `interop check`."""

from __future__ import annotations

import onnx
import pytest

from interop.cli import main, parse_dynamic

FACTORY = '''
import interop
from interop import nn

def make():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (interop.randn(3, 4),)

def broken():
    return 42
'''


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "factory.py"
    path.write_text(FACTORY)
    return path


def test_export_then_check(factory, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    argv = ["export", f"{factory}:make", "-o", str(out), "--dynamic", "input:0=batch", "--opset", "23"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 23
    assert main(["check", str(out)]) == 0
    text = capsys.readouterr().out
    for want in ("opset:      ai.onnx 23", "IR version: 11", "input: float32[batch, 4]",
                 "output: float32[batch, 2]", "nodes:      3  (Gemm 2, Relu 1)",
                 "parameters: 58 in 4 initializers", "checker:    ok"):
        assert want in text, text


def test_check_reports_checker_failures(tmp_path, capsys):
    bad = onnx.helper.make_model(
        onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x", "x"], ["y"])], "g",
                               [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                               [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])]),
        opset_imports=[onnx.helper.make_opsetid("", 21)], ir_version=10)
    path = tmp_path / "bad.onnx"
    onnx.save(bad, str(path))
    assert main(["check", str(path)]) == 1
    assert "checker:    FAILED" in capsys.readouterr().out


def test_user_errors_exit_2(factory, tmp_path, capsys):
    assert main(["export", "no_colon", "-o", str(tmp_path / "m.onnx")]) == 2
    assert main(["export", f"{factory}:broken", "-o", str(tmp_path / "m.onnx")]) == 2
    assert main(["check", str(tmp_path / "missing.onnx")]) == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["check", str(tmp_path / "junk.onnx")]) == 2
    err = capsys.readouterr().err
    assert "MODULE:FACTORY" in err and "(model, example_args)" in err and "no such file" in err
    assert main([]) == 2


def test_export_errors_exit_1(tmp_path, capsys):
    path = tmp_path / "f.py"
    path.write_text("import interop\n\ndef make():\n    return (lambda x: x * x.sum().item()), (interop.randn(2),)\n")
    assert main(["export", f"{path}:make", "-o", str(tmp_path / "m.onnx")]) == 1
    assert ".item()" in capsys.readouterr().err


def test_parse_dynamic():
    assert parse_dynamic(["x:0=batch,1=seq", "mask:0=batch", "y:2"]) == {
        "x": {0: "batch", 1: "seq"}, "mask": {0: "batch"}, "y": {2: "y_dim2"}}
    assert parse_dynamic([]) is None
