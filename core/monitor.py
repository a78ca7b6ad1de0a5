"""nats-server's monitoring documents (/varz, /connz, /healthz) built from the hub."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from jetport.core.config.leafnode import split_leaf_url
from jetport.core.jetstream.apilevel import API_LEVEL
from jetport.core.timeutil import NS_PER_S, rfc3339, uptime

if TYPE_CHECKING:
    from jetport.core.client import Client
    from jetport.core.hub import Hub

_PAGE = 1024


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
        "ping_interval": int(opts.ping_interval * NS_PER_S),
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
        "write_deadline": int(opts.write_deadline * NS_PER_S),
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
        "leafnodes": len(hub.leaf_links),
        "slow_consumers": hub.slow_consumers,
        "stalled_clients": hub.flow.stalled,
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
                   "store_dir": js.store_dir, **({"domain": js.domain} if js.domain else {}),
                   **({"sync_always": True} if js.hub.options.jetstream_sync_always else {})},
        "stats": {"memory": memory, "storage": storage, "reserved_memory": 0,
                  "reserved_storage": 0, "accounts": len(js.accounts), "ha_assets": 0,
                  "api": {"level": API_LEVEL, "total": total, "errors": errors}},
    }


def _sub_detail(c: Client, sub: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"subject": sub.subject.decode(errors="replace")}
    if sub.queue:
        doc["qgroup"] = sub.queue.decode(errors="replace")
    doc["sid"] = sub.sid.decode(errors="replace")
    doc["msgs"] = sub.delivered
    if sub.max_msgs:
        doc["max"] = sub.max_msgs
    doc["cid"] = c.cid
    return doc


def conn_doc(c: Client, now: float, subs: bool, detail: bool = False) -> dict[str, Any]:
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
    doc.update(c.connz_fields())
    if c.stalls:
        doc["stalls"] = c.stalls
    if c.user:
        doc["authorized_user"] = c.user
    if c.account.name != "$G":
        doc["account"] = c.account.name
    if detail:
        doc["subscriptions_list_detail"] = [_sub_detail(c, s) for s in c.subs.values()]
    elif subs:
        doc["subscriptions_list"] = [s.subject.decode(errors="replace") for s in c.subs.values()]
    return doc


def closed_record(c: Client, stop: float) -> dict[str, Any]:
    """A connection as /connz?state=closed shows it, taken when it ends."""
    doc = conn_doc(c, stop, subs=True)
    doc["stop"] = rfc3339(stop)
    doc["reason"] = c.close_reason or "Client Closed"
    return doc


SORTS = {
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


#: How /connz sorts connection documents (closed ones, or open and closed together).
_DOC_SORTS: dict[str, Any] = {
    "cid": lambda d: d["cid"], "start": lambda d: d["start"],
    "subs": lambda d: -d["subscriptions"], "pending": lambda d: -d["pending_bytes"],
    "msgs_to": lambda d: -d["out_msgs"], "msgs_from": lambda d: -d["in_msgs"],
    "bytes_to": lambda d: -d["out_bytes"], "bytes_from": lambda d: -d["in_bytes"],
    "last": lambda d: d["last_activity"], "idle": lambda d: d["last_activity"],
    "uptime": lambda d: d["start"], "stop": lambda d: d.get("stop", ""),
    "reason": lambda d: d.get("reason", ""),
}
_STATES = {"open": "open", "closed": "closed", "any": "all", "all": "all"}


def _closed_docs(hub: Hub, subs: bool, detail: bool) -> list[dict[str, Any]]:
    docs = []
    for record in hub.closed_clients:
        doc = dict(record)
        if not subs or detail:
            doc.pop("subscriptions_list", None)
        docs.append(doc)
    return docs


def leafz(hub: Hub, subs: bool = False, account: str | None = None) -> dict[str, Any]:
    """The leaf node links that are up, as nats-server's /leafz shows them."""
    links = [link.describe(subs) for link in hub.leaf_links]
    if account is not None:
        links = [doc for doc in links if doc.get("account") == account]
    return {"server_id": hub.server_id, "now": rfc3339(time.time()),
            "leafnodes": len(links), "leafs": links}


