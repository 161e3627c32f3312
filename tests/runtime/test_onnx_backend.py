"""onnx's own backend test suite (node, simple, PyTorch-converted and real models) through interop.runtime.backend.

CPU only (the CUDA variants need a GPU and are not generated here). Every test either passes or is an expected
failure with its reason: models newer than this onnxruntime reads (IR/opset version skew, decided per model against
what ORT accepts) and the explicit list below of what onnxruntime 1.31 itself cannot do. Expected failures are strict:
one that starts passing fails the run, so the list stays honest.

Slow-ish (about 2,000 tests, 1-2 min on 2 cores); run alone with
`.venv/bin/python -m pytest -q -p no:cacheprovider tests/runtime/test_onnx_backend.py`.
"""

from __future__ import annotations

import os
import re

import onnx.backend.test
import pytest

from interop.runtime import backend
from interop.runtime.backend import InteropBackend

pytestmark = pytest.mark.slow

# What onnxruntime 1.31 cannot do (full test names without the _cpu suffix; regexes), grouped by cause.
KNOWN_FAILURES = {
    "ops before opset 7 in PyTorch-converted models, which onnxruntime never implemented": [
        r"Softsign", r"operator_(add_broadcast|add_size1_.*|addconstant|basic|non_float_params|params)",
        r"AvgPool\dd.*", r"PReLU_.*", r"BatchNorm\dd_.*eval", r"GLU", r"GLU_dim", r"PoissonNLLLLoss_no_reduce",
        r"Linear", r"operator_(addmm|mm|pow)",
    ],
    "onnxruntime 1.31 has no CPU kernel for this op, version or type": [
        r"image_decoder_.*", r"bernoulli.*", r"castlike_(FLOAT4E2M1_to_.*|.*_to_FLOAT4E2M1)(_expanded)?",
        r"roialign_.*", r"(max|min)_u?int16", r"pow_types_float32_uint(32|64)", r"bitcast_bool_to_uint8",
        r"top_k_uint64", r"attention_[34]d_.*bf16.*",
    ],
    "preview and training-domain ops that onnxruntime does not register": [
        r"flexattention(?!.*expanded).*", r"adagrad.*", r"adam.*", r"(nesterov_)?momentum.*", r"gradient_of_.*",
    ],
    "Attention-23/24 attributes and inputs newer than onnxruntime 1.31's kernel": [
        r"attention_(3d_)?(local|bidirectional)_window(?!.*expanded).*",
        r"attention_4d_diff_heads_mask4d_padded_kv",
    ],
    "results outside the test's tolerance (onnxruntime's numerics differ from the reference)": [
        r"attention_4d_causal_fp16", r"attention_4d_with_past_and_present_qk_matmul_bias_[34]d_mask_causal",
        r"dft.*", r"stft.*", r"maxunpool_export_with_output_shape",
        r"resize_downsample_scales_(cubic|linear)_align_corners",
    ],
    "onnxruntime rejects the attributes or inputs at load or run time": [
        r"strn(orm_model|ormalizer_export)_monday_(casesensintive_(lower|upper)|empty_output|insensintive_upper_twodim)",
        r"(gru|lstm|simple_rnn)_batchwise",
        r"convinteger_with_padding", r"reduce_max_empty_set_bool",
    ],
    "random draws: onnxruntime's generator is not the reference's": [r"training_dropout(_default)?(_mask)?"],
    "onnx's assert_similar_outputs cannot compare a sequence that holds a 0-d tensor": [r"loop16_seq_none"],
}
_KNOWN = [(re.compile(f"test_(?:{p})_cpu"), reason) for reason, pats in KNOWN_FAILURES.items() for p in pats]


def _skew(model: onnx.ModelProto) -> str | None:
    """Why this onnxruntime cannot read `model` at all (newer IR or opset), or None."""
    ir, opset = backend._max_ir(), backend._max_opset()
    if model.ir_version > ir:
        return f"version skew: IR {model.ir_version}, onnxruntime reads IR <= {ir}"
    newest = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if newest > opset:
        return f"version skew: opset {newest}, onnxruntime runs opset <= {opset}"
    return None


@pytest.fixture(autouse=True, scope="module")
def _models_dir(tmp_path_factory):
    """The real-model tests write reference data under ONNX_HOME (~/.onnx by default): keep it in a temp dir."""
    old = os.environ.get("ONNX_HOME")
    os.environ["ONNX_HOME"] = str(tmp_path_factory.mktemp("onnx_home"))
    yield
    if old is None:
        del os.environ["ONNX_HOME"]
    else:
        os.environ["ONNX_HOME"] = old


class _Backend(InteropBackend):
    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        reason = _skew(model)
        if reason:
            pytest.xfail(reason)
        return super().prepare(model, device, **kwargs)


def _test_classes() -> dict:
    """onnx's generated test classes, CPU tests only, with the known failures marked."""
    cases = onnx.backend.test.BackendTest(_Backend, __name__).test_cases  # a property: new classes on each access
    for cls in cases.values():
        for name in [n for n in vars(cls) if n.startswith("test_")]:
            if name.endswith("_cuda"):
                delattr(cls, name)
                continue
            reason = next((r for rx, r in _KNOWN if rx.fullmatch(name)), None)
            if reason:
                setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(getattr(cls, name)))
    return cases


globals().update(_test_classes())
