"""Request/reply latency: a raw responder and a fixed-rate requester.

Each request carries its own reply subject under one wildcard inbox subscription, the way
NATS clients implement requests, so the server's wildcard matching is on the path.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from .common import SETUP_TIMEOUT, close_all, pace, run_tag
from .model import Context, CpuProbe, Outcome, Params, Scenario, latency_columns, latency_metrics
from .rawclient import FILL, Endpoint, Parsed, RawConn, connect, pub_frame


async def reqrep(ctx: Context, p: Params) -> Outcome:
    """Fixed-rate requests, each with its own reply subject under one wildcard inbox."""
    ep = Endpoint.parse(ctx.url)
    rate, count, size = float(p["rate"]), int(p["count"]), int(p["size"])
    subject = f"bench.{run_tag()}.rr"
    inbox = f"_INBOX.{run_tag()}."
    payload = FILL * size
    sent = [0.0] * count
    lat: list[float] = []
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    warm: asyncio.Future[None] = loop.create_future()
    responder: Parsed | None = None
    requester: Parsed | None = None

    def respond(_subject: bytes, reply: bytes, data: bytes) -> None:
        assert responder is not None
        responder.write(b"PUB %b %d\r\n%b\r\n" % (reply, len(data), data))

    def got_reply(subj: bytes, _reply: bytes, _data: bytes) -> None:
        now = time.perf_counter()
        token = subj[subj.rfind(b".") + 1 :]
        if token == b"w":
            if not warm.done():
                warm.set_result(None)
            return
        lat.append(now - sent[int(token)])
        if len(lat) >= count and not done.done():
            done.set_result(now)

    conns: list[RawConn] = []
    try:
        responder = await connect(
            lambda: Parsed(ep, "bench-responder", f"SUB {subject} 1\r\n".encode(), respond),
            ep, SETUP_TIMEOUT,
        )
        conns.append(responder)
        requester = await connect(
            lambda: Parsed(ep, "bench-requester", f"SUB {inbox}* 1\r\n".encode(), got_reply),
            ep, SETUP_TIMEOUT,
        )
        conns.append(requester)
        # One round trip first, so connection warm-up is not counted as latency.
        requester.write(pub_frame(subject, payload, inbox + "w"))
        await asyncio.wait_for(warm, SETUP_TIMEOUT)
        frames = [pub_frame(subject, payload, f"{inbox}{i}") for i in range(count)]
        probe = CpuProbe(ctx.pid)
        gc.collect()
        gc.disable()  # a collection mid-run would show up as a latency outlier
        probe.start()
        t0 = time.perf_counter()
        deadline = t0 + ctx.timeout

        def emit(start: int, end: int) -> bytes:
            now = time.perf_counter()
            for k in range(start, end):
                sent[k] = now
            return b"".join(frames[start:end])

        i = await pace(requester, rate, count, deadline, emit)
        waits: set[asyncio.Future[Any]] = {done, requester.closed, responder.closed}
        await asyncio.wait(waits,
                           timeout=max(0.0, deadline - time.perf_counter()),
                           return_when=asyncio.FIRST_COMPLETED)
        partial = not done.done()
        t_end = done.result() if done.done() else time.perf_counter()
        error = None
        if requester.closed.done() or responder.closed.done():
            error = requester.error or responder.error
        cpu = probe.stop()
    finally:
        gc.enable()
        await close_all(conns)
    elapsed = t_end - t0
    return Outcome(
        metrics=latency_metrics(lat, elapsed),
        details={"sent": i, "received": len(lat), "elapsed_s": elapsed,
                 "target_rate": rate, **cpu},
        partial=partial or len(lat) < count,
        error=error,
    )


SCENARIO = Scenario(
    name="reqrep",
    run=reqrep,
    columns=latency_columns("req/s"),
    defaults={"rate": 1000, "count": 5000, "size": 16},
    label=lambda p: f"reqrep {p['rate']:g}/s",
    help="fixed-rate request/reply through one responder; round-trip latency percentiles",
)
