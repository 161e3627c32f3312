"""`interop.export(model, args, f)`: capture, lower, optimize, serialize, verify."""

from __future__ import annotations

import contextlib
import gc
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ..backend import xp_of
from ..tensor import Tensor
from . import passes
from .builder import Graph, _dims, lower
from .capture import Capture, ExportError, Symbol, eval_mode, trace
from .serialize import DEFAULT_OPSET, check_opset, save

__all__ = ["export", "Exported", "build"]


@dataclass
class Exported:
    """A lowered graph with the capture it came from (verification reads the recorded eager values)."""

    graph: Graph
    capture: Capture
    input_names: list[str]
    output_names: list[str]
    outputs: list[Tensor]
    out_refs: list[Any]
    out_dims: list[tuple]


def export(model: Callable[..., Any], args: Any, f: Any = None, *, input_names: list[str] | None = None,
           output_names: list[str] | None = None, dynamic: Mapping[str, Any] | None = None,
           opset: int = DEFAULT_OPSET, external_data: bool | None = None, optimize: bool = True,
           verify: bool = True, metadata: bool = True) -> onnx.ModelProto:
    """Export `model(*args)` to ONNX and return the ModelProto (also written to `f`, a path or binary file, when given).

    model: an `interop.nn.Module` (exported in eval mode; parameters and buffers become initializers named by their
        module path) or a plain function of tensors.
    args: the example inputs: a Tensor or a tuple of them (nested lists/tuples of tensors are flattened; other
        Python values are passed through and baked in).
    dynamic: symbolic axes by input (or output) name, e.g. `{"x": {0: "batch", 1: "seq"}}` or `{"x": [0]}`.
    opset: 18..26 (default 21); the IR version follows from it.
    external_data: write weights to `<f>.data`; None decides by size (above 1.5 GB).
    optimize: constant folding, CSE, dead-node elimination, BatchNorm folding.
    verify: run onnx.checker (full) and compare with ONNX Runtime at the example shapes and at other sizes of every
        dynamic axis; a mismatch raises (after `f` was written, so the file can be inspected).
    metadata: give every node the user's file:line and module path (`metadata_props`).
    """
    with _collector_paused():
        ex = build(model, args, input_names=input_names, output_names=output_names, dynamic=dynamic, opset=opset,
                   optimize=optimize, metadata=metadata)
        proto = save(ex.graph, f, external_data=external_data, metadata=metadata)
        if verify:
            from .verify import check_export

            check_export(model, _as_args(args), proto, ex, f)
        del ex  # freed by refcounting while the collector still sleeps
    return proto


def build(model: Callable[..., Any], args: Any, *, input_names: list[str] | None = None,
          output_names: list[str] | None = None, dynamic: Mapping[str, Any] | None = None,
          opset: int = DEFAULT_OPSET, optimize: bool = True, metadata: bool = True) -> Exported:
    """Capture and lower (and optimize) without serializing."""
    opset = check_opset(opset)
    args = _as_args(args)
    tensors, default_names = _flatten_inputs(model, args)
    names = _input_names(input_names, default_names)
    in_dims, symbols, out_spec = _dynamic_spec(dynamic, names, tensors)
    probe_args = _resize_args(args, in_dims, {s.name: s.probe for s in symbols}) if symbols else None
    inputs = list(zip(names, in_dims))
    with eval_mode(model):
        cap, out = trace(model, args, inputs, symbols, probe_args)
    outs, default_out = _flatten_outputs(out)
    out_names = _output_names(output_names, default_out, names)
    unknown = set(out_spec) - set(out_names)
    if unknown:
        raise ValueError(f"dynamic names {sorted(unknown)} are neither inputs {names} nor outputs {out_names}")
    out_refs = [cap.output_ref(t) for t in outs]
    out_dims = []
    for t, r, name in zip(outs, out_refs, out_names):
        s = cap.symshapes.get(r) if type(r) is tuple else r.symshape
        dims = list(_dims(s) if s is not None else t.data.shape)
        for axis, dim in _axes(out_spec.get(name, {}), len(dims), name).items():
            dims[axis] = dim
        out_dims.append(tuple(dims))
    graph, _ = lower(cap, out_refs, out_names, out_dims, opset, metadata=metadata)
    if optimize:
        passes.optimize(graph)
    return Exported(graph, cap, names, out_names, outs, out_refs, out_dims)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while exporting. The capture keeps every recorded tensor, node
    and symbolic size alive until the graph is written, so the collector's passes find nothing to free; but
    their allocations trigger full collections whose cost grows with the heap (torch's alone is ~200k
    objects): 60% of a 10,000-op export, and what made its time superlinear. Refcounting still frees
    everything as usual; the collector resumes (if it was on) when the export ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# ---- arguments and names -----------------------------------------------------------------------------------

