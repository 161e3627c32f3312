"""Devices and their array modules: numpy for "cpu", cupy for "cuda".

Ops are written once against `xp`, the array module of their inputs (Chainer's pattern). cupy is imported only when a
CUDA device or a cupy array is first seen, so `import interop` stays light on machines without a GPU.
"""

from __future__ import annotations

import types
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Device", "device", "cuda_available"]


def _cupy() -> types.ModuleType:
    try:
        import cupy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "CUDA tensors need cupy: pip install 'interop[cuda]' (cupy-cuda13x) on a machine with an NVIDIA GPU"
        ) from e
    return cupy


def cuda_available() -> bool:
    """True when cupy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class Device:
    """A place where tensors live: `Device("cpu")`, `Device("cuda", 0)`."""

    __slots__ = ("index", "type")

    def __init__(self, type: str, index: int | None = None):
        self.type = type
        self.index = index

    @property
    def xp(self) -> types.ModuleType:
        return np if self.type == "cpu" else _cupy()

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = Device("cpu")


@lru_cache(maxsize=64)
def _parse(spec: str) -> Device:
    kind, _, idx = spec.partition(":")
    if kind == "cpu" and not idx:
        return CPU
    if kind == "cuda":
        return Device("cuda", int(idx) if idx else 0)
    raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def device(spec: str | Device | int | None) -> Device:
    """Parse a device spec the way PyTorch does ('cpu', 'cuda', 'cuda:1', an int for a CUDA index)."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return Device("cuda", spec.index or 0) if spec.type == "cuda" else spec
    if isinstance(spec, int):
        return Device("cuda", spec)
    if isinstance(spec, str):
        return _parse(spec)
    raise TypeError(f"device must be a str, int or Device, got {type(spec).__name__}")


def device_of(array: Any) -> Device:
    if type(array) is np.ndarray:
        return CPU
    if type(array).__module__.startswith("cupy"):
        return Device("cuda", array.device.id)
    raise TypeError(f"not a numpy or cupy array: {type(array).__name__}")


def xp_of(array: Any) -> types.ModuleType:
    return np if type(array) is np.ndarray else _cupy()


def to_device(array: Any, dev: Device) -> Any:
    """Move an array to `dev` (a copy when the device changes, the same array otherwise)."""
    if dev.type == "cpu":
        return array if type(array) is np.ndarray else array.get()
    cp = _cupy()
    with cp.cuda.Device(dev.index or 0):
        if type(array) is not np.ndarray and array.device.id == (dev.index or 0):
            return array
        return cp.asarray(array)
