"""SSE fan-out latency: many subscribers of one subject on the HTTP door's SSE route, fed by
one paced NATS publisher.

The scenario starts a Jetport hub with the HTTP door (nats-server has none) and opens SUBS
keep-alive HTTP/1.1 connections, each ``GET /v1/subscribe/<subject>``; the door answers
``: subscribed`` once the subscription exists, so every subscriber is in place before the
first publish. One raw NATS connection then publishes COUNT messages at RATE per second,
each payload ``<seq>.<perf_counter_ns at write>``; publisher and subscribers share this
process's clock. A subscriber takes the time when its socket is read and finds the stamps
in the events with one regular expression: chunked framing and comments are left in the
bytes, since they never match it. Every message must reach every subscriber exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import time
from array import array
from functools import partial
from typing import Any, cast

from . import servers
from .common import SETUP_TIMEOUT, close_all, jetport_only, pace
from .conns import raise_nofile
from .http import HOST, http_hub
from .model import (
    OWN,
    Context,
    CpuProbe,
    Outcome,
    Params,
    Scenario,
    latency_columns,
    latency_metrics,
)
from .rawclient import Endpoint, ProtocolError, RawConn, connect, fail, pub_frame

SUBJECT = "bench.sse"
# An event's data line is the message as JSON; a payload of digits and a dot appears in it
# as it is.
STAMP = re.compile(rb'"data":"(\d+)\.(\d+)"')
ERROR_EVENT = b"event: error"
OPENING = 50  # connections being opened at once


class Arrivals:
    """What every subscriber received: a latency per event, and how often each message
    arrived. Message ``count`` is the unmeasured probe sent before timing."""

    def __init__(self, subs: int, count: int) -> None:
        self.count = count
        self.seen = [bytearray(count + 1) for _ in range(subs)]
        self.latencies_ns = array("q")
        self.total = 0
        self.strays = 0
        self._target = 0
        self.done: asyncio.Future[float] | None = None

    def arm(self, n: int) -> asyncio.Future[float]:
        """The returned future gets the time the n-th event from now arrived."""
        self._target = self.total + n
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def add(self, sub: int, seq: int, latency_ns: int) -> None:
        if seq > self.count:
            self.strays += 1
            return
        seen = self.seen[sub]
        if seen[seq] < 255:
            seen[seq] += 1
        if seq < self.count:
            self.latencies_ns.append(latency_ns)
        self.total += 1
        done = self.done
        if self.total >= self._target and done is not None and not done.done():
            done.set_result(time.perf_counter())

    def missing(self) -> int:
        return sum(seen.count(0, 0, self.count) for seen in self.seen)

    def duplicates(self) -> int:
        """Events of measured messages beyond the first of each (per subscriber)."""
        received = len(self.seen) * self.count - self.missing()
        return len(self.latencies_ns) - received


class SseReader(asyncio.Protocol):
    """One SSE response on a keep-alive HTTP/1.1 connection, parsed just enough to find
    the stamps: after the response head, complete events (ending in a blank line) are
    searched, and the incomplete rest waits for the next read."""

    def __init__(self, request: bytes, index: int, arrivals: Arrivals) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None
        self._request, self._index, self._arrivals = request, index, arrivals
        self._buf = b""
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        buf = self._buf + data if self._buf else data
        if not self._open:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                self._buf = buf
                return
            if buf[9:12] != b"200":
                self._fail(buf[:head].split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            self._open = True
            buf = buf[head + 4 :]
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return
        self._buf = buf[end + 2 :]
        if not self.ready.done() and buf.find(b": subscribed", 0, end) >= 0:
            self.ready.set_result(None)
        add, index = self._arrivals.add, self._index
        for seq, sent in STAMP.findall(buf, 0, end):
            add(index, int(seq), now - int(sent))
        if buf.find(ERROR_EVENT, 0, end) >= 0:
            self._fail("error event: " + buf[buf.find(ERROR_EVENT):end].decode(errors="replace"))

    def _fail(self, reason: str) -> None:
        self.error = reason
        fail(self.ready, reason)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = f"connection lost: {exc}" if exc else "closed by server"
        fail(self.ready, self.error)
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _subscribe(port: int, subs: int, arrivals: Arrivals) -> list[SseReader]:
    """Open ``subs`` SSE responses, ``OPENING`` at a time; each is subscribed on return."""
    loop = asyncio.get_running_loop()
    request = (f"GET /v1/subscribe/{SUBJECT} HTTP/1.1\r\nHost: {HOST}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    readers: list[SseReader] = []
    todo = iter(range(subs))

    async def opener() -> None:
        for i in todo:
            _, reader = await loop.create_connection(
                partial(SseReader, request, i, arrivals), HOST, port)
            readers.append(reader)
            async with asyncio.timeout(SETUP_TIMEOUT):
                await reader.ready

    await asyncio.gather(*(opener() for _ in range(min(OPENING, subs))))
    return readers


def _stamped(seq: int) -> bytes:
    return pub_frame(SUBJECT, b"%d.%d" % (seq, time.perf_counter_ns()))


async def _measure(http: int, nats: int, pid: int, p: Params, timeout: float) -> Outcome:
    subs, rate, count = int(p["subs"]), float(p["rate"]), int(p["count"])
    arrivals = Arrivals(subs, count)
    readers: list[SseReader] = []
    conns: list[RawConn] = []
    try:
        readers = await _subscribe(http, subs, arrivals)
        ep = Endpoint(HOST, nats)
        pub = await connect(lambda: RawConn(ep, "bench-sse-pub"), ep, SETUP_TIMEOUT)
        conns.append(pub)
        # One message to everyone first: the route is warm and every subscriber proven.
        probe_done = arrivals.arm(subs)
        pub.write(_stamped(count))
        async with asyncio.timeout(SETUP_TIMEOUT):
            await probe_done
        probe = CpuProbe(pid)
        gc.collect()
        gc.disable()  # a collection mid-run would show up as a latency outlier
        try:
            done = arrivals.arm(subs * count)
            probe.start()
            t0 = time.perf_counter()
            deadline = t0 + timeout
            sent = await pace(pub, rate, count, deadline,
                              lambda a, b: b"".join(_stamped(i) for i in range(a, b)))
            waits: set[asyncio.Future[Any]] = {done, *(r.closed for r in readers)}
            await asyncio.wait(waits, timeout=max(0.0, deadline - time.perf_counter()),
                               return_when=asyncio.FIRST_COMPLETED)
            t_end = done.result() if done.done() else time.perf_counter()
            cpu = probe.stop()
            partial = not done.done()
            errors = [r.error for r in readers if r.closed.done()]
        finally:
            gc.enable()
    finally:
        for r in readers:
            r.close()
        await close_all(conns)
    missing, dups = arrivals.missing(), arrivals.duplicates()
    error = errors[0] if errors else None
    if not partial and error is None and (missing or dups or arrivals.strays):
        error = f"{missing} events missing, {dups} duplicated, {arrivals.strays} unknown"
    elapsed = t_end - t0
    lat = [ns / 1e9 for ns in arrivals.latencies_ns]
    return Outcome(
        metrics=latency_metrics(lat, elapsed),
        details={"sent": sent, "expected_events": subs * count, "events": len(lat),
                 "missing": missing, "duplicates": dups, "elapsed_s": elapsed,
                 "target_rate": rate, "closed": len(errors), **cpu},
        partial=partial,
        error=error,
    )


async def sse(ctx: Context, p: Params) -> Outcome:
    skipped = jetport_only(ctx, "HTTP")
    if skipped is not None:
        return skipped
    soft, _hard = raise_nofile()  # before the hub starts, so it inherits the limit
    if soft < int(p["subs"]) + 64:
        return Outcome(metrics={}, error=f"open-file limit {soft} is too low for "
                                         f"{p['subs']} subscribers")
    with http_hub(jetstream=False) as hub:
        try:
            async with asyncio.timeout(ctx.timeout * 2):
                return await _measure(hub.http, hub.nats, hub.proc.pid, p, ctx.timeout)
        except (OSError, TimeoutError, ProtocolError) as exc:
            return Outcome(metrics={}, error=f"{type(exc).__name__}: {exc}",
                           details={"log": servers.log_tail(hub.log)})


SCENARIO = Scenario(
    name="sse",
    run=sse,
    columns=latency_columns("events/s"),
    # 1,000 subscribers at 10 msgs/s is 10,000 events/s, well within what the door delivered
    # on the 2-core machine; at 20 msgs/s it fell behind (the client at a fifth of a core).
    defaults={"subs": 1000, "rate": 10, "count": 100},
    label=lambda p: f"sse {p['subs']} subs {p['rate']:g}/s",
    help="HTTP door (Jetport only): SUBS SSE subscribers of one subject, NATS publisher at "
         "RATE; delivery latency percentiles and events/s",
    server=OWN,
    phases=2,
)
