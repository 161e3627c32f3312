"""A real CNN training run: conv-relu-conv-relu-maxpool-linear learns the 8x8 UCI digits to >= 98% test accuracy,
seeded, in about a second. The trained model then gives PyTorch's logits with its weights loaded, and ONNX
Runtime's after export.

The loss is cross-entropy written with public ops (log-softmax through logsumexp), so the test leans only on the
layers, AdamW, the cosine schedule and autograd.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

import interop
import interop.nn as nn
from models.data import load_digits, train_test_split


def cross_entropy(logits: interop.Tensor, onehot: interop.Tensor) -> interop.Tensor:
    log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
    return -(log_probs * onehot).sum() / logits.shape[0]


def cnn(lib):
    n = lib.nn
    return n.Sequential(n.Conv2d(1, 16, 3, padding=1), n.ReLU(), n.Conv2d(16, 32, 3, padding=1), n.ReLU(),
                        n.MaxPool2d(2), n.Flatten(), n.Linear(512, 10))


def train(X: np.ndarray, y: np.ndarray, epochs: int = 10, batch: int = 64, seed: int = 0) -> nn.Module:
    interop.manual_seed(seed)
    model = cnn(interop)
    opt = interop.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    sched = interop.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * -(-len(X) // batch))
    rng = np.random.default_rng(seed)
    onehot = np.eye(10, dtype=np.float32)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = cross_entropy(model(interop.tensor(X[idx])), interop.tensor(onehot[y[idx]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
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
