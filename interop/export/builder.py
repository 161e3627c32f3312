"""The export builder `g` handed to `Op.to_onnx`, and the walk that lowers a capture into a `Graph`.

The graph is kept as light Python objects (`OnnxNode`, arrays for initializers) until serialization: the
passes rewrite lists and dicts, never protobufs, and weights are never copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from .. import dtypes
from ..symbolic import SymInt
from ..tensor import Tensor
from .capture import Capture, ExportError, Leaf, where

__all__ = ["OnnxNode", "Graph", "Builder", "lower", "onnx_dtype", "np_dtype"]

_ARITH = {"+": "Add", "-": "Sub", "*": "Mul", "//": "Div", "%": "Mod"}
_INT64 = np.dtype(np.int64)
_ONNX_DTYPE: dict[np.dtype, int] = {}
_NP_DTYPE: dict[int, np.dtype] = {}


def onnx_dtype(dt: Any) -> int:
    """The TensorProto element type of a numpy/interop dtype."""
    dt = dtypes.as_dtype(dt) if not isinstance(dt, np.dtype) else dt
    e = _ONNX_DTYPE.get(dt)
    if e is None:
        e = _ONNX_DTYPE[dt] = onnx.helper.np_dtype_to_tensor_dtype(dt)
    return e


def np_dtype(e: int) -> np.dtype:
    dt = _NP_DTYPE.get(e)
    if dt is None:
        dt = _NP_DTYPE[e] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(e))
    return dt


class OnnxNode:
    __slots__ = ("attrs", "domain", "inputs", "meta", "name", "op_type", "outputs")

    def __init__(self, op_type: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any],
                 domain: str = "", name: str = "", meta: dict[str, str] | None = None):
        self.op_type, self.inputs, self.outputs, self.attrs = op_type, inputs, outputs, attrs
        self.domain, self.name, self.meta = domain, name, meta

    def __repr__(self) -> str:
        return f"<{self.op_type} {self.name}: {self.inputs} -> {self.outputs}>"


class Graph:
    """An ONNX graph under construction: nodes in topological order, initializers as (host or device) arrays."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[OnnxNode] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.inits: dict[str, Any] = {}
        self.types: dict[str, tuple[np.dtype, tuple]] = {}  # dims: int, or str for a dynamic dim
        self.used: set[str] = set()  # every value and node name given out
        self.params: set[str] = set()  # initializers that are (or were folded from) parameters and buffers
        self._next: dict[str, int] = {}

    def unique(self, base: str) -> str:
        used = self.used
        if base not in used:
            used.add(base)
            return base
        n = self._next.get(base, 0)
        while True:
            n += 1
            name = f"{base}_{n}"
            if name not in used:
                break
        self._next[base] = n
        used.add(name)
        return name


def _dims(shape: Sequence[Any]) -> tuple:
    return tuple(d.name if isinstance(d, SymInt) else int(d) for d in shape)


def _host(a: Any) -> np.ndarray:
    return a if type(a) is np.ndarray else np.asarray(a.get() if hasattr(a, "get") else a)


class Builder:
    """The `g` of `Op.to_onnx(g, *values)`: adds nodes and constants, answers dtype/shape questions."""

    def __init__(self, graph: Graph, cap: Capture | None = None, metadata: bool = True):
        self.graph = graph
        self.opset = graph.opset
        self.cap = cap
        self.metadata = metadata
        self.env: dict[int, tuple[str, ...]] = {}
        self.owner: dict[str, int] = {}  # ONNX node name -> the recorded node it lowers (with `expose`)
        self._leaf_values: dict[Leaf, str] = {}
        self._consts: dict[Any, str] = {}
        self._syms: dict[Any, str] = {}
        self._producer: dict[str, OnnxNode] = {}
        self._prefix = ""
        self._meta: dict[str, str] | None = None

    # ---- the contract used by op lowerings -----------------------------------------------------------------
    def op(self, op_type: str, *inputs: str | None, outputs: int = 1, domain: str = "",
           **attrs: Any) -> str | tuple[str, ...]:
        """Add one node; `None` inputs are omitted optional inputs. Returns its output name(s)."""
        for key, a in attrs.items():
            if isinstance(a, SymInt) or (type(a) in (list, tuple) and any(isinstance(x, SymInt) for x in a)):
                raise ValueError(f"{op_type} attribute {key}={a!r} holds a symbolic size; pass sizes as inputs "
                                 "(g.shape_tensor(...)) so the graph computes them")
        ins = ["" if v is None else v for v in inputs]
        while ins and ins[-1] == "":
            ins.pop()
        g = self.graph
        name = g.unique(f"{self._prefix}/{op_type}")
        outs = [f"{name}_output_{i}" for i in range(outputs)]  # unique, as node names are
        g.used.update(outs)
        node = OnnxNode(op_type, ins, outs, attrs, domain, name, self._meta)
        g.nodes.append(node)
        producer = self._producer
        for o in outs:
            producer[o] = node
        return outs[0] if outputs == 1 else tuple(outs)

    def const(self, value: Any, dtype: Any = None) -> str:
        """An initializer holding `value` (deduplicated by content)."""
        if isinstance(value, Tensor):
            value = value.data
        dt = None if dtype is None else dtypes.as_dtype(dtype)
        if not isinstance(value, np.ndarray) and hasattr(value, "get") and hasattr(value, "dtype"):
            value = value.get()  # a cupy array: constants live on the host
        arr = np.asarray(value, dtype=dt)
        key = (arr.dtype, arr.shape, arr.tobytes()) if arr.nbytes <= 4096 else None
        if key is not None:
            name = self._consts.get(key)
            if name is not None:
                return name
        name = self.graph.unique("const" if arr.ndim else "scalar")
        self.graph.inits[name] = arr
        self.graph.types[name] = (arr.dtype, arr.shape)
        if key is not None:
            self._consts[key] = name
        return name

    def axes(self, axes: Any) -> str | None:
        """A 1-D int64 axes input, or None (omitted) for None."""
        if axes is None:
            return None
        return self.const(np.array([axes] if isinstance(axes, int) else list(axes), _INT64))

    def dtype(self, v: str) -> np.dtype:
        return self._type(v)[0]

    def shape(self, v: str) -> tuple:
        return self._type(v)[1]

    def rank(self, v: str) -> int:
        return len(self._type(v)[1])

    def shape_tensor(self, shape: Sequence[Any]) -> str:
        """A 1-D int64 tensor from ints and SymInts; static runs stay constants, symbolic sizes become graph
        computation (one `Shape(x, start, end)` for consecutive dims of the same value)."""
        shape = tuple(shape)
        if not any(isinstance(d, SymInt) for d in shape):
            return self.const(np.array([int(d) for d in shape], _INT64).reshape(len(shape)))
        pieces: list[str] = []
        run: list[int] = []
        i, n = 0, len(shape)
        while i < n:
            d = shape[i]
            if not isinstance(d, SymInt):
                run.append(int(d))
                i += 1
                continue
            if run:
                pieces.append(self.const(np.array(run, _INT64)))
                run = []
            if d.expr[0] == "dim":
                src, start = d.expr[1], d.expr[2]
                j = i + 1
                while (j < n and isinstance(shape[j], SymInt) and shape[j].expr[0] == "dim"
                       and shape[j].expr[1] == src and shape[j].expr[2] == start + (j - i)):
                    j += 1
                pieces.append(self._shape_of(src, start, start + (j - i)))
                i = j
            else:
                pieces.append(self.sym(d))
                i += 1
        if run:
            pieces.append(self.const(np.array(run, _INT64)))
        return pieces[0] if len(pieces) == 1 else self.op("Concat", *pieces, axis=0)

    def sym(self, s: Any) -> str:
        """A symbolic size as a 1-D int64 tensor of one element."""
        if not isinstance(s, SymInt):
            return self.const(np.array([int(s)], _INT64))
        key = _sym_key(s)
        v = self._syms.get(key)
        if v is None:
            op = s.expr[0]
            if op == "dim":
                v = self._shape_of(s.expr[1], s.expr[2], s.expr[2] + 1)
            else:
                v = self.op(_ARITH[op], self.sym(s.expr[1]), self.sym(s.expr[2]))
            self._syms[key] = v
        return v

    # ---- values of captured references ---------------------------------------------------------------------
    def value(self, ref: Any) -> str:
        if type(ref) is tuple:
            return self.env[ref[0]][ref[1]]
        v = self._leaf_values.get(ref)
        if v is None:
            v = self._leaf_values[ref] = self._materialize(ref)
        return v

    def _materialize(self, leaf: Leaf) -> str:
        g = self.graph
        kind = leaf.kind
        if kind == "input":
            return leaf.name
        if kind == "param":  # its name was reserved by `lower`
            name = leaf.name
            g.params.add(name)
            g.inits[name] = leaf.array
            g.types[name] = (leaf.array.dtype, tuple(leaf.array.shape))
            return name
        if kind == "const":
            return self.const(leaf.array)
        dt = leaf.array.dtype
        if kind == "sym":
            v = self.op("Squeeze", self.sym(leaf.sym))
            return v if dt == _INT64 else self.op("Cast", v, to=dt)
        if kind == "fill":
            return self.op("Expand", self.const(leaf.array), self.shape_tensor(leaf.dims))
        if kind == "range":
            start, step = leaf.array
            n = self.op("Squeeze", self.sym(leaf.dims[0]))
            if dt != _INT64:
                n = self.op("Cast", n, to=dt)
            limit = n if step == 1 else self.op("Mul", n, self.const(step, dt))  # arange(n): n itself
            if start != 0:
                limit = self.op("Add", limit, self.const(start, dt))
            return self.op("Range", self.const(start, dt), limit, self.const(step, dt))
        raise AssertionError(kind)

    def _shape_of(self, src: Any, start: int, end: int) -> str:
        key = ("shape", src, start, end)
        v = self._syms.get(key)
        if v is None:
            v = self._syms[key] = self.op("Shape", self.value(self._source(src)), start=start, end=end)
        return v

    def _source(self, src: Any) -> Any:
        """The capture reference a SymInt was measured on; refuses sizes kept from another export."""
        cap = self.cap
        if type(src) is tuple:
            if src[2] is cap.token:
                return src[:2]
        elif cap.leaves.get(id(src.tensor)) is src:
            return src
        raise ValueError("a symbolic size from another export (or kept across calls) reached this op; read sizes "
                         "from the tensors of the current call (x.shape[i])")

    # ---- types ---------------------------------------------------------------------------------------------
    def _type(self, v: str) -> tuple[np.dtype, tuple]:
        t = self.graph.types.get(v)
        if t is None:
            t = self._infer(v)
        return t

    def _infer(self, v: str) -> tuple[np.dtype, tuple]:
        """Type and shape of a value made inside a lowering, from ONNX's own inference of its producer."""
        node = self._producer.get(v)
        if node is None:
            raise KeyError(f"g.dtype/g.shape: unknown value {v!r}")
        from .serialize import make_node, value_type

        types, data = {}, {}
        for i in node.inputs:
            if i:
                dt, dims = self._type(i)
                types[i] = value_type(dt, dims)
                arr = self.graph.inits.get(i)
                if arr is not None and arr.size <= 1024:
                    data[i] = onnx.numpy_helper.from_array(_host(arr), i)
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain)
            out = onnx.shape_inference.infer_node_outputs(
                schema, make_node(node, False), types, input_data=data,
                opset_imports=[onnx.helper.make_opsetid(node.domain, self.opset if not node.domain else 1)])
        except Exception as e:
            raise RuntimeError(f"cannot infer the type of {v!r} (output of {node.op_type}): {e}") from None
        for name, tp in out.items():
            tt = tp.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                         for d in tt.shape.dim)
            self.graph.types[name] = (np_dtype(tt.elem_type), dims)
        if v not in self.graph.types:
            raise RuntimeError(f"cannot infer the type of {v!r} (output of {node.op_type})")
        return self.graph.types[v]

    # ---- per recorded node ---------------------------------------------------------------------------------
    def enter(self, scope: str, loc: Any, module: str) -> None:
        self._prefix = f"/{scope}" if scope else ""
        if self.metadata:
            meta = {"interop.source": where(loc)} if loc is not None else {}
            if scope:
                meta["interop.module"] = f"{scope}: {module}" if module else scope
            self._meta = meta or None


def _sym_key(s: Any) -> Any:
    if not isinstance(s, SymInt):
        return int(s)
    e = s.expr
    if e[0] == "dim":
        return ("dim", e[1], e[2])
    return (e[0], _sym_key(e[1]), _sym_key(e[2]))


# ---- the walk ----------------------------------------------------------------------------------------------

def lower(cap: Capture, out_refs: list[Any], out_names: list[str], out_dims: list[tuple], opset: int, *,
          metadata: bool = True, expose: bool = False) -> tuple[Graph, Builder]:
    """Lower the nodes the outputs need, in record order, through each op's `to_onnx`.

    All failures (ops without a lowering, lowerings that raise, sizes baked in) are collected and raised
    together. With `expose`, every value a recorded node produced also becomes a graph output (`g.env` maps
    node k to them, `g.owner` ONNX node names to k): verification compares them with the eager values.
    """
    graph = Graph(opset)
    g = Builder(graph, cap, metadata)
    for leaf in cap.inputs:
        graph.used.add(leaf.name)
        graph.inputs.append(leaf.name)
        graph.types[leaf.name] = (leaf.array.dtype, _dims(leaf.symshape or leaf.array.shape))
    params = {leaf.name for leaf in cap.leaves.values() if leaf.kind == "param"}
    clash = params & graph.used
    if clash:
        raise ValueError(f"input name(s) {sorted(clash)} are also names of parameters or buffers; pass other "
                         "input_names")
    graph.used.update(params)
    graph.used.update(out_names)
    live = cap.live(out_refs)
    failures: list[tuple[str, Any, str, BaseException | None]] = [(*issue, None) for issue in cap.issues]
    types = graph.types
    env = g.env
    scope_types = cap.scope_types
    for k, node in enumerate(cap.nodes):
        if not live[k]:
            continue
        scope = cap.scopes[k]
        g.enter(scope, cap.locs[k], scope_types.get(scope, ""))
        outs_t = cap.outs[k]
        first = len(graph.nodes)
        try:
            ins = [g.value(r) for r in cap.refs[k]]
            res = node.op.to_onnx(g, *ins)
            outs = tuple(res) if isinstance(res, (tuple, list)) else (res,)
            if len(outs) != len(outs_t) or not all(isinstance(o, str) and o for o in outs):
                raise TypeError(f"to_onnx returned {res!r} for {len(outs_t)} output(s); it must return value names")
        except Exception as e:
            msg = str(e) if isinstance(e, NotImplementedError) else f"{type(e).__name__}: {e}"
            failures.append((type(node.op).__name__, cap.locs[k], msg, e))
            outs = tuple(f"<failed {k}:{i}>" for i in range(len(outs_t)))
        env[k] = outs
        if expose:
            for n in graph.nodes[first:]:
                g.owner[n.name] = k
        for oi, v in enumerate(outs):
            if v not in types:
                t = outs_t[oi]
                s = cap.symshapes.get((k, oi))
                types[v] = (t.data.dtype, _dims(s) if s is not None else t.data.shape)
    if failures:
        raise _failure_report(failures, opset)
    g.enter("", None, "")
    values = [g.value(r) for r in out_refs]
    _name_outputs(g, values, out_names, out_dims)
    if expose:
        seen = set(graph.outputs) | set(graph.inputs) | set(graph.inits)
        for outs in env.values():
            for v in outs:
                if v not in seen and v in g._producer:
                    seen.add(v)
                    graph.outputs.append(v)
    return graph, g


