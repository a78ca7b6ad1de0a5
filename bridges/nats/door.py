"""The NATS door: a TCP (optionally TLS) listener speaking the NATS client protocol."""

from __future__ import annotations

import asyncio
import platform
import random
import socket
import ssl
from typing import TYPE_CHECKING, Any

from jetport.bridges.nats.connection import NatsClient
from jetport.core.jetstream.apilevel import API_LEVEL
from jetport.core.log import log
from jetport.core.tls import server_context

if TYPE_CHECKING:
    from jetport.core.config import Options
    from jetport.core.hub import Hub


def tls_context(options: Options) -> ssl.SSLContext | None:
    """A server context from nats-server's TLS options, or None when TLS is off."""
    if not (options.tls or options.tls_cert):
        return None
    return server_context(
        options.tls_cert, options.tls_key, options.tls_ca, options.tls_verify,
        options.tls_min_version,
    )


class NatsDoor:
    """Accepts NATS clients and hands each a :class:`NatsClient`."""

    name = "nats"
    order = 0

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.clients: set[NatsClient] = set()
        self.server: asyncio.base_events.Server | None = None
        self.host = hub.options.host
        self.port = hub.options.port
        self.tls_context = tls_context(hub.options)
        self._info: dict[str, Any] = {}

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return True

    async def start(self) -> None:
        opts = self.hub.options
        loop = asyncio.get_running_loop()
        port = 0 if opts.port == -1 else opts.port
        self.server = await loop.create_server(
            lambda: NatsClient(self), opts.host, port, backlog=4096, reuse_address=True
        )
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]
        self.hub.listening(self.name, "tls" if self.tls_context else "nats", opts.host, self.port)
        for s in self.server.sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._info = self._base_info()
        log.info("Listening for client connections on %s:%d", opts.host, self.port)
        if self.tls_context is not None:
            log.info("TLS required for client connections")

    def _base_info(self) -> dict[str, Any]:
        hub, opts = self.hub, self.hub.options
        info: dict[str, Any] = {
            "server_id": hub.server_id,
            "server_name": hub.server_name,
            "version": hub.version,
            "proto": 1,
            "go": f"python{platform.python_version()}",
            "host": opts.host,
            "port": self.port,
            "headers": True,
            "max_payload": opts.max_payload,
        }
        if hub.jetstream is not None:
            info["jetstream"] = True
            info["api_lvl"] = API_LEVEL
        if self.tls_context is not None:
            info["tls_required"] = True
            if opts.tls_verify:
                info["tls_verify"] = True
        return info

    def info(self, client: NatsClient) -> dict[str, Any]:
        """The INFO a client gets: the door's, plus its own id and address."""
        info = dict(self._info)
        info["client_id"] = client.cid
        info["client_ip"] = client.ip
        js = self.hub.jetstream
        if js is not None and js.domain:
            info["domain"] = js.domain
        if self.hub.auth.advertised:
            info["auth_required"] = True
        if client.nonce:
            info["nonce"] = client.nonce
        if self.hub.lame_duck:
            info["ldm"] = True
        return info

    async def lame_duck(self, duration: float, grace: float) -> None:
        """Stop accepting, tell clients, then close them spread over ``duration``."""
        if self.server is not None:
            self.server.close()
        for c in list(self.clients):
            c.send_info(ldm=True)
        await asyncio.sleep(min(grace, duration))
        clients = list(self.clients)
        random.shuffle(clients)
        step = max(duration - grace, 0) / max(len(clients), 1)
        for i, c in enumerate(clients):
            if i and step:
                await asyncio.sleep(step)
            c.close("lame duck")

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.clients):
            c.close("server shutdown")
        if self.server is not None:
            await self.server.wait_closed()

