"""Streams kept in process memory: fast, and gone on restart.

Messages live in a dict by sequence with two orderings beside it: every sequence, and
the sequences of each subject.  Last-by-subject, per-subject counts and dropping a
subject's oldest message (what ``max_msgs_per_subject`` does on every publish) never
walk the whole stream.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from heapq import merge
from itertools import islice

from jetport.storage.subjects import is_literal

from .base import ConsumerState, StoredMsg, StoreState, take
from .filters import Matcher, matcher, normalize, normalize_one
from .seqindex import SeqIndex

#: Messages scanned in stream order before a wildcard lookup switches to the
#: per-subject indexes (scanning wins when matches are dense, the index when sparse).
_SCAN = 256


def copy_state(state: ConsumerState) -> ConsumerState:
    """A snapshot the caller can keep mutating its own copy of."""
    return ConsumerState(
        state.delivered_consumer_seq,
        state.delivered_stream_seq,
        state.ack_floor_consumer_seq,
        state.ack_floor_stream_seq,
        dict(state.pending),
        dict(state.redelivered),
    )


def take_oldest(seqs: list[int], before: int, keep: int) -> list[int]:
    """The purge window over sorted ``seqs``: oldest first, only below ``before`` (if
    set), leaving at least ``keep`` of them (if set)."""
    limit = len(seqs) - keep if keep else len(seqs)
    if limit <= 0:
        return []
    out = seqs[:limit]
    if before and out and out[-1] >= before:
        del out[bisect_left(out, before) :]
    return out


class MemoryStreamStore:
    """One stream's messages in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.removals = 0
        self._reset()

    def _reset(self) -> None:
        self._msgs: dict[int, StoredMsg] = {}
        self._all = SeqIndex()
        self._subj: dict[bytes, SeqIndex] = {}
        self._bytes = 0
        self._first_seq = 0
        self._first_ts = 0
        self._last_seq = 0
        self._last_ts = 0

    def committed_seq(self) -> int:
        return self._last_seq  # nothing outlives the process: stored is as good as it gets

    def state(self) -> StoreState:
        n = len(self._msgs)
        deleted = self._last_seq - self._first_seq + 1 - n if n else 0
        return StoreState(
            n, self._bytes, self._first_seq, self._first_ts, self._last_seq, self._last_ts,
            deleted,
        )

    @staticmethod
    def record_size(subject: bytes, hdr: bytes | None, data: bytes) -> int:
        return len(subject) + len(data) + (len(hdr) if hdr else 0) + 16

    def store(self, seq: int, subject: bytes, hdr: bytes | None, data: bytes, ts: int) -> None:
        if seq <= self._last_seq:
            raise ValueError(f"sequence {seq} not above last sequence {self._last_seq}")
        msg = StoredMsg(seq, subject, hdr, data, ts)
        if not self._msgs:
            self._first_seq, self._first_ts = seq, ts
        self._msgs[seq] = msg
        self._all.append(seq)
        idx = self._subj.get(subject)
        if idx is None:
            idx = self._subj[subject] = SeqIndex()
        idx.append(seq)
        self._bytes += msg.size
        self._last_seq, self._last_ts = seq, ts

    def store_many(self, seq: int, msgs: list[tuple[bytes, bytes]], ts: int) -> None:
        for i, (subject, data) in enumerate(msgs):
            self.store(seq + i, subject, None, data, ts)

    def skip(self, seq: int, ts: int = 0) -> None:
        if seq <= self._last_seq:
            raise ValueError(f"sequence {seq} not above last sequence {self._last_seq}")
        self._last_seq = seq
        if ts:
            self._last_ts = ts
        if not self._msgs:
            self._first_seq, self._first_ts = seq + 1, 0

    async def sync(self) -> None:
        return None

    def on_stored(self, callback: Callable[[BaseException | None], None]) -> None:
        callback(None)

    async def get(self, seq: int) -> StoredMsg | None:
        return self._msgs.get(seq)

    async def next(self, seq: int, subjects: list[bytes] | None = None) -> StoredMsg | None:
        return self._next_now(seq, normalize(subjects))

    async def next_many(
        self, seq: int, subjects: list[bytes] | None = None, limit: int = 1
    ) -> list[StoredMsg]:
        filters = normalize(subjects)
        return take(lambda s: self._next_now(s, filters), seq, limit)

    def _next_now(self, seq: int, filters: list[bytes] | None) -> StoredMsg | None:
        if filters is None:
            found = self._all.ge(seq)
            return None if found is None else self._msgs[found]
        best: int | None = None
        wild: list[bytes] = []
        for f in filters:
            if not is_literal(f):
                wild.append(f)
                continue
            idx = self._subj.get(f)
            s = idx.ge(seq) if idx is not None else None
            if s is not None and (best is None or s < best):
                best = s
        if wild:
            best = self._next_wild(seq, matcher(wild), best)
        return None if best is None else self._msgs[best]

    def _next_wild(self, seq: int, match: Matcher, best: int | None) -> int | None:
        msgs = self._msgs
        for i, s in enumerate(self._all.iter_from(seq)):
            if best is not None and s >= best:
                return best
            if match(msgs[s].subject):
                return s
            if i >= _SCAN:
                break
        else:
            return best
        for subject, idx in self._subj.items():
            if match(subject):
                first = idx.ge(seq)
                if first is not None and (best is None or first < best):
                    best = first
        return best

    async def last(self, subject: bytes) -> StoredMsg | None:
        pattern = normalize_one(subject)
        found: int | None
        if pattern is None:
            found = self._all.last()
        elif is_literal(pattern):
            idx = self._subj.get(pattern)
            found = idx.last() if idx is not None else None
        else:
            found = self._last_wild(matcher([pattern]))
        return None if found is None else self._msgs[found]

    def _last_wild(self, match: Matcher) -> int | None:
        msgs = self._msgs
        for i, s in enumerate(self._all.iter_back()):
            if match(msgs[s].subject):
                return s
            if i >= _SCAN:
                break
        else:
            return None
        lasts = [idx.last() or 0 for subject, idx in self._subj.items() if match(subject)]
        return max(lasts) if lasts else None

    async def remove(self, seq: int) -> bool:
        msg = self._msgs.pop(seq, None)
        if msg is None:
            return False
        self.removals += 1
        self._drop(msg)
        self._refirst()
        return True

    def _drop(self, msg: StoredMsg) -> None:
        self._all.remove(msg.seq)
        idx = self._subj[msg.subject]
        idx.remove(msg.seq)
        if not idx:
            del self._subj[msg.subject]
        self._bytes -= msg.size

    def _refirst(self) -> None:
        first = self._all.first()
        if first is None:
            self._first_seq, self._first_ts = self._last_seq + 1, 0
        else:
            self._first_seq, self._first_ts = first, self._msgs[first].ts

    async def purge(self, subject: bytes | None = None, before: int = 0, keep: int = 0) -> int:
        self.removals += 1
        pattern = normalize_one(subject)
        if pattern is None and not before and not keep:
            gone = len(self._msgs)
            self._msgs, self._all, self._subj, self._bytes = {}, SeqIndex(), {}, 0
        else:
            victims = take_oldest(self._matching(pattern), before, keep)
            for s in victims:
                self._drop(self._msgs.pop(s))
            gone = len(victims)
        if pattern is None and not keep and not self._msgs and before > self._last_seq + 1:
            # Purging up to a sequence beyond the end moves the stream on to it.
            self._last_seq = before - 1
        self._refirst()
        return gone

    def _matching(self, pattern: bytes | None) -> list[int]:
        """Sorted sequences whose subject matches ``pattern`` (None: all)."""
        if pattern is None:
            return list(self._all.iter_from())
        if is_literal(pattern):
            idx = self._subj.get(pattern)
            return list(idx.iter_from()) if idx is not None else []
        match = matcher([pattern])
        parts = [idx.iter_from() for subject, idx in self._subj.items() if match(subject)]
        return list(merge(*parts)) if len(parts) > 1 else list(parts[0]) if parts else []

    async def count(self, subject: bytes, seq: int = 0) -> int:
        pattern = normalize_one(subject)
        if pattern is None:
            return self._all.count_ge(seq)
        if is_literal(pattern):
            idx = self._subj.get(pattern)
            return idx.count_ge(seq) if idx is not None else 0
        match = matcher([pattern])
        return sum(idx.count_ge(seq) for subj, idx in self._subj.items() if match(subj))

    async def subjects(self, subject: bytes = b">") -> dict[bytes, int]:
        pattern = normalize_one(subject)
        if pattern is None:
            return {s: len(idx) for s, idx in self._subj.items()}
        if is_literal(pattern):
            idx = self._subj.get(pattern)
            return {pattern: len(idx)} if idx is not None else {}
        match = matcher([pattern])
        return {s: len(idx) for s, idx in self._subj.items() if match(s)}

    async def seqs(self, subject: bytes, limit: int = 0) -> list[int]:
        pattern = normalize_one(subject)
        if pattern is not None and is_literal(pattern):
            idx = self._subj.get(pattern)
            return list(islice(idx.iter_from(), limit or None)) if idx is not None else []
        found = self._matching(pattern)
        return found[:limit] if limit else found

    async def close(self) -> None:
        return None

    async def destroy(self) -> None:
        """Forget everything: reopening the stream starts it afresh at sequence 1."""
        self.removals += 1
        self._reset()


