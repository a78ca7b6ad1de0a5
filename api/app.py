"""The FastAPI application of the HTTP door."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from core import monitor
from core.hub import JETPORT_VERSION

if TYPE_CHECKING:
    from api.door import HttpDoor
    from core.hub import Hub


def create_app(hub: Hub, door: HttpDoor) -> FastAPI:
    app = FastAPI(title="Jetport", version=JETPORT_VERSION)

    @app.get("/healthz", tags=["monitoring"])
    def healthz() -> JSONResponse:
        """200 once clients can connect; 503 otherwise (as nats-server's /healthz)."""
        if hub.ready and "nats" in hub.ports and not hub.lame_duck:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": "unavailable", "error": "server not ready"}, status_code=503
        )

    @app.get("/varz", tags=["monitoring"])
    def varz() -> dict[str, Any]:
        """Server identity, limits and totals, with nats-server's field names."""
        return monitor.varz(hub, door.host, door.port)

    @app.get("/connz", tags=["monitoring"])
    def connz(
        offset: int = 0,
        limit: int = Query(1024, ge=0),
        sort: str = "cid",
        subs: bool = False,
        cid: int | None = None,
    ) -> Any:
        """Connections with their counters, paged and sorted as nats-server's /connz."""
        try:
            return monitor.connz(hub, offset, limit, sort, subs, cid)
        except monitor.BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return app
