"""MQTT broker conformance in raw bytes, continued: 11 flow control, 12 server topic
aliases, 13 server keep alive, 14 enhanced authentication, 15 permissions and tracing
(see test_mqtt_conformance.py for the numbering and the rules)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator

import pytest
from mqtt_raw import (  # noqa: F401 - fixtures
    V3,
    V5,
    Mqtt,
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
)
from servers import Launch, ServerProcess

from jetport.bench.mqtt import mqtt_string as s
from jetport.bench.mqtt import packet as pkt
from jetport.bench.mqtt import varint

# -- 11 MQTT 5 flow control ------------------------------------------------------------


@pytest.fixture(scope="module")
def flow_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    """Jetport's own mqtt keys: a Receive Maximum of 2, no topic aliases given out."""
    tmp = tmp_path_factory.mktemp("mqtt-flow")
    server = _start(tmp, f'server_name: flow\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1, receive_maximum: 2, assign_topic_aliases: false }\n",
                    "flow")
    yield server
    server.stop()


def connack_properties(packet: bytes) -> dict[int, object]:
    """The properties of an MQTT 5 CONNACK (or AUTH, DISCONNECT: after one byte)."""
    _, i = read_varint(packet, 1)
    at = i + (2 if packet[0] >> 4 == 2 else 1)
    if at >= len(packet):
        return {}
    plen, j = read_varint(packet, at)
    return properties(packet[j : j + plen])


async def test_11_receive_maximum_is_announced(flow_hub, mq) -> None:
    c = await mq(flow_hub.mqtt_port)
    await c.send(connect(cid("rm"), V5))
    got = await c.packet()
    assert got[:1] == b"\x20" and got[3] == 0, got.hex(" ")
    assert connack_properties(got)[0x21] == 2


async def test_11_more_unacknowledged_publishes_than_receive_maximum_disconnects(
        flow_hub, mq) -> None:
    """QoS 2 publishes stay unacknowledged until PUBCOMP: a third one while two wait for
    their PUBREL exceeds a Receive Maximum of 2 (3.3.4, 4.9): DISCONNECT 0x93."""
    c = await connected(mq, V5, port=flow_hub.mqtt_port)
    for pid in (1, 2):
        await c.send(publish("fc/x", b"q2", qos=2, pid=pid, version=V5))
        await c.expect(h(f"50 02 00 {pid:02x}"))
    await c.send(publish("fc/x", b"q1", qos=1, pid=3, version=V5))
    await closes(c, V5, {0x93})


async def test_11_answered_publishes_free_the_window(flow_hub, mq) -> None:
    """PUBCOMP and PUBACK end a publish's claim on the window; QoS 0 makes none; a
    resent QoS 2 publish (same packet id) is not counted twice."""
    c = await connected(mq, V5, port=flow_hub.mqtt_port)
    await c.send(publish("fc/y", b"a", qos=2, pid=1, version=V5))
    await c.expect(h("50 02 00 01"))
    await c.send(publish("fc/y", b"a", qos=2, pid=1, dup=True, version=V5))
    await c.expect(h("50 02 00 01"))
    await c.send(publish("fc/y", b"b", qos=2, pid=2, version=V5))
    await c.expect(h("50 02 00 02"))
    for _ in range(5):
        await c.send(publish("fc/y", b"zero", version=V5))
    await c.send(ack(0x62, 1))
    await c.expect(h("70 02 00 01"))
    for pid in range(3, 8):  # one slot free: each QoS 1 is answered before the next
        await c.send(publish("fc/y", b"one", qos=1, pid=pid, version=V5))
        await c.expect(h(f"40 02 00 {pid:02x}"))
    await c.send(ack(0x62, 2))
    await c.expect(h("70 02 00 02"))
    await c.send(h("c0 00"))
    await c.expect(h("d0 00"))


async def test_11_receive_maximum_does_not_apply_to_v311(flow_hub, mq) -> None:
    c = await connected(mq, V3, port=flow_hub.mqtt_port)
    for pid in range(1, 6):
        await c.send(publish("fc/z", b"q2", qos=2, pid=pid))
        await c.expect(h(f"50 02 00 {pid:02x}"))
    await c.send(h("c0 00"))
    await c.expect(h("d0 00"))


