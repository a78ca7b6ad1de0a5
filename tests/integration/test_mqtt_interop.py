"""MQTT interop: paho-mqtt (3.1.1 and 5) and amqtt's client against the hub's MQTT door,
with nats-py on the same hub.

Each test runs on Jetport and on nats-server from the same config; nats-server speaks
MQTT 3.1.1 only and knows no shared subscriptions, so those cases run on Jetport alone.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from mqtt_clients import (
    EVERY_VERSION,
    V3,
    V5,
    AmqttError,
    Paho,
    PahoScram,
    amqtt_client,
    rc_value,
    thread,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from servers import ServerProcess

BASE = 'server_name: {name}\njetstream {{ store_dir: "{store}" }}\n' \
       "mqtt {{ host: 127.0.0.1, port: -1 }}\n"
USERS = """
authorization { users: [
  {user: dev, password: pw}
  {user: ro, password: pw, permissions: {subscribe: {deny: ["secret.>"]}}}
] }
"""
ACCOUNTS = """
accounts {
  A: { jetstream: enabled, users: [{user: a, password: pa}] }
  B: { jetstream: enabled, users: [{user: b, password: pb}] }
}
"""


def start(launch, tmp_path, extra: str = "") -> ServerProcess:
    text = BASE.format(name=launch.target, store=tmp_path / "store") + extra
    server = launch.conf(text)
    assert server.mqtt_port, server.log()
    return server




# -- connect and authenticate -----------------------------------------------------------


@pytest.mark.differential
async def test_connect_and_password_auth(launch, tmp_path) -> None:
    server = start(launch, tmp_path, USERS)
    good = Paho(server.mqtt_port, "good", user="dev", password="pw")
    present, rc = await thread(good.connect)
    assert rc_value(rc) == 0 and not present
    good.close()
    bad = Paho(server.mqtt_port, "bad", user="dev", password="wrong")
    _, rc = await thread(bad.connect)
    # CONNACK 5, "not authorized" (paho reports 3.1.1's 4/5 as 0x86/0x87).
    assert rc_value(rc) == 0x87
    bad.c.loop_stop()
    anon = Paho(server.mqtt_port, "anon")
    _, rc = await thread(anon.connect)
    assert rc_value(rc) == 0x87
    anon.c.loop_stop()

    client = await amqtt_client(server.mqtt_port, "am-good", "dev:pw@")
    await client.disconnect()
    with pytest.raises(AmqttError):
        await amqtt_client(server.mqtt_port, "am-bad", "dev:wrong@")


async def test_connect_v5_auth(launch, tmp_path) -> None:
    server = start(launch, tmp_path, USERS)
    good = Paho(server.mqtt_port, "good5", V5, user="dev", password="pw")
    _, rc = await thread(good.connect)
    assert rc_value(rc) == 0
    good.close()
    bad = Paho(server.mqtt_port, "bad5", V5, user="dev", password="wrong")
    _, rc = await thread(bad.connect)
    assert rc_value(rc) == 0x86  # bad user name or password
    bad.c.loop_stop()


@pytest.mark.differential
async def test_accounts_isolate_mqtt_clients(launch, tmp_path) -> None:
    server = start(launch, tmp_path, ACCOUNTS)
    a_sub = Paho(server.mqtt_port, "a-sub", user="a", password="pa")
    b_sub = Paho(server.mqtt_port, "b-sub", user="b", password="pb")
    a_pub = Paho(server.mqtt_port, "a-pub", user="a", password="pa")
    nc = await nats.connect(server.url, user="a", password="pa")
    try:
        for c in (a_sub, b_sub, a_pub):
            assert rc_value((await thread(c.connect))[1]) == 0
        assert await thread(a_sub.subscribe, ("iso/x", 1)) == [1]
        assert await thread(b_sub.subscribe, ("iso/x", 1)) == [1]
        sub = await nc.subscribe("iso.x")
        await nc.flush()
        await thread(a_pub.publish, "iso/x", b"for A", 1)
        assert (await thread(a_sub.take, 1))[0].payload == b"for A"
        assert (await sub.next_msg(2)).data == b"for A"
        assert await thread(b_sub.nothing)
    finally:
        await nc.close()
        for c in (a_sub, b_sub, a_pub):
            c.close()


# -- publish and subscribe --------------------------------------------------------------


@pytest.mark.differential
@EVERY_VERSION
async def test_every_qos_both_directions_with_amqtt(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path)
    p = Paho(server.mqtt_port, "paho", version)
    await thread(p.connect)
    am = await amqtt_client(server.mqtt_port, "amqtt")
    try:
        assert await thread(p.subscribe, ("to/paho", 2)) == [2]
        assert await am.subscribe([("to/amqtt", 2)]) == [2]
        for qos in (0, 1, 2):
            await am.publish("to/paho", b"am%d" % qos, qos=qos)
            await thread(p.publish, "to/amqtt", b"pa%d" % qos, qos)
        got = [(m.topic, m.payload, m.qos) for m in await thread(p.take, 3)]
        assert got == [("to/paho", b"am%d" % q, q) for q in (0, 1, 2)]
        seen = []
        for _ in range(3):
            msg = await am.deliver_message(timeout_duration=5)
            assert msg is not None
            seen.append(msg)
        assert seen == [("to/amqtt", b"pa%d" % q, q) for q in (0, 1, 2)]
    finally:
        await am.disconnect()
        p.close()


@pytest.mark.differential
@EVERY_VERSION
async def test_wildcards(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path)
    sub = Paho(server.mqtt_port, "wsub", version)
    pub = Paho(server.mqtt_port, "wpub", version)
    await thread(sub.connect)
    await thread(pub.connect)
    try:
        assert await thread(sub.subscribe, ("a/#", 1), ("s/+/t", 1)) == [1, 1]
        for topic in ("a", "a/b", "a/b/c", "s/x/t", "s/x/y/t", "b/a", "s/t"):
            await thread(pub.publish, topic, topic.encode(), 1)
        got = sorted(m.topic for m in await thread(sub.take, 4))
        assert got == ["a", "a/b", "a/b/c", "s/x/t"]
        assert await thread(sub.nothing)
    finally:
        sub.close()
        pub.close()


# -- retained ---------------------------------------------------------------------------


@pytest.mark.differential
async def test_retained_filters_clear_and_restart(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    pub = Paho(server.mqtt_port, "rpub")
    await thread(pub.connect)
    await thread(pub.publish, "home/1/temp", b"21", 1, True)
    await thread(pub.publish, "home/2/temp", b"19", 1, True)
    await thread(pub.publish, "home/3/temp", b"old", 1, True)
    await thread(pub.publish, "home/3/temp", b"", 1, True)
    pub.close()
    for n, flt in enumerate(("home/+/temp", "home/#", "home/1/temp", "#")):
        s = Paho(server.mqtt_port, f"rsub{n}")
        await thread(s.connect)
        await thread(s.subscribe, (flt, 1))
        count = 1 if flt == "home/1/temp" else 2
        got = sorted((m.topic, m.payload, m.retain) for m in await thread(s.take, count))
        want = [("home/1/temp", b"21", True), ("home/2/temp", b"19", True)]
        assert got == want[:count], flt
        assert await thread(s.nothing)
        s.close()
    await asyncio.sleep(0.2)
    server.restart()
    after = Paho(server.mqtt_port, "rafter")
    await thread(after.connect)
    try:
        await thread(after.subscribe, ("home/+/temp", 0))
        got = sorted((m.topic, m.payload) for m in await thread(after.take, 2))
        assert got == [("home/1/temp", b"21"), ("home/2/temp", b"19")]
        assert await thread(after.nothing)
    finally:
        after.close()


# -- will -------------------------------------------------------------------------------


@pytest.mark.differential
async def test_will_on_abrupt_close_not_on_disconnect(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    watch = Paho(server.mqtt_port, "watch")
    await thread(watch.connect)
    await thread(watch.subscribe, ("wills/#", 1))
    polite = Paho(server.mqtt_port, "polite", will=("wills/polite", b"never", 1, False))
    await thread(polite.connect)
    polite.close()
    rude = Paho(server.mqtt_port, "rude", will=("wills/rude", b"gone", 1, True))
    await thread(rude.connect)
    rude.drop()
    try:
        msg = (await thread(watch.take, 1))[0]
        assert (msg.topic, msg.payload, msg.qos) == ("wills/rude", b"gone", 1)
        assert await thread(watch.nothing)
        # The will was retained: a later subscriber gets it.
        late = Paho(server.mqtt_port, "late")
        await thread(late.connect)
        await thread(late.subscribe, ("wills/+", 0))
        msg = (await thread(late.take, 1))[0]
        assert (msg.topic, msg.payload, msg.retain) == ("wills/rude", b"gone", True)
        late.close()
    finally:
        watch.close()


# -- sessions ---------------------------------------------------------------------------


@pytest.mark.differential
@EVERY_VERSION
async def test_persistent_session_reconnect_and_restart(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path)
    expiry = 600 if version == V5 else None
    s = Paho(server.mqtt_port, "keeper", version, clean=False, expiry=expiry)
    present, _ = await thread(s.connect)
    assert not present
    assert await thread(s.subscribe, ("jobs/#", 1)) == [1]
    s.close()
    pub = Paho(server.mqtt_port, "producer", version)
    await thread(pub.connect)
    for i in range(3):
        await thread(pub.publish, "jobs/a", b"offline%d" % i, 1)
    pub.close()
    back = Paho(server.mqtt_port, "keeper", version, clean=False, expiry=expiry)
    present, _ = await thread(back.connect)
    assert present
    got = [(m.payload, m.qos) for m in await thread(back.take, 3)]
    assert got == [(b"offline%d" % i, 1) for i in range(3)]
    back.close()
    pub = Paho(server.mqtt_port, "producer", version)
    await thread(pub.connect)
    await thread(pub.publish, "jobs/b", b"before-restart", 1)
    pub.close()
    await asyncio.sleep(0.2)
    server.restart()
    again = Paho(server.mqtt_port, "keeper", version, clean=False, expiry=expiry)
    try:
        present, _ = await thread(again.connect)
        assert present
        msg = (await thread(again.take, 1))[0]
        assert (msg.topic, msg.payload, msg.qos) == ("jobs/b", b"before-restart", 1)
    finally:
        again.close()


@pytest.mark.differential
async def test_amqtt_persistent_session(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    am = await amqtt_client(server.mqtt_port, "am-keep", clean=False)
    await am.subscribe([("am/q", 1)])
    await am.disconnect()
    pub = Paho(server.mqtt_port, "am-producer")
    await thread(pub.connect)
    await thread(pub.publish, "am/q", b"queued", 1)
    pub.close()
    am = await amqtt_client(server.mqtt_port, "am-keep", clean=False)
    try:
        msg = await am.deliver_message(timeout_duration=5)
        assert msg is not None and msg[:2] == ("am/q", b"queued")
    finally:
        await am.disconnect()


@pytest.mark.differential
@EVERY_VERSION
async def test_session_takeover(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path)
    first = Paho(server.mqtt_port, "same-id", version)
    await thread(first.connect)
    second = Paho(server.mqtt_port, "same-id", version)
    await thread(second.connect)
    try:
        _, _, rc = await thread(first.event, "disconnect")
        if version == V5:
            assert rc_value(rc) == 0x8E  # session taken over
        assert await thread(second.subscribe, ("still/here", 0)) == [0]
        await thread(second.publish, "still/here", b"yes", 0)
        assert (await thread(second.take, 1))[0].payload == b"yes"
    finally:
        first.c.loop_stop()
        second.close()


# -- shared subscriptions ---------------------------------------------------------------


@pytest.mark.parametrize("version", [V3, V5])
async def test_shared_subscription_splits_load(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path)
    members = [Paho(server.mqtt_port, f"member{i}", version) for i in range(2)]
    pub = Paho(server.mqtt_port, "share-pub", version)
    for c in (*members, pub):
        await thread(c.connect)
    try:
        for m in members:
            assert await thread(m.subscribe, ("$share/g/work/+", 1)) == [1]
        for i in range(40):
            await thread(pub.publish, "work/item", b"%d" % i, 1)
        await asyncio.sleep(0.5)
        counts = [m.messages.qsize() for m in members]
        got = sorted(int(m.payload) for c in members for m in c.take(c.messages.qsize()))
        assert got == list(range(40)), counts
        assert all(n > 0 for n in counts), counts
    finally:
        for c in (*members, pub):
            c.close()


# -- MQTT 5 and NATS --------------------------------------------------------------------


async def test_mqtt5_request_response_to_nats_responder(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)

    async def echo(msg) -> None:
        await msg.respond(b"echo:" + msg.data)

    await nc.subscribe("svc.echo", cb=echo)
    await nc.flush()
    c = Paho(server.mqtt_port, "requester", V5)
    await thread(c.connect)
    try:
        assert await thread(c.subscribe, ("resp/me", 1)) == [1]
        for n in range(2):
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "resp/me"
            props.CorrelationData = b"corr-%d" % n
            await thread(c.publish, "svc/echo", b"ping%d" % n, 1, False, props)
            msg = (await thread(c.take, 1))[0]
            assert (msg.topic, msg.payload) == ("resp/me", b"echo:ping%d" % n)
            assert msg.properties.CorrelationData == b"corr-%d" % n
    finally:
        c.close()
        await nc.close()


async def test_user_properties_and_nats_headers(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)
    sub = await nc.subscribe("up.in")
    await nc.flush()
    c = Paho(server.mqtt_port, "props", V5)
    await thread(c.connect)
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("trace", "abc"), ("site", "n1")]
        await thread(c.publish, "up/in", b"x", 1, False, props)
        msg = await sub.next_msg(2)
        assert msg.headers["trace"] == "abc" and msg.headers["site"] == "n1"
        assert await thread(c.subscribe, ("up/out", 0)) == [0]
        await nc.publish("up.out", b"y", headers={"trace": "def"})
        got = (await thread(c.take, 1))[0]
        assert got.payload == b"y"
        assert ("trace", "def") in list(got.properties.UserProperty)
    finally:
        c.close()
        await nc.close()


@pytest.mark.differential
async def test_mqtt_to_nats_and_back(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)
    sub = await nc.subscribe("a.b")
    await nc.flush()
    c = Paho(server.mqtt_port, "bridge")
    await thread(c.connect)
    try:
        await thread(c.publish, "a/b", b"from-mqtt", 1)
        msg = await sub.next_msg(2)
        assert (msg.subject, msg.data) == ("a.b", b"from-mqtt")
        assert msg.headers is not None and msg.headers.get("Nmqtt-Pub", "").startswith("1")
        assert await thread(c.subscribe, ("n/+/z", 1)) == [1]
        await nc.publish("n.y.z", b"from-nats")
        got = (await thread(c.take, 1))[0]
        assert (got.topic, got.payload, got.qos) == ("n/y/z", b"from-nats", 0)
    finally:
        c.close()
        await nc.close()


@pytest.mark.differential
async def test_mqtt_to_stream_replay(launch, tmp_path) -> None:
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(name="SENSORS", subjects=["sensors.>"])
    c = Paho(server.mqtt_port, "sensor")
    await thread(c.connect)
    try:
        for i in range(10):
            # wait_for_publish returns once the PUBACK arrived.
            await thread(c.publish, "sensors/x", b"r%d" % i, 1)
    finally:
        c.close()
    psub = await js.pull_subscribe("sensors.>", durable="replay")
    msgs = await psub.fetch(10, timeout=5)
    assert [m.data for m in msgs] == [b"r%d" % i for i in range(10)]
    assert {m.subject for m in msgs} == {"sensors.x"}
    await nc.close()


@pytest.mark.differential
@EVERY_VERSION
async def test_denied_subscribe(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path, USERS)
    c = Paho(server.mqtt_port, f"ro{version}", version, user="ro", password="pw")
    _, rc = await thread(c.connect)
    assert rc_value(rc) == 0
    try:
        codes = await thread(c.subscribe, ("secret/x", 1), ("open/x", 1))
        assert codes == [0x80 if version == V3 else 0x87, 1]
    finally:
        c.close()


@pytest.mark.differential
async def test_dollar_topics(launch, tmp_path) -> None:
    """Topics starting with '$' are not matched by a filter starting with a wildcard
    (MQTT 4.7.2); the door's own $MQTT subjects cannot be subscribed."""
    server = start(launch, tmp_path)
    wild = Paho(server.mqtt_port, "wild")
    dollar = Paho(server.mqtt_port, "dollar")
    await thread(wild.connect)
    await thread(dollar.connect)
    nc = await nats.connect(server.url)
    try:
        assert await thread(wild.subscribe, ("#", 0), ("+/x", 0)) == [0, 0]
        assert await thread(dollar.subscribe, ("$app/#", 0)) == [0]
        assert await thread(dollar.subscribe, ("$MQTT/sess/#", 0)) == [0x80]
        await nc.publish("$app.x", b"reserved")
        await nc.publish("app.x", b"plain")
        await nc.flush()
        assert [m.payload for m in await thread(wild.take, 2)] == [b"plain", b"plain"]
        assert (await thread(dollar.take, 1))[0].payload == b"reserved"
        assert await thread(wild.nothing)
    finally:
        await nc.close()
        wild.close()
        dollar.close()


