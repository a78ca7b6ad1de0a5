"""Jetport's answer to password guessing: each failed login from one address waits
longer before its -ERR (nats-server answers at once, so this is Jetport's own)."""

from __future__ import annotations

import asyncio
import json
import time

from jetport.core.auth import FAILURE_DELAY, FAILURE_DELAY_MAX

#: Below this an attempt was not delayed (a delayed one waits at least 0.9 x the maximum
#: once failures have piled up); the room above 0.02 s is for a loaded machine.
FAST = FAILURE_DELAY_MAX * 0.6

CONF = "authorization { users: [{user: alice, password: pa}] }"


async def _fail_from(port: int, source: str) -> float:
    """Seconds from a bad CONNECT to the Authorization Violation, from ``source``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    await reader.readline()  # INFO
    start = time.monotonic()
    bad = {"user": "alice", "pass": "wrong", "verbose": False, "pedantic": False}
    writer.write(b"CONNECT " + json.dumps(bad).encode() + b"\r\n")
    line = await asyncio.wait_for(reader.readline(), 5)
    elapsed = time.monotonic() - start
    assert line == b"-ERR 'Authorization Violation'\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    writer.close()
    return elapsed


async def test_failure_delay_grows_per_address(launch, tmp_path):
    conf = tmp_path / "auth.conf"
    conf.write_text(CONF)
    hub = launch("-c", str(conf))
    times = [await _fail_from(hub.port, "127.0.0.2") for _ in range(7)]
    assert times[0] < FAST
    assert times[4] >= FAILURE_DELAY * 2 ** 4 * 0.9
    assert FAILURE_DELAY_MAX * 0.9 <= times[6] < FAILURE_DELAY_MAX + 1.0
    # Another address is not slowed by the first one's failures.
    assert await _fail_from(hub.port, "127.0.0.3") < FAST
    # Nor is a right password from the address that failed.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port,
                                                   local_addr=("127.0.0.2", 0))
    await reader.readline()
    good = {"user": "alice", "pass": "pa", "verbose": False, "pedantic": False}
    start = time.monotonic()
    writer.write(b"CONNECT " + json.dumps(good).encode() + b"\r\nPING\r\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
    assert time.monotonic() - start < FAST
    writer.close()


async def test_unknown_user_costs_what_a_wrong_bcrypt_password_costs(launch, tmp_path):
    import bcrypt

    hashed = bcrypt.hashpw(b"pa", bcrypt.gensalt(rounds=11)).decode()
    conf = tmp_path / "auth.conf"
    conf.write_text(f'authorization {{ users: [{{user: alice, password: "{hashed}"}}] }}')
    hub = launch("-c", str(conf))

    async def attempt(source: str, user: str) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port,
                                                       local_addr=(source, 0))
        await reader.readline()
        start = time.monotonic()
        bad = {"user": user, "pass": "wrong", "verbose": False, "pedantic": False}
        writer.write(b"CONNECT " + json.dumps(bad).encode() + b"\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == (
            b"-ERR 'Authorization Violation'\r\n")
        writer.close()
        return time.monotonic() - start

    wrong, unknown = [], []
    for _ in range(4):
        wrong.append(await attempt("127.0.0.4", "alice"))
        unknown.append(await attempt("127.0.0.5", "mallory"))
    # Both pay the bcrypt check (tens of ms at cost 11) and the same growing delay: the
    # quickest of each (the least disturbed by other work on the machine) match.
    assert min(unknown) > 0.02
    assert abs(min(wrong) - min(unknown)) < 0.05


def _grows(times: list[float]) -> None:
    """The delays of seven failures in a row from one address: 0.02 s doubling to 0.5 s."""
    assert times[0] < FAST
    assert times[4] >= FAILURE_DELAY * 2 ** 4 * 0.9
    assert FAILURE_DELAY_MAX * 0.9 <= times[6] < FAILURE_DELAY_MAX + 1.0


DOORS_CONF = CONF + """
mqtt { port: -1 }
websocket { port: -1, no_tls: true }
jetstream { store_dir: "%s" }
"""


def _doors(launch, tmp_path):
    conf = tmp_path / "doors.conf"
    conf.write_text(DOORS_CONF % (tmp_path / "js"))
    return launch("-c", str(conf), "-m", "-1")


async def test_http_failures_wait_longer_per_address(launch, tmp_path):
    import httpx

    hub = _doors(launch, tmp_path)
    url = f"http://127.0.0.1:{hub.http_port}/v1/streams"

    async def fail_from(source: str, auth: tuple[str, str] | None = ("alice", "wrong"),
                        header: str | None = None) -> float:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        async with httpx.AsyncClient(transport=transport) as client:
            start = time.monotonic()
            resp = await client.get(url, auth=auth, headers={"authorization": header}
                                    if header else None)
            assert resp.status_code == 401
            return time.monotonic() - start

    _grows([await fail_from("127.0.0.2") for _ in range(7)])
    assert await fail_from("127.0.0.3") < FAST
    # A malformed Authorization header counts as a failure too.
    assert await fail_from("127.0.0.2", None, "Basic !!!") >= FAILURE_DELAY_MAX * 0.9


async def test_mqtt_failures_wait_longer_per_address(launch, tmp_path):
    hub = _doors(launch, tmp_path)

    async def fail_from(source: str) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.mqtt_port,
                                                       local_addr=(source, 0))
        # MQTT 3.1.1 CONNECT, clean session, user "alice", password "wrong".
        body = (b"\x00\x04MQTT\x04\xc2\x00\x1e\x00\x02c1"
                b"\x00\x05alice\x00\x05wrong")
        start = time.monotonic()
        writer.write(b"\x10" + bytes([len(body)]) + body)
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x20\x02\x00\x05"
        elapsed = time.monotonic() - start
        writer.close()
        return elapsed

    _grows([await fail_from("127.0.0.2") for _ in range(7)])
    assert await fail_from("127.0.0.3") < FAST


async def test_websocket_failures_wait_longer_per_address(launch, tmp_path):
    import re

    from websockets.asyncio.client import connect

    hub = _doors(launch, tmp_path)
    ws_port = int(re.search(r"websocket clients on ws://[^:]+:(\d+)", hub.log()).group(1))

    async def fail_from(source: str) -> float:
        async with connect(f"ws://127.0.0.1:{ws_port}", local_addr=(source, 0)) as ws:
            assert (await ws.recv()).startswith(b"INFO ")
            start = time.monotonic()
            bad = {"user": "alice", "pass": "wrong", "verbose": False, "pedantic": False}
            await ws.send(b"CONNECT " + json.dumps(bad).encode() + b"\r\n")
            assert await asyncio.wait_for(ws.recv(), 5) == b"-ERR 'Authorization Violation'\r\n"
            return time.monotonic() - start

    _grows([await fail_from("127.0.0.2") for _ in range(7)])
    assert await fail_from("127.0.0.3") < FAST
