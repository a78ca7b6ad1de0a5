"""Measure the SQLite store: ``python -m jetport.bench.sqlite_store [--uvloop] [--big N]``.

Pipelined throughput is what a busy stream sees: many publishers each storing and
waiting for durability, so batches form on their own.  The single store+sync latency
is the cost one lone publisher pays per acknowledgement.  ``--big`` builds a stream of
N messages and reopens it in a fresh process to show open time and memory do not grow
with the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

from jetport.storage.sqlite import SqliteStorage

PAYLOAD = b"x" * 128


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def pipelined(directory: str, total: int, outstanding: int) -> float:
    st = SqliteStorage(directory)
    store = await st.open_stream("P")
    seq = [store.state().last_seq]
    per = total // outstanding

    async def publisher() -> None:
        for _ in range(per):
            seq[0] += 1
            store.store(seq[0], b"bench.pipelined", None, PAYLOAD, seq[0])
            await store.sync()

    t0 = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(outstanding)))
    elapsed = time.perf_counter() - t0
    await st.close()
    return per * outstanding / elapsed


async def single(directory: str, rounds: int) -> list[float]:
    st = SqliteStorage(directory)
    store = await st.open_stream("L")
    seq = store.state().last_seq
    lat: list[float] = []
    for _ in range(rounds):
        seq += 1
        t0 = time.perf_counter()
        store.store(seq, b"bench.single", None, PAYLOAD, seq)
        await store.sync()
        lat.append(time.perf_counter() - t0)
    await st.close()
    return lat


async def build(directory: str, n: int, batch: int = 20_000) -> float:
    st = SqliteStorage(directory)
    store = await st.open_stream("BIG")
    t0 = time.perf_counter()
    for seq in range(1, n + 1):
        store.store(seq, b"big.%d" % (seq % 100), None, PAYLOAD, seq)
        if seq % batch == 0:
            await store.sync()
    await store.sync()
    elapsed = time.perf_counter() - t0
    await st.close()
    return n / elapsed


async def reopen(directory: str) -> None:
    """Run in a fresh process: report open time, RSS growth and a few cold reads."""
    before = rss_kib()
    t0 = time.perf_counter()
    st = SqliteStorage(directory)
    store = await st.open_stream("BIG")
    opened = time.perf_counter() - t0
    state = store.state()
    t1 = time.perf_counter()
    mid = await store.get(state.msgs // 2)
    nxt = await store.next(state.msgs // 3, [b"big.42"])
    last = await store.last(b"big.*")
    reads = time.perf_counter() - t1
    assert mid is not None and nxt is not None and last is not None
    print(f"reopen {state.msgs} msgs: open {opened * 1000:.1f} ms, "
          f"RSS +{(rss_kib() - before) / 1024:.1f} MiB (total {rss_kib() / 1024:.1f} MiB), "
          f"3 cold reads {reads * 1000:.1f} ms")
    for filters in (None, [b"big.7"], [b"big.*"]):
        t2, seq, n = time.perf_counter(), 1, 0
        while n < 100_000 and (msg := await store.next(seq, filters)) is not None:
            seq, n = msg.seq + 1, n + 1
        print(f"replay next() filter={filters}: {n / (time.perf_counter() - t2):,.0f} msgs/s")
    print(f"RSS after replays: {rss_kib() / 1024:.1f} MiB")
    await st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--msgs", type=int, default=200_000)
    ap.add_argument("--outstanding", type=int, default=1000)
    ap.add_argument("--big", type=int, default=0, help="build and reopen a stream this big")
    ap.add_argument("--reopen", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    if args.reopen:
        asyncio.run(reopen(args.reopen))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rate = asyncio.run(pipelined(os.path.join(tmp, "p"), args.msgs, args.outstanding))
        print(f"pipelined store+sync, {args.outstanding} outstanding, 128 B: {rate:,.0f} msgs/s")
        lat = sorted(asyncio.run(single(os.path.join(tmp, "l"), 2000)))
        print(f"single store+sync: median {statistics.median(lat) * 1e6:.0f} us, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us")
        if args.big:
            big = os.path.join(tmp, "big")
            rate = asyncio.run(build(big, args.big))
            size = os.path.getsize(os.path.join(big, "jetport.db")) / (1 << 20)
            print(f"built {args.big} msgs at {rate:,.0f} msgs/s, db {size:.0f} MiB")
            cmd = [sys.executable, "-m", "jetport.bench.sqlite_store", "--reopen", big]
            if args.uvloop:
                cmd.append("--uvloop")
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
