"""Message schedules through the HTTP door: publish headers, and the schedules resource
(``PUT``/``GET``/``DELETE /v1/streams/{stream}/schedules/{subject}``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from httphub import http_fixture, js_hub_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
async def schedule_stream(http) -> None:
    """Stream S (s.>) with schedules and message TTLs."""
    resp = await http.post("/v1/streams", json={
        "name": "S", "subjects": ["s.>"], "allow_msg_schedules": True, "allow_msg_ttl": True})
    assert resp.status_code == 201, resp.text


def soon(seconds: float) -> str:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds + 1)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def last(http: httpx.AsyncClient, subject: str, within: float = 4) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        resp = await http.get(f"/v1/streams/S/last/{subject}")
        if resp.status_code == 200:
            return resp.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing on {subject}")


async def test_publish_route_takes_schedule_headers(http):
    """``Nats-Schedule*`` request headers (any case) make the publish a schedule."""
    resp = await http.post("/v1/publish/s.at", content=b"hello", headers={
        "nats-schedule": f"@at {soon(0.3)}", "nats-schedule-target": "s.out",
        "nats-schedule-ttl": "5s", "X-Nats-Header-Kind": "greeting"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"stream": "S", "seq": 1, "duplicate": False}
    got = await last(http, "s.out")
    assert got["data"] == "hello"
    assert got["headers"] == {"Kind": "greeting", "Nats-Scheduler": "s.at",
                              "Nats-Schedule-Next": "purge", "Nats-TTL": "5s"}
    bad = await http.post("/v1/publish/s.bad", headers={
        "Nats-Schedule": "@every 10ms", "Nats-Schedule-Target": "s.out"})
    assert bad.status_code == 400
    assert bad.json()["error"] == {"code": 400, "err_code": 10189,
                                   "description": "message schedules pattern is invalid"}


async def test_schedules_resource_puts_lists_and_cancels(http):
    put = await http.put("/v1/streams/S/schedules/s.tick", json={
        "schedule": "@every 1s", "target": "s.ticks", "data": "tick",
        "headers": {"App": "x"}})
    assert put.status_code == 200, put.text
    assert put.json() == {"stream": "S", "seq": 1, "duplicate": False}
    cron = await http.put("/v1/streams/S/schedules/s.daily", json={
        "schedule": "0 0 9 * * *", "target": "s.report", "time_zone": "Europe/Amsterdam"})
    assert cron.status_code == 200, cron.text
    replaced = await http.put("/v1/streams/S/schedules/s.daily", json={
        "schedule": "0 30 9 * * *", "target": "s.report", "time_zone": "Europe/Amsterdam"})
    assert replaced.json()["seq"] == 3
    await http.post("/v1/publish/s.plain", content=b"not a schedule")

    resp = await http.get("/v1/streams/S/schedules")
    assert resp.status_code == 200, resp.text
    listed = resp.json()["schedules"]
    assert [(s["subject"], s["schedule"], s["target"], s["time_zone"]) for s in listed] == [
        ("s.tick", "@every 1s", "s.ticks", None),
        ("s.daily", "0 30 9 * * *", "s.report", "Europe/Amsterdam")]
    assert listed[0]["headers"] == {"App": "x", "Nats-Expected-Stream": "S", "Nats-Rollup": "sub"}
    assert listed[0]["data"] == "tick"
    one = (await http.get("/v1/streams/S/schedules/s.daily")).json()
    assert (one["seq"], one["schedule"]) == (3, "0 30 9 * * *")
    assert (await http.get("/v1/streams/S/schedules/s.plain")).status_code == 404
    only = (await http.get("/v1/streams/S/schedules", params={"subject": "s.tick"})).json()
    assert [s["subject"] for s in only["schedules"]] == ["s.tick"]

    fired = await last(http, "s.ticks")
    assert fired["data"] == "tick" and fired["headers"]["Nats-Scheduler"] == "s.tick"
    gone = await http.delete("/v1/streams/S/schedules/s.tick")
    assert gone.json() == {"success": True, "purged": 1}
    assert (await http.get("/v1/streams/S/schedules/s.tick")).status_code == 404
    seen = (await last(http, "s.ticks"))["seq"]
    await asyncio.sleep(1.2)
    assert (await last(http, "s.ticks"))["seq"] == seen


async def test_schedule_errors_are_nats_servers(http):
    outside = await http.put("/v1/streams/S/schedules/s.a", json={
        "schedule": "@every 1s", "target": "elsewhere"})
    assert outside.status_code == 400
    assert outside.json()["error"]["err_code"] == 10190
    zone = await http.put("/v1/streams/S/schedules/s.a", json={
        "schedule": "@daily", "target": "s.b", "time_zone": "Mars/Base"})
    assert zone.json()["error"]["err_code"] == 10223
    other = await http.post("/v1/streams", json={"name": "O", "subjects": ["o.>"]})
    assert other.status_code == 201
    wrong = await http.put("/v1/streams/S/schedules/o.a", json={
        "schedule": "@every 1s", "target": "o.b"})
    assert wrong.json()["error"]["err_code"] == 10060  # o.a is stream O's
    missing = await http.delete("/v1/streams/S/schedules/s.none")
    assert missing.status_code == 404
