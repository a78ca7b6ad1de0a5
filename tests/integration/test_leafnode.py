"""A leaf node in front of a real 3-node nats-server JetStream cluster: the same client
code against a Jetport leaf and a nats-server leaf (``@pytest.mark.differential``).

The cluster (domain ``hub``) is shared by the module; every test starts its own leaf,
with JetStream and no domain of its own, dialling all three nodes' leafnode ports.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import httpx
import nats
import pytest
from certs import make_ca
from cluster import (
    HubCluster,
    cluster_fixture,
    drain,
    links_up,
    monitor,
    until_delivered,
    until_mqtt_delivered,
    wait_until,
)
from mqtt_clients import Paho, thread
from natsjwt import Keys
from servers import ServerProcess

pytestmark = pytest.mark.timeout(90)

cluster = cluster_fixture(name="cluster")
_names = itertools.count(1)


@pytest.fixture
def leaf(cluster: HubCluster, target: str) -> Iterator[ServerProcess]:
    server = cluster.start_leaf(f"leaf{next(_names)}-{target}", domain=None, target=target)
    yield server
    server.stop()


def leaf_with(cluster: HubCluster, target: str, remote_extra: str) -> ServerProcess:
    return cluster.start_leaf(f"leaf{next(_names)}-{target}", domain=None, target=target,
                              remote_extra=remote_extra)


@pytest.mark.differential
async def test_messages_cross_the_link_both_ways_exactly_once(
        cluster: HubCluster, leaf: ServerProcess) -> None:
    on_leaf = await nats.connect(leaf.url)
    on_cluster = await nats.connect(cluster.urls[1])
    try:
        down = await on_leaf.subscribe("down.>")
        up = await on_cluster.subscribe("up.*")
        await until_delivered(on_cluster, "down.probe", down)
        await until_delivered(on_leaf, "up.probe", up)
        for i in range(20):
            await on_cluster.publish(f"down.{i}", b"d%d" % i)
            await on_leaf.publish(f"up.{i}", b"u%d" % i)
        await on_cluster.flush()
        await on_leaf.flush()
        assert await drain(down) == [b"d%d" % i for i in range(20)]
        assert await drain(up) == [b"u%d" % i for i in range(20)]
    finally:
        await on_leaf.close()
        await on_cluster.close()


@pytest.mark.differential
async def test_requests_and_headers_cross_the_link(cluster: HubCluster,
                                                   leaf: ServerProcess) -> None:
    on_leaf = await nats.connect(leaf.url)
    on_cluster = await nats.connect(cluster.urls[2])
    try:
        async def echo(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"re:" + msg.data)

        await on_leaf.subscribe("svc.leaf", cb=echo)
        await on_cluster.subscribe("svc.cluster", cb=echo)
        probe = await on_cluster.subscribe("svc.probe")
        await on_leaf.subscribe("svc.probe")
        await until_delivered(on_leaf, "svc.probe", probe)
        reply = await on_cluster.request("svc.leaf", b"hi", timeout=5)
        assert reply.data == b"re:hi"
        reply = await on_leaf.request("svc.cluster", b"yo", timeout=5)
        assert reply.data == b"re:yo"
        watch = await on_cluster.subscribe("hdr.x")
        await until_delivered(on_leaf, "hdr.x", watch)
        await on_leaf.publish("hdr.x", b"body", headers={"A": "1", "B-b": "two words"})
        msg = await watch.next_msg(timeout=5)
        assert (msg.data, msg.headers) == (b"body", {"A": "1", "B-b": "two words"})
        with pytest.raises(nats.errors.NoRespondersError):
            await on_leaf.request("nobody.here", b"?", timeout=5)
    finally:
        await on_leaf.close()
        await on_cluster.close()


@pytest.mark.differential
async def test_a_queue_group_gets_each_message_once_across_the_system(
        cluster: HubCluster, leaf: ServerProcess) -> None:
    on_leaf = await nats.connect(leaf.url)
    on_cluster = await nats.connect(cluster.urls[0])
    try:
        leaf_members = [await on_leaf.subscribe("work", queue="q") for _ in range(2)]
        witness = await on_cluster.subscribe("work.ready")
        await on_leaf.subscribe("work.ready")
        await until_delivered(on_leaf, "work.ready", witness)
        # Published on the leaf with no cluster member: the leaf's own members take all.
        for i in range(50):
            await on_leaf.publish("work", b"%d" % i)
        await on_leaf.flush()
        got = [m for s in leaf_members for m in await drain(s)]
        assert sorted(got) == sorted(b"%d" % i for i in range(50))
        # Published in the cluster, which has no member: each message crosses once.
        for i in range(50, 100):
            await on_cluster.publish("work", b"%d" % i)
        await on_cluster.flush()
        got = [m for s in leaf_members for m in await drain(s)]
        assert sorted(got) == sorted(b"%d" % i for i in range(50, 100))
    finally:
        await on_leaf.close()
        await on_cluster.close()


@pytest.mark.differential
async def test_deny_imports_and_exports_hold(cluster: HubCluster, target: str) -> None:
    leaf = leaf_with(cluster, target,
                     'deny_imports: ["secret.in.>"], deny_exports: ["secret.out.>"]')
    on_leaf = await nats.connect(leaf.url)
    on_cluster = await nats.connect(cluster.urls[0])
    try:
        inbound = await on_leaf.subscribe(">")
        outbound = await on_cluster.subscribe("secret.out.>")
        open_out = await on_cluster.subscribe("open.out")
        await until_delivered(on_cluster, "open.in", inbound)
        await until_delivered(on_leaf, "open.out", open_out)
        await on_cluster.publish("secret.in.x", b"denied in")
        await on_cluster.publish("open.in", b"open in")
        await on_leaf.publish("secret.out.x", b"denied out")
        await on_cluster.flush()
        await on_leaf.flush()
        got = [m for m in await drain(inbound) if m != b"probe"]
        assert sorted(got) == [b"denied out", b"open in"]  # the first from the leaf itself
        assert await drain(outbound) == []
    finally:
        await on_leaf.close()
        await on_cluster.close()
        leaf.stop()


@pytest.mark.differential
async def test_the_clusters_jetstream_through_its_domain(cluster: HubCluster,
                                                         leaf: ServerProcess,
                                                         target: str) -> None:
    on_leaf = await nats.connect(leaf.url)
    on_cluster = await nats.connect(cluster.urls[0])
    name = f"LEAFJS_{target.replace('-', '_').upper()}"
    try:
        js = on_leaf.jetstream(domain="hub")
        for _ in range(50):  # the hub's JetStream interest reaches the leaf shortly
            try:
                await js.account_info()
                break
            except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
                await asyncio.sleep(0.2)
        info = await js.add_stream(name=name, subjects=[f"{name.lower()}.>"],
                                   num_replicas=3)
        assert info.config.num_replicas == 3
        for _ in range(50):  # the stream's subjects reach the leaf as interest shortly
            try:
                first = await js.publish(f"{name.lower()}.0", b"m0")
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.2)
        acks = [first] + [await js.publish(f"{name.lower()}.{i}", b"m%d" % i)
                          for i in range(1, 10)]
        assert [a.seq for a in acks] == list(range(1, 11))
        assert {a.domain for a in acks} == {"hub"}
        state = (await on_cluster.jetstream().stream_info(name)).state
        assert state.messages == 10
        await on_cluster.jetstream().delete_stream(name)
    finally:
        await on_leaf.close()
        await on_cluster.close()


@pytest.mark.differential
async def test_two_leaves_talk_through_the_cluster(cluster: HubCluster, target: str) -> None:
    a = cluster.start_leaf(f"leafa{next(_names)}-{target}", domain=None, target=target)
    b = cluster.start_leaf(f"leafb{next(_names)}-{target}", domain=None, target=target)
    on_a = await nats.connect(a.url)
    on_b = await nats.connect(b.url)
    try:
        sub = await on_b.subscribe("east.west")
        await until_delivered(on_a, "east.west", sub)
        for i in range(20):
            await on_a.publish("east.west", b"%d" % i)
        await on_a.flush()
        assert await drain(sub) == [b"%d" % i for i in range(20)]

        async def echo(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(msg.data[::-1])

        await on_a.subscribe("svc.a", cb=echo)
        probe = await on_a.subscribe("svc.probe")
        await until_delivered(on_b, "svc.probe", probe)
        assert (await on_b.request("svc.a", b"abc", timeout=5)).data == b"cba"
    finally:
        await on_a.close()
        await on_b.close()
        a.stop()
        b.stop()


def linked_node(cluster: HubCluster, leaf: ServerProcess) -> str | None:
    """The cluster node a leaf's link goes to, from the leaf's /leafz (None while the
    link it shows goes to none of them: the leaf is between two links)."""
    port = (monitor(leaf, "/leafz").get("leafs") or [{}])[0].get("port")
    return next((name for name, p in zip(cluster.names, cluster.ports, strict=True)
                 if p.leafnode == port), None)


@pytest.mark.differential
async def test_a_lost_node_is_replaced_and_interest_restored(cluster: HubCluster,
                                                             leaf: ServerProcess) -> None:
    """kill -9 of the node the leaf is linked to: the leaf dials another node, its
    subscriptions are announced again, and traffic flows both ways again."""
    on_leaf = await nats.connect(leaf.url)
    lost = linked_node(cluster, leaf)
    assert lost is not None
    other = cluster.urls[(cluster.names.index(lost) + 1) % len(cluster.names)]
    on_cluster = await nats.connect(other, allow_reconnect=False)
    try:
        sub = await on_leaf.subscribe("after.loss")
        await until_delivered(on_cluster, "after.loss", sub)
        cluster.kill(lost)
        wait_until(lambda: bool(monitor(leaf, "/leafz").get("leafnodes"))
                   and linked_node(cluster, leaf) not in (lost, None), 15,
                   "the leaf on another node")
        await until_delivered(on_cluster, "after.loss", sub)
        up = await on_cluster.subscribe("up.after")
        await until_delivered(on_leaf, "up.after", up)
    finally:
        await on_leaf.close()
        await on_cluster.close()
        cluster.restart(lost)


@pytest.mark.differential
async def test_mqtt_clients_of_a_leaf_reach_the_cluster(cluster: HubCluster,
                                                        target: str) -> None:
    leaf = cluster.start_leaf(f"leafm{next(_names)}-{target}", domain=None, target=target,
                              extra="mqtt { port: -1 }")
    on_cluster = await nats.connect(cluster.urls[1])
    device = Paho(leaf.mqtt_port, f"device-{target}")
    await thread(device.connect)
    try:
        readings = await on_cluster.subscribe("sensors.*")
        assert await thread(device.subscribe, ("cmd/#", 1)) == [1]
        for _ in range(50):  # until the leaf's interest is in the cluster and back
            await thread(device.publish, "sensors/probe", b"p", 1)
            try:
                await readings.next_msg(timeout=0.2)
                break
            except nats.errors.TimeoutError:
                pass
        await drain(readings, 0.3)
        await thread(device.publish, "sensors/t1", b"21.5", 1)
        msg = await readings.next_msg(timeout=5)
        assert (msg.subject, msg.data) == ("sensors.t1", b"21.5")
        got = await until_mqtt_delivered(on_cluster, "cmd.dev1", b"reboot", device)
        assert (got.topic, got.payload) == ("cmd/dev1", b"reboot")
    finally:
        device.close()
        await on_cluster.close()
        leaf.stop()


USER_KEY = Keys("U")
secured = cluster_fixture(name="secured", size=1, domain=None, jetstream=False,
                          extra=f"authorization {{ users: [{{nkey: {USER_KEY.public_key}}}] }}")


@pytest.mark.differential
async def test_a_leaf_signs_in_with_a_user_nkey(secured: HubCluster, target: str) -> None:
    leaf = secured.start_leaf(f"leafk{next(_names)}-{target}", domain=None, target=target,
                              remote_extra=f'nkey: "{USER_KEY.seed}"')
    on_leaf = await nats.connect(leaf.url)
    on_hub = await nats.connect(secured.urls[0], nkeys_seed_str=USER_KEY.seed)
    try:
        sub = await on_leaf.subscribe("signed.in")
        await until_delivered(on_hub, "signed.in", sub)
    finally:
        await on_leaf.close()
        await on_hub.close()
        leaf.stop()


async def test_a_refused_leaf_logs_each_attempt_and_backs_off(secured: HubCluster) -> None:
    """A credential the hub refuses: one error line per attempt, the wait between
    attempts doubling (1 s, 2 s, 4 s ...), and the link never listed as up."""
    wrong = Keys("U")
    with pytest.raises(TimeoutError):
        secured.start_leaf(f"leafw{next(_names)}", domain=None, target="jetport",
                           remote_extra=f'nkey: "{wrong.seed}"', timeout=8)
    leaf = secured.leaves[-1]
    try:
        log = leaf.log()
        assert log.count("Authorization Violation") >= 3
        waits = [line.rsplit(" ", 1)[-1] for line in log.splitlines()
                 if "next attempt in" in line]
        assert waits[:3] == ["1s", "2s", "4s"], waits
        assert "Connected leafnode" not in log
        assert monitor(leaf, "/leafz").get("leafs") == []
    finally:
        leaf.stop()


HUB_TENANTS = """accounts {
  TA { users: [ { user: cta, password: pw } ] }
  TB { users: [ { user: ctb, password: pw } ] }
}"""
tenants = cluster_fixture(
    name="tenants", size=1, domain=None, jetstream=False, extra=HUB_TENANTS,
    leafnode_extra="authorization { users: [ { user: lta, password: pa, account: TA },"
                   " { user: ltb, password: pb, account: TB } ] }")


@pytest.mark.differential
async def test_one_remote_per_account_keeps_tenants_apart(tenants: HubCluster,
                                                          target: str) -> None:
    """Two local accounts, each linked by its own remote and credentials to its own
    account of the hub: each tenant's messages reach only its own side."""
    port = tenants.ports[0].leafnode
    leaf = tenants.start_leaf(
        f"leafa{next(_names)}-{target}", domain=None, jetstream=False, target=target,
        extra="accounts {\n  LA { users: [ { user: la, password: pw } ] }\n"
              "  LB { users: [ { user: lb, password: pw } ] }\n}",
        remotes=[f'urls: ["nats-leaf://lta:pa@127.0.0.1:{port}"], account: LA',
                 f'urls: ["nats-leaf://ltb:pb@127.0.0.1:{port}"], account: LB'], links=2)
    hub_url = tenants.urls[0]
    la = await nats.connect(leaf.url, user="la", password="pw")
    lb = await nats.connect(leaf.url, user="lb", password="pw")
    ta = await nats.connect(hub_url, user="cta", password="pw")
    tb = await nats.connect(hub_url, user="ctb", password="pw")
    try:
        sub_a = await la.subscribe("orders")
        sub_b = await lb.subscribe("orders")
        await until_delivered(ta, "orders", sub_a)
        await until_delivered(tb, "orders", sub_b)
        await drain(sub_a, 0.2)
        await drain(sub_b, 0.2)
        await ta.publish("orders", b"for A")
        await tb.publish("orders", b"for B")
        up = await ta.subscribe("up")
        await until_delivered(la, "up", up)
        await lb.publish("up", b"from B")  # another tenant's subject space
        await ta.flush()
        await tb.flush()
        assert await drain(sub_a) == [b"for A"]
        assert await drain(sub_b) == [b"for B"]
        assert await drain(up) == []
    finally:
        for nc in (la, lb, ta, tb):
            await nc.close()
        leaf.stop()


