"""Authentication as nats-server does it: users, tokens, bcrypt, nkeys, timeouts, accounts.

Every test runs twice through ``launch``: against Jetport and against the real
nats-server, with the same config text, so the observable behaviour must be the same.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import time
from pathlib import Path

import bcrypt
import nats
import nats.errors
import nkeys
import pytest
from servers import RawClient

pytestmark = pytest.mark.timeout(60)

AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"
QUIET = {"verbose": False, "pedantic": False}


async def _ignore(_: Exception) -> None:
    """Error callback that keeps expected auth errors out of the test output."""


@pytest.fixture
async def connect():
    """``await connect(url, **options)``: a nats-py client, closed afterwards."""
    clients = []

    async def make(url: str, **options):
        options.setdefault("allow_reconnect", False)
        options.setdefault("connect_timeout", 5)
        options.setdefault("error_cb", _ignore)
        nc = await nats.connect(url, **options)
        clients.append(nc)
        return nc

    yield make
    for nc in clients:
        if not nc.is_closed:
            await nc.close()


async def handshake(port: int, creds: dict) -> tuple[bytes, bool]:
    """CONNECT with ``creds`` then PING; what the server answered and whether it closed."""
    client = await RawClient.open(port, {**QUIET, **creds})
    await client.send(b"PING\r\n")
    out = await client.until(b"PONG\r\n")
    closed = b"PONG" not in out and await client.closed()
    await client.close()
    return out, closed


async def accepted(port: int, creds: dict) -> bool:
    out, closed = await handshake(port, creds)
    if out == b"PONG\r\n":
        return True
    assert (out, closed) == (AUTH_VIOLATION, True)
    return False


async def request_json(nc, subject: str, data: bytes = b"") -> dict:
    msg = await nc.request(subject, data, timeout=2)
    return json.loads(msg.data)


def user_seed() -> tuple[bytes, str]:
    """A fresh user seed and its public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed, nkeys.from_seed(bytearray(seed)).public_key.decode()


# -- passwords and tokens ---------------------------------------------------------------


@pytest.mark.differential
async def test_single_user_password(launch):
    server = launch.conf("authorization { user: alice, password: s3cret }")
    out, closed = await handshake(server.port, {})
    assert (out, closed) == (AUTH_VIOLATION, True)
    assert await accepted(server.port, {"user": "alice", "pass": "s3cret"})
    assert not await accepted(server.port, {"user": "alice", "pass": "wrong"})
    assert not await accepted(server.port, {"user": "bob", "pass": "s3cret"})
    assert not await accepted(server.port, {"auth_token": "s3cret"})


@pytest.mark.differential
async def test_info_announces_auth_required(launch):
    server = launch.conf("authorization { user: alice, password: s3cret }")
    client = await RawClient.open(server.port)
    assert client.info["auth_required"] is True
    assert "nonce" not in client.info
    await client.close()


@pytest.mark.differential
async def test_token(launch):
    server = launch.conf('authorization { token: "t0ken" }')
    assert await accepted(server.port, {"auth_token": "t0ken"})
    assert not await accepted(server.port, {"auth_token": "t0ke"})
    assert not await accepted(server.port, {"user": "t0ken"})
    assert not await accepted(server.port, {})


@pytest.mark.differential
async def test_users_list(launch):
    server = launch.conf("""
        authorization {
          users: [
            {user: alice, password: pa}
            {user: bob, password: pb}
            {user: carol, password: "with space"}
          ]
        }
    """)
    for user, password in [("alice", "pa"), ("bob", "pb"), ("carol", "with space")]:
        assert await accepted(server.port, {"user": user, "pass": password})
    assert not await accepted(server.port, {"user": "alice", "pass": "pb"})
    assert not await accepted(server.port, {"user": "bob", "pass": "pa"})
    assert not await accepted(server.port, {"user": "ALICE", "pass": "pa"})


