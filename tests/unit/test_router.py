"""Batch delivery paths of the router give exactly what message-by-message publishing
gives: same subscribers, same order, same auto-unsubscribe and queue-group turns."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.core.router import InvalidSubject, Router, Subscription, admits
from jetport.core.subjects import subject_matches, subjects_overlap

TOKENS = ["a", "b", "c"]


class Recorder:
    """A client that writes down what it is given."""

    def __init__(self, router: Router, name: str, echo: bool = True) -> None:
        self.router, self.name, self.echo = router, name, echo
        self.no_responders = False
        self.receive_filter = None
        self.log: list[tuple[str, bytes, bytes, bytes | None, bytes]] = []

    def deliver(self, sub, subject, reply, hdr, payload) -> None:
        self.log.append((self.name, sub.sid, subject, reply, payload))

    def deliver_batch(self, sub, msgs) -> None:
        for subject, reply, hdr, payload in msgs:
            self.deliver(sub, subject, reply, hdr, payload)

    def deliver_runs(self, subs, msgs) -> None:
        for sub, (subject, reply, hdr, payload) in zip(subs, msgs, strict=True):
            self.deliver(sub, subject, reply, hdr, payload)

    def drop_subscription(self, sub: Subscription) -> None:
        self.router.unsubscribe(sub)


subjects = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3).map(".".join)
patterns = st.lists(st.sampled_from(TOKENS + ["*", ">"]), min_size=1, max_size=3).map(
    lambda toks: ".".join(t for i, t in enumerate(toks) if t != ">" or i == len(toks) - 1)
)
subs = st.lists(
    st.tuples(st.integers(0, 2), patterns, st.sampled_from([None, "q"]), st.integers(0, 3)),
    max_size=8,
)
msgs = st.lists(st.tuples(st.integers(0, 2), subjects, st.sampled_from([None, "r.1"])),
                max_size=30)


def setup(spec) -> tuple[Router, list[Recorder]]:
    router = Router()
    clients = [Recorder(router, f"c{i}", echo=i != 1) for i in range(3)]
    for n, (who, pattern, queue, max_msgs) in enumerate(spec):
        sub = Subscription(clients[who], b"%d" % n, pattern.encode(),
                           queue.encode() if queue else None)
        sub.max_msgs = max_msgs
        router.subscribe(sub)
    return router, clients


@settings(max_examples=300, deadline=None)
@given(subs, msgs)
def test_publish_batch_matches_publish(spec, sent) -> None:
    one, one_clients = setup(spec)
    for who, subject, reply in sent:
        one.publish(one_clients[who], subject.encode(), reply and reply.encode(), None, b"x")
    batched, batch_clients = setup(spec)
    # A client's consecutive publishes go together, as one read of its connection would.
    runs: list[tuple[int, list]] = []
    for who, subject, reply in sent:
        item = (subject.encode(), reply and reply.encode(), None, b"x")
        if runs and runs[-1][0] == who:
            runs[-1][1].append(item)
        else:
            runs.append((who, [item]))
    for who, items in runs:
        batched.publish_batch(batch_clients[who], items)
    assert [c.log for c in batch_clients] == [c.log for c in one_clients]


@settings(max_examples=200, deadline=None)
@given(subs, msgs)
def test_publish_batch_from_inside_matches_publish(spec, sent) -> None:
    one, one_clients = setup(spec)
    for _who, subject, _reply in sent:
        one.publish(None, subject.encode(), None, None, b"ack")
    batched, batch_clients = setup(spec)
    batched.publish_batch(None, [(subject.encode(), None, None, b"ack")
                                 for _who, subject, _reply in sent])
    assert [c.log for c in batch_clients] == [c.log for c in one_clients]


def test_publish_batch_skips_invalid_subjects() -> None:
    router, clients = setup([(0, ">", None, 0)])
    router.publish_batch(clients[1], [(b"a..b", None, None, b"1"), (b"a", None, None, b"2")])
    assert [entry[2] for entry in clients[0].log] == [b"a"]


def test_publish_batch_reuses_an_answer_only_while_it_holds() -> None:
    router, clients = setup([(0, "_INBOX.x.*", None, 0)])
    replies = [(b"_INBOX.x.%b" % t, None, None, t) for t in (b"1", b"2", b"3 ", b"4")]
    router.publish_batch(None, replies)
    assert [entry[4] for entry in clients[0].log] == [b"1", b"2", b"4"]
    # A literal subscription on one reply makes the last token matter.
    router, clients = setup([(0, "_INBOX.x.*", None, 0), (1, "_INBOX.x.2", None, 0)])
    router.publish_batch(None, [(b"_INBOX.x.%b" % t, None, None, t) for t in (b"1", b"2", b"3")])
    assert [entry[4] for entry in clients[0].log] == [b"1", b"2", b"3"]
    assert [entry[4] for entry in clients[1].log] == [b"2"]


ACK_SHAPES = [
    # acks to one consumer: the answer rests on the first four tokens
    [b"$JS.ACK.S.C.1.%d.%d.7.0" % (n, n) for n in range(1, 5)],
    # tails that are not valid, or have another number of tokens
    [b"$JS.ACK.S.C.1.1.1.7.0", b"$JS.ACK.S.C.1..1.7.0", b"$JS.ACK.S.C.1.2.2.7.",
     b"$JS.ACK.S.C.1.3 .3.7.0", b"$JS.ACK.S.C.1.4.4.7", b"$JS.ACK.S.C.1.5.5.7.0.9",
     b"$JS.ACK.S.C.1.6.6.7.0", b"$JS.ACK.S.D.1.6.6.7.0", b"$JS.ACK.S.C.1.7\t.7.7.0"],
]


@pytest.mark.parametrize("subjects", ACK_SHAPES)
@pytest.mark.parametrize("spec", [
    [(0, "$JS.ACK.S.C.>", None, 0)],
    [(0, "$JS.ACK.S.C.>", None, 0), (1, "$JS.ACK.S.*.1.2.2.7.0", None, 0)],
    [(0, "$JS.ACK.S.C.>", None, 0), (1, "$JS.ACK.*.*.*.*.*.*.*", "q", 0)],
    [(0, "$JS.ACK.>", None, 0), (2, "$JS.ACK.S.C.1.3.3.7.0", None, 1)],
])
def test_publish_batch_reuses_an_answer_for_the_same_leading_tokens(spec, subjects) -> None:
    """Subjects sharing the leading tokens an answer rested on, and as many tokens,
    get that answer; any other, or an invalid one, is looked up (or skipped)."""
    one, one_clients = setup(spec)
    for subject in subjects:
        with contextlib.suppress(InvalidSubject):  # publish_batch skips these
            one.publish(None, subject, None, None, subject)
    batched, batch_clients = setup(spec)
    batched.publish_batch(None, [(subject, None, None, subject) for subject in subjects])
    assert [c.log for c in batch_clients] == [c.log for c in one_clients]
    assert any(c.log for c in batch_clients)


def with_deny(router: Router, clients: list[Recorder], deny: str) -> None:
    """Give every client the subscribe deny rule ``deny``, as Client.subscribe would:
    no subscription the rule refuses, a guard on each one its pattern overlaps, and the
    client's filter."""
    rule = deny.encode()
    for client in clients:
        client.receive_filter = lambda subject: not subject_matches(rule, subject)
    for sub in _subscriptions(router):
        if subject_matches(rule, sub.subject):  # refused at SUB time
            router.unsubscribe(sub)
        elif subjects_overlap(sub.subject, rule):
            sub.guard = lambda subject, _reply: not subject_matches(rule, subject)


