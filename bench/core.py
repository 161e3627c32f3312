"""Core benchmarks beside PyTorch CPU in the same process: train steps, per-op overhead, import time.

Run: `make bench` or `python -m bench.core`. Each model gets the same architecture and weights in both libraries;
steps are timed in alternating rounds and the median is reported (noise on a shared 2-core VM is +-30% between runs,
so only the ratio within one run means anything).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

import interop

from .common import Row, paired_us, print_table

torch.set_num_threads(2)


def _copy_weights(src: torch.nn.Module, dst: interop.nn.Module) -> None:
    dst.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in src.state_dict().items()})


def _train_step(lib, model, opt, loss_fn, x, y):
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def _pair(build, x_np, y_np, loss_name):
    """A train-step closure for PyTorch and for interop on the same model, weights and batch."""
    steps = []
    tmodel = None
    for lib in (torch, interop):
        model = build(lib)
        if lib is torch:
            tmodel = model
        else:
            _copy_weights(tmodel, model)
        x = lib.tensor(x_np)
        y = lib.tensor(y_np)
        opt = lib.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = getattr(lib.nn.functional, loss_name)
        steps.append(_train_step(lib, model, opt, loss_fn, x, y))
    return steps[1], steps[0]


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 10))


def transformer(lib):
    layer = lib.nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
    return lib.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False) if lib is torch else \
        lib.nn.TransformerEncoder(layer, 2)


class _LSTMHead:
    """LSTM over the sequence, loss on the last hidden state (same in both libraries)."""

    @staticmethod
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = lib.nn.LSTM(64, 128, batch_first=True)

            def forward(self, x):
                out, _ = self.lstm(x)
                return out[:, -1]

        return M()


def per_op_chain(lib, n: int = 1000):
    x = lib.ones(1, requires_grad=True)

    def run():
        h = x
        for _ in range(n):
            h = h + x
        h.backward()

    return run


def import_time() -> tuple[float, list[str]]:
    code = ("import sys, time; t = time.perf_counter(); import interop; dt = time.perf_counter() - t; "
            "print(dt); print(','.join(m for m in ('torch', 'onnxruntime', 'cupy', 'onnx') if m in sys.modules))")
    times, heavy = [], []
    for _ in range(5):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out = proc.stdout.split("\n")
        times.append(float(out[0]))
        heavy = [m for m in out[1].split(",") if m]
    return float(np.median(times)), heavy


def main() -> int:
    rng = np.random.default_rng(0)
    rows: list[Row] = []

    def train_row(name, build, x, y, loss, bar):
        ours, theirs = paired_us(*_pair(build, x, y, loss), steps=40)
        rows.append(Row(name, ours / 1e3, theirs / 1e3, "ms", f"<= {bar}x", ours <= bar * theirs))

    train_row("MLP 784-512-256-10 b64 train step", mlp, rng.standard_normal((64, 784), np.float32),
              rng.integers(0, 10, 64), "cross_entropy", 1.25)
    n = 1000
    ours, theirs = paired_us(per_op_chain(interop, n), per_op_chain(torch, n), steps=30)
    rows.append(Row("per-op fwd+bwd (1,000-add chain, 1 element)", ours / n, theirs / n, "us", "<= 1.25x",
                    ours <= 1.25 * theirs))
    train_row("CNN conv16-pool-conv32-pool-fc b64 train step", cnn, rng.standard_normal((64, 1, 28, 28), np.float32),
              rng.integers(0, 10, 64), "cross_entropy", 1.5)
    train_row("TransformerEncoder 2x(d128 h4 ff512) s32 b16 train step", transformer,
              rng.standard_normal((16, 32, 128), np.float32), rng.standard_normal((16, 32, 128), np.float32),
              "mse_loss", 1.25)
    train_row("LSTM 64->128 s32 b32 train step", _LSTMHead.build, rng.standard_normal((32, 32, 64), np.float32),
              rng.standard_normal((32, 128), np.float32), "mse_loss", 2.0)
    t, heavy = import_time()
    rows.append(Row("import interop" + (f" (imports {', '.join(heavy)}!)" if heavy else ""), t * 1e3, None, "ms",
                    "<= 300 ms, no torch/onnxruntime/cupy", t <= 0.3 and not heavy))
    print_table("Core (interop vs PyTorch 2.13 CPU, medians)", rows, "PyTorch")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
