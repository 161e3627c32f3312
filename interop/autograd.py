"""The tape: Op (one class per op), Node (one recorded application), the backward engine and grad modes.

An op's `forward` runs on raw xp arrays; when a gradient is needed (or an export capture is active) the call is
recorded as a Node with a global, increasing `seq`. Backward pops reachable nodes from a max-heap on `seq`, so it
visits them in reverse topological order with no recursion, and calls each op's `backward` on Tensors: run under
`no_grad` it gives plain gradients, run with grad enabled (`create_graph=True`) it records a differentiable graph.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from . import dtypes
from ._state import state
from .backend import xp_of
from .tensor import Tensor

__all__ = [
    "Op", "Node", "Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
    "is_grad_enabled", "gradcheck", "GradcheckError",
]

_seq = itertools.count()
DIFFERENTIABLE = frozenset({dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64,
                            dtypes.complex64, dtypes.complex128})


class Node:
    """One recorded op application. It is also the `ctx` the op's forward stashes arrays on for its backward.

    The recorded fields are slots; what an op stashes lands in the instance dict, which Python only creates for
    ops that stash something (one allocation fewer per recorded add or matmul)."""

    __slots__ = ("__dict__", "__weakref__", "edges", "inputs", "op", "outs", "seq")
    op: Op
    inputs: tuple[Tensor, ...] | None
    outs: list[weakref.ref]
    seq: int
    watched = False  # an output has hooks or retains its grad
    versions: tuple[int, ...] = ()
    out_version = -1
    out_meta: tuple = ()

    def output(self, i: int = 0) -> Tensor:
        """The tensor this node produced, for ops with `saves_output` (a plain wrapper of the saved array once the
        tensor itself is gone, which only happens when the graph is not kept for higher-order gradients)."""
        t = self.outs[i]()
        return t if t is not None else Tensor(self.out_data)

    def name(self) -> str:
        return f"{type(self.op).__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()} seq={self.seq}>"

    # The custom-Function face of a ctx, as in PyTorch.
    def save_for_backward(self, *tensors: Tensor | None) -> None:
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        return tuple(self._map.get(id(t), t) if t is not None else None for t in self._saved)

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        return self._needs


class Op:
    """Base of every op: `forward(ctx, *arrays)`, `backward(ctx, *grads)`, `to_onnx(g, *values)`.

    Class attributes describe what the engine must know:
    `saves`: indices of the inputs whose values `backward` reads (checked against later in-place edits);
    `saves_output`: whether `backward` reads the output; `is_view`: the output may alias input 0's memory.
    """

    registry: ClassVar[dict[str, type[Op]]] = {}
    saves: ClassVar[tuple[int, ...]] = ()
    saves_output: ClassVar[bool] = False
    is_view: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            if cls.__name__ in Op.registry:
                raise TypeError(f"op {cls.__name__} is registered twice")
            Op.registry[cls.__name__] = cls

    def forward(self, ctx: Node, *xs: Any) -> Any:
        raise NotImplementedError

    def backward(self, ctx: Node, *grads: Tensor) -> Tensor | tuple[Tensor | None, ...] | None:
        raise RuntimeError(f"{type(self).__name__} is not differentiable")

    def to_onnx(self, g: Any, *xs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no ONNX lowering")

    def attrs(self) -> dict[str, Any]:
        """The op's attributes, for repr, CSE and error messages."""
        return dict(vars(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.attrs().items())})"

    def __call__(self, *inputs: Tensor) -> Any:
        # The hot path of every op: unary and binary calls are spelled out (no loops, no comprehensions).
        ctx = Node()
        n = len(inputs)
        if n == 1:
            a = inputs[0]
            out = self.forward(ctx, a.data)
            rg = a.requires_grad and state.grad_enabled
        elif n == 2:
            a, b = inputs
            if type(a.data) is not np.ndarray or type(b.data) is not np.ndarray:
                _check_devices(self, inputs)
            out = self.forward(ctx, a.data, b.data)
            rg = (a.requires_grad or b.requires_grad) and state.grad_enabled
        else:
            if n:
                _check_devices(self, inputs)
            out = self.forward(ctx, *[t.data for t in inputs])
            rg = state.grad_enabled and any(t.requires_grad for t in inputs)
        cap = state.capture
        if type(out) is tuple:
            return self._wrap_many(ctx, inputs, tuple(np.asarray(o) if isinstance(o, np.generic) else o
                                                      for o in out), rg, cap)
        if type(out) is not np.ndarray and isinstance(out, np.generic):  # numpy gives scalars for 0-d results
            out = np.asarray(out)
        t = Tensor(out, rg and out.dtype in DIFFERENTIABLE)
        if self.is_view and out.base is not None:
            src = inputs[0]
            t._vc, t._base, t._readonly = src._vc, src._base if src._base is not None else src, src._readonly
        if rg or cap is not None:
            ctx.op, ctx.inputs, ctx.seq, ctx.outs = self, inputs, next(_seq), [weakref.ref(t)]
            if n == 1:
                ctx.edges = ((a._node, a._oi) if a.requires_grad else None,)
            elif n == 2:
                ctx.edges = ((a._node, a._oi) if a.requires_grad else None,
                             (b._node, b._oi) if b.requires_grad else None)
            else:
                ctx.edges = _edges(inputs)
            t._node = ctx
            if self.saves:
                ctx.versions = tuple([inputs[i]._vc[0] for i in self.saves])
            if self.saves_output:
                ctx.out_data, ctx.out_vc, ctx.out_version = out, t._vc, t._vc[0]
            if cap is not None:
                cap.record(ctx)
        return t

    def _wrap_many(self, ctx: Node, inputs: tuple[Tensor, ...], outs: tuple, rg: bool, cap: Any) -> tuple:
        ts = tuple(Tensor(o, rg and o.dtype in DIFFERENTIABLE) for o in outs)
        if self.is_view:
            src = inputs[0]
            base = src._base if src._base is not None else src
            for t in ts:
                if t.data.base is not None:
                    t._vc, t._base, t._readonly = src._vc, base, src._readonly
        if rg or cap is not None:
            ctx.op, ctx.inputs, ctx.seq = self, inputs, next(_seq)
            ctx.edges = _edges(inputs)
            ctx.outs = [weakref.ref(t) for t in ts]
            ctx.out_meta = tuple((o.shape, o.dtype) for o in outs)
            for i, t in enumerate(ts):
                t._node, t._oi = ctx, i
            if self.saves:
                ctx.versions = tuple([inputs[i]._vc[0] for i in self.saves])
            if cap is not None:
                cap.record(ctx)
        return ts


