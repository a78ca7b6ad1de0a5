"""Message schedules (``Nats-Schedule``, ADR-51), on Jetport and nats-server.

Every test but the restart one runs on both servers from the same nats-py code: stream
configs, the publish checks and their errors, and what a schedule produces when due.
Schedules here fire a second or two ahead (``@at``) or every second (``@every 1s``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from servers import Launch, ServerProcess

pytestmark = pytest.mark.timeout(60)

SCHEDULES = {"name": "S", "subjects": ["s.>"], "allow_msg_schedules": True}


async def api(nc: Any, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = await nc.request("$JS.API." + subject, json.dumps(body or {}).encode(), timeout=2)
    return json.loads(msg.data)


async def publish(nc: Any, subject: str, headers: dict[str, str] | None,
                  data: bytes = b"v") -> dict[str, Any]:
    return json.loads((await nc.request(subject, data, headers=headers, timeout=2)).data)


def in_seconds(n: float) -> str:
    """An RFC 3339 time ``n`` seconds ahead, rounded up to a whole second."""
    at = datetime.now(UTC) + timedelta(seconds=n)
    return (at.replace(microsecond=0) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_headers(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode().split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key, value.strip())
    return out


async def last_on(nc: Any, subject: str) -> tuple[int, dict[str, str], bytes] | None:
    """The last message stream S holds on ``subject``: (seq, headers, data)."""
    got = await api(nc, "STREAM.MSG.GET.S", {"last_by_subj": subject})
    if "error" in got:
        assert got["error"]["err_code"] == 10037, got
        return None
    msg = got["message"]
    hdrs = parse_headers(base64.b64decode(msg["hdrs"])) if msg.get("hdrs") else {}
    return msg["seq"], hdrs, base64.b64decode(msg.get("data") or b"")


async def wait_for(nc: Any, subject: str, after: int = 0, within: float = 4
                   ) -> tuple[int, dict[str, str], bytes]:
    """The first message on ``subject`` with a sequence above ``after``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = await last_on(nc, subject)
        if got is not None and got[0] > after:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing on {subject} after seq {after} within {within} s")


def err(code: int, text: str) -> dict[str, Any]:
    return {"code": 400, "err_code": code, "description": text}


def next_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.mark.differential
async def test_stream_config_allows_schedules_as_nats_server(js_hub: ServerProcess) -> None:
    """The flag needs roll-ups (set for the client unless pedantic), refuses discard
    new, mirrors and sources, can be turned on later but never off, and makes the
    stream need API level 2."""
    nc = await nats.connect(js_hub.url)
    made = await api(nc, "STREAM.CREATE.S", {**SCHEDULES, "deny_purge": True})
    cfg = made["config"]
    assert (cfg["allow_msg_schedules"], cfg["allow_rollup_hdrs"], cfg["deny_purge"]) == (
        True, True, False)
    assert cfg["metadata"]["_nats.req.level"] == "2"

    def invalid(text: str) -> dict[str, Any]:
        return {"code": 500, "err_code": 10052, "description": text}

    assert (await api(nc, "STREAM.CREATE.P", {
        "name": "P", "subjects": ["p"], "allow_msg_schedules": True,
        "allow_rollup_hdrs": False, "pedantic": True}))["error"] == invalid(
        "message scheduling cannot be set if roll-ups are disabled")
    assert (await api(nc, "STREAM.CREATE.D", {
        "name": "D", "subjects": ["d"], "allow_msg_schedules": True, "discard": "new"}
    ))["error"] == invalid("message scheduling cannot use discard new")
    assert (await api(nc, "STREAM.CREATE.M", {
        "name": "M", "mirror": {"name": "S"}, "allow_msg_schedules": True}))["error"] == err(
        10186, "stream mirrors can not also schedule messages")
    assert (await api(nc, "STREAM.CREATE.R", {
        "name": "R", "subjects": ["r"], "sources": [{"name": "S"}],
        "allow_msg_schedules": True}))["error"] == err(
        10187, "stream source can not also schedule messages")
    assert (await api(nc, "STREAM.UPDATE.S", {**SCHEDULES, "allow_msg_schedules": False}
                      ))["error"] == invalid("message schedules can not be disabled")

    plain = await api(nc, "STREAM.CREATE.L", {"name": "L", "subjects": ["l"]})
    assert "allow_msg_schedules" not in plain["config"]
    later = await api(nc, "STREAM.UPDATE.L", {"name": "L", "subjects": ["l"],
                                              "allow_msg_schedules": True})
    assert later["config"]["allow_msg_schedules"] is True
    assert later["config"]["allow_rollup_hdrs"] is True
    assert later["config"]["metadata"]["_nats.req.level"] == "2"
    await nc.close()