@pytest.mark.differential
async def test_mqtt_no_auth_user(launch, tmp_path) -> None:
    """The mqtt block's no_auth_user is who an MQTT client without credentials is, with
    that user's permissions; NATS clients still need credentials."""
    users = """
authorization { users: [
  {user: dev, password: pw}
  {user: sensor, password: unused, permissions: {publish: "plant.>", subscribe: "plant.>"}}
] }
"""
    server = launch.conf(BASE.format(name=launch.target, store=tmp_path / "store")
                         .replace("port: -1 }", "port: -1, no_auth_user: sensor }") + users)
    anon = Paho(server.mqtt_port, "anon")
    _, rc = await thread(anon.connect)
    assert rc_value(rc) == 0
    try:
        assert await thread(anon.subscribe, ("plant/+", 0), ("office/+", 0)) == [0, 0x80]
    finally:
        anon.close()
    with pytest.raises(nats.errors.Error):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)


@pytest.mark.differential
async def test_max_connections_counts_every_door(launch, tmp_path) -> None:
    """max_connections bounds NATS and MQTT clients together."""
    server = start(launch, tmp_path, "max_connections: 2\n")
    nc = await nats.connect(server.url, allow_reconnect=False)
    first = Paho(server.mqtt_port, "first")
    _, rc = await thread(first.connect)
    assert rc_value(rc) == 0
    try:
        refused = Paho(server.mqtt_port, "third")
        try:
            _, rc = await thread(refused.connect)
        except Exception:  # noqa: BLE001 - nats-server may just close the socket
            rc = None
        refused.c.loop_stop()
        assert rc is None or rc_value(rc) != 0
        # Jetport half-closes after -ERR so the client reads why; nats-server's close
        # may reset the connection before nats-py reads it.
        with pytest.raises((nats.errors.Error, ConnectionError)) as refusal:
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)
        if launch.target == "jetport":
            assert "maximum connections exceeded" in str(refusal.value)
    finally:
        first.close()
        await nc.close()


