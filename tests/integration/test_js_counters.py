"""Distributed counters (ADR-49): streams with ``allow_msg_counter``, ``Nats-Incr``
publishes, the totals they store and acknowledge, and counters summed over sources.

Each test is one nats-py script run against Jetport and against nats-server; nats-py has
no counter helpers, so it publishes with headers and reads the ``val`` its PubAck parses,
as a user of it would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from servers import js_connect as connect

pytestmark = pytest.mark.timeout(60)

COUNTER = {"allow_msg_counter": True}
BIG = "99999999999999999999999999999999999999"


async def api(nc, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request("$JS.API." + subject, payload, timeout=3)
    doc: dict[str, Any] = json.loads(msg.data)
    return doc


async def pub(nc, subject: str, headers: dict[str, str] | None = None,
              payload: bytes = b"") -> dict[str, Any]:
    """The raw PubAck (or error) a publish gets."""
    msg = await nc.request(subject, payload, headers=headers, timeout=3)
    doc: dict[str, Any] = json.loads(msg.data)
    return doc


def body(total: str) -> str:
    """A counter message's payload."""
    return json.dumps({"val": total}, separators=(",", ":"))


def failure(doc: dict[str, Any]) -> tuple[int, int, str] | None:
    err = doc.get("error")
    return (err["code"], err["err_code"], err["description"]) if err else None


async def stored(nc, stream: str, **query: Any) -> tuple[str, str]:
    """A stored message's headers and payload, from STREAM.MSG.GET."""
    msg = (await api(nc, f"STREAM.MSG.GET.{stream}", query))["message"]
    return (base64.b64decode(msg.get("hdrs", "")).decode(),
            base64.b64decode(msg.get("data", "")).decode())


async def copied(nc, stream: str, count: int, timeout: float = 5.0) -> None:
    """Wait until ``stream`` holds ``count`` messages (sources copy in the background)."""
    deadline = time.monotonic() + timeout
    while (await api(nc, f"STREAM.INFO.{stream}"))["state"]["messages"] < count:
        assert time.monotonic() < deadline, f"{stream} never reached {count} messages"
        await asyncio.sleep(0.02)


# -- configuration ---------------------------------------------------------------------


def invalid(text: str) -> tuple[int, int, str]:
    return (500, 10052, text)