def _as_args(args: Any) -> tuple:
    if isinstance(args, (Tensor, np.ndarray)):
        args = (args,)
    elif not isinstance(args, (tuple, list)):
        raise TypeError(f"args must be a Tensor or a tuple of the model's positional arguments, got "
                        f"{type(args).__name__}")
    return tuple(_tensorize(a) for a in args)


def _tensorize(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return Tensor(a)
    if isinstance(a, (list, tuple)) and any(isinstance(x, (Tensor, np.ndarray, list, tuple)) for x in a):
        return type(a)(_tensorize(x) for x in a)
    return a


def _flatten_inputs(model: Callable[..., Any], args: tuple) -> tuple[list[Tensor], list[str]]:
    params = _positional_names(model)
    tensors: list[Tensor] = []
    names: list[str] = []
    for i, a in enumerate(args):
        _walk_inputs(a, params[i] if i < len(params) else f"{params[-1] if params else 'input'}_{i}", tensors, names)
    return tensors, names


# module-level recursion: a recursive closure is a reference cycle that would keep the traced tensors (and
# through them the whole recorded graph) alive until the next full garbage collection
def _walk_inputs(a: Any, name: str, tensors: list[Tensor], names: list[str]) -> None:
    if isinstance(a, Tensor):
        tensors.append(a)
        names.append(name)
    elif isinstance(a, (list, tuple)):
        for j, x in enumerate(a):
            _walk_inputs(x, f"{name}_{j}", tensors, names)


def _positional_names(model: Callable[..., Any]) -> list[str]:
    fn = getattr(model, "forward", model) if not inspect.isfunction(model) else model
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            out.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            out.append(p.name)
            break
    return out


def _input_names(given: list[str] | None, default: list[str]) -> list[str]:
    if given is None:
        return _dedupe(default)
    given = list(given)
    if len(given) != len(default):
        raise ValueError(f"input_names has {len(given)} names but the model takes {len(default)} tensor inputs")
    if len(set(given)) != len(given):
        raise ValueError(f"input_names must be unique, got {given}")
    return given


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


def _flatten_outputs(out: Any) -> tuple[list[Tensor], list[str]]:
    tensors: list[Tensor] = []
    names: list[str] = []
    if isinstance(out, Mapping):
        _walk_outputs(out, "", tensors, names)
    elif isinstance(out, (list, tuple)):
        for j, x in enumerate(out):
            _walk_outputs(x, f"output_{j}", tensors, names)
    else:
        _walk_outputs(out, "output", tensors, names)
    return tensors, names


def _walk_outputs(o: Any, name: str, tensors: list[Tensor], names: list[str]) -> None:
    if isinstance(o, Tensor):
        tensors.append(o)
        names.append(name)
    elif isinstance(o, (list, tuple)):
        for j, x in enumerate(o):
            _walk_outputs(x, f"{name}_{j}", tensors, names)
    elif isinstance(o, Mapping):
        for k, x in o.items():
            _walk_outputs(x, str(k), tensors, names)
    else:
        raise ExportError(f"the model returned a {type(o).__name__} ({o!r}); exported outputs must be tensors "
                          "(or lists, tuples and dicts of tensors)")


def _output_names(given: list[str] | None, default: list[str], inputs: list[str]) -> list[str]:
    names = _dedupe(default) if given is None else list(given)
    if given is not None and len(names) != len(default):
        raise ValueError(f"output_names has {len(names)} names but the model returns {len(default)} tensors")
    if len(set(names)) != len(names):
        raise ValueError(f"output names must be unique, got {names}")
    clash = set(names) & set(inputs)
    if clash:
        if given is not None:
            raise ValueError(f"output names {sorted(clash)} are also input names")
        names = [f"{n}_out" if n in clash else n for n in names]
    return names


# ---- dynamic axes ------------------------------------------------------------------------------------------

def _axes(spec: Any, ndim: int, name: str) -> dict[int, str]:
    """{axis: symbol name} from `{axis: name}` or `[axis, ...]` (auto-named `<input>_dim<axis>`)."""
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, (list, tuple, set)):
        items = [(a, None) for a in spec]
    else:
        raise TypeError(f"dynamic[{name!r}] must be a dict {{axis: name}} or a list of axes, got {spec!r}")
    out = {}
    for axis, sym in items:
        if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
            raise ValueError(f"dynamic[{name!r}]: axis {axis!r} is out of range for a tensor of rank {ndim}")
        axis %= ndim
        out[axis] = str(sym) if sym is not None else f"{name}_dim{axis}"
    return out


