"""The HTTP door among the others: HTTP publishes reach NATS and MQTT subscribers, MQTT
publishes reach SSE readers, HTTP requests are answered by HTTP (and MQTT 5) responders,
and operator-mode users call the door with bearer user JWTs."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest
from mqtt_clients import V5, Paho, rc_value, thread
from natsjwt import Account, Operator, User
from test_http_sse import Events

HUB = """
server_name: hub
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
mqtt {{ host: 127.0.0.1, port: -1 }}
"""


@pytest.fixture
def hub(tmp_path, launch):
    conf = tmp_path / "hub.conf"
    conf.write_text(HUB.format(store=tmp_path / "store"))
    server = launch("-c", str(conf))
    assert server.mqtt_port and server.http_port, server.log()
    return server


def http_of(server, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10, **kw)


async def mqtt_client(server, cid: str, version: int = 4) -> Paho:
    client = Paho(server.mqtt_port, cid, **({"version": V5} if version == 5 else {}))
    _, rc = await thread(client.connect)
    assert rc_value(rc) == 0
    return client


async def test_http_publish_reaches_nats_and_mqtt(hub):
    nc = await nats.connect(hub.url)
    sub = await nc.subscribe("cross.>")
    await nc.flush()
    mqtt = await mqtt_client(hub, "sub")
    assert await thread(mqtt.subscribe, ("cross/#", 1)) == [1]
    async with http_of(hub) as http:
        resp = await http.post("/v1/publish/cross.a", content=b"plain")
        assert resp.status_code == 202 and resp.json()["receivers"] == 2
        # a stored publish reaches live subscribers too, after the PubAck
        await http.post("/v1/streams", json={"name": "X", "subjects": ["cross.stored"]})
        ack = await http.post("/v1/publish/cross.stored", content=b"kept")
        assert ack.json() == {"stream": "X", "seq": 1, "duplicate": False}
        batch = await http.post("/v1/publish", json={"messages": [
            {"subject": "cross.b", "data": "one"}, {"subject": "cross.b", "data": "two"}]})
        assert batch.json()["count"] == 2
    got = [await sub.next_msg(timeout=2) for _ in range(4)]
    assert [(m.subject, m.data) for m in got] == [
        ("cross.a", b"plain"), ("cross.stored", b"kept"), ("cross.b", b"one"),
        ("cross.b", b"two")]
    msgs = await thread(mqtt.take, 4)
    assert [(m.topic, m.payload) for m in msgs] == [
        ("cross/a", b"plain"), ("cross/stored", b"kept"), ("cross/b", b"one"),
        ("cross/b", b"two")]
    await thread(mqtt.close)
    await nc.close()


async def test_mqtt_and_nats_publishes_reach_sse(hub):
    mqtt = await mqtt_client(hub, "pub")
    nc = await nats.connect(hub.url)
    async with http_of(hub) as http, http.stream("GET", "/v1/subscribe/sensors.>") as resp:
        assert resp.status_code == 200
        events = Events(resp)
        await thread(mqtt.publish, "sensors/t1", b"21.5", 1)
        first = await events.next()
        await nc.publish("sensors.t2", b"19.0")
        second = await events.next()
    assert (first["data"]["subject"], first["data"]["data"]) == ("sensors.t1", "21.5")
    assert (second["data"]["subject"], second["data"]["data"]) == ("sensors.t2", "19.0")
    await thread(mqtt.close)
    await nc.close()


async def test_request_answered_by_mqtt5_responder(hub):
    responder = await mqtt_client(hub, "svc", version=5)
    assert await thread(responder.subscribe, ("svc/mqtt", 0)) == [0]

    def answer_once() -> None:
        msg = responder.take(1)[0]
        topic = getattr(msg.properties, "ResponseTopic", None)
        assert topic, "no response topic"
        responder.publish(topic, b"mqtt says " + msg.payload)

    try:
        async with http_of(hub) as http:
            job = asyncio.create_task(http.post("/v1/request/svc.mqtt?timeout=3",
                                                content=b"hi"))
            try:
                await thread(answer_once)
            finally:
                resp = await job
            assert (resp.status_code, resp.content) == (200, b"mqtt says hi")
    finally:
        await thread(responder.close)


async def test_request_answered_by_http_responder(hub):
    async with http_of(hub) as http:
        # an SSE reader that publishes to each event's reply subject
        async with http.stream("GET", "/v1/subscribe/svc.http") as sse:
            events = Events(sse)
            job = asyncio.create_task(http.post("/v1/request/svc.http?timeout=5",
                                                content=b"ping"))
            ev = await events.next()
            reply = ev["data"]["reply"]
            await http.post(f"/v1/publish/{reply}", content=b"pong",
                            headers={"X-Nats-Header-Who": "http"})
            resp = await job
        assert (resp.status_code, resp.content) == (200, b"pong")
        assert resp.headers["x-nats-header-who"] == "http"


async def test_fetch_max_bytes_and_batch_limits(hub):
    async with http_of(hub) as http:
        await http.post("/v1/streams", json={"name": "F", "subjects": ["f"]})
        for i in range(5):
            await http.post("/v1/publish/f", content=b"x" * 100 + str(i).encode())
        await http.post("/v1/streams/F/consumers", json={"durable_name": "C",
                                                         "ack_policy": "explicit"})
        got = (await http.post("/v1/streams/F/consumers/C/fetch?batch=5&max_bytes=250"
                               "&wait=0.5")).json()
        assert 1 <= len(got["messages"]) < 5
        rest = (await http.post("/v1/streams/F/consumers/C/fetch?batch=5&wait=0.5")).json()
        assert len(got["messages"]) + len(rest["messages"]) == 5
        big = await http.post("/v1/publish", json={"messages": [
            {"subject": "ok", "data": "1"}, {"subject": "ok", "data": "x" * ((1 << 20) + 1)}]})
        assert big.status_code == 413
        assert big.json()["error"]["err_code"] == 10413
        too_many = await http.post("/v1/publish", json={"messages": [{"subject": "n"}] *
                                                        100_001})
        assert too_many.status_code == 400
        stored_big = await http.post("/v1/publish/f", content=b"x" * ((1 << 20) + 1))
        assert stored_big.status_code == 413


# -- operator mode ----------------------------------------------------------------------

OPERATOR = """
http: "127.0.0.1:-1"
monitoring_auth: none
operator: {op}
system_account: {sys}
resolver: MEMORY
resolver_preload: {{
{preload}
}}
"""


async def test_bearer_user_jwts_in_operator_mode(tmp_path, launch):
    op = Operator()
    sys_acc, a, b = Account(op, "SYS"), Account(op, "A"), Account(op, "B")
    (tmp_path / "op.jwt").write_text(op.jwt)
    preload = "\n".join(f"  {acc.public_key}: {acc.jwt}" for acc in (sys_acc, a, b))
    conf = tmp_path / "op.conf"
    conf.write_text(OPERATOR.format(op=tmp_path / "op.jwt", sys=sys_acc.public_key,
                                    preload=preload))
    server = launch("-c", str(conf))
    ua = User(a, "ua", bearer=True, pub={"allow": ["a.>"]})
    ub = User(b, "ub", bearer=True)
    signed = User(a, "needs-nonce")
    http_only_nats = User(a, "nats-only", bearer=True, allowed_connection_types=["STANDARD"])
    nb = await nats.connect(server.url, user_credentials=str(ub.creds(tmp_path / "ub.creds")))
    na = await nats.connect(server.url, user_credentials=str(ua.creds(tmp_path / "ua.creds")))
    sub_b = await nb.subscribe("a.x")
    sub_a = await na.subscribe("a.x")
    await na.flush()
    await nb.flush()
    async with http_of(server) as http:
        def bearer(user: User) -> dict[str, str]:
            return {"Authorization": f"Bearer {user.jwt}"}

        ok = await http.post("/v1/publish/a.x", content=b"jwt", headers=bearer(ua))
        assert ok.status_code == 202 and ok.json()["receivers"] == 1
        assert (await sub_a.next_msg(timeout=2)).data == b"jwt"
        with pytest.raises(nats.errors.TimeoutError):
            await sub_b.next_msg(timeout=0.3)
        denied = await http.post("/v1/publish/b.x", content=b"1", headers=bearer(ua))
        assert denied.status_code == 403
        # a JWT that is not a bearer token needs a signed nonce HTTP cannot give
        for user in (signed, http_only_nats):
            refused = await http.post("/v1/publish/a.x", content=b"1", headers=bearer(user))
            assert refused.status_code == 401, user.name
        metrics = (await http.get("/metrics")).text
        assert 'jetport_auth_failures_total{door="http"} 2.0' in metrics
        assert json.loads((await http.get("/accountz")).text)["system_account"] == \
            sys_acc.public_key
    await na.close()
    await nb.close()
