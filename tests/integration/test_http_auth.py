"""Authentication, permissions and account isolation through the HTTP door: the same
users, permissions and accounts as the NATS door, checked on every endpoint."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

ACCOUNTS = """
jetstream {{ store_dir: "{store}" }}
http: "127.0.0.1:-1"
monitoring_auth: none
accounts {{
  A {{
    jetstream: enabled
    users [
      {{ user: a, password: pa }}
      {{ user: limited, password: pl, permissions: {{
          publish: ["allowed.>", "$JS.API.STREAM.INFO.*"], subscribe: ["allowed.>"] }} }}
    ]
  }}
  B {{ jetstream: enabled, users [ {{ user: b, password: pb }} ] }}
}}
"""


@pytest.fixture
def accounts_hub(tmp_path, launch):
    conf = tmp_path / "accounts.conf"
    conf.write_text(ACCOUNTS.format(store=tmp_path / "store"))
    return launch("-c", str(conf))


def client_for(server, user: str | None = None, password: str = "") -> httpx.AsyncClient:
    auth = httpx.BasicAuth(user, password) if user else None
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", auth=auth,
                             timeout=10)


async def auth_failures(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    for fam in text_string_to_metric_families(text):
        if fam.name == "jetport_auth_failures":
            return sum(s.value for s in fam.samples if s.labels.get("door") == "http")
    raise AssertionError("no jetport_auth_failures")


async def test_credentials_are_required(accounts_hub):
    async with client_for(accounts_hub) as anon, client_for(accounts_hub, "a", "bad") as bad:
        before = await auth_failures(anon)
        for resp in (await anon.post("/v1/publish/x", content=b"1"),
                     await bad.post("/v1/publish/x", content=b"1"),
                     await anon.get("/v1/streams"),
                     await anon.get("/v1/subscribe/x"),
                     await anon.get("/v1/kv/b/keys/k"),
                     await anon.post("/v1/publish/x", content=b"1",
                                     headers={"Authorization": "Bearer nope"}),
                     await anon.post("/v1/publish/x", content=b"1",
                                     headers={"Authorization": "Basic !!!"}),
                     await anon.post("/v1/publish/x", content=b"1",
                                     headers={"Authorization": "Digest x"})):
            assert resp.status_code == 401
            assert resp.json()["error"]["code"] == 401
            assert resp.headers["www-authenticate"].startswith("Basic")
        assert await auth_failures(anon) >= before + 5
        # monitoring stays open, as nats-server's
        assert (await anon.get("/healthz")).status_code == 200


async def test_accounts_are_isolated(accounts_hub):
    async with client_for(accounts_hub, "a", "pa") as a, client_for(accounts_hub, "b", "pb") as b:
        assert (await a.post("/v1/streams", json={"name": "S", "subjects": ["s.>"]})
                ).status_code == 201
        assert (await b.get("/v1/streams/S")).status_code == 404
        assert (await b.get("/v1/streams")).json()["total"] == 0
        assert (await b.post("/v1/streams", json={"name": "S", "subjects": ["s.>"]})
                ).status_code == 201
        assert (await a.post("/v1/publish/s.1", content=b"A")).json() == {
            "stream": "S", "seq": 1, "duplicate": False}
        only_a = (await a.get("/v1/streams/S/messages")).json()["messages"]
        assert [m["data"] for m in only_a] == ["A"]
        assert (await b.get("/v1/streams/S/messages")).json()["messages"] == []
        # core messages stay in the account too, over NATS and SSE
        nb = await nats.connect(accounts_hub.url, user="b", password="pb")
        na = await nats.connect(accounts_hub.url, user="a", password="pa")
        sub_b = await nb.subscribe("core.x")
        sub_a = await na.subscribe("core.x")
        await nb.flush()
        await na.flush()
        async with b.stream("GET", "/v1/subscribe/core.x") as sse_b:
            lines = sse_b.aiter_lines()
            assert await lines.__anext__() == ": subscribed"
            sent = await a.post("/v1/publish/core.x", content=b"for A")
            assert sent.json()["receivers"] == 1
            assert (await sub_a.next_msg(timeout=2)).data == b"for A"
            with pytest.raises(nats.errors.TimeoutError):
                await sub_b.next_msg(timeout=0.3)
            await b.post("/v1/publish/core.x", content=b"for B")
            assert (await sub_b.next_msg(timeout=2)).data == b"for B"
            got = []
            async for line in lines:
                if line.startswith("data: "):
                    got.append(line)
                    break
            assert '"for B"' in got[0]
        await na.close()
        await nb.close()


async def test_permissions_apply_to_every_endpoint(accounts_hub):
    async with client_for(accounts_hub, "limited", "pl") as lim, \
            client_for(accounts_hub, "a", "pa") as a:
        await a.post("/v1/streams", json={"name": "P", "subjects": ["allowed.s", "p.>"]})
        ok = await lim.post("/v1/publish/allowed.x", content=b"1")
        assert ok.status_code == 202
        for resp in (await lim.post("/v1/publish/denied", content=b"1"),
                     await lim.post("/v1/request/denied", content=b"1"),
                     await lim.post("/v1/publish", json={"messages": [
                         {"subject": "allowed.y"}, {"subject": "denied"}]}),
                     await lim.get("/v1/subscribe/denied.>"),
                     await lim.get("/v1/streams"),
                     await lim.delete("/v1/streams/P"),
                     await lim.get("/v1/streams/P/messages"),
                     await lim.put("/v1/kv/b/keys/k", content=b"v"),
                     await lim.post("/v1/ack", json={"tokens": ["$JS.ACK.P.C.1.1.1.1.0"]})):
            assert resp.status_code == 403, resp.request.url
            err = resp.json()["error"]
            assert err["code"] == 403 and "permissions violation" in err["description"]
        # allowed API subjects work
        assert (await lim.get("/v1/streams/P")).json()["config"]["name"] == "P"
        assert (await a.get("/v1/streams/P")).status_code == 200
        # a batch with one denied subject publishes nothing
        assert (await a.get("/v1/streams/P")).json()["state"]["messages"] == 0
        async with lim.stream("GET", "/v1/subscribe/allowed.>") as resp:
            assert resp.status_code == 200
        await asyncio.sleep(0)


TOKEN = """
http: "127.0.0.1:-1"
authorization {{ token: "{token}" }}
"""


async def test_bearer_token(tmp_path, launch):
    conf = tmp_path / "token.conf"
    conf.write_text(TOKEN.format(token="s3cret"))
    hub = launch("-c", str(conf))
    async with client_for(hub) as http:
        good = await http.post("/v1/publish/t", content=b"1",
                               headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 202
        bad = await http.post("/v1/publish/t", content=b"1",
                              headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        assert (await http.post("/v1/publish/t", content=b"1")).status_code == 401


NO_AUTH_USER = """
http: "127.0.0.1:-1"
accounts { A { users [ { user: a, password: pa } ] } }
no_auth_user: a
"""


async def test_no_auth_user_maps_anonymous_callers(tmp_path, launch):
    conf = tmp_path / "noauth.conf"
    conf.write_text(NO_AUTH_USER)
    hub = launch("-c", str(conf))
    na = await nats.connect(hub.url, user="a", password="pa")
    sub = await na.subscribe("who")
    await na.flush()
    async with client_for(hub) as anon:
        assert (await anon.post("/v1/publish/who", content=b"anon")).json()["receivers"] == 1
    assert (await sub.next_msg(timeout=2)).data == b"anon"
    await na.close()
