"""Kill test: SIGKILL the hub at random moments under mixed load on all four doors.

    python tests/campaigns/killtest.py [--rounds 20] [--seed S] [--min-kill 1.0]
                                       [--max-kill 6.0] [--budget SECONDS] [--dir DIR]

One hub, its JetStream store (SQLite) kept across rounds.  Each round, at once:

* publishers, every payload unique (door, round, counter): nats-py JetStream over TCP
  and over WebSocket (PubAcks), paho MQTT 3.1.1 at QoS 1 and MQTT 5 at QoS 2 (a
  PUBACK/PUBCOMP through ``on_publish`` with a success reason code is an
  acknowledgement), and HTTP ``POST /v1/publish/{subject}`` (a 200 with a PubAck);
* a durable pull consumer that fetches and acks, a durable push consumer that acks;
* a persistent MQTT session (3.1.1 ``clean_session=0`` in even rounds, MQTT 5 with a
  session expiry in odd ones) subscribed at QoS 1 to the MQTT publishers' topics.

At a seeded random moment the hub's process group gets SIGKILL; in even rounds its
SQLite writer process too (the writer runs in a session of its own, so the group kill
alone leaves it to notice its closed stdin and exit: that it does so is checked).  The
hub is started again on the same ports and the round is verified:

* every acknowledged message is in the stream exactly once, with the sequence its PubAck
  gave; nothing is stored twice and nothing that was never sent;
* the durable consumers come back at or after the ack floor they had ``ACK_GRACE``
  seconds before the kill (acks are saved write-behind every 50 ms, so the last acks
  may be forgotten and their messages sent again: those redeliveries are counted, and
  one whose ack was confirmed longer than ``ACK_GRACE`` before the kill is a failure),
  and deliver every stored message;
* the MQTT session is resumed (session present) and receives every acknowledged MQTT
  message it had not received before the kill.

After the last round the whole stream is read once more and the hub is stopped with
SIGTERM (exit status 0).  The table has one row per round; the exit status is 1 on any
failure, each printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import queue
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import nats
import paho.mqtt.client as paho
from mqtt_clients import V3, V5, Paho
from nats.js.api import AckPolicy, ConsumerConfig
from paho.mqtt.enums import CallbackAPIVersion

from campaigns.harness import Hub, alive, finish, remove_workdir, table, workdir

DEFAULT_SEED = 20241206
DOORS = ("nats", "ws", "mqtt1", "mqtt2", "http")
STREAM = "KT"
RECOVERED = re.compile(r"Recovered \d+ streams, [\d,]+ messages \(.*\) in ([\d.]+)s")
#: An ack confirmed this long before the kill must not be forgotten (seconds): the
#: consumer state is saved 50 ms after an ack; the rest is commit latency on a busy box.
ACK_GRACE = 1.0
#: Consumers' ack wait: what was delivered and not acked before the kill comes again
#: this long after the restart.
ACK_WAIT = 3.0
#: Concurrent requests per JetStream/HTTP publisher; MQTT in-flight window.
WINDOW = 4
MQTT_WINDOW = 20

CONF = """
server_name: killtest
http: "127.0.0.1:{http}"
mqtt {{ port: {mqtt} }}
websocket {{ port: {ws}, no_tls: true }}
jetstream {{ store_dir: "{store}" }}
"""


def payload(door: str, rnd: int, i: int, pad: int) -> bytes:
    return b"%s|%d|%d|" % (door.encode(), rnd, i) + b"x" * pad


def door_of(data: bytes) -> str:
    return data.split(b"|", 1)[0].decode(errors="replace")


def subject(rnd: int, door: str) -> str:
    return f"kt.{rnd}.{door}"


async def quiet(*_: Any) -> None:
    """nats-py callbacks that say nothing: the kill makes every client fail."""


async def connect(url: str, reconnect: bool = False) -> nats.NATS:
    return await nats.connect(url, allow_reconnect=reconnect, connect_timeout=3,
                              error_cb=quiet, disconnected_cb=quiet, closed_cb=quiet,
                              max_reconnect_attempts=0 if not reconnect else 60)


def client_noise(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """nats-py's reader tasks fail or are dropped when the hub dies under them: expected
    client-side noise after a kill, not printed.  Anything else is."""
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, OSError, EOFError)) or \
            context.get("message", "").startswith("Task was destroyed but it is pending"):
        return
    loop.default_exception_handler(context)


# -- publishers --------------------------------------------------------------------------

@dataclass
class Pub:
    """What one door's publisher sent and what it got acknowledged."""

    door: str
    sent: list[bytes] = field(default_factory=list)
    acked: dict[bytes, int] = field(default_factory=dict)  # payload -> seq (0: MQTT)
    refused: list[bytes] = field(default_factory=list)
    error: str = ""


