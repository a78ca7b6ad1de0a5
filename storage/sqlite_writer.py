"""Group commit for the SQLite store: every write of an account, one transaction.

Publishers need a sequence at once but an acknowledgement only once the message is
durable, so ``store()`` just queues a row and ``sync()`` waits for the transaction
holding it.  The first write of a loop turn schedules a commit at the end of that turn:
whatever accumulated by then goes into one transaction, so the batch grows with the
load and the cost of a commit is shared by everyone waiting on it.

The transaction runs on the event loop's own thread, without awaiting.  Handing it to
another thread looks cheaper but is not: that thread needs the GIL for every statement,
and a busy loop gives it up only every switch interval (5 ms), so each round trip costs
milliseconds while the inserts themselves cost a few microseconds per row.  Rows go in
as multi-row INSERTs, a handful of statements per batch.  The WAL is checkpointed off
the loop (see ``SqliteStorage``), so a commit only appends to the WAL and never syncs.

The per-stream counter rows are rewritten only when a transaction removes messages, on
close, and otherwise at most every ``META_EVERY`` seconds; opening a stream adds up the
few rows appended since (see ``SqliteStorage.open_stream``).

The queue is a list of steps in call order.  Rows, stream configs and consumer states
collect into a data step; removals and purges are operations that run inside the
transaction at their place in the order, after every row stored before them and before
every row stored after, so a purge never deletes a message published after it was
called.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .base import ConsumerState

log = logging.getLogger("jetport.storage")

#: Longest a stream's counter row lags its messages, in seconds.
META_EVERY = 0.5
#: Bytes written to the WAL (roughly) between checkpoints.
CHECKPOINT_BYTES = 4 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    config TEXT,
    created INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_state(
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    msgs INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS msgs(
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    subject BLOB NOT NULL,
    hdr BLOB,
    data BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY(stream_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS msgs_subject ON msgs(stream_id, subject, seq);
CREATE TABLE IF NOT EXISTS consumers(
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY(stream, name)
) WITHOUT ROWID;
"""

_INSERT_MSG = "INSERT INTO msgs(stream_id, seq, subject, hdr, data, ts) VALUES (?,?,?,?,?,?)"
#: Rows per multi-row INSERT, largest first; a batch is cut into these sizes so that a
#: few prepared statements serve every batch.
_CHUNKS = (256, 64, 16, 4, 1)
_INSERTS = {n: _INSERT_MSG + ",(?,?,?,?,?,?)" * (n - 1) for n in _CHUNKS}
_SAVE_STATE = "INSERT OR REPLACE INTO stream_state VALUES (?,?,?,?,?,?,?)"
_SAVE_STREAM = (
    "INSERT INTO streams(name, config, created) VALUES (?,?,?) ON CONFLICT(name) "
    "DO UPDATE SET config = excluded.config, created = excluded.created"
)
_SAVE_CONSUMER = "INSERT OR REPLACE INTO consumers VALUES (?,?,?,?)"
_DELETE_CONSUMER = "DELETE FROM consumers WHERE stream = ? AND name = ?"


class StorageError(RuntimeError):
    """A commit failed; the in-memory view may be ahead of the disk from here on."""


class Member(Protocol):
    """A stream store whose rows go through the writer."""

    def applied(self, acc: Acc) -> None:
        """Its rows in ``acc`` are now in the open transaction."""
        ...

    def meta_row(self) -> tuple[int, ...] | None:
        """Its stream_state row as of the open transaction (None: write nothing)."""
        ...

    def committed(self, seq: int) -> None:
        """Everything up to ``seq`` is committed."""
        ...


class Acc:
    """What one data step adds to one stream: ``n`` rows from ``first_seq`` on, and
    sequences used up to ``last_seq`` (past the last row when skipped)."""

    __slots__ = ("n", "size", "first_seq", "first_ts", "last_seq", "last_ts", "skipped")

    def __init__(self, n: int, seq: int, ts: int, size: int) -> None:
        self.n, self.size = n, size
        self.first_seq = self.last_seq = seq
        self.first_ts = self.last_ts = ts
        #: A skip leaves no row to find on open, so the counter row must be written.
        self.skipped = False


class _Data:
    __slots__ = ("rows", "accs", "configs", "consumers")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.accs: dict[Member, Acc] = {}
        self.configs: dict[str, tuple[str, int]] = {}
        self.consumers: dict[tuple[str, str], tuple[str, ConsumerState] | None] = {}