def connz(hub: Hub, offset: int = 0, limit: int = _PAGE, sort: str = "cid",
          subs: bool = False, cid: int | None = None,
          account: str | None = None, subs_detail: bool = False,
          state: str = "open") -> dict[str, Any]:
    """Connections as nats-server's /connz: open ones, or (``state`` closed/all) also
    the last ``max_closed_clients`` that ended, with stop time and reason; ``cid`` picks
    one (limit 1, total still all of them); ``subs_detail`` lists subscriptions with sid,
    queue and counts."""
    now = time.time()
    which = _STATES.get(state.lower())
    if which is None:
        raise BadRequest(f"Error decoding state for {state}")
    if sort in ("stop", "reason") and which == "open":
        raise BadRequest(f"sort by {sort} only valid on closed connections")
    if sort not in SORTS and sort not in ("stop", "reason"):
        raise BadRequest(f"invalid sorting option: {sort}")
    if which != "open":
        return _connz_docs(hub, now, which, offset, limit, sort, subs, cid, account,
                           subs_detail)
    clients = list(hub.clients.values())
    if account is not None:
        clients = [c for c in clients if c.account.name == account]
    total = len(clients)
    offset = max(offset, 0)
    limit = _PAGE if limit <= 0 else limit
    if cid:
        clients = [c for c in clients if c.cid == cid]
        limit = 1
    clients.sort(key=SORTS[sort])
    page = clients[offset : offset + limit]
    return {
        "server_id": hub.server_id,
        "now": rfc3339(now),
        "num_connections": len(page),
        "total": total,
        "offset": offset,
        "limit": limit,
        "connections": [conn_doc(c, now, subs, subs_detail) for c in page],
    }


def _connz_docs(hub: Hub, now: float, which: str, offset: int, limit: int, sort: str,
                subs: bool, cid: int | None, account: str | None,
                detail: bool) -> dict[str, Any]:
    """/connz over closed connections (and open ones too for ``all``)."""
    docs = _closed_docs(hub, subs, detail)
    if which == "all":
        docs += [conn_doc(c, now, subs, detail) for c in hub.clients.values()]
    if account is not None:
        docs = [d for d in docs if d.get("account", "$G") == account]
    total = len(docs)
    offset = max(offset, 0)
    limit = _PAGE if limit <= 0 else limit
    if cid:
        docs = [d for d in docs if d["cid"] == cid]
        limit = 1
    # "last" puts the most recent activity first, as for open connections.
    docs.sort(key=_DOC_SORTS[sort], reverse=sort == "last")
    page = docs[offset : offset + limit]
    return {"server_id": hub.server_id, "now": rfc3339(now), "num_connections": len(page),
            "total": total, "offset": offset, "limit": limit, "connections": page}


# -- /subsz, /jsz, /accountz, /healthz ---------------------------------------------------


def subsz(hub: Hub, subs: bool = False, offset: int = 0, limit: int = _PAGE,
          account: str | None = None, test: str | None = None) -> dict[str, Any]:
    """Subscription totals (and with ``subs`` a page of them, only those a literal
    ``test`` subject reaches when given) as nats-server's /subsz."""
    from jetport.core.subjects import is_valid_literal_subject, subject_matches

    accounts = [a for a in hub.accounts.values() if account is None or a.name == account]
    if test is not None and not is_valid_literal_subject(test.encode()):
        raise BadRequest(f"invalid test subject, must be valid publish subject: {test}")
    found: list[dict[str, Any]] = []
    for c in sorted(hub.clients.values(), key=lambda c: c.cid):
        if account is not None and c.account.name != account:
            continue
        for sub in c.subs.values():
            if test is not None and not subject_matches(sub.subject, test.encode()):
                continue
            doc: dict[str, Any] = {"account": c.account.name, "account_tag": c.account.name,
                                   "subject": sub.subject.decode(errors="replace"),
                                   "sid": sub.sid.decode(errors="replace"),
                                   "msgs": sub.delivered, "cid": c.cid}
            if sub.queue:
                doc["qgroup"] = sub.queue.decode(errors="replace")
            if sub.max_msgs:
                doc["max"] = sub.max_msgs
            found.append(doc)
    offset = max(offset, 0)
    limit = _PAGE if limit <= 0 else limit
    out: dict[str, Any] = {
        "server_id": hub.server_id,
        "now": rfc3339(time.time()),
        "num_subscriptions": sum(len(a.router.index) for a in accounts),
        "num_cache": sum(len(a.router.index.cache) for a in accounts),
        "num_inserts": 0, "num_removes": 0, "num_matches": 0, "cache_hit_rate": 0.0,
        "max_fanout": 0, "avg_fanout": 0.0,
        "total": len(found) if subs else 0,
        "offset": offset,
        "limit": limit,
    }
    if subs:
        out["subscriptions_list"] = found[offset : offset + limit]
    return out