async def js_publisher(pub: Pub, url: str, rnd: int, stop: asyncio.Event,
                       rng: random.Random) -> None:
    try:
        nc = await connect(url)
    except Exception as exc:  # noqa: BLE001 - recorded; the round then fails
        pub.error = f"connect: {exc!r}"
        return
    js = nc.jetstream(timeout=5)
    counter = iter(range(10**9))
    pads = [rng.randrange(8, 600) for _ in range(1024)]

    async def worker() -> None:
        while not stop.is_set() and nc.is_connected:
            i = next(counter)
            data = payload(pub.door, rnd, i, pads[i % len(pads)])
            pub.sent.append(data)
            try:
                ack = await js.publish(subject(rnd, pub.door), data)
            except Exception:  # noqa: BLE001 - in flight at the kill: not acknowledged
                return
            pub.acked[data] = ack.seq

    try:
        await asyncio.gather(*(worker() for _ in range(WINDOW)))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def http_publisher(pub: Pub, base: str, rnd: int, stop: asyncio.Event,
                         rng: random.Random) -> None:
    counter = iter(range(10**9))
    pads = [rng.randrange(8, 600) for _ in range(1024)]
    dead = False
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        async def worker() -> None:
            nonlocal dead
            while not stop.is_set() and not dead:
                i = next(counter)
                data = payload("http", rnd, i, pads[i % len(pads)])
                pub.sent.append(data)
                try:
                    resp = await http.post(f"/v1/publish/{subject(rnd, 'http')}", content=data)
                except httpx.HTTPError:
                    dead = True
                    return
                if resp.status_code == 200:
                    pub.acked[data] = resp.json()["seq"]
                else:
                    pub.refused.append(data)

        await asyncio.gather(*(worker() for _ in range(WINDOW)))


class MqttPublisher:
    """A paho client on its own thread publishing at one QoS with a window of
    ``MQTT_WINDOW``; ``on_publish`` with a success reason code is the acknowledgement."""

    def __init__(self, door: str, port: int, version: int, qos: int, rnd: int,
                 seed: int) -> None:
        self.pub = Pub(door)
        self.port, self.qos, self.rnd = port, qos, rnd
        self.version = version
        self.rng = random.Random(seed)
        kwargs: dict[str, Any] = {} if version == V5 else {"clean_session": True}
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"kt-{door}-{rnd}",
                             protocol=version, reconnect_on_failure=False, **kwargs)
        self.c.max_inflight_messages_set(MQTT_WINDOW)
        self.c.on_publish = self._on_publish
        self.c.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.connected = threading.Event()
        self.window = threading.Semaphore(MQTT_WINDOW)
        self.lock = threading.Lock()
        self.by_mid: dict[int, bytes] = {}
        self.early: dict[int, Any] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"kt-{door}", daemon=True)

    def _settle(self, data: bytes, rc: Any) -> None:
        if getattr(rc, "is_failure", False):
            self.pub.refused.append(data)
        else:
            self.pub.acked[data] = 0
        self.window.release()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        # Called with paho's own lock held: never call into paho while holding ours.
        with self.lock:
            data = self.by_mid.pop(mid, None)
            if data is None:
                self.early[mid] = rc
                return
        self._settle(data, rc)

    def _run(self) -> None:
        try:
            if self.version == V5:
                self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=True)
            else:
                self.c.connect("127.0.0.1", self.port, keepalive=30)
        except OSError as exc:
            self.pub.error = f"connect: {exc!r}"
            return
        self.c.loop_start()
        if not self.connected.wait(5):
            self.pub.error = "no CONNACK"
            return
        topic = f"kt/{self.rnd}/{self.pub.door}"
        i = 0
        while not self.stop.is_set() and self.c.is_connected():
            if not self.window.acquire(timeout=0.2):
                continue
            data = payload(self.pub.door, self.rnd, i, self.rng.randrange(8, 600))
            i += 1
            self.pub.sent.append(data)
            info = self.c.publish(topic, data, qos=self.qos)
            with self.lock:
                rc = self.early.pop(info.mid, None)
                if rc is None:
                    self.by_mid[info.mid] = data
            if rc is not None:
                self._settle(data, rc)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> Pub:
        self.stop.set()
        self.thread.join(10)
        self.c.loop_stop()
        with contextlib.suppress(Exception):
            sock = self.c.socket()
            if sock is not None:
                sock.close()
        return self.pub


