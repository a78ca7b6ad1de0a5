"""The NATS door's delivery methods write MSG/HMSG out in place for speed; whatever the
path (one message, a run to one subject, a batch of different subjects), the bytes are
exactly what the reference encoder, codec.encode_msg, gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.bridges.nats.connection import NatsClient
from jetport.bridges.nats.encoder import encode_msg
from jetport.core.router import Subscription


class _Loop:
    def call_soon(self, fn: Any, *args: Any) -> None:
        pass


def client(headers: bool) -> NatsClient:
    """A connection object with only what its delivery methods touch."""
    c = NatsClient.__new__(NatsClient)
    c.headers = headers
    c.out_msgs = c.out_bytes = 0
    c._out, c._out_size, c._tbuf = [], 0, 0
    c.max_pending = 1 << 40
    c.congested = False
    c._flush_scheduled = True
    c._loop = _Loop()  # type: ignore[assignment]
    return c


tokens = st.sampled_from([b"a", b"b", b"dev", b"17", b"temp"])
subjects = st.lists(tokens, min_size=1, max_size=4).map(b".".join)
replies = st.none() | st.just(b"_INBOX.x.1")
headers = st.none() | st.just(b"NATS/1.0\r\nA: 1\r\n\r\n")
payloads = st.binary(max_size=40)
messages = st.lists(st.tuples(subjects, replies, headers, payloads), max_size=12)


def reference(sid: bytes, msgs: list, with_headers: bool) -> bytes:
    return b"".join(encode_msg(s, sid, r, h if with_headers else None, p)
                    for s, r, h, p in msgs)


@settings(max_examples=300, deadline=None)
@given(messages, st.booleans())
def test_deliver_and_deliver_batch_write_what_encode_msg_writes(msgs, with_headers) -> None:
    sub = Subscription(None, b"7", b">", None)  # type: ignore[arg-type]
    one = client(with_headers)
    for s, r, h, p in msgs:
        one.deliver(sub, s, r, h, p)
    batch = client(with_headers)
    batch.deliver_batch(sub, msgs)
    want = reference(b"7", msgs, with_headers)
    assert b"".join(one._out) == want
    assert b"".join(batch._out) == want


@settings(max_examples=300, deadline=None)
@given(messages, st.booleans(), st.lists(st.sampled_from([b"1", b"22", b"333"]), max_size=12))
def test_deliver_runs_writes_what_encode_msg_writes(msgs, with_headers, sids) -> None:
    """Messages for several subscriptions of one connection: each MSG names its own."""
    msgs = msgs[:len(sids)]
    subs = [Subscription(None, sid, b">", None) for sid in sids[:len(msgs)]]  # type: ignore[arg-type]
    runs = client(with_headers)
    if msgs:
        runs.deliver_runs(subs, msgs)
    pairs = zip(subs, msgs, strict=True)
    want = b"".join(reference(sub.sid, [m], with_headers) for sub, m in pairs)
    assert b"".join(runs._out) == want
    assert runs.out_msgs == len(msgs)


@settings(max_examples=300, deadline=None)
@given(subjects, replies, st.lists(payloads, min_size=1, max_size=12))
def test_deliver_many_writes_what_encode_msg_writes(subject, reply, bodies) -> None:
    sub = Subscription(None, b"3", b">", None)  # type: ignore[arg-type]
    many = client(True)
    many.deliver_many(sub, subject, reply, bodies)
    same = client(True)
    same.deliver_many(sub, subject, reply, [bodies[0]] * len(bodies))  # one size: a run
    assert b"".join(many._out) == reference(b"3", [(subject, reply, None, b)
                                                   for b in bodies], False)
    assert b"".join(same._out) == reference(b"3", [(subject, reply, None, bodies[0])] *
                                            len(bodies), False)
