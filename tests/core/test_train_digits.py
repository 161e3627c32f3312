"""A real training run: an MLP learns the UCI handwritten digits to >= 97% test accuracy, seeded, in seconds.

The trained weights then go through interop.save/load and into PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch

import interop
import interop.nn as nn
from models.data import load_digits, train_test_split

from .digits import fit


def train(epochs: int = 20, batch: int = 64, seed: int = 0) -> tuple[nn.Module, list[float]]:
    X, y = load_digits()
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, seed=0)
    interop.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    losses = fit(model, X_train, y_train, epochs, batch, seed)
    return model.eval(), losses


def test_mlp_learns_digits_and_its_weights_travel(tmp_path):
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and X.min() >= 0 and X.max() == 1.0
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == list(range(10))
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.2, seed=0)

    model, losses = train()
    assert np.mean(losses[:10]) > 1.5 and np.mean(losses[-20:]) < 0.05
    with interop.no_grad():
        pred = model(interop.tensor(X_test)).argmax(dim=1).numpy()
    accuracy = float((pred == y_test).mean())
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f}"

    # the checkpoint round-trips, and PyTorch runs the same weights to the same predictions
    interop.save(model.state_dict(), tmp_path / "digits.safetensors")
    fresh = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    fresh.load_state_dict(interop.load(tmp_path / "digits.safetensors"))
    with interop.no_grad():
        np.testing.assert_array_equal(fresh(interop.tensor(X_test)).argmax(dim=1).numpy(), pred)
    tm = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    with torch.no_grad():
        torch_logits = tm(torch.from_numpy(X_test)).numpy()
    with interop.no_grad():
        np.testing.assert_allclose(model(interop.tensor(X_test)).numpy(), torch_logits, rtol=1e-4, atol=1e-4)


def test_training_is_reproducible():
    a, losses_a = train(epochs=1)
    b, losses_b = train(epochs=1)
    assert losses_a == losses_b
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
