"""A small transaction is acknowledged from the ``-pending`` file, before its commit,
and an acknowledged transaction is not lost to an abandoned store or a broken file
(``kill -9``: tests/integration/test_storage_crash.py)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from jetport.storage import sqlite_worker as worker
from jetport.storage.sqlite import SqliteStorage
from jetport.storage.sqlite_pending import SUFFIX


def rows(st: SqliteStorage) -> list[tuple[int, bytes]]:
    """The committed messages, as another process would see them."""
    raw = sqlite3.connect(st.path)
    try:
        return raw.execute("SELECT seq, data FROM msgs ORDER BY seq").fetchall()
    finally:
        raw.close()


def pending_size(st: SqliteStorage) -> int:
    return os.path.getsize(st.path + SUFFIX)


async def test_a_small_transaction_is_acknowledged_before_its_commit(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        store.store(1, b"a", None, b"one", 1)
        await store.sync()
        seen: list[tuple[BaseException | None, list[tuple[int, bytes]], int]] = []
        store.store(2, b"a", None, b"two", 2)
        store.on_stored(lambda exc: seen.append((exc, rows(st), pending_size(st))))
        waiter = store.sync()
        await waiter
        # At the acknowledgement the row was only in the file; sync() waited for the
        # commit, which emptied it.
        assert seen == [(None, [(1, b"one")], seen[0][2])] and seen[0][2] > 0
        assert rows(st) == [(1, b"one"), (2, b"two")]
        assert pending_size(st) == 0
    finally:
        await st.close()
    assert not os.path.exists(st.path + SUFFIX)  # a clean close leaves no file


async def test_full_sync_commits_before_acknowledging(tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path), sync_always=True)
    try:
        store = await st.open_stream("S")
        seen: list[list[tuple[int, bytes]]] = []
        store.store(1, b"a", None, b"one", 1)
        store.on_stored(lambda exc: seen.append(rows(st)))
        await store.sync()
        assert seen == [[(1, b"one")]]
        assert not os.path.exists(st.path + SUFFIX)
    finally:
        await st.close()


async def test_an_abandoned_store_leaves_the_acknowledged_transaction_to_its_successor(
        tmp_path: Path) -> None:
    st = SqliteStorage(str(tmp_path))
    store = await st.open_stream("S")
    store.store(1, b"a", None, b"one", 1)
    store.on_stored(lambda exc: st.writer.abandon())  # as an account reopening its store
    with pytest.raises(Exception, match="storage reopened"):
        await store.sync()
    await st.close()
    assert rows(st) == []
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        assert store.state().last_seq == 1 and (await store.get(1)).data == b"one"
    finally:
        await st.close()


async def test_a_frame_that_cannot_commit_is_set_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("S")
        store.store(1, b"a", None, b"one", 1)
        await store.sync()
    finally:
        await st.close()
    with open(st.path + SUFFIX, "wb") as f:
        f.write(worker.frame(b"not a pickle"))
    st = SqliteStorage(str(tmp_path))
    with caplog.at_level(logging.ERROR, "jetport.storage"):
        try:
            store = await st.open_stream("S")
            assert store.state().last_seq == 1
        finally:
            await st.close()
    assert os.path.getsize(st.path + SUFFIX + ".failed") > 0
    assert any("cannot be committed" in r.getMessage() for r in caplog.records)


def test_frames_split_at_every_offset_come_back_whole() -> None:
    """The one frame decoder, shared by the writer's answers and the -pending replay."""
    data = worker.frame(b"ab") + worker.frame(b"") + worker.frame(b"x" * 300)
    for cut in range(len(data) + 1):
        first, rest = worker.unframe(data[:cut])
        second, tail = worker.unframe(rest + data[cut:])
        assert first + second == [b"ab", b"", b"x" * 300] and tail == b"", cut
