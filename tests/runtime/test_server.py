"""`interop serve` over real loopback HTTP: tritonclient.http for the protocol, raw HTTP for the error cases, and a
concurrency run. Servers run in a background thread of the test process (the CLI test starts a real subprocess)."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from interop.runtime.server import create_app, create_asgi_app

from .models import mlp, mlp_reference, model

aiohttp_web = pytest.importorskip("aiohttp.web")
triton = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

LIMIT = 256 << 10  # the test servers' request body limit
DIMS = (16, 32, 4)
vi = helper.make_tensor_value_info


# ---- models ---------------------------------------------------------------------------------------------------------
def mixed_model() -> onnx.ModelProto:
    """x FP32, k INT32, h FP16 -> y = x * k (FP32), pos = x > 0 (BOOL), h2 = h (FP16); batch axis on all."""
    nodes = [helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "kf"], ["y"]),
             helper.make_node("Constant", [], ["zero"], value_float=0.0),
             helper.make_node("Greater", ["x", "zero"], ["pos"]), helper.make_node("Identity", ["h"], ["h2"])]
    return model(nodes, [vi("x", TensorProto.FLOAT, ["b", 3]), vi("k", TensorProto.INT32, ["b", 3]),
                         vi("h", TensorProto.FLOAT16, ["b", 2])],
                 [vi("y", TensorProto.FLOAT, ["b", 3]), vi("pos", TensorProto.BOOL, ["b", 3]),
                  vi("h2", TensorProto.FLOAT16, ["b", 2])])


def fixed_model() -> onnx.ModelProto:
    """No batch axis: x FP32 [2, 3] -> Relu."""
    return model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", TensorProto.FLOAT, [2, 3])],
                 [vi("y", TensorProto.FLOAT, [2, 3])])


def text_model() -> onnx.ModelProto:
    return model([helper.make_node("Identity", ["s"], ["t"])], [vi("s", TensorProto.STRING, ["b"])],
                 [vi("t", TensorProto.STRING, ["b"])])


def gather_model() -> onnx.ModelProto:
    """A lookup table: an index out of range fails inside ONNX Runtime, with a valid request."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [4, 2], np.arange(8, dtype=np.float32))
    return model([helper.make_node("Gather", ["table", "i"], ["v"], axis=0)], [vi("i", TensorProto.INT64, ["b"])],
                 [vi("v", TensorProto.FLOAT, ["b", 2])], [table])


