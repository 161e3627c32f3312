"""`interop.nn.functional` (import as F): PyTorch's functional signatures over interop's ops.

The ops live in their families (`interop.ops.*`) and are re-exported here; the wrappers below add what
`torch.nn.functional` takes beyond the op itself, such as `inplace=`.
"""

from __future__ import annotations

from ..ops import elementwise as _ew
from ..ops.attention import multi_head_attention_forward, scaled_dot_product_attention
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.elementwise import gelu, sigmoid, softplus, tanh
from ..ops.linalg import linear
from ..ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ..ops.nn import dropout, dropout1d, dropout2d, dropout3d, embedding, log_softmax, one_hot, softmax, softmin
from ..ops.norm import batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from ..ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    interpolate,
    max_pool1d,
    max_pool2d,
)
from ..ops.shape import pad
from ..tensor import Tensor

__all__ = [
    "linear", "relu", "leaky_relu", "elu", "gelu", "silu", "mish", "sigmoid", "tanh", "softplus", "hardtanh",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
    "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "interpolate", "pad",
    "batch_norm", "layer_norm", "group_norm", "rms_norm", "instance_norm", "softmax", "log_softmax", "softmin",
    "dropout", "dropout1d", "dropout2d", "dropout3d", "embedding", "one_hot", "cross_entropy", "nll_loss",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "scaled_dot_product_attention", "multi_head_attention_forward",
]


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else _ew.relu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return input.leaky_relu_(negative_slope) if inplace else _ew.leaky_relu(input, negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return input.elu_(alpha) if inplace else _ew.elu(input, alpha)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.silu_() if inplace else _ew.silu(input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return input.mish_() if inplace else _ew.mish(input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return input.hardtanh_(min_val, max_val) if inplace else _ew.hardtanh(input, min_val, max_val)
