"""Execution providers: create a session on exactly the providers asked for, or say why it cannot be done.

ONNX Runtime quietly builds a CPU session when the CUDA provider fails to load (a missing cuBLAS or cuDNN, no
driver), leaving one log line behind. Here a provider that was asked for and did not load is an error that names the
cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
from typing import Any

import onnxruntime as ort

CPU_EP, CUDA_EP = "CPUExecutionProvider", "CUDAExecutionProvider"
_LIB_DIR = os.path.dirname(ort.capi._pybind_state.__file__)
_WINDOWS = sys.platform == "win32"
_preloaded = [False]


def create_session(model: str | bytes, options: ort.SessionOptions, providers: list, device: str) -> Any:
    """An `onnxruntime.InferenceSession` running on every provider in `providers`, or a RuntimeError saying why not."""
    names = [p if isinstance(p, str) else p[0] for p in providers]
    available = ort.get_available_providers()
    absent = [n for n in names if n not in available]
    if absent:
        raise RuntimeError(f"device='{device}': onnxruntime {ort.__version__} has no {', '.join(absent)} "
                           f"(it has {', '.join(available)})" + (_GPU_WHEEL if CUDA_EP in absent else ""))
    if CUDA_EP in names:
        check_cuda(device)
    for attempt in range(2):
        sess = ort.InferenceSession(model, options, providers=providers, enable_fallback=0)
        missing = [n for n in names if n not in sess.get_providers()]
        if not missing:
            return sess
        if attempt or CUDA_EP not in missing or not _preload():
            break
    reasons = "; ".join(f"{n}: {_why(n, device)}" for n in missing)
    raise RuntimeError(f"device='{device}': onnxruntime could not start {', '.join(missing)}, and will not run "
                       f"on the CPU instead: {reasons}")


def check_cuda(device: str) -> None:
    """Fail early, before ORT logs its own failure, when there is no CUDA provider, driver or device."""
    problem = (f"onnxruntime {ort.__version__} was built without the CUDA provider" + _GPU_WHEEL
               if CUDA_EP not in ort.get_available_providers() else _driver_problem(_index(device)))
    if problem:
        raise RuntimeError(f"device='{device}': onnxruntime cannot use CUDA: {problem}")


_GPU_WHEEL = "; install onnxruntime-gpu (which ships the CUDA provider) in place of onnxruntime"


def cuda_problem(index: int = 0) -> str | None:
    """Why ONNX Runtime's CUDA provider cannot run on cuda:`index` (None when nothing is in the way)."""
    if CUDA_EP not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} was built without the CUDA provider" + _GPU_WHEEL
    return _driver_problem(index) or _library_problem()


def _why(provider: str, device: str) -> str:
    if provider == CUDA_EP:
        problem = cuda_problem(_index(device))
        if problem:
            return problem
    return "onnxruntime's log above gives its reason"


def _index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def _driver_problem(index: int) -> str | None:
    try:
        cuda = ctypes.CDLL("nvcuda.dll" if _WINDOWS else "libcuda.so.1")
    except OSError as e:
        return f"no NVIDIA driver is installed ({e})"
    rc = cuda.cuInit(0)
    if rc:
        return f"the NVIDIA driver cannot initialise CUDA: {_cu_error(cuda, rc)}"
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc:
        return f"the NVIDIA driver cannot count devices: {_cu_error(cuda, rc)}"
    if index >= count.value:
        return f"there is no cuda:{index}; the driver sees {count.value} CUDA device(s)"
    return None


def _cu_error(cuda: Any, rc: int) -> str:
    name = ctypes.c_char_p()
    cuda.cuGetErrorName(rc, ctypes.byref(name))
    return f"{name.value.decode()} ({rc})" if name.value else f"error {rc}"


def _library_problem() -> str | None:
    """Load the CUDA provider library the way ORT does, to surface the loader's own message (a missing .so)."""
    if _WINDOWS:
        return None
    try:  # the provider resolves Provider_GetHost from the shared bridge, which ORT loads globally first
        ctypes.CDLL(os.path.join(_LIB_DIR, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(os.path.join(_LIB_DIR, "libonnxruntime_providers_cuda.so"))
    except OSError as e:
        cuda = getattr(ort, "cuda_version", None) or "?"
        return (f"its library cannot load ({e}); onnxruntime {ort.__version__} needs CUDA {cuda.split('.')[0]}.x "
                f"and cuDNN 9.x: pip install the matching nvidia-*-cu{cuda.split('.')[0]} wheels, or import a "
                f"torch built for the same CUDA first")
    return None


def _preload() -> bool:
    """Once per process: load CUDA and cuDNN from the nvidia-* pip wheels (ORT's `preload_dlls`), quietly."""
    if _preloaded[0] or not hasattr(ort, "preload_dlls"):
        return False
    _preloaded[0] = True
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        ort.preload_dlls()
    return True
