"""Fixtures for integration tests: raw NATS protocol sockets, and a JetStream server that
is Jetport once and nats-server once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servers import RawClient, jetport, nats_server, nats_server_binary


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


@pytest.fixture(params=["jetport", "nats-server"])
def server(request, tmp_path: Path):
    """A JetStream server, Jetport and then nats-server: one client script, both peers."""
    if request.param == "nats-server" and nats_server_binary() is None:
        pytest.fail("nats-server binary not found")
    make = jetport if request.param == "jetport" else nats_server
    proc = make(tmp_path, "-js", "-sd", str(tmp_path / "store"), name=request.param).start()
    yield proc
    proc.stop()
