"""Eager vs ONNX Runtime, at the example shapes and at other sizes of every dynamic axis.

On a mismatch the graph is lowered again with every recorded value exposed as an output, the model is
re-recorded at the failing sizes, and the first op whose ONNX values differ from its eager values is named
with its file:line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..autograd import no_grad
from ..tensor import Tensor
from .builder import lower
from .capture import Capture, ExportError, Symbol, _flat_tensors, eval_mode, params_of, run_captured, where
from .serialize import to_model

__all__ = ["verify", "OutputCheck", "VerificationReport", "VerificationError", "check_export"]

# (rtol, atol) by output dtype; atol is scaled by the output's largest magnitude (at least 1)
_TOL = {"float16": (1e-2, 1e-2), "bfloat16": (2e-2, 2e-2), "float32": (1e-3, 1e-5), "float64": (1e-6, 1e-7)}


@dataclass
class OutputCheck:
    sizes: dict[str, int]
    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    ok: bool
    error: str = ""


@dataclass
class VerificationReport:
    checks: list[OutputCheck] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # size configurations the eager model itself rejected
    divergence: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __str__(self) -> str:
        lines = [f"eager vs ONNX Runtime (CPUExecutionProvider): {'OK' if self.ok else 'MISMATCH'}"]
        for c in self.checks:
            sizes = ", ".join(f"{k}={v}" for k, v in c.sizes.items()) or "example"
            status = "ok" if c.ok else f"MISMATCH{': ' + c.error if c.error else ''}"
            lines.append(f"  [{sizes}] {c.name} {c.shape}: max abs {c.max_abs:.3g}, max rel {c.max_rel:.3g}  {status}")
        lines += [f"  skipped: {s}" for s in self.skipped]
        if self.divergence:
            lines.append(self.divergence)
        return "\n".join(lines)


class VerificationError(ExportError):
    def __init__(self, report: VerificationReport, note: str = ""):
        super().__init__(f"the exported model does not match the eager model{note}\n{report}")
        self.report = report


# ---- running both sides ------------------------------------------------------------------------------------

def _session(model: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # failures are reported in the VerificationReport, not logged
    src = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    try:
        return ort.InferenceSession(os.fspath(src) if not isinstance(src, bytes) else src, opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportError(f"ONNX Runtime cannot load the exported model: {e}") from None


def _host(t: Tensor) -> np.ndarray:
    d = t.data
    return d if type(d) is np.ndarray else d.get()


def _flat(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, Mapping):
        out = list(out.values())
    return [t for o in out for t in _flat(o)] if isinstance(out, (list, tuple)) else []


def compare(actual: np.ndarray, expected: np.ndarray, rtol: float | None = None,
            atol: float | None = None) -> tuple[float, float, bool, str]:
    """(max abs diff, max rel diff, ok, what is wrong)."""
    if actual.shape != expected.shape:
        return float("inf"), float("inf"), False, f"shape {actual.shape} != eager {expected.shape}"
    if actual.dtype != expected.dtype:
        return float("inf"), float("inf"), False, f"dtype {actual.dtype} != eager {expected.dtype}"
    if expected.size == 0:
        return 0.0, 0.0, True, ""
    if expected.dtype.kind not in "fc":
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        bad = int((actual != expected).sum())
        return float(diff.max()), float(diff.max()), bad == 0, f"{bad} elements differ" if bad else ""
    r, a = _TOL.get(expected.dtype.name, (1e-3, 1e-5))
    rtol = r if rtol is None else rtol
    atol = a if atol is None else atol
    x, y = actual.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(y)
    same_special = (np.isnan(x) & np.isnan(y)) | (x == y)
    diff = np.where(same_special, 0.0, np.abs(x - y))
    scale = max(1.0, float(np.abs(y[finite]).max())) if finite.any() else 1.0
    rel = diff / np.maximum(np.abs(y), np.finfo(np.float64).tiny)
    bad = diff > atol * scale + rtol * np.abs(np.where(finite, y, 0))
    max_abs = float(np.nan_to_num(diff, nan=np.inf).max())
    return max_abs, float(np.nan_to_num(rel, nan=np.inf).max()), not bad.any(), \
        f"{int(bad.sum())} of {bad.size} elements differ" if bad.any() else ""


def _symbols(proto: onnx.ModelProto, tensors: list[Tensor]) -> tuple[list[dict[int, Symbol]], list[Symbol]]:
    """The dynamic axes of the model's inputs (their dim_params) with their example sizes."""
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(graph_inputs) != len(tensors):
        raise ValueError(f"the ONNX model has {len(graph_inputs)} inputs but args hold {len(tensors)} tensors")
    symbols: dict[str, Symbol] = {}
    dims: list[dict[int, Symbol]] = []
    for vi, t in zip(graph_inputs, tensors):
        d = {}
        for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
            if dim.dim_param and axis < t.data.ndim:
                s = symbols.setdefault(dim.dim_param, Symbol(dim.dim_param, int(t.data.shape[axis]), 0))
                d[axis] = s
        dims.append(d)
    return dims, list(symbols.values())