@pytest.mark.differential
async def test_counter_config_is_echoed_needs_level_2_and_excludes_what_loses_totals(
        js_hub) -> None:
    nc, _ = await connect(js_hub)
    made = await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER})
    assert made["config"]["allow_msg_counter"] is True
    assert made["config"]["metadata"]["_nats.req.level"] == "2"
    plain = await api(nc, "STREAM.CREATE.P", {"name": "P", "subjects": ["p.>"]})
    assert "allow_msg_counter" not in plain["config"]  # left out when off
    # Delete markers turn message TTLs on, but only after the counter's rules ran.
    marked = await api(nc, "STREAM.CREATE.M", {"name": "M", "subjects": ["m.>"], **COUNTER,
                                               "subject_delete_marker_ttl": 2_000_000_000})
    assert marked["config"]["allow_msg_ttl"] is True, marked
    cases: list[tuple[dict[str, Any], tuple[int, int, str]]] = [
        ({"retention": "interest"}, invalid("counter stream can only use limits retention")),
        ({"retention": "workqueue"}, invalid("counter stream can only use limits retention")),
        ({"retention": "interest", "discard": "new", "allow_msg_ttl": True},
         invalid("counter stream cannot use discard new")),
        ({"retention": "interest", "allow_msg_ttl": True},
         invalid("counter stream cannot use message TTLs")),
        ({"subject_delete_marker_ttl": 2_000_000_000, "allow_msg_ttl": True},
         invalid("counter stream cannot use message TTLs")),
        ({"retention": "interest", "allow_msg_schedules": True},
         invalid("counter stream cannot use message schedules")),
        ({"allow_msg_schedules": True, "allow_msg_ttl": True},
         invalid("counter stream cannot use message TTLs")),
        ({"retention": "interest", "deny_purge": True, "allow_rollup_hdrs": True},
         invalid("roll-ups require the purge permission")),
        ({"retention": "interest", "discard_new_per_subject": True},
         invalid("counter stream can only use limits retention")),
        ({"mirror": {"name": "P"}, "subjects": []},
         (400, 10173, "stream mirrors can not also calculate counters")),
        ({"mirror": {"name": "P"}, "subjects": [], "subject_delete_marker_ttl": 2_000_000_000},
         (400, 10173, "stream mirrors can not also calculate counters")),
        ({"mirror": {"name": "P"}, "subjects": [], "first_seq": 5},
         (400, 10143, "stream mirrors can not have first sequence configured")),
    ]
    for i, (extra, want) in enumerate(cases):
        cfg = {"name": f"X{i}", "subjects": [f"x{i}.>"], **COUNTER, **extra}
        assert failure(await api(nc, f"STREAM.CREATE.X{i}", cfg)) == want, extra

    # The setting is fixed at creation: neither on nor off by an update, even when empty.
    changed = invalid("stream configuration update can not change message counter setting")
    assert failure(await api(nc, "STREAM.UPDATE.P", {"name": "P", "subjects": ["p.>"],
                                                     **COUNTER})) == changed
    assert failure(await api(nc, "STREAM.UPDATE.C", {"name": "C", "subjects": ["c.>"]})) == changed
    for extra, text in [({"allow_msg_ttl": True}, "counter stream cannot use message TTLs"),
                        ({"retention": "interest"}, "counter stream can only use limits retention"),
                        ({"discard": "new"}, "counter stream cannot use discard new")]:
        update = {"name": "C", "subjects": ["c.>"], **COUNTER, **extra}
        assert failure(await api(nc, "STREAM.UPDATE.C", update)) == invalid(text)
    await api(nc, "STREAM.CREATE.T", {"name": "T", "subjects": ["t.>"], "allow_msg_ttl": True})
    assert failure(await api(nc, "STREAM.UPDATE.T", {"name": "T", "subjects": ["t.>"],
                                                     **COUNTER})) == invalid(
        "message TTL status can not be disabled")
    sealed = await api(nc, "STREAM.UPDATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER,
                                               "sealed": True})
    assert sealed["config"]["allow_msg_counter"] is True, sealed
    await nc.close()


# -- increments ------------------------------------------------------------------------


@pytest.mark.differential
async def test_increments_store_and_acknowledge_the_subjects_total(js_hub) -> None:
    nc, js = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER,
                                      "allow_direct": True})
    huge = "-" + BIG * 150  # beyond what Python prints of an int by default
    steps = [("+1", "1"), ("5", "6"), ("-3", "3"), ("0", "3"), ("-0", "3"), ("+007", "10"),
             (" 2", "12"), (BIG, str(int(BIG) + 12)),
             (huge, "-" + "9" * 5661 + "8" + "9" * 36 + "88")]
    for seq, (incr, total) in enumerate(steps, 1):
        assert await pub(nc, "c.hits", {"Nats-Incr": incr}) == {
            "stream": "C", "seq": seq, "val": total}, incr
    # Another subject counts on its own; nats-py's PubAck carries the value.
    ack = await js.publish("c.other", headers={"Nats-Incr": "-4"})
    assert (ack.seq, ack.val) == (len(steps) + 1, "-4")

    # The stored message is the new total with the publish's headers kept as sent.
    assert await stored(nc, "C", seq=1) == ("NATS/1.0\r\nNats-Incr: +1\r\n\r\n", '{"val":"1"}')
    assert await stored(nc, "C", last_by_subj="c.hits") == (
        f"NATS/1.0\r\nNats-Incr: {huge}\r\n\r\n", body(steps[-1][1]))
    direct = await nc.request("$JS.API.DIRECT.GET.C.c.other", b"", timeout=3)
    assert direct.data == b'{"val":"-4"}'
    assert direct.headers is not None and direct.headers["Nats-Incr"] == "-4"
    assert direct.headers["Nats-Subject"] == "c.other"
    sub = await js.pull_subscribe("c.hits", "reader", stream="C")
    first = (await sub.fetch(1, timeout=3))[0]
    assert (first.data, first.headers) == (b'{"val":"1"}', {"Nats-Incr": "+1"})
    await nc.close()


