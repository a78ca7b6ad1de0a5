"""The reference topology works: a 3-node nats-server JetStream cluster (domain ``hub``)
and nats-server leaf nodes dialling it, as tests/cluster.py starts them."""

from __future__ import annotations

import asyncio
import time

import nats
import nats.errors
import nats.js.errors
from cluster import HubCluster, cluster_fixture, monitor
from servers import Inbox

hub = cluster_fixture()

_NOT_YET = (nats.errors.TimeoutError, nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError, nats.js.errors.ServiceUnavailableError)


async def connect(url: str) -> nats.NATS:
    return await nats.connect(url, allow_reconnect=False, connect_timeout=2)


async def until_received(pub: nats.NATS, subject: str, inbox: Inbox,
                         timeout: float = 5.0) -> bytes:
    """Publish to ``subject`` until ``inbox`` gets it: interest crosses the leafnode link
    (LS+) a moment after the subscription."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        await pub.publish(subject, b"probe-%d" % n)
        await pub.flush()
        try:
            await inbox.wait_for(1, 0.2)
            return inbox.msgs[0].data
        except TimeoutError:
            continue
    raise TimeoutError(f"nothing arrived on {subject}")


def test_three_nodes_form_one_cluster_with_one_meta_leader(hub: HubCluster) -> None:
    leaders = set()
    for name, node in zip(hub.names, hub.nodes, strict=True):
        jsz = monitor(node, "/jsz")
        assert jsz["config"]["domain"] == "hub"
        assert jsz["meta_cluster"]["cluster_size"] == 3
        leaders.add(jsz["meta_cluster"]["leader"])
        routed = {r["remote_name"] for r in monitor(node, "/routez")["routes"]}
        assert routed == set(hub.names) - {name}
        assert monitor(node, "/varz")["cluster"]["name"] == "HUB"
    assert len(leaders) == 1 and leaders <= set(hub.names)


async def test_r3_stream_created_through_node1_is_readable_through_node3(hub: HubCluster) -> None:
    nc1, nc3 = await connect(hub.urls[0]), await connect(hub.urls[2])
    try:
        js1 = nc1.jetstream()
        info = await js1.add_stream(name="ORDERS", subjects=["orders.>"], num_replicas=3)
        assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
        for i in range(3):
            ack = await publish(js1, "orders.new", b"order-%d" % i)
            assert (ack.stream, ack.domain, ack.seq) == ("ORDERS", "hub", i + 1)
        js3 = nc3.jetstream()
        assert (await js3.stream_info("ORDERS")).state.messages == 3
        assert (await js3.get_msg("ORDERS", 2)).data == b"order-1"
    finally:
        await nc1.close()
        await nc3.close()


async def test_leaf_passes_core_pub_sub_both_ways(hub: HubCluster) -> None:
    leaf = hub.start_leaf("leaf-core", jetstream=False)
    nc_leaf, nc_hub = await connect(leaf.url), await connect(hub.urls[1])
    try:
        down, up = Inbox(), Inbox()
        await nc_leaf.subscribe("down.>", cb=down.cb)
        await nc_hub.subscribe("up.>", cb=up.cb)
        await nc_leaf.flush()
        await nc_hub.flush()
        assert (await until_received(nc_hub, "down.x", down)).startswith(b"probe-")
        assert (await until_received(nc_leaf, "up.x", up)).startswith(b"probe-")

        async def echo(msg) -> None:
            await msg.respond(b"echo:" + msg.data)

        await nc_hub.subscribe("svc.hub", cb=echo)
        await nc_leaf.subscribe("svc.leaf", cb=echo)
        await nc_hub.flush()
        await nc_leaf.flush()
        assert (await _request(nc_leaf, "svc.hub", b"hi")) == b"echo:hi"
        assert (await _request(nc_hub, "svc.leaf", b"ho")) == b"echo:ho"
    finally:
        await nc_leaf.close()
        await nc_hub.close()


async def _request(nc: nats.NATS, subject: str, data: bytes, timeout: float = 5.0) -> bytes:
    """A request, retried while the responder's interest is still crossing the link."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await nc.request(subject, data, timeout=0.5)).data
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_leaf_reaches_the_cluster_jetstream_through_its_domain(hub: HubCluster) -> None:
    leaf = hub.start_leaf("leaf-js", domain="leaf1")
    bare = hub.start_leaf("leaf-nojs", jetstream=False)
    nc_leaf, nc_bare, nc3 = (await connect(leaf.url), await connect(bare.url),
                             await connect(hub.urls[2]))
    try:
        assert (await nc_leaf.jetstream().account_info()).domain == "leaf1"
        js_hub = nc_leaf.jetstream(domain="hub")
        assert (await _retry(js_hub.account_info)).domain == "hub"
        await js_hub.add_stream(name="FROMLEAF", subjects=["fromleaf.>"], num_replicas=3)
        ack = await publish(js_hub, "fromleaf.a", b"stored")
        assert (ack.stream, ack.domain, ack.seq) == ("FROMLEAF", "hub", 1)
        assert (await nc3.jetstream().get_msg("FROMLEAF", 1)).data == b"stored"
        # a leaf without JetStream reaches it the same way
        info = await _retry(lambda: nc_bare.jetstream(domain="hub").stream_info("FROMLEAF"))
        assert info.state.messages == 1
    finally:
        for nc in (nc_leaf, nc_bare, nc3):
            await nc.close()


async def publish(js, subject: str, data: bytes, timeout: float = 5.0):
    """A JetStream publish, retried until acknowledged: just after a stream is created
    (or fails over) its leader's interest may not have reached every node yet.  The
    message id makes a retry of a publish that was stored a duplicate, not a copy."""
    return await _retry(lambda: js.publish(subject, data, timeout=1,
                                           headers={"Nats-Msg-Id": data.decode()}),
                        timeout)


async def _retry(call, timeout: float = 5.0):
    """``await call()`` until the JetStream API answers (interest crossing the link)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except _NOT_YET:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_killing_a_node_keeps_the_r3_stream_available(hub: HubCluster) -> None:
    """Runs last in this module: it kills the stream's leader (kill -9), publishes and
    reads through the other two nodes, then restarts it."""
    nc1 = await connect(hub.urls[0])
    info = await nc1.jetstream().add_stream(name="SURVIVE", subjects=["survive.>"],
                                            num_replicas=3)
    await nc1.close()
    victim = info.cluster.leader
    home, other = (n for n in hub.names if n != victim)
    nc = await connect(hub.urls[hub.names.index(home)])
    js = nc.jetstream()
    try:
        await publish(js, "survive.a", b"before")
        hub.kill(victim)
        ack = await publish(js, "survive.a", b"after", timeout=20)
        assert (ack.stream, ack.seq) == ("SURVIVE", 2)
        nc_other = await connect(hub.urls[hub.names.index(other)])
        try:
            got = [(await nc_other.jetstream().get_msg("SURVIVE", s)).data for s in (1, 2)]
            assert got == [b"before", b"after"]
        finally:
            await nc_other.close()
    finally:
        await nc.close()
        hub.restart(victim)
    routed = {r["remote_name"] for r in monitor(hub.node(home), "/routez")["routes"]}
    assert victim in routed
