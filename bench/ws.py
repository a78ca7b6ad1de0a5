"""NATS over WebSocket: pub/sub throughput through the websocket listener, next to NATS over
TCP on the same server, in one run.

The scenario starts the target (Jetport or nats-server) with a ``websocket {}`` listener
and runs the ``pubsub`` workload twice: once on the client port, once with every
connection upgraded to WebSocket.  The bench clients are the same raw protocol
connections as ``pubsub``'s, under a thin client-side framing layer (:class:`WsClient`):
one binary frame per write, and a zero masking key so the client spends nothing on
masking while the server still unmasks every byte.  With ``--compare`` the WebSocket
column of the two targets sets Jetport's listener against nats-server's.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from . import servers
from .common import SETUP_TIMEOUT, close_all, run_tag, size_label
from .counter import Counter
from .model import OWN, Column, Context, Outcome, Params, Scenario
from .pubsub import _measure
from .rawclient import FILL, Endpoint, RawConn, connect, pub_frame
from .servers import LaunchError

C = TypeVar("C", bound=RawConn)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0, 1, 2, 8, 9
_NO_MASK_KEY = b"\x00\x00\x00\x00"


def frame_header(length: int, opcode: int = OP_BINARY) -> bytes:
    """A final, masked client frame header with an all-zero key (payload sent as is)."""
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + _NO_MASK_KEY


class WsClient(asyncio.Protocol):
    """The client side of a WebSocket carrying one raw bench connection (``inner``)."""

    def __init__(self, inner: RawConn, host: str, port: int, path: str = "/") -> None:
        self.inner = inner
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            f"{base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.tcp: asyncio.Transport | None = None
        self._open = False
        self._hbuf = b""
        self._head = b""  # a frame header split across reads
        self._rem = 0  # payload bytes left in the current frame
        self._op = 0
        self._buffered = isinstance(inner, asyncio.BufferedProtocol)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = cast(asyncio.Transport, transport)
        self.tcp.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            self._hbuf += data
            end = self._hbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            status, data = self._hbuf[:end].split(b"\r\n", 1)[0], self._hbuf[end + 4 :]
            self._hbuf = b""
            if b" 101 " not in status + b" ":
                self.inner.error = f"websocket upgrade refused: {status.decode()}"
                assert self.tcp is not None
                self.tcp.close()
                return
            self._open = True
            self.inner.connection_made(WsClientTransport(self))
        if data:
            self._frames(memoryview(data))

    def _frames(self, view: memoryview) -> None:
        pos, n = 0, len(view)
        while pos < n:
            if self._rem:
                take = min(self._rem, n - pos)
                if self._op in (OP_CONT, OP_TEXT, OP_BINARY):
                    self._feed(view[pos : pos + take])
                self._rem -= take
                pos += take
                continue
            have = self._head
            head = have + bytes(view[pos : pos + 14 - len(have)])
            if len(head) < 2:
                self._head = head
                return
            size = head[1] & 0x7F
            need = 2 + (2 if size == 126 else 8 if size == 127 else 0)
            need += 4 if head[1] & 0x80 else 0
            if len(head) < need:
                self._head = head
                return
            pos += need - len(have)
            self._head = b""
            if size == 126:
                size = int.from_bytes(head[2:4], "big")
            elif size == 127:
                size = int.from_bytes(head[2:10], "big")
            self._op, self._rem = head[0] & 0x0F, size
            if self._op == OP_CLOSE:
                assert self.tcp is not None
                self.tcp.close()
                return

    def _feed(self, chunk: memoryview) -> None:
        inner = self.inner
        if not self._buffered:
            inner.data_received(bytes(chunk))
            return
        buffered = cast(asyncio.BufferedProtocol, inner)
        while chunk:
            buf = memoryview(buffered.get_buffer(len(chunk)))
            k = min(len(buf), len(chunk))
            buf[:k] = chunk[:k]
            buffered.buffer_updated(k)
            chunk = chunk[k:]

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._open:
            self.inner.error = self.inner.error or "websocket upgrade failed"
        self.inner.connection_lost(exc)


class WsClientTransport(asyncio.Transport):
    """What the raw connection writes to: each write is one binary frame."""

    def __init__(self, client: WsClient) -> None:
        super().__init__()
        self._client = client
        assert client.tcp is not None
        self._tcp = client.tcp

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = frame_header(len(data))
        if len(data) < 4096:
            self._tcp.write(head + bytes(data))
        else:
            self._tcp.write(head)
            self._tcp.write(data)

    def is_closing(self) -> bool:
        return self._tcp.is_closing()

    def close(self) -> None:
        if not self._tcp.is_closing():
            self._tcp.write(frame_header(2, OP_CLOSE) + (1000).to_bytes(2, "big"))
            self._tcp.close()

    def abort(self) -> None:
        self._tcp.abort()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._tcp.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tcp.get_extra_info(name, default)


async def ws_connect(factory: Callable[[], C], endpoint: Endpoint, port: int,
                     timeout: float) -> C:
    """Like :func:`rawclient.connect`, through the WebSocket listener on ``port``."""
    loop = asyncio.get_running_loop()
    inner: C | None = None
    try:
        async with asyncio.timeout(timeout):
            inner = factory()
            await loop.create_connection(
                lambda: WsClient(cast(RawConn, inner), endpoint.host, port),
                endpoint.host, port)
            await inner.ready
    except BaseException:
        if inner is not None:
            inner.close()
        raise
    return inner


async def _pubsub(ctx: Context, ep: Endpoint, ws_port: int | None, p: Params,
                  tag: str) -> dict[str, Any]:
    """One pubsub run, over WebSocket when ``ws_port`` is set; metrics and details."""
    pubs, subs, size, count = int(p["pubs"]), int(p["subs"]), int(p["size"]), int(p["count"])
    subject = f"bench.{run_tag()}.{tag}"
    setup = f"SUB {subject} 1\r\n".encode()

    async def open_conn(factory: Callable[[], C]) -> C:
        if ws_port is None:
            return await connect(factory, ep, SETUP_TIMEOUT)
        return await ws_connect(factory, ep, ws_port, SETUP_TIMEOUT)

    counters: list[Counter] = []
    publishers: list[RawConn] = []
    try:
        for i in range(subs):
            counters.append(await open_conn(partial(Counter, ep, f"bench-{tag}-sub-{i}", setup)))
        for i in range(pubs):
            publishers.append(await open_conn(partial(RawConn, ep, f"bench-{tag}-pub-{i}")))
        frame = pub_frame(subject, FILL * size)
        publishers[0].write(frame)
        await asyncio.wait_for(asyncio.gather(*(c.primed for c in counters)), SETUP_TIMEOUT)
        warmup = min(count // 10, 200_000)
        run = await _measure(counters, publishers, frame, warmup, ctx) if warmup else None
        if run is None or not (run.partial or run.error):
            run = await _measure(counters, publishers, frame, count, ctx)
    finally:
        await close_all([*counters, *publishers])
    rate = run.delivered / run.elapsed if run.elapsed > 0 else 0.0
    return {"rate": rate, "elapsed_s": run.elapsed, "delivered": run.delivered,
            "expected": run.expected, "partial": run.partial, "error": run.error, **run.cpu}


async def ws_pubsub(ctx: Context, p: Params) -> Outcome:
    if ctx.launch is None:
        return Outcome(metrics={}, error="ws needs a server the bench starts itself "
                       "(--jetport, --nats-server or --compare)")
    details: dict[str, Any] = {}
    metrics: dict[str, float | None] = {"ws_msgs_per_s": None, "tcp_msgs_per_s": None,
                                        "ws_vs_tcp": None}
    error = None
    partial = False
    with tempfile.TemporaryDirectory(prefix="jetport-bench-ws-") as tmp:
        work = Path(tmp)
        port, ws_port = servers.free_ports(2)
        conf = work / "ws.conf"
        conf.write_text(f"websocket {{\n  port: {ws_port}\n  no_tls: true\n}}\n")
        proc, cmd, log = servers.spawn(ctx.launch, port, work, extra=["-c", str(conf)])
        try:
            try:
                servers.wait_ready("127.0.0.1", port, proc, servers.READY_TIMEOUT)
            except LaunchError as exc:
                tail = servers.log_tail(log)
                raise LaunchError(f"{exc}\n  command: {' '.join(cmd)}"
                                  + (f"\n  log:\n{tail}" if tail else "")) from exc
            url = f"nats://127.0.0.1:{port}"
            run_ctx = Context(url, proc.pid, ctx.timeout, ctx.launch)
            ep = Endpoint.parse(url)
            for name, over in (("tcp", None), ("ws", ws_port)):
                result = await _pubsub(run_ctx, ep, over, p, name)
                details[name] = result
                metrics[f"{name}_msgs_per_s"] = result["rate"]
                partial = partial or result["partial"]
                if result["error"]:
                    error = f"{name}: {result['error']}"
                    break
        except (LaunchError, OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        finally:
            servers.stop(proc)
    # The table's cpu% columns show the WebSocket run.
    details.update({k: details.get("ws", {}).get(k)
                    for k in ("wall_s", "client_cpu_pct", "server_cpu_pct")})
    ws, tcp = metrics["ws_msgs_per_s"], metrics["tcp_msgs_per_s"]
    if ws and tcp:
        metrics["ws_vs_tcp"] = ws / tcp
    return Outcome(metrics=metrics, details=details, partial=partial, error=error)


SCENARIO = Scenario(
    name="ws",
    run=ws_pubsub,
    columns=(Column("ws_msgs_per_s", "ws msgs/s", "rate"),
             Column("tcp_msgs_per_s", "tcp msgs/s", "rate"),
             Column("ws_vs_tcp", "ws/tcp", "float", ratio=False)),
    defaults={"pubs": 1, "subs": 1, "size": 128, "count": 500_000},
    label=lambda p: f"ws pubsub {size_label(p['size'])} {p['pubs']}->{p['subs']}",
    help="pubsub over the websocket listener and over TCP on the same server; msgs/s each",
    server=OWN,
    phases=4,
)
