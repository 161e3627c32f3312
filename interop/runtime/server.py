"""`interop serve`: ONNX models behind the Open Inference Protocol (KServe v2 REST), which Triton and KServe speak.

Existing clients (tritonclient.http, KServe SDKs, curl) work unchanged, and when one machine is not enough the same
model repository (`write_triton_repository`) and the same clients move to Triton or KServe.

Routes: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}[/versions/{v}][/ready|/config], /metrics
(Prometheus text, with Triton's metric names), and POST /v2/models/{name}[/versions/{v}]/infer with JSON tensors or
the binary tensor data extension (`binary_data_size`, `Inference-Header-Content-Length`, `binary_data_output`).

The protocol lives in `InferenceServer.handle`, which knows no web framework; `create_app` puts it in an aiohttp
application, `create_asgi_app` in an ASGI one (uvicorn, hypercorn, Ray Serve's `serve.ingress`), and `serve` (what
`interop serve` runs) on aiohttp's low-level server.

Safe by default: binds 127.0.0.1; with a token (the argument or $INTEROP_SERVE_TOKEN) every route but /v2/health/*
wants `Authorization: Bearer <token>`; bodies over `max_request_bytes` (also after decompression) get 413; a request
with a wrong name, datatype or shape gets 400 and the reason; names are only looked up in the table of models made at
start-up; nothing is unpickled.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import signal
import sys
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from time import perf_counter
from typing import Any

import numpy as np

from .batching import BATCH_BUCKETS
from .repository import (
    DATATYPES,
    DTYPES,
    ModelConfig,
    ModelNotFound,
    ModelRepository,
    ModelVersion,
    write_triton_repository,
)

__all__ = ["InferenceServer", "create_app", "create_asgi_app", "serve", "write_triton_repository", "TOKEN_ENV",
           "MAX_REQUEST_BYTES"]

log = logging.getLogger("interop.serve")

TOKEN_ENV = "INTEROP_SERVE_TOKEN"
MAX_REQUEST_BYTES = 64 << 20
Reply = tuple[int, dict[str, str], bytes]
_JSON = {"Content-Type": "application/json"}
_TEXT = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
_EMPTY: Reply = (200, {}, b"")
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(obj, separators=...) builds one a call
# Which kinds of JSON array may fill a tensor of each numpy kind: no silent truncation of floats into integers.
_JSON_KINDS = {"b": "b", "i": "bi", "u": "bi", "f": "bif", "V": "bif"}
_ENCODINGS = ("identity", "gzip", "deflate")


class HTTPError(Exception):
    """A request the server refuses: the status and the message of its `{"error": ...}` body."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class InferenceServer:
    """The Open Inference Protocol over a `ModelRepository`, independent of any web framework.

    `handle(method, path, headers, content_length, read)` answers one HTTP request with (status, headers, body);
    `headers` is a mapping with lower-case keys (or a case-insensitive one) and `read()` returns the body with any
    Content-Encoding undone (aiohttp does that; the ASGI adapter does it here).
    Call `start()` once an event loop runs (it starts the warm-up; models are ready when it ends) and `close()` at
    the end.
    """

    def __init__(self, repository: ModelRepository, *, token: str | None = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES):
        self.repository = repository
        token = os.environ.get(TOKEN_ENV) if token is None else token
        self._auth = token.encode() if token else None
        self.max_request_bytes = max_request_bytes
        self.responses: Counter[int] = Counter()
        self._warmup: asyncio.Task | None = None

    # ---- life cycle -------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._warmup is None:
            self._warmup = asyncio.get_running_loop().create_task(self._warm())

    async def _warm(self) -> None:
        t = perf_counter()
        await self.repository.warmup()
        if self.repository.ready:
            log.info("ready: %d model version(s) warmed up in %.2f s", len(self.repository.all()), perf_counter() - t)

    async def close(self) -> None:
        if self._warmup is not None and not self._warmup.done():
            self._warmup.cancel()
        for mv in self.repository.all():
            mv.batcher.close()
        self.repository.close()

    # ---- dispatch ---------------------------------------------------------------------------------------------------
    async def handle(self, method: str, path: str, headers: Mapping[str, str], content_length: int | None,
                     read: Callable[[], Awaitable[bytes]]) -> Reply:
        """One request, answered; never raises for anything a client sends."""
        try:
            reply = await self._route(method, path, headers, content_length, read)
        except HTTPError as e:
            reply = (e.status, {**_JSON, **e.headers} if e.headers else _JSON, _error(e.message))
        except Exception as e:  # a bug, not the client's fault: say so, and keep serving
            log.exception("internal error on %s %s", method, path)
            reply = (500, _JSON, _error(f"internal server error: {type(e).__name__}: {e}"))
        self.responses[reply[0]] += 1
        return reply

    async def _route(self, method: str, path: str, headers: Mapping[str, str], content_length: int | None,
                     read: Callable[[], Awaitable[bytes]]) -> Reply:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "v2" and parts[1] == "health" and parts[2] in ("live", "ready"):
            _method(method, "GET")
            if parts[2] == "live" or self.repository.ready:
                return _EMPTY
            raise HTTPError(503, "not ready: " + self._not_ready())
        if self._auth is not None:
            self._check_token(headers)
        if parts[0] == "v2" and len(parts) >= 3 and parts[1] == "models":
            rest = parts[3:]
            version = None
            if rest and rest[0] == "versions":
                if len(rest) < 2:
                    raise HTTPError(404, f"no route {path}")
                version, rest = rest[1], rest[2:]
            try:
                mv = self.repository.get(parts[2], version)
            except ModelNotFound as e:
                raise HTTPError(404, str(e)) from None
            action = rest[0] if len(rest) == 1 else "" if not rest else None
            if action == "infer":
                _method(method, "POST")
                return await self._infer(mv, headers, content_length, read)
            if action == "":
                _method(method, "GET")
                return _json(mv.metadata(self.repository.versions(mv.name)))
            if action == "ready":
                _method(method, "GET")
                if mv.ready:
                    return _EMPTY
                raise HTTPError(503, f"model '{mv.name}' version {mv.version} is not ready: {_state(mv)}")
            if action == "config":
                _method(method, "GET")
                return _json(mv.triton_config())
        elif parts == ["v2"]:
            _method(method, "GET")
            from .. import __version__

            return _json({"name": "interop", "version": __version__, "extensions": ["binary_tensor_data"]})
        elif parts == ["metrics"]:
            _method(method, "GET")
            return 200, _TEXT, self.metrics().encode()
        raise HTTPError(404, f"no route {path}")

    def _check_token(self, headers: Mapping[str, str]) -> None:
        got = headers.get("authorization") or ""
        scheme, _, credentials = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode("utf-8", "surrogateescape"),
                                                                  self._auth):
            raise HTTPError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                            {"WWW-Authenticate": "Bearer"})

    def _not_ready(self) -> str:
        return "; ".join(f"model '{mv.name}' version {mv.version}: {_state(mv)}"
                         for mv in self.repository.all() if not mv.ready)

    # ---- inference --------------------------------------------------------------------------------------------------
    async def _infer(self, mv: ModelVersion, headers: Mapping[str, str], content_length: int | None,
                     read: Callable[[], Awaitable[bytes]]) -> Reply:
        t = perf_counter()
        c = mv.counters
        try:
            if not mv.ready:
                raise HTTPError(503, f"model '{mv.name}' version {mv.version} is not ready: {_state(mv)}")
            body = await self._body(headers, content_length, read)
            request, arrays, rows, selection = decode_request(mv, headers, body)
            try:
                outs = await mv.batcher.submit(arrays)
            except Exception as e:
                log.warning("model '%s' version %s failed: %s: %s", mv.name, mv.version, type(e).__name__, e)
                raise HTTPError(500, f"inference failed: {type(e).__name__}: {e}") from None
            reply = encode_response(mv, request, outs, selection)
        except BaseException:
            c.failure += 1
            raise
        c.success += 1
        c.inferences += rows
        c.request_us += (perf_counter() - t) * 1e6
        return reply

    async def _body(self, headers: Mapping[str, str], content_length: int | None,
                    read: Callable[[], Awaitable[bytes]]) -> bytes:
        limit = self.max_request_bytes
        if content_length is not None and content_length > limit:
            raise HTTPError(413, f"the request body ({content_length} bytes) is over the limit of {limit} bytes")
        encoding = headers.get("content-encoding")
        if encoding and encoding not in _ENCODINGS:
            raise HTTPError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or deflate)")
        try:
            return await read()
        except HTTPError:
            raise
        except Exception as e:  # a body cut short, or one that does not decompress
            raise HTTPError(400, f"could not read the request body: {getattr(e, 'message', None) or e}") from None

    # ---- metrics ----------------------------------------------------------------------------------------------------
    def metrics(self) -> str:
        """Prometheus text: Triton's per-model counters (nv_inference_*), batch sizes and HTTP statuses."""
        out: list[str] = []
        mvs = self.repository.all()

        def family(name: str, kind: str, text: str, value: Callable[[Any], float]) -> None:
            out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}")
            out.extend(f'{name}{{model="{mv.name}",version="{mv.version}"}} {_num(value(mv))}' for mv in mvs)

        family("nv_inference_request_success", "counter", "Successful inference requests",
               lambda mv: mv.counters.success)
        family("nv_inference_request_failure", "counter", "Failed inference requests (refused ones included)",
               lambda mv: mv.counters.failure)
        family("nv_inference_count", "counter", "Inferences performed (batch elements, not requests)",
               lambda mv: mv.counters.inferences)
        family("nv_inference_exec_count", "counter", "Model executions (inference count / exec count is the mean "
               "batch size)", lambda mv: mv.counters.executions)
        family("nv_inference_request_duration_us", "counter", "Cumulative end-to-end request handling time (us)",
               lambda mv: mv.counters.request_us)
        family("nv_inference_queue_duration_us", "counter", "Cumulative time requests waited in the queue (us)",
               lambda mv: mv.counters.queue_us)
        family("nv_inference_compute_infer_duration_us", "counter", "Cumulative model compute time, per request "
               "(us)", lambda mv: mv.counters.compute_us)
        family("interop_model_ready", "gauge", "1 when the model version has warmed up and serves",
               lambda mv: int(mv.ready))
        name = "interop_batch_size"
        out.append(f"# HELP {name} Rows per model execution\n# TYPE {name} histogram")
        for mv in mvs:
            c, labels = mv.counters, f'model="{mv.name}",version="{mv.version}"'
            total = 0
            for edge, n in zip((*BATCH_BUCKETS, "+Inf"), c.batch_counts):
                total += n
                out.append(f'{name}_bucket{{{labels},le="{edge}"}} {total}')
            out.append(f"{name}_sum{{{labels}}} {c.rows_run}\n{name}_count{{{labels}}} {c.executions}")
        name = "interop_http_responses_total"
        out.append(f"# HELP {name} HTTP responses by status code\n# TYPE {name} counter")
        out.extend(f'{name}{{code="{code}"}} {n}' for code, n in sorted(self.responses.items()))
        return "\n".join(out) + "\n"


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.1f}"


