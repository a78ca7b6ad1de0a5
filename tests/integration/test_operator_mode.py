"""Operator (JWT) mode as nats-server runs it: a trusted operator, preloaded account JWTs
and users proving themselves with a user JWT plus a signed nonce (``.creds`` files).

Every test runs against Jetport and the real nats-server with the same config text.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from natsjwt import Account, Keys, Operator, User
from servers import RawClient

pytestmark = pytest.mark.timeout(60)

AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"
QUIET = {"verbose": False, "pedantic": False}


async def _ignore(_: Exception) -> None:
    """Error callback that keeps expected auth errors out of the test output."""


class Setup:
    """An operator with a system account; accounts are added before :meth:`start`."""

    def __init__(self, tmp: Path, launch, operator: Operator | None = None) -> None:
        self.tmp = tmp
        self.launch = launch
        self.operator = operator or Operator()
        self.sys = Account(self.operator, "SYS")
        self.accounts: list[Account] = [self.sys]
        self.clients: list = []

    def account(self, name: str, **claims) -> Account:
        acc = Account(self.operator, name, **claims)
        self.accounts.append(acc)
        return acc

    def start(self):
        op_path = self.tmp / "operator.jwt"
        op_path.write_text(self.operator.jwt)
        preload = "\n".join(f"  {a.public_key}: {a.jwt}" for a in self.accounts)
        self.server = self.launch.conf(
            f"operator: {op_path}\n"
            f"system_account: {self.sys.public_key}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n{preload}\n}}\n"
        )
        return self.server

    def creds(self, user: User) -> str:
        return str(user.creds(self.tmp / f"{user.public_key}.creds"))

    async def connect(self, user: User | None = None, **options):
        options.setdefault("allow_reconnect", False)
        options.setdefault("connect_timeout", 2)
        options.setdefault("error_cb", _ignore)
        if user is not None:
            options["user_credentials"] = self.creds(user)
        nc = await nats.connect(self.server.url, **options)
        self.clients.append(nc)
        return nc

    async def raw(self, user: User, sig: str | None = "", **extra) -> RawClient:
        """A raw client that sent CONNECT with ``user``'s JWT and its nonce signature
        (``sig=None`` leaves the signature out)."""
        client = await RawClient.open(self.server.port)
        self.clients.append(client)
        connect = {**QUIET, "jwt": user.jwt, **extra}
        if sig is not None:
            connect["sig"] = sig or user.sign_nonce(client.info["nonce"])
        await client.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        return client

    async def close(self) -> None:
        for c in self.clients:
            if isinstance(c, RawClient) or not c.is_closed:
                await c.close()


@pytest.fixture
async def setup(tmp_path: Path, launch):
    s = Setup(tmp_path, launch)
    yield s
    await s.close()


async def refused(client: RawClient) -> bool:
    """True when the server answered the CONNECT with an auth error and closed."""
    await client.send(b"PING\r\n")
    out = await client.until(b"\r\n")
    return out == AUTH_VIOLATION and await client.closed()


async def accepted(client: RawClient) -> bool:
    await client.send(b"PING\r\n")
    return (await client.until(b"PONG\r\n")).endswith(b"PONG\r\n")


@pytest.mark.differential
async def test_info_offers_nonce_and_requires_auth(setup):
    setup.account("A")
    server = setup.start()
    client = await RawClient.open(server.port)
    setup.clients.append(client)
    assert client.info["auth_required"] is True
    assert isinstance(client.info["nonce"], str) and client.info["nonce"]


@pytest.mark.differential
async def test_creds_connect_and_pub_sub(setup):
    acc = setup.account("A")
    setup.start()
    nc = await setup.connect(User(acc, "alice"))
    sub = await nc.subscribe("greet.>")
    await nc.publish("greet.bob", b"hello")
    msg = await sub.next_msg(timeout=2)
    assert (msg.subject, msg.data) == ("greet.bob", b"hello")
    reply = await setup.connect(User(acc, "bob"))

    async def answer(m) -> None:
        await m.respond(b"pong:" + m.data)

    await reply.subscribe("svc", cb=answer)
    await reply.flush()
    assert (await answered(nc, "svc", b"1")).data == b"pong:1"


async def answered(nc: nats.NATS, subject: str, payload: bytes) -> nats.aio.msg.Msg:
    """A request's answer, asked again while the server says no responders: nats-server
    in operator mode once answered so right after the responder's SUB was flushed on
    its own connection (CI, one run in many); a responder that never shows still fails."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        try:
            return await nc.request(subject, payload, timeout=2)
        except nats.errors.NoRespondersError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.differential
async def test_v1_layout_jwts_connect_and_subscribe(setup):
    """User JWTs in the first claim layout (``type`` at the top, no ``version``, ``pub`` and
    ``sub`` as empty objects), as client libraries' test fixtures still ship them."""
    acc = setup.account("A")
    setup.start()
    user = User(acc, "old")
    user.nats = {"pub": {}, "sub": {}}
    user.v1 = True
    nc = await setup.connect(user)
    sub = await nc.subscribe("greet.>")
    await nc.publish("greet.old", b"hello")
    msg = await sub.next_msg(timeout=2)
    assert (msg.subject, msg.data) == ("greet.old", b"hello")
    assert nc.is_connected