tokened = cluster_fixture(name="tokened", size=1, domain=None, jetstream=False,
                          extra="authorization { token: s3cret }")


@pytest.mark.differential
async def test_a_leaf_signs_in_with_a_token(tokened: HubCluster, target: str) -> None:
    """A url with a user and no password: the token the hub's leafnode listener wants."""
    port = tokened.ports[0].leafnode
    leaf = tokened.start_leaf(f"leaftk{next(_names)}-{target}", domain=None,
                              jetstream=False, target=target,
                              urls=[f"nats-leaf://s3cret@127.0.0.1:{port}"])
    on_leaf = await nats.connect(leaf.url)
    on_hub = await nats.connect(tokened.urls[0], token="s3cret")
    try:
        sub = await on_leaf.subscribe("by.token")
        await until_delivered(on_hub, "by.token", sub)
    finally:
        await on_leaf.close()
        await on_hub.close()
        leaf.stop()


@pytest.mark.differential
async def test_a_leaf_that_reaches_itself_detects_the_loop(tmp_path, target: str) -> None:
    """Remotes to two servers, one of which is a leaf of the other: the account's
    loop-detection subject comes back over the second link, and the link closes with
    nats-server's loop error (and waits 30 s before dialling again)."""
    (tmp_path / "upper").mkdir()
    (tmp_path / "lower").mkdir()
    with HubCluster(tmp_path / "upper", size=1, domain=None, jetstream=False) as upper:
        lower = HubCluster(tmp_path / "lower", size=1, domain=None, jetstream=False,
                           name="LOWER",
                           leafnode_extra=f'remotes: [ {{ urls: ["{upper.leafnode_urls[0]}"] }} ]')
        with lower:
            wait_until(lambda: links_up(lower.nodes[0]) == 1, 15, "lower linked to upper")
            leaf = upper.start_leaf(
                f"leafl{next(_names)}-{target}", domain=None, jetstream=False, target=target,
                remotes=[f'urls: ["{upper.leafnode_urls[0]}"]',
                         f'urls: ["{lower.leafnode_urls[0]}"]'], links=0)
            try:
                wait_until(lambda: "Loop detected" in leaf.log(), 15, "the loop reported")
            finally:
                leaf.stop()


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubCluster, str]]:
    """A one-node hub whose leafnode listener requires TLS, and its CA's certificate."""
    tmp = tmp_path_factory.mktemp("tlshub")
    ca = make_ca(tmp / "pki")
    pair = ca.issue("hub", [("CN", "hub")], dns=("localhost",), ips=("127.0.0.1",),
                    server=True)
    hub = HubCluster(tmp, size=1, domain=None, jetstream=False, leafnode_extra=(
        f'tls {{ cert_file: "{pair.cert}", key_file: "{pair.key}" }}'))
    with hub:
        yield hub, ca.cert_path


