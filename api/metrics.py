"""``/metrics``: the hub in Prometheus' text format.

Counters of the NATS, WebSocket and MQTT doors are read from their connections at each
scrape and accumulated here per door and account, so they keep rising after a
connection closes (what a connection did after the last scrape before it closed is not
seen).  The HTTP door counts its own traffic as it happens.  Stream and consumer gauges
are read from JetStream at scrape time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from api.session import DoorClient
    from core.client import Client
    from core.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DOORS = {"STANDARD": "nats", "WEBSOCKET": "websocket", "MQTT": "mqtt", "LEAFNODE": "leafnode"}


def door_of(client: Client) -> str:
    return _DOORS.get(client.conn_type, client.conn_type.lower())


class DoorStats:
    """What the HTTP door counts itself, and the per-door totals built from scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_seconds = Histogram(
            "jetport_storage_commit_seconds",
            "Time from publishing a message some stream stores to its PubAck",
            ["door"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
        ).labels("http")
        self.auth_failures = 0
        self.slow_consumers = 0
        self.sse_active = 0
        self.requests = 0
        #: (door, account) -> [in_msgs, out_msgs, in_bytes, out_bytes]
        self.totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._seen: dict[int, tuple[tuple[str, str], list[int]]] = {}
        self.snapshot: dict[str, Any] = {}
        self.registry.register(_Snapshot(self))

    # -- the HTTP door's own traffic -------------------------------------------------------

    def count_in(self, client: DoorClient, payload: bytes) -> None:
        t = self.totals[("http", client.account.name)]
        t[0] += 1
        t[2] += len(payload)

    def count_batch(self, client: DoorClient, n: int, nbytes: int) -> None:
        t = self.totals[("http", client.account.name)]
        t[0] += n
        t[2] += nbytes

    def count_out(self, client: DoorClient, payload: bytes) -> None:
        t = self.totals[("http", client.account.name)]
        t[1] += 1
        t[3] += len(payload)

    def retire(self, client: DoorClient) -> None:
        """A door client going away (its counts are already in the totals)."""

    # -- scrape ----------------------------------------------------------------------------

    def _accumulate(self, hub: Hub) -> dict[str, int]:
        live: set[int] = set()
        conns: dict[str, int] = defaultdict(int)
        for client in hub.clients.values():
            key = (door_of(client), client.account.name)
            now = [client.in_msgs, client.out_msgs, client.in_bytes, client.out_bytes]
            seen = self._seen.get(client.cid)
            before = seen[1] if seen is not None else [0, 0, 0, 0]
            total = self.totals[key]
            for i in range(4):
                total[i] += max(now[i] - before[i], 0)
            self._seen[client.cid] = (key, now)
            live.add(client.cid)
            conns[key[0]] += 1
        for cid in [c for c in self._seen if c not in live]:
            del self._seen[cid]
        conns["http"] += self.sse_active
        return conns

    async def scrape(self, hub: Hub) -> bytes:
        snap: dict[str, Any] = {"connections": self._accumulate(hub), "streams": [],
                                "consumers": [],
                                "slow": hub.slow_consumers + self.slow_consumers}
        js = hub.jetstream
        if js is not None:
            for jsa in list(js.accounts.values()):
                for stream in list(jsa.streams.values()):
                    st = stream.store.state()
                    acc = jsa.account.name
                    snap["streams"].append((acc, stream.name, st.msgs, st.bytes))
                    for consumer in list(stream.consumers.values()):
                        pending = await consumer.num_pending()
                        snap["consumers"].append((acc, stream.name, consumer.name, pending,
                                                  len(consumer.state.pending)))
        self.snapshot = snap
        return generate_latest(self.registry)


class _Snapshot:
    """Families from the last :meth:`DoorStats.scrape`."""

    def __init__(self, stats: DoorStats) -> None:
        self.stats = stats

    def collect(self) -> Any:
        s = self.stats
        snap = s.snapshot
        conns = GaugeMetricFamily("jetport_connections", "Open connections by door",
                                  labels=["door"])
        for door in sorted({"nats", "http", *snap.get("connections", {})}):
            conns.add_metric([door], snap.get("connections", {}).get(door, 0))
        yield conns
        names = (("messages_in", "Messages received from clients"),
                 ("messages_out", "Messages delivered to clients"),
                 ("bytes_in", "Payload bytes received from clients"),
                 ("bytes_out", "Payload bytes delivered to clients"))
        families = [CounterMetricFamily(f"jetport_{n}", h, labels=["door", "account"])
                    for n, h in names]
        for (door, account), values in sorted(s.totals.items()):
            for fam, value in zip(families, values, strict=True):
                fam.add_metric([door, account], value)
        yield from families
        slow = CounterMetricFamily("jetport_slow_consumers", "Slow consumers detected")
        slow.add_metric([], snap.get("slow", 0))
        yield slow
        auth = CounterMetricFamily("jetport_auth_failures", "Failed authentications",
                                   labels=["door"])
        auth.add_metric(["http"], s.auth_failures)
        yield auth
        msgs = GaugeMetricFamily("jetport_stream_messages", "Messages stored in a stream",
                                 labels=["account", "stream"])
        nbytes = GaugeMetricFamily("jetport_stream_bytes", "Bytes stored in a stream",
                                   labels=["account", "stream"])
        for acc, name, n, b in snap.get("streams", []):
            msgs.add_metric([acc, name], n)
            nbytes.add_metric([acc, name], b)
        yield msgs
        yield nbytes
        pending = GaugeMetricFamily("jetport_consumer_pending",
                                    "Messages a consumer has yet to deliver",
                                    labels=["account", "stream", "consumer"])
        ack = GaugeMetricFamily("jetport_consumer_ack_pending",
                                "Messages delivered and not yet acknowledged",
                                labels=["account", "stream", "consumer"])
        for acc, stream, name, p, a in snap.get("consumers", []):
            pending.add_metric([acc, stream, name], p)
            ack.add_metric([acc, stream, name], a)
        yield pending
        yield ack