@pytest.mark.differential
@pytest.mark.parametrize(("cost", "prefix"), [(10, b"2a"), (11, b"2b")])
async def test_bcrypt_password(launch, cost: int, prefix: bytes):
    hashed = bcrypt.hashpw(b"open sesame", bcrypt.gensalt(cost, prefix=prefix)).decode()
    assert hashed.startswith(f"${prefix.decode()}$")
    server = launch.conf(f'authorization {{ users: [{{user: alice, password: "{hashed}"}}] }}')
    assert await accepted(server.port, {"user": "alice", "pass": "open sesame"})
    assert not await accepted(server.port, {"user": "alice", "pass": "open sesame!"})
    # The stored hash is not itself a password.
    assert not await accepted(server.port, {"user": "alice", "pass": hashed})


@pytest.mark.differential
async def test_bcrypt_token(launch, connect):
    hashed = bcrypt.hashpw(b"tok", bcrypt.gensalt(11)).decode()
    server = launch.conf(f'authorization {{ token: "{hashed}" }}')
    assert await accepted(server.port, {"auth_token": "tok"})
    assert not await accepted(server.port, {"auth_token": "tok2"})
    assert not await accepted(server.port, {"auth_token": hashed})
    nc = await connect(server.url, token="tok")
    await nc.flush()


@pytest.mark.differential
async def test_nats_py_credentials(launch, connect):
    server = launch.conf("authorization { users: [{user: alice, password: pa}] }")
    by_url = await connect(f"nats://alice:pa@127.0.0.1:{server.port}")
    by_options = await connect(server.url, user="alice", password="pa")
    inbox = by_url.new_inbox()
    sub = await by_url.subscribe(inbox)
    await by_url.flush()
    await by_options.publish(inbox, b"hello")
    await by_options.flush()
    assert (await sub.next_msg(timeout=5)).data == b"hello"
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(server.url, user="alice", password="nope")


@pytest.mark.differential
async def test_nats_py_token_in_url(launch, connect):
    server = launch.conf('authorization { token: "t0ken" }')
    nc = await connect(f"nats://t0ken@127.0.0.1:{server.port}")
    await nc.flush()
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(server.url, token="other")


# -- nkeys ------------------------------------------------------------------------------


@pytest.mark.differential
async def test_nkey_user(launch, connect, tmp_path: Path):
    seed, public = user_seed()
    server = launch.conf(f"""
        authorization {{ users: [{{nkey: {public}}}, {{user: alice, password: pa}}] }}
    """)
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    nc = await connect(server.url, nkeys_seed=str(seed_file))
    await nc.flush()
    # user/password users still work next to nkey users.
    assert await accepted(server.port, {"user": "alice", "pass": "pa"})


@pytest.mark.differential
async def test_nkey_nonce_and_signature_encodings(launch):
    seed, public = user_seed()
    server = launch.conf(f"authorization {{ users: [{{nkey: {public}}}] }}")
    pair = nkeys.from_seed(bytearray(seed))

    async def attempt(encode, sign_other: bool = False) -> tuple[bytes, bool]:
        client = await RawClient.open(server.port)
        nonce = client.info["nonce"]
        assert isinstance(nonce, str) and nonce
        sig = pair.sign(b"not the nonce" if sign_other else nonce.encode())
        creds = {**QUIET, "nkey": public, "sig": encode(sig).decode()}
        await client.send(b"CONNECT " + json.dumps(creds).encode() + b"\r\nPING\r\n")
        out = await client.until(b"PONG\r\n")
        closed = b"PONG" not in out and await client.closed()
        await client.close()
        return out, closed

    def url_raw(sig: bytes) -> bytes:
        return base64.urlsafe_b64encode(sig).rstrip(b"=")

    assert await attempt(url_raw) == (b"PONG\r\n", False)
    assert await attempt(base64.b64encode) == (b"PONG\r\n", False)
    assert await attempt(url_raw, sign_other=True) == (AUTH_VIOLATION, True)
    assert await attempt(lambda _: b"!!not base64!!") == (AUTH_VIOLATION, True)
    # Right signature, wrong key.
    _, other = user_seed()
    client = await RawClient.open(server.port)
    sig = url_raw(pair.sign(client.info["nonce"].encode())).decode()
    await client.send(b"CONNECT " + json.dumps({**QUIET, "nkey": other, "sig": sig}).encode()
                      + b"\r\nPING\r\n")
    assert await client.until(b"PONG\r\n") == AUTH_VIOLATION
    assert await client.closed()
    await client.close()


