"""Versioning metadata of JetStream assets (ADR-44), as nats-server 2.11+ writes it.

A stream's or consumer's config carries ``_nats.req.level``, the API level its features
need, stored with it; the API's answers about one asset add ``_nats.ver`` and
``_nats.level``, the server's version and API level, which lists leave out.  Each server
reports its own version and level, so the tests compare them with what that server says
elsewhere (INFO, ``$JS.API.INFO``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from servers import js_connect as connect

REQ, VER, LEVEL = "_nats.req.level", "_nats.ver", "_nats.level"


async def api(nc, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request("$JS.API." + subject, payload, timeout=3)
    return json.loads(msg.data)


@pytest.mark.differential
async def test_stream_and_consumer_configs_carry_versioning_metadata(js_hub) -> None:
    nc, _ = await connect(js_hub)
    version = nc.connected_server_version  # from the server's INFO
    server = {VER: f"{version.major}.{version.minor}.{version.patch}",
              LEVEL: str((await api(nc, "INFO"))["api"]["level"])}

    def answer(doc: dict[str, Any], **mine: str) -> None:
        assert "error" not in doc, doc
        assert doc["config"]["metadata"] == {**mine, **server}, doc["config"]

    # Streams: level 0 for plain ones, 1 with per-message TTLs; keys a client sends in
    # the server's name are replaced.
    answer(await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a"]}), **{REQ: "0"})
    answer(await api(nc, "STREAM.CREATE.A", {"name": "A", "subjects": ["a"]}), **{REQ: "0"})
    answer(await api(nc, "STREAM.CREATE.T", {
        "name": "T", "subjects": ["t"], "allow_msg_ttl": True,
        "metadata": {"team": "x", VER: "9.9.9", LEVEL: "9", REQ: "7"}}), team="x", **{REQ: "1"})
    answer(await api(nc, "STREAM.UPDATE.A", {"name": "A", "subjects": ["a"],
                                             "metadata": {"owner": "b"}}),
           owner="b", **{REQ: "0"})
    answer(await api(nc, "STREAM.INFO.A"), owner="b", **{REQ: "0"})
    listed = await api(nc, "STREAM.LIST", {})
    assert [s["config"]["metadata"] for s in listed["streams"]] == [
        {"owner": "b", REQ: "0"}, {"team": "x", REQ: "1"}]

    # Consumers: level 1 with priority groups or a pause; a repeated create is the same.
    answer(await api(nc, "CONSUMER.CREATE.A.c", {"stream_name": "A", "config": {
        "durable_name": "c", "ack_policy": "explicit"}}), **{REQ: "0"})
    answer(await api(nc, "CONSUMER.CREATE.A.c", {"stream_name": "A", "action": "create",
                                                 "config": {"durable_name": "c",
                                                            "ack_policy": "explicit"}}),
           **{REQ: "0"})
    answer(await api(nc, "CONSUMER.CREATE.A.p", {"stream_name": "A", "config": {
        "durable_name": "p", "ack_policy": "explicit", "priority_policy": "overflow",
        "priority_groups": ["g"], "metadata": {VER: "1.0.0"}}}), **{REQ: "1"})
    answer(await api(nc, "CONSUMER.INFO.A.c"), **{REQ: "0"})
    paused = await api(nc, "CONSUMER.PAUSE.A.c", {"pause_until": "2099-01-01T00:00:00Z"})
    assert paused["paused"] is True, paused
    answer(await api(nc, "CONSUMER.INFO.A.c"), **{REQ: "1"})
    listed = await api(nc, "CONSUMER.LIST.A", {})
    assert [c["config"]["metadata"] for c in listed["consumers"]] == [{REQ: "1"}, {REQ: "1"}]
    await nc.close()
