"""Accounts: the unit of isolation.  Each has its own subject space and limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jetport.core.router import Router

if TYPE_CHECKING:
    from jetport.core.client import Client
    from jetport.core.permissions import Permissions

GLOBAL_ACCOUNT = "$G"
SYSTEM_ACCOUNT = "$SYS"
#: -1: no limit (nats-server's convention for account limits).
UNLIMITED = -1


class Account:
    """A tenant: its subscriptions and routing never touch another account's.

    Limits are per account as nats-server applies them: ``max_connections`` counts
    the account's connections, ``max_subscriptions`` and ``max_payload`` bound each
    of its connections.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.router = Router()
        self.max_connections = UNLIMITED
        self.max_subscriptions = UNLIMITED
        self.max_payload = UNLIMITED
        #: JetStream limits (:class:`jetport.core.jetstream.models.JetStreamAccountLimits`);
        #: None: no JetStream.
        self.jetstream_limits: Any = None
        self.default_permissions: Permissions | None = None
        self.is_system = False
        #: Display name (a JWT account's name; its key is ``name``).
        self.label = name
        self.clients: set[Client] = set()
        #: Connections the account has had since the server started.
        self.total_connections = 0
        #: Live import links, dropped when the account is reconfigured.
        self.links: list[Any] = []

    def at_connection_limit(self) -> bool:
        return 0 <= self.max_connections <= len(self.clients)

    def __repr__(self) -> str:
        return f"Account({self.name!r})"