class Txn:
    """Handed to an operation: the writer connection inside the open transaction
    (opened by the first modifying statement; earlier reads see the same data, as this
    connection is the only writer)."""

    __slots__ = ("conn", "touched", "after")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.touched: dict[Member, None] = {}
        #: Called once the transaction is committed.
        self.after: list[Callable[[], None]] = []

    def touch(self, member: Member) -> None:
        """Have ``member``'s stream_state row written with this transaction (removals
        must, since opening a stream only adds up rows appended after that row)."""
        self.touched[member] = None


Op = Callable[[Txn], Any]


class _Op:
    __slots__ = ("fn", "fut", "result")

    def __init__(self, fn: Op, fut: asyncio.Future[Any]) -> None:
        self.fn, self.fut, self.result = fn, fut, None


class _Shared(asyncio.Future):  # type: ignore[type-arg]
    """A commit's completion, awaited by every publisher in the batch.

    Cancelling one waiting task must not cancel the commit for all the others; refusing
    cancellation here makes that task's cancel take effect once the commit resolves.
    That is cheaper than wrapping every wait in ``asyncio.shield``.
    """

    def cancel(self, msg: object = None) -> bool:
        return False


class Writer:
    """Queues writes and commits them in batches on one connection."""

    def __init__(self, encode_state: Callable[[ConsumerState], str]) -> None:
        self._encode = encode_state
        self._conn: sqlite3.Connection | None = None
        self._checkpoint: Callable[[], Awaitable[None]] | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        #: Row bytes committed since the last checkpoint began.
        self._unchecked = 0
        self._steps: list[_Data | _Op] = []
        self._next: _Shared | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closing = False
        #: Streams with rows written since their counter row was.
        self._dirty: dict[Member, None] = {}
        self._meta_at = 0.0
        self.broken: BaseException | None = None

    def start(
        self, conn: sqlite3.Connection, checkpoint: Callable[[], Awaitable[None]]
    ) -> None:
        """Write through ``conn`` (in autocommit mode, its WAL never checkpointed by
        itself); ``checkpoint`` moves the WAL into the database elsewhere."""
        self._conn = conn
        self._checkpoint = checkpoint
        self._loop = asyncio.get_running_loop()
        if self._steps:
            self._schedule()

    def _schedule(self) -> None:
        """Commit at the end of this loop turn: whatever is queued by then goes in."""
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _data(self) -> _Data:
        steps = self._steps
        if steps:
            step = steps[-1]
            if type(step) is _Data:
                return step
        self._check()  # only here: a failure or close always starts a new step
        step = _Data()
        steps.append(step)
        self._schedule()
        return step

    def add_row(self, member: Member, row: tuple[Any, ...], seq: int, ts: int, size: int) -> None:
        step = self._data()
        step.rows.append(row)
        acc = step.accs.get(member)
        if acc is None:
            step.accs[member] = Acc(1, seq, ts, size)
        else:
            if not acc.n:
                acc.first_seq, acc.first_ts = seq, ts
            acc.n += 1
            acc.size += size
            acc.last_seq, acc.last_ts = seq, ts

    def add_rows(self, member: Member, rows: list[tuple[Any, ...]], first: int, last: int,
                 ts: int, size: int) -> None:
        """Several consecutive rows of one stream, accounted at once."""
        step = self._data()
        step.rows.extend(rows)
        acc = step.accs.get(member)
        if acc is None:
            acc = step.accs[member] = Acc(0, first, ts, 0)
        elif not acc.n:
            acc.first_seq, acc.first_ts = first, ts
        acc.n += len(rows)
        acc.size += size
        acc.last_seq, acc.last_ts = last, ts

    def add_skip(self, member: Member, seq: int, ts: int) -> None:
        """Record that ``member`` used up ``seq`` (with ``ts`` as its last time)."""
        step = self._data()
        acc = step.accs.get(member)
        if acc is None:
            acc = step.accs[member] = Acc(0, seq, ts, 0)
        acc.last_seq, acc.last_ts = seq, ts
        acc.skipped = True

    def save_stream(self, name: str, config: str, created: int) -> None:
        self._data().configs[name] = (config, created)

    def save_consumer(
        self, stream: str, name: str, value: tuple[str, ConsumerState] | None
    ) -> None:
        """Upsert (or, with None, delete) a consumer; the state is encoded when written,
        so the newest state at flush time is what lands."""
        self._data().consumers[(stream, name)] = value

    async def run(self, fn: Op) -> Any:
        """Run ``fn`` inside the next transaction, in call order; its result once
        committed."""
        self._check()
        op = _Op(fn, asyncio.get_running_loop().create_future())
        self._steps.append(op)
        self._schedule()
        return await op.fut

    def sync(self) -> Awaitable[None]:
        """Resolves once everything queued before the call is committed.  A future, not
        a coroutine: callers may hang callbacks on it without wrapping it in a task."""
        self._check()
        if not self._steps:  # commits never stay open across a loop turn
            fut = _Shared()
            fut.set_result(None)
            return fut
        if self._next is None:
            self._next = _Shared()
        return self._next

    def _check(self) -> None:
        if self.broken is not None:
            raise StorageError(f"storage failed: {self.broken!r}") from self.broken
        if self._closing:
            raise StorageError("storage closed")

    async def close(self) -> None:
        """Commit what is queued and stop."""
        if self._closing:
            return
        self._flush()
        self._closing = True
        if self._dirty and self.broken is None:
            self._commit([])
        if self._checkpointing is not None:
            await self._checkpointing

    def _flush(self) -> None:
        self._scheduled = False
        if self.broken is not None:
            self._fail(self._steps, self._next, self.broken)
            self._steps, self._next = [], None
            return
        if not self._steps:
            return
        steps, self._steps = self._steps, []
        done = self._next or _Shared()
        self._next = None
        try:
            self._commit(steps)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            self.broken = exc
            log.error("storage commit failed: %r", exc)
            self._fail(steps, done, exc)
            return
        for step in steps:
            if type(step) is _Op and not step.fut.done():
                step.fut.set_result(step.result)
        if not done.done():
            done.set_result(None)
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        if self._unchecked < CHECKPOINT_BYTES or self._checkpoint is None:
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._unchecked = 0
        self._checkpointing = asyncio.get_running_loop().create_task(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        assert self._checkpoint is not None
        try:
            await self._checkpoint()
        except Exception as exc:  # noqa: BLE001 - the WAL just grows until the next one
            log.warning("storage checkpoint failed: %r", exc)

    @staticmethod
    def _fail(
        steps: list[_Data | _Op], done: _Shared | None, exc: BaseException
    ) -> None:
        err = StorageError(f"storage commit failed: {exc!r}")
        futs = [s.fut for s in steps if type(s) is _Op]
        if done is not None:
            futs.append(done)
        for fut in futs:
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # nobody may be waiting; do not warn about it

    def _commit(self, steps: list[_Data | _Op]) -> None:
        conn = self._conn
        assert conn is not None
        txn = Txn(conn)
        committed: dict[Member, int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in steps:
                if type(step) is _Data:
                    self._write(step, txn, committed)
                else:
                    step.result = step.fn(txn)
                    self._unchecked += CHECKPOINT_BYTES // 16
            now = time.monotonic()
            if txn.touched or self._closing or now - self._meta_at >= META_EVERY:
                members = {**self._dirty, **txn.touched}
                meta = [row for m in members if (row := m.meta_row()) is not None]
                if meta:
                    conn.executemany(_SAVE_STATE, meta)
                self._dirty.clear()
                self._meta_at = now
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
            raise
        for member, seq in committed.items():
            member.committed(seq)
        for hook in txn.after:
            hook()

    def _write(self, step: _Data, txn: Txn, committed: dict[Member, int]) -> None:
        conn = txn.conn
        rows = step.rows
        done, total = 0, len(rows)
        while done < total:
            n = next(c for c in _CHUNKS if c <= total - done)
            chunk = rows[done:done + n]
            conn.execute(_INSERTS[n], [v for row in chunk for v in row])
            done += n
        for member, acc in step.accs.items():
            member.applied(acc)
            self._unchecked += acc.size
            self._dirty[member] = None
            committed[member] = acc.last_seq
            if acc.skipped:
                txn.touch(member)
        if step.configs:
            rows = [(name, cfg, created) for name, (cfg, created) in step.configs.items()]
            conn.executemany(_SAVE_STREAM, rows)
        if step.consumers:
            saves = [
                (stream, name, v[0], self._encode(v[1]))
                for (stream, name), v in step.consumers.items()
                if v is not None
            ]
            drops = [key for key, v in step.consumers.items() if v is None]
            if drops:
                conn.executemany(_DELETE_CONSUMER, drops)
            if saves:
                conn.executemany(_SAVE_CONSUMER, saves)
