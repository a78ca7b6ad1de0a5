"""JetStream streams end to end: administration, publish path, limits and retention.

Every expectation here is nats-server's behaviour: each test runs on the hub and on the
reference nats-server (``@pytest.mark.differential``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from typing import Any

import nats
import nats.errors
import pytest
from nats.js import api
from nats.js.errors import APIError, NotFoundError
from servers import Inbox, RawClient, ServerProcess

pytestmark = pytest.mark.timeout(60)

T = "io.nats.jetstream.api.v1."
SECOND = 1_000_000_000


@pytest.fixture
async def nc(js_hub: ServerProcess):
    conn = await nats.connect(js_hub.url)
    yield conn
    await conn.close()


async def req(nc: Any, subject: str, body: Any = None, timeout: float = 2.0) -> dict[str, Any]:
    """A raw ``$JS.API.<subject>`` request; the decoded JSON response."""
    if body is None:
        payload = b""
    elif isinstance(body, bytes):
        payload = body
    else:
        payload = json.dumps(body).encode()
    msg = await nc.request("$JS.API." + subject, payload, timeout=timeout)
    return json.loads(msg.data)


async def create(nc: Any, name: str, **config: Any) -> dict[str, Any]:
    resp = await req(nc, f"STREAM.CREATE.{name}", {"name": name, **config})
    assert "error" not in resp, resp
    return resp


async def info(nc: Any, name: str, body: Any = None) -> dict[str, Any]:
    resp = await req(nc, f"STREAM.INFO.{name}", body)
    assert "error" not in resp, resp
    return resp


async def state(nc: Any, name: str) -> dict[str, Any]:
    return (await info(nc, name))["state"]


async def pub(nc: Any, subject: str, data: bytes = b"", headers: dict | None = None,
              timeout: float = 2.0) -> dict[str, Any]:
    """Publish as a request and return the decoded PubAck (or error) JSON."""
    msg = await nc.request(subject, data, timeout=timeout, headers=headers)
    return json.loads(msg.data)


def error(resp: dict[str, Any]) -> tuple[int, int, str]:
    assert "error" in resp, resp
    e = resp["error"]
    return e["code"], e["err_code"], e["description"]


def user_metadata(config: dict[str, Any]) -> dict[str, str]:
    """Stream metadata minus the ``_nats.*`` keys nats-server 2.11+ adds on its own."""
    return {k: v for k, v in (config.get("metadata") or {}).items()
            if not k.startswith("_nats.")}


async def msg_get(nc: Any, stream: str, body: dict[str, Any]) -> dict[str, Any]:
    return await req(nc, f"STREAM.MSG.GET.{stream}", body)


def decoded(resp: dict[str, Any]) -> tuple[str, int, bytes]:
    m = resp["message"]
    return m["subject"], m["seq"], base64.b64decode(m.get("data", ""))


async def wait_state(nc: Any, name: str, pred, timeout: float = 3.0) -> dict[str, Any]:
    """Poll the stream's state until ``pred(state)`` holds; the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        st = await state(nc, name)
        if pred(st) or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.05)


