"""Fixtures for integration tests: raw NATS protocol sockets."""

from __future__ import annotations

from typing import Any

import pytest
from servers import RawClient


@pytest.fixture
async def raw_clients():
    """Open RawClients with ``await raw_clients(port, connect)``; all closed afterwards."""
    opened: list[RawClient] = []

    async def open_raw(port: int, connect: dict[str, Any] | None = None) -> RawClient:
        client = await RawClient.open(port, connect)
        opened.append(client)
        return client

    yield open_raw
    for c in opened:
        await c.close()
