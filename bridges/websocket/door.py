"""The WebSocket door: nats-server's ``websocket {}`` listener.

NATS clients (nats.ws, @nats-io/nats-core's wsconnect, nats-py with ``ws://``) get the
NATS door's client protocol in binary frames.  Other doors may carry their protocol on
the same listener by registering a route (see :mod:`jetport.bridges.websocket.registry`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING, Any

from jetport.bridges.nats.door import NatsDoor
from jetport.bridges.websocket.registry import Route, Upgrade, routes
from jetport.core.log import log
from jetport.core.tls import server_context

# The connection classes, and the websockets library under them (1 MB of a hub's RSS), are
# imported when the door starts: the server loads every door's class to ask whether
# the options want it.
if TYPE_CHECKING:
    from jetport.bridges.websocket.natsclient import WsNatsClient
    from jetport.bridges.websocket.transport import WsConnection
    from jetport.core.config import Options
    from jetport.core.config.websocket import WebSocketOptions
    from jetport.core.hub import Hub

#: Bound on the TLS handshake when the block sets no handshake_timeout (seconds).
DEFAULT_TLS_HANDSHAKE = 10.0


def wss_context(w: WebSocketOptions) -> ssl.SSLContext | None:
    if not w.tls_cert:
        return None
    return server_context(w.tls_cert, w.tls_key, w.tls_ca, w.tls_verify, w.tls_min_version)


class WebSocketDoor(NatsDoor):
    """Accepts WebSocket connections; NATS is the default protocol they carry."""

    name = "websocket"
    order = 10  # after the NATS door, before MQTT and HTTP

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        w = hub.options.websocket
        assert w is not None  # wanted() only when the block is there
        self.ws_options = w
        self.host = w.host or hub.options.host
        self.port = w.port
        # WsNatsClient must not start TLS itself: the listener's socket already speaks it.
        self.tls_context = None
        self.wss = wss_context(w)
        #: Every TCP connection, upgraded or not, so stop() can end them all.
        self.connections: set[WsConnection] = set()
        routes(hub).add(Route("nats", self._nats_client))

    @classmethod
    def wanted(cls, options: Options) -> bool:
        w = options.websocket
        return w is not None and w.port != 0

    def _nats_client(self, upgrade: Upgrade) -> WsNatsClient:
        from jetport.bridges.websocket.natsclient import WsNatsClient

        return WsNatsClient(self, upgrade)

    async def start(self) -> None:
        from jetport.bridges.websocket.transport import WsConnection

        loop = asyncio.get_running_loop()
        port = 0 if self.port == -1 else self.port
        handshake = self.ws_options.handshake_timeout or DEFAULT_TLS_HANDSHAKE
        self.server = await loop.create_server(
            lambda: WsConnection(self), self.host, port, backlog=4096, reuse_address=True,
            ssl=self.wss, ssl_handshake_timeout=handshake if self.wss else None,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.hub.listening(self.name, "wss" if self.wss else "ws", self.host, self.port)
        for s in self.server.sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._info = self._base_info()
        scheme = "wss" if self.wss else "ws"
        log.info("Listening for websocket clients on %s://%s:%d", scheme, self.host, self.port)
        if self.wss is None:
            log.warning("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!")

    def _base_info(self) -> dict[str, Any]:
        """The NATS door's INFO, describing this listener (as nats-server does)."""
        info = super()._base_info()
        info["host"] = self.host
        info["port"] = self.port
        info.pop("tls_required", None)
        info.pop("tls_verify", None)
        if self.wss is not None:
            info["tls_required"] = True
            info["tls_available"] = True
        return info

    def info(self, client: Any) -> dict[str, Any]:
        info = super().info(client)
        if self.ws_options.auth_override:
            info["auth_required"] = True
        return info

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.clients):
            c.close("server shutdown")
        for conn in list(self.connections):
            conn.close(1001, "Server Shutdown")
        routes(self.hub).remove("nats")
        if self.server is not None:
            await self.server.wait_closed()