def _subscriptions(router: Router) -> list[Subscription]:
    seen: dict[int, Subscription] = {}
    every = [".".join(t) for n in (1, 2, 3) for t in itertools.product(TOKENS, repeat=n)]
    for subject in every:  # each pattern of the strategies matches one of these
        plain, groups = router.match(subject.encode())
        for sub in (*plain, *(s for members in groups for s in members)):
            seen[id(sub)] = sub
    return list(seen.values())


@settings(max_examples=300, deadline=None)
@given(subs, msgs, st.sampled_from(["a.>", "*.b", "b", "c.*.b", "zz"]))
def test_inlined_publish_delivers_as_the_shared_steps(spec, sent, deny) -> None:
    """Router.publish writes admits() and _deliver() out in place for speed: the same
    deliveries, in the same order, as the shared steps give."""
    inline, inline_clients = setup(spec)
    with_deny(inline, inline_clients, deny)
    steps, step_clients = setup(spec)
    with_deny(steps, step_clients, deny)
    for who, subject, reply in sent:
        raw, rep = subject.encode(), reply and reply.encode()
        inline.publish(inline_clients[who], raw, rep, None, b"x")
        plain, groups = steps.match(raw)
        for sub in plain:
            if admits(sub, step_clients[who], raw, rep):
                steps._deliver(sub, raw, rep, None, b"x")
        if groups:
            steps._to_groups(groups, step_clients[who], raw, rep, None, b"x")
    assert [c.log for c in step_clients] == [c.log for c in inline_clients]

