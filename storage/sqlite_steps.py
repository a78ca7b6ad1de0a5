"""What a transaction of the SQLite writer is made of (see :mod:`.sqlite_writer`).

A transaction is a list of steps in call order: a ``DataStep`` collects rows, stream
configs and consumer states; an ``OpStep`` runs an operation (a removal, a purge)
inside the transaction at its place; a ``SqlStep`` carries statements that touch no
in-memory state.  ``Acc`` is what one data step adds to one stream, ``Txn`` what an
operation is handed, and ``Shared`` the completion every waiter of a commit shares.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from . import sqlite_worker as worker
from .base import ConsumerState


class Member(Protocol):
    """A stream store whose rows go through the writer."""

    def applied(self, acc: Acc) -> None:
        """Its rows in ``acc`` are now in the open transaction."""
        ...

    def meta_row(self) -> tuple[int, ...] | None:
        """Its stream_state row as of the open transaction (None: write nothing)."""
        ...

    def durable(self, seq: int) -> None:
        """Everything up to ``seq`` is in the ``-pending`` file, to be committed."""
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


class DataStep:
    """Rows, stream configs and consumer states, in one go."""

    __slots__ = ("params", "accs", "configs", "consumers")

    def __init__(self) -> None:
        #: The msgs rows, their values one after another (see ``sqlite_worker``).
        self.params: list[Any] = []
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


class OpStep:
    """An operation, its future and its result once run."""

    __slots__ = ("fn", "fut", "result")

    def __init__(self, fn: Op, fut: asyncio.Future[Any]) -> None:
        self.fn, self.fut, self.result = fn, fut, None


class SqlStep:
    """Statements with no effect on in-memory state (deleting a whole stream): they
    may go to the writer process like rows do."""

    __slots__ = ("stmts",)

    def __init__(self, stmts: list[worker.Stmt]) -> None:
        self.stmts = stmts


Step = DataStep | OpStep | SqlStep


class Shared(asyncio.Future):  # type: ignore[type-arg]
    """A commit's completion, awaited by every publisher in the batch.

    Cancelling one waiting task must not cancel the commit for all the others; refusing
    cancellation here makes that task's cancel take effect once the commit resolves.
    That is cheaper than wrapping every wait in ``asyncio.shield``.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Called with None (committed) or the error before the future resolves.
        self.hooks: list[Callable[[BaseException | None], None]] = []

    def cancel(self, msg: object = None) -> bool:
        return False
