"""Capture: run a model with `state.capture` set and keep what the exporter needs from every recorded op.

Every op application is recorded (`Op.__call__` calls `record`), with its inputs resolved *at that moment* to
references: `(k, i)` for output `i` of recorded node `k`, or a `Leaf` (a graph input, a parameter/buffer, a
constant). Resolving at record time keeps in-place ops right: later rewiring of a tensor cannot change what an
earlier node read. Each node also keeps its module scope (from global module hooks) and the user's file:line.

Dynamic axes: before the real run, the model runs once at other sizes of the dynamic axes (the "probe", a
capture without symbols). The real run compares itself with the probe node by node: output dims that differ
are dynamic, and `Tensor.shape` returns `SymInt`s for them; constants, op attributes or graph structure that
differ mean the model turned a dynamic size into a Python value, which is reported with its file:line instead
of being baked in.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._state import state
from ..autograd import no_grad
from ..backend import xp_of
from ..symbolic import SymInt, sym_dim
from ..tensor import Tensor

__all__ = ["ExportError", "Capture", "Leaf", "Symbol", "trace", "user_frame"]


class ExportError(RuntimeError):
    """The model cannot be exported as asked; the message names the op(s) and the user's file:line."""


# ---- the user's file:line ----------------------------------------------------------------------------------

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_inside: dict[str, bool] = {}


def user_frame(depth: int = 2) -> tuple[str, int] | None:
    """(filename, line) of the innermost frame outside the interop package."""
    f = sys._getframe(depth)
    inside = _inside
    while f is not None:
        fn = f.f_code.co_filename
        ins = inside.get(fn)
        if ins is None:
            ins = inside[fn] = os.path.abspath(fn).startswith(_PKG)
        if not ins:
            return fn, f.f_lineno
        f = f.f_back
    return None


_shown: dict[str, str] = {}


def where(loc: tuple[str, int] | None) -> str:
    """`file.py:12`, relative to the working directory when below it."""
    if loc is None:
        return "<unknown>"
    fn = _shown.get(loc[0])
    if fn is None:
        try:
            rel = os.path.relpath(loc[0])
            fn = rel if not rel.startswith("..") else loc[0]
        except ValueError:  # another drive on Windows
            fn = loc[0]
        _shown[loc[0]] = fn
    return f"{fn}:{loc[1]}"


# ---- references --------------------------------------------------------------------------------------------

class Leaf:
    """A value not computed by a recorded op.

    kind: "input" (graph input), "param" (parameter or buffer: an initializer named `name`), "const" (a
    snapshot `array`), "sym" (a scalar made from a SymInt: `sym`), "fill"/"range" (a constant whose shape
    follows dynamic axes, rebuilt in the graph as Expand/Range from `dims`).
    """

    __slots__ = ("array", "checked", "dep", "dims", "kind", "loc", "name", "sym", "symshape", "tensor")

    def __init__(self, kind: str, tensor: Tensor, array: Any, name: str | None = None):
        self.kind, self.tensor, self.array, self.name = kind, tensor, array, name
        self.dep = kind == "input"  # depends on the graph inputs
        self.symshape: tuple | None = None
        self.sym: SymInt | None = None
        self.dims: tuple | None = None
        self.loc: tuple[str, int] | None = None
        self.checked = False

    def __repr__(self) -> str:
        return f"<Leaf {self.kind} {self.name or tuple(self.array.shape)}>"


class Symbol:
    """A named dynamic size: its example value, its value in the probe run, and the SymInt for it."""

    __slots__ = ("example", "name", "probe", "sym")

    def __init__(self, name: str, example: int, probe: int):
        self.name, self.example, self.probe = name, example, probe
        self.sym: SymInt | None = None


Ref = Any  # tuple[int, int] | Leaf


