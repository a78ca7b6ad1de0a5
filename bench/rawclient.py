"""Raw NATS client-protocol connections for load generation.

The benchmark must measure the server, not a client library, so these connections speak the
wire protocol directly on asyncio protocols (not streams) and keep per-message Python work to
a minimum: publishers write pre-encoded frame batches, and subscribers that only count live in
``counter``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

CONNECT_OPTS = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
PING_MARK = b"PING\r\n"
PONG = b"PONG\r\n"
# Payload filler: lowercase only, so message traffic never contains "MSG ", "PING" or even the
# letters I and E, which the cheap control-line probes rely on.
FILL = b"x"
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 << 10


class ProtocolError(Exception):
    """The server refused or dropped a connection."""


def fail(fut: asyncio.Future[Any] | None, reason: str) -> None:
    """Fail a future that nobody may be awaiting any more, without "never retrieved" noise."""
    if fut is not None and not fut.done():
        fut.set_exception(ProtocolError(reason))
        fut.exception()


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and how to authenticate, parsed from a ``nats://`` URL."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.scheme not in ("nats", "tcp"):
            raise ValueError(f"unsupported URL scheme: {url}")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname or "127.0.0.1", parts.port or 4222, user, password)

    def connect_frame(self, name: str, options: dict[str, object] | None = None) -> bytes:
        opts: dict[str, object] = dict(CONNECT_OPTS, name=name, lang="python-raw", version="0")
        opts.update(options or {})
        if self.user and self.password is None:
            opts["auth_token"] = self.user
        elif self.user:
            opts["user"], opts["pass"] = self.user, self.password
        return b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + b"\r\n"


def pub_frame(subject: str, payload: bytes, reply: str = "") -> bytes:
    """One encoded PUB frame; batches are built by repeating it."""
    head = f"PUB {subject} {reply} {len(payload)}\r\n" if reply else (
        f"PUB {subject} {len(payload)}\r\n"
    )
    return head.encode() + payload + b"\r\n"


def hpub_frame(subject: str, headers: dict[str, str], payload: bytes) -> bytes:
    """One encoded HPUB frame with a ``NATS/1.0`` header block."""
    block = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    hdr = block.encode()
    head = f"HPUB {subject} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode()
    return head + hdr + payload + b"\r\n"


class RawConn(asyncio.BaseProtocol):
    """Handshake, write flow control and server PING handling shared by every role.

    Until the handshake PONG arrives, input is parsed line by line; afterwards it goes to
    ``on_data``, which subclasses make as cheap as their role allows. It derives from
    ``BaseProtocol`` (with ``data_received``) rather than ``Protocol`` so that a subclass can
    also be a ``BufferedProtocol``: uvloop only uses ``get_buffer`` on non-``Protocol`` classes.
    """

    def __init__(self, endpoint: Endpoint, name: str, setup: bytes = b"",
                 options: dict[str, object] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.error: str | None = None
        self._connect = endpoint.connect_frame(name, options) + setup + b"PING\r\n"
        self._handshaking = True
        self._hbuf = b""
        self._drain: asyncio.Future[None] | None = None
        self._tail = b""

    # -- asyncio protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            self._handshake(data)
        else:
            self.on_data(data)

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.error or (f"connection lost: {exc}" if exc else "closed by server")
        self.error = reason
        fail(self.ready, reason)
        fail(self._drain, reason)
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_lost(reason)

    # -- handshake ----------------------------------------------------------------------------
    def _handshake(self, data: bytes) -> None:
        self._hbuf += data
        while self._handshaking:
            end = self._hbuf.find(b"\r\n")
            if end < 0:
                return
            line, self._hbuf = self._hbuf[:end], self._hbuf[end + 2 :]
            if line.startswith(b"INFO"):
                self.write(self._connect)
            elif line == b"PING":
                self.write(PONG)
            elif line == b"PONG":
                self._handshaking = False
                if not self.ready.done():
                    self.ready.set_result(None)
            elif line.startswith(b"-ERR"):
                self.error = line.decode(errors="replace")
                fail(self.ready, self.error)
                self.close()
                return
        rest, self._hbuf = self._hbuf, b""
        if rest:
            self.on_data(rest)

    # -- role hooks ---------------------------------------------------------------------------
    def on_data(self, data: bytes) -> None:
        """Default: answer PINGs, remember errors, ignore everything else."""
        self.watch(data)

    def on_lost(self, reason: str) -> None:
        """Called once when the connection ends."""

    def watch(self, data: bytes) -> None:
        """Answer server PINGs and note -ERR without parsing, even when split across reads.

        Message traffic never contains ``I`` or ``E`` (subjects and payloads are lowercase), so a
        memchr-speed test skips the full scan on almost every read.
        """
        tail = self._tail
        edge = tail + data[:5]
        if b"I" in data or b"E" in data or b"I" in edge or b"E" in edge:
            pings = data.count(PING_MARK) + edge.count(PING_MARK)
            if pings:
                self.write(PONG * pings)
            at = data.find(b"-ERR")
            if at >= 0:
                self.error = data[at : data.find(b"\r\n", at)].decode(errors="replace")
        self._tail = data[-5:] if len(data) >= 5 else edge[-5:]

    # -- writing ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    @property
    def paused(self) -> bool:
        """True while the transport's write buffer is above the high-water mark."""
        return self._drain is not None

    async def drained(self) -> None:
        """Wait while the transport's write buffer is above the high-water mark."""
        if self._drain is not None:
            await self._drain

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


MsgHandler = Callable[[bytes, bytes, bytes], None]


class Parsed(RawConn):
    """Connection with a full MSG/HMSG parser, for roles that need subjects and payloads."""

    def __init__(self, endpoint: Endpoint, name: str, setup: bytes, on_msg: MsgHandler) -> None:
        super().__init__(endpoint, name, setup)
        self.on_msg = on_msg
        self._buf = b""
        self._head: list[bytes] | None = None
        self._need = 0

    def on_data(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        while True:
            if self._head is not None:
                if len(buf) - pos < self._need + 2:
                    break
                head, end = self._head, pos + self._need
                self._head = None
                reply = head[3] if len(head) > 4 else b""
                self.on_msg(head[1], reply, buf[pos:end])
                pos = end + 2
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            line = buf[pos:eol]
            pos = eol + 2
            if line.startswith((b"MSG ", b"HMSG ")):
                head = line.split()
                # HMSG carries header and total sizes; only the total matters here.
                self._need = int(head[-1])
                self._head = head if head[0] == b"MSG" else head[:-2] + [head[-1]]
            elif line == b"PING":
                self.write(PONG)
            elif line.startswith(b"-ERR"):
                self.error = line.decode(errors="replace")
        self._buf = buf[pos:]


C = TypeVar("C", bound=RawConn)


async def connect(factory: Callable[[], C], endpoint: Endpoint, timeout: float) -> C:
    """Open a connection and wait for the handshake PONG (setup frames are applied by then).

    ``asyncio.timeout`` rather than ``wait_for``: on 3.11 the latter can swallow a
    cancellation that races with completion, leaving abandoned attempts running.
    """
    loop = asyncio.get_running_loop()
    proto: C | None = None
    try:
        async with asyncio.timeout(timeout):
            _, proto = await loop.create_connection(factory, endpoint.host, endpoint.port)
            await proto.ready
    except BaseException:
        if proto is not None:
            proto.close()
        raise
    return proto
