"""MQTT broker conformance in raw bytes, in the style of Mosquitto's broker tests.

Each case is numbered by packet type (01 CONNECT, 02 PUBLISH, 03 SUBSCRIBE, 04
UNSUBSCRIBE, 05 PING/keepalive, 06 DISCONNECT, 07 sessions, 08 MQTT 5 only, 09 MQTT 5
session expiry and wills, 10 MQTT 5 request/response, shared subscriptions and
subscription identifiers) and says the bytes sent and the bytes expected.  Where
brokers differ, the OASIS texts (3.1.1 and 5.0) decide: a malformed packet or protocol
error closes a 3.1.1 connection, and an MQTT 5 connection gets DISCONNECT with the
reason code first.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from servers import Launch, ServerProcess

from jetport.bench.mqtt import mqtt_string as s
from jetport.bench.mqtt import packet as pkt
from jetport.bench.mqtt import varint
from jetport.bridges.mqtt.store import session_token

V3, V5 = 4, 5
_ids = itertools.count(1)

# -- encoding ---------------------------------------------------------------------------


def h(text: str) -> bytes:
    """Hex with spaces, plus quoted ASCII: ``h("00 04 'MQTT'")``."""
    parts = text.split("'")
    return b"".join(p.encode() if i % 2 else bytes.fromhex(p) for i, p in enumerate(parts))


def connect(cid: str = "", version: int = V3, flags: int = 0x02, keepalive: int = 60,
            props: bytes = b"", tail: bytes = b"") -> bytes:
    """A CONNECT; ``tail`` holds will/username/password fields after the client id."""
    body = s("MQTT") + bytes([version, flags]) + struct.pack(">H", keepalive)
    if version == V5:
        body += varint(len(props)) + props
    return pkt(0x10, body + s(cid) + tail)


def publish(topic: str | bytes, payload: bytes, qos: int = 0, pid: int = 0, retain: bool = False,
            dup: bool = False, version: int = V3, props: bytes = b"") -> bytes:
    first = 0x30 | qos << 1 | int(retain) | (0x08 if dup else 0)
    body = s(topic) + (struct.pack(">H", pid) if qos else b"")
    if version == V5:
        body += varint(len(props)) + props
    return pkt(first, body + payload)


def subscribe(pid: int, *filters: tuple[str, int], version: int = V3, props: bytes = b"") -> bytes:
    body = struct.pack(">H", pid)
    if version == V5:
        body += varint(len(props)) + props
    for topic, options in filters:
        body += s(topic) + bytes([options])
    return pkt(0x82, body)


def unsubscribe(pid: int, *filters: str, version: int = V3) -> bytes:
    body = struct.pack(">H", pid) + (b"\x00" if version == V5 else b"")
    return pkt(0xA2, body + b"".join(s(f) for f in filters))


def ack(first: int, pid: int) -> bytes:
    return bytes([first, 2]) + struct.pack(">H", pid)


# -- decoding ---------------------------------------------------------------------------

_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x27}
_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BIN = {0x09, 0x16}


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        shift += 7
        if not b & 0x80:
            return value, i


def property_list(data: bytes) -> list[tuple[int, object]]:
    """MQTT 5 properties (without their length prefix) in order, repeats kept."""
    out: list[tuple[int, object]] = []
    i = 0
    while i < len(data):
        ident = data[i]
        i += 1
        if ident in _BYTE:
            value: object = data[i]
            i += 1
        elif ident in _U16:
            value, i = struct.unpack_from(">H", data, i)[0], i + 2
        elif ident in _U32:
            value, i = struct.unpack_from(">I", data, i)[0], i + 4
        elif ident == 0x0B:
            value, i = read_varint(data, i)
        elif ident in _STR or ident in _BIN:
            n = struct.unpack_from(">H", data, i)[0]
            value, i = data[i + 2 : i + 2 + n], i + 2 + n
        elif ident == 0x26:
            k = struct.unpack_from(">H", data, i)[0]
            key = data[i + 2 : i + 2 + k]
            i += 2 + k
            v = struct.unpack_from(">H", data, i)[0]
            value, i = (key, data[i + 2 : i + 2 + v]), i + 2 + v
        else:
            raise AssertionError(f"unknown property 0x{ident:02x} in {data.hex(' ')}")
        out.append((ident, value))
    return out


def properties(data: bytes) -> dict[int, object]:
    """MQTT 5 properties (without their length prefix) as {identifier: value}; user
    properties as a list of (key, value)."""
    out: dict[int, object] = {}
    for ident, value in property_list(data):
        if ident == 0x26:
            out.setdefault(0x26, []).append(value)  # type: ignore[union-attr]
        else:
            out[ident] = value
    return out


def reason_of(packet: bytes) -> int:
    """The reason code of a v5 ack or DISCONNECT (0 when the short form omits it)."""
    _, i = read_varint(packet, 1)
    body = packet[i:]
    first = packet[0] >> 4
    at = 0 if first == 14 else 2 if first in (4, 5, 6, 7) else 1
    return body[at] if len(body) > at else 0


class Mqtt:
    """A raw MQTT connection: send bytes, read whole packets, see the close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Mqtt:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    async def packet(self, timeout: float = 2.0) -> bytes:
        """One whole packet; b"" when the connection closed or nothing came in time."""
        try:
            return await asyncio.wait_for(self._packet(), timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            return b""

    async def _packet(self) -> bytes:
        head = await self.reader.readexactly(1)
        length = shift = 0
        while True:
            b = (await self.reader.readexactly(1))[0]
            head += bytes([b])
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head + await self.reader.readexactly(length)

    async def expect(self, want: bytes, timeout: float = 2.0) -> None:
        got = await self.packet(timeout)
        assert got.hex(" ") == want.hex(" ")

    async def closed(self, timeout: float = 2.0) -> bytes:
        """Wait for the server to close; return everything it sent first.

        Fails when the connection is still open after ``timeout``.
        """
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"connection still open; got {out.hex(' ')}"
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                return out
            if not data:
                return out
            out += data

    async def quiet(self, timeout: float = 0.3) -> bytes:
        """Whatever arrives within ``timeout`` (b"" when nothing does)."""
        return await self.packet(timeout)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError):
            pass


