"""Live subscriptions over Server-Sent Events: NATS publishes reach SSE readers, and a
reader that reconnects with Last-Event-ID resumes from the stream without a gap."""

from __future__ import annotations

import asyncio
import contextlib
import json

import nats
from test_http_api import http_fixture, js_hub_fixture, make_stream  # noqa: F401  (fixtures)


class Events:
    """Reads ``text/event-stream`` events from an open httpx streaming response."""

    def __init__(self, resp) -> None:
        self.resp = resp
        self.lines = resp.aiter_lines()

    async def next(self, timeout: float = 3.0) -> dict:
        async def read() -> dict:
            ev: dict = {}
            async for line in self.lines:
                if line == "":
                    if "data" in ev:
                        return ev
                    ev = {}
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(": ")
                ev[key] = value
            raise EOFError

        ev = await asyncio.wait_for(read(), timeout)
        ev["data"] = json.loads(ev["data"])
        return ev


async def test_nats_publish_reaches_sse(js_hub, http):
    nc = await nats.connect(js_hub.url)
    async with http.stream("GET", "/v1/subscribe/news.*") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = Events(resp)
        for i in range(3):
            await nc.publish(f"news.{i}", f"n{i}".encode(), headers={"H": str(i)})
        await nc.publish("other", b"not me")
        await nc.flush()
        got = [await events.next() for _ in range(3)]
    assert [e["event"] for e in got] == ["message"] * 3
    assert [e["data"]["subject"] for e in got] == ["news.0", "news.1", "news.2"]
    assert [e["data"]["data"] for e in got] == ["n0", "n1", "n2"]
    assert got[2]["data"]["headers"] == {"H": "2"}
    assert "id" not in got[0]
    await nc.close()


async def test_http_publish_reaches_sse_and_subscription_ends(js_hub, http):
    async with http.stream("GET", "/v1/subscribe/chat.room") as resp:
        events = Events(resp)
        await http.post("/v1/publish/chat.room", content=b"\xff\xfe")
        ev = await events.next()
    assert ev["data"]["encoding"] == "base64"
    # the SSE client's subscription went away with the response
    for _ in range(50):
        subs = (await http.get("/v1/publish/chat.room".replace("/v1/publish", "/subsz")))
        r = await http.post("/v1/publish/chat.room", content=b"x")
        if r.json()["receivers"] == 0:
            break
        await asyncio.sleep(0.05)
    assert r.json()["receivers"] == 0
    assert subs.status_code in (200, 404)


async def test_replay_and_resume_with_last_event_id(js_hub, http):
    await make_stream(http, "FEED", ["feed.>"])
    for i in range(1, 6):
        await http.post(f"/v1/publish/feed.{i}", content=f"m{i}".encode())
    async with http.stream("GET", "/v1/subscribe/feed.>?start_seq=2") as resp:
        events = Events(resp)
        first = [await events.next() for _ in range(4)]
        await http.post("/v1/publish/feed.6", content=b"m6")  # live, after the replay
        first.append(await events.next())
    assert [e["id"] for e in first] == ["2", "3", "4", "5", "6"]
    assert [e["data"]["data"] for e in first] == ["m2", "m3", "m4", "m5", "m6"]
    # while disconnected more messages arrive; the browser reconnects with the last id
    await http.post("/v1/publish/feed.7", content=b"m7")
    await http.post("/v1/publish/feed.8", content=b"m8")
    headers = {"Last-Event-ID": first[-1]["id"]}
    async with http.stream("GET", "/v1/subscribe/feed.>", headers=headers) as resp:
        events = Events(resp)
        resumed = [await events.next() for _ in range(2)]
        await http.post("/v1/publish/feed.9", content=b"m9")
        resumed.append(await events.next())
    assert [e["id"] for e in resumed] == ["7", "8", "9"]
    assert [e["data"]["seq"] for e in resumed] == [7, 8, 9]
    # with stream= and no position: live only, ids still stream sequences
    async with http.stream("GET", "/v1/subscribe/feed.x?stream=FEED") as resp:
        events = Events(resp)
        await http.post("/v1/publish/feed.x", content=b"live")
        ev = await events.next()
    assert ev["id"] == "10" and ev["data"]["data"] == "live"
    consumers = (await http.get("/v1/streams/FEED/consumers")).json()
    for _ in range(40):
        if consumers["total"] == 0:
            break
        await asyncio.sleep(0.05)
        consumers = (await http.get("/v1/streams/FEED/consumers")).json()
    assert consumers["total"] == 0


async def test_sse_errors(http):
    assert (await http.get("/v1/subscribe/a..b")).status_code == 400
    bad = await http.get("/v1/subscribe/x", headers={"Last-Event-ID": "nope"})
    assert bad.status_code == 400
    # no stream stores x: a position needs one
    assert (await http.get("/v1/subscribe/x?start_seq=1")).status_code == 400
    assert (await http.get("/v1/subscribe/x?stream=NOPE")).status_code == 404
    assert (await http.get("/v1/subscribe/x?heartbeat=0")).status_code == 400


async def test_quiet_stream_gets_keepalives_and_many_readers_get_every_event(js_hub, http):
    """A stream quiet for its heartbeat interval gets a keepalive comment; a message
    fanned out to several readers reaches each of them once, in order."""
    async with http.stream("GET", "/v1/subscribe/quiet?heartbeat=0.2") as resp:
        lines = resp.aiter_lines()
        assert await anext(lines) == ": subscribed"
        assert await anext(lines) == ""
        assert await asyncio.wait_for(anext(lines), 2) == ": keepalive"
    nc = await nats.connect(js_hub.url)
    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for _ in range(5):
            resp = await stack.enter_async_context(http.stream("GET", "/v1/subscribe/fan.*"))
            readers.append(Events(resp))
        await asyncio.sleep(0.2)  # every reader subscribed
        for i in range(20):
            await nc.publish(f"fan.{i % 3}", f"m{i}".encode())
        await nc.flush()
        for events in readers:
            got = [(await events.next())["data"] for _ in range(20)]
            assert [g["data"] for g in got] == [f"m{i}" for i in range(20)]
            assert [g["subject"] for g in got] == [f"fan.{i % 3}" for i in range(20)]
    await nc.close()
