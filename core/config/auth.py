"""The security half of the config file: users, permissions, accounts, operator mode.

Keys and shapes are nats-server's (``authorization {}``, ``accounts {}``,
``no_auth_user``, ``system_account``, ``operator``/``resolver``/``resolver_preload``),
parsed here into plain specs; :mod:`jetport.core.security` turns them into live accounts and
an authenticator, again on every reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jetport.core.accounts import GLOBAL_ACCOUNT, SYSTEM_ACCOUNT
from jetport.core.client import CONNECTION_TYPES
from jetport.core.config.file import ConfDict
from jetport.core.config.keys import AUTHORIZATION_KEYS, TOP_LEVEL_KEYS, Entry, KeyTable, simple
from jetport.core.config.options import Options, OptionsError
from jetport.core.permissions import (
    DEFAULT_RESPONSE_MAX,
    DEFAULT_RESPONSE_TTL,
    Permissions,
    ResponsePermission,
    RuleList,
)
from jetport.core.subjects import is_subset


@dataclass
class UserSpec:
    name: str = ""
    password: str = ""
    nkey: str = ""
    account: str = GLOBAL_ACCOUNT
    permissions: Permissions | None = None
    connection_types: frozenset[str] | None = None


@dataclass
class ExportSpec:
    subject: str
    service: bool
    accounts: list[str] | None = None  # None: anyone may import
    response_type: str = "singleton"
    response_threshold: float = DEFAULT_RESPONSE_TTL


@dataclass
class ImportSpec:
    service: bool
    account: str
    subject: str  # in the exporting account
    local: str  # what the importer uses: ``to`` / ``prefix.subject`` / the subject


@dataclass
class AccountSpec:
    name: str
    users: list[UserSpec] = field(default_factory=list)
    exports: list[ExportSpec] = field(default_factory=list)
    imports: list[ImportSpec] = field(default_factory=list)
    default_permissions: Permissions | None = None
    #: The account's ``jetstream`` value as written (None when absent).
    jetstream: Any = None
    max_connections: int = -1
    max_subscriptions: int = -1
    max_payload: int = -1


@dataclass
class AuthConfig:
    """Everything about who may connect and what they may do."""

    users: list[UserSpec] = field(default_factory=list)
    permissions: Permissions | None = None  # of the single authorization user
    default_permissions: Permissions | None = None
    accounts: dict[str, AccountSpec] = field(default_factory=dict)
    no_auth_user: str = ""
    system_account: str = SYSTEM_ACCOUNT
    no_system_account: bool = False
    operator: list[str] = field(default_factory=list)
    resolver: str = ""
    resolver_preload: dict[str, str] = field(default_factory=dict)

    def all_users(self) -> list[UserSpec]:
        users = list(self.users)
        for acc in self.accounts.values():
            users.extend(acc.users)
        return users


def auth_config(opts: Options) -> AuthConfig:
    """The options' security settings, created on first use."""
    if opts.auth_config is None:
        opts.auth_config = AuthConfig()
    return opts.auth_config


# -- permissions ------------------------------------------------------------------------


