"""The door's view of one caller: an internal client bound to the caller's account.

Every HTTP request acts through a :class:`DoorClient` carrying the caller's account and
permissions, so the core's one permission check and account isolation apply exactly as
for a NATS connection.  Replies (PubAcks, ``$JS.API`` answers, pulled messages) come back
on the client's private inbox; each waiter owns one reply subject.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jetport.api.domain import DOMAIN, api_subject
from jetport.api.errors import HttpError, from_api_error, utf8
from jetport.core import headers as H
from jetport.core.client import Delivery, PermissionDenied, TooManySubscriptions, tightest
from jetport.core.internal import InternalClient
from jetport.core.router import InvalidSubject, Subscription

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.auth import Principal
    from jetport.core.hub import Hub

#: Stop collecting when this returns True for the deliveries so far.
Done = Callable[[list[Delivery]], bool]


def status_of(hdr: bytes | None) -> int:
    """The status code of a NATS status message (0 for an ordinary message)."""
    if not hdr or not hdr.startswith(H.PREFIX) or len(hdr) < 12:
        return 0
    code = hdr[9:12]
    return int(code) if code.isdigit() else 0


class _Waiter:
    __slots__ = ("items", "done", "future")

    def __init__(self, done: Done, future: asyncio.Future[list[Delivery]]) -> None:
        self.items: list[Delivery] = []
        self.done = done
        self.future = future


class DoorClient(InternalClient):
    """Publishes and requests for callers of one principal in one account."""

    kind = "HTTP"
    conn_type = "HTTP"
    no_responders = True

    def __init__(self, hub: Hub, account: Account, principal: Principal) -> None:
        super().__init__(hub, account, "http")
        self.inbox = b"_INBOX.%s." % secrets.token_hex(10).encode()
        self._ids = itertools.count(1)
        self._waiting: dict[bytes, _Waiter] = {}
        # The inbox is the door's own: subscribed before the caller's permissions apply.
        self.listen(self.inbox + b"*", self._on_reply, batch=self._on_replies)
        self._own: dict[bytes, Subscription] = {}
        self.refresh(principal)

    def refresh(self, principal: Principal) -> None:
        """Take the principal's current permissions and limits (they change on reload)."""
        self.user = principal.user
        self._apply_permissions(principal.permissions)
        self.max_payload = tightest(self.account.max_payload, principal.max_payload)

    @property
    def payload_limit(self) -> int:
        server = self.hub.options.max_payload
        return server if self.max_payload < 0 else min(server, self.max_payload)

    # -- replies ----------------------------------------------------------------------

    def _on_reply(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payload: bytes) -> None:
        self._on_replies([(subject, reply, hdr, payload)])

    def _on_replies(self, msgs: list[Delivery]) -> None:
        for msg in msgs:
            waiter = self._waiting.get(msg[0])
            if waiter is None or waiter.future.done():
                continue
            waiter.items.append(msg)
            if waiter.done(waiter.items):
                waiter.future.set_result(waiter.items)

    def expect(self, done: Done, own: bool = False
               ) -> tuple[bytes, asyncio.Future[list[Delivery]]]:
        """A fresh reply subject and the future of what arrives on it until ``done``.

        Replies arrive under their reply subject; consumer deliveries show the stored
        subject instead, so a pull (``own``) gets a subscription of its own.
        """
        reply = self.inbox + b"%d" % next(self._ids)
        fut: asyncio.Future[list[Delivery]] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(done, fut)
        self._waiting[reply] = waiter
        if own:
            def on_msg(subject: bytes, rep: bytes | None, hdr: bytes | None,
                       payload: bytes) -> None:
                if not fut.done():
                    waiter.items.append((subject, rep, hdr, payload))
                    if done(waiter.items):
                        fut.set_result(waiter.items)

            self._own[reply] = self.private(b"_PULL." + reply, on_msg)
        return (b"_PULL." + reply if own else reply), fut

    def private(self, subject: bytes, handler: Callable[..., None]) -> Subscription:
        """A subscription of the door's own, outside the caller's permissions and limits."""
        self._sid += 1
        sid = b"%d" % self._sid
        self._handlers[sid] = handler
        sub = Subscription(self, sid, subject, None)
        self.account.router.subscribe(sub)
        self.subs[sid] = sub
        return sub

    async def gather(self, reply: bytes, fut: asyncio.Future[list[Delivery]],
                     timeout: float) -> list[Delivery]:
        """What came on ``reply`` when done or when ``timeout`` ran out."""
        key = reply.removeprefix(b"_PULL.")
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            waiter = self._waiting.get(key)
            return list(waiter.items) if waiter is not None else []
        finally:
            self._waiting.pop(key, None)
            sub = self._own.pop(key, None)
            if sub is not None:
                self.drop_subscription(sub)
                self._handlers.pop(sub.sid, None)

    # -- permission-checked actions ---------------------------------------------------

    def check_publish(self, subject: str | bytes) -> bytes:
        raw = utf8(subject, "subject") if isinstance(subject, str) else subject
        if not self.may_publish(raw):
            raise HttpError(403, 10403, f'permissions violation for publish to "{raw.decode()}"')
        return raw

    def publish(self, subject: bytes, hdr: bytes | None, payload: bytes,
                reply: bytes | None = None) -> int:
        """Deliver one message as the caller; 400 for a subject nobody may publish on."""
        try:
            return self.send(subject, reply, hdr, payload)
        except InvalidSubject:
            raise HttpError(400, 10400, f"invalid subject {subject.decode()!r}") from None

    async def request(self, subject: bytes, payload: bytes, hdr: bytes | None = None,
                      timeout: float = 5.0) -> Delivery:
        """Publish with a reply subject and wait for one answer: 503 with nobody
        listening, 504 when nobody answers in time."""
        self.check_publish(subject)
        reply, fut = self.expect(lambda items: True)
        self.publish(subject, hdr, payload, reply)
        items = await self.gather(reply, fut, timeout)
        if not items:
            raise HttpError(504, 10504, f"no reply on {subject.decode()!r} within {timeout}s")
        msg = items[0]
        if status_of(msg[2]) == 503 and not msg[3]:
            raise HttpError(503, 10503, f"no responders on {subject.decode()!r}")
        return msg

    async def js(self, api: str, body: Any = None, timeout: float = 5.0) -> dict[str, Any]:
        """One ``$JS.API`` request as the caller; errors become HTTP errors."""
        payload = body if isinstance(body, bytes) else (
            b"" if body is None else json.dumps(body).encode())
        try:
            _, _, _, data = await self.request(utf8(api_subject(api), "name"), payload,
                                               timeout=timeout)
        except HttpError as exc:
            if exc.status == 503:
                domain = DOMAIN.get()
                raise HttpError(503, 10076, f"JetStream domain {domain!r} not reachable"
                                if domain else "JetStream not enabled") from None
            raise
        doc = json.loads(data) if data else {}
        if "error" in doc:
            raise from_api_error(doc["error"])
        doc.pop("type", None)
        return doc

    # -- subscriptions ----------------------------------------------------------------

    def subscribe_to(self, subject: bytes, handler: Callable[..., None],
                     queue: bytes | None = None) -> Subscription:
        """A caller's subscription, under the caller's permissions."""
        self._sid += 1
        sid = b"%d" % self._sid
        self._handlers[sid] = handler
        try:
            return self.subscribe(subject, queue, sid)
        except PermissionDenied:
            raise HttpError(403, 10403, f'permissions violation for subscription to '
                            f'"{subject.decode()}"') from None
        except TooManySubscriptions:
            raise HttpError(429, 10429, "maximum subscriptions exceeded") from None
        except InvalidSubject:
            raise HttpError(400, 10400, f"invalid subject {subject.decode()!r}") from None
