"""Request/reply latency while the server carries pub/sub traffic at half its own peak.

Three steps on the target's server, each server measured against its own peak:

1. peak: the ``pubsub`` burst (SIZE bytes, one publisher to one subscriber, BURST
   messages) gives the server's core throughput;
2. idle: the ``reqrep`` run (RATE requests per second, one responder) without other load;
3. loaded: the same ``reqrep`` run while a paced publisher sends LOAD (a fraction, 0.5 by
   default) of the peak rate to a subscriber of its own, in batched writes every
   millisecond or so; afterwards the subscriber must have received every one of them.

Everything shares the client's event loop; the background subscriber only counts bytes
(``Counter``), so the client stays cheap next to the server (its CPU is reported).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from functools import partial

from .common import SETUP_TIMEOUT, close_all, pace, run_tag, size_label
from .counter import Counter
from .model import Column, Context, Outcome, Params, Scenario
from .pubsub import pubsub
from .rawclient import FILL, Endpoint, RawConn, connect, pub_frame
from .reqrep import reqrep

LATENCIES = ("p50_ms", "p99_ms", "max_ms")


@dataclass
class Load:
    """What the background load did while reqrep ran."""

    target_rate: float
    rate: float  # delivered per second while reqrep ran
    sent: int
    delivered: int  # in the end, after waiting for the stragglers
    elapsed_s: float
    error: str | None


async def _under_load(ctx: Context, size: int, rate: float, req: Params
                      ) -> tuple[Outcome, Load]:
    """The reqrep run with the background load beside it."""
    ep = Endpoint.parse(ctx.url)
    subject = f"bench.{run_tag()}.bg"
    frame = pub_frame(subject, FILL * size)
    conns: list[RawConn] = []
    try:
        sink = await connect(partial(Counter, ep, "bench-bg-sub", f"SUB {subject} 1\r\n".encode()),
                             ep, SETUP_TIMEOUT)
        conns.append(sink)
        pub = await connect(partial(RawConn, ep, "bench-bg-pub"), ep, SETUP_TIMEOUT)
        conns.append(pub)
        pub.write(frame)  # the counter learns the frame it will count
        await asyncio.wait_for(sink.primed, SETUP_TIMEOUT)
        sink.expect(0)
        written = 0

        def emit(start: int, end: int) -> bytes:
            nonlocal written
            written = end
            return frame * (end - start)

        # Longer than reqrep can take, so the load outlasts it; cancelled when it ends.
        horizon = ctx.timeout * 2 + SETUP_TIMEOUT
        t0 = time.perf_counter()
        load = asyncio.create_task(pace(pub, rate, int(rate * horizon), t0 + horizon, emit))
        try:
            loaded = await reqrep(ctx, req)
        finally:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        during = sink.count
        settle = time.perf_counter() + SETUP_TIMEOUT
        while sink.count < written and not sink.closed.done() and time.perf_counter() < settle:
            await asyncio.sleep(0.01)
    finally:
        await close_all(conns)
    error = None
    if sink.count != written:
        error = f"background load: {sink.count} of {written} delivered" + (
            f" ({sink.error})" if sink.error else "")
    return loaded, Load(rate, during / elapsed, written, sink.count, elapsed, error)


async def reqrep_load(ctx: Context, p: Params) -> Outcome:
    size, share = int(p["size"]), float(p["load"])
    req = {"rate": p["rate"], "count": p["count"], "size": p["req_size"]}
    metrics: dict[str, float | None] = {c.key: None for c in SCENARIO.columns}
    peak = await pubsub(ctx, {"pubs": 1, "subs": 1, "size": size, "count": int(p["burst"]),
                              "warmup": None})
    peak_rate = peak.metrics.get("msgs_per_s")
    if peak.error or peak.partial or not peak_rate:
        return Outcome(metrics=metrics, error=f"peak burst: {peak.error or 'partial'}",
                       details={"peak": peak.details})
    idle = await reqrep(ctx, req)
    loaded, load = await _under_load(ctx, size, peak_rate * share, req)
    metrics.update({k: loaded.metrics.get(k) for k in LATENCIES})
    metrics.update({"idle_" + k: idle.metrics.get(k) for k in LATENCIES[:2]})
    metrics["bg_rate"] = load.rate
    errors = [e for e in (idle.error, loaded.error, load.error) if e]
    cpu = {k: loaded.details.get(k) for k in ("client_cpu_pct", "server_cpu_pct", "wall_s")}
    return Outcome(
        metrics=metrics,
        details={"peak_msgs_per_s": peak_rate, "load": share, "background": asdict(load),
                 **cpu, "idle": idle.details, "loaded": loaded.details,
                 "peak": {k: peak.details.get(k) for k in ("client_cpu_pct", "server_cpu_pct")}},
        partial=idle.partial or loaded.partial,
        error="; ".join(errors) or None,
    )


SCENARIO = Scenario(
    name="reqrep-load",
    run=reqrep_load,
    columns=(*(Column(k, k.split("_")[0], "ms", higher=False) for k in LATENCIES),
             Column("bg_rate", "bg msgs/s", "rate", ratio=False),
             Column("idle_p50_ms", "idle p50", "ms", higher=False),
             Column("idle_p99_ms", "p99", "ms", higher=False)),
    defaults={"rate": 1000, "count": 5000, "req_size": 16, "size": 128, "burst": 500_000,
              "load": 0.5},
    label=lambda p: (f"reqrep {p['rate']:g}/s under {p['load']:.0%} of peak "
                     f"{size_label(p['size'])} pubsub"),
    help="reqrep latency (p50/p99/max) while pub/sub runs at half of this server's own "
         "peak (measured first); idle p50/p99 beside",
    phases=3,
)
