"""One contract for every storage backend, plus what only the SQLite one promises."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jetport.core.subjects import subject_matches
from jetport.core.tasks import spawn
from jetport.storage.base import ConsumerState, StoredMsg, StoreState
from jetport.storage.memory import MemoryStorage
from jetport.storage.sqlite import SqliteStorage, StorageError
from jetport.storage.sqlite_pipe import PIPE_BYTES
from jetport.storage.sqlite_writer import EARLY_BYTES, MAX_INFLIGHT

Storage = MemoryStorage | SqliteStorage


def make(kind: str, path: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        return SqliteStorage(str(path))
    # A tail of a few messages sends nearly every read to the database.
    return SqliteStorage(str(path), tail_msgs=3, tail_bytes=1 << 20)


@pytest.fixture(params=["memory", "sqlite", "sqlite-tiny-tail"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    st = make(request.param, tmp_path / "acct")
    yield st
    await st.close()


async def fill(store, msgs: list[tuple[int, bytes, bytes]], sync: bool = True) -> None:
    for seq, subject, data in msgs:
        store.store(seq, subject, b"h" if seq % 2 else None, data, seq * 1000)
    if sync:
        await store.sync()


def sizer(store):
    """How the store counts a message's bytes (memory and file stores differ, as in
    nats-server)."""
    return lambda subject, data, hdr: store.record_size(subject, hdr, data)


SAMPLE = [
    (1, b"orders.eu.new", b"one"),
    (2, b"orders.us.new", b"two"),
    (3, b"orders.eu.paid", b"three"),
    (4, b"audit", b"four"),
    (5, b"orders.eu.new", b"five"),
]


async def sample(storage: Storage):
    store = await storage.open_stream("S")
    await fill(store, SAMPLE)
    return store


async def test_committed_seq_follows_commits(storage: Storage) -> None:
    """What a commit made durable: at once in memory, after the commit in SQLite."""
    store = await sample(storage)
    await store.sync()
    assert store.committed_seq() == 5
    store.store_many(6, [(b"a", b"x")] * 3, 6000)
    store.skip(10, 7000)
    durable_at_once = isinstance(storage, MemoryStorage)
    assert store.committed_seq() == (10 if durable_at_once else 5)
    await store.sync()
    assert store.committed_seq() == 10


async def test_store_get_and_state(storage: Storage) -> None:
    store = await sample(storage)
    st = store.state()
    size = sizer(store)
    total = sum(size(s, d, b"h" if q % 2 else None) for q, s, d in SAMPLE)
    assert st == StoreState(5, total, 1, 1000, 5, 5000, 0)
    msg = await store.get(3)
    assert msg == StoredMsg(3, b"orders.eu.paid", b"h", b"three", 3000)
    assert (await store.get(2)).hdr is None
    assert await store.get(0) is None
    assert await store.get(6) is None
    with pytest.raises(ValueError):
        store.store(5, b"x", None, b"", 0)


async def test_next_with_filters(storage: Storage) -> None:
    store = await sample(storage)
    assert (await store.next(0)).seq == 1
    assert (await store.next(3)).seq == 3
    assert await store.next(6) is None
    assert (await store.next(2, [b"orders.eu.new"])).seq == 5
    assert (await store.next(1, [b"orders.*.paid"])).seq == 3
    assert (await store.next(4, [b"orders.>"])).seq == 5
    assert (await store.next(2, [b"audit", b"orders.eu.*"])).seq == 3
    assert (await store.next(4, [b"audit", b"orders.eu.*"])).seq == 4
    assert (await store.next(2, [b"nope", b">"])).seq == 2
    assert await store.next(1, [b"nope", b"*.x.y"]) is None
    assert await store.next(5, [b"audit"]) is None


async def test_last(storage: Storage) -> None:
    store = await sample(storage)
    assert (await store.last(b"orders.eu.new")).seq == 5
    assert (await store.last(b"orders.*.paid")).seq == 3
    assert (await store.last(b"orders.us.>")).seq == 2
    assert (await store.last(b">")).seq == 5
    assert await store.last(b"nope") is None
    assert await store.last(b"nope.*") is None


async def test_remove(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.remove(3)
    assert not await store.remove(3)
    assert not await store.remove(99)
    st = store.state()
    assert (st.msgs, st.first_seq, st.last_seq, st.num_deleted) == (4, 1, 5, 1)
    assert await store.get(3) is None
    assert (await store.next(3)).seq == 4
    assert await store.remove(1)
    st = store.state()
    assert (st.first_seq, st.first_ts, st.num_deleted) == (2, 2000, 1)
    assert await store.remove(5)
    st = store.state()
    assert (st.msgs, st.last_seq, st.last_ts, st.num_deleted) == (2, 5, 5000, 2)
    size = sizer(store)
    assert st.bytes == size(b"orders.us.new", b"two", None) + size(b"audit", b"four", None)
    for seq in (2, 4):
        assert await store.remove(seq)
    assert store.state() == StoreState(0, 0, 6, 0, 5, 5000, 0)


async def test_purge_all(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.purge() == 5
    assert store.state() == StoreState(0, 0, 6, 0, 5, 5000, 0)
    assert await store.next(0) is None
    assert await store.count(b">") == 0
    store.store(6, b"after", None, b"x", 6000)
    await store.sync()
    st = store.state()
    assert (st.msgs, st.first_seq, st.first_ts, st.last_seq) == (1, 6, 6000, 6)
    assert (await store.next(0)).seq == 6


async def test_purge_by_subject(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.purge(b"orders.eu.new") == 2
    assert await store.seqs(b"orders.eu.new") == []
    st = store.state()
    assert (st.msgs, st.first_seq, st.last_seq, st.num_deleted) == (3, 2, 5, 1)
    assert await store.purge(b"orders.*.*") == 2
    assert await store.subjects() == {b"audit": 1}
    assert store.state().first_seq == 4


async def test_purge_before_and_keep(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.purge(before=3) == 2
    assert store.state().first_seq == 3
    assert await store.purge(keep=2) == 1
    st = store.state()
    assert (st.msgs, st.first_seq, st.first_ts) == (2, 4, 4000)
    assert await store.purge(keep=5) == 0
    assert await store.purge(before=2) == 0


async def test_purge_subject_with_keep_and_before(storage: Storage) -> None:
    store = await storage.open_stream("K")
    await fill(store, [(i, b"kv.a" if i % 2 else b"kv.b", b"%d" % i) for i in range(1, 21)])
    assert await store.purge(b"kv.a", keep=3) == 7
    assert await store.seqs(b"kv.a") == [15, 17, 19]
    assert await store.purge(b"kv.*", before=10) == 4
    assert await store.seqs(b"kv.b") == [10, 12, 14, 16, 18, 20]
    assert await store.purge(b"kv.>", keep=4, before=16) == 4
    assert await store.seqs(b">") == [16, 17, 18, 19, 20]
    assert store.state().num_deleted == 0


async def test_purge_beyond_last_moves_on(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.purge(before=100) == 5
    assert store.state() == StoreState(0, 0, 100, 0, 99, 5000, 0)
    store.store(100, b"x", None, b"", 1)
    assert store.state().first_seq == 100


async def test_skip(storage: Storage) -> None:
    store = await storage.open_stream("K")
    store.skip(1)
    assert store.state() == StoreState(0, 0, 2, 0, 1, 0, 0)
    store.store(2, b"a", None, b"2", 2000)
    store.skip(3, 3000)
    st = store.state()
    assert (st.msgs, st.first_seq, st.last_seq, st.last_ts, st.num_deleted) == (1, 2, 3, 3000, 1)
    store.skip(4)
    assert store.state().last_ts == 3000
    with pytest.raises(ValueError):
        store.skip(4)
    store.store(5, b"a", None, b"5", 5000)
    await store.sync()
    assert await store.seqs(b"a") == [2, 5]
    assert (await store.next(3)).seq == 5
    assert await store.purge() == 2
    store.skip(7)
    assert store.state() == StoreState(0, 0, 8, 0, 7, 5000, 0)


async def test_count_subjects_seqs(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.count(b">") == 5
    assert await store.count(b">", 3) == 3
    assert await store.count(b"orders.eu.new") == 2
    assert await store.count(b"orders.eu.new", 2) == 1
    assert await store.count(b"orders.*.*", 2) == 3
    assert await store.count(b"nope") == 0
    assert await store.subjects() == {
        b"orders.eu.new": 2, b"orders.us.new": 1, b"orders.eu.paid": 1, b"audit": 1,
    }
    assert await store.subjects(b"orders.eu.*") == {b"orders.eu.new": 2, b"orders.eu.paid": 1}
    assert await store.subjects(b"audit") == {b"audit": 1}
    assert await store.seqs(b"orders.eu.new") == [1, 5]
    assert await store.seqs(b"orders.eu.new", limit=1) == [1]
    assert await store.seqs(b"nope") == []


async def test_consumers(storage: Storage) -> None:
    cons = storage.consumers("S")
    state = ConsumerState(5, 9, 3, 7, {8: (4, 111), 9: (5, 222)}, {8: 2})
    cons.save("dur", '{"durable_name":"dur"}', state)
    cons.save("other", "{}", ConsumerState())
    loaded = await cons.load()
    assert loaded == {"dur": ('{"durable_name":"dur"}', state), "other": ("{}", ConsumerState())}
    cons.delete("other")
    assert set(await storage.consumers("S").load()) == {"dur"}
    assert await storage.consumers("T").load() == {}


async def test_stream_configs(storage: Storage) -> None:
    storage.save_stream("A", '{"name":"A"}', 11)
    storage.save_stream("B", '{"name":"B"}', 22)
    storage.save_stream("A", '{"name":"A","v":2}', 11)
    assert await storage.load_streams() == {
        "A": ('{"name":"A","v":2}', 11), "B": ('{"name":"B"}', 22),
    }
    store = await storage.open_stream("A")
    await fill(store, SAMPLE)
    storage.consumers("A").save("c", "{}", ConsumerState())
    await storage.delete_stream("A")
    assert await storage.load_streams() == {"B": ('{"name":"B"}', 22)}
    assert await storage.consumers("A").load() == {}
    again = await storage.open_stream("A")
    assert again.state() == StoreState()
    assert await again.next(0) is None


async def test_open_twice_and_destroy(storage: Storage) -> None:
    store = await sample(storage)
    other = await storage.open_stream("S")
    assert (await other.get(4)).data == b"four"
    keep = await storage.open_stream("T")
    await fill(keep, [(1, b"t", b"t")])
    await store.destroy()
    fresh = await storage.open_stream("S")
    assert fresh.state() == StoreState()
    assert await fresh.get(1) is None
    assert (await keep.get(1)).data == b"t"


async def test_close_and_reopen_stream(storage: Storage) -> None:
    store = await sample(storage)
    assert await store.remove(2)
    store.store(6, b"late", None, b"six", 6000)
    before = store.state()
    await store.close()
    again = await storage.open_stream("S")
    assert again.state() == before
    assert (await again.get(6)).data == b"six"
    assert await again.get(2) is None
    again.store(7, b"later", None, b"seven", 7000)
    await again.sync()
    assert again.state().msgs == before.msgs + 1


async def test_unsynced_writes_are_readable(storage: Storage) -> None:
    store = await storage.open_stream("U")
    await fill(store, SAMPLE, sync=False)
    assert (await store.get(5)).data == b"five"
    assert (await store.next(2, [b"audit"])).seq == 4
    assert (await store.last(b"orders.eu.*")).seq == 5
    assert await store.count(b"orders.>") == 4
    assert await store.seqs(b"orders.eu.new") == [1, 5]
    await store.sync()


# -- a random workload against a naive model -----------------------------------------

SUBJECTS = [b"a.1", b"a.2", b"b.1", b"b.x.y", b"c"]
FILTERS = [b">", b"a.1", b"a.*", b"*.1", b"b.>", b"c", b"none"]


class Model:
    """The contract written as plainly as possible."""

    def __init__(self, size) -> None:
        self.size = size
        self.msgs: dict[int, tuple[bytes, bytes, int]] = {}
        self.first, self.first_ts, self.last, self.last_ts = 0, 0, 0, 0

    def store(self, seq: int, subject: bytes, data: bytes, ts: int) -> None:
        if not self.msgs:
            self.first, self.first_ts = seq, ts
        self.msgs[seq] = (subject, data, ts)
        self.last, self.last_ts = seq, ts

    def skip(self, seq: int) -> None:
        self.last = seq
        if not self.msgs:
            self.first, self.first_ts = seq + 1, 0

    def refirst(self) -> None:
        if self.msgs:
            self.first = min(self.msgs)
            self.first_ts = self.msgs[self.first][2]
        else:
            self.first, self.first_ts = self.last + 1, 0

    def remove(self, seq: int) -> bool:
        if self.msgs.pop(seq, None) is None:
            return False
        self.refirst()
        return True

    def matching(self, pattern: bytes) -> list[int]:
        return sorted(s for s, m in self.msgs.items() if subject_matches(pattern, m[0]))

    def purge(self, pattern: bytes | None, before: int, keep: int) -> int:
        seqs = self.matching(pattern or b">")
        victims = seqs[: max(0, len(seqs) - keep)] if keep else seqs
        victims = [s for s in victims if not before or s < before]
        for s in victims:
            del self.msgs[s]
        if pattern is None and not keep and not self.msgs and before > self.last + 1:
            self.last = before - 1
        self.refirst()
        return len(victims)

    def state(self) -> StoreState:
        n = len(self.msgs)
        nbytes = sum(self.size(s, d, None) for s, d, _ in self.msgs.values())
        deleted = self.last - self.first + 1 - n if n else 0
        return StoreState(n, nbytes, self.first, self.first_ts, self.last, self.last_ts, deleted)


async def check(store, model: Model, rng: random.Random) -> None:
    assert store.state() == model.state()
    probe = rng.randint(0, model.last + 2)
    pattern = rng.choice(FILTERS)
    got = await store.get(probe)
    want = model.msgs.get(probe)
    assert (got.subject, got.data, got.ts) == want if got else want is None
    found = [s for s in model.matching(pattern) if s >= probe]
    nxt = await store.next(probe, [pattern])
    assert (nxt.seq if nxt else None) == (found[0] if found else None)
    pair = [pattern, rng.choice(FILTERS)]
    both = sorted(set(model.matching(pair[0])) | set(model.matching(pair[1])))
    nxt = await store.next(probe, pair)
    assert (nxt.seq if nxt else None) == next((s for s in both if s >= probe), None)
    last = await store.last(pattern)
    every = model.matching(pattern)
    assert (last.seq if last else None) == (every[-1] if every else None)
    assert await store.count(pattern, probe) == len(found)
    counts: dict[bytes, int] = {}
    for s in every:
        counts[model.msgs[s][0]] = counts.get(model.msgs[s][0], 0) + 1
    assert await store.subjects(pattern) == counts
    literal = rng.choice(SUBJECTS)
    assert await store.seqs(literal, 2) == model.matching(literal)[:2]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_workload(storage: Storage, seed: int) -> None:
    rng = random.Random(seed)
    store = await storage.open_stream("R")
    model = Model(sizer(store))
    seq = 0
    for _ in range(300):
        roll = rng.random()
        if roll < 0.55:
            for _ in range(rng.randint(1, 6)):
                seq += rng.choice((1, 1, 1, 2))
                subject = rng.choice(SUBJECTS)
                data = rng.randbytes(rng.randint(0, 20))
                store.store(seq, subject, None, data, seq * 10)
                model.store(seq, subject, data, seq * 10)
        elif roll < 0.75 and model.last:
            target = rng.randint(1, model.last)
            assert await store.remove(target) == model.remove(target)
        elif roll < 0.85:
            subject = rng.choice([None, *FILTERS])
            before = rng.choice((0, 0, rng.randint(0, model.last + 3)))
            keep = rng.choice((0, 0, rng.randint(0, 6)))
            want = model.purge(None if subject in (None, b">") else subject, before, keep)
            assert await store.purge(subject, before, keep) == want
            seq = model.last
        elif roll < 0.9:
            seq += rng.randint(1, 2)
            store.skip(seq)
            model.skip(seq)
        elif roll < 0.95:
            await store.sync()
        await check(store, model, rng)


@pytest.mark.parametrize("seed", [4, 5])
async def test_overlapping_ops_apply_in_call_order(storage: Storage, seed: int) -> None:
    """Removals and purges in flight while publishing goes on act at the point they
    were called: never on messages stored after, always on those before."""
    rng = random.Random(seed)
    store = await storage.open_stream("O")
    model = Model(sizer(store))
    seq = 0
    pending: list[tuple[asyncio.Task[object], object]] = []
    for _ in range(400):
        roll = rng.random()
        if roll < 0.6:
            seq += 1
            subject = rng.choice(SUBJECTS)
            store.store(seq, subject, None, b"%d" % seq, seq)
            model.store(seq, subject, b"%d" % seq, seq)
        elif roll < 0.8 and seq:
            target = rng.randint(1, seq)
            pending.append((asyncio.create_task(store.remove(target)), model.remove(target)))
        elif roll < 0.88:
            subject = rng.choice([None, *FILTERS])
            before = rng.choice((0, rng.randint(0, seq + 1)))
            keep = rng.choice((0, rng.randint(0, 4)))
            want = model.purge(None if subject in (None, b">") else subject, before, keep)
            pending.append((asyncio.create_task(store.purge(subject, before, keep)), want))
        else:
            await asyncio.sleep(0)  # let the task just created put itself in line
            continue
        await asyncio.sleep(0)
    assert [await task for task, _ in pending] == [want for _, want in pending]
    await store.sync()
    assert store.state() == model.state()
    for probe in range(seq + 1):
        await check(store, model, rng)
        got = await store.get(probe)
        assert (got.data if got else None) == (model.msgs.get(probe) or (0, None))[1]


# -- what only the SQLite store promises --------------------------------------------


async def test_sqlite_reopen_recovers_everything(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path))
    st.save_stream("S", '{"name":"S"}', 7)
    store = await st.open_stream("S")
    await fill(store, SAMPLE)
    assert await store.remove(3)
    empty = await st.open_stream("E")
    await fill(empty, [(1, b"e", b"1"), (2, b"e", b"2")])
    assert await empty.purge() == 2
    gone = await st.open_stream("G")
    await fill(gone, [(1, b"g", b"1")])
    assert await gone.remove(1)
    skipped = await st.open_stream("K")
    skipped.skip(1)
    skipped.store(2, b"k", None, b"2", 2)
    skipped.skip(3, 3)
    cstate = ConsumerState(4, 5, 2, 3, {5: (4, 99)}, {5: 3})
    st.consumers("S").save("dur", '{"d":1}', cstate)
    before = store.state()
    await st.close()

    st = SqliteStorage(str(tmp_path))
    try:
        assert await st.load_streams() == {"S": ('{"name":"S"}', 7)}
        store = await st.open_stream("S")
        assert store.state() == before
        assert [m.seq for m in [await store.get(i) for i in range(1, 6)] if m] == [1, 2, 4, 5]
        assert (await store.get(5)) == StoredMsg(5, b"orders.eu.new", b"h", b"five", 5000)
        assert (await st.open_stream("E")).state() == StoreState(0, 0, 3, 0, 2, 2000, 0)
        assert (await st.open_stream("G")).state() == StoreState(0, 0, 2, 0, 1, 1000, 0)
        k_bytes = skipped.record_size(b"k", None, b"2")
        assert (await st.open_stream("K")).state() == StoreState(1, k_bytes, 2, 2, 3, 3, 1)
        assert await st.consumers("S").load() == {"dur": ('{"d":1}', cstate)}
        store.store(6, b"more", None, b"6", 6000)
        await store.sync()
    finally:
        await st.close()


async def test_sqlite_reads_before_commit(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path), tail_msgs=2, tail_bytes=1 << 20)
    try:
        store = await st.open_stream("S")
        await fill(store, SAMPLE, sync=False)
        assert store._committed == 0  # nothing committed yet, all served from the tail
        assert [(await store.get(i)).data for i in range(1, 6)] == [d for _, _, d in SAMPLE]
        assert (await store.next(1, [b"orders.*.paid"])).seq == 3
        await store.sync()
        raw = sqlite3.connect(st.path)
        assert raw.execute("SELECT count(*) FROM msgs").fetchone()[0] == 5
        raw.close()
        assert store._tail.floor == 4  # committed, so all but the bound left memory
        assert (await store.get(1)).data == b"one"
        assert (await store.next(2, [b"orders.eu.*"])).seq == 3
    finally:
        await st.close()


async def test_sqlite_remove_waits_for_earlier_rows(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        await fill(store, SAMPLE, sync=False)
        assert await store.purge(b"orders.eu.new") == 2
        store.store(6, b"orders.eu.new", None, b"six", 6000)
        assert await store.remove(4)
        assert await store.seqs(b"orders.eu.new") == [6]
        assert store.state().msgs == 3
    finally:
        await st.close()


async def test_sqlite_readahead_sees_removals(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path), tail_msgs=2, tail_bytes=1 << 20)
    try:
        store = await st.open_stream("S")
        await fill(store, [(i, b"r.%d" % (i % 3), b"%d" % i) for i in range(1, 101)])
        assert (await store.next(1)).seq == 1  # reads a window well past 5
        assert (await store.next(4, [b"r.2"])).seq == 5
        assert await store.remove(5)
        assert (await store.next(5)).seq == 6
        assert (await store.next(4, [b"r.2"])).seq == 8
        assert await store.purge(b"r.0") == 33
        assert [(await store.next(s)).seq for s in (6, 7, 9)] == [7, 7, 10]
        reads = [asyncio.create_task(store.next(s, [b"r.1"])) for s in range(1, 90, 7)]
        assert await store.purge(b"r.1", before=50) == 17
        await asyncio.gather(*reads)
        assert (await store.next(1, [b"r.1"])).seq == 52
    finally:
        await st.close()


async def test_sqlite_commit_failure_is_reported(tmp_path: Path) -> None:

    st = SqliteStorage(str(tmp_path))
    store = await st.open_stream("S")
    await fill(store, SAMPLE)

    # Another writer took sequence 6 behind the store's back: committing it must fail.
    raw = sqlite3.connect(st.path)
    raw.execute("INSERT INTO msgs SELECT stream_id, 6, subject, hdr, data, ts FROM msgs"
                " WHERE seq = 5")
    raw.commit()
    raw.close()
    store.store(6, b"x", None, b"x", 6)
    with pytest.raises(StorageError):
        await store.sync()
    with pytest.raises(StorageError):
        store.store(7, b"x", None, b"x", 7)
    await st.close()
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().last_seq == 6
        assert (await store.get(5)).data == (await store.get(6)).data == b"five"
    finally:
        await st.close()


async def test_sqlite_synced_state_needs_no_clean_close(tmp_path: Path) -> None:
    """What a crash right after ``sync()`` would find: a second opener of the same
    directory rebuilds every stream's state from the committed rows alone."""
    st = SqliteStorage(str(tmp_path))
    second = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        await fill(store, SAMPLE)
        assert await store.remove(1)
        await fill(store, [(6, b"x", b"6"), (7, b"y", b"7")])
        store.skip(8, 8000)
        empty = await st.open_stream("E")
        await fill(empty, [(1, b"e", b"1")])
        await empty.purge()
        await fill(empty, [(2, b"e", b"2")])
        skipped = await st.open_stream("K")
        skipped.skip(5)
        await skipped.sync()
        for name in ("S", "E", "K"):
            mine = (await st.open_stream(name)).state()
            assert (await second.open_stream(name)).state() == mine, name
    finally:
        await second.close()
        await st.close()


