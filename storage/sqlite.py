"""Streams in one SQLite database per account (``<directory>/jetport.db``).

Durability: the database runs in WAL mode with ``synchronous=NORMAL``.  A commit then
appends to the WAL with ``write()`` and no ``fsync``; the data sits in the OS page
cache, which outlives the process, so a commit that returned survives ``kill -9``.  An
OS crash or power cut can lose the last commits (never corrupt the database), which is
the trade nats-server's file store makes too by not syncing every write.  A small
transaction is acknowledged once it is in ``jetport.db-pending``, written the same way,
and committed right after (:mod:`jetport.storage.sqlite_pending`).

Several connections, as WAL lets reads run beside the writer.  Rows and saved states
are committed by a writer process; transactions with removals run on a write connection
on the event loop's thread (see :mod:`jetport.storage.sqlite_writer`).  Reads of a bounded
number of rows (a message, a window of the next ones) use a connection on the loop's
thread too: a round trip to another thread costs milliseconds while the loop is busy.
Reads that may scan a whole stream (counts, subject lists) go to a connection that
aiosqlite runs in its own thread, so the loop never waits on them.

Per stream the process keeps counters and bounded caches, nothing per stored message
(:mod:`jetport.storage.sqlite_stream`).  The counters are also a row in ``stream_state``,
written in a transaction with the messages it counts, so opening a stream of any size
reads one row plus the few rows appended since it was last written, and
``first_seq``/``last_seq`` survive purges that leave the stream empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from functools import partial

import aiosqlite

from jetport.storage.subjects import subject_matches

from .base import ConsumerState, StorageError, StoreState
from .sqlite_pending import replay as replay_pending
from .sqlite_schema import SCHEMA
from .sqlite_steps import Txn
from .sqlite_stream import SIZE_SQL, SqliteStreamStore
from .sqlite_worker import PRAGMAS, SYNC_FULL, SYNC_NORMAL, bind_directly
from .sqlite_writer import Spawn, Writer

__all__ = ["SqliteStorage", "SqliteStreamStore", "SqliteConsumerStore", "StorageError"]

_PRAGMAS = (*PRAGMAS, "PRAGMA temp_store = MEMORY")
#: A reading connection's: what only the creating writer sets (page size, WAL) left out.
_READER_PRAGMAS = tuple(p for p in _PRAGMAS if "page_size" not in p and "journal_mode" not in p)


def encode_state(s: ConsumerState) -> str:
    # Keys and values side by side: the JSON encoder takes them without a Python loop.
    return json.dumps(
        [
            s.delivered_consumer_seq, s.delivered_stream_seq,
            s.ack_floor_consumer_seq, s.ack_floor_stream_seq,
            list(s.pending), list(s.pending.values()), list(s.redelivered.items()),
        ],
        separators=(",", ":"),
    )


def decode_state(text: str) -> ConsumerState:
    dcs, dss, acs, ass, seqs, delivered, redelivered = json.loads(text)
    return ConsumerState(
        dcs, dss, acs, ass,
        {seq: (cseq, ts) for seq, (cseq, ts) in zip(seqs, delivered, strict=True)},
        {seq: n for seq, n in redelivered},
    )


def _subj_match(pattern: bytes, subject: bytes) -> bool:
    return subject_matches(pattern, subject)


class SqliteConsumerStore:
    """Durable consumers of one stream; saves are write-behind through the writer."""

    def __init__(self, owner: SqliteStorage, stream: str) -> None:
        self._owner = owner
        self._stream = stream

    def save(self, name: str, config: str, state: ConsumerState) -> None:
        self._owner.writer.save_consumer(self._stream, name, (config, state))

    def delete(self, name: str) -> None:
        self._owner.writer.save_consumer(self._stream, name, None)

    async def load(self) -> dict[str, tuple[str, ConsumerState]]:
        await self._owner.ensure_open()
        await self._owner.writer.sync()
        rows = await self._owner.reader.execute_fetchall(
            "SELECT name, config, state FROM consumers WHERE stream = ?", (self._stream,)
        )
        return {name: (cfg, decode_state(st)) for name, cfg, st in rows}


class SqliteStorage:
    """An account's streams in ``<directory>/jetport.db``.

    Connections open on first use, so construction needs no running loop; configs and
    consumer states saved before that are queued and written once it opens.  ``spawn``
    runs background work for it (see :mod:`.sqlite_writer` for what it changes).
    """

    def __init__(
        self, directory: str, *, tail_msgs: int = 10_000, tail_bytes: int = 4 << 20,
        sync_always: bool = False,
        on_failure: Callable[[StorageError], None] | None = None,
        spawn: Spawn | None = None,
    ) -> None:
        self.directory = directory
        #: SQLite's ``synchronous`` for every commit (see ``sqlite_worker.SYNC_NORMAL``).
        self.sync = SYNC_FULL if sync_always else SYNC_NORMAL
        self.path = os.path.join(directory, "jetport.db")
        self.tail_msgs = tail_msgs
        self.tail_bytes = tail_bytes
        #: The one writer and the two readers are shared with the account's stream and
        #: consumer stores.
        self.writer = Writer(encode_state, spawn)
        self.writer.on_broken = on_failure
        self._wr: sqlite3.Connection | None = None
        #: Bounded reads, on the loop's thread.
        self.quick_reader: sqlite3.Connection = None  # type: ignore[assignment]  # set on open
        #: Reads that may scan, in aiosqlite's thread.
        self.reader: aiosqlite.Connection = None  # type: ignore[assignment]  # set on open
        self._open_lock = asyncio.Lock()
        self._streams: dict[str, SqliteStreamStore] = {}
        self._closed = False

    async def ensure_open(self) -> None:
        if self._wr is not None:
            return
        async with self._open_lock:
            if self._wr is not None:
                return
            if self._closed:
                raise StorageError("storage closed")
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"could not create storage directory: {exc}") from exc
            wr = rs = None
            bind_directly()
            rd = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                wr = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                for pragma in (*_PRAGMAS, f"PRAGMA synchronous = {self.sync}"):
                    wr.execute(pragma)
                wr.executescript(SCHEMA)
                replay_pending(wr, self.path)
                rs = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                for pragma in (*_READER_PRAGMAS, "PRAGMA query_only = ON"):
                    rs.execute(pragma)
                    await rd.execute(pragma)
                for conn in (wr, rs):
                    conn.create_function("subj_match", 2, _subj_match, deterministic=True)
                await rd.create_function("subj_match", 2, _subj_match, deterministic=True)
            except BaseException as exc:
                for c in (wr, rs):
                    if c is not None:
                        c.close()
                await rd.close()
                if isinstance(exc, sqlite3.Error | OSError):
                    raise StorageError(f"cannot open {self.path}: {exc}") from exc
                raise
            self.reader, self.quick_reader = rd, rs
            await self.writer.start(wr, self.path, self.sync)
            self._wr = wr

    async def open_stream(self, name: str) -> SqliteStreamStore:
        await self.ensure_open()
        store = self._streams.get(name)
        if store is not None:
            return store
        sid, db = await self.writer.run(partial(self._open_row, name))
        store = self._streams.get(name)  # opened by someone else meanwhile
        if store is None:
            store = self._streams[name] = SqliteStreamStore(self, name, sid, db)
        return store

    @staticmethod
    def _open_row(name: str, txn: Txn) -> tuple[int, StoreState]:
        conn = txn.conn
        conn.execute("INSERT OR IGNORE INTO streams(name) VALUES (?)", (name,))
        rows = conn.execute(
            "SELECT s.id, st.msgs, st.bytes, st.first_seq, st.first_ts, st.last_seq, st.last_ts"
            " FROM streams s LEFT JOIN stream_state st ON st.id = s.id WHERE s.name = ?",
            (name,),
        ).fetchall()
        sid, *counters = rows[0]
        db = StoreState() if counters[0] is None else StoreState(*counters)
        # The counter row is written lazily: add up what was appended after it.
        n, size, top = conn.execute(
            f"SELECT count(*), coalesce(sum({SIZE_SQL}), 0), max(seq) FROM msgs"
            " WHERE stream_id = ? AND seq > ?",
            (sid, db.last_seq),
        ).fetchone()
        if n:
            if not db.msgs:
                db.first_seq, db.first_ts = conn.execute(
                    "SELECT seq, ts FROM msgs WHERE stream_id = ? AND seq > ? ORDER BY seq"
                    " LIMIT 1",
                    (sid, db.last_seq),
                ).fetchone()
            (last_ts,) = conn.execute(
                "SELECT ts FROM msgs WHERE stream_id = ? AND seq = ?", (sid, top)
            ).fetchone()
            db.msgs += n
            db.bytes += size
            db.last_seq, db.last_ts = top, last_ts
        return sid, db

    def forget(self, store: SqliteStreamStore) -> None:
        if self._streams.get(store.name) is store:
            del self._streams[store.name]

    def consumers(self, stream: str) -> SqliteConsumerStore:
        return SqliteConsumerStore(self, stream)

    def save_stream(self, name: str, config: str, created_ns: int) -> None:
        self.writer.save_stream(name, config, created_ns)

    async def load_streams(self) -> dict[str, tuple[str, int]]:
        await self.ensure_open()
        await self.writer.sync()
        rows = await self.reader.execute_fetchall(
            "SELECT name, config, created FROM streams WHERE config IS NOT NULL"
        )
        return {name: (cfg, created) for name, cfg, created in rows}

    async def delete_stream(self, name: str) -> None:
        await self.ensure_open()
        store = self._streams.pop(name, None)
        if store is not None:
            store.forget_rows()
        sid = "(SELECT id FROM streams WHERE name = ?)"
        await self.writer.execute([
            (f"DELETE FROM msgs WHERE stream_id = {sid}", (name,), False),
            (f"DELETE FROM stream_state WHERE id = {sid}", (name,), False),
            ("DELETE FROM streams WHERE name = ?", (name,), False),
            ("DELETE FROM consumers WHERE stream = ?", (name,), False),
        ])

    @property
    def failed(self) -> bool:
        """A commit failed: nothing more commits until the store is opened again."""
        return self.writer.broken is not None

    async def probe(self) -> None:
        """Open the store and commit a write that changes nothing: StorageError when
        the disk still refuses writes."""
        await self.ensure_open()
        await self.writer.run(_probe)

    async def abandon(self) -> None:
        """Close without committing what is queued (it fails): after a failed commit
        the store is reopened from what the disk holds."""
        if self._closed:
            return
        self._closed = True
        self.writer.abandon()
        for store in list(self._streams.values()):
            store.dead = True
        self._streams.clear()
        if self._wr is not None:
            await self.reader.close()
            self.quick_reader.close()
            with contextlib.suppress(sqlite3.Error):
                self._wr.execute("ROLLBACK")
            self._wr.close()

    async def close(self) -> None:
        """Commit everything queued, then close both connections."""
        if self._closed:
            return
        await self.ensure_open()
        self._closed = True
        try:
            await self.writer.close()
        finally:
            for store in list(self._streams.values()):
                store.dead = True
            self._streams.clear()
            await self.reader.close()
            self.quick_reader.close()
            if self._wr is not None:
                if self.writer.broken is None:
                    with contextlib.suppress(sqlite3.Error):  # the next open replays it
                        self._wr.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._wr.close()


def _probe(txn: Txn) -> None:
    conn = txn.conn
    conn.execute("INSERT INTO streams(name) VALUES ('$probe')")
    conn.execute("DELETE FROM streams WHERE name = '$probe'")