@pytest.mark.differential
async def test_increments_are_refused_as_nats_server_refuses_them(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER,
                                      "max_msg_size": 300})
    await api(nc, "STREAM.CREATE.R", {"name": "R", "subjects": ["r.>"], **COUNTER,
                                      "allow_rollup_hdrs": True})
    await api(nc, "STREAM.CREATE.N", {"name": "N", "subjects": ["n.>"]})
    bad = (400, 10171, "message counter increment is invalid")
    missing = (400, 10169, "message counter increment is missing")
    too_big = (400, 10054, "message size exceeds maximum allowed")
    no_ttl = (400, 10166, "per-message TTL is disabled")
    cases: list[tuple[str, dict[str, str] | None, bytes, tuple[int, int, str]]] = [
        ("c.a", {"Nats-Incr": v}, b"", bad)
        for v in ("abc", "+", "-", "1.5", "+-1", "1e3", "0x10", "1_000", "+ 1", "١٢")
    ] + [
        ("c.a", {"Nats-Incr": ""}, b"", missing),
        ("c.a", None, b"", missing),
        ("c.a", {"Other": "x"}, b"", missing),
        ("c.a", {"Nats-Msg-Id": "new"}, b"", missing),
        ("c.a", {"Nats-Incr": "1"}, b"x", (400, 10170, "message counter has payload")),
        ("c.a", {"Nats-Incr": "bad"}, b"x", bad),
        ("c.a", {"Nats-Incr": "1"}, b"x" * 400, too_big),
        ("c.a", {"Nats-Incr": "1", "Big": "x" * 262}, b"", too_big),  # fits until counted
        ("n.a", {"Nats-Incr": "1"}, b"", (400, 10168, "message counters is disabled")),
        ("n.a", {"Nats-Incr": "1"}, b"payload", (400, 10168, "message counters is disabled")),
        ("n.a", {"Nats-Incr": "bad"}, b"", bad),
        # Headers that pin a stream position do not go with an increment.
        *[("c.a", {"Nats-Incr": "2", key: value}, b"", bad) for key, value in [
            ("Nats-Expected-Stream", "C"), ("Nats-Expected-Stream", "Z"),
            ("Nats-Expected-Last-Sequence", "0"), ("Nats-Expected-Last-Sequence", "abc"),
            ("Nats-Expected-Last-Subject-Sequence", "0"), ("Nats-Expected-Last-Msg-Id", "m"),
            ("Nats-Expected-Last-Subject-Sequence-Subject", "c.a"), ("Nats-Rollup", "sub"),
            ("Nats-Rollup", "bad")]],
        ("r.a", {"Nats-Incr": "2", "Nats-Rollup": "all"}, b"", bad),
        ("c.a", {"Nats-Incr": "2", "Nats-TTL": "5s"}, b"", no_ttl),
        # Without an increment, the other header rules come first.
        ("c.a", {"Nats-TTL": "5s"}, b"", no_ttl),
        ("c.a", {"Nats-Rollup": "sub"}, b"", (500, 10111, "rollup not permitted")),
        ("r.a", {"Nats-Rollup": "sub"}, b"", missing),
        ("c.a", {"Nats-Expected-Last-Sequence": "9"}, b"", (400, 10071, "wrong last sequence: 0")),
        ("c.a", {"Nats-Expected-Stream": "Z"}, b"", (400, 10060, "expected stream does not match")),
    ]
    for subject, headers, payload, want in cases:
        assert failure(await pub(nc, subject, headers, payload)) == want, (headers, payload)
    # Empty positional headers are no headers; nothing above was stored.
    empty = {k: "" for k in ("Nats-Rollup", "Nats-Expected-Last-Msg-Id",
                             "Nats-Expected-Last-Subject-Sequence-Subject")}
    assert await pub(nc, "c.a", {"Nats-Incr": "4", **empty}) == {"stream": "C", "seq": 1,
                                                                  "val": "4"}
    assert await pub(nc, "n.a", {"Nats-Incr": ""}, b"plain") == {"stream": "N", "seq": 1}
    await nc.close()


