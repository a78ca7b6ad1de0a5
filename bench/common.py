"""Small helpers shared by scenarios."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from .model import Context, Outcome
from .rawclient import RawConn

SETUP_TIMEOUT = 10.0


def run_tag() -> str:
    """A per-run subject component so concurrent runs on a shared server do not mix."""
    return f"b{os.getpid()}"


def shares(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` near-equal integers."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


async def close_all(conns: list[RawConn], timeout: float = 2.0) -> None:
    for c in conns:
        c.close()
    waits = [c.closed for c in conns if not c.closed.done()]
    if waits:
        await asyncio.wait(waits, timeout=timeout)


def size_label(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024}KiB"
    return f"{size}B"


def count_label(n: int) -> str:
    """1000000 -> 1M, 200000 -> 200k, 1500 -> 1500."""
    for unit, suffix in ((1_000_000, "M"), (1000, "k")):
        if n >= unit and n % (unit // 10) == 0:
            return f"{n / unit:g}{suffix}"
    return str(n)


async def pace(conn: RawConn, rate: float, count: int, deadline: float,
               emit: Callable[[int, int], bytes]) -> int:
    """Write messages 0 .. ``count`` - 1 at ``rate`` per second until ``deadline``
    (``perf_counter`` time); ``emit(i, j)`` gives the bytes of messages i .. j - 1, taken
    just before they are written. Returns how many were written."""
    t0 = time.perf_counter()
    i = 0
    while i < count and time.perf_counter() < deadline and not conn.closed.done():
        due = min(count, int((time.perf_counter() - t0) * rate) + 1)
        if due > i:
            conn.write(emit(i, due))
            i = due
        if conn.paused:
            await conn.drained()
        # Event-loop timers tick in milliseconds: never sleep less, catch up in bursts.
        await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
    return i


def jetport_only(ctx: Context, door: str) -> Outcome | None:
    """An empty result (a "-" cell, no ratio) for a scenario of a Jetport door that
    nats-server lacks when the target is nats-server; measuring a Jetport hub in that
    column would only repeat the Jetport one."""
    if ctx.launch == "nats-server":
        return Outcome(metrics={}, details={"skipped": f"nats-server has no {door} door"})
    return None
