"""DLPack benchmarks: per-call cost of the exchange, beside numpy's and torch's own, at 1 element and at 64 MB.

Run: `python -m bench.dlpack` (add `--gpu` for the CUDA figures on a GPU machine). Calls are timed in batches (a
single call is too short for the clock), batches of all statements alternate round by round so machine noise hits
them alike, and the median batch is reported per call.
"""

from __future__ import annotations

import statistics
import sys
import timeit

import numpy as np
import torch

import interop

from .common import Row, print_table

SIZES = {"1 element": 1, "64 MB": 16 << 20}  # float32


def _measure(stmts: dict[str, str], env: dict, *, calls: int = 300, rounds: int = 201) -> dict[str, float]:
    """Median per-call microseconds of each statement, rounds interleaved."""
    timers = {k: timeit.Timer(s, globals=env) for k, s in stmts.items()}
    for t in timers.values():
        t.timeit(calls)  # warm up
    runs: dict[str, list[float]] = {k: [] for k in stmts}
    for _ in range(rounds):
        for k, t in timers.items():
            runs[k].append(t.timeit(calls) / calls * 1e6)
    return {k: statistics.median(v) for k, v in runs.items()}


def _cpu_rows() -> list[Row]:
    env: dict = {"np": np, "torch": torch, "interop": interop}
    stmts = {}
    for label, n in SIZES.items():
        a = np.ones(n, np.float32)
        env[f"a{n}"], env[f"t{n}"], env[f"x{n}"] = a, interop.Tensor(np.ones(n, np.float32)), torch.ones(n)
        stmts.update({
            ("np<-interop", label): f"np.from_dlpack(t{n})", ("np<-np", label): f"np.from_dlpack(a{n})",
            ("interop<-np", label): f"interop.from_dlpack(a{n})",
            ("torch<-interop", label): f"torch.from_dlpack(t{n})", ("torch<-np", label): f"torch.from_dlpack(a{n})",
            ("interop<-torch", label): f"interop.from_dlpack(x{n})", ("np<-torch", label): f"np.from_dlpack(x{n})",
        })
    m = _measure(stmts, env)
    rows = []
    small = "1 element"
    for ours, theirs, name, kind, bar in (
        ("np<-interop", "np<-np", "np.from_dlpack(interop tensor) vs np.from_dlpack(ndarray)", "+", 1.0),
        ("interop<-np", "np<-np", "interop.from_dlpack(ndarray) vs np.from_dlpack(ndarray)", "+", 1.0),
        ("torch<-interop", "torch<-np", "torch.from_dlpack(interop tensor) vs torch.from_dlpack(ndarray)", "x", 1.1),
        ("interop<-torch", "np<-torch", "interop.from_dlpack(torch tensor) vs np.from_dlpack(torch tensor)", "x",
         1.25),
    ):
        o, t = m[ours, small], m[theirs, small]
        ok = o <= t + bar if kind == "+" else o <= t * bar
        rows.append(Row(name, o, t, "us", f"<= theirs {'+' if kind == '+' else 'x'} {bar}", ok))
    for ours in ("np<-interop", "interop<-np", "torch<-interop", "interop<-torch"):
        lo, hi = m[ours, "1 element"], m[ours, "64 MB"]
        rows.append(Row(f"{ours.replace('<-', ' <- ')}: 64 MB vs 1 element", hi, lo, "us", "within 10%",
                        abs(hi / lo - 1) <= 0.10))
    return rows


def _gpu_rows() -> list[Row]:
    import cupy

    env: dict = {"cupy": cupy, "torch": torch, "interop": interop}
    stmts = {}
    for label, n in SIZES.items():
        env[f"c{n}"] = cupy.ones(n, cupy.float32)
        env[f"t{n}"] = interop.Tensor(cupy.ones(n, cupy.float32))
        env[f"x{n}"] = torch.ones(n, device="cuda")
        stmts.update({
            ("torch<-interop", label): f"torch.from_dlpack(t{n})", ("torch<-cupy", label): f"torch.from_dlpack(c{n})",
            ("interop<-torch", label): f"interop.from_dlpack(x{n})", ("cupy<-torch", label): f"cupy.from_dlpack(x{n})",
            ("cupy<-interop", label): f"cupy.from_dlpack(t{n})", ("cupy<-cupy", label): f"cupy.from_dlpack(c{n})",
            ("interop<-cupy", label): f"interop.from_dlpack(c{n})",
        })
    m = _measure(stmts, env, calls=100, rounds=61)
    rows = []
    for ours, theirs in (("torch<-interop", "torch<-cupy"), ("interop<-torch", "cupy<-torch"),
                         ("cupy<-interop", "cupy<-cupy"), ("interop<-cupy", "cupy<-cupy")):
        o, t = m[ours, "1 element"], m[theirs, "1 element"]
        rows.append(Row(f"CUDA {ours.replace('<-', ' <- ')} vs {theirs.replace('<-', ' <- ')}", o, t, "us",
                        "(figure only)", True))
        lo, hi = m[ours, "1 element"], m[ours, "64 MB"]
        rows.append(Row(f"CUDA {ours.replace('<-', ' <- ')}: 64 MB vs 1 element", hi, lo, "us", "within 10%",
                        abs(hi / lo - 1) <= 0.10))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows = _cpu_rows()
    print_table(f"DLPack on the CPU (median per call; numpy {np.__version__} / torch {torch.__version__} baselines "
                "in the same run)", rows, "baseline")
    if "--gpu" in argv:
        gpu = _gpu_rows()
        print_table("DLPack on CUDA (median per call; torch and cupy baselines in the same run)", gpu, "baseline")
        rows += gpu
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
