"""Which models a server runs: ONNX files, or a model repository in Triton's layout; and writing such a repository.

Triton's layout is `DIR/<name>/[config.pbtxt]` plus numeric version folders `DIR/<name>/<version>/model.onnx`, so one
directory serves here, under Triton and under KServe's Triton runtime alike. Of `config.pbtxt` this reads what decides
how a model runs (max_batch_size, dynamic_batching, instance_group, version_policy, default_model_filename and the ORT
backend's intra_op_thread_count) and ignores the rest; the inputs and outputs always come from the ONNX file.
Unlike Triton, a model without a version_policy serves every version it has (requests without a version get the newest).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

import ml_dtypes
import numpy as np

from ._io import ELEMENTS, Input, IOInfo
from .batching import Batcher, Counters
from .session import Session

__all__ = ["DATATYPES", "DTYPES", "ModelConfig", "ModelNotFound", "ModelRepository", "ModelVersion",
           "check_name", "parse_pbtxt", "triton_config", "render_pbtxt", "write_triton_repository"]

log = logging.getLogger("interop.serve")

# The Open Inference Protocol's datatypes (Triton adds BF16); Triton's config names them TYPE_<name>, BYTES as STRING.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BF16": np.dtype(ml_dtypes.bfloat16), "BYTES": np.dtype(object),
}
DATATYPES: dict[np.dtype, str] = {dt: name for name, dt in DTYPES.items()}
DEFAULT_MAX_BATCH_SIZE = 32
INLINE_BELOW_US = 500  # CPU models whose runs take less than this run on the event loop's thread (see Batcher)
PLATFORM = "onnxruntime_onnx"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}\Z")


class ModelNotFound(LookupError):
    """An unknown model or version (the server answers 404)."""


def check_name(name: str) -> str:
    """A model name that is safe as one path component: letters, digits, '_', '.', '-', not starting with '.'."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '_', '.' and '-', not starting with '.' "
                         f"(at most 128 characters)")
    return name


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """How a model runs. `max_batch_size=None` means 32 when every input and output has a dynamic first (batch)
    dimension and 0 (no batching) otherwise. `threads=None` means ORT's intra-op threads are the cores less one for the
    event loop, split among the instances (at least 1), on CPU; ORT's default on CUDA."""

    max_batch_size: int | None = None
    dynamic_batching: bool = True
    max_queue_delay_us: int = 0
    instances: int = 1
    device: str = "cpu"
    threads: int | None = None
    warmup: bool = True

    def __post_init__(self) -> None:
        for field in ("max_queue_delay_us", "instances"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < (field == "instances"):
                raise ValueError(f"{field} must be an integer >= {int(field == 'instances')}, "
                                 f"got {getattr(self, field)!r}")
        if self.max_batch_size is not None and (not isinstance(self.max_batch_size, int) or self.max_batch_size < 0):
            raise ValueError(f"max_batch_size must be an integer >= 0, got {self.max_batch_size!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be an integer >= 1, got {self.threads!r}")


class ModelVersion:
    """One version of one model: its session instances, its batcher, its metadata and whether it has warmed up.

    A positive `max_batch_size` for a model without a batch axis is an error when `strict` (the model's own
    config.pbtxt asked for it), else the model just runs unbatched (a default meant for the models that can batch).
    """

    def __init__(self, name: str, version: str, path: str, config: ModelConfig, strict: bool = True):
        self.name, self.version, self.path, self.config = check_name(name), version, path, config
        threads = config.threads
        if threads is None and not config.device.startswith("cuda"):
            threads = max(1, ((os.cpu_count() or 2) - 1) // config.instances)
        try:
            self.sessions = [Session(path, device=config.device, threads=threads) for _ in range(config.instances)]
        except Exception as e:  # ORT's own exception types say little; name the model and the file
            raise RuntimeError(f"model '{name}' version {version}: cannot load {path}: {e}") from e
        self.inputs, self.outputs = self.sessions[0].inputs, self.sessions[0].outputs
        for kind, infos in (("input", self.inputs), ("output", self.outputs)):
            for i in infos:
                if i.dtype not in DATATYPES:
                    raise ValueError(f"model '{name}' version {version}: {kind} '{i.name}' is {i.type}, which the "
                                     f"Open Inference Protocol cannot carry")
        batchable = _batchable(self.inputs + self.outputs)
        mbs = config.max_batch_size
        if mbs is None or not (batchable or strict):
            mbs = (DEFAULT_MAX_BATCH_SIZE if mbs is None else mbs) if batchable else 0
        elif mbs > 0 and not batchable:
            shapes = ", ".join(repr(i) for i in self.inputs + self.outputs)
            raise ValueError(f"model '{name}' version {version}: max_batch_size {mbs} needs a dynamic first (batch) "
                             f"dimension on every input and output, but they are {shapes}; use max_batch_size 0")
        self.max_batch_size = mbs
        self.checks = {i.name: Input(i) for i in self.inputs}
        self.output_index = {o.name: k for k, o in enumerate(self.outputs)}
        self.counters = Counters()
        self.ready = False
        self.error: str | None = None
        self._pool = ThreadPoolExecutor(config.instances, thread_name_prefix=f"interop-{name}-{version}")
        merge = mbs if mbs > 1 and config.dynamic_batching else 0
        self.batcher = Batcher(self._run, config.instances, merge, config.max_queue_delay_us, self._pool,
                               self.counters)

    def _run(self, instance: int, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.sessions[instance].run(*arrays, output="numpy")

    def warmup(self) -> None:
        """Run every instance at max_batch_size and at batch 1, then mark the model ready (or say why not).

        A single-instance CPU model whose largest batch runs in under INLINE_BELOW_US (best of 5) then runs on the
        event loop's thread (see `Batcher`).
        """
        try:
            if self.config.warmup:
                syms = {d for i in self.inputs for d in (i.shape or ())[:1] if isinstance(d, str)}
                largest = dict.fromkeys(syms, max(self.max_batch_size, 1))
                for s in self.sessions:
                    s.warmup(**largest)
                    s.warmup(**dict.fromkeys(syms, 1))
                if self.config.instances == 1 and not self.config.device.startswith("cuda"):
                    best = math.inf
                    for _ in range(5):
                        t = perf_counter()
                        self.sessions[0].warmup(**largest)
                        best = min(best, perf_counter() - t)
                    self.batcher.inline = best * 1e6 < INLINE_BELOW_US
            self.ready = True
        except Exception as e:
            self.error = f"warm-up failed: {type(e).__name__}: {e}"
            log.error("model '%s' version %s is not ready: %s", self.name, self.version, self.error)

    @property
    def platform(self) -> str:
        return PLATFORM

    def metadata(self, versions: list[str]) -> dict:
        return {"name": self.name, "versions": versions, "platform": PLATFORM,
                "inputs": [_tensor_metadata(i) for i in self.inputs],
                "outputs": [_tensor_metadata(o) for o in self.outputs]}

    def triton_config(self) -> dict:
        c = self.config
        return triton_config(self.name, self.inputs, self.outputs, self.max_batch_size,
                             dynamic_batching=c.dynamic_batching, max_queue_delay_us=c.max_queue_delay_us,
                             instances=c.instances, device=c.device)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _batchable(infos: list[IOInfo]) -> bool:
    return bool(infos) and all(i.shape and not isinstance(i.shape[0], int) for i in infos)


def _tensor_metadata(i: IOInfo) -> dict:
    return {"name": i.name, "datatype": DATATYPES[i.dtype],
            "shape": [d if isinstance(d, int) else -1 for d in i.shape] if i.shape is not None else [-1]}


class ModelRepository:
    """The models a server runs, by name and version.

    `models` are ONNX files, each served as version 1 under its file's stem (`mlp.onnx` serves as `mlp`); `root` is a
    Triton-layout directory. `defaults` applies where a model's config.pbtxt says nothing.
    """

    def __init__(self, models: Iterable[str | os.PathLike] = (), root: str | os.PathLike | None = None,
                 defaults: ModelConfig | None = None):
        self.defaults = defaults or ModelConfig()
        self.models: dict[str, dict[str, ModelVersion]] = {}
        try:
            for path in models:
                path = os.fspath(path)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"no such model file: {path}")
                self._add(os.path.splitext(os.path.basename(path))[0], "1", path, self.defaults, False)
            if root is not None:
                self._scan(os.fspath(root))
        except BaseException:
            self.close()
            raise
        if not self.models:
            raise ValueError("no models to serve: give ONNX files or a model repository with at least one model")

    def _add(self, name: str, version: str, path: str, config: ModelConfig, strict: bool) -> None:
        versions = self.models.setdefault(check_name(name), {})
        if version in versions:
            raise ValueError(f"two models named '{name}' (version {version}): {versions[version].path} and {path}")
        versions[version] = ModelVersion(name, version, path, config, strict)

    def _scan(self, root: str) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"no such model repository: {root}")
        real_root = os.path.realpath(root)
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if name.startswith(".") or not os.path.isdir(folder):
                continue
            check_name(name)
            cfg_path = os.path.join(folder, "config.pbtxt")
            cfg = {}
            if os.path.isfile(cfg_path):
                with open(cfg_path, encoding="utf-8") as f:
                    try:
                        cfg = parse_pbtxt(f.read())
                    except ValueError as e:
                        raise ValueError(f"{cfg_path}: {e}") from None
            config, filename, policy = _from_pbtxt(name, cfg, self.defaults)
            check_name(filename)
            found = sorted((d for d in os.listdir(folder) if d.isdigit() and os.path.isdir(os.path.join(folder, d))),
                           key=int)
            chosen = _apply_policy(found, policy)
            if not chosen:
                raise ValueError(f"model '{name}' in {root} has no version to serve (found {found or 'none'}; "
                                 f"expected {name}/<version>/{filename})")
            for v in chosen:
                path = os.path.join(folder, v, filename)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"model '{name}' version {v}: no {filename} in {os.path.dirname(path)}")
                if not os.path.realpath(path).startswith(real_root + os.sep):
                    raise ValueError(f"model '{name}' version {v}: {path} resolves outside the repository {root}")
                self._add(name, str(int(v)), path, config, "max_batch_size" in cfg)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFound(f"unknown model: '{name}'")
        if version is None:
            return versions[max(versions, key=int)]
        mv = versions.get(version)
        if mv is None:
            raise ModelNotFound(f"unknown version {version!r} of model '{name}' (it has {', '.join(versions)})")
        return mv

    def versions(self, name: str) -> list[str]:
        return sorted(self.models[name], key=int)

    def all(self) -> list[ModelVersion]:
        return [mv for versions in self.models.values() for mv in versions.values()]

    async def warmup(self) -> None:
        """Warm every model up, each in its own thread pool, so the server stays live meanwhile."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(mv._pool, mv.warmup) for mv in self.all()))

    @property
    def ready(self) -> bool:
        return all(mv.ready for mv in self.all())

    def close(self) -> None:
        for mv in self.all():
            mv.close()


# ---- config.pbtxt --------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"""\s+|\#[^\n]*|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}\[\]<>:,;]|[^\s{}\[\]<>:,;"'\#]+)""")


