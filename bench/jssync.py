"""JetStream synchronous publish latency: one publish at a time, each waiting for its PubAck.

This is what a client doing ``js.publish()`` in a loop sees: the round trip through the
server's store path for every message, with nothing pipelined behind it.
"""

from __future__ import annotations

import asyncio
import gc
import time

from .common import SETUP_TIMEOUT, size_label
from .jsclient import (
    JsConn,
    JsError,
    create_stream,
    delete_stream,
    status_of,
    stream_messages,
    stream_names,
)
from .model import (
    JETSTREAM,
    Context,
    CpuProbe,
    Outcome,
    Params,
    Scenario,
    latency_columns,
    latency_metrics,
)
from .rawclient import FILL, Endpoint, connect, fail

Ack = tuple[float, bytes | None, bytes]


class _Sync:
    """Sends one publish and resolves when its PubAck arrives (or the connection is lost)."""

    def __init__(self, conn: JsConn, subject: str, payload: bytes) -> None:
        self.conn = conn
        self._head = f"PUB {subject} {conn.inbox}".encode()
        self._tail = b" %d\r\n%b\r\n" % (len(payload), payload)
        self._waiter: asyncio.Future[Ack] | None = None
        self._loop = asyncio.get_running_loop()
        conn.on_msg = self._on_ack
        conn.closed.add_done_callback(
            lambda _: fail(self._waiter, conn.error or "connection closed"))

    def _on_ack(self, _subject: bytes, _reply: bytes, hdr: bytes | None, payload: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((time.perf_counter(), hdr, payload))

    async def publish(self, i: int) -> float:
        """Publish message ``i``; returns seconds from the write to its PubAck."""
        waiter: asyncio.Future[Ack] = self._loop.create_future()
        self._waiter = waiter
        t = time.perf_counter()
        self.conn.write(self._head + b"%d" % i + self._tail)
        t_ack, hdr, payload = await waiter
        if b'"seq"' not in payload or b'"error"' in payload:
            status = status_of(hdr)
            if status is not None and status[0] == 503:
                raise JsError("no responders for the stream subject")
            raise JsError(f"publish not acknowledged: {payload[:200].decode(errors='replace')}")
        return t_ack - t


async def js_sync(ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    size, count = int(p["size"]), int(p["count"])
    warmup = int(p["warmup"]) if p.get("warmup") is not None else min(count // 10, 100)
    stream, subject = stream_names("sync")
    conn = await connect(lambda: JsConn(ep, "bench-js-sync"), ep, SETUP_TIMEOUT)
    lat: list[float] = []
    error = None
    partial = False
    stored = cleanup = None
    try:
        await create_stream(conn, stream, [subject])
        sync = _Sync(conn, subject, FILL * size)
        # A few round trips first, so connection and stream warm-up are not counted.
        try:
            async with asyncio.timeout(ctx.timeout):
                for i in range(warmup):
                    await sync.publish(i)
        except TimeoutError:
            raise JsError(f"{warmup} warm-up publishes not acknowledged in "
                          f"{ctx.timeout:g}s") from None
        probe = CpuProbe(ctx.pid)
        gc.collect()
        gc.disable()  # a collection mid-run would show up as a latency outlier
        probe.start()
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(ctx.timeout):
                for i in range(warmup, warmup + count):
                    lat.append(await sync.publish(i))
        except TimeoutError:
            partial = True
        except JsError as exc:
            error = str(exc)
        finally:
            elapsed = time.perf_counter() - t0
            cpu = probe.stop()
            gc.enable()
        try:
            stored = await stream_messages(conn, stream)
        except JsError as exc:
            error = error or str(exc)
        # A publish cut off by the time limit may still have been stored.
        expected = warmup + len(lat)
        if error is None and stored is not None and not expected <= stored <= expected + partial:
            error = f"stream holds {stored} messages, expected {expected}"
        cleanup = await delete_stream(conn, stream)
    finally:
        conn.close()
    return Outcome(
        metrics=latency_metrics(lat, elapsed),
        details={"acked": len(lat), "warmup_msgs": warmup, "elapsed_s": elapsed,
                 "stream_messages": stored, "cleanup_error": cleanup, **cpu},
        partial=partial,
        error=error,
    )


SCENARIO = Scenario(
    name="js-sync",
    run=js_sync,
    columns=latency_columns("msgs/s"),
    defaults={"size": 128, "count": 2000, "warmup": None},
    label=lambda p: f"js-sync {size_label(p['size'])}",
    help="JetStream publish, one at a time waiting for each PubAck; latency percentiles",
    server=JETSTREAM,
    phases=2,
)
