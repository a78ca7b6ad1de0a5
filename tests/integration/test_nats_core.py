"""Core NATS behaviour of a running Jetport, seen through nats-py and raw sockets."""

from __future__ import annotations

import asyncio
import collections
import time

import nats
import nats.errors
import pytest
from servers import Inbox, RawClient

pytestmark = pytest.mark.timeout(60)

QUIET = {"verbose": False, "pedantic": False}
QUIET_HEADERS = {"verbose": False, "pedantic": False, "headers": True}


@pytest.fixture
async def connect(hub):
    """``await connect(**options)``: a nats-py client on the hub, closed afterwards."""
    clients = []

    async def make(url: str | None = None, **options):
        options.setdefault("allow_reconnect", False)
        options.setdefault("connect_timeout", 2)
        nc = await nats.connect(url or hub.url, **options)
        clients.append(nc)
        return nc

    yield make
    for nc in clients:
        if not nc.is_closed:
            await nc.close()


async def roundtrip(nc, timeout: float = 5) -> None:
    """Wait until the server has processed everything this client sent so far.

    nats-py writes a flush's PING ahead of commands still in its buffer, so one flush
    may be answered before earlier publishes are read; the second PING goes out after
    the buffer was written and its PONG orders after all of it.
    """
    await nc.flush(timeout=timeout)
    await nc.flush(timeout=timeout)


async def settle(*clients) -> None:
    """Round trip every client, then let subscription callbacks run."""
    for nc in clients:
        await roundtrip(nc)
    await asyncio.sleep(0.05)


# -- publish / subscribe ------------------------------------------------------------


