"""MQTT on two leaf nodes that keep their MQTT state in the cluster's JetStream
(``mqtt { js_domain: hub, stream_replicas: 3 }``): a persistent session made on leaf A
resumes on leaf B after A is killed with kill -9, a client id connecting on B takes the
session over from A, and retained messages are the same on both.  The same paho code
runs with Jetport leaves and with nats-server leaves (whose MQTT has these keys too).
"""

from __future__ import annotations

import asyncio
import itertools
import queue

import nats
import pytest
from cluster import HubCluster, cluster_fixture
from mqtt_clients import Paho, rc_value, thread
from servers import ServerProcess

pytestmark = pytest.mark.timeout(120)

cluster = cluster_fixture(name="cluster")
_names = itertools.count(1)
MQTT = "mqtt { port: -1, js_domain: hub, stream_replicas: 3 }"


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
        await asyncio.sleep(1.0)  # the offline session's queue write reaches the cluster
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
        await asyncio.sleep(0.5)
        present, rc = await thread(second.connect)
        assert rc_value(rc) == 0 and present
        kind, _, _ = await thread(lambda: first.event("disconnect", timeout=10.0))
        assert kind == "disconnect"
        nc = await nats.connect(cluster.urls[0])
        try:
            # the subscription moved with the session: cmd/x reaches the client on B
            for _ in range(60):
                await nc.publish("cmd.x", b"go")
                await nc.flush()
                try:
                    msg = await thread(second.messages.get, True, 0.25)
                    break
                except queue.Empty:
                    pass
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
