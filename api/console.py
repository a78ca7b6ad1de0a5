"""The browser console: its static files at ``/``, and the few routes its pages need that
no other route serves (one overview of the doors, one paged clients listing across doors,
MQTT sessions, every account's streams for the system account, disconnecting a client).

Every route here authenticates like the rest of ``/v1``.  A caller sees the whole server
when the hub has no authorization or the caller is a system account user; any other user
sees only their own account, as ``/connz?acc=`` would show it.  Disconnecting is for the
system account only, like nats-server's ``$SYS.REQ.SERVER.*.KICK``.  Lists are paged with
``offset``/``limit`` (at most :data:`MAX_PAGE`), as /connz pages.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from jetport.api.auth import caller
from jetport.api.errors import ERRORS, HttpError, bad_request, not_found
from jetport.api.metrics import DOORS, door_of
from jetport.api.session import DoorClient
from jetport.core import monitor

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor
    from jetport.core.hub import Hub

STATIC = Path(__file__).resolve().parent / "static"
MAX_PAGE = 1024
router = APIRouter(prefix="/v1/console", tags=["console"])
Caller = Annotated[DoorClient, Depends(caller)]
#: The page loads nothing from elsewhere (no CDN) and may not be framed.
_PAGE_HEADERS = {"Cache-Control": "no-cache",
                 "Content-Security-Policy": "default-src 'self'; object-src 'none'; "
                                            "frame-ancestors 'none'"}


def install(app: FastAPI) -> None:
    """``/`` is the console's page; its scripts and styles are under ``/console/``."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=STATIC), name="console")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


def _door(request: Request) -> HttpDoor:
    door: HttpDoor = request.app.state.door
    return door


def scope(hub: Hub, client: DoorClient) -> str | None:
    """The account a caller may look at: None for all of them."""
    if not hub.auth.required:
        return None
    if hub.system_account is not None and client.account is hub.system_account:
        return None
    return client.account.name


def _doors(door: HttpDoor, account: str | None) -> list[dict[str, Any]]:
    hub = door.hub
    conns, traffic = door.stats.traffic(hub)
    if account is not None:
        conns = defaultdict(int)
        for c in list(hub.clients.values()):
            if c.account.name == account:
                conns[door_of(c)] += 1
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (name, acc), values in traffic.items():
        if account is None or acc == account:
            t = totals[name]
            for i in range(4):
                t[i] += values[i]
    names = [*hub.urls, *(d for d in DOORS if d not in hub.urls)]
    out = []
    for name in names:
        t = totals[name]
        state = "closed" if name not in hub.urls else "lame duck" if hub.lame_duck else "open"
        out.append({"name": name, "url": hub.urls.get(name, ""), "state": state,
                    "connections": conns.get(name, 0), "in_msgs": t[0], "out_msgs": t[1],
                    "in_bytes": t[2], "out_bytes": t[3]})
    return out


def _store(hub: Hub, account: str | None) -> dict[str, int]:
    js = hub.jetstream
    if js is None:
        return {"memory": 0, "storage": 0, "streams": 0}
    usage = [jsa.usage() for name, jsa in list(js.accounts.items())
             if account is None or name == account]
    return {key: sum(u[key] for u in usage) for key in ("memory", "storage", "streams")}


@router.get("/overview", responses=ERRORS)
async def overview(request: Request, client: Caller) -> dict[str, Any]:
    """The doors with their connections and cumulative traffic (the page turns them into
    rates), the server's resources and the counters behind its warnings."""
    door = _door(request)
    hub = door.hub
    account = scope(hub, client)
    varz = monitor.varz(hub, door.host, door.port)
    storage = monitor.storage_errors(hub)
    if account is not None:
        storage = {k: v for k, v in storage.items() if k == account}
    return {
        "now": time.time(),
        "caller": {"user": client.user or "", "account": client.account.name,
                   "scope": account, "auth": hub.auth.required},
        "server": {key: varz[key] for key in ("server_id", "server_name", "version", "start",
                                              "uptime", "mem", "cpu", "cores",
                                              "connections", "slow_consumers")},
        "store": _store(hub, account),
        "doors": _doors(door, account),
        "warnings": {"slow_consumers": hub.slow_consumers, "storage": storage,
                     # Other accounts' failed logins are the server's business.
                     "auth_failures": door.stats.auth_failures(hub) if account is None
                     else None},
    }


