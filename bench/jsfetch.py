"""JetStream pull consumer throughput: fetch batches and ack every message.

A file stream is pre-filled (pipelined publishes, not measured), a durable pull consumer with
explicit acks is created, then batches are fetched one request at a time with
``CONSUMER.MSG.NEXT`` (reply to an inbox, with an expiry) and every delivered message is acked
by an empty publish to its ``$JS.ACK`` reply subject. The rate counts messages delivered and
acked, from the first pull request until the server has received the last ack.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from .common import SETUP_TIMEOUT, size_label
from .jsclient import (
    API_TIMEOUT,
    JsConn,
    JsError,
    create_stream,
    delete_stream,
    publish_pipelined,
    status_of,
    stream_names,
)
from .model import JETSTREAM, Column, Context, CpuProbe, Outcome, Params, Scenario
from .rawclient import FILL, Endpoint, ProtocolError, connect

EXPIRES_NS = 5_000_000_000
# Status codes that end a pull request without an error: no messages, request expired.
END_OF_PULL = (404, 408)
HEARTBEAT = 100
ACK_SETTLE = 5.0


class Fetcher:
    """Keeps one pull request outstanding until ``count`` messages were delivered and acked.

    Acks for the messages of one read go out in one write, followed by the next pull request
    when the current one is used up or ended by a status message.
    """

    def __init__(self, conn: JsConn, stream: str, consumer: str, count: int, batch: int,
                 expires_ns: int = EXPIRES_NS) -> None:
        self.conn, self.count, self.batch, self.expires = conn, count, max(1, batch), expires_ns
        self.got = 0
        self.pulls = 0
        self.ended = 0  # pull requests ended by a status (expired, no messages)
        self.error: str | None = None
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._next = f"PUB $JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer} {conn.inbox}p".encode()
        self._current = b""
        self._left = 0
        self._acks: list[bytes] = []

    def start(self) -> None:
        self.conn.on_msg = self._on_msg
        self.conn.on_chunk = self._flush
        if self.count <= 0:
            self.done.set_result(time.perf_counter())
            return
        self._pull()

    def stop(self) -> None:
        self.conn.on_chunk = None

    def _pull(self) -> None:
        n = min(self.batch, self.count - self.got)
        self.pulls += 1
        self._current = b".p%d" % self.pulls
        self._left = n
        body = b'{"batch":%d,"expires":%d}' % (n, self.expires)
        self.conn.write(b"%b%d %d\r\n%b\r\n" % (self._next, self.pulls, len(body), body))

    def _on_msg(self, subject: bytes, reply: bytes, hdr: bytes | None, payload: bytes) -> None:
        if reply:
            self._acks.append(b"PUB %b 0\r\n\r\n" % reply)
            self._left -= 1
            return
        status = status_of(hdr)
        if status is None or status[0] == HEARTBEAT or not subject.endswith(self._current):
            return
        if status[0] in END_OF_PULL:
            self._left = 0
            self.ended += 1
        elif self.error is None:
            self.error = f"pull request ended with status {status[0]} {status[1]}".rstrip()

    def _flush(self) -> None:
        acks = self._acks
        if acks:
            self.got += len(acks)
            self.conn.write(b"".join(acks))
            acks.clear()
        if self.done.done():
            return
        if self.got >= self.count:
            self.done.set_result(time.perf_counter())
        elif self.error is not None:
            self.done.set_exception(ProtocolError(self.error))
        elif self._left <= 0:
            self._pull()


async def _consumer_backlog(conn: JsConn, stream: str, consumer: str) -> dict[str, Any]:
    info = await conn.request(f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
    return {"num_pending": info.get("num_pending"), "num_ack_pending": info.get("num_ack_pending")}


async def _settled(conn: JsConn, stream: str, consumer: str) -> dict[str, Any]:
    """Consumer counters once the acks were applied (polled briefly, acks may be queued)."""
    deadline = time.perf_counter() + ACK_SETTLE
    while True:
        backlog = await _consumer_backlog(conn, stream, consumer)
        if not backlog["num_ack_pending"] or time.perf_counter() > deadline:
            return backlog
        await asyncio.sleep(0.05)


async def js_fetch(ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    size, count = int(p["size"]), int(p["count"])
    window, batch = int(p["window"]), int(p["batch"])
    stream, subject = stream_names("fetch")
    consumer = "bench_pull"
    conn = await connect(lambda: JsConn(ep, "bench-js-fetch"), ep, SETUP_TIMEOUT)
    error = None
    backlog: dict[str, Any] = {}
    cleanup = None
    try:
        await create_stream(conn, stream, [subject])
        fill = await publish_pipelined(conn, subject, FILL * size, count, window, ctx.timeout)
        if fill.error:
            raise JsError(f"filling the stream: {fill.error}")
        await conn.request(f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}", {
            "stream_name": stream,
            "config": {"durable_name": consumer, "ack_policy": "explicit"},
        })
        fetcher = Fetcher(conn, stream, consumer, fill.acked, batch)
        probe = CpuProbe(ctx.pid)
        gc.collect()
        gc.disable()
        try:
            probe.start()
            t0 = time.perf_counter()
            fetcher.start()
            waits: set[asyncio.Future[Any]] = {fetcher.done, conn.closed}
            await asyncio.wait(waits, timeout=ctx.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            fetcher.stop()
            finished = fetcher.done.done() and fetcher.done.exception() is None
            if finished:
                # The last acks count once the server has them.
                t_end = await conn.flush(min(API_TIMEOUT, ctx.timeout))
            else:
                t_end = time.perf_counter()
            cpu = probe.stop()
        finally:
            gc.enable()
        if fetcher.done.done() and fetcher.done.exception() is not None:
            error = str(fetcher.done.exception())
        elif conn.closed.done():
            error = conn.error or "connection closed"
        if error is None:
            try:
                backlog = await _settled(conn, stream, consumer)
            except JsError as exc:
                error = str(exc)
            if finished and backlog.get("num_ack_pending"):
                error = f"{backlog['num_ack_pending']} acks not applied {ACK_SETTLE:g}s after " \
                    "the last was sent"
        cleanup = await delete_stream(conn, stream)
    finally:
        conn.close()
    elapsed = t_end - t0
    rate = fetcher.got / elapsed if elapsed > 0 else 0.0
    return Outcome(
        metrics={"msgs_per_s": rate, "mb_per_s": rate * size / 1e6},
        details={"elapsed_s": elapsed, "acked": fetcher.got, "requested": count,
                 "filled": fill.acked, "fill_s": fill.elapsed, "pulls": fetcher.pulls,
                 "pulls_ended_by_status": fetcher.ended, **backlog,
                 "cleanup_error": cleanup, **cpu},
        partial=fill.partial or not finished,
        error=error,
    )


SCENARIO = Scenario(
    name="js-fetch",
    run=js_fetch,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),
             Column("mb_per_s", "MB/s", "float", ratio=False)),
    defaults={"size": 128, "count": 200_000, "batch": 1000, "window": 1000},
    label=lambda p: f"js-fetch {size_label(p['size'])} b{p['batch']}",
    help="JetStream pull consumer: fetch BATCH at a time, ack each; delivered+acked msgs/s",
    server=JETSTREAM,
    phases=2,
)