class MemoryConsumerStore:
    """Consumer configs and states of one stream, copied on save."""

    def __init__(self) -> None:
        self._saved: dict[str, tuple[str, ConsumerState]] = {}

    def save(self, name: str, config: str, state: ConsumerState) -> None:
        self._saved[name] = (config, copy_state(state))

    def delete(self, name: str) -> None:
        self._saved.pop(name, None)

    async def load(self) -> dict[str, tuple[str, ConsumerState]]:
        return {name: (cfg, copy_state(st)) for name, (cfg, st) in self._saved.items()}


class MemoryStorage:
    """An account's streams in memory; opening a stream twice gives the same store."""

    def __init__(self) -> None:
        self._configs: dict[str, tuple[str, int]] = {}
        self._streams: dict[str, MemoryStreamStore] = {}
        self._consumers: dict[str, MemoryConsumerStore] = {}

    async def open_stream(self, name: str) -> MemoryStreamStore:
        store = self._streams.get(name)
        if store is None:
            store = self._streams[name] = MemoryStreamStore()
        return store

    def consumers(self, stream: str) -> MemoryConsumerStore:
        store = self._consumers.get(stream)
        if store is None:
            store = self._consumers[stream] = MemoryConsumerStore()
        return store

    def save_stream(self, name: str, config: str, created_ns: int) -> None:
        self._configs[name] = (config, created_ns)

    async def load_streams(self) -> dict[str, tuple[str, int]]:
        return dict(self._configs)

    async def delete_stream(self, name: str) -> None:
        self._configs.pop(name, None)
        self._consumers.pop(name, None)
        store = self._streams.pop(name, None)
        if store is not None:
            await store.destroy()

    async def close(self) -> None:
        return None
