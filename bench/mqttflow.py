"""MQTT throughput, 1 publisher -> N subscribers on one topic, QoS 0 or 1, against the
target's MQTT door and Mosquitto in one run.

The broker, not the client, must be the bottleneck, so the client does no per-message
Python work in the timed path:

* The publisher writes prebuilt ~64 KiB batches of PUBLISH frames (at QoS 1 a set of
  batches whose packet ids cycle through a range wider than the window), pipelined:
  QoS 0 is bounded only by the transport's flow control and by what Mosquitto holds for
  a subscriber without dropping (1,000 messages plus 1 MiB in flight beyond what the
  slowest subscriber has received, see :func:`ahead`); QoS 1 by 1,000 in flight and by
  ``window`` PUBACKs outstanding.
* Every delivery of a run has the same length, so subscribers count them by bytes. A read
  is trusted as whole frames when the first two bytes at each frame boundary are the
  expected ones (anything else, such as a PINGRESP or a DUP, sends it through an exact
  packet-by-packet walk). At QoS 1 the packet ids sit at a fixed offset in every frame, so
  the PUBACKs of a read are built with four strided slice copies. At QoS 0 a socket
  low-water mark makes each read ~64 KiB rather than the few frames Mosquitto writes at
  a time.
* After the burst a PINGREQ/PINGRESP round trip on every connection confirms that each
  subscriber got exactly ``count`` messages; a broker that dropped or duplicated any is
  reported as an error with the counts, never as a rate.

The report shows the client's CPU next to each broker's (``cpu% cli/srv``, the door's pair
then Mosquitto's). All connections share one uvloop event loop: at QoS 0 1->4 16 B the
client used about a tenth of Mosquitto's CPU, at QoS 1 (where Mosquitto keeps only 20
deliveries in flight per subscriber, so each read holds at most 20) about half, so one
process leaves Mosquitto its core on two; subscribers in child processes would only
compete with it for the cores.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import count_label, run_tag, size_label
from .model import OWN, Column, Context, CpuProbe, Outcome, Params, Scenario
from .mqtt import (
    PEER,
    MqttConn,
    Progress,
    open_client,
    publish_frame,
    reaches,
    side_by_side,
    subscribe_frame,
)
from .pubsub import BATCH_BYTES
from .rawclient import FILL

# Mosquitto drops a delivery to a client once ``max_queued_messages`` (1000 by default)
# wait for it: at QoS 1 behind its 20 in flight, at QoS 0 for its socket, which the kernel
# drains into socket buffers first (with a subscriber that stopped reading, 5,000+ 1 KiB
# or 187,000 16 B messages got through before the first drop). The publisher stays within
# ``ahead`` messages of the slowest subscriber, so neither broker is driven into dropping.
QUEUED = 1000
IN_KERNEL = 1 << 20


def ahead(qos: int, frame: int) -> int:
    """Messages of ``frame`` bytes the publisher may have beyond what the slowest subscriber
    received."""
    return QUEUED + (0 if qos else IN_KERNEL // frame)


MAX_WINDOW = 60_000
PINGREQ = b"\xc0\x00"
PUBACK = 0x40
# No progress for this long after the last write means messages were lost.
STALL = 3.0


class FrameSink(MqttConn, asyncio.BufferedProtocol):
    """An :class:`MqttConn` that, once :meth:`expect` told it the one frame shape a run
    delivers, counts whole frames by bytes and PUBACKs QoS 1 ones in bulk.

    Reads land in a fixed buffer; the partial frame at the end of a read is moved to the
    start for the next read, so frame boundaries are at multiples of the frame length.
    """

    def __init__(self, progress: Progress, bufsize: int = 256 << 10) -> None:
        super().__init__(progress)
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self._have = 0  # bytes of an incomplete frame at the buffer's start
        self._frame = 0  # length of the expected frame; 0: walk every read
        self._firsts = self._seconds = b""  # its first two bytes, repeated once per frame
        self._pid_at = -1  # offset of its packet id to acknowledge, or -1
        self._acks = b""  # PUBACK templates, one per frame a read can hold
        self._counts_acks = False
        self.notify_at = 0  # poke the progress once the count reaches this
        self.pings = 0

    def expect(self, frame: bytes, pid_at: int = -1) -> None:
        """Count frames shaped like ``frame`` (same length and first two bytes); PUBACK the
        packet id at ``pid_at`` of each."""
        assert 2 * len(frame) <= len(self._buf), "the receive buffer holds two frames"
        n = len(self._buf) // len(frame) + 1
        self._frame = len(frame)
        self._firsts, self._seconds = frame[:1] * n, frame[1:2] * n
        self._pid_at = pid_at
        self._acks = bytes([PUBACK, 2, 0, 0]) * n if pid_at >= 0 else b""
        self._counts_acks = frame[0] >> 4 == PUBACK >> 4

    def ping(self) -> None:
        self.write(PINGREQ)
        self.pings += 1

    def low_water(self, nbytes: int) -> None:
        """Be woken to read only once ``nbytes`` have arrived (SO_RCVLOWAT)."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, nbytes))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._have :]

    def buffer_updated(self, nbytes: int) -> None:
        end = self._have + nbytes
        size, buf = self._frame, self._buf
        if not size or self.buf:
            self._walk(end)
            return
        # The first two bytes of every frame, the incomplete last one's too: anything else
        # there (a PINGRESP, a DUP) is not one of the expected frames.
        firsts, seconds = buf[0:end:size], buf[1:end:size]
        if firsts != self._firsts[: len(firsts)] or seconds != self._seconds[: len(seconds)]:
            self._walk(end)
            return
        k, rest = divmod(end, size)
        span = k * size
        at = self._pid_at
        if at >= 0 and k and self.transport is not None:
            acks = bytearray(self._acks[: 4 * k])
            acks[2::4] = buf[at:span:size]
            acks[3::4] = buf[at + 1 : span : size]
            self.transport.write(acks)
        if self._counts_acks:
            self.acked += k
            got = self.acked
        else:
            self.received += k
            got = self.received
        if rest:
            buf[:rest] = buf[span:end]
        self._have = rest
        # Checking the waiter's condition only past a mark: less than half the Python time
        # per read (profiled at 1->4 16 B).
        if got >= self.notify_at:
            self.progress.poke()

    def _walk(self, end: int) -> None:
        """The exact path: parse packet by packet; an incomplete one goes back to the
        buffer's start, so the next read can count again."""
        self._have = 0
        self.data_received(bytes(self._view[:end]))
        if self._frame and 0 < len(self.buf) < len(self._buf):
            self._have = len(self.buf)
            self._buf[: self._have] = self.buf
            self.buf.clear()


