"""Soak: steady mixed traffic on every door for a long time, watching the hub's memory,
descriptors and log.

    python tests/campaigns/soak.py [--minutes 30] [--sample-every 10] [--seed S]
                                   [--rss-growth-mb N] [--dir DIR]

Flows, all at once and at fixed rates:

* core NATS: a publisher (100/s) on ``soak.core``; subscribers on NATS, NATS over
  WebSocket, MQTT (QoS 0) and SSE each count what they get;
* request/reply: a NATS service on ``soak.svc``, requests from NATS, WebSocket and HTTP
  (10/s each);
* JetStream: stream SOAK (``soak.js.>``, at most 20,000 messages) fed by nats-py (50/s,
  PubAcks), HTTP ``POST /v1/publish`` (10/s, 200 + PubAck) and MQTT QoS 1 (20/s, PUBACKs);
  a durable pull consumer fetches and acks everything;
* MQTT: paho QoS 0 (50/s) and QoS 1 (20/s) publishers; subscribers over TCP and over
  WebSocket (``/mqtt``), both at QoS 1;
* churn: every 5 s a short-lived client on each door (connect, one exchange, leave).

Every ``--sample-every`` seconds the hub's RSS (/proc/<pid>/status VmRSS), open
descriptors (/proc/<pid>/fd) and /varz connections are sampled.  The report gives start,
end, max and the least-squares slope per hour (over the whole run and over its second
half, after warm-up), the traffic of each flow, and every [ERR]/[WRN] line of the hub's
log (except the startup warning a ``no_tls`` websocket block always gives).

Failures (exit status 1): any such log line; a lost message on a flow that promises
delivery (JetStream acknowledged but never consumed, MQTT QoS 1 acknowledged but not
received by a QoS 1 subscriber); failed requests; RSS at the end more than
``--rss-growth-mb`` above the first sample after warm-up; descriptors at the end above
the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import queue
import random
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
from nats.js.api import AckPolicy, ConsumerConfig
from paho.mqtt.enums import CallbackAPIVersion

from campaigns.harness import (
    Hub,
    finish,
    mb,
    remove_workdir,
    slope_per_hour,
    table,
    workdir,
)

DEFAULT_SEED = 20241208
CONF = """
server_name: soak
http: "127.0.0.1:{http}"
mqtt {{ port: {mqtt} }}
websocket {{ port: {ws}, no_tls: true }}
jetstream {{ store_dir: "{store}" }}
"""
#: Seconds after the start before the memory baseline for the growth bound is taken:
#: imports, first connections, SQLite's page cache and the stream's index fill up first.
WARMUP = 20.0
#: Descriptors the hub may hold at the end, with every client gone, beyond those it held
#: before the first client: the stream's and consumers' SQLite handles opened on first use.
FD_SLACK = 4


async def _quiet(*_: Any) -> None:
    pass


async def connect(url: str) -> nats.NATS:
    return await nats.connect(url, error_cb=_quiet, disconnected_cb=_quiet,
                              reconnected_cb=_quiet, closed_cb=_quiet, connect_timeout=5)


@dataclass
class Flow:
    """One stream of messages: what was sent (or acknowledged) and who received what."""

    name: str
    sent: int = 0
    acked: set[bytes] = field(default_factory=set)
    received: dict[str, set[bytes]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    promised: tuple[str, ...] = ()  # receivers that must get every acknowledged message

    def got(self, who: str, data: bytes) -> None:
        self.received.setdefault(who, set()).add(data)


async def every(rate: float, stop: asyncio.Event):
    """Yield ``rate`` times a second (on a fixed schedule) until ``stop``."""
    loop = asyncio.get_running_loop()
    step, at = 1.0 / rate, loop.time()
    while not stop.is_set():
        yield
        at += step
        delay = at - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        elif delay < -1.0:
            at = loop.time()  # fell behind: do not burst to catch up


class PahoClient:
    """A paho client on its own thread: publishes with ``on_publish`` acknowledgements,
    and/or subscribes (messages handed to ``on_message``)."""

    def __init__(self, hub: Hub, cid: str, ws: bool = False, version: int = paho.MQTTv311,
                 on_message: Any = None) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                             transport="websockets" if ws else "tcp")
        if ws:
            self.c.ws_set_options(path="/mqtt")
        self.port = hub.ws_port if ws else hub.mqtt_port
        self.connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.lock = threading.Lock()
        self.by_mid: dict[int, bytes] = {}
        self.early: dict[int, Any] = {}
        self.acked: list[tuple[bytes, bool]] = []
        self.c.on_publish = self._on_publish
        if on_message is not None:
            self.c.on_message = lambda c, u, m: on_message(m)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        with self.lock:
            data = self.by_mid.pop(mid, None)
            if data is None:
                self.early[mid] = rc
                return
        self.acked.append((data, not getattr(rc, "is_failure", False)))

    def start(self) -> None:
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("no CONNACK")

    def publish(self, topic: str, data: bytes, qos: int) -> None:
        info = self.c.publish(topic, data, qos=qos)
        if qos == 0:
            return
        with self.lock:
            rc = self.early.pop(info.mid, None)
            if rc is None:
                self.by_mid[info.mid] = data
        if rc is not None:
            self.acked.append((data, not getattr(rc, "is_failure", False)))

    def subscribe(self, topic: str, qos: int) -> None:
        self.c.subscribe(topic, qos)

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    connections: int


@dataclass
class Result:
    idle: Sample
    samples: list[Sample]
    flows: list[Flow]
    log_problems: list[str]
    failures: list[str]
    requests: Counter
    churn: Counter
    minutes: float

    @property
    def ok(self) -> bool:
        return not self.failures


async def soak(hub: Hub, minutes: float, sample_every: float, rng: random.Random,
               out: Any) -> tuple[Sample, list[Sample], list[Flow], Counter, Counter]:
    idle_rss, idle_fds = hub.rss(), hub.fds()
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    core = Flow("core NATS → NATS, WebSocket, MQTT QoS 0, SSE")
    jsf = Flow("JetStream (NATS, HTTP, MQTT QoS 1 publishers) → pull consumer",
               promised=("pull consumer",))
    mq0 = Flow("MQTT QoS 0 → MQTT TCP, MQTT WebSocket, NATS")
    mq1 = Flow("MQTT QoS 1 → MQTT TCP (QoS 1), MQTT WebSocket (QoS 1), NATS",
               promised=("MQTT TCP", "MQTT WebSocket"))
    requests: Counter = Counter()
    churn: Counter = Counter()
    inbox: queue.Queue = queue.Queue()  # MQTT subscribers' messages, from paho threads

    # -- the stream and its consumer
    nc = await connect(hub.url)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name="SOAK", subjects=["soak.js.>"], max_msgs=20_000)
    await js.add_consumer("SOAK", ConsumerConfig(durable_name="SOAKPULL",
                                                 ack_policy=AckPolicy.EXPLICIT, ack_wait=30))

    # -- subscribers
    def on_core(who: str):
        async def cb(msg: Any) -> None:
            core.got(who, msg.data)
        return cb

    await nc.subscribe("soak.core", cb=on_core("NATS"))

    async def on_mqtt_nats(msg: Any) -> None:
        (mq0 if msg.subject.endswith("q0") else mq1).got("NATS", msg.data)

    await nc.subscribe("soak.mqtt.*", cb=on_mqtt_nats)

    async def on_svc(msg: Any) -> None:
        await msg.respond(b"re:" + msg.data)

    await nc.subscribe("soak.svc", cb=on_svc)
    await nc.flush()
    ws = await connect(hub.ws_url)
    await ws.subscribe("soak.core", cb=on_core("WebSocket"))
    await ws.flush()

    def mqtt_sub(who: str):
        def on_message(m: Any) -> None:
            inbox.put((who, m.topic, m.payload, m.qos))
        return on_message

    mtcp = PahoClient(hub, "soak-sub-tcp", on_message=mqtt_sub("MQTT TCP"))
    mws = PahoClient(hub, "soak-sub-ws", ws=True, on_message=mqtt_sub("MQTT WebSocket"))
    for c in (mtcp, mws):
        await asyncio.to_thread(c.start)
        c.subscribe("soak/mqtt/+", 1)
    mtcp.subscribe("soak/core", 0)
    mpub = PahoClient(hub, "soak-pub")
    await asyncio.to_thread(mpub.start)
    await asyncio.sleep(0.5)

    async def drain_mqtt() -> None:
        while not stop.is_set() or not inbox.empty():
            try:
                who, topic, data, qos = inbox.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.05)
                continue
            if topic == "soak/core":
                core.got("MQTT QoS 0", data)
            elif topic.endswith("q0"):
                mq0.got(who, data)
            else:
                mq1.got(who, data)
                if qos != 1:
                    mq1.errors[f"{who} got QoS {qos}"] += 1

    sse_open = asyncio.Event()

    async def sse() -> None:
        """Reads until cancelled, after the grace period that follows the stop."""
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=None) as http, \
                http.stream("GET", "/v1/subscribe/soak.core") as resp:
            sse_open.set()
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    doc = json.loads(line[5:])
                    core.got("SSE", doc["data"].encode())

    # -- publishers
    async def core_pub() -> None:
        i = 0
        async for _ in every(100, stop):
            await nc.publish("soak.core", b"core-%d" % i)
            core.sent += 1
            i += 1

    async def js_pub() -> None:
        i = 0
        async for _ in every(50, stop):
            data = b"js-nats-%d" % i
            i += 1
            jsf.sent += 1
            try:
                await js.publish("soak.js.nats", data)
                jsf.acked.add(data)
            except Exception as exc:  # noqa: BLE001 - counted
                jsf.errors[f"nats: {type(exc).__name__}"] += 1

    async def http_pub(http: httpx.AsyncClient) -> None:
        i = 0
        async for _ in every(10, stop):
            data = b"js-http-%d" % i
            i += 1
            jsf.sent += 1
            try:
                resp = await http.post("/v1/publish/soak.js.http", content=data)
                if resp.status_code == 200 and resp.json().get("seq"):
                    jsf.acked.add(data)
                else:
                    jsf.errors[f"http {resp.status_code}"] += 1
            except httpx.HTTPError as exc:
                jsf.errors[f"http: {type(exc).__name__}"] += 1

    async def mqtt_pub() -> None:
        i = 0
        async for _ in every(50, stop):
            mpub.publish("soak/mqtt/q0", b"q0-%d" % i, 0)
            mq0.sent += 1
            if i % 5 < 2:  # 20/s at QoS 1
                mpub.publish("soak/mqtt/q1", b"q1-%d" % i, 1)
                mq1.sent += 1
                mpub.publish("soak/js/mqtt", b"js-mqtt-%d" % i, 1)
                jsf.sent += 1
            i += 1

    async def requester(kind: str, http: httpx.AsyncClient) -> None:
        client = nc if kind == "NATS" else ws
        i = 0
        async for _ in every(10, stop):
            i += 1
            body = b"%s-%d" % (kind.encode(), i)
            try:
                if kind == "HTTP":
                    resp = await http.post("/v1/request/soak.svc", content=body)
                    ok = resp.status_code == 200 and resp.content == b"re:" + body
                else:
                    ok = (await client.request("soak.svc", body, timeout=5)).data == b"re:" + body
            except Exception as exc:  # noqa: BLE001 - counted
                requests[f"{kind} {type(exc).__name__}"] += 1
                continue
            requests[f"{kind} ok" if ok else f"{kind} wrong answer"] += 1

    async def pull() -> None:
        psub = await js.pull_subscribe_bind("SOAKPULL", "SOAK")
        while not stop.is_set():
            try:
                msgs = await psub.fetch(200, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for m in msgs:
                jsf.got("pull consumer", m.data)
                await m.ack()

    async def churner() -> None:
        async for _ in every(0.2, stop):
            for door in ("nats", "ws", "mqtt", "http"):
                try:
                    await churn_once(hub, door)
                    churn[f"{door} ok"] += 1
                except Exception as exc:  # noqa: BLE001 - counted
                    churn[f"{door} {type(exc).__name__}"] += 1

    async def sampler(samples: list[Sample], began: float) -> None:
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=5,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while True:
                try:
                    conns = (await http.get("/varz")).json()["connections"]
                except (httpx.HTTPError, ValueError, KeyError):
                    conns = -1
                samples.append(Sample(time.monotonic() - began, hub.rss(), hub.fds(), conns))
                if len(samples) % max(1, int(60 / sample_every)) == 0:
                    s = samples[-1]
                    out(f"  {s.t / 60:5.1f} min: RSS {mb(s.rss)} MB, {s.fds} fds, "
                        f"{s.connections} connections")
                await asyncio.sleep(sample_every)

    samples: list[Sample] = []
    began = time.monotonic()
    idle = Sample(0.0, idle_rss, idle_fds, 0)
    http = httpx.AsyncClient(base_url=hub.http_url, timeout=10)
    # every subscriber in place before the first message
    tasks.append(asyncio.create_task(sse()))
    await asyncio.wait_for(sse_open.wait(), 10)
    await asyncio.sleep(0.5)
    tasks += [asyncio.create_task(x) for x in (
        drain_mqtt(), core_pub(), js_pub(), http_pub(http), mqtt_pub(),
        requester("NATS", http), requester("WebSocket", http), requester("HTTP", http),
        pull(), churner())]
    sampling = asyncio.create_task(sampler(samples, began))
    await asyncio.sleep(minutes * 60)
    stop.set()
    sampling.cancel()
    # let deliveries in flight land, then take the last sample
    await asyncio.sleep(3)
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for data, ok in mpub.acked:
        if data.startswith(b"q1-") and ok:
            mq1.acked.add(data)
        elif data.startswith(b"js-mqtt-"):
            if ok:
                jsf.acked.add(data)
            else:
                jsf.errors["mqtt PUBACK failure"] += 1
    # everything the pull consumer may still owe
    psub = await js.pull_subscribe_bind("SOAKPULL", "SOAK")
    deadline = time.monotonic() + 20
    while not jsf.acked <= jsf.received.get("pull consumer", set()) and \
            time.monotonic() < deadline:
        with contextlib.suppress(nats.errors.TimeoutError):
            for m in await psub.fetch(500, timeout=1):
                jsf.got("pull consumer", m.data)
                await m.ack()
    await drain_inbox(inbox, core, mq0, mq1)
    samples.append(Sample(time.monotonic() - began, hub.rss(), hub.fds(),
                          (await varz(hub))["connections"]))
    await http.aclose()
    for c in (mtcp, mws, mpub):
        await asyncio.to_thread(c.stop)
    await ws.close()
    await nc.close()
    # with every client gone, the descriptors the soak's clients held are released
    await asyncio.sleep(2)
    samples.append(Sample(time.monotonic() - began, hub.rss(), hub.fds(),
                          (await varz(hub))["connections"]))
    return idle, samples, [core, jsf, mq0, mq1], requests, churn


async def drain_inbox(inbox: queue.Queue, core: Flow, mq0: Flow, mq1: Flow) -> None:
    await asyncio.sleep(1)
    while True:
        try:
            who, topic, data, _qos = inbox.get_nowait()
        except queue.Empty:
            return
        if topic == "soak/core":
            core.got("MQTT QoS 0", data)
        else:
            (mq0 if topic.endswith("q0") else mq1).got(who, data)


async def varz(hub: Hub) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http_url, timeout=5) as http:
        return (await http.get("/varz")).json()


async def churn_once(hub: Hub, door: str) -> None:
    """A short-lived client: connect, one exchange, leave."""
    if door in ("nats", "ws"):
        c = await connect(hub.url if door == "nats" else hub.ws_url)
        try:
            sub = await c.subscribe("soak.churn")
            await c.publish("soak.churn", b"x")
            await sub.next_msg(5)
        finally:
            await c.close()
    elif door == "mqtt":
        c = PahoClient(hub, f"soak-churn-{random.getrandbits(32)}")
        await asyncio.to_thread(c.start)
        await asyncio.to_thread(lambda: c.c.publish("soak/churn", b"x", qos=1).wait_for_publish(5))
        await asyncio.to_thread(c.stop)
    else:
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/connz")).status_code == 200


def growth_after_warmup(samples: list[Sample]) -> int:
    """RSS at the end minus RSS at the first sample after the warm-up (a third of the run
    when that is shorter)."""
    live = [x for x in samples if x.t >= min(WARMUP, samples[-1].t / 3)]
    return samples[-1].rss - live[0].rss


async def campaign(minutes: float = 30.0, sample_every: float = 10.0, seed: int = DEFAULT_SEED,
                   rss_growth_mb: float = 64.0, dir: str | None = None, keep: bool = False,
                   out: Any = print) -> Result:
    rng = random.Random(seed)
    random.seed(seed)
    base = workdir("soak", dir)
    hub = Hub.make(base, CONF)
    out(f"soak: {minutes:g} minutes, seed {seed}, work dir {base}")
    hub.start()
    failures: list[str] = []
    try:
        idle, samples, flows, requests, churn = await soak(hub, minutes, sample_every, rng, out)
    finally:
        rc = hub.stop()
    if rc != 0:
        failures.append(f"hub exit status {rc} on SIGTERM")
    problems = hub.problems()
    for line in problems:
        failures.append(f"hub log: {line}")
    for f in flows:
        for who in f.promised:
            missing = f.acked - f.received.get(who, set())
            if missing:
                failures.append(f"{f.name}: {who} never got {len(missing)} acknowledged "
                                f"messages, e.g. {sorted(missing)[:3]}")
        for err, n in f.errors.items():
            failures.append(f"{f.name}: {n} x {err}")
    for kind, n in requests.items():
        if not kind.endswith(" ok"):
            failures.append(f"requests: {n} x {kind}")
    for kind, n in churn.items():
        if not kind.endswith(" ok"):
            failures.append(f"churn clients: {n} x {kind}")
    grown = growth_after_warmup(samples)
    if grown > rss_growth_mb * (1 << 20):
        failures.append(f"RSS grew {mb(grown)} MB after warm-up (bound {rss_growth_mb:g} MB)")
    if samples[-1].fds > idle.fds + FD_SLACK:
        failures.append(f"descriptors: {samples[-1].fds} at the end with every client gone, "
                        f"{idle.fds} before the first client")
    result = Result(idle, samples, flows, problems, failures, requests, churn, minutes)
    if result.ok and not keep:
        remove_workdir(base)
    return result


def report(result: Result) -> str:
    s = result.samples
    half = [x for x in s if x.t >= s[-1].t / 2]
    # the last sample is taken with every client gone: the slopes are of the run itself
    run = s[:-1] if len(s) > 2 else s
    half = [x for x in half if x in run]

    def row(name: str, get: Any, fmt: Any) -> list[str]:
        vals = [get(x) for x in run]
        return [name, fmt(vals[0]), fmt(vals[-1]), fmt(max(vals)),
                fmt(slope_per_hour([(x.t, get(x)) for x in run])) + "/h",
                fmt(slope_per_hour([(x.t, get(x)) for x in half])) + "/h"]

    lines = [table(["hub", "start", "end", "max", "slope (whole run)", "slope (second half)"], [
        row("RSS MB", lambda x: x.rss, lambda v: mb(v)),
        row("open descriptors", lambda x: x.fds, lambda v: f"{v:.0f}" if float(v).is_integer()
            else f"{v:.1f}"),
        row("/varz connections", lambda x: x.connections,
            lambda v: f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"),
    ])]
    lines.append(f"\n{len(s)} samples over {s[-1].t / 60:.1f} minutes.  Before the first "
                 f"client: RSS {mb(result.idle.rss)} MB, {result.idle.fds} descriptors; with every "
                 f"client gone at the end: RSS {mb(s[-1].rss)} MB, {s[-1].fds} descriptors, "
                 f"{s[-1].connections} connections.\n")
    rows = []
    for f in result.flows:
        acked = f"{len(f.acked):,}" if f.acked else "-"
        for who, got in sorted(f.received.items()):
            missing = len(f.acked - got) if who in f.promised else max(f.sent - len(got), 0)
            rows.append([f.name, f"{f.sent:,}", acked, who, f"{len(got):,}", f"{missing:,}"])
    lines.append(table(["flow", "sent", "acknowledged", "receiver", "received", "missing"], rows))
    requests = ", ".join(f"{k} {v:,}" for k, v in sorted(result.requests.items()))
    churn = ", ".join(f"{k} {v:,}" for k, v in sorted(result.churn.items()))
    lines.append(f"\nRequests: {requests}.  Short-lived clients (churn): {churn}.")
    lines.append(f"\nHub log: {len(result.log_problems)} [ERR]/[WRN] lines"
                 + (":" if result.log_problems else "."))
    lines += [f"    {line}" for line in result.log_problems[:50]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rss-growth-mb", type=float, default=64.0,
                        help="largest RSS growth after warm-up that passes")
    parser.add_argument("--dir", help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    result = asyncio.run(campaign(args.minutes, args.sample_every, args.seed,
                                  args.rss_growth_mb, args.dir, args.keep))
    return finish(report(result), result.failures)


if __name__ == "__main__":
    sys.exit(main())
