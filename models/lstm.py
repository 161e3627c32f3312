"""An LSTM sequence classifier over token sequences (the last time step's state feeds the head)."""

from __future__ import annotations

import numpy as np

import interop
from interop import nn

from ._train import fit_tokens

DYNAMIC = {"tokens": {0: "batch", 1: "seq"}}


class LSTMClassifier(nn.Module):
    def __init__(self, vocab: int = 32, embed: int = 32, hidden: int = 64, classes: int = 2, layers: int = 1,
                 bidirectional: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), classes)

    def forward(self, tokens: interop.Tensor) -> interop.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


def factory(batch: int = 4, seq: int = 12, **kw) -> tuple[LSTMClassifier, tuple[interop.Tensor]]:
    return LSTMClassifier(**kw), (interop.randint(0, 32, (batch, seq)),)


def train(model: LSTMClassifier, steps: int = 100, lr: float = 1e-2) -> list[float]:
    """Does the sequence contain token 1 before token 2? (order matters, so a bag of tokens cannot solve it)."""

    def batches(rng):
        x = rng.integers(3, 32, (32, 12))
        i = rng.integers(0, 12, 32)
        j = (i + rng.integers(1, 12, 32)) % 12  # another position than i, so both tokens are there
        x[np.arange(32), i] = 1
        x[np.arange(32), j] = 2
        return x, (i < j).astype(np.int64)

    return fit_tokens(model, batches, steps, lr)
