"""The cases that would abort an interpreter if the bridge got them wrong, each in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(code: str) -> str:
    """Run `code` in a fresh interpreter; a crash (SIGABRT, SIGSEGV) fails the test with its output."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_negative_strides_never_reach_torch():
    """numpy's [::-1] handed to torch.from_dlpack aborts the process (pytorch#188023); ours is copied first."""
    out = run("""
        import numpy as np, torch, interop
        t = interop.Tensor(np.arange(12.0).reshape(3, 4)[::-1, ::-2])
        x = torch.from_dlpack(t)
        print(x.tolist() == t.tolist(), x.stride())
    """)
    assert out.split()[0] == "True"


def test_corrupt_capsules_raise_instead_of_crashing():
    out = run("""
        import numpy as np, interop
        from tests.dlpack.mock import Producer
        p = Producer()
        a = np.ones((2, 3), np.float32)
        for fields in (dict(ndim=-1), dict(shape=None), dict(ndim=1000), dict(data=None), dict(device_type=99),
                       dict(lanes=0), dict(bits=0)):
            for versioned in (True, False):
                try:
                    interop.from_dlpack(p.capsule(a, versioned=versioned, **fields))
                except BufferError:
                    print("refused")
        print(p.deleted.count(1), p.stray)
    """)
    lines = out.split("\n")
    assert lines.count("refused") == 14 and lines[-2] == "14 0"


def test_double_consumption_by_two_libraries():
    out = run("""
        import numpy as np, torch, interop
        cap = interop.to_dlpack(interop.arange(4.0))
        x = torch.utils.dlpack.from_dlpack(cap)
        for consume in (torch.utils.dlpack.from_dlpack, interop.from_dlpack):
            try:
                consume(cap)
            except (RuntimeError, ValueError) as e:
                print("refused")
        print(x.tolist())
    """)
    assert out.split("\n")[:2] == ["refused", "refused"]


def test_interpreter_exit_with_live_exports_and_imports():
    """Capsules never consumed, tensors shared both ways, a JAX import: all alive at exit, in globals."""
    run("""
        import numpy as np, torch, jax.numpy as jnp, interop
        keep = []
        t = interop.arange(8.0)
        keep += [t.__dlpack__(max_version=(1, 3)), t.__dlpack__(), torch.from_dlpack(t), np.from_dlpack(t)]
        keep += [interop.from_dlpack(torch.ones(3)), interop.from_dlpack(jnp.ones(3)), jnp.from_dlpack(t)]
        keep.append(keep)  # a cycle, left to the final collection
    """)


def test_jax_frees_our_exports_without_aborting():
    """jax aborts when freeing an import whose deleter is NULL; ours never are."""
    out = run("""
        import gc, numpy as np, jax, jax.numpy as jnp, interop
        raw = np.empty(64 + 32, np.uint8)
        start = -raw.ctypes.data % 64
        t = interop.Tensor(raw[start:start + 32].view(np.float32))
        t.data[...] = 1
        j = jnp.from_dlpack(t)
        print(j.unsafe_buffer_pointer() == t.data_ptr(), float(j.sum()))
        del j, t
        gc.collect()
    """)
    assert out.split() == ["True", "8.0"]