# -- consumers ---------------------------------------------------------------------------

@dataclass
class Seen:
    """Deliveries to one consumer: per payload its deliveries (phase, num_delivered) and
    when its ack was confirmed (a flush after the ack returned)."""

    name: str
    deliveries: dict[bytes, list[tuple[str, int, int]]] = field(default_factory=dict)
    confirmed: dict[bytes, float] = field(default_factory=dict)
    floors: list[tuple[float, int]] = field(default_factory=list)  # (time, ack floor)
    restored_floor: int = -1
    error: str = ""

    def deliver(self, data: bytes, phase: str, count: int, seq: int) -> None:
        self.deliveries.setdefault(data, []).append((phase, count, seq))

    def redeliveries(self) -> int:
        return sum(len(v) - 1 for v in self.deliveries.values())

    def resent_after_ack(self, kill_at: float) -> list[float]:
        """For each message delivered again after the restart although its ack was
        confirmed before the kill: how long before the kill that was (seconds)."""
        out = []
        for data, seen in self.deliveries.items():
            if data in self.confirmed and self.confirmed[data] < kill_at and \
                    any(phase == "after" for phase, _, _ in seen):
                out.append(kill_at - self.confirmed[data])
        return out

    def floor_before(self, t: float) -> int:
        return max((f for at, f in self.floors if at <= t), default=0)


