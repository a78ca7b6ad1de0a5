"""The storage interface every stream and consumer store implements.

A stream owns its sequence numbers and limits; the store keeps messages and answers
questions about them.  Writes are accepted synchronously (the stream must know the
sequence at once to build its reply) and become durable in batches: ``await
store.sync()`` returns once everything stored before the call is committed, so a
PubAck is sent only after its message would survive a crash of the process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


class StorageError(RuntimeError):
    """A store cannot be opened or a commit failed; the in-memory view may be ahead of
    the disk from here on."""

    @property
    def out_of_space(self) -> bool:
        """The disk (or the file system's quota) is full."""
        text = str(self).lower()
        return "disk is full" in text or "no space left" in text or "quota" in text


@dataclass(slots=True)
class StoredMsg:
    """One message as a stream keeps it.  ``ts`` is nanoseconds since the epoch."""

    seq: int
    subject: bytes
    hdr: bytes | None
    data: bytes
    ts: int

    @property
    def size(self) -> int:
        """Bytes as nats-server's memory store counts them (and a memory bound)."""
        return len(self.subject) + len(self.data) + (len(self.hdr) if self.hdr else 0) + 16


def take(
    next_now: Callable[[int], StoredMsg | None], seq: int, limit: int
) -> list[StoredMsg]:
    """``limit`` answers of ``next_now`` from ``seq`` on, each after the previous one."""
    out: list[StoredMsg] = []
    while len(out) < limit:
        msg = next_now(seq)
        if msg is None:
            break
        out.append(msg)
        seq = msg.seq + 1
    return out


def file_size(subject: bytes, hdr: bytes | None, data: bytes) -> int:
    """Bytes as nats-server's file store counts a record: 22 + subject + data + 8
    (+ 4 + headers when there are any), so limits and usage match its numbers."""
    return len(subject) + len(data) + 30 + (len(hdr) + 4 if hdr else 0)


@dataclass(slots=True)
class StoreState:
    """What a stream reports about its messages, kept current by the store."""

    msgs: int = 0
    bytes: int = 0
    first_seq: int = 0
    first_ts: int = 0
    last_seq: int = 0
    last_ts: int = 0
    #: Sequences removed from the middle (between first_seq and last_seq).
    num_deleted: int = 0


@dataclass(slots=True)
class ConsumerState:
    """A consumer's durable progress: what it delivered and what is acknowledged."""

    delivered_consumer_seq: int = 0
    delivered_stream_seq: int = 0
    ack_floor_consumer_seq: int = 0
    ack_floor_stream_seq: int = 0
    #: stream seq -> (consumer seq, delivery timestamp ns) of delivered, unacked messages
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: stream seq -> delivery count, for messages delivered more than once
    redelivered: dict[int, int] = field(default_factory=dict)


class StreamStore(Protocol):
    """The messages of one stream."""

    #: Bumped whenever messages are removed (remove, purge, destroy): a count a caller
    #: keeps stays right while this does not change, if it adds what is appended.
    removals: int

    def state(self) -> StoreState:
        """Current counters; cheap, never waits."""
        ...

    @staticmethod
    def record_size(subject: bytes, hdr: bytes | None, data: bytes) -> int:
        """Bytes this store counts for a message against ``max_bytes`` and usage."""
        ...

    def store(self, seq: int, subject: bytes, hdr: bytes | None, data: bytes, ts: int) -> None:
        """Append a message with ``seq`` > every stored seq.  Durable after ``sync``."""
        ...

    def store_many(self, seq: int, msgs: list[tuple[bytes, bytes]], ts: int) -> None:
        """Append header-less ``(subject, data)`` messages as ``seq``, ``seq + 1`` ...
        in one call (the hot path of a busy stream)."""
        ...

    def skip(self, seq: int, ts: int = 0) -> None:
        """Use up ``seq`` (> ``last_seq``) without storing a message, as for one nobody
        will read: ``last_seq`` becomes ``seq`` (and ``last_ts`` ``ts`` if given); an
        empty stream's ``first_seq`` moves past it.  Durable after ``sync``."""
        ...

    def sync(self) -> Awaitable[None]:
        """Return once every message stored before this call is committed."""
        ...

    def committed_seq(self) -> int:
        """The highest sequence stored (or skipped) durably. Consumers and followers hand
        out nothing above it, so a crash cannot take back what they delivered."""
        ...

    def on_stored(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback`` once every message stored before this call is durable
        (with None), or could not be (with the error): for hot paths, which answer in
        the same loop turn and need no task.  Durable is committed, or (the SQLite store,
        a small transaction) written where the next opening commits it from, so it can
        come before ``sync`` returns."""
        ...

    async def get(self, seq: int) -> StoredMsg | None:
        """The message with exactly this sequence, or None (never stored or removed)."""
        ...

    async def next(self, seq: int, subjects: list[bytes] | None = None) -> StoredMsg | None:
        """The first message with sequence >= ``seq`` whose subject matches any of
        ``subjects`` (wildcards allowed; None matches all)."""
        ...

    async def next_many(
        self, seq: int, subjects: list[bytes] | None = None, limit: int = 1
    ) -> list[StoredMsg]:
        """Up to ``limit`` messages as successive ``next`` calls would return them: one
        call for a consumer's whole batch."""
        ...

    async def last(self, subject: bytes) -> StoredMsg | None:
        """The newest message whose subject matches ``subject`` (wildcards allowed)."""
        ...

    async def remove(self, seq: int) -> bool:
        """Delete one message; False when it was not there."""
        ...

    async def purge(
        self, subject: bytes | None = None, before: int = 0, keep: int = 0
    ) -> int:
        """Delete messages (matching ``subject`` if given): all of them, or those with
        seq < ``before``, or all but the newest ``keep``.  Returns how many went.
        After purging everything, ``first_seq`` becomes ``last_seq + 1``."""
        ...

    async def count(self, subject: bytes, seq: int = 0) -> int:
        """How many messages with sequence >= ``seq`` match ``subject``."""
        ...

    async def subjects(self, subject: bytes = b">") -> dict[bytes, int]:
        """Message count per distinct subject matching ``subject``."""
        ...

    async def seqs(self, subject: bytes, limit: int = 0) -> list[int]:
        """Sequences of messages on a literal ``subject``, oldest first (``limit`` 0 =
        all)."""
        ...

    async def close(self) -> None: ...

    async def destroy(self) -> None:
        """Remove the stream's messages and any files for good."""
        ...


class ConsumerStore(Protocol):
    """Durable consumers of one stream: their config and progress."""

    def save(self, name: str, config: str, state: ConsumerState) -> None:
        """Record a consumer's config JSON and state; durable after the stream store's
        next ``sync`` (write-behind, like nats-server's consumer state)."""
        ...

    def delete(self, name: str) -> None: ...

    async def load(self) -> dict[str, tuple[str, ConsumerState]]:
        """Every saved consumer: name -> (config JSON, state)."""
        ...


class Storage(Protocol):
    """Where an account's streams live: opens stores and remembers stream configs."""

    async def open_stream(self, name: str) -> StreamStore: ...

    def consumers(self, stream: str) -> ConsumerStore: ...

    def save_stream(self, name: str, config: str, created_ns: int) -> None:
        """Record a stream's config JSON (durable after the next ``sync``)."""
        ...

    async def load_streams(self) -> dict[str, tuple[str, int]]:
        """Every saved stream: name -> (config JSON, created ns)."""
        ...

    async def delete_stream(self, name: str) -> None: ...

    async def close(self) -> None: ...
