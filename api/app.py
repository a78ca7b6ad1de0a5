"""The FastAPI application of the HTTP door: routers, errors, request ids, access log."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from jetport.api import (
    console,
    counters,
    errors,
    kv,
    monitoring,
    objects,
    publish,
    schedules,
    sse,
    streams,
)
from jetport.api.fastpath import FastPublish
from jetport.core.hub import JETPORT_VERSION
from jetport.core.log import log

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor
    from jetport.core.hub import Hub

DESCRIPTION = (
    "The HTTP door of a Jetport hub: publish, request/reply, streams, consumers, KV, "
    "object store and live Server-Sent Events under /v1, as the caller's user and "
    "account; nats-server's monitoring endpoints and Prometheus metrics at the root."
)


_ERROR_400 = {"description": "Bad Request", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def asgi_app(hub: Hub, door: HttpDoor) -> Any:
    """What uvicorn serves: request ids and the publish fast path around the API."""
    return RequestLog(FastPublish(create_app(hub, door), door), door)


def create_app(hub: Hub, door: HttpDoor) -> FastAPI:
    app = FastAPI(title="Jetport", version=JETPORT_VERSION, description=DESCRIPTION)
    app.state.door = door
    errors.install(app)
    for module in (monitoring, publish, streams, schedules, kv, objects, counters, sse):
        app.include_router(module.router)
    console.install(app)

    plain = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI documents its own 422; this door answers bad input with 400."""
        if app.openapi_schema is None:
            doc = plain()
            for path in doc.get("paths", {}).values():
                for op in path.values():
                    responses = op.get("responses", {})
                    responses.pop("422", None)
                    responses.setdefault("400", _ERROR_400)
            doc.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            doc.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class RequestLog:
    """Gives each request an id (``X-Request-Id``, the caller's or a new one) and logs one
    JSON line per request at debug level (``-D``); plain ASGI so streams stay streams."""

    def __init__(self, app: Any, door: HttpDoor) -> None:
        self.app = app
        self.door = door
        # Ids are this door's random prefix and a count: as unique as a random id per
        # request, without reading the system's random source each time.
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                rid = value.decode("latin-1")[:64]
        rid = rid or f"{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"
        start = time.perf_counter()
        status = [0]
        self.door.stats.requests += 1

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(10):
                client = scope.get("client") or ("", 0)
                log.debug("http %s", json.dumps({
                    "request_id": rid, "method": scope["method"], "path": scope["path"],
                    "status": status[0], "ms": round((time.perf_counter() - start) * 1e3, 3),
                    "client": client[0],
                }, separators=(",", ":")))
