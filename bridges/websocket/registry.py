"""Which protocol a WebSocket upgrade speaks, chosen by request path or subprotocol.

A door that wants its protocol carried over WebSocket registers a :class:`Route` on the
hub's registry; the WebSocket door consults it at each upgrade.  A factory gets the
:class:`Upgrade` and returns an ``asyncio.Protocol``; the door then hands it a byte
transport (:class:`jetport.bridges.websocket.transport.WsTransport`) as if it were TCP.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jetport.core.hub import Hub


@dataclass
class Upgrade:
    """What the HTTP upgrade request told about the client."""

    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names, first value
    cookies: dict[str, str]
    subprotocol: str | None  # the one agreed on, if any
    tls: bool
    #: X-Forwarded-For's address, when it is one (for logs; INFO keeps the peer's).
    forwarded_ip: str = ""
    extra: dict[str, object] = field(default_factory=dict)


Factory = Callable[[Upgrade], asyncio.Protocol]


@dataclass(frozen=True)
class Route:
    """A protocol carried over WebSocket.

    It is chosen when the request path starts with ``path_prefix`` (nats-server's rule
    for ``/mqtt``) or the client offers ``subprotocol``; a route with neither is the
    default (NATS).
    """

    name: str
    factory: Factory
    path_prefix: str | None = None
    subprotocol: str | None = None


class Registry:
    """The routes of one hub, in registration order."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}

    def add(self, route: Route) -> None:
        self.routes[route.name] = route

    def remove(self, name: str) -> None:
        self.routes.pop(name, None)

    def select(self, path: str, offered: list[str]) -> tuple[Route | None, str | None]:
        """The route for a request and the subprotocol to answer with (only one the
        client offered)."""
        default = None
        for route in self.routes.values():
            if route.path_prefix is None and route.subprotocol is None:
                default = default or route
                continue
            by_path = route.path_prefix is not None and path.startswith(route.path_prefix)
            by_proto = route.subprotocol is not None and route.subprotocol in offered
            if by_path or by_proto:
                return route, route.subprotocol if by_proto else None
        return default, None


_REGISTRIES: weakref.WeakKeyDictionary[Hub, Registry] = weakref.WeakKeyDictionary()


def routes(hub: Hub) -> Registry:
    """The hub's registry (created on first use, whichever door asks first)."""
    registry = _REGISTRIES.get(hub)
    if registry is None:
        registry = _REGISTRIES[hub] = Registry()
    return registry
