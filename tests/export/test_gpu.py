"""Exporting models whose weights and inputs live on a CUDA device (the graph is device-neutral)."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop import nn

from .helpers import run

pytestmark = pytest.mark.gpu


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        b, s, _ = x.shape
        h = self.fc1(x).relu() + interop.zeros(b, s, 1, device=x.device)  # a dynamic fill made on the GPU
        return self.fc2(h).reshape(b, -1) * 0.5


def test_cuda_model_exports_and_matches_on_the_cpu_runtime():
    model = Net().cuda()
    x = interop.randn(2, 3, 8).cuda()
    proto = interop.export(model, (x,), dynamic={"x": {0: "batch", 1: "seq"}})  # verify: eager on the GPU
    names = {t.name for t in proto.graph.initializer}
    assert "fc1.bias" in names and any(n.startswith("fc2.weight") for n in names)
    host = np.random.default_rng(0).standard_normal((5, 7, 8)).astype(np.float32)
    want = model(interop.tensor(host).cuda()).detach().cpu().numpy()
    np.testing.assert_allclose(run(proto, host)[0], want, rtol=1e-4, atol=1e-5)


def test_cuda_in_place_ops_and_constants(tmp_path):
    def f(x):
        m = interop.ones(3, device=x.device)
        y = x * 2
        y.add_(m)
        m.mul_(4)
        return y + m

    x = interop.randn(2, 3).cuda()
    proto = interop.export(f, (x,), tmp_path / "f.onnx", external_data=True)
    host = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(run(str(tmp_path / "f.onnx"), host)[0], np.full((2, 3), 7.0))
    assert proto.graph.node
