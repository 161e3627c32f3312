"""Graph -> ModelProto, and writing it: IR version from the opset, external data for big models, atomic files.

Weights go to the side file one tensor at a time, straight from their arrays, so no protobuf ever holds them:
a model of any size serializes without hitting protobuf's 2 GB limit.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from .._files import atomic_write
from .builder import Graph, OnnxNode, onnx_dtype

__all__ = ["MIN_OPSET", "MAX_OPSET", "DEFAULT_OPSET", "check_opset", "ir_version_for", "to_model", "save",
           "make_node", "value_type", "value_info"]

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 18, 26, 21
# The IR version each opset first appeared with (onnx.helper.VERSION_TABLE). ONNX Runtime 1.31 reads IR <= 13,
# and onnx 1.23 stamps IR 14 by default, so it is always set explicitly.
_IR_FOR_OPSET = {18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13, 26: 13}
LARGE_MODEL = int(1.5 * 2**30)  # switch to external data above this many bytes of weights
_PROTO_LIMIT = 2**31 - 2**24  # what still fits a protobuf, with room for the graph
_EXTERNAL_MIN = 1024  # smaller tensors stay inline
_ALIGN, _PAGE_ALIGN = 64, 65536  # tensors of 1 MiB and more are aligned for memory mapping


def check_opset(opset: Any) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset!r} is not supported: interop exports ONNX opsets {MIN_OPSET} to "
                         f"{MAX_OPSET} (ONNX Runtime 1.31 runs up to {MAX_OPSET}); the default is {DEFAULT_OPSET}")
    return opset


def ir_version_for(opset: int) -> int:
    return _IR_FOR_OPSET[check_opset(opset)]


# ---- protos ------------------------------------------------------------------------------------------------

def value_type(dt: np.dtype, dims: tuple) -> onnx.TypeProto:
    return onnx.helper.make_tensor_type_proto(onnx_dtype(dt), [None if d == "?" else d for d in dims])


def value_info(name: str, dt: np.dtype, dims: tuple) -> onnx.ValueInfoProto:
    vi = onnx.ValueInfoProto(name=name)
    vi.type.CopyFrom(value_type(dt, dims))
    return vi


def _attr_value(key: str, v: Any, node: OnnxNode) -> Any:
    if isinstance(v, np.dtype):
        return onnx_dtype(v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return onnx_dtype(np.dtype(v))
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return onnx.numpy_helper.from_array(v)
    if isinstance(v, (list, tuple)):
        return [_attr_value(key, x, node) for x in v]
    return v


def _empty_list_type(node: OnnxNode, key: str) -> int:
    try:
        schema = onnx.defs.get_schema(node.op_type, MAX_OPSET, node.domain)
        return int(schema.attributes[key].type)
    except Exception:  # unknown op or attribute: the checker will say so
        return onnx.AttributeProto.INTS


def make_node(node: OnnxNode, metadata: bool = True) -> onnx.NodeProto:
    n = onnx.NodeProto(op_type=node.op_type, name=node.name, domain=node.domain)
    n.input.extend(node.inputs)
    n.output.extend(node.outputs)
    for key in sorted(node.attrs):
        v = node.attrs[key]
        if v is None:
            continue
        v = _attr_value(key, v, node)
        if isinstance(v, list) and not v:
            n.attribute.append(onnx.helper.make_attribute(key, v, attr_type=_empty_list_type(node, key)))
        else:
            n.attribute.append(onnx.helper.make_attribute(key, v))
    if metadata and node.meta:
        for k, v in node.meta.items():
            n.metadata_props.add(key=k, value=v)
    return n


def _host(a: Any) -> np.ndarray:
    if type(a) is not np.ndarray:
        a = a.get() if hasattr(a, "get") else np.asarray(a)
    return a


def _external_tensor(name: str, arr: Any, fh: Any, location: str, offset: int) -> tuple[TensorProto, int]:
    a = np.ascontiguousarray(_host(arr))
    t = TensorProto(name=name, data_type=onnx_dtype(a.dtype), dims=a.shape)
    align = _PAGE_ALIGN if a.nbytes >= 2**20 else _ALIGN
    pad = -offset % align
    if pad:
        fh.write(b"\0" * pad)
        offset += pad
    fh.write(a.reshape(-1).view(np.uint8).data)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(a.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t, offset + a.nbytes


def to_model(graph: Graph, *, metadata: bool = True, data: Any = None, location: str | None = None,
             doc: str = "") -> onnx.ModelProto:
    """The ModelProto of `graph`; with `data` (an open binary file named `location` next to the model),
    tensors of 1 KiB and more are written there instead of into the proto."""
    from .. import __version__

    types = graph.types
    gp = onnx.GraphProto(name="main_graph")
    if doc:
        gp.doc_string = doc
    gp.node.extend([make_node(n, metadata) for n in graph.nodes])
    offset = 0
    for name, arr in graph.inits.items():
        if data is not None and arr.nbytes >= _EXTERNAL_MIN:
            t, offset = _external_tensor(name, arr, data, location, offset)
        else:
            t = onnx.numpy_helper.from_array(_host(arr), name)
        gp.initializer.append(t)
    gp.input.extend([value_info(n, *types[n]) for n in graph.inputs])
    gp.output.extend([value_info(n, *types[n]) for n in graph.outputs])
    domains = sorted({n.domain for n in graph.nodes if n.domain not in ("", "ai.onnx")})
    opsets = [onnx.helper.make_opsetid("", graph.opset)] + [onnx.helper.make_opsetid(d, 1) for d in domains]
    model = onnx.ModelProto(ir_version=ir_version_for(graph.opset), producer_name="interop",
                            producer_version=__version__, graph=gp)
    model.opset_import.extend(opsets)
    return model


# ---- files -------------------------------------------------------------------------------------------------

def weight_bytes(graph: Graph) -> int:
    return sum(int(a.nbytes) for a in graph.inits.values())


def save(graph: Graph, f: Any = None, *, external_data: bool | None = None,
         metadata: bool = True) -> onnx.ModelProto:
    """Serialize `graph`, writing it to `f` (a path or a binary file object) when given.

    External data (`<file>.data` next to the model) is used when asked, or automatically above 1.5 GB of weights.
    """
    size = weight_bytes(graph)
    is_path = f is not None and isinstance(f, (str, os.PathLike))
    external = external_data if external_data is not None else size > LARGE_MODEL
    if external and not is_path:
        if external_data:
            raise ValueError("external_data=True needs `f` to be a file path (the weights go to <f>.data next to it)")
        if size > _PROTO_LIMIT:
            raise ValueError(f"the model has {size / 2**30:.2f} GiB of weights, more than one protobuf can "
                             "hold (2 GiB); pass `f` (a file path) so the weights are written as external data")
        external = False
    if not is_path:
        model = to_model(graph, metadata=metadata)
        if f is not None:
            f.write(model.SerializeToString())
        return model
    path = os.fspath(f)
    if external:
        location = os.path.basename(path) + ".data"
        with atomic_write(os.path.join(os.path.dirname(os.path.abspath(path)), location)) as fh:
            model = to_model(graph, metadata=metadata, data=fh, location=location)
    else:
        model = to_model(graph, metadata=metadata)
    with atomic_write(path) as fh:
        fh.write(model.SerializeToString())
    return model