DISABLED = err(10188, "message schedules is disabled")
PATTERN = err(10189, "message schedules pattern is invalid")
TARGET = err(10190, "message schedules target is invalid")
TTL = err(10191, "message schedules invalid per-message TTL")
ROLLUP = err(10192, "message schedules invalid rollup")
SOURCE = err(10203, "message schedules source is invalid")
SCHEDULER = err(10212, "message schedules invalid scheduler")
ZONE = err(10223, "message schedules time zone is invalid")
TTL_OFF = err(10166, "per-message TTL is disabled")
FAR = "@at 2099-01-01T00:00:00Z"


def sched(pattern: str, target: str | None = "s.out", **more: str) -> dict[str, str]:
    headers = {"Nats-Schedule": pattern, **{k.replace("_", "-"): v for k, v in more.items()}}
    if target is not None:
        headers["Nats-Schedule-Target"] = target
    return headers


# (subject, headers, the error or None when stored); stream S has s.>, N has n.> and
# no schedules; s.plain holds a message that is not a schedule.
CHECKS: list[tuple[str, dict[str, str], dict[str, Any] | None]] = [
    ("n.a", sched("@every 1s", "n.b"), DISABLED),
    ("n.a", sched("garbage", "n.b"), DISABLED),
    ("n.a", {"Nats-Schedule": ""}, None),
    ("n.a", {"Nats-Scheduler": "n.x"}, SCHEDULER),
    ("n.a", {"Nats-Scheduler": "n.x", "Nats-Schedule-Next": "purge"}, DISABLED),
    ("n.a", {"Nats-Schedule-Time-Zone": ""}, DISABLED),
    ("s.a", {"Nats-Schedule-Target": "s.b", "Nats-Schedule": ""}, None),
    ("s.a", sched(FAR), None),
    ("s.a", sched("@at 2020-01-01T00:00:00Z", None), TARGET),
    ("s.a", sched("@every 1h30m"), None),
    ("s.a", sched("0 30 9 * * MON-FRI"), None),
    ("s.a", sched("@hourly"), None),
    ("s.a", sched("@reboot"), PATTERN),
    ("s.a", sched("@every 500ms"), PATTERN),
    ("s.a", sched("* * * * *"), PATTERN),
    ("s.a", sched("0 0 0 31 2 *"), PATTERN),
    ("s.a", sched("@at 2099-01-01"), PATTERN),
    ("s.a", sched("@every 1s", Nats_Schedule_Time_Zone="UTC"), PATTERN),
    ("s.a", sched("0 0 0 * * *", Nats_Schedule_Time_Zone="Europe/Amsterdam"), None),
    ("s.a", sched("0 0 0 * * *", Nats_Schedule_Time_Zone=""), ZONE),
    ("s.a", sched("0 0 0 * * *", Nats_Schedule_Time_Zone="+02:00"), ZONE),
    ("s.a", sched("garbage", None, Nats_Schedule_Time_Zone="Mars/Base"), ZONE),
    ("s.a", sched("@every 1s", "s.a"), TARGET),
    ("s.a", sched("@every 1s", "s.*"), TARGET),
    ("s.a", sched("@every 1s", "n.b"), TARGET),
    ("s.a", sched("@every 1s", Nats_Schedule_TTL="5s"), TTL_OFF),
    ("s.a", sched("@every 1s", Nats_Schedule_TTL="500ms"), TTL),
    ("s.a", sched("@every 1s", None, Nats_Schedule_TTL="xx"), TTL),
    ("s.a", sched("@every 1h", Nats_Schedule_Rollup="sub"), None),
    ("s.a", sched("@every 1h", Nats_Schedule_Rollup="all"), ROLLUP),
    ("s.a", sched("@every 1h", Nats_Rollup="all"), ROLLUP),
    ("s.a", sched("@every 1h", Nats_Schedule_Rollup="x", Nats_Schedule_Source="n.x"), ROLLUP),
    ("s.a", sched("@every 1h", Nats_Rollup="all", Nats_Schedule_Source="n.x"), SOURCE),
    ("s.a", sched("@every 1h", Nats_Schedule_Source="s.c"), None),
    ("s.a", sched("@every 1h", Nats_Schedule_Source="s.a"), SOURCE),
    ("s.a", sched("@every 1h", Nats_Schedule_Source="s.out"), SOURCE),
    ("s.a", sched("@every 1h", Nats_Schedule_Source="s.*"), SOURCE),
    ("s.q", {"Nats-Scheduler": "s.a"}, SCHEDULER),
    ("s.q", {"Nats-Schedule-Next": "purge"}, SCHEDULER),
    ("s.q", {"Nats-Scheduler": "s.a", "Nats-Schedule-Next": "2099-01-01T00:00:00Z"}, SCHEDULER),
    ("s.q", {"Nats-Scheduler": "s.q", "Nats-Schedule-Next": "purge"}, SCHEDULER),
    ("s.q", {"Nats-Scheduler": "s.*", "Nats-Schedule-Next": "purge"}, SCHEDULER),
    ("s.q", {"Nats-Scheduler": "s.plain", "Nats-Schedule-Next": "purge"}, SCHEDULER),
    ("s.q", {"Nats-Scheduler": "s.nothing", "Nats-Schedule-Next": "purge"}, None),
    ("s.r", {**sched(FAR), "Nats-Scheduler": "s.a"}, SCHEDULER),
]


