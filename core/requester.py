"""Requests from inside the hub: a door's own use of the core's request/reply services.

Doors that keep state in JetStream (MQTT sessions and retained messages, HTTP
fetches) talk to it through ``$JS.API`` like any client, so another engine could
answer instead.  A :class:`Requester` is one internal client with one inbox
subscription; each request waits on its own reply token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jetport.core.internal import InternalClient

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

Reply = tuple[bytes, bytes | None, bytes]  # (subject, header block, payload)


class RequestTimeout(Exception):
    """No reply arrived in time."""


class NoResponders(RequestTimeout):
    """Nobody listens on the subject (a 503 status came back at once)."""


class _Batch:
    """Replies gathered until ``done(items)`` says enough came."""

    __slots__ = ("items", "done", "future")

    def __init__(self, done: Any, future: asyncio.Future[list[Reply]]) -> None:
        self.items: list[Reply] = []
        self.done = done
        self.future = future


class Requester(InternalClient):
    """Sends requests in one account and routes their replies back to the caller."""

    kind = "Internal"

    def __init__(self, hub: Hub, account: Account, name: str,
                 prefix: bytes = b"_INBOX.", *, no_responders: bool = False) -> None:
        super().__init__(hub, account, name)
        #: Ask for a 503 status when nobody listens, so a request fails at once with
        #: :class:`NoResponders` rather than by timing out.
        self.no_responders = no_responders
        #: Reply subjects are ``<prefix><random>.<n>``; a door may pick a prefix of its
        #: own so it can tell its replies from its clients' in what it delivers.
        self.inbox = b"%s%s." % (prefix, secrets.token_hex(8).encode())
        self._ids = itertools.count(1)
        self._waiting: dict[bytes, asyncio.Future[Reply] | _Batch] = {}
        self.listen(self.inbox + b"*", self._on_reply)

    def _on_reply(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payload: bytes) -> None:
        waiter = self._waiting.get(subject)
        if isinstance(waiter, _Batch):
            waiter.items.append((subject, hdr, payload))
            if waiter.done(waiter.items) and not waiter.future.done():
                waiter.future.set_result(waiter.items)
                del self._waiting[subject]
        elif waiter is not None and not waiter.done():
            waiter.set_result((subject, hdr, payload))

    def new_inbox(self) -> bytes:
        return self.inbox + b"%d" % next(self._ids)

    async def request(self, subject: bytes, payload: bytes = b"", hdr: bytes | None = None,
                      timeout: float = 5.0) -> Reply:
        """Publish with a fresh reply subject and wait for the first answer."""
        reply = self.new_inbox()
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = fut
        try:
            self.account.router.publish(self, subject, reply, hdr, payload)
            answer = await asyncio.wait_for(fut, timeout)
            if not answer[2] and answer[1] and answer[1].startswith(b"NATS/1.0 503"):
                raise NoResponders(subject.decode(errors="replace"))
            return answer
        except TimeoutError as exc:
            raise RequestTimeout(subject.decode(errors="replace")) from exc
        finally:
            self._waiting.pop(reply, None)

    async def request_json(self, subject: str, body: Any = None, timeout: float = 5.0) -> Any:
        """A JSON request (``$JS.API`` style); the decoded answer."""
        payload = b"" if body is None else json.dumps(body).encode()
        _, _, data = await self.request(subject.encode(), payload, timeout=timeout)
        return json.loads(data) if data else None

    async def gather(self, subject: bytes, payload: bytes,
                     done: Callable[[list[Reply]], bool], timeout: float = 5.0) -> list[Reply]:
        """Publish with a fresh reply subject and collect the answers until ``done`` says
        they are all in (a batched DIRECT.GET ends with a status)."""
        reply = self.new_inbox()
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = _Batch(done, fut)
        try:
            self.account.router.publish(self, subject, reply, None, payload)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            raise RequestTimeout(subject.decode(errors="replace")) from exc
        finally:
            self._waiting.pop(reply, None)

    def expect(self, count: int) -> tuple[bytes, asyncio.Future[list[Reply]]]:
        """A reply subject for someone else's publish, and a future that resolves
        once ``count`` replies came to it (the PubAcks of the streams storing it).
        Call :meth:`forget` if giving up on it."""
        reply = self.new_inbox()
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = _Batch(lambda items: len(items) >= count, fut)
        return reply, fut

    def forget(self, reply: bytes) -> None:
        self._waiting.pop(reply, None)
