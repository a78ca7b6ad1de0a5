"""A deadline for a request's headers, which uvicorn does not have.

uvicorn bounds the quiet time between requests (``timeout_keep_alive``) but not the
time a request takes to arrive, so a client sending its headers a byte at a time holds
its connection for good.  Here a request's head must be complete within
:data:`HEADER_DEADLINE` of its first byte, or the client gets a 408 and the connection
closes, as Go's servers (nats-server's monitoring port among them) do after their
read-header timeout.  The bound covers the head only: bodies and long responses (SSE)
are untouched.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jetport.core.log import log

#: Seconds from a request's first byte to the end of its headers.
HEADER_DEADLINE = 10.0
_END_OF_HEAD = b"\r\n\r\n"
_BODY = json.dumps({"error": {"code": 408, "description": "request header timeout"}}).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%b" % (len(_BODY), _BODY)
)


def with_header_deadline(base: type[Any], seconds: float = HEADER_DEADLINE) -> type[Any]:
    """``base`` (uvicorn's httptools or h11 protocol) with a deadline on each request's
    head; the subclass hooks only methods both of uvicorn's implementations have."""

    class HeaderDeadline(base):  # type: ignore[misc]
        # One timer per connection, re-armed only when it fires, and the start of the
        # current head as a timestamp: a timer made and cancelled per request cost more
        # than the rest of this class.
        _head_timer: asyncio.TimerHandle | None = None
        #: Loop time the current request's head began (None: between requests).
        _head_since: float | None = None
        _in_head = True
        _tail = b""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            # A connection that sends nothing at all is held to the same deadline.
            loop = asyncio.get_running_loop()
            self._head_since = loop.time()
            self._head_timer = loop.call_later(seconds, self._head_check)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                if self._head_since is None:
                    self._head_since = asyncio.get_running_loop().time()
                seen = self._tail + data
                if _END_OF_HEAD in seen:
                    self._in_head, self._tail, self._head_since = False, b"", None
                else:
                    self._tail = seen[-3:]
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._in_head = True  # the next byte starts the next request's head
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._in_head, self._head_since = False, None
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _head_check(self) -> None:
            loop = asyncio.get_running_loop()
            since = self._head_since
            left = seconds if since is None else since + seconds - loop.time()
            if left > 0:
                self._head_timer = loop.call_later(left, self._head_check)
                return
            self._head_timer = None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            peer = transport.get_extra_info("peername") or ("", 0)
            log.debug("%s:%s - http: request headers not complete in %gs", peer[0], peer[1],
                      seconds)
            transport.write(_TIMEOUT_RESPONSE)
            transport.close()

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
