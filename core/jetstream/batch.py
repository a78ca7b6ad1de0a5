"""Atomic batch publish (ADR-50): a stream holds a batch's messages until its commit.

A publisher tags messages with ``Nats-Batch-Id`` and ``Nats-Batch-Sequence`` (1, 2, ...);
they are held, not stored, and each one with a reply subject gets an empty reply. The
message with ``Nats-Batch-Commit: 1`` (stored too) or ``eob`` (not stored) has the whole
batch stored in one store transaction (:mod:`jetport.core.jetstream.batch_commit`), and
its PubAck names the batch and how many messages it held. A gap, a repeated start, a
batch too long or one left without a message for the timeout is abandoned, as
nats-server abandons it, with a ``BATCH_ABANDONED`` advisory where nats-server sends one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jetport.core import headers as H
from jetport.core.jetstream import batch_commit
from jetport.core.jetstream import errors as E
from jetport.core.jetstream import stream as S
from jetport.core.jetstream.advisories import advise

if TYPE_CHECKING:
    from jetport.core.config.options import Options
    from jetport.core.jetstream.stream import Accepted, Stream

BATCH_ID = b"Nats-Batch-Id"
BATCH_SEQ = b"Nats-Batch-Sequence"
BATCH_COMMIT = b"Nats-Batch-Commit"
#: Longest batch id nats-server takes.
MAX_ID_LEN = 64
#: ``Nats-Batch-Commit`` values: store the message and the batch, or only the batch.
COMMIT_STORE, COMMIT_EOB = b"1", b"eob"


@dataclass
class BatchLimits:
    """``jetstream { limits { batch { ... } } }``, and how many batches are open on
    this server (one count across accounts, as nats-server's ``max_inflight_total``)."""

    timeout: float
    max_msgs: int
    max_inflight_per_stream: int
    max_inflight_total: int
    open_total: int = 0

    @classmethod
    def of(cls, opts: Options) -> BatchLimits:
        return cls(opts.jetstream_batch_timeout, opts.jetstream_batch_max_msgs,
                   opts.jetstream_batch_max_inflight_per_stream,
                   opts.jetstream_batch_max_inflight_total)


@dataclass
class _Open:
    """A batch being staged: its messages so far and the timer that abandons it."""

    msgs: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batches:
    """The open batches of one stream."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._open: dict[bytes, _Open] = {}

    @property
    def limits(self) -> BatchLimits:
        return self.stream.jsa.js.batch_limits

    async def accept(self, subject: bytes, hdr: bytes, payload: bytes) -> Accepted | None:
        """Stage or commit a batch message; None when ``hdr`` names no batch."""
        hdrs = H.parse(hdr)
        batch_id = hdrs.get(BATCH_ID)
        if not batch_id:
            return None
        cfg = self.stream.config
        if cfg.sealed:
            raise E.stream_sealed()
        if not cfg.allow_atomic:
            self._drop(batch_id)
            raise E.atomic_publish_disabled()
        if len(batch_id) > MAX_ID_LEN:
            raise E.atomic_publish_invalid_id()
        seq_text = hdrs.get(BATCH_SEQ, b"")
        if not seq_text.isdigit():
            raise E.atomic_publish_missing_seq()
        seq = int(seq_text)
        done = hdrs.get(BATCH_COMMIT)
        if done is not None and done not in (COMMIT_STORE, COMMIT_EOB):
            self._drop(batch_id)
            raise E.atomic_publish_invalid_commit()
        if 0 <= cfg.max_msg_size < len(payload) + len(hdr):  # the batch goes on without it
            raise E.message_size_exceeded()
        limits = self.limits
        if seq > limits.max_msgs:
            self._abandon(batch_id, "large")
            raise E.atomic_publish_too_large(size=limits.max_msgs)
        batch = self._open.get(batch_id)
        if seq == 1:
            if batch is not None:
                self._abandon(batch_id, "incomplete")
                raise E.atomic_publish_incomplete()
            batch = self._start(batch_id)
        elif batch is None:
            raise E.atomic_publish_incomplete()
        elif seq != len(batch.msgs) + 1:
            self._abandon(batch_id, "incomplete")
            raise E.atomic_publish_incomplete()
        if done != COMMIT_EOB:
            batch.msgs.append((subject, hdr, payload))
        elif batch.msgs:  # the last message stored says it ended the batch
            subject, last, payload = batch.msgs[-1]
            batch.msgs[-1] = (subject, H.add(last, [(BATCH_COMMIT, COMMIT_STORE)]), payload)
        if done is None:
            self._arm(batch_id, batch)
            return S.Accepted(0)  # held: an empty reply
        self._drop(batch_id)
        if not batch.msgs:  # "eob" as the first message: nothing to store
            self._advise(batch_id, "incomplete")
            raise E.atomic_publish_incomplete()
        return await batch_commit.commit(self.stream, batch_id, batch.msgs)

    @staticmethod
    def unmarked(hdr: bytes | None) -> bytes | None:
        """A message's headers as a mirror or source copies it: without the batch's, as
        the copy was not published in a batch (None when nothing is left)."""
        if not hdr or b"Nats-Batch-" not in hdr:
            return hdr
        return H.remove(hdr, (BATCH_ID, BATCH_SEQ, BATCH_COMMIT))

    def close(self) -> None:
        """The stream stops: its open batches go, quietly."""
        for batch_id in list(self._open):
            self._drop(batch_id)

    def _start(self, batch_id: bytes) -> _Open:
        limits = self.limits
        if (len(self._open) >= limits.max_inflight_per_stream
                or limits.open_total >= limits.max_inflight_total):
            raise E.atomic_publish_too_many_inflight()
        batch = self._open[batch_id] = _Open()
        limits.open_total += 1
        return batch

    def _arm(self, batch_id: bytes, batch: _Open) -> None:
        """(Re)start the wait for the batch's next message."""
        if batch.timer is not None:
            batch.timer.cancel()
        batch.timer = asyncio.get_running_loop().call_later(
            self.limits.timeout, self._abandon, batch_id, "timeout")

    def _drop(self, batch_id: bytes) -> bool:
        batch = self._open.pop(batch_id, None)
        if batch is None:
            return False
        if batch.timer is not None:
            batch.timer.cancel()
        self.limits.open_total -= 1
        return True

    def _abandon(self, batch_id: bytes, reason: str) -> None:
        if self._drop(batch_id):
            self._advise(batch_id, reason)

    def _advise(self, batch_id: bytes, reason: str) -> None:
        name = self.stream.name
        advise(self.stream.jsa, f"STREAM.BATCH_ABANDONED.{name}", "stream_batch_abandoned",
               stream=name, batch=batch_id.decode(errors="replace"), reason=reason)

