"""The `interop` command line.

Each subcommand is a small function that registers its parser with `@command` (imports stay inside the
handlers, so `interop --help` is fast):

    interop export MODULE:FACTORY -o model.onnx [--opset N] [--dynamic x:0=batch,1=seq]
    interop check model.onnx
    interop run model.onnx --input x=x.npy [--device cuda] [-o out.npz]
    interop info model.onnx
    interop demo [--out DIR] [--steps N]
    interop serve model.onnx [more.onnx ...] | --model-repository DIR [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["main", "build_parser", "command", "load_factory", "parse_dynamic"]

COMMANDS: list[Callable[[Any], None]] = []


def command(register: Callable[[Any], None]) -> Callable[[Any], None]:
    """Add a subcommand: `register(subparsers)` adds its parser and sets `func=handler(args) -> exit code`."""
    COMMANDS.append(register)
    return register


class CLIError(Exception):
    """A user error: printed without a traceback, exit code 2."""


# ---- export ------------------------------------------------------------------------------------------------

def load_factory(target: str) -> tuple[Any, tuple]:
    """Import `MODULE:FACTORY` (a dotted module or a .py path) and call FACTORY() -> (model, example_args)."""
    mod_name, sep, fn_name = target.rpartition(":")
    if not sep or not mod_name or not fn_name:
        raise CLIError(f"expected MODULE:FACTORY (e.g. models.mlp:example or path/to/file.py:make), got {target!r}")
    if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
        if not os.path.exists(mod_name):
            raise CLIError(f"no such file: {mod_name}")
        stem = os.path.splitext(os.path.basename(mod_name))[0]
        spec = importlib.util.spec_from_file_location(stem, mod_name)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(spec.name, module)
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(mod_name)
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise CLIError(f"{mod_name} has no callable {fn_name!r}")
    made = factory()
    if not (isinstance(made, (tuple, list)) and len(made) == 2):
        raise CLIError(f"{target}() must return (model, example_args), got {type(made).__name__}")
    model, example = made
    return model, example if isinstance(example, (tuple, list)) else (example,)


def parse_dynamic(specs: list[str]) -> dict[str, dict[int, str]] | None:
    """`["x:0=batch,1=seq", "mask:0=batch"]` -> `{"x": {0: "batch", 1: "seq"}, "mask": {0: "batch"}}`; an axis
    without `=NAME` is named `<input>_dim<axis>`."""
    out: dict[str, dict[int, str]] = {}
    for spec in specs:
        name, sep, axes = spec.partition(":")
        if not sep or not name or not axes:
            raise CLIError(f"--dynamic expects INPUT:AXIS=NAME[,AXIS=NAME...], got {spec!r}")
        for item in axes.split(","):
            axis, _, sym = item.partition("=")
            try:
                a = int(axis)
            except ValueError:
                raise CLIError(f"--dynamic {spec!r}: axis {axis!r} is not an integer") from None
            out.setdefault(name, {})[a] = sym or f"{name}_dim{a}"
    return out or None


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",")] if text else None


@command
def _export_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model to ONNX",
                       description="Export FACTORY()'s (model, example_args) to ONNX. FACTORY lives in MODULE, a "
                                   "dotted module name or a path to a .py file.")
    p.add_argument("target", metavar="MODULE:FACTORY")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=21, choices=range(18, 27), metavar="N",
                   help="ONNX opset, 18..26 (default 21)")
    p.add_argument("--dynamic", action="append", default=[], metavar="INPUT:AXIS=NAME[,...]",
                   help="a symbolic axis, e.g. x:0=batch,1=seq (repeatable)")
    p.add_argument("--input-names", metavar="A,B", help="names of the graph inputs")
    p.add_argument("--output-names", metavar="Y,Z", help="names of the graph outputs")
    p.add_argument("--external-data", action="store_true", help="write the weights to <output>.data")
    p.add_argument("--no-optimize", action="store_true", help="skip constant folding, CSE and the other passes")
    p.add_argument("--no-verify", action="store_true", help="skip the checker and the ONNX Runtime comparison")
    p.add_argument("--no-metadata", action="store_true", help="leave out per-node file:line and module paths")
    p.add_argument("--triton-repo", metavar="DIR", help="also write DIR/<name>/1/model.onnx and a config.pbtxt "
                                                        "for Triton, KServe or `interop serve --model-repository`")
    p.add_argument("--max-batch-size", type=int, metavar="N", help="the repository's max_batch_size (default 32 "
                                                                   "with a dynamic batch axis, else 0)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import interop

    model, example = load_factory(args.target)
    proto = interop.export(model, tuple(example), args.output, input_names=_names(args.input_names),
                           output_names=_names(args.output_names), dynamic=parse_dynamic(args.dynamic),
                           opset=args.opset, external_data=True if args.external_data else None,
                           optimize=not args.no_optimize, verify=not args.no_verify,
                           metadata=not args.no_metadata)
    params = sum(math.prod(t.dims) for t in proto.graph.initializer)
    print(f"wrote {args.output}: opset {args.opset}, IR {proto.ir_version}, {len(proto.graph.node)} nodes, "
          f"{params:,} parameters{'' if args.no_verify else ', verified against ONNX Runtime'}")
    if args.triton_repo:
        from .runtime.repository import write_triton_repository

        name = os.path.splitext(os.path.basename(args.output))[0]
        try:
            folder = write_triton_repository(args.output, args.triton_repo, name, args.max_batch_size)
        except ValueError as e:
            raise CLIError(str(e)) from None
        print(f"wrote {folder}: config.pbtxt and 1/model.onnx")
    return 0


# ---- check -------------------------------------------------------------------------------------------------

def _type_str(vi: Any) -> str:
    import onnx

    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        return "(non-tensor)"
    dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name if tt.elem_type else "?"
    dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in tt.shape.dim]
    return f"{dt}[{', '.join(dims)}]"


def _all_nodes(graph: Any) -> Any:
    import onnx

    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _all_nodes(g)


@command
def _check_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="describe an ONNX file and run the ONNX checker",
                       description="Print opset, IR version, inputs and outputs, an op histogram and the parameter "
                                   "count, then run onnx.checker (full_check); exits 1 when the checker fails.")
    p.add_argument("model", help="an .onnx file")
    p.set_defaults(func=_check)


def _load_onnx(path: str) -> Any:
    """The ModelProto at `path` (without its external data), or a CLIError saying why not."""
    import onnx

    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:
        raise CLIError(f"{path} is not an ONNX model: {e}") from None


def _header_lines(path: str, model: Any) -> list[str]:
    """What `check` and `info` both start with: opsets, IR version, producer, inputs and outputs."""
    g = model.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    inits = {t.name for t in g.initializer}
    lines = [path,
             f"  opset:      {opsets}",
             f"  IR version: {model.ir_version}",
             f"  producer:   {model.producer_name} {model.producer_version}".rstrip()]
    lines.append("  inputs:")
    lines += [f"    {vi.name}: {_type_str(vi)}" for vi in g.input if vi.name not in inits]
    lines.append("  outputs:")
    lines += [f"    {vi.name}: {_type_str(vi)}" for vi in g.output]
    return lines


def _check(args: argparse.Namespace) -> int:
    import onnx

    model = _load_onnx(args.model)
    g = model.graph
    params = sum(math.prod(t.dims) for t in g.initializer)
    external = sum(1 for t in g.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    hist = collections.Counter(
        (f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type) for n in _all_nodes(g))
    lines = _header_lines(args.model, model)
    counts = ", ".join(f"{op} {n}" for op, n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
    lines.append(f"  nodes:      {sum(hist.values())}  ({counts})")
    lines.append(f"  parameters: {params:,} in {len(g.initializer)} initializers"
                 + (f" ({external} in external data)" if external else ""))
    try:
        onnx.checker.check_model(args.model, full_check=True)
        status, code = "ok (full_check)", 0
    except Exception as e:
        status, code = f"FAILED: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", 1
    lines.append(f"  checker:    {status}")
    print("\n".join(lines))
    return code


# ---- serve -------------------------------------------------------------------------------------------------

@command
def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve ONNX models over the Open Inference Protocol (KServe v2 / Triton)",
                       description="Serve ONNX files (each named by its stem: mlp.onnx serves as 'mlp') and/or a "
                                   "Triton-layout model repository (DIR/<name>/<version>/model.onnx) over HTTP.")
    p.add_argument("models", nargs="*", metavar="MODEL.onnx")
    p.add_argument("--model-repository", metavar="DIR", help="a Triton-layout model repository")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--max-batch-size", type=int, metavar="N", help="dynamic batching up to N rows (default 32 for "
                                                                   "models with a dynamic batch axis; 0 turns it off)")
    p.add_argument("--max-queue-delay-us", type=int, default=0, metavar="US",
                   help="how long a request may wait for a fuller batch (default 0)")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="sessions per model (default 1)")
    p.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads per session")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default $INTEROP_SERVE_TOKEN)")
    p.add_argument("--max-request-mb", type=float, default=64, metavar="MB", help="request body limit (default 64)")
    p.add_argument("--no-warmup", action="store_true", help="mark models ready without a warm-up run")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    if not args.models and not args.model_repository:
        raise CLIError("give MODEL.onnx files or --model-repository DIR")
    from .runtime.server import serve

    try:
        return serve(args.models, model_repository=args.model_repository, host=args.host, port=args.port,
                     token=args.token, max_request_bytes=int(args.max_request_mb * 2**20), device=args.device,
                     max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
                     instances=args.instances, threads=args.threads, warmup=not args.no_warmup)
    except (OSError, ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from None


# ---- run ---------------------------------------------------------------------------------------------------

def _read_npy(path: str) -> Any:
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"no such file: {path}")
    try:
        a = np.load(path, allow_pickle=False)  # never unpickle: an .npy from elsewhere could run code
    except (ValueError, OSError, EOFError) as e:
        raise CLIError(f"{path}: not a readable .npy file: {e}") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise CLIError(f"{path} is an .npz archive; give one .npy file per input")
    return a.astype(object) if a.dtype.kind in "US" else a  # ORT's string tensors are object arrays


def _feed(specs: list[str], names: list[str]) -> dict[str, Any]:
    """`--input NAME=FILE.npy` by name, `--input FILE.npy` for the model's inputs in order."""
    feed: dict[str, Any] = {}
    positional = [s for s in specs if "=" not in s]
    if len(positional) > len(names):
        raise CLIError(f"{len(positional)} unnamed inputs given, but the model takes {len(names)} ({', '.join(names)})")
    for name, path in zip(names, positional):
        feed[name] = _read_npy(path)
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            continue
        if name not in names:
            raise CLIError(f"unknown input '{name}'; the model's inputs are {', '.join(names)}")
        if name in feed:
            raise CLIError(f"got multiple values for input '{name}'")
        feed[name] = _read_npy(path)
    return feed


