"""Monitoring endpoints in nats-server's shapes (run against both servers), and
/metrics in Prometheus' text format."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

CONF = """
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
"""


async def _setup(server) -> nats.NATS:
    nc = await nats.connect(server.url, name="watcher")
    await nc.subscribe("mon.a")
    await nc.subscribe("mon.*", queue="q")
    js = nc.jetstream()
    await js.add_stream(name="MON", subjects=["mon.>"])
    await js.publish("mon.a", b"x")
    await js.add_consumer("MON", durable_name="C", ack_policy="explicit")
    await nc.flush()
    return nc


@pytest.mark.differential
async def test_monitoring_shapes(launch, tmp_path):
    server = launch.conf(CONF.format(store=tmp_path / f"store-{launch.target}"))
    nc = await _setup(server)
    base = f"http://127.0.0.1:{server.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        health = await http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (await http.get("/healthz?js-enabled-only=true")).json() == {"status": "ok"}
        ok = await http.get("/healthz", params={"account": "$G", "stream": "MON"})
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        missing = await http.get("/healthz", params={"account": "$G", "stream": "NO"})
        assert missing.status_code == 404
        assert missing.json() == {"status": "unavailable",
                                  "error": 'JetStream stream "NO" not found on account "$G"'}
        bad = await http.get("/healthz?stream=x")
        assert (bad.status_code, bad.json()) == (400, {
            "status": "error",
            "error": '"account" must not be empty when checking stream health'})

        subsz = (await http.get("/subsz")).json()
        for key in ("server_id", "now", "num_subscriptions", "num_cache", "num_inserts",
                    "num_removes", "num_matches", "cache_hit_rate", "max_fanout",
                    "avg_fanout", "total", "offset", "limit"):
            assert key in subsz, key
        assert "subscriptions_list" not in subsz
        detail = (await http.get("/subsz?subs=1&acc=$G")).json()
        mine = [s for s in detail["subscriptions_list"] if s["subject"] in ("mon.a", "mon.*")]
        assert sorted((s["subject"], s.get("qgroup")) for s in mine) == [
            ("mon.*", "q"), ("mon.a", None)]
        assert all({"account", "subject", "sid", "msgs", "cid"} <= set(s) for s in mine)

        jsz = (await http.get("/jsz")).json()
        for key in ("memory", "storage", "reserved_memory", "reserved_storage", "accounts",
                    "ha_assets", "api", "server_id", "now", "config", "streams",
                    "consumers", "messages", "bytes", "total"):
            assert key in jsz, key
        assert (jsz["streams"], jsz["consumers"], jsz["messages"]) == (1, 1, 1)
        assert jsz["api"]["level"] >= 1
        assert "account_details" not in jsz
        full = (await http.get("/jsz?accounts=true&streams=true&consumers=true&config=true"))
        acc = full.json()["account_details"][0]
        assert acc["name"] == "$G"
        stream = acc["stream_detail"][0]
        assert stream["name"] == "MON" and stream["state"]["messages"] == 1
        assert stream["config"]["subjects"] == ["mon.>"]
        consumer = stream["consumer_detail"][0]
        assert consumer["name"] == "C" and consumer["num_pending"] == 1

        accountz = (await http.get("/accountz")).json()
        assert {"server_id", "now", "system_account", "accounts"} <= set(accountz)
        assert "$G" in accountz["accounts"]
        one = (await http.get("/accountz?acc=$G")).json()["account_detail"]
        for key in ("account_name", "update_time", "expired", "complete",
                    "jetstream_enabled", "leafnode_connections", "client_connections",
                    "subscriptions"):
            assert key in one, key
        assert one["account_name"] == "$G" and one["client_connections"] >= 1
        assert one["jetstream_enabled"] is True

        connz = (await http.get("/connz?subs=1")).json()
        conn = next(c for c in connz["connections"] if c.get("name") == "watcher")
        assert set(conn["subscriptions_list"]) >= {"mon.a", "mon.*"}
        for resp in (await http.get("/varz"), health):
            assert resp.headers["content-type"].startswith("application/json")
    await nc.close()


async def test_metrics_parse(launch, tmp_path):
    hub = launch("-js", "-sd", str(tmp_path / "store"), "-m", "-1")
    nc = await _setup(hub)
    sub = await nc.subscribe("plain")
    await nc.publish("plain", b"12345")
    await sub.next_msg(timeout=2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        await http.post("/v1/publish/mon.b", content=b"abc")
        await http.post("/v1/publish", json={"messages": [{"subject": "z", "data": "1"}] * 3})
        await asyncio.sleep(0.05)
        resp = await http.get("/metrics")
        assert resp.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(resp.text)}

        def value(name: str, **labels) -> float:
            return sum(s.value for s in families[name].samples
                       if s.name in (name, name + "_total")
                       and all(s.labels.get(k) == v for k, v in labels.items()))

        assert value("jetport_connections", door="nats") == 1
        assert value("jetport_messages_in", door="nats", account="$G") >= 2
        assert value("jetport_messages_out", door="nats", account="$G") >= 1
        assert value("jetport_bytes_in", door="nats", account="$G") >= 6
        assert value("jetport_messages_in", door="http", account="$G") == 4
        assert value("jetport_bytes_in", door="http", account="$G") == 6
        assert value("jetport_stream_messages", account="$G", stream="MON") == 2
        assert value("jetport_stream_bytes", account="$G", stream="MON") > 0
        assert value("jetport_consumer_pending", stream="MON", consumer="C") == 2
        assert value("jetport_consumer_ack_pending", stream="MON", consumer="C") == 0
        assert "jetport_slow_consumers" in families
        assert "jetport_auth_failures" in families
        commit = families["jetport_storage_commit_seconds"]
        count = [s.value for s in commit.samples if s.name.endswith("_count")]
        assert count == [1.0]
        # counters keep what a closed connection did
        await nc.close()
        await asyncio.sleep(0.1)
        again = {f.name: f for f in text_string_to_metric_families(
            (await http.get("/metrics")).text)}
        families = again
        assert value("jetport_messages_in", door="nats", account="$G") >= 2
        assert value("jetport_connections", door="nats") == 0


async def test_access_log_and_request_ids(launch):
    hub = launch("-D", "-m", "-1")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        given = await http.get("/varz", headers={"X-Request-Id": "trace-42"})
        assert given.headers["x-request-id"] == "trace-42"
        fresh = await http.post("/v1/publish/x", content=b"1")
        rid = fresh.headers["x-request-id"]
        assert len(rid) == 16
    await asyncio.sleep(0.1)
    log = hub.log()
    assert '"request_id":"trace-42","method":"GET","path":"/varz","status":200' in log
    assert f'"request_id":"{rid}","method":"POST","path":"/v1/publish/x","status":202' in log


# -- who may read the pages that name clients, users, streams and accounts -----------

NAMING_PAGES = ("/connz", "/subsz", "/subscriptionsz", "/jsz", "/accountz", "/metrics")
OPEN_PAGES = ("/healthz", "/varz")
GUARDED = """
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
accounts {{
  APP {{ users: [ {{ user: app, password: pa }} ] }}
  SYS {{ users: [ {{ user: admin, password: adm }} ] }}
}}
system_account: SYS
{extra}
"""


def _guarded_hub(launch, tmp_path, extra: str = ""):
    conf = tmp_path / "guarded.conf"
    conf.write_text(GUARDED.format(store=tmp_path / "store", extra=extra))
    return launch("-c", str(conf))


async def test_naming_pages_answer_only_system_users_once_auth_is_configured(launch, tmp_path):
    hub = _guarded_hub(launch, tmp_path)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        for page in NAMING_PAGES:
            anonymous = await http.get(page)
            assert anonymous.status_code == 401, page
            assert anonymous.headers["www-authenticate"].startswith("Basic")
            assert anonymous.json()["error"]["err_code"] == 10401
            assert "app" not in anonymous.text and "APP" not in anonymous.text
            app = await http.get(page, auth=("app", "pa"))
            assert app.status_code == 403, page
            assert app.json()["error"]["code"] == 403
            assert (await http.get(page, auth=("admin", "adm"))).status_code == 200, page
        for page in OPEN_PAGES:
            assert (await http.get(page)).status_code == 200, page


async def test_monitoring_auth_none_opens_the_naming_pages(launch, tmp_path):
    hub = _guarded_hub(launch, tmp_path, "monitoring_auth: none")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        for page in NAMING_PAGES:
            assert (await http.get(page)).status_code == 200, page


async def test_without_authorization_the_naming_pages_stay_open(launch, tmp_path):
    hub = launch("-m", "-1", "-js", "-sd", str(tmp_path / "store"))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        for page in NAMING_PAGES:
            assert (await http.get(page)).status_code == 200, page
