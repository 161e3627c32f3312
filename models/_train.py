"""The training loops the zoo's `train` entries share."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import interop
import interop.nn.functional as F
from interop import nn

from .data import load_digits, train_test_split


def digits(image: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits()
    if image:
        X = X.reshape(-1, 1, 8, 8)
    return train_test_split(X, y, test_size=0.2, seed=0)


def fit_digits(model: nn.Module, steps: int, batch: int, lr: float, *, image: bool, seed: int = 0,
               on_step: Callable[[int, float, float], None] | None = None) -> list[float]:
    """Adam on the digits' training split; `on_step(step, loss, batch_accuracy)` reports progress."""
    Xtr, _, ytr, _ = digits(image)
    rng = np.random.default_rng(seed)
    opt = interop.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        idx = rng.integers(0, len(Xtr), batch)
        x, y = interop.tensor(Xtr[idx]), interop.tensor(ytr[idx])
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            acc = float((logits.argmax(1) == y).float().mean().item())
            on_step(step, losses[-1], acc)
    return losses


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    model.eval()
    correct = 0
    with interop.no_grad():
        for i in range(0, len(X), batch):
            correct += int((model(interop.tensor(X[i:i + batch])).argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(X)


def fit_tokens(model: nn.Module, batches: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]],
               steps: int, lr: float, seed: int = 0) -> list[float]:
    """AdamW on (inputs, targets) batches; the loss is cross-entropy over the last axis of the logits."""
    rng = np.random.default_rng(seed)
    opt = interop.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = batches(rng)
        logits = model(interop.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), interop.tensor(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses
