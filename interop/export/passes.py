"""Graph clean-up after lowering: Constant nodes to initializers, Identity removal, constant folding,
BatchNorm folding into Conv, constant Reshape targets on dynamic axes, residual sums kept apart from
LayerNormalization, common-subexpression elimination and dead-node elimination.

Every pass is one linear sweep over the node list (nodes are in topological order), renaming through dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from .builder import Graph, OnnxNode, np_dtype

__all__ = ["optimize", "constants_to_initializers", "remove_identities", "fold_constants", "fold_batchnorm",
           "constant_reshape_targets", "residual_sums", "eliminate_common_subexpressions", "eliminate_dead_nodes"]

_RANDOM = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"})
_FOLD_LIMIT = 1 << 16  # folding may not inflate constants (Expand, Range, ConstantOfShape) beyond this


def optimize(graph: Graph) -> Graph:
    constants_to_initializers(graph)
    remove_identities(graph)
    fold_constants(graph)
    fold_batchnorm(graph)
    constant_reshape_targets(graph)
    residual_sums(graph)
    eliminate_common_subexpressions(graph)
    eliminate_dead_nodes(graph)
    return graph


def _std(node: OnnxNode) -> bool:
    return node.domain in ("", "ai.onnx")


def _has_subgraph(node: OnnxNode) -> bool:
    return any(isinstance(v, onnx.GraphProto) for v in node.attrs.values())


# ---- Constant nodes ----------------------------------------------------------------------------------------

def _constant_value(attrs: dict[str, Any]) -> np.ndarray | None:
    if "value" in attrs:
        v = attrs["value"]
        return onnx.numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                    ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dt)
    return None


def constants_to_initializers(graph: Graph) -> None:
    outputs = set(graph.outputs)
    keep = []
    for node in graph.nodes:
        if node.op_type == "Constant" and _std(node) and node.outputs[0] not in outputs:
            value = _constant_value(node.attrs)
            if value is not None:
                graph.inits[node.outputs[0]] = value
                graph.types[node.outputs[0]] = (value.dtype, value.shape)
                continue
        keep.append(node)
    graph.nodes = keep


# ---- Identity ----------------------------------------------------------------------------------------------

def remove_identities(graph: Graph) -> None:
    """Drop Identity nodes; where the Identity names a graph output, the producer writes that name instead."""
    outputs, fixed = set(graph.outputs), set(graph.inputs) | set(graph.inits)
    producer = {o: n for n in graph.nodes for o in n.outputs}
    alias: dict[str, str] = {}  # dropped value -> the value it equals
    moved: dict[str, str] = {}  # producer output renamed to a graph output name
    keep = []

    def final(v: str) -> str:
        while v in alias:
            v = alias[v]
        return moved.get(v, v)

    for node in graph.nodes:
        if node.op_type != "Identity" or not _std(node):
            keep.append(node)
            continue
        x, y = final(node.inputs[0]), node.outputs[0]
        if y not in outputs:
            alias[y] = x
            continue
        src = producer.get(x)
        if src is not None and x not in outputs and x not in fixed and x not in moved.values() \
                and src.op_type != "Identity":
            moved[x] = y
            continue
        node.inputs = [x]
        keep.append(node)
    for node in keep:
        node.inputs = [final(i) if i else i for i in node.inputs]
        node.outputs = [moved.get(o, o) for o in node.outputs]
    graph.nodes = keep


# ---- constant folding --------------------------------------------------------------------------------------

def _reshape(x: np.ndarray, shape: np.ndarray, allowzero: int = 0) -> np.ndarray:
    s = [int(d) for d in shape]
    if not allowzero:
        s = [x.shape[i] if d == 0 else d for i, d in enumerate(s)]
    return x.reshape(s)


def _unsqueeze(x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    r = x.ndim + len(axes)
    for a in sorted(int(a) % r for a in axes):
        x = np.expand_dims(x, a)
    return x


def _squeeze(x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(int(a) for a in axes))


def _same_type(fn: Callable) -> Callable:
    return lambda a, b: np.asarray(fn(a, b)).astype(a.dtype, copy=False)


_NUMPY: dict[str, Callable[..., Any]] = {
    "Transpose": lambda x, perm=None: np.ascontiguousarray(np.transpose(x, perm)),
    "Cast": lambda x, to, **_: x.astype(to if isinstance(to, np.dtype) else np_dtype(int(to))),
    "Reshape": _reshape,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "Identity": lambda x: x,
    "Add": _same_type(np.add),
    "Sub": _same_type(np.subtract),
    "Mul": _same_type(np.multiply),
    "Neg": np.negative,
    "Gather": lambda x, i, axis=0: np.take(x, i, axis=axis),
    "Shape": lambda x, start=0, end=None: np.array(x.shape[start:end], np.int64),
    "Size": lambda x: np.array(x.size, np.int64),
}


def _evaluate(node: OnnxNode, values: list[np.ndarray | None]) -> list[np.ndarray]:
    fn = _NUMPY.get(node.op_type)
    if fn is not None and all(v is not None for v in values):
        return [np.asarray(fn(*values, **node.attrs))]
    from onnx.reference import ReferenceEvaluator

    from .serialize import make_node

    proto = make_node(node, metadata=False)
    feeds = {n: v for n, v in zip(node.inputs, values) if n}
    return [np.asarray(v) for v in ReferenceEvaluator(proto).run(None, feeds)]


def fold_constants(graph: Graph) -> None:
    """Evaluate nodes whose inputs are all initializers (or fully static shapes); results keep a parameter's
    name (`fc.weight__Transpose`) when they were computed from one."""
    inits, types, outputs = graph.inits, graph.types, set(graph.outputs)
    rename: dict[str, str] = {}
    keep = []
    for node in graph.nodes:
        if rename:
            node.inputs = [rename.get(i, i) for i in node.inputs]
        if not _std(node) or node.op_type in _RANDOM or _has_subgraph(node) or \
                outputs.intersection(node.outputs):
            keep.append(node)
            continue
        ins = node.inputs
        if node.op_type in ("Shape", "Size") and ins and ins[0] not in inits:
            t = types.get(ins[0])
            if t is None or not all(isinstance(d, int) for d in t[1]):
                keep.append(node)
                continue
            values = [np.empty(t[1], np.uint8)]  # only the shape is read
        elif ins and all(not i or i in inits for i in ins):
            values = [_host(inits[i]) if i else None for i in ins]
        else:
            keep.append(node)
            continue
        try:
            results = _evaluate(node, values)
        except Exception:  # leave it to the runtime
            keep.append(node)
            continue
        size_in = sum(v.nbytes for v in values if v is not None and node.op_type not in ("Shape", "Size"))
        if sum(r.nbytes for r in results) > max(size_in, _FOLD_LIMIT) or len(results) != len(node.outputs):
            keep.append(node)
            continue
        src = ins[0] if ins else ""
        for out, r in zip(node.outputs, results):
            if not out:
                continue
            name = out
            if src in graph.params and len(node.outputs) == 1:
                name = graph.unique(f"{src}__{node.op_type}")
                graph.params.add(name)
                rename[out] = name
            inits[name] = r
            types[name] = (r.dtype, r.shape)
    graph.nodes = keep


def _host(a: Any) -> np.ndarray:
    return a if type(a) is np.ndarray else np.asarray(a.get() if hasattr(a, "get") else a)


# ---- BatchNormalization into Conv --------------------------------------------------------------------------

def fold_batchnorm(graph: Graph) -> None:
    """Conv -> BatchNormalization (inference form, constant statistics) becomes one Conv with scaled weights."""
    inits, outputs = graph.inits, set(graph.outputs)
    uses: dict[str, int] = {}
    for node in graph.nodes:
        for i in node.inputs:
            uses[i] = uses.get(i, 0) + 1
    producer = {o: n for n in graph.nodes for o in n.outputs}
    dropped: set[int] = set()
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or not _std(bn) or bn.attrs.get("training_mode", 0):
            continue
        if len(bn.inputs) != 5 or any(o for o in bn.outputs[1:]):
            continue
        y = bn.inputs[0]
        conv = producer.get(y)
        if conv is None or conv.op_type != "Conv" or not _std(conv) or uses.get(y, 0) != 1 or y in outputs:
            continue
        w = conv.inputs[1]
        b = conv.inputs[2] if len(conv.inputs) > 2 and conv.inputs[2] else None
        stats = bn.inputs[1:]
        if w not in inits or (b is not None and b not in inits) or not all(s in inits for s in stats):
            continue
        scale, bias, mean, var = (_host(inits[s]).astype(np.float64) for s in stats)
        weight = _host(inits[w])
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        new_w = (weight.astype(np.float64) * s.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(weight.dtype)
        old_b = _host(inits[b]).astype(np.float64) if b is not None else 0.0
        new_b = ((old_b - mean) * s + bias).astype(weight.dtype)
        w_name = w if uses.get(w, 0) == 1 else graph.unique(f"{w}__bn")
        base = w.rsplit(".", 1)[0] + ".bias" if w.endswith(".weight") else f"{w}__bias"
        b_name = b if b is not None and uses.get(b, 0) == 1 else graph.unique(base)
        inits[w_name], inits[b_name] = new_w, new_b
        graph.types[w_name] = (new_w.dtype, new_w.shape)
        graph.types[b_name] = (new_b.dtype, new_b.shape)
        if w in graph.params:
            graph.params.update((w_name, b_name))
        conv.inputs = [conv.inputs[0], w_name, b_name]
        conv.outputs = [bn.outputs[0]]
        if conv.meta is not None or bn.meta is not None:
            conv.meta = {**(conv.meta or {}), "interop.rewrite": "FuseBatchNormIntoConv"}
        dropped.add(id(bn))
    if dropped:
        graph.nodes = [n for n in graph.nodes if id(n) not in dropped]


# ---- Reshape targets on dynamic axes ------------------------------------------------------------------------

def _shape_elements(v: str, producer: dict[str, OnnxNode], graph: Graph) -> list[Any] | None:
    """The elements of a 1-D shape tensor, when it is a Concat of constants and `Shape` slices: ints, or
    (source value, axis) for a size read from a value; None when the tensor is built otherwise."""
    arr = graph.inits.get(v)
    if arr is not None:
        arr = _host(arr)
        return [int(d) for d in arr.reshape(-1)] if arr.ndim == 1 and arr.dtype == np.int64 else None
    node = producer.get(v)
    if node is None or not _std(node):
        return None
    if node.op_type == "Concat" and node.attrs.get("axis") in (0, -1):
        out: list[Any] = []
        for i in node.inputs:
            part = _shape_elements(i, producer, graph)
            if part is None:
                return None
            out += part
        return out
    if node.op_type == "Shape":
        src = node.inputs[0]
        t = graph.types.get(src)
        if t is None:  # the rank is needed to know which axes start/end select
            return None
        return [(src, a) for a in range(len(t[1]))[node.attrs.get("start", 0):node.attrs.get("end")]]
    return None


def _dim_name(graph: Graph, v: str, axis: int) -> str | None:
    t = graph.types.get(v)
    d = t[1][axis] if t is not None and axis < len(t[1]) else None
    return d if isinstance(d, str) and d != "?" else None


def constant_reshape_targets(graph: Graph) -> None:
    """A Reshape whose target is computed in the graph from sizes (dynamic axes: `x.view(x.shape[0], -1)`)
    gets a constant target instead: 0 where the size is the input's own size on that axis (the same value's
    `Shape`, or the same symbolic dim), -1 for the one size left. The Shape/Concat chain then dies, so a
    dynamic-axes graph is as small as the static one."""
    producer = {o: n for n in graph.nodes for o in n.outputs}
    made: dict[bytes, str] = {}
    for node in graph.nodes:
        if node.op_type != "Reshape" or not _std(node) or node.attrs.get("allowzero", 0) or \
                len(node.inputs) != 2 or node.inputs[1] in graph.inits:
            continue
        data = node.inputs[0]
        elems = _shape_elements(node.inputs[1], producer, graph)
        if elems is None:
            continue
        target: list[int | None] = []
        for j, e in enumerate(elems):
            if type(e) is int:
                target.append(e)
                continue
            src, axis = e
            name = _dim_name(graph, src, axis)
            same = (src == data and axis == j) or (name is not None and name == _dim_name(graph, data, j))
            target.append(0 if same else None)
        left = target.count(None)
        if left > 1 or (left == 1 and -1 in target):
            continue
        shape = np.array([-1 if d is None else d for d in target], np.int64)
        name = made.get(shape.tobytes())
        if name is None:
            name = made[shape.tobytes()] = graph.unique("shape")
            graph.inits[name] = shape
            graph.types[name] = (shape.dtype, shape.shape)
        node.inputs = [data, name]


# ---- residual Add before LayerNormalization -------------------------------------------------------------------

_SUM_TYPES = frozenset(np.dtype(t) for t in ("float16", "float32", "float64"))


def residual_sums(graph: Graph) -> None:
    """An Add whose only use is the input of a LayerNormalization (a post-norm residual, `norm(x + f(x))`)
    is written as the equivalent two-input `Sum`. ONNX Runtime's SkipLayerNormFusion rewrites Add ->
    LayerNormalization into its SkipLayerNormalization kernel, which on the CPU provider is several times
    slower than the two nodes it replaces: measured 1.5x for the whole 2-layer TransformerEncoder at batch 32
    (16.6 vs 10.7 ms, 1 thread) and 1.35x at batch 1. The fusion only matches `Add`, so `Sum` keeps the fast
    kernels; the cost is that the CUDA provider, where the fused kernel pays off, does not fuse either."""
    uses: dict[str, list[OnnxNode]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            uses.setdefault(i, []).append(node)
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if node.op_type != "Add" or not _std(node) or node.outputs[0] in outputs:
            continue
        users = uses.get(node.outputs[0], [])
        if len(users) == 1 and users[0].op_type == "LayerNormalization" and _std(users[0]) and \
                users[0].inputs[0] == node.outputs[0] and graph.types.get(node.outputs[0], (None,))[0] in _SUM_TYPES:
            node.op_type = "Sum"
            node.name = graph.unique(f"{node.name.rpartition('/')[0]}/Sum")


# ---- CSE and DCE -------------------------------------------------------------------------------------------

def _frozen(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("array", v.dtype, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, onnx.TensorProto):
        return ("tensor", v.SerializeToString())
    return v


def _shape_key(graph: Graph, node: OnnxNode) -> tuple | None:
    """What a `Shape` reads, as symbolic dim names, when every dim it reads has one: two values with the same
    named dims (ONNX: one dim_param is one size across the model) have the same shape."""
    t = graph.types.get(node.inputs[0])
    if t is None:
        return None
    dims = t[1][node.attrs.get("start", 0):node.attrs.get("end")]
    if dims and all(isinstance(d, str) and d != "?" for d in dims):
        return ("Shape", dims)
    return None


def eliminate_common_subexpressions(graph: Graph) -> None:
    """Nodes with the same op, inputs and attributes compute the same values: keep the first. `Shape`s of
    values whose read dims are the same symbolic sizes count as the same (the sequence length read from q and
    from k of a self-attention is one value)."""
    outputs = set(graph.outputs)
    seen: dict[Any, OnnxNode] = {}
    rename: dict[str, str] = {}
    keep = []
    for node in graph.nodes:
        if rename:
            node.inputs = [rename.get(i, i) for i in node.inputs]
        if node.op_type in _RANDOM or _has_subgraph(node):
            keep.append(node)
            continue
        shape = _shape_key(graph, node) if node.op_type == "Shape" and _std(node) else None
        try:
            key = shape or (node.domain, node.op_type, tuple(node.inputs), len(node.outputs),
                            tuple(sorted((k, _frozen(v)) for k, v in node.attrs.items())))
            hash(key)
        except TypeError:
            keep.append(node)
            continue
        prev = seen.get(key)
        if prev is None or outputs.intersection(node.outputs):
            seen.setdefault(key, node)
            keep.append(node)
            continue
        for a, b in zip(node.outputs, prev.outputs):
            rename[a] = b
    graph.nodes = keep


def _subgraph_inputs(node: OnnxNode) -> set[str]:
    names: set[str] = set()
    for v in node.attrs.values():
        if isinstance(v, onnx.GraphProto):
            for n in v.node:
                names.update(n.input)
    return names


def eliminate_dead_nodes(graph: Graph) -> None:
    """Keep only the nodes (and initializers) the graph outputs depend on."""
    needed = set(graph.outputs)
    keep = []
    for node in reversed(graph.nodes):
        if any(o in needed for o in node.outputs):
            keep.append(node)
            needed.update(node.inputs)
            if _has_subgraph(node):
                needed.update(_subgraph_inputs(node))
    keep.reverse()
    graph.nodes = keep
    graph.inits = {k: v for k, v in graph.inits.items() if k in needed}
