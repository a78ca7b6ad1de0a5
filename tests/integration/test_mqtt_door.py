"""The MQTT door end to end with paho-mqtt (3.1.1 and 5) and nats-py on one hub:
every QoS, wildcards, retained messages (also set from NATS), persistent sessions
across reconnects and hub restarts, MQTT 5 request/response to a NATS service, and
MQTT → stream → JetStream consumer."""

from __future__ import annotations

import asyncio
import queue
import re
import time
from pathlib import Path

import nats
import paho.mqtt.client as mqtt
import pytest
from mqtt_clients import Paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V3, V5 = mqtt.MQTTv311, mqtt.MQTTv5
_MQTT_PORT = re.compile(r"Listening for MQTT clients on \w+://[^\s]+:(\d+)")


def mqtt_port(server) -> int:
    m = _MQTT_PORT.search(server.log())
    assert m, server.log()
    return int(m.group(1))


@pytest.fixture
def hub(launch, tmp_path: Path):
    conf = tmp_path / "mqtt.conf"
    conf.write_text(
        f'server_name: hub\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        "mqtt { port: -1 }\n"
    )
    server = launch("-c", str(conf))
    server.mqtt = mqtt_port(server)
    return server


class Client:
    """A paho client whose messages land in a queue."""

    def __init__(self, port: int, cid: str, version: int = V3, clean: bool = True,
                 expiry: int | None = None) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.connected: queue.Queue = queue.Queue()
        kwargs = {} if version == V5 else {"clean_session": clean}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                             **kwargs)
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, flags, rc, props=None: self.connected.put(
            (flags.session_present, rc))
        props = None
        if version == V5:
            props = Properties(PacketTypes.CONNECT)
            if expiry is not None:
                props.SessionExpiryInterval = expiry
        if version == V5:
            self.c.connect("127.0.0.1", port, clean_start=clean, properties=props)
        else:
            self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.present, self.rc = self.connected.get(timeout=5)

    def subscribe(self, *topics: tuple[str, int]) -> None:
        done: queue.Queue = queue.Queue()
        self.c.on_subscribe = lambda c, u, mid, codes, props=None: done.put(codes)
        self.c.subscribe(list(topics))
        done.get(timeout=5)

    def take(self, n: int, timeout: float = 5.0) -> list:
        return [self.messages.get(timeout=timeout) for _ in range(n)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.parametrize("version", [V3, V5])
def test_pub_sub_every_qos_and_wildcards(hub, version) -> None:
    sub = Client(hub.mqtt, "sub", version)
    pub = Client(hub.mqtt, "pub", version)
    try:
        sub.subscribe(("a/#", 2), ("x/+/y", 1))
        for qos in (0, 1, 2):
            pub.c.publish("a/b", b"q%d" % qos, qos=qos).wait_for_publish(5)
        pub.c.publish("a", b"parent", qos=1).wait_for_publish(5)
        pub.c.publish("x/1/y", b"plus", qos=2).wait_for_publish(5)
        # MQTT orders messages per QoS level only (paho hands QoS 2 over at PUBREL).
        got = sorted((m.topic, m.payload, m.qos) for m in sub.take(5))
        assert got == sorted([("a/b", b"q0", 0), ("a/b", b"q1", 1), ("a/b", b"q2", 2),
                              ("a", b"parent", 1), ("x/1/y", b"plus", 1)])
    finally:
        sub.close()
        pub.close()


def test_retained_from_mqtt_and_nats_survive_restart(hub) -> None:
    pub = Client(hub.mqtt, "pub")
    pub.c.publish("dev/1/state", b"on", qos=1, retain=True).wait_for_publish(5)
    pub.close()

    async def from_nats() -> None:
        nc = await nats.connect(hub.url)
        await nc.publish("dev.2.state", b"off", headers={"Nmqtt-Retain": "1"})
        await nc.flush()
        await nc.close()

    asyncio.run(from_nats())
    time.sleep(0.3)
    hub.restart()
    hub.mqtt = mqtt_port(hub)
    sub = Client(hub.mqtt, "sub")
    try:
        sub.subscribe(("dev/+/state", 1))
        got = sorted((m.topic, m.payload, m.retain) for m in sub.take(2))
        assert got == [("dev/1/state", b"on", True), ("dev/2/state", b"off", True)]
        # An empty retained payload clears it.
        sub.c.publish("dev/1/state", b"", qos=1, retain=True).wait_for_publish(5)
        sub.take(1)
    finally:
        sub.close()
    again = Client(hub.mqtt, "again")
    try:
        again.subscribe(("dev/+/state", 0))
        assert [(m.topic, m.payload) for m in again.take(1)] == [("dev/2/state", b"off")]
        with pytest.raises(queue.Empty):
            again.messages.get(timeout=0.3)
    finally:
        again.close()


@pytest.mark.parametrize("version", [V3, V5])
def test_persistent_session_across_reconnect_and_restart(hub, version) -> None:
    expiry = 3600 if version == V5 else None
    s = Client(hub.mqtt, "keeper", version, clean=False, expiry=expiry)
    s.subscribe(("q/#", 1))
    s.close()
    pub = Client(hub.mqtt, "p", version)
    for i in range(3):
        pub.c.publish("q/x", b"offline%d" % i, qos=1).wait_for_publish(5)
    pub.close()
    hub.restart()
    hub.mqtt = mqtt_port(hub)
    back = Client(hub.mqtt, "keeper", version, clean=False, expiry=expiry)
    try:
        assert back.present
        got = [(m.payload, m.qos) for m in back.take(3)]
        assert got == [(b"offline0", 1), (b"offline1", 1), (b"offline2", 1)]
    finally:
        back.close()


def test_mqtt5_request_to_a_nats_service_keeps_correlation(hub) -> None:
    async def main() -> None:
        nc = await nats.connect(hub.url)

        async def service(msg) -> None:
            # A responder that drops the request's headers, as most do.
            await nc.publish(msg.reply, b"answer:" + msg.data)

        await nc.subscribe("svc.echo", cb=service)
        await nc.flush()
        c = Client(hub.mqtt, "requester", V5)
        try:
            c.subscribe(("resp/me", 1))
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "resp/me"
            props.CorrelationData = b"corr-1"
            props.UserProperty = [("k", "v")]
            c.c.publish("svc/echo", b"ping", qos=1, properties=props)
            msg = await asyncio.to_thread(c.messages.get, True, 5)
            assert (msg.topic, msg.payload) == ("resp/me", b"answer:ping")
            assert msg.properties.CorrelationData == b"corr-1"
        finally:
            c.close()
            await nc.close()

    asyncio.run(main())


def test_nats_request_answered_by_an_mqtt5_responder(hub) -> None:
    """A NATS request's reply subject is the MQTT 5 response topic; the responder's
    publish there is the reply."""
    async def main() -> None:
        nc = await nats.connect(hub.url)
        c = Paho(hub.mqtt, "responder", V5)
        await asyncio.to_thread(c.connect)

        def answer() -> None:
            msg = c.take(1)[0]
            c.publish(msg.properties.ResponseTopic, b"mqtt:" + msg.payload, 1)

        try:
            await asyncio.to_thread(c.subscribe, ("svc/+", 1))
            answering = asyncio.ensure_future(asyncio.to_thread(answer))
            reply = await nc.request("svc.plain", b"hi", timeout=5)
            assert reply.data == b"mqtt:hi"
            await answering
        finally:
            c.close()
            await nc.close()

    asyncio.run(main())


def test_cross_protocol_and_stream_capture(hub) -> None:
    async def main() -> None:
        nc = await nats.connect(hub.url)
        js = nc.jetstream()
        await js.add_stream(name="SENSORS", subjects=["sensors.>"])
        seen = []

        async def on(msg) -> None:
            seen.append((msg.subject, msg.data, msg.headers))

        await nc.subscribe("sensors.>", cb=on)
        await nc.flush()
        c = Client(hub.mqtt, "sensor", V3)
        c.subscribe(("cmd/#", 0))
        try:
            for i in range(5):
                info = c.c.publish("sensors/t1", b"%d" % i, qos=1)
                info.wait_for_publish(5)
            await nc.publish("cmd.t1", b"reset")
            msg = await asyncio.to_thread(c.messages.get, True, 5)
            assert (msg.topic, msg.payload, msg.qos) == ("cmd/t1", b"reset", 0)
        finally:
            c.close()
        # The PUBACKs came after the stream committed: everything is there to replay.
        sub = await js.pull_subscribe("sensors.>", durable="replay")
        msgs = await sub.fetch(5, timeout=5)
        assert [m.data for m in msgs] == [b"%d" % i for i in range(5)]
        assert seen[0][0] == "sensors.t1" and seen[0][2]["Nmqtt-Pub"] == "1"
        await nc.close()

    asyncio.run(main())


def test_qos1_publish_is_stored_by_the_streams_of_the_moment(hub) -> None:
    """Which streams a QoS 1 publish waits for follows streams being created, changed
    and deleted between publishes on one subject."""
    async def main() -> None:
        nc = await nats.connect(hub.url)
        js = nc.jetstream()
        await nc.subscribe("sensors.>")  # a listener: a missing PubAck is not "no responders"
        await nc.flush()
        c = Client(hub.mqtt, "sensor", V3)

        async def publish(data: bytes) -> None:
            info = c.c.publish("sensors/t1", data, qos=1)
            await asyncio.to_thread(info.wait_for_publish, 3)
            assert info.is_published()

        try:
            await js.add_stream(name="SENSORS", subjects=["sensors.>"])
            await publish(b"stored")
            assert (await js.stream_info("SENSORS")).state.messages == 1
            # A publish still waiting for the stream it no longer reaches would time out.
            await js.update_stream(name="SENSORS", subjects=["other.>"])
            await publish(b"not stored")
            await js.update_stream(name="SENSORS", subjects=["sensors.>"])
            await publish(b"stored again")
            assert (await js.stream_info("SENSORS")).state.messages == 2
            await js.delete_stream("SENSORS")
            await publish(b"no stream again")
        finally:
            c.close()
            await nc.close()

    asyncio.run(main())


def test_session_takeover_and_will(hub) -> None:
    watcher = Client(hub.mqtt, "watcher")
    watcher.subscribe(("wills/#", 1))
    first = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup")
    first.will_set("wills/dup", b"gone", qos=1)
    first.connect("127.0.0.1", hub.mqtt)
    first.loop_start()
    time.sleep(0.3)
    first.on_disconnect = lambda *a: None
    second = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup")
    second.will_set("wills/dup2", b"gone too", qos=1)
    second.connect("127.0.0.1", hub.mqtt)
    try:
        # The first connection did not DISCONNECT: taking it over sends its will.
        msg = watcher.messages.get(timeout=5)
        assert (msg.topic, msg.payload) == ("wills/dup", b"gone")
        first.loop_stop()
        second.loop(timeout=0.5)
        second.socket().close()  # abrupt: the new connection's will goes out too
        msg = watcher.messages.get(timeout=5)
        assert (msg.topic, msg.payload) == ("wills/dup2", b"gone too")
        # A clean DISCONNECT sends none.
        quiet = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="quiet")
        quiet.will_set("wills/quiet", b"never", qos=1)
        quiet.connect("127.0.0.1", hub.mqtt)
        quiet.loop(timeout=0.5)
        quiet.disconnect()
        with pytest.raises(queue.Empty):
            watcher.messages.get(timeout=0.5)
    finally:
        first.loop_stop()
        watcher.close()