def _state(mv: ModelVersion) -> str:
    return mv.error or "warming up"


def _method(method: str, allowed: str) -> None:
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise HTTPError(405, f"method {method} is not allowed here (use {allowed})", {"Allow": allowed})


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _json(obj: Any) -> Reply:
    return 200, _JSON, _dumps(obj).encode()


# ---- the wire format ----------------------------------------------------------------------------------------------
def decode_request(mv: ModelVersion, headers: Mapping[str, str],
                   body: bytes) -> tuple[dict, list[np.ndarray], int, list[tuple[int, bool]]]:
    """(request header, input arrays in the model's order, batch rows, [(output index, as binary)]) or HTTPError 400.

    Binary inputs are views of `body` (np.frombuffer, no copy).
    """
    hlen = headers.get("inference-header-content-length")
    offset = None
    if hlen is not None:
        try:
            offset = int(hlen)
        except ValueError:
            raise HTTPError(400, f"Inference-Header-Content-Length must be an integer, got {hlen!r}") from None
        if not 0 <= offset <= len(body):
            raise HTTPError(400, f"Inference-Header-Content-Length {offset} is outside the body ({len(body)} bytes)")
    try:
        request = json.loads((body if offset is None else body[:offset]).decode())  # str: no encoding sniffing
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"malformed request JSON: {e}") from None
    if type(request) is not dict:
        raise HTTPError(400, "the request must be a JSON object with an 'inputs' list")
    if "id" in request and type(request["id"]) is not str:
        raise HTTPError(400, "the request 'id' must be a string")
    params = _params(request, "the request")
    inputs = request.get("inputs")
    if type(inputs) is not list or not inputs:
        raise HTTPError(400, "the request needs a non-empty 'inputs' list")
    feed: dict[str, np.ndarray] = {}
    for spec in inputs:
        if type(spec) is not dict:
            raise HTTPError(400, "each input must be a JSON object with 'name', 'datatype', 'shape' and 'data'")
        name = spec.get("name")
        check = mv.checks.get(name) if type(name) is str else None
        if check is None:
            raise HTTPError(400, f"unexpected input {name!r}: model '{mv.name}' takes {_names(mv.inputs)}")
        if name in feed:
            raise HTTPError(400, f"input '{name}' is given twice")
        datatype = spec.get("datatype")
        dtype = DTYPES.get(datatype) if type(datatype) is str else None
        if dtype != check.dtype:
            raise HTTPError(400, f"input '{name}': expected datatype {DATATYPES[check.dtype]}, got {datatype!r}")
        shape = spec.get("shape")
        if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
            raise HTTPError(400, f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}")
        size = _params(spec, f"input '{name}'").get("binary_data_size")
        if size is not None:
            if offset is None:
                raise HTTPError(400, f"input '{name}' has binary_data_size but the request has no "
                                     f"Inference-Header-Content-Length header")
            if type(size) is not int or size < 0 or offset + size > len(body):
                raise HTTPError(400, f"input '{name}': binary_data_size {size!r} does not fit the "
                                     f"{len(body) - offset} bytes of binary data left")
            a = _from_binary(body, offset, size, dtype, shape, name)
            offset += size
        elif "data" in spec:
            a = _from_json(spec["data"], dtype, shape, name)
        else:
            raise HTTPError(400, f"input '{name}' has neither 'data' nor a binary_data_size parameter")
        try:
            check.check(a)
        except (TypeError, ValueError) as e:
            raise HTTPError(400, str(e)) from None
        feed[name] = a
    if len(feed) != len(mv.inputs):
        missing = [f"'{i.name}'" for i in mv.inputs if i.name not in feed]
        raise HTTPError(400, f"missing input {', '.join(missing)}: model '{mv.name}' takes {_names(mv.inputs)}")
    if offset is not None and offset != len(body):
        raise HTTPError(400, f"{len(body) - offset} bytes of binary data are left after the inputs")
    arrays = [feed[i.name] for i in mv.inputs]
    rows = 1
    if mv.max_batch_size:
        rows = arrays[0].shape[0]
        if any(a.shape[0] != rows for a in arrays):
            raise HTTPError(400, "the inputs disagree on the batch size (first dimension): "
                                 + ", ".join(f"'{n}' has {a.shape[0]}" for n, a in feed.items()))
        if rows > mv.max_batch_size:
            raise HTTPError(400, f"a batch of {rows} is over model '{mv.name}''s max_batch_size {mv.max_batch_size}")
    return request, arrays, rows, _selection(mv, request, params)