async def pull_consumer(seen: Seen, url: str, rnd: int, stop: asyncio.Event,
                        phase: str, until: Any = None) -> None:
    """Fetch and ack from durable ``seen.name`` until ``stop`` (or ``until()``)."""
    nc = await connect(url)
    js = nc.jetstream(timeout=5)
    try:
        psub = await js.pull_subscribe_bind(seen.name, STREAM)
        while not stop.is_set() and nc.is_connected:
            if until is not None and await until():
                return
            try:
                msgs = await psub.fetch(100, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            for m in msgs:
                seen.deliver(m.data, phase, m.metadata.num_delivered,
                             m.metadata.sequence.stream)
                await m.ack()
            await nc.flush(2)
            now = time.monotonic()
            for m in msgs:
                seen.confirmed.setdefault(m.data, now)
    except Exception as exc:  # noqa: BLE001 - the kill ends it; later phases must not fail
        if phase == "after":
            seen.error = repr(exc)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def push_consumer(seen: Seen, url: str, rnd: int, stop: asyncio.Event,
                        phase: str, until: Any = None) -> None:
    nc = await connect(url)
    js = nc.jetstream(timeout=5)
    unconfirmed: list[bytes] = []

    async def cb(m: Any) -> None:
        seen.deliver(m.data, phase, m.metadata.num_delivered, m.metadata.sequence.stream)
        await m.ack()
        unconfirmed.append(m.data)

    try:
        await js.subscribe(f"kt.{rnd}.>", durable=seen.name, stream=STREAM,
                           manual_ack=True, cb=cb)
        while not stop.is_set() and nc.is_connected:
            await asyncio.sleep(0.1)
            batch, unconfirmed[:] = list(unconfirmed), []
            await nc.flush(2)
            now = time.monotonic()
            for data in batch:
                seen.confirmed.setdefault(data, now)
            if until is not None and await until():
                return
    except Exception as exc:  # noqa: BLE001
        if phase == "after":
            seen.error = repr(exc)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def watch_floors(url: str, seens: list[Seen], stop: asyncio.Event) -> None:
    """Sample each durable's ack floor every 0.25 s until the kill."""
    try:
        nc = await connect(url)
    except Exception:  # noqa: BLE001
        return
    js = nc.jetstream(timeout=2)
    try:
        while not stop.is_set() and nc.is_connected:
            for seen in seens:
                try:
                    info = await js.consumer_info(STREAM, seen.name)
                except Exception:  # noqa: BLE001
                    return
                seen.floors.append((time.monotonic(), info.ack_floor.stream_seq))
            await asyncio.sleep(0.25)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


class Session:
    """The persistent MQTT session of a round: its client id, and every payload it
    received (with how often) before and after the kill."""

    def __init__(self, port: int, rnd: int) -> None:
        self.port = port
        self.cid = f"kt-session-{rnd}"
        self.version = V3 if rnd % 2 == 0 else V5
        self.rnd = rnd
        self.received: Counter[bytes] = Counter()
        self.before: set[bytes] = set()
        self.client: Paho | None = None
        self.present: bool | None = None

    def open(self) -> bool:
        self.client = Paho(self.port, self.cid, version=self.version, clean=False,
                           expiry=3600 if self.version == V5 else None)
        present, rc = self.client.connect()
        if int(getattr(rc, "value", rc)) != 0:
            raise RuntimeError(f"session CONNACK {rc}")
        return present

    def drain(self) -> None:
        assert self.client is not None
        while True:
            try:
                msg = self.client.messages.get_nowait()
            except queue.Empty:
                return
            self.received[msg.payload] += 1

    def drop(self) -> None:
        if self.client is not None:
            self.drain()
            self.client.drop()

    def end(self) -> None:
        """Discard the session on the hub: reconnect with a clean start and leave."""
        c = Paho(self.port, self.cid, version=self.version, clean=True,
                 expiry=0 if self.version == V5 else None)
        with contextlib.suppress(Exception):
            c.connect()
            c.close()


# -- one round ---------------------------------------------------------------------------

@dataclass
class Round:
    n: int
    kill_after: float = 0.0
    writer_killed: bool = True
    acked: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    stored: int = 0
    stored_unacked: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0
    seq_mismatch: int = 0
    redelivered: dict[str, int] = field(default_factory=dict)
    resent_after_ack_max: float = 0.0
    session_present: bool | None = None
    session_missing: int = 0
    gone_after_delivery: int = 0
    gone: list[tuple[int, bytes]] = field(default_factory=list)  # (seq delivered as, payload)
    recovery: str = ""
    restart_s: float = 0.0
    writer_exit_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    stored_payloads: Counter[bytes] = field(default_factory=Counter)


async def read_stream(js: Any, filter_subject: str) -> list[tuple[int, bytes]]:
    """Every message of the stream on ``filter_subject``: (stream seq, payload)."""
    ci = await js.add_consumer(STREAM, ConsumerConfig(
        filter_subject=filter_subject, ack_policy=AckPolicy.NONE, inactive_threshold=60,
        mem_storage=True))
    want = ci.num_pending
    out: list[tuple[int, bytes]] = []
    psub = await js.pull_subscribe_bind(ci.name, STREAM)
    deadline = time.monotonic() + 60 + want / 2000
    while len(out) < want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"read {len(out)} of {want} messages of {filter_subject}")
        try:
            msgs = await psub.fetch(min(1000, want - len(out)), timeout=2)
        except nats.errors.TimeoutError:
            continue
        out += [(m.metadata.sequence.stream, m.data) for m in msgs]
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, ci.name)
    return out


