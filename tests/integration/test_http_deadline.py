"""The HTTP door's deadline on request heads, on uvicorn's own protocols (httptools and
h11) with a short deadline: a head that does not arrive in time gets a 408 and the
connection closes; a slow body, a long response and keep-alive requests are untouched."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from jetport.api.deadline import with_header_deadline

DEADLINE = 0.3


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the body's size; ``/slow`` answers in parts over a second."""
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/slow":
        for _ in range(4):
            await asyncio.sleep(DEADLINE)
            await send({"type": "http.response.body", "body": b"part\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"%d" % len(body)})


@pytest.fixture(params=["httptools", "h11"])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    base = import_from_string(HTTP_PROTOCOLS[request.param])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(app, lifespan="off", log_config=None, loop="none",
                            http=with_header_deadline(base, DEADLINE))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve([sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def talk(port: int, parts: list[bytes], gap: float) -> bytes:
    """Send ``parts`` ``gap`` seconds apart; everything read until the server closes
    (or stops sending for a second)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = bytearray()

    async def read() -> None:  # meanwhile, so an answer is not lost to a later reset
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                out.extend(chunk)

    reading = asyncio.create_task(read())
    for part in parts:
        if reading.done():
            break
        with contextlib.suppress(ConnectionError):
            writer.write(part)
        await asyncio.sleep(gap)
    seen = -1
    while not reading.done() and seen != len(out):  # until closed, or quiet for 0.5 s
        seen = len(out)
        await asyncio.wait([reading], timeout=0.5)
    reading.cancel()
    writer.close()
    return bytes(out)


async def test_a_head_that_does_not_arrive_in_time_gets_408(port: int) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: abcdef\r\n\r\n"
    out = await talk(port, [head[i:i + 4] for i in range(0, len(head), 4)], DEADLINE / 3)
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"code": 408' in out


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    out = await talk(port, [], DEADLINE * 2)
    assert out.startswith(b"HTTP/1.1 408")


async def test_slow_bodies_long_responses_and_keep_alive_are_untouched(port: int) -> None:
    body = b"x" * 40
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
    out = await talk(port, [head] + [body[i:i + 10] for i in range(0, 40, 10)], DEADLINE)
    assert out.startswith(b"HTTP/1.1 200") and b"\r\n40\r\n" in out
    slow = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
    out = await talk(port, [slow], DEADLINE * 6)
    assert out.startswith(b"HTTP/1.1 200") and out.count(b"part") == 4
    again = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    out = await talk(port, [again, again, again], DEADLINE * 0.8)
    assert out.count(b"HTTP/1.1 200") == 3
