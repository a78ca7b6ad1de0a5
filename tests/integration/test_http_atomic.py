"""``POST /v1/publish?atomic=true``: a batch request stored all or nothing, as one
JetStream atomic batch, against a running hub."""

from __future__ import annotations

import httpx
from httphub import http_fixture, js_hub_fixture  # noqa: F401 - fixtures


async def make_stream(http, name: str = "A", **extra) -> None:
    resp = await http.post("/v1/streams", json={"name": name, "subjects": [f"{name.lower()}.>"],
                                                "allow_atomic": True, **extra})
    assert resp.status_code == 201, resp.text


async def atomic(http, *messages: dict) -> httpx.Response:
    return await http.post("/v1/publish?atomic=true", json={"messages": list(messages)})


def failed(resp: httpx.Response, status: int, err_code: int, index: int) -> str:
    """The error's description, after checking its shape: the error and the index of
    the message it came from."""
    body = resp.json()
    assert resp.status_code == status, body
    assert set(body) == {"error", "index"}, body
    assert (body["error"]["code"], body["error"]["err_code"], body["index"]) == (
        status, err_code, index), body
    return str(body["error"]["description"])


async def stored(http, name: str = "A") -> int:
    return int((await http.get(f"/v1/streams/{name}")).json()["state"]["messages"])


async def test_atomic_batch_is_stored_whole_and_answered_with_its_pub_ack(http) -> None:
    await make_stream(http)
    resp = await atomic(http,
                        {"subject": "a.one", "data": "1", "headers": {"Trace": "t1"}},
                        {"subject": "a.two", "data": "Mg==", "encoding": "base64"},
                        {"subject": "a.one", "data": "3"})
    assert resp.status_code == 200, resp.text
    ack = resp.json()
    assert (ack["stream"], ack["seq"], ack["count"], ack["duplicate"]) == ("A", 3, 3, False)
    assert len(ack["batch"]) == 22
    first = (await http.get("/v1/streams/A/messages/1")).json()
    assert (first["subject"], first["data"]) == ("a.one", "1")
    assert first["headers"] == {"Trace": "t1", "Nats-Batch-Id": ack["batch"],
                                "Nats-Batch-Sequence": "1"}
    last = (await http.get("/v1/streams/A/messages/3")).json()
    assert last["headers"]["Nats-Batch-Commit"] == "1"


async def test_a_refused_batch_stores_nothing_and_names_the_message(http) -> None:
    await make_stream(http, max_msg_size=200)
    await http.post("/v1/streams", json={"name": "P", "subjects": ["p.>"]})
    # Refused before anything is sent.
    resp = await atomic(http)
    assert resp.status_code == 400 and resp.json()["error"]["err_code"] == 10400
    assert failed(await atomic(http, {"subject": "a.x", "data": ""},
                               {"subject": "nowhere", "data": ""}), 404, 10404, 1)
    assert "Nats-Batch" in failed(await atomic(
        http, {"subject": "a.x", "data": "", "headers": {"Nats-Batch-Id": "mine"}}),
        400, 10400, 0)
    # Batch headers are the door's own, on every publish.
    resp = await http.post("/v1/publish/a.x", content=b"", headers={"Nats-Batch-Id": "b"})
    assert resp.status_code == 400 and "Nats-Batch-" in resp.json()["error"]["description"]
    resp = await http.post("/v1/publish", json={"messages": [
        {"subject": "a.x", "data": "", "headers": {"Nats-Batch-Sequence": "1"}}]})
    assert resp.status_code == 400
    # Refused by the stream as a message arrives...
    assert failed(await atomic(http, {"subject": "p.x", "data": ""}), 400, 10174, 0) == (
        "atomic publish is disabled")
    assert failed(await atomic(http, {"subject": "a.x", "data": ""},
                               {"subject": "a.x", "data": "x" * 300},
                               {"subject": "a.x", "data": ""}), 413, 10054, 1)
    # ... or at the commit, where the stream checks the header rules for the batch.
    assert failed(await atomic(
        http, {"subject": "a.x", "data": "", "headers": {"Nats-Msg-Id": "m"}},
        {"subject": "a.y", "data": "", "headers": {"Nats-Msg-Id": "m"}}), 409, 10201, 1) == (
        "atomic publish batch contains duplicate message id")
    assert failed(await atomic(
        http, {"subject": "a.x", "data": "", "headers": {"Nats-Expected-Last-Sequence": "5"}},
        {"subject": "a.x", "data": ""}), 409, 10071, 1) == "wrong last sequence: 0"
    assert await stored(http) == 0
    # Without ?atomic the same body is the plain batch publish, one PubAck each.
    resp = await http.post("/v1/publish", json={"messages": [{"subject": "a.x", "data": ""}]})
    assert resp.json() == {"count": 1, "acks": [{"stream": "A", "seq": 1}]}
