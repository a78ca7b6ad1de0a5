"""/metrics across doors: auth failures per door, cumulative traffic that survives closed
connections, connections per door, all read back through prometheus-client's parser."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import nats
import pytest
import websockets
from mqtt_clients import Paho, rc_value, thread
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port

USERS = """
server_name: hub
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
mqtt {{ host: 127.0.0.1, port: -1 }}
websocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}
authorization {{ users: [ {{ user: dev, password: pw }} ] }}
accounts {{ SYS {{ users: [ {{ user: admin, password: adm }} ] }} }}
system_account: SYS
"""


class Metrics:
    """One scrape of /metrics, parsed."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        family = self.families[name]
        return sum(s.value for s in family.samples
                   if s.name in (name, name + "_total")
                   and all(s.labels.get(k) == v for k, v in labels.items()))


async def scrape(http: httpx.AsyncClient) -> Metrics:
    resp = await http.get("/metrics", auth=("admin", "adm"))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return Metrics(resp.text)


async def frame(ws) -> str:
    """The next WebSocket frame as text."""
    data = await asyncio.wait_for(ws.recv(), 5)
    return data.decode() if isinstance(data, bytes) else data


@pytest.fixture
def users_hub(tmp_path, launch):
    conf = tmp_path / "users.conf"
    ws = free_port()
    conf.write_text(USERS.format(store=tmp_path / "store", ws=ws))
    hub = launch("-c", str(conf))
    hub.ws_port = ws
    assert hub.mqtt_port and hub.http_port, hub.log()
    return hub


async def test_auth_failures_are_counted_per_door(users_hub):
    hub = users_hub
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}",
                                 timeout=10) as http:
        before = await scrape(http)
        for door in ("nats", "websocket", "mqtt", "http"):
            assert before.value("jetport_auth_failures", door=door) == 0, door

        # NATS: nats-py with a wrong password is refused
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(hub.url, user="dev", password="wrong",
                               allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)
        # WebSocket: CONNECT with a wrong password gets -ERR
        async with websockets.connect(f"ws://127.0.0.1:{hub.ws_port}") as ws:
            assert (await frame(ws)).startswith("INFO")
            await ws.send(b"CONNECT " + json.dumps(
                {"user": "dev", "pass": "nope", "verbose": False}).encode() + b"\r\nPING\r\n")
            assert "Authorization Violation" in await frame(ws)
        # MQTT: paho with a bad password gets "not authorized"
        mqtt = Paho(hub.mqtt_port, "bad", user="dev", password="nope")
        _, rc = await thread(mqtt.connect)
        assert rc_value(rc) in (5, 135)  # paho reports 3.1.1's 5 as "Not authorized"
        await thread(mqtt.c.loop_stop)
        # HTTP: a wrong password and a malformed header
        bad = await http.post("/v1/publish/x", content=b"1", auth=("dev", "nope"))
        assert bad.status_code == 401
        worse = await http.post("/v1/publish/x", content=b"1",
                                headers={"Authorization": "Basic !!!"})
        assert worse.status_code == 401
        # a good login counts nothing
        good = await http.post("/v1/publish/x", content=b"1", auth=("dev", "pw"))
        assert good.status_code == 202

        after = await scrape(http)
        got = {door: after.value("jetport_auth_failures", door=door)
               for door in ("nats", "websocket", "mqtt", "http")}
        assert got == {"nats": 1, "websocket": 1, "mqtt": 1, "http": 2}


async def test_counters_keep_closed_connections(users_hub):
    hub = users_hub
    n, size = 250, 7
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}",
                                 timeout=10) as http:
        varz0 = (await http.get("/varz")).json()
        first = await scrape(http)
        in0 = first.value("jetport_messages_in", door="nats", account="$G")
        bytes0 = first.value("jetport_bytes_in", door="nats", account="$G")
        # a client that publishes and goes away between two scrapes
        nc = await nats.connect(hub.url, user="dev", password="pw")
        for _ in range(n):
            await nc.publish("gone.x", b"x" * size)
        await nc.flush()
        await nc.close()
        # and an MQTT client, also gone before the scrape
        mqtt = Paho(hub.mqtt_port, "short", user="dev", password="pw")
        _, rc = await thread(mqtt.connect)
        assert rc_value(rc) == 0
        await thread(mqtt.publish, "gone/m", b"abc", 1)
        await thread(mqtt.close)
        for _ in range(50):
            conns = (await http.get("/connz", auth=("admin", "adm"))).json()["num_connections"]
            if conns == 0:
                break
            await asyncio.sleep(0.05)
        after = await scrape(http)
        assert after.value("jetport_connections", door="nats") == 0
        assert after.value("jetport_connections", door="mqtt") == 0
        assert after.value("jetport_messages_in", door="nats", account="$G") == in0 + n
        assert after.value("jetport_bytes_in", door="nats", account="$G") == bytes0 + n * size
        assert after.value("jetport_messages_in", door="mqtt", account="$G") >= 1
        assert after.value("jetport_bytes_in", door="mqtt", account="$G") >= 3
        varz = (await http.get("/varz")).json()
        assert varz["in_msgs"] >= varz0["in_msgs"] + n + 1
        assert varz["in_bytes"] >= varz0["in_bytes"] + n * size + 3
        # counters never go down from one scrape to the next
        again = await scrape(http)
        for name in ("jetport_messages_in", "jetport_bytes_in", "jetport_messages_out",
                     "jetport_bytes_out"):
            for door in ("nats", "mqtt", "http"):
                assert again.value(name, door=door) >= after.value(name, door=door)


async def test_connections_per_door(users_hub):
    hub = users_hub
    nc = await nats.connect(hub.url, user="dev", password="pw")
    mqtt = Paho(hub.mqtt_port, "live", user="dev", password="pw")
    _, rc = await thread(mqtt.connect)
    assert rc_value(rc) == 0
    async with websockets.connect(f"ws://127.0.0.1:{hub.ws_port}") as ws, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}",
                              auth=("dev", "pw"), timeout=10) as http:
        assert (await frame(ws)).startswith("INFO")
        await ws.send(b'CONNECT {"user":"dev","pass":"pw","verbose":false}\r\nPING\r\n')
        assert "PONG" in await frame(ws)
        async with http.stream("GET", "/v1/subscribe/live.>") as sse:
            assert sse.status_code == 200
            m = await scrape(http)
            assert m.value("jetport_connections", door="nats") == 1
            assert m.value("jetport_connections", door="websocket") == 1
            assert m.value("jetport_connections", door="mqtt") == 1
            assert m.value("jetport_connections", door="http") == 1
    await thread(mqtt.close)
    await nc.close()


async def test_auth_failures_survive_a_reload(users_hub):
    hub = users_hub
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}",
                                 timeout=10) as http:
        # before any scrape: one NATS and one HTTP failure
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(hub.url, user="dev", password="wrong", allow_reconnect=False,
                               connect_timeout=2, max_reconnect_attempts=0)
        assert (await http.get("/v1/streams", auth=("dev", "no"))).status_code == 401
        hub.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "Reloaded" in hub.log() or "reloaded" in hub.log():
                break
            await asyncio.sleep(0.05)
        assert (await http.get("/v1/streams", auth=("dev", "no"))).status_code == 401
        m = await scrape(http)
        assert m.value("jetport_auth_failures", door="nats") == 1
        assert m.value("jetport_auth_failures", door="http") == 2