@pytest.mark.differential
async def test_publish_permission_violation_keeps_connection(setup):
    acc = setup.account("A")
    setup.start()
    errors: list[Exception] = []

    async def record(e: Exception) -> None:
        errors.append(e)

    user = User(acc, "limited", pub={"allow": ["foo.>"]})
    nc = await setup.connect(user, error_cb=record)
    sub = await nc.subscribe("foo.ok")
    await nc.publish("bar", b"no")
    await nc.publish("foo.ok", b"yes")
    assert (await sub.next_msg(timeout=2)).data == b"yes"
    for _ in range(50):
        if errors:
            break
        await asyncio.sleep(0.02)
    assert [str(e) for e in errors] == ['nats: permissions violation for publish to "bar"']
    assert nc.is_connected

    raw = await setup.raw(user)
    await raw.send(b"PUB bar 1\r\nx\r\nPING\r\n")
    assert await raw.until(b"PONG\r\n") == (
        b"-ERR 'Permissions Violation for Publish to \"bar\"'\r\nPONG\r\n"
    )


@pytest.mark.differential
async def test_subscribe_permission_violation(setup):
    acc = setup.account("A")
    setup.start()
    raw = await setup.raw(User(acc, "nosub", sub={"deny": ["secret.>"]}))
    await raw.send(b"SUB secret.x 1\r\nSUB open 2\r\nPING\r\n")
    assert await raw.until(b"PONG\r\n") == (
        b"-ERR 'Permissions Violation for Subscription to \"secret.x\"'\r\nPONG\r\n"
    )


@pytest.mark.differential
async def test_expired_user_is_refused(setup):
    acc = setup.account("A")
    setup.start()
    expired = User(acc, "old", exp=int(time.time()) - 5)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await setup.connect(expired)
    assert await refused(await setup.raw(expired))
    future = User(acc, "early", nbf=int(time.time()) + 3600)
    assert await refused(await setup.raw(future))


@pytest.mark.differential
async def test_revoked_users_are_refused(setup):
    now = int(time.time())
    acc = setup.account("A")
    gone = User(acc, "gone", iat=now - 100)
    later = User(acc, "later", iat=now - 10)
    acc.revoke(gone.public_key, now - 50)
    acc.revoke(later.public_key, now - 50)
    everyone = setup.account("B")
    everyone.revoke("*", now - 50)
    old_b = User(everyone, "old", iat=now - 100)
    new_b = User(everyone, "new", iat=now)
    setup.start()
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await setup.connect(gone)
    assert await refused(await setup.raw(gone))
    assert await accepted(await setup.raw(later))
    assert await refused(await setup.raw(old_b))
    assert await accepted(await setup.raw(new_b))


@pytest.mark.differential
async def test_accounts_are_isolated(setup):
    a = setup.account("A")
    b = setup.account("B")
    setup.start()
    nc_a = await setup.connect(User(a, "ua"))
    nc_b = await setup.connect(User(b, "ub"))
    seen_b = await nc_b.subscribe(">")
    seen_a = await nc_a.subscribe("news")
    await nc_b.flush()
    await nc_a.publish("news", b"for A only")
    await nc_a.flush()
    assert (await seen_a.next_msg(timeout=2)).data == b"for A only"
    with pytest.raises(nats.errors.TimeoutError):
        await seen_b.next_msg(timeout=0.3)


@pytest.mark.differential
async def test_account_connection_limit(setup):
    acc = setup.account("ONE", limits={"conn": 1})
    setup.start()
    first = await setup.raw(User(acc, "first"))
    assert await accepted(first)
    second = await setup.raw(User(acc, "second"))
    await second.send(b"PING\r\n")
    assert await second.until(b"\r\n") == (
        b"-ERR 'maximum account active connections exceeded'\r\n"
    )
    assert await second.closed()
    with pytest.raises(nats.errors.Error, match="maximum account active connections"):
        await setup.connect(User(acc, "third"))
    assert await accepted(first)


@pytest.mark.differential
async def test_account_subscription_limit(setup):
    acc = setup.account("SUBS", limits={"subs": 1})
    setup.start()
    raw = await setup.raw(User(acc, "subber"))
    assert await accepted(raw)
    await raw.send(b"SUB a 1\r\nSUB b 2\r\nPING\r\n")
    out = await raw.until(b"PONG\r\n")
    # nats-server may first send an INFO carrying the account's limits.
    lines = [line for line in out.split(b"\r\n") if line and not line.startswith(b"INFO ")]
    assert lines == [b"-ERR 'maximum subscriptions exceeded'", b"PONG"]


@pytest.mark.differential
async def test_nkey_seed_without_jwt_is_refused(setup):
    acc = setup.account("A")
    setup.start()
    user = User(acc, "nojwt")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await setup.connect(nkeys_seed_str=user.seed)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await setup.connect()
    client = await RawClient.open(setup.server.port)
    setup.clients.append(client)
    await client.send(b"CONNECT " + json.dumps(
        {**QUIET, "nkey": user.public_key, "sig": user.sign_nonce(client.info["nonce"])}
    ).encode() + b"\r\n")
    assert await refused(client)


