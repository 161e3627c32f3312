"""Exporter benchmark beside torch.onnx.export: export time, graph size, ONNX Runtime latency, linear scaling.

Run: `python -m bench.export` (`make bench` runs it with the others). The architectures are the ones of
research/exporter.md's bench: MLP 784-512-256-10, a CNN (2 x [conv3x3 p1 -> BatchNorm -> ReLU -> MaxPool2],
1->16->32 channels, Linear 1568->10) on 1x28x28, and nn.TransformerEncoder (2 layers, d 128, 4 heads, ff 512,
batch_first, dropout 0) on sequences of 32; all in eval mode, built in PyTorch and loaded into interop by
state_dict name, so both exporters see the same weights. PyTorch exports with TorchScript (`dynamo=False`) and
with dynamo (`dynamo=True`, needs onnxscript) at its default opset 20; interop at its default opset 21. Static
exports take batch 1, dynamic ones batch 2 with a symbolic batch axis, as the research did.

Everything computes on one thread (PyTorch, numpy's BLAS, ONNX Runtime). Machine noise on the shared 2-core VM
is large and bursty, so exporters take turns round by round and an export time is the median of the quietest
round; ONNX Runtime latencies of the competing graphs are medians of fine-grained interleaved runs (every
session a few times per round, in rotating order), so load hits them alike. Ratios within one run are what to
read; the load average is printed first.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import interop

from .common import Row, print_table
from .core import mlp, transformer

OPSET_TORCH = 20  # torch.onnx's default (and TorchScript's maximum), as in the research
DYNAMO_STATIC_NODES = 78  # research/exporter.md 3.2: the static Transformer, for when onnxscript is missing
BATCHES = (1, 32)


# ---- one compute thread ----------------------------------------------------------------------------------------

def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(get, set) of the thread count of numpy's bundled OpenBLAS, or None when numpy uses another BLAS."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        lib = ctypes.CDLL(path)  # the copy numpy already loaded
        for suffix in ("64_", "", "_"):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes = [ctypes.c_int]
                return get, set_
    return None


@contextlib.contextmanager
def one_thread() -> Iterator[bool]:
    """PyTorch and numpy's BLAS on one thread, as ONNX Runtime is measured, restored after. On a loaded 2-core
    machine a 2-thread BLAS spin-waits for a descheduled helper thread: a capture's small matmuls then cost 10x,
    and export times swing between 9 and 150 ms from run to run. Yields whether numpy's BLAS was limited."""
    blas = _openblas()
    saved = torch.get_num_threads(), blas[0]() if blas else None
    torch.set_num_threads(1)
    if blas:
        blas[1](1)
    try:
        yield blas is not None
    finally:
        torch.set_num_threads(saved[0])
        if blas:
            blas[1](saved[1])


# ---- the models, in either library ---------------------------------------------------------------------------

def cnn_bn(lib: Any) -> Any:
    """The research's CNN: core's conv16-pool-conv32-pool-fc with padding and BatchNorm (folded on export)."""
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def chain(lib: Any, n: int) -> Any:
    """`n` elementwise ops in a row (add, multiply, tanh, in turn): a graph of n nodes, for linear scaling."""

    class Model(lib.nn.Module):
        def forward(self, x: Any) -> Any:
            for i in range(n):
                x = (x + 1.0) if i % 3 == 0 else (x * 0.5) if i % 3 == 1 else x.tanh()
            return x

    return Model()


MODELS: dict[str, tuple[Callable[[Any], Any], tuple[int, ...]]] = {
    "MLP": (mlp, (784,)), "CNN": (cnn_bn, (1, 28, 28)), "Transformer": (transformer, (32, 128))}


