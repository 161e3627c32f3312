from __future__ import annotations

import numpy as np

from . import OpCase, rnd

CASES = [
    OpCase("Sum", lambda a: a.sum(), [rnd(3, 4)], np.sum, name="sum_all"),
    OpCase("Sum", lambda a: a.sum(1, keepdim=True), [rnd(3, 4)], lambda a: a.sum(1, keepdims=True),
           name="sum_keepdim"),
]