def _edges(inputs: tuple[Tensor, ...]) -> tuple:
    """Where each input's gradient goes, fixed when the op is recorded: a later in-place op gives the tensor a
    new node, but this op consumed the value before it (PyTorch's edges). None: the input needed no gradient."""
    return tuple([(t._node, t._oi) if t.requires_grad else None for t in inputs])


def _device_mismatch(op: Op, inputs: Sequence[Tensor]) -> None:
    devs = ", ".join(str(t.device) for t in inputs)
    raise RuntimeError(f"Expected all tensors to be on the same device, but {type(op).__name__} got tensors on {devs}")


def _check_devices(op: Op, inputs: Sequence[Tensor]) -> None:
    kind = type(inputs[0].data)
    if any(type(t.data) is not kind for t in inputs):
        _device_mismatch(op, inputs)
    if kind is not np.ndarray:
        first = inputs[0].data.device.id
        if any(t.data.device.id != first for t in inputs):
            _device_mismatch(op, inputs)


def apply_inplace(op: Op, t: Tensor, *others: Tensor) -> Tensor:
    """Run `op(t, *others)` and write the result into `t`'s memory, rewiring `t` to the new node."""
    if t._readonly:
        raise RuntimeError(f"{type(op).__name__}: this tensor is read-only (imported read-only through DLPack); "
                           "in-place operations on it are not allowed")
    rg = state.grad_enabled and (t.requires_grad or any(o.requires_grad for o in others))
    if rg and t.requires_grad and t._node is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    if rg and t._base is not None and (t._base.requires_grad or t._base._node is not None):
        raise RuntimeError(f"in-place {type(op).__name__} on a view of a tensor that requires grad is not supported: "
                           "the base's history would not see it; use out-of-place ops or index assignment on the base")
    if not rg and state.capture is None:
        _write_into(op, t, np.asarray(op.forward(Node(), t.data, *[o.data for o in others])) if t.data.ndim == 0
                    else op.forward(Node(), t.data, *[o.data for o in others]))
        return t
    # `shadow` stands for t's value before the write. When backward reads that value (x.mul_(y) needs the old x),
    # it gets its own copy, as PyTorch's original_self does; otherwise it aliases t and the version check guards it.
    shadow = Tensor(t.data, t.requires_grad)
    shadow._node, shadow._oi, shadow._vc, shadow._base = t._node, t._oi, t._vc, t._base
    if 0 in op.saves:
        shadow.data, shadow._vc = t.data.copy(), [t._vc[0]]
    if state.capture is not None:
        state.capture.alias(t, shadow)
    if t._node is not None:
        t._node.outs[t._oi] = weakref.ref(shadow)
    res = op(shadow, *others)
    _write_into(op, t, res.data)
    t._node, t._oi, t.requires_grad = res._node, res._oi, res.requires_grad
    if res._node is not None:
        res._node.outs[res._oi] = weakref.ref(t)
        if op.saves_output:
            res._node.out_vc, res._node.out_version = t._vc, t._vc[0]
        if state.capture is not None:
            state.capture.alias(res, t)
    return t