@pytest.mark.differential
async def test_publish_checks_schedule_headers(js_hub: ServerProcess) -> None:
    """Each schedule header is checked in nats-server's order, with its errors."""
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.N", {"name": "N", "subjects": ["n.>"]})
    await api(nc, "STREAM.CREATE.S", SCHEDULES)
    await publish(nc, "s.plain", None)
    for subject, headers, expected in CHECKS:
        ack = await publish(nc, subject, headers)
        assert ack.get("error") == expected, (subject, headers, ack)
    await nc.close()


@pytest.mark.differential
async def test_a_new_schedule_replaces_the_one_on_its_subject(js_hub: ServerProcess) -> None:
    """Schedules are stored with ``Nats-Rollup: sub``: one per subject."""
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.S", SCHEDULES)
    first = await publish(nc, "s.a", sched(FAR, Foo="1"))
    second = await publish(nc, "s.a", sched("@every 1h", Foo="2"))
    info = await api(nc, "STREAM.INFO.S", {"subjects_filter": ">"})
    assert info["state"]["subjects"] == {"s.a": 1}
    got = await last_on(nc, "s.a")
    assert got is not None
    assert (got[0], got[1]) == (second["seq"], {
        "Nats-Schedule": "@every 1h", "Nats-Schedule-Target": "s.out", "Foo": "2",
        "Nats-Rollup": "sub"})
    assert first["seq"] < second["seq"]
    await nc.close()


@pytest.mark.differential
async def test_at_schedule_fires_once_into_its_target(js_hub: ServerProcess) -> None:
    """When due, the schedule's message goes to its target without the schedule's own
    headers, with ``Nats-Scheduler`` and ``Nats-Schedule-Next: purge`` (and the TTL),
    and the schedule is removed."""
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.S", {**SCHEDULES, "allow_msg_ttl": True})
    at = in_seconds(0.5)
    await publish(nc, "s.at", sched(
        f"@at {at}", "s.out.at", Nats_Schedule_TTL="5s", Nats_Msg_Id="id1",
        Nats_Expected_Last_Subject_Sequence="0", Foo="bar"), b"AT")
    await publish(nc, "s.past", sched("@at 2020-01-01T00:00:00Z", "s.out.past"), b"PAST")
    seq, hdrs, data = await wait_for(nc, "s.out.at")
    assert (hdrs, data) == ({"Foo": "bar", "Nats-Scheduler": "s.at",
                             "Nats-Schedule-Next": "purge", "Nats-TTL": "5s"}, b"AT")
    assert datetime.now(UTC) >= next_time(at)
    _, hdrs, data = await wait_for(nc, "s.out.past")
    assert (hdrs, data) == ({"Nats-Scheduler": "s.past", "Nats-Schedule-Next": "purge"}, b"PAST")
    assert await last_on(nc, "s.at") is None
    assert await last_on(nc, "s.past") is None
    await nc.close()