# -- fixtures ---------------------------------------------------------------------------


def _start(tmp: Path, text: str, name: str) -> ServerProcess:
    conf = tmp / f"{name}.conf"
    conf.write_text(text)
    server = Launch(tmp)("-c", str(conf), name=name)
    assert server.mqtt_port, server.log()
    return server


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-conf")
    server = _start(tmp, f'server_name: conf\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1 }\n", "hub")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_hub(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-auth")
    server = _start(tmp, f'server_name: auth\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1 }\n"
                         "authorization { users: [\n"
                         "  {user: dev, password: pw}\n"
                         "  {user: ro, password: pw,"
                         " permissions: {subscribe: {deny: [\"secret.>\"]}}}\n"
                         "] }\n", "auth")
    yield server
    server.stop()


@pytest.fixture
async def mq(hub):
    """Open raw connections to the module's hub: ``await mq()``; closed afterwards."""
    opened: list[Mqtt] = []

    async def open_one(port: int | None = None) -> Mqtt:
        c = await Mqtt.open(port or hub.mqtt_port)
        opened.append(c)
        return c

    yield open_one
    for c in opened:
        await c.close()


def cid(prefix: str = "c") -> str:
    return f"{prefix}{next(_ids)}"


async def connected(mq, version: int = V3, client_id: str | None = None, flags: int = 0x02,
                    props: bytes = b"", port: int | None = None) -> Mqtt:
    """A connection past a successful CONNACK."""
    c = await mq(port)
    await c.send(connect(client_id or cid(), version, flags, props=props))
    ack_packet = await c.packet()
    assert ack_packet[:1] == b"\x20" and ack_packet[3:4] == b"\x00", ack_packet.hex(" ")
    return c


async def v5_connack(mq, props: bytes = b"") -> tuple[Mqtt, dict[int, object]]:
    c = await mq()
    await c.send(connect(cid(), V5, props=props))
    got = await c.packet()
    assert got[:1] == b"\x20" and got[3] == 0, got.hex(" ")
    plen, i = read_varint(got, 4)
    return c, properties(got[i : i + plen])


async def closes(c: Mqtt, version: int, reasons: set[int] | None = None) -> None:
    """3.1.1: plain close.  5: DISCONNECT with one of ``reasons`` (if given), then close."""
    rest = await c.closed()
    if version == V3:
        assert rest == b"", f"3.1.1 must just close, got {rest.hex(' ')}"
    elif reasons is not None:
        assert rest[:1] == b"\xe0", f"expected DISCONNECT, got {rest.hex(' ')}"
        assert reason_of(rest) in reasons, f"reason 0x{reason_of(rest):02x} in {rest.hex(' ')}"


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


def pid_of(packet: bytes) -> bytes:
    """The packet id of a QoS 1/2 PUBLISH."""
    _, i = read_varint(packet, 1)
    n = struct.unpack_from(">H", packet, i)[0]
    return packet[i + 2 + n : i + 4 + n]


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


async def wait_for_log(server: ServerProcess, *texts: str, timeout: float = 3.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()
        if all(t in log for t in texts) or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.05)


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
    log = await wait_for_log(traced_hub, *lines)
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
    log = await wait_for_log(traced_hub, '"broken" - wildcard in topic name',
                             '"broken" - ->> [DISCONNECT rc=130]')
    assert '[DBG] 127.0.0.1:' in log and '"broken" - wildcard in topic name' in log, log
    assert '"broken" - ->> [DISCONNECT rc=130]' in log
