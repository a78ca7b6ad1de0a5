"""The operator-mode chain of trust and the rules a user JWT must meet (sans-I/O).

The server trusts only the operator JWTs it is configured with; an account JWT counts
when one of them (or its signing key) signed it, and a user JWT when its account (or a
signing key of that account, with its scope) did.  Decoding and the claims themselves
are in :mod:`jetport.core.jwt`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import time
from datetime import datetime, timedelta
from itertools import product
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jetport.core import nkeys
from jetport.core.client import CONNECTION_TYPES
from jetport.core.jwt import (
    JWT_PREFIX,
    AccountClaims,
    ClaimPermissions,
    JwtError,
    OperatorClaims,
    Permission,
    UserClaims,
    UserPermissionLimits,
    UserScope,
    decode_account,
    decode_operator,
    decode_user,
    parse_decorated_jwt,
)
from jetport.core.subjects import is_valid_subject

#: Go's "15:04:05": hours 00-23, minutes and seconds 00-59.
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")

# -- user checks ------------------------------------------------------------------------


def _validate_user(user: UserClaims, now: float) -> None:
    """The blocking parts of nats-io/jwt's user validation."""
    if user.is_expired(now):
        raise JwtError("user JWT has expired")
    if user.not_yet_valid(now):
        raise JwtError("user JWT is not yet valid")
    if not nkeys.is_public_key(user.subject, "U"):
        raise JwtError("user JWT subject is not a user public key")
    if user.issuer_account and not nkeys.is_public_key(user.issuer_account, "A"):
        raise JwtError("issuer_account is not an account public key")
    for cidr in user.src:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise JwtError(f"invalid cidr {cidr!r} in user src limits") from None
    for start, end in user.times:
        if not (_TIME_OF_DAY.fullmatch(start) and _TIME_OF_DAY.fullmatch(end)):
            raise JwtError("invalid time range in user times limits")
    if user.times_location:
        _zone(user.times_location)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise JwtError(f"could not parse iana time zone by name: {name}") from None


def src_allowed(limits: UserPermissionLimits, client_ip: str) -> bool:
    """Does the user's ``src`` CIDR list admit a client from ``client_ip``?"""
    if not limits.src:
        return True
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for cidr in limits.src:
        try:
            if ip in ipaddress.ip_network(cidr, strict=False):
                return True
        except (ValueError, TypeError):
            return False
    return False


def connect_window(limits: UserPermissionLimits, now: float | None = None) -> float | None:
    """Seconds left in the current allowed ``times`` range; None when outside every range.

    Without ranges the answer is ``inf``.  A range whose start is after its end runs into
    the next day, counted from today's start only, as nats-server does.
    """
    if not limits.times:
        return float("inf")
    now = time.time() if now is None else now
    zone = _zone(limits.times_location) if limits.times_location else None
    current = datetime.fromtimestamp(now, zone) if zone else datetime.fromtimestamp(now)
    current = current if zone else current.astimezone()
    for start, end in limits.times:
        ms, me = _TIME_OF_DAY.fullmatch(start), _TIME_OF_DAY.fullmatch(end)
        if not (ms and me):
            return None
        t0 = current.replace(hour=int(ms[1]), minute=int(ms[2]), second=int(ms[3]),
                             microsecond=0)
        t1 = current.replace(hour=int(me[1]), minute=int(me[2]), second=int(me[3]),
                             microsecond=0)
        if t0 > t1:
            t1 += timedelta(days=1)
        if t0 < current < t1:
            return (t1 - current).total_seconds()
    return None


