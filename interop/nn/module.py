"""Module: the base of every layer and model, with PyTorch's registration, traversal, state-dict and hook API.

A Module keeps its Parameters, buffers and child Modules in three ordered dicts filled by `__setattr__`, so
`self.fc = Linear(...)` registers a child and `self.w = Parameter(...)` a weight; traversal, `state_dict` keys
and the names the exporter gives initializers (`encoder.layers.0.linear1.weight`) all come from these dicts.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from .. import dtypes
from ..autograd import no_grad
from ..backend import Device, to_device
from ..backend import device as as_device
from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle", "register_module_forward_pre_hook", "register_module_forward_hook"]


class RemovableHandle:
    """Returned by every `register_*_hook`; `remove()` (or leaving a `with` block) unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _Hook(NamedTuple):
    fn: Callable
    with_kwargs: bool = False
    always_call: bool = False


# Hooks run around every Module call (PyTorch's torch.nn.modules.module.register_module_forward_*_hook); the
# exporter uses them to name graph nodes by module path.
_global_pre_hooks: dict[int, _Hook] = {}
_global_hooks: dict[int, _Hook] = {}


def _add_hook(hooks: dict, hook: _Hook, prepend: bool) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        items = list(hooks.items())
        hooks.clear()
        hooks.update([items[-1], *items[:-1]])
    return handle


def register_module_forward_pre_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """`hook(module, args)` runs before every Module's forward, before the module's own pre-hooks."""
    return _add_hook(_global_pre_hooks, _Hook(hook), False)


def register_module_forward_hook(hook: Callable[..., Any], *, with_kwargs: bool = False,
                                 always_call: bool = False) -> RemovableHandle:
    """`hook(module, args, output)` runs after every Module's forward, before the module's own hooks."""
    return _add_hook(_global_hooks, _Hook(hook, with_kwargs, always_call), False)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _typename(v: Any) -> str:
    return f"interop.{type(v).__name__}" if isinstance(v, Tensor) else type(v).__name__


def _quoted(keys: list[str]) -> str:
    return ", ".join('"' + k + '"' for k in keys)


def _addindent(s: str, n: int) -> str:
    first, *rest = s.split("\n")
    return first if not rest else "\n".join([first, *[" " * n + line for line in rest]])


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {_typename(name)}")
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\", got: {name}")
    if name == "":
        raise KeyError(f"{kind} name can't be empty string \"\"")