def _write_into(op: Op, t: Tensor, out: Any) -> None:
    if out.shape != t.data.shape:
        raise RuntimeError(f"{type(op).__name__}: output with shape {list(t.data.shape)} doesn't match the "
                           f"broadcast shape {list(out.shape)}")
    if out.dtype != t.data.dtype and dtypes.category(out.dtype) > dtypes.category(t.data.dtype):
        raise RuntimeError(f"{type(op).__name__}: result type {dtypes.name(out.dtype)} can't be cast to the "
                           f"desired output type {dtypes.name(t.data.dtype)}")
    t.data[...] = out
    t._vc[0] += 1


# ---- grad modes ---------------------------------------------------------------------------------------------------

class _GradMode(contextlib.ContextDecorator):
    _enabled: bool
    _inference = False

    def __enter__(self) -> None:
        self._prev = state.grad_enabled, state.inference
        state.grad_enabled = self._enabled
        state.inference = self._inference or (state.inference and not self._enabled)

    def __exit__(self, *exc: object) -> None:
        state.grad_enabled, state.inference = self._prev


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record nothing for autograd."""

    _enabled = False


class enable_grad(_GradMode):
    _enabled = True


class set_grad_enabled(_GradMode):
    """Sets grad mode at once (so it also works as a plain call, as in PyTorch) and restores it on exit."""

    def __init__(self, mode: bool):
        self._enabled = bool(mode)
        self._prev = state.grad_enabled, state.inference
        state.grad_enabled = self._enabled

    def __enter__(self) -> None:
        pass


class inference_mode(_GradMode):
    """`no_grad` for inference; `inference_mode(False)` is a no-op region."""

    def __init__(self, mode: bool = True):
        self._enabled = not mode
        self._inference = bool(mode)


def is_grad_enabled() -> bool:
    return state.grad_enabled


def is_inference_mode_enabled() -> bool:
    return state.inference


# ---- the engine -----------------------------------------------------------------------------------------------------

def _as_tuple(x: Any) -> tuple:
    if x is None:
        return ()
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def _root_grads(roots: tuple[Tensor, ...], grads: tuple) -> list[Tensor]:
    out = []
    for i, r in enumerate(roots):
        g = grads[i] if i < len(grads) else None
        if not r.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if r.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = Tensor(_ones_like(r.data))
        elif not isinstance(g, Tensor):
            g = Tensor(xp_of(r.data).asarray(g, dtype=r.dtype))
        if tuple(g.data.shape) != tuple(r.data.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(g.data.shape)} and "
                               f"output[{i}] has a shape of {tuple(r.data.shape)}.")
        out.append(g)
    return out


def _ones_like(a: Any) -> Any:
    return xp_of(a).ones(a.shape, a.dtype)


def _run(roots: tuple[Tensor, ...], root_grads: list[Tensor], keep: bool, create_graph: bool,
         targets: tuple[Tensor, ...] | None) -> list[Tensor | None] | None:
    """Propagate `root_grads` back from `roots`. With `targets`, collect their gradients instead of filling
    every reachable leaf's `.grad`."""
    pending: dict[Node, list] = {}
    heap: list[tuple[int, Node]] = []
    owned = {id(g) for g in root_grads}  # tensors the caller may still hold: never store them as a .grad
    found: list[Tensor | None] | None = None
    where: dict[int, int] = {}
    target_nodes: dict[tuple[int, int], int] = {}
    if targets is not None:
        found = [None] * len(targets)
        for k, t in enumerate(targets):
            if t._node is None:
                where[id(t)] = k
            else:
                target_nodes[id(t._node), t._oi] = k

    def deliver(t: Tensor, g: Tensor, node: Node | None, i: int) -> None:
        if node is None:
            if t._hooks:
                g = _run_hooks(t, g)
            if found is not None:
                k = where.get(id(t))
                if k is not None:
                    found[k] = g if found[k] is None else found[k] + g
                return
            _accumulate(t, g, create_graph, owned)
            return
        slot = pending.get(node)
        if slot is None:
            slot = pending[node] = [None] * len(node.outs)
            heapq.heappush(heap, (-node.seq, node))
        slot[i] = g if slot[i] is None else slot[i] + g

    for r, g in zip(roots, root_grads):
        deliver(r, g, r._node, r._oi)
    while heap:
        node = heapq.heappop(heap)[1]
        gs = pending.pop(node)
        op, inputs = node.op, node.inputs
        if inputs is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access saved "
                               "tensors after they have already been freed). Specify retain_graph=True if you need "
                               "to backward through the graph a second time.")
        if node.watched:
            gs = _watch(node, gs, create_graph)
        if target_nodes:
            for i, g in enumerate(gs):
                k = target_nodes.get((id(node), i))
                if k is not None:
                    found[k] = g
        if node.versions or node.out_version >= 0:
            _check_versions(node)
        if len(gs) > 1:
            gs = [g if g is not None else Tensor(_zeros(inputs, shape, dt)) for g, (shape, dt) in
                  zip(gs, node.out_meta)]
        in_grads = op.backward(node, *gs)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        for t, g, e in zip(inputs, in_grads, node.edges):
            if g is None or e is None:
                continue
            dst = e[0]
            if dst is None:
                deliver(t, g, None, 0)
                continue
            slot = pending.get(dst)  # deliver() to a node, inlined: this loop runs once per edge of the graph
            if slot is None:
                slot = pending[dst] = [None] * len(dst.outs)
                heapq.heappush(heap, (-dst.seq, dst))
            i = e[1]
            slot[i] = g if slot[i] is None else slot[i] + g
        if not keep:
            _free(node)
    return found