def _strings(entry: Entry, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise entry.error(f"{entry.key!r} expects a subject or a list of subjects, got {value!r}")


def _rules(entry: Entry) -> tuple[RuleList | None, RuleList | None]:
    value = entry.value
    if isinstance(value, ConfDict):
        allow = deny = None
        for key, v in value.items():
            sub = Entry(key, v, value.where(key))
            if key.lower() == "allow":
                allow = RuleList(_strings(sub, v))
            elif key.lower() == "deny":
                deny = RuleList(_strings(sub, v))
            else:
                raise sub.error(f'unknown field "{key}" in {entry.key} permissions')
        return allow, deny
    return RuleList(_strings(entry, value)), None


def parse_permissions(entry: Entry) -> Permissions:
    perms = Permissions()
    for key, value in entry.block().items():
        sub = Entry(key, value, entry.value.where(key))
        name = key.lower()
        if name in ("publish", "pub"):
            perms.pub_allow, perms.pub_deny = _rules(sub)
        elif name in ("subscribe", "sub"):
            perms.sub_allow, perms.sub_deny = _rules(sub)
        elif name in ("allow_responses", "allow_response"):
            perms.responses = _responses(sub)
        else:
            raise sub.error(f'unknown field "{key}" in permissions')
    if perms.responses is not None and perms.pub_allow is None and perms.pub_deny is None:
        # nats-server: responses alone mean "publish nothing else".
        perms.pub_allow = RuleList([])
    return perms


def _responses(entry: Entry) -> ResponsePermission | None:
    value = entry.value
    if isinstance(value, bool):
        return ResponsePermission() if value else None
    block = entry.block()
    perm = ResponsePermission(DEFAULT_RESPONSE_MAX, DEFAULT_RESPONSE_TTL)
    for key, v in block.items():
        sub = Entry(key, v, block.where(key))
        if key.lower() == "max":
            perm.max = sub.integer()
        elif key.lower() in ("expires", "ttl"):
            perm.expires = sub.seconds()
        else:
            raise sub.error(f'unknown field "{key}" in allow_responses')
    return perm


# -- users ------------------------------------------------------------------------------

def _parse_user(entry: Entry, value: Any, account: str) -> UserSpec:
    if not isinstance(value, ConfDict):
        raise entry.error(f"a user must be a block {{ user: ..., password: ... }}, got {value!r}")
    spec = UserSpec(account=account)
    for key, v in value.items():
        sub = Entry(key, v, value.where(key))
        name = key.lower()
        if name in ("user", "username"):
            spec.name = sub.string()
        elif name in ("pass", "password"):
            spec.password = str(v) if isinstance(v, int | float) else sub.string()
        elif name == "nkey":
            spec.nkey = sub.string()
            if not (spec.nkey.startswith("U") and len(spec.nkey) == 56):
                raise sub.error(f"not a valid public user nkey: {spec.nkey!r}")
        elif name in ("permissions", "permission"):
            spec.permissions = parse_permissions(sub)
        elif name == "account":
            spec.account = sub.string()
        elif name == "allowed_connection_types":
            types = {t.upper() for t in _strings(sub, v)}
            unknown = types - CONNECTION_TYPES
            if unknown:
                raise sub.error(f"invalid connection types {sorted(unknown)}")
            spec.connection_types = frozenset(types)
        else:
            raise sub.error(f'unknown field "{key}" for a user')
    if spec.nkey and (spec.name or spec.password):
        raise entry.error("a user may not have both an nkey and a user/password")
    if not spec.nkey and not spec.name:
        raise entry.error("a user needs a user name or an nkey")
    return spec


def _users(entry: Entry, account: str) -> list[UserSpec]:
    if not isinstance(entry.value, list):
        raise entry.error(f"'users' expects a list of users, got {entry.value!r}")
    return [_parse_user(entry, v, account) for v in entry.value]


# -- authorization {} -------------------------------------------------------------------


@AUTHORIZATION_KEYS.key("users")
def _authorization_users(opts: Options, entry: Entry) -> None:
    auth_config(opts).users.extend(_users(entry, GLOBAL_ACCOUNT))


@AUTHORIZATION_KEYS.key("permissions", "permission")
def _authorization_permissions(opts: Options, entry: Entry) -> None:
    auth_config(opts).permissions = parse_permissions(entry)


@AUTHORIZATION_KEYS.key("default_permissions", "default_permission")
def _authorization_defaults(opts: Options, entry: Entry) -> None:
    auth_config(opts).default_permissions = parse_permissions(entry)


# -- accounts {} ------------------------------------------------------------------------


@TOP_LEVEL_KEYS.key("accounts")
def _accounts_key(opts: Options, entry: Entry) -> None:
    conf = auth_config(opts)
    block = entry.block()
    problems: list[str] = []
    for name, value in block.items():
        sub = Entry(name, value, block.where(name))
        try:
            conf.accounts[name] = _parse_account(sub)
        except OptionsError as exc:
            problems.append(str(exc))
    if problems:
        raise OptionsError("\n".join(problems))


def _parse_account(entry: Entry) -> AccountSpec:
    spec = AccountSpec(entry.key)
    value = entry.value
    if isinstance(value, list):  # ``A: [users...]`` is not nats-server's, a block is
        raise entry.error(f"account {entry.key!r} must be a block {{ users: [...] }}")
    if not isinstance(value, ConfDict):
        raise entry.error(f"account {entry.key!r} must be a block, got {value!r}")
    for key, v in value.items():
        sub = Entry(key, v, value.where(key))
        name = key.lower()
        if name == "users":
            spec.users.extend(_users(sub, spec.name))
        elif name == "exports":
            spec.exports.extend(_export(sub, x) for x in _list(sub))
        elif name == "imports":
            spec.imports.extend(_import(sub, x) for x in _list(sub))
        elif name in ("default_permissions", "default_permission"):
            spec.default_permissions = parse_permissions(sub)
        elif name == "jetstream":
            spec.jetstream = v
        elif name == "limits":
            _account_limits(spec, sub)
        elif name == "nkey":
            sub.string()
        else:
            raise sub.error(f'unknown field "{key}" in account {spec.name!r}')
    return spec


def _account_limits(spec: AccountSpec, entry: Entry) -> None:
    block = entry.block()
    for key, v in block.items():
        _account_limit(spec, Entry(key, v, block.where(key)))


def _account_limit(spec: AccountSpec, entry: Entry) -> None:
    name = entry.key.lower()
    if name in ("max_connections", "max_conn"):
        spec.max_connections = entry.integer()
    elif name in ("max_subscriptions", "max_subs"):
        spec.max_subscriptions = entry.integer()
    elif name == "max_payload":
        spec.max_payload = entry.integer()
    elif name != "max_leafnodes":
        raise entry.error(f'unknown field "{entry.key}" in account limits')


def _list(entry: Entry) -> list[Any]:
    if not isinstance(entry.value, list):
        raise entry.error(f"{entry.key!r} expects a list, got {entry.value!r}")
    return entry.value


def _export(entry: Entry, value: Any) -> ExportSpec:
    if not isinstance(value, ConfDict):
        raise entry.error(f"an export must be a block, got {value!r}")
    spec: ExportSpec | None = None
    accounts: list[str] | None = None
    rtype, threshold = "singleton", DEFAULT_RESPONSE_TTL
    for key, v in value.items():
        sub = Entry(key, v, value.where(key))
        name = key.lower()
        if name in ("stream", "service"):
            if spec is not None:
                raise sub.error("an export is either a stream or a service")
            spec = ExportSpec(sub.string(), name == "service")
        elif name == "accounts":
            accounts = _strings(sub, v)
        elif name in ("response", "response_type"):
            rtype = sub.string().lower()
            if rtype not in ("singleton", "stream", "chunked"):
                raise sub.error(f"unknown response type {v!r}")
        elif name in ("threshold", "response_threshold", "response_max_time",
                      "response_time"):
            threshold = sub.seconds()
        elif name not in ("latency", "account_token_position", "advertise", "allow_trace"):
            raise sub.error(f'unknown field "{key}" in export')
    if spec is None:
        raise entry.error("an export needs 'stream' or 'service'")
    spec.accounts = accounts
    spec.response_type, spec.response_threshold = rtype, threshold
    return spec


def _import(entry: Entry, value: Any) -> ImportSpec:
    if not isinstance(value, ConfDict):
        raise entry.error(f"an import must be a block, got {value!r}")
    spec: ImportSpec | None = None
    prefix = to = ""
    for key, v in value.items():
        sub = Entry(key, v, value.where(key))
        name = key.lower()
        if name in ("stream", "service"):
            src = sub.block()
            account = src.get("account")
            subject = src.get("subject")
            if not isinstance(account, str) or not isinstance(subject, str):
                raise sub.error("an import needs an account and a subject")
            spec = ImportSpec(name == "service", account, subject, subject)
        elif name == "prefix":
            prefix = sub.string()
        elif name in ("to", "local_subject"):
            to = sub.string()
        elif name not in ("share", "allow_trace"):
            raise sub.error(f'unknown field "{key}" in import')
    if spec is None:
        raise entry.error("an import needs 'stream' or 'service'")
    if prefix:
        spec.local = f"{prefix}.{spec.subject}"
    elif to:
        spec.local = to
    return spec


# -- top level --------------------------------------------------------------------------


@TOP_LEVEL_KEYS.key("no_auth_user")
def _no_auth_user(opts: Options, entry: Entry) -> None:
    auth_config(opts).no_auth_user = entry.string()


@TOP_LEVEL_KEYS.key("system_account", "system")
def _system_account(opts: Options, entry: Entry) -> None:
    auth_config(opts).system_account = entry.string()


@TOP_LEVEL_KEYS.key("no_system_account", "no_system", "no_sys_acc")
def _no_system_account(opts: Options, entry: Entry) -> None:
    auth_config(opts).no_system_account = entry.boolean()


@TOP_LEVEL_KEYS.key("operator", "operators", "root", "roots", "root_operator",
                    "root_operators")
def _operator(opts: Options, entry: Entry) -> None:
    from jetport.core.jwt import JwtError
    from jetport.core.jwt_trust import read_operator_jwt

    for value in _strings(entry, entry.value):
        try:
            auth_config(opts).operator.append(read_operator_jwt(value))
        except (JwtError, OSError) as exc:
            raise entry.error(str(exc)) from exc


@TOP_LEVEL_KEYS.key("resolver", "account_resolver", "accounts_resolver")
def _resolver(opts: Options, entry: Entry) -> None:
    value = entry.value
    if isinstance(value, str) and value.upper() in ("MEMORY", "MEM"):
        auth_config(opts).resolver = "MEMORY"
        return
    raise entry.error(f"resolver {value!r} is not supported by Jetport (only MEMORY)")


@TOP_LEVEL_KEYS.key("resolver_preload")
def _resolver_preload(opts: Options, entry: Entry) -> None:
    block = entry.block()
    for key, v in block.items():
        auth_config(opts).resolver_preload[key] = Entry(key, v, block.where(key)).string()


def export_for(exports: list[ExportSpec], imp: ImportSpec, importer: str) -> ExportSpec | None:
    """The export that lets ``importer`` import ``imp``, if any."""
    for exp in exports:
        if exp.service == imp.service and is_subset(imp.subject.encode(), exp.subject.encode()) \
                and (exp.accounts is None or importer in exp.accounts):
            return exp
    return None


def check(opts: Options) -> None:
    """Cross-checks once the whole file is read, as nats-server makes them."""
    conf = auth_config(opts)
    names: set[str] = set()
    for user in conf.all_users():
        ident = user.nkey or user.name
        if ident in names:
            raise OptionsError(f"duplicate user {ident!r} detected")
        names.add(ident)
        if user.account != GLOBAL_ACCOUNT and user.account not in conf.accounts:
            raise OptionsError(f"user {ident!r} names unknown account {user.account!r}")
    if conf.no_auth_user and conf.no_auth_user not in names:
        raise OptionsError(
            f'no_auth_user: "{conf.no_auth_user}" not present as user or nkey in '
            "authorization block or account configuration"
        )
    for acc in conf.accounts.values():
        for imp in acc.imports:
            if imp.account == acc.name:
                raise OptionsError(f"account {acc.name!r} cannot import from itself")
            if imp.account not in conf.accounts:
                raise OptionsError(f"import from unknown account {imp.account!r}")
            if export_for(conf.accounts[imp.account].exports, imp, acc.name) is None:
                kind = "service" if imp.service else "stream"
                raise OptionsError(f'Error adding {kind} import "{imp.subject}": '
                                   f"{kind} import not authorized")
    if conf.operator and conf.resolver_preload and not conf.resolver:
        conf.resolver = "MEMORY"
    if opts.token and conf.users:
        raise OptionsError("can not have a token and a users array")
    if opts.username and conf.users:
        raise OptionsError("can not have a single user/pass and a users array")


# -- the authorization block's own keys -----------------------------------------------

@TOP_LEVEL_KEYS.key("authorization")
def _authorization_key(opts: Options, entry: Entry) -> None:
    AUTHORIZATION_KEYS.apply(opts, entry.block())
    if (opts.username or opts.password) and opts.token:
        raise entry.error("cannot have a user/password and a token in authorization")


simple(AUTHORIZATION_KEYS, "username", "string", "user", "username")
simple(AUTHORIZATION_KEYS, "password", "string", "pass", "password")
simple(AUTHORIZATION_KEYS, "token", "string", "token")
simple(AUTHORIZATION_KEYS, "auth_timeout", "seconds", "timeout")


_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (AUTHORIZATION_KEYS, "auth callout", "auth_callout"),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())
