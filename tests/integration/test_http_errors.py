"""Error paths of the HTTP door beyond the happy ones: every limit answers 429, oversize
413, failed expectations 409, odd input 400, and none of it is ever a 500."""

from __future__ import annotations

import httpx
import pytest
from test_http_api import err, http_fixture, js_hub_fixture, make_stream  # noqa: F401

LIMITED = """
http: "127.0.0.1:-1"
jetstream {{ store_dir: "{store}" }}
accounts {{
  A {{
    jetstream {{ max_streams: 1, max_consumers: 2, max_file: 1MB, max_mem: 1MB }}
    users [ {{ user: a, password: pa }} ]
  }}
}}
"""


async def test_limits_answer_429(http):
    await make_stream(http, "C", ["c"], max_consumers=1)
    assert (await http.post("/v1/streams/C/consumers", json={"durable_name": "one"})
            ).status_code == 201
    second = await http.post("/v1/streams/C/consumers", json={"durable_name": "two"})
    assert second.status_code == 429 and err(second)["err_code"] == 10026
    await make_stream(http, "B", ["b"], max_bytes=400, discard="new")
    assert (await http.post("/v1/publish/b", content=b"x" * 200)).status_code == 200
    full = await http.post("/v1/publish/b", content=b"x" * 300)
    assert full.status_code == 429
    # per-subject limit with discard new
    await make_stream(http, "P", ["p.*"], max_msgs_per_subject=1, discard="new",
                      discard_new_per_subject=True)
    assert (await http.post("/v1/publish/p.a", content=b"1")).status_code == 200
    assert (await http.post("/v1/publish/p.a", content=b"2")).status_code == 429
    assert (await http.post("/v1/publish/p.b", content=b"3")).status_code == 200
    # a KV bucket at its size limit
    await http.post("/v1/kv", json={"bucket": "small", "max_bytes": 300})
    assert (await http.put("/v1/kv/small/keys/a", content=b"x" * 100)).status_code == 200
    over = await http.put("/v1/kv/small/keys/b", content=b"x" * 250)
    assert over.status_code == 429, over.text


async def test_account_limits_answer_429(tmp_path, launch):
    conf = tmp_path / "limited.conf"
    conf.write_text(LIMITED.format(store=tmp_path / "store"))
    hub = launch("-c", str(conf))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}",
                                 auth=("a", "pa"), timeout=10) as http:
        assert (await http.post("/v1/streams", json={"name": "ONE", "subjects": ["one"]})
                ).status_code == 201
        two = await http.post("/v1/streams", json={"name": "TWO", "subjects": ["two"]})
        assert two.status_code == 429 and err(two)["err_code"] == 10027
        big = await http.put("/v1/streams/ONE", json={"subjects": ["one"],
                                                      "max_bytes": 10 << 20})
        assert big.status_code in (400, 429), big.text
        for name in ("c1", "c2"):
            assert (await http.post("/v1/streams/ONE/consumers",
                                    json={"durable_name": name})).status_code == 201
        third = await http.post("/v1/streams/ONE/consumers", json={"durable_name": "c3"})
        assert third.status_code == 429 and err(third)["err_code"] == 10026


async def test_expectations_answer_409(http):
    await make_stream(http, "E", ["e.>"])
    first = (await http.post("/v1/publish/e.1", content=b"1")).json()
    assert first["seq"] == 1
    ok = await http.post("/v1/publish/e.1", content=b"2",
                         headers={"Nats-Expected-Last-Sequence": "1"})
    assert ok.json()["seq"] == 2
    for headers, code in (({"Nats-Expected-Last-Sequence": "1"}, 10071),
                          ({"Nats-Expected-Last-Subject-Sequence": "1"}, 10071),
                          ({"Nats-Expected-Last-Msg-Id": "nope"}, 10070),
                          ({"Nats-Expected-Stream": "OTHER"}, 10060)):
        resp = await http.post("/v1/publish/e.1", content=b"x", headers=headers)
        assert resp.status_code == 409, headers
        assert err(resp)["err_code"] == code, headers
    # the batch endpoint reports the same failure per message, without failing the rest
    batch = await http.post("/v1/publish", json={"messages": [
        {"subject": "e.2", "data": "ok"},
        {"subject": "e.2", "data": "no", "headers": {"Nats-Expected-Last-Sequence": "1"}}]})
    acks = batch.json()["acks"]
    assert acks[0]["seq"] == 3 and acks[1]["error"]["err_code"] == 10071


@pytest.mark.parametrize("method,path,kwargs", [
    ("post", "/v1/streams", {"content": b"\xff\xfe"}),
    ("post", "/v1/streams", {"json": []}),
    ("post", "/v1/streams", {"json": {"name": "X", "subjects": ["x"], "max_msgs": "many"}}),
    ("post", "/v1/streams", {"json": {"name": "X", "subjects": ["a..b"]}}),
    ("post", "/v1/streams", {"json": {"name": "X", "subjects": ["x"], "retention": "x"}}),
    ("get", "/v1/streams/S/messages?start_seq=-1", {}),
    ("get", "/v1/streams/S/messages?start_seq=99999999999999999999999", {}),
    ("get", "/v1/streams/S/messages/abc", {}),
    ("get", "/v1/streams/%FF/messages", {}),
    ("post", "/v1/publish/x?timeout=-1", {"content": b"x"}),
    ("post", "/v1/publish", {"json": {"messages": [{"subject": "x", "headers": {"": "v"}}]}}),
    ("post", "/v1/publish", {"json": {"messages": [{"subject": "x",
                                                    "headers": {"K": "a\r\nb"}}]}}),
    ("post", "/v1/streams/S/consumers/C/fetch?batch=0", {}),
    ("post", "/v1/streams/S/consumers/C/fetch?batch=100000000", {}),
    ("post", "/v1/streams/S/consumers/C/fetch?wait=-3", {}),
    ("put", "/v1/kv/b/keys/k?revision=-5", {"content": b"v"}),
    ("get", "/v1/kv/b/history/a..b", {}),
    ("post", "/v1/kv", {"json": {"bucket": "x", "ttl": "soon"}}),
    ("put", "/v1/objects/%2E%2E/x", {"content": b"v"}),
    ("get", "/v1/subscribe/s.x?start_seq=0", {}),
    ("get", "/v1/subscribe/s.x?stream=a.b", {}),
    ("post", "/v1/ack", {"json": {"tokens": ["$JS.ACK.a"]}}),
    ("get", "/v1/subscribe/x?heartbeat=-1", {}),
])
async def test_bad_input_is_a_4xx_never_a_500(http, method, path, kwargs):
    await make_stream(http, "S", ["s.>"])
    await http.post("/v1/streams/S/consumers", json={"durable_name": "C"})
    await http.post("/v1/kv", json={"bucket": "b"})
    resp = await getattr(http, method)(path, **kwargs)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    err(resp)
