"""nats-server's monitoring endpoints, same paths, query parameters and shapes.

The documents are built in :mod:`jetport.core.monitor` (the system account's ``$SYS.REQ``
services return the same ones); these routes only parse queries and pick status codes.
A query nats-server refuses gets its 400 with the same plain-text message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from jetport.api.auth import authenticate
from jetport.api.errors import HttpError
from jetport.api.metrics import CONTENT_TYPE
from jetport.core import monitor

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor

router = APIRouter(tags=["monitoring"])


class Health(BaseModel):
    """nats-server's /healthz answer."""

    status: str
    error: str | None = None


#: OpenAPI ``responses`` entries, typed as FastAPI takes them.
Responses = dict[int | str, dict[str, Any]]

_DOC: Responses = {200: {"content": {"application/json": {"schema": {"type": "object"}}}}}
_FAIL: Responses = {400: {"description": "A query nats-server refuses, its message as plain text",
               "content": {"text/plain": {"schema": {"type": "string"}},
                           "application/json": {
                               "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}}
#: nats-server pages with any integer: negative offsets are 0, limits <= 0 the default.
_MIN_INT, _MAX_INT = -2**31, 2**31
_HEALTH: Responses = {200: {"model": Health}, 400: {"model": Health}, 404: {"model": Health},
           503: {"model": Health}}
_CORS = {"Access-Control-Allow-Origin": "*"}


def _door(request: Request) -> HttpDoor:
    door: HttpDoor = request.app.state.door
    return door


def _ok(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=_CORS)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "detail", "yes")


def _refused(exc: Exception) -> Response:
    return Response(str(exc), status_code=400, media_type="text/plain; charset=utf-8",
                    headers=_CORS)


async def system_only(request: Request) -> None:
    """Pages that name clients, users, streams or accounts: once any authorization is
    configured, only the system account's users read them (``monitoring_auth: none``
    opens them to everyone, as nats-server's private monitoring port is)."""
    door = _door(request)
    hub = door.hub
    if not hub.auth.required or hub.options.monitoring_auth == "none":
        return
    client = await authenticate(door, request.headers.get("authorization"),
                                request.client.host if request.client else "")
    if hub.system_account is None or client.account is not hub.system_account:
        raise HttpError(403, 10403, "monitoring is for the system account's users")


_SYSTEM = [Depends(system_only)]
_DENIED: Responses = {
    401: {"description": "Authorization is configured and no credentials were given"},
    403: {"description": "The caller is not a user of the system account"}}


@router.get("/healthz", responses=_HEALTH)
async def healthz(request: Request,
                  js_enabled_only: str | None = Query(None, alias="js-enabled-only"),
                  js_server_only: str | None = Query(None, alias="js-server-only"),
                  account: str | None = None, stream: str | None = None,
                  consumer: str | None = None) -> JSONResponse:
    """200 ``{"status":"ok"}`` once clients can connect; 503 otherwise.  With
    ``account``/``stream``/``consumer``: 404 when that JetStream asset is missing."""
    status, doc = await monitor.healthz(
        _door(request).hub, _flag(js_enabled_only), _flag(js_server_only),
        account or None, stream or None, consumer or None)
    return _ok(doc, status)


@router.get("/varz", responses=_DOC)
async def varz(request: Request) -> JSONResponse:
    """Server identity, limits and totals, with nats-server's field names."""
    door = _door(request)
    return _ok(monitor.varz(door.hub, door.host, door.port))


@router.get("/connz", responses={**_DOC, **_FAIL, **_DENIED}, dependencies=_SYSTEM)
async def connz(request: Request, offset: int = Query(0, ge=_MIN_INT, le=_MAX_INT),
                limit: int = Query(1024, ge=_MIN_INT, le=_MAX_INT), sort: str = "cid",
                subs: str | None = None, cid: int | None = Query(None, ge=0, le=2**63),
                acc: str | None = None, state: str = "open") -> Response:
    """Connections with their counters, paged and sorted as nats-server's /connz;
    ``subs=1`` lists subscription subjects, ``subs=detail`` their sid, queue and counts;
    ``state=closed`` (or ``all``) the connections that ended, with stop time and reason."""
    detail = subs is not None and subs.lower() == "detail"
    try:
        return _ok(monitor.connz(_door(request).hub, offset, limit, sort, _flag(subs), cid,
                                 account=acc or None, subs_detail=detail,
                                 state=state or "open"))
    except monitor.BadRequest as exc:
        return _refused(exc)


@router.get("/leafz", responses={**_DOC, **_DENIED}, dependencies=_SYSTEM)
async def leafz(request: Request, subs: str | None = None, acc: str | None = None) -> Response:
    """Leaf node links with their counters; ``subs=1`` lists what each side announced."""
    return _ok(monitor.leafz(_door(request).hub, _flag(subs), acc or None))


@router.get("/subsz", responses={**_DOC, **_FAIL, **_DENIED}, dependencies=_SYSTEM)
@router.get("/subscriptionsz", include_in_schema=False, dependencies=_SYSTEM)
async def subsz(request: Request, subs: str | None = None,
                offset: int = Query(0, ge=_MIN_INT, le=_MAX_INT),
                limit: int = Query(1024, ge=_MIN_INT, le=_MAX_INT), acc: str | None = None,
                test: str | None = None) -> Response:
    """Subscription totals; with ``subs`` the subscriptions (only those a literal
    ``test`` subject reaches, when given)."""
    try:
        return _ok(monitor.subsz(_door(request).hub, _flag(subs), offset, limit,
                                 acc or None, test or None))
    except monitor.BadRequest as exc:
        return _refused(exc)


@router.get("/jsz", responses={**_DOC, **_DENIED}, dependencies=_SYSTEM)
async def jsz(request: Request, accounts: str | None = None, streams: str | None = None,
              consumers: str | None = None, config: str | None = None,
              acc: str | None = None) -> JSONResponse:
    """JetStream usage; ``accounts``, ``streams``, ``consumers``, ``config`` add detail."""
    return _ok(await monitor.jsz(_door(request).hub, _flag(accounts), _flag(streams),
                                 _flag(consumers), _flag(config), acc or None))


@router.get("/accountz", responses={**_DOC, **_FAIL, **_DENIED}, dependencies=_SYSTEM)
async def accountz(request: Request, acc: str | None = None) -> Response:
    """Account names, or with ``acc`` that account's detail (400 for an unknown one)."""
    try:
        return _ok(monitor.accountz(_door(request).hub, acc or None))
    except monitor.NotFound as exc:
        return _refused(exc)


@router.get("/metrics", response_class=Response, dependencies=_SYSTEM,
            responses={200: {"content": {CONTENT_TYPE: {}}}, **_DENIED})
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    door = _door(request)
    return Response(await door.stats.scrape(door.hub), media_type=CONTENT_TYPE)
