"""Clients that live inside the hub: JetStream, services, bridges to other engines.

An internal client subscribes like any connection, but its deliveries call a Python
function.  The callback runs synchronously inside the publisher's delivery loop, so it
must only record work and return; anything slow is batched by its owner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from jetport.core.client import Client, Delivery
from jetport.core.log import TRACE, log
from jetport.core.router import Subscription

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

Handler = Callable[[bytes, bytes | None, bytes | None, bytes], None]
#: Takes several messages at once: ``[(subject, reply, hdr, payload), ...]``.
BatchHandler = Callable[[list[Delivery]], None]


class InternalClient(Client):
    """A subscriber whose messages go to ``handler(subject, reply, hdr, payload)``."""

    kind = "JetStream"
    headers = True

    def __init__(self, hub: Hub, account: Account, name: str) -> None:
        super().__init__(hub, account)
        self.name = name
        self._handlers: dict[bytes, Handler] = {}
        self._batch_handlers: dict[bytes, BatchHandler] = {}
        self._sid = 0
        #: ``-VV``/``trace_verbose``: the hub's own traffic is traced too, as
        #: nats-server traces its system account's.
        self._trace = hub.options.trace_verbose and log.isEnabledFor(TRACE)

    def _traced(self, way: str, subject: bytes, reply: bytes | None, payload: bytes) -> None:
        args = b" ".join([subject, *([reply] if reply else []), b"%d" % len(payload)])
        log.log(TRACE, "%s - %s - %s [MSG %s]", self.account.name, self.name, way,
                args.decode(errors="replace"))

    def listen(self, subject: bytes, handler: Handler, queue: bytes | None = None,
               batch: BatchHandler | None = None) -> Subscription:
        """Call ``handler`` per message, or ``batch`` with several when a publisher
        sends them together."""
        self._sid += 1
        sid = b"%d" % self._sid
        self._handlers[sid] = handler
        if batch is not None:
            self._batch_handlers[sid] = batch
        return self.subscribe(subject, queue, sid)

    def deliver(self, sub: Subscription, subject: bytes, reply: bytes | None,
                hdr: bytes | None, payload: bytes) -> None:
        self.out_msgs += 1
        self.out_bytes += len(payload)
        if self._trace:
            self._traced("<<-", subject, reply, payload)
        self._handlers[sub.sid](subject, reply, hdr, payload)

    def deliver_batch(self, sub: Subscription, msgs: list[Delivery]) -> None:
        batch = self._batch_handlers.get(sub.sid)
        if batch is None or self._trace:
            super().deliver_batch(sub, msgs)
            return
        self.out_msgs += len(msgs)
        self.out_bytes += sum([len(m[3]) for m in msgs])
        batch(msgs)

    def send(self, subject: bytes, reply: bytes | None, hdr: bytes | None, payload: bytes) -> int:
        """Publish from inside the hub."""
        self.in_msgs += 1
        self.in_bytes += len(payload)
        if self._trace:
            self._traced("->>", subject, reply, payload)
        return self.account.router.publish(self, subject, reply, hdr, payload)

    def close(self, reason: str = "") -> None:
        self.release()