def _apply_template(
    items: tuple[str, ...], user: UserClaims, account: AccountClaims, fail_on_bad: bool
) -> tuple[str, ...]:
    """Expand ``{{name()}}``-style placeholders the way nats-server does for scopes."""
    def is_macro(tk: str) -> bool:
        return tk.startswith("{{") and tk.endswith("}}")

    if not any(is_macro(tk) for item in items for tk in item.split(".")):
        return items
    out: list[str] = []
    for item in items:
        tokens: list[str | None] = []
        tag_values: list[list[str]] = []
        for tk in item.split("."):
            if not is_macro(tk):
                tokens.append(tk)
                continue
            op = tk[2:-2].lower()
            if op == "name()":
                tokens.append(user.name)
            elif op == "subject()":
                tokens.append(user.subject)
            elif op == "account-name()":
                tokens.append(account.name)
            elif op == "account-subject()":
                tokens.append(user.issuer_account)
            elif op.startswith(("tag(", "account-tag(")) and op.endswith(")"):
                is_acc = op.startswith("account-tag(")
                prefix = op[len("account-tag(") if is_acc else len("tag("):-1].lower() + ":"
                tags = account.tags if is_acc else user.tags
                values = [t[len(prefix):] for t in tags if t.startswith(prefix)]
                if values:
                    tag_values.append(values)
                tokens.append(None)
            else:
                tokens.append(" ")  # unknown macro: make the subject invalid on purpose
        for combo in product(*tag_values) if tag_values else [()]:
            fill = iter(combo)
            parts = [next(fill, "") if tk is None else tk for tk in tokens]
            subject = ".".join(parts)
            try:
                valid = is_valid_subject(subject.encode())
            except UnicodeEncodeError:  # a lone surrogate from a JSON escape
                valid = False
            if valid:
                out.append(subject)
            elif fail_on_bad:
                raise JwtError("User JWT generated invalid permissions")
    return tuple(out)


def apply_scope(scope: UserScope, user: UserClaims, account: AccountClaims) -> UserClaims:
    """The user as a scoped signing key makes it: the scope's template replaces its rights."""
    tpl = scope.template
    perms = tpl.permissions
    pub_allow = _apply_template(perms.pub.allow, user, account, False)
    pub_deny = _apply_template(perms.pub.deny, user, account, True)
    sub_allow = _apply_template(perms.sub.allow, user, account, False)
    sub_deny = _apply_template(perms.sub.deny, user, account, True)
    if perms.sub.allow and not sub_allow and ">" not in sub_deny:
        sub_deny += (">",)
    if perms.pub.allow and not pub_allow and ">" not in pub_deny:
        pub_deny += (">",)
    new_perms = ClaimPermissions(
        Permission(pub_allow, pub_deny), Permission(sub_allow, sub_deny), perms.resp
    )
    fields = {f.name: getattr(tpl, f.name) for f in dataclasses.fields(UserPermissionLimits)}
    fields["permissions"] = new_perms
    return dataclasses.replace(user, **fields)


def effective_permissions(user: UserClaims, account: AccountClaims) -> ClaimPermissions | None:
    """The user's own permissions, else the account's ``default_permissions``; None = all."""
    if not user.permissions.is_empty():
        return user.permissions
    if not account.default_permissions.is_empty():
        return account.default_permissions
    return None


# -- the chain of trust -----------------------------------------------------------------


