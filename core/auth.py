"""Authentication: who a connection is, from what its CONNECT (or certificate) proves.

One :class:`Authenticator` serves every door.  It knows the configured users (name and
password, bcrypt hashes included, nkeys, certificate-mapped names), the server token,
``no_auth_user`` and, in operator mode, the trusted operator's JWT chain; it answers
with a :class:`Principal` (user, account, permissions) or refuses.  Refusals cost the
same whichever part was wrong, and repeated ones from one address wait longer.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jetport.core import nkeys
from jetport.core.accounts import GLOBAL_ACCOUNT
from jetport.core.config.auth import UserSpec, auth_config
from jetport.core.permissions import Permissions, ResponsePermission, RuleList
from jetport.core.scram import MECHANISMS, Credentials, ScramError, ScramServer, credentials
from jetport.core.tls import find_user

if TYPE_CHECKING:
    from jetport.core.config import Options

#: Failed attempts from one address wait FAILURE_DELAY * 2**(n-1), at most FAILURE_DELAY_MAX.
FAILURE_DELAY = 0.02
FAILURE_DELAY_MAX = 0.5
#: Failures older than this are forgotten.
FAILURE_MEMORY = 60.0
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2x$", "$2y$")
_DUMMY_PLAIN = secrets.token_urlsafe(16)


@dataclass
class Principal:
    """An authenticated identity."""

    user: str
    account: str
    permissions: Permissions | None = None
    #: Seconds since the epoch when the credentials expire (JWT); 0 = never.
    expires: float = 0.0
    #: The account's JWT claims in operator mode.
    account_claims: Any = None
    #: The user's own limits (JWT); -1: none.
    max_subs: int = -1
    max_payload: int = -1


class AuthError(Exception):
    """Credentials that do not prove any identity; the message is for the log."""


def _same(a: str, b: str) -> bool:
    """Constant-time comparison, so a wrong secret costs as long as a right one."""
    return hmac.compare_digest(a.encode(), b.encode())


def is_bcrypt(secret: str) -> bool:
    return secret.startswith(_BCRYPT_PREFIXES)


async def _secret_ok(given: Any, stored: str) -> bool:
    """``given`` against a stored plain or bcrypt secret; bcrypt runs off the loop."""
    if not isinstance(given, str):
        given = ""
    if not is_bcrypt(stored):
        return _same(given, stored)
    import bcrypt

    try:
        return await asyncio.to_thread(bcrypt.checkpw, given.encode(), stored.encode())
    except ValueError:
        return False


def _dummy_secret(passwords: list[str]) -> str:
    """What an unknown user's password is compared with, so that costs what a wrong
    password does: a bcrypt hash of the same cost when some password is one."""
    costs = [int(p[4:6]) for p in passwords if is_bcrypt(p) and p[4:6].isdigit()]
    if not costs:
        return _DUMMY_PLAIN
    import bcrypt

    salt = bcrypt.gensalt(rounds=max(min(costs), 4))
    return bcrypt.hashpw(secrets.token_bytes(16), salt).decode()


def scram_credentials(mechanism: str, name: str, password: str | None,
                      secret: bytes) -> Credentials:
    """What ``name`` logs in with by SCRAM: derived from its plain-text password with a
    salt stable for the process.  Without one (an unknown name, a bcrypt hash, which SCRAM
    cannot use) they are made up at the same cost, so the exchange fails only at the
    proof and tells nobody which names exist or how their passwords are kept."""
    salt = hmac.new(secret, f"{mechanism}\0{name}".encode(), "sha256").digest()[:16]
    if password is not None and not is_bcrypt(password):
        return credentials(mechanism, password, salt)
    made_up = credentials(mechanism, secrets.token_hex(16), salt)
    return Credentials(made_up.salt, made_up.iterations,
                       secrets.token_bytes(len(made_up.stored_key)), made_up.server_key)


def scram_refusal(login: ScramServer, exc: ScramError, password: str | None) -> AuthError:
    """The log's account of a failed SCRAM login, saying when the password is a bcrypt
    hash (the client only hears "bad user name or password")."""
    if login.verified or not login.user or password is None or not is_bcrypt(password):
        return AuthError(f"SCRAM: {exc}")
    return AuthError(f"SCRAM: user {login.user!r} has a bcrypt password, which SCRAM cannot "
                     "check: it needs the plain-text password")


def new_nonce() -> str:
    """The INFO nonce an nkey or JWT user signs: 11 random bytes, base64url."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode().rstrip("=")