# -- MQTT 5 session expiry, wills, request/response, shared subscriptions, identifiers ---


def v5_props(kind: int, **values) -> Properties:
    props = Properties(kind)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def leave(c: Paho, session_expiry: int) -> float:
    """DISCONNECT with a new Session Expiry Interval; when the client saw it close."""
    c.c.disconnect(properties=v5_props(PacketTypes.DISCONNECT,
                                       SessionExpiryInterval=session_expiry))
    c.event("disconnect")
    left = time.monotonic()
    c.c.loop_stop()  # may take a while: the time is taken before
    return left


async def back_at(port: int, cid: str, at: float) -> tuple[bool, Paho]:
    await asyncio.sleep(max(at - time.monotonic(), 0))
    c = Paho(port, cid, V5, clean=False, expiry=60)
    present, rc = await thread(c.connect)
    assert rc_value(rc) == 0
    return present, c


async def test_mqtt5_disconnect_raises_session_expiry(launch, tmp_path) -> None:
    """paho connects with Session Expiry 1 and leaves with 6 (or 3): the session, and
    the QoS 1 message queued for it, wait the whole interval from the disconnect, across
    a restart of the hub, and no longer."""
    server = start(launch, tmp_path)
    port = server.mqtt_port
    kept, lost = Paho(port, "exp-kept", V5, expiry=1), Paho(port, "exp-lost", V5, expiry=1)
    for c in (kept, lost):
        await thread(c.connect)
        assert await thread(c.subscribe, (f"exp/{c.c._client_id.decode()}", 1)) == [1]
    left = await asyncio.gather(thread(leave, kept, 6), thread(leave, lost, 3))
    pub = Paho(port, "exp-pub", V5)
    await thread(pub.connect)
    await thread(pub.publish, "exp/exp-kept", b"while away", 1)
    pub.close()
    await thread(server.restart)
    port = server.mqtt_port
    assert time.monotonic() - left[1] < 3.0, "the restart took too long for this test"
    (present_kept, again), (present_lost, gone) = await asyncio.gather(
        back_at(port, "exp-kept", left[0] + 5.0), back_at(port, "exp-lost", left[1] + 3.8))
    try:
        assert (present_kept, present_lost) == (True, False)
        msg = (await thread(again.take, 1))[0]
        assert (msg.topic, msg.payload, msg.qos) == ("exp/exp-kept", b"while away", 1)
    finally:
        again.close()
        gone.close()


