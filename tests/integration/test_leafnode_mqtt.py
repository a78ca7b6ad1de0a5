"""MQTT on two leaf nodes that keep their MQTT state in the cluster's JetStream
(``mqtt { js_domain: hub, stream_replicas: 3 }``): a persistent session made on leaf A
resumes on leaf B after A is killed with kill -9, a client id connecting on B takes the
session over from A, and retained messages are the same on both.  The same paho code
runs with Jetport leaves and with nats-server leaves (whose MQTT has these keys too).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import queue

import nats
import paho.mqtt.client as paho
import pytest
from cluster import HubCluster, cluster_fixture, until_mqtt_delivered
from mqtt_clients import V5, Paho, rc_value, thread
from paho.mqtt.enums import CallbackAPIVersion
from servers import ServerProcess

pytestmark = pytest.mark.timeout(120)

cluster = cluster_fixture(name="cluster")
_names = itertools.count(1)
MQTT = "mqtt { port: -1, js_domain: hub, stream_replicas: 3 }"


def paho_v5(port: int, cid: str, acks: dict[int, int]) -> paho.Client:
    """A connected MQTT 5 paho client that records each PUBACK's reason code by mid."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=V5,
                         reconnect_on_failure=False)
    client.max_inflight_messages_set(1000)
    client.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(
        mid, int(getattr(reason, "value", reason)))
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client


def leaves(cluster: HubCluster, target: str) -> tuple[ServerProcess, ServerProcess]:
    n = next(_names)
    # nats-server's MQTT needs JetStream on the leaf itself (a domain of its own);
    # Jetport's needs none: both keep the MQTT streams in the hub's domain.
    kw = {"jetstream": target == "nats-server"}
    a = cluster.start_leaf(f"mqa{n}-{target}", domain=f"a{n}", target=target, extra=MQTT,
                           **kw)
    b = cluster.start_leaf(f"mqb{n}-{target}", domain=f"b{n}", target=target, extra=MQTT,
                           **kw)
    return a, b