class Module:
    """Base class of every layer and model: subclass it, assign layers and Parameters in `__init__`, write
    `forward`, and call the instance."""

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _non_persistent_buffers_set: set[str]
    _modules: dict[str, Module | None]
    _forward_pre_hooks: dict[int, _Hook]
    _forward_hooks: dict[int, _Hook]

    def __init__(self, *args: Any, **kwargs: Any):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments: {args} {kwargs}; "
                            "Module.__init__ takes none")
        init = object.__setattr__
        init(self, "training", True)
        init(self, "_parameters", {})
        init(self, "_buffers", {})
        init(self, "_non_persistent_buffers_set", set())
        init(self, "_modules", {})
        init(self, "_forward_pre_hooks", {})
        init(self, "_forward_hooks", {})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        name = type(self).__name__
        raise NotImplementedError(f'Module [{name}] is missing the required "forward" function')

    # ---- calling -------------------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks or _global_pre_hooks or _global_hooks):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        for hook in [*_global_pre_hooks.values(), *self._forward_pre_hooks.values()]:
            if hook.with_kwargs:
                res = hook.fn(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, "
                                           f"new_kwargs), but got {res}.")
                    args, kwargs = res
            else:
                res = hook.fn(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        hooks = [*_global_hooks.values(), *self._forward_hooks.values()]
        try:
            out = self.forward(*args, **kwargs)
        except BaseException:
            for hook in hooks:
                if hook.always_call:
                    with contextlib.suppress(Exception):  # the forward's own error is the one to report
                        hook.fn(self, args, kwargs, None) if hook.with_kwargs else hook.fn(self, args, None)
            raise
        for hook in hooks:
            res = hook.fn(self, args, kwargs, out) if hook.with_kwargs else hook.fn(self, args, out)
            if res is not None:
                out = res
        return out

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args)` (or `hook(module, args, kwargs)`) runs before `forward`; a non-None result
        replaces the arguments."""
        return _add_hook(self._forward_pre_hooks, _Hook(hook, with_kwargs), prepend)

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False, always_call: bool = False) -> RemovableHandle:
        """`hook(module, args, output)` (or `hook(module, args, kwargs, output)`) runs after `forward`; a
        non-None result replaces the output. `always_call` also runs it (with output None) when forward raises."""
        return _add_hook(self._forward_hooks, _Hook(hook, with_kwargs, always_call), prepend)

    # ---- registration --------------------------------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(interop.nn.Parameter or None required)")
        if param is not None and param._node is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                             f"created explicitly. To express '{name}' as a function of another Tensor, "
                             "compute the value in the forward() method.")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not a parameter (running statistics); `persistent=False` keeps it out of
        `state_dict`."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(interop Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        _check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, d, self._buffers, self._modules)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(interop.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, d, params, self._buffers)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                "(interop.nn.Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(interop Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, *where: dict) -> None:
        for d in where:
            d.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            members = d.get(store)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._parameters, *self._buffers, *self._modules})

    # ---- traversal -----------------------------------------------------------------------------------------
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                sub_prefix = f"{prefix}.{name}" if prefix else name
                yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                   else [(prefix, self)])
        for mod_prefix, module in modules:
            for name, v in getattr(module, store).items():
                if v is None or id(v) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(v))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs; a Parameter shared by several modules (tied weights) comes once, under its
        first name, unless `remove_duplicate=False`."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path, e.g. `model.get_submodule("encoder.layers.0")`."""
        mod = self
        for i, part in enumerate(target.split(".") if target else []):
            child = mod._modules.get(part)
            if child is None:
                where = ".".join(target.split(".")[:i]) or type(self).__name__
                raise AttributeError(f"{where} has no attribute `{part}`")
            mod = child
        return mod

    # ---- modes and whole-module transforms -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            zero_grad_(p, set_to_none)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call `fn` on every submodule (children first) and then on this module, e.g. for custom init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Convert every parameter, gradient and buffer with `fn`. Parameters stay the same objects (their
        arrays are swapped), so optimizers built before the move keep working."""
        for m in self.children():
            m._apply(fn)
        with no_grad():
            for p in self._parameters.values():
                if p is None:
                    continue
                p.data = fn(p).data
                if p.grad is not None:
                    p.grad.data = fn(p.grad).data
            for name, b in self._buffers.items():
                if b is not None:
                    self._buffers[name] = fn(b)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)` or `.to(tensor)`: moves every parameter and
        buffer, and casts the floating ones (integer buffers keep their dtype)."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, (Device, int)) or (isinstance(a, str) and a not in dtypes._BY_NAME):
                device = a
            else:
                dtype = a
        if dtype is not None:
            dtype = dtypes.as_dtype(dtype)
            if dtypes.category(dtype) < 2:
                raise TypeError("nn.Module.to only accepts floating point or complex dtypes, but got desired "
                                f"dtype=interop.{dtypes.name(dtype)}")
        dev = as_device(device) if device is not None else None
        return self._apply(lambda t: _convert(t, dev, dtype))

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Module:
        return self.to(as_device("cuda" if device is None else device))

    def float(self) -> Module:
        return self.to(dtypes.float32)

    def double(self) -> Module:
        return self.to(dtypes.float64)

    def half(self) -> Module:
        return self.to(dtypes.float16)

    def bfloat16(self) -> Module:
        return self.to(dtypes.bfloat16)

    # ---- state dict ----------------------------------------------------------------------------------------
    def _local_state(self) -> Iterator[tuple[str, Tensor]]:
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                yield name, b

    def _state_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every (prefix, module), shared modules under each of their names, as `state_dict` lists them."""
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m._state_modules(f"{prefix}{name}.")

    def state_dict(self, *, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name: this module's own first, then each child's.
        Values share memory with the model (detached unless `keep_vars`); a tied weight appears under each name."""
        out = OrderedDict() if destination is None else destination
        for mod_prefix, m in self._state_modules(prefix):
            for name, t in m._local_state():
                out[mod_prefix + name] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy `state_dict`'s tensors (interop Tensors or numpy/cupy arrays) into the parameters and buffers
        of the same names, casting to their dtype and device. Every mismatch is reported at once, and nothing
        is copied when there is one. `assign=True` makes the loaded tensors the new parameters instead."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing, errors, todo = [], [], []
        expected: set[str] = set()
        for prefix, m in self._state_modules():
            for name, t in m._local_state():
                key = prefix + name
                expected.add(key)
                if key not in state_dict:
                    missing.append(key)
                    continue
                v = state_dict[key]
                arr = v.data if isinstance(v, Tensor) else v
                if not (hasattr(arr, "shape") and hasattr(arr, "dtype")):
                    errors.append(f'While copying the parameter named "{key}", expected an interop Tensor or '
                                  f"an array from checkpoint but received {type(v)}")
                elif tuple(arr.shape) != tuple(t.data.shape):
                    errors.append(f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} "
                                  f"from checkpoint, the shape in current model is {tuple(t.data.shape)}.")
                else:
                    todo.append((m, name, t, v))
        unexpected = [k for k in state_dict if k not in expected]
        if strict:
            if unexpected:
                errors.insert(0, f"Unexpected key(s) in state_dict: {_quoted(unexpected)}. ")
            if missing:
                errors.insert(0, f"Missing key(s) in state_dict: {_quoted(missing)}. ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for m, name, t, v in todo:
                _load_into(m, name, t, v, assign)
        return _IncompatibleKeys(missing, unexpected)

    # ---- repr ----------------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in `repr` (e.g. `in_features=784, ...`)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): {_addindent(repr(m), 2)}" for key, m in self._modules.items()]
        lines = extra_lines + child_lines
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        else:
            body = "\n  " + "\n  ".join(lines) + "\n" if lines else ""
        return f"{self._get_name()}({body})"


def zero_grad_(p: Tensor, set_to_none: bool) -> None:
    """Drop (or zero in place) one tensor's gradient, as `Module.zero_grad` and `Optimizer.zero_grad` do."""
    g = p.grad
    if g is None:
        return
    if set_to_none:
        p.grad = None
        return
    if g._node is not None:
        g.detach_()
    else:
        g.requires_grad = False
    g.data.fill(0)
    g._vc[0] += 1


def _convert(t: Tensor, dev: Any, dtype: Any) -> Tensor:
    if dtype is not None and dtypes.category(t.dtype) < 2:
        dtype = None
    return t.to(device=dev, dtype=dtype)


def _load_into(m: Module, name: str, t: Tensor, v: Any, assign: bool) -> None:
    if assign:  # the checkpoint's tensor itself, with its dtype and device, becomes the member
        src = v if isinstance(v, Tensor) else Tensor(v)
        if name in m._parameters:
            m._parameters[name] = Parameter(src, requires_grad=t.requires_grad)
        else:
            m._buffers[name] = src
        return
    arr = to_device(v.data if isinstance(v, Tensor) else v, t.device)
    t.data[...] = arr.astype(t.data.dtype, copy=False)
    t._vc[0] += 1
