"""Client-certificate identities for verify_and_map, on certificates generated per test.

The expected strings are those nats-server 2.15.1 logs for the same certificates.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from certs import Pair, TestPKI, make_pki
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from jetport.core.certnames import identities_from_der
from jetport.core.tls import (
    CertDN,
    find_user,
    min_tls_version,
    parse_dn,
    peer_identities,
    server_context,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def der(pair: Pair) -> bytes:
    cert = x509.load_pem_x509_certificate(Path(pair.cert).read_bytes())
    return cert.public_bytes(Encoding.DER)


def ids(pki: TestPKI, subject: list[tuple[str, str]], **sans) -> list[str]:
    return identities_from_der(der(pki.client("c", subject, **sans)))


def kinds(identities: list[str]) -> list[tuple[str, str]]:
    return [("dn" if isinstance(i, CertDN) else "text", str(i)) for i in identities]


# -- candidate order ------------------------------------------------------------------


def test_emails_then_dns_then_uris_then_subject(pki: TestPKI) -> None:
    found = ids(
        pki, [("C", "US"), ("O", "acme"), ("OU", "dev"), ("CN", "dora")],
        emails=("dora@example.com", "d@example.com"), dns=("dora.example.com",),
        uris=("spiffe://example.org/dora",),
    )
    assert kinds(found) == [
        ("text", "dora@example.com"),
        ("text", "d@example.com"),
        ("text", "dora.example.com"),
        ("text", "spiffe://example.org/dora"),
        ("dn", "CN=dora,OU=dev,O=acme,C=US"),
        ("text", "CN=dora,OU=dev,O=acme,C=US"),
    ]


def test_domain_components_add_a_candidate_in_certificate_order(pki: TestPKI) -> None:
    found = ids(pki, [("DC", "org"), ("DC", "example"), ("O", "acme"), ("CN", "carl")])
    assert kinds(found) == [
        ("dn", "CN=carl,O=acme,DC=example,DC=org"),
        ("text", "CN=carl,O=acme,DC=org,DC=example"),
        ("text", "CN=carl,O=acme"),
    ]


def test_subject_text_follows_go_field_order_not_certificate_order(pki: TestPKI) -> None:
    found = ids(
        pki,
        [("C", "US"), ("O", "acme"), ("OU", "a"), ("OU", "b"), ("CN", "Doe, John"),
         ("SERIALNUMBER", "42")],
    )
    assert kinds(found) == [
        ("dn", "SERIALNUMBER=42,CN=Doe\\, John,OU=b,OU=a,O=acme,C=US"),
        ("text", "SERIALNUMBER=42,CN=Doe\\, John,OU=a+OU=b,O=acme,C=US"),
    ]
    found = ids(pki, [("CN", "first"), ("O", "acme"), ("CN", "second")])
    assert kinds(found) == [("dn", "CN=second,O=acme,CN=first"), ("text", "CN=second,O=acme")]


def test_unsupported_subject_attribute_disables_the_dn_match(pki: TestPKI) -> None:
    found = ids(pki, [("DC", "org"), ("O", "acme"), ("EMAIL", "x@y.z"), ("CN", " sp#ace ")])
    assert kinds(found) == [
        ("text", "CN=\\ sp#ace\\ ,O=acme,DC=org"),
        ("text", "CN=\\ sp#ace\\ ,O=acme"),
    ]


def test_dns_only_certificate(pki: TestPKI) -> None:
    assert kinds(ids(pki, [], dns=("only.dns",))) == [("text", "only.dns")]


# -- matching -------------------------------------------------------------------------


def test_find_user_takes_the_first_candidate_that_is_a_user(pki: TestPKI) -> None:
    found = ids(pki, [("O", "acme"), ("CN", "alice")], emails=("alice@example.com",))
    assert find_user(found, ["CN=alice,O=acme", "alice@example.com"]) == "alice@example.com"
    assert find_user(found, ["CN=alice,O=acme", "bob@example.com"]) == "CN=alice,O=acme"
    assert find_user(found, ["CN=bob,O=acme"]) is None


def test_dn_match_rules(pki: TestPKI) -> None:
    found = ids(pki, [("O", "acme"), ("OU", "dev"), ("CN", "bob")])
    assert find_user(found, ["cn=bob, ou=dev, o=acme"]) == "cn=bob, ou=dev, o=acme"
    assert find_user(found, ["O=acme,CN=bob,OU=dev"]) == "O=acme,CN=bob,OU=dev"
    assert find_user(found, ["CN=Bob,OU=dev,O=acme"]) is None  # values are exact
    assert find_user(found, ["CN=bob,O=acme"]) is None  # every RDN counts
    # An exact DN wins over a reordered one wherever it is listed.
    assert find_user(found, ["OU=dev,CN=bob,O=acme", "CN=bob,OU=dev,O=acme"]) == (
        "CN=bob,OU=dev,O=acme"
    )


def test_parse_dn() -> None:
    dn = parse_dn(r" CN = a\,b \2C ,O=x+OU=y  ")
    assert dn is not None
    assert dn.rdns == ((("CN", "a,b ,"),), (("O", "x"), ("OU", "y")))
    for bad in ("alice@example.com", "CN=#0403", "CN=a\\zz", "CN=a\\", "=x,=y"):
        assert parse_dn(bad) is None, bad


# -- contexts and handshakes ------------------------------------------------------------


def test_min_version_spellings() -> None:
    assert min_tls_version("1.2") is ssl.TLSVersion.TLSv1_2
    assert min_tls_version("1.3") is ssl.TLSVersion.TLSv1_3
    for value, message in [
        ("1.1", "unsupported TLS version: TLS 1.1"),
        ("1.0", "unsupported TLS version: TLS 1.0"),
        ("TLS1.3", "unknown version: TLS1.3"),
        (1.3, "'min_version' wrong type: 1.3"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$".replace(".", r"\.")):
            min_tls_version(value)


def test_server_context_settings(pki: TestPKI) -> None:
    ctx = server_context(pki.server.cert, pki.server.key)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2 and ctx.verify_mode is ssl.CERT_NONE
    ctx = server_context(pki.server.cert, pki.server.key, pki.ca_file, True, "1.3")
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode is ssl.CERT_REQUIRED


async def handshake_identities(pki: TestPKI, client: Pair | None) -> list[str]:
    """Identities the server side sees over a real loopback TLS handshake."""
    seen: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(peer_identities(writer.get_extra_info("ssl_object")))
        writer.close()

    verify = client is not None
    ctx = server_context(pki.server.cert, pki.server.key, pki.ca_file, verify)
    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    cctx = ssl.create_default_context(cafile=pki.ca_file)
    if client is not None:
        cctx.load_cert_chain(client.cert, client.key)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=cctx)
    try:
        return await asyncio.wait_for(seen, 5)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_peer_identities_over_a_handshake(pki: TestPKI) -> None:
    alice = pki.client("alice", [("O", "acme"), ("CN", "alice")], emails=("alice@example.com",))
    found = await handshake_identities(pki, alice)
    assert kinds(found) == [
        ("text", "alice@example.com"), ("dn", "CN=alice,O=acme"), ("text", "CN=alice,O=acme"),
    ]
    assert await handshake_identities(pki, None) == []
