"""Pull consumers as nats-py's users drive them, where Jetport once answered otherwise
than nats-server: backoff redeliveries at max_ack_pending, fetches with idle heartbeats,
what a fetch leaves behind on the server, fetch sizes under max_waiting, num_pending, and
pending messages that stream limits take away.

Each test is the plain nats-py code a user writes, run on Jetport and on nats-server
(``@pytest.mark.differential``).  Timings leave room for a loaded two-core machine, yet
each test fails for the behaviour it was written against.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from nats.js import api
from nats.js.errors import APIError, FetchTimeoutError
from servers import js_connect as connect


async def timed_fetch(sub, batch: int, **kwargs) -> tuple[list, float]:
    """``sub.fetch(batch, **kwargs)`` and how long it took, in seconds."""
    start = time.monotonic()
    msgs = await sub.fetch(batch, **kwargs)
    return msgs, time.monotonic() - start


async def fetches_nothing(sub, batch: int, **kwargs) -> bool:
    """True when ``sub.fetch`` finds no message: it times out, or (when the server's
    timeout status and the client's own deadline cross) nats-py returns an empty list."""
    try:
        msgs = await sub.fetch(batch, **kwargs)
    except TimeoutError:  # nats-py raises its own or asyncio's, by where it gave up
        return True
    return msgs == []


@pytest.mark.differential
async def test_backoff_redelivers_at_max_ack_pending_then_advises_max_deliveries(js_hub) -> None:
    """Unacked messages that fill max_ack_pending still come back on the backoff
    schedule to one-message fetches; after max_deliver the consumer gives them up, with
    a MAX_DELIVERIES advisory each, which makes room for the next message."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="BO", subjects=["bo"])
    advisories = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BO.bo")
    sub = await js.pull_subscribe("bo", durable="bo", config=api.ConsumerConfig(
        backoff=[1, 2], max_deliver=3, ack_wait=30, max_ack_pending=3))
    for i in range(1, 5):
        await js.publish("bo", f"m{i}".encode())
    seen: list[tuple[int, int, float]] = []  # (stream seq, delivery count, when)
    deadline = time.monotonic() + 12
    while not any(s == 4 for s, _, _ in seen) and time.monotonic() < deadline:
        try:
            msgs = await sub.fetch(1, timeout=1)
        except TimeoutError:
            continue
        for msg in msgs:  # never acked, but the last
            meta = msg.metadata
            seen.append((meta.sequence.stream, meta.num_delivered, time.monotonic()))
            if meta.sequence.stream == 4:
                await msg.ack_sync()
    first = [(n, at) for s, n, at in seen if s == 1]
    assert [n for n, _ in first] == [1, 2, 3], seen
    gaps = [b - a for (_, a), (_, b) in zip(first, first[1:], strict=False)]
    assert 0.4 <= gaps[0] <= 1.6, gaps  # backoff[0]: 1 s
    assert 1.4 <= gaps[1] <= 2.6, gaps  # backoff[1]: 2 s
    # Message 4 waited for room while 1-3 went out three times each; it came once
    # the consumer had given them up, the last backoff after their third delivery.
    assert sorted((s, n) for s, n, _ in seen) == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3), (4, 1)]
    assert seen[-1][0] == 4 and 1.4 <= seen[-1][2] - first[-1][1] <= 2.6, seen

    # One advisory for each of 1-3, in no set order (nats-server may send some only once
    # a fetch is waiting again); no fourth delivery of any.
    given_up: list[tuple[int, int]] = []
    deadline = time.monotonic() + 4
    while len(given_up) < 3 and time.monotonic() < deadline:
        try:
            advisory = json.loads((await advisories.next_msg(timeout=0.05)).data)
        except TimeoutError:
            assert await fetches_nothing(sub, 1, timeout=0.3)
            continue
        assert advisory["type"] == "io.nats.jetstream.advisory.v1.max_deliver", advisory
        assert (advisory["stream"], advisory["consumer"]) == ("BO", "bo"), advisory
        given_up.append((advisory["stream_seq"], advisory["deliveries"]))
    assert sorted(given_up) == [(1, 3), (2, 3), (3, 3)]
    info = await js.consumer_info("BO", "bo")
    assert (info.num_ack_pending, info.num_pending) == (0, 0), info
    await nc.close()


@pytest.mark.differential
async def test_fetch_with_idle_heartbeat(js_hub) -> None:
    """``fetch(..., heartbeat=)`` as nats-py sends it: expires is the timeout less 100 µs
    and the heartbeat may be up to half of it; the server keeps the fetch alive with
    heartbeats, and a partly filled batch still returns as soon as nothing more is there."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="HB", subjects=["hb"])
    await js.add_consumer("HB", durable_name="hb", ack_policy="explicit")

    async def fresh(previous=None):
        """A new subscription for the next step: a status answering an earlier step's
        fetch (late, on a loaded machine) must not reach this one's (nats-py reads all
        of a subscription's fetches from one inbox)."""
        if previous is not None:
            await previous.unsubscribe()
        return await js.pull_subscribe_bind("hb", stream="HB")

    # Accepted, and heartbeats arrive: nats-py tells a fetch that heard them time out
    # (FetchTimeoutError) from one that heard nothing (plain TimeoutError).
    sub = await fresh()
    start = time.monotonic()
    with pytest.raises(FetchTimeoutError):
        await sub.fetch(1, timeout=1, heartbeat=0.1)
    assert 0.8 <= time.monotonic() - start <= 2.0
    sub = await fresh(sub)
    assert await fetches_nothing(sub, 3, timeout=1, heartbeat=0.1)

    # Twice the heartbeat must not exceed expires (nats-server's rule, as nats-py's tests).
    sub = await fresh(sub)
    with pytest.raises(APIError) as refused:
        await sub.fetch(1, timeout=1, heartbeat=0.5)
    assert refused.value.description == "Bad Request - heartbeat value too large"

    # One message for a batch of five: it comes at once, not after heartbeats.
    sub = await fresh(sub)
    await js.publish("hb", b"one")
    msgs, took = await timed_fetch(sub, 5, timeout=2, heartbeat=0.2)
    assert [m.data for m in msgs] == [b"one"] and took < 0.5, took
    await msgs[0].ack_sync()

    # The next fetch is the only one waiting: it gets the next message, then heartbeats.
    await js.publish("hb", b"two")
    msgs, took = await timed_fetch(sub, 1, timeout=1, heartbeat=0.1)
    assert [m.data for m in msgs] == [b"two"] and took < 0.5, took
    await msgs[0].ack_sync()
    with pytest.raises(FetchTimeoutError):
        await sub.fetch(1, timeout=1, heartbeat=0.1)
    info = await js.consumer_info("HB", "hb")
    assert (info.num_waiting, info.num_ack_pending, info.num_pending) == (0, 0, 0), info
    await nc.close()


@pytest.mark.differential
async def test_fetch_after_a_timed_out_fetch_returns_at_once(js_hub) -> None:
    """A fetch that timed out leaves nothing behind: the next message goes to the next
    fetch, which returns it at once rather than when its own timeout runs out."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="TO", subjects=["to"])
    sub = await js.pull_subscribe("to", durable="to")
    for first in (1, 5):
        assert await fetches_nothing(sub, first, timeout=0.5)
        for second in (1, 5):
            await js.publish("to", f"{first}-{second}".encode())
            msgs, took = await timed_fetch(sub, second, timeout=5)
            assert [m.data for m in msgs] == [f"{first}-{second}".encode()], msgs
            assert took < 1.5, (first, second, took)
            await msgs[0].ack_sync()
    info = await js.consumer_info("TO", "to")
    assert (info.num_waiting, info.num_ack_pending, info.num_pending) == (0, 0, 0), info
    await nc.close()


@pytest.mark.differential
async def test_fetch_given_up_by_its_client_takes_no_message(js_hub) -> None:
    """A worker that stops waiting on its own (asyncio.wait_for around a long fetch)
    and disconnects leaves its pull request behind until the request's expires; the
    server no longer sends messages to it, so another worker's fetch gets them at once."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="GONE", subjects=["gone"])
    await js.add_consumer("GONE", durable_name="w", ack_policy="explicit")

    quitter, quitter_js = await connect(js_hub)
    sub = await quitter_js.pull_subscribe_bind("w", stream="GONE")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.fetch(1, timeout=30), 0.5)
    await quitter.close()
    # The server notices the disconnect on its own time; then nothing waits any more.
    deadline = time.monotonic() + 2
    while (await js.consumer_info("GONE", "w")).num_waiting and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await js.consumer_info("GONE", "w")).num_waiting == 0

    worker = await js.pull_subscribe_bind("w", stream="GONE")
    await js.publish("gone", b"job")
    msgs, took = await timed_fetch(worker, 1, timeout=5)
    assert [m.data for m in msgs] == [b"job"] and took < 1.5, took
    await msgs[0].ack_sync()
    info = await js.consumer_info("GONE", "w")
    assert (info.num_waiting, info.num_ack_pending, info.num_pending) == (0, 0, 0), info
    await nc.close()


