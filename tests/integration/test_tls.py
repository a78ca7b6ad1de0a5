"""TLS on the NATS port: upgrade after INFO, client certificates, versions, and
``verify_and_map`` user mapping, checked against Jetport and nats-server alike."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import nats
import pytest
from certs import Pair, TestPKI, make_ca, make_pki

HANDSHAKE = b'CONNECT {"verbose":false,"pedantic":false}\r\n'


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return make_pki(tmp_path / "pki")


def tls_conf(pki: TestPKI, extra: str = "", tail: str = "") -> str:
    return (
        f'tls {{\n  cert_file: "{pki.server.cert}"\n  key_file: "{pki.server.key}"\n'
        f'  ca_file: "{pki.ca_file}"\n  {extra}\n}}\n{tail}'
    )


def client_ctx(
    pki: TestPKI, cert: Pair | None = None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class Session:
    """A raw NATS connection upgraded to TLS after INFO, as nats clients do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.info: dict = {}

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext | None) -> Session:
        """Connect, read INFO and (given a context) complete the TLS handshake."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = cls(reader, writer)
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        session.info = json.loads(line[5:])
        if ctx is not None:
            await asyncio.wait_for(writer.start_tls(ctx, server_hostname="127.0.0.1"), 5)
        return session

    @property
    def version(self) -> str | None:
        return self.writer.get_extra_info("ssl_object").version()

    async def exchange(self, data: bytes, timeout: float = 3.0) -> bytes:
        """Send ``data`` + PING; what came back up to PONG, or until the server hung up
        (a TLS alert counts as hanging up)."""
        out = b""
        try:
            self.writer.write(data + b"PING\r\n")
            await self.writer.drain()
            async with asyncio.timeout(timeout):
                while not out.endswith(b"PONG\r\n"):
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        break
                    out += chunk
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        return out

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ssl.SSLError, ConnectionError, OSError):
            pass


async def talk(port: int, ctx: ssl.SSLContext, data: bytes = HANDSHAKE) -> bytes:
    """One TLS session: ``data`` + PING, the reply; b"" when the server refused it."""
    try:
        session = await Session.open(port, ctx)
    except (ssl.SSLError, ConnectionError, OSError):
        return b""
    try:
        return await session.exchange(data)
    finally:
        await session.close()


# -- plain TLS -------------------------------------------------------------------------


@pytest.mark.differential
async def test_info_announces_tls(launch, pki: TestPKI) -> None:
    plain = await Session.open(launch.conf(tls_conf(pki)).port, None)
    verify = await Session.open(launch.conf(tls_conf(pki, "verify: true")).port, None)
    mapped = await Session.open(launch.conf(tls_conf(pki, "verify_and_map: true")).port, None)
    assert plain.info["tls_required"] is True and "tls_verify" not in plain.info
    assert verify.info["tls_required"] is True and verify.info["tls_verify"] is True
    assert mapped.info["tls_required"] is True and mapped.info["tls_verify"] is True
    for s in (plain, verify, mapped):
        await s.close()


@pytest.mark.differential
async def test_pub_sub_over_tls(launch, pki: TestPKI) -> None:
    server = launch.conf(tls_conf(pki))
    nc = await nats.connect(server.url, tls=client_ctx(pki), allow_reconnect=False)
    sub = await nc.subscribe("secure.>")
    await nc.publish("secure.one", b"s3cret")
    msg = await sub.next_msg(2)
    assert (msg.subject, msg.data) == ("secure.one", b"s3cret")
    await nc.close()


@pytest.mark.differential
async def test_plain_client_is_dropped_without_reply(launch, pki: TestPKI) -> None:
    server = launch.conf(tls_conf(pki))
    session = await Session.open(server.port, None)
    assert session.info["tls_required"] is True
    assert await session.exchange(HANDSHAKE) == b""
    await session.close()


@pytest.mark.differential
async def test_nats_py_without_tls_cannot_connect(launch, pki: TestPKI) -> None:
    server = launch.conf(tls_conf(pki))
    with pytest.raises(Exception):  # noqa: B017 - the server's CA is not trusted by default
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=2)


# -- client certificates -----------------------------------------------------------------


@pytest.mark.differential
async def test_verify_requires_a_certificate_from_the_ca(
    launch, pki: TestPKI, tmp_path: Path
) -> None:
    port = launch.conf(tls_conf(pki, "verify: true")).port
    good = pki.client("carol", [("O", "acme"), ("CN", "carol")])
    stranger = make_ca(tmp_path / "other", "other").issue("eve", [("CN", "eve")])
    assert await talk(port, client_ctx(pki, good)) == b"PONG\r\n"
    assert await talk(port, client_ctx(pki)) == b""
    assert await talk(port, client_ctx(pki, stranger)) == b""
    nc = await nats.connect(
        f"nats://127.0.0.1:{port}", tls=client_ctx(pki, good), allow_reconnect=False
    )
    assert nc.is_connected
    await nc.close()


@pytest.mark.differential
async def test_without_verify_no_certificate_is_needed(launch, pki: TestPKI) -> None:
    port = launch.conf(tls_conf(pki)).port
    assert await talk(port, client_ctx(pki)) == b"PONG\r\n"


# -- versions ----------------------------------------------------------------------------


@pytest.mark.differential
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_default_minimum_is_tls_1_2(launch, pki: TestPKI) -> None:
    port = launch.conf(tls_conf(pki)).port
    session = await Session.open(port, client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))
    assert session.version == "TLSv1.2"
    assert await session.exchange(HANDSHAKE) == b"PONG\r\n"
    await session.close()
    old = client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_1)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client really offers TLS 1.1
    assert await talk(port, old) == b""


@pytest.mark.differential
async def test_min_version_1_3_refuses_1_2(launch, pki: TestPKI) -> None:
    port = launch.conf(tls_conf(pki, 'min_version: "1.3"')).port
    assert await talk(port, client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2)) == b""
    session = await Session.open(port, client_ctx(pki))
    assert session.version == "TLSv1.3"
    assert await session.exchange(HANDSHAKE) == b"PONG\r\n"
    await session.close()


@pytest.mark.differential
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"1.4"', "unknown version: 1.4"),
        ('"TLS1.3"', "unknown version: TLS1.3"),
        ('"1.1"', "unsupported TLS version: TLS 1.1"),
        ("1.3", "'min_version' wrong type: 1.3"),
    ],
)
def test_bad_min_version_is_a_config_error(
    launch, pki: TestPKI, value: str, message: str
) -> None:
    with pytest.raises(RuntimeError) as info:
        launch.conf(tls_conf(pki, f"min_version: {value}"))
    assert "error parsing tls config: " + message in str(info.value)
    assert f"{launch.target}-0.conf:" in str(info.value)


# -- verify_and_map ----------------------------------------------------------------------

USERS = """
authorization {
  users: [
    {user: "alice@example.com", permissions: {publish: "allowed.>"}}
    {user: "CN=alice", permissions: {publish: "other.>"}}
    {user: "CN=bob,O=acme", permissions: {publish: "bob.>"}}
    {user: "o=acme, cn=carol", permissions: {publish: "carol.>"}}
    {user: "dave.example.com", permissions: {publish: "dave.>"}}
  ]
}
"""


def pubs(*subjects: str) -> bytes:
    return HANDSHAKE + b"".join(f"PUB {s} 2\r\nhi\r\n".encode() for s in subjects)


def denied(subject: str) -> bytes:
    return f"-ERR 'Permissions Violation for Publish to \"{subject}\"'\r\n".encode()


@pytest.fixture
def mapped(launch, pki: TestPKI) -> int:
    return launch.conf(tls_conf(pki, "verify_and_map: true", USERS)).port


@pytest.mark.differential
async def test_email_san_maps_first(mapped: int, pki: TestPKI) -> None:
    alice = pki.client("alice", [("CN", "alice")], emails=("alice@example.com",))
    out = await talk(mapped, client_ctx(pki, alice), pubs("allowed.x", "other.x"))
    assert out == denied("other.x") + b"PONG\r\n"


@pytest.mark.differential
async def test_subject_dn_maps_to_user(mapped: int, pki: TestPKI) -> None:
    bob = pki.client("bob", [("O", "acme"), ("CN", "bob")])
    out = await talk(mapped, client_ctx(pki, bob), pubs("bob.x", "allowed.x"))
    assert out == denied("allowed.x") + b"PONG\r\n"


@pytest.mark.differential
async def test_dn_match_ignores_type_case_spaces_and_order(mapped: int, pki: TestPKI) -> None:
    carol = pki.client("carol", [("O", "acme"), ("CN", "carol")])
    out = await talk(mapped, client_ctx(pki, carol), pubs("carol.x", "bob.x"))
    assert out == denied("bob.x") + b"PONG\r\n"


@pytest.mark.differential
async def test_dns_san_maps_before_subject(mapped: int, pki: TestPKI) -> None:
    dave = pki.client("dave", [("O", "acme"), ("CN", "bob")], dns=("dave.example.com",))
    out = await talk(mapped, client_ctx(pki, dave), pubs("dave.x", "bob.x"))
    assert out == denied("bob.x") + b"PONG\r\n"


@pytest.mark.differential
async def test_unmapped_certificate_is_not_authorized(mapped: int, pki: TestPKI) -> None:
    mallory = pki.client("mallory", [("O", "acme"), ("CN", "mallory")])
    out = await talk(mapped, client_ctx(pki, mallory))
    assert out == b"-ERR 'Authorization Violation'\r\n"


@pytest.mark.differential
async def test_user_in_connect_does_not_override_certificate(mapped: int, pki: TestPKI) -> None:
    bob = pki.client("bob", [("O", "acme"), ("CN", "bob")])
    connect = b'CONNECT {"verbose":false,"pedantic":false,"user":"alice@example.com"}\r\n'
    out = await talk(mapped, client_ctx(pki, bob), connect + b"PUB allowed.x 0\r\n\r\n")
    assert out == denied("allowed.x") + b"PONG\r\n"


@pytest.mark.differential
async def test_mapping_still_requires_a_certificate(mapped: int, pki: TestPKI) -> None:
    assert await talk(mapped, client_ctx(pki)) == b""


@pytest.mark.differential
async def test_silent_client_is_dropped_after_tls_timeout(launch, pki: TestPKI) -> None:
    server = launch.conf(tls_conf(pki, "timeout: 0.5"))
    session = await Session.open(server.port, None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await asyncio.wait_for(session.reader.read(), 5) == b""
    assert 0.4 < loop.time() - start < 2.0
    await session.close()