@pytest.mark.differential
async def test_a_repeated_msg_id_is_a_duplicate_not_a_second_increment(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER})
    once = {"Nats-Incr": "3", "Nats-Msg-Id": "m1"}
    assert await pub(nc, "c.a", once) == {"stream": "C", "seq": 1, "val": "3"}
    assert await pub(nc, "c.a", once) == {"stream": "C", "seq": 1, "duplicate": True}
    assert await pub(nc, "c.a", {"Nats-Msg-Id": "m1"}) == {"stream": "C", "seq": 1,
                                                            "duplicate": True}
    assert failure(await pub(nc, "c.a", {"Nats-Msg-Id": "m1", "Nats-Incr": "x"})) == (
        400, 10171, "message counter increment is invalid")
    assert await stored(nc, "C", seq=1) == (
        "NATS/1.0\r\nNats-Incr: 3\r\nNats-Msg-Id: m1\r\n\r\n", '{"val":"3"}')
    await nc.close()


@pytest.mark.differential
async def test_totals_follow_limits_purges_and_transforms(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER,
                                      "max_msgs_per_subject": 1,
                                      "subject_transform": {"src": "c.>", "dest": "n.>"}})
    assert (await pub(nc, "c.a", {"Nats-Incr": "3"}))["val"] == "3"
    assert (await pub(nc, "c.a", {"Nats-Incr": "3"}))["val"] == "6"  # only the last is kept
    assert await stored(nc, "C", last_by_subj="n.a") == ("NATS/1.0\r\nNats-Incr: 3\r\n\r\n",
                                                          '{"val":"6"}')
    await api(nc, "STREAM.PURGE.C", {"filter": "n.a"})  # a purge resets the counter
    assert (await pub(nc, "c.a", {"Nats-Incr": "2"}))["val"] == "2"
    await nc.close()


@pytest.mark.differential
async def test_republished_and_ttl_carrying_increments_are_the_stored_total(js_hub) -> None:
    nc, _ = await connect(js_hub)
    # Delete markers turn message TTLs on, so these increments may carry one.
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER,
                                      "subject_delete_marker_ttl": 2_000_000_000,
                                      "republish": {"src": ">", "dest": "rp.>"}})
    sub = await nc.subscribe("rp.>")
    assert (await pub(nc, "c.a", {"Nats-Incr": "3", "Nats-TTL": "1h"}))["val"] == "3"
    assert failure(await pub(nc, "c.a", {"Nats-Incr": "3", "Nats-TTL": "soon"})) == (
        400, 10165, "invalid per-message TTL")
    assert (await pub(nc, "c.a", {"Nats-Incr": "4"}))["val"] == "7"
    copies = [await sub.next_msg(timeout=3) for _ in range(2)]
    assert [(m.subject, m.data, m.headers["Nats-Incr"], m.headers["Nats-Sequence"])
            for m in copies] == [("rp.c.a", b'{"val":"3"}', "3", "1"),
                                 ("rp.c.a", b'{"val":"7"}', "4", "2")]
    assert copies[0].headers["Nats-TTL"] == "1h"
    await nc.close()


