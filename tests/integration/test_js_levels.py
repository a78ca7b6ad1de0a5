"""Every feature of each JetStream API level Jetport serves, proven on both servers.

``LEVELS`` lists, per level, the stream config fields it added and a request that uses
each one the way a client does; the tests run them on Jetport and on nats-server 2.15.1
and check each asset records the level it needs (``_nats.req.level``).  A level is
served only when every entry of it passes; the fields of levels Jetport does not serve
stay unknown fields (10025), so no client is told a feature works that does not.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from servers import js_connect as connect

from jetport.core.jetstream.apilevel import API_LEVEL

REQ = "_nats.req.level"

#: level -> stream config fields it added, with the value that turns each on.
LEVELS: dict[int, dict[str, Any]] = {
    1: {"allow_msg_ttl": True},
    2: {"allow_msg_counter": True, "allow_atomic": True, "allow_msg_schedules": True,
        "persist_mode": "async"},
}
#: Fields of levels above the one served: refused as unknown, as an older server does.
NOT_SERVED: dict[int, dict[str, Any]] = {
    4: {"allow_batched": True},
}
FIELDS = [(level, field, value) for level, fields in LEVELS.items() if level <= API_LEVEL
          for field, value in fields.items()]


async def api(nc, subject: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request("$JS.API." + subject, payload, timeout=3, headers=headers)
    return json.loads(msg.data)


@pytest.mark.differential
@pytest.mark.parametrize(("level", "field", "value"), FIELDS,
                         ids=[f"{lvl}-{f}" for lvl, f, _ in FIELDS])
async def test_each_field_of_a_served_level(js_hub, level: int, field: str, value: Any) -> None:
    """Created, echoed, marked with its level, and accepted when a client asserts it."""
    nc, _ = await connect(js_hub)
    body = {"name": "L", "subjects": ["l.>"], field: value}
    created = await api(nc, "STREAM.CREATE.L", body,
                        headers={"Nats-Required-Api-Level": str(level)})
    assert "error" not in created, created
    assert created["config"][field] == value
    assert created["config"]["metadata"][REQ] == str(level)
    await nc.close()


@pytest.mark.differential
async def test_the_server_says_its_level(js_hub, target: str) -> None:
    nc, _ = await connect(js_hub)
    level = (await api(nc, "INFO"))["api"]["level"]
    assert nc._server_info["api_lvl"] == level
    if target == "jetport":
        assert level == API_LEVEL
    too_high = await api(nc, "INFO", headers={"Nats-Required-Api-Level": str(level + 1)})
    assert too_high["error"]["err_code"] == 10185
    await nc.close()


@pytest.mark.parametrize("field", [f for lv, fs in NOT_SERVED.items() if lv > API_LEVEL
                                   for f in fs])
async def test_fields_of_unserved_levels_stay_unknown(js_hub, field: str) -> None:
    nc, _ = await connect(js_hub)
    level = next(lv for lv, fs in NOT_SERVED.items() if field in fs)
    refused = await api(nc, "STREAM.CREATE.U", {"name": "U", "subjects": ["u"],
                                                 field: NOT_SERVED[level][field]})
    assert refused["error"]["err_code"] == 10025, refused
    await nc.close()


# -- one use of each level-2 feature, as a client makes it --------------------------------


@pytest.mark.differential
@pytest.mark.skipif(API_LEVEL < 2, reason="level 2 not served")
async def test_level_2_features_in_use(js_hub) -> None:
    """A counter adds up, an atomic batch commits as one, a schedule fires, and an
    async-persist stream acknowledges: the level-2 features together, on one server."""
    nc, js = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"],
                                      "allow_msg_counter": True})
    await js.publish("c.hits", b"", headers={"Nats-Incr": "2"})
    ack = await js.publish("c.hits", b"", headers={"Nats-Incr": "3"})
    assert ack.val == "5"

    await api(nc, "STREAM.CREATE.B", {"name": "B", "subjects": ["b.>"], "allow_atomic": True})
    await nc.publish("b.1", b"one", headers={"Nats-Batch-Id": "x", "Nats-Batch-Sequence": "1"})
    ack = await js.publish("b.2", b"two", headers={
        "Nats-Batch-Id": "x", "Nats-Batch-Sequence": "2", "Nats-Batch-Commit": "1"})
    assert (ack.seq, ack.batch_id, ack.batch_size) == (2, "x", 2)

    await api(nc, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"],
                                      "allow_msg_schedules": True})
    sub = await js.subscribe("s.due", ordered_consumer=True)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1.5))
    await js.publish("s.plan", b"tick", headers={"Nats-Schedule": f"@at {at}",
                                                 "Nats-Schedule-Target": "s.due"})
    fired = await sub.next_msg(timeout=5)
    assert fired.data == b"tick"

    await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"], "storage": "file",
                                      "persist_mode": "async"})
    assert (await js.publish("a.x", b"quick")).seq == 1
    await nc.close()


@pytest.mark.differential
async def test_a_mirror_is_promoted_by_removing_its_mirror(js_hub) -> None:
    """Updating a mirror without ``mirror`` makes it a stream of its own: it keeps what it
    copied, stops following, takes subjects and publishes; it can not become a mirror
    again."""
    nc, js = await connect(js_hub)
    await api(nc, "STREAM.CREATE.O", {"name": "O", "subjects": ["o.>"]})
    for i in range(3):
        await js.publish("o.x", b"%d" % i)
    await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O"}})
    for _ in range(100):
        if (await api(nc, "STREAM.INFO.M"))["state"]["messages"] == 3:
            break
        await asyncio.sleep(0.05)
    mixed = await api(nc, "STREAM.UPDATE.M", {"name": "M", "mirror": {"name": "O"},
                                              "subjects": ["m.>"]})
    assert mixed["error"]["err_code"] == 10034
    promoted = await api(nc, "STREAM.UPDATE.M", {"name": "M", "subjects": ["m.>"]})
    assert "mirror" not in promoted["config"] and promoted["state"]["messages"] == 3
    await js.publish("o.x", b"after")
    assert (await js.publish("m.y", b"own")).seq == 4
    again = await api(nc, "STREAM.UPDATE.M", {"name": "M", "mirror": {"name": "O"}})
    assert "error" in again
    await asyncio.sleep(0.2)
    assert (await api(nc, "STREAM.INFO.M"))["state"]["messages"] == 4
    await nc.close()


async def test_a_stream_needing_a_newer_level_is_kept_offline(launch) -> None:
    """A stored stream whose config needs a level above the one served (written by a
    newer server) is not dropped: it is offline, says why, keeps its name and subjects,
    and can be deleted."""
    import sqlite3

    hub = launch.jetstream()
    nc, js = await connect(hub)
    await js.add_stream(name="NEW", subjects=["new.>"])
    await js.publish("new.x", b"kept")
    await nc.close()
    hub.stop()
    db = next(launch.tmp.glob("store-0/jetstream/*/jetport.db"))
    with sqlite3.connect(db) as conn:
        (config,) = conn.execute("SELECT config FROM streams WHERE name='NEW'").fetchone()
        doc = json.loads(config)
        doc["metadata"][REQ] = str(API_LEVEL + 1)
        conn.execute("UPDATE streams SET config=? WHERE name='NEW'", (json.dumps(doc),))
    hub.start()
    await hub.logged("Detected unsupported stream '$G > NEW'")
    nc, js = await connect(hub)
    why = (f"stream is offline: unsupported - required API level: {API_LEVEL + 1}, "
           f"current API level: {API_LEVEL}")
    for request in ("STREAM.INFO.NEW", "STREAM.PURGE.NEW", "CONSUMER.CREATE.NEW"):
        refused = await api(nc, request, {"stream_name": "NEW", "config": {}}
                            if request.startswith("CONSUMER") else None)
        assert refused["error"]["err_code"] in (10194,), (request, refused)
        assert refused["error"]["description"] == why
    other = await api(nc, "STREAM.CREATE.OTHER", {"name": "OTHER", "subjects": ["new.x"]})
    assert other["error"]["err_code"] == 10065  # its subjects are still held
    deleted = await api(nc, "STREAM.DELETE.NEW")
    assert deleted["success"] is True
    assert "error" not in await api(nc, "STREAM.CREATE.OTHER",
                                    {"name": "OTHER", "subjects": ["new.x"]})
    await nc.close()
