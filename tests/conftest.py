"""Shared test setup: the `gpu` marker skips with a reason where no CUDA device is usable."""

from __future__ import annotations

import pytest


def _gpu_reason() -> str | None:
    try:
        import cupy
    except ImportError:
        return "no GPU here: cupy is not installed (pip install 'interop[cuda]' on a machine with an NVIDIA GPU)"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device
        return f"no GPU here: CUDA is unavailable ({type(e).__name__}: {e})"
    return None if n > 0 else "no GPU here: cupy sees 0 CUDA devices"


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if "gpu" in item.keywords:
            reason = reason or _gpu_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