@pytest.mark.differential
async def test_every_schedule_repeats_until_cancelled(js_hub: ServerProcess) -> None:
    """A repeating schedule announces its next time in ``Nats-Schedule-Next``, can copy
    the last message of its source subject, and stops when a client purges it through
    ``Nats-Scheduler``."""
    nc = await nats.connect(js_hub.url)
    await api(nc, "STREAM.CREATE.S", SCHEDULES)
    await publish(nc, "s.src", {"Src": "1"}, b"FROM SOURCE")
    await publish(nc, "s.ev", sched("@every 1s", "s.out.ev", Nats_Schedule_Rollup="sub"), b"EV")
    await publish(nc, "s.evs", sched("@every 1s", "s.out.evs", Nats_Schedule_Source="s.src"))
    seq, hdrs, data = await wait_for(nc, "s.out.ev")
    assert data == b"EV"
    assert hdrs.keys() == {"Nats-Scheduler", "Nats-Schedule-Next", "Nats-Rollup"}
    assert hdrs["Nats-Scheduler"] == "s.ev"
    announced = next_time(hdrs["Nats-Schedule-Next"])
    assert timedelta(0) < announced - datetime.now(UTC) <= timedelta(seconds=1)
    again, hdrs, _ = await wait_for(nc, "s.out.ev", after=seq)
    assert next_time(hdrs["Nats-Schedule-Next"]) == announced + timedelta(seconds=1)
    info = await api(nc, "STREAM.INFO.S", {"subjects_filter": "s.out.>"})
    assert info["state"]["subjects"]["s.out.ev"] == 1  # rolled up
    _, hdrs, data = await wait_for(nc, "s.out.evs")
    assert (data, hdrs["Src"], hdrs["Nats-Scheduler"]) == (b"FROM SOURCE", "1", "s.evs")

    cancel = await publish(nc, "s.cancel", {"Nats-Scheduler": "s.ev",
                                            "Nats-Schedule-Next": "purge"})
    assert "error" not in cancel, cancel
    assert await last_on(nc, "s.ev") is None
    last = await last_on(nc, "s.out.ev")
    assert last is not None
    await asyncio.sleep(1.3)
    assert await last_on(nc, "s.out.ev") == last
    await nc.close()


async def test_schedules_survive_a_restart(tmp_path: Path) -> None:
    """Schedules are re-armed from the stored messages: what came due while the hub
    was down fires once when it is back, and repeating ones carry on."""
    hub = Launch(tmp_path)("-js", "-sd", str(tmp_path / "store"))
    try:
        nc = await nats.connect(hub.url)
        await api(nc, "STREAM.CREATE.S", SCHEDULES)
        at = in_seconds(0.2)
        await publish(nc, "s.at", sched(f"@at {at}", "s.out.at"), b"AT")
        await publish(nc, "s.ev", sched("@every 1s", "s.out.ev"), b"EV")
        await publish(nc, "s.far", sched(FAR, "s.out.far"), b"FAR")
        await nc.close()
        hub.kill()
        while datetime.now(UTC) < next_time(at) + timedelta(seconds=0.2):
            await asyncio.sleep(0.05)
        hub.restart()
        nc = await nats.connect(hub.url)
        _, hdrs, data = await wait_for(nc, "s.out.at", within=2)
        assert (hdrs, data) == ({"Nats-Scheduler": "s.at", "Nats-Schedule-Next": "purge"}, b"AT")
        assert await last_on(nc, "s.at") is None
        seq, _, _ = await wait_for(nc, "s.out.ev", within=2)
        await wait_for(nc, "s.out.ev", after=seq, within=2)
        assert await last_on(nc, "s.out.far") is None
        assert await last_on(nc, "s.far") is not None
        await nc.close()
    finally:
        hub.stop()