def _dynamic_spec(dynamic: Mapping[str, Any] | None, names: list[str],
                  tensors: list[Tensor]) -> tuple[list[dict[int, Symbol]], list[Symbol], dict[str, Any]]:
    in_dims: list[dict[int, Symbol]] = [{} for _ in names]
    if not dynamic:
        return in_dims, [], {}
    if not isinstance(dynamic, Mapping):
        raise TypeError(f"dynamic must be a dict {{input name: {{axis: name}}}}, got {type(dynamic).__name__}")
    by_name = {n: i for i, n in enumerate(names)}
    symbols: dict[str, Symbol] = {}
    out_spec = {}
    for key, spec in dynamic.items():
        i = by_name.get(key)
        if i is None:
            out_spec[key] = spec
            continue
        shape = tensors[i].data.shape
        for axis, sym in _axes(spec, len(shape), key).items():
            s = symbols.get(sym)
            if s is None:
                s = symbols[sym] = Symbol(sym, int(shape[axis]), 0)
            elif s.example != shape[axis]:
                raise ValueError(f"dynamic axis {sym!r} has size {s.example} in one input but {shape[axis]} in "
                                 f"{key!r}; axes sharing a name must have the same example size")
            in_dims[i][axis] = s
    # probe sizes: twice the example, three times (...) where several symbols share an example size, so every
    # symbol is told apart in the probe run
    by_example: dict[int, int] = {}
    for s in symbols.values():
        m = by_example[s.example] = by_example.get(s.example, 1) + 1
        s.probe = max(s.example, 1) * m
    return in_dims, list(symbols.values()), out_spec


def _resize_args(args: tuple, in_dims: list[dict[int, Symbol]], sizes: dict[str, int]) -> tuple:
    """`args` with every dynamic axis resized to `sizes` (cut, or tiled: values stay valid token ids, masks...)."""
    it = iter(in_dims)
    return tuple(_resize(a, it, sizes) for a in args)


def _resize(a: Any, dims: Iterator[dict[int, Symbol]], sizes: dict[str, int]) -> Any:
    if isinstance(a, Tensor):
        data = a.data
        xp = xp_of(data)
        for axis, s in next(dims).items():
            n = sizes[s.name]
            if data.shape[axis] == 0:
                data = xp.zeros((*data.shape[:axis], n, *data.shape[axis + 1:]), data.dtype)
            elif data.shape[axis] != n:
                data = xp.take(data, xp.arange(n) % data.shape[axis], axis=axis)
        return Tensor(data) if data is not a.data else a
    if isinstance(a, (list, tuple)):
        return type(a)(_resize(x, dims, sizes) for x in a)
    return a
