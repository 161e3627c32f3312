"""The training loop the digits tests share: AdamW with a cosine schedule over shuffled epochs.

The loss is cross-entropy written with public ops (log-softmax through logsumexp, then the mean negative
log-likelihood of one-hot targets), so these tests lean on the layers, the optimizer, the schedule and autograd,
not on the fused cross_entropy op (which has its own checks).
"""

from __future__ import annotations

import numpy as np

import interop
import interop.nn as nn


def cross_entropy(logits: interop.Tensor, onehot: interop.Tensor) -> interop.Tensor:
    log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
    return -(log_probs * onehot).sum() / logits.shape[0]


def fit(model: nn.Module, X: np.ndarray, y: np.ndarray, epochs: int, batch: int = 64, seed: int = 0) -> list[float]:
    """Train `model` in place (AdamW lr 1e-2, weight decay 1e-2, cosine over all steps); the loss of every step."""
    opt = interop.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    sched = interop.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * -(-len(X) // batch))
    rng = np.random.default_rng(seed)
    onehot = np.eye(10, dtype=np.float32)
    losses = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = cross_entropy(model(interop.tensor(X[idx])), interop.tensor(onehot[y[idx]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
    return losses
