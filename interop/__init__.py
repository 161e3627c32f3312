"""interop: eager autograd tensors that export to ONNX, cross frameworks over DLPack and run on ONNX Runtime."""

from __future__ import annotations

from . import autograd, dtypes
from .autograd import enable_grad, grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device, cuda_available, device
from .creation import *  # noqa: F403
from .dtypes import (
    bfloat16, bool, complex64, complex128, double, float, float16, float32, float64, get_default_dtype, half, int,
    int8, int16, int32, int64, long, promote_types, result_type, set_default_dtype, short, uint8,
)
from .ops import elementwise as _elementwise
from .ops import index as _index
from .ops import linalg as _linalg
from .ops import reduce as _reduce
from .ops import shape as _shape
from .ops.elementwise import *  # noqa: F403
from .ops.index import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.reduce import *  # noqa: F403
from .ops.shape import *  # noqa: F403
from .tensor import Tensor

__version__ = "0.1.0"