def _zeros(inputs: tuple[Tensor, ...], shape: tuple, dt: Any) -> Any:
    return xp_of(inputs[0].data).zeros(shape, dt)


def _free(node: Node) -> None:
    """Drop what backward no longer needs (inputs and stashed arrays), keeping the node's identity."""
    node.inputs, node.edges = None, ()
    node.__dict__.clear()


def _check_versions(node: Node) -> None:
    checks = [(node.inputs[i], v, f"input {i}") for i, v in zip(node.op.saves, node.versions)]
    if node.out_version >= 0:
        checks.append((Tensor(node.out_data), node.out_version, "output 0"))
    for t, v, which in checks:
        now = node.out_vc[0] if which == "output 0" else t._vc[0]
        if now != v:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[{dtypes.name(t.dtype)} {list(t.data.shape)}], which is {which} of {type(node.op).__name__}, "
                f"is at version {now}; expected version {v} instead. Hint: the in-place op came after "
                f"{type(node.op).__name__} in the forward pass; use an out-of-place op (e.g. x = x + 1).")


def _run_hooks(t: Tensor, g: Tensor) -> Tensor:
    for h in list(t._hooks):
        r = h(g)
        if r is not None:
            g = r
    return g


def _watch(node: Node, gs: list, create_graph: bool) -> list:
    gs = list(gs)
    for i, ref in enumerate(node.outs):
        t = ref()
        if t is None or gs[i] is None:
            continue
        if t._hooks:
            gs[i] = _run_hooks(t, gs[i])
        if t._retain:
            g = gs[i] if create_graph else gs[i].detach()
            t.grad = g if t.grad is None else t.grad + g
    return gs


