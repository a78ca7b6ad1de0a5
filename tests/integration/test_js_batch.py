"""Atomic batch publish (ADR-50), as nats-server 2.12+ does it.

Messages with ``Nats-Batch-Id`` and ``Nats-Batch-Sequence`` are held by a stream with
``allow_atomic`` until the message with ``Nats-Batch-Commit`` arrives; then all of them
are stored, or none. nats-py 2.16 has no batch helpers, so these tests publish with the
headers by hand, as its users do, and read the commit's PubAck through ``js.publish``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from servers import ServerProcess
from servers import js_connect as connect

STREAM_ERR = 10052
DISABLED, MISSING_SEQ, INCOMPLETE, UNSUPPORTED, INVALID_ID = 10174, 10175, 10176, 10177, 10179
TOO_LARGE, INVALID_COMMIT, DUPLICATE_ID, TOO_MANY = 10199, 10200, 10201, 10210


async def api(nc, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request("$JS.API." + subject, payload, timeout=3)
    return json.loads(msg.data)


def batch(batch_id: str, seq: int, commit: str | None = None, **more: str) -> dict[str, str]:
    headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(seq)}
    if commit is not None:
        headers["Nats-Batch-Commit"] = commit
    return headers | {k.replace("_", "-"): v for k, v in more.items()}


async def send(nc, subject: str, headers: dict[str, str], data: bytes = b"x") -> Any:
    """The reply to one message: b"" (held), or the PubAck as a dict."""
    msg = await nc.request(subject, data, headers=headers, timeout=2)
    return json.loads(msg.data) if msg.data else msg.data


def err(reply: Any) -> tuple[int, str]:
    assert isinstance(reply, dict) and "error" in reply, reply
    assert reply["seq"] == 0, reply
    return reply["error"]["err_code"], reply["error"]["description"]


async def create(nc, name: str, **config: Any) -> dict[str, Any]:
    body = {"name": name, "subjects": [f"{name.lower()}.>"], "allow_atomic": True} | config
    doc = await api(nc, f"STREAM.CREATE.{name}", body)
    assert "error" not in doc, doc
    return doc


async def count(nc, name: str) -> int:
    return (await api(nc, f"STREAM.INFO.{name}"))["state"]["messages"]


class Advisories:
    """``BATCH_ABANDONED`` advisories as they arrive."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def listen(self, nc) -> None:
        await nc.subscribe("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.*", cb=self._on)
        await nc.flush()

    async def _on(self, msg: Any) -> None:
        doc = json.loads(msg.data)
        assert msg.subject == "$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED." + doc["stream"]
        self.seen.append(doc)
        self.arrived.set()

    async def next(self, timeout: float = 2.0) -> tuple[str, str, str]:
        while not self.seen:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout)
        doc = self.seen.pop(0)
        assert doc["type"] == "io.nats.jetstream.advisory.v1.stream_batch_abandoned", doc
        return doc["stream"], doc["batch"], doc["reason"]


@pytest.mark.differential
async def test_allow_atomic_is_echoed_validated_and_needs_api_level_2(js_hub) -> None:
    nc, _ = await connect(js_hub)
    doc = await create(nc, "A")
    assert doc["config"]["allow_atomic"] is True
    assert doc["config"]["metadata"]["_nats.req.level"] == "2"
    plain = await api(nc, "STREAM.CREATE.P", {"name": "P", "subjects": ["p"]})
    assert "allow_atomic" not in plain["config"]
    # Updates may turn it on and off.
    on = await api(nc, "STREAM.UPDATE.P", {"name": "P", "subjects": ["p"], "allow_atomic": True})
    assert on["config"]["allow_atomic"] is True, on
    off = await api(nc, "STREAM.UPDATE.P", {"name": "P", "subjects": ["p"]})
    assert "allow_atomic" not in off["config"], off
    assert off["config"]["metadata"]["_nats.req.level"] == "0"
    # What it cannot go with.
    mirror = await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "A"},
                                               "allow_atomic": True})
    assert mirror["error"] == {"code": 400, "err_code": 10198,
                               "description": "stream mirrors can not also use atomic publishing"}
    for storage, text in (("file", "async persist mode is not supported with atomic batch publish"),
                          ("memory", "async persist mode is only supported on file storage")):
        doc = await api(nc, "STREAM.CREATE.Q", {"name": "Q", "subjects": ["q"], "storage": storage,
                                                "persist_mode": "async", "allow_atomic": True})
        assert doc["error"] == {"code": 500, "err_code": STREAM_ERR, "description": text}
    await nc.close()


