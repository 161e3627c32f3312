"""A small causal (GPT-style) character language model with tied input/output embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import interop
import interop.nn.functional as F
from interop import nn

from ._train import fit_tokens

DYNAMIC = {"tokens": {0: "batch", 1: "seq"}}
TEXT_PATH = Path(__file__).resolve().parent / "assets" / "tiny_text.txt"


class Block(nn.Module):
    def __init__(self, d_model: int, nhead: int):
        super().__init__()
        self.nhead = nhead
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: interop.Tensor) -> interop.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, s, 3, self.nhead, d // self.nhead).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int = 96, d_model: int = 64, nhead: int = 4, layers: int = 2, max_len: int = 128):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList([Block(d_model, nhead) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied: one initializer in the export

    def forward(self, tokens: interop.Tensor) -> interop.Tensor:
        x = self.tok(tokens) + self.pos(interop.arange(tokens.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def encode(text: str) -> np.ndarray:
    """Printable ASCII as ids 0..95 (anything else becomes a space)."""
    codes = np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int64) - 32
    codes[(codes < 0) | (codes > 95)] = 0
    return codes


def factory(batch: int = 2, seq: int = 32, **kw) -> tuple[GPT, tuple[interop.Tensor]]:
    return GPT(**kw), (interop.randint(0, 96, (batch, seq)),)


def train(model: GPT, steps: int = 200, context: int = 32, batch: int = 16, lr: float = 3e-3) -> list[float]:
    data = encode(TEXT_PATH.read_text())

    def batches(rng):
        start = rng.integers(0, len(data) - context - 1, batch)
        idx = start[:, None] + np.arange(context + 1)
        chunk = data[idx]
        return chunk[:, :-1], chunk[:, 1:]

    return fit_tokens(model, batches, steps, lr)
