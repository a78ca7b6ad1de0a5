"""nats-server's monitoring documents (/varz, /connz, /healthz) built from the hub."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from core.timeutil import rfc3339, uptime

if TYPE_CHECKING:
    from core.client import Client
    from core.hub import Hub

_PAGE = 1024
_NS = 1_000_000_000


def rss_bytes() -> int:
    """Resident set size of this process, read from /proc."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_percent(hub: Hub) -> float:
    used = time.process_time()
    elapsed = max(time.time() - hub.start, 1e-9)
    return round(100.0 * used / elapsed, 2)


def varz(hub: Hub, http_host: str, http_port: int) -> dict[str, Any]:
    opts = hub.options
    now = time.time()
    doc: dict[str, Any] = {
        "server_id": hub.server_id,
        "server_name": hub.server_name,
        "version": hub.version,
        "proto": 1,
        "go": "python",
        "host": opts.host,
        "port": hub.ports.get("nats", opts.port),
        "max_connections": opts.max_connections,
        "ping_interval": int(opts.ping_interval * _NS),
        "ping_max": opts.ping_max,
        "http_host": http_host,
        "http_port": http_port,
        "http_base_path": "",
        "https_port": 0,
        "auth_timeout": opts.auth_timeout,
        "max_control_line": opts.max_control_line,
        "max_payload": opts.max_payload,
        "max_pending": opts.max_pending,
        "tls_timeout": opts.tls_timeout,
        "write_deadline": int(opts.write_deadline * _NS),
        "start": rfc3339(hub.start),
        "now": rfc3339(now),
        "uptime": uptime(now - hub.start),
        "mem": rss_bytes(),
        "cores": os.cpu_count() or 1,
        "gomaxprocs": 1,
        "cpu": _cpu_percent(hub),
        "connections": len(hub.clients),
        "total_connections": hub.total_connections,
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "slow_consumers": hub.slow_consumers,
        "subscriptions": sum(len(a.router.index) for a in hub.accounts.values()),
        "config_load_time": rfc3339(hub.start),
        "system_account": "",
        "jetstream": jetstream_summary(hub),
    }
    if hub.auth.required:
        doc["auth_required"] = True
    if opts.tls or opts.tls_cert:
        doc["tls_required"] = True
    doc.update(hub.totals())
    return doc


def jetstream_summary(hub: Hub) -> dict[str, Any]:
    """/varz's JetStream section: configuration and usage summed over accounts."""
    js = hub.jetstream
    if js is None:
        return {}
    memory = storage = total = errors = 0
    for jsa in js.accounts.values():
        usage = jsa.usage()
        memory += usage["memory"]
        storage += usage["storage"]
        total += jsa.api_total
        errors += jsa.api_errors
    return {
        "config": {"max_memory": js.max_memory, "max_storage": js.max_store,
                   "store_dir": js.store_dir},
        "stats": {"memory": memory, "storage": storage, "reserved_memory": 0,
                  "reserved_storage": 0, "accounts": len(js.accounts), "ha_assets": 0,
                  "api": {"total": total, "errors": errors}},
    }


def _conn(c: Client, now: float, subs: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cid": c.cid,
        "kind": c.kind,
        "type": "nats" if c.conn_type == "STANDARD" else c.conn_type.lower(),
        "ip": c.ip,
        "port": c.port,
        "start": rfc3339(c.start),
        "last_activity": rfc3339(c.last_activity),
        "rtt": "0s",
        "uptime": uptime(now - c.start),
        "idle": uptime(now - c.last_activity),
        "pending_bytes": getattr(c, "pending_bytes", 0),
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": len(c.subs),
    }
    for key in ("name", "lang", "version"):
        if getattr(c, key):
            doc[key] = getattr(c, key)
    if c.user:
        doc["authorized_user"] = c.user
    if c.account.name != "$G":
        doc["account"] = c.account.name
    if subs:
        doc["subscriptions_list"] = [s.subject.decode(errors="replace") for s in c.subs.values()]
    return doc


_SORTS = {
    "cid": lambda c: c.cid,
    "start": lambda c: c.start,
    "subs": lambda c: -len(c.subs),
    "pending": lambda c: -getattr(c, "pending_bytes", 0),
    "msgs_to": lambda c: -c.out_msgs,
    "msgs_from": lambda c: -c.in_msgs,
    "bytes_to": lambda c: -c.out_bytes,
    "bytes_from": lambda c: -c.in_bytes,
    "last": lambda c: -c.last_activity,
    "idle": lambda c: c.last_activity,
    "uptime": lambda c: c.start,
}


class BadRequest(ValueError):
    """A query parameter the endpoint cannot honour."""


def connz(hub: Hub, offset: int = 0, limit: int = _PAGE, sort: str = "cid",
          subs: bool = False, cid: int | None = None,
          account: str | None = None) -> dict[str, Any]:
    now = time.time()
    if sort not in _SORTS:
        raise BadRequest(f"invalid sorting option: {sort}")
    clients = list(hub.clients.values())
    if cid is not None:
        clients = [c for c in clients if c.cid == cid]
    if account is not None:
        clients = [c for c in clients if c.account.name == account]
    clients.sort(key=_SORTS[sort])
    offset = max(offset, 0)
    limit = _PAGE if limit <= 0 else limit
    page = clients[offset : offset + limit]
    return {
        "server_id": hub.server_id,
        "now": rfc3339(now),
        "num_connections": len(page),
        "total": len(clients),
        "offset": offset,
        "limit": limit,
        "connections": [_conn(c, now, subs) for c in page],
    }
