"""JetStream publish throughput: pipelined publishes, each waiting for its PubAck.

A file-backed stream is created, then messages are published with a window of outstanding
PubAcks, every PUB with its own reply subject under one wildcard inbox. The rate counts
acknowledged messages from the first publish to the last PubAck; at the end the stream must
hold every acknowledged message.
"""

from __future__ import annotations

import gc

from .common import SETUP_TIMEOUT, size_label
from .jsclient import (
    JsConn,
    JsError,
    create_stream,
    delete_stream,
    publish_pipelined,
    stream_messages,
    stream_names,
)
from .model import JETSTREAM, Column, Context, CpuProbe, Outcome, Params, Scenario
from .rawclient import FILL, Endpoint, connect


async def js_pub(ctx: Context, p: Params) -> Outcome:
    ep = Endpoint.parse(ctx.url)
    size, count, window = int(p["size"]), int(p["count"]), int(p["window"])
    warmup = int(p["warmup"]) if p.get("warmup") is not None else min(count // 10, 20_000)
    stream, subject = stream_names("pub")
    conn = await connect(lambda: JsConn(ep, "bench-js-pub"), ep, SETUP_TIMEOUT)
    cleanup = None
    try:
        await create_stream(conn, stream, [subject])
        payload = FILL * size
        # An unmeasured burst first warms up the server's publish path and the stream's files.
        warm = await publish_pipelined(conn, subject, payload, warmup, window, ctx.timeout)
        run, cpu = warm, {}
        if not (warm.partial or warm.error):
            probe = CpuProbe(ctx.pid)
            gc.collect()
            gc.disable()
            try:
                probe.start()
                run = await publish_pipelined(conn, subject, payload, count, window, ctx.timeout)
                cpu = probe.stop()
            finally:
                gc.enable()
        acked = warm.acked + (run.acked if run is not warm else 0)
        error = run.error
        stored = None
        try:
            stored = await stream_messages(conn, stream)
        except JsError as exc:
            error = error or str(exc)
        if error is None and stored is not None:
            expected = warmup + count
            if (not run.partial and stored != expected) or stored < acked:
                error = f"stream holds {stored} messages, expected {expected} ({acked} acked)"
        cleanup = await delete_stream(conn, stream)
    finally:
        conn.close()
    rate = run.acked / run.elapsed if run.elapsed > 0 else 0.0
    return Outcome(
        metrics={"msgs_per_s": rate, "mb_per_s": rate * size / 1e6},
        details={"elapsed_s": run.elapsed, "acked": run.acked, "failed": run.failed,
                 "sent": run.sent, "warmup_msgs": warmup, "stream_messages": stored,
                 "window": window, "cleanup_error": cleanup, **cpu},
        partial=run.partial,
        error=error,
    )


SCENARIO = Scenario(
    name="js-pub",
    run=js_pub,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),
             Column("mb_per_s", "MB/s", "float", ratio=False)),
    defaults={"size": 128, "count": 200_000, "window": 1000, "warmup": None},
    label=lambda p: f"js-pub {size_label(p['size'])} w{p['window']}",
    help="JetStream publish to a file stream, WINDOW PubAcks outstanding; acked msgs/s",
    server=JETSTREAM,
    phases=2,
)
