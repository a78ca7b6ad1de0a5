"""Cross-leaf throughput: publisher on leaf A, subscriber on leaf B, a nats-server cluster
in between.

The target names the kind of both leaves (``--compare`` runs Jetport leaves, then
nats-server leaves, each time in front of a fresh nats-server cluster), so the ratio
compares the leaf node implementations on the same path: A → leaf link → node n1 →
route(s) → node nN → leaf link → B. The load is generated as in ``pubsub`` (its batched
raw publisher and the counting subscriber), so the numbers can be read against that
scenario's. CPU: ``cli`` is this client process, ``srv`` is both leaves together (up to
200 %); the cluster's share is in the JSON details.

Counts are checked exactly: a run that stops making progress reports how many messages
never arrived, and deliveries beyond the expected count (duplicates) are an error, not
a faster rate.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from . import servers
from .common import SETUP_TIMEOUT, close_all, run_tag, size_label
from .counter import Counter
from .leafnode import Topology, leaf_pair
from .model import OWN, Column, Context, Outcome, Params, Scenario, proc_cpu
from .pubsub import publish
from .rawclient import FILL, Endpoint, ProtocolError, RawConn, connect, pub_frame

PROBE_INTERVAL = 0.05
# No delivery for this long after the last probe arrived: the stragglers are in. Loopback
# deliveries take well under a millisecond, so this is generous.
QUIET = 0.3
# No delivery for this long while messages are owed: they are reported as lost rather
# than waiting out the whole time limit. Long enough for a pause on a loaded machine.
STALL = 5.0
# How long to keep listening after a burst completed, to catch duplicates.
SETTLE = 0.2


class _Cpu:
    """CPU of this client process, of both leaves and of the cluster over one burst.

    ``model.CpuProbe`` follows one server pid; here the servers are this process's own
    children, so each group is read by pid.
    """

    def __init__(self, topo: Topology) -> None:
        self.groups = {"leaf_a": [topo.a.pid], "leaf_b": [topo.b.pid],
                       "cluster": [n.pid for n in topo.cluster]}
        self._t = self._me = 0.0
        self._start: dict[str, float | None] = {}

    def _read(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for group, pids in self.groups.items():
            values = [proc_cpu(pid) for pid in pids]
            out[group] = None if None in values else sum(v for v in values if v is not None)
        return out

    def start(self) -> None:
        self._start = self._read()
        self._t, self._me = time.perf_counter(), time.process_time()

    def stop(self) -> dict[str, float | None]:
        wall = time.perf_counter() - self._t
        me = time.process_time() - self._me
        now = self._read()
        pct: dict[str, float | None] = {}
        for group in self.groups:
            a, b = self._start.get(group), now[group]
            pct[group] = 100 * (b - a) / wall if a is not None and b is not None and wall > 0 \
                else None
        leaves = None if pct["leaf_a"] is None or pct["leaf_b"] is None \
            else pct["leaf_a"] + pct["leaf_b"]
        return {"wall_s": wall, "client_cpu_pct": 100 * me / wall if wall > 0 else None,
                "server_cpu_pct": leaves, "leaf_a_cpu_pct": pct["leaf_a"],
                "leaf_b_cpu_pct": pct["leaf_b"], "cluster_cpu_pct": pct["cluster"]}


async def _until_quiet(sub: Counter, deadline: float) -> None:
    """Wait until no delivery has arrived for ``QUIET`` seconds (or ``deadline``)."""
    seen, since = sub.nbytes, time.perf_counter()
    while time.perf_counter() - since < QUIET and time.perf_counter() < deadline:
        await asyncio.sleep(QUIET / 6)
        if sub.nbytes != seen:
            seen, since = sub.nbytes, time.perf_counter()


async def prime(pub: RawConn, sub: Counter, frame: bytes, timeout: float) -> int:
    """Publish probes on A until one reaches B, then let the stragglers arrive.

    B's subscription reaches A only after crossing B's link, the cluster and A's link;
    probes sent before that are dropped by A, probes sent after it all arrive. The probe
    is the measured frame itself, which the counter learns from the first delivery; the
    ones still in flight then are waited for here so none lands in a timed burst.
    Returns the number of probes published.
    """
    sent = 0
    deadline = time.perf_counter() + timeout
    while not sub.primed.done():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no probe published on leaf A reached leaf B in {timeout:.0f}s "
                               f"({sent} sent)")
        if pub.error:
            raise ConnectionError(f"publisher: {pub.error}")
        pub.write(frame)
        sent += 1
        await asyncio.wait([sub.primed], timeout=PROBE_INTERVAL)
    sub.primed.result()  # a subscriber that failed raises here
    await _until_quiet(sub, deadline + QUIET)
    return sent


@dataclass
class Burst:
    elapsed: float
    expected: int
    delivered: int
    extra: int
    partial: bool
    error: str | None
    cpu: dict[str, float | None]


async def _wait_delivery(sub: Counter, done: asyncio.Future[float], task: asyncio.Task[None],
                         count: int, timeout: float) -> tuple[bool, str | None]:
    """Wait until ``count`` deliveries arrived: (partial, error). Gives up early, with an
    error naming the shortfall, when deliveries stop for ``STALL`` seconds."""
    deadline = time.perf_counter() + timeout
    last, moved = sub.count, time.perf_counter()
    while not done.done():
        waiting: list[asyncio.Future[Any]] = [done] if task.done() else [done, task]
        await asyncio.wait(waiting, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
        now = time.perf_counter()
        if task.done() and not task.cancelled() and task.exception() is not None:
            return False, f"publisher: {task.exception()!r}"
        if sub.count != last:
            last, moved = sub.count, now
        elif now - moved > STALL and not done.done():
            return False, (f"deliveries stopped at {last} of {count}: {count - last} "
                           f"not delivered ({STALL:.0f}s without one)")
        if now > deadline and not done.done():
            return True, None
    exc = done.exception()
    return (False, str(exc)) if exc else (False, None)


async def burst(topo: Topology, pub: RawConn, sub: Counter, frame: bytes, count: int,
                timeout: float) -> Burst:
    """Publish ``count`` frames on A; timed from the first publish to the last delivery
    on B, then a short unmeasured wait to see whether any came twice."""
    cpu = _Cpu(topo)
    gc.collect()
    gc.disable()
    try:
        done = sub.expect(count)
        cpu.start()
        t0 = time.perf_counter()
        task = asyncio.create_task(publish(pub, frame, count))
        try:
            partial_, error = await _wait_delivery(sub, done, task, count, timeout)
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finished = done.done() and not done.cancelled() and done.exception() is None
        t_end = done.result() if finished else time.perf_counter()
        usage = cpu.stop()
    finally:
        gc.enable()
    delivered = min(sub.count, count)
    if finished:
        await asyncio.sleep(SETTLE)
    extra = max(0, sub.count - count)
    if extra and error is None:
        error = f"{extra} deliveries more than the {count} published (duplicates)"
    if error is None and (sub.error or pub.error):
        error = sub.error or pub.error
    return Burst(t_end - t0, count, delivered, extra, partial_, error, usage)


async def measure(topo: Topology, p: Params, timeout: float) -> Outcome:
    size, count = int(p["size"]), int(p["count"])
    subject = f"bench.{run_tag()}.leaf"
    ep_a, ep_b = Endpoint.parse(topo.a.url), Endpoint.parse(topo.b.url)
    conns: list[RawConn] = []
    try:
        sub = await connect(partial(Counter, ep_b, "bench-leaf-sub",
                                    f"SUB {subject} 1\r\n".encode()), ep_b, SETUP_TIMEOUT)
        conns.append(sub)
        pub = await connect(partial(RawConn, ep_a, "bench-leaf-pub"), ep_a, SETUP_TIMEOUT)
        conns.append(pub)
        frame = pub_frame(subject, FILL * size)
        probes = await prime(pub, sub, frame, SETUP_TIMEOUT)
        stray = sub.count + 1  # the priming delivery and the stragglers after it
        warmup = int(p["warmup"]) if p.get("warmup") is not None else min(count // 10, 200_000)
        # Unmeasured first, as in pubsub: buffers grow and code paths warm up. If even the
        # warm-up fails or hits the time limit, its numbers are the result.
        run = await burst(topo, pub, sub, frame, warmup, timeout) if warmup else None
        if run is None or not (run.partial or run.error):
            run = await burst(topo, pub, sub, frame, count, timeout)
    finally:
        await close_all(conns)
    rate = run.delivered / run.elapsed if run.elapsed > 0 else 0.0
    return Outcome(
        metrics={"msgs_per_s": rate, "mb_per_s": rate * size / 1e6},
        details={"elapsed_s": run.elapsed, "delivered": run.delivered, "expected": run.expected,
                 "duplicates": run.extra, "probes_sent": probes, "probes_received": stray,
                 "warmup_msgs": warmup, "wire_bytes_in": sub.nbytes, **run.cpu},
        partial=run.partial,
        error=run.error,
    )


async def leaf_pubsub(ctx: Context, p: Params) -> Outcome:
    if ctx.launch is None:
        return Outcome(metrics={}, error="leaf-pubsub starts its own servers "
                                         "(--jetport, --nats-server or --compare)")
    nodes = int(p["nodes"])
    with tempfile.TemporaryDirectory(prefix="jetport-bench-leaf-") as tmp:
        try:
            with leaf_pair(ctx.launch, nodes, Path(tmp), servers.READY_TIMEOUT) as topo:
                try:
                    outcome = await measure(topo, p, ctx.timeout)
                except (OSError, ProtocolError, TimeoutError) as exc:
                    outcome = Outcome(metrics={}, error=f"{type(exc).__name__}: {exc}")
                dead = topo.died()
                if dead:
                    outcome.error = (outcome.error + "; " if outcome.error else "") + dead
                outcome.details["servers"] = [n.describe() for n in
                                              (topo.a, topo.b, *topo.cluster)]
        except servers.LaunchError as exc:
            return Outcome(metrics={}, error=f"launch: {exc}")
    return outcome


SCENARIO = Scenario(
    name="leaf-pubsub",
    run=leaf_pubsub,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),
             Column("mb_per_s", "MB/s", "float", ratio=False)),
    defaults={"size": 16, "count": 1_000_000, "nodes": 3, "warmup": None},
    label=lambda p: f"leaf-pubsub {size_label(p['size'])} A->{p['nodes']}-node cluster->B",
    help="publisher on leaf A -> nats-server cluster -> subscriber on leaf B; the target "
         "is the kind of both leaves; msgs/s, MB/s",
    server=OWN,
    phases=3,
)
