"""One NATS client connection: the codec's events applied to the hub over asyncio.

What goes out to the client (deliveries, replies, flow control and the slow-consumer
rule) is :mod:`jetport.bridges.nats.outbound`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, cast

from jetport.bridges.nats.codec import (
    ERR_AUTH,
    ERR_CONTROL_LINE,
    ERR_INVALID_PUB_SUBJECT,
    ERR_INVALID_SUBJECT,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OP,
    OK,
    OP_CLOSE,
    OP_CONNECT,
    OP_ERROR,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_PUBS,
    OP_SUB,
    OP_UNSUB,
    PING,
    PONG,
    Event,
    ServerCodec,
    trace_lines,
)
from jetport.bridges.nats.encoder import encode_err, encode_info
from jetport.bridges.nats.outbound import NatsOutbound
from jetport.core import security
from jetport.core.auth import AuthError, Principal, new_nonce
from jetport.core.client import Delivery, PermissionDenied, TooManySubscriptions
from jetport.core.log import TRACE, log
from jetport.core.router import InvalidSubject
from jetport.core.subjects import is_literal
from jetport.core.tasks import spawn
from jetport.core.tls import peer_identities

if TYPE_CHECKING:
    from jetport.bridges.nats.door import NatsDoor

ERR_AUTH_TIMEOUT = "Authentication Timeout"
ERR_STALE = "Stale Connection"
ERR_MAX_CONNECTIONS = "maximum connections exceeded"
#: Seconds a refused connection is kept half-open for the client to read why.
REFUSED_LINGER = 2.0
ERR_TLS_REQUIRED = "Secure Connection - TLS Required"
ERR_MAX_SUBS = "maximum subscriptions exceeded"
ERR_EXPIRED = "User Authentication Expired"
#: Sent when the hub itself failed on a client's input (a bug, logged with the cid).
ERR_INTERNAL = "Internal Server Error"
#: nats-server's words for why a connection ended (/connz?state=closed), by -ERR text.
_REASONS = {
    ERR_AUTH: "Authentication Failure",
    ERR_AUTH_TIMEOUT: "Authentication Timeout",
    ERR_STALE: "Stale Connection",
    ERR_EXPIRED: "Authentication Expired",
    ERR_TLS_REQUIRED: "TLS Handshake Failure",
    ERR_MAX_PAYLOAD: "Maximum Message Payload Exceeded",
    ERR_CONTROL_LINE: "Maximum Control Line Exceeded",
    ERR_UNKNOWN_OP: "Parse Error",
    "server shutdown": "Server Shutdown",
    "lame duck": "Server Shutdown",
}
#: A header that asks the hub to keep a message as the subject's retained one.
RETAIN_MARK = b"Nmqtt-Retain"
#: Reply prefixes only the server itself may use.
RESERVED_REPLIES = (b"$JS.ACK.", b"_R_.", b"$GNR.")


class NatsClient(NatsOutbound, asyncio.Protocol):
    """A client on the NATS door."""

    #: Whether the client ever answered a ping (a class default: set on the instance
    #: only when it does, so idle connections carry no entry for it).
    _ponged = False
    # The rest of what a connection starts with, as class defaults (see Client).
    #: Until CONNECT says otherwise a client is verbose and pedantic (nats-server).
    verbose = True
    pedantic = True
    _active = False
    _pings_out = 0
    tls = False
    #: Bytes that arrive while the TLS handshake is being set up (see _start_tls).
    _early: list[bytes] | None = None
    _trace = False
    #: Events that arrived while CONNECT's credentials were being checked.
    _held: list[Event] | None = None
    nonce = ""
    connect_opts: dict[str, Any] | None = None
    #: Whether the first PONG is followed by an INFO naming the client's account.
    _connect_info = False
    tls_identities: list[str] | None = None
    #: Whether CONNECT must prove an identity, and how long it may take (None: the
    #: server's auth_timeout): a door can change both for its clients (the WebSocket
    #: block's own credentials).
    auth_required = False
    auth_timeout: float | None = None

    def __init__(self, door: NatsDoor) -> None:
        hub = door.hub
        super().__init__(hub, hub.global_account)
        opts = hub.options
        self.door = door
        self.codec = ServerCodec(opts.max_control_line, opts.max_payload)
        self.max_pending = opts.max_pending
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._publish = self.account.router.publish
        self._flow = hub.flow
        if log.isEnabledFor(TRACE):
            self._trace = True
        if hub.auth.nonce_required:
            self.nonce = new_nonce()
        if hub.auth.required:
            self.auth_required = True

    # -- connection life cycle ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.ip, self.port = peer[0], peer[1]
        door, hub = self.door, self.hub
        if len(hub.clients) >= hub.options.max_connections:  # every door's clients
            transport.write(encode_info(door.info(self)) + encode_err(ERR_MAX_CONNECTIONS))
            self.closed = True
            if transport.can_write_eof():
                # Half-close and read on: closing outright would answer the client's
                # CONNECT with a reset that can destroy the -ERR before it is read.
                transport.write_eof()
                self._start_timer("linger", REFUSED_LINGER, transport.abort)
            else:
                transport.close()
            return
        door.clients.add(self)
        hub.add_client(self)
        log.debug("%s:%s - cid:%d - Client connection created", self.ip, self.port, self.cid)
        transport.set_write_buffer_limits(high=min(self.max_pending // 4, 8 << 20))
        transport.write(encode_info(door.info(self)))
        if self.auth_required:
            timeout = self.auth_timeout
            self._start_timer("auth", hub.options.auth_timeout if timeout is None else timeout,
                              self._fail, ERR_AUTH_TIMEOUT)
        self._schedule_ping()
        if door.tls_context is not None:
            self._early = []  # see _start_tls
            spawn(self._start_tls(), f"{self.ip}:{self.port} - cid:{self.cid} - TLS")

    async def _start_tls(self) -> None:
        assert self.transport is not None
        self.tls_identities = []  # filled from the client certificate after the handshake
        timeout = self.hub.options.tls_timeout
        # The loop may start reading before this task runs (uvloop does), so the
        # ClientHello can already sit in _early: hand it to the TLS protocol once
        # start_tls has installed it (scheduled first, so before its handshake starts).
        hello, self._early = b"".join(self._early or ()), []

        def replay() -> None:
            tls_protocol = cast(asyncio.BufferedProtocol, transport.get_protocol())
            view = memoryview(hello)
            while view and tls_protocol is not cast(object, self):
                buf = memoryview(tls_protocol.get_buffer(len(view)))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                tls_protocol.buffer_updated(n)
                view = view[n:]

        transport = self.transport
        if hello:
            self._loop.call_soon(replay)
        # From here on _early holds decrypted bytes that arrive before start_tls returns:
        # they wait for the TLS transport, or replies would go out in clear. start_tls is
        # awaited in this task (no wait_for task in between) so that it takes the socket
        # over before anything else runs.
        try:
            async with asyncio.timeout(timeout):
                assert self.door.tls_context is not None  # checked before this task
                new = await self._loop.start_tls(
                    transport, self, self.door.tls_context, server_side=True
                )
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.error("%s:%s - cid:%d - TLS handshake error: %s", self.ip, self.port,
                      self.cid, exc or "timeout")
            if self.transport is not None and not self.closed:
                self.transport.abort()
            return
        if new is None:
            return
        self.transport = new
        self.tls = True
        self.tls_identities = peer_identities(new.get_extra_info("ssl_object"))
        early, self._early = self._early, None
        if early:
            self.data_received(b"".join(early))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        self.hub.tickers.get(self.ping_interval()).cancel(self)
        self.door.clients.discard(self)
        self._out = []
        self._flow.forget(self)
        if self.congested:
            self.congested = False
            self._flow.relieve()
        self.release()
        log.debug("%s:%s - cid:%d - Client connection closed", self.ip, self.port, self.cid)

    def close(self, reason: str = "") -> None:
        """Flush what is queued and close."""
        if self.transport is None or self.transport.is_closing():
            return
        if reason and not self.close_reason:
            self.close_reason = _REASONS.get(reason, reason)
        self._flush()
        self.transport.close()

    def _fail(self, err: str | None) -> None:
        """The one reaction to a fatal protocol error: -ERR (when it has text), close."""
        if err:
            self.write(encode_err(err))
        log.debug("%s:%s - cid:%d - %s", self.ip, self.port, self.cid, err or "Parse Error")
        self.close(_REASONS.get(err, "Protocol Violation") if err else "Parse Error")

    # -- keepalive ----------------------------------------------------------------

    def ping_interval(self) -> float:
        return self.hub.options.ping_interval

    def _schedule_ping(self) -> None:
        # One hub timer per interval for all clients instead of a timer each: 1.5 KB
        # less per idle connection (core/ticker.py).
        self.hub.tickers.get(self.ping_interval()).schedule(self)

    def tick(self) -> None:
        """Ping a quiet client; one that leaves ping_max pings unanswered is stale.

        Input only delays the ping once the client has answered one (as nats-server,
        which pings until it has a round-trip time): bytes that never make a CONNECT
        do not keep a connection alive."""
        if self._active and self._ponged:
            self._active = False
        elif self._pings_out >= self.hub.options.ping_max:
            self._fail(ERR_STALE)
            return
        else:
            self._pings_out += 1
            self.write(PING)
        self._schedule_ping()

    def send_info(self, **extra: Any) -> None:
        """An asynchronous INFO (lame duck, topology); only after the handshake."""
        if self.codec.connected:
            self.write(encode_info({**self.door.info(self), **extra}))

    # -- input --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception as exc:  # noqa: BLE001 - the hub's own failure: logged, and the peer told
            self.crashed(exc)

    def crashed(self, exc: BaseException) -> None:
        """The hub failed while serving this connection: log it with the cid, tell the
        peer, close (what is already accepted stays accepted)."""
        log.error("%s:%s - cid:%d - internal error: %s", self.ip, self.port, self.cid, exc,
                  exc_info=exc)
        if self.transport is not None and not self.transport.is_closing():
            self.write(encode_err(ERR_INTERNAL))
            self.close(ERR_INTERNAL)

    def _received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._early is not None:
            self._early.append(data)
            return
        self._active = True
        self.last_activity = time.time()
        self._flow.hit = False  # only deliveries caused by this input count against it
        events = self.codec.receive_data(data)
        if self._held is not None:
            self._held.extend(events)
            return
        if not self.codec.connected and self.auth_required:
            events = self._before_connect(events)
        if self._trace:
            max_len = self.door.hub.options.max_traced_msg_len
            for ev in events:
                for line in trace_lines(ev, max_len):
                    log.log(TRACE, "%s:%s - cid:%d - <<- %s", self.ip, self.port, self.cid, line)
        self._process(events)
        if self._flow.hit:
            self._flow.after_input(self)

    def _process(self, events: list[Event]) -> None:
        publish = self._publish
        publish_many = self.account.router.publish_many
        pedantic, verbose = self.pedantic, self.verbose
        # Plain PUBs of this read, routed together (not for verbose or pedantic
        # clients, whose answers go out per message).
        batch: list[Delivery] = []
        for i, ev in enumerate(events):
            op = ev[0]
            if op in (OP_PUB, OP_PUBS):
                subject, reply, hdr, body = ev[1], ev[2], ev[3], ev[4]
                if op == OP_PUB:
                    count = 1
                    self.in_bytes += len(body) if hdr is None else len(body) + len(hdr)
                else:
                    count = len(body)
                    self.in_bytes += sum(map(len, body))
                self.in_msgs += count
                if reply and reply[:1] in (b"$", b"_") and reply.startswith(RESERVED_REPLIES):
                    self._flush_batch(batch)
                    self.write(encode_err(
                        f'Permissions Violation for Publish with Reply of "{reply.decode()}"'
                    ) * count)
                    continue
                if self.perms is not None and not self.perms.can_publish(subject):
                    # Only replies allow_responses still grants get through, one each.
                    self._flush_batch(batch)
                    allowed = 0
                    while allowed < count and self.may_publish(subject):
                        allowed += 1
                    if allowed:
                        with contextlib.suppress(InvalidSubject):
                            if op == OP_PUB:
                                publish(self, subject, reply, hdr, body)
                            else:
                                publish_many(self, subject, reply, body[:allowed])
                    if count > allowed:
                        text = subject.decode(errors="replace")
                        self.write(encode_err(
                            f'Permissions Violation for Publish to "{text}"'
                        ) * (count - allowed))
                    continue
                if hdr is not None and op == OP_PUB and RETAIN_MARK in hdr:
                    self.hub.retain(self.account, subject, hdr, body)
                if op == OP_PUB and not (pedantic or verbose):
                    batch.append((subject, reply, hdr, body))
                    continue
                self._flush_batch(batch)
                if pedantic and not is_literal(subject):
                    # nats-server complains but still delivers a wildcard subject
                    self.write(encode_err(ERR_INVALID_PUB_SUBJECT) * count)
                elif verbose:
                    self.write(OK * count)
                try:
                    if op == OP_PUB:
                        publish(self, subject, reply, hdr, body)
                    else:
                        publish_many(self, subject, reply, body)
                except InvalidSubject:
                    if pedantic:
                        self.write(encode_err(ERR_INVALID_PUB_SUBJECT) * count)
                continue
            self._flush_batch(batch)
            if op == OP_PING:
                self.write(PONG)
                if self._connect_info:
                    self._send_connect_info()
            elif op == OP_PONG:
                self._pings_out = 0
                self._ponged = True
            elif op == OP_SUB:
                self._sub(ev[1], ev[2], ev[3])
            elif op == OP_UNSUB:
                self.unsubscribe(ev[1], ev[2])
                if self.verbose:
                    self.write(OK)
            elif op == OP_CONNECT:
                if not self._connect(ev[1], events, i + 1):
                    return
                pedantic, verbose = self.pedantic, self.verbose
            elif op == OP_ERROR:
                self.write(encode_err(ev[1]))
            elif op == OP_CLOSE:
                self._fail(ev[1])
                return
        self._flush_batch(batch)

    def _flush_batch(self, batch: list[Delivery]) -> None:
        """Route the plain PUBs gathered so far (a lone one the ordinary way)."""
        if not batch:
            return
        if len(batch) == 1:
            subject, reply, hdr, body = batch[0]
            try:
                self._publish(self, subject, reply, hdr, body)
            except InvalidSubject:
                pass
        else:
            self.account.router.publish_batch(self, batch)
        batch.clear()

    def _before_connect(self, events: list[Event]) -> list[Event]:
        """With auth required, the first op must be CONNECT (or the codec's own close)."""
        if not events or events[0][0] in (OP_CONNECT, OP_CLOSE):
            return events
        return [(OP_CLOSE, ERR_AUTH)]

    def _sub(self, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        if queue == b"_sys_":
            self.write(encode_err(
                f'Permissions Violation for Subscription to "{subject.decode()}" '
                f'using queue "_sys_"'
            ))
            return
        try:
            self.subscribe(subject, queue, sid)
        except InvalidSubject:
            self.write(encode_err(ERR_INVALID_SUBJECT))
            return
        except PermissionDenied:
            text = subject.decode(errors="replace")
            if queue is not None:
                text += f'" using queue "{queue.decode(errors="replace")}'
            self.write(encode_err(f'Permissions Violation for Subscription to "{text}"'))
            return
        except TooManySubscriptions:
            self.write(encode_err(ERR_MAX_SUBS))
            return
        if self.verbose:
            self.write(OK)

    def _connect(self, opts: dict[str, Any], events: list[Event], rest: int) -> bool:
        """Apply CONNECT; False when processing must stop here.

        Without auth the client joins the global account at once.  Otherwise the
        credentials are checked off the event loop's hot path (bcrypt, failure
        delays): input is held until the answer and then processed in order.
        """
        if self.connect_opts is not None:  # a second CONNECT only updates options
            self._apply_connect(opts)
            return True
        self.connect_opts = opts
        if not self.auth_required and not self.hub.auth.conf.no_auth_user:
            return self._admitted(Principal("", self.account.name), opts)
        self._held = list(events[rest:])
        self.pause_reading()
        spawn(self._authenticate(opts), f"{self.ip}:{self.port} - cid:{self.cid} - CONNECT")
        return False

    async def _authenticate(self, opts: dict[str, Any]) -> None:
        try:
            await self._authenticated(opts)
        except Exception as exc:  # noqa: BLE001 - a failure of the hub's, not the client's credentials
            self.crashed(exc)

    async def _authenticated(self, opts: dict[str, Any]) -> None:
        hub = self.hub
        try:
            principal = await self._credentials(opts)
        except AuthError as exc:
            log.error("%s:%s - cid:%d - authentication error: %s", self.ip, self.port,
                      self.cid, exc)
            self._start_timer("auth", hub.auth.failure_delay(self.ip), self._fail, ERR_AUTH)
            return
        await security.prepare(hub, principal)
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        held, self._held = self._held or [], None
        if not self._admitted(principal, opts):
            return
        self.resume_reading()
        self._process(held)

    async def _credentials(self, opts: dict[str, Any]) -> Principal:
        """The identity CONNECT proves (a door may add its own credentials)."""
        return await self.hub.auth.authenticate(
            opts, self.nonce, self.conn_type, self.tls_identities, self.ip
        )

    def _admitted(self, principal: Principal, opts: dict[str, Any]) -> bool:
        """Join the principal's account, within its limits."""
        error = security.admit(self.hub, self, principal)
        if error is not None:
            self._fail(error)
            return False
        self._publish = self.account.router.publish
        self._stop_timer("auth")
        payload = self.max_payload
        if 0 <= payload < self.codec.max_payload:
            self.codec.max_payload = payload
        if self.expires:
            self._start_timer("expiry", max(self.expires - time.time(), 0), self._fail,
                              ERR_EXPIRED)
        self._apply_connect(opts)
        protocol = opts.get("protocol")
        if isinstance(protocol, int) and protocol >= 1:
            self._connect_info = True
        return True

    def _send_connect_info(self) -> None:
        """nats-server's INFO after the first PONG: the account a client landed in and
        the payload limit it actually has."""
        self._connect_info = False
        self.send_info(connect_info=True, remote_account=self.account.name,
                       max_payload=self.codec.max_payload)

    def _apply_connect(self, opts: dict[str, Any]) -> None:
        self.keep("verbose", bool(opts["verbose"]))
        self.keep("pedantic", bool(opts["pedantic"]))
        self.keep("echo", bool(opts["echo"]))
        self.keep("headers", bool(opts.get("headers")))
        self.keep("no_responders", bool(opts.get("no_responders")))
        for key in ("name", "lang", "version"):
            value = opts.get(key)
            if isinstance(value, str):
                self.keep(key, value)
        if self.verbose:
            self.write(OK)

    def error(self, text: str) -> None:
        self.write(encode_err(text))