async def jsz(hub: Hub, accounts: bool = False, streams: bool = False,
              consumers: bool = False, config: bool = False,
              account: str | None = None) -> dict[str, Any]:
    """JetStream usage (and per-account stream and consumer detail) as nats-server's /jsz."""
    js = hub.jetstream
    now = rfc3339(time.time())
    if js is None:
        return {"memory": 0, "storage": 0, "reserved_memory": 0, "reserved_storage": 0,
                "accounts": 0, "ha_assets": 0, "api": {"total": 0, "errors": 0},
                "server_id": hub.server_id, "now": now, "disabled": True,
                "config": {"max_memory": 0, "max_storage": 0}, "streams": 0,
                "consumers": 0, "messages": 0, "bytes": 0, "total": 0}
    summary = jetstream_summary(hub)
    stats = summary["stats"]
    doc: dict[str, Any] = {
        "memory": stats["memory"], "storage": stats["storage"],
        "reserved_memory": 0, "reserved_storage": 0, "accounts": stats["accounts"],
        "ha_assets": 0, "api": stats["api"], "server_id": hub.server_id, "now": now,
        "config": summary["config"], "streams": 0, "consumers": 0, "messages": 0, "bytes": 0,
    }
    failing = storage_errors(hub)
    if failing:  # Jetport's own field: accounts whose file storage refuses writes
        doc["storage_errors"] = failing
    details = []
    want_detail = accounts or streams or consumers or account is not None
    for name, jsa in sorted(js.accounts.items()):
        if account is not None and name != account:
            continue
        usage = jsa.usage()
        sdocs = []
        for stream in sorted(jsa.streams.values(), key=lambda s: s.name):
            st = stream.store.state()
            doc["streams"] += 1
            doc["consumers"] += len(stream.consumers)
            doc["messages"] += st.msgs
            doc["bytes"] += st.bytes
            if streams or consumers:
                info = await jsa.api.stream_info_doc(stream)
                sdoc: dict[str, Any] = {"name": stream.name, "created": info.get("created"),
                                        "cluster": {"leader": hub.server_name},
                                        "state": info.get("state")}
                if config:
                    sdoc["config"] = info.get("config")
                if consumers:
                    cdocs = [await c.info() for c in
                             sorted(stream.consumers.values(), key=lambda c: c.name)]
                    if not config:
                        for c in cdocs:
                            c.pop("config", None)
                    sdoc["consumer_detail"] = cdocs
                sdocs.append(sdoc)
        if want_detail:
            adoc: dict[str, Any] = {
                "name": name, "id": name, "memory": usage["memory"],
                "storage": usage["storage"], "reserved_memory": 0, "reserved_storage": 0,
                "accounts": 0, "ha_assets": 0,
                "api": {"total": jsa.api_total, "errors": jsa.api_errors},
            }
            if sdocs:
                adoc["stream_detail"] = sdocs
            details.append(adoc)
    if want_detail:
        doc["account_details"] = details
    doc["total"] = len(details) if want_detail else len(js.accounts)
    return doc


