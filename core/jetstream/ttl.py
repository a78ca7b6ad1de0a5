"""Per-message TTLs (the ``Nats-TTL`` header) and subject delete markers.

A stream with ``allow_msg_ttl`` removes a message once its TTL has passed; ``never``
exempts it from ``max_age`` too. With ``subject_delete_marker_ttl`` set, a subject whose
last message is removed by age or TTL gets a marker: an empty message with
``Nats-Marker-Reason: MaxAge`` that itself lives for the marker TTL, so watchers (KV) see
the removal. Deadlines live in memory and are rebuilt from the headers on restart.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING

from jetport.core import headers as H
from jetport.core.config.values import parse_duration
from jetport.core.jetstream import errors as E
from jetport.core.tasks import spawn
from jetport.core.timeutil import NS_PER_S, go_duration

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream
    from jetport.storage.base import StoredMsg

TTL = b"Nats-TTL"
MARKER_REASON = b"Nats-Marker-Reason"
NEVER = -1
#: Messages read per call while rebuilding deadlines after a restart.
_SCAN_BATCH = 512


def parse_ttl(value: bytes) -> int:
    """Nanoseconds from a Go duration or whole seconds, or NEVER; at least a second."""
    text = value.decode(errors="replace").strip()
    if text == "never":
        return NEVER
    try:
        seconds = parse_duration(text)
    except ValueError:
        if not text.lstrip("+-").isdigit():
            raise E.msg_ttl_invalid() from None
        seconds = int(text)
    ns = round(seconds * NS_PER_S)
    if ns < NS_PER_S:
        raise E.msg_ttl_invalid()
    return ns


class MessageTTLs:
    """The deadlines of one stream's messages, and the timer that removes them."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._due: list[tuple[int, int]] = []  # (deadline ns, seq), earliest first
        self.forever: set[int] = set()  # seqs with ``Nats-TTL: never``
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    def admit(self, hdr: bytes, value: bytes) -> tuple[bytes, int]:
        """Check a publish's TTL: (headers to store, TTL ns or NEVER).

        A TTL shorter than the marker TTL is raised to it, and the header says so.
        """
        ttl = parse_ttl(value)
        marker = self.stream.config.subject_delete_marker_ttl
        if 0 < ttl < marker:
            ttl = marker
            hdr = H.replace(hdr, TTL, b"%d" % (marker // NS_PER_S))
        return hdr, ttl

    def track(self, seq: int, ts: int, ttl: int) -> None:
        if ttl == NEVER:
            self.forever.add(seq)
            return
        deadline = ts + ttl
        heapq.heappush(self._due, (deadline, seq))
        if self._due[0][1] == seq:
            self._schedule()

    async def recover(self) -> None:
        """Rebuild deadlines from stored headers; what fell due while down goes now."""
        store = self.stream.store
        seq = store.state().first_seq
        while True:
            msgs = await store.next_many(seq, None, _SCAN_BATCH)
            if not msgs:
                break
            for msg in msgs:
                value = H.get(msg.hdr, TTL) if msg.hdr else None
                if value is not None:
                    try:
                        self.track(msg.seq, msg.ts, parse_ttl(value))
                    except E.ApiError:
                        continue  # stored before TTLs were checked: keep it
            seq = msgs[-1].seq + 1

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self.stop()
        if self._due:
            delay = max((self._due[0][0] - time.time_ns()) / NS_PER_S, 0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._running is None or self._running.done():
            self._running = spawn(self._expire_due(), f"stream {self.stream.name}: message TTLs")

    async def _expire_due(self) -> None:
        stream, store = self.stream, self.stream.store
        gone: list[StoredMsg] = []
        now = time.time_ns()
        while self._due and self._due[0][0] <= now and not stream.closed:
            _, seq = heapq.heappop(self._due)
            msg = await store.get(seq)
            if msg is not None and await store.remove(seq):
                gone.append(msg)
                stream.removed(seq)
        await self.removed(gone)
        if not stream.closed:
            self._schedule()

    async def removed(self, msgs: list[StoredMsg]) -> None:
        """After age or TTL removed ``msgs``: a marker for each subject left empty (when
        configured; removed markers leave none), and consumers told."""
        if not msgs:
            return
        stream = self.stream
        ttl = stream.config.subject_delete_marker_ttl
        if ttl > 0:
            hdr = H.build([(MARKER_REASON, b"MaxAge"), (TTL, go_duration(ttl / NS_PER_S).encode()),
                           (b"Nats-Rollup", b"sub")])
            subjects = dict.fromkeys(m.subject for m in msgs
                                     if not (m.hdr and MARKER_REASON in m.hdr))
            for subject in subjects:
                if await stream.store.last(subject) is None:
                    now = time.time_ns()
                    seq = stream.store.state().last_seq + 1
                    stream.store.store(seq, subject, hdr, b"", now)
                    self.track(seq, now, ttl)
        stream.jsa.stream_changed(stream)