class Capture:
    """What one run of the model recorded. Installed as `state.capture` (see `trace`)."""

    def __init__(self, params: dict[int, tuple[str, Tensor]] | None = None, *,
                 reference: Capture | None = None, symbols: list[Symbol] | None = None):
        self.nodes: list[Any] = []  # autograd Nodes, in record order
        self.refs: list[tuple] = []  # per node: its inputs as references
        self.outs: list[tuple] = []  # per node: its output Tensors (kept: ids stay unique, verify reads them)
        self.versions: list[tuple] = []  # per node: its outputs' version counters at record time
        self.scopes: list[str] = []
        self.locs: list[tuple[str, int] | None] = []
        self.dep: list[bool] = []
        self.symshapes: dict[tuple[int, int], tuple] = {}
        self.sym_sources: set[int] = set()  # nodes whose dims were handed out as SymInts
        self.index: dict[int, int] = {}  # id(Node) -> k
        self.leaves: dict[int, Leaf] = {}  # id(Tensor) -> Leaf
        self.by_data: dict[int, Ref] = {}  # id(array) -> reference (detached tensors, in-place shadows)
        self.inputs: list[Leaf] = []
        self._keep: list[Tensor] = []
        self.issues: list[tuple[str, tuple[str, int] | None, str]] = []  # (op, loc, message): baked values
        self.reference = reference
        self.symbols = symbols or []
        self.dynamic = bool(self.symbols)
        self.token = object()  # marks the SymInts of this capture (a size kept from another export is refused)
        self.scope = ""
        self.scope_types: dict[str, str] = {"": ""}
        self._fresh = itertools.count()
        for name, p in (params or {}).values() if params else ():
            self._param_leaf(p, name)

    # ---- the interface the core calls ----------------------------------------------------------------------
    def record(self, node: Any) -> None:
        k = len(self.nodes)
        loc = user_frame(3)
        refs = []
        dep = False
        lookup, deps = self.lookup, self.dep
        for t in node.inputs:
            r = lookup(t)
            if r is None:
                r = self._const(t, loc)
            refs.append(r)
            if not dep:
                dep = deps[r[0]] if type(r) is tuple else r.dep
        outs = tuple([w() for w in node.outs])
        self.index[id(node)] = k
        self.nodes.append(node)
        self.refs.append(tuple(refs))
        self.outs.append(outs)
        self.versions.append(tuple([t._vc[0] for t in outs]))
        deps.append(dep)
        self.scopes.append(self.scope)
        self.locs.append(loc)
        by_data = self.by_data
        for oi, t in enumerate(outs):
            by_data[id(t.data)] = (k, oi)
        if self.reference is not None:
            self._against_reference(k, node, refs, outs)

    def alias(self, old: Tensor, new: Tensor) -> None:
        """From now on `new` holds `old`'s value: the op's output written into a tensor in place, or the
        shadow that stands for a tensor's value before an in-place write."""
        r = self.lookup(old)
        if r is not None:
            self.by_data[id(new.data)] = r
            if type(r) is not tuple:
                self.leaves[id(new)] = r
            self._keep.append(new)  # the ids above stay unique while the capture lives

    def shape_of(self, t: Tensor) -> tuple:
        if not self.dynamic:
            return t.data.shape
        r = self.lookup(t)
        if type(r) is tuple:
            s = self.symshapes.get(r)
            if s is not None:
                self.sym_sources.add(r[0])
                return s
        elif r is not None and r.symshape is not None:
            return r.symshape
        return t.data.shape

    def refuse_concrete(self, t: Tensor, what: str) -> None:
        r = self.lookup(t)
        if r is None or not (self.dep[r[0]] if type(r) is tuple else r.dep):
            return  # a constant of the model (weights, literals): its value is the same in every run
        raise ExportError(
            f"{what} at {where(user_frame(3))} turns a tensor computed from the model's inputs into a Python value; "
            "the exported graph would bake in this example's value (the trace would be incorrect for other "
            "inputs). Keep the computation in tensor ops (e.g. interop.where instead of `if` on a tensor).")

    def sym_const(self, t: Tensor, s: SymInt) -> None:
        """`t` is a 0-d tensor made from the symbolic size `s` (a Python operand of an op)."""
        leaf = Leaf("sym", t, t.data)
        leaf.sym = s
        self.leaves[id(t)] = leaf
        self.by_data[id(t.data)] = leaf

    # ---- resolution ----------------------------------------------------------------------------------------
    def lookup(self, t: Tensor) -> Ref | None:
        node = t._node
        if node is not None:
            k = self.index.get(id(node))
            if k is not None:
                return k, t._oi
        leaf = self.leaves.get(id(t))
        if leaf is not None:
            return leaf
        return self.by_data.get(id(t.data))

    def _const(self, t: Tensor, loc: tuple[str, int] | None) -> Leaf:
        """A tensor first seen as an op input (at `loc`): a constant of the graph."""
        leaf = Leaf("const", t, t.data.copy())  # a snapshot: the tensor may be written in place later
        leaf.loc = loc
        self.leaves[id(t)] = leaf
        self.by_data[id(t.data)] = leaf
        return leaf

    def _param_leaf(self, p: Tensor, name: str) -> None:
        leaf = self.by_data.get(id(p.data))  # tensors sharing one array are one initializer
        if leaf is None:
            leaf = Leaf("param", p, p.data, name)
            self.by_data[id(p.data)] = leaf
        else:
            self._keep.append(p)
        self.leaves[id(p)] = leaf

    def add_input(self, t: Tensor, name: str, dims: dict[int, Symbol]) -> Leaf:
        leaf = Leaf("input", t, t.data, name)
        if dims and self.dynamic:
            shape = list(t.data.shape)
            for axis, sym in dims.items():
                shape[axis] = sym_dim(shape[axis], leaf, axis, sym.name)
                if sym.sym is None:
                    sym.sym = shape[axis]
            leaf.symshape = tuple(shape)
        self.leaves[id(t)] = leaf
        self.by_data[id(t.data)] = leaf
        self.inputs.append(leaf)
        return leaf

    def output_ref(self, t: Tensor) -> Ref:
        r = self.lookup(t)
        return r if r is not None else self._const(t, None)

    def live(self, roots: list[Ref]) -> list[bool]:
        """Which nodes the outputs (and the symbolic sizes handed out) depend on."""
        live = [False] * len(self.nodes)
        for r in roots:
            if type(r) is tuple:
                live[r[0]] = True
        for k in self.sym_sources:
            live[k] = True
        for leaf in self.leaves.values():
            if leaf.kind in ("sym", "fill", "range"):
                for s in ([leaf.sym] if leaf.sym is not None else list(leaf.dims or ())):
                    for src in _sources(s):
                        if type(src) is tuple and src[2] is self.token:
                            live[src[0]] = True
        refs = self.refs
        for k in range(len(live) - 1, -1, -1):
            if live[k]:
                for r in refs[k]:
                    if type(r) is tuple:
                        live[r[0]] = True
        return live

    # ---- dynamic axes: compare with the probe run ----------------------------------------------------------
    def _against_reference(self, k: int, node: Any, refs: list, outs: tuple) -> None:
        ref = self.reference
        loc = self.locs[k]
        if k >= len(ref.nodes) or type(ref.nodes[k].op) is not type(node.op):
            other = (f"{type(ref.nodes[k].op).__name__} at {where(ref.locs[k])}" if k < len(ref.nodes)
                     else "nothing more")
            raise ExportError(
                f"the model records a different graph when the dynamic axes change size ({self._sizes()}): at "
                f"{where(loc)} the example run recorded {type(node.op).__name__} where the other run recorded "
                f"{other}. Python control flow on sizes (if/for/min/max on x.shape) is specialised to the example "
                "and cannot be exported with these dynamic axes.")
        for oi, t in enumerate(outs):
            shape, pshape = t.data.shape, ref.outs[k][oi].data.shape
            if shape == pshape:
                continue
            if len(shape) != len(pshape):
                raise ExportError(f"{type(node.op).__name__} at {where(loc)} gives a rank-{len(shape)} result in "
                                  f"the example run but rank {len(pshape)} when the dynamic axes change size "
                                  f"({self._sizes()}); the graph cannot follow the dynamic axes here.")
            self.symshapes[k, oi] = tuple(d if d == p else sym_dim(d, (k, oi, self.token), a, self._name(d, p))
                                          for a, (d, p) in enumerate(zip(shape, pshape)))
        prefs = ref.refs[k]
        for i, r in enumerate(refs):
            if type(r) is tuple or r.checked or r.kind not in ("const", "sym"):
                continue
            r.checked = True
            pr = prefs[i]
            if type(pr) is tuple or pr.kind not in ("const", "sym"):
                raise ExportError(f"input {i} of {type(node.op).__name__} at {where(loc)} is a constant in the "
                                  f"example run but not when the dynamic axes change size ({self._sizes()})")
            if r.kind == "const":
                self._check_const(r, pr.array, node, loc)
        if node.op is not ref.nodes[k].op:
            self._check_attrs(node.op, ref.nodes[k].op, loc)

    def _sizes(self) -> str:
        return ", ".join(f"{s.name}: {s.example} -> {s.probe}" for s in self.symbols)

    def _probe_sizes(self) -> str:
        return ", ".join(f"{s.name}={s.probe}" for s in self.symbols)

    def _name(self, d: int, p: int) -> str:
        m = self.match(d, p)
        return m.name if isinstance(m, SymInt) else f"s{next(self._fresh)}"

    def match(self, d: int, p: int) -> SymInt | int | None:
        """An expression of the symbols that is `d` in the example run and `p` in the probe run, if a simple
        one (s, s+c, s*c, s//c, s1*s2*c) fits."""
        syms = [(s.sym, s.example, s.probe) for s in self.symbols if s.sym is not None]
        for s, e, q in syms:
            if (e, q) == (d, p):
                return s
        for s, e, q in syms:
            if d - e == p - q:
                return s + (d - e)
            if e and d % e == 0 and p == q * (d // e):
                return s * (d // e)
            if d and e % d == 0 and q // (e // d) == p and e // (e // d) == d:
                return s // (e // d)
        for (s1, e1, q1), (s2, e2, q2) in itertools.combinations_with_replacement(syms, 2):
            e, q = e1 * e2, q1 * q2
            if e and d % e == 0 and p == q * (d // e):
                return s1 * s2 * (d // e)
        return None

    def _check_const(self, leaf: Leaf, other: Any, node: Any, loc: Any) -> None:
        a = leaf.array
        op = type(node.op).__name__
        if a.shape != other.shape:
            if a.ndim == other.ndim:
                self._dynamic_const(leaf, other, op, loc)
                if leaf.kind != "const":
                    return
            self.issues.append((op, loc, f"an input of {op} is a tensor of shape {tuple(a.shape)} created at "
                                f"{where(leaf.loc)} whose shape follows the dynamic axes ({tuple(other.shape)} in "
                                f"the run with {self._probe_sizes()}) but is a constant in the graph; build it "
                                f"from the inputs (zeros_like, new_zeros, expand, arange on x.shape[i]) instead"))
            return
        xp = xp_of(a)
        if not bool(xp.array_equal(a, xp.asarray(other), equal_nan=a.dtype.kind in "fc")):
            self.issues.append((op, loc, f"an input of {op} is a constant created at {where(leaf.loc)} whose value "
                                f"depends on the dynamic axes ({self._sizes()}); it would be baked into the graph. "
                                "Compute it with tensor ops from the inputs, or from x.shape[i] used directly as an "
                                "operand"))

    def _dynamic_const(self, leaf: Leaf, other: Any, op: str, loc: Any) -> None:
        """A constant whose shape follows the dynamic axes: rebuilt in the graph when it is a fill or a range."""
        a = np.asarray(leaf.array if type(leaf.array) is np.ndarray else leaf.array.get())
        b = np.asarray(other if type(other) is np.ndarray else other.get())
        dims = []
        for d, p in zip(a.shape, b.shape):
            m = d if d == p else self.match(d, p)
            if m is None:
                return
            dims.append(m)
        flat_a, flat_b = a.reshape(-1), b.reshape(-1)
        if flat_a.size and flat_b.size and (flat_a == flat_a[0]).all() and (flat_b == flat_a[0]).all():
            leaf.kind, leaf.dims, leaf.array = "fill", tuple(dims), a.reshape(-1)[:1].reshape(())
        elif a.ndim == 1 and a.size >= 2 and b.size >= 2 and a[0] == b[0] and a[1] - a[0] == b[1] - b[0]:
            step = a[1] - a[0]
            if np.array_equal(a, a[0] + step * np.arange(a.size, dtype=a.dtype)) and \
                    np.array_equal(b, b[0] + step * np.arange(b.size, dtype=b.dtype)):
                leaf.kind, leaf.dims, leaf.array = "range", tuple(dims), np.array([a[0], step], a.dtype)
        if leaf.kind != "const":
            leaf.symshape = tuple(dims)

    def _check_attrs(self, op: Any, other: Any, loc: Any) -> None:
        mine, theirs = op.attrs(), other.attrs()
        for key, v in mine.items():
            if not _same(v, theirs.get(key, v)):
                name = type(op).__name__
                self.issues.append((name, loc, f"{name} attribute {key}={v!r} was computed from a dynamic size (the "
                                    f"run with {self._probe_sizes()} recorded {theirs[key]!r}); pass the symbolic size "
                                    "(x.shape[i], or -1) instead of a Python int so the graph computes it"))


def _sources(s: Any) -> Iterator[Any]:
    if isinstance(s, SymInt):
        if s.expr[0] == "dim":
            yield s.expr[1]
        else:
            yield from _sources(s.expr[1])
            yield from _sources(s.expr[2])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, SymInt):
        return True
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[x], b[x]) for x in a)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return True
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # not comparable: nothing to report
        return True


# ---- running the model -------------------------------------------------------------------------------------

def _modules(model: Any) -> list[tuple[str, Any]]:
    named = getattr(model, "named_modules", None)
    return list(named()) if callable(named) else []


def params_of(model: Any) -> dict[int, tuple[str, Tensor]]:
    """id(tensor) -> (module path, tensor) for every parameter and buffer (tied weights appear once)."""
    out: dict[int, tuple[str, Tensor]] = {}
    for what in ("named_parameters", "named_buffers"):
        fn = getattr(model, what, None)
        if callable(fn):
            for name, p in fn():
                if p is not None and id(p) not in out:
                    out[id(p)] = (name, p)
    return out


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Export (and verification) see eval-mode semantics; every module's own flag is restored after."""
    mods = _modules(model)
    saved = [(m, m.training) for _, m in mods if hasattr(m, "training")]
    try:
        if saved:
            model.eval()
        yield
    finally:
        for m, flag in saved:
            m.training = flag


@contextmanager
def _scoped(cap: Capture, model: Any) -> Iterator[None]:
    """Name nodes by module path through global module hooks (a no-op for plain functions)."""
    mods = _modules(model)
    if not mods:
        yield
        return
    from ..nn.module import register_module_forward_hook, register_module_forward_pre_hook

    names = {id(m): name for name, m in mods}
    stack: list[str] = []

    def pre(module: Any, args: Any) -> None:
        if state.capture is not cap:
            return
        stack.append(cap.scope)
        name = names.get(id(module))
        if name is None:  # a module created during forward: named under its caller
            name = f"{cap.scope}.{type(module).__name__}" if cap.scope else type(module).__name__
        cap.scope = name
        cap.scope_types.setdefault(name, type(module).__name__)

    def post(module: Any, args: Any, out: Any) -> None:
        if state.capture is cap and stack:
            cap.scope = stack.pop()

    h1 = register_module_forward_pre_hook(pre)
    h2 = register_module_forward_hook(post, always_call=True)
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


def run_captured(cap: Capture, model: Callable[..., Any], args: tuple, kwargs: dict | None = None) -> Any:
    prev = state.capture
    state.capture = cap
    try:
        with no_grad(), _scoped(cap, model):
            return model(*args, **(kwargs or {}))
    finally:
        state.capture = prev


def trace(model: Callable[..., Any], args: tuple, inputs: list[tuple[str, dict[int, Symbol]]],
          symbols: list[Symbol], probe_args: tuple | None) -> tuple[Capture, Any]:
    """Run `model(*args)` under capture (after a probe run at `probe_args` when there are dynamic axes).

    `inputs` gives (name, {axis: Symbol}) for each tensor of `args`, in flattening order.
    """
    params = params_of(model)
    reference = None
    if probe_args is not None:
        reference = Capture(params)
        for (name, _), t in zip(inputs, _flat_tensors(probe_args)):
            reference.add_input(t, name, {})
        try:
            run_captured(reference, model, probe_args)
        except ExportError:
            raise
        except Exception as e:
            try:  # the model's own error at the example sizes is the one to report
                with no_grad():
                    model(*args)
            except Exception:
                raise
            sizes = ", ".join(f"{s.name}={s.probe}" for s in symbols)
            raise ExportError(f"the model fails when its dynamic axes take other sizes ({sizes}, example "
                              f"{', '.join(f'{s.name}={s.example}' for s in symbols)}): {type(e).__name__}: {e}. "
                              "Dynamic axes must accept any size; check the `dynamic` argument.") from e
    cap = Capture(params, reference=reference, symbols=symbols)
    for (name, dims), t in zip(inputs, _flat_tensors(args)):
        cap.add_input(t, name, dims)
    out = run_captured(cap, model, args)
    if reference is not None and len(reference.nodes) != len(cap.nodes):
        k = len(cap.nodes)
        raise ExportError(f"the model records a different graph when the dynamic axes change size "
                          f"({cap._sizes()}): the other run goes on with "
                          f"{type(reference.nodes[k].op).__name__} at "
                          f"{where(reference.locs[k])} after the example run ended")
    cap.reference = None  # the probe's tensors can go
    return cap, out


def _flat_tensors(args: Any) -> list[Tensor]:
    out: list[Tensor] = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(_flat_tensors(a))
    return out
