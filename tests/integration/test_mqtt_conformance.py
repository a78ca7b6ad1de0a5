"""MQTT broker conformance in raw bytes, in the style of Mosquitto's broker tests.

Each case is numbered by packet type (01 CONNECT, 02 PUBLISH, 03 SUBSCRIBE, 04
UNSUBSCRIBE, 05 PING/keepalive, 06 DISCONNECT, 07 sessions, 08 MQTT 5 only) and says the
bytes sent and the bytes expected.  Where brokers differ, the OASIS texts (3.1.1 and 5.0)
decide: a malformed packet or protocol error closes a 3.1.1 connection, and an MQTT 5
connection gets DISCONNECT with the reason code first.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Launch, ServerProcess

from jetport.bench.mqtt import mqtt_string as s
from jetport.bench.mqtt import packet as pkt
from jetport.bench.mqtt import varint

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


def properties(data: bytes) -> dict[int, object]:
    """MQTT 5 properties (without their length prefix) as {identifier: value}."""
    out: dict[int, object] = {}
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
            out.setdefault(0x26, []).append(value)  # type: ignore[union-attr]
            continue
        else:
            raise AssertionError(f"unknown property 0x{ident:02x} in {data.hex(' ')}")
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
