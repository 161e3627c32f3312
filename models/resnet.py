"""ResNet-18 for CIFAR-size (3x32x32) images: a 3x3 stem, four stages of two BasicBlocks, global average pool."""

from __future__ import annotations

import numpy as np

import interop
import interop.nn.functional as F
from interop import nn

DYNAMIC = {"x": {0: "batch"}}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: interop.Tensor) -> interop.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """`width` 64 is the standard network (11.2M parameters); tests use a narrower one of the same shape."""

    def __init__(self, classes: int = 10, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: interop.Tensor) -> interop.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def factory(batch: int = 4, **kw) -> tuple[ResNet18, tuple[interop.Tensor]]:
    return ResNet18(**kw), (interop.randn(batch, 3, 32, 32),)


def train(model: ResNet18, steps: int = 5, batch: int = 8, lr: float = 0.05, seed: int = 0) -> list[float]:
    """SGD on synthetic CIFAR-shaped data (class-dependent colour means), since no data set is downloaded."""
    rng = np.random.default_rng(seed)
    opt = interop.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    losses = []
    for _ in range(steps):
        y = rng.integers(0, 10, batch)
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32) + (y / 5.0)[:, None, None, None]
        loss = F.cross_entropy(model(interop.tensor(x.astype(np.float32))), interop.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
