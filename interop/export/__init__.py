"""The ONNX exporter: `interop.export(model, args, "m.onnx", dynamic={"x": {0: "batch"}})`.

`interop.export` is both this package (`interop.export.verify`, `interop.export.ExportError`, ...) and
callable: the module's class is swapped for one with `__call__`, so `interop.export(...)` runs
`export.export(...)`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ..symbolic import SymInt
from .capture import ExportError
from .exporter import Exported, build, export
from .serialize import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ir_version_for
from .verify import OutputCheck, VerificationError, VerificationReport, verify

__all__ = ["export", "verify", "build", "Exported", "ExportError", "VerificationError", "VerificationReport",
           "OutputCheck", "SymInt", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "ir_version_for"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return export(*args, **kwargs)

    __call__.__doc__ = export.__doc__


sys.modules[__name__].__class__ = _CallableModule
