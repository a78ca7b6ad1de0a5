"""TLS shared by the client doors: server contexts and client-certificate identities.

Under ``verify_and_map`` nats-server takes the user name from the client's certificate,
trying in turn: e-mail SANs, DNS SANs, URI SANs, the subject compared as a distinguished
name (attribute types case-insensitive, values exact, RDN order tolerated), then two
subject strings in Go's ``pkix`` rendering ("CN=bob,OU=dev,O=acme"): with the domain
components appended and without them. :func:`peer_identities` lists those candidates in
that order and :func:`find_user` applies nats-server's matching rules to them.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DN",
    "CertDN",
    "find_user",
    "min_tls_version",
    "parse_dn",
    "peer_identities",
    "server_context",
]

DEFAULT_MIN_VERSION = "1.2"
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_TOO_OLD = {"1.0": "TLS 1.0", "1.1": "TLS 1.1"}


def min_tls_version(value: object) -> ssl.TLSVersion:
    """The version a tls ``min_version`` names; ValueError with nats-server's wording."""
    if not isinstance(value, str):
        raise ValueError(f"'min_version' wrong type: {value}")
    if value in _TOO_OLD:
        raise ValueError(f"unsupported TLS version: {_TOO_OLD[value]}")
    if value not in _VERSIONS:
        raise ValueError(f"unknown version: {value}")
    return _VERSIONS[value]


def server_context(
    cert: str, key: str, ca: str = "", verify: bool = False, min_version: str = ""
) -> ssl.SSLContext:
    """A server-side context as nats-server builds one from its tls options.

    Verification without a ``ca`` trusts the system roots, as Go does when no client CA
    pool is configured.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = min_tls_version(min_version or DEFAULT_MIN_VERSION)
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if not ca:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def client_context(ca: str = "", cert: str = "", key: str = "",
                   min_version: str = "") -> ssl.SSLContext:
    """A dialling side's context (a leaf node link): the server is verified against
    ``ca`` (else the system's roots) and its name; ``cert``/``key`` answer a server that
    asks for a client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    ctx.minimum_version = min_tls_version(min_version or DEFAULT_MIN_VERSION)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


# -- distinguished names -------------------------------------------------------------

Attribute = tuple[str, str]  # (type, value)
RDN = tuple[Attribute, ...]


def _same_rdn(a: RDN, b: RDN) -> bool:
    """Equal attribute count and each side's attributes found in the other."""

    def has(rdn: RDN, attr: Attribute) -> bool:
        return any(t.casefold() == attr[0].casefold() and v == attr[1] for t, v in rdn)

    return len(a) == len(b) and all(has(b, x) for x in a) and all(has(a, x) for x in b)


@dataclass(frozen=True)
class DN:
    """A distinguished name, most specific RDN first (RFC 4514 order)."""

    rdns: tuple[RDN, ...]

    def equal(self, other: DN) -> bool:
        """RFC 4517 distinguishedNameMatch: the same RDNs in the same positions."""
        return len(self.rdns) == len(other.rdns) and all(
            _same_rdn(a, b) for a, b in zip(self.rdns, other.rdns, strict=True)
        )

    def same_rdns(self, other: DN) -> bool:
        """Equal lengths and every RDN of ``self`` somewhere in ``other``: tolerates
        a reordered name."""
        return len(self.rdns) == len(other.rdns) and all(
            any(_same_rdn(a, b) for b in other.rdns) for a in self.rdns
        )

    def __str__(self) -> str:
        return ",".join(
            "+".join(f"{t}={_escape_4514(v)}" for t, v in rdn) for rdn in self.rdns
        )


def _escape_4514(value: str) -> str:
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;=' or (c == " " and i in (0, len(value) - 1)) or (c == "#" and i == 0):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


_LITERAL_ESCAPES = b' "#+,;<=>\\'


def parse_dn(text: str) -> DN | None:
    """A user name read as an RFC 4514 DN, with the leniencies nats-server's parser
    has (unescaped spaces around values dropped); None when it is not one."""
    data = text.encode()
    rdns: list[RDN] = []
    rdn: list[Attribute] = []
    buf = bytearray()
    kind = ""
    trailing = 0  # unescaped spaces at the end of buf
    i = 0

    def take() -> str:
        nonlocal trailing
        value = bytes(buf[: len(buf) - trailing]).decode(errors="surrogateescape")
        buf.clear()
        trailing = 0
        return value

    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            trailing = 0
            if i + 1 < len(data) and data[i + 1] in _LITERAL_ESCAPES:
                buf.append(data[i + 1])
                i += 2
                continue
            pair = data[i + 1 : i + 3]
            if not re.fullmatch(rb"[0-9A-Fa-f]{2}", pair):
                return None
            buf += bytes.fromhex(pair.decode())
            i += 3
            continue
        if c == 0x3D:  # '='
            kind = take()
            if data[i + 1 : i + 2] == b"#":
                return None  # BER-encoded values are not supported
        elif c in (0x2C, 0x2B):  # ',' '+'
            if not kind:
                return None
            rdn.append((kind, take()))
            kind = ""
            if c == 0x2C:
                rdns.append(tuple(rdn))
                rdn = []
        elif c == 0x20 and not buf:
            pass
        else:
            trailing = trailing + 1 if c == 0x20 else 0
            buf.append(c)
        i += 1
    if buf:
        if not kind:
            return None
        rdn.append((kind, take()))
        rdns.append(tuple(rdn))
    return DN(tuple(rdns))


class CertDN(str):
    """The certificate subject as a DN candidate: matched structurally, not as text."""

    dn: DN

    def __new__(cls, dn: DN) -> CertDN:
        self = super().__new__(cls, str(dn))
        self.dn = dn
        return self

    def match(self, names: Sequence[str]) -> str | None:
        """The first user name equal to this DN, else one holding the same RDNs."""
        parsed = [(n, parse_dn(n)) for n in names]
        candidates = [(n, d) for n, d in parsed if d is not None]
        for name, dn in candidates:
            if dn.equal(self.dn):
                return name
        for name, dn in candidates:
            if dn.same_rdns(self.dn):
                return name
        return None


def find_user(identities: Sequence[str], names: Iterable[str]) -> str | None:
    """The configured user a certificate maps to, trying ``identities`` in order.

    ``names`` are the user names allowed for this kind of connection.
    """
    names = list(names)
    known = set(names)
    for identity in identities:
        if isinstance(identity, CertDN):
            match = identity.match(names)
            if match is not None:
                return match
        elif identity in known:
            return identity
    return None


def peer_identities(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> list[str]:
    """The candidates of the client certificate on a TLS connection; [] without one."""
    if ssl_object is None:
        return []
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return []
    # cryptography's x509 costs 10 MB of RSS: only a hub whose clients present
    # certificates loads it.
    from jetport.core.certnames import identities_from_der

    try:
        return identities_from_der(der)
    except ValueError:  # a certificate OpenSSL took but cryptography cannot read
        return []
