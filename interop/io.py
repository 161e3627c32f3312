"""Save and load state dicts as safetensors files: plain tensor bytes behind a JSON header, so loading a file
can never run code (no pickle anywhere), and the files open in PyTorch, JAX, MLX and the Hugging Face tools.

Saves are atomic: the file is written beside its destination under a temporary name, flushed to disk and then
renamed over it, so an interrupted or failing save leaves the previous file as it was."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors

from . import dtypes
from ._files import atomic_path
from .backend import device as as_device
from .backend import to_device
from .tensor import Tensor

__all__ = ["save", "load", "load_metadata"]

# Keys whose tensor is the very same memory as an earlier key's (tied weights) are stored once and listed here.
_TIED_KEY = "interop.tied"
_SAVABLE = frozenset({dtypes.bool, dtypes.uint8, dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64,
                      dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64, dtypes.complex64})


def save(obj: Mapping[str, Tensor], f: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a state dict (str -> Tensor) to `f` in safetensors format, atomically.

    Tensors that are the same memory (a tied weight listed under two names) are written once and come back
    from `load` as one Tensor under both names. `metadata` is free-form str -> str, read back by `load_metadata`."""
    path = os.fspath(f)
    if not isinstance(obj, Mapping):
        hint = "; save model.state_dict()" if hasattr(obj, "state_dict") else ""
        raise TypeError("interop.save writes a state dict (a mapping of str to Tensor), got "
                        f"{type(obj).__name__}{hint}")
    header = _check_metadata(metadata)
    arrays: dict[str, np.ndarray] = {}
    first: dict[tuple, str] = {}
    tied: dict[str, str] = {}
    for key, v in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"interop.save: state dict keys must be str, got {type(key).__name__} ({key!r})")
        if not isinstance(v, Tensor):
            raise TypeError(f"interop.save: the value of {key!r} is a {type(v).__name__}, not a Tensor; "
                            "safetensors files hold tensors only (put other values in `metadata` as strings)")
        if v.dtype not in _SAVABLE:
            raise TypeError(f"interop.save: {key!r} has dtype {dtypes.name(v.dtype)}, which safetensors cannot store")
        ident = (v.device, v.data_ptr(), v.data.shape, v.data.strides, v.dtype)
        if ident in first:
            tied[key] = first[ident]
            continue
        first[ident] = key
        a = to_device(v.data, as_device("cpu"))
        arrays[key] = a if a.flags.c_contiguous else a.copy(order="C")  # (not ascontiguousarray: keeps 0-d)
    if tied:
        header[_TIED_KEY] = json.dumps(tied)
    specs = {k: safetensors.TensorSpec(dtype=dtypes.name(a.dtype), shape=a.shape, data_ptr=a.ctypes.data,
                                       data_len=a.nbytes) for k, a in arrays.items()}
    with atomic_path(path) as tmp:
        safetensors.serialize_file(specs, tmp, metadata=header or None)


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    header = dict(metadata or {})
    for k, v in header.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"interop.save: metadata must map str to str, got {k!r}: {type(v).__name__}")
    if _TIED_KEY in header:
        raise ValueError(f"interop.save: metadata key {_TIED_KEY!r} is reserved")
    return header


def _open(path: str) -> Any:
    try:
        return safetensors.safe_open(path, framework="np")
    except safetensors.SafetensorError as e:
        raise ValueError(f"{path} is not a valid safetensors file: {e}") from e


def load(f: str | os.PathLike, device: Any = None) -> dict[str, Tensor]:
    """Read a safetensors file (written by `save`, by PyTorch's safetensors.torch, ...) into a dict of
    Tensors, on the CPU or on `device`."""
    path = os.fspath(f)
    dev = as_device(device) if device is not None else None
    out: dict[str, Tensor] = {}
    with _open(path) as sf:
        meta = sf.metadata() or {}
        for key in sf.keys():  # noqa: SIM118 - safe_open is not a mapping
            try:
                arr = sf.get_tensor(key)
            except safetensors.SafetensorError as e:
                raise ValueError(f"{path} is not a valid safetensors file: tensor {key!r}: {e}") from e
            if arr.dtype not in dtypes._CATEGORY:
                raise ValueError(f"{path}: tensor {key!r} has dtype {arr.dtype}, which interop does not support")
            out[key] = Tensor(arr if dev is None else to_device(arr, dev))
    for alias, target in _tied(path, meta).items():
        if target not in out:
            raise ValueError(f"{path}: {alias!r} is recorded as tied to {target!r}, which the file does not hold")
        out[alias] = out[target]
    return out


def _tied(path: str, meta: dict[str, str]) -> dict[str, str]:
    raw = meta.get(_TIED_KEY)
    if raw is None:
        return {}
    try:
        tied = json.loads(raw)
        ok = isinstance(tied, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in tied.items())
    except json.JSONDecodeError:
        ok = False
    if not ok:
        raise ValueError(f"{path} is not a valid interop safetensors file: malformed {_TIED_KEY!r} metadata")
    return tied


def load_metadata(f: str | os.PathLike) -> dict[str, str]:
    """The free-form metadata a file was saved with (interop's own keys left out)."""
    path = os.fspath(f)
    with _open(path) as sf:
        meta = sf.metadata() or {}
    meta.pop(_TIED_KEY, None)
    return meta