class Authenticator:
    """The server's users and how each proves itself."""

    def __init__(self, options: Options) -> None:
        conf = auth_config(options)
        self.conf = conf
        self.username = options.username
        self.password = options.password
        self.token = options.token
        self.tls_map = bool(getattr(options, "tls_map", False))
        self.by_name: dict[str, UserSpec] = {}
        self.by_nkey: dict[str, UserSpec] = {}
        for user in conf.all_users():
            if user.nkey:
                self.by_nkey[user.nkey] = user
            else:
                self.by_name[user.name] = user
        if self.username:
            self.by_name[self.username] = UserSpec(
                self.username, self.password, permissions=conf.permissions
            )
        self.trust = None
        if conf.operator:
            from jetport.core.jwt_trust import Trust

            self.trust = Trust(conf.operator, conf.resolver_preload)
        self.required = bool(self.by_name or self.by_nkey or self.token or self.trust)
        #: INFO's auth_required: clients without credentials fall to no_auth_user.
        self.advertised = self.required and not conf.no_auth_user
        #: Whether INFO must carry a nonce for clients to sign.
        self.nonce_required = bool(self.by_nkey or self.trust)
        self._failures: dict[str, tuple[int, float]] = {}
        #: Refused authentications per connection type ("STANDARD", "MQTT", "HTTP" ...).
        self.failures: dict[str, int] = {}
        self._dummy = _dummy_secret([u.password for u in self.by_name.values()])
        #: Salts SCRAM credentials and makes up those of names that cannot log in.
        self._scram_secret = secrets.token_bytes(32)

    # -- permissions ------------------------------------------------------------------

    def permissions_of(self, user: UserSpec) -> Permissions | None:
        if user.permissions is not None:
            return user.permissions
        account = self.conf.accounts.get(user.account)
        if account is not None and account.default_permissions is not None:
            return account.default_permissions
        return self.conf.default_permissions

    def _principal(self, user: UserSpec, conn_type: str) -> Principal:
        if user.connection_types is not None and conn_type not in user.connection_types:
            raise AuthError(f"connection type {conn_type} not allowed")
        return Principal(user.nkey or user.name, user.account, self.permissions_of(user))

    # -- authentication ---------------------------------------------------------------

    async def authenticate(
        self,
        opts: dict[str, Any],
        nonce: str = "",
        conn_type: str = "STANDARD",
        identities: list[str] | None = None,
        ip: str = "",
        tls_map: bool | None = None,
    ) -> Principal:
        """The identity ``opts`` (a CONNECT's fields) proves, or :class:`AuthError`
        (counted per connection type).

        ``identities`` are the client certificate's names; they decide when the door's
        TLS settings map certificates to users (``tls_map``, else the server's).
        """
        try:
            return await self._authenticate(opts, nonce, conn_type, identities, ip, tls_map)
        except AuthError:
            self.note_failure(conn_type)
            raise

    def note_failure(self, conn_type: str) -> None:
        """Count a refusal a door decided itself (malformed or door-level credentials)."""
        self.failures[conn_type] = self.failures.get(conn_type, 0) + 1

    async def _authenticate(
        self,
        opts: dict[str, Any],
        nonce: str = "",
        conn_type: str = "STANDARD",
        identities: list[str] | None = None,
        ip: str = "",
        tls_map: bool | None = None,
    ) -> Principal:
        if not self.required:
            if self.conf.no_auth_user:
                return self.no_auth(conn_type)
            return Principal("", GLOBAL_ACCOUNT)
        if self.trust is not None:
            return self._jwt_user(opts, nonce, conn_type, ip)
        if opts.get("account") is not None or opts.get("new_account") is not None:
            raise AuthError("clients may not choose their account")
        nkey = opts.get("nkey")
        mapping = self.tls_map if tls_map is None else tls_map
        if mapping and identities is not None and not nkey:
            name = find_user(identities, self.by_name)
            if name is None:
                raise AuthError("no user for the client certificate")
            return self._principal(self.by_name[name], conn_type)
        if isinstance(nkey, str) and nkey and self.by_nkey:
            user = self.by_nkey.get(nkey)
            sig = opts.get("sig")
            raw = nkeys.decode_signature(sig) if isinstance(sig, str) else None
            if user is None or raw is None or not nkeys.verify(nkey, nonce.encode(), raw):
                raise AuthError("nkey signature does not verify")
            return self._principal(user, conn_type)
        name, password = opts.get("user"), opts.get("pass")
        if isinstance(name, str) and name:
            user = self.by_name.get(name)
            stored = user.password if user is not None else self._dummy
            if not await _secret_ok(password, stored) or user is None:
                raise AuthError(f"user {name!r}: bad password or unknown user")
            return self._principal(user, conn_type)
        token = opts.get("auth_token")
        if self.token and isinstance(token, str) and token:
            if not await _secret_ok(token, self.token):
                raise AuthError("bad token")
            return Principal("", GLOBAL_ACCOUNT)
        if self.conf.no_auth_user:
            return self.no_auth(conn_type)
        raise AuthError("no credentials")

    # -- SCRAM (enhanced authentication) ------------------------------------------------

    def scram_login(self, mechanism: str) -> ScramServer | None:
        """A SCRAM exchange against the users that log in with a name and password, or
        None when the mechanism is unknown or the server has no such users (operator
        mode, nkeys or a token only)."""
        if mechanism not in MECHANISMS or self.trust is not None or not self.by_name:
            return None

        def lookup(name: str) -> Credentials:
            user = self.by_name.get(name)
            return scram_credentials(mechanism, name, user.password if user else None,
                                     self._scram_secret)

        return ScramServer(mechanism, lookup)

    def scram_finish(self, login: ScramServer, client_final: bytes,
                     conn_type: str) -> tuple[bytes, Principal]:
        """The server-final message and who the client proved to be, or
        :class:`AuthError` (counted); the principal comes from the same place as a
        password login's."""
        user = self.by_name.get(login.user)
        try:
            server_final = login.final(client_final)
            if user is None:
                raise ScramError("unknown user")
            return server_final, self._principal(user, conn_type)
        except ScramError as exc:
            self.note_failure(conn_type)
            raise scram_refusal(login, exc, user.password if user else None) from None
        except AuthError:
            self.note_failure(conn_type)
            raise

    def no_auth(self, conn_type: str, name: str = "") -> Principal:
        """Who a client without credentials is: ``name`` (a door's own no_auth_user) or
        the server's no_auth_user."""
        name = name or self.conf.no_auth_user
        user = self.by_name.get(name) or self.by_nkey.get(name)
        if user is None:
            raise AuthError(f"no_auth_user {name!r} is not a user")
        return self._principal(user, conn_type)

    def _jwt_user(self, opts: dict[str, Any], nonce: str, conn_type: str,
                  ip: str) -> Principal:
        from jetport.core.jwt import JwtError
        from jetport.core.jwt_trust import effective_permissions

        token = opts.get("jwt")
        if not isinstance(token, str) or not token:
            raise AuthError("operator mode needs a user JWT")
        sig = opts.get("sig")
        assert self.trust is not None
        try:
            account, user = self.trust.verify_user(
                token, nonce.encode(), sig if isinstance(sig, str) else None,
                connection_type=conn_type, client_ip=ip or None,
            )
        except JwtError as exc:
            raise AuthError(f"user JWT: {exc}") from exc
        return Principal(
            user.name or user.subject, account.subject,
            jwt_permissions(effective_permissions(user, account)),
            expires=float(user.expires or 0), account_claims=account,
            max_subs=user.subs, max_payload=user.payload,
        )

    # -- failures ---------------------------------------------------------------------

    def failure_delay(self, address: str) -> float:
        """Record a failure from ``address``; how long to wait before answering it."""
        now = time.monotonic()
        count, last = self._failures.get(address, (0, 0.0))
        if now - last > FAILURE_MEMORY:
            count = 0
        count += 1
        self._failures[address] = (count, now)
        if len(self._failures) > 10_000:
            self._failures = {a: v for a, v in self._failures.items()
                              if now - v[1] <= FAILURE_MEMORY}
        delay: float = min(FAILURE_DELAY * 2 ** (count - 1), FAILURE_DELAY_MAX)
        return delay

    async def slow_refusal(self, address: str) -> None:
        """Wait before a door answers a failed login from ``address``: every door makes
        guessing passwords as slow as the NATS door does."""
        await asyncio.sleep(self.failure_delay(address))


def jwt_permissions(claims: Any) -> Permissions | None:
    """A JWT's permission claims (:class:`jetport.core.jwt.ClaimPermissions`) in the hub's form."""
    if claims is None:
        return None
    perms = Permissions()
    for side in ("pub", "sub"):
        rule = getattr(claims, side)
        if rule.allow:
            setattr(perms, f"{side}_allow", RuleList(list(rule.allow)))
        if rule.deny:
            setattr(perms, f"{side}_deny", RuleList(list(rule.deny)))
    resp = claims.resp
    if resp is not None:
        perms.responses = ResponsePermission(
            resp.max_msgs or 1, resp.ttl_ns / 1e9 if resp.ttl_ns else 0.0
        )
    return perms
