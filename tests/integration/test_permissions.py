"""Publish/subscribe permissions, allow_responses and default_permissions, nats-server style.

Each test runs against Jetport and the real nats-server (``launch``). Violations are
reported as ``-ERR`` lines while the connection stays open, so the exact bytes are checked
with raw sockets.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest
from servers import RawClient

pytestmark = pytest.mark.timeout(60)

QUIET = {"verbose": False, "pedantic": False}


def pub_violation(subject: str) -> bytes:
    return f"-ERR 'Permissions Violation for Publish to \"{subject}\"'\r\n".encode()


def sub_violation(subject: str, queue: str | None = None) -> bytes:
    text = f"Permissions Violation for Subscription to \"{subject}\""
    if queue is not None:
        text += f" using queue \"{queue}\""
    return f"-ERR '{text}'\r\n".encode()


@pytest.fixture
async def login(raw_clients):
    """``await login(server, user)``: a raw client authenticated as ``user`` (password p)."""

    async def open_as(server, user: str, password: str = "p") -> RawClient:
        client = await raw_clients(server.port, {**QUIET, "user": user, "pass": password})
        assert await client.sync() == b""
        return client

    return open_as


async def alive(client: RawClient) -> None:
    """The connection survived: PING still gets its PONG."""
    await client.send(b"PING\r\n")
    assert await client.until(b"PONG\r\n") == b"PONG\r\n"
    assert not client.eof


# -- publish ----------------------------------------------------------------------------

PUB_CONF = """
authorization {
  users: [
    {user: w, password: p, permissions: {publish: {allow: ["foo.*", "bar.>", "baz"],
                                                     deny: ["foo.secret", "bar.hidden.>"]}}}
    {user: d, password: p, permissions: {publish: {deny: ["nope.>", "nope"]}}}
    {user: l, password: p, permissions: {publish: ["only.this", "and.*"]}}
    {user: s, password: p, permissions: {publish: "single"}}
    {user: spy, password: p}
  ]
}
"""


@pytest.mark.differential
async def test_publish_allow_deny_wildcards(launch, login):
    server = launch.conf(PUB_CONF)
    spy = await login(server, "spy")
    await spy.send(b"SUB > 1\r\n")
    assert await spy.sync() == b""
    w = await login(server, "w")
    cases = {
        "foo.a": True, "foo.secret": False, "foo.a.b": False, "foo": False,
        "bar.x": True, "bar.x.y": True, "bar.hidden": True, "bar.hidden.x": False,
        "bar": False, "baz": True, "baz.x": False, "other": False,
    }
    for subject, allowed in cases.items():
        await w.send(f"PUB {subject} 1\r\nx\r\n".encode())
        out = await w.sync()
        assert out == (b"" if allowed else pub_violation(subject)), subject
    await alive(w)
    seen = (await spy.sync()).split(b"\r\n")
    delivered = [line.split()[1].decode() for line in seen if line.startswith(b"MSG ")]
    assert delivered == [s for s, ok in cases.items() if ok]


@pytest.mark.differential
async def test_publish_deny_only_and_list_forms(launch, login):
    server = launch.conf(PUB_CONF)
    d = await login(server, "d")
    await d.send(b"PUB nope 1\r\nx\r\nPUB nope.a.b 1\r\nx\r\n"
                 b"PUB yes 1\r\nx\r\nPUB nope2 1\r\nx\r\n")
    assert await d.sync() == pub_violation("nope") + pub_violation("nope.a.b")
    plain = await login(server, "l")
    await plain.send(b"PUB only.this 1\r\nx\r\nPUB and.x 1\r\nx\r\nPUB only.that 1\r\nx\r\n")
    assert await plain.sync() == pub_violation("only.that")
    single = await login(server, "s")
    await single.send(b"PUB single 1\r\nx\r\nPUB double 1\r\nx\r\n")
    assert await single.sync() == pub_violation("double")
    await alive(single)


@pytest.mark.differential
async def test_violation_keeps_connection_and_traffic_flowing(launch, login):
    server = launch.conf("""
        authorization { users: [
          {user: u, password: p, permissions: {publish: "ok", subscribe: "ok"}}
        ] }
    """)
    u = await login(server, "u")
    await u.send(b"SUB ok 1\r\nPUB denied 2\r\nno\r\nSUB denied 2\r\nPUB ok 3\r\nyes\r\n")
    out = await u.sync()
    assert out == pub_violation("denied") + sub_violation("denied") + b"MSG ok 1 3\r\nyes\r\n"
    await alive(u)


# -- subscribe --------------------------------------------------------------------------


@pytest.mark.differential
async def test_subscribe_allow_deny_and_queues(launch, login):
    server = launch.conf("""
        authorization { users: [
          {user: u, password: p, permissions: {subscribe: {
              allow: ["foo.*", "jobs v1", "any.>"], deny: ["foo.no"]}}}
          {user: pub, password: p}
        ] }
    """)
    u = await login(server, "u")
    cases = [
        (b"SUB foo.a 1", b""),
        (b"SUB foo.no 2", sub_violation("foo.no")),
        (b"SUB foo.a.b 3", sub_violation("foo.a.b")),
        (b"SUB jobs 4", sub_violation("jobs")),
        (b"SUB jobs v2 5", sub_violation("jobs", "v2")),
        (b"SUB jobs v1 6", b""),
        (b"SUB foo.a grp 7", b""),
        (b"SUB any.x.y 8", b""),
        (b"SUB other 9", sub_violation("other")),
    ]
    for line, expected in cases:
        await u.send(line + b"\r\n")
        assert await u.sync() == expected, line
    await alive(u)
    pub = await login(server, "pub")
    await pub.send(b"PUB foo.no 1\r\nn\r\nPUB jobs 1\r\nj\r\n"
                   b"PUB other 1\r\no\r\nPUB foo.a 1\r\na\r\n")
    assert await pub.sync() == b""
    got = await u.sync()
    assert got.count(b"MSG ") == 3
    assert b"MSG jobs 6 1\r\nj\r\n" in got
    assert b"MSG foo.a 1 1\r\na\r\n" in got and b"MSG foo.a 7 1\r\na\r\n" in got


@pytest.mark.differential
async def test_wildcard_subscriptions_against_allow_list(launch, login):
    """A subscription's subject is matched against the allow list token by token, its
    wildcards taken literally: an allowed ``*`` covers a ``>`` token too. Deny entries
    inside an allowed wildcard subscription are filtered at delivery instead."""
    server = launch.conf("""
        authorization { users: [
          {user: u, password: p, permissions: {subscribe: {allow: ["foo.*", "bar.>"],
                                                           deny: ["foo.no"]}}}
          {user: pub, password: p}
        ] }
    """)
    u = await login(server, "u")
    allowed = ["foo.>", "foo.bar", "foo.*", "bar.*", "bar.>", "bar.x.y"]
    denied = ["foo.a.b", ">", "*", "*.bar", "*.*", "bar", "foo.no"]
    for subject in allowed + denied:
        await u.send(f"SUB {subject} 9\r\nUNSUB 9\r\n".encode())
        expected = b"" if subject in allowed else sub_violation(subject)
        assert await u.sync() == expected, subject
    await u.send(b"SUB foo.> 1\r\n")
    assert await u.sync() == b""
    pub = await login(server, "pub")
    await pub.send(b"PUB foo.a.b 1\r\nx\r\nPUB foo.no 1\r\ny\r\nPUB foo.ok 1\r\nz\r\n")
    assert await pub.sync() == b""
    assert await u.sync() == b"MSG foo.a.b 1 1\r\nx\r\nMSG foo.ok 1 1\r\nz\r\n"


# -- a permission matrix --------------------------------------------------------------------

MATRIX_CONF = """
authorization { users: [
  {user: reader, password: p, permissions: {publish: {deny: ">"}, subscribe: ["data.>"]}}
  {user: writer, password: p, permissions: {publish: ["data.>"], subscribe: {deny: ">"}}}
  {user: ops, password: p, permissions: {
      publish: {allow: ">", deny: ["data.secret.>"]},
      subscribe: {allow: ">", deny: ["data.secret.>"]}}}
  {user: root, password: p}
] }
"""

MATRIX = [
    # user, operation, subject, allowed
    ("reader", "pub", "data.x", False),
    ("reader", "sub", "data.x", True),
    ("reader", "sub", "data.>", True),
    ("reader", "sub", "other", False),
    ("writer", "pub", "data.x", True),
    ("writer", "pub", "data.secret.k", True),
    ("writer", "pub", "other", False),
    ("writer", "sub", "data.x", False),
    ("ops", "pub", "data.x", True),
    ("ops", "pub", "data.secret.k", False),
    ("ops", "sub", "data.secret.k", False),
    ("ops", "sub", "anything.else", True),
    ("root", "pub", "data.secret.k", True),
    ("root", "sub", ">", True),
]


@pytest.mark.differential
async def test_permission_matrix(launch, login):
    server = launch.conf(MATRIX_CONF)
    clients = {user: await login(server, user) for user in {row[0] for row in MATRIX}}
    for sid, (user, op, subject, allowed) in enumerate(MATRIX, start=1):
        client = clients[user]
        if op == "pub":
            await client.send(f"PUB {subject} 2\r\nhi\r\n".encode())
            expected = b"" if allowed else pub_violation(subject)
        else:
            await client.send(f"SUB {subject} {sid}\r\nUNSUB {sid}\r\n".encode())
            expected = b"" if allowed else sub_violation(subject)
        assert await client.sync() == expected, (user, op, subject)
    for client in clients.values():
        await alive(client)


@pytest.mark.differential
async def test_permission_matrix_with_nats_py(launch):
    """The same rules seen by a library client: denied publishes never arrive."""
    server = launch.conf(MATRIX_CONF)
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    reader = await nats.connect(server.url, user="reader", password="p", error_cb=on_error)
    writer = await nats.connect(server.url, user="writer", password="p", error_cb=on_error)
    try:
        sub = await reader.subscribe("data.>")
        await reader.flush()
        await writer.publish("data.one", b"1")
        await writer.publish("elsewhere", b"2")
        await writer.publish("data.two", b"3")
        await writer.flush()
        assert (await sub.next_msg(timeout=2)).subject == "data.one"
        assert (await sub.next_msg(timeout=2)).subject == "data.two"
        await asyncio.sleep(0.1)
        assert any("permissions violation" in str(e).lower() for e in errors)
        assert writer.is_connected
    finally:
        await reader.close()
        await writer.close()


# -- allow_responses ------------------------------------------------------------------------

RESPONSES_CONF = """
authorization { users: [
  {user: svc, password: p, permissions: {
      publish: {deny: ">"}, subscribe: ["svc"], allow_responses: true}}
  {user: svc2, password: p, permissions: {
      publish: {deny: ">"}, subscribe: ["svc"], allow_responses: {max: 2, expires: "1s"}}}
  {user: cli, password: p}
] }
"""


async def _request(cli: RawClient, svc: RawClient, reply: str) -> None:
    await cli.send(f"PUB svc {reply} 3\r\nreq\r\n".encode())
    assert await cli.sync() == b""
    assert await svc.until(b"req\r\n") == f"MSG svc 1 {reply} 3\r\nreq\r\n".encode()


@pytest.mark.differential
async def test_allow_responses_single(launch, login):
    server = launch.conf(RESPONSES_CONF)
    svc = await login(server, "svc")
    await svc.send(b"SUB svc 1\r\n")
    assert await svc.sync() == b""
    cli = await login(server, "cli")
    await cli.send(b"SUB rep.> 1\r\n")
    await _request(cli, svc, "rep.1")
    await svc.send(b"PUB rep.1 2\r\nr1\r\nPUB rep.1 2\r\nr2\r\n")
    assert await svc.sync() == pub_violation("rep.1")
    assert await cli.sync() == b"MSG rep.1 1 2\r\nr1\r\n"
    # Only reply subjects of received requests are open, and only to their requester.
    await svc.send(b"PUB rep.9 2\r\nr1\r\nPUB svc 2\r\nr1\r\n")
    assert await svc.sync() == pub_violation("rep.9") + pub_violation("svc")
    # A second request opens its own reply subject again.
    await _request(cli, svc, "rep.2")
    await svc.send(b"PUB rep.2 2\r\nr1\r\n")
    assert await svc.sync() == b""
    assert await cli.sync() == b"MSG rep.2 1 2\r\nr1\r\n"


@pytest.mark.differential
async def test_allow_responses_max_and_expiry(launch, login):
    server = launch.conf(RESPONSES_CONF)
    svc = await login(server, "svc2")
    await svc.send(b"SUB svc 1\r\n")
    assert await svc.sync() == b""
    cli = await login(server, "cli")
    await cli.send(b"SUB rep.> 1\r\n")
    await _request(cli, svc, "rep.1")
    await svc.send(b"PUB rep.1 2\r\nr1\r\nPUB rep.1 2\r\nr2\r\nPUB rep.1 2\r\nr3\r\n")
    assert await svc.sync() == pub_violation("rep.1")
    assert await cli.sync() == b"MSG rep.1 1 2\r\nr1\r\nMSG rep.1 1 2\r\nr2\r\n"
    await _request(cli, svc, "rep.2")
    await asyncio.sleep(1.5)
    await svc.send(b"PUB rep.2 2\r\nr1\r\n")
    assert await svc.sync() == pub_violation("rep.2")
    assert await cli.sync() == b""


# -- default_permissions ------------------------------------------------------------------------


@pytest.mark.differential
async def test_default_permissions_in_account(launch, login):
    server = launch.conf("""
        accounts {
          A {
            default_permissions: {publish: ["dp.>"], subscribe: ["_INBOX.>", "dp.>"]}
            users: [
              {user: plain, password: p}
              {user: own, password: p, permissions: {publish: ["own"], subscribe: ["own"]}}
            ]
          }
        }
    """)
    plain = await login(server, "plain")
    await plain.send(b"SUB dp.> 1\r\nSUB own 2\r\nPUB dp.x 1\r\nx\r\nPUB own 1\r\ny\r\n")
    assert await plain.sync() == (sub_violation("own") + b"MSG dp.x 1 1\r\nx\r\n"
                                  + pub_violation("own"))
    own = await login(server, "own")
    await own.send(b"SUB own 1\r\nSUB dp.> 2\r\nPUB own 1\r\ny\r\nPUB dp.x 1\r\nx\r\n")
    assert await own.sync() == (sub_violation("dp.>") + b"MSG own 1 1\r\ny\r\n"
                                + pub_violation("dp.x"))


# -- JetStream API under permissions ----------------------------------------------------------


@pytest.mark.differential
async def test_jetstream_api_permissions(launch, login, tmp_path: Path):
    store = tmp_path / f"js-{launch.target}"
    server = launch.conf(f"""
        jetstream {{ store_dir: "{store}" }}
        accounts {{
          A {{
            jetstream: enabled
            users: [
              {{user: admin, password: p}}
              {{user: viewer, password: p, permissions: {{
                  publish: {{allow: ["$JS.API.STREAM.INFO.*"], deny: ["$JS.API.STREAM.CREATE.>"]}}
                  subscribe: ["_INBOX.>"]}}}}
            ]
          }}
        }}
    """)
    admin = await nats.connect(server.url, user="admin", password="p")
    try:
        await admin.jetstream().add_stream(name="S", subjects=["s.>"])
    finally:
        await admin.close()
    viewer = await login(server, "viewer")
    await viewer.send(b"SUB _INBOX.v 1\r\n"
                      b"PUB $JS.API.STREAM.CREATE.T _INBOX.v 2\r\n{}\r\n"
                      b"PUB $JS.API.STREAM.INFO.S _INBOX.v 0\r\n\r\n")
    assert await viewer.until(b"\r\n") == pub_violation("$JS.API.STREAM.CREATE.T")
    header = await viewer.until(b"\r\n", timeout=5)
    assert header.startswith(b"MSG _INBOX.v 1 ")
    payload = await viewer.until(b"\r\n", timeout=5)
    assert len(payload) == int(header.split()[-1]) + 2
    info = json.loads(payload)
    assert info["type"] == "io.nats.jetstream.api.v1.stream_info_response"
    assert info["config"]["name"] == "S"
    await alive(viewer)
