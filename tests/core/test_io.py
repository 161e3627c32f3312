"""interop.save / interop.load: safetensors round trips, PyTorch compatibility, atomic writes, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

import interop
import interop.nn as nn
from interop.io import load_metadata


def all_dtypes():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((3, 4))
    return {
        "f32": interop.tensor(f, dtype=interop.float32),
        "f64": interop.tensor(f, dtype=interop.float64),
        "f16": interop.tensor(f, dtype=interop.float16),
        "bf16": interop.tensor(f, dtype=interop.bfloat16),
        "i64": interop.arange(-5, 7).reshape(3, 4),
        "i32": interop.tensor([1, -2], dtype=interop.int32),
        "i16": interop.tensor([3], dtype=interop.int16),
        "i8": interop.tensor([-4], dtype=interop.int8),
        "u8": interop.tensor([255], dtype=interop.uint8),
        "bool": interop.tensor([True, False]),
        "c64": interop.tensor(f[:2] + 1j, dtype=interop.complex64),
        "scalar": interop.tensor(2.5),
        "empty": interop.zeros(0, 3),
        "view": interop.tensor(f).reshape(4, 3)[::2, 1:],  # not contiguous
    }


def test_round_trip_every_dtype(tmp_path):
    src = all_dtypes()
    path = tmp_path / "all.safetensors"
    interop.save(src, path)
    out = interop.load(path)
    assert sorted(out) == sorted(src)
    for k, v in src.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        np.testing.assert_array_equal(out[k].numpy(), np.asarray(v.data), err_msg=k)
        assert out[k].data.flags.writeable and not out[k].requires_grad


def test_model_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to(interop.bfloat16)
    interop.save(model.state_dict(), str(tmp_path / "m.safetensors"), metadata={"arch": "mlp"})
    fresh = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to(interop.bfloat16)
    fresh.load_state_dict(interop.load(tmp_path / "m.safetensors", device="cpu"))
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert load_metadata(tmp_path / "m.safetensors") == {"arch": "mlp"}


def test_pytorch_reads_ours_and_we_read_pytorchs(tmp_path):
    src = all_dtypes()
    src.pop("view")
    interop.save(src, tmp_path / "ours.safetensors")
    theirs = safetensors.torch.load_file(tmp_path / "ours.safetensors")
    for k, v in src.items():
        t = theirs[k]
        got = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        want = v.float() if v.dtype == interop.bfloat16 else v
        np.testing.assert_array_equal(got, np.asarray(want.data))
    tm = torch.nn.Linear(3, 2).to(torch.bfloat16)
    safetensors.torch.save_file(tm.state_dict(), tmp_path / "theirs.safetensors")
    m = nn.Linear(3, 2).to(interop.bfloat16)
    m.load_state_dict(interop.load(tmp_path / "theirs.safetensors"))
    np.testing.assert_array_equal(m.weight.detach().float().numpy(), tm.weight.detach().float().numpy())


def test_tied_tensors_are_stored_once_and_come_back_tied(tmp_path):
    w = nn.Parameter(interop.ones(3, 2))
    sd = {"emb.weight": w.detach(), "head.weight": w.detach(), "other": w.detach()[1:]}
    path = tmp_path / "tied.safetensors"
    interop.save(sd, path)
    with safetensors.safe_open(path, framework="np") as f:
        assert sorted(f.keys()) == ["emb.weight", "other"]  # the alias is not stored twice
    out = interop.load(path)
    assert out["head.weight"] is out["emb.weight"] and out["other"].shape == (2, 2)
    assert load_metadata(path) == {}


def test_truncated_and_garbage_files_raise_naming_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    interop.save({"w": interop.ones(100)}, path)
    data = path.read_bytes()
    for name, content in [("cut.safetensors", data[:-10]), ("head.safetensors", data[:5]),
                          ("junk.safetensors", b"not a safetensors file at all"), ("empty.safetensors", b"")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name} is not a valid safetensors file: "):
            interop.load(bad)
    with pytest.raises(FileNotFoundError):
        interop.load(tmp_path / "missing.safetensors")


def test_failing_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    interop.save({"w": interop.ones(4)}, path)
    before = path.read_bytes()
    real = safetensors.serialize_file

    def crash_halfway(specs, filename, metadata=None):
        real(specs, filename, metadata=metadata)
        with open(filename, "r+b") as fh:
            fh.truncate(20)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors, "serialize_file", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        interop.save({"w": interop.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left behind
    monkeypatch.undo()
    interop.save({"w": interop.zeros(2)}, path)  # and a good save replaces it
    assert interop.load(path)["w"].tolist() == [0.0, 0.0]
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_non_tensors_are_rejected_before_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="the value of 'step' is a int, not a Tensor"):
        interop.save({"w": interop.ones(1), "step": 3}, path)
    with pytest.raises(TypeError, match="a dict, not a Tensor"):
        interop.save({"nested": {"a": interop.ones(1)}}, path)
    with pytest.raises(TypeError, match=r"save model\.state_dict"):
        interop.save(nn.Linear(1, 1), path)
    with pytest.raises(TypeError, match="keys must be str"):
        interop.save({1: interop.ones(1)}, path)
    with pytest.raises(TypeError, match="complex128"):
        interop.save({"z": interop.tensor([1j], dtype=interop.complex128)}, path)
    with pytest.raises(TypeError, match="metadata must map str to str"):
        interop.save({"w": interop.ones(1)}, path, metadata={"epoch": 3})
    assert not path.exists() and os.listdir(tmp_path) == []


def test_load_never_unpickles(tmp_path):
    """A pickle (what torch.save writes) is refused as not-safetensors, never executed."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        interop.load(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.gpu
def test_cuda_tensors_save_and_load_to_cuda(tmp_path):
    w = interop.randn(3, 4, device="cuda").to(interop.bfloat16)
    sd = {"w": w, "tied": w, "i": interop.arange(5).to("cuda")}
    interop.save(sd, tmp_path / "gpu.safetensors")
    out = interop.load(tmp_path / "gpu.safetensors", device="cuda")
    assert out["w"].is_cuda and out["w"].dtype == interop.bfloat16 and out["tied"] is out["w"]
    np.testing.assert_array_equal(out["w"].cpu().float().numpy(), w.cpu().float().numpy())
    assert interop.load(tmp_path / "gpu.safetensors")["i"].tolist() == [0, 1, 2, 3, 4]