def _ort_errors() -> tuple[type[Exception], ...]:
    """The errors a bad model, input or device gives: ONNX Runtime's own derive from Exception only."""
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    return (TypeError, ValueError, RuntimeError, OSError, C.Fail, C.InvalidArgument, C.InvalidGraph,
            C.InvalidProtobuf, C.NoSuchFile, C.NotImplemented, C.RuntimeException)


def _describe_value(name: str, v: Any) -> list[str]:
    import numpy as np

    if isinstance(v, list):
        return [f"{name}: sequence of {len(v)}"]
    if isinstance(v, dict):
        return [f"{name}: map of {len(v)}"]
    if v is None:
        return [f"{name}: None"]
    head = f"{name}: {v.dtype.name} {tuple(v.shape)}"
    if v.size and v.dtype.kind in "iuf":
        head += f"  min {v.min():.4g}  max {v.max():.4g}  mean {v.mean():.4g}"
    preview = np.array2string(v, threshold=12, edgeitems=3, precision=4, max_line_width=100)
    return [head] + ["  " + line for line in preview.splitlines()]


def _write_npz(path: str, outputs: dict[str, Any]) -> None:
    """np.savez's format, written atomically and without pickles (string tensors are stored as unicode arrays).

    Members are written one by one as np.savez does, because np.savez's own keywords (`file`, `allow_pickle`)
    cannot be output names there."""
    import zipfile

    import numpy as np

    from ._files import atomic_write

    arrays = {}
    for name, v in outputs.items():
        if not isinstance(v, np.ndarray):
            raise CLIError(f"output '{name}' is a {type(v).__name__}, and an .npz holds tensors only; leave out "
                           f"-o to print it")
        arrays[name] = v.astype(str) if v.dtype.kind == "O" else v
    try:
        with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, a in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e}") from None


