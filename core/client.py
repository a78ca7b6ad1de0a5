"""A connection as the core sees it, whatever door it came through."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.router import Subscription

#: One message of a batch: (subject shown, reply, header block, payload).
Delivery = tuple[bytes, bytes | None, bytes | None, bytes]

if TYPE_CHECKING:
    from core.accounts import Account
    from core.hub import Hub


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

    def __init__(self, hub: Hub, account: Account, ip: str = "", port: int = 0) -> None:
        self.hub = hub
        self.account = account
        self.cid = hub.next_cid()
        self.ip = ip
        self.port = port
        self.start = time.time()
        self.last_activity = self.start
        self.name = ""
        self.lang = ""
        self.version = ""
        self.user = ""
        self.in_msgs = 0
        self.in_bytes = 0
        self.out_msgs = 0
        self.out_bytes = 0
        self.subs: dict[bytes, Subscription] = {}
        self.closed = False

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

    # -- subscriptions ------------------------------------------------------------

    def subscribe(self, subject: bytes, queue: bytes | None, sid: bytes) -> Subscription:
        """Add a subscription; an existing sid keeps its subscription (as nats-server).

        Raises :class:`core.router.InvalidSubject`.
        """
        sub = self.subs.get(sid)
        if sub is not None:
            return sub
        sub = Subscription(self, sid, subject, queue)
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
        router = self.account.router
        for sub in self.subs.values():
            router.unsubscribe(sub)
        self.subs.clear()
        self.hub.remove_client(self)

    def close(self, reason: str = "") -> None:
        raise NotImplementedError