def _configs(symbols: list[Symbol], shapes: Iterable[Mapping[str, int]] | None) -> list[dict[str, int]]:
    example = {s.name: s.example for s in symbols}
    if shapes is None:
        wanted = [example, {k: 1 for k in example}, {k: 2 * v for k, v in example.items()}]
    else:
        wanted = [{**example, **dict(c)} for c in shapes]
    out: list[dict[str, int]] = []
    for c in wanted:
        if c not in out:
            out.append(c)
    return out


def verify(model: Callable[..., Any], args: Any, onnx_model: Any, *,
           shapes: Iterable[Mapping[str, int]] | None = None, rtol: float | None = None,
           atol: float | None = None, locate: bool = True) -> VerificationReport:
    """Compare `model(*args)` (eager, eval mode) with ONNX Runtime running `onnx_model` (a ModelProto or a path).

    shapes: size assignments of the dynamic axes (their dim_param names) to check, e.g. `[{"batch": 1},
    {"batch": 64}]`; by default the example sizes, all 1, and all twice the example. Returns a report with max
    abs/rel error per output and size; on a mismatch (with `locate`) it also names the first diverging op.
    """
    from .exporter import _as_args

    args = _as_args(args)
    proto = onnx.load(os.fspath(onnx_model), load_external_data=False) \
        if isinstance(onnx_model, (str, os.PathLike)) else onnx_model
    report, failing = _run(model, args, proto, _session(onnx_model), shapes, rtol, atol)
    if failing is not None and locate:
        from .exporter import build

        dims, _ = _symbols(proto, _flat_tensors(args))
        names = [i.name for i in proto.graph.input if i.name not in {x.name for x in proto.graph.initializer}]
        dynamic = {n: {a: s.name for a, s in d.items()} for n, d in zip(names, dims) if d}
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        ex = build(model, args, input_names=names, dynamic=dynamic or None, opset=opset, optimize=False,
                   metadata=False)
        report.divergence = _first_divergence(model, failing, ex, rtol, atol)
    return report


def _run(model: Callable[..., Any], args: tuple, proto: onnx.ModelProto, sess: Any,
         shapes: Iterable[Mapping[str, int]] | None, rtol: float | None,
         atol: float | None) -> tuple[VerificationReport, tuple | None]:
    from .exporter import _resize_args

    tensors = _flat_tensors(args)
    dims, symbols = _symbols(proto, tensors)
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    report = VerificationReport()
    failing = None
    for sizes in _configs(symbols, shapes):
        shown = {k: v for k, v in sizes.items()}
        run_args = _resize_args(args, dims, sizes) if symbols else args
        feeds = {n: _host(t).copy() for n, t in zip(in_names, _flat_tensors(run_args))}  # before in-place ops
        try:
            with eval_mode(model), no_grad():
                expected = [_host(t) for t in _flat(model(*run_args))]
        except Exception as e:
            report.skipped.append(f"[{shown}] the eager model fails at these sizes: {type(e).__name__}: {e}")
            continue
        try:
            actual = sess.run(out_names, feeds)
        except Exception as e:
            report.checks.append(OutputCheck(shown, "<run>", (), float("inf"), float("inf"), False,
                                             f"ONNX Runtime failed: {_ort_error(e)}"))
            failing = failing or (run_args, shown)
            continue
        if len(actual) != len(expected):
            report.checks.append(OutputCheck(shown, "<outputs>", (), float("inf"), float("inf"), False,
                                             f"the ONNX model has {len(actual)} outputs, eager {len(expected)}"))
            failing = failing or (run_args, shown)
            continue
        for name, a, e in zip(out_names, actual, expected):
            max_abs, max_rel, ok, why = compare(np.asarray(a), e, rtol, atol)
            report.checks.append(OutputCheck(shown, name, tuple(e.shape), max_abs, max_rel, ok, why))
            if not ok and failing is None:
                failing = (run_args, shown)
    return report, failing


