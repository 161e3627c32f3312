"""`interop serve` under a bounded loopback load: MLP 784-512-256-10, batch-1 requests with binary tensors.

Each server runs in its own process; the load generator (this process) is a lean asyncio client with one keep-alive
connection per simulated client, pre-built requests and a minimal HTTP/1.1 response parser, so the server keeps a core.
Every response must be 200 with the expected size; every 16th output is also compared with the model's numpy result.
Three servers: `interop serve` with dynamic batching on (the default), with it off (`--max-batch-size 0`), and a
plain aiohttp endpoint running ONNX Runtime inline with no validation (what a hand-written server reaches; research
measured 2,062 req/s, p50 3.4 ms, p99 7.6 ms for it on this machine, with a heavier aiohttp client). All three run at
once and take the load in turn, in interleaved rounds, so that other processes' use of the machine falls on them alike.

Bars (8 clients, 10 s): batching on >= 2,000 req/s, p99 <= 10 ms, no errors, and >= 1.2x the throughput of batching off.
The machine is shared: the load average and the CPU other processes used during each run are printed beside it, and
so is the server's CPU time per request, which depends far less on what else runs than throughput does.
Run: `python -m bench.serve [--duration S] [--clients N] [--rounds N] [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
import onnx

from tests.runtime.models import mlp, mlp_reference

from .common import Row, print_table

HOST = "127.0.0.1"  # the load generator talks to this address only
MAX_REQUESTS = 200_000  # per run, whatever the duration
CHECK_EVERY = 16


# ---- the load generator -------------------------------------------------------------------------------------------
def build_request(port: int, x: np.ndarray) -> bytes:
    header = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    body = header + x.tobytes()
    return (f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class _Client(asyncio.Protocol):
    """One keep-alive connection sending the same request back to back until the deadline or the shared budget."""

    def __init__(self, request: bytes, expect: np.ndarray, run: dict):
        self.request, self.expect, self.run = request, expect, run
        self.buf = b""
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        run = self.run
        if time.perf_counter() >= run["deadline"] or run["sent"] >= MAX_REQUESTS:
            self.transport.close()
            return
        run["sent"] += 1
        self.t0 = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
        run = self.run
        run["latencies"].append(time.perf_counter() - self.t0)
        ok = head[9:12] == b"200" and len(body) >= self.expect.nbytes
        if ok and len(run["latencies"]) % CHECK_EVERY == 0:
            got = np.frombuffer(body[-self.expect.nbytes:], np.float32).reshape(self.expect.shape)
            ok = bool(np.allclose(got, self.expect, rtol=1e-4, atol=1e-4))
        if not ok:
            run["errors"] += 1
            if not run["first_error"]:
                run["first_error"] = (head[:12] + b" " + body[:200]).decode(errors="replace")
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def load(port: int, clients: int, seconds: float, inputs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Drive `clients` connections for `seconds` (at most MAX_REQUESTS requests); latencies in seconds."""
    assert HOST == "127.0.0.1"
    loop = asyncio.get_running_loop()
    run = {"deadline": time.perf_counter() + seconds, "sent": 0, "latencies": [], "errors": 0, "first_error": ""}
    conns = []
    t0 = time.perf_counter()
    for k in range(clients):
        x, y = inputs[k % len(inputs)]
        _, proto = await loop.create_connection(lambda x=x, y=y: _Client(build_request(port, x), y, run), HOST, port)
        conns.append(proto)
    await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), seconds + 30)
    run["elapsed"] = time.perf_counter() - t0
    run["lost"] = run["sent"] - len(run["latencies"])
    return run


