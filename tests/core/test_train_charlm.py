"""A real training run: a tiny causal character-level transformer language model learns models/assets/tiny_text.txt.

Token and learned position embeddings (64 wide), a 2-layer pre-norm TransformerEncoder (4 heads, GELU, causal
mask), a linear head over the text's 74 characters; seeded AdamW (lr 1e-2), 200 steps of 32 windows of 32
characters, on the first 90% of the text.

Bars, in nats per character: the loss starts at ln(74) = 4.30. Count-based baselines on this text are 3.17 for
unigrams, 2.38 for bigrams fitted to the training part itself (2.47 on the held-out tail) and 1.90 / 2.24 for
trigrams. The mean of the last 10 training losses must be < 2.3 (below the fitted bigram table: the model uses
more than the previous character) and the held-out loss < 2.4 (it generalizes better than bigrams). PyTorch's
identical model and optimizer end at 2.09 in these 200 steps; interop at 2.09 (train) / 2.27 (held out), so
both bars have a margin of ~0.15-0.2. The trained model then exports to ONNX with a dynamic sequence length and
ONNX Runtime agrees with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import interop
import interop.nn as nn
from interop.nn import functional as F
from models.gpt import TEXT_PATH as TEXT

CONTEXT, BATCH, STEPS = 32, 32, 200
TRAIN_BAR, HELD_OUT_BAR = 2.3, 2.4  # nats per character


class CharLM(nn.Module):
    def __init__(self, vocab: int, d: int = 64, heads: int = 4, layers: int = 2, context: int = CONTEXT):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d))
        self.head = nn.Linear(d, vocab)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids: interop.Tensor) -> interop.Tensor:
        n = ids.shape[1]
        h = self.tok(ids) + self.pos(interop.arange(n))
        return self.head(self.blocks(h, mask=self.causal[:n, :n], is_causal=True))


def encode() -> tuple[np.ndarray, list[str]]:
    text = TEXT.read_text(encoding="ascii")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    return np.array([lookup[c] for c in text], np.int64), chars


def windows(ids: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = starts[:, None] + np.arange(CONTEXT + 1)
    return ids[idx[:, :-1]], ids[idx[:, 1:]]


def loss_of(model: CharLM, x: np.ndarray, y: np.ndarray) -> interop.Tensor:
    logits = model(interop.tensor(x))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), interop.tensor(y.reshape(-1)))


def train(seed: int = 0) -> tuple[CharLM, list[float], np.ndarray, list[str]]:
    ids, chars = encode()
    split = int(len(ids) * 0.9)
    interop.manual_seed(seed)
    model = CharLM(len(chars))
    opt = interop.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(STEPS):
        x, y = windows(ids, rng.integers(0, split - CONTEXT - 1, BATCH))
        loss = loss_of(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return model.eval(), losses, ids[split:], chars


def test_char_transformer_learns_tiny_text(tmp_path):
    model, losses, held_out, chars = train()
    assert len(chars) == 74 and abs(losses[0] - math.log(len(chars))) < 0.3, losses[0]
    trained = float(np.mean(losses[-10:]))
    assert trained < TRAIN_BAR, f"training loss {trained:.3f} nats/char after {STEPS} steps"
    with interop.no_grad():
        x, y = windows(held_out, np.arange(0, len(held_out) - CONTEXT - 1, CONTEXT))
        held = float(loss_of(model, x, y))
    assert held < HELD_OUT_BAR, f"held-out loss {held:.3f} nats/char"

    # the trained model exports with a dynamic sequence length (the causal mask is built in the graph)
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    # (the exporter also runs the model with each dynamic axis at twice its example size: from an example of 16,
    # that stays within the 32 learned positions)
    proto = interop.export(model, (interop.tensor(x[:2, :16]),), input_names=["ids"],
                           dynamic={"ids": {0: "batch", 1: "seq"}}, verify=False)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (CONTEXT, 9):
        with interop.no_grad():
            want = model(interop.tensor(x[:3, :n])).numpy()
        np.testing.assert_allclose(sess.run(None, {"ids": x[:3, :n]})[0], want, atol=1e-4, rtol=1e-4)