async def test_sqlite_small_and_large_batches_both_persist(tmp_path: Path) -> None:
    """A lone message commits in the hub, a burst through the writer process; the
    database holds both, in order, and on_stored fires once each is committed."""
    st = SqliteStorage(str(tmp_path))
    store = await st.open_stream("S")
    synced: list[BaseException | None] = []
    store.store(1, b"one", None, b"1", 1)
    store.on_stored(synced.append)
    await store.sync()
    store.store_many(2, [(b"many", b"%d" % i) for i in range(500)], 2)
    store.on_stored(synced.append)
    await store.sync()
    assert synced == [None, None]
    store.on_stored(synced.append)  # nothing pending: at once
    assert synced == [None, None, None]
    await st.close()
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().msgs == 501 and store.state().last_seq == 501
        assert (await store.get(1)).data == b"1"
        assert (await store.get(501)).data == b"499"
    finally:
        await st.close()


async def writer_pid(st: SqliteStorage) -> int:
    """The writer process's pid once it runs."""
    for _ in range(100):
        if st.writer.pid is not None:
            return st.writer.pid
        await asyncio.sleep(0.05)
    raise AssertionError("no writer process")


async def test_sqlite_writer_process_starts_with_the_first_large_transaction(
        tmp_path: Path) -> None:
    """With a way to run background work, small commits stay in the hub and start no
    process; the first large one starts it, committing in the hub meanwhile; closing
    waits for a start under way."""
    st = SqliteStorage(str(tmp_path), spawn=spawn)
    store = await st.open_stream("S")
    for seq in range(1, 4):
        store.store(seq, b"a", None, b"x", seq)
        await store.sync()
    assert st.writer.pid is None
    store.store_many(4, [(b"a", b"y")] * 100, 4)
    await store.sync()
    await st.close()
    st = SqliteStorage(str(tmp_path), spawn=spawn)
    try:
        store = await st.open_stream("S")
        assert store.state().msgs == 103
        store.store_many(104, [(b"a", b"z")] * 100, 5)
        await store.sync()
        await writer_pid(st)
        store.store_many(204, [(b"a", b"w")] * 100, 6)
        await store.sync()
        assert store.state().msgs == 303
    finally:
        await st.close()
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().msgs == 303 and (await store.get(303)).data == b"w"
    finally:
        await st.close()


