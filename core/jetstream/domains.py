"""Which streams of another JetStream domain store a subject.

A door that acknowledges a message only once it is stored (an MQTT PUBACK, an HTTP
PubAck) must know whether a stream takes it, and wait for that stream's PubAck.  For
this server's own streams the engine knows (:meth:`JetStream.streams_capturing`); for
a domain reached through a leaf node link, such as the cluster's, this keeps a copy of
the domain's stream subjects: listed with ``$JS.<domain>.API.STREAM.LIST`` when first
needed, listed again whenever the domain announces a stream created, updated or
deleted (its advisories cross the link like any message) and every
:data:`REFRESH` seconds.  Between a new stream's creation and the next listing (a
round trip after its advisory), a publish on its subjects is not waited for.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from jetport.core.log import log
from jetport.core.requester import Requester, RequestTimeout
from jetport.core.subjects import SubjectIndex
from jetport.core.tasks import spawn

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

REFRESH = 30.0
ADVISORIES = (b"$JS.EVENT.ADVISORY.STREAM.CREATED.*", b"$JS.EVENT.ADVISORY.STREAM.UPDATED.*",
              b"$JS.EVENT.ADVISORY.STREAM.DELETED.*")


class _Captures:
    """A stream subject in the index."""

    __slots__ = ("subject", "queue")

    def __init__(self, subject: bytes) -> None:
        self.subject = subject
        self.queue: bytes | None = None


class DomainStreams:
    """One account's view of one other domain's stream subjects."""

    def __init__(self, hub: Hub, account: Account, domain: str) -> None:
        self.domain = domain
        self.account = account
        self.requester = Requester(hub, account, "$JS", no_responders=True)
        self.index: SubjectIndex[_Captures] = SubjectIndex()
        self.loaded = False
        self._dirty = asyncio.Event()
        for subject in ADVISORIES:
            self.requester.listen(subject, self._changed)
        self._first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = spawn(self._keep(), f"JetStream domain {domain} streams of "
                                         f"account {account.name}")

    def capturing(self, subject: bytes) -> int:
        """How many of the domain's streams store ``subject`` (0 or 1: nats-server
        refuses overlapping subjects within an account)."""
        plain, _ = self.index.match(subject)
        return len(plain)

    async def ready(self, timeout: float = 5.0) -> None:
        """Wait for the first listing (or give up quietly after ``timeout``)."""
        if not self.loaded:
            try:
                await asyncio.wait_for(asyncio.shield(self._first), timeout)
            except TimeoutError:
                pass

    def _changed(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                 payload: bytes) -> None:
        self._dirty.set()

    async def _keep(self) -> None:
        while True:
            self._dirty.clear()
            try:
                await self._list()
            except (RequestTimeout, ValueError, KeyError, TypeError) as exc:
                log.debug("JetStream domain %s unreachable for account %s: %s", self.domain,
                          self.account.name, exc)
            try:
                await asyncio.wait_for(self._dirty.wait(), REFRESH)
            except TimeoutError:
                pass

    async def _list(self) -> None:
        index: SubjectIndex[_Captures] = SubjectIndex()
        offset = 0
        while True:
            answer = await self.requester.request_json(
                f"$JS.{self.domain}.API.STREAM.LIST", {"offset": offset})
            if not isinstance(answer, dict) or "error" in answer:
                raise ValueError(json.dumps(answer)[:200])
            streams = answer.get("streams") or []
            for info in streams:
                for subject in (info.get("config") or {}).get("subjects") or []:
                    index.insert(_Captures(subject.encode()))
            offset += len(streams)
            if not streams or offset >= int(answer.get("total", 0)):
                break
        self.index = index
        self.loaded = True
        if not self._first.done():
            self._first.set_result(None)

    def close(self) -> None:
        self._task.cancel()
        self.requester.release()