async def eventually(check, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll ``await check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


# -- administration --------------------------------------------------------------------


@pytest.mark.differential
async def test_create_info_update_delete(nc) -> None:
    resp = await create(nc, "ORDERS", subjects=["orders.*"], storage="file")
    assert resp["type"] == T + "stream_create_response"
    assert resp["did_create"] is True
    cfg = resp["config"]
    assert cfg["name"] == "ORDERS" and cfg["subjects"] == ["orders.*"]
    assert cfg["retention"] == "limits" and cfg["storage"] == "file"
    assert cfg["discard"] == "old" and cfg["num_replicas"] == 1
    assert cfg["max_msgs"] == -1 and cfg["max_bytes"] == -1 and cfg["max_msg_size"] == -1
    assert cfg["max_msgs_per_subject"] == -1 and cfg["max_consumers"] == -1
    assert cfg["max_age"] == 0 and cfg["duplicate_window"] == 120 * SECOND
    assert resp["state"]["messages"] == 0 and resp["state"]["first_seq"] == 0
    created = resp["created"]

    # the same config again is not an error, and does not recreate the stream
    again = await create(nc, "ORDERS", subjects=["orders.*"], storage="file")
    assert again["created"] == created and again["config"] == cfg
    # a different one is
    resp = await req(nc, "STREAM.CREATE.ORDERS", {"name": "ORDERS", "subjects": ["x"]})
    assert error(resp) == (400, 10058,
                           "stream name already in use with a different configuration")

    for i in range(5):
        await pub(nc, f"orders.{i % 2}", b"o%d" % i)
    got = await info(nc, "ORDERS")
    assert got["type"] == T + "stream_info_response"
    assert got["config"] == cfg
    st = got["state"]
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (5, 1, 5)
    assert st["num_subjects"] == 2 and st["consumer_count"] == 0
    got = await info(nc, "ORDERS", {"subjects_filter": ">"})
    assert got["state"]["subjects"] == {"orders.0": 3, "orders.1": 2}

    # update: new subjects and tighter limits apply at once
    resp = await req(nc, "STREAM.UPDATE.ORDERS", {
        "name": "ORDERS", "subjects": ["orders.*", "returns.>"], "max_msgs": 3,
    })
    assert resp["type"] == T + "stream_update_response", resp
    assert resp["config"]["subjects"] == ["orders.*", "returns.>"]
    assert resp["config"]["max_msgs"] == 3
    assert (resp["state"]["messages"], resp["state"]["first_seq"]) == (3, 3)
    ack = await pub(nc, "returns.x.y", b"r")
    assert ack == {"stream": "ORDERS", "seq": 6}

    # what can not change
    resp = await req(nc, "STREAM.UPDATE.ORDERS", {
        "name": "ORDERS", "subjects": ["orders.*"], "storage": "memory",
    })
    assert error(resp) == (500, 10052, "stream configuration update can not change storage type")
    resp = await req(nc, "STREAM.UPDATE.MISSING", {"name": "MISSING", "subjects": ["m"]})
    assert error(resp) == (404, 10059, "stream not found")
    resp = await req(nc, "STREAM.CREATE.R3", {"name": "R3", "subjects": ["r3"],
                                               "num_replicas": 3})
    assert error(resp) == (500, 10074, "replicas > 1 not supported in non-clustered mode")

    resp = await req(nc, "STREAM.DELETE.ORDERS")
    assert resp == {"type": T + "stream_delete_response", "success": True}
    resp = await req(nc, "STREAM.INFO.ORDERS")
    assert error(resp) == (404, 10059, "stream not found")
    resp = await req(nc, "STREAM.DELETE.ORDERS")
    assert error(resp) == (404, 10059, "stream not found")


@pytest.mark.differential
async def test_names_and_list_paging_and_subject_filter(nc) -> None:
    for name in ["E", "B", "D", "A", "C"]:
        await create(nc, name, subjects=[f"{name.lower()}.>"])
    resp = await req(nc, "STREAM.NAMES")
    assert resp == {"type": T + "stream_names_response", "total": 5, "offset": 0,
                    "limit": 1024, "streams": ["A", "B", "C", "D", "E"]}
    resp = await req(nc, "STREAM.NAMES", {"offset": 3})
    assert (resp["total"], resp["offset"], resp["streams"]) == (5, 3, ["D", "E"])
    resp = await req(nc, "STREAM.NAMES", {"subject": "c.x.y"})
    assert (resp["total"], resp["streams"]) == (1, ["C"])
    resp = await req(nc, "STREAM.NAMES", {"subject": "*.x"})
    assert resp["streams"] == ["A", "B", "C", "D", "E"]
    resp = await req(nc, "STREAM.NAMES", {"subject": "nothing"})
    assert resp["total"] == 0 and not resp["streams"]

    resp = await req(nc, "STREAM.LIST")
    assert resp["type"] == T + "stream_list_response"
    assert (resp["total"], resp["offset"], resp["limit"]) == (5, 0, 256)
    assert [s["config"]["name"] for s in resp["streams"]] == ["A", "B", "C", "D", "E"]
    resp = await req(nc, "STREAM.LIST", {"offset": 4})
    assert [s["config"]["name"] for s in resp["streams"]] == ["E"]
    js = nc.jetstream()
    assert [s.config.name for s in await js.streams_info(offset=2)] == ["C", "D", "E"]


# -- purge -----------------------------------------------------------------------------


async def _fill(nc: Any, name: str) -> None:
    """Ten messages: seqs 1-10 alternating p.a / p.b (odd seqs on p.a)."""
    await create(nc, name, subjects=[f"{name.lower()}.*"])
    for i in range(10):
        ack = await pub(nc, f"{name.lower()}.{'ab'[i % 2]}", b"%d" % (i + 1))
        assert ack["seq"] == i + 1


@pytest.mark.differential
async def test_purge_variants(nc) -> None:
    await _fill(nc, "P1")
    resp = await req(nc, "STREAM.PURGE.P1")
    assert resp == {"type": T + "stream_purge_response", "success": True, "purged": 10}
    st = await state(nc, "P1")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (0, 11, 10)
    assert (await pub(nc, "p1.a"))["seq"] == 11

    await _fill(nc, "P2")
    resp = await req(nc, "STREAM.PURGE.P2", {"filter": "p2.a"})
    assert resp["purged"] == 5
    st = await state(nc, "P2")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (5, 2, 10)

    await _fill(nc, "P3")
    resp = await req(nc, "STREAM.PURGE.P3", {"keep": 3})
    assert resp["purged"] == 7
    st = await state(nc, "P3")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (3, 8, 10)

    await _fill(nc, "P4")
    resp = await req(nc, "STREAM.PURGE.P4", {"seq": 4})
    assert resp["purged"] == 3  # everything below seq 4
    st = await state(nc, "P4")
    assert (st["messages"], st["first_seq"]) == (7, 4)

    await _fill(nc, "P5")
    resp = await req(nc, "STREAM.PURGE.P5", {"filter": "p5.b", "keep": 1})
    assert resp["purged"] == 4
    st = await state(nc, "P5")
    assert st["messages"] == 6
    assert decoded(await msg_get(nc, "P5", {"last_by_subj": "p5.b"}))[1] == 10
    resp = await msg_get(nc, "P5", {"next_by_subj": "p5.b", "seq": 1})
    assert decoded(resp)[1] == 10

    resp = await req(nc, "STREAM.PURGE.P5", {"seq": 3, "keep": 1})
    assert error(resp)[:2] == (400, 10003)
    resp = await req(nc, "STREAM.PURGE.NOPE")
    assert error(resp) == (404, 10059, "stream not found")


# -- messages --------------------------------------------------------------------------


@pytest.mark.differential
async def test_msg_get_and_delete(nc) -> None:
    await create(nc, "M", subjects=["m.*"])
    for i, subj in enumerate(["m.a", "m.b", "m.a", "m.c", "m.b"]):
        await pub(nc, subj, b"v%d" % (i + 1))
    resp = await msg_get(nc, "M", {"seq": 2})
    assert resp["type"] == T + "stream_msg_get_response"
    assert decoded(resp) == ("m.b", 2, b"v2")
    assert "time" in resp["message"] and "hdrs" not in resp["message"]
    assert decoded(await msg_get(nc, "M", {"last_by_subj": "m.a"})) == ("m.a", 3, b"v3")
    assert decoded(await msg_get(nc, "M", {"last_by_subj": "m.*"})) == ("m.b", 5, b"v5")
    assert decoded(await msg_get(nc, "M", {"next_by_subj": "m.b", "seq": 3})) == \
        ("m.b", 5, b"v5")
    assert decoded(await msg_get(nc, "M", {"next_by_subj": "m.c"})) == ("m.c", 4, b"v4")
    assert error(await msg_get(nc, "M", {"seq": 99})) == (404, 10037, "no message found")
    assert error(await msg_get(nc, "M", {"last_by_subj": "m.z"})) == \
        (404, 10037, "no message found")
    assert error(await msg_get(nc, "NOPE", {"seq": 1})) == (404, 10059, "stream not found")

    resp = await req(nc, "STREAM.MSG.DELETE.M", {"seq": 2})
    assert resp == {"type": T + "stream_msg_delete_response", "success": True}
    resp = await req(nc, "STREAM.MSG.DELETE.M", {"seq": 4, "no_erase": False})
    assert resp == {"type": T + "stream_msg_delete_response", "success": True}
    assert error(await msg_get(nc, "M", {"seq": 2})) == (404, 10037, "no message found")
    assert error(await msg_get(nc, "M", {"seq": 4})) == (404, 10037, "no message found")
    st = await state(nc, "M")
    assert (st["messages"], st["first_seq"], st["last_seq"], st["num_deleted"]) == (3, 1, 5, 2)
    # deleting the first message moves first_seq
    await req(nc, "STREAM.MSG.DELETE.M", {"seq": 1})
    st = await state(nc, "M")
    assert (st["messages"], st["first_seq"]) == (2, 3)
    # deleting again, or past the end
    resp = await req(nc, "STREAM.MSG.DELETE.M", {"seq": 4})
    assert error(resp) == (400, 10043, "sequence 4 not found")
    resp = await req(nc, "STREAM.MSG.DELETE.M", {"seq": 2})  # now below first_seq
    assert error(resp) == (500, 10057, "no message found")
    resp = await req(nc, "STREAM.MSG.DELETE.M", {"seq": 99})
    assert error(resp) == (500, 10057, "stream store EOF")


@pytest.mark.differential
async def test_deny_delete_deny_purge_and_sealed(nc) -> None:
    await create(nc, "DD", subjects=["dd"], deny_delete=True, deny_purge=True)
    await pub(nc, "dd", b"1")
    await pub(nc, "dd", b"2")
    resp = await req(nc, "STREAM.MSG.DELETE.DD", {"seq": 1})
    assert error(resp) == (500, 10057, "message delete not permitted")
    resp = await req(nc, "STREAM.PURGE.DD")
    assert error(resp) == (500, 10110, "stream purge not permitted")
    assert (await state(nc, "DD"))["messages"] == 2

    cfg = (await create(nc, "SEAL", subjects=["seal.*"]))["config"]
    await pub(nc, "seal.a", b"1")
    await pub(nc, "seal.a", b"2")
    resp = await req(nc, "STREAM.UPDATE.SEAL", {**cfg, "sealed": True})
    assert "error" not in resp, resp
    assert resp["config"]["sealed"] is True
    # sealing turns deletes and purges off for good
    assert resp["config"]["deny_delete"] is True and resp["config"]["deny_purge"] is True
    ack = await pub(nc, "seal.a", b"3")
    assert error(ack) == (400, 10109, "invalid operation on sealed stream")
    resp = await req(nc, "STREAM.MSG.DELETE.SEAL", {"seq": 1})
    assert error(resp) == (400, 10109, "invalid operation on sealed stream")
    resp = await req(nc, "STREAM.PURGE.SEAL")
    assert error(resp) == (400, 10109, "invalid operation on sealed stream")
    st = await state(nc, "SEAL")
    assert (st["messages"], st["last_seq"]) == (2, 2)
    resp = await req(nc, "STREAM.UPDATE.SEAL", {**cfg, "sealed": False})
    assert error(resp)[1] == 10052
    # a sealed stream can still be deleted
    assert (await req(nc, "STREAM.DELETE.SEAL"))["success"] is True


@pytest.mark.differential
async def test_direct_get(nc, js_hub) -> None:
    await create(nc, "DG", subjects=["dg.>"], allow_direct=True)
    await pub(nc, "dg.a", b"first", headers={"X-Mine": "yes"})
    await pub(nc, "dg.b", b"second")
    await pub(nc, "dg.a", b"third")

    msg = await nc.request("$JS.API.DIRECT.GET.DG", json.dumps({"seq": 1}).encode())
    assert msg.data == b"first"
    h = msg.headers
    assert (h["Nats-Stream"], h["Nats-Subject"], h["Nats-Sequence"]) == ("DG", "dg.a", "1")
    assert h["Nats-Time-Stamp"] and h["X-Mine"] == "yes"

    msg = await nc.request("$JS.API.DIRECT.GET.DG", b'{"last_by_subj":"dg.a"}')
    assert (msg.data, msg.headers["Nats-Sequence"]) == (b"third", "3")
    msg = await nc.request("$JS.API.DIRECT.GET.DG", b'{"next_by_subj":"dg.b","seq":1}')
    assert (msg.data, msg.headers["Nats-Sequence"]) == (b"second", "2")
    msg = await nc.request("$JS.API.DIRECT.GET.DG.dg.b", b"")
    assert (msg.data, msg.headers["Nats-Subject"]) == (b"second", "dg.b")

    msg = await nc.request("$JS.API.DIRECT.GET.DG", b'{"seq":42}')
    assert msg.data == b"" and msg.headers["Status"] == "404"
    msg = await nc.request("$JS.API.DIRECT.GET.DG.dg.none", b"")
    assert msg.headers["Status"] == "404"

    js = nc.jetstream()
    got = await js.get_msg("DG", 2, direct=True)
    assert (got.seq, got.subject, got.data) == (2, "dg.b", b"second")
    got = await js.get_last_msg("DG", "dg.a", direct=True)
    assert (got.seq, got.data) == (3, b"third")
    with pytest.raises(NotFoundError):
        await js.get_msg("DG", 9, direct=True)

    # no stream (or no allow_direct): nobody answers
    await create(nc, "NODIRECT", subjects=["nd"])
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("$JS.API.DIRECT.GET.MISSING", b'{"seq":1}', timeout=1)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("$JS.API.DIRECT.GET.NODIRECT", b'{"seq":1}', timeout=1)
    raw = await RawClient.open(js_hub.port, {"verbose": False, "headers": True,
                                                "no_responders": True})
    try:
        await raw.send(b"SUB _INBOX.dg 1\r\nPUB $JS.API.DIRECT.GET.MISSING _INBOX.dg 9\r\n"
                       b'{"seq":1}\r\n')
        out = await raw.until(b"\r\n\r\n")
        assert out.startswith(b"HMSG _INBOX.dg 1 "), out
        assert b"NATS/1.0 503" in out
    finally:
        await raw.close()


# -- publish path ----------------------------------------------------------------------


@pytest.mark.differential
async def test_pub_ack_shape_and_dedupe_window(nc) -> None:
    await create(nc, "D", subjects=["d.>"], duplicate_window=SECOND // 2)
    assert await pub(nc, "d.1", b"x") == {"stream": "D", "seq": 1}
    ack = await pub(nc, "d.1", b"x", headers={"Nats-Msg-Id": "id-1"})
    assert ack == {"stream": "D", "seq": 2}
    ack = await pub(nc, "d.1", b"x", headers={"Nats-Msg-Id": "id-1"})
    assert ack == {"stream": "D", "seq": 2, "duplicate": True}
    assert (await state(nc, "D"))["messages"] == 2
    await asyncio.sleep(0.8)
    ack = await pub(nc, "d.1", b"x", headers={"Nats-Msg-Id": "id-1"})
    assert ack == {"stream": "D", "seq": 3}

    js = nc.jetstream()
    a = await js.publish("d.2", b"y", headers={"Nats-Msg-Id": "id-2"})
    b = await js.publish("d.2", b"y", headers={"Nats-Msg-Id": "id-2"})
    assert (a.seq, a.duplicate, b.seq, b.duplicate) == (4, None, 4, True)


@pytest.mark.differential
async def test_expected_headers(nc) -> None:
    await create(nc, "E", subjects=["e.*"])
    ack = await pub(nc, "e.a", b"1", headers={"Nats-Expected-Stream": "E"})
    assert ack == {"stream": "E", "seq": 1}
    ack = await pub(nc, "e.a", b"x", headers={"Nats-Expected-Stream": "OTHER"})
    assert error(ack) == (400, 10060, "expected stream does not match")
    assert ack["stream"] == "E" and ack.get("seq", 0) == 0

    ack = await pub(nc, "e.a", b"x", headers={"Nats-Expected-Last-Sequence": "7"})
    assert error(ack) == (400, 10071, "wrong last sequence: 1")
    ack = await pub(nc, "e.a", b"2", headers={"Nats-Expected-Last-Sequence": "1"})
    assert ack["seq"] == 2

    # per subject; 0 means "no message on this subject yet"
    ack = await pub(nc, "e.b", b"3", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    assert ack["seq"] == 3
    ack = await pub(nc, "e.b", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    assert error(ack) == (400, 10071, "wrong last sequence: 3")
    ack = await pub(nc, "e.a", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "1"})
    assert error(ack) == (400, 10071, "wrong last sequence: 2")
    ack = await pub(nc, "e.a", b"4", headers={"Nats-Expected-Last-Subject-Sequence": "2"})
    assert ack["seq"] == 4

    ack = await pub(nc, "e.a", b"5", headers={"Nats-Msg-Id": "A"})
    assert ack["seq"] == 5
    ack = await pub(nc, "e.a", b"x", headers={"Nats-Expected-Last-Msg-Id": "B"})
    assert error(ack) == (400, 10070, "wrong last msg ID: A")
    ack = await pub(nc, "e.a", b"6", headers={"Nats-Expected-Last-Msg-Id": "A",
                                               "Nats-Msg-Id": "B"})
    assert ack["seq"] == 6
    st = await state(nc, "E")
    assert (st["messages"], st["last_seq"]) == (6, 6)
    # the last message's id is what counts: a message without one leaves it empty
    assert (await pub(nc, "e.a", b"7"))["seq"] == 7
    ack = await pub(nc, "e.a", b"x", headers={"Nats-Expected-Last-Msg-Id": "B"})
    assert error(ack) == (400, 10070, "wrong last msg ID: ")


@pytest.mark.differential
async def test_max_msg_size_and_header_round_trip(nc) -> None:
    await create(nc, "H", subjects=["h"], max_msg_size=64)
    ack = await pub(nc, "h", b"x" * 65)
    assert error(ack) == (400, 10054, "message size exceeds maximum allowed")
    assert (await pub(nc, "h", b"x" * 60))["seq"] == 1

    await create(nc, "HR", subjects=["hr"])
    block = (b"NATS/1.0\r\nX-One: 1\r\nx-case: MiXeD\r\nX-Dup: a\r\nX-Dup: b\r\n"
             b"X-Space:   padded  \r\n\r\n")
    raw = await RawClient.open(_port(nc), {"verbose": False, "headers": True})
    try:
        body = b"payload\x00\xff"
        await raw.send(b"HPUB hr %d %d\r\n%b%b\r\n" % (len(block), len(block) + len(body),
                                                        block, body))
        await raw.sync()
    finally:
        await raw.close()
    resp = await eventually(lambda: _get_ok(nc, "HR", 1))
    m = resp["message"]
    assert base64.b64decode(m["hdrs"]) == block
    assert base64.b64decode(m["data"]) == b"payload\x00\xff"


def _port(nc: Any) -> int:
    return nc.connected_url.port


async def _get_ok(nc: Any, stream: str, seq: int) -> dict[str, Any] | None:
    resp = await msg_get(nc, stream, {"seq": seq})
    return None if "error" in resp else resp


# -- limits ----------------------------------------------------------------------------


@pytest.mark.differential
async def test_limits_discard_old(nc) -> None:
    await create(nc, "LM", subjects=["lm"], max_msgs=3)
    for i in range(5):
        await pub(nc, "lm", b"%d" % i)
    st = await state(nc, "LM")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (3, 3, 5)

    await create(nc, "LS", subjects=["ls.*"], max_msgs_per_subject=2)
    for i in range(4):
        await pub(nc, "ls.a", b"a%d" % i)
        await pub(nc, "ls.b", b"b%d" % i)
    st = (await info(nc, "LS", {"subjects_filter": ">"}))["state"]
    assert st["messages"] == 4 and st["subjects"] == {"ls.a": 2, "ls.b": 2}
    assert decoded(await msg_get(nc, "LS", {"next_by_subj": "ls.a"}))[2] == b"a2"

    # max_bytes counts stored record sizes. A memory store record is subject + payload + 16
    # bytes: 58 bytes here, so three fit in 200.
    await create(nc, "LBM", subjects=["lbm"], max_bytes=200, storage="memory")
    for _ in range(10):
        await pub(nc, "lbm", b"x" * 39)
    st = await state(nc, "LBM")
    assert (st["messages"], st["bytes"], st["first_seq"], st["last_seq"]) == (3, 3 * 58, 8, 10)
    # A file store record is a 22 byte header + subject + payload + an 8 byte checksum:
    # 72 bytes here, so two fit.
    await create(nc, "LB", subjects=["lb"], max_bytes=200)
    for _ in range(10):
        await pub(nc, "lb", b"x" * 40)
    st = await state(nc, "LB")
    assert (st["messages"], st["bytes"], st["first_seq"], st["last_seq"]) == (2, 2 * 72, 9, 10)


@pytest.mark.differential
async def test_limits_discard_new(nc) -> None:
    await create(nc, "NM", subjects=["nm"], max_msgs=2, discard="new")
    await pub(nc, "nm", b"1")
    await pub(nc, "nm", b"2")
    assert error(await pub(nc, "nm", b"3")) == (503, 10077, "maximum messages exceeded")

    await create(nc, "NB", subjects=["nb"], max_bytes=100, discard="new")
    assert (await pub(nc, "nb", b"x" * 50))["seq"] == 1
    assert error(await pub(nc, "nb", b"x" * 50)) == (503, 10077, "maximum bytes exceeded")

    await create(nc, "NS", subjects=["ns.*"], max_msgs_per_subject=1, discard="new",
                 discard_new_per_subject=True)
    await pub(nc, "ns.a", b"1")
    assert error(await pub(nc, "ns.a", b"2")) == \
        (503, 10077, "maximum messages per subject exceeded")
    assert (await pub(nc, "ns.b", b"3"))["seq"] == 2
    st = await state(nc, "NS")
    assert (st["messages"], st["last_seq"]) == (2, 2)

    # discard_new_per_subject needs discard new and a per-subject limit
    resp = await req(nc, "STREAM.CREATE.BADN", {"name": "BADN", "subjects": ["badn"],
                                                "discard_new_per_subject": True,
                                                "max_msgs_per_subject": 1})
    assert error(resp)[1] == 10052


@pytest.mark.differential
async def test_max_age_expires_on_a_timer(nc) -> None:
    await create(nc, "AGE", subjects=["age"], max_age=SECOND)
    for i in range(3):
        await pub(nc, "age", b"%d" % i)
    assert (await state(nc, "AGE"))["messages"] == 3
    await asyncio.sleep(2.0)
    st = await state(nc, "AGE")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (0, 4, 3)


@pytest.mark.differential
async def test_rollup(nc) -> None:
    await create(nc, "RU", subjects=["ru.*"], allow_rollup_hdrs=True)
    for i in range(3):
        await pub(nc, "ru.a", b"a%d" % i)
        await pub(nc, "ru.b", b"b%d" % i)
    ack = await pub(nc, "ru.a", b"roll", headers={"Nats-Rollup": "sub"})
    assert ack["seq"] == 7
    st = (await info(nc, "RU", {"subjects_filter": ">"}))["state"]
    assert st["subjects"] == {"ru.a": 1, "ru.b": 3}
    ack = await pub(nc, "ru.b", b"all", headers={"Nats-Rollup": "all"})
    st = await state(nc, "RU")
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (1, 8, 8)
    ack = await pub(nc, "ru.b", b"bad", headers={"Nats-Rollup": "nope"})
    assert error(ack)[:2] == (500, 10111)

    await create(nc, "NR", subjects=["nr"])
    ack = await pub(nc, "nr", b"x", headers={"Nats-Rollup": "sub"})
    assert error(ack) == (500, 10111, "rollup not permitted")
    assert (await state(nc, "NR"))["messages"] == 0


# -- retention -------------------------------------------------------------------------


@pytest.mark.differential
async def test_interest_retention(nc) -> None:
    js = nc.jetstream()
    await create(nc, "INT", subjects=["int.*"], retention="interest")
    # nobody interested: acknowledged, but not kept
    assert await pub(nc, "int.a", b"lost") == {"stream": "INT", "seq": 1}
    st = await state(nc, "INT")
    assert (st["messages"], st["last_seq"]) == (0, 1)

    s1 = await js.pull_subscribe("int.*", durable="c1", stream="INT")
    s2 = await js.pull_subscribe("int.a", durable="c2", stream="INT")
    for i in range(3):
        await pub(nc, "int.a", b"%d" % i)
    await pub(nc, "int.b", b"only-c1")
    assert (await state(nc, "INT"))["messages"] == 4

    for m in await s1.fetch(4, timeout=2):
        await m.ack_sync()
    # c2 still holds the three int.a messages; int.b was only c1's
    st = await wait_state(nc, "INT", lambda s: s["messages"] == 3)
    assert st["messages"] == 3
    for m in await s2.fetch(3, timeout=2):
        await m.ack_sync()
    st = await wait_state(nc, "INT", lambda s: s["messages"] == 0)
    assert st["messages"] == 0 and st["last_seq"] == 5


@pytest.mark.differential
async def test_workqueue_retention(nc) -> None:
    js = nc.jetstream()
    await create(nc, "WQ", subjects=["wq.*"], retention="workqueue")
    for i in range(4):
        await pub(nc, "wq.a", b"%d" % i)
    sub = await js.pull_subscribe("wq.*", durable="w1", stream="WQ")
    msgs = await sub.fetch(2, timeout=2)
    for m in msgs:
        await m.ack_sync()
    st = await wait_state(nc, "WQ", lambda s: s["messages"] == 2)
    assert st["messages"] == 2 and st["first_seq"] == 3

    resp = await req(nc, "CONSUMER.CREATE.WQ.w2", {
        "stream_name": "WQ", "config": {"durable_name": "w2", "ack_policy": "explicit"}})
    assert error(resp) == (400, 10099,
                           "multiple non-filtered consumers not allowed on workqueue stream")
    await req(nc, "CONSUMER.DELETE.WQ.w1")
    resp = await req(nc, "CONSUMER.CREATE.WQ.f1", {
        "stream_name": "WQ", "config": {"durable_name": "f1", "ack_policy": "explicit",
                                        "filter_subject": "wq.a"}})
    assert "error" not in resp, resp
    resp = await req(nc, "CONSUMER.CREATE.WQ.f2", {
        "stream_name": "WQ", "config": {"durable_name": "f2", "ack_policy": "explicit",
                                        "filter_subject": "wq.*"}})
    assert error(resp) == (400, 10100, "filtered consumer not unique on workqueue stream")
    resp = await req(nc, "CONSUMER.CREATE.WQ.f3", {
        "stream_name": "WQ", "config": {"durable_name": "f3", "ack_policy": "explicit",
                                        "filter_subject": "wq.b"}})
    assert "error" not in resp, resp


# -- stream options --------------------------------------------------------------------


@pytest.mark.differential
async def test_no_ack_stream(nc) -> None:
    await create(nc, "NOACK", subjects=["noack"], no_ack=True)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request("noack", b"1", timeout=0.5)
    js = nc.jetstream()
    with pytest.raises(nats.errors.TimeoutError):
        await js.publish("noack", b"2", timeout=0.5)
    st = await state(nc, "NOACK")
    assert (st["messages"], st["last_seq"]) == (2, 2)


@pytest.mark.differential
async def test_first_seq_and_metadata(nc) -> None:
    resp = await create(nc, "FS", subjects=["fs"], first_seq=100,
                        metadata={"owner": "team-a", "tier": "gold"})
    assert resp["config"]["first_seq"] == 100
    assert user_metadata(resp["config"]) == {"owner": "team-a", "tier": "gold"}
    st = resp["state"]
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (0, 100, 99)
    assert (await pub(nc, "fs", b"x"))["seq"] == 100
    got = await info(nc, "FS")
    assert user_metadata(got["config"]) == {"owner": "team-a", "tier": "gold"}
    resp = await req(nc, "STREAM.UPDATE.FS", {**got["config"], "metadata": {"owner": "b"}})
    assert user_metadata(resp["config"]) == {"owner": "b"}


# -- moving messages between streams ---------------------------------------------------


@pytest.mark.differential
async def test_republish(nc) -> None:
    inbox = Inbox()
    await nc.subscribe("re.>", cb=inbox.cb)
    await create(nc, "RP", subjects=["a.>"], republish={"src": "a.>", "dest": "re.>"})
    await pub(nc, "a.one", b"1")
    await pub(nc, "a.two", b"2", headers={"X-Keep": "k"})
    await pub(nc, "a.one", b"3")
    msgs = await inbox.wait_for(3, timeout=3)
    assert [(m.subject, m.data) for m in msgs] == \
        [("re.one", b"1"), ("re.two", b"2"), ("re.one", b"3")]
    h = msgs[1].headers
    assert h["Nats-Stream"] == "RP" and h["Nats-Subject"] == "a.two"
    assert h["Nats-Sequence"] == "2" and h["X-Keep"] == "k"
    # Nats-Last-Sequence is the previous message on the same subject
    assert [m.headers["Nats-Last-Sequence"] for m in msgs] == ["0", "0", "1"]

    inbox2 = Inbox()
    await nc.subscribe("ho.>", cb=inbox2.cb)
    await create(nc, "RH", subjects=["b.>"],
                 republish={"src": "b.>", "dest": "ho.>", "headers_only": True})
    await pub(nc, "b.x", b"12345")
    m = (await inbox2.wait_for(1, timeout=3))[0]
    assert m.data == b"" and m.headers["Nats-Msg-Size"] == "5"
    assert m.headers["Nats-Sequence"] == "1"
    assert all(msg.headers.get("Nats-Time-Stamp") for msg in [*msgs, m])


@pytest.mark.differential
async def test_subject_transform(nc) -> None:
    resp = await create(nc, "TR", subjects=["tra.>"],
                        subject_transform={"src": "tra.>", "dest": "trb.>"})
    assert resp["config"]["subject_transform"] == {"src": "tra.>", "dest": "trb.>"}
    ack = await pub(nc, "tra.x", b"1")
    assert ack == {"stream": "TR", "seq": 1}
    assert decoded(await msg_get(nc, "TR", {"seq": 1})) == ("trb.x", 1, b"1")
    assert decoded(await msg_get(nc, "TR", {"last_by_subj": "trb.x"}))[1] == 1


@pytest.mark.differential
async def test_mirror(nc) -> None:
    await create(nc, "ORIGIN", subjects=["orig.*"])
    for i in range(5):
        await pub(nc, f"orig.{i % 2}", b"m%d" % i)
    await req(nc, "STREAM.MSG.DELETE.ORIGIN", {"seq": 2})
    resp = await create(nc, "MIRROR", mirror={"name": "ORIGIN"})
    assert resp["config"]["mirror"]["name"] == "ORIGIN"
    st = await wait_state(nc, "MIRROR", lambda s: s["last_seq"] == 5)
    assert st["messages"] == 4
    for seq in (1, 3, 4, 5):
        assert decoded(await msg_get(nc, "MIRROR", {"seq": seq})) == \
            decoded(await msg_get(nc, "ORIGIN", {"seq": seq}))
    # new messages follow
    await pub(nc, "orig.1", b"late")
    st = await wait_state(nc, "MIRROR", lambda s: s["last_seq"] == 6)
    assert decoded(await msg_get(nc, "MIRROR", {"seq": 6})) == ("orig.1", 6, b"late")
    # a mirror takes no publishes of its own
    resp = await req(nc, "STREAM.CREATE.BADM", {"name": "BADM", "subjects": ["x"],
                                                "mirror": {"name": "ORIGIN"}})
    assert error(resp) == (400, 10034, "stream mirrors can not contain subjects")
    got = await info(nc, "MIRROR")
    assert got["mirror"]["name"] == "ORIGIN" and got["mirror"]["lag"] == 0


@pytest.mark.differential
async def test_sources(nc) -> None:
    await create(nc, "S1", subjects=["s1.*"])
    await create(nc, "S2", subjects=["s2.*"])
    for i in range(3):
        await pub(nc, "s1.x", b"one-%d" % i)
        await pub(nc, "s2.y", b"two-%d" % i)
    await create(nc, "AGG", subjects=["agg"], sources=[{"name": "S1"}, {"name": "S2"}])
    st = await wait_state(nc, "AGG", lambda s: s["messages"] == 6)
    assert st["messages"] == 6
    await pub(nc, "agg", b"own")
    await pub(nc, "s2.y", b"two-late")
    st = await wait_state(nc, "AGG", lambda s: s["messages"] == 8)
    assert st["messages"] == 8
    got = (await info(nc, "AGG", {"subjects_filter": ">"}))
    assert got["state"]["subjects"] == {"s1.x": 3, "s2.y": 4, "agg": 1}
    assert sorted(s["name"] for s in got["sources"]) == ["S1", "S2"]
    m = await msg_get(nc, "AGG", {"last_by_subj": "s2.y"})
    assert decoded(m)[2] == b"two-late"
    hdrs = base64.b64decode(m["message"]["hdrs"])
    assert b"Nats-Stream-Source: S2 4" in hdrs


# -- account ---------------------------------------------------------------------------


@pytest.mark.differential
async def test_account_info(nc) -> None:
    before = await req(nc, "INFO")
    assert before["type"] == T + "account_info_response"
    assert (before["memory"], before["storage"], before["streams"], before["consumers"]) == \
        (0, 0, 0, 0)
    assert before["limits"]["max_streams"] == -1 and before["limits"]["max_consumers"] == -1
    assert before["limits"]["max_memory"] == -1 and before["limits"]["max_storage"] == -1
    await create(nc, "AI", subjects=["ai"])
    await create(nc, "AM", subjects=["am"], storage="memory")
    await pub(nc, "ai", b"x" * 100)
    await pub(nc, "am", b"y" * 10)
    await req(nc, "CONSUMER.CREATE.AI.c", {"stream_name": "AI",
                                           "config": {"durable_name": "c"}})
    await req(nc, "STREAM.INFO.NOPE")
    after = await req(nc, "INFO")
    assert (after["streams"], after["consumers"]) == (2, 1)
    # every API request counts, the failed STREAM.INFO also as an error
    assert after["api"]["total"] - before["api"]["total"] == 5
    assert after["api"]["errors"] - before["api"]["errors"] == 1

    js = nc.jetstream()
    acct = await js.account_info()
    assert (acct.streams, acct.consumers) == (2, 1)
    # file store records: 22 byte header + subject + payload + 8 byte checksum
    assert after["storage"] == 22 + 2 + 100 + 8
    # memory store records: subject + payload + 16
    assert after["memory"] == 2 + 10 + 16


# -- durability ------------------------------------------------------------------------


@pytest.mark.differential
async def test_restart_recovers_state(js_hub) -> None:
    nc = await nats.connect(js_hub.url)
    await create(nc, "RS", subjects=["rs.*"])
    for i in range(20):
        await pub(nc, f"rs.{i % 3}", b"m%d" % i, headers={"Idx": str(i)})
    await req(nc, "STREAM.PURGE.RS", {"seq": 4})
    await req(nc, "STREAM.MSG.DELETE.RS", {"seq": 7})
    await req(nc, "STREAM.MSG.DELETE.RS", {"seq": 12})
    before = await info(nc, "RS", {"subjects_filter": ">"})
    msgs_before = [await msg_get(nc, "RS", {"seq": s}) for s in range(1, 21)]
    await nc.close()

    js_hub.restart()
    nc = await nats.connect(js_hub.url)
    try:
        after = await info(nc, "RS", {"subjects_filter": ">"})
        keys = ("messages", "bytes", "first_seq", "last_seq", "num_deleted", "subjects")
        assert {k: after["state"].get(k) for k in keys} == \
            {k: before["state"].get(k) for k in keys}
        assert after["state"]["num_deleted"] == 2
        assert after["config"] == before["config"]
        msgs_after = [await msg_get(nc, "RS", {"seq": s}) for s in range(1, 21)]
        assert msgs_after == msgs_before
        assert (await pub(nc, "rs.0", b"next"))["seq"] == 21
    finally:
        await nc.close()


@pytest.mark.differential
async def test_ctrl_c_commits_before_exit(js_hub) -> None:
    """Ctrl-C reaches the hub's whole process group: the store still commits every
    acknowledged message before the hub exits, and nothing in it fails."""
    nc = await nats.connect(js_hub.url, allow_reconnect=False)
    await create(nc, "CC", subjects=["cc"])
    js = nc.jetstream()
    acks = await asyncio.gather(*(js.publish("cc", b"m%d" % i) for i in range(500)))
    js_hub.interrupt_group()
    assert await asyncio.to_thread(js_hub.proc.wait, 15) == 0
    await nc.close()
    log = js_hub.log()
    assert "[ERR]" not in log and "Traceback" not in log, log
    js_hub.restart()
    nc = await nats.connect(js_hub.url)
    try:
        assert (await state(nc, "CC"))["last_seq"] == max(a.seq for a in acks) == 500
    finally:
        await nc.close()


@pytest.mark.differential
async def test_kill9_keeps_every_acknowledged_message(js_hub) -> None:
    nc = await nats.connect(js_hub.url, allow_reconnect=False)
    await create(nc, "K9", subjects=["k9"])
    js = nc.jetstream()
    acked: dict[int, bytes] = {}
    killed = threading.Event()

    def killer() -> None:
        time.sleep(1.0)
        js_hub.kill()
        killed.set()

    async def one(i: int) -> None:
        payload = b"payload-%08d" % i
        try:
            ack = await js.publish("k9", payload, timeout=2)
        except (nats.errors.Error, TimeoutError):  # in flight at the kill: not acknowledged
            return
        acked[ack.seq] = payload

    thread = threading.Thread(target=killer)
    thread.start()
    i = 0
    while not killed.is_set() and i < 200_000:
        await asyncio.gather(*(one(i + k) for k in range(100)))
        i += 100
    await asyncio.to_thread(thread.join)
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        await nc.close()
    assert len(acked) > 100, f"only {len(acked)} acknowledged before the kill"

    js_hub.restart()
    nc = await nats.connect(js_hub.url)
    try:
        st = await state(nc, "K9")
        assert st["last_seq"] >= max(acked)
        seqs = sorted(acked)
        missing: list[int] = []
        for start in range(0, len(seqs), 200):
            chunk = seqs[start:start + 200]
            resps = await asyncio.gather(*(msg_get(nc, "K9", {"seq": s}) for s in chunk))
            for seq, resp in zip(chunk, resps, strict=True):
                if "error" in resp or decoded(resp)[2] != acked[seq]:
                    missing.append(seq)
        assert not missing, f"{len(missing)} of {len(seqs)} acked messages lost: {missing[:10]}"
    finally:
        await nc.close()


@pytest.mark.differential
async def test_nats_py_stream_config(nc) -> None:
    js = nc.jetstream()
    si = await js.add_stream(api.StreamConfig(name="PY", subjects=["py.>"]))
    assert si.config.name == "PY"
    with pytest.raises(APIError) as err:
        await js.add_stream(api.StreamConfig(name="PY", subjects=["other"]))
    assert err.value.err_code == 10058