async def run_round(hub: Hub, r: Round, rng: random.Random, min_kill: float,
                    max_kill: float) -> None:
    rnd = r.n
    nc = await connect(hub.url)
    js = nc.jetstream(timeout=10)
    cfg = {"filter_subject": f"kt.{rnd}.>", "ack_policy": AckPolicy.EXPLICIT,
           "ack_wait": ACK_WAIT, "max_ack_pending": 2000}
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=f"PULL{rnd}", **cfg))
    pull, push = Seen(f"PULL{rnd}"), Seen(f"PUSH{rnd}")
    session = Session(hub.mqtt_port, rnd)
    await asyncio.to_thread(session.open)
    codes = await asyncio.to_thread(session.client.subscribe,  # type: ignore[union-attr]
                                    (f"kt/{rnd}/mqtt1", 1), (f"kt/{rnd}/mqtt2", 1))
    if codes != [1, 1]:
        r.failures.append(f"session SUBACK {codes}")
    await nc.close()

    stop = asyncio.Event()
    pubs = {"nats": Pub("nats"), "ws": Pub("ws"), "http": Pub("http")}
    mqtt = {"mqtt1": MqttPublisher("mqtt1", hub.mqtt_port, V3, 1, rnd, rng.randrange(1 << 30)),
            "mqtt2": MqttPublisher("mqtt2", hub.mqtt_port, V5, 2, rnd, rng.randrange(1 << 30))}
    tasks = [
        asyncio.create_task(js_publisher(pubs["nats"], hub.url, rnd, stop,
                                         random.Random(rng.random()))),
        asyncio.create_task(js_publisher(pubs["ws"], hub.ws_url, rnd, stop,
                                         random.Random(rng.random()))),
        asyncio.create_task(http_publisher(pubs["http"], hub.http_url, rnd, stop,
                                           random.Random(rng.random()))),
        asyncio.create_task(pull_consumer(pull, hub.url, rnd, stop, "before")),
        asyncio.create_task(push_consumer(push, hub.url, rnd, stop, "before")),
        asyncio.create_task(watch_floors(hub.url, [pull, push], stop)),
    ]
    for m in mqtt.values():
        m.start()

    async def drain_session() -> None:
        while not stop.is_set():
            session.drain()
            await asyncio.sleep(0.05)

    tasks.append(asyncio.create_task(drain_session()))
    r.kill_after = rng.uniform(min_kill, max_kill)
    r.writer_killed = rnd % 2 == 0
    await asyncio.sleep(r.kill_after)

    # -- the kill
    kill_at = time.monotonic()
    writers = hub.kill9(writer_too=r.writer_killed)
    stop.set()
    if not writers:
        r.failures.append("no SQLite writer process found under the hub")
    if not r.writer_killed:
        began = time.monotonic()
        while any(alive(p) for p in writers) and time.monotonic() - began < 10:
            await asyncio.sleep(0.02)
        r.writer_exit_s = time.monotonic() - began
        if any(alive(p) for p in writers):
            r.failures.append(f"writer process {writers} still alive 10 s after the hub died")
    await asyncio.wait(tasks, timeout=15)
    for m in mqtt.values():
        pubs[m.pub.door] = await asyncio.to_thread(m.finish)
    session.drop()
    session.before = set(session.received)

    # -- restart
    r.restart_s = hub.start()
    assert hub.server is not None
    found = RECOVERED.search(hub.server.log())
    r.recovery = found.group(1) if found else "?"

    # -- the stream: every acknowledged message exactly once, with its PubAck's sequence
    nc = await connect(hub.url)
    js = nc.jetstream(timeout=10)
    stored = await read_stream(js, f"kt.{rnd}.>")
    counts = Counter(data for _, data in stored)
    seq_of = {data: seq for seq, data in stored}
    r.stored_payloads = counts
    sent = {data for p in pubs.values() for data in p.sent}
    acked = {data: seq for p in pubs.values() for data, seq in p.acked.items()}
    r.sent = len(sent)
    r.acked = {d: len(p.acked) for d, p in pubs.items()}
    r.stored = len(stored)
    r.stored_unacked = len([d for d in counts if d not in acked])
    r.lost = len([d for d in acked if d not in counts])
    r.duplicated = sum(c - 1 for c in counts.values() if c > 1)
    r.phantom = len([d for d in counts if d not in sent])
    r.seq_mismatch = len([d for d, s in acked.items() if s and d in seq_of and seq_of[d] != s])
    for d, p in pubs.items():
        if p.error:
            r.failures.append(f"{d} publisher: {p.error}")
        if not p.acked:
            r.failures.append(f"{d} publisher: nothing acknowledged before the kill")
        if p.refused:
            r.failures.append(f"{d} publisher: {len(p.refused)} refused")
    for what, n in (("lost", r.lost), ("duplicated", r.duplicated), ("phantom", r.phantom),
                    ("PubAck sequence differs from stored", r.seq_mismatch)):
        if n:
            examples = {"lost": [d for d in acked if d not in counts],
                        "duplicated": [d for d, c in counts.items() if c > 1],
                        "phantom": [d for d in counts if d not in sent],
                        }.get(what, [d for d, s in acked.items() if s and seq_of.get(d, s) != s])
            r.failures.append(f"{n} {what}, e.g. {[e[:24] for e in examples[:3]]}")

    # -- durable consumers: resume at or after the floor, then deliver everything
    want = set(counts)
    for seen in (pull, push):
        info = await js.consumer_info(STREAM, seen.name)
        seen.restored_floor = info.ack_floor.stream_seq
        required = seen.floor_before(kill_at - ACK_GRACE)
        if seen.restored_floor < required:
            r.failures.append(f"{seen.name}: ack floor {seen.restored_floor} after the restart, "
                              f"below {required} seen {ACK_GRACE} s before the kill")

    def done_for(seen: Seen) -> Any:
        async def check() -> bool:
            if not want <= set(seen.deliveries):
                return False
            info = await js.consumer_info(STREAM, seen.name)
            return info.num_pending == 0 and info.num_ack_pending == 0
        return check

    stop2 = asyncio.Event()
    after = [asyncio.create_task(pull_consumer(pull, hub.url, rnd, stop2, "after",
                                               done_for(pull))),
             asyncio.create_task(push_consumer(push, hub.url, rnd, stop2, "after",
                                               done_for(push)))]
    session.present = await asyncio.to_thread(session.open)
    r.session_present = session.present
    if not session.present:
        r.failures.append(f"MQTT session {session.cid} not present after the restart")
    mqtt_acked = {d for name in ("mqtt1", "mqtt2") for d in pubs[name].acked}
    deadline = time.monotonic() + 30 + 2 * ACK_WAIT
    while time.monotonic() < deadline:
        session.drain()
        if mqtt_acked <= set(session.received) and all(t.done() for t in after):
            break
        await asyncio.sleep(0.1)
    stop2.set()
    await asyncio.wait(after, timeout=10)
    session.drain()
    session.client.close()  # type: ignore[union-attr]
    missing = mqtt_acked - set(session.received)
    r.session_missing = len(missing)
    if missing:
        r.failures.append(f"MQTT session missed {len(missing)} acknowledged messages, "
                          f"e.g. {[m[:20] for m in sorted(missing)[:3]]}")
    for seen in (pull, push):
        if seen.error:
            r.failures.append(f"{seen.name}: {seen.error}")
        short = want - set(seen.deliveries)
        if short:
            r.failures.append(f"{seen.name}: {len(short)} stored messages never delivered")
        extra = set(seen.deliveries) - want
        if extra:
            # Delivered before the kill, never acknowledged to their publisher, and not
            # in the stream after the restart: the consumer saw uncommitted messages.
            r.gone_after_delivery += len(extra)
            r.gone += [(seen.deliveries[d][0][2], d) for d in extra]
            at = {seq: data for seq, data in stored}
            shown = []
            for data in sorted(extra)[:3]:
                phase, _, seq = seen.deliveries[data][0]
                now = at.get(seq, b"(none)")
                shown.append(f"{data[:16]!r} as seq {seq} ({phase} the kill; "
                             f"seq {seq} is now {now[:16]!r})")
            r.failures.append(f"{seen.name}: {len(extra)} delivered messages are not in the "
                              f"stream after the restart: {'; '.join(shown)}")
        lags = seen.resent_after_ack(kill_at)
        r.resent_after_ack_max = max([r.resent_after_ack_max, *lags])
        late = [x for x in lags if x > ACK_GRACE]
        if late:
            r.failures.append(f"{seen.name}: {len(late)} messages sent again although their "
                              f"ack was confirmed up to {max(late):.2f} s before the kill")
        r.redelivered[seen.name[:4].lower()] = seen.redeliveries()
    r.redelivered["mqtt"] = sum(c - 1 for c in session.received.values() if c > 1)

    # -- clean up the round's consumers and session
    for seen in (pull, push):
        with contextlib.suppress(Exception):
            await js.delete_consumer(STREAM, seen.name)
    await asyncio.to_thread(session.end)
    await nc.close()


