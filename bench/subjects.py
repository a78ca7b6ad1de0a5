"""Many-subject traffic: one publisher round-robin over 1,000 subjects, three subscriber
shapes.

``pubsub`` repeats one frame to one subject, which lets a server batch runs of identical
publishes; real traffic (sensors, devices) spreads over many subjects with mixed sizes and
some headers. Here message i goes to ``dev.{i % N:04d}.temp`` with a payload of 32, 200 or
64 bytes in turn, and every fourth message is an ``HPUB`` with one header. The frames of one
full cycle are built and cut into ~64 KiB batches before timing, so the timed loop only
writes prebuilt batches. Subscribers count ``MSG``/``HMSG`` control lines as they arrive,
without parsing, and the rate is the deliveries from the first publish to the last.

Shapes: ``subj-wild`` one subscriber on ``dev.*.temp``; ``subj-exact`` one connection
holding one exact subscription per subject; ``subj-queue`` several subscribers in one
queue group on ``dev.*.temp``, each message delivered to one of them. In every shape each
message is delivered exactly once, and that is checked after each burst.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .common import SETUP_TIMEOUT, close_all
from .model import Column, Context, CpuProbe, Outcome, Params, Scenario
from .pubsub import BATCH_BYTES, deliver, write_batches
from .rawclient import FILL, PING_MARK, Endpoint, RawConn, connect, fail, hpub_frame, pub_frame

SIZES = (32, 200, 64)
HEADER_EVERY = 4
# Lowercase value and a name without I or E, so the traffic keeps RawConn.watch's probe cheap.
HEADERS = {"Nats-Sensor": "t"}
QUEUE = "q"
# Every delivery starts with one of these (HMSG contains it too); subjects, headers and
# payloads never do.
MARK = b"MSG "
PONG_MARK = b"PONG"
EDGE = len(MARK) - 1


def subject(i: int) -> str:
    return f"dev.{i:04d}.temp"


class Tally:
    """Deliveries counted over all subscriber connections, with a completion future."""

    def __init__(self) -> None:
        self.total = 0
        self._target = 0
        self.done: asyncio.Future[float] | None = None

    def arm(self, n: int) -> asyncio.Future[float]:
        """The returned future gets the time the n-th delivery from now arrived."""
        self._target = self.total + n
        self.done = asyncio.get_running_loop().create_future()
        self.add(0)
        return self.done

    def add(self, n: int) -> None:
        self.total += n
        done = self.done
        if self.total >= self._target and done is not None and not done.done():
            done.set_result(time.perf_counter())


class Sink(RawConn):
    """Counts deliveries by their control lines and can wait for a PONG.

    Both markers are four bytes long: the last three bytes of one read joined to the first
    three of the next catch a marker split between them, and cannot hold a whole one that
    was already counted.
    """

    def __init__(self, endpoint: Endpoint, name: str, setup: bytes,
                 tally: Tally | None = None) -> None:
        super().__init__(endpoint, name, setup)
        self.tally = tally
        self.count = 0
        self._edge = b""
        self._pongs: list[asyncio.Future[None]] = []

    def on_data(self, data: bytes) -> None:
        self.watch(data)
        edge = self._edge + data[:EDGE]
        self._edge = data[-EDGE:] if len(data) >= EDGE else edge[-EDGE:]
        n = data.count(MARK) + edge.count(MARK)
        if n:
            self.count += n
            if self.tally is not None:
                self.tally.add(n)
        if self._pongs:
            for _ in range(data.count(PONG_MARK) + edge.count(PONG_MARK)):
                if self._pongs:
                    waiter = self._pongs.pop(0)
                    if not waiter.done():
                        waiter.set_result(None)

    def on_lost(self, reason: str) -> None:
        for waiter in self._pongs:
            fail(waiter, reason)
        self._pongs.clear()
        if self.tally is not None:
            fail(self.tally.done, reason)

    async def flush(self) -> None:
        """PING and wait for the PONG: what the server queued before it has arrived."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(waiter)
        self.write(PING_MARK)
        async with asyncio.timeout(SETUP_TIMEOUT):
            await waiter


def cycle_frames(subjects: int) -> list[bytes]:
    """The frames of one full cycle of subjects, sizes and headers."""
    n = math.lcm(subjects, len(SIZES), HEADER_EVERY)
    frames = []
    for i in range(n):
        payload = FILL * SIZES[i % len(SIZES)]
        subj = subject(i % subjects)
        frames.append(hpub_frame(subj, HEADERS, payload) if i % HEADER_EVERY == HEADER_EVERY - 1
                      else pub_frame(subj, payload))
    return frames


def batches(frames: list[bytes]) -> list[bytes]:
    """Consecutive frames joined into writes of about ``BATCH_BYTES``."""
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for f in frames:
        cur.append(f)
        size += len(f)
        if size >= BATCH_BYTES:
            out.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


