"""A multilayer perceptron for the 8x8 digits."""

from __future__ import annotations

import itertools

import interop
from interop import nn

from ._train import fit_digits

DYNAMIC = {"x": {0: "batch"}}


class MLP(nn.Module):
    def __init__(self, in_features: int = 64, hidden: tuple[int, ...] = (128, 64), classes: int = 10):
        super().__init__()
        sizes = (in_features, *hidden)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], classes)

    def forward(self, x: interop.Tensor) -> interop.Tensor:
        return self.head(self.body(x))


def factory(batch: int = 8, **kw) -> tuple[MLP, tuple[interop.Tensor]]:
    return MLP(**kw), (interop.randn(batch, 64),)


def train(model: MLP, steps: int = 200, batch: int = 64, lr: float = 1e-2) -> list[float]:
    return fit_digits(model, steps, batch, lr, image=False)
