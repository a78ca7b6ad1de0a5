"""NATS JWT v2 decoding and the operator-mode chain of trust (sans-I/O).

A NATS JWT is ``header.payload.signature``, each part base64url without padding, signed
with Ed25519 by the nkey named in ``iss``.  Operators sign accounts, accounts (or their
signing keys) sign users; the server trusts only the operator JWTs it is configured with.
Field names and defaults follow the nats-io/jwt v2 JSON layout.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jetport.core import nkeys

NO_LIMIT = -1
ALL_USERS = "*"
JWT_PREFIX = "eyJ"
_SCOPE_KINDS = ("user_scope",)
_TOKEN = re.compile(r"[\w\-.=]+")


class JwtError(Exception):
    """A JWT that is malformed, badly signed, untrusted, expired or revoked."""


# -- claim types ------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not self.allow and not self.deny


@dataclass(frozen=True)
class ClaimResponsePermission:
    max_msgs: int = 0
    ttl_ns: int = 0


@dataclass(frozen=True)
class ClaimPermissions:
    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ClaimResponsePermission | None = None

    def is_empty(self) -> bool:
        return self.pub.is_empty() and self.sub.is_empty() and self.resp is None


@dataclass(frozen=True)
class UserPermissionLimits:
    """What a user JWT (or a signing-key scope template) says a user may do.

    Absent numeric limits decode as 0, as in Go; nsc writes -1 (NO_LIMIT) for unlimited.
    """

    permissions: ClaimPermissions = ClaimPermissions()
    subs: int = 0
    data: int = 0
    payload: int = 0
    src: tuple[str, ...] = ()
    times: tuple[tuple[str, str], ...] = ()
    times_location: str = ""
    bearer_token: bool = False
    allowed_connection_types: tuple[str, ...] = ()

    @property
    def pub_allow(self) -> tuple[str, ...]:
        return self.permissions.pub.allow

    @property
    def pub_deny(self) -> tuple[str, ...]:
        return self.permissions.pub.deny

    @property
    def sub_allow(self) -> tuple[str, ...]:
        return self.permissions.sub.allow

    @property
    def sub_deny(self) -> tuple[str, ...]:
        return self.permissions.sub.deny

    @property
    def resp(self) -> dict[str, int] | None:
        """``resp`` as in the JWT: ``{"max": n, "ttl": nanoseconds}``, or None."""
        r = self.permissions.resp
        return None if r is None else {"max": r.max_msgs, "ttl": r.ttl_ns}

    def has_empty_permissions(self) -> bool:
        """True when nothing is set: what a user signed by a scoped key must look like."""
        return self.limits_view() == UserPermissionLimits()

    def limits_view(self) -> UserPermissionLimits:
        return UserPermissionLimits(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(UserPermissionLimits)}
        )


@dataclass(frozen=True)
class Claims:
    """Fields common to every NATS JWT; ``nats`` is the raw type-specific object."""

    kind: str = ""
    subject: str = ""
    issuer: str = ""
    name: str = ""
    issued_at: int = 0
    expires: int = 0
    not_before: int = 0
    jti: str = ""
    audience: str = ""
    tags: tuple[str, ...] = ()
    version: int = 0
    nats: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def is_expired(self, now: float | None = None) -> bool:
        """Go's ClaimsData check: expired once ``now`` is past ``exp``."""
        now = time.time() if now is None else now
        return self.expires > 0 and int(now) > self.expires

    def not_yet_valid(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.not_before > 0 and self.not_before > int(now)


@dataclass(frozen=True)
class OperatorClaims(Claims):
    signing_keys: tuple[str, ...] = ()
    system_account: str = ""
    strict_signing_key_usage: bool = False
    assert_server_version: str = ""
    account_server_url: str = ""
    operator_service_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserScope:
    """A scoped account signing key: users it signs get ``template`` as their rights."""

    key: str
    role: str = ""
    template: UserPermissionLimits = UserPermissionLimits()


@dataclass(frozen=True)
class AccountClaimLimits:
    """The account ``limits`` object (NATS, account and JetStream limits flattened)."""

    subs: int = 0
    data: int = 0
    payload: int = 0
    imports: int = 0
    exports: int = 0
    wildcards: bool = False
    disallow_bearer: bool = False
    conn: int = 0
    leaf: int = 0
    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False
    tiered_limits: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    def jetstream_enabled(self) -> bool:
        """nats-server enables JetStream for an account when any storage limit is non-zero."""
        if self.tiered_limits:
            return any(
                t.get("mem_storage", 0) or t.get("disk_storage", 0)
                for t in self.tiered_limits.values()
            )
        return bool(self.mem_storage or self.disk_storage)


@dataclass(frozen=True)
class AccountClaims(Claims):
    signing_keys: dict[str, UserScope | None] = field(default_factory=dict, compare=False)
    limits: AccountClaimLimits = AccountClaimLimits()
    imports: tuple[dict[str, Any], ...] = ()
    exports: tuple[dict[str, Any], ...] = ()
    default_permissions: ClaimPermissions = ClaimPermissions()
    revocations: dict[str, int] = field(default_factory=dict, compare=False)
    mappings: dict[str, Any] = field(default_factory=dict, compare=False)
    description: str = ""
    info_url: str = ""

    def is_revoked(self, user_key: str, issued_at: int) -> bool:
        """Revoked when the entry for the user, or the ``*`` entry, is at or after ``iat``."""
        for key in (user_key, ALL_USERS):
            at = self.revocations.get(key)
            if at is not None and at >= issued_at:
                return True
        return False

    def account_expired(self, now: float | None = None) -> bool:
        """The account check nats-server applies on connect: expired at ``exp`` itself."""
        now = time.time() if now is None else now
        return self.expires > 0 and self.expires <= int(now)


@dataclass(frozen=True)
class UserClaims(Claims, UserPermissionLimits):
    issuer_account: str = ""


# -- decoding ---------------------------------------------------------------------------


def _b64raw(part: str) -> bytes:
    if not nkeys.RAW_URL.fullmatch(part) or len(part) % 4 == 1:
        raise JwtError("invalid base64url encoding")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JwtError("invalid base64url encoding") from None


def _get(d: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = d.get(key)
    if value is None:
        return default
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise JwtError(f"field {key!r} is not an integer")
    if kind is not int and not isinstance(value, kind):
        raise JwtError(f"field {key!r} has the wrong type")
    return value


def _strs(d: dict[str, Any], key: str) -> tuple[str, ...]:
    value = d.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JwtError(f"field {key!r} is not a list of strings")
    return tuple(value)


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    value: dict[str, Any] = _get(d, key, dict, {})
    return value


def _permission(d: dict[str, Any]) -> Permission:
    return Permission(_strs(d, "allow"), _strs(d, "deny"))


def _permissions(d: dict[str, Any]) -> ClaimPermissions:
    resp = d.get("resp")
    if resp is not None:
        if not isinstance(resp, dict):
            raise JwtError("field 'resp' is not an object")
        resp = ClaimResponsePermission(_get(resp, "max", int, 0), _get(resp, "ttl", int, 0))
    return ClaimPermissions(_permission(_obj(d, "pub")), _permission(_obj(d, "sub")), resp)


def _cidrs(d: dict[str, Any]) -> tuple[str, ...]:
    value = d.get("src")
    if isinstance(value, str):  # older JWTs: one comma separated string
        return tuple(p for p in (s.strip().lower() for s in value.split(",")) if p)
    return _strs(d, "src")


def _limits(d: dict[str, Any], numeric_default: int) -> UserPermissionLimits:
    times = []
    for item in _get(d, "times", list, []):
        if not isinstance(item, dict):
            raise JwtError("field 'times' holds a non-object")
        times.append((_get(item, "start", str, ""), _get(item, "end", str, "")))
    return UserPermissionLimits(
        permissions=_permissions(d),
        subs=_get(d, "subs", int, numeric_default),
        data=_get(d, "data", int, numeric_default),
        payload=_get(d, "payload", int, numeric_default),
        src=_cidrs(d),
        times=tuple(times),
        times_location=_get(d, "times_location", str, ""),
        bearer_token=_get(d, "bearer_token", bool, False),
        allowed_connection_types=_strs(d, "allowed_connection_types"),
    )


def _signing_keys(items: list[Any]) -> dict[str, UserScope | None]:
    keys: dict[str, UserScope | None] = {}
    for item in items:
        if isinstance(item, str):
            keys[item] = None
        elif isinstance(item, dict) and item.get("kind") in _SCOPE_KINDS:
            key = _get(item, "key", str, "")
            # Go starts a template at -1 (no limit) before reading it.
            template = _limits(_obj(item, "template"), NO_LIMIT)
            keys[key] = UserScope(key, _get(item, "role", str, ""), template)
        else:
            kind = item.get("kind") if isinstance(item, dict) else item
            raise JwtError(f"unknown signing key scope {kind!r}")
    return keys


def _account_limits(d: dict[str, Any]) -> AccountClaimLimits:
    ints = {
        f.name: _get(d, f.name, int, 0)
        for f in dataclasses.fields(AccountClaimLimits)
        if f.type == "int"
    }
    bools = {
        f.name: _get(d, f.name, bool, False)
        for f in dataclasses.fields(AccountClaimLimits)
        if f.type == "bool"
    }
    return AccountClaimLimits(**ints, **bools, tiered_limits=_obj(d, "tiered_limits"))


def _common(payload: dict[str, Any], nats: dict[str, Any], kind: str,
            version: int) -> dict[str, Any]:
    tags = _strs(nats, "tags") if version >= 2 else _strs(payload, "tags")
    return {
        "kind": kind,
        "subject": _get(payload, "sub", str, ""),
        "issuer": _get(payload, "iss", str, ""),
        "name": _get(payload, "name", str, ""),
        "issued_at": _get(payload, "iat", int, 0),
        "expires": _get(payload, "exp", int, 0),
        "not_before": _get(payload, "nbf", int, 0),
        "jti": _get(payload, "jti", str, ""),
        "audience": _get(payload, "aud", str, ""),
        "tags": tags,
        "version": version,
        "nats": nats,
    }


def _build(payload: dict[str, Any], nats: dict[str, Any], kind: str, version: int) -> Claims:
    common = _common(payload, nats, kind, version)
    if kind == "operator":
        return OperatorClaims(
            **common,
            signing_keys=_strs(nats, "signing_keys"),
            system_account=_get(nats, "system_account", str, ""),
            strict_signing_key_usage=_get(nats, "strict_signing_key_usage", bool, False),
            assert_server_version=_get(nats, "assert_server_version", str, ""),
            account_server_url=_get(nats, "account_server_url", str, ""),
            operator_service_urls=_strs(nats, "operator_service_urls"),
        )
    if kind == "account":
        revocations = _obj(nats, "revocations")
        return AccountClaims(
            **common,
            signing_keys=_signing_keys(_get(nats, "signing_keys", list, [])),
            limits=_account_limits(_obj(nats, "limits")),
            imports=tuple(_get(nats, "imports", list, [])),
            exports=tuple(_get(nats, "exports", list, [])),
            default_permissions=_permissions(_obj(nats, "default_permissions")),
            revocations={k: _get(revocations, k, int, 0) for k in revocations},
            mappings=_obj(nats, "mappings"),
            description=_get(nats, "description", str, ""),
            info_url=_get(nats, "info_url", str, ""),
        )
    if kind == "user":
        # v1 users carried no limits: absent ones mean none, as nats-io/jwt migrates them
        limits = _limits(nats, NO_LIMIT if version < 2 else 0)
        issuer_account = _get(nats, "issuer_account", str, "")
        if version < 2 and not issuer_account:
            issuer_account = _get(payload, "issuer_account", str, "")
        return UserClaims(
            **common,
            **{f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)},
            issuer_account=issuer_account,
        )
    return Claims(**common)


#: The nkey kinds allowed to sign each claim type (nats-io/jwt ExpectedPrefixes).
_SIGNERS = {"operator": "O", "account": "AO", "user": "A", "activation": "AO"}


def decode(token: str) -> Claims:
    """Decode ``token`` and check its Ed25519 signature against its ``iss``.

    Only ``iss`` and the format version are read before the signature is verified; every
    other claim is built afterwards.  Expiry is not checked here (see :class:`Trust`).
    """
    if not isinstance(token, str):
        raise JwtError("JWT is not a string")
    chunks = token.split(".")
    if len(chunks) != 3:
        raise JwtError("expected 3 chunks")
    try:
        header = json.loads(_b64raw(chunks[0]))
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        raise JwtError("invalid header") from None
    if not isinstance(header, dict) or str(header.get("typ", "")).upper() != "JWT":
        raise JwtError("not supported type")
    if str(header.get("alg", "")).lower() not in ("ed25519", "ed25519-nkey"):
        raise JwtError(f"unexpected {header.get('alg')!r} algorithm")
    try:
        payload = json.loads(_b64raw(chunks[1]))
    except (ValueError, RecursionError):
        raise JwtError("invalid payload") from None
    if not isinstance(payload, dict):
        raise JwtError("invalid payload")
    signature = _b64raw(chunks[2])
    nats = payload.get("nats") or {}
    if not isinstance(nats, dict):
        raise JwtError("field 'nats' is not an object")
    v1_type = payload.get("type")
    version = 1 if v1_type else _get(nats, "version", int, 0)
    if version > 2:
        raise JwtError("JWT was generated by a newer version")
    issuer = payload.get("iss")
    if not isinstance(issuer, str):
        raise JwtError("missing issuer")
    # the header's algorithm says what was signed, as nats-io/jwt reads it: the claims
    # alone for ``ed25519`` (v1), header and claims for ``ed25519-nkey``
    old_alg = str(header.get("alg", "")).lower() == "ed25519"
    signed = chunks[1] if old_alg else f"{chunks[0]}.{chunks[1]}"
    if not nkeys.verify(issuer, signed.encode(), signature):
        raise JwtError("claim failed signature verification")
    kind = str(v1_type or nats.get("type") or "")
    signers = _SIGNERS.get(kind)
    if signers is not None and not any(nkeys.is_public_key(issuer, k) for k in signers):
        raise JwtError(f"issuer {issuer} may not sign {kind} claims")
    return _build(payload, nats, kind, version)


C = TypeVar("C", bound="Claims")


def _decode_kind(token: str, kind: type[C], name: str) -> C:
    claims = decode(token)
    if not isinstance(claims, kind):
        raise JwtError(f"not {name} claim")
    return claims


def decode_operator(token: str) -> OperatorClaims:
    return _decode_kind(token, OperatorClaims, "operator")


def decode_account(token: str) -> AccountClaims:
    return _decode_kind(token, AccountClaims, "account")


def decode_user(token: str) -> UserClaims:
    return _decode_kind(token, UserClaims, "user")


def parse_decorated_jwt(text: str) -> str:
    """The JWT inside an nsc-decorated file (``-----BEGIN ... JWT-----`` blocks), or the
    whole text, stripped, when it is not decorated."""
    lines = text.splitlines()
    for i in range(len(lines) - 2):
        if _banner(lines[i]) and _TOKEN.fullmatch(lines[i + 1]) and _banner(lines[i + 2]):
            return lines[i + 1]
    return text.strip()


def _banner(line: str) -> bool:
    """``-----BEGIN NATS USER JWT-----``: three dashes or more at each end.  Checked
    line by line: a regular expression over the whole text backtracks for ages on a
    long run of dashes or blanks."""
    body = line.strip()
    return len(body) >= 6 and body[:3] == "---" and body[-3:] == "---"