@pytest.mark.differential
async def test_nonce_signature_checks(setup):
    acc = setup.account("A")
    setup.start()
    user = User(acc, "sig")
    assert await refused(await setup.raw(user, sig=None))
    assert await refused(await setup.raw(user, sig=user.sign_nonce("not the nonce")))
    assert await refused(await setup.raw(user, sig=User(acc).sign_nonce("x")))
    raw = await RawClient.open(setup.server.port)
    setup.clients.append(raw)
    url_sig = user.sign_nonce(raw.info["nonce"], urlsafe=True)
    await raw.send(b"CONNECT " + json.dumps({**QUIET, "jwt": user.jwt, "sig": url_sig}).encode()
                   + b"\r\n")
    assert await accepted(raw)
    assert await accepted(await setup.raw(User(acc, "bearer", bearer=True), sig=None))


@pytest.mark.differential
async def test_signing_keys(tmp_path: Path, launch):
    operator = Operator(signing_keys=1)
    s = Setup(tmp_path, launch, operator)
    acc = Account(operator, "SK", signed_by=operator.signing_keys[0])
    s.accounts.append(acc)
    plain = acc.add_signing_key()
    scoped = acc.add_signing_key({"pub": {"allow": ["app.{{name()}}.>"]}, "subs": -1,
                                  "payload": -1, "data": -1}, role="app")
    s.start()
    try:
        assert await accepted(await s.raw(User(acc, "direct")))
        assert await accepted(await s.raw(User(acc, "by-key", signed_by=plain)))
        stranger = User(acc, "stranger", signed_by=Keys("A"))
        assert await refused(await s.raw(stranger))
        app = await s.raw(User(acc, "svc", signed_by=scoped, scoped=True))
        assert await accepted(app)
        await app.send(b"PUB app.svc.x 1\r\nx\r\nPUB app.other 1\r\nx\r\nPING\r\n")
        out = await app.until(b"PONG\r\n")
        lines = [line for line in out.split(b"\r\n") if line and not line.startswith(b"INFO ")]
        assert lines == [b"-ERR 'Permissions Violation for Publish to \"app.other\"'", b"PONG"]
        greedy = User(acc, "greedy", signed_by=scoped)  # carries its own limits
        assert await refused(await s.raw(greedy))
    finally:
        await s.close()


@pytest.mark.differential
async def test_account_jwt_grants_jetstream(tmp_path: Path, launch):
    """JetStream limits in an account JWT turn JetStream on for it; an account JWT
    without them gets "not enabled" answers, and neither sees the other's streams."""
    s = Setup(tmp_path, launch)
    js_acc = s.account("JS", limits={"mem_storage": -1, "disk_storage": 10_000_000,
                                     "streams": 2, "consumer": -1})
    plain = s.account("PLAIN")
    op_path = tmp_path / "operator.jwt"
    op_path.write_text(s.operator.jwt)
    preload = "\n".join(f"  {a.public_key}: {a.jwt}" for a in s.accounts)
    s.server = launch.conf(
        f"operator: {op_path}\nsystem_account: {s.sys.public_key}\nresolver: MEMORY\n"
        f"resolver_preload: {{\n{preload}\n}}\n"
        f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'store'))} }}\n"
    )
    try:
        nc = await s.connect(User(js_acc, "js-user"))
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["s.>"])
        ack = await js.publish("s.1", b"x")
        assert (ack.stream, ack.seq) == ("S", 1)
        info = await js.account_info()
        assert info.limits.max_streams == 2
        other = await s.connect(User(plain, "plain-user"))
        with pytest.raises(nats.js.errors.ServiceUnavailableError):
            await other.jetstream().account_info()
        with pytest.raises(nats.js.errors.ServiceUnavailableError):
            await other.jetstream().stream_info("S")
    finally:
        await s.close()


@pytest.mark.differential
async def test_connection_ends_when_the_user_jwt_expires(setup):
    acc = setup.account("A")
    setup.start()
    soon = User(acc, "brief", exp=int(time.time()) + 2)
    client = await setup.raw(soon)
    assert await accepted(client)
    assert await client.until(b"\r\n", timeout=5) == b"-ERR 'User Authentication Expired'\r\n"
    assert await client.closed()


@pytest.mark.differential
async def test_a_user_allowed_no_subscriptions_hears_why(setup):
    """A user JWT with ``subs: 0`` is told at its first SUB, as nats-server tells it."""
    acc = setup.account("A")
    setup.start()
    client = await setup.raw(User(acc, "nosubs", subs=0))
    await client.send(b"SUB a 1\r\nPING\r\n")
    out = await client.until(b"PONG\r\n")
    # nats-server may say it twice (its limits are applied again as the account loads)
    assert out.startswith(b"-ERR 'maximum subscriptions exceeded'\r\n")
    assert out.endswith(b"PONG\r\n")
    assert await accepted(client)