@pytest.mark.differential
async def test_batch_is_held_until_its_commit_then_stored_whole(js_hub) -> None:
    nc, js = await connect(js_hub)
    await create(nc, "B")
    await nc.publish("b.plain", b"before")
    # Messages before the commit: an empty reply to those that ask, nothing stored.
    assert await send(nc, "b.one", batch("uuid", 1), b"1") == b""
    await nc.publish("b.two", b"2", headers=batch("uuid", 2))
    assert await send(nc, "b.one", batch("uuid", 3), b"3") == b""
    assert await count(nc, "B") == 1
    ack = await js.publish("b.three", b"4", headers=batch("uuid", 4, "1"))
    assert (ack.stream, ack.seq, ack.batch_id, ack.batch_size) == ("B", 5, "uuid", 4)
    got = [await js.get_msg("B", seq) for seq in range(2, 6)]
    assert [(m.subject, m.data) for m in got] == [
        ("b.one", b"1"), ("b.two", b"2"), ("b.one", b"3"), ("b.three", b"4")]
    # The batch headers are stored with the messages.
    assert got[0].headers == {"Nats-Batch-Id": "uuid", "Nats-Batch-Sequence": "1"}
    assert got[3].headers == {"Nats-Batch-Id": "uuid", "Nats-Batch-Sequence": "4",
                              "Nats-Batch-Commit": "1"}
    # A batch of one; an id of 64 characters is the longest.
    ack = await js.publish("b.one", b"", headers=batch("i" * 64, 1, "1"))
    assert (ack.seq, ack.batch_id, ack.batch_size) == (6, "i" * 64, 1)
    # An empty id names no batch: a plain publish.
    assert await send(nc, "b.one", batch("", 1, "1")) == {"stream": "B", "seq": 7}
    # A batch belongs to one stream: another stream never saw its start.
    await create(nc, "C")
    assert await send(nc, "b.one", batch("two", 1, Nats_Msg_Id="once")) == b""
    assert err(await send(nc, "c.one", batch("two", 2, "1")))[0] == INCOMPLETE
    ack = await js.publish("b.two", b"", headers=batch("two", 2, "1"))
    assert (ack.seq, ack.batch_size) == (9, 2)
    # Its message ids count for the duplicate window like any others.
    ack = await js.publish("b.one", b"", headers={"Nats-Msg-Id": "once"})
    assert (ack.seq, ack.duplicate) == (8, True)
    await nc.close()


@pytest.mark.differential
async def test_eob_commit_stores_the_batch_but_not_itself(js_hub) -> None:
    nc, js = await connect(js_hub)
    await create(nc, "E")
    advisories = Advisories()
    await advisories.listen(nc)
    await nc.publish("e.a", b"1", headers=batch("b", 1))
    await nc.publish("e.b", b"2", headers=batch("b", 2))
    ack = await js.publish("e.c", b"ignored", headers=batch("b", 3, "eob"))
    assert (ack.seq, ack.batch_id, ack.batch_size) == (2, "b", 2)
    last = await js.get_msg("E", 2)
    assert (last.subject, last.data) == ("e.b", b"2")
    assert last.headers == {"Nats-Batch-Id": "b", "Nats-Batch-Sequence": "2",
                            "Nats-Batch-Commit": "1"}
    # Only "1" and "eob" commit.
    for word in ("EOB", "", "true"):
        assert err(await send(nc, "e.a", batch("d", 1, word))) == (
            INVALID_COMMIT, "atomic publish batch commit is invalid")
    # "eob" with nothing before it.
    assert err(await send(nc, "e.a", batch("c", 1, "eob"))) == (
        INCOMPLETE, "atomic publish batch is incomplete")
    assert await advisories.next() == ("E", "c", "incomplete")
    assert await count(nc, "E") == 2
    await nc.close()


