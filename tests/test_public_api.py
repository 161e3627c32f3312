"""The public face: what `import interop` gives, and what it must not import."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light_and_heavy_parts_load_on_first_use():
    code = ("import sys, interop; heavy = ('torch', 'onnx', 'onnxruntime', 'cupy'); "
            "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]; "
            "assert callable(interop.export) and interop.export.verify; "
            "assert interop.runtime.Session; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