async def test_sqlite_large_rows_go_to_the_writer_process_within_the_loop_turn(
        tmp_path: Path) -> None:
    """Rows past EARLY_BYTES in one loop turn go to the writer process at once, so it
    commits them while the hub goes on; every on_stored fires, in order, once its rows
    are committed, and the database holds them all."""
    st = SqliteStorage(str(tmp_path))
    store = await st.open_stream("S")
    store.store_many(1, [(b"a", b"x")] * 100, 1)  # starts the process
    await store.sync()
    await writer_pid(st)
    payload = b"p" * 1024
    per_call = 32
    calls = 3 * EARLY_BYTES // (per_call * 1024) + 1
    fired: list[int] = []
    seq = 101
    for i in range(calls):  # all in one turn, as a socket read of many PUBs
        store.store_many(seq, [(b"a", payload)] * per_call, 2)
        seq += per_call
        store.on_stored(lambda exc, i=i: fired.append(i) if exc is None else None)
    assert st.writer.inflight == MAX_INFLIGHT  # handed over without waiting for the turn
    if hasattr(fcntl, "F_GETPIPE_SZ"):  # Linux: the pipe holds a whole transaction
        pipe = st.writer._stdin.get_extra_info("pipe")  # type: ignore[union-attr]
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    await store.sync()
    assert fired == list(range(calls))
    await st.close()
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().last_seq == seq - 1 == store.state().msgs
        assert (await store.get(seq - 1)).data == payload
    finally:
        await st.close()


