"""A real sequence task: a recurrent net must carry the first value of a noisy sequence to the end (recall over
the whole sequence), learned from scratch, seeded, in about a second; then the trained model exports to ONNX
(one fused node per layer) and ONNX Runtime agrees with it at another batch size and sequence length."""

from __future__ import annotations

import numpy as np
import pytest

import interop
import interop.nn as nn


class Recall(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.rnn = getattr(nn, kind)(2, 24, batch_first=True)
        self.head = nn.Linear(24, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _batch(rng: np.random.Generator, n: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel 0: noise, whose first value is the target; channel 1 marks the first step."""
    x = rng.uniform(-1, 1, (n, steps, 2)).astype(np.float32)
    x[:, :, 1] = 0
    x[:, 0, 1] = 1
    return x, x[:, :1, 0].copy()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_net_learns_to_recall(kind):
    interop.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Recall(kind)
    opt = interop.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(250):
        x, y = _batch(rng, 64, 10)
        loss = nn.functional.mse_loss(model(interop.tensor(x)), interop.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    x, y = _batch(rng, 512, 10)
    model.eval()
    with interop.no_grad():
        test = nn.functional.mse_loss(model(interop.tensor(x)), interop.tensor(y)).item()
    assert np.mean(losses[:10]) > 0.2, losses[:10]  # predicting 0 costs var(U(-1, 1)) = 1/3
    assert test < 0.02, (test, losses[-10:])

    onnx = pytest.importorskip("onnxruntime")
    proto = interop.export(model, (interop.tensor(x[:4]),), input_names=["x"],
                           dynamic={"x": {0: "batch", 1: "seq"}})
    assert [n.op_type for n in proto.graph.node].count(kind) == 1
    sess = onnx.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    longer, _ = _batch(rng, 7, 13)
    (got,) = sess.run(None, {"x": longer})
    with interop.no_grad():
        want = model(interop.tensor(longer)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
