"""MQTT broker conformance in raw bytes, continued: 09 MQTT 5 session expiry and wills,
10 request/response, shared subscriptions and subscription identifiers (see
test_mqtt_conformance.py for the numbering and the rules)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator

import nats
import pytest
from mqtt_raw import (  # noqa: F401 - fixtures
    V3,
    V5,
    Mqtt,
    _start,
    ack,
    auth_hub_fixture,
    cid,
    connect,
    connected,
    h,
    hub_fixture,
    mq_fixture,
    properties,
    property_list,
    publish,
    read_varint,
    reason_of,
    subscribe,
)
from servers import ServerProcess

from jetport.bench.mqtt import mqtt_string as s
from jetport.bench.mqtt import packet as pkt
from jetport.bench.mqtt import varint
from jetport.bridges.mqtt.store import session_token

# -- 09 MQTT 5 session expiry and wills -------------------------------------------------


def expiry_prop(seconds: int) -> bytes:
    """A Session Expiry Interval property."""
    return b"\x11" + struct.pack(">I", seconds)


def v5_will(topic: str, payload: bytes, delay: int = 0, qos: int = 0) -> tuple[int, bytes]:
    """CONNECT flags and tail of an MQTT 5 will (Will Delay Interval ``delay``)."""
    props = b"\x18" + struct.pack(">I", delay) if delay else b""
    return 0x04 | qos << 3, varint(len(props)) + props + s(topic) + s(payload)


def disconnect_v5(reason: int = 0, props: bytes = b"") -> bytes:
    return pkt(0xE0, bytes([reason]) + varint(len(props)) + props)


def session_present(connack: bytes) -> int:
    assert connack[:1] == b"\x20" and connack[3] == 0, connack.hex(" ")
    return connack[2]


async def connect_v5(mq, client_id: str, clean: bool, expiry: int = 0,
                     will: tuple[int, bytes] = (0, b""), port: int | None = None
                     ) -> tuple[Mqtt, int]:
    """An MQTT 5 connection past CONNACK, and its Session Present flag."""
    c = await mq(port)
    flags, tail = will
    await c.send(connect(client_id, V5, (0x02 if clean else 0) | flags,
                         props=expiry_prop(expiry) if expiry else b"", tail=tail))
    return c, session_present(await c.packet())


async def subscribed_then_disconnected(mq, client_id: str, topic: str, connect_expiry: int,
                                       disconnect_expiry: int, port: int | None = None
                                       ) -> float:
    """Clean start with ``connect_expiry``, SUBSCRIBE ``topic`` at QoS 1, DISCONNECT
    with ``disconnect_expiry``; the monotonic time the server closed the connection."""
    c, _ = await connect_v5(mq, client_id, True, connect_expiry, port=port)
    await c.send(subscribe(1, (topic, 1), version=V5))
    await c.expect(h("90 04 00 01 00 01"))
    await c.send(disconnect_v5(props=expiry_prop(disconnect_expiry)))
    assert await c.closed() == b""
    return time.monotonic()


async def resumes_at(mq, client_id: str, at: float, port: int | None = None) -> int:
    """Session Present of a Clean Start = 0 reconnect at monotonic time ``at``."""
    await asyncio.sleep(max(at - time.monotonic(), 0))
    c, present = await connect_v5(mq, client_id, False, 60, port=port)
    await c.close()
    return present


async def test_09_disconnect_raises_session_expiry_from_the_disconnect(mq) -> None:
    """CONNECT 1 s, DISCONNECT 4 s: the session lives 4 s from the disconnect, no less
    (present at 3.6 s) and no more (gone at 4.4 s), whatever the CONNECT said."""
    before, after = cid("se-before"), cid("se-after")
    closed = await asyncio.gather(
        *(subscribed_then_disconnected(mq, c, f"se/{c}", 1, 4) for c in (before, after)))
    present = await asyncio.gather(resumes_at(mq, before, closed[0] + 3.6),
                                   resumes_at(mq, after, closed[1] + 4.4))
    assert present == [1, 0]


async def test_09_resumed_session_keeps_its_subscription(mq) -> None:
    client_id = cid("se-keep")
    await subscribed_then_disconnected(mq, client_id, "se/keep", 1, 3)
    await asyncio.sleep(1.5)  # past the CONNECT's interval, within the DISCONNECT's
    pub = await connected(mq, V5)
    await pub.send(publish("se/keep", b"queued", qos=1, pid=1, version=V5))
    assert reason_of(await pub.packet()) == 0
    c, present = await connect_v5(mq, client_id, False, 60)
    assert present == 1
    got = await c.packet()
    assert got[:1] == b"\x32" and got.endswith(b"queued"), got.hex(" ")


async def test_09_disconnect_session_expiry_never(mq) -> None:
    client_id = cid("se-never")
    closed = await subscribed_then_disconnected(mq, client_id, "se/never", 1, 0xFFFFFFFF)
    assert await resumes_at(mq, client_id, closed + 1.5) == 1


async def test_09_disconnect_session_expiry_zero_ends_the_session(mq) -> None:
    client_id = cid("se-zero")
    await subscribed_then_disconnected(mq, client_id, "se/zero", 60, 0)
    _, present = await connect_v5(mq, client_id, False, 60)
    assert present == 0


async def test_09_disconnect_raising_zero_is_a_protocol_error(mq) -> None:
    """A CONNECT without session expiry, then DISCONNECT with 60: not a valid
    DISCONNECT (3.14.2.2.2): DISCONNECT 0x82, and the will goes."""
    watcher = await connected(mq, V5)
    await watcher.send(subscribe(1, ("se/will0", 0), version=V5))
    await watcher.expect(h("90 04 00 01 00 00"))
    c, _ = await connect_v5(mq, cid("se-raise"), True, 0, will=v5_will("se/will0", b"w"))
    await c.send(disconnect_v5(props=expiry_prop(60)))
    rest = await c.closed()
    assert rest[:1] == b"\xe0" and reason_of(rest) == 0x82, rest.hex(" ")
    await watcher.expect(publish("se/will0", b"w", version=V5))


@pytest.fixture
def restartable(tmp_path) -> Iterator[ServerProcess]:
    """A hub of its own, to restart (JetStream on disk)."""
    server = _start(tmp_path, f'server_name: rs\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
                              "mqtt { port: -1 }\n", "restart")
    yield server
    server.stop()


async def test_09_session_expiry_across_a_restart(restartable, mq) -> None:
    """The deadline a DISCONNECT set survives a restart of the hub: resumed just before
    it, gone just after it; a session nobody comes back for is deleted from the store
    at its deadline."""
    port = restartable.mqtt_port
    before, after, abandoned = cid("rs-before"), cid("rs-after"), cid("rs-gone")
    closed = await asyncio.gather(*(
        subscribed_then_disconnected(mq, c, f"rs/{c}", 1, 5, port=port)
        for c in (before, after, abandoned)))
    await asyncio.to_thread(restartable.restart)
    port = restartable.mqtt_port
    assert time.monotonic() - closed[0] < 4.0, "the restart took too long for this test"
    other = await connected(mq, V5, port=port)  # the first client opens the store
    present = await asyncio.gather(resumes_at(mq, before, closed[0] + 4.6, port),
                                   resumes_at(mq, after, closed[1] + 5.4, port))
    assert present == [1, 0]
    await other.close()
    nc = await nats.connect(restartable.url)
    try:
        record = f"$MQTT.sess.{session_token(abandoned)}"
        while time.monotonic() < closed[2] + 8.0:
            try:
                await nc.jetstream().get_last_msg("$MQTT_sess", record)
            except nats.js.errors.NotFoundError:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{abandoned}'s session outlived its deadline\n"
                                 f"{restartable.log()}")
    finally:
        await nc.close()


async def watch(mq, topic: str) -> Mqtt:
    watcher = await connected(mq, V5)
    await watcher.send(subscribe(1, (topic, 0), version=V5))
    await watcher.expect(h("90 04 00 01 00 00"))
    return watcher


async def arrivals(watcher: Mqtt, n: int, timeout: float) -> dict[bytes, float]:
    """Payload -> monotonic arrival time of the next ``n`` messages."""
    out: dict[bytes, float] = {}
    for _ in range(n):
        got = await watcher.packet(timeout)
        assert got[:1] == b"\x30", got.hex(" ")
        out[got[-1:]] = time.monotonic()
    return out


async def test_09_will_goes_when_the_session_ends_before_its_delay(mq) -> None:
    """Will delay 4 s, session expiry 2 s: the will goes at 2 s, when the session
    ends; will delay 1 s, session expiry 4 s: at 1 s."""
    watcher = await watch(mq, "wd/+")
    early, _ = await connect_v5(mq, cid("wd-ends"), True, 2, will=v5_will("wd/a", b"A", 4))
    late, _ = await connect_v5(mq, cid("wd-delay"), True, 4, will=v5_will("wd/b", b"B", 1))
    early.writer.transport.abort()
    late.writer.transport.abort()
    dropped = time.monotonic()
    got = await arrivals(watcher, 2, 5.0)
    assert 1.6 <= got[b"A"] - dropped <= 2.8, got[b"A"] - dropped
    assert 0.7 <= got[b"B"] - dropped <= 1.8, got[b"B"] - dropped


async def test_09_will_of_a_session_ending_with_its_connection_goes_at_once(mq) -> None:
    watcher = await watch(mq, "wd/now")
    c, _ = await connect_v5(mq, cid("wd-now"), True, 0, will=v5_will("wd/now", b"N", 30))
    c.writer.transport.abort()
    dropped = time.monotonic()
    await watcher.expect(publish("wd/now", b"N", version=V5))
    assert time.monotonic() - dropped < 1.0


async def test_09_reconnect_before_the_will_delay_cancels_the_will(mq) -> None:
    """Back before the will delay (Clean Start = 0, also by taking over a connection
    that was not closed yet): no will.  A clean start ends the session: the will goes
    then."""
    watcher = await watch(mq, "wc/+")
    resumed, took_over, clean = cid("wc-back"), cid("wc-take"), cid("wc-clean")
    first = {}
    for client_id, payload in ((resumed, b"R"), (took_over, b"T"), (clean, b"C")):
        first[client_id], _ = await connect_v5(
            mq, client_id, True, 30, will=v5_will(f"wc/{payload.decode()}", payload, 2))
    first[resumed].writer.transport.abort()
    first[clean].writer.transport.abort()
    dropped = time.monotonic()
    await asyncio.sleep(0.5)
    _, present = await connect_v5(mq, resumed, False, 30)
    assert present == 1
    _, present = await connect_v5(mq, took_over, False, 30)
    assert present == 1
    rest = await first[took_over].closed()
    assert rest[:1] == b"\xe0" and reason_of(rest) == 0x8E, rest.hex(" ")
    _, present = await connect_v5(mq, clean, True, 30)
    assert present == 0
    await watcher.expect(publish("wc/C", b"C", version=V5))
    assert time.monotonic() - dropped < 1.5, "a clean start ends the session: will at once"
    assert await watcher.quiet(2.5) == b"", "a resumed session's will is not sent"


# -- 10 MQTT 5 request/response, shared subscriptions, subscription identifiers ---------


def v5_parts(packet: bytes) -> tuple[int, bytes, bytes, bytes]:
    """An MQTT 5 PUBLISH as (QoS, topic, raw properties, payload)."""
    assert packet[:1] and packet[0] >> 4 == 3, packet.hex(" ")
    qos = packet[0] >> 1 & 3
    _, i = read_varint(packet, 1)
    n = struct.unpack_from(">H", packet, i)[0]
    topic = packet[i + 2 : i + 2 + n]
    i += 2 + n + (2 if qos else 0)
    plen, j = read_varint(packet, i)
    return qos, topic, packet[j : j + plen], packet[j + plen :]


def subscription_ids(raw: bytes) -> list[int]:
    """Every Subscription Identifier in raw MQTT 5 properties (it may repeat)."""
    return [value for ident, value in property_list(raw) if ident == 0x0B]  # type: ignore[misc]


async def test_10_response_topic_and_correlation_data_unaltered(mq) -> None:
    """MQTT to MQTT request/response: the responder sees the Response Topic and
    Correlation Data exactly as the requester sent them (3.3.2.3.5), answers there,
    and the requester gets the answer (QoS 0 and 1; a topic with '.' in a level, and
    one with a space, which has no NATS subject)."""
    responder = await connected(mq, V5)
    await responder.send(subscribe(1, ("rr/svc", 1), version=V5))
    await responder.expect(h("90 04 00 01 00 01"))
    requester = await connected(mq, V5)
    await requester.send(subscribe(1, ("rr/resp.1/me", 1), version=V5))
    await requester.expect(h("90 04 00 01 00 01"))
    cases = [("rr/resp.1/me", b"\x00\x01corr", 0), ("rr/resp.1/me", b"c2", 1),
             ("rr/with space", b"c3", 1)]
    for n, (topic, corr, qos) in enumerate(cases, 1):
        props = b"\x08" + s(topic) + b"\x09" + s(corr)
        await requester.send(publish("rr/svc", b"ask%d" % n, qos=qos, pid=n, version=V5,
                                     props=props))
        if qos:
            assert reason_of(await requester.packet()) == 0
        got = await responder.packet()
        _, shown, raw, payload = v5_parts(got)
        assert (shown, payload) == (b"rr/svc", b"ask%d" % n), got.hex(" ")
        assert properties(raw) == {0x08: topic.encode(), 0x09: corr}, got.hex(" ")
        if got[0] & 0x06:
            await responder.send(ack(0x40, struct.unpack_from(">H", got, 10)[0]))
        if " " in topic:
            continue  # nobody can subscribe to it here; it was shown as sent
        await responder.send(publish(topic, b"answer%d" % n, version=V5,
                                     props=b"\x09" + s(corr)))
        answer = await requester.packet()
        _, shown, raw, payload = v5_parts(answer)
        assert (shown, payload) == (topic.encode(), b"answer%d" % n), answer.hex(" ")
        assert properties(raw) == {0x09: corr}, answer.hex(" ")


async def test_10_request_from_mqtt3_subscriber_view(mq) -> None:
    """A 3.1.1 subscriber gets an MQTT 5 request as a plain message (no properties)."""
    old = await connected(mq, V3)
    await old.send(subscribe(1, ("rr/v3", 0)))
    await old.expect(h("90 03 00 01 00"))
    c = await connected(mq, V5)
    await c.send(publish("rr/v3", b"q", version=V5, props=b"\x08" + s("rr/back")))
    await old.expect(publish("rr/v3", b"q"))


async def read_until(c: Mqtt, marker: bytes) -> list[bytes]:
    """Packets up to the PUBLISH whose payload is ``marker`` (which is left out), or
    up to the close."""
    out = []
    while True:
        got = await c.packet()
        if not got or (got[0] >> 4 == 3 and got.endswith(marker)):
            return out
        out.append(got)


async def test_10_shared_subscription_once_under_races(mq) -> None:
    """Two clients with a shared and a non-shared subscription made in one SUBSCRIBE;
    one of the client ids connects twice at once with Clean Start = 1, over no session,
    a live connection, or an offline persistent session.  Each time exactly one of the
    connections racing for the id survives (the other gets DISCONNECT 0x8E), a QoS 0
    message to the shared topic reaches exactly one member, and one to the id's
    non-shared topic reaches it once."""
    pub = await connected(mq, V5)
    for i in range(150):
        x, y = cid("shx"), cid("shy")
        shared = f"$share/g/sh{i}/t"
        earlier = []
        if i % 3:
            c, _ = await connect_v5(mq, x, True, 1)
            await c.send(subscribe(1, (shared, 0), version=V5))
            await c.expect(h("90 04 00 01 00 00"))
            if i % 3 == 2:
                await c.send(disconnect_v5())
                await c.closed()
            else:
                earlier.append(c)
        hello = connect(x, V5) + subscribe(1, (shared, 0), (f"mk{i}/x", 0), version=V5)
        racing = [await mq(), await mq()]
        await asyncio.gather(*(r.send(hello) for r in racing))
        member = await mq()
        await member.send(connect(y, V5) + subscribe(1, (shared, 0), (f"mk{i}/y", 0),
                                                     version=V5))
        for c in (*racing, member):
            assert session_present(await c.packet()) == 0
            await c.expect(h("90 05 00 01 00 00 00"))
        await pub.send(publish(f"sh{i}/t", b"S", version=V5))
        await pub.send(publish(f"mk{i}/x", b"P", version=V5))
        await pub.send(publish(f"mk{i}/x", b"M", version=V5))
        await pub.send(publish(f"mk{i}/y", b"M", version=V5))
        seen = [await read_until(c, b"M") for c in (*earlier, *racing, member)]
        taken = [p for got in seen for p in got if p[:1] == b"\xe0"]
        assert [reason_of(p) for p in taken] == [0x8E] * (1 + len(earlier)), (i, seen)
        copies = sorted(p for got in seen for p in got if p[:1] == b"\x30")
        assert copies == [publish(f"mk{i}/x", b"P", version=V5),
                          publish(f"sh{i}/t", b"S", version=V5)], (i, seen)
        for c in (*earlier, *racing, member):
            await c.close()


async def test_10_expired_session_does_not_end_its_successor(mq) -> None:
    """A persistent session, offline with 1 s to live, replaced by a clean start: its
    expiry leaves the new session alone (registered, stored, taken over by the next
    connection with the id, its shared subscription delivering once)."""
    x = cid("succ")
    await subscribed_then_disconnected(mq, x, "$share/g/succ/t", 1, 1)
    first, present = await connect_v5(mq, x, True, 60)
    assert present == 0
    await first.send(subscribe(1, ("$share/g/succ/t", 0), version=V5))
    await first.expect(h("90 04 00 01 00 00"))
    await asyncio.sleep(1.5)  # the old session's deadline passed
    second, present = await connect_v5(mq, x, False, 60)
    assert present == 1
    rest = await first.closed()
    assert rest[:1] == b"\xe0" and reason_of(rest) == 0x8E, rest.hex(" ")
    pub = await connected(mq, V5)
    await pub.send(publish("succ/t", b"once", version=V5))
    await second.expect(publish("succ/t", b"once", version=V5))
    assert await second.quiet() == b""


async def test_10_overlapping_subscriptions_one_copy_with_identifiers(mq) -> None:
    """Two matching subscriptions with identifiers 1 and 2: one copy, at the higher
    granted QoS, carrying both identifiers (3.3.4); one matching: its own only."""
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("ov/+", 0), version=V5, props=h("0b 01")))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(subscribe(2, ("ov/x", 1), version=V5, props=h("0b 02")))
    await c.expect(h("90 04 00 02 00 01"))
    pub = await connected(mq, V5)
    await pub.send(publish("ov/x", b"both", qos=1, pid=1, version=V5))
    got = await c.packet()
    qos, topic, raw, payload = v5_parts(got)
    assert (qos, topic, payload) == (1, b"ov/x", b"both"), got.hex(" ")
    assert sorted(subscription_ids(raw)) == [1, 2], got.hex(" ")
    await c.send(ack(0x40, struct.unpack_from(">H", got, 8)[0]))
    await pub.send(publish("ov/x", b"zero", version=V5))
    await c.expect(publish("ov/x", b"zero", version=V5, props=h("0b 01 0b 02")))
    await pub.send(publish("ov/y", b"one", version=V5))
    await c.expect(publish("ov/y", b"one", version=V5, props=h("0b 01")))
    assert await c.quiet() == b""


async def test_10_overlapping_subscriptions_without_identifiers_v5(mq) -> None:
    """Without identifiers too, an MQTT 5 client gets one copy, at the highest QoS;
    a shared subscription is a copy of its own (4.8.2)."""
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("ovn/#", 0), ("ovn/+", 1), ("ovn/x", 0),
                           ("$share/g/ovn/x", 0), version=V5))
    await c.expect(h("90 07 00 01 00 00 01 00 00"))
    pub = await connected(mq, V5)
    await pub.send(publish("ovn/x", b"m", qos=1, pid=1, version=V5))
    got = sorted([await c.packet(), await c.packet()])
    assert got[0] == publish("ovn/x", b"m", version=V5), got[0].hex(" ")
    assert v5_parts(got[1]) == (1, b"ovn/x", b"", b"m"), got[1].hex(" ")
    assert await c.quiet() == b""


async def test_10_no_local_leaves_the_other_subscription(mq) -> None:
    """The client's own message: a No Local subscription does not count; the other
    overlapping one delivers it, with its identifier alone."""
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("nlo/+", 0x04), version=V5, props=h("0b 07")))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(subscribe(2, ("nlo/#", 0), version=V5, props=h("0b 08")))
    await c.expect(h("90 04 00 02 00 00"))
    await c.send(publish("nlo/x", b"own", version=V5))
    await c.expect(publish("nlo/x", b"own", version=V5, props=h("0b 08")))
    assert await c.quiet() == b""


@pytest.mark.differential
async def test_10_overlapping_subscriptions_v311_copy_per_subscription(launch, tmp_path,
                                                                       target) -> None:
    """MQTT 3.1.1: a copy per matching subscription, each at its own QoS, as
    nats-server sends them (3.1.1 allows one copy or several)."""
    server = launch.conf(f'server_name: ov\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
                         "mqtt { port: -1 }\n")
    c = await Mqtt.open(server.mqtt_port)
    pub = await Mqtt.open(server.mqtt_port)
    try:
        await c.send(connect("ov311", V3))
        await c.expect(h("20 02 00 00"))
        await c.send(subscribe(1, ("ov/+", 0), ("ov/x", 1), ("ov/#", 0)))
        await c.expect(h("90 05 00 01 00 01 00"))
        await pub.send(connect("ov311p", V3))
        await pub.expect(h("20 02 00 00"))
        await pub.send(publish("ov/x", b"m", qos=1, pid=1))
        await pub.expect(ack(0x40, 1))
        got = sorted([await c.packet() for _ in range(3)])
        assert got[:2] == [publish("ov/x", b"m")] * 2, [p.hex(" ") for p in got]
        assert got[2][:8] == h("32 09 00 04 'ov/x'") and got[2][10:] == b"m", got[2].hex(" ")
        assert await c.quiet() == b""
    finally:
        await c.close()
        await pub.close()
