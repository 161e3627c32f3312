"""`interop demo` in a fast mode: every artefact is written and valid, the checks decide the exit status, and the
progress bar and the DLPack round trip behave on their own."""

from __future__ import annotations

import io
import json
import struct
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

import interop
from interop.cli import main
from interop.demo import ProgressBar, dlpack_round_trip, framework
from interop.runtime import Session

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One fast run (30 steps, no accuracy bar): its exit code, out dir, stdout, stderr and summary."""
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        stdout, stderr = io.StringIO(), io.StringIO()
        mp.setattr("sys.stdout", stdout)
        mp.setattr("sys.stderr", stderr)
        rc = main(["demo", "--steps", "30", "--out", str(out), "--min-accuracy", "0"])
    return SimpleNamespace(rc=rc, out=out, stdout=stdout.getvalue(), stderr=stderr.getvalue(),
                           summary=json.loads((out / "summary.json").read_text()))


def test_demo_passes_and_prints(demo):
    stdout, stderr = demo.stdout, demo.stderr
    assert demo.rc == 0, stdout
    for want in ("eager      held-out accuracy", "ORT        held-out accuracy", "DLPack", "zero-copy",
                 "\nsummary\n", "check       ok     export verified", "check       ok     eager and ONNX Runtime"):
        assert want in stdout, stdout
    assert "FAILED" not in stdout
    assert "30/30" in stderr and "\r" not in stderr  # not a TTY: periodic plain lines
    assert sum("/30  loss" in line for line in stderr.splitlines()) == 10


def test_demo_onnx_is_valid_with_a_dynamic_batch(demo):
    path = demo.out / "cnn.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    (x,) = proto.graph.input
    assert x.name == "x" and x.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].name == "logits"
    assert demo.summary["export"]["nodes"] == len(proto.graph.node)
    got = Session(str(path)).run(np.zeros((3, 1, 8, 8), np.float32), output="numpy")[0]
    assert got.shape == (3, 10)


def test_demo_png(demo):
    data = (demo.out / "training.png").read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 380)
    assert len(data) > 20_000  # two panels of curves, not an empty canvas


def test_demo_summary(demo):
    out, s = demo.out, demo.summary
    assert s["ok"] is True and all(s["checks"].values()) and len(s["checks"]) == 3
    assert s["config"]["steps"] == 30 and s["config"]["out"] == str(out)
    t = s["training"]
    assert t["steps"] == 30 and len(t["loss"]) == len(t["batch_accuracy"]) == 30 and t["parameters"] > 0
    assert t["final_loss"] == pytest.approx(np.mean(t["loss"][-10:]))
    assert s["data"]["train"] == 1438 and s["data"]["test"] == 359
    r = s["results"]
    assert 0 <= r["eager_accuracy"] <= 1 and r["test_size"] == 359
    assert abs(r["eager_accuracy"] - r["onnxruntime_accuracy"]) <= 1 / 359
    assert r["within_tolerance"] and r["max_abs_diff"] < 1e-3 and r["providers"] == ["CPUExecutionProvider"]
    e = s["export"]
    assert e["dynamic"] == {"x": {"0": "batch"}} and e["checker"] == "ok" and e["verified"]
    assert e["ops"]["Conv"] == 2
    assert all(c["ok"] for c in e["verification"])
    assert {c["sizes"]["batch"] for c in e["verification"]} == {1, 8, 16}
    dl = s["dlpack"]
    assert dl["framework"] == framework().name and dl["zero_copy"] is True and len(set(dl["pointers"].values())) == 2
    assert s["files"] == {"onnx": str(out / "cnn.onnx"), "png": str(out / "training.png"),
                          "summary": str(out / "summary.json")}
    assert s["seconds"] > 0 and s["versions"]["interop"] == interop.__version__


def test_demo_fails_on_a_failed_check(tmp_path, capsys):
    """Two steps cannot reach 97%: exit 1, the failed check named, the files still written (numpy as partner)."""
    assert main(["demo", "--steps", "2", "--out", str(tmp_path), "--dlpack", "numpy"]) == 1
    stdout = capsys.readouterr().out
    assert "check       FAILED held-out accuracy >= 97%" in stdout
    assert "interop demo: FAILED: held-out accuracy >= 97%" in stdout
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["ok"] is False and s["checks"]["held-out accuracy >= 97%"] is False
    assert s["dlpack"]["framework"] == "numpy" and s["dlpack"]["zero_copy"] is True
    assert (tmp_path / "cnn.onnx").exists() and (tmp_path / "training.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "must be at least 1"),
    (["--min-accuracy", "1.5"], "must be in [0, 1]"),
    (["--dlpack", "tensorflow"], "invalid choice"),
])
def test_demo_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_demo_without_cuda_fails_before_training(tmp_path, capsys):
    if interop.cuda_available():
        pytest.skip("this machine has CUDA")
    assert main(["demo", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "interop demo: error: device='cuda'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["torch", "jax", "numpy"])
def test_dlpack_round_trip_is_zero_copy(demo, name):
    pytest.importorskip(name)
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 8, 8), dtype=np.float32)
    sess = Session(str(demo.out / "cnn.onnx"))
    expected = sess.run(x, output="numpy")[0].argmax(1)
    dl = dlpack_round_trip(framework(name), sess, x, expected)
    assert dl["framework"] == name and dl["zero_copy"], dl["pointers"]
    assert dl["correct"] == 6


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_redraws_one_line():
    stream = FakeTTY()
    bar = ProgressBar(50, "train", stream=stream)
    for i in range(1, 51):
        bar.update(i, loss=1 / i)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    last = text.rsplit("\r", 1)[1]
    assert last.startswith("train [########################] 50/50  loss 0.0200") and "eta" not in last


def test_progress_bar_elsewhere_writes_periodic_lines():
    stream = io.StringIO()
    bar = ProgressBar(25, "fit", stream=stream, lines=5)
    for i in range(1, 26):
        bar.update(i, acc=i / 25)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [ln.split("]")[1].split()[0] for ln in lines] == ["5/25", "10/25", "15/25", "20/25", "25/25"]
    assert "eta" in lines[0] and "acc 1.0000" in lines[-1]
