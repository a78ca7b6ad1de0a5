"""Small helpers shared by scenarios."""

from __future__ import annotations

import asyncio
import os

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
