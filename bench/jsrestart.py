"""JetStream restart: how long a server with a full stream takes to be usable again.

The scenario starts the server itself (JetStream on a scratch store directory), fills a file
stream with pipelined publishes, stops the server with SIGTERM and starts it again on the
same store. "Restart to ready" runs from starting the second process until its client port
greets with INFO and ``STREAM.INFO`` reports every message. The RSS growth compares the
restarted server with the same server freshly started on an empty store.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from . import servers
from .common import SETUP_TIMEOUT, count_label, size_label
from .jsclient import JsConn, JsError, create_stream, publish_pipelined, stream_messages
from .model import OWN, Column, Context, Outcome, Params, Scenario, proc_rss_kb
from .rawclient import FILL, Endpoint, ProtocolError, connect
from .servers import LaunchError

STREAM = "BENCH_RESTART"
SUBJECT = "bench.restart"
# Pause before reading the empty server's RSS, so start-up work has finished.
SETTLE = 0.5
# Filling is set-up, not the measurement: it may take this many time limits.
FILL_LIMITS = 2
POLL = 0.01


def _mb(kb: int | None) -> float | None:
    return kb / 1024 if kb is not None else None


class _Server:
    """One server process on the scenario's store directory."""

    def __init__(self, kind: str, work: Path, store: Path, n: int) -> None:
        self.port = servers.free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc, self.cmd, self.log = servers.spawn(kind, self.port, work, store,
                                                      log_name=f"server-{n}.log")

    def ready(self, timeout: float) -> None:
        try:
            servers.wait_ready("127.0.0.1", self.port, self.proc, timeout, interval=POLL)
        except LaunchError as exc:
            tail = servers.log_tail(self.log)
            raise LaunchError(f"{exc}\n  command: {' '.join(self.cmd)}"
                              + (f"\n  log:\n{tail}" if tail else "")) from exc

    def rss_kb(self) -> int | None:
        return proc_rss_kb(self.proc.pid)


async def _await_count(ep: Endpoint, expected: int, deadline: float) -> int:
    """Poll STREAM.INFO until the stream reports ``expected`` messages; returns the last count
    seen (lower than expected when the deadline passed)."""
    conn: JsConn | None = None
    seen = -1
    try:
        while time.perf_counter() < deadline:
            try:
                if conn is None or conn.closed.done():
                    conn = await connect(lambda: JsConn(ep, "bench-js-restart"), ep,
                                         SETUP_TIMEOUT)
                left = max(0.05, deadline - time.perf_counter())
                seen = await stream_messages(conn, STREAM, min(left, SETUP_TIMEOUT))
                if seen >= expected:
                    return seen
            except (JsError, OSError, ProtocolError, TimeoutError):
                pass  # not recovered yet: stream unknown, API not answering, ...
            await asyncio.sleep(POLL)
        return seen
    finally:
        if conn is not None:
            conn.close()


async def js_restart(ctx: Context, p: Params) -> Outcome:
    if ctx.launch is None:
        return Outcome(metrics={}, error="js-restart needs a server the bench starts itself "
                       "(--jetport, --nats-server or --compare)")
    size, count, window = int(p["size"]), int(p["count"]), int(p["window"])
    details: dict[str, Any] = {}
    restart_s = growth_mb = None
    partial = False
    error = None
    with tempfile.TemporaryDirectory(prefix="jetport-bench-restart-") as tmp:
        work, store = Path(tmp), Path(tmp) / "store"
        first = second = None
        try:
            t = time.perf_counter()
            first = _Server(ctx.launch, work, store, 1)
            first.ready(servers.READY_TIMEOUT)
            details["empty_start_s"] = time.perf_counter() - t
            await asyncio.sleep(SETTLE)
            empty_kb = first.rss_kb()
            ep = Endpoint.parse(first.url)
            conn = await connect(lambda: JsConn(ep, "bench-js-restart"), ep, SETUP_TIMEOUT)
            try:
                await create_stream(conn, STREAM, [SUBJECT])
                fill = await publish_pipelined(conn, SUBJECT, FILL * size, count, window,
                                               ctx.timeout * FILL_LIMITS)
                if fill.error:
                    raise JsError(f"filling the stream: {fill.error}")
                stored = await stream_messages(conn, STREAM)
            finally:
                conn.close()
            partial = fill.partial
            filled_kb = first.rss_kb()
            t = time.perf_counter()
            status = servers.stop(first.proc)
            details.update(filled=stored, fill_s=fill.elapsed,
                           fill_msgs_per_s=fill.acked / fill.elapsed if fill.elapsed else None,
                           stop_s=time.perf_counter() - t, stop_status=status,
                           rss_empty_mb=_mb(empty_kb), rss_filled_mb=_mb(filled_kb))

            t0 = time.perf_counter()
            second = _Server(ctx.launch, work, store, 2)
            second.ready(ctx.timeout)
            details["info_s"] = time.perf_counter() - t0
            seen = await _await_count(Endpoint.parse(second.url), stored, t0 + ctx.timeout)
            took = time.perf_counter() - t0
            restart_kb = second.rss_kb()
            details.update(stream_messages=seen, rss_restart_mb=_mb(restart_kb))
            if seen >= stored:
                restart_s = took
            else:
                partial = True
                error = (f"stream reports {max(seen, 0)} of {stored} messages "
                         f"{took:.1f}s after restart" if seen >= 0 else
                         f"STREAM.INFO did not answer within {took:.1f}s after restart")
            if restart_kb is not None and empty_kb is not None:
                growth_mb = (restart_kb - empty_kb) / 1024
            if second.proc.poll() is not None:
                error = f"server exited with status {second.proc.returncode} after restart"
        except (LaunchError, JsError) as exc:
            error = str(exc)
        finally:
            for server in (first, second):
                if server is not None:
                    servers.stop(server.proc)
    return Outcome(metrics={"restart_s": restart_s, "rss_growth_mb": growth_mb},
                   details=details, partial=partial, error=error)


SCENARIO = Scenario(
    name="js-restart",
    run=js_restart,
    columns=(Column("restart_s", "restart s", "s", higher=False),
             Column("rss_growth_mb", "RSS+ MB", "float", higher=False)),
    defaults={"size": 128, "count": 1_000_000, "window": 1000},
    label=lambda p: f"js-restart {count_label(p['count'])} x {size_label(p['size'])}",
    help="fill a stream, SIGTERM, restart on its store; seconds to ready, RSS growth",
    server=OWN,
    phases=5,
)