@pytest.mark.differential
async def test_nonce_only_with_nkeys(launch):
    _, public = user_seed()
    server = launch.conf(f"authorization {{ users: [{{nkey: {public}}}] }}")
    first = await RawClient.open(server.port)
    second = await RawClient.open(server.port)
    assert first.info["auth_required"] is True
    assert first.info["nonce"] != second.info["nonce"]
    await first.close()
    await second.close()


# -- no_auth_user -----------------------------------------------------------------------


@pytest.mark.differential
async def test_no_auth_user_binds_permissions(launch):
    server = launch.conf("""
        authorization {
          users: [
            {user: guest, password: gp, permissions: {publish: ["public.>"], subscribe: ">"}}
            {user: admin, password: ap}
          ]
        }
        no_auth_user: guest
    """)
    client = await RawClient.open(server.port, dict(QUIET))
    assert "auth_required" not in client.info
    await client.send(b"SUB > 1\r\nPUB public.x 2\r\nok\r\nPUB private.x 2\r\nno\r\n")
    out = await client.sync()
    assert out == (b"MSG public.x 1 2\r\nok\r\n"
                   b"-ERR 'Permissions Violation for Publish to \"private.x\"'\r\n")
    await client.close()
    # Explicit credentials are checked, never replaced by the no_auth_user.
    assert not await accepted(server.port, {"user": "guest", "pass": "bad"})
    assert await accepted(server.port, {"user": "admin", "pass": "ap"})


# -- failures ---------------------------------------------------------------------------


@pytest.mark.differential
async def test_failed_auth_is_uniform_and_closes(launch):
    server = launch.conf("authorization { users: [{user: alice, password: pa}] }")
    wrong_password = await handshake(server.port, {"user": "alice", "pass": "nope"})
    unknown_user = await handshake(server.port, {"user": "mallory", "pass": "nope"})
    no_creds = await handshake(server.port, {})
    assert wrong_password == unknown_user == no_creds == (AUTH_VIOLATION, True)


@pytest.mark.differential
async def test_first_op_must_be_connect(launch):
    server = launch.conf("authorization { user: a, password: b }")
    client = await RawClient.open(server.port)
    await client.send(b"PING\r\n")
    assert await client.until(b"\r\n") == AUTH_VIOLATION
    assert await client.closed()
    await client.close()


@pytest.mark.differential
async def test_failed_auth_timing_does_not_reveal_users(launch):
    server = launch.conf("authorization { users: [{user: alice, password: pa}] }")

    async def timed(creds: dict) -> float:
        start = time.monotonic()
        out, closed = await handshake(server.port, creds)
        assert (out, closed) == (AUTH_VIOLATION, True)
        return time.monotonic() - start

    wrong, unknown = [], []
    for _ in range(5):
        wrong.append(await timed({"user": "alice", "pass": "nope"}))
        unknown.append(await timed({"user": "mallory", "pass": "nope"}))
    assert abs(statistics.median(wrong) - statistics.median(unknown)) < 0.2
    # Any failure delay must stay well below the auth timeout.
    assert max(wrong + unknown) < 1.5


@pytest.mark.differential
async def test_auth_timeout(launch):
    server = launch.conf("authorization { user: a, password: b, timeout: 0.5 }")
    client = await RawClient.open(server.port)
    start = time.monotonic()
    assert await client.until(b"\r\n", timeout=3) == b"-ERR 'Authentication Timeout'\r\n"
    elapsed = time.monotonic() - start
    assert await client.closed(1)
    assert 0.3 < elapsed < 1.5
    await client.close()