async def test_mqtt5_will_at_session_end_or_delay(launch, tmp_path) -> None:
    """Will Delay 5 with Session Expiry 2: the will goes when the session ends, at 2 s;
    Will Delay 2 with a client back after 0.5 s: no will."""
    server = start(launch, tmp_path)
    port = server.mqtt_port
    watch = Paho(port, "will5-watch", V5)
    await thread(watch.connect)
    assert await thread(watch.subscribe, ("will5/#", 1)) == [1]
    ends = Paho(port, "will5-ends", V5, expiry=2)
    ends.c.will_set("will5/ends", b"session over", 1,
                    properties=v5_props(PacketTypes.WILLMESSAGE, WillDelayInterval=5))
    back = Paho(port, "will5-back", V5, expiry=10)
    back.c.will_set("will5/back", b"never", 1,
                    properties=v5_props(PacketTypes.WILLMESSAGE, WillDelayInterval=2))
    for c in (ends, back):
        await thread(c.connect)
    back.drop()
    ends.drop()  # its socket closes as it returns
    dropped = time.monotonic()
    await asyncio.sleep(0.5)
    again = Paho(port, "will5-back", V5, clean=False, expiry=10)
    try:
        present, _ = await thread(again.connect)
        assert present
        msg = (await thread(watch.take, 1))[0]
        assert (msg.topic, msg.payload) == ("will5/ends", b"session over")
        assert 1.4 <= time.monotonic() - dropped <= 3.5, time.monotonic() - dropped
        assert await thread(watch.nothing, 2.0)
    finally:
        again.close()
        watch.close()


