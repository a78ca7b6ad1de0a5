"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) without I/O: messages in,
messages out.

A login is four messages: client-first (``n,,n=user,r=cnonce``), server-first
(``r=cnonce+snonce,s=salt,i=iterations``), client-final (``c=biws,r=...,p=proof``) and
server-final (``v=signature``).  :class:`ScramServer` checks the client's proof against
a user's :class:`Credentials` (salt, iteration count, StoredKey, ServerKey: never the
password itself); :class:`ScramClient` is the other side, for clients and tests.  Doors
carry the messages in their own packets (MQTT 5's AUTH, for one) and ask the
authenticator for credentials; a failed step raises :class:`ScramError`, whose text is
for the log, never for the peer.

Not supported, and refused: channel binding (a ``p=`` GS2 header), an authorization
identity other than the user, and SASL extensions.  Names and passwords are used as
UTF-8 as given (no SASLprep), which changes nothing for ASCII ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

#: Mechanism name -> hashlib digest name.
MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
#: Iterations for credentials made from a plain-text password (RFC 7677's minimum
#: recommendation).
DEFAULT_ITERATIONS = 4096
#: A client refuses a server asking for more work than this.
MAX_ITERATIONS = 1_000_000


class ScramError(Exception):
    """A SCRAM message that is malformed, or a proof or signature that does not verify."""


@dataclass(frozen=True)
class Credentials:
    """What a server keeps of a password for one mechanism (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _digest(mechanism: str) -> str:
    try:
        return MECHANISMS[mechanism]
    except KeyError:
        raise ScramError(f"unknown mechanism {mechanism!r}") from None


def _hmac(name: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, name).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(_digest(mechanism), password.encode(), salt, iterations)


def credentials(mechanism: str, password: str, salt: bytes,
                iterations: int = DEFAULT_ITERATIONS) -> Credentials:
    """The server's side of ``password`` for ``mechanism``."""
    name = _digest(mechanism)
    salted = salted_password(mechanism, password, salt, iterations)
    client_key = _hmac(name, salted, b"Client Key")
    return Credentials(salt, iterations, hashlib.new(name, client_key).digest(),
                       _hmac(name, salted, b"Server Key"))


def _fields(message: bytes, what: str) -> list[tuple[str, str]]:
    """``k=v,k=v`` pairs in order; values may hold ``=``."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise ScramError(f"{what} is not UTF-8") from None
    out = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError(f"{what}: bad attribute {part!r}")
        out.append((key, value))
    return out


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ScramError(f"{what} is not base64") from None


def _name(value: str) -> str:
    """A ``saslname``: ``=2C`` is a comma, ``=3D`` an equals sign, any other ``=`` wrong."""
    rest = value.replace("=2C", "").replace("=3D", "")
    if "=" in rest:
        raise ScramError(f"bad user name {value!r}")
    return value.replace("=2C", ",").replace("=3D", "=")


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _nonce() -> str:
    """Printable ASCII without commas, as RFC 5802 asks of a nonce."""
    return secrets.token_urlsafe(18)


class ScramServer:
    """One login on the server side.

    ``lookup(user)`` gives the credentials to check the proof against; for a user
    that cannot log in this way it should still give some (made up, stable per user) so
    the exchange looks the same and fails only at the proof.  :meth:`first` takes the
    client-first message and answers server-first; :meth:`final` takes client-final,
    checks the proof and answers server-final.  ``user`` is the name the client gave;
    ``verified`` is True once :meth:`final` succeeded, and only then.
    """

    def __init__(self, mechanism: str, lookup: Callable[[str], Credentials],
                 nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self._hash = _digest(mechanism)
        self._lookup = lookup
        self._server_nonce = nonce or _nonce()
        self.user = ""
        self.verified = False
        self._creds: Credentials | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._gs2 = ""

    def first(self, client_first: bytes) -> bytes:
        if self._creds is not None:
            raise ScramError("client-first message twice")
        try:
            text = client_first.decode()
        except UnicodeDecodeError:
            raise ScramError("client-first message is not UTF-8") from None
        flag, sep1, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep1 and sep2):
            raise ScramError("client-first message without a GS2 header")
        if flag.startswith("p="):
            raise ScramError("channel binding is not supported")
        if flag not in ("n", "y"):
            raise ScramError(f"bad GS2 flag {flag!r}")
        fields = _fields(bare.encode(), "client-first message")
        if len(fields) < 2 or fields[0][0] != "n" or fields[1][0] != "r" or not fields[1][1]:
            raise ScramError("client-first message needs n= and r=")
        if any(k == "m" for k, _ in fields):
            raise ScramError("mandatory extensions are not supported")
        user = _name(fields[0][1])
        if authzid and (not authzid.startswith("a=") or _name(authzid[2:]) != user):
            raise ScramError("an authorization identity other than the user")
        client_nonce = fields[1][1]
        self.user = user
        self._creds = self._lookup(user)
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        salt = base64.b64encode(self._creds.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._creds.iterations}"
        self._gs2 = text[: len(flag) + len(authzid) + 2]
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        creds = self._creds
        if creds is None or self.verified:
            raise ScramError("client-final message out of turn")
        fields = _fields(client_final, "client-final message")
        if len(fields) < 3 or fields[0][0] != "c" or fields[1][0] != "r" or \
                fields[-1][0] != "p":
            raise ScramError("client-final message needs c=, r= and p=")
        if _b64(fields[0][1], "channel binding") != self._gs2.encode():
            raise ScramError("channel binding data does not match the GS2 header")
        if fields[1][1] != self._nonce:
            raise ScramError("nonce does not match")
        proof = _b64(fields[-1][1], "proof")
        without_proof = client_final.decode().rsplit(",p=", 1)[0]
        auth_message = ",".join((self._client_first_bare, self._server_first,
                                 without_proof)).encode()
        signature = _hmac(self._hash, creds.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("proof of the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self._hash, client_key).digest(),
                                   creds.stored_key):
            raise ScramError(f"user {self.user!r}: the proof does not verify")
        self.verified = True
        server_signature = _hmac(self._hash, creds.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """One login on the client side: :meth:`first`, :meth:`final` (given server-first),
    then :meth:`check` (given server-final) raises unless the server knew the password."""

    def __init__(self, mechanism: str, user: str, password: str,
                 nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self._hash = _digest(mechanism)
        self.user = user
        self.password = password
        self._nonce = nonce or _nonce()
        self._bare = f"n={_saslname(user)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self._bare).encode()

    def final(self, server_first: bytes) -> bytes:
        fields = dict(_fields(server_first, "server-first message"))
        nonce, salt_text, iterations_text = fields.get("r"), fields.get("s"), fields.get("i")
        if not nonce or salt_text is None or iterations_text is None:
            raise ScramError("server-first message needs r=, s= and i=")
        if not nonce.startswith(self._nonce) or nonce == self._nonce:
            raise ScramError("the server's nonce does not extend ours")
        if not (iterations_text.isascii() and iterations_text.isdigit()
                and len(iterations_text) <= 7 and 0 < int(iterations_text) <= MAX_ITERATIONS):
            raise ScramError(f"iteration count {iterations_text!r}")
        salted = salted_password(self.mechanism, self.password, _b64(salt_text, "salt"),
                                 int(iterations_text))
        client_key = _hmac(self._hash, salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = ",".join((self._bare, server_first.decode(), without_proof)).encode()
        signature = _hmac(self._hash, stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = _hmac(self._hash, salted, b"Server Key")
        self._server_signature = _hmac(self._hash, server_key, auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: bytes) -> None:
        fields = dict(_fields(server_final, "server-final message"))
        if "e" in fields:
            raise ScramError(f"server error {fields['e']}")
        if not self._server_signature or not hmac.compare_digest(
                _b64(fields.get("v", ""), "server signature"), self._server_signature):
            raise ScramError("the server's signature does not verify")
