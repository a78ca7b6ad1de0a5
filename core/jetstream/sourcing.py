"""Mirrors and sources: a stream fed from other streams of the same account.

A :class:`Link` follows one origin stream from a position, copying what is stored
there.  A mirror keeps the origin's sequence numbers; a source appends under the
follower's own sequence, filtered and transformed.  Positions are saved with the
follower's consumer state so a restart resumes where copying stopped.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from jetport.core import headers as H
from jetport.core.jetstream.transform import SubjectTransform
from jetport.core.log import log
from jetport.core.tasks import spawn
from jetport.storage.base import ConsumerState

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream

STREAM_SOURCE = b"Nats-Stream-Source"


class Link:
    def __init__(self, follower: Stream, source: Any, mirror: bool) -> None:
        self.follower = follower
        self.source = source
        self.mirror = mirror
        self.origin_name: str = source.name
        self.key = f"$origin.{'mirror' if mirror else 'source'}.{source.name}"
        self.position = 0  # last origin seq copied
        filters = [source.filter_subject] if source.filter_subject else []
        self.transforms = [SubjectTransform(t.src, t.dest) for t in source.subject_transforms or []]
        filters += [t.src for t in source.subject_transforms or [] if t.src]
        self.filters = [f.encode() for f in filters] or None
        self.last_active = 0
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def load(self, saved: ConsumerState | None) -> None:
        if self.mirror:
            self.position = self.follower.store.state().last_seq
        elif saved is not None:
            self.position = saved.delivered_stream_seq

    def origin(self) -> Stream | None:
        return self.follower.jsa.streams.get(self.origin_name)

    def wake(self) -> None:
        if self.closed:
            return
        if self._task is None or self._task.done():
            self._task = spawn(self._copy(), f"stream {self.follower.name}: copying from "
                               f"{self.origin_name}")

    async def _start(self, origin: Stream) -> None:
        src = self.source
        if self.position:
            return
        if src.opt_start_seq:
            self.position = src.opt_start_seq - 1
        elif src.opt_start_time:
            msg = await origin.store.next(origin.store.state().first_seq, self.filters)
            while msg is not None and msg.ts < src.opt_start_time:
                msg = await origin.store.next(msg.seq + 1, self.filters)
            self.position = (msg.seq - 1) if msg else origin.store.state().last_seq

    async def _copy(self) -> None:
        origin = self.origin()
        if origin is None:
            return
        try:
            await self._start(origin)
            copied = 0
            while not self.closed:
                msg = await origin.store.next(self.position + 1, self.filters)
                if msg is None or msg.seq > origin.store.committed_seq():
                    break  # what the origin has not committed yet waits for its commit
                await self._take(msg)
                self.position = msg.seq
                copied += 1
            if copied:
                self.last_active = time.time_ns()
                await self.follower.store.sync()
                self._save()
                self.follower.jsa.stream_changed(self.follower)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged with what it belongs to
            log.exception("stream %s: copying from %s failed", self.follower.name,
                          self.origin_name)

    async def _take(self, msg: Any) -> None:
        follower = self.follower
        if self.mirror:
            if msg.seq > follower.store.state().last_seq:
                hdr = follower.batches.unmarked(msg.hdr)
                follower.store.store(msg.seq, msg.subject, hdr, msg.data, msg.ts)
                await follower.enforce_limits(msg.subject)
            return
        subject = msg.subject
        for t in self.transforms:
            mapped = t.apply(subject)
            if mapped is not None:
                subject = mapped
                break
        # nats-server's layout: origin, its sequence, the source's filters and
        # destinations, the origin's subject (counters key their sources by it); a
        # message copied on from a source of the origin keeps only the newest, and no
        # copy keeps the batch headers it was published with.
        name, _api, srcs, dests = self.source.identity()
        origin = b"%b %d %b %b %b" % (name.encode(), msg.seq, srcs.encode(), dests.encode(),
                                      msg.subject)
        hdr = H.add(H.remove(follower.batches.unmarked(msg.hdr), (STREAM_SOURCE,)),
                    [(STREAM_SOURCE, origin)])
        await follower.accept(subject, hdr, msg.data, msg.ts, sourced=True)

    def _save(self) -> None:
        if self.mirror:
            return
        state = ConsumerState(delivered_stream_seq=self.position)
        self.follower.jsa.consumer_store(self.follower).save(self.key, "", state)

    def info(self) -> dict[str, Any]:
        origin = self.origin()
        lag = max(origin.store.state().last_seq - self.position, 0) if origin else 0
        doc: dict[str, Any] = {
            "name": self.origin_name,
            "lag": lag,
            "active": (time.time_ns() - self.last_active) if self.last_active else -1,
        }
        if self.source.filter_subject:
            doc["filter_subject"] = self.source.filter_subject
        return doc

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()


def links_for(stream: Stream) -> list[Link]:
    cfg = stream.config
    links = []
    if cfg.mirror is not None and cfg.mirror.name:
        links.append(Link(stream, cfg.mirror, mirror=True))
    for source in cfg.sources or []:
        links.append(Link(stream, source, mirror=False))
    return links
