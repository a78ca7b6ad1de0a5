"""Transactions acknowledged before their commit: ``<database>-pending``.

A lone publisher waits for its PubAck, and a SQLite commit on the event loop costs about
50 us (two 16 KiB WAL frames), half the hub's time on such a message.  A small
transaction is therefore appended to this file with one ``write()`` first, acknowledged,
and committed in the next loop turn, after the PubAck has gone out; the file is emptied
after each commit.  ``write()`` puts the bytes in the OS page cache, which outlives the
process, exactly as a commit with ``synchronous=NORMAL`` does: an acknowledged
transaction survives ``kill -9`` either way, and neither survives a power cut before
the next checkpoint.  With ``synchronous=FULL`` no transaction takes this path.

The file holds frames in the writer process's format (``sqlite_worker``: a 4-byte
length, then the pickled statements), one at a time: the next transaction waits for the
commit.  Opening the store replays a frame that did not commit.  A crash between the
commit and the emptying leaves a committed frame: its first message row is then in the
database and it is skipped (a frame without message rows is replayed; its statements
only upsert and delete by key, so running the last transaction twice leaves what
running it once did).
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
from typing import Any

from . import sqlite_worker as worker
from .base import StorageError

log = logging.getLogger("jetport.storage")

SUFFIX = "-pending"


class Pending:
    """The open ``-pending`` file of one database."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + SUFFIX
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        #: Bytes written since the last emptying.
        self.size = 0

    def append(self, stmts: list[worker.Stmt]) -> None:
        """Write ``stmts`` as one frame; OSError if it is not all written."""
        data = memoryview(worker.frame(pickle.dumps(stmts, pickle.HIGHEST_PROTOCOL)))
        while data:
            n = os.write(self._fd, data)
            self.size += n
            data = data[n:]

    def clear(self) -> None:
        """The frames written are committed."""
        if self.size:
            os.ftruncate(self._fd, 0)
            self.size = 0

    def close(self) -> None:
        """Close the file, and remove it when it holds nothing."""
        os.close(self._fd)
        if not self.size:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _committed(conn: sqlite3.Connection, stmts: list[worker.Stmt]) -> bool:
    """Whether the frame's first message row is in the database already."""
    for sql, params, _many in stmts:
        if sql is None and params:
            row: Any = conn.execute("SELECT 1 FROM msgs WHERE stream_id = ? AND seq = ?",
                                    (params[0], params[1])).fetchone()
            return row is not None
    return False


def replay(conn: sqlite3.Connection, db_path: str) -> int:
    """Commit what ``<db_path>-pending`` holds that the database does not, on ``conn``
    (the store's write connection, before any stream opens), then empty the file.
    Returns how many transactions were committed.

    A frame that can never commit (unreadable, or its rows conflict with committed
    ones) is set aside as ``-pending.failed`` and logged: the store opens with what it
    has.  Any other failure (a full disk) fails the opening, to be tried again."""
    path = db_path + SUFFIX
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not data:
        return 0
    done = 0
    try:
        for body in worker.unframe(data)[0]:  # a torn last frame was never acknowledged
            stmts: list[worker.Stmt] = pickle.loads(body)
            with worker.transaction(conn):
                if _committed(conn, stmts):
                    continue
                worker.execute(conn, stmts)
            done += 1
    except sqlite3.IntegrityError as exc:
        _set_aside(db_path, path, exc)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot commit what {path} holds: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - whatever unpickling a damaged frame raises
        _set_aside(db_path, path, exc)
    else:
        os.truncate(path, 0)
    if done:
        log.warning("storage %s: committed %d acknowledged transaction(s) left by a "
                    "process that stopped before committing them", db_path, done)
    return done


def _set_aside(db_path: str, path: str, exc: BaseException) -> None:
    log.error("storage %s: acknowledged transactions in %s cannot be committed (%s); "
              "kept as %s.failed", db_path, path, exc, path)
    os.replace(path, path + ".failed")
