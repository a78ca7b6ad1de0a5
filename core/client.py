"""A connection as the core sees it, whatever door it came through."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jetport.core.permissions import Permissions, Responses
from jetport.core.router import Subscription

#: One message of a batch: (subject shown, reply, header block, payload).
Delivery = tuple[bytes, bytes | None, bytes | None, bytes]

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.auth import Principal
    from jetport.core.hub import Hub

#: The connection types nats-server knows, for ``allowed_connection_types``.
CONNECTION_TYPES = frozenset(
    {"STANDARD", "WEBSOCKET", "MQTT", "MQTT_WS", "LEAFNODE", "LEAFNODE_WS", "IN_PROCESS"}
)


def tightest(*limits: int) -> int:
    """The smallest of limits where -1 means none."""
    set_ = [n for n in limits if n >= 0]
    return min(set_) if set_ else -1


class PermissionDenied(Exception):
    """A subscription the client's permissions do not allow."""


class TooManySubscriptions(Exception):
    """A subscription beyond the connection's limit."""


class Client:
    """Identity, counters and subscriptions of one connection.

    A door subclasses it and implements :meth:`deliver` (encode a message for its
    peer) and :meth:`close`.  Counters use nats-server's names so monitoring can
    report them as they are.
    """

    kind = "Client"
    #: The door's connection type for permissions ("STANDARD", "WEBSOCKET", "MQTT" ...).
    conn_type = "STANDARD"

    echo = True
    no_responders = False
    headers = False
    #: What this client publishes arrived over a link to another server, so it goes out
    #: over no link again (a leaf relays nothing between the servers it links to).
    over_link = False
    #: Times this client's input was held back for a congested reader (set on the
    #: instance at the first stall, so idle connections carry no entry for it).
    stalls = 0
    # What most connections keep at its first value is a class default, set on the
    # instance only when it changes: CPython keeps up to 30 instance attributes in a
    # compact array, and a connection past that pays for a full dict (1.5 KB).
    name = ""
    lang = ""
    version = ""
    user = ""
    in_msgs = 0
    in_bytes = 0
    out_msgs = 0
    out_bytes = 0
    closed = False
    #: Why the connection ended, in nats-server's words (/connz?state=closed).
    close_reason = ""
    #: None: unrestricted.  Set by :meth:`bind` from the authenticated user.
    perms: Permissions | None = None
    responses: Responses | None = None
    #: The deny check on what streams deliver to this client (consumers to its
    #: inboxes), as nats-server does it: on once the client holds a wildcard
    #: subscription that a subscribe deny rule overlaps, off otherwise.
    receive_filter: Callable[[bytes], bool] | None = None
    #: Per-connection subscription limit (-1: none).
    max_subs = -1
    #: Per-connection payload limit from the account or user (-1: the door's own).
    max_payload = -1
    expires = 0.0

    def connz_fields(self) -> dict[str, Any]:
        """What /connz shows of the client's own description (a door may show its own)."""
        return {k: v for k, v in (("name", self.name), ("lang", self.lang),
                                  ("version", self.version)) if v}

    def __init__(self, hub: Hub, account: Account, ip: str = "", port: int = 0) -> None:
        self.hub = hub
        self.account = account
        self.cid = hub.next_cid()
        self.ip = ip
        self.port = port
        self.start = time.time()
        self.last_activity = self.start
        self.subs: dict[bytes, Subscription] = {}

    # -- identity ---------------------------------------------------------------------

    def bind(self, account: Account, principal: Principal) -> None:
        """Join ``account`` as ``principal``; only before any subscription exists."""
        self.account.clients.discard(self)
        self.account = account
        account.clients.add(self)
        account.total_connections += 1
        self.keep("user", principal.user)
        self.keep("expires", principal.expires)
        self._apply_permissions(principal.permissions)
        server_max = self.hub.options.max_subscriptions
        self.keep("max_subs", tightest(account.max_subscriptions, principal.max_subs,
                                       server_max if server_max > 0 else -1))
        self.keep("max_payload", tightest(account.max_payload, principal.max_payload))

    def keep(self, name: str, value: object) -> None:
        """Set an attribute unless it already reads ``value`` (usually its class
        default), so that what most connections never change takes no room in them."""
        if getattr(self, name) != value:
            setattr(self, name, value)

    def rebind(self, principal: Principal) -> list[Subscription]:
        """New permissions for the same account; returns the subscriptions they end."""
        self._apply_permissions(principal.permissions)
        gone = [sub for sub in self.subs.values()
                if not self.may_subscribe(sub.subject, sub.queue)]
        for sub in gone:
            self.drop_subscription(sub)
        for sub in self.subs.values():
            sub.guard = self._guard_for(sub.subject)
            self._filter_deliveries_for(sub.subject)
        return gone

    def _filter_deliveries_for(self, subject: bytes) -> None:
        perms = self.perms
        if perms is not None and perms.needs_delivery_check(subject):
            self.receive_filter = perms.can_receive

    def _apply_permissions(self, perms: Permissions | None) -> None:
        self.keep("perms", perms)
        self.keep("receive_filter", None)
        resp = perms.responses if perms is not None else None
        self.keep("responses", Responses(resp) if resp is not None else None)

    def may_publish(self, subject: bytes) -> bool:
        """The permission check for publishing, with responses a service may send."""
        perms = self.perms
        if perms is None or perms.can_publish(subject):
            return True
        return self.responses is not None and self.responses.use(subject)

    def may_subscribe(self, subject: bytes, queue: bytes | None) -> bool:
        return self.perms is None or self.perms.can_subscribe(subject, queue)

    def _guard_for(self, subject: bytes) -> Callable[[bytes, bytes | None], bool] | None:
        """What checks each delivery to a new subscription on ``subject``, if anything."""
        perms, responses = self.perms, self.responses
        deny = perms.can_receive if perms is not None and perms.needs_delivery_check(
            subject) else None
        if responses is None and deny is None:
            return None

        def guard(shown: bytes, reply: bytes | None) -> bool:
            if deny is not None and not deny(shown):
                return False
            if responses is not None and reply:
                responses.grant(reply)
            return True

        return guard

    # -- delivery ---------------------------------------------------------------

    def deliver(
        self,
        sub: Subscription,
        subject: bytes,
        reply: bytes | None,
        hdr: bytes | None,
        payload: bytes,
    ) -> None:
        raise NotImplementedError

    def deliver_many(
        self, sub: Subscription, subject: bytes, reply: bytes | None, payloads: list[bytes]
    ) -> None:
        """Several header-less messages for one subscription; doors may encode them
        in one go."""
        for payload in payloads:
            self.deliver(sub, subject, reply, None, payload)

    def deliver_batch(self, sub: Subscription, msgs: list[Delivery]) -> None:
        """Messages for one subscription, each with its own subject and reply (a
        consumer's batch); doors may encode them in one go."""
        for subject, reply, hdr, payload in msgs:
            self.deliver(sub, subject, reply, hdr, payload)

    def deliver_runs(self, subs: list[Subscription], msgs: list[Delivery]) -> None:
        """``msgs[i]`` for ``subs[i]``, several of this client's subscriptions (one
        read's messages routed here); doors may encode them in one go."""
        start = 0
        for i in range(1, len(subs) + 1):
            if i == len(subs) or subs[i] is not subs[start]:
                self.deliver_batch(subs[start], msgs[start:i])
                start = i

    # -- subscriptions ------------------------------------------------------------

    def subscribe(self, subject: bytes, queue: bytes | None, sid: bytes) -> Subscription:
        """Add a subscription; an existing sid keeps its subscription (as nats-server).

        Raises :class:`jetport.core.router.InvalidSubject`, :class:`PermissionDenied` or
        :class:`TooManySubscriptions`.
        """
        sub = self.subs.get(sid)
        if sub is not None:
            return sub
        if self.perms is not None and not self.perms.can_subscribe(subject, queue):
            raise PermissionDenied(subject)
        if 0 <= self.max_subs <= len(self.subs):
            raise TooManySubscriptions(subject)
        sub = Subscription(self, sid, subject, queue)
        if self.perms is not None or self.responses is not None:
            sub.guard = self._guard_for(subject)
            self._filter_deliveries_for(subject)
        self.account.router.subscribe(sub)
        self.subs[sid] = sub
        return sub

    def unsubscribe(self, sid: bytes, max_msgs: int | None = None) -> None:
        """Remove now, or after ``max_msgs`` deliveries in total when that is ahead."""
        sub = self.subs.get(sid)
        if sub is None:
            return
        if max_msgs is not None and max_msgs > 0 and max_msgs > sub.delivered:
            sub.max_msgs = max_msgs
            return
        self.drop_subscription(sub)

    def drop_subscription(self, sub: Subscription) -> None:
        if self.subs.get(sub.sid) is sub:
            del self.subs[sub.sid]
        self.account.router.unsubscribe(sub)

    def release(self) -> None:
        """Forget every subscription and leave the hub; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.hub.remove_client(self)  # first: /connz?state=closed keeps its subscriptions
        router = self.account.router
        for sub in self.subs.values():
            router.unsubscribe(sub)
        self.subs.clear()
        self.account.clients.discard(self)

    def close(self, reason: str = "") -> None:
        raise NotImplementedError

    def error(self, text: str) -> None:
        """Tell the peer about a refused request; the connection stays open."""
