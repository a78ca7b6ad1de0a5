"""Streams in one SQLite database per account (``<directory>/jetport.db``).

Durability: the database runs in WAL mode with ``synchronous=NORMAL``.  A commit then
appends to the WAL with ``write()`` and no ``fsync``; the data sits in the OS page
cache, which outlives the process, so a commit that returned survives ``kill -9``.  An
OS crash or power cut can lose the last commits (never corrupt the database), which is
the trade nats-server's file store makes too by not syncing every write.

Two connections: all writes go through one (see :mod:`storage.sqlite_writer` for the
group commit), reads through the other, so WAL lets reads run while a batch commits.

Per stream the process keeps counters and bounded caches, nothing per stored message
(:mod:`storage.sqlite_stream`).  The counters are also a row in ``stream_state``,
written in a transaction with the messages it counts, so opening a stream of any size
reads one row plus the few rows appended since it was last written, and
``first_seq``/``last_seq`` survive purges that leave the stream empty.
"""

from __future__ import annotations

import asyncio
import json
import os
from functools import partial

import aiosqlite

from core.subjects import subject_matches

from .base import ConsumerState, StoreState
from .sqlite_stream import SIZE_SQL, SqliteStreamStore
from .sqlite_writer import SCHEMA, StorageError, Txn, Writer

__all__ = ["SqliteStorage", "SqliteStreamStore", "SqliteConsumerStore", "StorageError"]

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA cache_size = -16384",
    "PRAGMA temp_store = MEMORY",
)


def encode_state(s: ConsumerState) -> str:
    pending = [[seq, cseq, ts] for seq, (cseq, ts) in s.pending.items()]
    redelivered = [[seq, n] for seq, n in s.redelivered.items()]
    return json.dumps(
        [
            s.delivered_consumer_seq, s.delivered_stream_seq,
            s.ack_floor_consumer_seq, s.ack_floor_stream_seq, pending, redelivered,
        ],
        separators=(",", ":"),
    )


