"""Configuration reload (SIGHUP): users, permissions and accounts change in place.

Connections whose user is still allowed keep going with the new permissions; those
whose user is gone are closed, as nats-server does.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from servers import RawClient

BEFORE = """
accounts {
  A { users: [{user: a, password: pa, permissions: {publish: ">", subscribe: ">"}},
               {user: gone, password: pg}] }
}
"""
AFTER = """
accounts {
  A { users: [{user: a, password: pa, permissions: {publish: "ok.>", subscribe: "ok.>"}},
               {user: new, password: pn}] }
}
"""


async def _login(port: int, user: str, password: str) -> RawClient:
    client = await RawClient.open(port, {"user": user, "pass": password, "verbose": False,
                                         "pedantic": False})
    assert await client.sync() == b""
    return client


async def _reloaded(server, text: str) -> None:
    server.conf_path.write_text(text)
    server.send_signal(signal.SIGHUP)
    await asyncio.sleep(1.0)


@pytest.mark.differential
async def test_reload_keeps_allowed_clients_and_applies_new_rules(launch):
    server = launch.conf(BEFORE)
    a = await _login(server.port, "a", "pa")
    gone = await _login(server.port, "gone", "pg")
    await a.send(b"SUB ok.x 1\r\nSUB other 2\r\n")
    assert await a.sync() == b""

    await _reloaded(server, AFTER)

    assert await gone.closed()
    assert await a.until(b"\r\n") == (
        b"-ERR 'Permissions Violation for Subscription to \"other\" (sid \"2\")'\r\n"
    )
    # Still connected, now held to the new rules.
    await a.send(b"PUB denied 1\r\nx\r\n")
    out = await a.sync()
    assert b"Permissions Violation for Publish to \"denied\"" in out
    await a.send(b"PUB ok.x 2\r\nhi\r\n")
    assert b"MSG ok.x 1 2\r\nhi\r\n" in await a.until(b"hi\r\n")
    # The subscription the new rules forbid no longer delivers.
    other = await _login(server.port, "new", "pn")
    await other.send(b"PUB other 1\r\ny\r\n")
    assert await other.sync() == b""
    assert b"MSG other" not in await a.collect(0.3)
    # The new user exists, the removed one does not.
    refused = await RawClient.open(server.port, {"user": "gone", "pass": "pg"})
    assert await refused.until(b"\r\n") == b"-ERR 'Authorization Violation'\r\n"
    for c in (a, other, refused):
        await c.close()