def _accumulate(t: Tensor, g: Tensor, create_graph: bool, owned: set[int]) -> None:
    if t.grad is None:
        if not create_graph:
            if id(g) in owned or g._base is not None or g._node is not None:
                g = Tensor(g.data.copy())
            owned.add(id(g))
        elif id(g) in owned:
            g = g + 0
        t.grad = g
    elif create_graph or t.grad._node is not None:
        t.grad = t.grad + g
    else:
        t.grad.data += g.data
        t.grad._vc[0] += 1


def backward(tensors: Tensor | Sequence[Tensor], grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs: Any = None) -> None:
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's `.grad` (or only into `inputs`)."""
    roots = _as_tuple(tensors)
    grads = _root_grads(roots, _as_tuple(grad_tensors))
    keep = create_graph if retain_graph is None else retain_graph
    with set_grad_enabled(create_graph):
        if inputs is None:
            _run(roots, grads, keep, create_graph, None)
            return
        targets = _as_tuple(inputs)
        found = _run(roots, grads, keep, create_graph, targets)
        for t, g in zip(targets, found):
            if g is not None:
                _accumulate(t, g, create_graph, {id(x) for x in grads})


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor], grad_outputs: Any = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Return d(outputs)/d(inputs) without touching any `.grad`, as `torch.autograd.grad` does."""
    roots = _as_tuple(outputs)
    targets = _as_tuple(inputs)
    for i, t in enumerate(targets):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    grads = _root_grads(roots, _as_tuple(grad_outputs))
    keep = create_graph if retain_graph is None else retain_graph
    with set_grad_enabled(create_graph):
        found = _run(roots, grads, keep, create_graph, targets)
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have been used in "
                               "the graph. Set allow_unused=True if this is the desired behavior.")
    return tuple(found)


# ---- custom ops -----------------------------------------------------------------------------------------------------

class Function:
    """A user-defined op, as `torch.autograd.Function`:

    class Square(Function):
        @staticmethod
        def forward(ctx, x): ctx.save_for_backward(x); return x * x
        @staticmethod
        def backward(ctx, g): (x,) = ctx.saved_tensors; return 2 * x * g

    `Square.apply(x)`. An optional `symbolic(g, *inputs)` static method gives its ONNX lowering.
    """

    @staticmethod
    def forward(ctx: Node, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Node, *grads: Tensor) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Any:
        tensors = tuple(a for a in args if isinstance(a, Tensor))
        return FunctionOp(cls, args)(*tensors)


class FunctionOp(Op):
    """The op that runs a user's `Function` subclass."""

    def __init__(self, fn: type[Function], args: tuple):
        self.fn = fn
        self.template = tuple(None if isinstance(a, Tensor) else a for a in args)
        self.slots = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))

    def attrs(self) -> dict[str, Any]:
        return {"fn": self.fn.__name__}

    def forward(self, ctx: Node, *arrays: Any) -> Any:
        wrappers = [Tensor(a) for a in arrays]
        args = list(self.template)
        for slot, w in zip(self.slots, wrappers):
            args[slot] = w
        ctx._saved, ctx._map, ctx._wrappers = (), {}, wrappers
        ctx._needs = tuple(False for _ in self.template)
        with no_grad():
            out = self.fn.forward(ctx, *args)
        if isinstance(out, tuple):
            return tuple(o.data for o in out)
        return out.data

    def backward(self, ctx: Node, *grads: Tensor) -> Any:
        ctx._map = {id(w): t for w, t in zip(ctx._wrappers, ctx.inputs)}
        needs = [False] * len(self.template)
        for slot, t in zip(self.slots, ctx.inputs):
            needs[slot] = t.requires_grad
        ctx._needs = tuple(needs)
        out = _as_tuple(self.fn.backward(ctx, *grads))
        return tuple(out[slot] if slot < len(out) else None for slot in self.slots)

    def to_onnx(self, g: Any, *xs: Any) -> Any:
        symbolic = getattr(self.fn, "symbolic", None)
        if symbolic is None:
            raise NotImplementedError(f"custom Function {self.fn.__name__} has no `symbolic(g, *inputs)` lowering")
        return symbolic(g, *xs)


