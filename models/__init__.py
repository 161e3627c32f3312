"""Real models on the interop core. Each module has `factory(**kw) -> (model, example_args)`, the dynamic axes its
export uses (`DYNAMIC`), and a short `train(model, steps)` entry that returns the loss per step."""

from __future__ import annotations

from . import cnn, gpt, lstm, mlp, resnet, transformer

ZOO = {"mlp": mlp, "cnn": cnn, "resnet18": resnet, "transformer": transformer, "gpt": gpt, "lstm": lstm}
