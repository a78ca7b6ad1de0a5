"""MQTT over WebSocket: the WebSocket listener's ``/mqtt`` path (or the ``mqtt``
subprotocol) carries the MQTT door's protocol, sessions and permissions.

Each test runs on Jetport and on nats-server from the same config (MQTT 5 on Jetport
only: nats-server speaks MQTT 3.1.1).
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from mqtt_clients import EVERY_VERSION, Paho, rc_value, thread
from servers import ServerProcess, free_port
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

CONF = """server_name: {name}
jetstream {{ store_dir: "{store}" }}
mqtt {{ host: 127.0.0.1, port: -1 }}
websocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}
"""
USERS = """
authorization { users: [
  {user: any, password: p}
  {user: tcp, password: p, allowed_connection_types: ["MQTT"]}
  {user: web, password: p, allowed_connection_types: ["MQTT_WS"]}
  {user: ro, password: p, permissions: {subscribe: {deny: ["secret.>"]}}}
] }
"""
CONNECT_V311 = bytes.fromhex("101000044d5154540402003c0004") + b"wsc1"


def start(launch, tmp_path, extra: str = "") -> tuple[ServerProcess, int]:
    ws = free_port()
    text = CONF.format(name=launch.target, store=tmp_path / "store", ws=ws) + extra
    server = launch.conf(text)
    assert server.mqtt_port, server.log()
    return server, ws


@pytest.mark.differential
@EVERY_VERSION
async def test_pubsub_with_nats_over_websocket(launch, tmp_path, version) -> None:
    server, ws = start(launch, tmp_path)
    web = Paho(ws, f"web-{version}", version, ws_path="/mqtt")
    _, rc = await thread(web.connect)
    assert rc_value(rc) == 0
    nc = await nats.connect(server.url)
    try:
        seen = await nc.subscribe("sensors.*.temperature")
        assert await thread(web.subscribe, ("sensors/+/temperature", 1)) == [1]
        await nc.publish("sensors.kitchen.temperature", b"21.5")
        await nc.flush()
        msg = (await thread(web.take, 1))[0]
        assert (msg.topic, msg.payload) == ("sensors/kitchen/temperature", b"21.5")
        assert (await seen.next_msg(2)).data == b"21.5"

        await thread(web.publish, "sensors/hall/temperature", b"19.0", 1)
        got = await seen.next_msg(2)
        assert (got.subject, got.data) == ("sensors.hall.temperature", b"19.0")
        assert got.headers is not None and "Nmqtt-Pub" in str(got.headers)
        echoed = (await thread(web.take, 1))[0]
        assert (echoed.topic, echoed.qos) == ("sensors/hall/temperature", 1)
    finally:
        await nc.close()
        web.close()


@pytest.mark.differential
async def test_tcp_and_websocket_clients_share_topics(launch, tmp_path) -> None:
    server, ws = start(launch, tmp_path)
    web = Paho(ws, "web-sub", ws_path="/mqtt")
    tcp = Paho(server.mqtt_port, "tcp-pub")
    await thread(web.connect)
    await thread(tcp.connect)
    try:
        await thread(web.subscribe, ("plant/#", 1))
        await thread(tcp.publish, "plant/line1/speed", b"42", 1, True)
        msg = (await thread(web.take, 1))[0]
        assert (msg.topic, msg.payload, msg.qos) == ("plant/line1/speed", b"42", 1)
        # The retained message reaches a later WebSocket subscriber too.
        late = Paho(ws, "web-late", ws_path="/mqtt")
        await thread(late.connect)
        await thread(late.subscribe, ("plant/+/speed", 0))
        retained = (await thread(late.take, 1))[0]
        assert (retained.payload, retained.retain) == (b"42", True)
        late.close()
    finally:
        web.close()
        tcp.close()


@pytest.mark.differential
async def test_connection_types_and_permissions(launch, tmp_path) -> None:
    server, ws = start(launch, tmp_path, USERS)
    cases = [(ws, "web", 0), (ws, "tcp", None), (server.mqtt_port, "tcp", 0),
             (server.mqtt_port, "web", None), (ws, "any", 0)]
    for port, user, expected in cases:
        client = Paho(port, f"ct-{user}-{port}", user=user, password="p",
                      ws_path="/mqtt" if port == ws else None)
        _, rc = await thread(client.connect)
        if expected is None:
            assert rc_value(rc) == 0x87, (port, user)  # CONNACK 5, not authorized
            client.c.loop_stop()
        else:
            assert rc_value(rc) == expected, (port, user)
            client.close()
    ro = Paho(ws, "ro", user="ro", password="p", ws_path="/mqtt")
    await thread(ro.connect)
    try:
        assert await thread(ro.subscribe, ("secret/#", 1), ("open/#", 1)) == [0x80, 1]
    finally:
        ro.close()


@pytest.mark.differential
async def test_raw_frames_subprotocol_and_split_packets(launch, tmp_path) -> None:
    """A browser offers the ``mqtt`` subprotocol and must get it back; MQTT packets may
    span frames and a frame may hold several packets."""
    _, ws = start(launch, tmp_path)
    async with ws_connect(f"ws://127.0.0.1:{ws}/mqtt", subprotocols=["mqtt"]) as conn:
        assert conn.subprotocol == "mqtt"
        await conn.send(CONNECT_V311[:5])
        await conn.send(CONNECT_V311[5:])
        connack = await asyncio.wait_for(conn.recv(), 5)
        assert connack == b"\x20\x02\x00\x00"
        subscribe = b"\x82\x08\x00\x01\x00\x03a/b\x00"
        pingreq = b"\xc0\x00"
        await conn.send(subscribe + pingreq)
        received = b""
        while len(received) < 7:
            received += await asyncio.wait_for(conn.recv(), 5)
        assert received == b"\x90\x03\x00\x01\x00" + b"\xd0\x00"


@pytest.mark.differential
async def test_malformed_packet_closes_the_websocket(launch, tmp_path) -> None:
    _, ws = start(launch, tmp_path)
    async with ws_connect(f"ws://127.0.0.1:{ws}/mqtt", subprotocols=["mqtt"]) as conn:
        await conn.send(CONNECT_V311)
        assert await asyncio.wait_for(conn.recv(), 5) == b"\x20\x02\x00\x00"
        await conn.send(b"\x30\x05\x00\x03a/#x")  # a wildcard in a PUBLISH topic
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(conn.recv(), 5)


@pytest.mark.differential
@EVERY_VERSION
async def test_mqtt_over_websocket_is_traced(launch, tmp_path, version) -> None:
    """With -DV, MQTT packets carried by the WebSocket door are traced as those on the
    MQTT port are; the connection is named ``mid_ws:<n>``, as nats-server names it."""
    ws = free_port()
    text = CONF.format(name=launch.target, store=tmp_path / "store", ws=ws)
    server = launch.conf(text, "-DV")
    web = Paho(ws, f"ws-traced-{version}", version, ws_path="/mqtt")
    _, rc = await thread(web.connect)
    assert rc_value(rc) == 0
    try:
        assert await thread(web.subscribe, ("wt/x", 0)) == [0]
        await thread(web.publish, "wt/x", b"over ws", 0)
        assert (await thread(web.take, 1))[0].payload == b"over ws"
    finally:
        web.close()
    who = f'"ws-traced-{version}" - '
    wanted = [who + "<<- [CONNECT clientID=", who + "->> [CONNACK sp=false rc=0",
              who + "<<- [SUBSCRIBE [wt/x (wt.x) QoS=0] pi=1]",
              who + "<<- [PUBLISH wt/x dup=false QoS=0 retain=false size=7]",
              who + '<<- MSG_PAYLOAD: ["over ws"]',
              who + "->> [PUBLISH wt/x dup=false QoS=0 retain=false size=7"]
    log = await server.logged(*wanted)
    missing = [w for w in wanted if w not in log]
    assert not missing, f"{missing}\n{log[-3000:]}"
    traced = [line for line in log.splitlines() if who in line and "[TRC]" in line]
    assert traced and all(" - mid_ws:" in line for line in traced), traced
