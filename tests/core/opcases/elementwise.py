from __future__ import annotations

import numpy as np

from interop import device
from interop.ops.elementwise import to_device_op

from . import OpCase, pos, rnd

CASES = [
    OpCase("Add", lambda a, b: a + b, [rnd(3, 4), rnd(4)], np.add, name="add_broadcast"),
    OpCase("Sub", lambda a, b: a - b, [rnd(3, 1), rnd(1, 4)], np.subtract, name="sub_broadcast"),
    OpCase("Mul", lambda a, b: a * b, [rnd(2, 3), rnd(2, 3, seed=1)], np.multiply),
    OpCase("Div", lambda a, b: a / b, [rnd(2, 3), pos(3)], np.divide),
    OpCase("Neg", lambda a: -a, [rnd(5)], np.negative),
    OpCase("Exp", lambda a: a.exp(), [rnd(2, 3)], np.exp),
    OpCase("Log", lambda a: a.log(), [pos(2, 3)], np.log),
    OpCase("Tanh", lambda a: a.tanh(), [rnd(2, 3)], np.tanh),
    OpCase("Cast", lambda a: a.double() * 2, [rnd(4)], lambda a: a * 2, name="cast_to_float64"),
    OpCase("Clone", lambda a: a.clone(), [rnd(3)], np.copy),
    OpCase("ToDevice", lambda a: to_device_op(a, device("cpu")), [rnd(3)], np.copy, torch_fn=lambda a: a.to("cpu"),
           name="to_device_cpu"),
]
