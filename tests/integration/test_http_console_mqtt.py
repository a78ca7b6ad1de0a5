"""The console's MQTT sessions after a restart of the hub: persistent sessions offline
since before it live only in the store until their clients come back, and are listed from
there, each to its own account. Jetport only: nats-server has no console."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import nats
from mqtt_clients import V3, V5, Paho
from servers import ServerProcess

from jetport.bridges.mqtt.store import session_token

CONF = """
http: "127.0.0.1:-1"
mqtt {{ port: -1 }}
jetstream {{ store_dir: "{store}" }}
accounts {{
  APP: {{ jetstream: enabled, users: [ {{ user: alice, password: apw }} ] }}
  OTHER: {{ jetstream: enabled, users: [ {{ user: bob, password: bpw }} ] }}
  SYS: {{ users: [ {{ user: admin, password: spw }} ] }}
}}
system_account: SYS
"""


def sessions(hub: ServerProcess, user: str, pw: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{hub.http_port}/v1/console/mqtt/sessions",
                  params=params, auth=(user, pw), timeout=5)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def alice(hub: ServerProcess, cid: str, version: int = V3, **kw: Any) -> Paho:
    client = Paho(hub.mqtt_port, cid, version, user="alice", password="apw", **kw)
    client.connect()
    return client


def stored(hub: ServerProcess, client_id: str) -> bool:
    """Whether the session's record is in the store."""
    async def look() -> bool:
        nc = await nats.connect(hub.url, user="alice", password="apw")
        try:
            await nc.jetstream().get_last_msg("$MQTT_sess",
                                              f"$MQTT.sess.{session_token(client_id)}")
            return True
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()
    return asyncio.run(look())


def test_offline_sessions_are_listed_from_the_store_after_a_restart(launch, tmp_path) -> None:
    hub = launch.conf(CONF.format(store=tmp_path / "js"))
    # Stored with a deadline the restart outlasts: no longer listed, though not deleted
    # until a client of the account connects.
    short = alice(hub, "meter-gone", V5, clean=False, expiry=2)
    short.subscribe(("alerts/#", 1))
    short.close()
    ends = time.monotonic() + 2.1
    for cid, version, expiry in (("meter-3", V3, None), ("meter-5", V5, 3600)):
        client = alice(hub, cid, version, clean=False, expiry=expiry)
        client.subscribe(("alerts/#", 1), ("log/+", 0))
        client.close()
    publisher = alice(hub, "pub")
    publisher.publish("alerts/fire", b"hot", qos=1)
    publisher.close()
    hub.restart()
    time.sleep(max(ends - time.monotonic(), 0))
    assert stored(hub, "meter-gone"), "the hub outlived the session's deadline"

    doc = sessions(hub, "admin", "spw")
    assert (doc["total"], doc["total_capped"]) == (2, False)
    listed = {s["client_id"]: s for s in doc["sessions"]}
    assert set(listed) == {"meter-3", "meter-5"}
    for s in listed.values():
        assert (s["account"], s["connected"], s["persistent"], s["stored_only"]) == \
            ("APP", False, True, True)
        assert s["subscriptions"] == [{"filter": "alerts/#", "qos": 1},
                                      {"filter": "log/+", "qos": 0}]
        assert s["queued"] == 1
    assert listed["meter-3"]["expires"] is None
    assert listed["meter-5"]["expires"] > 3000 + time.time()
    assert sessions(hub, "alice", "apw") == doc
    assert sessions(hub, "bob", "bpw")["total"] == 0
    second = sessions(hub, "alice", "apw", offset=1, limit=1)
    assert (second["total"], second["sessions"]) == (2, doc["sessions"][1:])
    assert [s["client_id"] for s in sessions(hub, "admin", "spw",
                                             client_id="-5")["sessions"]] == ["meter-5"]

    back = alice(hub, "meter-3", clean=False)  # taken back: listed from memory, once
    try:
        doc = sessions(hub, "alice", "apw")
        assert [(s["client_id"], s["connected"], s["stored_only"])
                for s in doc["sessions"]] == [("meter-3", True, False),
                                              ("meter-5", False, True)]
        assert doc["total"] == 2
    finally:
        back.close()
