"""Idle-connection memory: open N subscribers, then read the server's RSS."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import time

from .common import SETUP_TIMEOUT, close_all, run_tag
from .model import (
    Column,
    Context,
    Outcome,
    Params,
    Scenario,
    proc_nofile,
    proc_rss_kb,
)
from .rawclient import Endpoint, ProtocolError, RawConn, connect


def raise_nofile() -> tuple[int, int]:
    """Lift this process's open-file soft limit to the hard limit; returns the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def conns(ctx: Context, p: Params) -> Outcome:
    """Open N idle subscribers, then read the server's RSS.

    Opening stops early after repeated failures (e.g. the server's file limit), so a server
    that cannot hold N connections fails fast with a clear count instead of timing out.
    """
    ep = Endpoint.parse(ctx.url)
    n, parallel, settle = int(p["conns"]), int(p["parallel"]), float(p["settle"])
    soft, _hard = raise_nofile()
    tag = run_tag()
    base_kb = proc_rss_kb(ctx.pid)
    opened: list[RawConn] = []
    errors: list[str] = []
    max_failures = max(20, n // 100)
    stop = asyncio.Event()
    queue = iter(range(n))

    async def opener() -> None:
        for i in queue:
            if stop.is_set():
                return
            setup = f"SUB bench.{tag}.c.{i} 1\r\n".encode()
            try:
                opened.append(await connect(functools.partial(RawConn, ep, "bench-idle", setup), ep,
                                            SETUP_TIMEOUT))
                continue
            except TimeoutError:
                errors.append(f"no handshake within {SETUP_TIMEOUT:g}s")
            except (OSError, ProtocolError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) >= max_failures:
                stop.set()

    t0 = time.perf_counter()
    workers = [asyncio.create_task(opener()) for _ in range(min(parallel, n))]
    stopped = asyncio.create_task(stop.wait())
    try:
        pending: set[asyncio.Task[object]] = {*workers, stopped}
        deadline = time.perf_counter() + ctx.timeout
        partial = False
        while not stopped.done() and any(not w.done() for w in workers):
            done, pending = await asyncio.wait(pending, timeout=deadline - time.perf_counter(),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                partial = True
                break
        for w in (*workers, stopped):
            w.cancel()
        await asyncio.gather(*workers, stopped, return_exceptions=True)
        open_s = time.perf_counter() - t0
        await asyncio.sleep(settle)
        alive = sum(1 for c in opened if not c.closed.done())
        rss_kb = proc_rss_kb(ctx.pid)
    finally:
        await close_all(opened)
    error = None
    if alive < n:
        first = errors[0] if errors else "connections closed by server"
        error = f"only {alive} of {n} connections alive ({len(errors)} failed; first: {first})"
        server_limit = proc_nofile(ctx.pid)
        if server_limit is not None and server_limit < n + 64:
            error += f"; server open-file limit is {server_limit}"
        if soft < n + 64:
            error += f"; client open-file limit is {soft}"
    if ctx.pid is None:
        error = (error + "; " if error else "") + "server pid unknown (use --pid), RSS not read"
    per_kb = None
    if rss_kb is not None and base_kb is not None and alive:
        per_kb = (rss_kb - base_kb) / alive
    return Outcome(
        metrics={"rss_mb": rss_kb / 1024 if rss_kb is not None else None, "kb_per_conn": per_kb},
        details={"requested": n, "alive": alive, "failed": len(errors), "open_s": open_s,
                 "baseline_rss_mb": base_kb / 1024 if base_kb is not None else None,
                 "rss_kb_over_conns": rss_kb / alive if rss_kb and alive else None},
        partial=partial or alive < n,
        error=error,
    )


SCENARIO = Scenario(
    name="conns",
    run=conns,
    columns=(Column("rss_mb", "RSS MB", "float", higher=False),
             Column("kb_per_conn", "KB/conn", "float", higher=False)),
    defaults={"conns": 10_000, "parallel": 200, "settle": 1.0},
    label=lambda p: f"conns {p['conns']}",
    help="N idle connections with one SUB each; server RSS and RSS growth per connection",
)
