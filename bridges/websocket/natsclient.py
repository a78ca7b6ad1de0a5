"""The NATS protocol over WebSocket: the NATS door's client on a WebSocket transport.

Everything NATS (codec, auth, permissions, limits, slow consumers) is
:class:`jetport.bridges.nats.connection.NatsClient`'s; this adds what nats-server does
differently for WebSocket clients: the connection type, the websocket block's own
credentials and no_auth_user, credentials from cookies, and close frames whose status
says why the server hung up.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from jetport.bridges.nats.codec import (
    ERR_AUTH,
    ERR_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_NO_RESPONDERS,
    ERR_PROTOCOL,
    ERR_UNKNOWN_OP,
    Event,
)
from jetport.bridges.nats.connection import (
    ERR_AUTH_TIMEOUT,
    ERR_EXPIRED,
    ERR_STALE,
    NatsClient,
)
from jetport.core.accounts import GLOBAL_ACCOUNT
from jetport.core.auth import AuthError, Principal
from jetport.core.security import ERR_ACCOUNT_CONNECTIONS
from jetport.core.tls import peer_identities

if TYPE_CHECKING:
    import asyncio

    from jetport.bridges.websocket.door import WebSocketDoor
    from jetport.bridges.websocket.registry import Upgrade

POLICY, PROTOCOL, TOO_BIG, GOING_AWAY = 1008, 1002, 1009, 1001

#: The close frame nats-server sends for the errors that end a connection.
CLOSE_FOR_ERROR: dict[str | None, tuple[int, str]] = {
    ERR_AUTH: (POLICY, "Authentication Failure"),
    ERR_AUTH_TIMEOUT: (POLICY, "Authentication Timeout"),
    ERR_EXPIRED: (POLICY, "Authentication Expired"),
    ERR_ACCOUNT_CONNECTIONS: (POLICY, "Maximum Account Connections Exceeded"),
    ERR_CONTROL_LINE: (POLICY, "Maximum Control Line Exceeded"),
    ERR_MAX_PAYLOAD: (TOO_BIG, "Maximum Message Payload Exceeded"),
    ERR_STALE: (GOING_AWAY, "Stale Connection"),
    ERR_UNKNOWN_OP: (PROTOCOL, "Parse Error"),
    ERR_PROTOCOL: (PROTOCOL, "Bad Client Protocol Version"),
    ERR_NO_RESPONDERS: (PROTOCOL, "Protocol Violation"),
    None: (PROTOCOL, "Parse Error"),
}
CLOSE_MAX_CONNECTIONS = (POLICY, "Maximum Connections Exceeded")
CLOSE_SHUTDOWN = (GOING_AWAY, "Server Shutdown")

#: CONNECT fields that carry credentials; any of them means "not the no_auth_user".
_CREDENTIALS = ("user", "nkey", "jwt", "auth_token")


class WsNatsClient(NatsClient):
    """A NATS client whose bytes travel in WebSocket frames."""

    conn_type = "WEBSOCKET"

    def __init__(self, door: WebSocketDoor, upgrade: Upgrade) -> None:
        super().__init__(door)
        w = door.ws_options
        self.ws_options = w
        if w.auth_override:
            self.auth_required = True
        if w.auth_timeout > 0:
            self.auth_timeout = w.auth_timeout
        # Cookies, or (a Jetport extension for pages that cannot set cookies) query
        # parameters of the same names, stand in for CONNECT's missing credentials.
        self.cookie_credentials: dict[str, str] = {}
        for name, target in w.cookies().items():
            value = upgrade.cookies.get(name) or upgrade.query.get(name)
            if value:
                self.cookie_credentials[target] = value

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.hub.clients) >= self.hub.options.max_connections:
            transport.close_code = CLOSE_MAX_CONNECTIONS  # type: ignore[attr-defined]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = True
            self.tls_identities = peer_identities(ssl_object)
        super().connection_made(transport)

    def ping_interval(self) -> float:
        return self.ws_options.ping_interval or self.hub.options.ping_interval

    def _close_with(self, code: tuple[int, str]) -> None:
        if self.transport is not None:
            self.transport.close_code = code  # type: ignore[attr-defined]

    def _fail(self, err: str | None) -> None:
        self._close_with(CLOSE_FOR_ERROR.get(err, (PROTOCOL, "Protocol Violation")))
        super()._fail(err)

    def close(self, reason: str = "") -> None:
        if reason in ("server shutdown", "lame duck"):
            self._close_with(CLOSE_SHUTDOWN)
        elif reason == ERR_AUTH:
            self._close_with(CLOSE_FOR_ERROR[ERR_AUTH])
        super().close(reason)

    def _connect(self, opts: dict[str, Any], events: list[Event], rest: int) -> bool:
        if self.connect_opts is None and self.cookie_credentials:
            missing = {k: v for k, v in self.cookie_credentials.items() if not opts.get(k)}
            if missing:
                opts = {**opts, **missing}
        return super()._connect(opts, events, rest)

    async def _credentials(self, opts: dict[str, Any]) -> Principal:
        """The websocket block's own user or token replaces the server's users for
        WebSocket clients; its no_auth_user names who connects without credentials."""
        w = self.ws_options
        if w.username or w.token:
            if w.username:
                ok = opts.get("user") == w.username and _same(opts.get("pass"), w.password)
            else:
                ok = _same(opts.get("auth_token"), w.token)
            if not ok:
                self.hub.auth.note_failure(self.conn_type)
                raise AuthError("bad websocket credentials")
            return Principal(w.username, GLOBAL_ACCOUNT)
        auth = self.hub.auth
        if w.no_auth_user and not any(opts.get(k) for k in _CREDENTIALS):
            return auth.no_auth(self.conn_type, w.no_auth_user)
        return await auth.authenticate(
            opts, self.nonce, self.conn_type, self.tls_identities, self.ip, tls_map=w.tls_map
        )


def _same(given: object, secret: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), secret.encode())