async def push_durable(hub: Hub, rnd: int) -> None:
    """The push durable is created by its subscriber; make it before any load."""
    nc = await connect(hub.url)
    js = nc.jetstream(timeout=10)
    await js.add_consumer(STREAM, ConsumerConfig(
        durable_name=f"PUSH{rnd}", deliver_subject=f"ktd.push.{rnd}",
        filter_subject=f"kt.{rnd}.>", ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
        max_ack_pending=2000))
    await nc.close()


# -- the campaign ------------------------------------------------------------------------

@dataclass
class Result:
    rounds: list[Round]
    failures: list[str]
    total_messages: int
    log_problems: list[str]
    elapsed: float

    @property
    def ok(self) -> bool:
        return not self.failures


async def campaign(rounds: int = 20, seed: int = DEFAULT_SEED, min_kill: float = 1.0,
                   max_kill: float = 6.0, budget: float = 3600.0, dir: str | None = None,
                   keep: bool = False, out: Any = print) -> Result:
    rng = random.Random(seed)
    began = time.monotonic()
    asyncio.get_running_loop().set_exception_handler(client_noise)
    base = workdir("killtest", dir)
    hub = Hub.make(base, CONF)
    out(f"killtest: seed {seed}, {rounds} rounds, work dir {base}, ports nats {hub.nats_port} "
        f"ws {hub.ws_port} mqtt {hub.mqtt_port} http {hub.http_port}")
    hub.start()
    nc = await connect(hub.url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name=STREAM, subjects=["kt.>"])
    await nc.close()
    done: list[Round] = []
    failures: list[str] = []
    for n in range(1, rounds + 1):
        if time.monotonic() - began > budget:
            failures.append(f"time budget of {budget:.0f} s used up after {len(done)} rounds")
            break
        r = Round(n)
        # the push durable exists before the load (its deliver subject outside the
        # stream's kt.>); its subscribers bind to it
        await push_durable(hub, n)
        try:
            await run_round(hub, r, rng, min_kill, max_kill)
        except Exception as exc:  # noqa: BLE001 - one broken round is reported, not fatal
            r.failures.append(f"round aborted: {exc!r}")
            if not hub.running():
                with contextlib.suppress(Exception):
                    r.restart_s = hub.start()
        done.append(r)
        failures += [f"round {n}: {f}" for f in r.failures]
        out(f"round {n:2d}: kill after {r.kill_after:.2f} s"
            f"{'' if r.writer_killed else ' (hub only)'}, acked "
            + " ".join(f"{d}={r.acked.get(d, 0)}" for d in DOORS)
            + f", lost {r.lost}, duplicated {r.duplicated}, restart {r.restart_s:.2f} s"
            + ("" if not r.failures else f"  FAILED: {'; '.join(r.failures)}"))

    # -- the whole stream once more, then a clean stop
    total = 0
    try:
        nc = await connect(hub.url)
        js = nc.jetstream(timeout=10)
        everything = await read_stream(js, "kt.>")
        total = len(everything)
        all_counts = Counter(d for _, d in everything)
        dup = [d for d, c in all_counts.items() if c > 1]
        if dup:
            failures.append(f"final pass: {len(dup)} payloads stored twice, e.g. {dup[:3]}")
        for r in done:
            mine = Counter({d: c for d, c in all_counts.items()
                            if d.split(b"|")[1] == str(r.n).encode()})
            if mine != r.stored_payloads:
                gone = set(r.stored_payloads) - set(mine)
                new = set(mine) - set(r.stored_payloads)
                failures.append(f"final pass: round {r.n}'s messages changed since its check "
                                f"({len(gone)} gone, {len(new)} new)")
        # a sequence delivered for a message the kill then took: what holds it now
        at = dict(everything)
        for r in done:
            reused = [(seq, data, at[seq]) for seq, data in r.gone
                      if seq in at and at[seq] != data]
            if reused:
                seq, data, now = reused[0]
                failures.append(
                    f"round {r.n}: {len(reused)} stream sequences delivered to a consumer "
                    f"before the kill now hold other messages, e.g. seq {seq} was delivered "
                    f"as {data[:16]!r} and is now {now[:16]!r}")
        seqs = [s for s, _ in everything]
        if seqs != sorted(seqs):
            failures.append("final pass: stream sequences out of order")
        await nc.close()
    except Exception as exc:  # noqa: BLE001
        failures.append(f"final pass failed: {exc!r}")
    rc = hub.stop()
    if rc != 0:
        failures.append(f"hub exit status {rc} on SIGTERM")
    problems = hub.problems()
    tracebacks = [line for line in problems if "Traceback" in line or "[FTL]" in line]
    if tracebacks:
        failures.append(f"hub log: {len(tracebacks)} traceback/fatal lines")
    result = Result(done, failures, total, problems, time.monotonic() - began)
    if result.ok and not keep:
        remove_workdir(base)
    return result


