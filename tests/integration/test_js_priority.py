"""Pull consumer priority groups (overflow, pinned_client and prioritized), on Jetport and
nats-server from the same client code: which request gets messages, and the statuses the
others get."""

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


async def pull(nc: Any, consumer: str, body: dict[str, Any] | bytes,
               quiet: float = 0.4) -> Reply:
    """What one pull request (a JSON object, or raw bytes) gets: its batch, or up to a
    status that ends it, or what came until nothing more came for ``quiet`` seconds."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    batch = body.get("batch", 1) if isinstance(body, dict) else int(body or b"1")
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.S.{consumer}", data, reply=inbox)
    out: Reply = []
    try:
        while sum("Status" not in h for _, h in out) < batch:
            msg = await sub.next_msg(quiet)
            headers = {getattr(k, "value", k): v for k, v in (msg.headers or {}).items()}
            out.append((msg.data.decode(), headers))
            if headers.get("Status", "100") != "100":
                break
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


# -- prioritized ----------------------------------------------------------------------

PRIORITIZED = {"priority_policy": "prioritized"}
SECOND = 1_000_000_000


def bad(reason: str) -> Reply:
    return [("", {"Status": "400", "Description": "Bad Request - " + reason})]


async def pulls_in_order(nc: Any, consumer: str, bodies: list[dict[str, Any] | bytes],
                         publish: int) -> list[list[str]]:
    """Queue ``bodies`` one after another, then publish ``publish`` messages: what each
    request got (message data, or status and description)."""
    waiting = []
    for body in bodies:
        waiting.append(asyncio.ensure_future(pull(nc, consumer, body, quiet=0.5)))
        await asyncio.sleep(0.05)
    for i in range(publish):
        await nc.request("s", f"n{i}".encode(), timeout=2)
    return [[data or f"{h['Status']} {h['Description']}" for data, h in await got]
            for got in waiting]


@pytest.mark.differential
async def test_prioritized_consumer_config(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 0, "P", **PRIORITIZED, priority_groups=["A", "B"],
                      priority_timeout=SECOND)
    info = await api(nc, "CONSUMER.INFO.S.P", {})
    cfg = info["config"]
    assert (cfg["priority_policy"], cfg["priority_groups"]) == ("prioritized", ["A", "B"])
    assert cfg["priority_timeout"] == SECOND  # kept, though only pinned_client uses it
    assert cfg["metadata"]["_nats.req.level"] == "1"
    assert info["priority_groups"] == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]
    res = await api(nc, "CONSUMER.CREATE.S.Q", {"stream_name": "S", "config": {
        "name": "Q", **PRIORITIZED}})
    assert res["error"] == {"code": 400, "err_code": 10159, "description":
                            "Setting PriorityPolicy requires at least one PriorityGroup to be set"}
    res = await api(nc, "CONSUMER.CREATE.S.Q", {"stream_name": "S", "config": {
        "name": "Q", **PRIORITIZED, "priority_groups": ["A"], "deliver_subject": "d"}})
    assert res["error"] == {"code": 400, "err_code": 10178,
                            "description": "priority groups can not be used with push consumers"}
    # an overflow consumer may become prioritized
    res = await api(nc, "CONSUMER.CREATE.S.O", {"stream_name": "S", "config": {
        "name": "O", "priority_policy": "overflow", "priority_groups": ["A"]}})
    assert "error" not in res, res
    res = await api(nc, "CONSUMER.CREATE.S.O", {"stream_name": "S", "config": {
        "name": "O", **PRIORITIZED, "priority_groups": ["A"]}})
    assert res["config"]["priority_policy"] == "prioritized"
    await nc.close()


@pytest.mark.differential
async def test_pull_request_priority_refusals(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 3, "P", **PRIORITIZED, max_batch=2)
    once = {"batch": 1, "no_wait": True, "group": "A"}
    range_error = bad("Priority must be between 0 and 9")
    assert await pull(nc, "P", {**once, "priority": 10}) == range_error
    assert await pull(nc, "P", {**once, "priority": -1}) == range_error
    assert await pull(nc, "P", {**once, "priority": "1"}) == bad(
        "json: cannot unmarshal string into Go struct field .priority of type int")
    assert await pull(nc, "P", {"batch": 1, "no_wait": True, "priority": 1}) == bad(
        "Priority Group missing")
    assert await pull(nc, "P", {**once, "group": "B", "priority": 1}) == bad(
        "Invalid Priority Group")
    assert await pull(nc, "P", {**once, "min_pending": 1}) == bad(
        "Not a Overflow Priority consumer")
    assert await pull(nc, "P", {**once, "id": "x"}) == bad(
        "Not a Pinned Client Priority consumer")
    # the batch limit is looked at first
    assert await pull(nc, "P", {"batch": 3, "no_wait": True, "priority": 10}) == [
        ("", {"Status": "409", "Description": "Exceeded MaxRequestBatch of 2"})]
    assert await pull(nc, "P", {**once, "priority": 9}) == [("m0", {})]
    # a consumer without the policy ignores a priority in range, and checks the range
    res = await api(nc, "CONSUMER.CREATE.S.N", {"stream_name": "S", "config": {"name": "N"}})
    assert "error" not in res, res
    assert await pull(nc, "N", {"batch": 1, "no_wait": True, "priority": 3}) == [("m0", {})]
    assert await pull(nc, "N", {"batch": 1, "no_wait": True, "priority": 12}) == range_error
    assert await pull(nc, "N", {"batch": 1, "no_wait": True, "min_pending": 1}) == bad(
        "Not a Overflow Priority consumer")
    await nc.close()


@pytest.mark.differential
async def test_prioritized_serves_the_lowest_priority_first(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 0, "P", **PRIORITIZED)
    one = {"batch": 1, "expires": SECOND, "group": "A"}
    # arrival order breaks ties; a request naming no priority has priority 0
    got = await pulls_in_order(nc, "P", [{**one, "priority": 5}, {**one, "priority": 1},
                                         {**one, "priority": 3}, {**one, "priority": 1},
                                         one], 5)
    assert got == [["n4"], ["n1"], ["n3"], ["n2"], ["n0"]]
    # requests of one priority take a message each in turn, until their batches are full
    got = await pulls_in_order(nc, "P", [{**one, "batch": 2, "priority": 4},
                                         {**one, "batch": 2, "priority": 2},
                                         {**one, "batch": 2, "priority": 2}], 6)
    assert got == [["n4", "n5"], ["n0", "n2"], ["n1", "n3"]]
    await nc.close()


@pytest.mark.differential
async def test_request_that_is_not_json_needs_no_group(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 3, "O", priority_policy="overflow")
    for name, policy in (("P", "pinned_client"), ("Q", "prioritized")):
        res = await api(nc, f"CONSUMER.CREATE.S.{name}", {"stream_name": "S", "config": {
            "name": name, "priority_policy": policy, "priority_groups": ["A"],
            "deliver_policy": "new"}})
        assert "error" not in res, res
    assert await pull(nc, "O", b"") == [("m0", {})]
    assert await pull(nc, "O", b"2") == [("m1", {}), ("m2", {})]
    # on a prioritized consumer it queues behind every request naming a priority
    got = await pulls_in_order(nc, "Q", [b"", {"batch": 1, "expires": SECOND,
                                                "group": "A", "priority": 9}], 1)
    assert got == [[], ["n0"]]
    await nc.request("s", b"n1", timeout=2)
    # on a pinned_client consumer it is served, with an empty pin id, while no client
    # is pinned, and waits while one is
    assert await pull(nc, "P", b"") == [("n0", {"Nats-Pin-Id": ""})]
    pinned = await pull(nc, "P", {"batch": 1, "no_wait": True, "group": "A"})
    assert pinned[0][0] == "n1"
    assert await pull(nc, "P", b"", quiet=0.2) == []
    await nc.close()


@pytest.mark.differential
async def test_prioritized_limits_heartbeats_and_no_wait(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    await stream_with(nc, 0, "P", **PRIORITIZED, max_waiting=3)
    brief = {"batch": 1, "expires": SECOND * 3 // 10, "group": "A"}
    # a request waiting behind another hears heartbeats until it expires; a no_wait
    # request with an expiry waits its turn like any other; a full queue refuses even
    # the most urgent request
    got = await pulls_in_order(nc, "P", [
        {**brief, "priority": 7, "idle_heartbeat": SECOND // 10},
        {**brief, "priority": 1}, {**brief, "priority": 3, "no_wait": True},
        {**brief, "priority": 0}], 1)
    assert got[1:] == [["n0"], ["408 Request Timeout"], ["409 Exceeded MaxWaiting"]]
    assert got[0][-1] == "408 Request Timeout" and set(got[0][:-1]) == {"100 Idle Heartbeat"}
    await nc.close()
