"""RFC 6455 under an ``asyncio.Protocol``, and the byte transport a carried protocol sees.

:class:`WsConnection` owns the TCP (or TLS) socket.  It runs the sans-I/O
``websockets.server.ServerProtocol``: the HTTP upgrade first, then frames.  After the
upgrade, each data frame's payload goes straight to the carried protocol's
``data_received`` (no reassembly, no task per message: frame boundaries mean nothing to
a byte stream such as NATS), and whatever that protocol writes leaves as one binary
frame per ``write`` through :class:`WsTransport`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from jetport.bridges.websocket.origin import origin_error
from jetport.bridges.websocket.registry import Route, Upgrade, routes
from jetport.core.config.options import DEFAULT_MAX_PAYLOAD
from jetport.core.log import log

if TYPE_CHECKING:
    from jetport.bridges.websocket.door import WebSocketDoor

#: The websockets library's own chatter ("connection open") stays out of the hub's log.
_FRAME_LOG = logging.getLogger("jetport.websocket.frames")
_FRAME_LOG.setLevel(logging.WARNING)

#: nats-server's cap on one WebSocket message: 8 x max_payload, at most 64 MiB.
MAX_MESSAGE_FACTOR = 8
MAX_MESSAGE_LIMIT = 64 << 20
#: Bound on the upgrade request when the block sets no handshake_timeout (seconds):
#: nats-server waits for it forever without TLS, so a client that never finishes its
#: request would hold a descriptor for good; no real client needs this long.
DEFAULT_UPGRADE_DEADLINE = 10.0

CLOSE_NORMAL = 1000
#: Frames whose payload belongs to the carried byte stream.
_DATA_OPCODES = frozenset((Opcode.BINARY, Opcode.TEXT, Opcode.CONT))


def max_message_size(max_payload: int) -> int:
    if max_payload <= 0:
        max_payload = DEFAULT_MAX_PAYLOAD
    return min(max_payload * MAX_MESSAGE_FACTOR, MAX_MESSAGE_LIMIT)


def accept(ws: ServerProtocol, request: Request) -> Response:
    """``ws.accept``, with a 400 where websockets 13 fails to encode its own error text
    (a header that is not UTF-8 ends up in the message of the 400 it builds)."""
    try:
        return ws.accept(request)
    except UnicodeEncodeError as exc:
        ws.handshake_exc = exc
        return ws.reject(400, "Bad Request\n")


class WsConnection(asyncio.Protocol):
    """One TCP connection on the WebSocket door: the handshake, then framing."""

    def __init__(self, door: WebSocketDoor) -> None:
        self.door = door
        opts = door.ws_options
        extensions = []
        if opts.compression:
            extensions.append(ServerPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True,
                compress_settings={"level": 1},
            ))
        self.ws = ServerProtocol(
            extensions=extensions,
            select_subprotocol=lambda _proto, _offered: cast(Subprotocol | None,
                                                             self._subprotocol),
            max_size=max_message_size(door.hub.options.max_payload),
            logger=_FRAME_LOG,
        )
        self.tcp: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None
        self.transport: WsTransport | None = None
        self.upgrade: Upgrade | None = None
        self.closing = False
        #: (code, reason) of the close frame :meth:`close` sends.
        self.close_code = (CLOSE_NORMAL, "")
        self._subprotocol: str | None = None
        self.paused = False
        self._held: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    # -- TCP side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport  # type: ignore[assignment]
        self.door.connections.add(self)
        timeout = self.door.ws_options.handshake_timeout or DEFAULT_UPGRADE_DEADLINE
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.inner is None and self.tcp is not None:
            peer = self.tcp.get_extra_info("peername") or ("", 0)
            log.debug("%s:%s - websocket handshake error: timeout", peer[0], peer[1])
            self.tcp.abort()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        inner = self.inner
        if inner is not None and len(events) == 1 and not (self.paused or self.closing):
            # the common case: one data frame
            frame = events[0]
            if type(frame) is Frame and frame.opcode in _DATA_OPCODES:
                inner.data_received(bytes(frame.data))
        elif events:
            self._events(events)
        self._send()

    def _events(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, Request):
                self._handshake(ev)
                continue
            if self.inner is None or self.closing:
                return
            op = ev.opcode
            if op in _DATA_OPCODES:
                if self.paused:
                    self._held.append(ev.data)
                else:
                    self.inner.data_received(ev.data)

    def _send(self) -> None:
        """Write what the WebSocket protocol produced; an empty chunk means: close TCP."""
        out = self.ws.data_to_send()
        if not out or self.tcp is None:
            return
        for chunk in out:
            if chunk:
                self.tcp.write(chunk)
            else:
                self._read_error()
                self.closing = True
                self.tcp.close()
                return

    def _read_error(self) -> None:
        """Log why the WebSocket layer gave up on the connection: the peer's mistake, so
        at debug level and in the protocol's words."""
        exc = self.ws.parser_exc
        if exc is None or isinstance(exc, EOFError) or self.tcp is None:
            return
        peer = self.tcp.get_extra_info("peername") or ("", 0)
        cid = getattr(self.inner, "cid", None)
        who = f"{peer[0]}:{peer[1]}" + (f" - wid:{cid}" if cid is not None else "")
        log.debug("%s - websocket read error: %s", who, frame_error(exc))

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.door.connections.discard(self)
        self._held = []
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- the upgrade ------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        ws, door = self.ws, self.door
        assert self.tcp is not None
        path, _, query = request.path.partition("?")
        headers = {k.lower(): v for k, v in reversed(list(request.headers.raw_items()))}
        offered = [p.strip() for v in request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in v.split(",") if p.strip()]
        route, self._subprotocol = routes(door.hub).select(path, offered)
        tls = self.tcp.get_extra_info("ssl_object") is not None
        peer = self.tcp.get_extra_info("peername") or ("", 0)
        refusal = origin_error(door.ws_options, headers, tls)
        if refusal is not None:
            log.debug("%s:%s - websocket handshake error: origin not allowed: %s",
                      peer[0], peer[1], refusal)
            response = ws.reject(403, "Forbidden\n")
        elif route is None:
            response = ws.reject(404, "Not Found\n")
        else:
            response = accept(ws, request)
            if response.status_code != 101:
                log.debug("%s:%s - websocket handshake error: %s", peer[0], peer[1],
                          ws.handshake_exc)
                response = ws.reject(400, "Bad Request\n")
            else:
                for name, value in door.ws_options.headers.items():
                    response.headers[name] = value
        if response.status_code != 101:
            response.headers["Sec-Websocket-Version"] = "13"
        if ws.eof_sent:
            # Bad frames came in the same read as the upgrade request and the protocol
            # object already gave up on the stream: no response can follow, just close.
            log.debug("%s:%s - websocket handshake error: %s", peer[0], peer[1],
                      frame_error(ws.parser_exc) if ws.parser_exc else "stream closed")
            self.closing = True
            self.tcp.close()
            return
        ws.send_response(response)
        if response.status_code != 101 or route is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.upgrade = _upgrade(path, query, headers, self._subprotocol, tls)
        self._start(route)

    def _start(self, route: Route) -> None:
        assert self.upgrade is not None
        self._send()  # the 101 goes out before the protocol's first words
        try:
            inner = route.factory(self.upgrade)
        except Exception:  # noqa: BLE001 - logged with what it belongs to
            log.exception("websocket: cannot start %s", route.name)
            self.close(1011, "Internal Server Error")
            return
        self.inner = inner
        self.transport = WsTransport(self)
        inner.connection_made(self.transport)

    # -- the carried protocol's side --------------------------------------------------

    def send(self, data: bytes) -> None:
        ws = self.ws
        if ws.state is not State.OPEN or self.closing or not data:
            return
        ws.send_binary(data)
        out = ws.data_to_send()
        tcp = self.tcp
        assert tcp is not None
        if len(out) == 1:
            tcp.write(out[0])
        else:
            tcp.writelines(out)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a close frame (once) and close TCP once what is queued has gone."""
        if self.closing or self.tcp is None:
            return
        self.closing = True
        if code is None:
            code, reason = self.close_code
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, _truncate(reason or ""))
            for chunk in self.ws.data_to_send():
                if chunk:
                    self.tcp.write(chunk)
        self.tcp.close()

    def abort(self) -> None:
        self.closing = True
        if self.tcp is not None:
            self.tcp.abort()

    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            if self.tcp is not None and not self.tcp.is_closing():
                self.tcp.pause_reading()

    def resume_reading(self) -> None:
        if not self.paused:
            return
        self.paused = False
        while self._held and not self.paused and not self.closing:
            data = self._held.pop(0)
            assert self.inner is not None
            self.inner.data_received(data)
        if not self.paused and self.tcp is not None and not self.tcp.is_closing():
            self.tcp.resume_reading()


def frame_error(exc: BaseException) -> str:
    """What was wrong with the peer's frames, in RFC 6455's terms rather than Python's."""
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8 in a text frame or close reason"
    if isinstance(exc, PayloadTooBig):
        return "message larger than the limit"
    if isinstance(exc, ProtocolError):
        return str(exc)
    return f"malformed frame ({type(exc).__name__})"


