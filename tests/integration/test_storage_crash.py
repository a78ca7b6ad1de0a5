"""An acknowledged message survives ``kill -9`` of the process that stored it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from jetport.storage.sqlite import SqliteStorage

WRITER = """
import asyncio, sys
from jetport.storage.sqlite import SqliteStorage

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
