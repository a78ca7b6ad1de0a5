"""``/metrics``: the hub in Prometheus' text format.

Traffic of the NATS, WebSocket and MQTT doors is, per door and account, what the open
connections counted plus what the hub kept of the closed ones, so nothing a connection
did is lost when it closes.  The HTTP door counts its own traffic as it happens.  Auth
failures are the authenticator's per connection type.  Stream and consumer gauges are
read from JetStream at scrape time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from jetport.api.session import DoorClient
    from jetport.core.client import Client
    from jetport.core.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DOORS = {"STANDARD": "nats", "WEBSOCKET": "websocket", "MQTT": "mqtt", "MQTT_WS": "mqtt",
          "HTTP": "http", "LEAFNODE": "leafnode"}
#: Doors listed even before anything happened on them.
DOORS = ("nats", "websocket", "mqtt", "http")


def door_name(conn_type: str) -> str:
    return _DOORS.get(conn_type, conn_type.lower())


def door_of(client: Client) -> str:
    return door_name(client.conn_type)


class DoorStats:
    """What the HTTP door counts itself; per-door counters are assembled at each scrape."""

    def __init__(self, auth: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_seconds = Histogram(
            "jetport_storage_commit_seconds",
            "Time from publishing a message some stream stores to its PubAck",
            ["door"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
        ).labels("http")
        self.sse_active = 0
        self.requests = 0
        #: ("http", account) -> [in_msgs, out_msgs, in_bytes, out_bytes]
        self.totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        #: Failures of authenticators that reloads replaced, and the one seen last (each
        #: reload makes a new one; the one current at the last scrape carries over).
        self._auth_base: dict[str, int] = defaultdict(int)
        self._auth: Any = auth
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

    def traffic(self, hub: Hub) -> tuple[dict[str, int], dict[tuple[str, str], list[int]]]:
        """Open connections per door, and cumulative traffic per (door, account)."""
        conns: dict[str, int] = defaultdict(int)
        traffic: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (conn_type, account), gone in list(hub.gone_by.items()):
            total = traffic[(door_name(conn_type), account)]
            for i in range(4):
                total[i] += gone[i]
        for client in list(hub.clients.values()):
            door = door_of(client)
            total = traffic[(door, client.account.name)]
            total[0] += client.in_msgs
            total[1] += client.out_msgs
            total[2] += client.in_bytes
            total[3] += client.out_bytes
            conns[door] += 1
        for key, values in self.totals.items():
            total = traffic[key]
            for i in range(4):
                total[i] += values[i]
        conns["http"] += self.sse_active
        return conns, traffic

    def auth_failures(self, hub: Hub) -> dict[str, int]:
        """Failures per door since start, across authenticators replaced by reloads."""
        auth = hub.auth
        if self._auth is not None and self._auth is not auth:
            for conn_type, n in self._auth.failures.items():
                self._auth_base[conn_type] += n
        self._auth = auth
        out: dict[str, int] = dict.fromkeys(DOORS, 0)
        for source in (self._auth_base, auth.failures):
            for conn_type, n in list(source.items()):
                door = door_name(conn_type)
                out[door] = out.get(door, 0) + n
        return out

    async def scrape(self, hub: Hub) -> bytes:
        conns, traffic = self.traffic(hub)
        snap: dict[str, Any] = {"connections": conns, "traffic": traffic, "streams": [],
                                "consumers": [], "auth": self.auth_failures(hub),
                                "slow": hub.slow_consumers}
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
        for door in sorted({*DOORS, *snap.get("connections", {})}):
            conns.add_metric([door], snap.get("connections", {}).get(door, 0))
        yield conns
        names = (("messages_in", "Messages received from clients"),
                 ("messages_out", "Messages delivered to clients"),
                 ("bytes_in", "Payload bytes received from clients"),
                 ("bytes_out", "Payload bytes delivered to clients"))
        families = [CounterMetricFamily(f"jetport_{n}", h, labels=["door", "account"])
                    for n, h in names]
        for (door, account), values in sorted(snap.get("traffic", {}).items()):
            for fam, value in zip(families, values, strict=True):
                fam.add_metric([door, account], value)
        yield from families
        slow = CounterMetricFamily("jetport_slow_consumers", "Slow consumers detected")
        slow.add_metric([], snap.get("slow", 0))
        yield slow
        auth = CounterMetricFamily("jetport_auth_failures", "Failed authentications",
                                   labels=["door"])
        for door, n in sorted(snap.get("auth", {}).items()):
            auth.add_metric([door], n)
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