def decode_state(text: str) -> ConsumerState:
    dcs, dss, acs, ass, pending, redelivered = json.loads(text)
    return ConsumerState(
        dcs, dss, acs, ass,
        {seq: (cseq, ts) for seq, cseq, ts in pending},
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
        self._owner._writer.save_consumer(self._stream, name, (config, state))

    def delete(self, name: str) -> None:
        self._owner._writer.save_consumer(self._stream, name, None)

    async def load(self) -> dict[str, tuple[str, ConsumerState]]:
        await self._owner._ensure_open()
        await self._owner._writer.sync()
        rows = await self._owner._rd.execute_fetchall(
            "SELECT name, config, state FROM consumers WHERE stream = ?", (self._stream,)
        )
        return {name: (cfg, decode_state(st)) for name, cfg, st in rows}


class SqliteStorage:
    """An account's streams in ``<directory>/jetport.db``.

    Connections open on first use, so construction needs no running loop; configs and
    consumer states saved before that are queued and written once it opens.
    """

    def __init__(
        self, directory: str, *, tail_msgs: int = 10_000, tail_bytes: int = 4 << 20
    ) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "jetport.db")
        self.tail_msgs = tail_msgs
        self.tail_bytes = tail_bytes
        self._writer = Writer(encode_state)
        self._wr: aiosqlite.Connection | None = None
        self._rd: aiosqlite.Connection = None  # type: ignore[assignment]  # set on open
        self._open_lock = asyncio.Lock()
        self._streams: dict[str, SqliteStreamStore] = {}
        self._closed = False

    async def _ensure_open(self) -> None:
        if self._wr is not None:
            return
        async with self._open_lock:
            if self._wr is not None:
                return
            if self._closed:
                raise StorageError("storage closed")
            os.makedirs(self.directory, exist_ok=True)
            # The writer lets sqlite3 open each transaction with its first modifying
            # statement: one round trip fewer than an explicit BEGIN.
            wr = await aiosqlite.connect(self.path, isolation_level="IMMEDIATE")
            rd = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                for pragma in _PRAGMAS:
                    await wr.execute(pragma)
                await wr.executescript(SCHEMA)
                for pragma in _PRAGMAS[2:] + ("PRAGMA query_only = ON",):
                    await rd.execute(pragma)
                for conn in (wr, rd):
                    await conn.create_function("subj_match", 2, _subj_match, deterministic=True)
            except BaseException:
                await wr.close()
                await rd.close()
                raise
            self._rd = rd
            self._writer.start(wr)
            self._wr = wr

    async def open_stream(self, name: str) -> SqliteStreamStore:
        await self._ensure_open()
        store = self._streams.get(name)
        if store is not None:
            return store
        sid, db = await self._writer.run(partial(self._open_row, name))
        store = self._streams.get(name)  # opened by someone else meanwhile
        if store is None:
            store = self._streams[name] = SqliteStreamStore(self, name, sid, db)
        return store

    @staticmethod
    async def _open_row(name: str, txn: Txn) -> tuple[int, StoreState]:
        conn = txn.conn
        await conn.execute("INSERT OR IGNORE INTO streams(name) VALUES (?)", (name,))
        rows = await conn.execute_fetchall(
            "SELECT s.id, st.msgs, st.bytes, st.first_seq, st.first_ts, st.last_seq, st.last_ts"
            " FROM streams s LEFT JOIN stream_state st ON st.id = s.id WHERE s.name = ?",
            (name,),
        )
        sid, *counters = list(rows)[0]
        db = StoreState() if counters[0] is None else StoreState(*counters)
        # The counter row is written lazily: add up what was appended after it.
        rows = await conn.execute_fetchall(
            f"SELECT count(*), coalesce(sum({SIZE_SQL}), 0), max(seq) FROM msgs"
            " WHERE stream_id = ? AND seq > ?",
            (sid, db.last_seq),
        )
        n, size, top = list(rows)[0]
        if n:
            if not db.msgs:
                first = await conn.execute_fetchall(
                    "SELECT seq, ts FROM msgs WHERE stream_id = ? AND seq > ? ORDER BY seq"
                    " LIMIT 1",
                    (sid, db.last_seq),
                )
                db.first_seq, db.first_ts = list(first)[0]
            last = await conn.execute_fetchall(
                "SELECT ts FROM msgs WHERE stream_id = ? AND seq = ?", (sid, top)
            )
            db.msgs += n
            db.bytes += size
            db.last_seq, db.last_ts = top, list(last)[0][0]
        return sid, db

    def _forget(self, store: SqliteStreamStore) -> None:
        if self._streams.get(store._name) is store:
            del self._streams[store._name]

    def consumers(self, stream: str) -> SqliteConsumerStore:
        return SqliteConsumerStore(self, stream)

    def save_stream(self, name: str, config: str, created_ns: int) -> None:
        self._writer.save_stream(name, config, created_ns)

    async def load_streams(self) -> dict[str, tuple[str, int]]:
        await self._ensure_open()
        await self._writer.sync()
        rows = await self._rd.execute_fetchall(
            "SELECT name, config, created FROM streams WHERE config IS NOT NULL"
        )
        return {name: (cfg, created) for name, cfg, created in rows}

    async def delete_stream(self, name: str) -> None:
        await self._ensure_open()
        store = self._streams.pop(name, None)
        if store is not None:
            store.forget_rows()
        await self._writer.run(partial(self._delete_rows, name))

    @staticmethod
    async def _delete_rows(name: str, txn: Txn) -> None:
        conn = txn.conn
        rows = list(await conn.execute_fetchall("SELECT id FROM streams WHERE name = ?", (name,)))
        if rows:
            sid = rows[0][0]
            await conn.execute("DELETE FROM msgs WHERE stream_id = ?", (sid,))
            await conn.execute("DELETE FROM stream_state WHERE id = ?", (sid,))
            await conn.execute("DELETE FROM streams WHERE id = ?", (sid,))
        await conn.execute("DELETE FROM consumers WHERE stream = ?", (name,))

    async def close(self) -> None:
        """Commit everything queued, then close both connections."""
        if self._closed:
            return
        await self._ensure_open()
        self._closed = True
        try:
            await self._writer.close()
        finally:
            for store in list(self._streams.values()):
                store._dead = True
            self._streams.clear()
            await self._rd.close()
            if self._wr is not None:
                await self._wr.close()