# Each subscriber connection's SUB lines, from the scenario's parameters.
Setups = Callable[[Params], list[bytes]]


@dataclass
class _Run:
    elapsed: float
    delivered: int
    partial: bool
    error: str | None
    cpu: dict[str, float | None]
    per_subscriber: list[int]


async def _measure(tally: Tally, subs: list[Sink], pub: Sink, cycle: list[bytes],
                   frames: list[bytes], count: int, ctx: Context) -> _Run:
    """One timed burst of ``count`` messages, then a check that each arrived exactly once
    (the publisher's PONG means the server routed everything; each subscriber's PONG that
    what it queued for that subscriber has arrived)."""
    rounds, rest = divmod(count, len(frames))
    tail = batches(frames[:rest])
    base, before = tally.total, [s.count for s in subs]
    probe = CpuProbe(ctx.pid)
    gc.collect()
    gc.disable()
    try:
        done = tally.arm(count)
        probe.start()
        t0 = time.perf_counter()
        partial, error = await deliver([done], [write_batches(pub, cycle, rounds, tail)],
                                       ctx.timeout)
        t_end = done.result() if done.done() and not done.exception() else time.perf_counter()
        cpu = probe.stop()
    finally:
        gc.enable()
    if not partial and error is None:
        await pub.flush()
        await asyncio.gather(*(s.flush() for s in subs))
    delivered = tally.total - base
    if not partial and error is None and delivered != count:
        error = f"{delivered} deliveries for {count} messages"
    per_sub = [s.count - b for s, b in zip(subs, before, strict=True)]
    return _Run(t_end - t0, delivered, partial, error, cpu, per_sub)


async def many_subjects(name: str, setups: Setups, ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    count = int(p["count"])
    tally = Tally()
    subs: list[Sink] = []
    conns: list[RawConn] = []
    try:
        for i, setup in enumerate(setups(p)):
            subs.append(await connect(partial(Sink, ep, f"bench-{name}-{i}", setup, tally),
                                      ep, SETUP_TIMEOUT))
            conns.append(subs[-1])
        pub = await connect(partial(Sink, ep, f"bench-{name}-pub", b""), ep,
                            SETUP_TIMEOUT)
        conns.append(pub)
        frames = cycle_frames(int(p["subjects"]))
        cycle = batches(frames)
        warmup = int(p["warmup"]) if p.get("warmup") is not None else min(count // 10, 200_000)
        # As in pubsub: an unmeasured burst first; if even that fails, it is the result.
        run = await _measure(tally, subs, pub, cycle, frames, warmup, ctx) if warmup else None
        if run is None or not (run.partial or run.error):
            run = await _measure(tally, subs, pub, cycle, frames, count, ctx)
    finally:
        await close_all(conns)
    return Outcome(
        metrics={"msgs_per_s": run.delivered / run.elapsed if run.elapsed > 0 else 0.0},
        details={"elapsed_s": run.elapsed, "delivered": run.delivered, "expected": count,
                 "warmup_msgs": warmup, "per_subscriber": run.per_subscriber, **run.cpu},
        partial=run.partial,
        error=run.error,
    )


def _subs_lines(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


def _wild(p: Params) -> list[bytes]:
    return [_subs_lines(["SUB dev.*.temp 1"])]


def _exact(p: Params) -> list[bytes]:
    return [_subs_lines([f"SUB {subject(i)} {i + 1}" for i in range(int(p["subjects"]))])]


def _queue(p: Params) -> list[bytes]:
    return [_subs_lines([f"SUB dev.*.temp {QUEUE} 1"]) for _ in range(int(p["subs"]))]


def _scenario(name: str, setups: Setups, to: Callable[[Params], str], what: str,
              **defaults: int) -> Scenario:
    return Scenario(
        name=name,
        run=partial(many_subjects, name, setups),
        columns=(Column("msgs_per_s", "msgs/s", "rate"),),
        defaults={"subjects": 1000, "count": 1_000_000, "warmup": None, **defaults},
        label=lambda p: f"{p['subjects']} subjects -> {to(p)}",
        help=f"1,000 subjects, mixed sizes, some headers -> {what}; delivered msgs/s",
    )


WILD = _scenario("subj-wild", _wild, lambda p: "1 sub dev.*.temp", "one dev.*.temp subscriber")
EXACT = _scenario("subj-exact", _exact, lambda p: f"{p['subjects']} exact subs, 1 conn",
                  "one connection with one SUB per subject")
QUEUE_GROUP = _scenario("subj-queue", _queue, lambda p: f"queue of {p['subs']} on dev.*.temp",
                        "a queue group on dev.*.temp", subs=4)
