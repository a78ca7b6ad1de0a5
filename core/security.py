"""Live accounts and the authenticator, made from the options at start and on reload.

A reload keeps every account object (and so every subscription and stream) that is
still configured, updates limits and links, and re-checks each connection against the
new users: those no longer allowed are closed, the others get their new permissions
and lose subscriptions those no longer allow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jetport.core.accounts import GLOBAL_ACCOUNT, Account
from jetport.core.auth import Authenticator, AuthError, Principal
from jetport.core.config.auth import auth_config
from jetport.core.imports import link_imports, unlink
from jetport.core.log import log

if TYPE_CHECKING:
    from jetport.core.client import Client
    from jetport.core.config import Options
    from jetport.core.hub import Hub

ERR_ACCOUNT_CONNECTIONS = "maximum account active connections exceeded"


def _js_limits(options: Options, value: Any, explicit_accounts: bool) -> Any:
    if not options.jetstream:
        return None
    if value is None:
        if explicit_accounts:
            return None
        from jetport.core.jetstream.models import JetStreamAccountLimits

        return JetStreamAccountLimits()
    from jetport.core.jetstream.limits import account_limits_from_conf

    return account_limits_from_conf(value)


def configure(hub: Hub, options: Options) -> None:
    """Create or update the hub's accounts and authenticator from ``options``."""
    conf = auth_config(options)
    wanted = {GLOBAL_ACCOUNT, *conf.accounts}
    system = "" if conf.no_system_account else conf.system_account
    if system:
        wanted.add(system)
    any_js = any(a.jetstream is not None for a in conf.accounts.values())
    for name in wanted:
        acc = hub.accounts.get(name)
        if acc is None:
            acc = hub.add_account(name)
        unlink(acc)
        spec = conf.accounts.get(name)
        acc.is_system = name == system
        if spec is not None:
            acc.max_connections = spec.max_connections
            acc.max_subscriptions = spec.max_subscriptions
            acc.max_payload = spec.max_payload
            acc.default_permissions = spec.default_permissions
            acc.jetstream_limits = _js_limits(options, spec.jetstream, True)
        elif name == GLOBAL_ACCOUNT:
            # The global account has JetStream when no account asks for it itself.
            acc.jetstream_limits = _js_limits(options, None, any_js)
        else:
            acc.jetstream_limits = None
    hub.system_account = hub.accounts.get(system) if system else None
    link_imports(
        hub,
        {name: spec.imports for name, spec in conf.accounts.items()},
        {name: spec.exports for name, spec in conf.accounts.items()},
    )
    hub.auth = Authenticator(options)


def account_for(hub: Hub, principal: Principal) -> Account:
    """The live account of an authenticated principal (operator mode creates it)."""
    acc = hub.accounts.get(principal.account)
    if acc is not None:
        return acc
    claims = principal.account_claims
    acc = hub.add_account(principal.account)
    if claims is not None:
        acc.label = claims.name or principal.account
        limits = claims.limits
        acc.max_connections = limits.conn
        acc.max_subscriptions = limits.subs
        acc.max_payload = limits.payload
        acc.jetstream_limits = jwt_jetstream_limits(hub, limits)
    return acc


def jwt_jetstream_limits(hub: Hub, limits: Any) -> Any:
    """JetStream limits from an account JWT's limits (None when it grants none)."""
    if not hub.options.jetstream or not limits.jetstream_enabled():
        return None
    from jetport.core.jetstream.models import JetStreamAccountLimits

    return JetStreamAccountLimits(
        max_memory=limits.mem_storage, max_storage=limits.disk_storage,
        max_streams=limits.streams, max_consumers=limits.consumer,
    )


async def prepare(hub: Hub, principal: Principal) -> None:
    """Make sure the principal's account exists, with JetStream when it has any, before
    its first connection joins (operator mode meets accounts at login)."""
    if principal.account in hub.accounts:
        return
    acc = account_for(hub, principal)
    if hub.jetstream is not None:
        await hub.jetstream.configure(acc)


def admit(hub: Hub, client: Client, principal: Principal) -> str | None:
    """Place an authenticated client in its account; the error that refuses it."""
    acc = account_for(hub, principal)
    if acc.at_connection_limit():
        return ERR_ACCOUNT_CONNECTIONS
    client.bind(acc, principal)
    return None


async def reload(hub: Hub, options: Options) -> None:
    """Apply changed users, permissions and accounts without dropping allowed clients."""
    hub.options.auth_config = options.auth_config
    for name in ("username", "password", "token"):
        setattr(hub.options, name, getattr(options, name))
    configure(hub, hub.options)
    if hub.jetstream is not None:
        for acc in list(hub.accounts.values()):
            await hub.jetstream.configure(acc)
    for client in list(hub.clients.values()):
        opts = getattr(client, "connect_opts", None)
        if opts is None or client.kind != "Client":
            continue
        try:
            principal = await hub.auth.authenticate(
                opts, getattr(client, "nonce", ""), client.conn_type,
                getattr(client, "tls_identities", None), client.ip,
            )
        except AuthError as exc:
            log.info("cid:%d - no longer authorized after reload: %s", client.cid, exc)
            client.close("Authorization Violation")
            continue
        if hub.accounts.get(principal.account) is not client.account:
            client.close("Authorization Violation")
            continue
        for sub in client.rebind(principal):
            client.error(
                f'Permissions Violation for Subscription to "{sub.subject.decode()}" '
                f'(sid "{sub.sid.decode()}")'
            )