async def until_subscribed(publisher: Paho, listener: Paho, topic: str,
                           timeout: float = 15.0) -> None:
    """Publish probes on ``topic`` until the listener gets one (its hub's interest
    reaches the publisher's through the links), then drop the probes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await thread(publisher.publish, topic, b"probe", 0)
        try:
            await thread(listener.messages.get, True, 0.2)
            break
        except queue.Empty:
            if loop.time() > deadline:
                raise
    await asyncio.sleep(0.3)
    while not listener.messages.empty():
        listener.messages.get()


async def until_session_saved(cluster: HubCluster, client_id: str) -> None:
    """Until the cluster's ``$MQTT_sess`` holds the session of ``client_id`` with a
    subscription: the record may reach the cluster after the SUBACK (each server writes
    the subscriptions in its own form)."""
    nc = await nats.connect(cluster.urls[0])
    try:
        js = nc.jetstream()
        deadline = asyncio.get_running_loop().time() + 15.0
        while True:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                state = (await js.stream_info("$MQTT_sess")).state
                for seq in range(state.first_seq, state.last_seq + 1):
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        record = json.loads((await js.get_msg("$MQTT_sess", seq)).data or b"{}")
                        if record.get("id") == client_id and record.get("subs"):
                            return
            assert asyncio.get_running_loop().time() < deadline, "no session record"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


@pytest.mark.differential
async def test_a_session_resumes_on_another_leaf_after_kill_9(cluster: HubCluster,
                                                              target: str) -> None:
    a, b = leaves(cluster, target)
    dev = Paho(a.mqtt_port, f"dev-{target}", clean=False)
    sender = Paho(b.mqtt_port, f"sender-{target}")
    watcher = Paho(b.mqtt_port, f"watch-{target}")
    try:
        assert (await thread(dev.connect)) == (False, 0)
        assert await thread(dev.subscribe, ("alerts/#", 1)) == [1]
        await thread(sender.connect)
        await thread(watcher.connect)
        await thread(watcher.subscribe, ("alerts/#", 0))
        await until_subscribed(sender, dev, "alerts/probe")
        await thread(dev.close)
        await thread(sender.publish, "alerts/1", b"queued while offline", 1)
        await thread(watcher.take, 1)  # delivered around the system by now
        await asyncio.sleep(2.0)  # the offline session's queue write reaches the cluster
        a.kill()

        again = Paho(b.mqtt_port, f"dev-{target}", clean=False)
        try:
            present, rc = await thread(again.connect)
            assert (present, rc_value(rc)) == (True, 0)
            got = await thread(again.take, 1, 10.0)
            assert [(m.topic, m.payload, m.qos) for m in got] == [
                ("alerts/1", b"queued while offline", 1)]
            await thread(sender.publish, "alerts/2", b"live", 1)
            got = await thread(again.take, 1, 10.0)
            assert (got[0].topic, got[0].payload) == ("alerts/2", b"live")
        finally:
            again.close()
    finally:
        for client in (sender, watcher):
            client.close()
        a.stop()
        b.stop()


@pytest.mark.differential
async def test_a_client_id_on_leaf_b_takes_the_session_over_from_leaf_a(
        cluster: HubCluster, target: str) -> None:
    a, b = leaves(cluster, target)
    first = Paho(a.mqtt_port, f"twin-{target}", clean=False)
    second = Paho(b.mqtt_port, f"twin-{target}", clean=False)
    try:
        await thread(first.connect)
        assert await thread(first.subscribe, ("cmd/#", 1)) == [1]
        await until_session_saved(cluster, f"twin-{target}")
        present, rc = await thread(second.connect)
        assert rc_value(rc) == 0 and present
        kind, _, _ = await thread(lambda: first.event("disconnect", timeout=10.0))
        assert kind == "disconnect"
        nc = await nats.connect(cluster.urls[0])
        try:
            # the subscription moved with the session: cmd/x reaches the client on B
            msg = await until_mqtt_delivered(nc, "cmd.x", b"go", second)
            assert (msg.topic, msg.payload) == ("cmd/x", b"go")
            assert first.messages.empty()
        finally:
            await nc.close()
    finally:
        second.close()
        a.stop()
        b.stop()


@pytest.mark.differential
async def test_retained_messages_are_the_same_on_every_leaf(cluster: HubCluster,
                                                            target: str) -> None:
    a, b = leaves(cluster, target)
    pub = Paho(a.mqtt_port, f"rpub-{target}")
    try:
        await thread(pub.connect)
        await thread(pub.publish, "status/door", b"open", 1, True)
        got: list[tuple[str, bytes, bool]] = []
        for _ in range(40):  # the write reaches B through the cluster
            sub = Paho(b.mqtt_port, f"rsub-{target}")
            await thread(sub.connect)
            await thread(sub.subscribe, ("status/#", 1))
            try:
                m = await thread(sub.messages.get, True, 0.3)
                got = [(m.topic, m.payload, m.retain)]
            except queue.Empty:
                pass
            sub.close()
            if got:
                break
        assert got == [("status/door", b"open", True)]
        await thread(pub.publish, "status/door", b"", 1, True)  # cleared on A
        for _ in range(40):
            sub = Paho(b.mqtt_port, f"rsub-{target}")
            await thread(sub.connect)
            await thread(sub.subscribe, ("status/#", 1))
            cleared = sub.messages.empty() and await asyncio.sleep(0.3) is None and \
                sub.messages.empty()
            sub.close()
            if cleared:
                break
        assert cleared
    finally:
        pub.close()
        a.stop()
        b.stop()


async def test_a_qos1_puback_through_a_leaf_means_the_cluster_stored_it(
        cluster: HubCluster) -> None:
    """MQTT 5 QoS 1 publishes through a Jetport leaf into an R3 stream of the cluster
    while a cluster node is killed with kill -9: every message acknowledged with
    success is in the stream afterwards (a publish the cluster could not store, such as
    one made while the leaf's link moves to another node, gets a failure reason code,
    never a success)."""
    nc = await nats.connect(cluster.urls)
    js = nc.jetstream()
    await js.add_stream(name="READINGS", subjects=["readings.>"], num_replicas=3)
    leaf = cluster.start_leaf(f"mqr{next(_names)}", domain=None, jetstream=False,
                              target="jetport", extra=MQTT)
    acks: dict[int, int] = {}
    mids: dict[int, int] = {}
    client = paho_v5(leaf.mqtt_port, "meter", acks)
    victim = next(n for n in cluster.names if n != cluster.meta_leader())
    try:
        loop = asyncio.get_running_loop()
        killed_at = 0.0
        i = 0
        # 2 s before the kill, then until 15 s after it: a new stream leader is elected
        # meanwhile, and the leaf's link moves if it was on the killed node
        while not killed_at or loop.time() - killed_at < 15:
            if i == 100:
                cluster.kill(victim)
                killed_at = loop.time()
            info = client.publish(f"readings/{i}", b"%d" % i, qos=1)
            mids[info.mid] = i
            i += 1
            await asyncio.sleep(0.02)
        deadline = asyncio.get_running_loop().time() + 60
        while len(acks) < len(mids) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(cluster.restart, victim, 60)
        stored = set()
        info = await js.stream_info("READINGS")
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            stored.add(int((await js.get_msg("READINGS", seq)).data))
        acked = {mids[mid] for mid, reason in acks.items() if reason < 0x80}
        reasons = sorted(set(acks.values()))
        after = {n for n in acked if n >= 100}
        assert len(acked) >= 150 and after, (
            f"{len(acked)} of {i} acknowledged with success, {len(after)} after the kill "
            f"(reason codes {reasons}, {victim} killed)")
        assert acked <= stored, f"acknowledged but not stored: {sorted(acked - stored)}"
    finally:
        client.loop_stop()
        client.disconnect()
        await js.delete_stream("READINGS")
        await nc.close()
        leaf.stop()