def build_pair(build: Callable[[Any], Any], seed: int = 0) -> tuple[torch.nn.Module, interop.nn.Module]:
    """The PyTorch model (every parameter and BatchNorm statistic perturbed, so no two layers are equal and BN
    folding has work to do) and the interop model with the same weights."""
    torch.manual_seed(seed)
    tm = build(torch)
    with torch.no_grad():
        for name, p in tm.state_dict().items():
            if p.dtype.is_floating_point:
                if name.endswith("running_var"):
                    p.uniform_(0.5, 1.5)
                else:
                    p.add_(0.02 * torch.randn_like(p))
    tm.eval()
    im = build(interop)
    im.load_state_dict({k: interop.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, im.eval()


# ---- exporting -----------------------------------------------------------------------------------------------

@dataclass
class Export:
    model: str
    exporter: str  # "interop", "torchscript", "dynamo"
    dynamic: bool
    path: str
    rounds: list[list[float]] = field(default_factory=list)  # warm export times, seconds, by round
    nodes: int = 0
    ops: dict[str, int] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        """The median of the quietest round: load from other jobs only ever adds time, and comes in bursts."""
        return min(statistics.median(r) for r in self.rounds) * 1e3

    @property
    def label(self) -> str:
        return f"{self.exporter} {'dynamic' if self.dynamic else 'static'}"


def _example(shape: tuple[int, ...], batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)


def _torch_export(model: torch.nn.Module, x: np.ndarray, path: str, dynamo: bool, dynamic: bool) -> None:
    kw: dict[str, Any] = {"input_names": ["x"], "output_names": ["y"], "opset_version": OPSET_TORCH,
                          "dynamo": dynamo}
    if dynamo:
        kw.update(external_data=False, verbose=False)
        if dynamic:
            kw["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    elif dynamic:
        kw["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x),), path, **kw)


def _interop_export(model: interop.nn.Module, x: np.ndarray, path: str, dynamic: bool) -> None:
    interop.export(model, (interop.tensor(x),), path, input_names=["x"], output_names=["y"],
                   dynamic={"x": {0: "batch"}} if dynamic else None, verify=False)


def _exporter(exporter: str, tm: torch.nn.Module, im: interop.nn.Module, x: np.ndarray, path: str,
              dynamic: bool) -> Callable[[], None]:
    if exporter == "interop":
        return lambda: _interop_export(im, x, path, dynamic)
    return lambda: _torch_export(tm, x, path, exporter == "dynamo", dynamic)


def export_all(name: str, tm: torch.nn.Module, im: interop.nn.Module, shape: tuple[int, ...], tmp: str,
               exporters: list[str], plan: dict[str, tuple[int, int]]) -> list[Export]:
    """Every exporter x {static, dynamic}: one untimed warm-up export each, then `plan[exporter]` = (rounds,
    exports per round) timed, the exporters taking turns round by round so load on the machine hits all."""
    out = []
    for dynamic in (False, True):
        x = _example(shape, 2 if dynamic else 1)
        runs = []
        for exporter in exporters:
            ex = Export(name, exporter, dynamic, os.path.join(tmp, f"{name}-{exporter}-{int(dynamic)}.onnx"))
            run = _exporter(exporter, tm, im, x, ex.path, dynamic)
            run()
            runs.append((ex, run))
        for r in range(max(rounds for rounds, _ in plan.values())):
            for ex, run in runs:
                rounds, per = plan[ex.exporter]
                if r >= rounds:
                    continue
                times = []
                for _ in range(per):
                    t = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - t)
                ex.rounds.append(times)
        for ex, _ in runs:
            proto = onnx.load(ex.path)
            ex.nodes = len(proto.graph.node)
            for n in proto.graph.node:
                ex.ops[n.op_type] = ex.ops.get(n.op_type, 0) + 1
            out.append(ex)
    return out


# ---- ONNX Runtime --------------------------------------------------------------------------------------------

def session(path: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def latency_ms(sessions: dict[str, ort.InferenceSession], x: np.ndarray, *, budget_s: float = 3.0,
               min_rounds: int = 200, max_rounds: int = 3000) -> dict[str, float]:
    """Median run time of each session on `x`. The sessions take turns run by run (the order rotates every
    round), so a burst of load from other jobs hits all of them alike; as many rounds as fit `budget_s`."""
    names = list(sessions)
    feeds = {"x": x}
    t = time.perf_counter()
    for _ in range(5):
        for s in sessions.values():
            s.run(None, feeds)
    rounds = int(min(max_rounds, max(min_rounds, budget_s / ((time.perf_counter() - t) / 5))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            s = sessions[n]
            t = time.perf_counter()
            s.run(None, feeds)
            times[n].append(time.perf_counter() - t)
    return {n: statistics.median(v) * 1e3 for n, v in times.items()}


def max_diff(sess: ort.InferenceSession, tm: torch.nn.Module, x: np.ndarray) -> float:
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    return float(np.abs(sess.run(None, {"x": x})[0] - want).max())


# ---- linear scaling ------------------------------------------------------------------------------------------

def chain_export_s(lib: Any, n: int, tmp: str, repeats: int = 3) -> tuple[float, int]:
    """Median seconds to export an `n`-op chain (dynamic batch) to a file, and the node count."""
    model = chain(lib, n)
    path = os.path.join(tmp, f"chain-{lib.__name__}-{n}.onnx")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        if lib is interop:
            interop.export(model, (interop.randn(4, 16),), path, dynamic={"x": {0: "batch"}}, verify=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.randn(4, 16),), path, input_names=["x"], dynamo=False,
                                  opset_version=OPSET_TORCH, dynamic_axes={"x": {0: "batch"}})
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(onnx.load(path).graph.node)


# ---- the run -------------------------------------------------------------------------------------------------

def _has_dynamo() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # dynamo's registry warns about torchvision ops on every export
    try:
        with one_thread() as limited:
            if not limited:
                print("(numpy's BLAS is not OpenBLAS: it runs with its own thread count)")
            return _run()
    finally:
        onnx_log.setLevel(level)


def _model_rows(name: str, exports: list[Export], lat: dict[int, dict[str, float]], diffs: dict[str, float],
                torch_exporters: list[str]) -> list[Row]:
    by = {(e.exporter, e.dynamic): e for e in exports}
    rows = []
    limit = 100.0 if name == "Transformer" else 20.0
    for dynamic in (False, True):  # export time, against the faster PyTorch exporter
        ours = by["interop", dynamic]
        theirs = min((by[k, dynamic] for k in torch_exporters), key=lambda e: e.ms)
        rows.append(Row(f"{name} export, {'dynamic' if dynamic else 'static'} (vs {theirs.exporter})", ours.ms,
                        theirs.ms, "ms", f"<= {limit:.0f} ms", ours.ms <= limit))
    if name == "Transformer":
        static, dynamic_ = by["interop", False], by["interop", True]
        ref = by["dynamo", False].nodes if ("dynamo", False) in by else DYNAMO_STATIC_NODES
        what = "dynamo static" if ("dynamo", False) in by else "dynamo static, as the research measured"
        rows.append(Row(f"Transformer nodes, static (vs {what})", static.nodes, ref, "nodes", "<= dynamo's",
                        static.nodes <= ref))
        ts = by["torchscript", True].nodes / by["torchscript", False].nodes
        rows.append(Row(f"Transformer nodes, dynamic / static (TorchScript: {ts:.2f}x)", dynamic_.nodes,
                        static.nodes, "nodes", "<= 1.1x", dynamic_.nodes <= 1.1 * static.nodes))
    for b, ms in lat.items():  # ORT latency of the dynamic graphs, against the faster PyTorch graph
        best = min(torch_exporters, key=lambda k: ms[k])
        rows.append(Row(f"{name} ORT 1 thread, batch {b} (vs {best})", ms["interop"] * 1e3, ms[best] * 1e3, "us",
                        "<= 1.05x", ms["interop"] <= 1.05 * ms[best]))
    rows.append(Row(f"{name} max abs diff x1e6, ORT vs torch eager, batch {' and '.join(map(str, lat))}",
                    diffs["interop"] * 1e6, max(diffs[k] for k in torch_exporters) * 1e6, "", "<= 100",
                    diffs["interop"] <= 1e-4))
    return rows


def _detail(e: Export, lat: dict[int, dict[str, float]], diffs: dict[str, float]) -> str:
    ms = " / ".join(f"{v[e.exporter]:.3f}" for v in lat.values()) if e.dynamic else ""
    diff = f"{diffs[e.exporter]:.1e}" if e.dynamic else ""
    ops = ", ".join(f"{k}:{v}" for k, v in sorted(e.ops.items(), key=lambda kv: -kv[1]))
    return f"| {e.model} | {e.label} | {e.ms:,.1f} | {e.nodes} | {ms} | {diff} | {ops} |"


def _run() -> int:
    dynamo = _has_dynamo()
    exporters = ["interop", "torchscript"] + (["dynamo"] if dynamo else [])
    plan = {"interop": (5, 5), "torchscript": (5, 3), "dynamo": (2, 1)}  # (rounds, exports per round)
    rows: list[Row] = []
    details: list[str] = []
    print(f"\n(load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, shape) in MODELS.items():
            tm, im = build_pair(build)
            exports = export_all(name, tm, im, shape, tmp, exporters, plan)
            sessions = {e.exporter: session(e.path) for e in exports if e.dynamic}
            lat = {b: latency_ms(sessions, _example(shape, b)) for b in BATCHES}
            diffs = {k: max(max_diff(s, tm, _example(shape, b)) for b in BATCHES) for k, s in sessions.items()}
            details += [_detail(e, lat, diffs) for e in exports]
            rows += _model_rows(name, exports, lat, diffs, exporters[1:])
        small, _ = chain_export_s(interop, 1000, tmp)
        small_ts, _ = chain_export_s(torch, 1000, tmp, repeats=1)  # TorchScript grows faster than linearly:
        big, big_nodes = chain_export_s(interop, 10_000, tmp)  # 1.5 s at 1,000 ops, 23 s at 10,000 here
    rows.append(Row("1,000-op chain export (vs TorchScript; context)", small * 1e3, small_ts * 1e3, "ms", "", True))
    rows.append(Row(f"10,000-op chain export ({big_nodes:,} nodes, {big / small:.1f}x the 1,000-op time)",
                    big * 1e3, None, "ms", "<= 2,000 ms", big <= 2.0 and big_nodes >= 10_000))
    print("\n## Exports (PyTorch at opset 20, interop at opset 21; ORT latency of the dynamic graphs, CPU, 1 thread)")
    print("| model | export | export ms | nodes | ORT ms b1 / b32 | max abs diff | ops |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(details))
    if not dynamo:
        print("\n(onnxscript is not installed: torch.onnx.export(dynamo=True) was not measured; "
              "pip install '.[bench]')")
    print_table("Exporter (interop vs the faster of torch.onnx's exporters; export: median of the quietest round, "
                "ORT: median of runs taken in turns)", rows, "PyTorch")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