def test_http_publish_reaches_mqtt_subscriber(launch, tmp_path: Path) -> None:
    import httpx

    conf = tmp_path / "http.conf"
    conf.write_text('mqtt { port: -1 }\nhttp: "127.0.0.1:-1"\n')
    server = launch("-c", str(conf))
    c = Client(mqtt_port(server), "http-listener")
    try:
        c.subscribe(("alerts/#", 0))
        r = httpx.post(f"http://127.0.0.1:{server.http_port}/v1/publish/alerts.fire",
                       content=b"smoke")
        assert r.status_code < 300
        msg = c.messages.get(timeout=5)
        assert (msg.topic, msg.payload) == ("alerts/fire", b"smoke")
    finally:
        c.close()


def test_first_connections_at_once_share_the_store_and_retained(hub) -> None:
    """Clients arriving together on a fresh hub, and again after a restart, wait for the
    same opening of the account's store and the same read of its retained messages:
    every one is accepted, and after the restart every one gets the retained message."""
    connect = bytes.fromhex("10 10 00 04 4d 51 54 54 04 00 00 3c 00 04")  # clean=0
    subscribe = bytes.fromhex("82 0c 00 01 00 07") + b"state/+" + b"\x01"

    async def burst(n: int) -> list[bytes]:
        conns = [await asyncio.open_connection("127.0.0.1", hub.mqtt) for _ in range(n)]
        for i, (_, w) in enumerate(conns):
            w.write(connect + b"b%03d" % i + subscribe)
        out = []
        for r, w in conns:
            data = b""
            deadline = time.monotonic() + 5
            while len(data) < 9 and time.monotonic() < deadline:
                data += await asyncio.wait_for(r.read(4096), 5)
            out.append(data)
            w.close()
        return out

    async def main() -> None:
        first = await burst(12)
        assert all(d[:4] == b"\x20\x02\x00\x00" for d in first), first
        setter = Paho(hub.mqtt, "setter")
        await asyncio.to_thread(setter.connect)
        await asyncio.to_thread(setter.publish, "state/door", b"open", 1, True)
        setter.close()
        hub.restart()
        hub.mqtt = mqtt_port(hub)
        again = await burst(12)
        assert all(d[:4] == b"\x20\x02\x01\x00" for d in again), again
        assert all(b"state/door" in d and d.endswith(b"open") for d in again), again

    asyncio.run(main())