async def settle(progress: Progress, floor: Callable[[], int], target: int,
                 deadline: float) -> str | None:
    """Wait for ``floor()`` to reach ``target``: None once it does, "stalled" when it
    stops moving for ``STALL`` seconds, "timeout" at ``deadline``."""
    while True:
        before = floor()
        left = deadline - time.perf_counter()
        if left <= 0:
            return "timeout"
        if await progress.until(reaches(floor, target), min(STALL, left)):
            return None
        if floor() == before:
            return "stalled"


@dataclass(frozen=True)
class Stream:
    """The prebuilt PUBLISH batches of a run: ``per`` frames of ``frame`` bytes each, at
    most ``ahead`` of them beyond the slowest subscriber."""

    batches: tuple[bytes, ...]
    per: int
    frame: int
    ahead: int


def stream(topic: str, payload: bytes, qos: int, window: int) -> Stream:
    """Batches of about ``BATCH_BYTES`` (fewer frames when the bounds are small). At QoS 1
    the packet ids run 1, 2, ... across the batches, enough of them that the ``window``
    outstanding never share one."""
    one = publish_frame(topic, payload, qos, 1)
    most = ahead(qos, len(one))
    per = max(1, min(BATCH_BYTES // len(one), most // 2, window // 2 if qos else most))
    if not qos:
        return Stream((one * per,), per, len(one), most)
    rounds = min(-(-window // per) + 2, 65535 // per)
    batches = tuple(b"".join(publish_frame(topic, payload, qos, r * per + i + 1)
                             for i in range(per)) for r in range(rounds))
    return Stream(batches, per, len(one), most)


class Tally:
    """Where a burst stands: deliveries to the slowest subscriber and PUBACKs, counted from
    its start, and how far ahead of them the publisher may be."""

    def __init__(self, pub: FrameSink, subs: list[FrameSink], run: Stream,
                 window: int | None) -> None:
        self.pub, self.subs, self.run, self.window = pub, subs, run, window
        self.base = [s.received for s in subs]
        self.acked0 = pub.acked

    def floor(self) -> int:
        return min(s.received - b for s, b in zip(self.subs, self.base, strict=True))

    def acks(self) -> int:
        return self.pub.acked - self.acked0

    def limit(self) -> int:
        """How many messages may have been written by now."""
        ahead = self.floor() + self.run.ahead
        return ahead if self.window is None else min(ahead, self.acks() + self.window)

    def aim(self, delivered: int, acked: int = 0) -> None:
        """Have each connection wake the waiter only once its own count can satisfy it."""
        for s, b in zip(self.subs, self.base, strict=True):
            s.notify_at = b + delivered
        self.pub.notify_at = self.acked0 + acked


async def publish(tally: Tally, progress: Progress, count: int, deadline: float) -> str | None:
    """Write ``count`` frames from the tally's stream, never beyond its ``limit()``;
    None once written, else why not (see :func:`settle`)."""
    pub, run = tally.pub, tally.run
    assert pub.transport is not None
    write, batches, per = pub.transport.write, run.batches, run.per
    sent = i = 0
    while sent < count:
        n = min(per, count - sent)
        if sent + n > tally.limit():
            tally.aim(sent + n - run.ahead, sent + n - (tally.window or 0))
            why = await settle(progress, tally.limit, sent + n, deadline)
            if why:
                return why
        await pub.drain()
        if pub.closed:
            return "closed"
        write(batches[i] if n == per else batches[i][: n * run.frame])
        i = (i + 1) % len(batches)
        sent += n
        await asyncio.sleep(0)
    return None


async def round_trip(conns: list[FrameSink], progress: Progress) -> bool:
    """PINGREQ on every connection and wait for every PINGRESP: what a broker sent a
    connection before answering has arrived."""
    for c in conns:
        c.ping()
    return await progress.until(lambda: all(c.pongs >= c.pings or c.closed for c in conns),
                                10.0)


@dataclass
class _Burst:
    elapsed: float
    delivered: list[int]
    acked: int
    cpu: dict[str, float | None]
    error: str | None
    partial: bool


async def burst(pub: FrameSink, subs: list[FrameSink], progress: Progress, run: Stream, qos: int,
                count: int, window: int, pid: int | None, timeout: float) -> _Burst:
    """``count`` messages through the broker, timed from the first write to the last
    delivery, then checked exactly."""
    tally = Tally(pub, subs, run, window if qos else None)
    if not qos:
        # Reads of ~64 KiB instead of a few frames each: the client's CPU at 1->4 16 B went
        # from about half of Mosquitto's to a tenth. Below what the publisher keeps in
        # flight beyond the slowest subscriber, so a blocked publisher is always woken.
        for s in subs:
            s.low_water(min(BATCH_BYTES, (run.ahead - run.per) * run.frame // 2))
    probe = CpuProbe(pid)
    gc.collect()
    gc.disable()
    try:
        probe.start()
        t0 = time.perf_counter()
        deadline = t0 + timeout
        why = await publish(tally, progress, count, deadline)
        tally.aim(count)
        for s in subs:
            s.low_water(1)
            s.ping()  # an arrival, in case lowering the mark wakes no reader
        why = why or await settle(progress, tally.floor, count, deadline)
        if qos and not why:
            tally.aim(0, count)
            why = await settle(progress, tally.acks, count, deadline)
        elapsed = time.perf_counter() - t0
        cpu = probe.stop()
    finally:
        gc.enable()
    answered = await round_trip([pub, *subs], progress)
    got = [s.received - b for s, b in zip(subs, tally.base, strict=True)]
    acked = tally.acks()
    error = None
    if why == "stalled" or why == "closed" or any(n != count for n in got) or not answered:
        error = (f"{why or 'delivered'}: subscribers got {got} of {count}"
                 + (f", {acked} PUBACKs" if qos else "")
                 + ("" if answered else ", no PINGRESP"))
    elif qos and acked != count:
        error = f"{acked} PUBACKs for {count} messages"
    return _Burst(elapsed, got, acked, cpu, error, why == "timeout")


async def flow(port: int, pid: int | None, p: Params, qos: int, timeout: float) -> Outcome:
    """1 publisher -> ``subs`` subscribers at ``qos``; deliveries per second, all
    subscribers together."""
    count, size, nsubs = int(p["count"]), int(p["size"]), int(p["subs"])
    # Packet ids are 16 bits: the batches' ids must span the window and two batches more.
    window = min(int(p.get("window") or QUEUED), MAX_WINDOW)
    tag = run_tag()
    topic = f"bench/{tag}/q{qos}"
    payload = FILL * size
    progress = Progress()
    conns: list[FrameSink] = []
    try:
        for i in range(nsubs):
            conns.append(await open_client(port, f"{tag}-sub{i}", progress,
                                           subscribe_frame(topic, qos), 1, FrameSink))
        pub = await open_client(port, f"{tag}-pub", progress, b"", 0, FrameSink)
        conns.append(pub)
        subs = conns[:-1]
        delivered = publish_frame(topic, payload, qos, 1)
        pid_at = len(delivered) - size - 2 if qos else -1
        for s in subs:
            s.expect(delivered, pid_at)
        if qos:
            pub.expect(bytes([PUBACK, 2, 0, 1]))
        run = stream(topic, payload, qos, window)
        warmup = int(p["warmup"]) if p.get("warmup") is not None else min(count // 10, 50_000)
        # As in pubsub: an unmeasured burst first; if even that fails, it is the result.
        b = await burst(pub, subs, progress, run, qos, warmup, window, pid, timeout) \
            if warmup else None
        if b is None or not (b.error or b.partial):
            b = await burst(pub, subs, progress, run, qos, count, window, pid, timeout)
    finally:
        for c in conns:
            c.close()
    total = sum(b.delivered)
    rate = total / b.elapsed if b.elapsed > 0 and not b.error else None
    return Outcome(metrics={"msgs_per_s": rate},
                   details={"delivered": b.delivered, "expected": count, "acked": b.acked,
                            "elapsed_s": b.elapsed, "warmup_msgs": warmup, **b.cpu},
                   partial=b.partial, error=b.error)


def _scenario(qos: int, count: int, what: str, **defaults: int) -> Scenario:
    async def run(ctx: Context, p: Params) -> Outcome:
        return await side_by_side(ctx, p, lambda port, pid, p, t: flow(port, pid, p, qos, t),
                                  "msgs_per_s")

    def label(p: Params) -> str:
        window = f" w{p['window']}" if qos else ""
        return (f"mqtt qos{qos} {size_label(p['size'])} 1->{p['subs']}{window} "
                f"{count_label(int(p['count']))} vs mosquitto")

    return Scenario(
        name=f"mqtt-qos{qos}",
        run=run,
        columns=(Column("msgs_per_s", "door msgs/s", "rate"),
                 Column(f"{PEER}_msgs_per_s", "mosquitto msgs/s", "rate", ratio=False),
                 Column("ratio", "door/mosq", "float", ratio=False)),
        defaults={"size": 16, "subs": 1, "count": count, "warmup": None, **defaults},
        label=label,
        help=f"MQTT QoS {qos}, 1 publisher -> SUBS subscribers, {what}; deliveries/s, "
             "the target's MQTT door and Mosquitto",
        server=OWN,
        phases=4,
    )


QOS0 = _scenario(0, 1_000_000, "pipelined")
QOS1 = _scenario(1, 300_000, "WINDOW PUBACKs outstanding", window=1000)
