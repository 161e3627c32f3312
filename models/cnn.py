"""A LeNet-like convolutional network for the 8x8 digits (1x8x8 images)."""

from __future__ import annotations

import interop
from interop import nn

from ._train import fit_digits

DYNAMIC = {"x": {0: "batch"}}


class CNN(nn.Module):
    def __init__(self, classes: int = 10, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * width * 4 * 4, classes))

    def forward(self, x: interop.Tensor) -> interop.Tensor:
        return self.classifier(self.features(x))


def factory(batch: int = 8, **kw) -> tuple[CNN, tuple[interop.Tensor]]:
    return CNN(**kw), (interop.randn(batch, 1, 8, 8),)


def train(model: CNN, steps: int = 300, batch: int = 64, lr: float = 3e-3, **kw) -> list[float]:
    return fit_digits(model, steps, batch, lr, image=True, **kw)
