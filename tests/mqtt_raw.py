"""Raw MQTT bytes for the conformance tests: packet builders, a decoder for what the
broker answers, a connection that reads whole packets, and the hubs they run against
(module-scoped fixtures, imported by each conformance module as ``*_fixture``)."""

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


def pid_of(packet: bytes) -> bytes:
    """The packet id of a QoS 1/2 PUBLISH."""
    _, i = read_varint(packet, 1)
    n = struct.unpack_from(">H", packet, i)[0]
    return packet[i + 2 + n : i + 4 + n]


# -- fixtures ---------------------------------------------------------------------------


def _start(tmp: Path, text: str, name: str) -> ServerProcess:
    conf = tmp / f"{name}.conf"
    conf.write_text(text)
    server = Launch(tmp)("-c", str(conf), name=name)
    assert server.mqtt_port, server.log()
    return server


@pytest.fixture(scope="module", name="hub")
def hub_fixture(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mqtt-conf")
    server = _start(tmp, f'server_name: conf\njetstream {{ store_dir: "{tmp / "js"}" }}\n'
                         "mqtt { port: -1 }\n", "hub")
    yield server
    server.stop()


@pytest.fixture(scope="module", name="auth_hub")
def auth_hub_fixture(tmp_path_factory) -> Iterator[ServerProcess]:
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


@pytest.fixture(name="mq")
async def mq_fixture(hub):
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