async def test_mqtt5_request_response_between_mqtt_clients(launch, tmp_path) -> None:
    """The responder gets the requester's Response Topic and Correlation Data as sent
    and answers there; straight, and through a NATS service that passes the request on
    without its headers."""
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)

    async def pass_on(msg) -> None:
        await nc.publish("svc5.mqtt", msg.data, reply=msg.reply)

    await nc.subscribe("fwd5.in", cb=pass_on)
    await nc.flush()
    requester = Paho(server.mqtt_port, "rr5-requester", V5)
    responder = Paho(server.mqtt_port, "rr5-responder", V5)
    for c in (requester, responder):
        await thread(c.connect)
    seen = []

    def answer(n: int) -> None:
        for _ in range(n):
            msg = responder.take(1)[0]
            seen.append((msg.topic, msg.properties.ResponseTopic,
                         msg.properties.CorrelationData))
            props = v5_props(PacketTypes.PUBLISH,
                             CorrelationData=msg.properties.CorrelationData)
            responder.publish(msg.properties.ResponseTopic, b"re:" + msg.payload, 1, False,
                              props)

    try:
        assert await thread(responder.subscribe, ("svc5/+", 1)) == [1]
        assert await thread(requester.subscribe, ("resp5/me", 1)) == [1]
        answering = asyncio.ensure_future(thread(answer, 2))
        for n, topic in enumerate(("svc5/direct", "fwd5/in")):
            props = v5_props(PacketTypes.PUBLISH, ResponseTopic="resp5/me",
                             CorrelationData=b"corr-%d" % n)
            await thread(requester.publish, topic, b"q%d" % n, 1, False, props)
            msg = (await thread(requester.take, 1))[0]
            assert (msg.topic, msg.payload) == ("resp5/me", b"re:q%d" % n)
            assert msg.properties.CorrelationData == b"corr-%d" % n
        await answering
        assert seen == [("svc5/direct", "resp5/me", b"corr-0"),
                        ("svc5/mqtt", "resp5/me", b"corr-1")]
    finally:
        requester.close()
        responder.close()
        await nc.close()