async def test_pub_sub_basic(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    inbox = Inbox()
    await sub_nc.subscribe("greet.joe", cb=inbox.cb)
    await roundtrip(sub_nc)
    for i in range(5):
        await pub_nc.publish("greet.joe", b"hello %d" % i)
    await pub_nc.publish("greet.ann", b"not for joe")
    await inbox.wait_for(5)
    await settle(pub_nc, sub_nc)
    assert inbox.data == [b"hello %d" % i for i in range(5)]
    assert {m.subject for m in inbox.msgs} == {"greet.joe"}


async def test_empty_payload_and_binary_payload(connect):
    nc = await connect()
    sub = await nc.subscribe("bin")
    blob = bytes(range(256)) + b"\r\n" + b"MSG x 1 2\r\n" + b"\x00" * 10
    await nc.publish("bin", b"")
    await nc.publish("bin", blob)
    assert (await sub.next_msg(timeout=2)).data == b""
    assert (await sub.next_msg(timeout=2)).data == blob


async def test_wildcards(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    patterns = ["foo.*", "foo.>", ">", "*.bar", "foo.*.baz", "foo"]
    inboxes = {p: Inbox() for p in patterns}
    for p, inbox in inboxes.items():
        await sub_nc.subscribe(p, cb=inbox.cb)
    await roundtrip(sub_nc)
    subjects = ["foo", "foo.bar", "foo.bar.baz", "x.bar", "foo.x.baz.q", "bar"]
    for s in subjects:
        await pub_nc.publish(s, s.encode())
    expected = {
        "foo.*": ["foo.bar"],
        "foo.>": ["foo.bar", "foo.bar.baz", "foo.x.baz.q"],  # never "foo" itself
        ">": subjects,
        "*.bar": ["foo.bar", "x.bar"],
        "foo.*.baz": ["foo.bar.baz"],
        "foo": ["foo"],
    }
    for p, want in expected.items():
        await inboxes[p].wait_for(len(want))
    await settle(pub_nc, sub_nc)
    for p, want in expected.items():
        got = [m.subject for m in inboxes[p].msgs]
        assert got == want, p
        assert inboxes[p].data == [s.encode() for s in want]


async def test_full_wildcard_does_not_match_its_prefix(connect):
    nc = await connect()
    sub = await nc.subscribe("foo.>")
    await nc.publish("foo", b"prefix only")
    await nc.publish("foo.a", b"one token")
    msg = await sub.next_msg(timeout=2)
    assert (msg.subject, msg.data) == ("foo.a", b"one token")
    await roundtrip(nc)
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)


async def test_utf8_subjects(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    exact = await sub_nc.subscribe("héllo.wörld.日本")
    wild = await sub_nc.subscribe("héllo.*.日本")
    tail = await sub_nc.subscribe("héllo.>")
    await roundtrip(sub_nc)
    await pub_nc.publish("héllo.wörld.日本", "ünïcode ✓".encode())
    await pub_nc.publish("héllo.мир.日本", b"second")
    msg = await exact.next_msg(timeout=2)
    assert msg.subject == "héllo.wörld.日本"
    assert msg.data == "ünïcode ✓".encode()
    assert [(await wild.next_msg(timeout=2)).subject for _ in range(2)] == [
        "héllo.wörld.日本", "héllo.мир.日本",
    ]
    assert [(await tail.next_msg(timeout=2)).data for _ in range(2)] == [
        "ünïcode ✓".encode(), b"second",
    ]


# -- queue groups -------------------------------------------------------------------


async def test_queue_group_delivers_each_message_to_one_member(connect):
    members = [await connect() for _ in range(3)]
    plain_nc = await connect()
    pub_nc = await connect()
    inboxes = [Inbox() for _ in members]
    for nc, inbox in zip(members, inboxes, strict=True):
        await nc.subscribe("work", queue="g", cb=inbox.cb)
        await roundtrip(nc)
    plain = Inbox()
    await plain_nc.subscribe("work", cb=plain.cb)
    await roundtrip(plain_nc)

    total = 300
    for i in range(total):
        await pub_nc.publish("work", b"%d" % i)
    await plain.wait_for(total)
    await settle(pub_nc, *members, plain_nc)

    counts = [len(i.msgs) for i in inboxes]
    seen = [d for inbox in inboxes for d in inbox.data]
    assert sum(counts) == total
    assert len(set(seen)) == total  # no message went to two members
    assert set(seen) == {b"%d" % i for i in range(total)}
    assert all(c > 30 for c in counts), counts
    assert plain.data == [b"%d" % i for i in range(total)]


async def test_two_queue_groups_each_get_every_message(connect):
    nc = await connect()
    pub_nc = await connect()
    groups: dict[str, list[Inbox]] = {"g1": [Inbox(), Inbox()], "g2": [Inbox(), Inbox()]}
    for q, inboxes in groups.items():
        for inbox in inboxes:
            await nc.subscribe("jobs.*", queue=q, cb=inbox.cb)
    await roundtrip(nc)
    total = 100
    for i in range(total):
        await pub_nc.publish(f"jobs.{i % 7}", b"%d" % i)
    await settle(pub_nc, nc)
    for q, inboxes in groups.items():
        seen = [d for inbox in inboxes for d in inbox.data]
        assert sorted(seen) == sorted(b"%d" % i for i in range(total)), q


# -- request / reply ----------------------------------------------------------------


async def test_request_reply(connect):
    responder = await connect()
    requester = await connect()

    async def answer(msg):
        await msg.respond(b"re: " + msg.data)

    await responder.subscribe("svc.echo", cb=answer)
    await roundtrip(responder)
    for i in range(5):
        reply = await requester.request("svc.echo", b"ping %d" % i, timeout=2)
        assert reply.data == b"re: ping %d" % i


async def test_request_reply_with_queue_responders(connect):
    responders = [await connect() for _ in range(2)]
    for n, nc in enumerate(responders):
        async def answer(msg, n=n):
            await msg.respond(b"%d" % n)

        await nc.subscribe("svc.q", queue="workers", cb=answer)
        await roundtrip(nc)
    requester = await connect()
    replies = [(await requester.request("svc.q", b"", timeout=2)).data for _ in range(20)]
    assert set(replies) <= {b"0", b"1"}
    assert len(replies) == 20


async def test_request_timeout(connect):
    silent = await connect()
    requester = await connect()
    got = Inbox()
    await silent.subscribe("svc.silent", cb=got.cb)  # receives but never answers
    await roundtrip(silent)
    start = time.monotonic()
    with pytest.raises(nats.errors.TimeoutError):
        await requester.request("svc.silent", b"anyone?", timeout=0.3)
    assert time.monotonic() - start >= 0.25
    await got.wait_for(1)


async def test_no_responders(connect):
    requester = await connect()
    start = time.monotonic()
    with pytest.raises(nats.errors.NoRespondersError):
        await requester.request("nobody.home", b"hello", timeout=3)
    assert time.monotonic() - start < 1.0


# -- headers ------------------------------------------------------------------------


async def test_headers_round_trip_nats_py(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    sub = await sub_nc.subscribe("hdr")
    await roundtrip(sub_nc)
    headers = {"Trace-Id": "abc-123", "X-Empty-Ish": "v a l", "Content-Type": "text/plain"}
    await pub_nc.publish("hdr", b"body", headers=headers)
    await pub_nc.publish("hdr", b"", headers={"Only": "header"})
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"body"
    assert msg.headers == headers
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b""
    assert msg.headers == {"Only": "header"}


async def test_headers_from_nats_py_arrive_byte_exact(hub, connect, raw_clients):
    raw = await raw_clients(hub.port, QUIET_HEADERS)
    await raw.send(b"SUB hdr.raw 7\r\n")
    assert await raw.sync() == b""
    nc = await connect()
    await nc.publish("hdr.raw", b"payload", headers={"A": "1", "B-Two": "x y"})
    await roundtrip(nc)
    block = b"NATS/1.0\r\nA: 1\r\nB-Two: x y\r\n\r\n"
    expected = b"HMSG hdr.raw 7 %d %d\r\n%bpayload\r\n" % (len(block), len(block) + 7, block)
    assert await raw.sync() == expected


async def test_raw_headers_with_repeated_keys_and_odd_spacing(hub, connect, raw_clients):
    sub = await raw_clients(hub.port, QUIET_HEADERS)
    await sub.send(b"SUB h.* 1\r\n")
    assert await sub.sync() == b""
    py = await connect()
    py_sub = await py.subscribe("h.dup")
    await roundtrip(py)
    pub = await raw_clients(hub.port, QUIET_HEADERS)
    block = (
        b"NATS/1.0\r\n"
        b"X-Dup: first\r\n"
        b"X-Dup:second\r\n"
        b"x-dup:   third  \r\n"
        b"Other :\tvalue\twith tab\r\n"
        b"\r\n"
    )
    body = b"the body\r\nwith CRLF"
    frame = b"HPUB h.dup %d %d\r\n%b%b\r\n" % (len(block), len(block) + len(body), block, body)
    await pub.send(frame)
    assert await pub.sync() == b""
    expected = b"HMSG h.dup 1 %d %d\r\n%b%b\r\n" % (
        len(block), len(block) + len(body), block, body,
    )
    assert await sub.sync() == expected
    msg = await py_sub.next_msg(timeout=2)
    assert msg.data == body
    assert msg.headers is not None and "X-Dup" in msg.headers


async def test_subscriber_without_headers_gets_plain_msg(hub, connect, raw_clients):
    plain = await raw_clients(hub.port, {"verbose": False})
    await plain.send(b"SUB strip 3\r\n")
    assert await plain.sync() == b""
    nc = await connect()
    await nc.publish("strip", b"just the body", headers={"Dropped": "yes"})
    await nc.publish("strip", b"", headers={"Dropped": "too"})
    await roundtrip(nc)
    assert await plain.sync() == b"MSG strip 3 13\r\njust the body\r\nMSG strip 3 0\r\n\r\n"


async def test_hpub_reply_and_headers_to_both_kinds_of_subscriber(hub, raw_clients):
    with_h = await raw_clients(hub.port, QUIET_HEADERS)
    without = await raw_clients(hub.port, QUIET)
    for c in (with_h, without):
        await c.send(b"SUB q.r 9\r\n")
        assert await c.sync() == b""
    pub = await raw_clients(hub.port, QUIET_HEADERS)
    block = b"NATS/1.0\r\nK: v\r\n\r\n"
    await pub.send(b"HPUB q.r inbox.1 %d %d\r\n%bok\r\n" % (len(block), len(block) + 2, block))
    assert await pub.sync() == b""
    assert await with_h.sync() == b"HMSG q.r 9 inbox.1 %d %d\r\n%bok\r\n" % (
        len(block), len(block) + 2, block,
    )
    assert await without.sync() == b"MSG q.r 9 inbox.1 2\r\nok\r\n"


# -- unsubscribe after a number of messages -------------------------------------------


async def test_subscribe_max_msgs(connect):
    nc = await connect()
    pub_nc = await connect()
    inbox = Inbox()
    await nc.subscribe("cap", cb=inbox.cb, max_msgs=3)
    await roundtrip(nc)
    for i in range(10):
        await pub_nc.publish("cap", b"%d" % i)
    await inbox.wait_for(3)
    await settle(pub_nc, nc)
    assert inbox.data == [b"0", b"1", b"2"]


async def test_unsubscribe_with_limit(connect):
    nc = await connect()
    pub_nc = await connect()
    inbox = Inbox()
    sub = await nc.subscribe("cap2", cb=inbox.cb)
    await sub.unsubscribe(limit=3)
    await roundtrip(nc)
    for i in range(10):
        await pub_nc.publish("cap2", b"%d" % i)
    await inbox.wait_for(3)
    await settle(pub_nc, nc)
    assert inbox.data == [b"0", b"1", b"2"]


async def test_unsub_max_enforced_by_server(hub, raw_clients):
    sub = await raw_clients(hub.port, QUIET)
    await sub.send(b"SUB cap3 5\r\nUNSUB 5 3\r\n")
    assert await sub.sync() == b""
    pub = await raw_clients(hub.port, QUIET)
    await pub.send(b"".join(b"PUB cap3 1\r\n%d\r\n" % i for i in range(10)))
    assert await pub.sync() == b""
    assert await sub.sync() == b"".join(b"MSG cap3 5 1\r\n%d\r\n" % i for i in range(3))
    # the subscription is gone: later messages are not delivered either
    await pub.send(b"PUB cap3 1\r\nz\r\n")
    assert await pub.sync() == b""
    assert await sub.sync() == b""


async def test_unsub_max_already_reached_removes_subscription(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await raw.send(b"SUB done 1\r\nPUB done 1\r\na\r\nPUB done 1\r\nb\r\n")
    assert await raw.sync() == b"MSG done 1 1\r\na\r\nMSG done 1 1\r\nb\r\n"
    # two delivered already, a max of 2 (or less) ends the subscription at once
    await raw.send(b"UNSUB 1 2\r\nPUB done 1\r\nc\r\n")
    assert await raw.sync() == b""
    await raw.send(b"SUB done 2\r\nPUB done 1\r\nd\r\nUNSUB 2 1\r\nPUB done 1\r\ne\r\n")
    assert await raw.sync() == b"MSG done 2 1\r\nd\r\n"


# -- flush, drain, echo -----------------------------------------------------------------


async def test_flush_round_trip(connect):
    nc = await connect()
    sub = await nc.subscribe("fl")
    for i in range(50):
        await nc.publish("fl", b"%d" % i)
    await nc.flush(timeout=2)  # PONG came back: the connection is alive and answering
    await nc.flush(timeout=2)  # ordered after every publish above (see roundtrip)
    assert sub.pending_msgs == 50
    assert [(await sub.next_msg(timeout=1)).data for _ in range(50)] == [
        b"%d" % i for i in range(50)
    ]


async def test_drain_delivers_in_flight_then_closes(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    received = []

    async def slow(msg):
        await asyncio.sleep(0.002)
        received.append(msg.data)

    await sub_nc.subscribe("dr", cb=slow)
    await roundtrip(sub_nc)
    total = 200
    for i in range(total):
        await pub_nc.publish("dr", b"%d" % i)
    await roundtrip(pub_nc)
    await sub_nc.drain()
    assert sub_nc.is_closed
    assert received == [b"%d" % i for i in range(total)]


async def test_no_echo(connect):
    quiet = await connect(no_echo=True)
    other = await connect()
    mine = Inbox()
    seen_by_other = Inbox()
    await quiet.subscribe("echo", cb=mine.cb)
    await other.subscribe("echo", cb=seen_by_other.cb)
    await roundtrip(quiet)
    await roundtrip(other)
    await quiet.publish("echo", b"from quiet")
    await roundtrip(quiet)
    await other.publish("echo", b"from other")
    await seen_by_other.wait_for(2)
    await mine.wait_for(1)
    await settle(quiet, other)
    assert mine.data == [b"from other"]
    assert sorted(seen_by_other.data) == [b"from other", b"from quiet"]


async def test_echo_on_by_default(connect):
    nc = await connect()
    sub = await nc.subscribe("echo.self")
    await nc.publish("echo.self", b"me")
    assert (await sub.next_msg(timeout=2)).data == b"me"


# -- max payload ------------------------------------------------------------------------


async def test_max_payload_one_mebibyte(connect):
    sub_nc = await connect()
    pub_nc = await connect()
    assert pub_nc.max_payload == 1048576
    sub = await sub_nc.subscribe("big")
    await roundtrip(sub_nc)
    payload = bytes(i % 251 for i in range(1048576))
    await pub_nc.publish("big", payload)
    msg = await sub.next_msg(timeout=5)
    assert msg.data == payload
    with pytest.raises(nats.errors.MaxPayloadError):
        await pub_nc.publish("big", payload + b"x")


async def test_max_payload_violation_from_raw_socket(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await raw.send(b"PUB a 1048577\r\n")
    assert await raw.until(b"\r\n") == b"-ERR 'Maximum Payload Violation'\r\n"
    assert await raw.closed()


async def test_max_payload_from_config(launch, tmp_path, raw_clients):
    conf = tmp_path / "small.conf"
    conf.write_text("max_payload: 1024\n")
    small = launch("-c", str(conf), name="small")
    raw = await raw_clients(small.port)
    assert raw.info["max_payload"] == 1024
    nc = await nats.connect(small.url, allow_reconnect=False, connect_timeout=2)
    try:
        assert nc.max_payload == 1024
        sub = await nc.subscribe("p")
        await nc.publish("p", b"x" * 1024)
        assert (await sub.next_msg(timeout=2)).data == b"x" * 1024
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish("p", b"x" * 1025)
    finally:
        await nc.close()
    await raw.send(b'CONNECT {"verbose":false}\r\nPUB p 1025\r\n')
    assert await raw.until(b"\r\n") == b"-ERR 'Maximum Payload Violation'\r\n"
    assert await raw.closed()


# -- many subscriptions -----------------------------------------------------------------


async def test_ten_thousand_subscriptions(connect):
    nc = await connect()
    pub_nc = await connect()
    count = 10_000
    subs = [await nc.subscribe(f"s.{i}") for i in range(count)]
    star = await nc.subscribe("s.*")
    tail = await nc.subscribe("s.>")
    await roundtrip(nc, 10)
    sample = list(range(0, count, 97)) + [count - 1]
    for i in sample:
        await pub_nc.publish(f"s.{i}", b"%d" % i)
    await roundtrip(pub_nc)
    for i in sample:
        msg = await subs[i].next_msg(timeout=2)
        assert (msg.subject, msg.data) == (f"s.{i}", b"%d" % i)
    assert [(await star.next_msg(timeout=2)).data for _ in sample] == [b"%d" % i for i in sample]
    assert [(await tail.next_msg(timeout=2)).data for _ in sample] == [b"%d" % i for i in sample]
    await roundtrip(nc)
    assert all(s.pending_msgs == 0 for s in subs)

    for s in subs:
        await s.unsubscribe()
    await roundtrip(nc, 10)
    for i in sample[:10]:
        await pub_nc.publish(f"s.{i}", b"after")
    await roundtrip(pub_nc)
    assert [(await star.next_msg(timeout=2)).subject for _ in range(10)] == [
        f"s.{i}" for i in sample[:10]
    ]
    await roundtrip(nc)
    assert tail.pending_msgs == 10
    assert all(s.pending_msgs == 0 for s in subs)


# -- reconnect --------------------------------------------------------------------------


async def test_reconnect_after_restart_on_same_port(hub, connect):
    reconnected = asyncio.Event()
    disconnected = asyncio.Event()

    async def on_reconnect():
        reconnected.set()

    async def on_disconnect():
        disconnected.set()

    nc = await connect(
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        reconnected_cb=on_reconnect,
        disconnected_cb=on_disconnect,
    )
    inbox = Inbox()
    await nc.subscribe("after.restart", cb=inbox.cb)
    await roundtrip(nc)
    port = hub.port

    await asyncio.to_thread(hub.stop)
    await asyncio.wait_for(disconnected.wait(), 5)
    await asyncio.to_thread(hub.restart)
    assert hub.port == port
    await asyncio.wait_for(reconnected.wait(), 10)
    assert nc.is_connected
    await roundtrip(nc, 2)  # the replayed SUB has been processed

    other = await connect(hub.url)
    await other.publish("after.restart", b"from a new client")
    await nc.publish("after.restart", b"from the reconnected client")
    await roundtrip(other)
    await roundtrip(nc)
    await inbox.wait_for(2)
    assert sorted(inbox.data) == [b"from a new client", b"from the reconnected client"]


# -- raw protocol -------------------------------------------------------------------------


async def test_info_fields(hub, raw_clients):
    a = await raw_clients(hub.port)
    b = await raw_clients(hub.port)
    info = a.info
    assert a.info_line.startswith(b"INFO {") and a.info_line.endswith(b"} \r\n")
    assert isinstance(info["server_id"], str) and len(info["server_id"]) == 56
    assert info["server_id"].startswith("N")
    assert isinstance(info["server_name"], str) and info["server_name"]
    assert info["version"].startswith("2.12.")
    assert info["proto"] == 1
    assert isinstance(info["go"], str) and info["go"]
    assert info["host"] == "127.0.0.1"
    assert info["port"] == hub.port
    assert info["headers"] is True
    assert info["max_payload"] == 1048576
    assert isinstance(info["client_id"], int)
    assert info["client_ip"] == "127.0.0.1"
    assert b.info["client_id"] != info["client_id"]
    assert b.info["server_id"] == info["server_id"]
    assert "auth_required" not in info and "tls_required" not in info


async def test_verbose_acknowledges_every_op(hub, raw_clients):
    raw = await raw_clients(hub.port)
    await raw.send(b'CONNECT {"verbose":true,"pedantic":false}\r\n')
    assert await raw.sync() == b"+OK\r\n"
    await raw.send(b"SUB v 1\r\n")
    assert await raw.sync() == b"+OK\r\n"
    await raw.send(b"PUB other 2\r\nhi\r\n")
    assert await raw.sync() == b"+OK\r\n"
    await raw.send(b"UNSUB 1\r\n")
    assert await raw.sync() == b"+OK\r\n"


async def test_verbose_ok_comes_before_own_message(hub, raw_clients):
    raw = await raw_clients(hub.port, {"verbose": True})
    await raw.send(b"SUB v 1\r\n")
    assert await raw.sync() == b"+OK\r\n+OK\r\n"
    await raw.send(b"PUB v 2\r\nhi\r\n")
    assert await raw.sync() == b"+OK\r\nMSG v 1 2\r\nhi\r\n"


async def test_pedantic_wildcard_publish(hub, raw_clients):
    raw = await raw_clients(hub.port, {"verbose": False, "pedantic": True})
    await raw.send(b"SUB a.* 1\r\n")
    assert await raw.sync() == b""
    await raw.send(b"PUB a.* 2\r\nhi\r\n")
    assert await raw.sync() == b"-ERR 'Invalid Publish Subject'\r\nMSG a.* 1 2\r\nhi\r\n"
    assert not raw.eof


async def test_invalid_publish_subject_without_pedantic_is_dropped_silently(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await raw.send(b"SUB > 1\r\nPUB a..b 2\r\nhi\r\nPUB .a 2\r\nhi\r\nPUB ok 2\r\nhi\r\n")
    assert await raw.sync() == b"MSG ok 1 2\r\nhi\r\n"
    assert not raw.eof


async def test_sub_invalid_subject_keeps_connection(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    for bad in (b"a..b", b"foo.>.bar", b".a", b"a."):
        await raw.send(b"SUB " + bad + b" 1\r\n")
        assert await raw.sync() == b"-ERR 'Invalid Subject'\r\n", bad
    await raw.send(b"SUB ok 2\r\nPUB ok 1\r\nx\r\n")
    assert await raw.sync() == b"MSG ok 2 1\r\nx\r\n"
    assert not raw.eof


async def _expect_fatal(raw: RawClient, data: bytes, err: bytes) -> None:
    await raw.send(data)
    assert await raw.until(b"\r\n") == b"-ERR '" + err + b"'\r\n"
    assert await raw.closed(), "connection should be closed after the error"


async def test_unknown_operation_closes(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await _expect_fatal(raw, b"FOO bar\r\n", b"Unknown Protocol Operation")


async def test_control_line_too_long_closes(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await _expect_fatal(raw, b"SUB " + b"a" * 5000 + b" 1\r\n", b"maximum control line exceeded")


async def test_protocol_two_rejected(hub, raw_clients):
    raw = await raw_clients(hub.port)
    await _expect_fatal(
        raw, b'CONNECT {"verbose":false,"protocol":2}\r\n', b"invalid client protocol"
    )


async def test_no_responders_requires_headers(hub, raw_clients):
    raw = await raw_clients(hub.port)
    await _expect_fatal(
        raw,
        b'CONNECT {"verbose":false,"no_responders":true}\r\n',
        b"no responders requires headers support",
    )


async def test_no_responders_status_message(hub, raw_clients):
    raw = await raw_clients(
        hub.port, {"verbose": False, "headers": True, "no_responders": True}
    )
    await raw.send(b"SUB _INBOX.x 9\r\nPUB nobody _INBOX.x 2\r\nhi\r\n")
    block = b"NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n"
    assert await raw.sync() == b"HMSG _INBOX.x 9 %d %d\r\n%b\r\n" % (
        len(block), len(block), block,
    )


async def test_reserved_reply_subject(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await raw.send(b"SUB a 1\r\nPUB a $JS.ACK.x 2\r\nhi\r\n")
    assert await raw.sync() == (
        b"-ERR 'Permissions Violation for Publish with Reply of \"$JS.ACK.x\"'\r\n"
    )
    assert not raw.eof


async def test_sys_queue_rejected(hub, raw_clients):
    raw = await raw_clients(hub.port, QUIET)
    await raw.send(b"SUB a _sys_ 1\r\n")
    assert await raw.sync() == (
        b"-ERR 'Permissions Violation for Subscription to \"a\" using queue \"_sys_\"'\r\n"
    )
    await raw.send(b"PUB a 1\r\nx\r\n")
    assert await raw.sync() == b""
    assert not raw.eof


async def test_split_writes(hub, raw_clients):
    raw = await raw_clients(hub.port)
    frame = (
        b'CONNECT {"verbose":false,"headers":true}\r\n'
        b"SUB split 1\r\n"
        b"PUB split 5\r\nhello\r\n"
        b"HPUB split 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    )
    for i in range(len(frame)):
        await raw.send(frame[i : i + 1])
    assert await raw.sync() == (
        b"MSG split 1 5\r\nhello\r\nHMSG split 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    )


async def test_queue_counts_over_raw_sockets(hub, raw_clients):
    members = [await raw_clients(hub.port, QUIET) for _ in range(2)]
    for n, m in enumerate(members):
        await m.send(b"SUB rq grp %d\r\n" % n)
        assert await m.sync() == b""
    pub = await raw_clients(hub.port, QUIET)
    await pub.send(b"PUB rq 1\r\nx\r\n" * 100)
    assert await pub.sync() == b""
    counts = collections.Counter()
    for n, m in enumerate(members):
        counts[n] = (await m.sync()).count(b"MSG rq ")
    assert sum(counts.values()) == 100
