"""The model zoo end to end: train a few steps, export with dynamic axes, and check ONNX Runtime against eager at
three batch sizes (1, the example, a larger one) and, for sequence models, two sequence lengths."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import interop
from interop.runtime import Session
from models import ZOO

# Narrow widths keep the suite fast; the architectures are the real ones.
SMALL = {"resnet18": {"width": 8}, "gpt": {"d_model": 32}, "transformer": {"d_model": 32}}
TRAIN_STEPS = {"mlp": 5, "cnn": 3, "resnet18": 2, "transformer": 3, "gpt": 3, "lstm": 3}


def _inputs(name: str, example: tuple, batch: int, seq: int | None) -> tuple:
    x = example[0]
    shape = (batch, *x.shape[1:]) if seq is None else (batch, seq, *x.shape[2:])
    if x.dtype == interop.int64:
        return (interop.randint(0, 30, shape),)
    return (interop.randn(*shape),)


@pytest.mark.parametrize("name", list(ZOO))
def test_train_export_and_run_at_other_shapes(name, tmp_path):
    interop.manual_seed(0)
    mod = ZOO[name]
    model, example = mod.factory(**SMALL.get(name, {}))
    losses = mod.train(model, steps=TRAIN_STEPS[name])
    assert all(math.isfinite(v) for v in losses)
    model.eval()
    path = tmp_path / f"{name}.onnx"
    interop.export(model, example, path, dynamic=mod.DYNAMIC, verify=False)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    graph_input = proto.graph.input[0].type.tensor_type.shape.dim
    assert graph_input[0].dim_param, f"{name}: batch axis is not dynamic"
    has_seq = len(next(iter(mod.DYNAMIC.values()))) > 1
    if has_seq:
        assert graph_input[1].dim_param, f"{name}: sequence axis is not dynamic"
    sess = Session(path)
    example_batch = example[0].shape[0]
    seqs = [example[0].shape[1], example[0].shape[1] + 5] if has_seq else [None]
    for batch in (1, example_batch, 3 * example_batch):
        for seq in seqs:
            args = _inputs(name, example, batch, seq)
            with interop.no_grad():
                want = model(*args).numpy()
            (got,) = sess.run(*args)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{name} at batch {batch}, seq {seq}")


def test_tied_weights_stay_one_initializer(tmp_path):
    model, example = ZOO["gpt"].factory(d_model=32)
    proto = interop.export(model.eval(), example, dynamic=ZOO["gpt"].DYNAMIC, verify=False)
    names = [i.name for i in proto.graph.initializer]
    assert "tok.weight" in names and "head.weight" not in names


def test_batchnorm_is_folded_into_conv_in_eval_export():
    model, example = ZOO["resnet18"].factory(width=8)
    proto = interop.export(model.eval(), example, dynamic=ZOO["resnet18"].DYNAMIC, verify=False)
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 20
