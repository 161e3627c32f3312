"""The producer side: `Tensor.__dlpack__`, `Tensor.__dlpack_device__` and `to_dlpack`.

The common case (a contiguous numpy-backed tensor) is handed straight to numpy's own C exporter, so exporting costs
what numpy's does plus a few attribute checks. Everything else goes through `export_capsule`, which still lets
numpy or cupy build the capsule (and own its deleter, in C) but first decides on a copy, and afterwards patches
what they cannot express: the READ_ONLY and IS_COPIED flags, and the DLPack codes of bfloat16 and float8 (exported
as same-width unsigned integers, since neither library knows them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from . import _abi, _dtypes

_ndarray = np.ndarray
_CPU_DEVICE = (_abi.CPU, 0)


def __dlpack__(self: Tensor, *, stream: Any = None, max_version: tuple[int, int] | None = None,
               dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
    """Export as a DLPack capsule (Python array API protocol, DLPack 1.3): versioned when `max_version` >= (1, 0),
    legacy otherwise; `copy` True always copies, False never does (BufferError where it would have to); `dl_device`
    (kDLCPU, 0) moves a CUDA tensor to the host; `stream` is the consumer's CUDA stream."""
    a = self.data
    if type(a) is _ndarray:
        if stream is None and not (self.requires_grad or self._readonly) \
                and (a.base is None or a.flags.c_contiguous):  # no negative strides, which crash torch
            try:
                if dl_device is None and copy is None:
                    return a.__dlpack__(max_version=max_version)
                return a.__dlpack__(max_version=max_version, dl_device=dl_device, copy=copy)
            except BufferError:
                pass  # dtypes numpy won't export (bfloat16, float8), and refusals worth a clearer message below
    elif dl_device is None and copy is None and not (self.requires_grad or self._readonly) \
            and a.flags.c_contiguous and a.dtype not in _dtypes.CARRIER:  # cupy's exporter orders the streams
        return a.__dlpack__(stream=stream, max_version=max_version)
    return export_capsule(self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)


def __dlpack_device__(self: Tensor) -> tuple[int, int]:
    """(device_type, device_id) as plain ints: (1, 0) for the CPU, (2, index) for CUDA (13 for managed memory)."""
    a = self.data
    return _CPU_DEVICE if type(a) is _ndarray else a.__dlpack_device__()


def to_dlpack(tensor: Tensor) -> Any:
    """A legacy `dltensor` capsule, for consumers that take a capsule rather than an object (like
    `torch.utils.dlpack.to_dlpack`). Read-only tensors need the versioned form: `tensor.__dlpack__(max_version=(1, 3))`.
    """
    return __dlpack__(tensor)


def export_capsule(t: Tensor, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
    """Every export that is not the plain numpy case: decides on a copy, then patches the capsule."""
    if t.requires_grad:
        raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
    if copy not in (None, True, False):
        raise ValueError(f"copy must be None, True or False, got {copy!r}")
    a = t.data
    on_cpu = type(a) is _ndarray
    versioned = max_version is not None and int(max_version[0]) >= 1
    code, bits = _dtypes.to_dl(a.dtype)
    to_host = _wants_host(t, dl_device, copy)
    if on_cpu and stream not in (None, -1):
        raise ValueError(f"stream must be None (or -1) for a CPU tensor, got {stream!r}")
    hazard = _layout_hazard(a)
    if hazard and copy is False:
        raise BufferError(f"cannot export this tensor without a copy ({hazard}) but copy=False; "
                          "pass copy=None or call .contiguous() first")
    copied = copy is True or hazard is not None or to_host
    readonly = not copied and (t._readonly or (on_cpu and not a.flags.writeable))
    if readonly and not versioned:
        raise BufferError("Cannot export a read-only tensor as a legacy DLPack capsule, which cannot signal "
                          "read-only; ask for a versioned one (max_version=(1, 0) or newer) or for a copy (copy=True)")
    if to_host:
        a, on_cpu = a.get(), True  # synchronizes on our current stream: the spec's rule for dl_device=kDLCPU
    elif copied:
        a = a.copy(order="K" if hazard is None else "C")  # "K" keeps the layout but makes strides positive
    carrier = _dtypes.CARRIER.get(a.dtype)
    view = a if carrier is None else a.view(carrier)
    cap = view.__dlpack__(max_version=max_version) if on_cpu else \
        view.__dlpack__(stream=stream, max_version=max_version)
    flags = (_abi.IS_COPIED if copied else _abi.READ_ONLY if readonly else 0) if versioned else 0
    if carrier is not None or flags:
        _patch(cap, versioned, code, bits, carrier is not None, flags)
    return cap


def _wants_host(t: Tensor, dl_device: Any, copy: bool | None) -> bool:
    """Whether `dl_device` asks for a move to the host; BufferError for devices we cannot export to."""
    if dl_device is None:
        return False
    dl_device = (int(dl_device[0]), int(dl_device[1]))
    here = __dlpack_device__(t)
    if dl_device == here or (dl_device == _CPU_DEVICE and here[0] in _abi.HOST_DEVICES):
        return False
    if dl_device != _CPU_DEVICE:
        raise BufferError(f"unsupported device requested: {_device_name(dl_device)}; a {t.device} tensor exports "
                          f"to {_device_name(here)} or to the CPU (kDLCPU, 0)")
    if copy is False:
        raise BufferError(f"exporting a {t.device} tensor to the CPU needs a copy but copy=False")
    return True


def _layout_hazard(a: Any) -> str | None:
    """Why a layout must not be handed out as it is, or None. Negative strides abort torch (pytorch#188023) and
    strides that are not a multiple of the item size cannot be written in DLPack's element units."""
    if a.flags.c_contiguous:
        return None
    item = a.itemsize
    for n, s in zip(a.shape, a.strides):
        if n > 1 and s < 0:
            return f"negative strides {a.strides}, which crash consumers like torch"
        if s % item:
            return f"strides {a.strides} are not a multiple of the item size {item}"
    return None


def _patch(cap: Any, versioned: bool, code: int, bits: int, carried: bool, flags: int) -> None:
    """Write what numpy/cupy left out into a capsule that has not left our hands yet (flags: versioned only)."""
    ptr = _abi.capsule_pointer(cap, _abi.VERSIONED if versioned else _abi.LEGACY)
    if carried:
        _abi.set_dtype(ptr, versioned, code, bits)
        if versioned and code > _dtypes.BOOL and _abi.read_header(ptr, True).minor < 1:
            _abi.set_minor_version(ptr, 1)  # fp8 codes are DLPack 1.1
    if flags:
        _abi.add_flags(ptr, flags)


def _device_name(dev: tuple[int, int]) -> str:
    return f"({_abi.DEVICE_NAMES.get(dev[0], f'device type {dev[0]}')}, {dev[1]})"
