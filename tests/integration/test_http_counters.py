"""Counters over the HTTP door against a running hub: increments answer the new total,
reads find the counter stream by subject, and the errors keep JetStream's codes."""

from __future__ import annotations

import json

import httpx
import nats
import pytest
from httphub import http_fixture, js_hub_fixture  # noqa: F401 - fixtures

BIG = "9" * 40


@pytest.fixture(autouse=True)
async def counter_streams(http) -> None:
    """A counter stream C (c.>) and a plain one P (p.>)."""
    for name, extra in (("C", {"allow_msg_counter": True}), ("P", {})):
        resp = await http.post("/v1/streams", json={
            "name": name, "subjects": [f"{name.lower()}.>"], **extra})
        assert resp.status_code == 201, resp.text


def error(resp: httpx.Response, status: int) -> int:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == status
    return int(err["err_code"])


async def test_increments_answer_the_new_total_and_reads_find_it(http, js_hub) -> None:
    one = await http.post("/v1/counters/c.hits")
    assert one.json() == {"stream": "C", "subject": "c.hits", "value": "1", "seq": 1,
                          "duplicate": False}
    assert (await http.post("/v1/counters/c.hits", json={"increment": -5})).json()["value"] == "-4"
    big = await http.post("/v1/counters/c.hits", json={"increment": "+" + BIG},
                          headers={"X-Nats-Header-Origin": "web"})
    assert big.json()["value"] == BIG[:-1] + "5"
    # A NATS client's increment lands on the same total.
    nc = await nats.connect(js_hub.url)
    ack = await nc.jetstream().publish("c.hits", headers={"Nats-Incr": "-" + BIG})
    await nc.close()
    assert ack.val == "-4"
    got = await http.get("/v1/counters/c.hits")
    assert got.json() == {"stream": "C", "subject": "c.hits", "value": "-4", "seq": 4,
                          "duplicate": False}
    stored = (await http.get("/v1/streams/C/messages/3")).json()
    assert stored["headers"] == {"Origin": "web", "Nats-Incr": "+" + BIG}
    assert json.loads(stored["data"]) == {"val": big.json()["value"]}


async def test_a_retried_increment_with_a_msg_id_counts_once(http) -> None:
    retry = {"Nats-Msg-Id": "order-17"}
    first = await http.post("/v1/counters/c.sold", json={"increment": 3}, headers=retry)
    again = await http.post("/v1/counters/c.sold", json={"increment": 3}, headers=retry)
    assert first.json() == {**again.json(), "duplicate": False}
    assert again.json() == {"stream": "C", "subject": "c.sold", "value": "3", "seq": 1,
                            "duplicate": True}
    assert (await http.get("/v1/counters/c.sold")).json()["value"] == "3"


async def test_refusals_keep_jetstream_codes(http) -> None:
    assert error(await http.post("/v1/counters/c.x", json={"increment": "1.5"}), 400) == 10171
    assert error(await http.post("/v1/counters/p.x", json={"increment": " "}), 400) == 10171
    assert error(await http.post("/v1/counters/c.x", json={"increment": 1},
                                 headers={"Nats-Expected-Last-Sequence": "0"}), 400) == 10171
    assert error(await http.post("/v1/counters/p.x"), 400) == 10168
    assert error(await http.post("/v1/counters/nowhere"), 404) == 10404
    assert error(await http.get("/v1/counters/nowhere"), 404) == 10404
    assert error(await http.get("/v1/counters/c.never"), 404) == 10037
    assert error(await http.get("/v1/counters/p.x"), 409) == 10409
    assert error(await http.get("/v1/counters/c.*"), 400) == 10400
