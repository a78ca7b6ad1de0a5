"""One JetStream hub with the HTTP door per test module, and a client for each test that
leaves no stream behind.  A module takes them with
``from httphub import http_fixture, js_hub_fixture``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from servers import Launch, ServerProcess


@pytest.fixture(scope="module", name="js_hub")
def js_hub_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("http")
    server = Launch(tmp)("-js", "-sd", str(tmp / "store"), "-m", "-1")
    yield server
    server.stop()


@pytest.fixture(name="http")
async def http_fixture(js_hub: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{js_hub.http_port}",
                                 timeout=10) as client:
        yield client
        for info in (await client.get("/v1/streams")).json()["streams"]:
            await client.delete(f"/v1/streams/{info['config']['name']}")
