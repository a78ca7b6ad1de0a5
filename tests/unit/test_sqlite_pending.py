"""A small transaction is acknowledged from the ``-pending`` file, before its commit,
and an acknowledged transaction is never lost: not to ``kill -9`` before the commit,
not to one between the commit and the emptying of the file, not to an abandoned
store."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
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


KILLED = """
import asyncio, os, signal, sys
from jetport.storage import sqlite_pending
from jetport.storage.sqlite import SqliteStorage

def die(_exc=None):
    os.kill(os.getpid(), signal.SIGKILL)

async def main():
    st = SqliteStorage(sys.argv[1])
    store = await st.open_stream("S")
    for seq in (1, 2, 3):
        store.store(seq, b"k.%d" % seq, None, b"m%d" % seq, seq)
        await store.sync()
    st.consumers("S").save("dur", "{}", __import__("jetport.storage.base", fromlist=["x"])
                            .ConsumerState(3, 3, 2, 2, {3: (3, 30)}, {}))
    store.store(4, b"k.4", None, b"m4", 4)
    if sys.argv[2] == "after-commit":
        # dies between the commit and the emptying of the file
        sqlite_pending.Pending.clear = lambda self: die()
        await store.sync()
    else:
        store.on_stored(die)  # dies on the acknowledgement, before the commit
        await store.sync()
    print("not killed")

asyncio.run(main())
"""


def run_killed(directory: Path, when: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED, str(directory), when],
                          capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode() + proc.stdout.decode()


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
async def test_an_acknowledged_transaction_survives_kill_9(
        tmp_path: Path, when: str, caplog: pytest.LogCaptureFixture) -> None:
    run_killed(tmp_path, when)
    st = SqliteStorage(str(tmp_path))
    assert os.path.getsize(st.path + SUFFIX) > 0  # the frame the process left
    with caplog.at_level(logging.WARNING, "jetport.storage"):
        try:
            store = await st.open_stream("S")
            state = store.state()
            assert (state.first_seq, state.last_seq, state.msgs) == (1, 4, 4)
            assert (await store.get(4)).data == b"m4"
            loaded = await st.consumers("S").load()
            assert loaded["dur"][1].pending == {3: (3, 30)}
            store.store(5, b"k.5", None, b"m5", 5)
            await store.sync()
            assert [seq for seq, _ in rows(st)] == [1, 2, 3, 4, 5]
        finally:
            await st.close()
    replayed = [r for r in caplog.records if "acknowledged transaction" in r.getMessage()]
    # A frame that did commit is recognised by its first row and not run again.
    assert len(replayed) == (1 if when == "before-commit" else 0)
    assert not os.path.exists(st.path + SUFFIX + ".failed")


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
    assert any("could not be committed" in r.getMessage() for r in caplog.records)