def _params(obj: dict, what: str) -> dict:
    p = obj.get("parameters")
    if p is None:
        return {}
    if type(p) is not dict:
        raise HTTPError(400, f"{what}'s 'parameters' must be a JSON object")
    return p


def _names(infos: list) -> str:
    return ", ".join(f"'{i.name}'" for i in infos)


def _selection(mv: ModelVersion, request: dict, params: dict) -> list[tuple[int, bool]]:
    binary = params.get("binary_data_output", False)
    if type(binary) is not bool:
        raise HTTPError(400, "the 'binary_data_output' parameter must be true or false")
    wanted = request.get("outputs")
    if wanted is None:
        return [(k, binary) for k in range(len(mv.outputs))]
    if type(wanted) is not list:
        raise HTTPError(400, "'outputs' must be a list of {'name': ...} objects")
    selection = []
    for spec in wanted:
        name = spec.get("name") if type(spec) is dict else None
        k = mv.output_index.get(name) if type(name) is str else None
        if k is None:
            raise HTTPError(400, f"unexpected output {name!r}: model '{mv.name}' has outputs {_names(mv.outputs)}")
        p = _params(spec, f"output '{name}'")
        if "classification" in p:
            raise HTTPError(400, "the classification extension is not supported")
        b = p.get("binary_data", binary)
        if type(b) is not bool:
            raise HTTPError(400, f"output '{name}': 'binary_data' must be true or false")
        selection.append((k, b))
    return selection