@pytest.mark.differential
async def test_totals_survive_a_restart(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"], **COUNTER})
    await pub(nc, "c.a", {"Nats-Incr": BIG})
    await pub(nc, "c.b", {"Nats-Incr": "-1"})
    await nc.close()
    js_hub.restart()
    nc, _ = await connect(js_hub)
    assert (await pub(nc, "c.b", {"Nats-Incr": "-1"}))["val"] == "-2"
    assert (await pub(nc, "c.a", {"Nats-Incr": "1"}))["val"] == str(int(BIG) + 1)
    await nc.close()


# -- sources ---------------------------------------------------------------------------


def without_ident(hdrs: str) -> str:
    """Headers with ``Nats-Stream-Source`` cut to its first five fields: nats-server 2.15
    adds a sixth, an identity of the source consumer, that Jetport does not make."""
    lines = hdrs.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("Nats-Stream-Source: "):
            lines[i] = " ".join(line.split(" ")[:6])
    return "\r\n".join(lines)


@pytest.mark.differential
async def test_a_counter_sourcing_counters_adds_each_sources_change(js_hub) -> None:
    nc, _ = await connect(js_hub)
    await api(nc, "STREAM.CREATE.ES", {"name": "ES", "subjects": ["es.>"], **COUNTER})
    await api(nc, "STREAM.CREATE.DE", {"name": "DE", "subjects": ["de.>"], **COUNTER})
    await pub(nc, "es.hits", {"Nats-Incr": "+10"})
    await pub(nc, "es.hits", {"Nats-Incr": "5"})
    await pub(nc, "de.hits", {"Nats-Incr": "7"})
    # Sources added while their origins already count: a first copy brings the whole
    # total.  One at a time, so the order of the copies is known.
    es = {"name": "ES", "subject_transforms": [{"src": "es.>", "dest": "eu.>"}]}
    de = {"name": "DE", "subject_transforms": [{"src": "de.>", "dest": "eu.>"}]}
    eu = {"name": "EU", "subjects": ["eu.>"], **COUNTER}
    await api(nc, "STREAM.CREATE.EU", {**eu, "sources": [es]})
    await copied(nc, "EU", 2)
    await api(nc, "STREAM.UPDATE.EU", {**eu, "sources": [es, de]})
    await copied(nc, "EU", 3)
    await pub(nc, "es.hits", {"Nats-Incr": "-2"})
    await copied(nc, "EU", 4)
    assert await pub(nc, "eu.hits", {"Nats-Incr": "100"}) == {"stream": "EU", "seq": 5,
                                                               "val": "120"}
    # A plain stream sourcing a counter keeps its messages as they are.
    await api(nc, "STREAM.CREATE.RAW", {"name": "RAW", "sources": [{"name": "ES",
                                                                     "filter_subject": "es.>"}]})
    await copied(nc, "RAW", 3)
    # Another tier: the sources map is the tier's own, keyed by its direct origin.
    await api(nc, "STREAM.CREATE.ALL", {"name": "ALL", **COUNTER, "sources": [{"name": "EU"}]})
    await copied(nc, "ALL", 5)

    both = '{"DE":{"de.hits":"7"},"ES":{"es.hits":"%s"}}'
    es_src = "Nats-Stream-Source: ES %d es.> eu.> es.hits"
    de_src = "Nats-Stream-Source: DE 1 de.> eu.> de.hits"
    expected = {
        ("EU", 1): (f"Nats-Incr: 10\r\n{es_src % 1}\r\nNats-Counter-Sources: "
                    '{"ES":{"es.hits":"10"}}', "10"),
        ("EU", 2): (f"Nats-Incr: 5\r\n{es_src % 2}\r\nNats-Counter-Sources: "
                    '{"ES":{"es.hits":"15"}}', "15"),
        ("EU", 3): (f"Nats-Incr: 7\r\n{de_src}\r\nNats-Counter-Sources: {both % 15}", "22"),
        ("EU", 4): (f"Nats-Incr: -2\r\n{es_src % 3}\r\nNats-Counter-Sources: {both % 13}", "20"),
        ("EU", 5): (f"Nats-Incr: 100\r\nNats-Counter-Sources: {both % 13}", "120"),
        ("RAW", 3): ("Nats-Incr: -2\r\nNats-Stream-Source: ES 3 es.> > es.hits", "13"),
        ("ALL", 4): ("Nats-Incr: -2\r\nNats-Counter-Sources: "
                     '{"EU":{"eu.hits":"20"}}\r\nNats-Stream-Source: EU 4 > > eu.hits', "20"),
        ("ALL", 5): ("Nats-Incr: 100\r\nNats-Counter-Sources: "
                     '{"EU":{"eu.hits":"120"}}\r\nNats-Stream-Source: EU 5 > > eu.hits', "120"),
    }
    for (stream, seq), (hdrs, total) in expected.items():
        got_hdrs, data = await stored(nc, stream, seq=seq)
        assert (without_ident(got_hdrs), data) == (f"NATS/1.0\r\n{hdrs}\r\n\r\n",
                                                    body(total)), (stream, seq)
    await nc.close()