async def test_sqlite_writer_process_loss_is_reported(tmp_path: Path) -> None:
    """If the writer process dies, whatever waits on a commit hears of it and no
    later write is accepted; what was committed before stays."""
    st = SqliteStorage(str(tmp_path))
    store = await st.open_stream("S")
    store.store_many(1, [(b"a", b"x")] * 100, 1)
    await store.sync()
    os.kill(await writer_pid(st), signal.SIGKILL)
    store.store_many(101, [(b"a", b"y")] * 100, 2)
    errors: list[BaseException | None] = []
    store.on_stored(errors.append)
    with pytest.raises(StorageError):
        await store.sync()
    assert len(errors) == 1 and isinstance(errors[0], StorageError)
    with pytest.raises(StorageError):
        store.store(201, b"a", None, b"z", 3)
    await st.close()
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().last_seq == 100
    finally:
        await st.close()


def test_direct_binding_stores_what_adapting_stored(tmp_path: Path) -> None:
    """bytes stay BLOBs and None stays NULL when bound without the adapter search."""
    from jetport.storage.sqlite_worker import bind_directly

    bind_directly()
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE t(a, b, c)")
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", (b"x.y", None, b"\x00\xff"))
    assert conn.execute("SELECT typeof(a), typeof(b), typeof(c), a, b, c FROM t").fetchone() == (
        "blob", "null", "blob", b"x.y", None, b"\x00\xff")
    assert conn.execute("SELECT count(*) FROM t WHERE a = ?", (b"x.y",)).fetchone() == (1,)
    conn.close()
