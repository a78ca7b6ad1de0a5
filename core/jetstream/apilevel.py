"""The JetStream API level this hub speaks, and the header clients assert it with.

A client that depends on a newer feature sends ``Nats-Required-Api-Level: N``; a server
below ``N`` must refuse the request rather than silently ignore fields it does not know.
"""

from __future__ import annotations

from jetport.core import headers as H

#: Level 1: the JetStream API of nats-server 2.11 (per-message TTLs, consumer pause,
#: priority groups, batched direct gets).
API_LEVEL = 1
REQUIRED = b"Nats-Required-Api-Level"


def unmet(hdr: bytes | None) -> bool:
    """True when ``hdr`` asks for a level above ours, or for one that is not a number.

    An empty value asks for nothing, as with nats-server.
    """
    value = H.get(hdr, REQUIRED)
    if not value:
        return False
    try:
        return int(value) > API_LEVEL
    except ValueError:
        return True