def parse_pbtxt(text: str) -> dict[str, list]:
    """Protocol buffers text format as nested dicts: every field maps to the list of its values (messages are dicts,
    strings unquoted, numbers int or float, enums and booleans their bare names)."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot read the text at offset {pos}: {text[pos:pos + 20]!r}")
        if m.group(1):
            tokens.append(m.group(1))
        pos = m.end()
    return _message(tokens, 0, None)[0]


def _message(tokens: list[str], i: int, close: str | None) -> tuple[dict, int]:
    out: dict[str, list] = {}
    while i < len(tokens) and tokens[i] != close:
        name = tokens[i]
        if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            raise ValueError(f"expected a field name, got {name!r}")
        i += 1
        if i < len(tokens) and tokens[i] == ":":
            i += 1
        values, i = _values(tokens, i)
        out.setdefault(name, []).extend(values)
        if i < len(tokens) and tokens[i] in ",;":
            i += 1
    if close is not None and i >= len(tokens):
        raise ValueError(f"missing {close!r}")
    return out, i + (close is not None)


def _values(tokens: list[str], i: int) -> tuple[list, int]:
    if i >= len(tokens):
        raise ValueError("a field without a value at the end")
    if tokens[i] != "[":
        v, i = _value(tokens, i)
        return [v], i
    values, i = [], i + 1
    while i < len(tokens) and tokens[i] != "]":
        v, i = _value(tokens, i)
        values.append(v)
        if i < len(tokens) and tokens[i] == ",":
            i += 1
    if i >= len(tokens):
        raise ValueError("missing ']'")
    return values, i + 1


def _value(tokens: list[str], i: int) -> tuple[Any, int]:
    t = tokens[i]
    if t in "{<":
        return _message(tokens, i + 1, "}" if t == "{" else ">")
    if t[0] in "\"'":
        return t[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape"), i + 1
    if t in "}]>:,;[":
        raise ValueError(f"unexpected {t!r}")
    for convert in (int, float):
        try:
            return convert(t), i + 1
        except ValueError:
            pass
    return t, i + 1


def _first(msg: dict, key: str, default: Any = None) -> Any:
    values = msg.get(key)
    return values[0] if values else default


def _from_pbtxt(name: str, cfg: dict, defaults: ModelConfig) -> tuple[ModelConfig, str, tuple]:
    """The ModelConfig, model file name and version policy that a parsed config.pbtxt asks for."""
    if _first(cfg, "name", name) != name:
        raise ValueError(f"model '{name}': its config.pbtxt names it {_first(cfg, 'name')!r}; they must agree")
    platform, backend = _first(cfg, "platform"), _first(cfg, "backend")
    if platform not in (None, PLATFORM) or backend not in (None, "onnxruntime"):
        raise ValueError(f"model '{name}' is for {platform or backend!r}; interop serves ONNX models "
                         f"(platform '{PLATFORM}')")
    if not cfg:
        return defaults, "model.onnx", ("all",)
    changes: dict[str, Any] = {}
    batching = _first(cfg, "dynamic_batching")
    if "max_batch_size" in cfg:  # else batching is decided as without a config (Triton's auto-complete does so too)
        changes["max_batch_size"] = int(_first(cfg, "max_batch_size"))
        changes["dynamic_batching"] = batching is not None
    if batching is not None:
        changes["max_queue_delay_us"] = int(_first(batching, "max_queue_delay_microseconds", 0))
    groups = cfg.get("instance_group", [])
    if groups:
        changes["instances"] = sum(int(_first(g, "count", 1)) for g in groups)
        kind = _first(groups[0], "kind", "KIND_AUTO")
        if kind == "KIND_GPU":
            changes["device"] = f"cuda:{int(_first(groups[0], 'gpus', 0))}"
        elif kind == "KIND_CPU":
            changes["device"] = "cpu"
    for p in cfg.get("parameters", []):
        if _first(p, "key") == "intra_op_thread_count":
            threads = int(_first(_first(p, "value", {}), "string_value", "0"))
            changes["threads"] = threads or None
    policy: tuple = ("all",)
    vp = _first(cfg, "version_policy")
    if vp:
        if "latest" in vp:
            policy = ("latest", int(_first(_first(vp, "latest"), "num_versions", 1)))
        elif "specific" in vp:
            policy = ("specific", [str(v) for v in _first(vp, "specific").get("versions", [])])
    return dataclasses.replace(defaults, **changes), _first(cfg, "default_model_filename", "model.onnx"), policy


def _apply_policy(found: list[str], policy: tuple) -> list[str]:
    if policy[0] == "latest":
        return found[-policy[1]:] if policy[1] > 0 else []
    if policy[0] == "specific":
        wanted = {int(v) for v in policy[1]}
        return [v for v in found if int(v) in wanted]
    return found


class _Enum(str):
    """A protobuf enum value: bare in text format, a string in JSON."""


def triton_config(name: str, inputs: list[IOInfo], outputs: list[IOInfo], max_batch_size: int, *,
                  dynamic_batching: bool = True, max_queue_delay_us: int = 0, instances: int = 1,
                  device: str = "cpu") -> dict:
    """Triton's model configuration (as a dict shaped like its JSON form) for an ONNX model."""
    def tensor(i: IOInfo) -> dict:
        dims = [d if isinstance(d, int) else -1 for d in (i.shape or ())][1 if max_batch_size else 0:]
        t = {"name": i.name, "data_type": _Enum("TYPE_" + DATATYPES[i.dtype].replace("BYTES", "STRING")),
             "dims": dims or [1]}
        if not dims:  # Triton wants at least one dimension: a scalar travels as [1] and is reshaped to ()
            t["reshape"] = {"shape": []}
        return t

    cfg: dict[str, Any] = {"name": name, "platform": PLATFORM, "max_batch_size": max_batch_size,
                           "input": [tensor(i) for i in inputs], "output": [tensor(o) for o in outputs]}
    if max_batch_size and dynamic_batching:
        cfg["dynamic_batching"] = {"max_queue_delay_microseconds": max_queue_delay_us}
    gpu = device.startswith("cuda")
    group: dict[str, Any] = {"count": instances, "kind": _Enum("KIND_GPU" if gpu else "KIND_CPU")}
    if gpu:
        group["gpus"] = [int(device.partition(":")[2] or 0)]
    cfg["instance_group"] = [group]
    return cfg