async def test_mqtt5_shared_subscription_once_with_racing_reconnects(launch, tmp_path) -> None:
    """Two members with a shared and a non-shared subscription in one SUBSCRIBE; one
    member's client id connects twice at once each round.  Every message to the shared
    topic reaches exactly one member."""
    server = start(launch, tmp_path)
    port = server.mqtt_port
    other = Paho(port, "share5-b", V5)
    pub = Paho(port, "share5-pub", V5)
    for c in (other, pub):
        await thread(c.connect)
    assert await thread(other.subscribe, ("$share/g/pfx5/x", 0), ("mark5/b", 0)) == [0, 0]
    clients = []
    try:
        for i in range(25):
            pair = [Paho(port, "share5-a", V5), Paho(port, "share5-a", V5)]
            clients += pair
            await asyncio.gather(*(thread(c.connect) for c in pair))
            deadline = time.monotonic() + 5
            while all(c.events.empty() for c in pair) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            live = [c for c in pair if c.events.empty()]
            assert len(live) == 1, f"round {i}: {len(live)} live connections for one id"
            taken = next(c for c in pair if c is not live[0])
            kind, _, rc = taken.events.get()
            assert (kind, rc_value(rc)) == ("disconnect", 0x8E), f"round {i}: {kind} {rc}"
            member = live[0]
            codes = await thread(member.subscribe, ("$share/g/pfx5/x", 0), ("mark5/a", 0))
            assert codes == [0, 0]
            await thread(pub.publish, "pfx5/x", b"%d" % i, 0)
            await thread(pub.publish, "mark5/a", b"end", 0)
            await thread(pub.publish, "mark5/b", b"end", 0)
            got = []
            for c in (member, other):
                while (msg := (await thread(c.take, 1))[0]).payload != b"end":
                    got.append(msg.payload)
            assert got == [b"%d" % i], f"round {i}: {got}"
            for c in pair:
                assert c.messages.empty()
    finally:
        for c in (*clients, other, pub):
            c.c.disconnect()
            c.c.loop_stop()


async def test_mqtt5_overlapping_subscriptions_one_copy(launch, tmp_path) -> None:
    """Subscriptions with identifiers 1 (QoS 0) and 2 (QoS 1) both match: one copy, QoS
    1, identifiers [1, 2]."""
    server = start(launch, tmp_path)
    c = Paho(server.mqtt_port, "ids5", V5)
    pub = Paho(server.mqtt_port, "ids5-pub", V5)
    for client in (c, pub):
        await thread(client.connect)

    def subscribe(topic: str, qos: int, ident: int) -> None:
        c.c.subscribe(topic, qos, properties=v5_props(PacketTypes.SUBSCRIBE,
                                                      SubscriptionIdentifier=ident))
        c.event("suback")

    try:
        await thread(subscribe, "ids5/+", 0, 1)
        await thread(subscribe, "ids5/x", 1, 2)
        await thread(pub.publish, "ids5/x", b"one copy", 1)
        msg = (await thread(c.take, 1))[0]
        assert (msg.payload, msg.qos) == (b"one copy", 1)
        assert sorted(msg.properties.SubscriptionIdentifier) == [1, 2]
        assert await thread(c.nothing, 0.5)
    finally:
        c.close()
        pub.close()


# -- MQTT 5 flow control, topic aliases, keep-alive, enhanced authentication ------------


def start_with(launch, tmp_path, mqtt_keys: str, extra: str = "") -> ServerProcess:
    """A server whose mqtt block has ``mqtt_keys`` too (Jetport's own keys)."""
    text = BASE.format(name=launch.target, store=tmp_path / "store").replace(
        "port: -1 }", f"port: -1, {mqtt_keys} }}") + extra
    server = launch.conf(text)
    assert server.mqtt_port, server.log()
    return server