def _page(items: list[Any], offset: int, limit: int) -> list[Any]:
    return items[offset:offset + limit]


@router.get("/clients", responses=ERRORS)
async def clients(request: Request, client: Caller, offset: int = Query(0, ge=0),
                  limit: int = Query(100, ge=1, le=MAX_PAGE), sort: str = "cid",
                  door: str | None = None, account: str | None = None,
                  user: str | None = None, subs: bool = False) -> dict[str, Any]:
    """Every door's connections in one list, filtered by door, account and user (a part
    of the name), sorted by /connz's sort options."""
    hub = _door(request).hub
    if sort not in monitor.SORTS:
        raise bad_request(f"invalid sorting option: {sort}")
    own = scope(hub, client)
    if own is not None:
        if account and account != own:
            raise HttpError(403, 10403, "only the caller's own account may be listed")
        account = own
    found = [c for c in list(hub.clients.values())
             if (not account or c.account.name == account)
             and (not door or door_of(c) == door)
             and (not user or user in (c.user or ""))]
    found.sort(key=monitor.SORTS[sort])
    now = time.time()
    page = []
    for c in _page(found, offset, limit):
        doc = monitor.conn_doc(c, now, subs)
        doc["door"] = door_of(c)
        doc["account"] = c.account.name
        page.append(doc)
    return {"total": len(found), "offset": offset, "limit": limit, "connections": page}


@router.post("/clients/{cid}/disconnect", responses=ERRORS)
async def disconnect(request: Request, cid: int, client: Caller) -> dict[str, Any]:
    """Close one connection, as nats-server's KICK does (system account users only)."""
    hub = _door(request).hub
    if scope(hub, client) is not None:
        raise HttpError(403, 10403, "disconnecting clients is for the system account")
    target = hub.clients.get(cid)
    if target is None:
        raise not_found(f"connection {cid}")
    try:
        target.close("Kicked")
    except NotImplementedError:
        raise HttpError(409, 10409, f"connection {cid} cannot be closed from here") from None
    return {"success": True, "cid": cid}


@router.get("/streams", responses=ERRORS)
async def all_streams(request: Request, client: Caller, offset: int = Query(0, ge=0),
                      limit: int = Query(100, ge=1, le=MAX_PAGE),
                      account: str | None = None) -> dict[str, Any]:
    """Every account's streams, read-only, for the system account's users (the REST
    stream routes act in the caller's own account, which for them has no JetStream)."""
    hub = _door(request).hub
    if scope(hub, client) is not None:
        raise HttpError(403, 10403, "other accounts' streams are for the system account")
    js = hub.jetstream
    found = [] if js is None else [
        (name, jsa, stream) for name, jsa in sorted(js.accounts.items())
        if not account or name == account
        for stream in sorted(jsa.streams.values(), key=lambda s: s.name)]
    page = []
    for name, jsa, stream in _page(found, offset, limit):
        info = await jsa.api.stream_info_doc(stream)
        page.append({"account": name, "config": info.get("config"),
                     "state": info.get("state")})
    return {"total": len(found), "offset": offset, "limit": limit, "streams": page}


@router.get("/mqtt/sessions", responses=ERRORS)
async def mqtt_sessions(request: Request, client: Caller, offset: int = Query(0, ge=0),
                        limit: int = Query(100, ge=1, le=MAX_PAGE),
                        client_id: str = "") -> dict[str, Any]:
    """MQTT sessions, connected and persistent offline ones (those only the store holds
    too), by client id; ``total_capped`` says the count of stored ones stopped at its cap."""
    hub = _door(request).hub
    lister = hub.session_lists.get("mqtt")
    found = await lister(scope(hub, client), offset, limit, client_id) if lister else {
        "total": 0, "total_capped": False, "sessions": []}
    return {"offset": offset, "limit": limit, **found}
