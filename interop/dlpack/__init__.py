"""DLPack: zero-copy exchange with numpy, PyTorch, JAX, CuPy and ONNX Runtime (DLPack 1.3, array API protocol).

`Tensor.__dlpack__` / `__dlpack_device__` (attached here, like an op family attaches its methods) let every
`from_dlpack` take interop tensors; `from_dlpack` takes anything with `__dlpack__` or a raw capsule; `to_dlpack`
makes a legacy capsule for consumers that want one. Nothing heavy is imported: numpy and ctypes only, cupy on the
first CUDA tensor.
"""

from __future__ import annotations

from ..tensor import Tensor
from ._export import __dlpack__, __dlpack_device__, to_dlpack
from ._import import from_dlpack

__all__ = ["from_dlpack", "to_dlpack"]

Tensor.__dlpack__ = __dlpack__
Tensor.__dlpack_device__ = __dlpack_device__
