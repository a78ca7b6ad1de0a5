"""JetStream consumers: the $JS.API consumer requests, delivery, acks and pull statuses.

The tests drive a server through nats-py, and each runs on the hub and on the reference
nats-server (``@pytest.mark.differential``).  The exact status messages a pull request
gets back are read from a raw socket and must match, byte for byte, on both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js import api
from nats.js.errors import NotFoundError
from servers import Launch, RawClient, ServerProcess
from servers import js_connect as connect


async def request(nc, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A raw $JS.API request; the parsed JSON answer (errors included)."""
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request(subject, payload, timeout=3)
    return json.loads(msg.data)


def numbers(info: api.ConsumerInfo) -> dict[str, Any]:
    return {
        "delivered": (info.delivered.consumer_seq, info.delivered.stream_seq),
        "ack_floor": (info.ack_floor.consumer_seq, info.ack_floor.stream_seq),
        "ack_pending": info.num_ack_pending,
        "redelivered": info.num_redelivered,
        "waiting": info.num_waiting,
        "pending": info.num_pending,
    }


async def fetch_all(sub, want: int, timeout: float = 1.0) -> list:
    """Fetch until ``want`` messages came or a fetch finds nothing more."""
    got: list = []
    while len(got) < want:
        try:
            got += await sub.fetch(want - len(got), timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            # nats-py raises the latter when a fetch ends on a timeout status
            break
    return got


async def nothing_more(sub, timeout: float = 0.4) -> bool:
    try:
        msgs = await sub.fetch(1, timeout=timeout)
    except nats.errors.TimeoutError:
        return True
    raise AssertionError(f"unexpected delivery: {[(m.data, m.metadata) for m in msgs]}")


async def settle(nc, msg, payload: bytes = b"+ACK") -> None:
    """Send an ack-protocol payload and wait for the server's empty confirmation."""
    await nc.request(msg.reply, payload, timeout=2)


async def publish_n(js, subject: str, n: int, fmt: str = "m{}") -> None:
    for i in range(1, n + 1):
        await js.publish(subject, fmt.format(i).encode())


# -- raw protocol: frames as the subscriber sees them ---------------------------------


@dataclass
class Frame:
    subject: str
    reply: str
    headers: bytes
    payload: bytes

    def key(self) -> tuple[str, str, bytes, bytes]:
        """Comparable across servers: the ack reply's timestamp token is masked."""
        reply = self.reply
        if reply.startswith("$JS.ACK."):
            tokens = reply.split(".")
            if len(tokens) >= 9:
                tokens[7] = "<ts>"
            reply = ".".join(tokens)
        return self.subject, reply, self.headers, self.payload


class RawPeer:
    """A hand-driven NATS connection that reads whole MSG/HMSG frames."""

    def __init__(self, raw: RawClient) -> None:
        self.raw = raw
        self.sids = 0

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        raw = await RawClient.open(
            port, {"verbose": False, "pedantic": False, "headers": True, "no_responders": True}
        )
        await raw.sync()
        return cls(raw)

    async def sub(self, subject: str, queue: str = "") -> None:
        self.sids += 1
        line = f"SUB {subject} {queue} {self.sids}" if queue else f"SUB {subject} {self.sids}"
        await self.raw.send(line.encode() + b"\r\n")
        await self.raw.sync()

    async def pub(self, subject: str, payload: bytes, reply: str = "") -> None:
        head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
        await self.raw.send(head.encode() + b"\r\n" + payload + b"\r\n")

    async def pull(self, stream: str, consumer: str, body: dict[str, Any], inbox: str) -> None:
        data = json.dumps(body).encode()
        await self.pub(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", data, inbox)

    def _parse(self) -> Frame | None:
        raw = self.raw
        while True:
            i = raw.buf.find(b"\r\n")
            if i < 0:
                return None
            line = raw.buf[:i]
            if line in (b"PING", b"PONG", b"+OK"):
                raw.buf = raw.buf[i + 2 :]
                if line == b"PING":
                    raw.writer.write(b"PONG\r\n")
                continue
            parts = line.split()
            assert parts and parts[0] in (b"MSG", b"HMSG"), line
            total = int(parts[-1])
            if len(raw.buf) < i + 2 + total + 2:
                return None
            body = raw.buf[i + 2 : i + 2 + total]
            raw.buf = raw.buf[i + 2 + total + 2 :]
            hlen = int(parts[-2]) if parts[0] == b"HMSG" else 0
            fixed = 5 if parts[0] == b"HMSG" else 4
            reply = parts[3].decode() if len(parts) == fixed + 1 else ""
            return Frame(parts[1].decode(), reply, body[:hlen], body[hlen:])

    async def frames(self, count: int = 1_000_000, timeout: float = 1.0) -> list[Frame]:
        """Up to ``count`` frames, waiting at most ``timeout`` in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[Frame] = []
        while len(out) < count:
            frame = self._parse()
            if frame is not None:
                out.append(frame)
                continue
            left = deadline - loop.time()
            if left <= 0 or not await self.raw._read_more(left):
                break
        return out

    async def close(self) -> None:
        await self.raw.close()


Scenario = Callable[[ServerProcess], Awaitable[Any]]


async def on_both(launch: Launch, scenario: Scenario) -> tuple[Any, Any]:
    """Run ``scenario`` on the reference nats-server and on the hub: (reference, hub)."""
    results: dict[str, Any] = {}
    for name in ("nats-server", "jetport"):
        server = launch.jetstream(target=name)
        try:
            results[name] = await scenario(server)
        finally:
            server.stop()
    return results["nats-server"], results["jetport"]


def status(code_line: str, *headers: tuple[str, str]) -> bytes:
    lines = [f"NATS/1.0 {code_line}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def pull_stream(server: ServerProcess, cfg: dict[str, Any], msgs: list[bytes] = ()):
    """Stream P (subjects p.>) with ``msgs`` on p.x and pull consumer C; (nc, js, peer)."""
    nc, js = await connect(server)
    await js.add_stream(name="P", subjects=["p.>"])
    for m in msgs:
        await js.publish("p.x", m)
    res = await request(nc, "$JS.API.CONSUMER.CREATE.P.C",
                        {"stream_name": "P", "config": {"name": "C", **cfg}})
    assert "error" not in res, res
    peer = await RawPeer.open(server.port)
    await peer.sub("inbox.>")
    return nc, js, peer


# -- create, info, names, list, delete ------------------------------------------------


@pytest.mark.differential
async def test_consumer_crud(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="S", subjects=["s.>"])
    await publish_n(js, "s.a", 3)
    info = await js.add_consumer("S", durable_name="one", ack_policy=api.AckPolicy.EXPLICIT)
    assert info.name == "one" and info.stream_name == "S" and info.num_pending == 3
    assert info.config.durable_name == "one"
    assert info.config.ack_wait == 30 and info.config.max_deliver == -1
    assert info.config.max_ack_pending == 1000 and info.config.max_waiting == 512
    await js.add_consumer("S", durable_name="two", deliver_subject="push.two")
    info = await js.consumer_info("S", "one")
    assert info.name == "one" and info.delivered.consumer_seq == 0
    names = await request(nc, "$JS.API.CONSUMER.NAMES.S", {})
    assert names["type"] == "io.nats.jetstream.api.v1.consumer_names_response"
    assert sorted(names["consumers"]) == ["one", "two"] and names["total"] == 2
    listed = await request(nc, "$JS.API.CONSUMER.LIST.S", {})
    assert listed["type"] == "io.nats.jetstream.api.v1.consumer_list_response"
    assert listed["total"] == 2
    assert sorted(c["name"] for c in listed["consumers"]) == ["one", "two"]
    assert all(c["stream_name"] == "S" for c in listed["consumers"])
    assert sorted(c.name for c in await js.consumers_info("S")) == ["one", "two"]
    stream = await js.stream_info("S")
    assert stream.state.consumer_count == 2
    assert await js.delete_consumer("S", "one")
    with pytest.raises(NotFoundError) as err:
        await js.consumer_info("S", "one")
    assert err.value.err_code == 10014
    with pytest.raises(NotFoundError) as err:
        await js.delete_consumer("S", "one")
    assert err.value.err_code == 10014
    names = await request(nc, "$JS.API.CONSUMER.NAMES.S", {})
    assert names["consumers"] == ["two"]
    res = await request(nc, "$JS.API.CONSUMER.INFO.NOPE.two")
    assert res["error"]["err_code"] == 10059
    await nc.close()


def outcome(res: dict[str, Any]) -> tuple[str, Any]:
    """("ok", consumer name) or ("error", err_code) of a consumer create answer."""
    if "error" in res:
        return "error", res["error"].get("err_code")
    return "ok", res.get("name")


@pytest.mark.differential
async def test_create_subjects_named_filtered_and_legacy(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="S", subjects=["s.>"])
    base = "$JS.API.CONSUMER"
    res = await request(nc, f"{base}.CREATE.S.named",
                        {"stream_name": "S", "config": {"name": "named"}})
    assert res["type"] == "io.nats.jetstream.api.v1.consumer_create_response"
    assert res["name"] == "named" and "durable_name" not in res["config"]
    assert res["config"]["inactive_threshold"] == 5_000_000_000
    res = await request(nc, f"{base}.CREATE.S.filt.s.a",
                        {"stream_name": "S", "config": {"name": "filt", "filter_subject": "s.a"}})
    assert res["name"] == "filt" and res["config"]["filter_subject"] == "s.a"
    res = await request(nc, f"{base}.DURABLE.CREATE.S.legacy",
                        {"stream_name": "S", "config": {"durable_name": "legacy"}})
    assert res["name"] == "legacy" and res["config"]["durable_name"] == "legacy"
    assert "inactive_threshold" not in res["config"]
    res = await request(nc, f"{base}.CREATE.S",
                        {"stream_name": "S", "config": {"ack_policy": "explicit"}})
    ephemeral = res["name"]
    assert len(ephemeral) >= 8
    names = await request(nc, f"{base}.NAMES.S", {})
    assert sorted(names["consumers"]) == sorted(["named", "filt", "legacy", ephemeral])

    cases = {
        # The name in the subject wins over a different config name ...
        "name differs": (f"{base}.CREATE.S.x", {"name": "y"}),
        # ... but not over a different durable name.
        "durable differs (legacy)": (f"{base}.DURABLE.CREATE.S.u", {"durable_name": "w"}),
        "durable differs": (f"{base}.CREATE.S.u", {"durable_name": "w"}),
        "durable on ephemeral subject": (f"{base}.CREATE.S", {"durable_name": "n2"}),
        "filter differs": (f"{base}.CREATE.S.bad.s.a", {"name": "bad", "filter_subject": "s.b"}),
        "filters on filtered subject": (f"{base}.CREATE.S.c.s.a",
                                        {"name": "c", "filter_subjects": ["s.a"]}),
        "missing stream": (f"{base}.CREATE.NOPE.x", {"name": "x"}),
    }
    got = {}
    for label, (subject, cfg) in cases.items():
        stream = "NOPE" if ".NOPE." in subject else "S"
        got[label] = outcome(await request(nc, subject, {"stream_name": stream, "config": cfg}))
    got["stream name differs"] = outcome(
        await request(nc, f"{base}.CREATE.S", {"stream_name": "T", "config": {}}))
    assert got == {
        "name differs": ("ok", "x"),
        "durable differs (legacy)": ("error", 10017),
        "durable differs": ("error", 10017),
        "durable on ephemeral subject": ("error", 10020),
        "filter differs": ("error", 10131),
        "filters on filtered subject": ("error", 10137),
        "missing stream": ("error", 10059),
        "stream name differs": ("error", 10056),
    }
    info = await js.consumer_info("S", "x")
    assert info.config.name == "x"
    await nc.close()


@pytest.mark.differential
async def test_create_and_update_actions(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="S", subjects=["s.>"])
    subject = "$JS.API.CONSUMER.CREATE.S.d"
    cfg = {"durable_name": "d", "ack_policy": "explicit"}
    res = await request(nc, subject, {"stream_name": "S", "config": cfg, "action": "create"})
    assert res["name"] == "d"
    res = await request(nc, subject, {"stream_name": "S", "config": cfg, "action": "create"})
    assert res["name"] == "d", res
    changed = {**cfg, "description": "changed"}
    res = await request(nc, subject, {"stream_name": "S", "config": changed, "action": "create"})
    assert res["error"] == {"code": 400, "err_code": 10148,
                            "description": "consumer already exists"}
    res = await request(nc, subject, {"stream_name": "S", "config": changed, "action": "update"})
    assert res["config"]["description"] == "changed"
    res = await request(nc, subject, {"stream_name": "S", "config": {**cfg, "ack_policy": "none"},
                                      "action": "update"})
    assert res["error"]["err_code"] == 10012
    res = await request(nc, "$JS.API.CONSUMER.CREATE.S.missing",
                        {"stream_name": "S", "config": {"durable_name": "missing"},
                         "action": "update"})
    assert res["error"] == {"code": 400, "err_code": 10149,
                            "description": "consumer does not exist"}
    info = await js.consumer_info("S", "d")
    assert info.config.description == "changed"
    names = await request(nc, "$JS.API.CONSUMER.NAMES.S", {})
    assert names["consumers"] == ["d"]
    await nc.close()


@pytest.mark.differential
async def test_filter_subject_and_filter_subjects(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="F", subjects=["f.>"])
    for subject in ["f.a", "f.b", "f.c", "f.a", "f.c", "f.b"]:
        await js.publish(subject, subject.encode())
    one = await js.add_consumer("F", durable_name="one", filter_subject="f.a")
    assert one.num_pending == 2
    many = await js.add_consumer("F", durable_name="many", filter_subjects=["f.a", "f.c"])
    assert many.num_pending == 4 and many.config.filter_subjects == ["f.a", "f.c"]
    sub = await js.pull_subscribe_bind("one", "F")
    got = await fetch_all(sub, 10, timeout=0.5)
    assert [(m.subject, m.metadata.sequence.stream) for m in got] == [("f.a", 1), ("f.a", 4)]
    sub = await js.pull_subscribe_bind("many", "F")
    got = await fetch_all(sub, 10, timeout=0.5)
    assert [m.metadata.sequence.stream for m in got] == [1, 3, 4, 5]
    assert [m.metadata.sequence.consumer for m in got] == [1, 2, 3, 4]
    await js.publish("f.c", b"late")
    await js.publish("f.b", b"other")
    got = await fetch_all(sub, 1, timeout=1)
    assert [(m.subject, m.data) for m in got] == [("f.c", b"late")]
    info = await js.consumer_info("F", "many")
    assert info.num_pending == 0 and info.delivered.stream_seq == 7
    res = await request(nc, "$JS.API.CONSUMER.CREATE.F.both", {"stream_name": "F", "config": {
        "name": "both", "filter_subject": "f.a", "filter_subjects": ["f.b"]}})
    assert "error" in res
    res = await request(nc, "$JS.API.CONSUMER.CREATE.F.dup", {"stream_name": "F", "config": {
        "name": "dup", "filter_subjects": ["f.>", "f.a"]}})
    assert "error" in res
    await nc.close()


@pytest.mark.differential
async def test_metadata_round_trip(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="M", subjects=["m"])
    meta = {"owner": "team-a", "purpose": "billing", "empty": ""}
    info = await js.add_consumer("M", durable_name="meta", metadata=meta)
    assert {k: info.config.metadata.get(k) for k in meta} == meta
    info = await js.consumer_info("M", "meta")
    assert {k: info.config.metadata.get(k) for k in meta} == meta
    res = await request(nc, "$JS.API.CONSUMER.CREATE.M.meta", {"stream_name": "M", "config": {
        "durable_name": "meta", "ack_policy": "explicit", "metadata": {"owner": "team-b"}},
        "action": "update"})
    assert res["config"]["metadata"]["owner"] == "team-b", res
    assert "purpose" not in res["config"]["metadata"]
    await nc.close()


@pytest.mark.differential
async def test_ephemeral_removed_after_inactive_threshold(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="E", subjects=["e"])
    res = await request(nc, "$JS.API.CONSUMER.CREATE.E", {"stream_name": "E", "config": {
        "ack_policy": "explicit", "inactive_threshold": 1_000_000_000}})
    name = res["name"]
    assert res["config"]["inactive_threshold"] == 1_000_000_000
    await js.add_consumer("E", durable_name="stays")
    start = time.monotonic()
    assert name in (await request(nc, "$JS.API.CONSUMER.NAMES.E", {}))["consumers"]
    while time.monotonic() - start < 6:
        names = (await request(nc, "$JS.API.CONSUMER.NAMES.E", {}))["consumers"] or []
        if name not in names:
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - start
    assert name not in names, "ephemeral consumer still there after 6 s"
    assert elapsed >= 0.8
    assert names == ["stays"]
    with pytest.raises(NotFoundError):
        await js.consumer_info("E", name)
    await nc.close()


# -- deliver and replay policies ------------------------------------------------------


@pytest.mark.differential
async def test_deliver_policies(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="D", subjects=["d.>"])
    for subject in ["d.a", "d.b", "d.a"]:
        await js.publish(subject, b"x")
    await asyncio.sleep(0.2)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await js.publish("d.b", b"x")  # 4
    await js.publish("d.a", b"x")  # 5
    DP = api.DeliverPolicy
    configs = {
        "all": {"deliver_policy": DP.ALL},
        "last": {"deliver_policy": DP.LAST},
        "new": {"deliver_policy": DP.NEW},
        "seq": {"deliver_policy": DP.BY_START_SEQUENCE, "opt_start_seq": 3},
        "time": {"deliver_policy": DP.BY_START_TIME, "opt_start_time": middle},
        "lps": {"deliver_policy": DP.LAST_PER_SUBJECT, "filter_subject": "d.*"},
        "lps_a": {"deliver_policy": DP.LAST_PER_SUBJECT, "filter_subject": "d.a"},
    }
    pending = {}
    for name, cfg in configs.items():
        info = await js.add_consumer("D", durable_name=name, ack_policy="none", **cfg)
        pending[name] = info.num_pending
    await js.publish("d.c", b"x")  # 6
    await js.publish("d.a", b"x")  # 7
    got = {}
    for name in configs:
        sub = await js.pull_subscribe_bind(name, "D")
        seqs = [m.metadata.sequence.stream for m in await fetch_all(sub, 10, timeout=0.5)]
        got[name] = (pending[name], seqs)
    # name: (num_pending right after create, stream sequences delivered)
    assert got == {
        "all": (5, [1, 2, 3, 4, 5, 6, 7]),
        "last": (1, [5, 6, 7]),
        "new": (0, [6, 7]),
        "seq": (3, [3, 4, 5, 6, 7]),
        "time": (2, [4, 5, 6, 7]),
        "lps": (2, [4, 5, 6, 7]),
        "lps_a": (1, [5, 7]),
    }
    res = await request(nc, "$JS.API.CONSUMER.CREATE.D.bad", {"stream_name": "D", "config": {
        "name": "bad", "deliver_policy": "last_per_subject"}})
    assert res["error"]["err_code"] == 10094
    res = await request(nc, "$JS.API.CONSUMER.CREATE.D.bad", {"stream_name": "D", "config": {
        "name": "bad", "deliver_policy": "by_start_sequence"}})
    assert "error" in res
    await nc.close()


async def _arrival_gaps(nc, js, stream: str, replay: api.ReplayPolicy) -> list[float]:
    times: list[float] = []
    done = asyncio.Event()

    async def cb(msg) -> None:
        times.append(time.monotonic())
        if len(times) == 3:
            done.set()

    inbox = f"replay.{replay.value}"
    await nc.subscribe(inbox, cb=cb)
    await js.add_consumer(stream, durable_name=f"r_{replay.value}", deliver_subject=inbox,
                          replay_policy=replay, ack_policy="none")
    await asyncio.wait_for(done.wait(), 5)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.differential
async def test_replay_original_keeps_gaps_instant_does_not(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="RP", subjects=["rp"])
    for i in range(3):
        if i:
            await asyncio.sleep(0.3)
        await js.publish("rp", b"%d" % i)
    gaps = await _arrival_gaps(nc, js, "RP", api.ReplayPolicy.ORIGINAL)
    assert all(0.2 <= g <= 0.5 for g in gaps), gaps
    gaps = await _arrival_gaps(nc, js, "RP", api.ReplayPolicy.INSTANT)
    assert all(g < 0.1 for g in gaps), gaps
    await nc.close()


# -- ack policies and acks ------------------------------------------------------------


@pytest.mark.differential
async def test_ack_none(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="A", subjects=["a"])
    await publish_n(js, "a", 3)
    sub = await js.pull_subscribe("a", durable="none", config=api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE, ack_wait=0.3))
    got = await fetch_all(sub, 2)
    assert [m.data for m in got] == [b"m1", b"m2"]
    info = await js.consumer_info("A", "none")
    assert numbers(info) == {"delivered": (2, 2), "ack_floor": (2, 2), "ack_pending": 0,
                             "redelivered": 0, "waiting": 0, "pending": 1}
    await asyncio.sleep(0.5)
    got = await fetch_all(sub, 5, timeout=0.5)
    assert [m.data for m in got] == [b"m3"]
    assert await nothing_more(sub)
    info = await js.consumer_info("A", "none")
    assert info.ack_floor.stream_seq == 3 and info.num_ack_pending == 0
    await nc.close()


@pytest.mark.differential
async def test_ack_all_acks_everything_below(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="A", subjects=["a"])
    await publish_n(js, "a", 8)
    # ack_wait well above the time the fetches below take, so one redelivery is seen
    sub = await js.pull_subscribe("a", durable="all", config=api.ConsumerConfig(
        ack_policy=api.AckPolicy.ALL, ack_wait=2))
    got = await fetch_all(sub, 8)
    assert len(got) == 8
    await got[4].ack_sync()
    info = await js.consumer_info("A", "all")
    assert numbers(info) == {"delivered": (8, 8), "ack_floor": (5, 5), "ack_pending": 3,
                             "redelivered": 0, "waiting": 0, "pending": 0}
    await asyncio.sleep(2.2)
    again = await fetch_all(sub, 8, timeout=0.5)
    assert [m.data for m in again] == [b"m6", b"m7", b"m8"]
    assert all(m.metadata.num_delivered == 2 for m in again)
    await again[-1].ack_sync()
    info = await js.consumer_info("A", "all")
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 8
    await nc.close()


@pytest.mark.differential
async def test_ack_explicit_floor(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="A", subjects=["a"])
    await publish_n(js, "a", 3)
    sub = await js.pull_subscribe("a", durable="exp")
    got = await fetch_all(sub, 3)
    await got[1].ack_sync()
    info = await js.consumer_info("A", "exp")
    assert info.ack_floor.stream_seq == 0 and info.num_ack_pending == 2
    await got[0].ack_sync()
    info = await js.consumer_info("A", "exp")
    assert info.ack_floor.stream_seq == 2 and info.ack_floor.consumer_seq == 2
    assert info.num_ack_pending == 1
    await got[2].ack_sync()
    info = await js.consumer_info("A", "exp")
    assert info.ack_floor.stream_seq == 3 and info.num_ack_pending == 0
    await nc.close()


@pytest.mark.differential
async def test_ack_wait_redelivery_and_max_deliver(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="W", subjects=["w"])
    await js.publish("w", b"x")
    sub = await js.pull_subscribe("w", durable="w", config=api.ConsumerConfig(
        ack_wait=0.3, max_deliver=3))
    seen = []
    for _ in range(3):
        msg = (await sub.fetch(1, timeout=1.5))[0]
        seen.append((msg.metadata.num_delivered, msg.metadata.sequence.consumer))
    assert seen == [(1, 1), (2, 2), (3, 3)]
    await asyncio.sleep(0.5)
    assert await nothing_more(sub, 0.5)
    info = await js.consumer_info("W", "w")
    assert info.delivered.consumer_seq == 3 and info.num_ack_pending == 0
    await nc.close()


@pytest.mark.differential
async def test_backoff_controls_redelivery_delays(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="B", subjects=["b"])
    times: list[tuple[int, float]] = []

    async def cb(msg) -> None:
        times.append((msg.metadata.num_delivered, time.monotonic()))

    await nc.subscribe("bo.inbox", cb=cb)
    info = await js.add_consumer("B", durable_name="bo", deliver_subject="bo.inbox",
                                 backoff=[0.2, 0.8], max_deliver=4)
    assert info.config.backoff == [0.2, 0.8] and info.config.ack_wait == 0.2
    await js.publish("b", b"x")
    deadline = time.monotonic() + 4
    while len(times) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [n for n, _ in times] == [1, 2, 3, 4]
    gaps = [b - a for (_, a), (_, b) in zip(times, times[1:], strict=False)]
    assert 0.15 <= gaps[0] <= 0.5, gaps
    assert 0.7 <= gaps[1] <= 1.2, gaps
    assert 0.7 <= gaps[2] <= 1.2, gaps
    backoff = [100_000_000, 200_000_000]
    res = await request(nc, "$JS.API.CONSUMER.CREATE.B.ok", {"stream_name": "B", "config": {
        "durable_name": "ok", "backoff": backoff, "max_deliver": 2}})
    assert res.get("config", {}).get("ack_wait") == 100_000_000, res
    res = await request(nc, "$JS.API.CONSUMER.CREATE.B.bad", {"stream_name": "B", "config": {
        "durable_name": "bad", "backoff": backoff, "max_deliver": 1}})
    assert res.get("error", {}).get("err_code") == 10116, res
    await nc.close()


@pytest.mark.differential
async def test_nak_and_nak_with_delay(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="N", subjects=["n"])
    await js.publish("n", b"x")
    sub = await js.pull_subscribe("n", durable="n", config=api.ConsumerConfig(ack_wait=5))
    msg = (await sub.fetch(1, timeout=1))[0]
    await settle(nc, msg, b"-NAK")
    msg = (await sub.fetch(1, timeout=1))[0]
    assert msg.metadata.num_delivered == 2
    start = time.monotonic()
    await msg.nak(delay=0.6)
    assert await nothing_more(sub, 0.3)
    msg = (await sub.fetch(1, timeout=2))[0]
    assert msg.metadata.num_delivered == 3
    assert 0.5 <= time.monotonic() - start <= 1.5
    # The same through a raw ack payload.
    await nc.publish(msg.reply, b'-NAK {"delay": 400000000}')
    start = time.monotonic()
    msg = (await sub.fetch(1, timeout=2))[0]
    assert msg.metadata.num_delivered == 4
    assert 0.3 <= time.monotonic() - start <= 1.2
    await msg.ack_sync()
    info = await js.consumer_info("N", "n")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0
    await nc.close()


@pytest.mark.differential
async def test_in_progress_extends_deadline(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="I", subjects=["i"])
    await js.publish("i", b"x")
    sub = await js.pull_subscribe("i", durable="i", config=api.ConsumerConfig(ack_wait=0.5))
    msg = (await sub.fetch(1, timeout=1))[0]
    for _ in range(4):
        await asyncio.sleep(0.25)
        await msg.in_progress()
    # 1 s after delivery, twice ack_wait, and still not redelivered.
    assert await nothing_more(sub, 0.3)
    again = (await sub.fetch(1, timeout=1.5))[0]
    assert again.metadata.num_delivered == 2
    await nc.close()


@pytest.mark.differential
async def test_term_stops_redelivery(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="T", subjects=["t"])
    await publish_n(js, "t", 2)
    sub = await js.pull_subscribe("t", durable="t", config=api.ConsumerConfig(ack_wait=0.3))
    msgs = await fetch_all(sub, 2)
    await msgs[0].term()
    await msgs[1].ack()
    await asyncio.sleep(0.5)
    assert await nothing_more(sub)
    info = await js.consumer_info("T", "t")
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 2
    await nc.close()


@pytest.mark.differential(compare=True)
async def test_ack_next_and_ack_ack(launch: Launch) -> None:
    async def scenario(server: ServerProcess):
        nc, js, peer = await pull_stream(server, {"ack_policy": "explicit"},
                                         [b"one", b"two", b"three"])
        await peer.pull("P", "C", {"batch": 1}, "inbox.first")
        first = await peer.frames(1)
        await peer.pub(first[0].reply, b"+NXT", "inbox.next")
        second = await peer.frames(1)
        await peer.pub(second[0].reply, b'+NXT {"batch":1}', "inbox.next2")
        third = await peer.frames(1)
        await peer.pub(third[0].reply, b"+ACK", "inbox.ackack")
        ackack = await peer.frames(1)
        await peer.pub(third[0].reply, b"", "inbox.again")
        again = await peer.frames(1)
        info = await js.consumer_info("P", "C")
        await peer.close()
        await nc.close()
        return ([f.key() for f in first + second + third + ackack + again],
                numbers(info))

    ref, got = await on_both(launch, scenario)
    expected = (
        [("p.x", "$JS.ACK.P.C.1.1.1.<ts>.2", b"", b"one"),
         ("p.x", "$JS.ACK.P.C.1.2.2.<ts>.1", b"", b"two"),
         ("p.x", "$JS.ACK.P.C.1.3.3.<ts>.0", b"", b"three"),
         ("inbox.ackack", "", b"", b""),
         ("inbox.again", "", b"", b"")],
        {"delivered": (3, 3), "ack_floor": (3, 3), "ack_pending": 0, "redelivered": 0,
         "waiting": 0, "pending": 0},
    )
    assert ref == expected
    assert got == expected


@pytest.mark.differential
async def test_ack_sync_gets_ack_ack(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="AA", subjects=["aa"])
    await js.publish("aa", b"x")
    sub = await js.pull_subscribe("aa", durable="aa")
    msg = (await sub.fetch(1, timeout=1))[0]
    await msg.ack_sync(timeout=2)
    info = await js.consumer_info("AA", "aa")
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 1
    await nc.close()


# -- delivery limits ------------------------------------------------------------------


@pytest.mark.differential
async def test_max_ack_pending(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="MP", subjects=["mp"])
    await publish_n(js, "mp", 10)
    sub = await js.pull_subscribe("mp", durable="mp", config=api.ConsumerConfig(
        max_ack_pending=3))
    first = await fetch_all(sub, 10, timeout=0.5)
    assert [m.data for m in first] == [b"m1", b"m2", b"m3"]
    assert await nothing_more(sub)
    info = await js.consumer_info("MP", "mp")
    assert info.num_ack_pending == 3 and info.num_pending == 7
    await first[1].ack_sync()
    more = await fetch_all(sub, 10, timeout=0.5)
    assert [m.data for m in more] == [b"m4"]
    for m in [first[0], first[2], more[0]]:
        await m.ack_sync()
    more = await fetch_all(sub, 10, timeout=0.5)
    assert [m.data for m in more] == [b"m5", b"m6", b"m7"]
    await nc.close()


@pytest.mark.differential
async def test_max_ack_pending_push(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="MQ", subjects=["mq"])
    await publish_n(js, "mq", 6)
    got: list = []

    async def cb(msg) -> None:
        got.append(msg)

    await nc.subscribe("mq.inbox", cb=cb)
    await js.add_consumer("MQ", durable_name="mq", deliver_subject="mq.inbox",
                          max_ack_pending=2)
    await asyncio.sleep(0.4)
    assert [m.data for m in got] == [b"m1", b"m2"]
    await got[0].ack()
    await asyncio.sleep(0.3)
    assert [m.data for m in got] == [b"m1", b"m2", b"m3"]
    await nc.close()


@pytest.mark.differential(compare=True)
async def test_headers_only(launch: Launch) -> None:
    async def scenario(server: ServerProcess):
        nc, js, peer = await pull_stream(server, {"ack_policy": "none", "headers_only": True})
        await js.publish("p.x", b"hello", headers={"X-A": "1"})
        await js.publish("p.x", b"")
        await peer.pull("P", "C", {"batch": 2}, "inbox.h")
        frames = await peer.frames(2)
        await peer.close()
        await nc.close()
        return [f.key() for f in frames]

    ref, got = await on_both(launch, scenario)
    expected = [
        ("p.x", "$JS.ACK.P.C.1.1.1.<ts>.1", b"NATS/1.0\r\nX-A: 1\r\nNats-Msg-Size: 5\r\n\r\n", b""),
        ("p.x", "$JS.ACK.P.C.1.2.2.<ts>.0", b"NATS/1.0\r\nNats-Msg-Size: 0\r\n\r\n", b""),
    ]
    assert ref == expected
    assert got == expected


@pytest.mark.differential
async def test_headers_only_with_nats_py(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="HO", subjects=["ho"])
    await js.publish("ho", b"x" * 1234)
    sub = await js.pull_subscribe("ho", durable="ho", config=api.ConsumerConfig(
        headers_only=True))
    msg = (await sub.fetch(1, timeout=1))[0]
    assert msg.data == b"" and msg.headers == {"Nats-Msg-Size": "1234"}
    info = await js.consumer_info("HO", "ho")
    assert info.config.headers_only is True
    await nc.close()


@pytest.mark.differential
async def test_rate_limit_and_sample_freq(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="RL", subjects=["rl.>"], max_msg_size=2048)

    async def spread(name: str, **cfg) -> tuple[api.ConsumerInfo, float]:
        times: list[float] = []
        done = asyncio.Event()

        async def cb(msg) -> None:
            times.append(time.monotonic())
            if len(times) == 10:
                done.set()

        await nc.subscribe(f"in.{name}", cb=cb)
        for _ in range(10):
            await js.publish(f"rl.{name}", b"x" * 1000)
        info = await js.add_consumer("RL", durable_name=name, deliver_subject=f"in.{name}",
                                     filter_subject=f"rl.{name}", ack_policy="none", **cfg)
        await asyncio.wait_for(done.wait(), 5)
        return info, times[-1] - times[0]

    info, limited = await spread("slow", rate_limit_bps=80_000, sample_freq="50%")
    assert info.config.rate_limit_bps == 80_000 and info.config.sample_freq == "50%"
    info, instant = await spread("fast")
    assert 0.5 <= limited <= 2.5, limited
    assert instant < 0.3, instant
    res = await request(nc, "$JS.API.CONSUMER.CREATE.RL.pull", {"stream_name": "RL", "config": {
        "durable_name": "pull", "rate_limit_bps": 1000}})
    assert "error" in res
    await nc.close()


# -- pull request statuses, byte for byte against nats-server -------------------------


async def _status_test(server: ServerProcess, cfg: dict[str, Any], msgs: list[bytes],
                       steps: Callable[[Any, RawPeer], Awaitable[list[Frame]]],
                       expected: list) -> None:
    nc, js, peer = await pull_stream(server, cfg, msgs)
    frames = await steps(js, peer)
    await peer.close()
    await nc.close()
    assert [f.key() for f in frames] == expected


async def pending(js, n: int) -> None:
    """Wait until consumer C counts ``n`` pending: nats-server signals it after the PubAck."""
    for _ in range(100):
        if (await js.consumer_info("P", "C")).num_pending == n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"consumer C never had {n} pending")


@pytest.mark.differential
async def test_pull_no_wait_nothing_is_404(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 1, "no_wait": True}, "inbox.a")
        out = await peer.frames(1)
        await js.publish("p.x", b"m")
        await pending(js, 1)
        await peer.pull("P", "C", {"batch": 3, "no_wait": True}, "inbox.b")
        return out + await peer.frames(2)

    await _status_test(js_hub, {"ack_policy": "explicit"}, [], steps, [
        ("inbox.a", "", status("404 No Messages"), b""),
        ("p.x", "$JS.ACK.P.C.1.1.1.<ts>.0", b"", b"m"),
        ("inbox.b", "", status("404 No Messages"), b""),
    ])


@pytest.mark.differential
async def test_pull_expires_is_408_with_pending_headers(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 2, "expires": 300_000_000}, "inbox.a")
        out = await peer.frames(1, timeout=1.5)
        await peer.pull("P", "C", {"batch": 5, "expires": 300_000_000}, "inbox.b")
        await asyncio.sleep(0.05)
        await js.publish("p.x", b"m1")
        out += await peer.frames(1)
        await js.publish("p.x", b"m2")
        return out + await peer.frames(2, timeout=1.5)

    await _status_test(js_hub, {"ack_policy": "explicit"}, [], steps, [
        ("inbox.a", "", status("408 Request Timeout", ("Nats-Pending-Messages", "2"),
                               ("Nats-Pending-Bytes", "0")), b""),
        ("p.x", "$JS.ACK.P.C.1.1.1.<ts>.0", b"", b"m1"),
        ("p.x", "$JS.ACK.P.C.1.2.2.<ts>.0", b"", b"m2"),
        ("inbox.b", "", status("408 Request Timeout", ("Nats-Pending-Messages", "3"),
                               ("Nats-Pending-Bytes", "0")), b""),
    ])


@pytest.mark.differential
async def test_pull_no_wait_with_expires_waits_for_expiry(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        start = time.monotonic()
        await peer.pull("P", "C", {"batch": 1, "no_wait": True, "expires": 500_000_000},
                        "inbox.a")
        out = await peer.frames(1, timeout=2)
        waited = time.monotonic() - start >= 0.4
        return [*out, Frame("<answered after expires>", str(waited), b"", b"")]

    await _status_test(js_hub, {"ack_policy": "explicit"}, [], steps, [
        ("inbox.a", "", status("408 Request Timeout", ("Nats-Pending-Messages", "1"),
                               ("Nats-Pending-Bytes", "0")), b""),
        ("<answered after expires>", "True", b"", b""),
    ])


@pytest.mark.differential
async def test_pull_max_bytes_exceeded_is_409(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 5, "max_bytes": 50, "expires": 500_000_000},
                        "inbox.a")
        out = await peer.frames(1)
        await peer.pull("P", "C", {"batch": 5, "max_bytes": 50, "no_wait": True}, "inbox.b")
        out += await peer.frames(1)
        await peer.pull("P", "C", {"batch": 5, "max_bytes": 4096, "no_wait": True}, "inbox.c")
        return out + await peer.frames(2)

    big = status("409 Message Size Exceeds MaxBytes", ("Nats-Pending-Messages", "5"),
                 ("Nats-Pending-Bytes", "50"))
    await _status_test(js_hub, {"ack_policy": "explicit"}, [b"x" * 100], steps, [
        ("inbox.a", "", big, b""),
        ("inbox.b", "", big, b""),
        ("p.x", "$JS.ACK.P.C.1.1.1.<ts>.0", b"", b"x" * 100),
        ("inbox.c", "", status("404 No Messages"), b""),
    ])


@pytest.mark.differential
async def test_pull_idle_heartbeat(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 1}, "inbox.m")
        out = await peer.frames(1)
        await peer.pull("P", "C", {"batch": 1, "expires": 1_000_000_000,
                                   "idle_heartbeat": 400_000_000}, "inbox.hb")
        hb = await peer.frames(1, timeout=0.7)
        await js.publish("p.x", b"after")
        return out + hb + await peer.frames(1)

    await _status_test(js_hub, {"ack_policy": "explicit"}, [b"first"], steps, [
        ("p.x", "$JS.ACK.P.C.1.1.1.<ts>.0", b"", b"first"),
        ("inbox.hb", "", status("100 Idle Heartbeat", ("Nats-Last-Consumer", "1"),
                                ("Nats-Last-Stream", "1")), b""),
        ("p.x", "$JS.ACK.P.C.1.2.2.<ts>.0", b"", b"after"),
    ])


@pytest.mark.differential
async def test_pull_heartbeat_too_large_is_400(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 1, "expires": 1_000_000_000,
                                   "idle_heartbeat": 600_000_000}, "inbox.a")
        return await peer.frames(1)

    await _status_test(js_hub, {"ack_policy": "explicit"}, [b"m"], steps, [
        ("inbox.a", "", status("400 Bad Request - heartbeat value too large"), b""),
    ])


@pytest.mark.differential
async def test_pull_on_push_consumer_is_409(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 1, "no_wait": True}, "inbox.a")
        return await peer.frames(1)

    await _status_test(js_hub, {"ack_policy": "explicit", "deliver_subject": "nobody"},
                       [b"m"], steps, [
        ("inbox.a", "", status("409 Consumer is push based"), b""),
    ])


@pytest.mark.differential
async def test_pull_exceeded_max_waiting_is_409(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        for i in range(3):
            await peer.pull("P", "C", {"batch": 1, "expires": 5_000_000_000}, f"inbox.{i}")
        out = await peer.frames(1, timeout=0.5)
        info = await js.consumer_info("P", "C")
        assert info.num_waiting == 2, info
        return out

    await _status_test(js_hub, {"ack_policy": "explicit", "max_waiting": 2}, [], steps, [
        ("inbox.2", "", status("409 Exceeded MaxWaiting"), b""),
    ])


@pytest.mark.differential
async def test_pull_consumer_deleted_while_waiting_is_409(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 1, "expires": 5_000_000_000}, "inbox.a")
        await peer.pull("P", "C", {"batch": 4}, "inbox.b")
        await asyncio.sleep(0.1)
        assert await js.delete_consumer("P", "C")
        return sorted(await peer.frames(2), key=lambda f: f.subject)

    deleted = status("409 Consumer Deleted")
    await _status_test(js_hub, {"ack_policy": "explicit"}, [], steps, [
        ("inbox.a", "", deleted, b""),
        ("inbox.b", "", deleted, b""),
    ])


@pytest.mark.differential
async def test_pull_max_batch_exceeded_is_409(js_hub: ServerProcess) -> None:
    async def steps(js, peer):
        await peer.pull("P", "C", {"batch": 5, "no_wait": True}, "inbox.a")
        return await peer.frames(1)

    await _status_test(js_hub, {"ack_policy": "explicit", "max_batch": 2}, [b"m"], steps, [
        ("inbox.a", "", status("409 Exceeded MaxRequestBatch of 2"), b""),
    ])


# -- push consumers -------------------------------------------------------------------


@pytest.mark.differential
async def test_push_deliver_subject(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="PS", subjects=["ps.*"])
    await publish_n(js, "ps.a", 3)
    res = await request(nc, "$JS.API.CONSUMER.CREATE.PS.loop", {"stream_name": "PS", "config": {
        "durable_name": "loop", "deliver_subject": "ps.deliver"}})
    assert res.get("error", {}).get("err_code") == 10081, res
    info = await js.add_consumer("PS", durable_name="p", deliver_subject="deliver.ps",
                                 ack_policy="explicit")
    assert not info.push_bound
    sub = await nc.subscribe("deliver.ps")
    msgs = [await sub.next_msg(timeout=2) for _ in range(3)]
    assert [m.data for m in msgs] == [b"m1", b"m2", b"m3"]
    assert [m.subject for m in msgs] == ["ps.a"] * 3
    assert msgs[0].reply.startswith("$JS.ACK.PS.p.1.1.1.")
    await js.publish("ps.b", b"live")
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"live" and msg.metadata.sequence.stream == 4
    for m in [*msgs, msg]:
        await m.ack()
    info = await js.consumer_info("PS", "p")
    assert info.push_bound is True
    assert info.delivered.stream_seq == 4
    await nc.close()


@pytest.mark.differential
async def test_push_deliver_group_shares_messages(js_hub) -> None:
    nc, js = await connect(js_hub)
    nc2 = await nats.connect(js_hub.url)
    await js.add_stream(name="Q", subjects=["q"])
    await js.add_consumer("Q", durable_name="grp", deliver_subject="q.deliver",
                          deliver_group="workers", ack_policy="explicit")
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def handler(name: str):
        async def cb(msg) -> None:
            got[name].append(msg.data)
            await msg.ack()
        return cb

    await nc.subscribe("q.deliver", queue="workers", cb=handler("a"))
    await nc2.subscribe("q.deliver", queue="workers", cb=handler("b"))
    await nc.flush()
    await nc2.flush()
    for i in range(200):
        await js.publish("q", b"%d" % i)
    deadline = time.monotonic() + 5
    while len(got["a"]) + len(got["b"]) < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sorted(got["a"] + got["b"], key=int) == [b"%d" % i for i in range(200)]
    assert got["a"] and got["b"], {k: len(v) for k, v in got.items()}
    await asyncio.sleep(0.2)
    info = await js.consumer_info("Q", "grp")
    assert info.config.deliver_group == "workers"
    assert info.num_ack_pending == 0 and info.delivered.stream_seq == 200
    await nc2.close()
    await nc.close()


@pytest.mark.differential
async def test_push_flow_control_and_heartbeats_through_2000(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="FC", subjects=["fc"])
    payload = b"y" * 1024
    for _ in range(2000):
        await js.publish("fc", payload)
    received = 0
    done = asyncio.Event()

    async def cb(msg) -> None:
        nonlocal received
        received += 1
        assert msg.data == payload
        await msg.ack()
        if received == 2000:
            done.set()

    sub = await js.subscribe("fc", durable="fc", cb=cb, flow_control=True, idle_heartbeat=0.5,
                             manual_ack=True)
    await asyncio.wait_for(done.wait(), 20)
    info = await js.consumer_info("FC", "fc")
    assert info.config.flow_control is True and info.config.idle_heartbeat == 0.5
    assert info.delivered.stream_seq == 2000
    await sub.unsubscribe()
    await nc.close()


@pytest.mark.differential(compare=True)
async def test_push_idle_heartbeats(launch: Launch) -> None:
    async def scenario(server: ServerProcess):
        nc, js = await connect(server)
        await js.add_stream(name="H", subjects=["h"])
        await js.publish("h", b"one")
        peer = await RawPeer.open(server.port)
        await peer.sub("hb.deliver")
        await js.add_consumer("H", durable_name="hb", deliver_subject="hb.deliver",
                              idle_heartbeat=0.3, ack_policy="none")
        first = await peer.frames(2, timeout=0.8)
        start = time.monotonic()
        second = await peer.frames(1, timeout=0.8)
        gap = time.monotonic() - start
        await peer.close()
        await nc.close()
        assert 0.1 <= gap <= 0.6, gap
        return [f.key() for f in first + second]

    ref, got = await on_both(launch, scenario)
    hb = status("100 Idle Heartbeat", ("Nats-Last-Consumer", "1"), ("Nats-Last-Stream", "1"))
    expected = [
        ("h", "$JS.ACK.H.hb.1.1.1.<ts>.0", b"", b"one"),
        ("hb.deliver", "", hb, b""),
        ("hb.deliver", "", hb, b""),
    ]
    assert ref == expected
    assert got == expected


# -- consumer info through a scripted run ---------------------------------------------


@pytest.mark.differential
async def test_filtered_num_pending_follows_publishes_deliveries_and_removals(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="FP", subjects=["fp.>"])
    for i in range(6):
        await js.publish(f"fp.{'a' if i % 2 else 'b'}.{i}", b"x")
    await js.add_consumer("FP", durable_name="a", filter_subject="fp.a.*")
    sub = await js.pull_subscribe_bind("a", "FP")

    async def pending() -> int:
        return (await js.consumer_info("FP", "a")).num_pending

    assert await pending() == 3
    for m in await fetch_all(sub, 2):
        await m.ack_sync()
    assert await pending() == 1
    for i in range(6, 10):  # two more for the filter, two not
        await js.publish(f"fp.{'a' if i % 2 else 'b'}.{i}", b"x")
    assert await pending() == 3
    (m,) = await fetch_all(sub, 1)
    await m.ack_sync()
    assert await pending() == 2
    await js.delete_msg("FP", 10)  # fp.a.9, not delivered yet
    assert await pending() == 1
    await js.purge_stream("FP", subject="fp.a.>")
    assert await pending() == 0
    await js.publish("fp.a.10", b"x")
    assert await pending() == 1
    await nc.close()


@pytest.mark.differential
async def test_consumer_info_numbers_step_by_step(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="SC", subjects=["sc"])
    await publish_n(js, "sc", 5)
    info = await js.add_consumer("SC", durable_name="s", ack_wait=0.5, max_deliver=5)

    def state(delivered, floor, ack_pending, redelivered, waiting, pending):
        return {"delivered": delivered, "ack_floor": floor, "ack_pending": ack_pending,
                "redelivered": redelivered, "waiting": waiting, "pending": pending}

    async def check(expected) -> None:
        assert numbers(await js.consumer_info("SC", "s")) == expected

    assert numbers(info) == state((0, 0), (0, 0), 0, 0, 0, 5)
    sub = await js.pull_subscribe_bind("s", "SC")
    m1, m2 = await fetch_all(sub, 2)
    await check(state((2, 2), (0, 0), 2, 0, 0, 3))
    await m2.ack_sync()
    await check(state((2, 2), (0, 0), 1, 0, 0, 3))
    await m1.ack_sync()
    await check(state((2, 2), (2, 2), 0, 0, 0, 3))
    m3, m4 = await fetch_all(sub, 2)
    await check(state((4, 4), (2, 2), 2, 0, 0, 1))
    await settle(nc, m3, b"-NAK")
    m3b = (await sub.fetch(1, timeout=1))[0]
    assert m3b.metadata.sequence.stream == 3 and m3b.metadata.num_delivered == 2
    await check(state((5, 4), (2, 2), 2, 1, 0, 1))
    await m3b.ack_sync()
    await check(state((5, 4), (3, 3), 1, 0, 0, 1))
    await asyncio.sleep(0.7)  # m4's ack_wait runs out
    m4b = (await sub.fetch(1, timeout=1))[0]
    assert m4b.metadata.sequence.stream == 4 and m4b.metadata.num_delivered == 2
    await check(state((6, 4), (3, 3), 1, 1, 0, 1))
    await m4b.ack_sync()
    await check(state((6, 4), (6, 4), 0, 0, 0, 1))
    m5 = (await sub.fetch(1, timeout=1))[0]
    await m5.ack_sync()
    await check(state((7, 5), (7, 5), 0, 0, 0, 0))
    # A waiting pull request shows in num_waiting until a message satisfies it.
    waiter = await nc.subscribe("sc.waiter")
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.SC.s",
                     json.dumps({"batch": 1, "expires": 5_000_000_000}).encode(),
                     reply="sc.waiter")
    await nc.flush()
    await asyncio.sleep(0.1)
    await check(state((7, 5), (7, 5), 0, 0, 1, 0))
    await js.publish("sc", b"m6")
    m6 = await waiter.next_msg(timeout=2)
    assert m6.data == b"m6"
    await check(state((8, 6), (7, 5), 1, 0, 0, 0))
    await publish_n(js, "sc", 2, "late{}")
    await check(state((8, 6), (7, 5), 1, 0, 0, 2))
    await m6.ack_sync()
    await check(state((8, 6), (8, 6), 0, 0, 0, 2))
    await nc.close()


# -- durability -----------------------------------------------------------------------


@pytest.mark.differential
async def test_durable_state_survives_restart(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="K", subjects=["k"])
    await publish_n(js, "k", 10)
    await js.add_consumer("K", durable_name="keep", ack_wait=1, max_deliver=5)
    sub = await js.pull_subscribe_bind("keep", "K")
    msgs = await fetch_all(sub, 6)
    for i in (0, 1, 2, 4):
        await msgs[i].ack_sync()
    await settle(nc, msgs[5], b"-NAK")
    again = (await sub.fetch(1, timeout=1))[0]
    assert again.metadata.sequence.stream == 6 and again.metadata.num_delivered == 2
    before = numbers(await js.consumer_info("K", "keep"))
    assert before == {"delivered": (7, 6), "ack_floor": (3, 3), "ack_pending": 2,
                      "redelivered": 1, "waiting": 0, "pending": 4}
    await nc.close()
    js_hub.restart()
    nc, js = await connect(js_hub)
    info = await js.consumer_info("K", "keep")
    assert numbers(info) == before
    assert info.config.ack_wait == 1 and info.config.max_deliver == 5
    sub = await js.pull_subscribe_bind("keep", "K")
    await asyncio.sleep(1.2)  # past ack_wait: 4 and 6 are due again
    got = await fetch_all(sub, 3, timeout=2)
    assert [(m.metadata.sequence.stream, m.metadata.num_delivered) for m in got] == [
        (4, 2), (6, 3), (7, 1)]
    assert [m.metadata.sequence.consumer for m in got] == [8, 9, 10]
    for m in got:
        await m.ack_sync()
    info = await js.consumer_info("K", "keep")
    assert numbers(info) == {"delivered": (10, 7), "ack_floor": (10, 7), "ack_pending": 0,
                             "redelivered": 0, "waiting": 0, "pending": 3}
    await nc.close()
