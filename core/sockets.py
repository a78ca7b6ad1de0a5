"""What the doors do to a connection's socket beyond asyncio's transport API."""

from __future__ import annotations

import asyncio
import socket
import struct

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: asyncio.WriteTransport) -> None:
    """Drop a connection at once, unsent bytes and all: a reset, not a close.

    ``abort()`` alone leaves what the kernel already holds (megabytes on a fast link)
    trickling to a peer that reads slowly; a slow consumer is cut off to free exactly
    that, so the socket lingers zero seconds and the peer gets a reset.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass  # already gone: abort() finishes the job
    transport.abort()
