"""JetStream advisories on ``$JS.EVENT.ADVISORY.>``, on Jetport and nats-server from the
same client code: stream and consumer actions, terminated and naked messages, max
deliveries, and pauses. (nats-server's API audit advisory is not sent by Jetport.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from servers import ServerProcess
from test_js_pause import rfc3339_in

pytestmark = pytest.mark.timeout(60)
T = "io.nats.jetstream.advisory.v1."


@pytest.mark.differential
async def test_advisories(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    seen: list[tuple[str, dict[str, Any]]] = []

    async def record(msg: Any) -> None:
        if msg.subject != "$JS.EVENT.ADVISORY.API":
            doc = json.loads(msg.data)
            assert len(doc.pop("id")) == 22 and doc.pop("timestamp")
            seen.append((msg.subject.removeprefix("$JS.EVENT.ADVISORY."), doc))

    await nc.subscribe("$JS.EVENT.ADVISORY.>", cb=record)
    await nc.flush()

    async def api(subject: str, body: dict[str, Any] | None = None) -> None:
        await nc.request("$JS.API." + subject, json.dumps(body or {}).encode(), timeout=2)

    await api("STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
    await api("STREAM.UPDATE.S", {"name": "S", "subjects": ["s"], "max_msgs": 10})
    for i in range(3):
        await nc.request("s", f"m{i}".encode(), timeout=2)
    await api("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
        "name": "C", "ack_policy": "explicit", "max_deliver": 2, "ack_wait": 300_000_000}})
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":5,"expires":1500000000}',
                     reply=inbox)
    first = [await sub.next_msg(2) for _ in range(3)]
    await nc.publish(first[0].reply, b"+TERM")
    await nc.publish(first[1].reply, b"+TERM poison")
    await nc.publish(first[2].reply, b"-NAK")
    await asyncio.sleep(1.7)  # redelivered once, then past max_deliver while still asked
    await api("CONSUMER.PAUSE.S.C", {"pause_until": "2999-01-01T00:00:00Z"})
    await api("CONSUMER.PAUSE.S.C")
    await api("CONSUMER.DELETE.S.C")
    await api("STREAM.DELETE.S")
    await asyncio.sleep(0.3)
    c = {"stream": "S", "consumer": "C"}
    assert seen == [
        ("STREAM.CREATED.S", {"type": T + "stream_action", "stream": "S", "action": "create"}),
        ("STREAM.UPDATED.S", {"type": T + "stream_action", "stream": "S", "action": "modify"}),
        ("CONSUMER.CREATED.S.C", {"type": T + "consumer_action", **c, "action": "create"}),
        ("CONSUMER.MSG_TERMINATED.S.C", {"type": T + "terminated", **c, "consumer_seq": 1,
                                         "stream_seq": 1, "deliveries": 1}),
        ("CONSUMER.MSG_TERMINATED.S.C", {"type": T + "terminated", **c, "consumer_seq": 2,
                                         "stream_seq": 2, "deliveries": 1,
                                         "reason": "poison"}),
        ("CONSUMER.MSG_NAKED.S.C", {"type": T + "nak", **c, "consumer_seq": 3,
                                    "stream_seq": 3, "deliveries": 1}),
        ("CONSUMER.MAX_DELIVERIES.S.C", {"type": T + "max_deliver", **c, "stream_seq": 3,
                                         "deliveries": 2}),
        ("CONSUMER.PAUSE.S.C", {"type": T + "consumer_pause", **c, "paused": True,
                                "pause_until": "2999-01-01T00:00:00Z"}),
        ("CONSUMER.PAUSE.S.C", {"type": T + "consumer_pause", **c, "paused": False,
                                "pause_until": "0001-01-01T00:00:00Z"}),
        ("CONSUMER.DELETED.S.C", {"type": T + "consumer_action", **c, "action": "delete"}),
        ("STREAM.DELETED.S", {"type": T + "stream_action", "stream": "S", "action": "delete"}),
    ]
    await nc.close()


@pytest.mark.differential
async def test_pause_that_runs_out_is_advised(js_hub: ServerProcess) -> None:
    nc = await nats.connect(js_hub.url)
    pauses: list[bool] = []

    async def record(msg: Any) -> None:
        pauses.append(json.loads(msg.data)["paused"])

    await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.PAUSE.S.C", cb=record)
    await nc.request("$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}', timeout=2)
    await nc.request("$JS.API.CONSUMER.CREATE.S.C", json.dumps({"stream_name": "S", "config": {
        "name": "C", "pause_until": "2000-01-01T00:00:00Z"}}).encode(), timeout=2)
    soon = await nc.request("$JS.API.CONSUMER.INFO.S.C", b"", timeout=2)
    assert "paused" not in json.loads(soon.data)
    pause = json.loads((await nc.request("$JS.API.CONSUMER.PAUSE.S.C", json.dumps(
        {"pause_until": rfc3339_in(0.8)}).encode(), timeout=2)).data)
    assert pause["paused"] is True
    await asyncio.sleep(1.5)
    assert pauses == [True, False]
    await nc.close()