# ---- servers ------------------------------------------------------------------------------------------------------
def reference_server(model_path: str) -> None:
    """The floor: aiohttp + ONNX Runtime inline, binary batch-1 only, no validation, batching or metrics."""
    import onnxruntime as ort
    from aiohttp import web

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])

    async def infer(request: web.Request) -> web.Response:
        body = await request.read()
        n = int(request.headers["Inference-Header-Content-Length"])
        spec = json.loads(body[:n])["inputs"][0]
        x = np.frombuffer(body, np.float32, offset=n).reshape(spec["shape"])
        y = sess.run(None, {"x": x})[0]
        head = json.dumps({"model_name": "mlp", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(y.shape),
                                                             "parameters": {"binary_data_size": y.nbytes}}]}).encode()
        return web.Response(body=head + y.tobytes(), headers={"Inference-Header-Content-Length": str(len(head))},
                            content_type="application/octet-stream")

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/v2/models/mlp/infer", infer)
        app.router.add_get("/v2/health/ready", ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        print(f"listening on http://{HOST}:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()  # until SIGTERM

    asyncio.run(run())


class Server:
    """A server process, stopped (by its pid) on exit."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=os.getcwd())
        try:
            self.port = self._port()
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise

    def _port(self) -> int:
        if self.proc.stdout is None:
            raise RuntimeError("no server output")
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "http://" in line:
                # keep draining its output, so a chatty server never blocks on a full pipe
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        raise RuntimeError(f"the server did not start (exit code {self.proc.poll()})")

    def _wait_ready(self) -> None:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("nv_inference_"):
                out[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
        return out

    def cpu_seconds(self) -> float:
        return _proc_cpu(self.proc.pid)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _proc_cpu(pid: int | str) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_cpu() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


# ---- the runs -----------------------------------------------------------------------------------------------------
class Tally:
    """One server's figures, summed over its rounds."""

    def __init__(self, label: str, server: Server, metrics: bool):
        self.label, self.server, self.has_metrics = label, server, metrics
        self.latencies: list[float] = []
        self.elapsed = self.server_cpu = self.client_cpu = self.busy = 0.0
        self.errors = self.lost = 0
        self.first_error = ""
        self.loads: list[float] = []
        self.m0 = server.metrics() if metrics else {}

    def round(self, clients: int, seconds: float, inputs: list) -> None:
        busy, srv, own = _busy_cpu(), self.server.cpu_seconds(), _proc_cpu("self")
        run = asyncio.run(load(self.server.port, clients, seconds, inputs))
        self.busy += _busy_cpu() - busy
        self.server_cpu += self.server.cpu_seconds() - srv
        self.client_cpu += _proc_cpu("self") - own
        self.loads.append(os.getloadavg()[0])
        self.latencies += run["latencies"]
        self.elapsed += run["elapsed"]
        self.errors += run["errors"]
        self.lost += run["lost"]
        self.first_error = self.first_error or run["first_error"]

    def result(self) -> dict:
        lat = np.sort(np.asarray(self.latencies)) * 1e3
        n = max(len(lat), 1)
        res = {"rps": len(lat) / self.elapsed, "n": len(lat), "errors": self.errors, "lost": self.lost,
               "p50": float(np.percentile(lat, 50)) if len(lat) else math.nan,
               "p99": float(np.percentile(lat, 99)) if len(lat) else math.nan,
               "server_us": self.server_cpu / n * 1e6, "client_us": self.client_cpu / n * 1e6,
               "foreign": max(0.0, (self.busy - self.server_cpu - self.client_cpu) / self.elapsed),
               "load": sum(self.loads) / len(self.loads)}
        extra = ""
        if self.has_metrics:
            m0, m1 = self.m0, self.server.metrics()
            d = {k: m1[k] - m0[k] for k in m1}
            ok = max(d["nv_inference_request_success"], 1)
            extra = (f", mean batch {d['nv_inference_count'] / max(d['nv_inference_exec_count'], 1):.1f}, queue "
                     f"{d['nv_inference_queue_duration_us'] / ok:.0f} us and compute "
                     f"{d['nv_inference_compute_infer_duration_us'] / ok:.0f} us per request")
        print(f"{self.label}: {res['rps']:,.0f} req/s, p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, "
              f"{res['n']:,} answers, {res['errors']} errors, {res['lost']} lost{extra}; CPU per request: server "
              f"{res['server_us']:.0f} us, client {res['client_us']:.0f} us; load average {res['load']:.2f}, other "
              f"processes used {res['foreign']:.2f} cores", flush=True)
        if self.first_error:
            print(f"  first error: {self.first_error}")
        return res


def measure(servers: dict[str, list[str]], clients: int, seconds: float, rounds: int,
            inputs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """Start every server, then load them in turn, `rounds` rounds of `seconds / rounds` each, so that what other
    processes do to the machine falls on all of them alike."""
    with contextlib.ExitStack() as stack:
        tallies = []
        for label, args in servers.items():
            server = stack.enter_context(Server(args))
            asyncio.run(load(server.port, clients, min(1.0, seconds / 5), inputs))  # warm-up
            tallies.append(Tally(label, server, "interop.cli" in args))
        for _ in range(rounds):
            for t in tallies:
                t.round(clients, seconds / rounds, inputs)
        return {t.label: t.result() for t in tallies}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per server (default 10)")
    p.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    p.add_argument("--rounds", type=int, default=5, help="rounds the load time is split in, taking the servers in "
                                                         "turn (default 5)")
    p.add_argument("--quick", action="store_true", help="2 s per server (a smoke run)")
    p.add_argument("--reference-server", metavar="MODEL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reference_server:
        reference_server(args.reference_server)
        return 0
    seconds = 2.0 if args.quick else args.duration
    model = mlp((784, 512, 256, 10))
    rng = np.random.default_rng(0)
    inputs = []
    for _ in range(args.clients):
        x = rng.standard_normal((1, 784)).astype(np.float32)
        inputs.append((x, mlp_reference(model, x).astype(np.float32)))
    print(f"\nbench.serve: MLP 784-512-256-10, batch 1, binary tensors, {args.clients} clients x {seconds:g} s per "
          f"server in {args.rounds} interleaved rounds, on {os.cpu_count()} cores (client and servers share them)",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.onnx")
        onnx.save(model, path)
        serve = ["-m", "interop.cli", "serve", path, "--port", "0"]
        res = measure({"interop serve, batching on ": serve,
                       "interop serve, batching off": [*serve, "--max-batch-size", "0"],
                       "plain aiohttp + ORT inline ": ["-m", "bench.serve", "--reference-server", path]},
                      args.clients, seconds, args.rounds, inputs)
    on, off, ref = res.values()
    clean = all(r["errors"] == 0 and r["lost"] == 0 for r in (on, off))
    rows = [
        Row("batching on: req/s", on["rps"], ref["rps"], "req/s", ">= 2,000", on["rps"] >= 2000),
        Row("batching on: p50 latency", on["p50"], ref["p50"], "ms", "", True),
        Row("batching on: p99 latency", on["p99"], ref["p99"], "ms", "<= 10 ms", on["p99"] <= 10),
        Row("batching off: req/s", off["rps"], ref["rps"], "req/s", "", True),
        Row("batching off: p99 latency", off["p99"], ref["p99"], "ms", "", True),
        Row("batching on vs off: req/s", on["rps"], off["rps"], "req/s", ">= 1.2x", on["rps"] >= 1.2 * off["rps"]),
        Row("errors + lost (on, off)", on["errors"] + on["lost"] + off["errors"] + off["lost"], None, "", "0", clean),
    ]
    print_table("interop serve (Open Inference Protocol, binary tensors)", rows,
                "plain aiohttp+ORT (same run; off for the on/off row)")
    ok = all(r.ok for r in rows)
    print("PASS" if ok else "FAIL: a bar was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
