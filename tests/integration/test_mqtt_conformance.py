"""MQTT broker conformance in raw bytes, in the style of Mosquitto's broker tests.

Each case is numbered by packet type (01 CONNECT, 02 PUBLISH, 03 SUBSCRIBE, 04
UNSUBSCRIBE, 05 PING/keepalive, 06 DISCONNECT, 07 sessions, 08 MQTT 5 only; then, in
test_mqtt_conformance_sessions.py, 09 MQTT 5 session expiry and wills and 10
request/response, shared subscriptions and subscription identifiers; in
test_mqtt_conformance_features.py, 11 flow control, 12 server topic aliases, 13 server
keep alive, 14 enhanced authentication, 15 permissions and tracing) and says the bytes
sent and the bytes expected.  Where brokers differ, the OASIS texts (3.1.1 and 5.0)
decide: a malformed packet or protocol error closes a 3.1.1 connection, and an MQTT 5
connection gets DISCONNECT with the reason code first.  The builders, the decoder and
the hubs are in ``tests/mqtt_raw.py``.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator

import pytest
from mqtt_raw import (  # noqa: F401 - fixtures
    V3,
    V5,
    _start,
    ack,
    auth_hub_fixture,
    cid,
    closes,
    connect,
    connected,
    h,
    hub_fixture,
    mq_fixture,
    pid_of,
    properties,
    publish,
    read_varint,
    reason_of,
    subscribe,
    unsubscribe,
    v5_connack,
)
from servers import ServerProcess

from jetport.bench.mqtt import mqtt_string as s
from jetport.bench.mqtt import packet as pkt
from jetport.bench.mqtt import varint

# -- 01 CONNECT -------------------------------------------------------------------------


async def test_01_connect_v311_success(mq) -> None:
    c = await mq()
    await c.send(h("10 0c 00 04 'MQTT' 04 02 00 3c 00 00"))
    await c.expect(h("20 02 00 00"))


async def test_01_connect_v311_with_client_id(mq) -> None:
    c = await mq()
    await c.send(h("10 0e 00 04 'MQTT' 04 02 00 3c 00 02 'i1'"))
    await c.expect(h("20 02 00 00"))


async def test_01_connect_v5_success_assigns_client_id(mq) -> None:
    c = await mq()
    await c.send(h("10 0d 00 04 'MQTT' 05 02 00 3c 00 00 00"))
    got = await c.packet()
    assert got[:1] == b"\x20" and got[2:4] == b"\x00\x00", got.hex(" ")
    plen, i = read_varint(got, 4)
    assert i + plen == len(got)
    props = properties(got[i:])
    assert props.get(0x12), "an empty client id needs an Assigned Client Identifier"


@pytest.mark.parametrize("level", [3, 6])
async def test_01_connect_bad_protocol_level(mq, level) -> None:
    c = await mq()
    await c.send(h(f"10 0c 00 04 'MQTT' {level:02x} 02 00 3c 00 00"))
    await c.expect(h("20 02 00 01"))
    assert await c.closed() == b""


async def test_01_connect_bad_protocol_name(mq) -> None:
    c = await mq()
    await c.send(h("10 0c 00 04 'MQTX' 04 02 00 3c 00 00"))
    rest = await c.closed()
    assert rest in (b"", h("20 02 00 01")), rest.hex(" ")


async def test_01_connect_reserved_flag_v311(mq) -> None:
    c = await mq()
    await c.send(h("10 0c 00 04 'MQTT' 04 03 00 3c 00 00"))
    assert await c.closed() == b""


async def test_01_connect_reserved_flag_v5(mq) -> None:
    c = await mq()
    await c.send(h("10 0d 00 04 'MQTT' 05 03 00 3c 00 00 00"))
    rest = await c.closed()
    # Before CONNACK an MQTT 5 server may answer CONNACK 0x81, or just close.
    assert rest == b"" or (rest[:1] == b"\x20" and rest[3] == 0x81), rest.hex(" ")


async def test_01_connect_fixed_header_flags(mq) -> None:
    c = await mq()
    await c.send(h("11 0c 00 04 'MQTT' 04 02 00 3c 00 00"))
    assert await c.closed() == b""


async def test_01_connect_will_qos_3(mq) -> None:
    c = await mq()
    await c.send(connect("w3", V3, flags=0x02 | 0x04 | 0x18, tail=s("w/t") + s("x")))
    assert await c.closed() == b""


async def test_01_connect_will_qos_without_will_flag(mq) -> None:
    c = await mq()
    await c.send(connect("w0", V3, flags=0x02 | 0x08))
    assert await c.closed() == b""


async def test_01_connect_password_without_username_v311(mq) -> None:
    c = await mq()
    await c.send(connect("pw", V3, flags=0x02 | 0x40, tail=s("secret")))
    assert await c.closed() == b""


async def test_01_connect_empty_id_persistent_v311(mq) -> None:
    c = await mq()
    await c.send(h("10 0c 00 04 'MQTT' 04 00 00 3c 00 00"))
    await c.expect(h("20 02 00 02"))
    assert await c.closed() == b""


async def test_01_connect_invalid_utf8_client_id(mq) -> None:
    c = await mq()
    await c.send(h("10 0e 00 04 'MQTT' 04 02 00 3c 00 02 c3 28"))
    # Ill-formed UTF-8 is malformed (close); a CONNACK 0x02 first is tolerated.
    assert await c.closed() in (b"", h("20 02 00 02"))


async def test_01_connect_truncated_then_nothing(mq) -> None:
    c = await mq()
    # Remaining length says 12 but the CONNECT says the client id is 5 bytes long.
    await c.send(h("10 0c 00 04 'MQTT' 04 02 00 3c 00 05"))
    assert await c.closed() == b""


async def test_01_connect_bad_password(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("bad", V3, flags=0xC2, tail=s("dev") + s("nope")))
    assert await c.closed() == h("20 02 00 05")  # not authorized (nats-server, Mosquitto)


async def test_01_connect_no_credentials_when_required(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("anon", V3))
    assert await c.closed() == h("20 02 00 05")


async def test_01_connect_bad_password_v5(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("bad5", V5, flags=0xC2, tail=s("dev") + s("nope")))
    rest = await c.closed()
    assert rest[:1] == b"\x20" and rest[3] == 0x86, rest.hex(" ")  # bad name or password


async def test_01_connect_good_password(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("good", V3, flags=0xC2, tail=s("dev") + s("pw")))
    await c.expect(h("20 02 00 00"))


# -- 02 PUBLISH -------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V3, V5])
async def test_02_publish_qos0_roundtrip(mq, version) -> None:
    c = await connected(mq, version)
    await c.send(subscribe(1, ("p0/t", 0), version=version))
    sub_ack = h("90 03 00 01 00") if version == V3 else h("90 04 00 01 00 00")
    await c.expect(sub_ack)
    await c.send(publish("p0/t", b"hi", version=version))
    want = h("30 08 00 04 'p0/t' 'hi'") if version == V3 else h("30 09 00 04 'p0/t' 00 'hi'")
    await c.expect(want)


async def test_02_publish_qos1_puback_v311(mq) -> None:
    c = await connected(mq)
    await c.send(h("32 0a 00 04 'p1/t' 12 34 'hi'"))
    await c.expect(h("40 02 12 34"))


async def test_02_publish_qos1_puback_v5(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("p1/v5", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(publish("p1/v5", b"hi", qos=1, pid=7, version=V5))
    got = sorted([await c.packet(), await c.packet()])
    # The delivery and the PUBACK may come in either order; reason 0x00 may be left out.
    assert got[0] == publish("p1/v5", b"hi", version=V5), got[0].hex(" ")
    assert got[1] in (h("40 02 00 07"), h("40 03 00 07 00"), h("40 04 00 07 00 00")), got[1].hex()


async def test_02_publish_qos1_delivered_at_granted_qos(mq) -> None:
    sub = await connected(mq)
    await sub.send(subscribe(2, ("p1/g", 1), ("p1/z", 0)))
    await sub.expect(h("90 04 00 02 01 00"))
    pub = await connected(mq)
    await pub.send(publish("p1/g", b"one", qos=2, pid=3))
    await pub.expect(ack(0x50, 3))
    await pub.send(h("62 02 00 03"))
    await pub.expect(ack(0x70, 3))
    got = await sub.packet()
    # Delivered QoS = min(2, granted 1): header 32, server-chosen packet id.
    assert got[:8] == h("32 0b 00 04 'p1/g'"), got.hex(" ")
    assert got[10:] == b"one" and got[8:10] != b"\x00\x00"
    await sub.send(ack(0x40, int.from_bytes(got[8:10], "big")))
    await pub.send(publish("p1/z", b"low", qos=1, pid=4))
    await pub.expect(ack(0x40, 4))
    await sub.expect(h("30 09 00 04 'p1/z' 'low'"))


async def test_02_publish_qos2_flow_both_directions(mq) -> None:
    sub = await connected(mq)
    await sub.send(subscribe(1, ("p2/t", 2)))
    await sub.expect(h("90 03 00 01 02"))
    pub = await connected(mq)
    await pub.send(h("34 0b 00 04 'p2/t' 00 05 'abc'"))
    await pub.expect(h("50 02 00 05"))
    # A duplicate before PUBREL is acknowledged again but not delivered twice.
    await pub.send(h("3c 0b 00 04 'p2/t' 00 05 'abc'"))
    await pub.expect(h("50 02 00 05"))
    await pub.send(h("62 02 00 05"))
    await pub.expect(h("70 02 00 05"))
    got = await sub.packet()
    assert got[:8] == h("34 0b 00 04 'p2/t'") and got[10:] == b"abc", got.hex(" ")
    pid = got[8:10]
    await sub.send(b"\x50\x02" + pid)
    await sub.expect(b"\x62\x02" + pid)
    await sub.send(b"\x70\x02" + pid)
    assert await sub.quiet() == b""


async def test_02_pubrel_unknown_pid_v311(mq) -> None:
    c = await connected(mq)
    await c.send(h("62 02 00 63"))
    await c.expect(h("70 02 00 63"))


async def test_02_pubrel_unknown_pid_v5(mq) -> None:
    c = await connected(mq, V5)
    await c.send(h("62 02 00 63"))
    got = await c.packet()
    # 0x92 (packet identifier not found) is the precise answer; Mosquitto sends success.
    assert got[:4] in (h("70 03 00 63"), h("70 02 00 63")), got.hex(" ")
    assert reason_of(got) in (0x92, 0x00), got.hex(" ")


@pytest.mark.parametrize("version", [V3, V5])
async def test_02_publish_qos3(mq, version) -> None:
    c = await connected(mq, version)
    body = s("q/3") + b"\x00\x01" + (b"\x00" if version == V5 else b"") + b"x"
    await c.send(pkt(0x36, body))
    await closes(c, version, {0x81})


@pytest.mark.parametrize("topic", ["w/+", "w/#", "+", "#"])
@pytest.mark.parametrize("version", [V3, V5])
async def test_02_publish_wildcard_topic(mq, version, topic) -> None:
    c = await connected(mq, version)
    await c.send(publish(topic, b"x", version=version))
    await closes(c, version, {0x81, 0x82, 0x90})


@pytest.mark.parametrize("topic", [b"bad\xff", b"a\x00b", b"\xed\xa0\x80"])
@pytest.mark.parametrize("version", [V3, V5])
async def test_02_publish_invalid_utf8_topic(mq, version, topic) -> None:
    c = await connected(mq, version)
    await c.send(publish(topic, b"x", version=version))
    await closes(c, version, {0x81})


async def test_02_publish_empty_topic_v311(mq) -> None:
    c = await connected(mq)
    await c.send(h("30 03 00 00 'x'"))
    assert await c.closed() == b""


async def test_02_publish_empty_topic_without_alias_v5(mq) -> None:
    c = await connected(mq, V5)
    await c.send(h("30 04 00 00 00 'x'"))
    await closes(c, V5, {0x82})


@pytest.mark.parametrize("version", [V3, V5])
async def test_02_publish_qos1_packet_id_zero(mq, version) -> None:
    c = await connected(mq, version)
    await c.send(publish("p/z", b"x", qos=1, pid=0, version=version))
    await closes(c, version, {0x81, 0x82})


@pytest.mark.parametrize("version", [V3, V5])
async def test_02_bad_remaining_length(mq, version) -> None:
    c = await connected(mq, version)
    await c.send(h("30 ff ff ff ff 01"))
    await closes(c, version, {0x81})


async def test_02_oversize_packet_v311(mq) -> None:
    c = await connected(mq)
    # Announces 64 MiB; the server must refuse on the header, without waiting for it.
    await c.send(b"\x30" + varint(64 << 20) + s("big") + b"x" * 100)
    assert await c.closed() == b""


async def test_02_oversize_packet_v5(mq) -> None:
    c, props = await v5_connack(mq)
    limit = props.get(0x27)
    assert isinstance(limit, int), "the server should announce its Maximum Packet Size"
    body = s("big") + b"\x00" + b"x" * (limit - 2 - 3 - 1)
    frame = pkt(0x30, body + b"y" * 8)
    assert len(frame) > limit
    await c.send(frame)
    await closes(c, V5, {0x95})


@pytest.mark.parametrize("version", [V3, V5])
async def test_02_retained_set_replayed_and_cleared(mq, version) -> None:
    topic = f"ret/{version}/x"
    pub = await connected(mq, version)
    await pub.send(publish(topic, b"kept", qos=1, pid=1, retain=True, version=version))
    got = await pub.packet()
    assert got[:4] == b"\x40" + got[1:2] + b"\x00\x01", got.hex(" ")
    sub = await connected(mq, version)
    await sub.send(subscribe(1, (f"ret/{version}/+", 0), version=version))
    await sub.packet()  # SUBACK
    want = publish(topic, b"kept", retain=True, version=version)
    await sub.expect(want)
    # Live delivery to an existing subscription has RETAIN cleared (3.1.1 and v5 default).
    await pub.send(publish(topic, b"", qos=1, pid=2, retain=True, version=version))
    await pub.packet()
    await sub.expect(publish(topic, b"", version=version))
    late = await connected(mq, version)
    await late.send(subscribe(1, (f"ret/{version}/#", 0), version=version))
    await late.packet()
    assert await late.quiet() == b"", "an empty retained payload clears the message"


# -- 03 SUBSCRIBE -----------------------------------------------------------------------


async def test_03_subscribe_grants_each_qos(mq) -> None:
    c = await connected(mq)
    await c.send(h("82 14 00 0a 00 03 's/0' 00 00 03 's/1' 01 00 03 's/2' 02"))
    await c.expect(h("90 05 00 0a 00 01 02"))


async def test_03_subscribe_v5_grants_each_qos(mq) -> None:
    c = await connected(mq, V5)
    await c.send(h("82 15 00 0a 00 00 03 's/0' 00 00 03 's/1' 01 00 03 's/2' 02"))
    await c.expect(h("90 06 00 0a 00 00 01 02"))


async def test_03_subscribe_reserved_header_flags(mq) -> None:
    c = await connected(mq)
    await c.send(h("80 08 00 01 00 03 's/x' 00"))
    assert await c.closed() == b""


@pytest.mark.parametrize("version", [V3, V5])
async def test_03_subscribe_qos_3(mq, version) -> None:
    c = await connected(mq, version)
    await c.send(subscribe(1, ("s/q3", 3), version=version))
    # 3.1.1: malformed, close (MQTT-3.8.3-4).  5: Maximum QoS 3 is a protocol error.
    await closes(c, version, {0x81, 0x82})


async def test_03_subscribe_reserved_option_bits_v311(mq) -> None:
    c = await connected(mq)
    await c.send(subscribe(1, ("s/r", 0x41)))
    assert await c.closed() == b""


async def test_03_subscribe_empty_payload(mq) -> None:
    c = await connected(mq)
    await c.send(h("82 02 00 01"))
    assert await c.closed() == b""


async def test_03_subscribe_packet_id_zero(mq) -> None:
    c = await connected(mq)
    await c.send(h("82 08 00 00 00 03 's/x' 00"))
    assert await c.closed() == b""


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b"])
async def test_03_subscribe_invalid_filter_v311(mq, bad) -> None:
    c = await connected(mq)
    await c.send(subscribe(3, (bad, 0), ("ok/x", 1)))
    got = await c.packet()
    # 3.1.1 allows a 0x80 failure code per filter or closing the connection.
    if got:
        assert got == h("90 04 00 03 80 01"), got.hex(" ")
    else:
        assert await c.closed() == b""


async def test_03_subscribe_invalid_filter_v5(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(3, ("a/#/b", 0), ("ok/x", 1), version=V5))
    got = await c.packet()
    if got[:1] == b"\x90":
        assert got == h("90 05 00 03 00 8f 01"), got.hex(" ")
    else:
        assert got[:1] == b"\xe0" and reason_of(got) in (0x81, 0x82, 0x8F), got.hex(" ")


async def test_03_subscribe_wildcards_and_parent_level(mq) -> None:
    sub = await connected(mq)
    await sub.send(subscribe(1, ("wc/#", 0), ("pl/+/z", 0)))
    await sub.expect(h("90 04 00 01 00 00"))
    pub = await connected(mq)
    for topic in ("wc", "wc/a", "wc/a/b", "pl/y/z", "pl/y/z/q", "pl/z"):
        await pub.send(publish(topic, b"."))
    got = [await sub.packet() for _ in range(4)]
    assert got == [publish(t, b".") for t in ("wc", "wc/a", "wc/a/b", "pl/y/z")]
    assert await sub.quiet() == b""


async def test_03_subscribe_denied_v311(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("ro3", V3, flags=0xC2, tail=s("ro") + s("pw")))
    await c.expect(h("20 02 00 00"))
    await c.send(subscribe(4, ("secret/x", 1), ("open/x", 1)))
    await c.expect(h("90 04 00 04 80 01"))


async def test_03_subscribe_denied_v5(auth_hub, mq) -> None:
    c = await mq(auth_hub.mqtt_port)
    await c.send(connect("ro5", V5, flags=0xC2, tail=s("ro") + s("pw")))
    got = await c.packet()
    assert got[:4] == h("20") + got[1:2] + h("00 00"), got.hex(" ")
    await c.send(subscribe(4, ("secret/x", 1), ("open/x", 1), version=V5))
    await c.expect(h("90 05 00 04 00 87 01"))


# -- 04 UNSUBSCRIBE ---------------------------------------------------------------------


async def test_04_unsubscribe_v311(mq) -> None:
    c = await connected(mq)
    await c.send(subscribe(1, ("u/x", 0)))
    await c.expect(h("90 03 00 01 00"))
    await c.send(h("a2 07 00 02 00 03 'u/x'"))
    await c.expect(h("b0 02 00 02"))
    pub = await connected(mq)
    await pub.send(publish("u/x", b"gone"))
    assert await c.quiet() == b""


async def test_04_unsubscribe_v5_reason_codes(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("u/y", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(unsubscribe(2, "u/y", "u/never", version=V5))
    await c.expect(h("b0 05 00 02 00 00 11"))


async def test_04_unsubscribe_reserved_header_flags(mq) -> None:
    c = await connected(mq)
    await c.send(h("a0 07 00 02 00 03 'u/x'"))
    assert await c.closed() == b""


async def test_04_unsubscribe_empty_payload(mq) -> None:
    c = await connected(mq)
    await c.send(h("a2 02 00 02"))
    assert await c.closed() == b""


# -- 05 PINGREQ and keepalive -----------------------------------------------------------


@pytest.mark.parametrize("version", [V3, V5])
async def test_05_pingreq(mq, version) -> None:
    c = await connected(mq, version)
    await c.send(h("c0 00"))
    await c.expect(h("d0 00"))


async def test_05_pingreq_reserved_flags(mq) -> None:
    c = await connected(mq)
    await c.send(h("c1 00"))
    assert await c.closed() == b""


async def test_05_packet_before_connect(mq) -> None:
    c = await mq()
    await c.send(h("c0 00"))
    assert await c.closed() == b""


async def test_05_publish_before_connect(mq) -> None:
    c = await mq()
    await c.send(publish("early/x", b"x"))
    assert await c.closed() == b""


async def test_05_keepalive_timeout(mq) -> None:
    c = await mq()
    await c.send(connect(cid(), V3, keepalive=1))
    await c.expect(h("20 02 00 00"))
    start = time.monotonic()
    assert await c.closed(3.5) == b""
    waited = time.monotonic() - start
    assert 1.2 <= waited <= 2.6, f"closed after {waited:.2f}s; keepalive 1 s × 1.5"


async def test_05_keepalive_kept_by_pings(mq) -> None:
    c = await mq()
    await c.send(connect(cid(), V3, keepalive=1))
    await c.expect(h("20 02 00 00"))
    for _ in range(4):
        await asyncio.sleep(0.6)
        await c.send(h("c0 00"))
        await c.expect(h("d0 00"))


# -- 06 DISCONNECT and a second CONNECT -------------------------------------------------


async def test_06_second_connect_v311(mq) -> None:
    c = await connected(mq)
    await c.send(connect(cid(), V3))
    assert await c.closed() == b""


async def test_06_second_connect_v5(mq) -> None:
    c = await connected(mq, V5)
    await c.send(connect(cid(), V5))
    await closes(c, V5, {0x82})


async def test_06_disconnect_v311_closes_without_will(mq) -> None:
    watcher = await connected(mq)
    await watcher.send(subscribe(1, ("will/d3", 0)))
    await watcher.packet()
    c = await mq()
    await c.send(connect(cid(), V3, flags=0x06, tail=s("will/d3") + s("bye")))
    await c.expect(h("20 02 00 00"))
    await c.send(h("e0 00"))
    assert await c.closed() == b""
    assert await watcher.quiet(0.5) == b""


async def test_06_abrupt_close_sends_will(mq) -> None:
    watcher = await connected(mq)
    await watcher.send(subscribe(1, ("will/ab", 1)))
    await watcher.packet()
    c = await mq()
    await c.send(connect(cid(), V3, flags=0x0E, tail=s("will/ab") + s("bye")))
    await c.expect(h("20 02 00 00"))
    c.writer.transport.abort()
    got = await watcher.packet()
    assert got[:11] == h("32 0e 00 07 'will/ab'") and got[13:] == b"bye", got.hex(" ")


async def test_06_disconnect_v311_nonzero_length(mq) -> None:
    c = await connected(mq)
    await c.send(h("e0 01 00"))
    assert await c.closed() == b""


async def test_06_disconnect_v5_with_will(mq) -> None:
    watcher = await connected(mq)
    await watcher.send(subscribe(1, ("will/d5", 0)))
    await watcher.packet()
    c = await mq()
    await c.send(connect(cid(), V5, flags=0x06, tail=b"\x00" + s("will/d5") + s("bye")))
    assert (await c.packet())[:1] == b"\x20"
    await c.send(h("e0 02 04 00"))
    await c.closed()
    await watcher.expect(publish("will/d5", b"bye"))


async def test_06_disconnect_v5_session_expiry_after_zero(mq) -> None:
    c = await connected(mq, V5)
    # CONNECT had no session expiry; setting one on DISCONNECT is a protocol error.
    await c.send(h("e0 07 00 05 11 00 00 00 3c"))
    rest = await c.closed()
    assert rest == b"" or (rest[:1] == b"\xe0" and reason_of(rest) == 0x82), rest.hex(" ")


# -- 07 sessions ------------------------------------------------------------------------


async def test_07_session_present_v311(mq) -> None:
    client_id = cid("persist")
    c = await mq()
    await c.send(connect(client_id, V3, flags=0x00))
    await c.expect(h("20 02 00 00"))
    await c.send(subscribe(1, ("sess/x", 1)))
    await c.expect(h("90 03 00 01 01"))
    await c.send(h("e0 00"))
    await c.closed()
    again = await mq()
    await again.send(connect(client_id, V3, flags=0x00))
    await again.expect(h("20 02 01 00"))
    await again.send(h("e0 00"))
    await again.closed()
    clean = await mq()
    await clean.send(connect(client_id, V3, flags=0x02))
    await clean.expect(h("20 02 00 00"))


async def test_07_offline_qos1_redelivered_in_order(mq) -> None:
    client_id = cid("offline")
    c = await mq()
    await c.send(connect(client_id, V3, flags=0x00))
    await c.expect(h("20 02 00 00"))
    await c.send(subscribe(1, ("off/#", 1)))
    await c.expect(h("90 03 00 01 01"))
    await c.send(h("e0 00"))
    await c.closed()
    pub = await connected(mq)
    for i in range(3):
        await pub.send(publish("off/m", b"m%d" % i, qos=1, pid=i + 1))
        await pub.expect(ack(0x40, i + 1))
    back = await mq()
    await back.send(connect(client_id, V3, flags=0x00))
    await back.expect(h("20 02 01 00"))
    got = [await back.packet() for _ in range(3)]
    assert [p[:2] + p[2:9] + p[11:] for p in got] == [
        h("32 0b 00 05 'off/m'") + b"m%d" % i for i in range(3)]
    # Unacknowledged, then resumed: the same packet ids come again with DUP set.
    back.writer.transport.abort()
    again = await mq()
    await again.send(connect(client_id, V3, flags=0x00))
    await again.expect(h("20 02 01 00"))
    redo = [await again.packet() for _ in range(3)]
    assert [p[0] for p in redo] == [0x3A] * 3, [p.hex(" ") for p in redo]
    assert [p[9:11] for p in redo] == [p[9:11] for p in got]
    for p in redo:
        await again.send(b"\x40\x02" + p[9:11])
    assert await again.quiet() == b""


async def test_07_takeover_v311(mq) -> None:
    client_id = cid("take")
    first = await connected(mq, client_id=client_id)
    second = await connected(mq, client_id=client_id)
    assert await first.closed() == b""
    await second.send(h("c0 00"))
    await second.expect(h("d0 00"))


async def test_07_takeover_v5(mq) -> None:
    client_id = cid("take5")
    first = await connected(mq, V5, client_id=client_id)
    await connected(mq, V5, client_id=client_id)
    rest = await first.closed()
    assert rest[:1] == b"\xe0" and reason_of(rest) == 0x8E, rest.hex(" ")


# -- 08 MQTT 5 only ---------------------------------------------------------------------


async def test_08_topic_alias(mq) -> None:
    c, props = await v5_connack(mq)
    maximum = props.get(0x22, 0)
    assert isinstance(maximum, int) and maximum >= 1, props
    await c.send(subscribe(1, ("al/x", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(publish("al/x", b"1", version=V5, props=h("23 00 01")))
    await c.send(publish("", b"2", version=V5, props=h("23 00 01")))
    got = [await c.packet() for _ in range(2)]
    assert [p[-1:] for p in got] == [b"1", b"2"]
    assert all(p[2:8] == s("al/x") for p in got), [p.hex(" ") for p in got]
    await c.send(publish("al/x", b"3", version=V5, props=b"\x23" + struct.pack(">H", maximum + 1)))
    await closes(c, V5, {0x94})


async def test_08_unknown_topic_alias(mq) -> None:
    c = await connected(mq, V5)
    await c.send(publish("", b"x", version=V5, props=h("23 00 01")))
    await closes(c, V5, {0x82})


async def test_08_no_local(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("nl/x", 0x04), ("nl/y", 0x00), version=V5))
    await c.expect(h("90 05 00 01 00 00 00"))
    await c.send(publish("nl/x", b"mine", version=V5))
    await c.send(publish("nl/y", b"echo", version=V5))
    await c.expect(publish("nl/y", b"echo", version=V5))


async def test_08_no_local_on_shared_subscription(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("$share/g/nl/s", 0x04), version=V5))
    await closes(c, V5, {0x82})


async def test_08_retain_as_published_and_retain_handling(mq) -> None:
    pub = await connected(mq, V5)
    await pub.send(publish("rh/x", b"r", retain=True, version=V5))
    await pub.send(h("c0 00"))
    await pub.expect(h("d0 00"))
    c = await connected(mq, V5)
    # Retain handling 2: no retained messages on subscribe; retain-as-published: keep RETAIN.
    await c.send(subscribe(1, ("rh/x", 0x28), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    assert await c.quiet() == b""
    await pub.send(publish("rh/x", b"live", retain=True, version=V5))
    await c.expect(publish("rh/x", b"live", retain=True, version=V5))


async def test_08_one_message_to_subscribers_of_both_levels(mq) -> None:
    """Each subscriber gets a message framed for its own level and options, however
    many others got it just before (QoS 0 heads are shared between subscribers)."""
    v3, v5 = await connected(mq, V3), await connected(mq, V5)
    rap = await connected(mq, V5)  # retain as published
    for c, options in ((v3, 0), (v5, 0), (rap, 0x28)):
        version = V3 if c is v3 else V5
        await c.send(subscribe(1, ("fan/#", options), version=version))
        await c.expect(h("90 03 00 01 00") if version == V3 else h("90 04 00 01 00 00"))
    pub = await connected(mq, V3)
    sent = [("fan/a", b"x", False), ("fan/a", b"yy", True), ("fan/a", b"yy", False),
            ("fan/b", b"yy", False), ("fan/a", b"z" * 200, False)]
    for topic, payload, retain in sent:
        await pub.send(publish(topic, payload, retain=retain))
    for topic, payload, retain in sent:
        await v3.expect(publish(topic, payload))
        await v5.expect(publish(topic, payload, version=V5))
        await rap.expect(publish(topic, payload, retain=retain, version=V5))


async def test_08_retain_handling_3_is_protocol_error(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("rh/bad", 0x30), version=V5))
    await closes(c, V5, {0x81, 0x82})


async def test_08_auth_method_unsupported(mq) -> None:
    c = await mq()
    await c.send(connect(cid(), V5, props=b"\x15" + s("SCRAM-SHA-1")))
    rest = await c.closed()
    # MQTT-4.12.0-1: CONNACK 0x8C (or 0x87) may be sent; the connection must close.
    assert rest[:1] == b"\x20" and rest[3] in (0x8C, 0x87), rest.hex(" ")


async def test_08_client_maximum_packet_size(mq) -> None:
    c = await connected(mq, V5, props=h("27 00 00 00 20"))
    await c.send(subscribe(1, ("mp/#", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    pub = await connected(mq, V5)
    await pub.send(publish("mp/big", b"x" * 64, version=V5))
    await pub.send(publish("mp/small", b"ok", version=V5))
    # Too large for the client's limit: dropped, not sent (MQTT-3.1.2-24).
    await c.expect(publish("mp/small", b"ok", version=V5))


async def test_08_user_properties_round_trip(mq) -> None:
    c = await connected(mq, V5)
    await c.send(subscribe(1, ("up/x", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    user = b"\x26" + s("k") + s("v")
    await c.send(publish("up/x", b"p", version=V5, props=user))
    got = await c.packet()
    _, i = read_varint(got, 1)
    i += 2 + 4
    plen, j = read_varint(got, i)
    assert properties(got[j : j + plen]).get(0x26) == [(b"k", b"v")], got.hex(" ")
    assert got[j + plen :] == b"p"


async def test_08_subscription_identifier(mq) -> None:
    c, props = await v5_connack(mq)
    assert props.get(0x29, 1) == 1  # the hub offers subscription identifiers
    await c.send(subscribe(1, ("sid/x", 0), version=V5, props=h("0b 05")))
    await c.expect(h("90 04 00 01 00 00"))
    await c.send(publish("sid/x", b"i", version=V5))
    await c.expect(h("30 0b 00 05 'sid/x' 02 0b 05 'i'"))




async def test_08_receive_maximum_bounds_inflight(mq) -> None:
    """The client's Receive Maximum (2) caps unacknowledged QoS 1 deliveries; each PUBACK
    lets the next one out, in order."""
    c = await connected(mq, V5, props=h("21 00 02"))
    await c.send(subscribe(1, ("rm/x", 1), version=V5))
    await c.expect(h("90 04 00 01 00 01"))
    pub = await connected(mq, V5)
    for i in range(5):
        await pub.send(publish("rm/x", b"m%d" % i, qos=1, pid=i + 1, version=V5))
    got = [await c.packet(), await c.packet()]
    assert [p[-2:] for p in got] == [b"m0", b"m1"], [p.hex(" ") for p in got]
    assert await c.quiet(0.5) == b""
    await c.send(b"\x40\x02" + pid_of(got[0]))
    third = await c.packet()
    assert third[-2:] == b"m2", third.hex(" ")
    assert await c.quiet(0.3) == b""
    for p in (got[1], third):
        await c.send(b"\x40\x02" + pid_of(p))
    rest = [await c.packet(), await c.packet()]
    assert [p[-2:] for p in rest] == [b"m3", b"m4"]


async def test_08_message_expiry(mq) -> None:
    """A queued message past its Message Expiry Interval is dropped; one still alive is
    delivered with the interval reduced by the time it waited."""
    client_id = cid("exp")
    c = await mq()
    await c.send(connect(client_id, V5, flags=0x00, props=h("11 00 00 00 3c")))
    assert (await c.packet())[:1] == b"\x20"
    await c.send(subscribe(1, ("ex/#", 1), version=V5))
    await c.expect(h("90 04 00 01 00 01"))
    await c.send(h("e0 00"))
    await c.closed()
    pub = await connected(mq, V5)
    for pid, (topic, expiry) in enumerate([("ex/short", "01"), ("ex/long", "3c")], 1):
        payload = b"gone" if expiry == "01" else b"kept"
        await pub.send(publish(topic, payload, qos=1, pid=pid, version=V5,
                               props=h(f"02 00 00 00 {expiry}")))
    assert [reason_of(await pub.packet()) for _ in range(2)] == [0, 0]
    await asyncio.sleep(2.2)
    back = await mq()
    await back.send(connect(client_id, V5, flags=0x00, props=h("11 00 00 00 3c")))
    connack = await back.packet()
    assert connack[:1] == b"\x20" and connack[2:4] == h("01 00"), connack.hex(" ")
    got = await back.packet()
    assert got[-4:] == b"kept", got.hex(" ")
    _, i = read_varint(got, 1)
    n = struct.unpack_from(">H", got, i)[0]
    plen, j = read_varint(got, i + 4 + n)
    left = properties(got[j : j + plen])[0x02]
    assert isinstance(left, int) and 55 <= left <= 58, left
    assert await back.quiet() == b""


@pytest.fixture(scope="module")
def quick_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-ackwait")
    server = _start(tmp, f'server_name: quick\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         'mqtt { port: -1, ack_wait: "1s", max_ack_pending: 3,'
                         ' authorization { timeout: 0.5 } }\n', "quick")
    yield server
    server.stop()


async def test_07_ack_wait_redelivers_with_dup_v311(quick_hub, mq) -> None:
    """3.1.1: a QoS 1 delivery unacknowledged for ack_wait comes again with DUP and the
    same packet id; max_ack_pending caps what is in flight."""
    c = await connected(mq, port=quick_hub.mqtt_port)
    await c.send(subscribe(1, ("aw/x", 1)))
    await c.expect(h("90 03 00 01 01"))
    pub = await connected(mq, port=quick_hub.mqtt_port)
    for i in range(4):
        await pub.send(publish("aw/x", b"m%d" % i, qos=1, pid=i + 1))
    first = [await c.packet() for _ in range(3)]
    assert [p[0] for p in first] == [0x32] * 3 and [p[-2:] for p in first] == [b"m0", b"m1",
                                                                               b"m2"]
    assert await c.quiet(0.5) == b""
    started = time.monotonic()
    again = [await c.packet(3) for _ in range(3)]
    assert time.monotonic() - started >= 0.3
    assert [p[0] for p in again] == [0x3A] * 3, [p.hex(" ") for p in again]
    assert [pid_of(p) for p in again] == [pid_of(p) for p in first]
    for p in again:
        await c.send(b"\x40\x02" + pid_of(p))
    last = await c.packet()
    assert (last[0], last[-2:]) == (0x32, b"m3")
    await c.send(b"\x40\x02" + pid_of(last))
    assert await c.quiet(1.5) == b""


async def test_08_no_redelivery_on_a_live_v5_connection(quick_hub, mq) -> None:
    """MQTT 5 forbids resending while connected [MQTT-4.4.0-1]: only a reconnect does."""
    c = await connected(mq, V5, port=quick_hub.mqtt_port)
    await c.send(subscribe(1, ("aw5/x", 1), version=V5))
    await c.expect(h("90 04 00 01 00 01"))
    pub = await connected(mq, V5, port=quick_hub.mqtt_port)
    await pub.send(publish("aw5/x", b"once", qos=1, pid=1, version=V5))
    got = await c.packet()
    assert got[-4:] == b"once"
    assert await c.quiet(1.8) == b""


async def test_05_no_connect_within_the_auth_timeout(quick_hub, mq) -> None:
    """The mqtt block's authorization timeout bounds the wait for CONNECT."""
    c = await mq(quick_hub.mqtt_port)
    started = time.monotonic()
    assert await c.closed(3.0) == b""
    assert 0.4 <= time.monotonic() - started < 2.0