@pytest.mark.differential
async def test_a_leaf_link_over_tls(tls_hub: tuple[HubCluster, str], target: str,
                                    tmp_path) -> None:
    """A remote with ``tls { ca_file }`` links to a hub that requires TLS (the upgrade
    follows the hub's first INFO); one whose CA does not know the hub's certificate
    does not link."""
    hub, ca = tls_hub
    leaf = hub.start_leaf(f"leaft{next(_names)}-{target}", domain=None, target=target,
                          remote_extra=f'tls {{ ca_file: "{ca}" }}')
    on_leaf = await nats.connect(leaf.url)
    on_hub = await nats.connect(hub.urls[0])
    try:
        sub = await on_leaf.subscribe("over.tls")
        await until_delivered(on_hub, "over.tls", sub)
        assert "TLS" in leaf.log() or target == "nats-server"
    finally:
        await on_leaf.close()
        await on_hub.close()
        leaf.stop()
    stranger = make_ca(tmp_path / "other", "other")
    with pytest.raises(TimeoutError):
        hub.start_leaf(f"leafu{next(_names)}-{target}", domain=None, target=target,
                       remote_extra=f'tls {{ ca_file: "{stranger.cert_path}" }}', timeout=4)


async def test_the_http_door_of_a_leaf_uses_the_clusters_jetstream_by_domain(
        cluster: HubCluster) -> None:
    """``?domain=hub`` on the HTTP door's routes: a replicated stream, a publish that
    answers once the cluster stored the message, a fetch, a KV bucket and an object
    bucket, all in the cluster, seen by a NATS client of the cluster; without the
    domain, the same routes use the leaf's own JetStream."""
    leaf = cluster.start_leaf(f"leafh{next(_names)}", domain="edge", target="jetport")
    base = f"http://127.0.0.1:{leaf.http_port}/v1"
    hub = {"domain": "hub"}
    nc = await nats.connect(cluster.urls[2])
    js = nc.jetstream()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            r = await http.post("/streams", params=hub, json={
                "name": "HTTPD", "subjects": ["httpd.>"], "num_replicas": 3})
            assert r.status_code == 201, r.text
            assert r.json()["config"]["num_replicas"] == 3
            for _ in range(100):  # until the stream's interest reached the leaf
                r = await http.post("/publish/httpd.a", params=hub, content=b"one")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            assert r.json()["stream"] == "HTTPD" and r.json()["domain"] == "hub"
            assert (await js.get_msg("HTTPD", r.json()["seq"])).data == b"one"
            # not in the leaf's own JetStream
            assert (await http.get("/streams/HTTPD")).status_code == 404
            r = await http.post("/streams/HTTPD/consumers", params=hub,
                                json={"durable_name": "web", "ack_policy": "explicit"})
            assert r.status_code == 201, r.text
            r = await http.post("/streams/HTTPD/consumers/web/fetch", params={
                **hub, "batch": 1, "wait": 5})
            assert [m["data"] for m in r.json()["messages"]] == ["one"], r.text

            r = await http.post("/kv", params=hub, json={"bucket": "cfg", "replicas": 3})
            assert r.status_code == 201, r.text
            r = await http.put("/kv/cfg/keys/mode", params=hub, content=b"fast")
            assert r.status_code == 200, r.text
            kv = await js.key_value("cfg")
            assert (await kv.get("mode")).value == b"fast"
            await kv.put("mode", b"slow")
            r = await http.get("/kv/cfg/keys/mode", params=hub)
            assert r.content == b"slow"

            r = await http.post("/objects", params=hub, json={"bucket": "files"})
            assert r.status_code == 201, r.text
            body = bytes(range(256)) * 1000
            r = await http.put("/objects/files/blob.bin", params=hub, content=body)
            assert r.status_code == 201, r.text
            obs = await js.object_store("files")
            assert (await obs.get("blob.bin")).data == body
            r = await http.get("/objects/files/blob.bin", params=hub)
            assert r.content == body

            assert (await http.get("/streams", params={"domain": "a.b"})).status_code == 400
            # with a domain, a publish waits for a stream: none stores this subject
            r = await http.post("/publish/nostream.a", params=hub, content=b"x")
            assert r.status_code == 503, r.text
            assert (await http.post("/publish/nostream.a", content=b"x")).status_code == 202
    finally:
        await nc.close()
        leaf.stop()