# ---- gradcheck ------------------------------------------------------------------------------------------------------

class GradcheckError(RuntimeError):
    pass


def _outputs_of(fn: Callable[..., Any], inputs: tuple) -> list[Tensor]:
    return [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor) and o.dtype in DIFFERENTIABLE]


def gradcheck(fn: Callable[..., Any], inputs: Iterable[Any], *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare `fn`'s analytic Jacobian (one backward per output element) with central finite differences
    (two forwards per input element). Use float64 inputs."""
    inputs = tuple(inputs)
    diff = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    outs = _outputs_of(fn, inputs)
    n_out = sum(o.data.size for o in outs)
    analytic = [np.zeros((n_out, t.data.size)) for t in diff]
    row = 0
    for out in outs:
        for j in range(out.data.size):
            onehot = np.zeros(out.data.shape, out.dtype)
            onehot.reshape(-1)[j] = 1
            if out.requires_grad:
                gs = grad(out, diff, grad_outputs=Tensor(onehot), retain_graph=True, allow_unused=True)
                for k, g in enumerate(gs):
                    if g is not None:
                        analytic[k][row] = np.asarray(g.data, np.float64).reshape(-1)
            row += 1
    for k, t in enumerate(diff):
        flat = t.data.reshape(-1)  # a view: t must be contiguous, as gradcheck inputs are
        for i in range(flat.size):
            orig = flat[i].item()
            with no_grad():
                flat[i] = orig + eps
                plus = np.concatenate([np.asarray(o.data, np.float64).reshape(-1) for o in _outputs_of(fn, inputs)])
                flat[i] = orig - eps
                minus = np.concatenate([np.asarray(o.data, np.float64).reshape(-1) for o in _outputs_of(fn, inputs)])
                flat[i] = orig
            numeric = (plus - minus) / (2 * eps)
            bad = np.abs(analytic[k][:, i] - numeric) > atol + rtol * np.abs(numeric)
            if bad.any():
                o = int(np.argmax(bad))
                if raise_exception:
                    raise GradcheckError(f"Jacobian mismatch for output element {o} wrt input {k} element {i}: "
                                         f"analytic {analytic[k][o, i]!r} vs numerical {numeric[o]!r}")
                return False
    return True
