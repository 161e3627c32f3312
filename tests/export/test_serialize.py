"""Serialization: opsets and IR versions, external data, atomic files."""

from __future__ import annotations

import io
import os

import numpy as np
import onnx
import pytest

import interop
from interop import nn
from interop.export import ir_version_for, serialize

from .helpers import run


def _model():
    return nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 4))


@pytest.mark.parametrize("opset", range(18, 27))
def test_every_supported_opset_loads_in_onnx_runtime(opset):
    model, x = _model(), interop.randn(2, 16)
    proto = interop.export(model, (x,), opset=opset, verify=False)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == ir_version_for(opset) == onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid("", opset)])
    assert proto.ir_version <= 13  # what ONNX Runtime 1.31 reads
    np.testing.assert_allclose(run(proto, x.numpy())[0], model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [17, 27, 21.0, True, "21"])
def test_unsupported_opsets_are_refused(opset):
    with pytest.raises(ValueError, match="exports ONNX opsets 18 to 26"):
        interop.export(lambda x: x + 1, (interop.randn(2),), opset=opset)


def test_ir_version_follows_the_opset():
    assert [ir_version_for(o) for o in (18, 21, 23, 25, 26)] == [8, 10, 11, 13, 13]


def test_external_data_on_request(tmp_path):
    model, x = _model(), interop.randn(3, 16)
    path = tmp_path / "m.onnx"
    proto = interop.export(model, (x,), path, external_data=True)  # also verified from the file
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    inline = [t for t in proto.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    assert {t.name for t in external} == {"0.weight", "2.weight"}  # 1 KiB and more
    assert {t.name for t in inline} == {"0.bias", "2.bias"}
    for t in external:
        meta = {e.key: e.value for e in t.external_data}
        assert meta["location"] == "m.onnx.data" and int(meta["offset"]) % 64 == 0
    assert os.path.getsize(path) < 2000  # the weights are not in the model file
    np.testing.assert_allclose(run(str(path), x.numpy())[0], model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    onnx.checker.check_model(str(path), full_check=True)


def test_external_data_is_chosen_by_size(tmp_path, monkeypatch):
    monkeypatch.setattr(serialize, "LARGE_MODEL", 1000)
    interop.export(_model(), (interop.randn(1, 16),), tmp_path / "big.onnx", verify=False)
    assert (tmp_path / "big.onnx.data").exists()
    interop.export(_model(), (interop.randn(1, 16),), tmp_path / "small.onnx", verify=False,
                   external_data=False)
    assert not (tmp_path / "small.onnx.data").exists()


def test_models_too_big_for_one_protobuf_need_a_path(monkeypatch):
    monkeypatch.setattr(serialize, "LARGE_MODEL", 1000)
    monkeypatch.setattr(serialize, "_PROTO_LIMIT", 1000)
    with pytest.raises(ValueError, match="pass `f`"):
        interop.export(_model(), (interop.randn(1, 16),), verify=False)
    with pytest.raises(ValueError, match="needs `f` to be a file path"):
        interop.export(_model(), (interop.randn(1, 16),), io.BytesIO(), external_data=True, verify=False)


def test_file_objects_receive_the_model():
    buf = io.BytesIO()
    proto = interop.export(_model(), (interop.randn(1, 16),), buf, verify=False)
    assert onnx.load_from_string(buf.getvalue()) == proto


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous model")
    with pytest.raises(RuntimeError, match="disk full"), serialize.atomic_write(str(path)) as fh:
        fh.write(b"half a mod")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"previous model"
    assert os.listdir(tmp_path) == ["m.onnx"]
    interop.export(_model(), (interop.randn(1, 16),), str(path), verify=False)
    assert onnx.load(str(path)).producer_name == "interop" and os.listdir(tmp_path) == ["m.onnx"]
