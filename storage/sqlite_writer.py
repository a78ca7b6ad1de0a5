"""Group commit for the SQLite store: every write of an account, one transaction.

Publishers need a sequence at once but an acknowledgement only once the message is
durable, so ``store()`` just queues a row and ``sync()`` waits for the transaction
holding it.  The first write of a loop turn schedules a commit at the end of that turn:
whatever accumulated by then goes into one transaction, so the batch grows with the
load and the cost of a commit is shared by everyone waiting on it.  A turn that queues
more than ``EARLY_BYTES`` of rows (one socket read callback can take in megabytes)
hands them to the writer process as they pass that mark, so the process commits while
the hub is still parsing.

A transaction of rows and saved states, nearly every one, is prepared here and
committed by a writer process (:mod:`jetport.storage.sqlite_worker`, which says why), up to
``MAX_INFLIGHT`` at a time, in order.  Given a way to run background work (the hub's
``spawn``), the process starts with the first transaction too large to commit in the
hub, so a hub that never sees such a load never runs it (14 MB less); until it runs,
commits stay in the hub.  Without one it starts with the store.  A transaction holding
operations waits for those to finish and runs on the hub's own connection, as
operations read and change the stores' in-memory state.  Commits append to the WAL
without syncing; the writer process (or, without it, the hub's connection) checkpoints
it.

A transaction small enough to commit in the hub (``INLINE_ROWS``: a lone publisher's)
is acknowledged before its commit: written to the database's ``-pending`` file, which
survives ``kill -9`` as the WAL does, then committed in the next loop turn (see
:mod:`jetport.storage.sqlite_pending`; not with ``synchronous=FULL``).

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
import pickle
import sqlite3
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

from . import sqlite_schema as schema
from . import sqlite_worker as worker
from .base import ConsumerState, StorageError
from .sqlite_pending import Pending
from .sqlite_pipe import WriterOutput, widen
from .sqlite_steps import Acc, DataStep, Member, Op, OpStep, Shared, SqlStep, Step, Txn

log = logging.getLogger("jetport.storage")

#: Longest a stream's counter row lags its messages, in seconds.
META_EVERY = 0.5
#: Transactions handed to the writer process and not answered yet, at most.
MAX_INFLIGHT = 2
#: Bytes of rows queued in one loop turn after which they go to the writer process at
#: once rather than at the end of the turn: libuv reads up to 32 full buffers from a
#: socket in one turn, and the process then commits the first rows while the hub
#: parses the rest (1 KiB messages, 1,000 PubAcks outstanding: see docs/benchmarks.md).
EARLY_BYTES = 128 << 10
#: A transaction of at most this many rows, with none in flight, commits in the hub
#: (acknowledged first from the ``-pending`` file, unless it holds operations).
INLINE_ROWS = 8

#: How the owner runs background work: the coroutine and what it is for (the hub passes
#: ``jetport.core.tasks.spawn``, which keeps it referenced and logs its failure).
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Future[None]"]


class Writer:
    """Queues writes and commits them in batches (see the module docstring)."""

    def __init__(self, encode_state: Callable[[ConsumerState], str],
                 spawn: Spawn | None = None) -> None:
        self._encode = encode_state
        self._spawner = spawn
        #: The hub's own write connection, for transactions with operations.
        self._conn: sqlite3.Connection | None = None
        self._proc: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._answers: WriterOutput | None = None
        #: Where and how the writer process commits, and its start while under way.
        self._path, self._sync = "", worker.SYNC_NORMAL
        self._launch: asyncio.Future[None] | None = None
        #: What to do with each answer of the writer process, oldest first.
        self._flights: deque[Callable[[str | None], None]] = deque()
        self._steps: list[Step] = []
        self._next: Shared | None = None
        #: Bytes of rows in ``_steps`` (see ``EARLY_BYTES``).
        self._queued = 0
        #: The newest transaction not committed yet.
        self._inflight: Shared | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closing = False
        #: Where a small transaction is written before it is acknowledged (None with
        #: ``synchronous=FULL``), and whether one written there waits for its commit.
        self._pending: Pending | None = None
        self._local = False
        #: Streams with rows written since their counter row was.
        self._dirty: dict[Member, None] = {}
        self._meta_at = 0.0
        self.broken: BaseException | None = None
        #: Told once, with the error, when a commit fails or the writer process dies:
        #: from then on every write fails until the owner opens the store again.
        self.on_broken: Callable[[StorageError], None] | None = None

    async def start(self, conn: sqlite3.Connection, path: str, sync: str) -> None:
        """Write through ``conn`` (the same database, autocommit mode) and through a
        writer process on ``path`` (see the module docstring for when it starts);
        ``sync`` is SQLite's ``synchronous`` setting for the writer's commits."""
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._path, self._sync = path, sync
        if sync == worker.SYNC_NORMAL:
            try:
                self._pending = Pending(path)
            except OSError as exc:  # every commit then precedes its acknowledgement
                log.error("storage %s: no %s (%s); small commits wait on the loop",
                          path, f"{path}-pending", exc)
        if self._spawner is None:
            await self._spawn()
        if self._steps:
            self._schedule()

    def _start_process(self) -> None:
        if self._spawner is not None and self._launch is None and not self._closing:
            self._launch = self._spawner(self._spawn(),
                                         f"storage {self._path}: SQLite writer process")

    async def _spawn(self) -> None:
        assert self._loop is not None
        try:
            # A session of its own: Ctrl-C or a signal to the hub's process group must
            # not end the writer before the hub's last commit; it ends when its stdin
            # closes.
            proc, answers = await self._loop.subprocess_exec(
                lambda: WriterOutput(self), sys.executable, "-I", worker.__file__,
                self._path, self._sync, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=None, start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # not retried: the hub goes on committing
            log.error("storage %s: no SQLite writer process (%s); commits stay in the hub",
                      self._path, exc)
            return
        if self._closing:  # closed or abandoned while it started: it did no work
            proc.kill()
            proc.close()
            return
        self._proc, self._answers = proc, answers
        self._stdin = proc.get_pipe_transport(0)  # type: ignore[assignment]
        widen(self._stdin)
        if self._steps:
            self._schedule()

    @property
    def inflight(self) -> int:
        """Transactions handed to the writer process and not answered yet."""
        return len(self._flights)

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs."""
        return self._proc.get_pid() if self._proc is not None else None

    def _schedule(self) -> None:
        """Commit at the end of this loop turn: whatever is queued by then goes in."""
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _data(self) -> DataStep:
        steps = self._steps
        if steps:
            step = steps[-1]
            if type(step) is DataStep:
                return step
        self._check()  # only here: a failure or close always starts a new step
        step = DataStep()
        steps.append(step)
        self._schedule()
        return step

    def add_row(self, member: Member, row: tuple[Any, ...], seq: int, ts: int, size: int) -> None:
        step = self._data()
        step.params += row
        acc = step.accs.get(member)
        if acc is None:
            step.accs[member] = Acc(1, seq, ts, size)
        else:
            if not acc.n:
                acc.first_seq, acc.first_ts = seq, ts
            acc.n += 1
            acc.size += size
            acc.last_seq, acc.last_ts = seq, ts
        self._added(size)

    def add_rows(self, member: Member, params: list[Any], first: int, last: int,
                 ts: int, size: int) -> None:
        """Consecutive rows of one stream (``params`` as in ``DataStep``), accounted at
        once."""
        step = self._data()
        step.params += params
        acc = step.accs.get(member)
        if acc is None:
            acc = step.accs[member] = Acc(0, first, ts, 0)
        elif not acc.n:
            acc.first_seq, acc.first_ts = first, ts
        acc.n += last - first + 1
        acc.size += size
        acc.last_seq, acc.last_ts = last, ts
        self._added(size)

    def _added(self, size: int) -> None:
        self._queued += size
        if self._queued >= EARLY_BYTES and len(self._flights) < MAX_INFLIGHT \
                and self._proc is not None:
            self._flush()

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

    async def execute(self, stmts: list[worker.Stmt]) -> None:
        """Run SQL statements inside the next transaction, in call order; return once
        committed.  For writes that touch no in-memory state, so that a large one
        (deleting a stream) runs in the writer process, not on the event loop."""
        self._check()
        self._steps.append(SqlStep(stmts))
        self._schedule()
        await self.sync()

    async def run(self, fn: Op) -> Any:
        """Run ``fn`` inside the next transaction, in call order; its result once
        committed."""
        self._check()
        op = OpStep(fn, asyncio.get_running_loop().create_future())
        self._steps.append(op)
        self._schedule()
        return await op.fut

    def sync(self) -> Shared:
        """Resolves once everything queued before the call is committed.  A future, not
        a coroutine: callers may hang callbacks on it without wrapping it in a task."""
        self._check()
        if self._steps:
            if self._next is None:
                self._next = Shared()
            return self._next
        if self._inflight is not None:
            return self._inflight
        fut = Shared()
        fut.set_result(None)
        return fut

    def on_stored(self, callback: Callable[[BaseException | None], None]) -> None:
        """``callback`` once everything queued before the call is committed, in the
        loop turn the commit's answer arrives (see ``StreamStore.on_stored``)."""
        try:
            fut = self.sync()
        except StorageError as exc:
            callback(exc)
            return
        if fut.done():
            callback(None)
        else:
            fut.hooks.append(callback)

    def check(self) -> None:
        """StorageError if nothing can be written now (failed or closed)."""
        self._check()

    def _check(self) -> None:
        if self.broken is not None:
            raise StorageError(f"storage failed: {self.broken}") from self.broken
        if self._closing:
            raise StorageError("storage closed")

    async def close(self) -> None:
        """Commit what is queued and stop the writer process."""
        if self._closing:
            return
        while self.broken is None and (self._steps or self._inflight is not None):
            self._flush()
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
        self._closing = True
        if self._launch is not None and not self._launch.done():
            await asyncio.wait([self._launch])  # a failure is the spawner's to report
        if self._dirty and self.broken is None and self._conn is not None:
            self._commit([])
        proc, answers = self._proc, self._answers
        if proc is not None and answers is not None:
            assert self._stdin is not None
            self._stdin.close()
            await answers.exited
            proc.close()
        self._proc = None
        self._close_pending()

    def _close_pending(self) -> None:
        if self._pending is not None:
            try:
                self._pending.close()
            except OSError as exc:
                log.error("storage %s: closing %s: %s", self._path, self._pending.path, exc)
            self._pending = None

    def abandon(self) -> None:
        """Give up on what is queued (it fails) and stop the writer process at once:
        the store is reopened from what the disk holds."""
        self._closing = True
        if self._launch is not None and not self._launch.done():
            self._launch.cancel()
        exc = StorageError("storage reopened")
        self._fail(self._steps, self._next, exc)
        self._steps, self._next = [], None
        self._close_pending()  # a transaction it holds is committed on the reopening
        while self._flights:
            self._flights.popleft()(str(exc))
        if self._proc is not None:
            self._proc.kill()
            self._proc.close()
            self._proc = None

    def on_answer(self, error: str | None) -> None:
        self._flights.popleft()(error)

    def on_worker_gone(self) -> None:
        """The writer process's output ended: it exited or was killed."""
        self._proc = None
        if self._flights or not self._closing:
            exc = StorageError("the SQLite writer process exited")
            while self._flights:
                self._flights.popleft()(str(exc))
            self._broke(exc)

    def _flush(self) -> None:
        self._scheduled = False
        if self.broken is not None:
            self._fail(self._steps, self._next, self.broken)
            self._steps, self._next = [], None
            return
        if not self._steps or self._local:
            return  # (the pending commit flushes again)
        steps = self._steps
        ops = any(type(step) is OpStep for step in steps)
        inline = self._proc is None or ops
        if self._flights:
            if inline or len(self._flights) >= MAX_INFLIGHT:
                return  # the next answer flushes again
        elif not ops:
            # Nothing in flight and a few rows to write (a lone publisher): committing
            # here is quicker than two hops to the writer process and back.
            values = 0
            for step in steps:
                if type(step) is not DataStep:
                    break  # statements: they may be large
                values += len(step.params)
            else:
                inline = values <= INLINE_ROWS * worker.COLUMNS
            if not inline and self._proc is None:
                self._start_process()
                inline = True
        steps, self._steps = self._steps, []
        self._queued = 0
        done = self._next or Shared()
        self._next = None
        if not inline:
            self._submit(steps, done)
            return
        if not ops and self._pending is not None:
            self._acknowledge_first(steps, done)
            return
        try:
            self._commit(steps)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            self._broke(exc)
            self._fail(steps, done, exc)
            return
        self._stored(steps, done)

    def _submit(self, steps: list[Step], done: Shared) -> None:
        """Hand a transaction of rows and saved states to the writer process; another
        may be prepared and queued while it commits."""
        stdin = self._stdin
        assert stdin is not None
        txn = Txn(self._conn)  # type: ignore[arg-type]
        committed: dict[Member, int] = {}
        stmts = self._prepared(steps, committed, txn)
        try:
            if stdin.is_closing():
                raise BrokenPipeError("stdin closed")
            stdin.write(worker.frame(pickle.dumps(stmts, pickle.HIGHEST_PROTOCOL)))
        except (OSError, RuntimeError):  # it died before its exit was noticed
            exc = StorageError("the SQLite writer process exited")
            self._broke(exc)
            self._fail(steps, done, exc)
            return
        self._inflight = done

        def answered(error: str | None) -> None:
            if error is not None:
                exc = StorageError(error)
                self._broke(exc)
                self._fail(steps, done, exc)
                return
            self._advance(committed, txn)
            self._stored(steps, done)

        self._flights.append(answered)

    def _acknowledge_first(self, steps: list[Step], done: Shared) -> None:
        """A small transaction without operations: written to the ``-pending`` file,
        acknowledged (``on_stored``), and committed in the next loop turn, after the
        acknowledgements went out (see :mod:`jetport.storage.sqlite_pending`).  ``sync``
        still waits for the commit, as readers of the database need."""
        pending, loop = self._pending, self._loop
        assert pending is not None and loop is not None
        txn = Txn(self._conn)  # type: ignore[arg-type]
        committed: dict[Member, int] = {}
        stmts = self._prepared(steps, committed, txn)
        try:
            pending.append(stmts)
        except OSError as exc:
            self._broke(exc)
            self._fail(steps, done, exc)
            return
        for member, seq in committed.items():
            member.durable(seq)
        hooks, done.hooks = done.hooks, []
        for hook in hooks:
            hook(None)
        self._local = True
        self._inflight = done
        loop.call_soon(self._commit_pending, stmts, steps, done, committed, txn)

    def _commit_pending(self, stmts: list[worker.Stmt], steps: list[Step], done: Shared,
                        committed: dict[Member, int], txn: Txn) -> None:
        self._local = False
        if self._closing:  # abandoned: the file keeps it for the store's next opening
            self._fail(steps, done, StorageError("storage reopened"))
            return
        conn, pending = self._conn, self._pending
        assert conn is not None and pending is not None
        try:
            with worker.transaction(conn):
                worker.execute(conn, stmts)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            self._broke(exc)
            self._fail(steps, done, exc)
            return
        try:
            pending.clear()
        except OSError as exc:  # committed all the same; the reopening skips the frame
            self._broke(exc)
        self._advance(committed, txn)
        self._stored(steps, done)

    def _prepared(self, steps: list[Step], committed: dict[Member, int],
                  txn: Txn) -> list[worker.Stmt]:
        """The statements of a transaction of data and SQL steps, as the writer
        process runs them."""
        stmts: list[worker.Stmt] = []
        for step in steps:
            if type(step) is SqlStep:
                stmts += step.stmts
            else:
                stmts += self._statements(step, committed, txn)  # type: ignore[arg-type]
        stmts += self._meta(txn)
        return stmts

    def _commit(self, steps: list[Step]) -> None:
        """A transaction with operations, on the hub's connection: operations read and
        change the stores' in-memory state, so they run here, in order."""
        conn = self._conn
        assert conn is not None
        txn = Txn(conn)
        committed: dict[Member, int] = {}
        with worker.transaction(conn):
            for step in steps:
                if type(step) is DataStep:
                    worker.execute(conn, self._statements(step, committed, txn))
                elif type(step) is SqlStep:
                    worker.execute(conn, step.stmts)
                else:
                    op = cast(OpStep, step)
                    op.result = op.fn(txn)
            worker.execute(conn, self._meta(txn))
        self._advance(committed, txn)

    def _broke(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
            if self.on_broken is not None:
                self.on_broken(exc if isinstance(exc, StorageError) else StorageError(str(exc)))
            else:
                log.error("storage commit failed: %s", exc)

    def _stored(self, steps: list[Step], done: Shared) -> None:
        for step in steps:
            if type(step) is OpStep and not step.fut.done():
                step.fut.set_result(step.result)
        hooks, done.hooks = done.hooks, []
        for hook in hooks:
            hook(None)
        if not done.done():
            done.set_result(None)
        if self._inflight is done:
            self._inflight = None
        if self._steps:
            self._schedule()

    @staticmethod
    def _advance(committed: dict[Member, int], txn: Txn) -> None:
        """A transaction committed: each stream learns how far its rows are durable, and
        what the transaction deferred until then runs."""
        for member, seq in committed.items():
            member.committed(seq)
        for hook in txn.after:
            hook()

    @staticmethod
    def _fail(
        steps: list[Step], done: Shared | None, exc: BaseException
    ) -> None:
        err = exc if isinstance(exc, StorageError) else StorageError(f"commit failed: {exc}")
        futs = [s.fut for s in steps if type(s) is OpStep]
        if done is not None:
            futs.append(done)
            hooks, done.hooks = done.hooks, []
            for hook in hooks:
                hook(err)
        for fut in futs:
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # nobody may be waiting; do not warn about it

    def _meta(self, txn: Txn) -> list[worker.Stmt]:
        """The counter rows due with this transaction."""
        now = time.monotonic()
        if not (txn.touched or self._closing or now - self._meta_at >= META_EVERY):
            return []
        members = {**self._dirty, **txn.touched}
        meta = [row for m in members if (row := m.meta_row()) is not None]
        self._dirty.clear()
        self._meta_at = now
        return [(schema.SAVE_STATE, meta, True)] if meta else []

    def _statements(
        self, step: DataStep, committed: dict[Member, int], txn: Txn
    ) -> list[worker.Stmt]:
        """What ``step`` writes; the stores' view of the database moves on with it."""
        out: list[worker.Stmt] = []
        if step.params:
            out.append((None, step.params, False))
        for member, acc in step.accs.items():
            member.applied(acc)
            self._dirty[member] = None
            committed[member] = acc.last_seq
            if acc.skipped:
                txn.touch(member)
        if step.configs:
            rows = [(name, cfg, created) for name, (cfg, created) in step.configs.items()]
            out.append((schema.SAVE_STREAM, rows, True))
        if step.consumers:
            drops = [key for key, v in step.consumers.items() if v is None]
            if drops:
                out.append((schema.DELETE_CONSUMER, drops, True))
            saves = [
                (stream, name, v[0], self._encode(v[1]))
                for (stream, name), v in step.consumers.items()
                if v is not None
            ]
            if saves:
                out.append((schema.SAVE_CONSUMER, saves, True))
        return out
