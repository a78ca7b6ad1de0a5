"""The core NATS scenarios: fan-out throughput, request/reply latency, idle-connection memory.

Each scenario opens its own raw connections, measures one thing, and returns an ``Outcome``;
the runner and table know nothing about their internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import resource
import time

from .model import Column, Context, CpuProbe, Outcome, Params, Scenario, proc_rss_kb, register
from .rawclient import FILL, Counter, Endpoint, Parsed, ProtocolError, RawConn, connect, pub_frame

BATCH_BYTES = 64 << 10
SETUP_TIMEOUT = 10.0


def _tag() -> str:
    """A per-run subject component so concurrent runs on a shared server do not mix."""
    return f"b{os.getpid()}"


async def _close_all(conns: list[RawConn]) -> None:
    for c in conns:
        c.close()
    waits = [c.closed for c in conns if not c.closed.done()]
    if waits:
        await asyncio.wait(waits, timeout=2.0)


def _shares(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


# -- pubsub ---------------------------------------------------------------------------------


async def _publish(conn: RawConn, frame: bytes, count: int) -> float:
    """Write ``count`` copies of ``frame`` in ~64 KiB batches, honouring transport flow control.

    Yielding after every batch lets the subscribers in the same loop read; otherwise a
    publisher on a fast socket would starve them and the server would see slow consumers.
    """
    per = max(1, BATCH_BYTES // len(frame))
    batch = frame * per
    full, rest = divmod(count, per)
    assert conn.transport is not None
    write = conn.transport.write
    for _ in range(full):
        if conn._drain is not None:
            await conn.drained()
        write(batch)
        await asyncio.sleep(0)
    if rest:
        await conn.drained()
        write(frame * rest)
    return time.perf_counter()


async def pubsub(ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    pubs, subs, size, count = int(p["pubs"]), int(p["subs"]), int(p["size"]), int(p["count"])
    subject = f"bench.{_tag()}.ps"
    setup = f"SUB {subject} 1\r\n".encode()
    conns: list[RawConn] = []
    try:
        counters: list[Counter] = []
        for i in range(subs):
            c = await connect(lambda i=i: Counter(ep, f"bench-sub-{i}", setup, count), ep,
                              SETUP_TIMEOUT)
            counters.append(c)
            conns.append(c)
        publishers: list[RawConn] = []
        for i in range(pubs):
            c = await connect(lambda i=i: RawConn(ep, f"bench-pub-{i}"), ep, SETUP_TIMEOUT)
            publishers.append(c)
            conns.append(c)
        frame = pub_frame(subject, FILL * size)
        probe = CpuProbe(ctx.pid)
        gc.collect()
        gc.disable()
        probe.start()
        t0 = time.perf_counter()
        tasks = [
            asyncio.create_task(_publish(c, frame, n))
            for c, n in zip(publishers, _shares(count, pubs), strict=True)
        ]
        partial, error = False, None
        try:
            ends = await asyncio.wait_for(asyncio.gather(*(c.done for c in counters)), ctx.timeout)
            t_end = max(ends)
        except TimeoutError:
            partial, t_end = True, time.perf_counter()
        except ProtocolError as exc:
            error, t_end = str(exc), time.perf_counter()
        cpu = probe.stop()
        gc.enable()
        pub_done = [t.result() for t in tasks if t.done() and not t.exception()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await _close_all(conns)
    elapsed = t_end - t0
    delivered = sum(c.count for c in counters)
    rate = delivered / elapsed if elapsed > 0 else 0.0
    return Outcome(
        metrics={"msgs_per_s": rate, "mb_per_s": rate * size / 1e6},
        details={
            "elapsed_s": elapsed,
            "published": count if len(pub_done) == pubs else None,
            "publish_s": max(pub_done) - t0 if len(pub_done) == pubs else None,
            "delivered": delivered,
            "expected": count * subs,
            "wire_bytes_in": sum(c.nbytes for c in counters),
            **cpu,
        },
        partial=partial,
        error=error,
    )


# -- request/reply --------------------------------------------------------------------------


def _percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(q * len(sorted_vals)) - 1)]


async def reqrep(ctx: Context, p: Params) -> Outcome:
    """Fixed-rate requests, each with its own reply subject under one wildcard inbox."""
    ep = Endpoint.parse(ctx.url)
    rate, count, size = float(p["rate"]), int(p["count"]), int(p["size"])
    subject = f"bench.{_tag()}.rr"
    inbox = f"_INBOX.{_tag()}."
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
        probe.start()
        t0 = time.perf_counter()
        deadline = t0 + ctx.timeout
        i = 0
        while i < count and time.perf_counter() < deadline and not requester.closed.done():
            due = min(count, int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                sent[i] = time.perf_counter()
                requester.write(frames[i])
                i += 1
            # Event-loop timers tick in milliseconds: never sleep less, catch up in bursts.
            await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
        partial, error = False, None
        try:
            t_end = await asyncio.wait_for(done, max(0.0, deadline - time.perf_counter()))
        except TimeoutError:
            partial, t_end = True, time.perf_counter()
        if requester.closed.done() or responder.closed.done():
            error = requester.error or responder.error
        cpu = probe.stop()
    finally:
        await _close_all(conns)
    lat_ms = sorted(x * 1000 for x in lat)
    elapsed = t_end - t0
    return Outcome(
        metrics={
            "p50_ms": _percentile(lat_ms, 0.50),
            "p90_ms": _percentile(lat_ms, 0.90),
            "p99_ms": _percentile(lat_ms, 0.99),
            "max_ms": lat_ms[-1] if lat_ms else None,
            "rate": len(lat) / elapsed if elapsed > 0 else None,
        },
        details={"sent": i, "received": len(lat), "elapsed_s": elapsed,
                 "target_rate": rate, **cpu},
        partial=partial or len(lat) < count,
        error=error,
    )


# -- idle connections -----------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Lift this process's open-file soft limit to the hard limit; returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def conns(ctx: Context, p: Params) -> Outcome:
    """Open N idle subscribers, then read the server's RSS.

    Opening stops early after repeated failures (e.g. the server's file limit), so a server
    that cannot hold N connections fails fast with a clear count instead of timing out.
    """
    ep = Endpoint.parse(ctx.url)
    n, parallel, settle = int(p["conns"]), int(p["parallel"]), float(p["settle"])
    soft, _hard = raise_nofile()
    tag = _tag()
    base_kb = proc_rss_kb(ctx.pid)
    opened: list[RawConn] = []
    errors: list[str] = []
    max_failures = max(20, n // 100)
    stop = asyncio.Event()
    queue = iter(range(n))

    async def opener() -> None:
        for i in queue:
            if stop.is_set():
                return
            setup = f"SUB bench.{tag}.c.{i} 1\r\n".encode()
            try:
                opened.append(await connect(lambda s=setup: RawConn(ep, "bench-idle", s), ep,
                                            SETUP_TIMEOUT))
            except (OSError, ProtocolError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) >= max_failures:
                    stop.set()

    t0 = time.perf_counter()
    workers = [asyncio.create_task(opener()) for _ in range(min(parallel, n))]
    partial = False
    try:
        try:
            await asyncio.wait_for(asyncio.gather(*workers), ctx.timeout)
        except TimeoutError:
            partial = True
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        open_s = time.perf_counter() - t0
        await asyncio.sleep(settle)
        alive = sum(1 for c in opened if not c.closed.done())
        rss_kb = proc_rss_kb(ctx.pid)
    finally:
        await _close_all(opened)
    error = None
    if alive < n:
        first = errors[0] if errors else "connections closed by server"
        error = f"{alive} of {n} connections alive ({len(errors)} failed; first: {first})"
        if soft < n + 64:
            error += f"; client open-file limit is {soft}"
    if ctx.pid is None:
        error = (error + "; " if error else "") + "server pid unknown (use --pid), RSS not read"
    per_kb = None
    if rss_kb is not None and base_kb is not None and alive:
        per_kb = (rss_kb - base_kb) / alive
    return Outcome(
        metrics={"rss_mb": rss_kb / 1024 if rss_kb is not None else None, "kb_per_conn": per_kb},
        details={"requested": n, "alive": alive, "failed": len(errors), "open_s": open_s,
                 "baseline_rss_mb": base_kb / 1024 if base_kb is not None else None,
                 "rss_kb_over_conns": rss_kb / alive if rss_kb and alive else None},
        partial=partial or alive < n,
        error=error,
    )


def _size_label(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024}KiB"
    return f"{size}B"


register(Scenario(
    name="pubsub",
    run=pubsub,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),
             Column("mb_per_s", "MB/s", "float", ratio=False)),
    defaults={"pubs": 1, "subs": 1, "size": 16, "count": 1_000_000},
    label=lambda p: f"pubsub {_size_label(p['size'])} {p['pubs']}->{p['subs']}",
    help="publishers -> subscribers on one subject; delivered msgs/s and payload MB/s",
))
register(Scenario(
    name="reqrep",
    run=reqrep,
    columns=tuple(Column(k, k.split("_")[0], "ms", higher=False)
                  for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
    defaults={"rate": 1000, "count": 5000, "size": 16},
    label=lambda p: f"reqrep {p['rate']:g}/s",
    help="fixed-rate request/reply through one responder; round-trip latency percentiles",
))
register(Scenario(
    name="conns",
    run=conns,
    columns=(Column("rss_mb", "RSS MB", "float", higher=False),
             Column("kb_per_conn", "KB/conn", "float", higher=False)),
    defaults={"conns": 10_000, "parallel": 200, "settle": 1.0},
    label=lambda p: f"conns {p['conns']}",
    help="N idle connections with one SUB each; server RSS and RSS growth per connection",
))
