"""DIRECT.GET: a stream's messages answered as themselves, one or a batch at a time.

A single get answers with the message and its position headers. A batch (``batch``
from ``seq``, or ``multi_last`` for the newest message of each subject) answers with
every message, each also counting what is left (``Nats-Num-Pending``) and naming the one
sent before it (``Nats-Last-Sequence``), then an end-of-batch status 204.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jetport.core import headers as H
from jetport.core.jetstream import errors as E
from jetport.core.timeutil import rfc3339
from jetport.storage.base import StoredMsg

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream


async def lookup(stream: Stream, req: dict[str, Any]) -> StoredMsg | None:
    """The message a get request names by ``seq``, ``last_by_subj`` or ``next_by_subj``."""
    seq = int(req.get("seq") or 0)
    last = req.get("last_by_subj")
    nxt = req.get("next_by_subj")
    if last and (seq or nxt):
        raise E.bad_request()
    if last:
        return await stream.store.last(str(last).encode())
    if nxt:
        return await stream.store.next(max(seq, 1), [str(nxt).encode()])
    if seq:
        return await stream.store.get(seq)
    raise E.bad_request()


class DirectGet:
    """One DIRECT.GET request on ``stream``, answered to ``reply``."""

    def __init__(self, stream: Stream, reply: bytes) -> None:
        self.stream = stream
        self.reply = reply

    async def answer(self, last_subject: bytes, payload: bytes, level_unmet: bool) -> None:
        if level_unmet:
            return self._status(412, "Required Api Level")
        if last_subject:
            return self._single(await self.stream.store.last(last_subject))
        if not payload.strip():
            return self._status(408, "Empty Request")
        try:
            req = json.loads(payload)
            if not isinstance(req, dict):
                raise ValueError(req)
            if req.get("multi_last") is not None or int(req.get("batch") or 0):
                return await self._batch(req)
            return self._single(await lookup(self.stream, req))
        except (ValueError, TypeError, E.ApiError):
            return self._status(408, "Bad Request")

    def _single(self, msg: StoredMsg | None) -> None:
        if msg is None:
            return self._status(404, "Message Not Found")
        self._send(msg, [])

    async def _batch(self, req: dict[str, Any]) -> None:
        multi = [str(s).encode() for s in req.get("multi_last") or []]
        nxt = str(req.get("next_by_subj") or "").encode()
        seq = int(req.get("seq") or 0)
        if not (multi or seq or nxt):
            return self._status(408, "Empty Request")
        batch = int(req.get("batch") or 0)
        if multi:
            return await self._multi_last(multi, int(req.get("up_to_seq") or 0), batch)
        store = self.stream.store
        start = max(seq, 1)
        left = await store.count(nxt or b">", start)
        msgs = await store.next_many(start, [nxt] if nxt else None, batch) if batch > 0 else []
        if batch > 0 and not msgs:
            return self._status(404, "Message Not Found")
        sent = self._send_run(msgs, left, int(req.get("max_bytes") or 0))
        last = msgs[sent - 1].seq if sent else 0
        self._status(204, "EOB", [(b"Nats-Num-Pending", b"%d" % (left - sent)),
                                  (b"Nats-Last-Sequence", b"%d" % last)])

    async def _multi_last(self, filters: list[bytes], up_to: int, batch: int) -> None:
        store = self.stream.store
        up_to = up_to or store.state().last_seq
        found: list[StoredMsg] = []
        for pattern in dict.fromkeys(filters):
            for subject in await store.subjects(pattern):
                newest = [s for s in await store.seqs(subject) if s <= up_to]
                msg = await store.get(newest[-1]) if newest else None
                if msg is not None:
                    found.append(msg)
        if not found:
            return self._status(404, "No Results")
        found = sorted({m.seq: m for m in found}.values(), key=lambda m: m.seq)
        sent = self._send_run(found[:batch] if batch > 0 else found, len(found), 0)
        self._status(204, "EOB", [(b"Nats-Num-Pending", b"%d" % (len(found) - sent)),
                                  (b"Nats-Last-Sequence", b"%d" % found[sent - 1].seq),
                                  (b"Nats-UpTo-Sequence", b"%d" % up_to)])

    def _send_run(self, msgs: list[StoredMsg], left: int, max_bytes: int) -> int:
        """Send ``msgs`` in order, each with what is left after it, until ``max_bytes``
        have gone (0: no limit); how many were sent."""
        previous, size = 0, 0
        for i, msg in enumerate(msgs):
            if max_bytes and size >= max_bytes:
                return i
            left -= 1
            self._send(msg, [(b"Nats-Num-Pending", b"%d" % left),
                             (b"Nats-Last-Sequence", b"%d" % previous)])
            previous = msg.seq
            size += len(msg.subject) + len(msg.hdr or b"") + len(msg.data)
        return len(msgs)

    def _send(self, msg: StoredMsg, extra: list[tuple[bytes, bytes]]) -> None:
        hdr = H.add(msg.hdr, [
            (b"Nats-Stream", self.stream.name.encode()),
            (b"Nats-Subject", msg.subject),
            (b"Nats-Sequence", b"%d" % msg.seq),
            (b"Nats-Time-Stamp", rfc3339(ns=msg.ts).encode()),
            *extra,
        ])
        self.stream.jsa.account.router.deliver_as(self.reply, self.reply, None, hdr, msg.data)

    def _status(self, code: int, desc: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        block = H.build(list(extra), code, desc)
        self.stream.jsa.account.router.deliver_as(self.reply, self.reply, None, block, b"")
