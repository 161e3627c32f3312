from __future__ import annotations

from interop.autograd import Function

from . import OpCase, rnd


class Cube(Function):
    """A user-defined op with its own backward and ONNX lowering."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x * ctx.scale, None

    @staticmethod
    def symbolic(g, x):
        cube = g.op("Mul", g.op("Mul", x, x), x)
        return g.op("Mul", cube, g.const(2.0, g.dtype(x)))


CASES = [
    OpCase("FunctionOp", lambda x: Cube.apply(x, 2.0), [rnd(2, 3)], lambda x: x**3 * 2,
           torch_fn=lambda x: x**3 * 2, name="custom_function_cube"),
]
