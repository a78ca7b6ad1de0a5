"""Fan-out throughput: P publishers, S subscribers on one subject.

Publishers and subscribers share one uvloop event loop in the client process: on two cores
this measured as fast as a threaded C client and steadier than splitting publishers into a
second process, while using a fraction of the CPU the server uses. Throughput is measured
from the first publish to the last expected delivery, i.e. what subscribers received.
"""

from __future__ import annotations

import asyncio
import gc
import time

from .common import SETUP_TIMEOUT, close_all, run_tag, shares, size_label
from .counter import Counter
from .model import Column, Context, CpuProbe, Outcome, Params, Scenario, register
from .rawclient import FILL, Endpoint, ProtocolError, RawConn, connect, pub_frame

BATCH_BYTES = 64 << 10


async def publish(conn: RawConn, frame: bytes, count: int) -> None:
    """Write ``count`` copies of ``frame`` in ~64 KiB batches, honouring flow control.

    Yielding after each batch keeps other connections in the loop served.
    """
    per = max(1, BATCH_BYTES // len(frame))
    batch = frame * per
    full, rest = divmod(count, per)
    assert conn.transport is not None
    write = conn.transport.write
    for _ in range(full):
        if conn.paused:
            await conn.drained()
        write(batch)
        await asyncio.sleep(0)
    if rest:
        await conn.drained()
        write(frame * rest)


async def _wait_delivered(counters: list[Counter], publishers: list[asyncio.Task[None]],
                          timeout: float) -> tuple[bool, str | None]:
    """Wait for every subscriber to get everything; returns (partial, error).

    A publisher or subscriber connection failing ends the wait at once with its error.
    """
    pending: set[asyncio.Future[object]] = {*publishers, *(c.done for c in counters)}
    deadline = time.perf_counter() + timeout
    while any(not c.done.done() for c in counters):
        done, pending = await asyncio.wait(pending, timeout=deadline - time.perf_counter(),
                                           return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return True, None
        for fut in done:
            exc = None if fut.cancelled() else fut.exception()
            if exc is not None:
                return False, str(exc) if isinstance(exc, ProtocolError) else repr(exc)
    return False, None


async def pubsub(ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    pubs, subs, size, count = int(p["pubs"]), int(p["subs"]), int(p["size"]), int(p["count"])
    subject = f"bench.{run_tag()}.ps"
    setup = f"SUB {subject} 1\r\n".encode()
    counters: list[Counter] = []
    publishers: list[RawConn] = []
    try:
        for i in range(subs):
            counters.append(await connect(
                lambda i=i: Counter(ep, f"bench-sub-{i}", setup, count), ep, SETUP_TIMEOUT))
        for i in range(pubs):
            publishers.append(await connect(lambda i=i: RawConn(ep, f"bench-pub-{i}"), ep,
                                            SETUP_TIMEOUT))
        frame = pub_frame(subject, FILL * size)
        # One message first, so every subscriber learns the exact frame it will count.
        publishers[0].write(frame)
        await asyncio.wait_for(asyncio.gather(*(c.primed for c in counters)), SETUP_TIMEOUT)
        probe = CpuProbe(ctx.pid)
        gc.collect()
        gc.disable()
        probe.start()
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(publish(c, frame, n))
                 for c, n in zip(publishers, shares(count, pubs), strict=True)]
        partial, error = await _wait_delivered(counters, tasks, ctx.timeout)
        t_end = max(c.done.result() for c in counters) if not (partial or error) else (
            time.perf_counter())
        cpu = probe.stop()
        gc.enable()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        gc.enable()
        await close_all([*counters, *publishers])
    elapsed = t_end - t0
    delivered = sum(c.count for c in counters)
    rate = delivered / elapsed if elapsed > 0 else 0.0
    return Outcome(
        metrics={"msgs_per_s": rate, "mb_per_s": rate * size / 1e6},
        details={
            "elapsed_s": elapsed,
            "delivered": delivered,
            "expected": count * subs,
            "wire_bytes_in": sum(c.nbytes for c in counters),
            **cpu,
        },
        partial=partial,
        error=error,
    )


register(Scenario(
    name="pubsub",
    run=pubsub,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),
             Column("mb_per_s", "MB/s", "float", ratio=False)),
    defaults={"pubs": 1, "subs": 1, "size": 16, "count": 1_000_000},
    label=lambda p: f"pubsub {size_label(p['size'])} {p['pubs']}->{p['subs']}",
    help="publishers -> subscribers on one subject; delivered msgs/s and payload MB/s",
))
