"""The console's own routes (/v1/console/...): what each caller may see and do, paging
and sorting bounds, and the page itself at /. Jetport only: nats-server has no console."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest

CONF = """
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
accounts {{
  APP: {{ jetstream: enabled, users: [ {{ user: alice, password: apw }} ] }}
  OTHER: {{ users: [ {{ user: bob, password: bpw }} ] }}
  SYS: {{ users: [ {{ user: admin, password: spw }} ] }}
}}
system_account: SYS
"""


@pytest.fixture
async def hub(launch, tmp_path):
    server = launch.conf(CONF.format(store=tmp_path / "js"))
    conns = []
    for i, (user, pw) in enumerate([("alice", "apw")] * 3 + [("bob", "bpw")] * 2):
        nc = await nats.connect(server.url, user=user, password=pw, name=f"c{i}")
        for _ in range(i):
            await nc.publish("x", b"y")
        await nc.flush()
        conns.append(nc)
    server.base = f"http://127.0.0.1:{server.http_port}"
    yield server
    for nc in conns:
        if nc.is_connected:
            await nc.close()


def _http(hub, user: str, pw: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.base, auth=(user, pw), timeout=5)


async def test_a_user_sees_only_their_account_and_the_system_account_all(hub) -> None:
    async with _http(hub, "alice", "apw") as alice, _http(hub, "admin", "spw") as admin:
        mine = (await alice.get("/v1/console/clients")).json()
        assert mine["total"] == 3
        assert {c["account"] for c in mine["connections"]} == {"APP"}
        other = await alice.get("/v1/console/clients", params={"account": "OTHER"})
        assert other.status_code == 403, other.text
        view = (await alice.get("/v1/console/overview")).json()
        assert view["caller"] == {"user": "alice", "account": "APP", "scope": "APP",
                                  "auth": True}
        nats_door = next(d for d in view["doors"] if d["name"] == "nats")
        assert nats_door["connections"] == 3
        assert view["warnings"]["auth_failures"] is None

        everything = (await admin.get("/v1/console/clients", params={"limit": 1024})).json()
        connz = (await admin.get("/connz")).json()
        assert everything["total"] == connz["total"] == 5
        bob = (await admin.get("/v1/console/clients",
                               params={"account": "OTHER", "door": "nats"})).json()
        assert [c["name"] for c in bob["connections"]] == ["c3", "c4"]
        view = (await admin.get("/v1/console/overview")).json()
        assert view["caller"]["scope"] is None
        assert next(d for d in view["doors"] if d["name"] == "nats")["connections"] == 5
        assert view["warnings"]["auth_failures"]["nats"] == 0


async def test_clients_are_paged_and_sorted_as_connz(hub) -> None:
    async with _http(hub, "admin", "spw") as admin:
        page = (await admin.get("/v1/console/clients",
                                params={"sort": "msgs_from", "limit": 2, "offset": 1})).json()
        assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
        assert [c["name"] for c in page["connections"]] == ["c3", "c2"]
        assert [c["door"] for c in page["connections"]] == ["nats", "nats"]
        for params in ({"limit": 1025}, {"limit": 0}, {"offset": -1}, {"sort": "nope"}):
            r = await admin.get("/v1/console/clients", params=params)
            assert r.status_code == 400, (params, r.text)
        r = await admin.get("/v1/console/mqtt/sessions", params={"limit": 5000})
        assert r.status_code == 400


async def test_only_the_system_account_disconnects_a_client(hub) -> None:
    async with _http(hub, "alice", "apw") as alice, _http(hub, "admin", "spw") as admin:
        cid = (await alice.get("/v1/console/clients")).json()["connections"][0]["cid"]
        refused = await alice.post(f"/v1/console/clients/{cid}/disconnect")
        assert refused.status_code == 403, refused.text
        assert (await admin.post("/v1/console/clients/99999/disconnect")).status_code == 404
        done = await admin.post(f"/v1/console/clients/{cid}/disconnect")
        assert done.json() == {"success": True, "cid": cid}
        for _ in range(50):
            closed = (await admin.get("/connz", params={"state": "closed"})).json()
            if closed["connections"]:
                break
            await asyncio.sleep(0.02)
        assert [(c["cid"], c["reason"]) for c in closed["connections"]] == [(cid, "Kicked")]


async def test_the_page_is_open_and_the_console_gets_no_browser_challenge(hub) -> None:
    async with httpx.AsyncClient(base_url=hub.base, timeout=5) as anon:
        page = await anon.get("/")
        assert page.status_code == 200 and "Jetport console" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        script = await anon.get("/console/js/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        plain = await anon.get("/v1/console/overview")
        assert plain.status_code == 401 and "www-authenticate" in plain.headers
        console = await anon.get("/v1/console/overview", headers={"X-Jetport-Console": "1"})
        assert console.status_code == 401 and "www-authenticate" not in console.headers


async def test_kv_keys_and_object_listings_stop_at_their_limit(hub) -> None:
    async with _http(hub, "alice", "apw") as alice:
        assert (await alice.post("/v1/kv", json={"bucket": "cfg"})).status_code == 201
        for key in ("a", "b", "c"):
            assert (await alice.put(f"/v1/kv/cfg/keys/{key}", content=b"1")).is_success
        assert (await alice.get("/v1/kv/cfg/keys", params={"limit": 2})).json() == {
            "keys": ["a", "b"]}
        assert len((await alice.get("/v1/kv/cfg/keys")).json()["keys"]) == 3
        assert (await alice.post("/v1/objects", json={"bucket": "files"})).status_code == 201
        for name in ("x", "y"):
            assert (await alice.put(f"/v1/objects/files/{name}", content=b"data")).is_success
        listed = (await alice.get("/v1/objects/files", params={"limit": 1})).json()
        assert [o["name"] for o in listed["objects"]] == ["x"]
        assert (await alice.get("/v1/kv/cfg/keys", params={"limit": 0})).status_code == 400
        assert (await alice.get("/v1/console/streams")).status_code == 403
    async with _http(hub, "admin", "spw") as admin:
        every = (await admin.get("/v1/console/streams", params={"limit": 1})).json()
        assert (every["total"], every["limit"]) == (2, 1)
        assert [(s["account"], s["config"]["name"]) for s in every["streams"]] == [
            ("APP", "KV_cfg")]
        assert every["streams"][0]["state"]["messages"] == 3
