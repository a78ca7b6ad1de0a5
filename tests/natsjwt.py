"""Make NATS operator/account/user keys and JWTs for tests, signed with the nkeys package.

JWTs are built the way nsc builds them (v2 layout, ``ed25519-nkey``, unlimited limits
written as -1); any claim can be overridden or added through keyword arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import nkeys

_KINDS = {
    "O": nkeys.PREFIX_BYTE_OPERATOR,
    "A": nkeys.PREFIX_BYTE_ACCOUNT,
    "U": nkeys.PREFIX_BYTE_USER,
}
UNLIMITED_ACCOUNT = {
    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
    "wildcards": True, "conn": -1, "leaf": -1,
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """An nkey pair of one kind ('O', 'A' or 'U')."""

    def __init__(self, kind: str) -> None:
        self.seed = nkeys.encode_seed(os.urandom(32), _KINDS[kind]).decode()
        self.pair = nkeys.from_seed(self.seed.encode())
        self.public_key = self.pair.public_key.decode()

    def sign(self, data: bytes) -> bytes:
        return self.pair.sign(data)


def encode(claims: dict[str, Any], signer: Keys, alg: str = "ed25519-nkey",
           typ: str = "JWT") -> str:
    """Sign ``claims`` as a JWT; ``iss`` and a ``jti`` are filled in unless given."""
    body = {"iss": signer.public_key, **claims}
    if "jti" not in body:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode() + os.urandom(8))
        body = {"jti": base64.b32encode(digest.digest()).decode().rstrip("="), **body}
    header = b64(json.dumps({"typ": typ, "alg": alg}, separators=(",", ":")).encode())
    payload = b64(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{header}.{payload}"
    # v1 signed the claims alone; v2 signs header and claims
    sig = signer.sign((payload if alg == "ed25519" else signed).encode())
    return f"{signed}.{b64(sig)}"


class _Entity:
    kind = ""
    #: Write the JWT in the first (v1) claim layout: ``type`` at the top, no ``version``
    #: in ``nats``, header ``alg`` ``ed25519``, as older tools and client test fixtures did.
    v1 = False

    def __init__(self, name: str, iat: int | None, exp: int | None, nbf: int | None,
                 nats: dict[str, Any]) -> None:
        self.keys = Keys(self.kind[0].upper())
        self.name = name
        self.iat = int(time.time()) if iat is None else iat
        self.exp = exp
        self.nbf = nbf
        self.nats = nats

    @property
    def public_key(self) -> str:
        return self.keys.public_key

    @property
    def seed(self) -> str:
        return self.keys.seed

    def signer(self) -> Keys:
        raise NotImplementedError

    @property
    def jwt(self) -> str:
        claims: dict[str, Any] = {"iat": self.iat, "name": self.name, "sub": self.public_key}
        if self.exp is not None:
            claims["exp"] = self.exp
        if self.nbf is not None:
            claims["nbf"] = self.nbf
        if self.v1:
            return encode({**claims, "type": self.kind, "nats": self.nats}, self.signer(),
                          alg="ed25519", typ="jwt")
        claims["nats"] = {**self.nats, "type": self.kind, "version": 2}
        return encode(claims, self.signer())


class Operator(_Entity):
    """A self-signed operator; ``signing_keys`` extra operator keys are made and listed."""

    kind = "operator"

    def __init__(self, name: str = "OP", *, signing_keys: int = 0, iat: int | None = None,
                 exp: int | None = None, **nats: Any) -> None:
        super().__init__(name, iat, exp, None, nats)
        self.signing_keys = [Keys("O") for _ in range(signing_keys)]
        if self.signing_keys:
            self.nats.setdefault("signing_keys", [k.public_key for k in self.signing_keys])

    def signer(self) -> Keys:
        return self.keys


class Account(_Entity):
    """An account signed by its operator (or ``signed_by``, e.g. an operator signing key).

    ``limits`` entries override the nsc defaults (everything unlimited).  Use
    :meth:`add_signing_key` for plain or scoped signing keys and :meth:`revoke` for
    revocations; ``.jwt`` always reflects the current state.
    """

    kind = "account"

    def __init__(self, operator: Operator, name: str = "A", *, signed_by: Keys | None = None,
                 limits: dict[str, Any] | None = None, iat: int | None = None,
                 exp: int | None = None, nbf: int | None = None, **nats: Any) -> None:
        nats = {
            "limits": {**UNLIMITED_ACCOUNT, **(limits or {})},
            "default_permissions": {"pub": {}, "sub": {}},
            "authorization": {},
            **nats,
        }
        super().__init__(name, iat, exp, nbf, nats)
        self.operator = operator
        self.signed_by = signed_by or operator.keys

    def signer(self) -> Keys:
        return self.signed_by

    def add_signing_key(self, template: dict[str, Any] | None = None, role: str = "") -> Keys:
        """A new account signing key; with ``template`` it is a ``user_scope`` key."""
        keys = Keys("A")
        entry: str | dict[str, Any] = keys.public_key
        if template is not None:
            entry = {"kind": "user_scope", "key": keys.public_key, "role": role,
                     "template": template}
        self.nats.setdefault("signing_keys", []).append(entry)
        return keys

    def revoke(self, user_key: str, at: int | None = None) -> None:
        """Revoke ``user_key`` ('*' for everyone) for JWTs issued at or before ``at``."""
        at = int(time.time()) if at is None else at
        self.nats.setdefault("revocations", {})[user_key] = at


class User(_Entity):
    """A user of ``account``, signed by the account or by one of its signing keys.

    With ``signed_by`` the JWT names the account in ``issuer_account``.  With
    ``scoped=True`` no permissions or limits are written (a scoped key supplies them).
    """

    kind = "user"

    def __init__(self, account: Account, name: str = "U", *, signed_by: Keys | None = None,
                 scoped: bool = False, bearer: bool = False, iat: int | None = None,
                 exp: int | None = None, nbf: int | None = None, **nats: Any) -> None:
        base: dict[str, Any] = {} if scoped else {
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
        }
        if bearer:
            base["bearer_token"] = True
        if signed_by is not None:
            base["issuer_account"] = account.public_key
        super().__init__(name, iat, exp, nbf, {**base, **nats})
        self.account = account
        self.signed_by = signed_by or account.keys

    def signer(self) -> Keys:
        return self.signed_by

    def sign_nonce(self, nonce: str | bytes, urlsafe: bool = False) -> str:
        """The CONNECT ``sig`` for ``nonce``: std base64 as nats-py sends, or raw url."""
        data = nonce.encode() if isinstance(nonce, str) else nonce
        raw = self.keys.sign(data)
        return b64(raw) if urlsafe else base64.b64encode(raw).decode()

    def creds_text(self) -> str:
        return (
            "-----BEGIN NATS USER JWT-----\n"
            f"{self.jwt}\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{self.seed}\n"
            "------END USER NKEY SEED------\n\n"
            "*************************************************************\n"
        )

    def creds(self, path: str | Path) -> Path:
        """Write a ``.creds`` file as nsc does; nats-py reads it via ``user_credentials=``."""
        path = Path(path)
        path.write_text(self.creds_text())
        return path
