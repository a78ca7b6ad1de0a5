"""A leaf node while its cluster fails: every node down and back, and a rolling restart,
with the same client code against a Jetport leaf and a nats-server leaf.

These tests stop cluster nodes, so they have a 3-node cluster of their own (domain
``hub``) rather than the one ``test_leafnode.py`` shares.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request

import httpx
import nats
import nats.errors
import nats.js.errors
import pytest
from cluster import (
    HubCluster,
    cluster_fixture,
    drain,
    leaf_connected,
    monitor,
    until_delivered,
    wait_until,
)
from mqtt_clients import Paho, thread
from servers import ServerProcess

pytestmark = pytest.mark.timeout(180)

fragile = cluster_fixture(name="fragile")
_names = itertools.count(1)


def revive(cluster: HubCluster) -> None:
    """Start the nodes a test stopped, and wait for the cluster."""
    stopped = [n for n in cluster.nodes if n.proc is None or n.proc.poll() is not None]
    for node in stopped:
        node.restart(timeout=30)
    if stopped:
        cluster.wait_ready(60)


def health(leaf: ServerProcess) -> tuple[int, dict[str, str]]:
    """/healthz's status code and body (nats-server answers 503 with a JSON body too)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{leaf.http_port}/healthz",
                                    timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def publish_until_stored(js: nats.js.JetStreamContext, subject: str, data: bytes,
                               timeout: float = 30.0) -> int:
    """Publish until the cluster acknowledges (a stream needs its leader back after
    nodes restart); the acknowledged sequence."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await js.publish(subject, data, timeout=2)).seq
        except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError,
                nats.js.errors.ServiceUnavailableError):
            # (the stream's interest reaches the leaf a moment after it is created)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


@pytest.mark.differential
async def test_a_cluster_fully_down_then_back(fragile: HubCluster, target: str) -> None:
    """All three nodes killed: the leaf's own clients keep talking, requests for the
    cluster's JetStream fail at once with no responders, and a Jetport leaf's /healthz
    says the link is down; with the nodes back, the link, the stream and its messages
    are back."""
    mqtt = "mqtt { port: -1, js_domain: hub }" if target == "jetport" else ""
    leaf = fragile.start_leaf(f"down{next(_names)}-{target}", domain=None, target=target,
                              extra=mqtt)
    nc = await nats.connect(leaf.url, max_reconnect_attempts=-1)
    other = await nats.connect(leaf.url)
    js = nc.jetstream(domain="hub")
    stream = f"DOWN_{target.replace('-', '_')}"
    try:
        await js.add_stream(name=stream, subjects=[f"down.{target}.>"], num_replicas=3)
        first = await publish_until_stored(js, f"down.{target}.1", b"one")
        for name in fragile.names:
            fragile.kill(name)
        wait_until(lambda: not leaf_connected(leaf), 15, "the leaf without its link")

        local = await nc.subscribe("local.talk")
        await nc.flush()
        await other.publish("local.talk", b"still here")
        assert (await local.next_msg(timeout=5)).data == b"still here"
        started = time.monotonic()
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await js.publish(f"down.{target}.2", b"lost", timeout=5)
        with pytest.raises(nats.js.errors.ServiceUnavailableError):  # no responders
            await js.stream_info(stream)
        assert time.monotonic() - started < 2.0  # failed fast, not by timing out
        if target == "jetport":
            status, body = health(leaf)
            assert status == 503 and body["status"] == "unavailable"
            assert 'leafnode remote for account "$G" not connected' in body["error"]
            assert monitor(leaf, "/leafz").get("leafs") == []
            await doors_without_the_cluster(leaf, target)

        revive(fragile)
        wait_until(lambda: leaf_connected(leaf), 30, "the leaf linked again")
        third = await publish_until_stored(js, f"down.{target}.3", b"three")
        assert third == first + 1  # nothing was stored while the cluster was away
        info = await js.stream_info(stream)
        assert info.state.messages == 2
        got = await js.get_msg(stream, first)
        assert got.data == b"one"
        if target == "jetport":
            assert health(leaf) == (200, {"status": "ok"})
        await nc.publish("local.talk", b"and now")
        assert (await local.next_msg(timeout=5)).data == b"and now"
    finally:
        await nc.close()
        await other.close()
        leaf.stop()
        revive(fragile)


async def doors_without_the_cluster(leaf: ServerProcess, target: str) -> None:
    """The other doors of a leaf cut off from its cluster: MQTT clean sessions keep
    talking, a persistent session (kept in the cluster) is refused as "server
    unavailable" at once, and an HTTP publish for the cluster's domain is a 503."""
    device = Paho(leaf.mqtt_port, f"cut-off-{target}")
    started = time.monotonic()
    assert (await thread(device.connect))[1] == 0
    try:
        await thread(device.subscribe, ("here/#", 0))
        await thread(device.publish, "here/now", b"local", 0)
        assert (await thread(device.take, 1))[0].payload == b"local"
    finally:
        device.close()
    persistent = Paho(leaf.mqtt_port, f"kept-{target}", clean=False)
    present, rc = await thread(persistent.connect)
    assert str(rc) == "Server unavailable" and not present
    assert time.monotonic() - started < 3.0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{leaf.http_port}") as http:
        r = await http.post("/v1/publish/down.x", params={"domain": "hub"}, content=b"x")
        assert r.status_code == 503, r.text


@pytest.mark.differential
async def test_a_rolling_restart_of_the_cluster_keeps_leaf_clients_working(
        fragile: HubCluster, target: str) -> None:
    """Each node restarted in turn while a client of the leaf publishes into an R3
    stream and a client of the cluster talks to a subscriber on the leaf: the leaf's
    clients never lose their connection, every acknowledged message is in the stream,
    and messages cross the link again after each restart."""
    leaf = fragile.start_leaf(f"roll{next(_names)}-{target}", domain=None, target=target)
    disconnects = 0

    async def disconnected() -> None:
        nonlocal disconnects
        disconnects += 1

    nc = await nats.connect(leaf.url, disconnected_cb=disconnected)
    on_cluster = await nats.connect(fragile.urls, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.2)
    js = nc.jetstream(domain="hub")
    stream = f"ROLL_{target.replace('-', '_')}"
    acked: set[int] = set()
    stop = asyncio.Event()

    async def producer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                ack = await js.publish(f"roll.{target}.x", b"%d" % n, timeout=2)
                acked.add(ack.seq)
            except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError,
                    nats.js.errors.ServiceUnavailableError, nats.js.errors.APIError):
                await asyncio.sleep(0.1)

    try:
        await js.add_stream(name=stream, subjects=[f"roll.{target}.>"], num_replicas=3)
        sub = await nc.subscribe(f"to.leaf.{target}")
        await until_delivered(on_cluster, f"to.leaf.{target}", sub, timeout=20)
        task = asyncio.create_task(producer())
        for node in fragile.nodes:
            await asyncio.to_thread(node.restart, timeout=30)
            await asyncio.to_thread(fragile.wait_ready, 60)
            await asyncio.to_thread(wait_until, lambda: leaf_connected(leaf), 30,
                                    "the leaf linked")
            await until_delivered(on_cluster, f"to.leaf.{target}", sub, timeout=20)
        await asyncio.sleep(1)
        stop.set()
        await task
        await drain(sub, 0.2)
        assert disconnects == 0
        assert len(acked) > 10
        info = await js.stream_info(stream)
        stored = {(await js.get_msg(stream, seq)).seq for seq in sorted(acked)}
        assert stored == acked and info.state.messages >= len(acked)
    finally:
        stop.set()
        await nc.close()
        await on_cluster.close()
        leaf.stop()