# -- 12 topic aliases from the server ---------------------------------------------------


def publish_v5(topic: str, payload: bytes, props: bytes) -> bytes:
    """A QoS 0 PUBLISH as the hub sends it to an MQTT 5 client."""
    return publish(topic, payload, version=V5, props=props)


async def test_12_repeated_topics_get_aliases(mq) -> None:
    """A client that allows topic aliases gets, for each topic, one PUBLISH with the
    topic and its alias, then the alias and an empty topic (3.3.2.3.4)."""
    c = await connected(mq, V5, props=h("22 00 02"))
    await c.send(subscribe(1, ("ta/#", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))
    pub = await connected(mq, V5)
    for topic, body in (("ta/a", b"1"), ("ta/a", b"2"), ("ta/b", b"3"), ("ta/a", b"4"),
                        ("ta/b", b"5")):
        await pub.send(publish(topic, body, version=V5))
    want = [publish_v5("ta/a", b"1", h("23 00 01")), publish_v5("", b"2", h("23 00 01")),
            publish_v5("ta/b", b"3", h("23 00 02")), publish_v5("", b"4", h("23 00 01")),
            publish_v5("", b"5", h("23 00 02"))]
    for packet in want:
        await c.expect(packet)


async def test_12_least_recently_used_alias_is_remapped(mq) -> None:
    """With every alias the client allows in use, a new topic takes the least recently
    used one, sent with its topic so the client remaps it."""
    c = await connected(mq, V5, props=h("22 00 01"))
    await c.send(subscribe(1, ("lr/#", 1), version=V5))
    await c.expect(h("90 04 00 01 00 01"))
    pub = await connected(mq, V5)
    for topic in ("lr/a", "lr/b", "lr/b", "lr/a"):
        await pub.send(publish(topic, b".", version=V5))
    for packet in (publish_v5("lr/a", b".", h("23 00 01")),
                   publish_v5("lr/b", b".", h("23 00 01")),
                   publish_v5("", b".", h("23 00 01")),
                   publish_v5("lr/a", b".", h("23 00 01"))):
        await c.expect(packet)
    # QoS 1 deliveries (queued, then sent with a packet id) are aliased the same way.
    await pub.send(publish("lr/a", b"q", qos=1, pid=1, version=V5))
    await pub.expect(h("40 02 00 01"))
    got = await c.packet()
    assert got == publish("", b"q", qos=1, pid=1, version=V5, props=h("23 00 01")), \
        got.hex(" ")


async def test_12_no_aliases_unless_the_client_allows_them(mq, flow_hub) -> None:
    plain = await connected(mq, V5)
    await plain.send(subscribe(1, ("na/x", 0), version=V5))
    await plain.expect(h("90 04 00 01 00 00"))
    # assign_topic_aliases: false turns them off even for a client that allows them.
    off = await connected(mq, V5, props=h("22 00 05"), port=flow_hub.mqtt_port)
    await off.send(subscribe(1, ("na/x", 0), version=V5))
    await off.expect(h("90 04 00 01 00 00"))
    for port in (None, flow_hub.mqtt_port):
        pub = await connected(mq, V5, port=port)
        for _ in range(2):
            await pub.send(publish("na/x", b"full", version=V5))
    for c in (plain, off):
        for _ in range(2):
            await c.expect(publish_v5("na/x", b"full", b""))


# -- 13 server keep alive ---------------------------------------------------------------


@pytest.fixture(scope="module")
def keepalive_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-keepalive")
    server = _start(tmp, f'server_name: ka\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1, max_keep_alive: 2 }\n", "keepalive")
    yield server
    server.stop()


@pytest.mark.parametrize("asked", [60, 0])
async def test_13_v5_keep_alive_over_the_bound_gets_server_keep_alive(
        keepalive_hub, mq, asked) -> None:
    """MQTT 5: more than max_keep_alive (or 0, "never") is answered with Server Keep
    Alive (3.2.2.3.14), and the client is held to it: silent for 1.5 times that, it gets
    DISCONNECT 0x8D (Keep Alive timeout)."""
    c = await mq(keepalive_hub.mqtt_port)
    await c.send(connect(cid("ka"), V5, keepalive=asked))
    got = await c.packet()
    assert got[:1] == b"\x20" and got[3] == 0, got.hex(" ")
    assert connack_properties(got).get(0x13) == 2
    start = time.monotonic()
    rest = await c.closed(5.0)
    waited = time.monotonic() - start
    assert rest[:1] == b"\xe0" and reason_of(rest) == 0x8D, rest.hex(" ")
    assert 2.6 <= waited <= 4.5, f"closed after {waited:.2f}s; server keep alive 2 s × 1.5"


async def test_13_v5_keep_alive_within_the_bound_is_kept(keepalive_hub, mq) -> None:
    c = await mq(keepalive_hub.mqtt_port)
    await c.send(connect(cid("ka"), V5, keepalive=1))
    got = await c.packet()
    assert got[3] == 0 and 0x13 not in connack_properties(got), got.hex(" ")
    start = time.monotonic()
    await c.closed(4.0)
    assert time.monotonic() - start < 2.4  # its own 1 s keep-alive × 1.5


async def test_13_pings_within_server_keep_alive_keep_the_connection(keepalive_hub, mq) -> None:
    c = await mq(keepalive_hub.mqtt_port)
    await c.send(connect(cid("ka"), V5, keepalive=600))
    assert connack_properties(await c.packet()).get(0x13) == 2
    for _ in range(4):
        await asyncio.sleep(1.2)
        await c.send(h("c0 00"))
        await c.expect(h("d0 00"))


@pytest.mark.parametrize("asked", [60, 3, 0])
async def test_13_v311_keep_alive_over_the_bound_is_refused(keepalive_hub, mq, asked) -> None:
    """3.1.1 has no Server Keep Alive: as Mosquitto does with max_keepalive, a client
    asking for more (or for 0) gets CONNACK 2, identifier rejected."""
    c = await mq(keepalive_hub.mqtt_port)
    await c.send(connect(cid("ka3"), V3, keepalive=asked))
    assert await c.closed() == h("20 02 00 02")


async def test_13_v311_keep_alive_within_the_bound(keepalive_hub, mq) -> None:
    c = await mq(keepalive_hub.mqtt_port)
    await c.send(connect(cid("ka3"), V3, keepalive=2))
    await c.expect(h("20 02 00 00"))


# -- 14 enhanced authentication ---------------------------------------------------------

BCRYPT_PW = "$2b$04$ZUlq829V9fJuweUdRCYCZeqbqG1qW06uUNIyCo8hRCezYWWkN8.aS"  # "pw"


@pytest.fixture(scope="module")
def scram_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-scram")
    server = _start(tmp, f'server_name: scram\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1 }\n"
                         "authorization { users: [\n"
                         "  {user: dev, password: pw}\n"
                         "  {user: ro, password: pw,"
                         " permissions: {subscribe: {deny: [\"secret.>\"]}}}\n"
                         f'  {{user: hashed, password: "{BCRYPT_PW}"}}\n'
                         "] }\n", "scram")
    yield server
    server.stop()


def auth_props(method: str, data: bytes) -> bytes:
    return b"\x15" + s(method) + b"\x16" + s(data)


def auth(code: int, method: str, data: bytes) -> bytes:
    props = auth_props(method, data)
    return pkt(0xF0, bytes([code]) + varint(len(props)) + props)


async def scram_login(c: Mqtt, user: str, password: str, mechanism: str = "SCRAM-SHA-256",
                      client_id: str | None = None) -> bytes:
    """CONNECT with SCRAM's client-first message, AUTH 0x18 both ways; the packet that
    ends it (CONNACK, or whatever came instead)."""
    from jetport.core.scram import ScramClient

    client = ScramClient(mechanism, user, password)
    await c.send(connect(client_id or cid("sc"), V5, props=auth_props(mechanism, client.first())))
    challenge = await c.packet()
    assert challenge[:1] == b"\xf0" and challenge[2] == 0x18, challenge.hex(" ")
    props = connack_properties(challenge)
    assert props[0x15] == mechanism.encode(), props
    server_first = props[0x16]
    assert isinstance(server_first, bytes) and server_first.startswith(b"r=")
    await c.send(auth(0x18, mechanism, client.final(server_first)))
    end = await c.packet()
    if end[:1] == b"\x20" and end[3] == 0:
        props = connack_properties(end)
        assert props[0x15] == mechanism.encode(), props
        final = props[0x16]
        assert isinstance(final, bytes)
        client.check(final)  # the server knew the password too
    return end


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_14_scram_login_with_a_password_user(scram_hub, mq, mechanism) -> None:
    c = await mq(scram_hub.mqtt_port)
    end = await scram_login(c, "dev", "pw", mechanism)
    assert end[:1] == b"\x20" and end[3] == 0, end.hex(" ")
    await c.send(subscribe(1, ("sc/x", 0), version=V5))
    await c.expect(h("90 04 00 01 00 00"))


async def test_14_scram_login_gets_the_users_permissions(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    assert (await scram_login(c, "ro", "pw"))[3] == 0
    await c.send(subscribe(2, ("secret/x", 0), ("open/x", 0), version=V5))
    await c.expect(h("90 05 00 02 00 87 00"))


@pytest.mark.parametrize(("user", "password"), [("dev", "wrong"), ("nobody", "pw"),
                                                ("hashed", "pw")])
async def test_14_scram_refusals_look_alike(scram_hub, mq, user, password) -> None:
    """A wrong password, an unknown user and a user whose password is a bcrypt hash
    (SCRAM needs the plain text) all get the challenge and then CONNACK 0x86."""
    c = await mq(scram_hub.mqtt_port)
    end = await scram_login(c, user, password)
    assert end[:1] == b"\x20" and end[3] == 0x86, end.hex(" ")
    assert await c.closed() == b""
    if user == "hashed":
        assert "has a bcrypt password, which SCRAM cannot check" in scram_hub.log()


@pytest.mark.parametrize("method", ["PLAIN", "SCRAM-SHA-1", "scram-sha-256"])
async def test_14_other_methods_are_refused(scram_hub, mq, method) -> None:
    c = await mq(scram_hub.mqtt_port)
    await c.send(connect(cid(), V5, props=auth_props(method, b"n,,n=dev,r=abc")))
    rest = await c.closed()
    assert rest[:1] == b"\x20" and rest[3] == 0x8C, rest.hex(" ")


async def test_14_malformed_client_first_is_refused(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    await c.send(connect(cid(), V5, props=auth_props("SCRAM-SHA-256", b"p=tls,,n=dev,r=a")))
    rest = await c.closed()
    assert rest[:1] == b"\x20" and rest[3] == 0x86, rest.hex(" ")


async def test_14_only_auth_until_connack(scram_hub, mq) -> None:
    """A client that named a method sends nothing but AUTH or DISCONNECT before its
    CONNACK [MQTT-3.1.2-30]: anything else is a protocol error."""
    from jetport.core.scram import ScramClient

    c = await mq(scram_hub.mqtt_port)
    client = ScramClient("SCRAM-SHA-256", "dev", "pw")
    await c.send(connect(cid(), V5, props=auth_props("SCRAM-SHA-256", client.first())))
    assert (await c.packet())[:1] == b"\xf0"
    await c.send(h("c0 00"))
    rest = await c.closed()
    assert rest[:1] == b"\x20" and rest[3] == 0x82, rest.hex(" ")


async def test_14_disconnect_during_the_exchange_just_closes(scram_hub, mq) -> None:
    from jetport.core.scram import ScramClient

    c = await mq(scram_hub.mqtt_port)
    client = ScramClient("SCRAM-SHA-256", "dev", "pw")
    await c.send(connect(cid(), V5, props=auth_props("SCRAM-SHA-256", client.first())))
    assert (await c.packet())[:1] == b"\xf0"
    await c.send(h("e0 00"))
    assert await c.closed() == b""


async def reauthenticate(c: Mqtt, user: str, password: str,
                         mechanism: str = "SCRAM-SHA-256") -> bytes:
    """AUTH 0x19 with client-first, AUTH 0x18 both ways; what ended it."""
    from jetport.core.scram import ScramClient

    client = ScramClient(mechanism, user, password)
    await c.send(auth(0x19, mechanism, client.first()))
    challenge = await c.packet()
    assert challenge[:1] == b"\xf0" and challenge[2] == 0x18, challenge.hex(" ")
    server_first = connack_properties(challenge)[0x16]
    assert isinstance(server_first, bytes)
    await c.send(auth(0x18, mechanism, client.final(server_first)))
    end = await c.packet()
    if end[:1] == b"\xf0":
        final = connack_properties(end)[0x16]
        assert isinstance(final, bytes)
        client.check(final)
    return end


async def test_14_reauthentication_on_a_live_connection(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    assert (await scram_login(c, "dev", "pw"))[3] == 0
    end = await reauthenticate(c, "dev", "pw")
    assert end[:3] == h("f0") + end[1:2] + h("00"), end.hex(" ")  # AUTH 0x00, Success
    await c.send(h("c0 00"))
    await c.expect(h("d0 00"))
    # Twice is fine too.
    assert (await reauthenticate(c, "dev", "pw"))[2] == 0


async def test_14_failed_reauthentication_disconnects(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    assert (await scram_login(c, "dev", "pw"))[3] == 0
    end = await reauthenticate(c, "dev", "wrong")
    assert end[:1] == b"\xe0" and reason_of(end) == 0x87, end.hex(" ")
    assert await c.closed() == b""


async def test_14_reauthentication_as_another_user_disconnects(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    assert (await scram_login(c, "ro", "pw"))[3] == 0
    end = await reauthenticate(c, "dev", "pw")  # a good proof, but not ro's
    assert end[:1] == b"\xe0" and reason_of(end) == 0x87, end.hex(" ")


async def test_14_reauthentication_must_use_the_connect_method(scram_hub, mq) -> None:
    from jetport.core.scram import ScramClient

    c = await mq(scram_hub.mqtt_port)
    assert (await scram_login(c, "dev", "pw"))[3] == 0
    first = ScramClient("SCRAM-SHA-512", "dev", "pw").first()
    await c.send(auth(0x19, "SCRAM-SHA-512", first))
    await closes(c, V5, {0x82})


async def test_14_auth_without_a_method_in_connect_is_a_protocol_error(scram_hub, mq) -> None:
    c = await mq(scram_hub.mqtt_port)
    await c.send(connect(cid(), V5, flags=0xC2, tail=s("dev") + s("pw")))
    assert (await c.packet())[3] == 0
    await c.send(auth(0x19, "SCRAM-SHA-256", b"n,,n=dev,r=abc"))
    await closes(c, V5, {0x82})


# -- 15 permissions and tracing ---------------------------------------------------------


async def ro_connect(mq, port: int, version: int, client_id: str, clean: bool = True
                     ) -> tuple[Mqtt, bool]:
    """The read-only user (subscribe deny secret.>) connected: (connection, present)."""
    c = await mq(port)
    props = h("11 00 00 00 3c") if version == V5 and not clean else b""
    await c.send(connect(client_id, version, flags=0xC0 | (0x02 if clean else 0),
                         props=props, tail=s("ro") + s("pw")))
    got = await c.packet()
    assert got[:1] == b"\x20" and got[3] == 0, got.hex(" ")
    return c, bool(got[2] & 1)


def suback(pid: int, version: int, *codes: int) -> bytes:
    body = struct.pack(">H", pid) + (b"\x00" if version == V5 else b"") + bytes(codes)
    return pkt(0x90, body)


@pytest.mark.parametrize("version", [V3, V5])
async def test_15_denied_subscribe_on_every_path(auth_hub, mq, version) -> None:
    """A SUBSCRIBE the user may not make gets 0x80 (3.1.1) or 0x87 (5): in a new
    session, plain or shared; in a session resumed after a reconnect; and in one taken
    over from a live connection."""
    denied = 0x80 if version == V3 else 0x87
    client_id = cid(f"perm{version}")
    c, present = await ro_connect(mq, auth_hub.mqtt_port, version, client_id, clean=False)
    assert not present
    await c.send(subscribe(1, ("secret/a", 1), ("$share/g/secret/b", 1), ("open/a", 1),
                           ("$share/g/open/b", 0), version=version))
    await c.expect(suback(1, version, denied, denied, 1, 0))
    await c.send(h("e0 00"))
    await c.closed()
    back, present = await ro_connect(mq, auth_hub.mqtt_port, version, client_id, clean=False)
    assert present
    await back.send(subscribe(2, ("secret/c", 0), ("$share/h/secret/#", 2), ("open/c", 2),
                              version=version))
    await back.expect(suback(2, version, denied, denied, 2))
    # A takeover while the resumed connection is live: the same answers.
    again, present = await ro_connect(mq, auth_hub.mqtt_port, version, client_id, clean=False)
    assert present
    await again.send(subscribe(3, ("secret/#", 0), ("$share/g/secret/b", 1), ("open/#", 0),
                               version=version))
    await again.expect(suback(3, version, denied, denied, 0))
    # Nothing denied was subscribed on the way: a message to secret/a reaches no one.
    dev = await mq(auth_hub.mqtt_port)
    await dev.send(connect(cid("pub"), V3, flags=0xC2, tail=s("dev") + s("pw")))
    await dev.expect(h("20 02 00 00"))
    await dev.send(publish("secret/a", b"hidden"))
    await dev.send(publish("open/a", b"seen"))
    got = await again.packet()
    assert got.endswith(b"seen"), got.hex(" ")
    await again.send(h("e0 00"))


@pytest.fixture(scope="module")
def traced_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    """A hub run with -DV: MQTT packets are traced as NATS protocol lines are."""
    tmp = tmp_path_factory.mktemp("mqtt-trace")
    conf = tmp / "traced.conf"
    conf.write_text(f'server_name: traced\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                    "mqtt { port: -1 }\n")
    server = Launch(tmp)("-c", str(conf), "-DV", name="traced")
    yield server
    server.stop()


async def test_15_packets_are_traced_as_nats_server_traces_them(traced_hub, mq) -> None:
    c = await mq(traced_hub.mqtt_port)
    await c.send(connect("tracer", V3, keepalive=60))
    await c.expect(h("20 02 00 00"))
    await c.send(subscribe(1, ("tr/#", 1)))
    await c.expect(h("90 03 00 01 01"))
    await c.send(publish("tr/x", b"hi", qos=1, pid=7))
    got = [await c.packet(), await c.packet()]
    assert sorted(p[0] for p in got) == [0x32, 0x40], [p.hex(" ") for p in got]
    delivery = next(p for p in got if p[0] == 0x32)
    await c.send(b"\x40\x02" + pid_of(delivery))
    await c.send(h("c0 00"))
    await c.expect(h("d0 00"))
    await c.send(h("e0 00"))
    await c.closed()
    lines = [
        '"tracer" - <<- [CONNECT clientID=tracer keepAlive=1m30s clean]',
        '"tracer" - ->> [CONNACK sp=false rc=0]',
        '"tracer" - <<- [SUBSCRIBE [tr/# (tr.>) QoS=1] pi=1]',
        '"tracer" - ->> [SUBACK pi=1 rc=[1]]',
        '"tracer" - <<- [PUBLISH tr/x dup=false QoS=1 retain=false size=2 pi=7]',
        '"tracer" - <<- MSG_PAYLOAD: ["hi"]',
        '"tracer" - ->> [PUBACK pi=7]',
        '"tracer" - ->> [PUBLISH tr/x dup=false QoS=1 retain=false size=2 pi=1]',
        '"tracer" - <<- [PUBACK pi=1]',
        '"tracer" - <<- [PINGREQ]',
        '"tracer" - ->> [PINGRESP]',
        '"tracer" - <<- [DISCONNECT]',
    ]
    log = await traced_hub.logged(*lines)
    traced = [line for line in log.splitlines() if '"tracer"' in line]
    for want in lines:
        assert any(line.endswith(want) and "[TRC] 127.0.0.1:" in line and " - mid:" in line
                   for line in traced), f"{want!r} not in\n" + "\n".join(traced)
    mids = {line.split(" - mid:")[1].split(" ")[0] for line in traced if "[TRC]" in line}
    assert len(mids) == 1, mids  # one connection, one number


async def test_15_mqtt_problems_leave_a_trace(traced_hub, mq) -> None:
    c = await mq(traced_hub.mqtt_port)
    await c.send(connect("broken", V5))
    assert (await c.packet())[:1] == b"\x20"
    await c.send(publish("bad/+", b"x", version=V5))
    await closes(c, V5, {0x82})
    log = await traced_hub.logged('"broken" - wildcard in topic name',
                             '"broken" - ->> [DISCONNECT rc=130]')
    assert '[DBG] 127.0.0.1:' in log and '"broken" - wildcard in topic name' in log, log
    assert '"broken" - ->> [DISCONNECT rc=130]' in log
