"""Accounts as isolated namespaces: isolation, exports/imports, and per-account limits.

Each test runs against Jetport and the real nats-server (``launch``) with the same
config text.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from servers import Inbox, RawClient

pytestmark = pytest.mark.timeout(60)

QUIET = {"verbose": False, "pedantic": False}


@pytest.fixture
async def connect():
    """``await connect(server, user)``: a nats-py client (password p), closed afterwards."""
    clients = []

    async def make(server, user: str, password: str = "p"):
        nc = await nats.connect(server.url, user=user, password=password,
                                allow_reconnect=False, connect_timeout=2)
        clients.append(nc)
        return nc

    yield make
    for nc in clients:
        if not nc.is_closed:
            await nc.close()


async def settle(*clients) -> None:
    for nc in clients:
        await nc.flush()
        await nc.flush()
    await asyncio.sleep(0.1)


async def api(nc, subject: str, body: dict | None = None) -> dict:
    """A JetStream API request answered with JSON."""
    data = json.dumps(body).encode() if body is not None else b""
    msg = await nc.request(subject, data, timeout=2)
    return json.loads(msg.data)


def store_dir(tmp_path: Path, launch) -> Path:
    return tmp_path / f"js-{launch.target}"


# -- isolation ------------------------------------------------------------------------------

TWO_ACCOUNTS = """
accounts {
  A { users: [{user: a, password: p}] }
  B { users: [{user: b, password: p}] }
}
"""


@pytest.mark.differential
async def test_accounts_are_isolated(launch, connect):
    server = launch.conf(TWO_ACCOUNTS)
    a, b = await connect(server, "a"), await connect(server, "b")
    seen_a, seen_b = Inbox(), Inbox()
    await a.subscribe(">", cb=seen_a.cb)
    await b.subscribe(">", cb=seen_b.cb)
    await settle(a, b)
    await a.publish("shared.subject", b"from a")
    await b.publish("shared.subject", b"from b")
    await settle(a, b)
    assert seen_a.data == [b"from a"]
    assert seen_b.data == [b"from b"]


@pytest.mark.differential
async def test_requests_do_not_cross_accounts(launch, connect):
    server = launch.conf(TWO_ACCOUNTS)
    a, b = await connect(server, "a"), await connect(server, "b")

    async def answer(msg) -> None:
        await msg.respond(b"a answers")

    await a.subscribe("service", cb=answer)
    await settle(a)
    assert (await a.request("service", b"", timeout=2)).data == b"a answers"
    with pytest.raises(nats.errors.NoRespondersError):
        await b.request("service", b"", timeout=2)


JS_ACCOUNTS = """
jetstream {{ store_dir: "{store}" }}
accounts {{
  A {{ users: [{{user: a, password: p}}], jetstream: enabled }}
  B {{ users: [{{user: b, password: p}}], jetstream: enabled }}
}}
"""


@pytest.mark.differential
async def test_jetstream_is_isolated_between_accounts(launch, connect, tmp_path: Path):
    server = launch.conf(JS_ACCOUNTS.format(store=store_dir(tmp_path, launch)))
    b = await connect(server, "b")
    seen_b = Inbox()
    watch = await b.subscribe(">", cb=seen_b.cb)
    await settle(b)

    a = await connect(server, "a")
    ja = a.jetstream()
    await ja.add_stream(name="S", subjects=["s.>"], allow_direct=True)
    await ja.publish("s.one", b"one")
    kv = await ja.create_key_value(bucket="KVA")
    await kv.put("k", b"v")
    assert (await ja.get_msg("S", 1)).data == b"one"
    await settle(a, b)
    assert seen_b.msgs == []
    # B's own catch-all would answer B's requests below; drop it.
    await watch.unsubscribe()

    listed = await api(b, "$JS.API.STREAM.LIST")
    assert listed["total"] == 0 and listed["streams"] == []
    names = await api(b, "$JS.API.STREAM.NAMES")
    assert names["total"] == 0 and not names["streams"]

    not_found = {"code": 404, "err_code": 10059, "description": "stream not found"}
    assert (await api(b, "$JS.API.STREAM.INFO.S"))["error"] == not_found
    assert (await api(b, "$JS.API.STREAM.MSG.GET.S", {"seq": 1}))["error"] == not_found
    create = await api(b, "$JS.API.CONSUMER.CREATE.S",
                       {"stream_name": "S", "config": {"ack_policy": "explicit"}})
    assert create["error"] == not_found
    with pytest.raises(nats.errors.NoRespondersError):
        await b.request("$JS.API.DIRECT.GET.S", b'{"seq":1}', timeout=2)
    with pytest.raises(nats.errors.NoRespondersError):
        await b.request("$JS.API.DIRECT.GET.KV_KVA.$KV.KVA.k", b"", timeout=2)
    with pytest.raises(nats.js.errors.BucketNotFoundError):
        await b.jetstream().key_value("KVA")

    # B may own a stream of the same name; neither sees the other's data.
    jb = b.jetstream()
    await jb.add_stream(name="S", subjects=["s.>"])
    assert (await jb.stream_info("S")).state.messages == 0
    assert (await ja.stream_info("S")).state.messages == 1


# -- exports and imports ----------------------------------------------------------------------

EXPORTS = """
accounts {
  A {
    users: [{user: a, password: p}]
    exports: [
      {stream: "puba.>"}
      {service: "q.>"}
      {service: "qs.>", response_type: stream}
    ]
  }
  B {
    users: [{user: b, password: p}]
    imports: [
      {stream: {account: A, subject: "puba.>"}, prefix: from_a}
      {service: {account: A, subject: "q.b"}, to: QB}
      {service: {account: A, subject: "q.same"}}
      {service: {account: A, subject: "qs.x"}, to: QS}
    ]
  }
  C { users: [{user: c, password: p}] }
}
"""


@pytest.mark.differential
async def test_stream_import_with_prefix(launch, connect):
    server = launch.conf(EXPORTS)
    a, b, c = [await connect(server, u) for u in "abc"]
    prefixed, everything_b, everything_c = Inbox(), Inbox(), Inbox()
    await b.subscribe("from_a.puba.x", cb=prefixed.cb)
    await b.subscribe(">", cb=everything_b.cb)
    await c.subscribe(">", cb=everything_c.cb)
    await settle(b, c)
    await a.publish("puba.x", b"exported")
    await a.publish("private.x", b"not exported")
    await settle(a, b, c)
    await prefixed.wait_for(1)
    assert [(m.subject, m.data) for m in prefixed.msgs] == [("from_a.puba.x", b"exported")]
    assert [(m.subject, m.data) for m in everything_b.msgs] == [("from_a.puba.x", b"exported")]
    assert everything_c.msgs == []


@pytest.mark.differential
async def test_private_export_cannot_be_imported_by_others(launch):
    text = """
        accounts {
          A { users: [{user: a, password: p}], exports: [{stream: "priv.>", accounts: [B]}] }
          B { users: [{user: b, password: p}] }
          C {
            users: [{user: c, password: p}]
            imports: [{stream: {account: A, subject: "priv.>"}}]
          }
        }
    """
    with pytest.raises(RuntimeError) as refused:
        launch.conf(text)
    assert 'stream import "priv.>"' in str(refused.value)
    assert "not authorized" in str(refused.value)


@pytest.mark.differential
async def test_private_export_for_named_account(launch, connect):
    server = launch.conf("""
        accounts {
          A { users: [{user: a, password: p}], exports: [{stream: "priv.>", accounts: [B]}] }
          B {
            users: [{user: b, password: p}]
            imports: [{stream: {account: A, subject: "priv.>"}}]
          }
        }
    """)
    a, b = await connect(server, "a"), await connect(server, "b")
    inbox = Inbox()
    await b.subscribe("priv.>", cb=inbox.cb)
    await settle(b)
    await a.publish("priv.x", b"for b")
    assert (await inbox.wait_for(1))[0].data == b"for b"


async def _responder(nc, subject: str, replies: int) -> list[str]:
    """Answer each request on ``subject`` ``replies`` times; returns the subjects seen."""
    seen: list[str] = []

    async def handle(msg) -> None:
        seen.append(msg.subject)
        for i in range(replies):
            await msg.respond(f"r{i + 1}:{msg.subject}".encode())

    await nc.subscribe(subject, cb=handle)
    await settle(nc)
    return seen


@pytest.mark.differential
async def test_service_import_with_to(launch, connect):
    server = launch.conf(EXPORTS)
    a, b = await connect(server, "a"), await connect(server, "b")
    seen = await _responder(a, "q.>", 1)
    assert (await b.request("QB", b"", timeout=2)).data == b"r1:q.b"
    assert (await b.request("q.same", b"", timeout=2)).data == b"r1:q.same"
    assert seen == ["q.b", "q.same"]
    # Only the imported subjects cross: B's own q.b has no responder.
    with pytest.raises(nats.errors.NoRespondersError):
        await b.request("q.b", b"", timeout=2)
    c = await connect(server, "c")
    with pytest.raises(nats.errors.NoRespondersError):
        await c.request("QB", b"", timeout=2)


@pytest.mark.differential
async def test_service_response_types(launch, connect):
    server = launch.conf(EXPORTS)
    a, b = await connect(server, "a"), await connect(server, "b")
    await _responder(a, "q.>", 2)
    await _responder(a, "qs.>", 2)
    # singleton lets one response through to the importer; stream lets them all through.
    for subject, expected in [("QB", [b"r1:q.b"]), ("QS", [b"r1:qs.x", b"r2:qs.x"])]:
        inbox = Inbox()
        reply = b.new_inbox()
        await b.subscribe(reply, cb=inbox.cb)
        await settle(b)
        await b.publish(subject, b"", reply=reply)
        await inbox.wait_for(1)
        await asyncio.sleep(0.3)
        assert inbox.data == expected, subject


@pytest.mark.differential
async def test_service_reply_subject_is_rewritten(launch, connect):
    server = launch.conf(EXPORTS)
    a, b = await connect(server, "a"), await connect(server, "b")
    replies: list[str] = []

    async def handle(msg) -> None:
        replies.append(msg.reply)
        await msg.respond(b"ok")

    await a.subscribe("q.>", cb=handle)
    await settle(a)
    await b.request("QB", b"", timeout=2)
    assert replies[0].startswith("_R_.")


# -- per-account connection limits --------------------------------------------------------------

LIMITS = """
accounts {
  L {
    users: [{user: l, password: p}, {user: l2, password: p}]
    limits: {max_connections: 1, max_subscriptions: 2, max_payload: 100}
  }
  O { users: [{user: o, password: p}] }
}
"""


async def _login(port: int, user: str, **options) -> RawClient:
    return await RawClient.open(port, {**QUIET, "user": user, "pass": "p", **options})


@pytest.mark.differential
async def test_account_max_connections(launch):
    server = launch.conf(LIMITS)
    first = await _login(server.port, "l")
    assert await first.sync() == b""
    second = await _login(server.port, "l2")
    await second.send(b"PING\r\n")
    assert await second.until(b"\r\n") == b"-ERR 'maximum account active connections exceeded'\r\n"
    assert await second.closed()
    other = await _login(server.port, "o")
    assert await other.sync() == b""
    await first.close()
    await asyncio.sleep(0.3)
    third = await _login(server.port, "l2")
    assert await third.sync() == b""
    for client in (second, other, third):
        await client.close()


@pytest.mark.differential
async def test_account_max_subscriptions(launch):
    server = launch.conf(LIMITS)
    client = await _login(server.port, "l")
    await client.send(b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPUB c 1\r\nx\r\n")
    assert await client.sync() == b"-ERR 'maximum subscriptions exceeded'\r\n"
    assert not client.eof
    await client.send(b"UNSUB 1\r\nSUB d 4\r\nPUB d 1\r\ny\r\n")
    assert await client.sync() == b"MSG d 4 1\r\ny\r\n"
    await client.close()


@pytest.mark.differential
async def test_account_max_payload(launch):
    server = launch.conf(LIMITS)
    client = await _login(server.port, "l")
    # INFO goes out before the client says who it is: it shows the server's limit.
    assert client.info["max_payload"] == 1048576
    await client.send(b"SUB a 1\r\nPUB a 100\r\n" + b"x" * 100 + b"\r\n")
    assert await client.sync() == b"MSG a 1 100\r\n" + b"x" * 100 + b"\r\n"
    await client.send(b"PUB a 101\r\n" + b"x" * 101 + b"\r\n")
    assert await client.until(b"\r\n") == b"-ERR 'Maximum Payload Violation'\r\n"
    assert await client.closed()
    await client.close()
    other = await _login(server.port, "o")
    await other.send(b"SUB a 1\r\nPUB a 101\r\n" + b"x" * 101 + b"\r\n")
    assert (await other.sync()).startswith(b"MSG a 1 101\r\n")
    await other.close()


# -- JetStream account limits ------------------------------------------------------------

JS_LIMITS = """
jetstream {{ store_dir: "{store}" }}
accounts {{
  L {{
    users: [{{user: l, password: p}}]
    jetstream: {{max_mem: 1M, max_file: 2M, max_streams: 2, max_consumers: 3}}
  }}
  N {{ users: [{{user: n, password: p}}] }}
}}
"""


@pytest.mark.differential
async def test_jetstream_account_limits(launch, connect, tmp_path: Path):
    server = launch.conf(JS_LIMITS.format(store=store_dir(tmp_path, launch)))
    nc = await connect(server, "l")
    info = await api(nc, "$JS.API.INFO")
    assert info["type"] == "io.nats.jetstream.api.v1.account_info_response"
    limits = info["limits"]
    # Config sizes with a bare M suffix are decimal.
    assert limits["max_memory"] == 1_000_000
    assert limits["max_storage"] == 2_000_000
    assert limits["max_streams"] == 2
    assert limits["max_consumers"] == 3

    def stream(name: str, storage: str = "memory", **extra) -> dict:
        return {"name": name, "subjects": [name.lower()], "storage": storage, **extra}

    for name in ("T0", "T1"):
        created = await api(nc, f"$JS.API.STREAM.CREATE.{name}", stream(name))
        assert "error" not in created, created
    third = await api(nc, "$JS.API.STREAM.CREATE.T2", stream("T2"))
    assert third["error"] == {"code": 400, "err_code": 10027,
                              "description": "maximum number of streams reached"}
    assert (await api(nc, "$JS.API.STREAM.DELETE.T1"))["success"] is True

    big_file = await api(nc, "$JS.API.STREAM.CREATE.BIG",
                         stream("BIG", "file", max_bytes=3 * 1024 * 1024))
    assert big_file["error"] == {"code": 500, "err_code": 10047,
                                 "description": "insufficient storage resources available"}
    big_mem = await api(nc, "$JS.API.STREAM.CREATE.BIGM",
                        stream("BIGM", "memory", max_bytes=2 * 1024 * 1024))
    assert big_mem["error"] == {"code": 500, "err_code": 10028,
                                "description": "insufficient memory resources available"}

    for i in range(3):
        config = {"durable_name": f"C{i}", "ack_policy": "explicit"}
        made = await api(nc, f"$JS.API.CONSUMER.CREATE.T0.C{i}",
                         {"stream_name": "T0", "config": config})
        assert "error" not in made, made
    fourth = await api(nc, "$JS.API.CONSUMER.CREATE.T0.C3",
                       {"stream_name": "T0", "config": {"durable_name": "C3",
                                                         "ack_policy": "explicit"}})
    assert fourth["error"] == {"code": 400, "err_code": 10026,
                               "description": "maximum consumers limit reached"}

    without = await connect(server, "n")
    denied = await api(without, "$JS.API.INFO")
    assert denied["error"] == {"code": 503, "err_code": 10039,
                               "description": "JetStream not enabled for account"}


# -- the account a connection is bound to ------------------------------------------------------


@pytest.mark.differential
async def test_connect_info_names_the_account(launch):
    """Protocol 1 clients get a second INFO after their first PONG naming their account."""
    server = launch.conf(TWO_ACCOUNTS)
    for user, account in [("a", "A"), ("b", "B")]:
        client = await _login(server.port, user, protocol=1)
        await client.send(b"PING\r\n")
        assert await client.until(b"\r\n") == b"PONG\r\n"
        line = await client.until(b"\r\n", timeout=2)
        assert line.startswith(b"INFO ")
        info = json.loads(line[5:])
        assert info["connect_info"] is True
        assert info["remote_account"] == account
        assert info["server_id"] == client.info["server_id"]
        await client.close()
    legacy = await _login(server.port, "a", protocol=0)
    assert await legacy.sync() == b""
    assert await legacy.collect(0.3) == b""
    await legacy.close()
