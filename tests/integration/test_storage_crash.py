"""An acknowledged message survives ``kill -9`` of the process that stored it."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetport.storage.sqlite import SqliteStorage
from jetport.storage.sqlite_pending import SUFFIX

WRITER = """
import asyncio, sys
import logging
import os
import sqlite3

import pytest

from jetport.storage.sqlite import SqliteStorage
from jetport.storage.sqlite_pending import SUFFIX

def payload(seq):
    return (b"%08d" % seq) * 16

async def publisher(store, state):
    while True:
        for _ in range(25):
            state[0] += 1
            seq = state[0]
            store.store(seq, b"crash.%d" % (seq % 7), None, payload(seq), seq)
        mine = state[0]
        await store.sync()
        sys.stdout.write(f"{mine}\\n")
        sys.stdout.flush()

async def main():
    store = await SqliteStorage(sys.argv[1]).open_stream("C")
    state = [store.state().last_seq]
    await asyncio.gather(*(publisher(store, state) for _ in range(4)))

asyncio.run(main())
"""


def payload(seq: int) -> bytes:
    return (b"%08d" % seq) * 16


def run_and_kill(directory: Path, seconds: float) -> list[int]:
    """Run the writer under load for ``seconds``, SIGKILL it, return acked seqs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read().decode() if proc.stderr else "writer died"
        acked.append(int(first))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    # Lines completed before the kill were acknowledged too; a torn last one was not.
    acked += [int(x) for x in rest.split(b"\n")[:-1] if x]
    assert proc.returncode == -signal.SIGKILL
    return acked


async def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    acked = run_and_kill(tmp_path, 1.0)
    assert len(acked) > 10
    top = max(acked)

    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("C")
        state = store.state()
        assert state.first_seq == 1
        assert state.last_seq >= top
        assert state.msgs == state.last_seq and state.num_deleted == 0
        assert state.bytes == sum(store.record_size(b"crash.%d" % (s % 7), None, b"x" * 128)
                                  for s in range(1, state.last_seq + 1))
        for seq in sorted(set(acked)):
            msg = await store.get(seq)
            assert msg is not None and msg.data == payload(seq), seq
        assert await store.count(b">") == state.msgs
        assert sum((await store.subjects()).values()) == state.msgs
        last = await store.next(state.last_seq)
        assert last is not None and last.data == payload(state.last_seq)
        assert await store.next(state.last_seq + 1) is None

        # The stream carries on from where the crash left it, and survives a second one.
        store.store(state.last_seq + 1, b"after", None, b"x", 0)
        await store.sync()
    finally:
        await st.close()
    again = run_and_kill(tmp_path, 0.3)
    st = SqliteStorage(str(tmp_path))
    try:
        store = await st.open_stream("C")
        assert store.state().last_seq >= max(again)
        assert (await store.get(max(again))).data == payload(max(again))
        assert (await store.get(top + 1)) is not None
    finally:
        await st.close()


KILLED = """
import asyncio, os, signal, sys
from jetport.storage import sqlite_pending
from jetport.storage.base import ConsumerState
from jetport.storage.sqlite import SqliteStorage

def die(_exc=None):
    os.kill(os.getpid(), signal.SIGKILL)

async def main():
    st = SqliteStorage(sys.argv[1])
    store = await st.open_stream("S")
    for seq in (1, 2, 3):
        store.store(seq, b"k.%d" % seq, None, b"m%d" % seq, seq)
        await store.sync()
    st.consumers("S").save("dur", "{}", ConsumerState(3, 3, 2, 2, {3: (3, 30)}, {}))
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
    """Store 1-3 (committed), then 4 with a consumer state, and SIGKILL the process
    at ``when``."""
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
            raw = sqlite3.connect(st.path)
            assert [r[0] for r in raw.execute("SELECT seq FROM msgs ORDER BY seq")] == \
                [1, 2, 3, 4, 5]
            raw.close()
        finally:
            await st.close()
    replayed = [r for r in caplog.records if "acknowledged transaction" in r.getMessage()]
    # A frame that did commit is recognised by its first row and not run again.
    assert len(replayed) == (1 if when == "before-commit" else 0)
    assert not os.path.exists(st.path + SUFFIX + ".failed")