def _first_divergence(model: Callable[..., Any], failing: tuple, ex: Any, rtol: float | None,
                      atol: float | None) -> str:
    """Expose every recorded value of an unoptimized lowering, re-record the model at the failing sizes, and
    return where the two first disagree."""
    run_args, sizes = failing
    cap = ex.capture
    graph, g = lower(cap, ex.out_refs, ex.output_names, ex.out_dims, ex.graph.opset, metadata=False,
                     expose=True)
    proto = to_model(graph, metadata=False)
    exposed = {o.name for o in proto.graph.output} - set(ex.output_names)
    for vi in proto.graph.output:
        if vi.name in exposed:
            vi.ClearField("type")  # the runtime's own inference: a wrong lowering must not stop the session
    if _external(proto):
        return "(cannot locate the diverging op of a model with external data)"
    sess = _session(proto)
    feeds = {n: _host(t).copy() for n, t in zip([i.name for i in sess.get_inputs()], _flat_tensors(run_args))}
    rec = Capture(params_of(model))
    for leaf, t in zip(cap.inputs, _flat_tensors(run_args)):
        rec.add_input(t, leaf.name, {})
    try:
        with eval_mode(model):
            run_captured(rec, model, run_args)
    except Exception as e:
        return f"(cannot re-record the model at {_at(sizes)}: {e})"
    if len(rec.nodes) != len(cap.nodes):
        return f"(the model records a different graph at {_at(sizes)})"
    names = [o.name for o in sess.get_outputs()]
    try:
        values = dict(zip(names, sess.run(names, feeds)))
    except Exception as e:
        m = re.search(r"node\. Name:'([^']*)'", str(e))
        k = g.owner.get(m.group(1)) if m else None
        if k is None:
            return f"(ONNX Runtime fails on the unoptimized graph at {_at(sizes)}: {_ort_error(e)})"
        return (f"ONNX Runtime fails at {_at(sizes)} in {_describe(cap, k)} (ONNX node {m.group(1)!r}): "
                f"{_ort_error(e)}")
    for k in sorted(g.env):
        for oi, v in enumerate(g.env[k]):
            if v not in values or rec.versions[k][oi] != rec.outs[k][oi]._vc[0]:
                continue
            max_abs, _, ok, why = compare(np.asarray(values[v]), _host(rec.outs[k][oi]), rtol, atol)
            if not ok:
                return (f"first diverging op at {_at(sizes)}: {_describe(cap, k)} (ONNX value {v!r}): "
                        f"{why or f'max abs diff {max_abs:.3g}'}")
    return (f"no recorded op diverges at {_at(sizes)} in the unoptimized graph: the optimization passes changed the "
            "result (export with optimize=False to confirm)")


def _at(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) if sizes else "the example sizes"


def _ort_error(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:400] + "..."


def _describe(cap: Capture, k: int) -> str:
    scope = f" in {cap.scopes[k]}" if cap.scopes[k] else ""
    return f"{type(cap.nodes[k].op).__name__}{scope} at {where(cap.locs[k])}"


def _external(proto: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def check_export(model: Callable[..., Any], args: tuple, proto: onnx.ModelProto, ex: Any, f: Any) -> None:
    """`verify=True` of `export`: the full checker, then eager vs ONNX Runtime; raises on any failure."""
    path = os.fspath(f) if isinstance(f, (str, os.PathLike)) else None
    try:
        onnx.checker.check_model(path if path is not None and _external(proto) else proto, full_check=True)
    except Exception as e:
        raise ExportError(f"onnx.checker rejects the exported model: {e}") from None
    src = path if path is not None and _external(proto) else proto
    report, failing = _run(model, args, proto, _session(src), None, None, None)
    if failing is not None:
        report.divergence = _first_divergence(model, failing, ex, None, None)
        raise VerificationError(report, f" (written to {path})" if path else "")
