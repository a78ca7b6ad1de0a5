"""JetStream through nats-py's own JetStream API, against a hub started by the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js import api
from nats.js.errors import APIError, BadRequestError, NotFoundError
from servers import kv_settled


@pytest.fixture
def js_hub(tmp_path: Path, launch):
    return launch("-js", "-sd", str(tmp_path / "store"))


async def connect(hub):
    nc = await nats.connect(hub.url)
    return nc, nc.jetstream()


async def test_stream_lifecycle(js_hub) -> None:
    nc, js = await connect(js_hub)
    info = await js.add_stream(name="ORDERS", subjects=["orders.>"])
    assert info.config.name == "ORDERS" and info.state.messages == 0
    ack = await js.publish("orders.new", b"one")
    assert (ack.stream, ack.seq) == ("ORDERS", 1)
    await js.publish("orders.new", b"two")
    info = await js.stream_info("ORDERS")
    assert info.state.messages == 2 and info.state.last_seq == 2
    assert await js.find_stream_name_by_subject("orders.x") == "ORDERS"
    assert [s.config.name for s in await js.streams_info()] == ["ORDERS"]
    msg = await js.get_msg("ORDERS", 2)
    assert msg.data == b"two" and msg.subject == "orders.new"
    last = await js.get_last_msg("ORDERS", "orders.new")
    assert last.seq == 2
    await js.delete_msg("ORDERS", 1)
    with pytest.raises(NotFoundError):
        await js.get_msg("ORDERS", 1)
    assert (await js.purge_stream("ORDERS"))
    info = await js.stream_info("ORDERS")
    assert info.state.messages == 0 and info.state.first_seq == 3
    assert await js.delete_stream("ORDERS")
    with pytest.raises(NotFoundError):
        await js.stream_info("ORDERS")
    await nc.close()


async def test_overlap_and_errors(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="A", subjects=["a.*"])
    with pytest.raises(BadRequestError) as err:
        await js.add_stream(name="B", subjects=["a.b"])
    assert err.value.err_code == 10065
    with pytest.raises(BadRequestError) as err:
        await js.add_stream(name="A", subjects=["a.*", "x"])
    assert err.value.err_code == 10058
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await js.publish("nothing.here", b"x")
    await nc.close()


async def test_dedupe_and_expected_headers(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="D", subjects=["d.>"])
    a = await js.publish("d.1", b"x", headers={"Nats-Msg-Id": "m1"})
    b = await js.publish("d.1", b"x", headers={"Nats-Msg-Id": "m1"})
    assert a.seq == b.seq == 1 and b.duplicate
    with pytest.raises(APIError) as err:
        await js.publish("d.1", b"y", headers={"Nats-Expected-Last-Sequence": "5"})
    assert err.value.err_code == 10071
    await js.publish("d.1", b"y", headers={"Nats-Expected-Last-Sequence": "1"})
    with pytest.raises(APIError) as err:
        await js.publish("d.1", b"z", headers={"Nats-Expected-Stream": "OTHER"})
    assert err.value.err_code == 10060
    with pytest.raises(APIError) as err:
        await js.publish("d.2", b"z", headers={"Nats-Expected-Last-Subject-Sequence": "1"})
    assert err.value.err_code == 10071
    await nc.close()


async def test_limits(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="L", subjects=["l.>"], max_msgs=3, max_msgs_per_subject=2)
    for i in range(5):
        await js.publish("l.a", b"%d" % i)
    info = await js.stream_info("L")
    assert info.state.messages == 2 and info.state.first_seq == 4
    for i in range(3):
        await js.publish(f"l.{i}", b"x")
    info = await js.stream_info("L")
    assert info.state.messages == 3
    await js.add_stream(name="N", subjects=["n"], max_msgs=1, discard=api.DiscardPolicy.NEW)
    await js.publish("n", b"1")
    with pytest.raises(APIError) as err:
        await js.publish("n", b"2")
    assert err.value.err_code == 10077
    await nc.close()


async def test_pull_consumer_fetch_and_ack(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="P", subjects=["p.>"])
    for i in range(10):
        await js.publish("p.x", b"%d" % i)
    sub = await js.pull_subscribe("p.>", durable="worker")
    msgs = await sub.fetch(4, timeout=2)
    assert [m.data for m in msgs] == [b"0", b"1", b"2", b"3"]
    for m in msgs:
        await m.ack()
    info = await js.consumer_info("P", "worker")
    assert info.num_pending == 6 and info.delivered.stream_seq == 4
    msgs = await sub.fetch(10, timeout=1)
    assert len(msgs) == 6
    await msgs[0].ack_sync()
    info = await js.consumer_info("P", "worker")
    assert info.num_ack_pending == 5 and info.ack_floor.stream_seq == 5
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=0.5)
    await nc.close()


async def test_redelivery_after_ack_wait_and_nak(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="R", subjects=["r"])
    await js.publish("r", b"again")
    sub = await js.pull_subscribe("r", durable="d",
                                  config=api.ConsumerConfig(ack_wait=0.5, max_deliver=3))
    first = (await sub.fetch(1, timeout=1))[0]
    assert first.metadata.num_delivered == 1
    await asyncio.sleep(0.7)
    second = (await sub.fetch(1, timeout=1))[0]
    assert second.metadata.num_delivered == 2 and second.data == b"again"
    await second.nak()
    third = (await sub.fetch(1, timeout=1))[0]
    assert third.metadata.num_delivered == 3
    await asyncio.sleep(0.7)
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=0.5)
    await nc.close()


async def test_push_consumer(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="S", subjects=["s.*"])
    got: list[bytes] = []
    done = asyncio.Event()

    async def cb(msg):
        got.append(msg.data)
        await msg.ack()
        if len(got) == 5:
            done.set()

    await js.subscribe("s.*", durable="pusher", cb=cb)
    for i in range(5):
        await js.publish(f"s.{i}", b"%d" % i)
    await asyncio.wait_for(done.wait(), 3)
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    await nc.close()


async def test_restart_recovers_streams_and_consumers(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="K", subjects=["k.>"])
    for i in range(20):
        await js.publish("k.a", b"%d" % i)
    sub = await js.pull_subscribe("k.>", durable="keep")
    for m in await sub.fetch(5, timeout=2):
        await m.ack_sync()
    await nc.close()
    js_hub.restart()
    nc, js = await connect(js_hub)
    info = await js.stream_info("K")
    assert info.state.messages == 20 and info.state.last_seq == 20
    cinfo = await js.consumer_info("K", "keep")
    assert cinfo.delivered.stream_seq == 5 and cinfo.ack_floor.stream_seq == 5
    sub = await js.pull_subscribe("k.>", durable="keep")
    msgs = await sub.fetch(1, timeout=2)
    assert msgs[0].data == b"5"
    ack = await js.publish("k.a", b"after")
    assert ack.seq == 21
    await nc.close()


async def test_key_value(js_hub) -> None:
    nc, js = await connect(js_hub)
    kv = await js.create_key_value(bucket="cfg", history=3)
    r1 = await kv.put("a", b"1")
    r2 = await kv.put("a", b"2")
    assert r2 == r1 + 1
    entry = await kv.get("a")
    assert entry.value == b"2" and entry.revision == r2
    await kv.update("a", b"3", last=r2)
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.update("a", b"4", last=r2)
    await kv.create("b", b"x")
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.create("b", b"y")
    assert sorted(await kv_settled(kv.keys)) == ["a", "b"]
    history = await kv_settled(kv.history, "a")
    assert [e.value for e in history] == [b"1", b"2", b"3"]
    await kv.delete("b")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("b")
    await nc.close()


async def test_dedupe_survives_restart(js_hub) -> None:
    nc, js = await connect(js_hub)
    await js.add_stream(name="DD", subjects=["dd"])
    for i in range(5):
        await js.publish("dd", b"%d" % i, headers={"Nats-Msg-Id": f"id-{i}"})
    await nc.close()
    js_hub.restart()
    nc, js = await connect(js_hub)
    again = await js.publish("dd", b"3", headers={"Nats-Msg-Id": "id-3"})
    assert again.duplicate and again.seq == 4
    fresh = await js.publish("dd", b"5", headers={"Nats-Msg-Id": "id-5"})
    assert not fresh.duplicate and fresh.seq == 6
    await nc.close()
