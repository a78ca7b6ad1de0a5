"""The process that commits an account's writes: ``python -m jetport.storage.sqlite_worker PATH``.

Inserting a message costs SQLite a few microseconds, about a quarter of what the hub
spends on a persisted publish.  A thread cannot take that work off the event loop: it
needs the GIL for every statement and a busy loop yields it only every switch interval.
A process can, on another core.  The hub sends one frame per transaction and waits for
its answer before acknowledging anything in it.

Frames in both directions are a 4-byte little-endian length and a body.  A request body
is a pickled list of statements ``(sql, params, many)``; ``sql`` None means rows for
``msgs``, their values one after another in ``params``.  The answer is empty once the
transaction is committed, else the error's text (the transaction is rolled back).  The
process ends when its input ends, so it never outlives the hub by more than the frames
already sent.  WAL checkpoints run on a thread of their own, so commits rarely wait
for them.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

#: Size a WAL file is cut back to after a checkpoint that emptied it.
WAL_LIMIT = 64 << 20
#: How commits reach the disk.  NORMAL: a commit is in the WAL file when the hub
#: acknowledges it, so it survives the process being killed; the WAL is fsynced at each
#: checkpoint, so power loss can take back the last commits before one.  FULL
#: (``jetstream { sync_interval: always }``): every commit is fsynced first.
SYNC_NORMAL, SYNC_FULL = "NORMAL", "FULL"
PRAGMAS = (
    # 16 KiB pages for a new store (an existing one keeps its own): a commit writes a
    # quarter of the WAL frames, one write call each (1 KiB messages, 1,000 PubAcks
    # outstanding: 29k -> 55k msgs/s; 128 B unchanged within the noise).
    "PRAGMA page_size = 16384",
    "PRAGMA journal_mode = WAL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA cache_size = -16384",
    f"PRAGMA journal_size_limit = {WAL_LIMIT}",
)
#: Request bytes between WAL checkpoints, and every how many the WAL is emptied.  A
#: checkpoint copies each page's newest version and syncs twice, so the fewer the
#: cheaper (1 KiB messages, 1,000 PubAcks outstanding: 84-88k msgs/s with 4 MiB, 92k
#: with 16, 98-109k with 32, 96-101k with 64; 128 B and pull fetch within the noise).
CHECKPOINT_BYTES = 32 << 20
TRUNCATE_EVERY = 8
_LEN = struct.Struct("<I")
COLUMNS = 6
#: Rows per INSERT, largest first: a batch is cut into these sizes, so a few prepared
#: statements serve every batch.
_CHUNKS = (1024, 256, 64, 16, 4, 1)
_INSERTS = {
    n: "INSERT INTO msgs(stream_id, seq, subject, hdr, data, ts) VALUES "
    + ",".join(["(?,?,?,?,?,?)"] * n)
    for n in _CHUNKS
}

#: One statement of a transaction: (SQL or None for msgs rows, parameters, executemany?)
Stmt = tuple[str | None, Any, bool]


def _unchanged(value: None) -> None:
    return value


def bind_directly() -> None:
    """Bind ``bytes`` and ``None`` parameters as they are, without searching for an
    adapter first.  Python 3.11's ``sqlite3`` looks one up for every parameter that is
    not an int, float, str or bytearray, and the failed lookup raises and discards an
    AttributeError each time; a row of ``msgs`` has three such parameters.  Registered,
    the lookup finds one at once (binding a 1,000-row INSERT of 128 B messages: 1.28 ->
    0.74 us a row).  Process-wide, and what is bound is the same."""
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b
    sqlite3.register_adapter(type(None), _unchanged)


def frame(body: bytes) -> bytes:
    return _LEN.pack(len(body)) + body


def unframe(buf: bytes) -> tuple[list[bytes], bytes]:
    """The bodies of the complete frames at the start of ``buf``, and what follows them
    (the start of a frame still to come, or a torn last one)."""
    bodies: list[bytes] = []
    pos, size = 0, len(buf)
    while pos + 4 <= size:
        end = pos + 4 + _LEN.unpack_from(buf, pos)[0]
        if end > size:
            break
        bodies.append(buf[pos + 4:end])
        pos = end
    return bodies, buf[pos:]


def execute(conn: sqlite3.Connection, stmts: list[Stmt]) -> None:
    """Run ``stmts`` (see the module docstring) on ``conn``."""
    for sql, params, many in stmts:
        if sql is None:
            done, total = 0, len(params) // COLUMNS
            while done < total:
                n = next(c for c in _CHUNKS if c <= total - done)
                conn.execute(_INSERTS[n], params[done * COLUMNS:(done + n) * COLUMNS])
                done += n
        elif many:
            conn.executemany(sql, params)
        else:
            conn.execute(sql, params)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on ``conn`` (autocommit mode), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                conn.execute("ROLLBACK")
        raise


def _read(inp: BinaryIO, n: int) -> bytes | None:
    data = inp.read(n)
    return data if data is not None and len(data) == n else None


def _checkpoints(path: str, wake: threading.Event) -> None:
    """Copy the WAL into the database beside the commits rather than inside them: a
    passive checkpoint never blocks the writer."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    while True:
        wake.wait()
        wake.clear()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the WAL grows until the next pass


def serve(path: str, inp: BinaryIO, out: BinaryIO, sync: str = SYNC_NORMAL) -> None:
    bind_directly()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (*PRAGMAS, f"PRAGMA synchronous = {sync}"):
        conn.execute(pragma)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    wake = threading.Event()
    threading.Thread(target=_checkpoints, args=(path, wake), daemon=True).start()
    written = passes = 0
    try:
        while (head := _read(inp, 4)) is not None:
            body = _read(inp, _LEN.unpack(head)[0])
            if body is None:
                break
            try:
                with transaction(conn):
                    execute(conn, pickle.loads(body))
                answer = b""
            except Exception as exc:  # noqa: BLE001 - the hub decides what a failure means
                answer = (str(exc) or type(exc).__name__).encode()
            out.write(frame(answer))
            out.flush()
            written += len(body)
            if written >= CHECKPOINT_BYTES:
                written = 0
                passes += 1
                if passes % TRUNCATE_EVERY:
                    wake.set()
                else:
                    # Under a steady load the WAL grows past what passive checkpoints
                    # copied and never starts over; here, between two transactions, the
                    # rest is copied (little, after the passive ones) and it is emptied.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, *sys.argv[2:3])