def read_operator_jwt(value: str) -> str:
    """An ``operator`` config value: a path to a (possibly decorated) JWT file, or the JWT."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return parse_decorated_jwt(f.read())
    if value.startswith(JWT_PREFIX):
        return parse_decorated_jwt(value)
    raise JwtError(f"cannot read operator JWT: {value}")


class Trust:
    """Operator mode: the configured operators, the preloaded accounts and user checks.

    ``preload`` maps account public keys to account JWTs (``resolver_preload``); each is
    decoded (signature checked) up front, and checked for trust and time when used.
    """

    def __init__(
        self,
        operator_jwts: list[str],
        preload: dict[str, str] | None = None,
        system_account: str | None = None,
    ) -> None:
        if not operator_jwts:
            raise JwtError("no operator JWT configured")
        self.operators: list[OperatorClaims] = []
        self.trusted_keys: set[str] = set()
        for token in operator_jwts:
            try:
                op = decode_operator(token)
            except JwtError as e:
                raise JwtError(f"operator JWT not valid: {e}") from e
            for key in op.signing_keys:
                if not nkeys.is_public_key(key, "O"):
                    raise JwtError(f"{key} is not an operator public key")
            if not op.strict_signing_key_usage:
                self.trusted_keys.add(op.subject)
            self.trusted_keys.update(op.signing_keys)
            self.operators.append(op)
        self._strict = {
            key for op in self.operators if op.strict_signing_key_usage
            for key in (op.subject, *op.signing_keys)
        }
        if system_account:
            named = [op.system_account for op in self.operators if op.system_account]
            if named and system_account not in named:
                raise JwtError("system_account in config and operator JWT must be identical")
            self.system_account = system_account
        else:
            self.system_account = self.operators[0].system_account
        self._accounts: dict[str, AccountClaims] = {}
        for key, token in (preload or {}).items():
            try:
                self._accounts[key] = decode_account(token)
            except JwtError as e:
                raise JwtError(f"preload account error for {key!r}: {e}") from e

    def account(self, pubkey: str, now: float | None = None) -> AccountClaims:
        """The trusted, current account JWT for ``pubkey``."""
        now = time.time() if now is None else now
        if not nkeys.is_public_key(pubkey, "A"):
            raise JwtError("will only fetch valid account keys")
        acc = self._accounts.get(pubkey)
        if acc is None:
            raise JwtError("account not found")
        if acc.subject != pubkey:
            raise JwtError("account JWT subject does not match its key")
        if acc.issuer not in self.trusted_keys:
            raise JwtError("account JWT not signed by trusted operator")
        if acc.is_expired(now) or acc.account_expired(now):
            raise JwtError("account JWT has expired")
        if acc.not_yet_valid(now):
            raise JwtError("account JWT is not yet valid")
        return acc

    def verify_user(
        self,
        user_jwt: str,
        nonce: bytes,
        signature: bytes | str | None,
        now: float | None = None,
        *,
        connection_type: str = "STANDARD",
        client_ip: str | None = None,
    ) -> tuple[AccountClaims, UserClaims]:
        """Authenticate a CONNECT carrying ``jwt`` and ``sig`` against the server nonce.

        ``signature`` is the raw signature, or the ``sig`` text as sent (both base64
        flavours are accepted).  The returned user has any scope template applied; its
        ``src`` is checked only when ``client_ip`` is given.  Order follows nats-server.
        """
        now = time.time() if now is None else now
        try:
            user = decode_user(user_jwt)
        except JwtError as e:
            raise JwtError(f"user JWT not valid: {e}") from e
        _validate_user(user, now)
        if user.allowed_connection_types:
            known = {t.upper() for t in user.allowed_connection_types} & CONNECTION_TYPES
            if not known or connection_type.upper() not in known:
                raise JwtError("connection type not allowed")
        acc = self.account(user.issuer_account or user.issuer, now)
        signers = dict(acc.signing_keys)
        if acc.issuer not in self._strict:
            signers.setdefault(acc.subject, None)
        if user.issuer not in signers:
            raise JwtError("user JWT issuer is not known")
        scope = signers[user.issuer]
        if scope is not None:
            if not user.has_empty_permissions():
                raise JwtError("scoped users require no permissions or limits set")
            user = apply_scope(scope, user, acc)
        if user.bearer_token and acc.limits.disallow_bearer:
            raise JwtError("account does not allow bearer tokens")
        if not user.bearer_token:
            if not signature:
                raise JwtError("signature missing")
            if isinstance(signature, str):
                signature = nkeys.decode_signature(signature)
                if signature is None:
                    raise JwtError("signature not valid base64")
            if not nkeys.verify(user.subject, nonce, signature):
                raise JwtError("signature not verified")
        if acc.is_revoked(user.subject, user.issued_at):
            raise JwtError("user authentication revoked")
        if client_ip is not None and not src_allowed(user, client_ip):
            raise JwtError(f"bad src ip {client_ip}")
        if connect_window(user, now) is None:
            raise JwtError("outside connect times")
        return acc, user
