"""Every door of two Jetport leaves in front of one 3-node nats-server cluster: NATS,
WebSocket, MQTT and HTTP clients on leaf A, leaf B and the cluster publish to each other,
share a queue group and make requests, and every message arrives once."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import re

import httpx
import nats
import nats.aio.msg
import pytest
from cluster import HubCluster, cluster_fixture
from mqtt_clients import Paho, thread
from servers import ServerProcess

pytestmark = pytest.mark.timeout(120)

cluster = cluster_fixture(name="cluster")
_names = itertools.count(1)
DOORS = "mqtt { port: -1 }\nwebsocket { port: -1, no_tls: true }\n"


def ws_url(leaf: ServerProcess) -> str:
    found = re.search(r"Listening for websocket clients on ws://[^:]+:(\d+)", leaf.log())
    assert found, leaf.log()
    return f"ws://127.0.0.1:{found.group(1)}"


def collect(into: list[str]):
    async def handler(msg: nats.aio.msg.Msg) -> None:
        into.append(msg.data.decode())
    return handler


async def until(check, timeout: float, what: str) -> None:
    """``wait_until`` without blocking the loop the clients' handlers run on."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def sse(base: str, subject: str, into: list[str], ready: asyncio.Event) -> None:
    """Collect the payloads an SSE subscription to ``subject`` delivers."""
    async with httpx.AsyncClient(base_url=base, timeout=None) as http, \
            http.stream("GET", f"/v1/subscribe/{subject}") as resp:
        ready.set()
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[6:])["data"])


async def test_every_door_of_two_leaves_and_the_cluster_talk_once(cluster: HubCluster) -> None:
    n = next(_names)
    a = cluster.start_leaf(f"doorsa{n}", domain=None, target="jetport", extra=DOORS,
                           urls=cluster.leafnode_urls[:1])
    b = cluster.start_leaf(f"doorsb{n}", domain=None, target="jetport", extra=DOORS,
                           urls=cluster.leafnode_urls[2:])
    got: dict[str, list[str]] = collections.defaultdict(list)
    nc_a, nc_b = await nats.connect(a.url), await nats.connect(b.url)
    ws_a, ws_b = await nats.connect(ws_url(a)), await nats.connect(ws_url(b))
    nc_c = await nats.connect(cluster.urls[1])
    mq_a, mq_b = Paho(a.mqtt_port, f"mqa{n}"), Paho(b.mqtt_port, f"mqb{n}")
    await thread(mq_a.connect)
    await thread(mq_b.connect)
    ready = asyncio.Event()
    sse_task = asyncio.create_task(sse(f"http://127.0.0.1:{b.http_port}", "fleet.>",
                                       got["sse on B"], ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for name, nc in (("nats on B", nc_b), ("websocket on B", ws_b), ("cluster", nc_c)):
            await nc.subscribe("fleet.>", cb=collect(got[name]))
        assert await thread(mq_b.subscribe, ("fleet/#", 0)) == [0]
        # every subscriber's interest has crossed the links once probes reach them all
        subscribers = ("nats on B", "websocket on B", "cluster", "sse on B")

        def all_heard() -> bool:
            while not mq_b.messages.empty():
                got["mqtt on B"].append(mq_b.messages.get().payload.decode())
            return all(got[s] for s in (*subscribers, "mqtt on B"))

        for _ in range(100):
            await nc_a.publish("fleet.probe", b"probe")
            await nc_a.flush()
            await asyncio.sleep(0.1)
            if all_heard():
                break
        await asyncio.sleep(0.5)
        all_heard()
        for heard in got.values():  # (in place: the handlers hold these lists)
            heard.clear()

        sent = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.http_port}") as http:
            for i in range(10):
                for door in ("nats", "ws", "mqtt", "http", "cluster"):
                    text = f"{door}-{i}"
                    sent.append(text)
                    if door == "nats":
                        await nc_a.publish(f"fleet.{door}.{i}", text.encode())
                    elif door == "ws":
                        await ws_a.publish(f"fleet.{door}.{i}", text.encode())
                    elif door == "mqtt":
                        await thread(mq_a.publish, f"fleet/{door}/{i}", text.encode(), 1)
                    elif door == "http":
                        r = await http.post(f"/v1/publish/fleet.{door}.{i}", content=text)
                        assert r.status_code == 202, r.text
                    else:
                        await nc_c.publish(f"fleet.{door}.{i}", text.encode())
        for nc in (nc_a, ws_a, nc_c):
            await nc.flush()
        try:
            await until(lambda: all_heard() and len(got) == 5
                        and all(len(got[s]) >= len(sent) for s in got), 15,
                        "every message everywhere")
        except TimeoutError:
            missing = {k: sorted(set(sent) - set(v)) for k, v in got.items()}
            raise AssertionError(f"sent {len(sent)}; missing {missing}") from None
        await asyncio.sleep(0.5)
        all_heard()
        for name in (*subscribers, "mqtt on B"):
            assert sorted(got[name]) == sorted(sent), name  # each once, none missing

        # one queue group across both leaves and the cluster: each job done once
        done: list[str] = []
        for nc in (nc_a, nc_b, nc_c):
            await nc.subscribe("jobs", queue="workers", cb=collect(done))
        for nc in (nc_a, nc_b, nc_c):
            await nc.flush()
        await asyncio.sleep(1.0)  # the group's weights cross the links
        for i in range(60):
            await nc_c.publish("jobs", b"%d" % i)
        await nc_c.flush()
        await until(lambda: len(done) >= 60, 10, "every job")
        await asyncio.sleep(0.5)
        assert sorted(done, key=int) == [str(i) for i in range(60)]

        # a request from leaf A's HTTP door, answered by a service on leaf B
        async def answer(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"noon")

        await nc_b.subscribe("svc.time", cb=answer)
        await nc_b.flush()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.http_port}") as http:
            for _ in range(50):
                r = await http.post("/v1/request/svc.time", content=b"?",
                                    params={"timeout": 1})
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
        assert r.status_code == 200 and r.content == b"noon", r.text
    finally:
        sse_task.cancel()
        for client in (mq_a, mq_b):
            client.close()
        for nc in (nc_a, nc_b, ws_a, ws_b, nc_c):
            await nc.close()
        a.stop()
        b.stop()