@pytest.mark.differential
async def test_batch_protocol_mistakes_are_refused_as_nats_server_refuses_them(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.N", {"name": "N", "subjects": ["n"]})
    await create(nc, "G")
    advisories = Advisories()
    await advisories.listen(nc)
    assert err(await send(nc, "n", batch("x", 1))) == (DISABLED, "atomic publish is disabled")
    assert err(await send(nc, "n", {"Nats-Batch-Id": "x"})) == (
        DISABLED, "atomic publish is disabled")
    missing = (MISSING_SEQ, "atomic publish sequence is missing")
    assert err(await send(nc, "g.a", {"Nats-Batch-Id": "x"})) == missing
    assert err(await send(nc, "g.a", batch("x", 1) | {"Nats-Batch-Sequence": "one"})) == missing
    incomplete = (INCOMPLETE, "atomic publish batch is incomplete")
    assert err(await send(nc, "g.a", batch("x", 0))) == incomplete
    assert err(await send(nc, "g.a", batch("x", 2, "1"))) == incomplete  # no start
    assert err(await send(nc, "g.a", batch("i" * 65, 1, "1"))) == (
        INVALID_ID, "atomic publish batch ID is invalid")
    # A gap abandons the batch, with an advisory; so does starting it again.
    assert await send(nc, "g.a", batch("gap", 1)) == b""
    assert err(await send(nc, "g.a", batch("gap", 3))) == incomplete
    assert await advisories.next() == ("G", "gap", "incomplete")
    assert err(await send(nc, "g.a", batch("gap", 2, "1"))) == incomplete
    assert await send(nc, "g.a", batch("again", 1)) == b""
    assert err(await send(nc, "g.a", batch("again", 1))) == incomplete
    assert await advisories.next() == ("G", "again", "incomplete")
    # An unknown commit value abandons it quietly.
    assert await send(nc, "g.a", batch("odd", 1)) == b""
    assert err(await send(nc, "g.a", batch("odd", 2, "yes"))) == (
        INVALID_COMMIT, "atomic publish batch commit is invalid")
    assert err(await send(nc, "g.a", batch("odd", 3, "1"))) == incomplete
    # A message over the stream's max_msg_size fails at once: the batch has a gap.
    await api(nc, "STREAM.UPDATE.G", {"name": "G", "subjects": ["g.>"], "allow_atomic": True,
                                      "max_msg_size": 100})
    assert await send(nc, "g.a", batch("big", 1)) == b""
    assert err(await send(nc, "g.a", batch("big", 2), b"x" * 100)) == (
        10054, "message size exceeds maximum allowed")
    assert err(await send(nc, "g.a", batch("big", 3, "1"))) == incomplete
    assert await advisories.next() == ("G", "big", "incomplete")
    # Turning atomic publish off leaves open batches without a commit.
    assert await send(nc, "g.a", batch("off", 1)) == b""
    await api(nc, "STREAM.UPDATE.G", {"name": "G", "subjects": ["g.>"]})
    assert err(await send(nc, "g.a", batch("off", 2, "1"))) == (
        DISABLED, "atomic publish is disabled")
    # Nor does a sealed stream take any.
    await api(nc, "STREAM.UPDATE.G", {"name": "G", "subjects": ["g.>"], "allow_atomic": True,
                                      "sealed": True})
    assert err(await send(nc, "g.a", batch("sealed", 1))) == (
        10109, "invalid operation on sealed stream")
    assert await count(nc, "G") == 0
    assert advisories.seen == []
    await nc.close()


@pytest.mark.differential
async def test_a_failing_header_rule_stores_none_of_the_batch(js_hub) -> None:
    nc, js = await connect(js_hub)
    await create(nc, "H", allow_rollup_hdrs=True)
    await js.publish("h.a", b"", headers={"Nats-Msg-Id": "stored"})

    async def refused(*msgs: tuple[str, dict[str, str]]) -> tuple[int, str]:
        """Publish a batch of ``msgs`` (the last commits): the commit's error."""
        name = f"r{refused.n}"
        refused.n += 1
        for seq, (subject, more) in enumerate(msgs[:-1], 1):
            assert await send(nc, subject, batch(name, seq) | more) == b""
        subject, more = msgs[-1]
        reply = await send(nc, subject, batch(name, len(msgs), "1") | more)
        # The batch is gone with its failure.
        assert err(await send(nc, subject, batch(name, len(msgs) + 1, "1")))[0] == INCOMPLETE
        return err(reply)

    refused.n = 0  # type: ignore[attr-defined]
    dup = (DUPLICATE_ID, "atomic publish batch contains duplicate message id")
    assert await refused(("h.a", {"Nats-Msg-Id": "m"}), ("h.b", {"Nats-Msg-Id": "m"})) == dup
    assert await refused(("h.a", {}), ("h.b", {"Nats-Msg-Id": "stored"})) == dup
    assert await refused(("h.a", {"Nats-Expected-Last-Msg-Id": "stored"}), ("h.a", {})) == (
        UNSUPPORTED, "atomic publish unsupported header used: Nats-Expected-Last-Msg-Id")
    # The expected last sequence: the stream's, on the first message only.
    assert await refused(("h.a", {"Nats-Expected-Last-Sequence": "7"}), ("h.a", {})) == (
        10071, "wrong last sequence: 1")
    assert await refused(("h.a", {}), ("h.a", {"Nats-Expected-Last-Sequence": "1"})) == (
        10071, "wrong last sequence: 2")
    assert await refused(("h.a", {}), ("h.a", {"Nats-Expected-Last-Sequence": "2"})) == (
        10164, "wrong last sequence")
    # The expected last sequence of a subject: once per subject.
    assert await refused(("h.c", {"Nats-Expected-Last-Subject-Sequence": "0"}),
                         ("h.c", {"Nats-Expected-Last-Subject-Sequence": "0"})) == (
        10164, "wrong last sequence")
    assert await refused(("h.c", {}), ("h.c", {"Nats-Expected-Last-Subject-Sequence": "0"})) == (
        10164, "wrong last sequence")
    assert await refused(("h.a", {"Nats-Expected-Last-Subject-Sequence": "0"})) == (
        10071, "wrong last sequence: 1")
    assert await refused(("h.a", {}), ("h.b", {"Nats-Expected-Stream": "other"})) == (
        10060, "expected stream does not match")
    assert await refused(("h.a", {"Nats-Rollup": "some"})) == (
        10111, 'rollup value invalid: "some"')
    assert await refused(("h.a", {}), ("h.a", {"Nats-TTL": "5s"})) == (
        10166, "per-message TTL is disabled")
    # A roll-up may not take away messages of its own batch.
    assert await refused(("h.a", {}), ("h.b", {"Nats-Rollup": "all"})) == (
        10111, "batch rollup all invalid")
    assert await refused(("h.a", {}), ("h.a", {"Nats-Rollup": "sub"})) == (
        10111, "batch rollup sub invalid")
    assert await count(nc, "H") == 1
    # What passes: the rules hold for the batch as for single messages.
    first = {"Nats-Expected-Last-Sequence": "1", "Nats-Msg-Id": "n1"}
    assert await send(nc, "h.b", batch("ok", 1) | first) == b""
    second = {"Nats-Expected-Last-Subject-Sequence": "0"}
    assert await send(nc, "h.d", batch("ok", 2) | second) == b""
    ack = await js.publish("h.a", b"", headers=batch("ok", 3, "1", Nats_Rollup="sub"))
    assert (ack.seq, ack.batch_size) == (4, 3)
    info = (await api(nc, "STREAM.INFO.H"))["state"]
    assert (info["messages"], info["first_seq"]) == (3, 2)  # the roll-up took the first h.a
    assert err(await send(nc, "h.e", batch("again", 1, "1", Nats_Msg_Id="n1"))) == dup
    await nc.close()


@pytest.mark.differential
async def test_discard_new_limits_take_the_batch_as_a_whole(js_hub) -> None:
    nc, js = await connect(js_hub)
    await create(nc, "L", max_msgs=3, discard="new")
    await js.publish("l.a", b"")
    for seq in (1, 2):
        await nc.publish("l.a", b"", headers=batch("three", seq))
    assert err(await send(nc, "l.a", batch("three", 3, "1"))) == (
        10077, "maximum messages exceeded")
    assert await count(nc, "L") == 1
    await nc.publish("l.a", b"", headers=batch("two", 1))
    ack = await js.publish("l.b", b"", headers=batch("two", 2, "1"))
    assert (ack.seq, ack.batch_size) == (3, 2)
    await nc.close()


@pytest.mark.differential
async def test_mirrors_and_sources_copy_batch_messages_without_the_batch_headers(js_hub) -> None:
    nc, js = await connect(js_hub)
    await create(nc, "O")
    await nc.publish("o.a", b"1", headers=batch("b", 1, Nats_Msg_Id="m1"))
    await js.publish("o.b", b"2", headers=batch("b", 2, "1"))
    await api(nc, "STREAM.CREATE.M", {"name": "M", "mirror": {"name": "O"}})
    await api(nc, "STREAM.CREATE.S", {"name": "S", "sources": [{"name": "O"}],
                                      "allow_atomic": True})
    for name in ("M", "S"):
        for _ in range(100):
            if await count(nc, name) == 2:
                break
            await asyncio.sleep(0.05)
    mirrored = [await js.get_msg("M", seq) for seq in (1, 2)]
    assert [(m.subject, m.data, m.headers) for m in mirrored] == [
        ("o.a", b"1", {"Nats-Msg-Id": "m1"}), ("o.b", b"2", None)]
    sourced = [await js.get_msg("S", seq) for seq in (1, 2)]
    assert [sorted(m.headers or {}) for m in sourced] == [
        ["Nats-Msg-Id", "Nats-Stream-Source"], ["Nats-Stream-Source"]]
    await nc.close()


LIMITS = """
jetstream {
  store_dir: "%s"
  limits { batch { timeout: "500ms", max_msgs: 3, max_inflight_per_stream: 2,
                   max_inflight_total: 3 } }
}
"""


@pytest.mark.differential
async def test_batch_limits_and_abandonment_after_the_timeout(launch) -> None:
    hub = launch.conf(LIMITS % (launch.tmp / "limits-store"))
    nc = await nats.connect(hub.url)
    for name in ("A", "B", "C"):
        await create(nc, name)
    advisories = Advisories()
    await advisories.listen(nc)
    # Messages per batch: a sequence past the limit ends the batch.
    for seq in (1, 2, 3):
        assert await send(nc, "a.x", batch("long", seq)) == b""
    assert err(await send(nc, "a.x", batch("long", 4, "1"))) == (
        TOO_LARGE, "atomic publish batch is too large: 3")
    assert await advisories.next() == ("A", "long", "large")
    assert err(await send(nc, "a.x", batch("long", 5, "1")))[0] == TOO_LARGE
    # Open batches: two per stream, three on the server.
    too_many = (TOO_MANY, "atomic publish too many inflight")
    assert await send(nc, "a.x", batch("a1", 1)) == b""
    assert await send(nc, "a.x", batch("a2", 1)) == b""
    reply = await send(nc, "a.x", batch("a3", 1, "1"))
    assert err(reply) == too_many and reply["error"]["code"] == 429
    assert await send(nc, "b.x", batch("b1", 1)) == b""
    assert err(await send(nc, "c.x", batch("c1", 1, "1"))) == too_many
    # A batch waits for its next message for the timeout, then is abandoned.
    await asyncio.sleep(0.3)
    assert await send(nc, "a.x", batch("a1", 2)) == b""  # a1 waits anew
    found = {await advisories.next() for _ in range(2)}
    assert found == {("A", "a2", "timeout"), ("B", "b1", "timeout")}
    assert await advisories.next() == ("A", "a1", "timeout")
    assert err(await send(nc, "a.x", batch("a1", 3, "1")))[0] == INCOMPLETE
    ack = await send(nc, "c.x", batch("c1", 1, "1"))
    assert (ack["seq"], ack["batch"], ack["count"]) == (1, "c1", 1)
    assert await count(nc, "A") == 0
    await nc.close()


async def test_a_batch_is_stored_whole_or_not_at_all_across_kill_9(
        js_hub: ServerProcess) -> None:
    """The commit's messages go to SQLite in one transaction: a hub killed while it
    stores them comes back with all of them or none, never a part."""
    n = 400
    for round_ in range(3):
        nc, _ = await connect(js_hub)
        if round_ == 0:
            await create(nc, "K")
        before = await count(nc, "K")
        name = f"k{round_}"
        for seq in range(1, n):
            await nc.publish("k.x", b"%d" % seq, headers=batch(name, seq))
        await nc.publish("k.x", b"%d" % n, headers=batch(name, n, "1"))
        await nc.flush()
        await asyncio.sleep(0.005 * round_)
        js_hub.kill()
        await nc.close()
        js_hub.restart()
        nc, js = await connect(js_hub)
        after = await count(nc, "K")
        assert after in (before, before + n), (before, after)
        if after > before:
            last = await js.get_msg("K", after)
            assert last.data == b"%d" % n
        await nc.close()
