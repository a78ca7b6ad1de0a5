"""The HTTP door's handlers run on the hub's event loop.

FastAPI runs a plain ``def`` handler or dependency in a worker thread.  The hub's state
and its connections' transports belong to the event loop's thread: uvloop is not
thread-safe, and a connection closed from a worker thread while the loop reads from it
crashed the process (libuv called the read callback the other thread had just cleared).
So every handler and every dependency is a coroutine function.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from jetport.api.app import create_app


def _calls(dependant: Dependant) -> list[Any]:
    found = [dependant.call]
    for sub in dependant.dependencies:
        found += _calls(sub)
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's routes, through the routers it includes (which newer FastAPI versions
    keep as one entry each, older ones spread out)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += _api_routes(inner.routes)
    return found


def test_every_handler_and_dependency_is_a_coroutine_function() -> None:
    app = create_app(cast(Any, None), cast(Any, None))
    routes = _api_routes(app.routes)
    assert len(routes) > 50
    threaded = sorted({f"{r.path} {getattr(call, '__qualname__', call)}"
                       for r in routes for call in _calls(r.dependant)
                       if call is not None and not inspect.iscoroutinefunction(call)})
    assert threaded == []