@pytest.mark.differential
async def test_auth_timeout_not_hit_after_connect(launch):
    server = launch.conf("authorization { user: a, password: b, timeout: 0.5 }")
    client = await RawClient.open(server.port, {**QUIET, "user": "a", "pass": "b"})
    await asyncio.sleep(1.0)
    assert await client.sync() == b""
    assert not client.eof
    await client.close()


@pytest.mark.differential
async def test_allowed_connection_types(launch):
    server = launch.conf("""
        authorization {
          users: [
            {user: ws, password: p, allowed_connection_types: ["WEBSOCKET"]}
            {user: std, password: p, allowed_connection_types: ["STANDARD"]}
            {user: both, password: p, allowed_connection_types: ["STANDARD", "WEBSOCKET"]}
          ]
        }
    """)
    assert await handshake(server.port, {"user": "ws", "pass": "p"}) == (AUTH_VIOLATION, True)
    assert await accepted(server.port, {"user": "std", "pass": "p"})
    assert await accepted(server.port, {"user": "both", "pass": "p"})


# -- accounts and the system account -------------------------------------------------------

ACCOUNTS = """
accounts {
  SYS { users: [{user: sys, password: sp}] }
  A {
    users: [
      {user: a, password: ap, permissions: {publish: {deny: "zz"}, subscribe: {allow: ">"}}}
      {user: a2, password: ap}
    ]
  }
  B { users: [{user: b, password: bp}] }
}
system_account: SYS
"""


@pytest.mark.differential
async def test_account_users_authenticate(launch):
    server = launch.conf(ACCOUNTS)
    for user, password in [("sys", "sp"), ("a", "ap"), ("a2", "ap"), ("b", "bp")]:
        assert await accepted(server.port, {"user": user, "pass": password})
    assert not await accepted(server.port, {"user": "a", "pass": "bp"})


@pytest.mark.differential
async def test_system_account_server_ping(launch, connect):
    server = launch.conf(ACCOUNTS)
    raw = await RawClient.open(server.port)
    server_id = raw.info["server_id"]
    server_name = raw.info["server_name"]
    await raw.close()
    sys_nc = await connect(server.url, user="sys", password="sp")

    ping = await request_json(sys_nc, "$SYS.REQ.SERVER.PING")
    assert ping["server"]["id"] == server_id
    assert ping["server"]["name"] == server_name
    assert isinstance(ping["statsz"], dict)

    statsz = await request_json(sys_nc, "$SYS.REQ.SERVER.PING.STATSZ")
    assert statsz["server"]["id"] == server_id
    assert isinstance(statsz["statsz"], dict)

    varz = await request_json(sys_nc, "$SYS.REQ.SERVER.PING.VARZ")
    assert varz["server"]["id"] == server_id
    assert varz["data"]["server_id"] == server_id


@pytest.mark.differential
async def test_non_system_user_gets_no_server_ping(launch, connect):
    server = launch.conf(ACCOUNTS)
    nc = await connect(server.url, user="b", password="bp")
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("$SYS.REQ.SERVER.PING", b"", timeout=2)


@pytest.mark.differential
async def test_user_info(launch, connect):
    server = launch.conf(ACCOUNTS)
    cases = [
        ("a", "ap", "A", {"publish": {"deny": ["zz"]}, "subscribe": {"allow": [">"]}}),
        ("a2", "ap", "A", None),
        ("sys", "sp", "SYS", None),
    ]
    for user, password, account, permissions in cases:
        nc = await connect(server.url, user=user, password=password)
        reply = await request_json(nc, "$SYS.REQ.USER.INFO")
        data = reply["data"]
        assert data["user"] == user
        assert data["account"] == account
        assert data.get("permissions") == permissions
        assert "error" not in reply
