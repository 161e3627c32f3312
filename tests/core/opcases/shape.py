from __future__ import annotations

import numpy as np

from . import OpCase, rnd

CASES = [
    OpCase("Reshape", lambda a: a.reshape(4, -1), [rnd(2, 6)], lambda a: a.reshape(4, -1)),
    OpCase("Expand", lambda a: a.expand(3, 2, 4), [rnd(2, 1)], lambda a: np.broadcast_to(a, (3, 2, 4))),
]
