"""SymInt: an int that carries its graph expression (core; no onnx)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from interop.symbolic import SymInt, is_symbolic, sym_dim


def test_symint_is_its_example_int():
    b = sym_dim(4, "x", 0, "batch")
    assert b == 4 and isinstance(b, int) and is_symbolic(b)
    assert repr(b) == "4" and f"{b}" == "4" and hash(b) == hash(4)
    assert np.zeros((b, 2)).shape == (4, 2)
    assert list(range(b)) == [0, 1, 2, 3]
    assert not is_symbolic(int(b))


def test_arithmetic_stays_symbolic_and_readable():
    b, s = sym_dim(2, "x", 0, "batch"), sym_dim(8, "x", 1, "seq")
    for expr, value, name in [(b * s, 16, "batch*seq"), (s // 2, 4, "seq//2"), (s + 1, 9, "seq+1"),
                              (s - 1, 7, "seq-1"), (3 * b, 6, "3*batch"), (s % 3, 2, "seq%3"),
                              (-b, -2, "-batch"), ((s + 1) * 2, 18, "(seq+1)*2"), (16 // b, 8, "16//batch")]:
        assert is_symbolic(expr) and expr == value and expr.name == name, (expr.name, name)
    assert math.prod((b, s, 4)) == 64 and is_symbolic(math.prod((b, s, 4)))


def test_identities_fold_away():
    b = sym_dim(2, "x", 0, "batch")
    assert b + 0 is b and b * 1 is b and b // 1 is b and 1 * b is b and 0 + b is b
    assert b * 0 == 0 and not is_symbolic(b * 0)


def test_non_integer_arithmetic_gives_plain_numbers():
    s = sym_dim(9, "x", 1, "seq")
    assert s / 3 == 3.0 and type(s / 3) is float
    assert s * 0.5 == 4.5 and type(s * 0.5) is float
    assert math.sqrt(s) == 3.0
    assert s**2 == 81 and not is_symbolic(s**2)


def test_symbolic_module_does_not_import_onnx():
    code = ("import sys, interop.symbolic; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_interop_stays_free_of_onnx_and_export_is_callable():
    code = ("import sys, interop; assert 'onnx' not in sys.modules and 'interop.export' not in sys.modules\n"
            "import interop.export as e; assert callable(interop.export) and e is interop.export\n"
            "assert callable(interop.export.verify) and interop.export.SymInt is interop.symbolic.SymInt")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_symint_pickles_as_its_value():
    import pickle

    b = SymInt(3, ("dim", object(), 0), "batch")
    assert pickle.loads(pickle.dumps(b)) == 3
