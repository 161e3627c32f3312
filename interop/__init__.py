"""interop: eager autograd tensors that export to ONNX, cross frameworks over DLPack and run on ONNX Runtime."""

from __future__ import annotations

from . import autograd, dtypes, nn, optim
from .autograd import enable_grad, grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device, cuda_available, device
from .creation import *  # noqa: F403
from .dlpack import from_dlpack, to_dlpack
from .dtypes import (
    bfloat16,
    bool,
    complex64,
    complex128,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    promote_types,
    result_type,
    set_default_dtype,
    short,
    uint8,
)
from .io import load, save
from .ops.conv import *  # noqa: F403
from .ops.elementwise import *  # noqa: F403
from .ops.index import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.nn import *  # noqa: F403
from .ops.norm import *  # noqa: F403
from .ops.pool import *  # noqa: F403
from .ops.reduce import *  # noqa: F403
from .ops.rnn import *  # noqa: F403
from .ops.shape import *  # noqa: F403
from .tensor import Tensor

__version__ = "0.1.0"


def __getattr__(name: str):
    """`interop.export` and `interop.runtime` import onnx / onnxruntime: loaded on first use, not on import."""
    if name in ("export", "runtime"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'interop' has no attribute {name!r}")