def test_kill9_keeps_every_puback_message(hub) -> None:
    """A PUBACK for a message a stream captures, or a persistent session keeps, means it
    is committed: kill -9 of the hub loses none of them."""
    connect = bytes.fromhex("10 10 00 04 4d 51 54 54 04 00 00 3c 00 04")  # clean=0

    async def main() -> None:
        nc = await nats.connect(hub.url)
        await nc.jetstream().add_stream(name="K9", subjects=["k9.>"])
        await nc.close()
        # A persistent session subscribed at QoS 1, then offline: it keeps a queue.
        r, w = await asyncio.open_connection("127.0.0.1", hub.mqtt)
        w.write(connect + b"keep" + bytes.fromhex("82 0a 00 01 00 05") + b"k9/in" + b"\x01")
        await r.readexactly(4 + 5)
        w.write(b"\xe0\x00")
        w.close()

        r, w = await asyncio.open_connection("127.0.0.1", hub.mqtt)
        w.write(connect + b"pubr")
        assert await r.readexactly(4) == b"\x20\x02\x00\x00"
        acked: set[bytes] = set()
        sent: dict[int, bytes] = {}
        n = 0
        deadline = time.monotonic() + 1.0
        try:
            while time.monotonic() < deadline:
                for _ in range(50):
                    n += 1
                    pid = n % 65535 + 1
                    payload = b"m%07d" % n
                    sent[pid] = payload
                    body = b"\x00\x05k9/in" + pid.to_bytes(2, "big") + payload
                    w.write(bytes([0x32, len(body)]) + body)
                await w.drain()
                while len(acked) + 50 < n:
                    ack = await asyncio.wait_for(r.readexactly(4), 5)
                    acked.add(sent[int.from_bytes(ack[2:], "big")])
            hub.kill()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        w.close()
        assert len(acked) > 100, len(acked)

        hub.restart()
        hub.mqtt = mqtt_port(hub)
        nc = await nats.connect(hub.url)
        info = await nc.jetstream().stream_info("K9")
        stored: set[bytes] = set()
        sub = await nc.jetstream().subscribe("k9.>", ordered_consumer=True)
        for _ in range(info.state.messages):
            stored.add((await sub.next_msg(5)).data)
        await nc.close()
        assert acked <= stored, len(acked - stored)

        r, w = await asyncio.open_connection("127.0.0.1", hub.mqtt)
        w.write(connect + b"keep")
        assert await r.readexactly(4) == b"\x20\x02\x01\x00"
        queued: set[bytes] = set()
        while not acked <= queued:
            head = await asyncio.wait_for(r.readexactly(2), 5)
            body = await r.readexactly(head[1])
            queued.add(body[9:])
            w.write(b"\x40\x02" + body[7:9])
        w.close()

    asyncio.run(main())