def _truncate(reason: str) -> str:
    """A close frame's reason fits in 123 bytes; nats-server marks a cut with '...'."""
    raw = reason.encode()
    if len(raw) <= 123:
        return reason
    return raw[:120].decode(errors="ignore") + "..."


def _upgrade(path: str, query: str, headers: dict[str, str], subprotocol: str | None,
             tls: bool) -> Upgrade:
    cookies: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    forwarded = headers.get("x-forwarded-for", "").strip()
    try:
        ipaddress.ip_address(forwarded)
    except ValueError:
        forwarded = ""
    return Upgrade(
        path=path, query=dict(parse_qsl(query)), headers=headers, cookies=cookies,
        subprotocol=subprotocol, tls=tls, forwarded_ip=forwarded,
    )


class WsTransport(asyncio.Transport):
    """What a carried protocol writes to: each ``write`` leaves as one binary frame."""

    def __init__(self, conn: WsConnection) -> None:
        super().__init__()
        self._conn = conn
        # The connection's send itself, not a method calling it: one call less per write.
        self.write = conn.send  # type: ignore[method-assign, assignment]

    @property
    def close_code(self) -> tuple[int, str]:
        return self._conn.close_code

    @close_code.setter
    def close_code(self, value: tuple[int, str]) -> None:
        """The status and reason of the close frame a later :meth:`close` sends."""
        self._conn.close_code = value

    def writelines(self, chunks: Any) -> None:
        self._conn.send(b"".join(chunks))

    def close(self) -> None:
        self._conn.close()

    def abort(self) -> None:
        self._conn.abort()

    def is_closing(self) -> bool:
        conn = self._conn
        return conn.closing or conn.tcp is None or conn.tcp.is_closing()

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        self._conn.resume_reading()

    def is_reading(self) -> bool:
        return not self._conn.paused

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "websocket":
            return conn.upgrade
        tcp = conn.tcp
        if tcp is None:
            return default
        return tcp.get_extra_info(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._conn.tcp is not None:
            self._conn.tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        tcp = self._conn.tcp
        return tcp.get_write_buffer_size() if tcp is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        tcp = self._conn.tcp
        return tcp.get_write_buffer_limits() if tcp is not None else (0, 0)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._conn.inner  # type: ignore[return-value]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._conn.inner = protocol  # type: ignore[assignment]
