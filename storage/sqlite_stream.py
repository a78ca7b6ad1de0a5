"""One stream's messages in the account database.

The process keeps per stream only counters and bounded caches: the tail of recent
messages (:mod:`jetport.storage.tail`) and read-ahead windows (:mod:`jetport.storage.readahead`).
Reads of a bounded number of rows go to the loop-thread reader, reads that may scan to
aiosqlite's reader (see :mod:`jetport.storage.sqlite`); removals and purges run inside the writer's
transaction in call order (:mod:`jetport.storage.sqlite_writer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from jetport.storage.subjects import is_literal

from .base import StorageError, StoredMsg, StoreState, file_size, take
from .filters import literal_prefix, matcher, normalize, normalize_one
from .readahead import Key, ReadAhead, rows_for
from .sqlite_steps import Acc, Txn
from .tail import Tail

if TYPE_CHECKING:
    from .sqlite import SqliteStorage

_MSG = "SELECT seq, subject, hdr, data, ts FROM msgs WHERE stream_id = ?"
# Without statistics SQLite walks the primary key for "subject = ? ... ORDER BY seq",
# which scans the whole gap to a rare subject; the subject index jumps straight to it.
_MSG_SUBJECT = (
    "SELECT seq, subject, hdr, data, ts FROM msgs INDEXED BY msgs_subject"
    " WHERE stream_id = ? AND subject = ?"
)
#: A message's size as nats-server's file store counts it (:func:`file_size`), in SQL.
SIZE_SQL = "length(subject) + length(data) + 30 + coalesce(length(hdr) + 4, 0)"


def _sql_match(patterns: list[bytes], indexed: bool) -> tuple[str, list[bytes]]:
    """A WHERE fragment for "subject matches any of ``patterns``".

    Literals compare directly (the subject index serves them).  Wildcards get a range
    on their literal prefix, then the exact check in Python; with ``indexed`` False the
    range is written so SQLite will not pick the subject index, because walking the
    primary key in sequence order is what ``ORDER BY seq LIMIT 1`` wants.
    """
    col = "subject" if indexed else "+subject"
    parts: list[str] = []
    params: list[bytes] = []
    for p in patterns:
        if is_literal(p):
            parts.append("subject = ?")
            params.append(p)
            continue
        prefix = literal_prefix(p)
        if prefix:
            parts.append(f"({col} >= ? AND {col} < ? AND subj_match(?, subject))")
            params += [prefix, prefix[:-1] + b"/", p]
        else:
            parts.append("subj_match(?, subject)")
            params.append(p)
    return " AND (" + " OR ".join(parts) + ")", params


class SqliteStreamStore:
    """One stream's messages in the account database (see the module docstring)."""

    def __init__(self, owner: SqliteStorage, name: str, sid: int, db: StoreState) -> None:
        self._owner = owner
        self.name = name
        self._id = sid
        self._writer = owner.writer
        self._rd = owner.reader
        self._rs = owner.quick_reader
        #: What the database holds as of the writer's open transaction.
        self._db = db
        #: What callers see: the database plus rows not written yet.
        self._live = StoreState(db.msgs, db.bytes, db.first_seq, db.first_ts, db.last_seq,
                                db.last_ts)
        self._tail = Tail(db.last_seq + 1, owner.tail_msgs, owner.tail_bytes)
        self._ahead = ReadAhead()
        self.removals = 0
        #: The last sequence a commit made durable, and the last one a commit or the
        #: ``-pending`` file did (see :mod:`jetport.storage.sqlite_pending`): readers of
        #: the database need the first, consumers and followers the second.
        self._committed = self._durable = db.last_seq
        #: No more calls: closed, destroyed or deleted.
        self.dead = False
        #: Rows deleted (destroyed or deleted): its counter row must not come back.
        self._gone = False

    def committed_seq(self) -> int:
        return self._durable

    def state(self) -> StoreState:
        s = self._live
        deleted = s.last_seq - s.first_seq + 1 - s.msgs if s.msgs else 0
        return StoreState(s.msgs, s.bytes, s.first_seq, s.first_ts, s.last_seq, s.last_ts,
                          deleted)

    def _check(self) -> None:
        if self.dead:
            raise StorageError(f"stream store {self.name!r} is closed")

    @staticmethod
    def record_size(subject: bytes, hdr: bytes | None, data: bytes) -> int:
        return file_size(subject, hdr, data)

    def store(self, seq: int, subject: bytes, hdr: bytes | None, data: bytes, ts: int) -> None:
        self._check()
        self._writer.check()  # refused before the in-memory view moves ahead
        live = self._live
        if seq <= live.last_seq:
            raise ValueError(f"sequence {seq} not above last sequence {live.last_seq}")
        msg = StoredMsg(seq, subject, hdr, data, ts)
        size = file_size(subject, hdr, data)
        if not live.msgs:
            live.first_seq, live.first_ts = seq, ts
        live.msgs += 1
        live.bytes += size
        live.last_seq, live.last_ts = seq, ts
        tail = self._tail
        tail.append(msg, msg.size)
        if tail.full():
            tail.evict(self._committed)
        self._writer.add_row(self, (self._id, seq, subject, hdr, data, ts), seq, ts, size)

    def store_many(self, seq: int, msgs: list[tuple[bytes, bytes]], ts: int) -> None:
        self._check()
        self._writer.check()
        live = self._live
        if seq <= live.last_seq:
            raise ValueError(f"sequence {seq} not above last sequence {live.last_seq}")
        if not msgs:
            return
        if not live.msgs:
            live.first_seq, live.first_ts = seq, ts
        tail, sid = self._tail, self._id
        params: list[object] = []
        total = 0
        for subject, data in msgs:
            size = len(subject) + len(data) + 30
            tail.append(StoredMsg(seq, subject, None, data, ts), size - 14)
            params += (sid, seq, subject, None, data, ts)
            total += size
            seq += 1
        live.msgs += len(msgs)
        live.bytes += total
        live.last_seq, live.last_ts = seq - 1, ts
        if tail.full():
            tail.evict(self._committed)
        self._writer.add_rows(self, params, seq - len(msgs), seq - 1, ts, total)

    def skip(self, seq: int, ts: int = 0) -> None:
        self._check()
        live = self._live
        if seq <= live.last_seq:
            raise ValueError(f"sequence {seq} not above last sequence {live.last_seq}")
        live.last_seq = seq
        live.last_ts = ts or live.last_ts
        if not live.msgs:
            live.first_seq, live.first_ts = seq + 1, 0
        self._writer.add_skip(self, seq, live.last_ts)

    # -- writer callbacks -------------------------------------------------------------

    def applied(self, acc: Acc) -> None:
        db = self._db
        if acc.n and not db.msgs:
            db.first_seq, db.first_ts = acc.first_seq, acc.first_ts
        db.msgs += acc.n
        db.bytes += acc.size
        db.last_seq, db.last_ts = acc.last_seq, acc.last_ts
        if not db.msgs:
            db.first_seq, db.first_ts = db.last_seq + 1, 0

    def meta_row(self) -> tuple[int, ...] | None:
        if self._gone:
            return None
        d = self._db
        return (self._id, d.first_seq, d.first_ts, d.last_seq, d.last_ts, d.msgs, d.bytes)

    def durable(self, seq: int) -> None:
        if seq > self._durable:
            self._durable = seq

    def committed(self, seq: int) -> None:
        if seq > self._committed:
            self._committed = seq
            if seq > self._durable:
                self._durable = seq
        if self._tail.full():
            self._tail.evict(self._committed)

    # -- reads ------------------------------------------------------------------------

    def on_stored(self, callback: Callable[[BaseException | None], None]) -> None:
        self._writer.on_stored(callback)

    def sync(self) -> Awaitable[None]:
        # The writer's future itself: the stream hangs its acks on it without a task.
        return self._writer.sync()

    def _rows(self, sql: str, params: list[object]) -> list[StoredMsg]:
        """A bounded read (LIMIT, or by key) on the loop-thread reader."""
        rows = self._rs.execute(sql, params).fetchall()
        return [StoredMsg(seq, subj, hdr, data, ts) for seq, subj, hdr, data, ts in rows]

    def _one(self, sql: str, params: list[object]) -> StoredMsg | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    async def get(self, seq: int) -> StoredMsg | None:
        self._check()
        msg = self._tail.get(seq)
        if msg is not None or seq >= self._tail.floor or seq < self._live.first_seq:
            return msg
        return self._one(_MSG + " AND seq = ?", [self._id, seq])

    async def next(self, seq: int, subjects: list[bytes] | None = None) -> StoredMsg | None:
        self._check()
        found = self._next_now(seq, normalize(subjects), 1)
        return found[0] if found else None

    async def next_many(
        self, seq: int, subjects: list[bytes] | None = None, limit: int = 1
    ) -> list[StoredMsg]:
        self._check()
        return self._next_now(seq, normalize(subjects), limit)

    def _next_now(self, seq: int, filters: list[bytes] | None, limit: int) -> list[StoredMsg]:
        key: Key = () if filters is None else tuple(filters)
        ahead, tail = self._ahead, self._tail
        out: list[StoredMsg] = []
        lo = max(seq, self._live.first_seq)
        # Below the tail's floor everything is committed.
        while lo < tail.floor:
            hit = ahead.slice(key, lo, limit - len(out))
            if hit is None:
                gen, hi = ahead.gen, tail.floor
                msgs, end = self._window(lo, hi, filters)
                ahead.put(key, gen, lo, end, msgs)
                hit = msgs[:limit - len(out)], end
            msgs, end = hit
            out += msgs
            if len(out) >= limit:
                return out
            lo = end
        return out + take(lambda s: tail.next(s, filters), lo, limit - len(out))

    def _window(
        self, lo: int, hi: int, filters: list[bytes] | None
    ) -> tuple[list[StoredMsg], int]:
        """Every match in ``[lo, end)``, oldest first, for the largest ``end <= hi``
        one row-limited read per filter kind can vouch for."""
        limit = rows_for(self._live.msgs, self._live.bytes)
        order = " AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?"
        queries: list[tuple[str, list[object]]] = []
        if filters is None:
            queries.append((_MSG + order, [self._id, lo, hi, limit]))
        else:
            wild = [f for f in filters if not is_literal(f)]
            for f in filters:
                if f not in wild:
                    queries.append((_MSG_SUBJECT + order, [self._id, f, lo, hi, limit]))
            if wild:
                where, params = _sql_match(wild, indexed=False)
                queries.append((_MSG + where + order, [self._id, *params, lo, hi, limit]))
        end = hi
        found: dict[int, StoredMsg] = {}
        for sql, args in queries:
            if len(queries) > 1:
                args[-2] = end  # nothing past an earlier read's end is needed
            msgs = self._rows(sql, args)
            if len(msgs) == limit:
                end = min(end, msgs[-1].seq + 1)
            for m in msgs:
                found[m.seq] = m
        return [found[s] for s in sorted(found) if s < end], end

    async def last(self, subject: bytes) -> StoredMsg | None:
        self._check()
        pattern = normalize_one(subject)
        msg = self._tail.last(pattern)
        if msg is not None:
            return msg
        order = " AND seq < ? ORDER BY seq DESC LIMIT 1"
        if pattern is not None and is_literal(pattern):
            return self._one(_MSG_SUBJECT + order, [self._id, pattern, self._tail.floor])
        sql, params = _MSG, [self._id]
        if pattern is not None:
            where, extra = _sql_match([pattern], indexed=False)
            sql += where
            return self._one(sql + order, [*params, *extra, self._tail.floor])
        return self._one(sql + order, [*params, self._tail.floor])

    async def count(self, subject: bytes, seq: int = 0) -> int:
        self._check()
        pattern = normalize_one(subject)
        live = self._live
        if pattern is None and seq <= live.first_seq:
            return live.msgs
        sql = "SELECT count(*) FROM msgs WHERE stream_id = ? AND seq >= ? AND seq < ?"
        extra: list[bytes] = []
        if pattern is not None:
            where, extra = _sql_match([pattern], indexed=True)
            sql += where
        total = 0
        lo = max(seq, live.first_seq)
        while lo < self._tail.floor:
            hi = self._tail.floor
            rows = await self._rd.execute_fetchall(sql, [self._id, lo, hi, *extra])
            total += list(rows)[0][0]
            lo = hi
        return total + self._tail.count(pattern, lo)

    async def subjects(self, subject: bytes = b">") -> dict[bytes, int]:
        self._check()
        pattern = normalize_one(subject)
        sql = "SELECT subject, count(*) FROM msgs WHERE stream_id = ? AND seq >= ? AND seq < ?"
        extra: list[bytes] = []
        if pattern is not None:
            where, extra = _sql_match([pattern], indexed=True)
            sql += where
        sql += " GROUP BY subject"
        out: dict[bytes, int] = {}
        lo = 0
        while lo < self._tail.floor:
            hi = self._tail.floor
            for subj, n in await self._rd.execute_fetchall(sql, [self._id, lo, hi, *extra]):
                out[subj] = out.get(subj, 0) + n
            lo = hi
        for subj, n in self._tail.subjects(pattern).items():
            out[subj] = out.get(subj, 0) + n
        return out

    async def seqs(self, subject: bytes, limit: int = 0) -> list[int]:
        self._check()
        pattern = normalize_one(subject)
        sql = "SELECT seq FROM msgs WHERE stream_id = ? AND seq >= ? AND seq < ?"
        extra: list[object] = []
        if pattern is not None:
            where, match = _sql_match([pattern], indexed=True)
            sql += where
            extra += match
        sql += " ORDER BY seq" + (" LIMIT ?" if limit else "")
        out: list[int] = []
        lo = 0
        while lo < self._tail.floor:
            hi = self._tail.floor
            params = [self._id, lo, hi, *extra] + ([limit - len(out)] if limit else [])
            out += [row[0] for row in await self._rd.execute_fetchall(sql, params)]
            if limit and len(out) >= limit:
                return out
            lo = hi
        out += self._tail.seqs(pattern)
        return out[:limit] if limit else out

    # -- removals: operations inside the writer's transaction ---------------------------

    async def remove(self, seq: int) -> bool:
        self._check()
        if seq < self._live.first_seq or seq > self._live.last_seq:
            return False
        removed: bool = await self._writer.run(partial(self._remove, seq))
        return removed

    def _remove(self, seq: int, txn: Txn) -> bool:
        if self._gone:
            return False
        sizes = txn.conn.execute(
            f"DELETE FROM msgs WHERE stream_id = ? AND seq = ? RETURNING {SIZE_SQL}",
            (self._id, seq),
        ).fetchall()
        if not sizes:
            return False
        self._removing(txn)
        self._tail.remove(seq)
        self._account(1, sizes[0][0])
        if seq == self._db.first_seq:
            self._refirst(txn)
        txn.touch(self)
        return True

    def _removing(self, txn: Txn) -> None:
        """Drop read-ahead now (reads in flight will not keep theirs) and again once
        committed (reads that began before the commit saw the old rows)."""
        self.removals += 1
        self._ahead.invalidate()
        txn.after.append(self._ahead.invalidate)

    def _account(self, n: int, size: int) -> None:
        for s in (self._db, self._live):
            s.msgs -= n
            s.bytes -= size

    def _refirst(self, txn: Txn) -> None:
        """Recompute first_seq/first_ts after removals that may have taken the first."""
        db, live = self._db, self._live
        if db.msgs:
            db.first_seq, db.first_ts = txn.conn.execute(
                "SELECT seq, ts FROM msgs WHERE stream_id = ? ORDER BY seq LIMIT 1", (self._id,)
            ).fetchone()
        else:
            db.first_seq, db.first_ts = db.last_seq + 1, 0
        if db.msgs:
            live.first_seq, live.first_ts = db.first_seq, db.first_ts
        elif not live.msgs:
            live.first_seq, live.first_ts = live.last_seq + 1, 0
        else:
            pending = self._tail.first_after(db.last_seq)
            if pending is not None:
                live.first_seq, live.first_ts = pending.seq, pending.ts

    async def purge(self, subject: bytes | None = None, before: int = 0, keep: int = 0) -> int:
        self._check()
        pattern = normalize_one(subject)
        purged: int = await self._writer.run(partial(self._purge, pattern, before, keep))
        return purged

    def _purge(self, pattern: bytes | None, before: int, keep: int, txn: Txn) -> int:
        if self._gone:
            return 0
        conn, db = txn.conn, self._db
        where, params = ("", []) if pattern is None else _sql_match([pattern], indexed=True)
        hi = db.last_seq + 1
        if before:
            hi = min(hi, before)
        if keep:
            row = conn.execute(
                f"SELECT seq FROM msgs WHERE stream_id = ?{where} ORDER BY seq DESC "
                "LIMIT 1 OFFSET ?",
                [self._id, *params, keep - 1],
            ).fetchone()
            hi = min(hi, row[0]) if row else 0
        gone = 0
        if db.msgs and hi > db.first_seq:
            cond = f"FROM msgs WHERE stream_id = ? AND seq < ?{where}"
            args = [self._id, hi, *params]
            if pattern is None and hi > db.last_seq:
                gone, size = db.msgs, db.bytes
            else:
                gone, size = conn.execute(
                    f"SELECT count(*), coalesce(sum({SIZE_SQL}), 0) {cond}", args
                ).fetchone()
            if gone:
                self._removing(txn)
                conn.execute(f"DELETE {cond}", args)
                self._tail.remove_below(hi, None if pattern is None else matcher([pattern]))
                self._account(gone, size)
        if pattern is None and not keep and not db.msgs and before > db.last_seq + 1:
            # Purging up to a sequence beyond the end moves the stream on to it.
            db.last_seq = before - 1
            self._live.last_seq = max(self._live.last_seq, before - 1)
        self._refirst(txn)
        txn.touch(self)
        return gone

    # -- lifetime -----------------------------------------------------------------------

    async def close(self) -> None:
        if self.dead:
            return
        await self._writer.sync()
        self.dead = True
        self._owner.forget(self)

    async def destroy(self) -> None:
        if self._gone:
            return
        self.forget_rows()
        self._owner.forget(self)
        await self._writer.execute([
            ("DELETE FROM msgs WHERE stream_id = ?", (self._id,), False),
            ("DELETE FROM stream_state WHERE id = ?", (self._id,), False),
        ])

    def forget_rows(self) -> None:
        """Its rows are being deleted: refuse further calls, write no counters, and
        keep nothing of them in memory."""
        self.dead = self._gone = True
        self.removals += 1
        self._ahead.invalidate()
        self._tail.clear(self._live.last_seq + 1)
        self._live = StoreState()