@command
def _run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run an ONNX model on .npy inputs with ONNX Runtime",
                       description="Run an ONNX model with ONNX Runtime on inputs read from .npy files. Prints "
                                   "each output's name, dtype, shape and a preview, or writes them all to an "
                                   ".npz file with -o.")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("-i", "--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input from an .npy file (repeatable); FILE.npy alone takes the model's inputs in order")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs to OUT.npz (np.load reads it)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .runtime import Session

    _load_onnx(args.model)  # a missing or corrupt file reads better from onnx than from ORT
    errors = _ort_errors()
    try:
        sess = Session(args.model, device=args.device)
    except errors as e:
        raise CLIError(f"cannot run {args.model} on {args.device}: {e}") from None
    feed = _feed(args.input, sess.input_names)
    try:
        outputs = sess.run(feed, output="numpy", as_dict=True)
    except errors as e:
        raise CLIError(str(e)) from None
    if args.output:
        _write_npz(args.output, outputs)
        print(f"wrote {args.output}: " + ", ".join(
            f"{k} {v.dtype.name}{list(v.shape)}" for k, v in outputs.items()))
    else:
        print(f"{args.model} on {', '.join(sess.providers)}")
        for name, v in outputs.items():
            print("\n".join(_describe_value(name, v)))
    return 0


