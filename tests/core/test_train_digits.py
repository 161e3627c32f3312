"""A real training run: an MLP learns the UCI handwritten digits to >= 97% test accuracy, seeded, in seconds.

The loss is cross-entropy written with public ops (log-softmax through logsumexp, then the mean negative
log-likelihood of the one-hot targets), so the test leans only on Module, Linear, ReLU, AdamW, the cosine
scheduler and autograd. The trained weights then go through interop.save/load and into PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch

import interop
import interop.nn as nn
from models.data import load_digits, train_test_split


def cross_entropy(logits: interop.Tensor, onehot: interop.Tensor) -> interop.Tensor:
    log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
    return -(log_probs * onehot).sum() / logits.shape[0]


def train(epochs: int = 20, batch: int = 64, seed: int = 0) -> tuple[nn.Module, list[float]]:
    X, y = load_digits()
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, seed=0)
    interop.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = interop.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    steps = epochs * -(-len(X_train) // batch)
    sched = interop.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    rng = np.random.default_rng(seed)
    onehot = np.eye(10, dtype=np.float32)
    losses = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(X_train))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = cross_entropy(model(interop.tensor(X_train[idx])), interop.tensor(onehot[y_train[idx]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
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