def accountz(hub: Hub, account: str | None = None) -> dict[str, Any]:
    """Account names, or one account's detail, as nats-server's /accountz."""
    system = hub.system_account.name if hub.system_account is not None else ""
    doc: dict[str, Any] = {"server_id": hub.server_id, "now": rfc3339(time.time()),
                           "system_account": system}
    if account is None:
        doc["accounts"] = sorted(hub.accounts)
        return doc
    acc = hub.accounts.get(account)
    if acc is None:
        raise NotFound(f"Account {account} does not exist")
    js = hub.jetstream
    doc["account_detail"] = {
        "account_name": acc.name,
        "update_time": rfc3339(hub.start),
        "is_system": acc.is_system,
        "expired": False,
        "complete": True,
        "jetstream_enabled": js is not None and acc.name in js.accounts,
        "leafnode_connections": 0,
        "client_connections": len(acc.clients),
        "subscriptions": len(acc.router.index),
    }
    return doc


class NotFound(LookupError):
    """A named account, stream or consumer that does not exist."""


def storage_errors(hub: Hub) -> dict[str, str]:
    """Accounts whose file storage refuses writes, with why, until it recovers."""
    js = hub.jetstream
    if js is None:
        return {}
    return {name: str(jsa.storage_error) for name, jsa in js.accounts.items()
            if jsa.storage_error is not None}


def leaf_remotes_down(hub: Hub) -> list[str]:
    """A line for each configured leafnode remote without a link up: a hub cut off from
    its cluster serves local traffic only, so a load balancer should prefer another."""
    leaf = hub.options.leafnode
    if leaf is None or not leaf.remotes:
        return []
    up = Counter(link.client.account.name for link in hub.leaf_links)
    down = []
    for remote in leaf.remotes:
        if up[remote.account] > 0:
            up[remote.account] -= 1
        else:
            where = ", ".join(f"{u.host}:{u.port}" for u in map(split_leaf_url, remote.urls))
            down.append(f'leafnode remote for account "{remote.account}" not connected '
                        f"({where})")
    return down


async def healthz(hub: Hub, js_enabled_only: bool = False, js_server_only: bool = False,
                  account: str | None = None, stream: str | None = None,
                  consumer: str | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) as nats-server's /healthz answers."""
    if (stream or consumer) and not account:
        what = "stream" if stream else "consumer"
        return 400, {"status": "error",
                     "error": f'"account" must not be empty when checking {what} health'}
    if consumer and not stream:
        return 400, {"status": "error",
                     "error": '"stream" must not be empty when checking consumer health'}
    if not hub.ready or "nats" not in hub.ports or hub.lame_duck:
        return 503, {"status": "unavailable", "error": "server not ready"}
    unlinked = leaf_remotes_down(hub)
    if unlinked:
        return 503, {"status": "unavailable", "error": "; ".join(unlinked)}
    js = hub.jetstream
    if js is not None and not js_enabled_only:
        failing = storage_errors(hub)
        if account is not None:
            failing = {name: why for name, why in failing.items() if name == account}
        if failing:
            return 503, {"status": "unavailable", "error": "; ".join(
                f'JetStream storage of account "{name}" failed ({why})'
                for name, why in failing.items())}
    if js_enabled_only or js_server_only or account is None:
        if js_enabled_only and js is None and hub.options.jetstream:
            return 503, {"status": "unavailable", "error": "JetStream not enabled"}
        return 200, {"status": "ok"}
    if js is None:
        return 503, {"status": "unavailable", "error": "JetStream not enabled"}
    jsa = js.accounts.get(account)
    if jsa is None:
        return 404, {"status": "unavailable",
                     "error": f'JetStream account "{account}" not found'}
    if stream:
        s = jsa.streams.get(stream)
        if s is None:
            return 404, {"status": "unavailable", "error":
                         f'JetStream stream "{stream}" not found on account "{account}"'}
        if consumer and consumer not in s.consumers:
            return 404, {"status": "unavailable", "error":
                         f'JetStream consumer "{consumer}" not found for stream "{stream}" '
                         f'on account "{account}"'}
    return 200, {"status": "ok"}