# ---- info --------------------------------------------------------------------------------------------------

@command
def _info_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="an ONNX file's inputs, outputs and opset, and the providers to run it on",
                       description="Print an ONNX file's opset, IR version, inputs and outputs (dtypes and "
                                   "symbolic shapes), its size, and the ONNX Runtime execution providers this "
                                   "machine has (with why CUDA cannot run, where it cannot).")
    p.add_argument("model", help="an .onnx file")
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    import onnx
    import onnxruntime as ort

    from .runtime.providers import CUDA_EP, cuda_problem

    model = _load_onnx(args.model)
    lines = _header_lines(args.model, model)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    lines.append(f"  size:       {os.path.getsize(args.model):,} bytes" + (" + external data" if external else ""))
    available = ort.get_available_providers()
    lines.append(f"  providers:  {', '.join(available)} (onnxruntime {ort.__version__})")
    if CUDA_EP in available:
        problem = cuda_problem()
        lines.append(f"  cuda:       {'usable' if problem is None else 'not usable: ' + problem}")
    print("\n".join(lines))
    return 0


# ---- demo --------------------------------------------------------------------------------------------------

def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _fraction(text: str) -> float:
    x = float(text)
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {x}")
    return x


@command
def _demo_parser(sub: Any) -> None:
    from .demo import FRAMEWORKS, DemoConfig

    d = DemoConfig
    p = sub.add_parser("demo", help="train a CNN on real digits, export, verify and run it, end to end",
                       description="Train the zoo's CNN on the 8x8 UCI digits, export it to ONNX with a dynamic "
                                   "batch axis, verify it, run it in ONNX Runtime on the held-out split, pass a "
                                   "batch to PyTorch or JAX over DLPack and back, and write the .onnx file, a PNG "
                                   "of the training curve and summary.json. Exits 1 when the verification, the "
                                   "eager vs ONNX Runtime agreement or the accuracy check fails.")
    p.add_argument("--out", default=d.out, metavar="DIR", help=f"where the files go (default ./{d.out})")
    p.add_argument("--steps", type=_positive, default=d.steps, metavar="N", help=f"training steps (default {d.steps})")
    p.add_argument("--batch", type=_positive, default=d.batch, metavar="N", help=f"batch size (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam's learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the weights and batches (default {d.seed})")
    p.add_argument("--device", default=d.device, help="where ONNX Runtime runs the model: cpu, cuda or cuda:N "
                                                      f"(default {d.device}; training runs on the CPU)")
    p.add_argument("--dlpack", default=d.dlpack, choices=("auto", *FRAMEWORKS),
                   help="the DLPack partner (default auto: torch, else jax, else numpy)")
    p.add_argument("--min-accuracy", type=_fraction, default=d.min_accuracy, metavar="P",
                   help=f"fail below this held-out accuracy (default {d.min_accuracy})")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    from .demo import DemoConfig, prepare, run_demo

    cfg = DemoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)})
    try:
        fw = prepare(cfg)
    except (ImportError, RuntimeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return run_demo(cfg, fw)


# ---- entry point -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interop", description="Export models to ONNX; inspect, run and serve "
                                                                 "ONNX files; `interop demo` shows it all end to end.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        print(f"interop {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from .export import ExportError

        if isinstance(e, ExportError):
            print(f"interop {args.command}: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