def render_pbtxt(msg: dict, indent: str = "") -> str:
    """A dict (as `triton_config` makes) in protobuf text format."""
    lines = []
    for key, v in msg.items():
        if isinstance(v, dict):
            lines += [f"{indent}{key} {{", render_pbtxt(v, indent + "  "), f"{indent}}}"]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            body = ",\n".join(f"{indent}  {{\n{render_pbtxt(m, indent + '    ')}\n{indent}  }}" for m in v)
            lines += [f"{indent}{key} [", body, f"{indent}]"]
        elif isinstance(v, list):
            lines.append(f"{indent}{key}: [ {', '.join(_scalar(x) for x in v)} ]")
        else:
            lines.append(f"{indent}{key}: {_scalar(v)}")
    return "\n".join(line for line in lines if line)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, _Enum) or not isinstance(v, str):
        return str(v)
    return json.dumps(v)


# ---- writing a repository ------------------------------------------------------------------------------------------
def write_triton_repository(model: Any, directory: str | os.PathLike, name: str, max_batch_size: int | None = None,
                            *, version: int = 1, dynamic_batching: bool = True, max_queue_delay_us: int = 0,
                            instances: int = 1, device: str = "cpu") -> str:
    """Write `model` (an .onnx path or an `onnx.ModelProto`) as `directory/name/version/model.onnx` with a
    `config.pbtxt`, ready for Triton, KServe or `interop serve --model-repository`. Returns the model's folder.

    `max_batch_size=None` picks 32 when every input and output has a dynamic first dimension, else 0; a positive
    value on a model without one is an error (Triton would refuse the model).
    """
    import onnx

    check_name(name)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    proto = onnx.load(os.fspath(model)) if isinstance(model, str | os.PathLike) else model
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"model must be an .onnx path or an onnx.ModelProto, got {type(model).__name__}")
    inits = {t.name for t in proto.graph.initializer}
    inputs = [_onnx_info(vi) for vi in proto.graph.input if vi.name not in inits]
    outputs = [_onnx_info(vi) for vi in proto.graph.output]
    for i in inputs + outputs:
        if i.dtype not in DATATYPES:
            raise ValueError(f"'{i.name}' is {i.type}, which Triton's ONNX backend cannot carry")
    batchable = _batchable(inputs + outputs)
    if max_batch_size is None:
        max_batch_size = DEFAULT_MAX_BATCH_SIZE if batchable else 0
    elif max_batch_size > 0 and not batchable:
        raise ValueError(f"max_batch_size {max_batch_size} needs a dynamic first (batch) dimension on every input "
                         f"and output, but they are {', '.join(map(repr, inputs + outputs))}; export with a dynamic "
                         f"batch axis (e.g. --dynamic x:0=batch) or use max_batch_size 0")
    folder = os.path.join(os.fspath(directory), name)
    os.makedirs(os.path.join(folder, str(version)), exist_ok=True)
    target = os.path.join(folder, str(version), "model.onnx")
    if proto.ByteSize() < 2**31:
        onnx.save_model(proto, target)
    else:
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)  # save_model moves the tensors out of the proto it is given
        onnx.save_model(copy, target, save_as_external_data=True, location="model.onnx.data")
    cfg = triton_config(name, inputs, outputs, max_batch_size, dynamic_batching=dynamic_batching,
                        max_queue_delay_us=max_queue_delay_us, instances=instances, device=device)
    with open(os.path.join(folder, "config.pbtxt"), "w", encoding="utf-8") as f:
        f.write(render_pbtxt(cfg) + "\n")
    return folder


_ONNX_DTYPES = {code: dt for code, dt in ELEMENTS.values()}


def _onnx_info(vi: Any) -> IOInfo:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        return IOInfo(vi.name, None, None, "non-tensor")
    shape = None if not t.HasField("shape") else tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
    return IOInfo(vi.name, _ONNX_DTYPES.get(t.elem_type), shape, f"tensor of element type {t.elem_type}")