def report(result: Result) -> str:
    headers = ["round", "kill after s", "writer", *[f"acked {d}" for d in DOORS],
               "stored, not acked", "lost", "duplicated", "delivered, then gone",
               "redelivered pull/push/mqtt",
               "max ack→kill of a resent msg s", "session present",
               "restart s (JetStream recovery s)"]
    rows = []
    for r in result.rounds:
        rows.append([r.n, f"{r.kill_after:.2f}",
                     "killed" if r.writer_killed else f"exited in {r.writer_exit_s:.2f} s",
                     *[r.acked.get(d, 0) for d in DOORS], r.stored_unacked, r.lost,
                     r.duplicated, r.gone_after_delivery,
                     "/".join(str(r.redelivered.get(k, 0)) for k in ("pull", "push", "mqtt")),
                     f"{r.resent_after_ack_max:.2f}",
                     {True: "yes", False: "NO", None: "-"}[r.session_present],
                     f"{r.restart_s:.2f} ({r.recovery})"])
    rs = result.rounds
    if rs:
        rows.append(["**all**", "", "", *[sum(r.acked.get(d, 0) for r in rs) for d in DOORS],
                     sum(r.stored_unacked for r in rs), sum(r.lost for r in rs),
                     sum(r.duplicated for r in rs), sum(r.gone_after_delivery for r in rs),
                     "/".join(str(sum(r.redelivered.get(k, 0) for r in rs))
                              for k in ("pull", "push", "mqtt")),
                     f"{max(r.resent_after_ack_max for r in rs):.2f}",
                     f"{sum(1 for r in rs if r.session_present)}/{len(rs)}",
                     f"max {max(r.restart_s for r in rs):.2f}"])
    lines = [table(headers, rows), "",
             f"Stream {STREAM} at the end: {result.total_messages} messages; "
             f"{len(result.rounds)} rounds in {result.elapsed:.0f} s."]
    warn = [line for line in result.log_problems]
    if warn:
        lines.append(f"Hub log: {len(warn)} [ERR]/[WRN] lines:")
        shown = Counter(re.sub(r"^\[\d+\] \S+ \S+ ", "", line) for line in warn)
        lines += [f"    {n} x {text}" for text, n in shown.most_common(15)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--min-kill", type=float, default=1.0,
                        help="earliest kill, seconds after the load starts")
    parser.add_argument("--max-kill", type=float, default=6.0)
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds for the run")
    parser.add_argument("--dir", help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    result = asyncio.run(campaign(args.rounds, args.seed, args.min_kill, args.max_kill,
                                  args.budget, args.dir, args.keep))
    return finish(report(result), result.failures)


if __name__ == "__main__":
    sys.exit(main())
