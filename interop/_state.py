"""Thread-local switches read on every op: grad mode and the active export capture (if any)."""

from __future__ import annotations

import threading
from typing import Any


class _State(threading.local):
    grad_enabled: bool = True
    inference: bool = False
    capture: Any = None  # an interop.export capture while a model is being recorded, else None


state = _State()
