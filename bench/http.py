"""The HTTP door's throughput, next to NATS publish on the same hub.

The scenario starts a Jetport hub with JetStream and the HTTP door (the door is
Jetport's own, so it runs a Jetport hub whatever the target is) and measures, one after
the other on that hub:

- HTTP publish: ``POST /v1/publish/<subject>`` over CONNS keep-alive connections, each
  with PIPELINE requests in flight (raw HTTP/1.1 on asyncio, so the client is cheap);
- HTTP publish to a stream: the same, answered with the PubAck after commit;
- batch publish: ``POST /v1/publish`` with BATCH messages per request;
- fetch: ``POST /v1/streams/S/consumers/C/fetch`` of BATCH messages at a time;
- NATS publish: pipelined PUBs on one raw NATS connection, then a PING round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import servers
from .common import SETUP_TIMEOUT, jetport_only, shares, size_label
from .model import OWN, Column, Context, CpuProbe, Outcome, Params, Scenario
from .rawclient import FILL, Endpoint, RawConn, connect, pub_frame

HOST = "127.0.0.1"


class HttpError(Exception):
    """An unexpected HTTP status."""


class HttpConn:
    """One keep-alive HTTP/1.1 connection that pipelines requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> HttpConn:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def run(self, requests: list[bytes], depth: int, ok: tuple[int, ...]) -> list[bytes]:
        """Send ``requests`` with ``depth`` in flight; the bodies, in order."""
        bodies: list[bytes] = []
        for i in range(0, len(requests), depth):
            chunk = requests[i : i + depth]
            self.writer.write(b"".join(chunk))
            for _ in chunk:
                status, body = await self.response()
                if status not in ok:
                    raise HttpError(f"HTTP {status}: {body[:200]!r}")
                bodies.append(body)
        return bodies

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, body: bytes = b"",
            content_type: str = "application/octet-stream") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Nats(RawConn):
    """A raw NATS connection that can wait for its PONG."""

    def __init__(self, ep: Endpoint) -> None:
        super().__init__(ep, "bench-http-nats")
        self.pong: asyncio.Future[None] | None = None

    def on_data(self, data: bytes) -> None:
        self.watch(data)
        if self.pong is not None and b"PONG" in data and not self.pong.done():
            self.pong.set_result(None)


async def _parallel(port: int, conns: int, requests: list[bytes], depth: int,
                    ok: tuple[int, ...]) -> tuple[float, list[bytes]]:
    """Spread ``requests`` over ``conns`` connections; (seconds, bodies)."""
    opened = [await HttpConn.open(port) for _ in range(conns)]
    try:
        parts, at = [], 0
        for n in shares(len(requests), conns):
            parts.append(requests[at : at + n])
            at += n
        t0 = time.perf_counter()
        results = await asyncio.gather(*(c.run(p, depth, ok)
                                         for c, p in zip(opened, parts, strict=True)))
        return time.perf_counter() - t0, [b for r in results for b in r]
    finally:
        for c in opened:
            c.close()


async def _nats_publish(port: int, payload: bytes, count: int) -> float:
    ep = Endpoint(HOST, port)
    conn = await connect(lambda: _Nats(ep), ep, SETUP_TIMEOUT)
    try:
        frame = pub_frame("bench.nats", payload)
        block = frame * 1000
        t0 = time.perf_counter()
        sent = 0
        while sent < count:
            n = min(1000, count - sent)
            conn.write(block if n == 1000 else frame * n)
            sent += n
            await conn.drained()
        conn.pong = asyncio.get_running_loop().create_future()
        conn.write(b"PING\r\n")
        await asyncio.wait_for(conn.pong, 60)
        return time.perf_counter() - t0
    finally:
        conn.close()


