"""NATS over WebSocket, against Jetport and nats-server alike: nats-py's ws:// transport,
the websockets client, and hand-made frames for the edge cases."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import struct
from pathlib import Path

import nats
import pytest
import websockets
from certs import make_pki
from nats.errors import NoServersError
from servers import free_port
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_conf(port: int, extra: str = "", top: str = "") -> str:
    return f"{top}\nwebsocket {{\n  port: {port}\n  no_tls: true\n  {extra}\n}}\n"


def start(launch, extra: str = "", top: str = "") -> tuple[object, int]:
    port = free_port()
    return launch.conf(ws_conf(port, extra, top)), port


# -- a hand-made WebSocket client -------------------------------------------------------


def frame(op: int, data: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | op
    n = len(data)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 1 << 16:
        head = bytes((first, bit | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, bit | 127)) + struct.pack("!Q", n)
    if not mask:
        return head + data
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class RawWs:
    """A WebSocket connection driven frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 status: int, headers: dict[str, str]) -> None:
        self.reader, self.writer = reader, writer
        self.status, self.headers = status, headers
        self.frames: list[tuple[int, bool, bytes]] = []
        self._buf = b""
        self.eof = False

    @classmethod
    async def open(cls, port: int, headers: dict[str, str] | None = None,
                   path: str = "/") -> RawWs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *rest = head.decode().split("\r\n")
        fields = {}
        for line in rest:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        return cls(reader, writer, int(status_line.split()[1]), fields)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def _parse(self) -> None:
        buf = self._buf
        while len(buf) >= 2:
            size, pos = buf[1] & 0x7F, 2
            if size == 126:
                size, pos = struct.unpack("!H", buf[2:4])[0], 4
            elif size == 127:
                size, pos = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < pos + size:
                break
            self.frames.append((buf[0] & 0x0F, bool(buf[0] & 0x40), buf[pos:pos + size]))
            buf = buf[pos + size:]
        self._buf = buf

    async def _read(self, timeout: float) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._buf += data
        self._parse()
        return True

    def text(self) -> bytes:
        return b"".join(d for op, _, d in self.frames if op in (OP_BINARY, OP_TEXT, OP_CONT))

    async def until(self, marker: bytes, timeout: float = 3.0, count: int = 1) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.text().count(marker) < count:
            left = deadline - loop.time()
            if left <= 0 or (not await self._read(left) and self.eof):
                raise AssertionError(f"{marker!r} not seen in {self.text()!r}")
        return self.text()

    async def closed(self, timeout: float = 3.0) -> tuple[int, str] | None:
        """Wait for EOF; the close frame's (code, reason) if one came first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof and loop.time() < deadline:
            await self._read(deadline - loop.time())
        assert self.eof, "server did not close the connection"
        for op, _, data in self.frames:
            if op == OP_CLOSE:
                if len(data) < 2:
                    return (1005, "")
                return struct.unpack("!H", data[:2])[0], data[2:].decode()
        return None

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def handshake(port: int, connect: dict | None = None, **kw) -> RawWs:
    ws = await RawWs.open(port, **kw)
    assert ws.status == 101
    await ws.until(b"INFO ")
    body = json.dumps(connect or {"verbose": False, "pedantic": False}).encode()
    ws.send(frame(OP_BINARY, b"CONNECT " + body + b"\r\nPING\r\n"))
    return ws


def info_of(ws: RawWs) -> dict:
    text = ws.text()
    start = text.index(b"INFO ") + 5
    return json.loads(text[start:text.index(b"\r\n", start)])


# -- NATS clients over WebSocket ------------------------------------------------------


@pytest.mark.differential
async def test_nats_py_pub_sub_request_and_headers(launch) -> None:
    server, port = start(launch)
    nc = await nats.connect(f"ws://127.0.0.1:{port}")
    try:
        assert nc._server_info["port"] == port
        sub = await nc.subscribe("greet.*")
        await nc.publish("greet.a", b"hello", headers={"X-Test": "1"})
        msg = await sub.next_msg(timeout=2)
        assert (msg.subject, msg.data, msg.headers) == ("greet.a", b"hello", {"X-Test": "1"})

        async def answer(m) -> None:
            await m.respond(b"re:" + m.data)

        await nc.subscribe("svc", cb=answer)
        reply = await nc.request("svc", b"q", timeout=2)
        assert reply.data == b"re:q"
    finally:
        await nc.close()


@pytest.mark.differential
async def test_websocket_and_tcp_clients_share_subjects(launch) -> None:
    server, port = start(launch)
    ws_nc = await nats.connect(f"ws://127.0.0.1:{port}")
    tcp_nc = await nats.connect(server.url)
    try:
        sub = await ws_nc.subscribe("mix")
        await ws_nc.flush()
        big = os.urandom(200_000)
        await tcp_nc.publish("mix", big)
        await tcp_nc.flush()
        msg = await sub.next_msg(timeout=15)  # 200 KB over WebSocket on a loaded machine
        assert msg.data == big
    finally:
        await ws_nc.close()
        await tcp_nc.close()


@pytest.mark.differential
async def test_nats_py_jetstream_over_websocket(launch, tmp_path: Path) -> None:
    store = tmp_path / f"js-{launch.target}"
    server, port = start(launch, top=f'jetstream {{ store_dir: "{store}" }}')
    nc = await nats.connect(f"ws://127.0.0.1:{port}")
    try:
        js = nc.jetstream()
        await js.add_stream(name="WS", subjects=["ws.>"])
        for i in range(5):
            ack = await js.publish(f"ws.{i}", f"m{i}".encode())
            assert ack.seq == i + 1
        psub = await js.pull_subscribe("ws.>", durable="reader")
        msgs = await psub.fetch(5, timeout=3)
        assert [m.data for m in msgs] == [f"m{i}".encode() for i in range(5)]
        for m in msgs:
            await m.ack()
        kv = await js.create_key_value(bucket="cfg")
        await kv.put("color", b"blue")
        assert (await kv.get("color")).value == b"blue"
    finally:
        await nc.close()


@pytest.mark.differential
async def test_info_describes_the_websocket_listener(launch) -> None:
    server, port = start(launch)
    ws = await RawWs.open(port)
    await ws.until(b"\r\n")
    info = info_of(ws)
    assert info["port"] == port
    assert "tls_required" not in info and "auth_required" not in info
    assert all(op == OP_BINARY for op, _, _ in ws.frames)
    assert "sec-websocket-protocol" not in ws.headers
    await ws.close()


# -- framing --------------------------------------------------------------------------


@pytest.mark.differential
async def test_ops_split_across_frames_and_several_per_frame(launch) -> None:
    server, port = start(launch)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    ws.send(frame(OP_BINARY, b"SUB a 1\r\nSUB b 2\r\nPU") + frame(OP_BINARY, b"B a 2\r\nh")
            + frame(OP_BINARY, b"i\r\nPUB b 1\r\nx\r\nPI"))
    # a fragmented message: the same byte stream, continued
    ws.send(frame(OP_BINARY, b"N", fin=False) + frame(OP_CONT, b"G\r\n", fin=False)
            + frame(OP_CONT, b"", fin=True))
    text = await ws.until(b"PONG\r\n", count=2)
    assert b"MSG a 1 2\r\nhi\r\n" in text and b"MSG b 2 1\r\nx\r\n" in text
    await ws.close()


@pytest.mark.differential
async def test_text_frames_are_accepted_even_with_bad_utf8(launch) -> None:
    server, port = start(launch)
    ws = await RawWs.open(port)
    await ws.until(b"INFO ")
    ws.send(frame(OP_TEXT, b'CONNECT {"verbose":true}\r\nSUB t 1\r\nPUB t 2\r\n\xff\xfe\r\n'
                  b"PING\r\n"))
    text = await ws.until(b"PONG\r\n")
    assert b"MSG t 1 2\r\n\xff\xfe\r\n" in text
    assert all(op == OP_BINARY for op, _, _ in ws.frames)  # answers are binary frames
    await ws.close()


@pytest.mark.differential
async def test_ping_is_answered_with_pong(launch) -> None:
    server, port = start(launch)
    async with ws_connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.recv()  # INFO
        waiter = await ws.ping(b"probe")
        await asyncio.wait_for(waiter, 2)
    raw = await RawWs.open(port)
    raw.send(frame(OP_PING, b"hello"))
    await raw.until(b"INFO ")
    for _ in range(20):
        if any(op == OP_PONG for op, _, _ in raw.frames):
            break
        await raw._read(0.1)
    assert (OP_PONG, False, b"hello") in raw.frames
    await raw.close()


@pytest.mark.differential
async def test_compressed_frames_both_ways(launch) -> None:
    server, port = start(launch, "compression: true")
    async with ws_connect(f"ws://127.0.0.1:{port}", compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.recv()  # INFO
        payload = b"abc" * 5000
        await ws.send(b'CONNECT {"verbose":false}\r\nSUB z 1\r\nPUB z %d\r\n%s\r\nPING\r\n'
                      % (len(payload), payload))
        got = b""
        while b"PONG\r\n" not in got:
            got += await asyncio.wait_for(ws.recv(), 3)
        assert b"MSG z 1 15000\r\n" + payload + b"\r\n" in got


@pytest.mark.differential
async def test_no_compression_unless_configured(launch) -> None:
    server, port = start(launch)
    async with ws_connect(f"ws://127.0.0.1:{port}", compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
    raw = await handshake(port)
    await raw.until(b"PONG\r\n")
    raw.send(frame(OP_BINARY, b"PING\r\n", rsv=0x40))  # compressed, never negotiated
    code = await raw.closed()
    assert code is None or code[0] == 1002


@pytest.mark.differential
async def test_oversized_payload_closes_with_1009(launch) -> None:
    server, port = start(launch, top="max_payload: 1024")
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    ws.send(frame(OP_BINARY, b"PUB big 4000\r\n"))
    assert await ws.closed() == (1009, "Maximum Message Payload Exceeded")
    assert b"-ERR 'Maximum Payload Violation'" in ws.text()


@pytest.mark.differential
async def test_oversized_frame_is_refused(launch) -> None:
    server, port = start(launch, top="max_payload: 1024")
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    # a frame far beyond 8 x max_payload, of which only the start is sent
    whole = frame(OP_BINARY, b"PUB big 90000\r\n" + b"x" * 90000 + b"\r\n")
    ws.send(whole[:200])
    code = await ws.closed()
    assert code is not None and code[0] == 1009


@pytest.mark.differential
@pytest.mark.parametrize("bad", [
    frame(OP_BINARY, b"PING\r\n", mask=False),  # clients must mask
    frame(OP_CONT, b"PING\r\n"),  # a continuation of nothing
    frame(OP_BINARY, b"PING\r\n", rsv=0x20),  # RSV2
    frame(3, b"PING\r\n"),  # a reserved opcode
    frame(OP_PING, b"x" * 200),  # control frames carry at most 125 bytes
    frame(OP_BINARY, b"PI", fin=False) + frame(OP_BINARY, b"NG\r\n"),  # new before final
    frame(OP_CLOSE, struct.pack("!H", 999)),  # not a valid status
], ids=["unmasked", "lone-continuation", "rsv2", "reserved-opcode", "long-control",
        "new-before-final", "bad-close-status"])  # frames carry random masks
async def test_protocol_errors_close_with_1002(launch, bad: bytes) -> None:
    server, port = start(launch)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    ws.send(bad)
    code = await ws.closed()
    # nats-server may close before its close frame is written; when one comes it is 1002
    assert code is None or code[0] == 1002


@pytest.mark.differential
async def test_client_close_is_echoed(launch) -> None:
    server, port = start(launch)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    ws.send(frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await ws.closed() == (1000, "bye")
    async with ws_connect(f"ws://127.0.0.1:{port}") as client:
        await client.recv()
    assert client.protocol.close_code == 1000


@pytest.mark.differential
async def test_unknown_protocol_operation_closes(launch) -> None:
    server, port = start(launch)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    ws.send(frame(OP_BINARY, b"FOO\r\n"))
    code = await ws.closed()
    assert code is None or code[0] == 1002


@pytest.mark.differential
async def test_abrupt_close_leaves_the_server_serving(launch) -> None:
    server, port = start(launch)
    for _ in range(3):
        ws = await handshake(port)
        await ws.until(b"PONG\r\n")
        ws.send(frame(OP_BINARY, b"SUB x 1\r\nPUB x 5\r\nhel"))  # cut mid-message
        ws.writer.transport.abort()
    nc = await nats.connect(f"ws://127.0.0.1:{port}")
    try:
        sub = await nc.subscribe("x")
        await nc.publish("x", b"alive")
        assert (await sub.next_msg(timeout=2)).data == b"alive"
    finally:
        await nc.close()


@pytest.mark.differential
async def test_auth_timeout_closes_with_1008(launch) -> None:
    server, port = start(launch, top="authorization { user: a, password: b, timeout: 0.5 }")
    ws = await RawWs.open(port)
    await ws.until(b"INFO ")
    assert info_of(ws)["auth_required"] is True
    assert await ws.closed(5) == (1008, "Authentication Timeout")
    assert b"-ERR 'Authentication Timeout'" in ws.text()


@pytest.mark.differential
async def test_max_connections(launch) -> None:
    server, port = start(launch, top="max_connections: 1")
    first = await handshake(port)
    await first.until(b"PONG\r\n")
    second = await RawWs.open(port)
    assert await second.closed() == (1008, "Maximum Connections Exceeded")
    assert b"-ERR 'maximum connections exceeded'" in second.text()
    await first.close()


@pytest.mark.differential
async def test_server_shutdown_sends_1001(launch) -> None:
    server, port = start(launch)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    server.stop()
    assert await ws.closed(8) == (1001, "Server Shutdown")


# -- origins ----------------------------------------------------------------------------


@pytest.mark.differential
async def test_allowed_origins(launch) -> None:
    server, port = start(
        launch, 'allowed_origins: ["http://good.example", "https://sec.example:8443"]')
    for origin, status in [("http://good.example", 101), ("http://good.example:80", 101),
                           ("https://sec.example:8443", 101), ("http://evil.example", 403),
                           ("https://sec.example", 403), ("https://good.example", 403),
                           (None, 101)]:
        ws = await RawWs.open(port, {"Origin": origin} if origin else {})
        assert ws.status == status, origin
        await ws.close()


@pytest.mark.differential
async def test_same_origin(launch) -> None:
    server, port = start(launch, "same_origin: true")
    for origin, status in [(f"http://127.0.0.1:{port}", 101), ("http://127.0.0.1", 403),
                           (f"https://127.0.0.1:{port}", 403), ("http://other.example", 403)]:
        ws = await RawWs.open(port, {"Origin": origin})
        assert ws.status == status, origin
        await ws.close()


@pytest.mark.differential
async def test_nats_py_refused_by_origin_policy_still_connects_without_origin(
    launch,
) -> None:
    server, port = start(launch, 'allowed_origins: "http://good.example"')
    nc = await nats.connect(f"ws://127.0.0.1:{port}")  # no Origin header: not a browser
    await nc.close()


# -- auth -----------------------------------------------------------------------------

USERS = """
authorization {
  users: [
    {user: both, password: pw}
    {user: wsonly, password: pw, allowed_connection_types: ["WEBSOCKET"]}
    {user: tcponly, password: pw, allowed_connection_types: ["STANDARD"]}
  ]
}
"""


@pytest.mark.differential
async def test_allowed_connection_types(launch) -> None:
    server, port = start(launch, top=USERS)
    ws_url = f"ws://127.0.0.1:{port}"
    for user in ("both", "wsonly"):
        nc = await nats.connect(ws_url, user=user, password="pw", max_reconnect_attempts=0)
        await nc.close()
    for url, user in ((ws_url, "tcponly"), (server.url, "wsonly")):
        with pytest.raises((nats.errors.Error, NoServersError, OSError)):
            await nats.connect(url, user=user, password="pw", allow_reconnect=False,
                               max_reconnect_attempts=0, connect_timeout=2)
    ws = await handshake(port, {"verbose": False, "pedantic": False, "user": "tcponly",
                                "pass": "pw"})
    assert await ws.closed(5) == (1008, "Authentication Failure")
    assert b"-ERR 'Authorization Violation'" in ws.text()


@pytest.mark.differential
async def test_credentials_from_cookies(launch) -> None:
    server, port = start(launch, 'user_cookie: "u"\n  pass_cookie: "p"', top=USERS)
    ws = await handshake(port, headers={"Cookie": "u=wsonly; p=pw"})
    assert b"PONG\r\n" in await ws.until(b"PONG\r\n")
    await ws.close()
    # CONNECT's own credentials win over the cookies
    ws = await handshake(port, {"user": "tcponly", "pass": "pw"},
                         headers={"Cookie": "u=wsonly; p=pw"})
    assert await ws.closed(5) == (1008, "Authentication Failure")


@pytest.mark.differential
async def test_websocket_token_overrides_server_auth(launch) -> None:
    server, port = start(launch, 'authorization { token: "s3cret" }')
    nc = await nats.connect(server.url)  # the TCP port needs no auth
    await nc.close()
    ws = await RawWs.open(port)
    await ws.until(b"INFO ")
    assert info_of(ws)["auth_required"] is True
    await ws.close()
    nc = await nats.connect(f"ws://127.0.0.1:{port}", token="s3cret")
    await nc.close()
    ws = await handshake(port, {"auth_token": "wrong"})
    assert await ws.closed(5) == (1008, "Authentication Failure")


@pytest.mark.differential
async def test_websocket_no_auth_user(launch) -> None:
    top = USERS + "\nno_auth_user: tcponly\n"
    server, port = start(launch, "no_auth_user: wsonly", top=top)
    ws = await handshake(port)
    await ws.until(b"PONG\r\n")
    await ws.close()


# -- wss ------------------------------------------------------------------------------


@pytest.mark.differential
async def test_wss(launch, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    launch.conf(f'websocket {{\n  port: {port}\n  tls {{ cert_file: "{pki.server.cert}"\n'
                f'    key_file: "{pki.server.key}" }}\n}}\n')
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    async with ws_connect(f"wss://127.0.0.1:{port}", ssl=ctx) as ws:
        info = json.loads((await ws.recv())[5:])
        assert info["tls_required"] is True and info["port"] == port
    nc = await nats.connect(f"wss://127.0.0.1:{port}", tls=ctx)
    try:
        sub = await nc.subscribe("s")
        await nc.publish("s", b"secure")
        assert (await sub.next_msg(timeout=2)).data == b"secure"
    finally:
        await nc.close()


# -- configuration ----------------------------------------------------------------------


@pytest.mark.differential
def test_unknown_key_is_a_config_error(launch) -> None:
    with pytest.raises(RuntimeError) as info:
        start(launch, "bogus: 1")
    assert 'unknown field "' in str(info.value)
    assert f"{launch.target}-0.conf:5:" in str(info.value)


@pytest.mark.differential
def test_allowed_origins_must_be_http_urls(launch) -> None:
    with pytest.raises(RuntimeError) as info:
        start(launch, 'allowed_origins: ["ftp://x"]')
    assert "allowed origins must be absolute URLs with http or https scheme" in str(info.value)


@pytest.mark.differential
def test_tls_or_no_tls_is_required(launch) -> None:
    with pytest.raises(RuntimeError) as info:
        launch.conf(f"websocket {{ port: {free_port()} }}\n")
    assert "websocket requires TLS configuration" in str(info.value)


@pytest.mark.differential
async def test_websockets_library_sees_binary_messages(launch) -> None:
    server, port = start(launch)
    async with ws_connect(f"ws://127.0.0.1:{port}") as ws:
        first = await ws.recv()
        assert isinstance(first, bytes) and first.startswith(b"INFO ")
        await ws.send("CONNECT {}\r\nPING\r\n")  # a text message
        got = b""
        while b"PONG" not in got:
            got += await asyncio.wait_for(ws.recv(), 2)
        await ws.close()
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert websockets.__version__


@pytest.mark.differential
async def test_slow_consumer_is_dropped(launch) -> None:
    server, port = start(launch, top="max_pending: 262144\nmax_payload: 65536")
    ws = await handshake(port)
    ws.send(frame(OP_BINARY, b"SUB flood 1\r\nPING\r\n"))
    await ws.until(b"PONG\r\n", count=2)
    # from now on the WebSocket client reads nothing
    nc = await nats.connect(server.url)
    try:
        chunk = b"x" * 1024
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while "Slow Consumer Detected" not in server.log() and loop.time() < deadline:
            for _ in range(2000):
                await nc.publish("flood", chunk)
            await nc.flush()
        assert "Slow Consumer Detected" in server.log()
    finally:
        await nc.close()
        await ws.close()


@pytest.mark.differential
async def test_refused_upgrade_with_bad_frames_in_the_same_read_just_closes(launch) -> None:
    """The upgrade request and a malformed frame arrive together for an unknown path:
    the connection closes (Jetport sends no response once the frame parser gave up) and
    the door goes on serving."""
    server, port = start(launch)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                 + b"\x83\x80\x00\x00\x00\x00")
    await asyncio.wait_for(reader.read(), 5)  # to the end: closed
    writer.close()
    nc = await nats.connect(f"ws://127.0.0.1:{port}")
    await nc.close()
