"""Pull consumer priority groups (overflow and pinned_client), on Jetport and nats-server
from the same client code: which request gets messages, and the statuses the others get."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from servers import ServerProcess

pytestmark = pytest.mark.timeout(60)

Reply = list[tuple[str, dict[str, str]]]
NO_MESSAGES = ("", {"Status": "404", "Description": "No Messages"})
MISMATCH = ("", {"Status": "423", "Description": "Nats-Pin-Id mismatch"})
WRONG_PIN = ("", {"Status": "423", "Description": "Nats-Wrong-Pin-Id",
                  "Nats-Pending-Messages": "1", "Nats-Pending-Bytes": "0"})


async def api(nc: Any, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request("$JS.API." + subject, json.dumps(body).encode(), timeout=2)
    return json.loads(msg.data)


async def pull(nc: Any, consumer: str, body: dict[str, Any], quiet: float = 0.4) -> Reply:
    """What one pull request gets until nothing more comes for ``quiet`` seconds."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.S.{consumer}", json.dumps(body).encode(),
                     reply=inbox)
    out: Reply = []
    try:
        while True:
            msg = await sub.next_msg(quiet)
            headers = {getattr(k, "value", k): v for k, v in (msg.headers or {}).items()}
            out.append((msg.data.decode(), headers))
    except nats.errors.TimeoutError:
        pass
    await sub.unsubscribe()
    return out


async def stream_with(nc: Any, n: int, consumer: str, **config: Any) -> None:
    await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
    for i in range(n):
        await nc.request("s", f"m{i}".encode(), timeout=2)
    res = await api(nc, f"CONSUMER.CREATE.S.{consumer}", {"stream_name": "S", "config": {
        "name": consumer, "ack_policy": "explicit", "priority_groups": ["A"], **config}})
    assert "error" not in res, res


@pytest.mark.differential
async def test_overflow_serves_requests_whose_threshold_is_met(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 3, "O", priority_policy="overflow")
    info = await api(nc, "CONSUMER.INFO.S.O", {})
    assert info["priority_groups"] == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True}) == [
        ("", {"Status": "400", "Description": "Bad Request - Priority Group missing"})]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "B"}) == [
        ("", {"Status": "400", "Description": "Bad Request - Invalid Priority Group"})]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "A",
                                "min_pending": 5}) == [NO_MESSAGES]
    assert await pull(nc, "O", {"batch": 1, "expires": 300_000_000, "group": "A",
                                "min_pending": 5}, quiet=0.6) == [
        ("", {"Status": "408", "Description": "Request Timeout",
              "Nats-Pending-Messages": "1", "Nats-Pending-Bytes": "0"})]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "A",
                                "min_pending": 3}) == [("m0", {})]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "A",
                                "min_ack_pending": 5}) == [NO_MESSAGES]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "A",
                                "min_ack_pending": 1}) == [("m1", {})]
    assert await pull(nc, "O", {"batch": 1, "no_wait": True, "group": "A"}) == [("m2", {})]
    await nc.close()


@pytest.mark.differential
async def test_overflow_request_waits_until_enough_is_pending(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 1, "O", priority_policy="overflow")
    waiting = asyncio.ensure_future(pull(nc, "O", {
        "batch": 1, "expires": 3_000_000_000, "group": "A", "min_pending": 2}, quiet=2))
    await asyncio.sleep(0.3)
    await nc.request("s", b"m1", timeout=2)
    assert [d for d, _ in await waiting] == ["m0"]
    await nc.close()


@pytest.mark.differential
async def test_pinned_client(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 6, "P", priority_policy="pinned_client")
    info = await api(nc, "CONSUMER.INFO.S.P", {})
    assert info["config"]["priority_timeout"] == 120_000_000_000
    first = await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"})
    assert [d for d, _ in first] == ["m0"]
    pin = first[0][1]["Nats-Pin-Id"]
    assert len(pin) == 22
    # only the pinned client is served; others wait, or are told their id is wrong
    assert await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"}) == [NO_MESSAGES]
    assert await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A",
                                "id": "A" * 22}) == [MISMATCH]
    assert await pull(nc, "P", {"batch": 2, "no_wait": True, "group": "A", "id": pin}) == [
        ("m1", {"Nats-Pin-Id": pin}), ("m2", {"Nats-Pin-Id": pin})]
    groups = (await api(nc, "CONSUMER.INFO.S.P", {}))["priority_groups"]
    assert groups[0]["group"] == "A" and groups[0]["pinned_client_id"] == pin
    assert not groups[0]["pinned_ts"].startswith("0001")
    # unpinning frees the group: the old id is refused, a new client gets a new pin
    assert await api(nc, "CONSUMER.UNPIN.S.P", {"group": "A"}) == {
        "type": "io.nats.jetstream.api.v1.consumer_unpin_response"}
    groups = (await api(nc, "CONSUMER.INFO.S.P", {}))["priority_groups"]
    assert groups == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]
    assert await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A",
                                "id": pin}) == [WRONG_PIN]
    second = await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"})
    assert second[0][0] == "m3" and second[0][1]["Nats-Pin-Id"] not in ("", pin)
    # a request already waiting is the one pinned next
    waiting = asyncio.ensure_future(pull(nc, "P", {
        "batch": 1, "expires": 2_000_000_000, "group": "A"}, quiet=1.5))
    await asyncio.sleep(0.3)
    await api(nc, "CONSUMER.UNPIN.S.P", {"group": "A"})
    third = await waiting
    assert third[0][0] == "m4" and third[0][1]["Nats-Pin-Id"] != second[0][1]["Nats-Pin-Id"]
    await nc.close()


@pytest.mark.differential
async def test_pin_lapses_when_its_client_stops_asking(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 2, "P", priority_policy="pinned_client",
                      priority_timeout=1_000_000_000)
    first = await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"})
    pin = first[0][1]["Nats-Pin-Id"]
    assert await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"}) == [NO_MESSAGES]
    await asyncio.sleep(1.3)
    other = await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"})
    assert other[0][0] == "m1" and other[0][1]["Nats-Pin-Id"] != pin
    await nc.close()


@pytest.mark.differential
async def test_unpin_refusals(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 0, "P", priority_policy="pinned_client")
    t = "io.nats.jetstream.api.v1.consumer_unpin_response"
    assert await api(nc, "CONSUMER.UNPIN.S.P", {"group": "B"}) == {"type": t, "error": {
        "code": 400, "err_code": 10160,
        "description": "Provided priority group does not exist for this consumer"}}
    assert await api(nc, "CONSUMER.UNPIN.S.P", {}) == {"type": t, "error": {
        "code": 400, "err_code": 10025,
        "description": "invalid JSON: consumer group not specified"}}
    assert await api(nc, "CONSUMER.UNPIN.S.Z", {"group": "A"}) == {"type": t, "error": {
        "code": 404, "err_code": 10014, "description": "consumer not found"}}
    await nc.close()