async def test_receive_maximum_with_paho(launch, tmp_path) -> None:
    """paho keeps to a Receive Maximum only through its own max_inflight_messages (it
    does not read the CONNACK's): set to the announced 3 it publishes 30 QoS 2 messages
    without trouble; left at its default of 20 it overruns the window and is
    disconnected with 0x93, Receive Maximum exceeded."""
    server = start_with(launch, tmp_path, "receive_maximum: 3")
    nc = await nats.connect(server.url)
    seen = await nc.subscribe("rm.in")
    await nc.flush()
    polite = Paho(server.mqtt_port, "polite", V5)
    polite.c.max_inflight_messages_set(3)
    greedy = Paho(server.mqtt_port, "greedy", V5)
    try:
        assert rc_value((await thread(polite.connect))[1]) == 0
        infos = [polite.c.publish("rm/in", b"%d" % i, qos=2) for i in range(30)]
        await thread(lambda: [info.wait_for_publish(10) for info in infos])
        got = [int((await seen.next_msg(2)).data) for _ in range(30)]
        assert sorted(got) == list(range(30))

        assert rc_value((await thread(greedy.connect))[1]) == 0
        for i in range(20):
            greedy.c.publish("rm/in", b"g%d" % i, qos=2)
        _, _, rc = await thread(greedy.event, "disconnect")
        assert rc_value(rc) == 0x93
    finally:
        polite.close()
        greedy.c.loop_stop()
        await nc.close()


async def test_topic_aliases_with_paho(launch, tmp_path) -> None:
    """paho announces a Topic Alias Maximum and decodes aliased PUBLISH packets (it
    leaves resolving them to the application: an empty topic and the alias); a paho
    client that announces none gets whole topics."""
    server = start(launch, tmp_path)
    nc = await nats.connect(server.url)
    aliased = Paho(server.mqtt_port, "aliased", V5)
    plain = Paho(server.mqtt_port, "plain", V5)
    props = Properties(PacketTypes.CONNECT)
    props.TopicAliasMaximum = 4
    aliased.c.connect("127.0.0.1", server.mqtt_port, keepalive=30, properties=props)
    aliased.c.loop_start()
    try:
        assert rc_value(aliased.event("connect")[2]) == 0
        assert rc_value((await thread(plain.connect))[1]) == 0
        for c in (aliased, plain):
            assert await thread(c.subscribe, ("al/+", 0)) == [0]
        for topic in ("al.x", "al.x", "al.y", "al.x", "al.y"):
            await nc.publish(topic, topic.encode())
        await nc.flush()
        mapping: dict[int, str] = {}
        resolved = []
        for msg in await thread(aliased.take, 5):
            alias = msg.properties.TopicAlias
            if msg.topic:
                mapping[alias] = msg.topic
            resolved.append((mapping[alias], msg.payload, bool(msg.topic)))
        assert resolved == [("al/x", b"al.x", True), ("al/x", b"al.x", False),
                            ("al/y", b"al.y", True), ("al/x", b"al.x", False),
                            ("al/y", b"al.y", False)]
        msgs = await thread(plain.take, 5)
        assert [m.topic for m in msgs] == ["al/x", "al/x", "al/y", "al/x", "al/y"]
        assert not any(hasattr(m.properties, "TopicAlias") for m in msgs)
    finally:
        aliased.close()
        plain.close()
        await nc.close()


async def test_server_keep_alive_with_paho(launch, tmp_path) -> None:
    """paho 5 asks for 30 s, is told 1 s (Server Keep Alive) and pings at that pace, so
    the hub, which holds it to 1.5 s of silence, keeps it; paho 3.1.1 asking for 30 s is
    refused as Mosquitto's max_keepalive refuses it (CONNACK 2, identifier rejected)."""
    server = start_with(launch, tmp_path, "max_keep_alive: 1")
    c = Paho(server.mqtt_port, "keeper", V5)
    try:
        assert rc_value((await thread(c.connect))[1]) == 0
        assert c.c._keepalive == 1
        await asyncio.sleep(3.5)
        assert await thread(c.subscribe, ("ka/x", 0)) == [0]
        await thread(c.publish, "ka/x", b"alive", 0)
        assert (await thread(c.take, 1))[0].payload == b"alive"
    finally:
        c.close()
    old = Paho(server.mqtt_port, "old", V3)
    _, rc = await thread(old.connect)
    old.c.loop_stop()
    assert rc_value(rc) == 0x85  # paho's name for 3.1.1's return code 2