# ---- a server in a thread -------------------------------------------------------------------------------------------
class ServerThread:
    """An app from create_app, served on 127.0.0.1 (a free port) by an event loop in a daemon thread."""

    def __init__(self, app):
        self.app, self.loop = app, asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(60), "the server did not start"
        wait_ready(self.port)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        runner = aiohttp_web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(aiohttp_web.TCPSite(runner, "127.0.0.1", 0).start())
        self.port = runner.addresses[0][1]
        started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not become ready")


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         conn: http.client.HTTPConnection | None = None) -> tuple[int, dict, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def infer_body(inputs: list[tuple[str, np.ndarray, str]], binary: bool = True, outputs: list[str] | None = None,
               binary_output: bool = True, **extra) -> tuple[bytes, dict]:
    """An /infer request: (body, headers), inputs as binary tensors or JSON data."""
    specs, chunks = [], []
    for name, a, datatype in inputs:
        spec = {"name": name, "shape": list(a.shape), "datatype": datatype}
        if binary:
            spec["parameters"] = {"binary_data_size": a.nbytes}
            chunks.append(a.tobytes())
        else:
            spec["data"] = a.tolist()
        specs.append(spec)
    req = {"inputs": specs, **extra}
    if outputs is not None:
        req["outputs"] = [{"name": n, "parameters": {"binary_data": binary_output}} for n in outputs]
    else:
        req["parameters"] = {"binary_data_output": binary_output}
    head = json.dumps(req).encode()
    headers = {"Content-Type": "application/json"}
    if binary:
        headers["Inference-Header-Content-Length"] = str(len(head))
    return head + b"".join(chunks), headers


def parse_response(data: bytes, headers: dict) -> dict[str, np.ndarray]:
    """{output name: array} from an /infer response, binary or JSON."""
    n = int(headers.get("inference-header-content-length", len(data)))
    resp = json.loads(data[:n])
    out, pos = {}, n
    types = {"FP32": np.float32, "FP16": np.float16, "BOOL": np.bool_, "INT32": np.int32, "INT64": np.int64}
    for o in resp["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            out[o["name"]] = np.array(o["data"], types[o["datatype"]]).reshape(o["shape"])
        else:
            out[o["name"]] = np.frombuffer(data[pos:pos + size], types[o["datatype"]]).reshape(o["shape"])
            pos += size
    return out


# ---- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    made = {"mlp": mlp(DIMS), "mixed": mixed_model(), "fixed": fixed_model(), "text": text_model(),
            "gather": gather_model()}
    paths = {}
    for name, m in made.items():
        paths[name] = str(d / f"{name}.onnx")
        onnx.save(m, paths[name])
    return paths, made["mlp"]


@pytest.fixture(scope="module")
def server(files):
    paths, _ = files
    s = ServerThread(create_app(list(paths.values()), token="", max_request_bytes=LIMIT))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(f"127.0.0.1:{server.port}", connection_timeout=30, network_timeout=30)
    yield c
    c.close()


def good_request(port: int, net: onnx.ModelProto, conn=None, rows: int = 1, seed: int = 0) -> None:
    """A correct request that must succeed (run after each bad one)."""
    x = np.random.default_rng(seed).standard_normal((rows, DIMS[0])).astype(np.float32)
    body, headers = infer_body([("x", x, "FP32")])
    status, h, data = call(port, "POST", "/v2/models/mlp/infer", body, headers, conn)
    assert status == 200, data
    np.testing.assert_allclose(parse_response(data, h)["y"], mlp_reference(net, x), rtol=1e-4, atol=1e-5)


# ---- tritonclient ---------------------------------------------------------------------------------------------------
def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert meta["name"] == "interop" and "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("mlp")
    assert m["name"] == "mlp" and m["versions"] == ["1"] and m["platform"] == "onnxruntime_onnx"
    assert m["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, DIMS[0]]}]
    assert m["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, DIMS[-1]]}]
    assert client.get_model_metadata("fixed")["inputs"][0]["shape"] == [2, 3]
    cfg = client.get_model_config("mlp")
    assert cfg["max_batch_size"] == 32 and cfg["input"][0]["dims"] == [DIMS[0]]
    assert client.get_model_config("fixed")["max_batch_size"] == 0
    with pytest.raises(InferenceServerException, match="unknown model: 'nope'"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_infer_mlp(client, files, binary_in, binary_out):
    _, net = files
    x = np.random.default_rng(1).standard_normal((3, DIMS[0])).astype(np.float32)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = triton.InferRequestedOutput("y", binary_data=binary_out)
    r = client.infer("mlp", [inp], outputs=[out], request_id="req-7")
    np.testing.assert_allclose(r.as_numpy("y"), mlp_reference(net, x), rtol=1e-4, atol=1e-5)
    resp = r.get_response()
    assert resp["id"] == "req-7" and resp["model_name"] == "mlp" and resp["model_version"] == "1"
    assert ("binary_data_size" in resp["outputs"][0].get("parameters", {})) == binary_out


def test_infer_default_outputs_and_versions(client, files):
    _, net = files
    x = np.ones((1, DIMS[0]), np.float32)
    inp = triton.InferInput("x", [1, DIMS[0]], "FP32")
    inp.set_data_from_numpy(x)
    for version in ("", "1"):
        r = client.infer("mlp", [inp], model_version=version)  # outputs=None asks for binary_data_output
        np.testing.assert_allclose(r.as_numpy("y"), mlp_reference(net, x), rtol=1e-4, atol=1e-5)
    with pytest.raises(InferenceServerException, match="unknown version '2'"):
        client.infer("mlp", [inp], model_version="2")


def test_infer_dtypes_and_requested_outputs(client):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    k = rng.integers(-3, 4, (4, 3)).astype(np.int32)
    h = rng.standard_normal((4, 2)).astype(np.float16)
    for binary in (True, False):
        inputs = []
        for name, a, dt in (("x", x, "FP32"), ("k", k, "INT32"), ("h", h, "FP16")):
            inputs.append(triton.InferInput(name, list(a.shape), dt))
            inputs[-1].set_data_from_numpy(a, binary_data=binary)
        r = client.infer("mixed", inputs)
        np.testing.assert_array_equal(r.as_numpy("y"), x * k.astype(np.float32))
        np.testing.assert_array_equal(r.as_numpy("pos"), x > 0)
        np.testing.assert_array_equal(r.as_numpy("h2"), h)
        r = client.infer("mixed", inputs, outputs=[triton.InferRequestedOutput("pos", binary_data=binary)])
        assert [o["name"] for o in r.get_response()["outputs"]] == ["pos"]
        np.testing.assert_array_equal(r.as_numpy("pos"), x > 0)
        assert r.as_numpy("y") is None


def test_infer_bytes(client):
    words = np.array(["héllo", "", "wörld!"], dtype=object)
    for binary in (True, False):
        inp = triton.InferInput("s", [3], "BYTES")
        inp.set_data_from_numpy(words, binary_data=binary)
        r = client.infer("text", [inp], outputs=[triton.InferRequestedOutput("t", binary_data=binary)])
        got = [w.decode() if isinstance(w, bytes) else w for w in r.as_numpy("t")]
        assert got == list(words)


def test_infer_fixed_shape_model(client):
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    inp = triton.InferInput("x", [2, 3], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer("fixed", [inp]).as_numpy("y"), np.maximum(x, 0))


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(client, files, algorithm):
    _, net = files
    x = np.random.default_rng(3).standard_normal((2, DIMS[0])).astype(np.float32)
    inp = triton.InferInput("x", [2, DIMS[0]], "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("mlp", [inp], request_compression_algorithm=algorithm,
                     response_compression_algorithm=algorithm)
    np.testing.assert_allclose(r.as_numpy("y"), mlp_reference(net, x), rtol=1e-4, atol=1e-5)


def test_model_failure_is_500_and_alone(server, files):
    ok, headers = infer_body([("i", np.array([0, 3], np.int64), "INT64")], binary=False, binary_output=False)
    status, _, data = call(server.port, "POST", "/v2/models/gather/infer", ok, headers)
    assert status == 200 and json.loads(data)["outputs"][0]["data"] == [0, 1, 6, 7]
    bad, headers = infer_body([("i", np.array([0, 9], np.int64), "INT64")], binary=False)
    status, _, data = call(server.port, "POST", "/v2/models/gather/infer", bad, headers)
    assert status == 500 and "inference failed" in json.loads(data)["error"]
    good_request(server.port, files[1])


# ---- errors over raw HTTP -------------------------------------------------------------------------------------------
def _json_req(inputs, **extra) -> tuple[bytes, dict]:
    return json.dumps({"inputs": inputs, **extra}).encode(), {"Content-Type": "application/json"}


X1 = {"name": "x", "shape": [1, DIMS[0]], "datatype": "FP32", "data": [0.5] * DIMS[0]}
MIXED = [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
         {"name": "k", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]},
         {"name": "h", "shape": [1, 2], "datatype": "FP16", "data": [1, 2]}]


def _binary(header: dict, payload: bytes, header_length: int | None = None) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    n = len(head) if header_length is None else header_length
    return head + payload, {"Inference-Header-Content-Length": str(n)}


def _mixed(**changes) -> list:
    out = [dict(i) for i in MIXED]
    for name, change in changes.items():
        next(i for i in out if i["name"] == name).update(change)
    return out


XB = {"name": "x", "shape": [1, DIMS[0]], "datatype": "FP32", "parameters": {"binary_data_size": 4 * DIMS[0]}}
ZEROS = bytes(4 * DIMS[0])

ERRORS = {
    # name: (method, path, (body, headers), status, message pattern)
    "malformed JSON": ("POST", "mlp", (b'{"inputs": [', {}), 400, "malformed request JSON"),
    "not an object": ("POST", "mlp", (b"[1, 2]", {}), 400, "must be a JSON object"),
    "no inputs": ("POST", "mlp", _json_req([]), 400, "non-empty 'inputs'"),
    "input not an object": ("POST", "mlp", _json_req([3]), 400, "each input must be a JSON object"),
    "wrong dtype": ("POST", "mlp", _json_req([{**X1, "datatype": "FP64"}]), 400,
                    "input 'x': expected datatype FP32, got 'FP64'"),
    "unknown datatype": ("POST", "mlp", _json_req([{**X1, "datatype": "FLOAT"}]), 400, "expected datatype FP32"),
    "wrong rank": ("POST", "mlp", _json_req([{**X1, "shape": [DIMS[0]]}]), 400, "expected rank 2"),
    "wrong dimension": ("POST", "mlp", _json_req([{**X1, "shape": [2, 8]}]), 400, r"dimension 1 must be 16"),
    "bad shape": ("POST", "mlp", _json_req([{**X1, "shape": [1, -16]}]), 400, "list of non-negative integers"),
    "data count": ("POST", "mlp", _json_req([{**X1, "data": [1.0] * 3}]), 400, "'data' has 3 values"),
    "ragged data": ("POST", "mlp", _json_req([{**X1, "data": [[1.0], [1.0, 2.0]]}]), 400, "not a rectangular"),
    "strings as numbers": ("POST", "mlp", _json_req([{**X1, "data": ["a"] * DIMS[0]}]), 400, "must be numbers"),
    "floats as integers": ("POST", "mixed", _json_req(_mixed(k={"data": [1.5, 2, 3]})), 400,
                           "INT32 data must be integers"),
    "integer out of range": ("POST", "mixed", _json_req(_mixed(k={"data": [2**40, 2, 3]})), 400, "out of range"),
    "no data": ("POST", "mlp", _json_req([{k: v for k, v in X1.items() if k != "data"}]), 400, "neither 'data'"),
    "missing input": ("POST", "mixed", _json_req(MIXED[:2]), 400, "missing input 'h'"),
    "unknown input": ("POST", "mlp", _json_req([X1, {**X1, "name": "z"}]), 400, "unexpected input 'z'"),
    "duplicate input": ("POST", "mlp", _json_req([X1, X1]), 400, "given twice"),
    "unknown output": ("POST", "mlp", _json_req([X1], outputs=[{"name": "nope"}]), 400, "unexpected output 'nope'"),
    "classification": ("POST", "mlp", _json_req([X1], outputs=[{"name": "y", "parameters": {"classification": 2}}]),
                       400, "classification extension"),
    "bad id": ("POST", "mlp", _json_req([X1], id=7), 400, "'id' must be a string"),
    "bad parameters": ("POST", "mlp", _json_req([X1], parameters=[1]), 400, "'parameters' must be a JSON object"),
    "batch disagreement": ("POST", "mixed", _json_req(_mixed(k={"shape": [2, 3], "data": [1, 2, 3] * 2})), 400,
                           "disagree on the batch size"),
    "batch too large": ("POST", "mlp", _json_req([{**X1, "shape": [33, DIMS[0]], "data": [0.0] * 33 * DIMS[0]}]),
                        400, "over model 'mlp''s max_batch_size 32"),
    "fixed shape": ("POST", "fixed", _json_req([{"name": "x", "shape": [3, 2], "datatype": "FP32", "data": [0] * 6}]),
                    400, "expected shape"),
    "binary size mismatch": ("POST", "mlp", _binary({"inputs": [{**XB, "parameters": {"binary_data_size": 8}}]},
                                                    bytes(8)), 400, "does not match shape"),
    "binary past the end": ("POST", "mlp", _binary({"inputs": [XB]}, ZEROS[:-4]), 400, "does not fit"),
    "binary left over": ("POST", "mlp", _binary({"inputs": [XB]}, ZEROS + b"1234"), 400, "4 bytes of binary data"),
    "header length too big": ("POST", "mlp", _binary({"inputs": [XB]}, ZEROS, 10**6), 400, "outside the body"),
    "header length not a number": ("POST", "mlp", (b"{}", {"Inference-Header-Content-Length": "x"}), 400,
                                   "must be an integer"),
    "binary without header": ("POST", "mlp", (json.dumps({"inputs": [XB]}).encode() + ZEROS, {}), 400,
                              "malformed request JSON"),
    "binary size without header length": ("POST", "mlp", (json.dumps({"inputs": [XB]}).encode(), {}), 400,
                                          "no Inference-Header-Content-Length"),
    "bad BYTES element": ("POST", "text", _binary({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES",
                                                               "parameters": {"binary_data_size": 6}}]},
                                                  (99).to_bytes(4, "little") + b"ab"), 400, "runs past"),
    "unknown model": ("POST", "nope", _json_req([X1]), 404, "unknown model: 'nope'"),
    "unknown model metadata": ("GET", "nope", (None, {}), 404, "unknown model"),
    "unknown version": ("POST", "mlp/versions/3", _json_req([X1]), 404, r"unknown version '3' of model 'mlp'"),
    "escaping name": ("GET", "..%2F..%2Fetc", (None, {}), 404, "unknown model"),
    "wrong method": ("GET", "mlp/infer", (None, {}), 405, "use POST"),
    "unknown route": ("GET", "mlp/stats/x", (None, {}), 404, "no route"),
    "oversized body": ("POST", "mlp", (bytes(LIMIT + 1), {}), 413, "over the limit"),
    "unknown encoding": ("POST", "mlp", (b"{}", {"Content-Encoding": "zzz"}), 415, "unsupported Content-Encoding"),
    "bad gzip": ("POST", "mlp", (b"not gzip", {"Content-Encoding": "gzip"}), 400, "(?i)decode content-encoding"),
    "gzip bomb": ("POST", "mlp", (gzip.compress(bytes(LIMIT * 4)), {"Content-Encoding": "gzip"}), 413,
                  "over the limit"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_requests_get_4xx_and_the_server_carries_on(server, files, case):
    method, target, (body, headers), status, pattern = ERRORS[case]
    action = "/infer" if method == "POST" and not target.endswith("/infer") else ""
    path = f"/v2/models/{target}{action}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    got, h, data = call(server.port, method, path, body, headers, conn)
    assert got == status, (got, data)
    assert h["content-type"].startswith("application/json")
    assert re.search(pattern, json.loads(data)["error"]), json.loads(data)["error"]
    if case in ("oversized body", "gzip bomb", "bad gzip"):  # the server may close a connection whose body it
        conn.close()                                            # did not read to the end
        conn = None
    good_request(server.port, files[1], conn)  # and on the same connection where it stays open


def test_chunked_body_over_the_limit(server, files):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v2/models/mlp/infer", body=iter([bytes(64 << 10)] * 8), encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and "over the limit" in json.loads(r.read())["error"]
    conn.close()
    good_request(server.port, files[1])


def test_health_routes_and_metrics(server, files):
    assert call(server.port, "GET", "/v2/health/live")[0] == 200
    assert call(server.port, "GET", "/v2/health/ready")[0] == 200
    assert call(server.port, "GET", "/v2/models/mlp/versions/1/ready")[0] == 200
    assert call(server.port, "POST", "/v2/health/live")[0] == 405
    good_request(server.port, files[1], rows=3)
    status, h, text = call(server.port, "GET", "/metrics")
    assert status == 200 and h["content-type"].startswith("text/plain")
    text = text.decode()
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    mlp_ = '{model="mlp",version="1"}'
    assert metrics[f"nv_inference_request_success{mlp_}"] >= 1
    assert metrics[f"nv_inference_request_failure{mlp_}"] >= 0
    assert metrics[f"nv_inference_count{mlp_}"] >= 3
    assert metrics[f"interop_model_ready{mlp_}"] == 1
    assert metrics[f"nv_inference_compute_infer_duration_us{mlp_}"] > 0
    assert metrics['interop_batch_size_bucket{model="mlp",version="1",le="+Inf"}'] == \
        metrics['interop_batch_size_count{model="mlp",version="1"}'] == metrics[f"nv_inference_exec_count{mlp_}"]
    assert metrics['interop_http_responses_total{code="200"}'] >= 1
    assert "# TYPE interop_batch_size histogram" in text


# ---- concurrency ----------------------------------------------------------------------------------------------------
def test_concurrent_clients_all_answered_correctly(server, files):
    """16 clients x 200 requests of 1-3 rows each, on keep-alive connections: every answer right, none lost."""
    _, net = files
    clients, per = 16, 200
    metric = 'nv_inference_request_success{model="mlp",version="1"}'

    def scrape() -> dict[str, float]:
        text = call(server.port, "GET", "/metrics")[2].decode()
        return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.endswith(tuple("0123456789")) and '{model="mlp",version="1"}' in line}

    before = scrape()
    failures: list[str] = []
    rows_sent = [0] * clients

    def worker(k: int) -> None:
        rng = np.random.default_rng(100 + k)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for j in range(per):
                x = rng.standard_normal((int(rng.integers(1, 4)), DIMS[0])).astype(np.float32)
                body, headers = infer_body([("x", x, "FP32")], binary=j % 4 != 0, binary_output=j % 3 != 0,
                                           id=f"{k}-{j}")
                status, h, data = call(server.port, "POST", "/v2/models/mlp/infer", body, headers, conn)
                n = int(h.get("inference-header-content-length", len(data)))
                if status != 200 or json.loads(data[:n])["id"] != f"{k}-{j}":
                    failures.append(f"{k}-{j}: {status} {data[:200]!r}")
                    continue
                y = parse_response(data, h)["y"]
                if not np.allclose(y, mlp_reference(net, x), rtol=1e-4, atol=1e-5):
                    failures.append(f"{k}-{j}: wrong values")
                rows_sent[k] += x.shape[0]
        except Exception as e:  # a lost request ends the client: report it
            failures.append(f"client {k}: {type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:5]
    after = scrape()
    assert after["nv_inference_request_success"] - before["nv_inference_request_success"] == clients * per, metric
    assert after["nv_inference_count"] - before["nv_inference_count"] == sum(rows_sent)
    assert after["nv_inference_exec_count"] - before["nv_inference_exec_count"] <= clients * per


# ---- auth -----------------------------------------------------------------------------------------------------------
def test_bearer_token(files, monkeypatch):
    paths, net = files
    monkeypatch.setenv("INTEROP_SERVE_TOKEN", "s3cret")
    s = ServerThread(create_app(paths["mlp"]))  # the token comes from the environment
    try:
        port = s.port
        assert call(port, "GET", "/v2/health/live")[0] == 200  # health needs no token
        assert call(port, "GET", "/v2/health/ready")[0] == 200
        for path in ("/v2", "/v2/models/mlp", "/v2/models/mlp/ready", "/metrics", "/v2/models/nope"):
            for auth in (None, "Bearer wrong", "s3cret", "Bearer s3cret2", "Basic s3cret"):
                status, h, data = call(port, "GET", path, headers={"Authorization": auth} if auth else {})
                assert status == 401 and h["www-authenticate"] == "Bearer", (path, auth)
                assert "bearer token" in json.loads(data)["error"]
            for auth in ("Bearer s3cret", "bearer s3cret"):  # the scheme is case-insensitive (RFC 9110)
                assert call(port, "GET", path, headers={"Authorization": auth})[0] in (200, 404)
        x = np.ones((1, DIMS[0]), np.float32)
        body, headers = infer_body([("x", x, "FP32")])
        assert call(port, "POST", "/v2/models/mlp/infer", body, headers)[0] == 401
        c = triton.InferenceServerClient(f"127.0.0.1:{port}")
        inp = triton.InferInput("x", [1, DIMS[0]], "FP32")
        inp.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException, match="bearer token"):
            c.infer("mlp", [inp])
        r = c.infer("mlp", [inp], headers={"Authorization": "Bearer s3cret"})
        np.testing.assert_allclose(r.as_numpy("y"), mlp_reference(net, x), rtol=1e-4, atol=1e-5)
        c.close()
    finally:
        s.stop()


# ---- ASGI -----------------------------------------------------------------------------------------------------------
def test_asgi_app(files):
    paths, net = files
    app = create_asgi_app(paths["mlp"], token="t", max_request_bytes=LIMIT)
    x = np.random.default_rng(5).standard_normal((2, DIMS[0])).astype(np.float32)
    body, headers = infer_body([("x", x, "FP32")])

    async def request(method: str, path: str, body: bytes = b"", headers: dict | None = None, chunks: int = 1):
        raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        parts = [body[i * len(body) // chunks:(i + 1) * len(body) // chunks] for i in range(chunks)]
        messages = [{"type": "http.request", "body": p, "more_body": i < chunks - 1} for i, p in enumerate(parts)]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": "/prefix" + path, "root_path": "/prefix", "headers": raw}
        await app(scope, receive, send)
        start, end = sent
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, end["body"]

    async def main():
        lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        done = []
        startup = asyncio.Event()
        shutdown = asyncio.Event()

        async def receive():
            if not done:
                return lifespan[0]
            await shutdown.wait()
            return lifespan[1]

        async def send(message):
            done.append(message["type"])
            startup.set()

        life = asyncio.create_task(app({"type": "lifespan"}, receive, send))
        await startup.wait()
        assert done == ["lifespan.startup.complete"]
        for _ in range(600):
            if (await request("GET", "/v2/health/ready"))[0] == 200:
                break
            await asyncio.sleep(0.05)
        status, h, data = await request("POST", "/v2/models/mlp/infer", body, {**headers, "Authorization": "Bearer t"},
                                        chunks=3)
        assert status == 200 and int(h["content-length"]) == len(data)
        np.testing.assert_allclose(parse_response(data, h)["y"], mlp_reference(net, x), rtol=1e-4, atol=1e-5)
        assert (await request("POST", "/v2/models/mlp/infer", body, headers))[0] == 401
        status, _, data = await request("POST", "/v2/models/mlp/infer", bytes(LIMIT + 10),
                                        {"Authorization": "Bearer t"}, chunks=4)
        assert status == 413
        shutdown.set()
        await life
        assert done[-1] == "lifespan.shutdown.complete"

    asyncio.run(main())


# ---- the command line -----------------------------------------------------------------------------------------------
def test_cli_serve(files):
    paths, net = files
    env = {**os.environ, "INTEROP_SERVE_TOKEN": "tok"}
    proc = subprocess.Popen([sys.executable, "-m", "interop.cli", "serve", paths["mlp"], paths["fixed"], "--port", "0",
                             "--max-batch-size", "8", "--max-queue-delay-us", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # 'listening on ...' and the log line 'ready: ...'
        line = next(x for x in lines if "listening on" in x)
        assert "http://127.0.0.1:" in line and "mlp/1" in line and "fixed/1" in line, line
        port = int(line.rsplit(":", 1)[1])
        wait_ready(port)
        auth = {"Authorization": "Bearer tok"}
        cfg = json.loads(call(port, "GET", "/v2/models/mlp/config", headers=auth)[2])
        assert cfg["max_batch_size"] == 8 and cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 200
        x = np.ones((2, DIMS[0]), np.float32)
        body, headers = infer_body([("x", x, "FP32")])
        status, h, data = call(port, "POST", "/v2/models/mlp/infer", body, {**headers, **auth})
        assert status == 200
        np.testing.assert_allclose(parse_response(data, h)["y"], mlp_reference(net, x), rtol=1e-4, atol=1e-5)
        assert call(port, "POST", "/v2/models/mlp/infer", body, headers)[0] == 401
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_cli_serve_errors(tmp_path, capsys):
    from interop.cli import main

    assert main(["serve"]) == 2
    assert "give MODEL.onnx files or --model-repository" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.onnx")]) == 2
    assert "no such model file" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["serve", str(tmp_path / "junk.onnx")]) == 2
    assert "model 'junk' version 1: cannot load" in capsys.readouterr().err


# ---- readiness ------------------------------------------------------------------------------------------------------
def reshape_model() -> onnx.ModelProto:
    """x [b, n] -> reshape to [-1, 4]: fine for real inputs (n = 4), fails on the warm-up's zeros of shape (1, 1)."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])
    return model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [vi("x", TensorProto.FLOAT, ["b", "n"])],
                 [vi("y", TensorProto.FLOAT, ["b2", 4])], [shape])


@pytest.mark.parametrize("warmup", [True, False])
def test_readiness_follows_the_warm_up(tmp_path, warmup):
    path = str(tmp_path / "reshape.onnx")
    onnx.save(reshape_model(), path)
    app = create_asgi_app(path, warmup=warmup, max_batch_size=0)
    server = app.server
    body, headers = infer_body([("x", np.ones((2, 4), np.float32), "FP32")], binary=False, binary_output=False)

    async def main():
        def handle(method, path, body=b"", headers=None):
            async def read():
                return body
            return server.handle(method, path, headers or {}, len(body), read)

        await server.start()
        await server._warmup
        ready = await handle("GET", "/v2/health/ready")
        model_ready = await handle("GET", "/v2/models/reshape/ready")
        live = await handle("GET", "/v2/health/live")
        reply = await handle("POST", "/v2/models/reshape/infer", body, {k.lower(): v for k, v in headers.items()})
        metrics = (await handle("GET", "/metrics"))[2].decode()
        await server.close()
        return ready, model_ready, live, reply, metrics

    ready, model_ready, live, reply, metrics = asyncio.run(main())
    assert live[0] == 200
    if warmup:  # the zeros of shape (1, 1) cannot be reshaped to (-1, 4): loudly not ready
        assert ready[0] == model_ready[0] == reply[0] == 503
        assert "warm-up failed" in json.loads(ready[2])["error"]
        assert 'interop_model_ready{model="reshape",version="1"} 0' in metrics
    else:
        assert ready[0] == model_ready[0] == reply[0] == 200
        assert json.loads(reply[2])["outputs"][0]["data"] == [1.0] * 8


# ---- GPU ------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_serve_on_cuda(files):
    paths, net = files
    s = ServerThread(create_app([paths["mlp"], paths["mixed"]], device="cuda", instances=2))
    try:
        c = triton.InferenceServerClient(f"127.0.0.1:{s.port}")
        x = np.random.default_rng(9).standard_normal((5, DIMS[0])).astype(np.float32)
        inp = triton.InferInput("x", [5, DIMS[0]], "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_allclose(c.infer("mlp", [inp]).as_numpy("y"), mlp_reference(net, x), rtol=1e-3, atol=1e-4)
        assert c.get_model_config("mlp")["instance_group"][0]["kind"] == "KIND_GPU"
        c.close()
    finally:
        s.stop()
