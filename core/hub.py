"""The hub: the one core every door connects clients to."""

from __future__ import annotations

import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jetport.core import security
from jetport.core.accounts import GLOBAL_ACCOUNT, Account
from jetport.core.flow import FlowControl
from jetport.core.memory import release_soon
from jetport.core.monitor import closed_record
from jetport.core.ticker import Tickers

if TYPE_CHECKING:
    from jetport.core.auth import Authenticator
    from jetport.core.client import Client
    from jetport.core.config import Options
    from jetport.core.jetstream.engine import JetStream
    from jetport.core.router import Link

#: The nats-server feature level Jetport implements; clients gate features on it.
NATS_VERSION = "2.12.0"
JETPORT_VERSION = "0.1.0"

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_server_id() -> str:
    """56 characters starting with N, shaped like nats-server's server nkey."""
    return "N" + "".join(secrets.choice(_B32) for _ in range(55))


class Hub:
    """Accounts, connected clients, identity and totals of one server process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.server_id = new_server_id()
        self.server_name = options.server_name or self.server_id
        self.version = NATS_VERSION
        self.start = time.time()
        self.pid = os.getpid()
        self.accounts: dict[str, Account] = {GLOBAL_ACCOUNT: Account(GLOBAL_ACCOUNT)}
        self.global_account = self.accounts[GLOBAL_ACCOUNT]
        self.system_account: Account | None = None
        self.clients: dict[int, Client] = {}
        #: The last ``max_closed_clients`` connections that ended, as /connz shows them.
        self.closed_clients: deque[dict[str, Any]] = deque(
            maxlen=max(options.max_closed_clients, 0))
        self.total_connections = 0
        self.slow_consumers = 0
        self.lame_duck = False
        #: Leaf node links that are up (/leafz, /varz ``leafnodes``).
        self.leaf_links: list[Link] = []
        self.flow = FlowControl(stall=not options.no_fast_producer_stall)
        #: Keepalive timers shared by all clients with the same interval.
        self.tickers = Tickers()
        self.jetstream: JetStream | None = None
        #: Listening port of each open door, by door name.
        self.ports: dict[str, int] = {}
        #: Where each open door listens, as a URL (``nats://127.0.0.1:4222``).
        self.urls: dict[str, str] = {}
        self.ready = False
        # Totals of clients that have left; live clients are summed on demand so the
        # hot path counts each message once, on its own client.
        self._gone = [0, 0, 0, 0]
        #: The same per (connection type, account name), for per-door counters.
        self.gone_by: dict[tuple[str, str], list[int]] = {}
        self._cid = 0
        #: ``retainer(account, subject, hdr, payload)``: set by the door keeping retained
        #: messages, so other doors' publishes with the retain header reach it.
        self.retainer: Callable[[Account, bytes, bytes, bytes], None] | None = None
        #: Sessions that outlive their connections, by door (MQTT): each lister gives
        #: one page of an account's sessions (every account's for None) whose client ids
        #: contain a text, ``(account, offset, limit, text)``, for the HTTP console, which
        #: cannot import the door.
        self.session_lists: dict[
            str, Callable[[str | None, int, int, str], Awaitable[dict[str, Any]]]] = {}
        #: Called with every account created after start-up.
        self.account_hooks: list[Callable[[Account], None]] = []
        #: Who clients are (users, keys, operator mode); replaced on reload.
        self.auth: Authenticator
        security.configure(self, options)  # sets self.auth and the configured accounts

    def listening(self, door: str, scheme: str, host: str, port: int) -> None:
        """A door's listener is open (the ports file and /varz report it)."""
        self.ports[door] = port
        self.urls[door] = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    def add_account(self, name: str) -> Account:
        """A new account; services that every account offers attach to it."""
        acc = self.accounts[name] = Account(name)
        for hook in self.account_hooks:
            hook(acc)
        return acc

    def retain(self, account: Account, subject: bytes, hdr: bytes, payload: bytes) -> None:
        """A message published with the retain header: the door that keeps retained
        messages (MQTT) stores it; without one it is just a message."""
        if self.retainer is not None:
            self.retainer(account, subject, hdr, payload)

    def count_slow_consumer(self) -> None:
        """Count a client cut off for falling behind (/varz ``slow_consumers``); the
        memory its queue held goes back to the system once freed."""
        self.slow_consumers += 1
        release_soon()

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    def add_client(self, client: Client) -> None:
        self.clients[client.cid] = client
        self.total_connections += 1

    def remove_client(self, client: Client) -> None:
        if self.clients.pop(client.cid, None) is not None:
            if self.closed_clients.maxlen:
                self.closed_clients.append(closed_record(client, time.time()))
            g = self._gone
            g[0] += client.in_msgs
            g[1] += client.out_msgs
            g[2] += client.in_bytes
            g[3] += client.out_bytes
            key = (client.conn_type, client.account.name)
            by = self.gone_by.setdefault(key, [0, 0, 0, 0])
            by[0] += client.in_msgs
            by[1] += client.out_msgs
            by[2] += client.in_bytes
            by[3] += client.out_bytes

    def totals(self) -> dict[str, int]:
        """in_msgs, out_msgs, in_bytes, out_bytes over the life of the server."""
        t = list(self._gone)
        for c in self.clients.values():
            t[0] += c.in_msgs
            t[1] += c.out_msgs
            t[2] += c.in_bytes
            t[3] += c.out_bytes
        return dict(zip(("in_msgs", "out_msgs", "in_bytes", "out_bytes"), t, strict=True))
