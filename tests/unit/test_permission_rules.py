"""The one permission decision, as a matrix of principals x actions x subjects.

Expectations are nats-server's, observed with raw clients: deny wins, an allow list
denies the rest, a subscription's own wildcards are matched as tokens against the
rules, queue entries decide for their queue group, and deny rules inside an allowed
wildcard subscription filter what it delivers.
"""

from __future__ import annotations

import time

import pytest

from jetport.core.permissions import (
    Action,
    Permissions,
    ResponsePermission,
    Responses,
    RuleList,
    allowed,
)

PUB, SUB, DELIVER = Action.PUBLISH, Action.SUBSCRIBE, Action.DELIVER


def perms(pub_allow=None, pub_deny=None, sub_allow=None, sub_deny=None) -> Permissions:
    def rules(entries):
        return RuleList(entries) if entries is not None else None

    return Permissions(rules(pub_allow), rules(pub_deny), rules(sub_allow), rules(sub_deny))


PRINCIPALS = {
    "open": None,
    "scoped": perms(pub_allow=["foo.>", "_INBOX.>"], pub_deny=["foo.secret"],
                    sub_allow=["foo.*", "bar.>"], sub_deny=["bar.hidden"]),
    "deny_only": perms(pub_deny=["admin.>"], sub_deny=["admin.>"]),
    "queues": perms(sub_allow=["jobs v1", "work"], sub_deny=["work bad"]),
    "nothing": perms(pub_allow=[], sub_allow=[]),
}

MATRIX = [
    # principal, action, subject, queue, allowed
    ("open", PUB, "anything.at.all", None, True),
    ("open", SUB, ">", None, True),
    ("scoped", PUB, "foo.bar", None, True),
    ("scoped", PUB, "foo.bar.baz", None, True),
    ("scoped", PUB, "foo.secret", None, False),
    ("scoped", PUB, "foo", None, False),
    ("scoped", PUB, "_INBOX.abc.1", None, True),
    ("scoped", PUB, "bar.x", None, False),
    ("scoped", SUB, "foo.bar", None, True),
    ("scoped", SUB, "foo.*", None, True),
    ("scoped", SUB, "foo.>", None, True),  # "*" in the rule covers the ">" token
    ("scoped", SUB, "foo.a.b", None, False),
    ("scoped", SUB, ">", None, False),
    ("scoped", SUB, "*", None, False),
    ("scoped", SUB, "*.bar", None, False),
    ("scoped", SUB, "bar", None, False),
    ("scoped", SUB, "bar.x.y", None, True),
    ("scoped", SUB, "bar.>", None, True),
    ("scoped", SUB, "bar.hidden", None, False),
    ("scoped", SUB, "foo.bar", "q", True),
    ("scoped", DELIVER, "bar.hidden", None, False),
    ("scoped", DELIVER, "bar.shown", None, True),
    ("deny_only", PUB, "admin.users", None, False),
    ("deny_only", PUB, "public", None, True),
    ("deny_only", SUB, "admin.>", None, False),
    ("deny_only", SUB, "public.>", None, True),
    ("queues", SUB, "jobs", None, False),
    ("queues", SUB, "jobs", "v1", True),
    ("queues", SUB, "jobs", "v2", False),
    ("queues", SUB, "work", None, True),
    ("queues", SUB, "work", "good", True),
    ("queues", SUB, "work", "bad", False),
    ("nothing", PUB, "x", None, False),
    ("nothing", SUB, "x", None, False),
]


@pytest.mark.parametrize(("who", "action", "subject", "queue", "expected"), MATRIX)
def test_decision_matrix(who, action, subject, queue, expected) -> None:
    q = queue.encode() if queue else None
    assert allowed(PRINCIPALS[who], action, subject.encode(), q) is expected


def test_publish_answers_are_cached_and_stay_right() -> None:
    p = PRINCIPALS["scoped"]
    for _ in range(3):
        assert p.can_publish(b"foo.x") and not p.can_publish(b"foo.secret")


def test_wildcard_subscriptions_around_deny_rules_filter_deliveries() -> None:
    p = PRINCIPALS["scoped"]
    assert p.needs_delivery_check(b"bar.>")
    assert not p.needs_delivery_check(b"bar.shown")
    assert not p.needs_delivery_check(b"foo.*")


def test_responses_grant_max_replies_until_they_expire() -> None:
    r = Responses(ResponsePermission(max=2, expires=0.2))
    assert not r.use(b"_INBOX.x")
    r.grant(b"_INBOX.x")
    assert r.use(b"_INBOX.x") and r.use(b"_INBOX.x")
    assert not r.use(b"_INBOX.x")
    r.grant(b"_INBOX.y")
    time.sleep(0.25)
    assert not r.use(b"_INBOX.y")


def test_to_json_has_nats_server_shape() -> None:
    p = perms(pub_allow=["a"], sub_deny=["b"])
    p.responses = ResponsePermission(max=1, expires=2.0)
    assert p.to_json() == {
        "publish": {"allow": ["a"]},
        "subscribe": {"deny": ["b"]},
        "responses": {"max": 1, "ttl": 2_000_000_000},
    }
