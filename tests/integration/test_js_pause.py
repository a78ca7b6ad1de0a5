"""Pausing consumers (``$JS.API.CONSUMER.PAUSE``, ``pause_until``), on Jetport and
nats-server from the same client code, plus a pause that outlives a restart."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from servers import Launch, ServerProcess

pytestmark = pytest.mark.timeout(60)

T = "io.nats.jetstream.api.v1.consumer_pause_response"
ZERO = "0001-01-01T00:00:00Z"


def rfc3339_in(seconds: float) -> str:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def api(nc: Any, subject: str, body: Any = None) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    return json.loads((await nc.request("$JS.API." + subject, data, timeout=2)).data)


async def setup(nc: Any, **config: Any) -> None:
    await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"]})
    await nc.request("s.a", b"one", timeout=2)
    res = await api(nc, "CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
        "name": "C", "ack_policy": "explicit", **config}})
    assert "error" not in res, res


@pytest.mark.differential
async def test_pause_and_resume_with_nats_py(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    js = nc.jetstream()
    await setup(nc)
    until = rfc3339_in(60)
    paused = await js.pause_consumer("S", "C", until)
    assert paused.paused is True
    info = await api(nc, "CONSUMER.INFO.S.C")
    assert info["paused"] is True and 55e9 < info["pause_remaining"] <= 60e9
    assert info["config"]["pause_until"].startswith(until[:19])
    listed = await api(nc, "CONSUMER.LIST.S")
    assert listed["consumers"][0]["paused"] is True
    sub = await js.pull_subscribe_bind("C", stream="S")
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=0.5)
    resumed = await js.resume_consumer("S", "C")
    assert resumed.paused is False
    info = await api(nc, "CONSUMER.INFO.S.C")
    assert "paused" not in info and "pause_remaining" not in info
    assert [m.data for m in await sub.fetch(1, timeout=2)] == [b"one"]
    await nc.close()


@pytest.mark.differential
async def test_pause_answers(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await setup(nc)
    res = await api(nc, "CONSUMER.PAUSE.S.C", {"pause_until": rfc3339_in(30)})
    assert res["type"] == T and res["paused"] is True and res["pause_remaining"] > 25e9
    past = rfc3339_in(-30)
    res = await api(nc, "CONSUMER.PAUSE.S.C", {"pause_until": past})
    assert res == {"type": T, "paused": False, "pause_until": res["pause_until"]}
    assert res["pause_until"][:19] == past[:19]
    for empty in (b"", {}):
        assert await api(nc, "CONSUMER.PAUSE.S.C", empty) == {
            "type": T, "paused": False, "pause_until": ZERO}
    refused = {"paused": False, "pause_until": ZERO, "type": T}
    assert await api(nc, "CONSUMER.PAUSE.S.X", {"pause_until": rfc3339_in(9)}) == {
        **refused, "error": {"code": 404, "err_code": 10014, "description": "consumer not found"}}
    assert await api(nc, "CONSUMER.PAUSE.Z.C", {"pause_until": rfc3339_in(9)}) == {
        **refused, "error": {"code": 404, "err_code": 10059, "description": "stream not found"}}
    bad = await api(nc, "CONSUMER.PAUSE.S.C", {"pause_until": "yesterday"})
    assert bad["error"]["err_code"] == 10025 and bad["error"]["description"] == (
        'invalid JSON: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": '
        'cannot parse "yesterday" as "2006"')
    await nc.close()


@pytest.mark.differential
async def test_pull_requests_while_paused(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await setup(nc, pause_until=rfc3339_in(60))
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":1,"no_wait":true}', inbox)
    msg = await sub.next_msg(2)
    assert msg.headers["Status"] == "404"
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":1,"expires":300000000}',
                     inbox)
    msg = await sub.next_msg(2)
    assert msg.headers["Status"] == "408" and msg.headers["Nats-Pending-Messages"] == "1"
    await nc.close()


@pytest.mark.differential
async def test_created_paused_delivers_when_the_pause_ends(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await setup(nc, pause_until=rfc3339_in(1.2))
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    start = time.monotonic()
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":1,"expires":5000000000}',
                     inbox)
    assert (await sub.next_msg(4)).data == b"one"
    assert time.monotonic() - start >= 0.9
    push = await nc.subscribe("push.in")
    res = await api(nc, "CONSUMER.CREATE.S.P", {"stream_name": "S", "config": {
        "name": "P", "deliver_subject": "push.in", "pause_until": rfc3339_in(1)}})
    assert res["paused"] is True
    start = time.monotonic()
    assert (await push.next_msg(4)).data == b"one"
    assert time.monotonic() - start >= 0.7
    await nc.close()


@pytest.mark.differential
async def test_an_update_that_omits_pause_until_keeps_the_pause(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await setup(nc, pause_until=rfc3339_in(60))
    res = await api(nc, "CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
        "name": "C", "ack_policy": "explicit", "description": "updated"}})
    assert res["paused"] is True and res["config"]["description"] == "updated"
    await nc.close()


async def test_pause_outlives_a_restart(tmp_path: Path) -> None:
    hub = Launch(tmp_path)("-js", "-sd", str(tmp_path / "store"))
    try:
        nc = await nats.connect(hub.url)
        await setup(nc, durable_name="C")
        await api(nc, "CONSUMER.PAUSE.S.C", {"pause_until": rfc3339_in(2.5)})
        await nc.close()
        hub.restart()
        nc = await nats.connect(hub.url)
        assert (await api(nc, "CONSUMER.INFO.S.C"))["paused"] is True
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":1,"expires":6000000000}',
                         inbox)
        assert (await sub.next_msg(6)).data == b"one"
        await asyncio.sleep(0.1)
        assert "paused" not in await api(nc, "CONSUMER.INFO.S.C")
        await nc.close()
    finally:
        hub.stop()