def _from_binary(body: bytes, offset: int, size: int, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    n = math.prod(shape)
    if dtype.kind == "O":
        return _from_bytes_elements(body, offset, size, n, name).reshape(shape)
    if size != n * dtype.itemsize:
        raise HTTPError(400, f"input '{name}': binary_data_size {size} does not match shape {shape} of "
                             f"{DATATYPES[dtype]} ({n * dtype.itemsize} bytes)")
    a = np.frombuffer(body, dtype, n, offset).reshape(shape)
    return a if a.flags.aligned else a.copy()


def _from_bytes_elements(body: bytes, offset: int, size: int, n: int, name: str) -> np.ndarray:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes (taken as UTF-8 text, as ORT's
    string tensors hold)."""
    out = np.empty(n, object)
    pos, end = offset, offset + size
    for k in range(n):
        length = int.from_bytes(body[pos:pos + 4], "little") if pos + 4 <= end else -1
        if length < 0 or pos + 4 + length > end:
            raise HTTPError(400, f"input '{name}': BYTES element {k} runs past its binary_data_size")
        try:
            out[k] = body[pos + 4:pos + 4 + length].decode()
        except UnicodeDecodeError:
            raise HTTPError(400, f"input '{name}': BYTES element {k} is not UTF-8 text") from None
        pos += 4 + length
    if pos != end:
        raise HTTPError(400, f"input '{name}': {end - pos} bytes are left after {n} BYTES elements")
    return out


def _from_json(data: Any, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    n = math.prod(shape)
    if type(data) is not list:
        data = [data]
    try:
        a = np.array(data, dtype=object if dtype.kind == "O" else None)
    except (ValueError, TypeError):
        raise HTTPError(400, f"input '{name}': 'data' is not a rectangular array") from None
    if a.size != n:
        raise HTTPError(400, f"input '{name}': 'data' has {a.size} values, but shape {shape} holds {n}")
    if dtype.kind == "O":
        if not all(type(e) is str for e in a.flat):
            raise HTTPError(400, f"input '{name}': BYTES data must be strings")
        return a.reshape(shape)
    if n and a.dtype.kind not in _JSON_KINDS[dtype.kind]:
        what = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}
        raise HTTPError(400, f"input '{name}': {DATATYPES[dtype]} data must be {what[dtype.kind]}, got "
                             f"{'values of mixed or non-numeric type' if a.dtype.kind in 'OUS' else a.dtype.name}")
    if n and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise HTTPError(400, f"input '{name}': a value is out of range for {DATATYPES[dtype]}")
    return a.astype(dtype).reshape(shape)


def encode_response(mv: ModelVersion, request: dict, outs: list[np.ndarray],
                    selection: list[tuple[int, bool]]) -> Reply:
    """The inference response: JSON, plus the binary outputs after it when any output is asked for as binary."""
    described, chunks = [], []
    for k, binary in selection:
        info, a = mv.outputs[k], outs[k]
        entry: dict[str, Any] = {"name": info.name, "datatype": DATATYPES[info.dtype], "shape": list(a.shape)}
        if binary:
            raw = _to_binary(a)
            entry["parameters"] = {"binary_data_size": len(raw) if isinstance(raw, bytes) else raw.nbytes}
            chunks.append(raw)
        else:
            entry["data"] = _to_json(a)
        described.append(entry)
    response: dict[str, Any] = {"model_name": mv.name, "model_version": mv.version}
    if "id" in request:
        response["id"] = request["id"]
    response["outputs"] = described
    head = _dumps(response).encode()
    if not chunks:
        return 200, _JSON, head
    return (200, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))},
            b"".join([head, *chunks]))


def _to_binary(a: np.ndarray) -> Any:
    if a.dtype.kind == "O":
        parts = [(e if isinstance(e, bytes) else str(e).encode()) for e in a.flat]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _to_json(a: np.ndarray) -> list:
    if a.dtype.kind == "O":
        return [e.decode(errors="replace") if isinstance(e, bytes) else str(e) for e in a.flat]
    if a.dtype.kind == "V" or a.dtype == np.float16:
        a = a.astype(np.float32)
    return a.reshape(-1).tolist()


# ---- frameworks ---------------------------------------------------------------------------------------------------
def _server(models: str | os.PathLike | Iterable[str | os.PathLike], model_repository: str | os.PathLike | None,
            token: str | None, max_request_bytes: int, config: dict) -> InferenceServer:
    if isinstance(models, str | os.PathLike):
        models = [models]
    repo = ModelRepository(models, model_repository, ModelConfig(**config))
    return InferenceServer(repo, token=token, max_request_bytes=max_request_bytes)


def create_app(models: str | os.PathLike | Iterable[str | os.PathLike] = (), *,
               model_repository: str | os.PathLike | None = None, token: str | None = None,
               max_request_bytes: int = MAX_REQUEST_BYTES, **config: Any) -> Any:
    """An aiohttp `web.Application` serving ONNX files (each named by its stem) and/or a Triton-layout repository.

    `config` holds `ModelConfig` fields, the defaults for every model (a repository's config.pbtxt overrides them):
    `device`, `max_batch_size` (0 turns dynamic batching off), `max_queue_delay_us`, `instances`, `threads`,
    `warmup`. The models load here (so a bad one fails now); they warm up when the app starts, and /v2/health/ready
    answers 200 from then on. Run it with `aiohttp.web.run_app(app, host="127.0.0.1", port=8000)`, gunicorn's
    aiohttp worker, or embed it; `app[SERVER_KEY]` is the `InferenceServer`. (`interop serve` runs the same handler
    on aiohttp's low-level server, which saves the router's few microseconds a request.)
    """
    from aiohttp import web

    server = _server(models, model_repository, token, max_request_bytes, config)

    async def on_startup(app: web.Application) -> None:
        await server.start()

    async def on_cleanup(app: web.Application) -> None:
        await server.close()

    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_route("*", "/{path:.*}", _aiohttp_handler(server))
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _aiohttp_handler(server: InferenceServer) -> Callable:
    """An aiohttp request handler (for an Application's route or a low-level `web.Server`) around `server.handle`."""
    from aiohttp import web

    handle, limit = server.handle, server.max_request_bytes

    async def entry(request: web.BaseRequest) -> web.Response:
        status, headers, body = await handle(request.method, request.path, request.headers, request.content_length,
                                             partial(_read_aiohttp, request, limit))
        return web.Response(status=status, headers=headers, body=body)

    return entry


async def _read_aiohttp(request: Any, limit: int) -> bytes:
    """The body through aiohttp's stream, which undoes Content-Encoding; never more than `limit` bytes of it."""
    content, length = request.content, request.content_length
    if length is not None and "Content-Encoding" not in request.headers:
        return await content.readexactly(length)  # the caller checked `length` against the limit
    chunks, size = [], 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _app_key() -> Any:
    try:
        from aiohttp import web
    except ImportError:  # the ASGI app and the repository writer need no aiohttp
        return "interop.server"
    return web.AppKey("interop.server", InferenceServer)


SERVER_KEY = _app_key()  # app[SERVER_KEY] is the InferenceServer behind an app from create_app


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a gzip or deflate Content-Encoding, refusing to inflate past `limit` bytes (aiohttp does this itself)."""
    if not encoding or encoding == "identity":
        return body
    d = zlib.decompressobj(wbits=47)  # gzip or zlib, by the header
    try:
        body = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise HTTPError(400, f"the {encoding} body does not decompress: {e}") from None
    if len(body) > limit or d.unconsumed_tail:
        raise HTTPError(413, f"the decompressed request body is over the limit of {limit} bytes")
    return body


def create_asgi_app(models: str | os.PathLike | Iterable[str | os.PathLike] = (), *,
                    model_repository: str | os.PathLike | None = None, token: str | None = None,
                    max_request_bytes: int = MAX_REQUEST_BYTES, **config: Any) -> Callable:
    """The same server as an ASGI 3 application (uvicorn, hypercorn, Ray Serve); arguments as for `create_app`.

    It warms up on the lifespan startup event, or on the first request where there is none. In Ray Serve, hand
    `serve.ingress` a builder so that each replica loads its own models, e.g.
    `serve.run(serve.deployment(serve.ingress(lambda: create_asgi_app("mlp.onnx"))()).bind())`.
    """
    server = _server(models, model_repository, token, max_request_bytes, config)

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await server.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await server.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        await server.start()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]

        async def read() -> bytes:
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionError("the client disconnected")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_request_bytes:
                    raise HTTPError(413, f"the request body is over the limit of {max_request_bytes} bytes")
                chunks.append(chunk)
                if not message.get("more_body"):
                    return _decoded(b"".join(chunks), headers.get("content-encoding"), max_request_bytes)

        status, reply_headers, body = await server.handle(scope["method"], path, headers,
                                                          int(length) if length.isdigit() else None, read)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply_headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": bytes(body)})

    app.server = server  # type: ignore[attr-defined]
    return app


def serve(models: str | os.PathLike | Iterable[str | os.PathLike] = (), *,
          model_repository: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          token: str | None = None, max_request_bytes: int = MAX_REQUEST_BYTES, **config: Any) -> int:
    """Run the server until SIGINT or SIGTERM (what `interop serve` does). Port 0 picks a free port; the line
    'listening on http://HOST:PORT' on stdout says which."""
    from aiohttp import web

    server = _server(models, model_repository, token, max_request_bytes, config)
    if not server._auth and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"interop serve: warning: listening on {host} without a token; anyone who can reach it can run the "
              f"models (set --token or ${TOKEN_ENV})", file=sys.stderr)

    async def main() -> None:
        runner = web.ServerRunner(web.Server(_aiohttp_handler(server), access_log=None))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await server.start()
            names = ", ".join(f"{mv.name}/{mv.version}" for mv in server.repository.all())
            print(f"interop serve: {names}; listening on http://{host}:{runner.addresses[0][1]}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()
            await server.close()

    logging.basicConfig(level=logging.INFO, format="interop serve: %(message)s")
    asyncio.run(main())
    return 0