@pytest.mark.differential
async def test_fetch_batches_and_num_pending_under_max_waiting(js_hub) -> None:
    """fetch(5) and fetch(10, timeout=0.5) with acks in between, on a consumer created
    with max_waiting and max_ack_pending: each returns what there is, at once, and a
    message published afterwards is pending, not taken by a leftover request."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="MW", subjects=["mw"])
    sub = await js.pull_subscribe("mw", durable="mw", config=api.ConsumerConfig(
        max_waiting=3, max_ack_pending=20))
    for i in range(12):
        await js.publish("mw", f"m{i}".encode())
    sizes: list[int] = []
    msgs, took = await timed_fetch(sub, 5)
    sizes.append(len(msgs))
    for msg in msgs:
        await msg.ack_sync()
    msgs, took = await timed_fetch(sub, 10, timeout=0.5)
    sizes.append(len(msgs))
    assert took < 0.4, took  # seven there: no waiting for the timeout
    for msg in msgs:
        await msg.ack_sync()
    assert await fetches_nothing(sub, 10, timeout=0.5)
    for i in range(3):
        await js.publish("mw", f"n{i}".encode())
    msgs, took = await timed_fetch(sub, 5, timeout=3)
    sizes.append(len(msgs))
    assert took < 1.5, took
    for msg in msgs:
        await msg.ack_sync()
    assert sizes == [5, 7, 3]

    await js.publish("mw", b"after")
    info = await js.consumer_info("MW", "mw")
    assert (info.num_pending, info.num_waiting, info.num_ack_pending) == (1, 0, 0), info
    assert (info.delivered.stream_seq, info.ack_floor.stream_seq) == (15, 15), info
    msgs = await sub.fetch(1)
    assert msgs[0].data == b"after" and msgs[0].metadata.num_pending == 0
    await nc.close()


@pytest.mark.differential
async def test_pending_message_removed_by_stream_limits_is_terminated(js_hub) -> None:
    """A delivered, unacked message that the stream's max_msgs pushes out stops being
    pending (MSG_TERMINATED advisory, 'Unacknowledged message was deleted'), so it no
    longer holds the consumer's only max_ack_pending slot."""
    nc, js = await connect(js_hub)
    await js.add_stream(name="LIM", subjects=["lim"], max_msgs=2)
    advisories = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.LIM.c")
    sub = await js.pull_subscribe("lim", durable="c", config=api.ConsumerConfig(
        max_ack_pending=1))
    await js.publish("lim", b"1")
    first = (await sub.fetch(1))[0]
    await js.publish("lim", b"2")
    await js.publish("lim", b"3")  # the stream keeps 2 and 3
    advisory = json.loads((await advisories.next_msg(timeout=2)).data)
    assert advisory["type"] == "io.nats.jetstream.advisory.v1.terminated", advisory
    assert (advisory["stream_seq"], advisory["consumer_seq"], advisory["deliveries"]) == (
        1, 1, 1), advisory
    assert advisory["reason"] == "Unacknowledged message was deleted", advisory
    info = await js.consumer_info("LIM", "c")
    assert (info.num_ack_pending, info.num_pending) == (0, 2), info
    msgs, took = await timed_fetch(sub, 1, timeout=2)
    assert [(m.data, m.metadata.num_pending) for m in msgs] == [(b"2", 1)] and took < 1
    await first.ack_sync()  # a late ack of the removed message is harmless
    await nc.close()