SCRAM_USERS = """
authorization { users: [
  {user: dev, password: pw}
  {user: ro, password: pw, permissions: {subscribe: {deny: ["secret.>"]}}}
  {user: hashed, password: "$2b$04$ZUlq829V9fJuweUdRCYCZeqbqG1qW06uUNIyCo8hRCezYWWkN8.aS"}
] }
"""


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_with_paho(launch, tmp_path, mechanism) -> None:
    """paho's MQTT 5 client logs in with SCRAM against the same users as password
    logins, verifies the server's signature, re-authenticates on the live connection,
    and gets the user's permissions."""
    server = start(launch, tmp_path, SCRAM_USERS)
    c = PahoScram(server.mqtt_port, f"scram-{mechanism}", "ro", "pw", mechanism)
    try:
        assert rc_value((await thread(c.connect))[1]) == 0
        assert (await thread(c.event, "verified", "unverified"))[0] == "verified"
        assert await thread(c.subscribe, ("secret/x", 0), ("open/x", 0)) == [0x87, 0]
        assert (await thread(c.reauthenticate))[0] == "verified"
        await thread(c.publish, "open/x", b"after re-auth", 1)
        assert (await thread(c.take, 1))[0].payload == b"after re-auth"
        kind, _, rc = await thread(c.reauthenticate, "wrong")
        assert kind == "disconnect" and rc_value(rc) == 0x87
    finally:
        c.c.loop_stop()


@pytest.mark.parametrize(("user", "password"), [("dev", "wrong"), ("hashed", "pw")])
async def test_scram_refused_with_paho(launch, tmp_path, user, password) -> None:
    """A wrong password, or a user whose password is a bcrypt hash (SCRAM needs the
    plain text: documented), gets CONNACK 0x86; the same user logs in with a password."""
    server = start(launch, tmp_path, SCRAM_USERS)
    c = PahoScram(server.mqtt_port, "refused", user, password)
    _, rc = await thread(c.connect)
    c.c.loop_stop()
    assert rc_value(rc) == 0x86
    if user == "hashed":
        pw = Paho(server.mqtt_port, "by-password", V5, user="hashed", password="pw")
        assert rc_value((await thread(pw.connect))[1]) == 0
        pw.close()


# -- permissions and tracing ------------------------------------------------------------


@pytest.mark.differential
@EVERY_VERSION
async def test_denied_subscribe_in_a_resumed_session(launch, tmp_path, version) -> None:
    """A persistent session resumed after a reconnect still gets 0x80 (3.1.1) or 0x87
    (5) for a filter its user may not subscribe."""
    server = start(launch, tmp_path, USERS)
    denied = 0x80 if version == V3 else 0x87
    first = Paho(server.mqtt_port, f"ro-keep{version}", version, clean=False, expiry=300,
                 user="ro", password="pw")
    await thread(first.connect)
    assert await thread(first.subscribe, ("open/x", 1)) == [1]
    first.close()
    back = Paho(server.mqtt_port, f"ro-keep{version}", version, clean=False, expiry=300,
                user="ro", password="pw")
    present, rc = await thread(back.connect)
    try:
        assert rc_value(rc) == 0 and present
        assert await thread(back.subscribe, ("secret/x", 1), ("open/y", 1)) == [denied, 1]
    finally:
        back.close()


@pytest.mark.parametrize("version", [V3, V5])
async def test_denied_shared_subscribe(launch, tmp_path, version) -> None:
    server = start(launch, tmp_path, USERS)
    c = Paho(server.mqtt_port, f"ro-share{version}", version, user="ro", password="pw")
    await thread(c.connect)
    try:
        codes = await thread(c.subscribe, ("$share/g/secret/x", 1), ("$share/g/open/x", 1))
        assert codes == [0x80 if version == V3 else 0x87, 1]
    finally:
        c.close()


@pytest.mark.differential
async def test_mqtt_packets_are_traced(launch, tmp_path) -> None:
    """With -DV both servers trace MQTT packets the same way: the connection named
    ``ip:port - mid:<n> - "<client id>"``, then ``<<-`` or ``->>`` and the packet."""
    text = BASE.format(name=launch.target, store=tmp_path / "store")
    server = launch.conf(text, "-DV")
    c = Paho(server.mqtt_port, "traced")
    await thread(c.connect)
    try:
        assert await thread(c.subscribe, ("tr/x", 1)) == [1]
        await thread(c.publish, "tr/x", b"hello", 1)
        assert (await thread(c.take, 1))[0].payload == b"hello"
    finally:
        c.close()
    # nats-server's keepAlive is its read deadline: 1.5 times paho's 30 s.
    wanted = ['"traced" - <<- [CONNECT clientID=traced keepAlive=45s clean]',
              '"traced" - ->> [CONNACK sp=false rc=0]',
              '"traced" - <<- [SUBSCRIBE [tr/x (tr.x) QoS=1] pi=1]',
              '"traced" - ->> [SUBACK pi=1',
              '"traced" - <<- [PUBLISH tr/x dup=false QoS=1 retain=false size=5 pi=2]',
              '"traced" - <<- MSG_PAYLOAD: ["hello"]',
              '"traced" - ->> [PUBACK pi=2]',
              '"traced" - ->> [PUBLISH tr/x dup=false QoS=1 retain=false size=5 pi=1]',
              '"traced" - <<- [PUBACK pi=1]',
              '"traced" - <<- [DISCONNECT]']
    log = await server.logged(*wanted)
    missing = [w for w in wanted if w not in log]
    assert not missing, f"{missing}\n{log[-4000:]}"
    assert "[TRC] 127.0.0.1:" in log and ' - mid:' in log
