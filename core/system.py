"""The system account's services: server and account stats over NATS.

Users of the system account ask ``$SYS.REQ.SERVER.PING[.<ENDPOINT>]`` (every server
answers) or ``$SYS.REQ.SERVER.<id>.<ENDPOINT>`` and get the monitoring documents
wrapped as nats-server wraps them: ``{"server": {...}, "data": {...}}``;
``$SYS.REQ.ACCOUNT.<name>.CONNZ|STATZ|SUBSZ`` give one account's.  Any account
may ask ``$SYS.REQ.USER.INFO`` who it is connected as.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jetport.core import monitor
from jetport.core.internal import InternalClient
from jetport.core.timeutil import rfc3339

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub


def _server(hub: Hub) -> dict[str, Any]:
    return {
        "name": hub.server_name,
        "host": hub.options.host,
        "id": hub.server_id,
        "ver": hub.version,
        "jetstream": hub.jetstream is not None,
        "seq": 0,
        "time": rfc3339(time.time()),
    }


def _statsz(hub: Hub) -> dict[str, Any]:
    totals = hub.totals()
    return {
        "start": rfc3339(hub.start),
        "mem": monitor.rss_bytes(),
        "connections": len(hub.clients),
        "total_connections": hub.total_connections,
        "active_accounts": sum(1 for a in hub.accounts.values() if a.clients),
        "subscriptions": sum(len(a.router.index) for a in hub.accounts.values()),
        "sent": {"msgs": totals["out_msgs"], "bytes": totals["out_bytes"]},
        "received": {"msgs": totals["in_msgs"], "bytes": totals["in_bytes"]},
        "slow_consumers": hub.slow_consumers,
    }


def _account_statz(acc: Account) -> dict[str, Any]:
    """One account's traffic, summed over its live connections."""
    clients = list(acc.clients)
    return {
        "acc": acc.name,
        "name": acc.label,
        "conns": len(clients),
        "leafnodes": 0,
        "total_conns": acc.total_connections,
        "num_subscriptions": len(acc.router.index),
        "sent": {"msgs": sum(c.out_msgs for c in clients),
                 "bytes": sum(c.out_bytes for c in clients)},
        "received": {"msgs": sum(c.in_msgs for c in clients),
                     "bytes": sum(c.in_bytes for c in clients)},
        "slow_consumers": 0,
    }


def _statz_of(hub: Hub, accounts: list[Account]) -> dict[str, Any]:
    return {"server_id": hub.server_id, "now": rfc3339(time.time()),
            "account_statz": [_account_statz(a) for a in accounts]}


def _accountz(hub: Hub) -> dict[str, Any]:
    system = hub.system_account
    return {
        "server_id": hub.server_id,
        "now": rfc3339(time.time()),
        "system_account": system.name if system is not None else "",
        "accounts": sorted(hub.accounts),
    }


def _healthz(hub: Hub) -> dict[str, Any]:
    ok = hub.ready and not hub.lame_duck
    return {"status": "ok"} if ok else {"status": "unavailable", "error": "server not ready"}


class SystemService:
    """Answers the system account's requests from inside the hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.endpoints: dict[bytes, Callable[[], dict[str, Any]]] = {
            b"VARZ": lambda: monitor.varz(hub, hub.options.http_host, hub.options.http_port),
            b"CONNZ": lambda: monitor.connz(hub),
            b"ACCOUNTZ": lambda: _accountz(hub),
            b"HEALTHZ": lambda: _healthz(hub),
            b"JSZ": lambda: monitor.jetstream_summary(hub),
        }
        self.clients: list[InternalClient] = []

    def start(self) -> None:
        hub = self.hub
        system = hub.system_account
        if system is not None:
            client = InternalClient(hub, system, "$SYS")
            client.listen(b"$SYS.REQ.SERVER.PING", self._ping)
            client.listen(b"$SYS.REQ.SERVER.PING.*", self._endpoint)
            client.listen(b"$SYS.REQ.SERVER.%s.*" % hub.server_id.encode(), self._endpoint)
            client.listen(b"$SYS.REQ.ACCOUNT.*.*", self._account_endpoint)
            self.clients.append(client)
        for account in list(hub.accounts.values()):
            self.attach(account)
        hub.account_hooks.append(self.attach)

    def attach(self, account: Account) -> None:
        """Serve ``$SYS.REQ.USER.INFO`` in ``account``."""
        client = InternalClient(self.hub, account, "$SYS")
        client.listen(b"$SYS.REQ.USER.INFO",
                      lambda s, reply, h, p: self._user_info(client, reply))
        self.clients.append(client)

    def _user_info(self, client: InternalClient, reply: bytes | None) -> None:
        """Who asked: the connection subscribed to the request's reply subject."""
        if not reply:
            return
        plain, groups = client.account.router.match(reply)
        asker = next((s.client for s in (*plain, *(m for g in groups for m in g))
                      if not isinstance(s.client, InternalClient)), None)
        if asker is None:
            return
        data: dict[str, Any] = {"user": asker.user, "account": asker.account.name,
                                "account_name": asker.account.label}
        if asker.perms is not None:
            data["permissions"] = asker.perms.to_json()
        if asker.expires:
            data["expires"] = int((asker.expires - time.time()) * 1e9)
        self._reply(client, reply, {"data": data})

    def stop(self) -> None:
        for client in self.clients:
            client.release()
        self.clients.clear()

    def _reply(self, client: InternalClient, reply: bytes, data: dict[str, Any]) -> None:
        doc = {"server": _server(self.hub), **data}
        client.send(reply, None, None, json.dumps(doc).encode())

    def _ping(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
              payload: bytes) -> None:
        if reply:  # statsz answers carry "statsz", not "data"
            self._reply(self.clients[0], reply, {"statsz": _statsz(self.hub)})

    def _account_endpoint(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                          payload: bytes) -> None:
        """``$SYS.REQ.ACCOUNT.<name>.CONNZ|STATZ|SUBSZ`` and ``ACCOUNT.PING.STATZ``."""
        if not reply:
            return
        hub = self.hub
        _, _, _, name, what = subject.decode(errors="replace").split(".")
        if name == "PING" and what == "STATZ":
            busy = [a for a in hub.accounts.values() if a.clients]
            self._reply(self.clients[0], reply, {"data": _statz_of(hub, busy)})
            return
        acc = hub.accounts.get(name)
        if acc is None:
            return
        if what == "CONNZ":
            data = monitor.connz(hub, account=name)
        elif what == "STATZ":
            data = _statz_of(hub, [acc])
        elif what == "SUBSZ":
            data = {"server_id": hub.server_id, "now": rfc3339(time.time()),
                    "num_subscriptions": len(acc.router.index)}
        else:
            return
        self._reply(self.clients[0], reply, {"data": data})

    def _endpoint(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payload: bytes) -> None:
        if not reply:
            return
        name = subject.rsplit(b".", 1)[1]
        if name == b"STATSZ":
            self._ping(subject, reply, hdr, payload)
            return
        build = self.endpoints.get(name)
        if build is None:
            self._reply(self.clients[0], reply,
                        {"error": {"code": 400, "description": "unknown endpoint"}})
            return
        self._reply(self.clients[0], reply, {"data": build()})