async def _measure(http: int, nats: int, p: Params, timeout: float, pid: int
                   ) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """The metrics, and the CPU used during the keep-alive publish (the headline figure,
    so the one the table shows)."""
    size, conns, depth = int(p["size"]), int(p["conns"]), int(p["pipeline"])
    count, batch = int(p["count"]), int(p["batch"])
    payload = FILL * size
    out: dict[str, float | None] = {}
    probe = CpuProbe(pid)
    setup = await HttpConn.open(http)
    try:
        cfg = json.dumps({"name": "BENCH", "subjects": ["bench.js.>"], "storage": "file"})
        await setup.run([request("POST", "/v1/streams", cfg.encode(), "application/json")],
                        1, (201,))
        # core publish, keep-alive
        reqs = [request("POST", "/v1/publish/bench.core", payload)] * count
        await _parallel(http, conns, reqs[: max(count // 10, 1)], depth, (202,))
        probe.start()
        secs, _ = await _parallel(http, conns, reqs, depth, (202,))
        publish_cpu = probe.stop()
        out["http_pub_rps"] = count / secs
        # publish to a stream: each 200 carries its PubAck
        js_count = max(count // 2, 1)
        reqs = [request("POST", "/v1/publish/bench.js.x", payload)] * js_count
        secs, bodies = await _parallel(http, conns, reqs, depth, (200,))
        if json.loads(bodies[-1]).get("stream") != "BENCH":
            raise HttpError(f"unexpected PubAck {bodies[-1][:200]!r}")
        out["http_js_pub_rps"] = js_count / secs
        # batch publish
        text = payload.decode()
        body = json.dumps({"messages": [{"subject": "bench.batch", "data": text}] * batch})
        n_batches = max(int(p["batch_msgs"]) // batch, 1)
        reqs = [request("POST", "/v1/publish", body.encode(), "application/json")] * n_batches
        secs, _ = await _parallel(http, min(conns, 4, n_batches), reqs, 1, (200,))
        out["batch_msgs_per_s"] = n_batches * batch / secs
        # fetch from a pull consumer (filled through NATS, measured over HTTP)
        fetch_n = int(p["fetch_msgs"])
        await _fill(nats, payload, fetch_n)
        cons = json.dumps({"durable_name": "F", "ack_policy": "none"}).encode()
        setup.close()  # idle past the server's keep-alive limit by now
        setup = await HttpConn.open(http)
        await setup.run([request("POST", "/v1/streams/BENCH/consumers", cons,
                                 "application/json")], 1, (201,))
        fetch = request("POST", f"/v1/streams/BENCH/consumers/F/fetch?batch={batch}&wait=1")
        got, t0 = 0, time.perf_counter()
        while got < fetch_n and time.perf_counter() - t0 < timeout:
            (page,) = await setup.run([fetch], 1, (200,))
            got += len(json.loads(page)["messages"])
        out["fetch_msgs_per_s"] = got / (time.perf_counter() - t0)
        out["nats_pub_msgs_per_s"] = int(p["nats_msgs"]) / await _nats_publish(
            nats, payload, int(p["nats_msgs"]))
    finally:
        setup.close()
    return out, publish_cpu


async def _fill(port: int, payload: bytes, count: int) -> None:
    """Store ``count`` messages with one PubAck-confirmed round trip at the end."""
    ep = Endpoint(HOST, port)
    conn = await connect(lambda: _Nats(ep), ep, SETUP_TIMEOUT)
    try:
        frame = pub_frame("bench.js.fill", payload)
        for at in range(0, count, 1000):
            conn.write(frame * min(1000, count - at))
            await conn.drained()
        conn.pong = asyncio.get_running_loop().create_future()
        conn.write(b"PING\r\n")
        await asyncio.wait_for(conn.pong, 60)
    finally:
        conn.close()
    await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Hub:
    """A Jetport hub started for a scenario of its HTTP door."""

    proc: subprocess.Popen[bytes]
    nats: int
    http: int
    log: Path


@contextlib.contextmanager
def http_hub(jetstream: bool) -> Iterator[Hub]:
    """Start a Jetport hub with the HTTP door (and JetStream on a scratch store when asked);
    it is stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="jetport-bench-http-") as tmp:
        work = Path(tmp)
        port, http = servers.free_ports(2)
        proc, _cmd, log = servers.spawn("jetport", port, work,
                                        work / "store" if jetstream else None,
                                        extra=("-m", str(http)))
        try:
            servers.wait_ready(HOST, port, proc, SETUP_TIMEOUT * 3)
            yield Hub(proc, port, http, log)
        finally:
            servers.stop(proc)


async def http_bench(ctx: Context, p: Params) -> Outcome:
    skipped = jetport_only(ctx, "HTTP")
    if skipped is not None:
        return skipped
    with http_hub(jetstream=True) as hub:
        probe = CpuProbe(hub.proc.pid)
        probe.start()
        try:
            metrics, details = await asyncio.wait_for(
                _measure(hub.http, hub.nats, p, ctx.timeout, hub.proc.pid), ctx.timeout * 2)
        except (HttpError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            return Outcome(metrics={c.key: None for c in SCENARIO.columns},
                           error=f"{type(exc).__name__}: {exc}",
                           details={"log": servers.log_tail(hub.log)})
        whole = probe.stop()
    return Outcome(metrics=metrics, details={
        "hub": "jetport", **details,
        "run_client_cpu_pct": whole["client_cpu_pct"],
        "run_server_cpu_pct": whole["server_cpu_pct"]})


SCENARIO = Scenario(
    name="http",
    run=http_bench,
    columns=(Column("http_pub_rps", "http pub req/s", "rate"),
             Column("http_js_pub_rps", "http js pub req/s", "rate"),
             Column("batch_msgs_per_s", "batch msgs/s", "rate"),
             Column("fetch_msgs_per_s", "fetch msgs/s", "rate"),
             Column("nats_pub_msgs_per_s", "nats pub msgs/s", "rate")),
    defaults={"size": 128, "count": 20_000, "conns": 16, "pipeline": 1, "batch": 1000,
              "batch_msgs": 200_000, "fetch_msgs": 50_000, "nats_msgs": 200_000},
    label=lambda p: (f"http {size_label(p['size'])} c{p['conns']} p{p['pipeline']} "
                     f"b{p['batch']}"),
    help="HTTP door: publish req/s (keep-alive, CONNS x PIPELINE), batch publish and fetch "
         "msgs/s, beside NATS publish on the same Jetport hub",
    server=OWN,
    phases=3,
)
