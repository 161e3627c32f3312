"""Model repositories in Triton's layout: reading config.pbtxt, versions, safety, and writing one for Triton/KServe."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from interop.cli import main
from interop.runtime.repository import (
    ModelConfig,
    ModelNotFound,
    ModelRepository,
    check_name,
    parse_pbtxt,
    write_triton_repository,
)

from .models import mlp, model, unary

TRITON_CONFIG = """
# a config as Triton users write them
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size : 16
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 3, -1, 224 ]
  }
]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 1000 ] } ]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
}
instance_group [ { count: 2, kind: KIND_CPU }, { count: 1 kind: KIND_CPU } ]
version_policy: { latest: { num_versions: 2 } }
parameters { key: "intra_op_thread_count" value: { string_value: "3" } }
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
default_model_filename: 'net.onnx'
"""


def test_parse_pbtxt():
    cfg = parse_pbtxt(TRITON_CONFIG)
    assert cfg["name"] == ["resnet"] and cfg["max_batch_size"] == [16]
    assert cfg["input"][0] == {"name": ["x"], "data_type": ["TYPE_FP32"], "dims": [3, -1, 224]}
    assert cfg["dynamic_batching"][0]["preferred_batch_size"] == [4, 8]
    assert [g["count"] for g in cfg["instance_group"]] == [[2], [1]]
    assert cfg["version_policy"][0]["latest"][0]["num_versions"] == [2]
    accel = cfg["optimization"][0]["execution_accelerators"][0]["cpu_execution_accelerator"]
    assert accel == [{"name": ["openvino"]}]
    assert cfg["default_model_filename"] == ["net.onnx"]
    assert parse_pbtxt('s: "a\\"b\\n"') == {"s": ['a"b\n']}
    for bad in ("input [ { name: 'x' }", "max_batch_size:", "{", "a: ]"):
        with pytest.raises(ValueError):
            parse_pbtxt(bad)


def _repo(root, name: str, versions: dict[str, onnx.ModelProto], config: str | None = None,
          filename: str = "model.onnx") -> None:
    for v, m in versions.items():
        os.makedirs(root / name / v, exist_ok=True)
        onnx.save(m, str(root / name / v / filename))
    if config is not None:
        (root / name / "config.pbtxt").write_text(config)


def test_repository_versions_and_config(tmp_path):
    small, big = mlp((4, 8, 2), seed=1), mlp((4, 8, 2), seed=2)
    _repo(tmp_path, "net", {"1": small, "2": big, "3": small}, TRITON_CONFIG.replace("resnet", "net"),
          filename="net.onnx")
    _repo(tmp_path, "plain", {"1": small, "7": big})
    os.makedirs(tmp_path / "plain" / "notes")  # not a version: ignored
    (tmp_path / "README.md").write_text("not a model")
    repo = ModelRepository(root=tmp_path, defaults=ModelConfig(max_batch_size=0))
    try:
        assert repo.versions("net") == ["2", "3"]  # latest 2
        assert repo.versions("plain") == ["1", "7"]  # all, by default
        net = repo.get("net")
        assert net.version == "3" and repo.get("plain").version == "7"
        assert net.max_batch_size == 16 and net.config.max_queue_delay_us == 100 and net.config.instances == 3
        assert net.config.threads == 3 and len(net.sessions) == 3
        assert repo.get("plain").max_batch_size == 0  # the defaults apply without a config.pbtxt
        with pytest.raises(ModelNotFound, match="unknown version '1' of model 'net'"):
            repo.get("net", "1")
        with pytest.raises(ModelNotFound, match="unknown model"):
            repo.get("../net")
    finally:
        repo.close()


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "a\\b", "", "x" * 200, "a b", "é"])
def test_model_names_stay_in_the_repository(name):
    with pytest.raises(ValueError, match="invalid model name"):
        check_name(name)


def test_repository_refuses_what_it_cannot_serve(tmp_path):
    m = mlp((4, 8, 2))
    cases = {
        "no versions": (lambda r: os.makedirs(r / "net"), "has no version to serve"),
        "missing file": (lambda r: os.makedirs(r / "net" / "1"), "no model.onnx"),
        "other platform": (lambda r: _repo(r, "net", {"1": m}, 'platform: "tensorflow_savedmodel"'),
                           "interop serves ONNX models"),
        "name mismatch": (lambda r: _repo(r, "net", {"1": m}, 'name: "other"'), "names it 'other'"),
        "escaping filename": (lambda r: _repo(r, "net", {"1": m}, 'default_model_filename: "../../x.onnx"'),
                              "invalid model name"),
        "bad batch size": (lambda r: _repo(r, "net", {"1": unary("Relu", TensorProto.FLOAT, [2, 3])},
                                           "max_batch_size: 4"), "needs a dynamic first"),
        "bad pbtxt": (lambda r: _repo(r, "net", {"1": m}, "max_batch_size: {"), "config.pbtxt"),
    }
    for case, (make, message) in cases.items():
        root = tmp_path / case.replace(" ", "_")
        os.makedirs(root)
        make(root)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            ModelRepository(root=root)
    outside = tmp_path / "outside.onnx"
    onnx.save(m, str(outside))
    root = tmp_path / "symlinked"
    os.makedirs(root / "net" / "1")
    os.symlink(outside, root / "net" / "1" / "model.onnx")
    with pytest.raises(ValueError, match="resolves outside the repository"):
        ModelRepository(root=root)
    with pytest.raises(ValueError, match="no models to serve"):
        ModelRepository()


def test_default_batching_follows_the_model(tmp_path):
    paths = []
    for name, m in (("mlp", mlp((4, 8, 2))), ("fixed", unary("Relu", TensorProto.FLOAT, [2, 3]))):
        paths.append(str(tmp_path / f"{name}.onnx"))
        onnx.save(m, paths[-1])
    repo = ModelRepository(paths, defaults=ModelConfig(max_batch_size=8))
    try:
        assert repo.get("mlp").max_batch_size == 8
        assert repo.get("fixed").max_batch_size == 0  # a default for those that can batch, not an error
    finally:
        repo.close()
    repo = ModelRepository(paths)
    try:
        assert repo.get("mlp").max_batch_size == 32 and repo.get("fixed").max_batch_size == 0
    finally:
        repo.close()
    with pytest.raises(ValueError, match="two models named 'mlp'"):
        ModelRepository([paths[0], paths[0]])
    with pytest.raises(ValueError, match="instances must be"):
        ModelConfig(instances=0)


def test_write_triton_repository_round_trip(tmp_path):
    m = mlp((4, 8, 2))
    folder = write_triton_repository(m, tmp_path, "mlp", max_batch_size=16, max_queue_delay_us=50, instances=2)
    assert folder == os.path.join(str(tmp_path), "mlp")
    cfg = parse_pbtxt(pathlib.Path(folder, "config.pbtxt").read_text())
    assert cfg["name"] == ["mlp"] and cfg["platform"] == ["onnxruntime_onnx"] and cfg["max_batch_size"] == [16]
    assert cfg["input"] == [{"name": ["x"], "data_type": ["TYPE_FP32"], "dims": [4]}]
    assert cfg["output"] == [{"name": ["y"], "data_type": ["TYPE_FP32"], "dims": [2]}]
    assert cfg["dynamic_batching"] == [{"max_queue_delay_microseconds": [50]}]
    assert cfg["instance_group"] == [{"count": [2], "kind": ["KIND_CPU"]}]
    assert onnx.load(os.path.join(folder, "1", "model.onnx")) == m
    repo = ModelRepository(root=tmp_path)
    try:
        mv = repo.get("mlp")
        assert (mv.max_batch_size, mv.config.max_queue_delay_us, mv.config.instances) == (16, 50, 2)
        x = np.ones((3, 4), np.float32)
        np.testing.assert_allclose(mv.sessions[1].run(x, output="numpy")[0], mv.sessions[0].run(x, output="numpy")[0])
        assert mv.triton_config()["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}]
    finally:
        repo.close()


def test_write_triton_repository_shapes_and_types(tmp_path):
    vi = helper.make_tensor_value_info
    scalar_and_text = model([helper.make_node("Identity", ["s"], ["t"]), helper.make_node("Identity", ["n"], ["m"])],
                            [vi("s", TensorProto.STRING, ["b"]), vi("n", TensorProto.INT64, [])],
                            [vi("t", TensorProto.STRING, ["b"]), vi("m", TensorProto.INT64, [])])
    path = tmp_path / "st.onnx"
    onnx.save(scalar_and_text, str(path))
    folder = write_triton_repository(str(path), tmp_path / "repo", "st", version=3)  # not batchable: 0
    cfg = parse_pbtxt(pathlib.Path(folder, "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == [0] and "dynamic_batching" not in cfg
    assert cfg["input"][0] == {"name": ["s"], "data_type": ["TYPE_STRING"], "dims": [-1]}
    assert cfg["input"][1] == {"name": ["n"], "data_type": ["TYPE_INT64"], "dims": [1], "reshape": [{"shape": []}]}
    assert os.path.isfile(os.path.join(folder, "3", "model.onnx"))
    with pytest.raises(ValueError, match="needs a dynamic first"):
        write_triton_repository(unary("Relu", TensorProto.FLOAT, [2, 3]), tmp_path / "repo", "fixed", 8)
    with pytest.raises(ValueError, match="invalid model name"):
        write_triton_repository(scalar_and_text, tmp_path / "repo", "../escape")


FACTORY = '''
import interop
from interop import nn

def make():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (interop.randn(3, 4),)
'''


def test_cli_export_triton_repo(tmp_path, capsys):
    (tmp_path / "factory.py").write_text(FACTORY)
    out, repo = tmp_path / "net.onnx", tmp_path / "repo"
    argv = ["export", f"{tmp_path / 'factory.py'}:make", "-o", str(out), "--dynamic", "input:0=batch",
            "--triton-repo", str(repo), "--max-batch-size", "8"]
    assert main(argv) == 0
    assert "config.pbtxt and 1/model.onnx" in capsys.readouterr().out
    cfg = parse_pbtxt((repo / "net" / "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == [8] and cfg["input"][0]["dims"] == [4]
    assert main(["export", f"{tmp_path / 'factory.py'}:make", "-o", str(tmp_path / "fixed.onnx"), "--triton-repo",
                 str(repo), "--max-batch-size", "8"]) == 2  # no dynamic batch axis
    assert "needs a dynamic first" in capsys.readouterr().err
