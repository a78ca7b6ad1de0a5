"""The HTTP door's REST API against a running hub: publish, request/reply, streams,
consumers, stored messages, pull fetches and acks, with their error paths."""

from __future__ import annotations

import base64

import httpx
import nats
from httphub import http_fixture, js_hub_fixture  # noqa: F401 - fixtures


def err(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "err_code", "description"}
    assert body["error"]["code"] == resp.status_code
    return body["error"]


async def make_stream(http, name="S", subjects=("s.>",), **extra) -> dict:
    resp = await http.post("/v1/streams", json={"name": name, "subjects": list(subjects),
                                                **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_publish_to_stream_answers_with_the_pub_ack(http):
    await make_stream(http)
    resp = await http.post("/v1/publish/s.one", content=b"hello",
                           headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200
    assert resp.json() == {"stream": "S", "seq": 1, "duplicate": False}
    # committed: the stored message is there at once
    got = (await http.get("/v1/streams/S/messages/1")).json()
    assert got["subject"] == "s.one" and got["data"] == "hello" and got["seq"] == 1


async def test_msg_id_dedupes_and_expected_headers_conflict(http):
    await make_stream(http)
    h = {"Nats-Msg-Id": "abc"}
    assert (await http.post("/v1/publish/s.a", content=b"1", headers=h)).json()["seq"] == 1
    dup = (await http.post("/v1/publish/s.a", content=b"1", headers=h)).json()
    assert dup == {"stream": "S", "seq": 1, "duplicate": True}
    bad = await http.post("/v1/publish/s.a", content=b"2",
                          headers={"Nats-Expected-Last-Sequence": "7"})
    assert bad.status_code == 409
    assert err(bad)["err_code"] == 10071
    bad = await http.post("/v1/publish/s.a", content=b"2",
                          headers={"Nats-Expected-Stream": "OTHER"})
    assert bad.status_code == 409 and err(bad)["err_code"] == 10060
    ok = await http.post("/v1/publish/s.a", content=b"2",
                         headers={"Nats-Expected-Last-Subject-Sequence": "1"})
    assert ok.json()["seq"] == 2


async def test_headers_by_prefix_and_json_envelope(http):
    await make_stream(http)
    await http.post("/v1/publish/s.h", content=b"x",
                    headers={"X-Nats-Header-Trace-Id": "t1", "X-Ignored": "no"})
    env = {"data": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64",
           "headers": {"Kind": "bin"}}
    resp = await http.post("/v1/publish/s.h", json=env,
                           headers={"Content-Type": "application/vnd.jetport.message+json"})
    assert resp.json()["seq"] == 2
    msgs = (await http.get("/v1/streams/S/messages?start_seq=1&limit=5")).json()["messages"]
    assert msgs[0]["headers"] == {"Trace-Id": "t1"}
    assert msgs[1]["headers"] == {"Kind": "bin"}
    assert msgs[1]["encoding"] == "base64"
    assert base64.b64decode(msgs[1]["data"]) == b"\x00\xff"


async def test_publish_without_stream_reaches_nats_subscriber(js_hub, http):
    nc = await nats.connect(js_hub.url)
    sub = await nc.subscribe("core.>")
    await nc.flush()
    resp = await http.post("/v1/publish/core.x", content=b"to nats",
                           headers={"X-Nats-Header-From": "http"})
    assert resp.status_code == 202
    assert resp.json() == {"subject": "core.x", "receivers": 1}
    msg = await sub.next_msg(timeout=2)
    assert msg.subject == "core.x" and msg.data == b"to nats"
    assert msg.headers == {"From": "http"}
    await nc.close()


async def test_publish_bad_input(http):
    for subject in ("a..b", "a.*", "a.>", "a b"):
        resp = await http.post(f"/v1/publish/{subject}", content=b"x")
        assert resp.status_code == 400, subject
        err(resp)
    big = await http.post("/v1/publish/big", content=b"x" * (1024 * 1024 + 1))
    assert big.status_code == 413 and err(big)["err_code"] == 10413
    bad_env = await http.post("/v1/publish/e", content=b"{not json",
                              headers={"Content-Type": "application/vnd.jetport.message+json"})
    assert bad_env.status_code == 400


async def test_batch_publish(js_hub, http):
    await make_stream(http)
    nc = await nats.connect(js_hub.url)
    sub = await nc.subscribe("b.*")
    await nc.flush()
    msgs = [{"subject": "b.x", "data": f"m{i}"} for i in range(500)]
    msgs.append({"subject": "s.stored", "data": "kept", "headers": {"K": "v"}})
    resp = await http.post("/v1/publish", json={"messages": msgs})
    assert resp.status_code == 200
    body = resp.json()
    assert body["count"] == 501
    assert body["acks"][:500] == [None] * 500
    assert body["acks"][500]["stream"] == "S" and body["acks"][500]["seq"] == 1
    got = [await sub.next_msg(timeout=2) for _ in range(500)]
    assert [m.data.decode() for m in got] == [f"m{i}" for i in range(500)]
    bad = await http.post("/v1/publish", json={"messages": [{"subject": "a..b"}]})
    assert bad.status_code == 400
    bad = await http.post("/v1/publish", json={"messages": [{"subject": "x", "data": "*",
                                                             "encoding": "base64"}]})
    assert bad.status_code == 400
    assert (await http.post("/v1/publish", content=b"[")).status_code == 400
    await nc.close()


async def test_request_reply(js_hub, http):
    nc = await nats.connect(js_hub.url)

    async def echo(msg):
        await msg.respond(b"re:" + msg.data)

    await nc.subscribe("svc.echo", cb=echo)
    async def ignore(msg):
        pass

    await nc.subscribe("svc.silent", cb=ignore)
    await nc.flush()
    resp = await http.post("/v1/request/svc.echo", content=b"ping")
    assert resp.status_code == 200 and resp.content == b"re:ping"
    none = await http.post("/v1/request/svc.nobody", content=b"x")
    assert none.status_code == 503 and err(none)["err_code"] == 10503
    slow = await http.post("/v1/request/svc.silent?timeout=0.3", content=b"x")
    assert slow.status_code == 504
    assert (await http.post("/v1/request/svc.echo?timeout=0", content=b"x")).status_code == 400
    await nc.close()


async def test_stream_management(http):
    info = await make_stream(http, "ORDERS", ["orders.*"], max_msgs=100)
    assert info["config"]["max_msgs"] == 100
    again = await http.post("/v1/streams", json={"name": "ORDERS", "subjects": ["other"]})
    assert again.status_code == 409 and err(again)["err_code"] == 10058
    assert (await http.get("/v1/streams/ORDERS")).json()["config"]["name"] == "ORDERS"
    upd = await http.put("/v1/streams/ORDERS", json={"subjects": ["orders.*"],
                                                     "max_msgs": 5})
    assert upd.status_code == 200 and upd.json()["config"]["max_msgs"] == 5
    mismatch = await http.put("/v1/streams/ORDERS", json={"name": "X", "subjects": ["x"]})
    assert mismatch.status_code == 400
    listed = (await http.get("/v1/streams")).json()
    assert listed["total"] == 1 and listed["streams"][0]["config"]["name"] == "ORDERS"
    for i in range(3):
        await http.post(f"/v1/publish/orders.{i}", content=b"o")
    last = await http.get("/v1/streams/ORDERS/last/orders.2")
    assert last.json()["seq"] == 3
    assert (await http.delete("/v1/streams/ORDERS/messages/2")).json() == {"success": True}
    gone = await http.get("/v1/streams/ORDERS/messages/2")
    assert gone.status_code == 404 and err(gone)["err_code"] == 10037
    purged = await http.post("/v1/streams/ORDERS/purge", json={"filter": "orders.0"})
    assert purged.json() == {"success": True, "purged": 1}
    assert (await http.post("/v1/streams/ORDERS/purge")).json()["purged"] == 1
    assert (await http.delete("/v1/streams/ORDERS")).json() == {"success": True}
    missing = await http.get("/v1/streams/ORDERS")
    assert missing.status_code == 404 and err(missing)["err_code"] == 10059
    assert (await http.get("/v1/streams/bad.name")).status_code == 400
    bad = await http.post("/v1/streams", json={"name": "X", "subjects": ["x"], "max_age": 5})
    assert bad.status_code == 400 and err(bad)["err_code"] == 10052
    assert (await http.post("/v1/streams", json={"subjects": ["x"]})).status_code == 400
    assert (await http.post("/v1/streams", json={"name": 5})).status_code == 400


async def test_replay_range_and_time(http):
    await make_stream(http)
    for i in range(1, 11):
        await http.post(f"/v1/publish/s.{i % 2}", content=str(i).encode())
    page = (await http.get("/v1/streams/S/messages?start_seq=4&limit=3")).json()["messages"]
    assert [m["seq"] for m in page] == [4, 5, 6]
    assert all({"subject", "seq", "time", "headers", "data"} <= set(m) for m in page)
    odd = (await http.get("/v1/streams/S/messages?subject=s.1&limit=100")).json()["messages"]
    assert [m["data"] for m in odd] == ["1", "3", "5", "7", "9"]
    t = page[0]["time"]
    since = (await http.get("/v1/streams/S/messages", params={"start_time": t,
                                                                "limit": 100})).json()
    assert since["messages"][0]["seq"] == 4
    empty = (await http.get("/v1/streams/S/messages?start_seq=99")).json()
    assert empty == {"messages": []}
    assert (await http.get("/v1/streams/NOPE/messages")).status_code == 404
    assert (await http.get("/v1/streams/S/messages?limit=0")).status_code == 400
    assert (await http.get("/v1/streams/S/messages?start_time=yesterday")).status_code == 400


async def test_consumers_fetch_and_acks(http):
    await make_stream(http)
    for i in range(5):
        await http.post("/v1/publish/s.w", content=f"job{i}".encode())
    c = await http.post("/v1/streams/S/consumers", json={"durable_name": "W",
                                                         "ack_policy": "explicit",
                                                         "ack_wait": 1_000_000_000})
    assert c.status_code == 201 and c.json()["name"] == "W"
    assert (await http.get("/v1/streams/S/consumers")).json()["consumers"][0]["name"] == "W"
    got = (await http.post("/v1/streams/S/consumers/W/fetch?batch=3&wait=1")).json()
    assert [m["data"] for m in got["messages"]] == ["job0", "job1", "job2"]
    tokens = [m["ack_token"] for m in got["messages"]]
    assert all(t.startswith("$JS.ACK.S.W.") for t in tokens)
    assert (await http.post("/v1/ack", json={"tokens": tokens[:1]})).json() == {"acked": 1}
    assert (await http.post("/v1/progress", json={"tokens": tokens[1:2]})).status_code == 200
    assert (await http.post("/v1/term", json={"tokens": tokens[2:3]})).status_code == 200
    info = (await http.get("/v1/streams/S/consumers/W")).json()
    assert info["num_ack_pending"] == 1  # the in-progress one
    rest = (await http.post("/v1/streams/S/consumers/W/fetch?batch=10&wait=0.3")).json()
    assert [m["data"] for m in rest["messages"]] == ["job3", "job4"]
    assert rest["status"] in (404, 408)
    nak = await http.post("/v1/nak", json={"tokens": [rest["messages"][0]["ack_token"]]})
    assert nak.status_code == 200
    again = (await http.post("/v1/streams/S/consumers/W/fetch?batch=1&wait=2")).json()
    assert [m["data"] for m in again["messages"]] == ["job3"]
    empty = (await http.post("/v1/streams/S/consumers/W/fetch?batch=5")).json()
    assert empty["messages"] == [] or empty["messages"][0]["data"] == "job1"
    bad = await http.post("/v1/ack", json={"tokens": ["not.a.token"]})
    assert bad.status_code == 400
    assert (await http.post("/v1/ack", json={"tokens": []})).status_code == 400
    missing = await http.post("/v1/streams/S/consumers/NOPE/fetch")
    assert missing.status_code == 404 and err(missing)["err_code"] == 10014
    push = await http.post("/v1/streams/S/consumers", json={"durable_name": "P",
                                                            "deliver_subject": "d.p"})
    assert push.status_code == 201
    assert (await http.post("/v1/streams/S/consumers/P/fetch")).status_code == 409
    assert (await http.delete("/v1/streams/S/consumers/W")).json() == {"success": True}
    assert (await http.get("/v1/streams/S/consumers/W")).status_code == 404
    bad = await http.post("/v1/streams/S/consumers", json={"durable_name": "a.b"})
    assert bad.status_code == 400


async def test_consumer_pause_and_priority_groups(http):
    await make_stream(http, "G", ("g.>",))
    for i in range(3):
        await http.post("/v1/publish/g.x", content=f"m{i}".encode())
    await http.post("/v1/streams/G/consumers", json={"durable_name": "C",
                                                     "ack_policy": "explicit"})
    paused = await http.post("/v1/streams/G/consumers/C/pause",
                             json={"pause_until": "2999-01-01T00:00:00Z"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["pause_until"] == "2999-01-01T00:00:00Z"
    assert (await http.get("/v1/streams/G/consumers/C")).json()["paused"] is True
    held = (await http.post("/v1/streams/G/consumers/C/fetch?batch=1")).json()
    assert held == {"messages": [], "status": 404}
    resumed = (await http.post("/v1/streams/G/consumers/C/pause")).json()
    assert resumed == {"paused": False, "pause_until": "0001-01-01T00:00:00Z"}
    got = (await http.post("/v1/streams/G/consumers/C/fetch?batch=1")).json()
    assert [m["data"] for m in got["messages"]] == ["m0"]
    bad = await http.post("/v1/streams/G/consumers/C/pause", json={"pause_until": "soon"})
    assert bad.status_code == 400
    # a pinned_client group: the pin comes back as a header and goes out as pin_id
    await http.post("/v1/streams/G/consumers", json={
        "durable_name": "P", "ack_policy": "explicit", "priority_policy": "pinned_client",
        "priority_groups": ["A"]})
    missing = (await http.post("/v1/streams/G/consumers/P/fetch?batch=1")).json()
    assert missing == {"messages": [], "status": 400}
    first = (await http.post("/v1/streams/G/consumers/P/fetch?batch=1&group=A")).json()
    pin = first["messages"][0]["headers"]["Nats-Pin-Id"]
    other = (await http.post("/v1/streams/G/consumers/P/fetch?batch=1&group=A")).json()
    assert other == {"messages": [], "status": 404}
    mine = (await http.post(f"/v1/streams/G/consumers/P/fetch?batch=1&group=A&pin_id={pin}"))
    assert [m["data"] for m in mine.json()["messages"]] == ["m1"]
    assert (await http.post("/v1/streams/G/consumers/P/unpin?group=A")).json() == {
        "success": True}
    stale = (await http.post(f"/v1/streams/G/consumers/P/fetch?batch=1&group=A&pin_id={pin}"))
    assert stale.json() == {"messages": [], "status": 423}
    nogroup = await http.post("/v1/streams/G/consumers/P/unpin?group=B")
    assert nogroup.status_code == 400 and err(nogroup)["err_code"] == 10160


async def test_limits_answer_429(http):
    await make_stream(http, "L", ["l.>"], max_msgs=1, discard="new")
    assert (await http.post("/v1/publish/l.a", content=b"1")).status_code == 200
    full = await http.post("/v1/publish/l.a", content=b"2")
    assert full.status_code == 429
    assert err(full)["err_code"] == 10077


async def test_unknown_paths_and_methods(http):
    nf = await http.get("/v1/nothing")
    assert nf.status_code == 404 and err(nf)["err_code"] == 10404
    assert (await http.delete("/v1/publish/x")).status_code == 405
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = (await http.get("/openapi.json")).json()
    for path in ("/v1/publish/{subject}", "/v1/streams/{stream}/messages",
                 "/v1/subscribe/{subject}", "/healthz", "/varz", "/connz", "/subsz", "/jsz",
                 "/accountz", "/metrics"):
        assert path in schema["paths"], path
    assert "StreamConfig" in schema["components"]["schemas"]