def _name_outputs(g: Builder, values: list[str], names: list[str], dims: list[tuple]) -> None:
    """Give the graph outputs their names: rename the producing node's output, or add an Identity where the
    value is an input, an initializer or already another output."""
    graph = g.graph
    rename: dict[str, str] = {}
    taken: set[str] = set()
    for v, name, d in zip(values, names, dims):
        dt = graph.types[v][0]
        if v in g._producer and v not in taken and v not in rename:
            rename[v] = name
        else:
            node = OnnxNode("Identity", [rename.get(v, v)], [name], {}, "", graph.unique(f"/Identity_{name}"))
            graph.nodes.append(node)
            g._producer[name] = node
        taken.add(v)
        graph.types[name] = (dt, d)
        graph.outputs.append(name)
    if rename:
        for node in graph.nodes:
            node.inputs = [rename.get(i, i) for i in node.inputs]
            node.outputs = [rename.get(o, o) for o in node.outputs]
        for old, new in rename.items():
            g._producer[new] = g._producer.pop(old)
        for leaf, v in list(g._leaf_values.items()):
            g._leaf_values[leaf] = rename.get(v, v)
        for k, outs in g.env.items():
            g.env[k] = tuple(rename.get(v, v) for v in outs)


def _failure_report(failures: list, opset: int) -> ExportError:
    groups: dict[tuple[str, str], list] = {}
    for op, loc, msg, exc in failures:
        groups.setdefault((op, msg), []).append((loc, exc))
    n = sum(len(v) for v in groups.values())
    ops = {op for op, _ in groups}
    lines = [f"cannot export to ONNX (opset {opset}): {n} op application(s) of {len(ops)} op(s) failed"]
    for (op, msg), items in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        locs = sorted({where(loc) for loc, _ in items})
        shown = ", ".join(locs[:5]) + (f", ... ({len(locs) - 5} more)" if len(locs) > 5 else "")
        lines.append(f"  {op} x{len(items)}: {msg}  [at {shown}]")
    err = ExportError("\n".join(lines))
    first = next((exc for _, _, _, exc in failures if exc is not None), None)
    if first is not None:
        err.__cause__ = first
    return err
