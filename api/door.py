"""The HTTP door: FastAPI on uvicorn, in the hub's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jetport.core.log import log
from jetport.core.tasks import spawn

if TYPE_CHECKING:
    from jetport.core.config import Options
    from jetport.core.hub import Hub


def _embedded_server(config: Any) -> Any:
    """uvicorn without its own signal handling: the hub's server owns signals.

    Imported here so a hub without monitoring never loads the web stack.
    """
    import uvicorn

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return EmbeddedServer(config)


class _PeerMistakes(logging.Filter):
    """uvicorn reports a malformed request or an unsupported upgrade (the peer's doing)
    as a warning: here it is a debug line, as the other doors log a peer's mistakes."""

    PEER = ("Invalid HTTP request", "Unsupported upgrade request", "No supported WebSocket")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith(self.PEER):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        return True


class HttpDoor:
    """REST, SSE and monitoring over HTTP, from nats-server's ``http``/``-m`` setting."""

    name = "http"
    order = 100

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        opts = hub.options
        self.host = opts.http_host or opts.host
        self.port = opts.http_port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        from jetport.api.metrics import DoorStats

        self.stats = DoorStats(hub.auth)
        #: Clients of the identities that called recently, by (account, user).
        self.sessions: dict[tuple[str, str], Any] = {}
        #: The queues of open SSE responses: told to end before the server stops.
        self.event_streams: set[asyncio.Queue[Any]] = set()

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return options.http_port != 0

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0 if self.port == -1 else self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        log.info("Starting http monitor on %s:%d", self.host, self.port)
        import uvicorn

        from jetport.api.app import asgi_app

        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _PeerMistakes) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_PeerMistakes())

        from uvicorn.config import HTTP_PROTOCOLS
        from uvicorn.importer import import_from_string

        from jetport.api.deadline import with_header_deadline
        from jetport.api.turnwrites import with_turn_writes

        base = import_from_string(HTTP_PROTOCOLS["auto"])
        http = with_turn_writes(with_header_deadline(base))
        config = uvicorn.Config(
            asgi_app(self.hub, self), loop="none", lifespan="off", access_log=False, http=http,
            # uvicorn's lines go through the hub's log handler and format (core.log).
            log_config=None, log_level="warning", timeout_graceful_shutdown=1,
        )
        self._server = _embedded_server(config)
        self._task = spawn(self._server.serve([sock]), "http door")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()
        self.hub.listening(self.name, "http", self.host, self.port)

    async def lame_duck(self, duration: float, grace: float) -> None:
        """Monitoring stays up during lame duck so operators can watch it drain."""

    async def stop(self) -> None:
        from jetport.api.sse import SHUTDOWN

        for box in list(self.event_streams):
            box.put_nowait(SHUTDOWN)
        for _ in range(50):  # let them finish their responses
            if not self.event_streams:
                break
            await asyncio.sleep(0.01)
        for client in self.sessions.values():
            client.close()
        self.sessions.clear()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
