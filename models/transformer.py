"""A transformer encoder classifier over token sequences (mean-pooled)."""

from __future__ import annotations

import numpy as np

import interop
from interop import nn

from ._train import fit_tokens

DYNAMIC = {"tokens": {0: "batch", 1: "seq"}}


class TransformerClassifier(nn.Module):
    def __init__(self, vocab: int = 32, d_model: int = 64, nhead: int = 4, layers: int = 2, classes: int = 2,
                 max_len: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 4 * d_model, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens: interop.Tensor) -> interop.Tensor:
        positions = interop.arange(tokens.shape[1])
        h = self.encoder(self.embed(tokens) + self.pos(positions))
        return self.head(h.mean(1))


def factory(batch: int = 4, seq: int = 16, **kw) -> tuple[TransformerClassifier, tuple[interop.Tensor]]:
    return TransformerClassifier(**kw), (interop.randint(0, 32, (batch, seq)),)


def _majority(rng: np.random.Generator, batch: int = 32, seq: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Is token 1 more frequent than token 2? (needs the whole sequence)."""
    x = rng.integers(0, 32, (batch, seq))
    return x, ((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int64)


def train(model: TransformerClassifier, steps: int = 50, lr: float = 1e-3) -> list[float]:
    return fit_tokens(model, _majority, steps, lr)
