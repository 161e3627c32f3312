"""A real CNN training run: conv-relu-conv-relu-maxpool-linear learns the 8x8 UCI digits to >= 98% test accuracy,
seeded, in about a second. The trained model then gives PyTorch's logits with its weights loaded, and ONNX
Runtime's after export.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

import interop
import interop.nn as nn
from models.data import load_digits, train_test_split

from .digits import fit


def cnn(lib):
    n = lib.nn
    return n.Sequential(n.Conv2d(1, 16, 3, padding=1), n.ReLU(), n.Conv2d(16, 32, 3, padding=1), n.ReLU(),
                        n.MaxPool2d(2), n.Flatten(), n.Linear(512, 10))


def train(X: np.ndarray, y: np.ndarray, epochs: int = 10, batch: int = 64, seed: int = 0) -> nn.Module:
    interop.manual_seed(seed)
    model = cnn(interop)
    fit(model, X, y, epochs, batch, seed)
    return model.eval()


def test_cnn_learns_digits(tmp_path):
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X.reshape(-1, 1, 8, 8), y, test_size=0.2, seed=0)
    model = train(X_train, y_train)
    x = interop.tensor(X_test)
    with interop.no_grad():
        logits = model(x).numpy()
    accuracy = float((logits.argmax(1) == y_test).mean())
    assert accuracy >= 0.98, f"test accuracy {accuracy:.4f}"

    theirs = cnn(torch).eval()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(X_test)).numpy(), logits, rtol=1e-4, atol=1e-4)

    path = tmp_path / "cnn.onnx"
    interop.export(model, (x,), str(path), input_names=["x"], dynamic={"x": {0: "batch"}}, verify=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": X_test})[0]
    np.testing.assert_allclose(got, logits, rtol=1e-4, atol=1e-4)
