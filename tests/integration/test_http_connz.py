"""Monitoring queries in detail, run against Jetport and nats-server from one config:
/connz paging, sorting and subscription detail, /subsz test subjects, /varz totals that
keep closed connections, /accountz and /healthz edge cases, and the refusals' messages."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest
from servers import free_port

PLAIN = 'http: "127.0.0.1:-1"\n'
JS = 'http: "127.0.0.1:-1"\njetstream {{ store_dir: "{store}" }}\n'


async def _clients(server) -> list[nats.NATS]:
    """c0 with 1 subscription and 0 messages sent, c1 with 2 and 2, c2 with 3 and 4."""
    out = []
    for i in range(3):
        nc = await nats.connect(server.url, name=f"c{i}")
        for j in range(i + 1):
            await nc.subscribe(f"s{i}.{j}", queue="q" if j == 0 else "")
        for _ in range(i * 2):
            await nc.publish("nobody", b"abc")
        await nc.flush()
        out.append(nc)
    return out


def http_of(server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10)


def names(doc: dict) -> list[str]:
    return [c.get("name") for c in doc["connections"]]


@pytest.mark.differential
async def test_connz_paging_sorting_and_subscriptions(launch):
    server = launch.conf(PLAIN)
    ncs = await _clients(server)
    async with http_of(server) as http:
        page = (await http.get("/connz?limit=2&offset=1")).json()
        assert (page["num_connections"], page["total"], page["offset"], page["limit"]) == (
            2, 3, 1, 2)
        assert names(page) == ["c1", "c2"]
        # limits below 1 and negative offsets fall back to nats-server's defaults
        loose = (await http.get("/connz?limit=-1&offset=-5")).json()
        assert (loose["limit"], loose["offset"], names(loose)) == (1024, 0, ["c0", "c1", "c2"])
        assert names((await http.get("/connz?sort=msgs_from")).json()) == ["c2", "c1", "c0"]
        assert names((await http.get("/connz?sort=bytes_from")).json()) == ["c2", "c1", "c0"]
        assert names((await http.get("/connz?sort=subs&limit=1")).json()) == ["c2"]
        assert names((await http.get("/connz?sort=start")).json()) == ["c0", "c1", "c2"]
        c2 = (await http.get("/connz?sort=subs&limit=1")).json()["connections"][0]
        assert (c2["subscriptions"], c2["in_msgs"], c2["in_bytes"]) == (3, 4, 12)
        assert "subscriptions_list" not in c2 and "subscriptions_list_detail" not in c2

        listed = (await http.get("/connz?subs=1&sort=subs&limit=1")).json()["connections"][0]
        assert sorted(listed["subscriptions_list"]) == ["s2.0", "s2.1", "s2.2"]
        assert "subscriptions_list_detail" not in listed
        detail = (await http.get("/connz?subs=detail&sort=subs&limit=1")).json()
        conn = detail["connections"][0]
        assert "subscriptions_list" not in conn
        subs = sorted(conn["subscriptions_list_detail"], key=lambda s: s["subject"])
        assert [s["subject"] for s in subs] == ["s2.0", "s2.1", "s2.2"]
        assert [s.get("qgroup") for s in subs] == ["q", None, None]
        assert all(s["cid"] == conn["cid"] and s["msgs"] == 0 for s in subs)
        assert sorted(s["sid"] for s in subs) == ["1", "2", "3"]

        # one connection by cid: limit 1, total still every connection
        one = (await http.get(f"/connz?cid={conn['cid']}")).json()
        assert (names(one), one["limit"], one["total"]) == (["c2"], 1, 3)
        none = (await http.get("/connz?cid=999999")).json()
        assert (none["connections"], none["total"]) == ([], 3)

        for query, message in (("sort=foo", "invalid sorting option: foo"),
                               ("sort=stop", "sort by stop only valid on closed connections"),
                               ("sort=reason",
                                "sort by reason only valid on closed connections")):
            resp = await http.get(f"/connz?{query}")
            assert (resp.status_code, resp.text) == (400, message), query
            assert resp.headers["content-type"].startswith("text/plain")
    for nc in ncs:
        await nc.close()


@pytest.mark.differential
async def test_subsz_test_subject_and_accountz_refusal(launch):
    server = launch.conf(PLAIN)
    ncs = await _clients(server)
    async with http_of(server) as http:
        # test filters the listed subscriptions only; without subs there is no list
        bare = (await http.get("/subsz?test=s1.0")).json()
        assert "subscriptions_list" not in bare and bare["total"] == 0
        hit = (await http.get("/subsz?subs=1&test=s1.0")).json()
        assert [(s["subject"], s.get("qgroup")) for s in hit["subscriptions_list"]] == [
            ("s1.0", "q")]
        assert hit["total"] == 1
        mine = [s for s in (await http.get("/subsz?subs=1")).json()["subscriptions_list"]
                if s["subject"].startswith("s")]
        assert len(mine) == 6
        wild = await http.get("/subsz?subs=1&test=s1.*")
        assert (wild.status_code, wild.text) == (
            400, "invalid test subject, must be valid publish subject: s1.*")
        unknown = await http.get("/accountz?acc=NOPE")
        assert (unknown.status_code, unknown.text) == (400, "Account NOPE does not exist")
    for nc in ncs:
        await nc.close()


@pytest.mark.differential
async def test_varz_totals_keep_closed_connections(launch):
    server = launch.conf(PLAIN)
    async with http_of(server) as http:
        before = (await http.get("/varz")).json()
        nc = await nats.connect(server.url)
        for _ in range(100):
            await nc.publish("gone", b"12345")
        await nc.flush()
        await nc.close()
        for _ in range(50):
            if (await http.get("/connz")).json()["num_connections"] == 0:
                break
            await asyncio.sleep(0.05)
        after = (await http.get("/varz")).json()
        assert after["in_msgs"] - before["in_msgs"] == 100
        assert after["in_bytes"] - before["in_bytes"] == 500
        assert after["connections"] == 0
        assert after["total_connections"] == before["total_connections"] + 1


@pytest.mark.differential
async def test_healthz_with_and_without_jetstream(launch, tmp_path):
    plain = launch.conf(PLAIN)
    async with http_of(plain) as http:
        for query in ("", "?js-enabled-only=true", "?js-server-only=true"):
            resp = await http.get(f"/healthz{query}")
            assert (resp.status_code, resp.json()) == (200, {"status": "ok"}), query
        jsz = (await http.get("/jsz")).json()
        assert jsz["disabled"] is True and jsz["streams"] == 0
    js = launch.conf(JS.format(store=tmp_path / f"js-{launch.target}"))
    nc = await nats.connect(js.url)
    await nc.jetstream().add_stream(name="H", subjects=["h"])
    await nc.jetstream().add_consumer("H", durable_name="D")
    async with http_of(js) as http:
        for query in ("?js-enabled-only=true", "?js-server-only=true",
                      "?account=$G&stream=H", "?account=$G&stream=H&consumer=D"):
            resp = await http.get(f"/healthz{query}")
            assert (resp.status_code, resp.json()) == (200, {"status": "ok"}), query
        gone = await http.get("/healthz?account=$G&stream=H&consumer=NOPE")
        assert gone.status_code == 404 and gone.json()["status"] == "unavailable"
        no_stream = await http.get("/healthz?account=$G&consumer=D")
        assert no_stream.status_code == 400
    await nc.close()


@pytest.mark.differential
async def test_listener_from_monitoring_settings(launch):
    """``http: host:port``, ``http_port:`` and ``-m PORT`` all open the same listener."""
    for text, flags in ((f'http: "127.0.0.1:{free_port()}"\n', ()),
                        (f"http_port: {free_port()}\n", ()),
                        ("", ("-m", str(free_port())))):
        server = launch.conf(text, *flags)
        want = int(flags[1]) if flags else int(text.rstrip('"\n').rsplit(":", 1)[1])
        assert server.http_port == want, server.log()
        async with http_of(server) as http:
            varz = (await http.get("/varz")).json()
            assert varz["http_port"] == want
            assert (await http.get("/healthz")).json() == {"status": "ok"}
        server.stop()


@pytest.mark.differential
async def test_connz_closed_connections(launch):
    """state=closed lists connections that ended, with stop time and nats-server's
    reason; state=all adds the open ones; an unknown state is refused."""
    server = launch.conf(PLAIN + "max_payload: 1024\n")
    keep = await nats.connect(server.url, name="keep")
    gone = await nats.connect(server.url, name="gone")
    await gone.subscribe("bye.>")
    await gone.publish("x", b"1")
    await gone.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readline()
    writer.write(b'CONNECT {"name":"big"}\r\nPUB x 2048\r\n')
    await writer.drain()
    await reader.read()
    writer.close()
    await asyncio.sleep(0.2)
    async with http_of(server) as http:
        closed = (await http.get("/connz?state=closed&subs=1")).json()
        by_name = {c.get("name"): c for c in closed["connections"]}
        assert {"gone", "big"} <= set(by_name) and "keep" not in by_name
        assert by_name["gone"]["reason"] == "Client Closed"
        assert by_name["big"]["reason"] == "Maximum Message Payload Exceeded"
        assert by_name["gone"]["subscriptions_list"] == ["bye.>"]
        assert by_name["gone"]["in_msgs"] == 1 and "stop" in by_name["gone"]
        every = (await http.get("/connz?state=all")).json()
        assert {"keep", "gone", "big"} <= set(names(every))
        assert names((await http.get("/connz")).json()) == ["keep"]
        refused = await http.get("/connz?state=nope")
        assert refused.status_code == 400 and "Error decoding state" in refused.text
    await keep.close()


@pytest.mark.differential
async def test_connz_shows_an_mqtt_clients_address(launch, tmp_path) -> None:
    import paho.mqtt.client as mqtt

    server = launch.conf(f'server_name: hub\n{PLAIN}'
                         f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\nmqtt {{ port: -1 }}\n')
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-1")
    client.connect("127.0.0.1", server.mqtt_port)
    client.loop_start()
    try:
        async with http_of(server) as http:
            for _ in range(100):
                conns = (await http.get("/connz")).json()["connections"]
                mine = [c for c in conns if c.get("mqtt_client") == "dev-1"]
                if mine:
                    break
                await asyncio.sleep(0.05)
        local = client.socket().getsockname()
        assert (mine[0]["ip"], mine[0]["port"]) == ("127.0.0.1", local[1])
    finally:
        client.loop_stop()
        client.disconnect()
