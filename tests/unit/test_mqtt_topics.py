"""MQTT topics and filters ↔ NATS subjects, with nats-server's worked examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jetport.bridges.mqtt import topics
from jetport.bridges.mqtt.topics import (
    TopicError,
    delivery_topic,
    filter_subjects,
    publish_subject,
    split_shared,
    to_subject,
    to_topic,
    valid_filter,
)

EXAMPLES = [
    ("foo/bar", "foo.bar"),
    ("/foo", "/.foo"),
    ("foo/", "foo./"),
    ("/x/", "/.x./"),
    ("foo//bar", "foo./.bar"),
    ("//foo/bar", "/./.foo.bar"),
    ("/", "/./"),
    ("foo.bar", "foo//bar"),
]


@pytest.mark.parametrize(("topic", "subject"), EXAMPLES)
def test_topic_to_subject_and_back(topic: str, subject: str) -> None:
    assert to_subject(topic) == subject
    assert to_topic(subject) == topic


def test_filters() -> None:
    assert to_subject("sport/+/score/#", filter_=True) == "sport.*.score.>"
    assert filter_subjects("a/#") == ["a.>", "a"]
    assert filter_subjects("#") == [">"]
    assert filter_subjects("a/+") == ["a.*"]


@pytest.mark.parametrize("bad", ["a/+", "a/#", "a b", "a\tb", "", "x\x7f"])
def test_invalid_topic_names(bad: str) -> None:
    with pytest.raises(TopicError):
        to_subject(bad)


@pytest.mark.parametrize(("f", "ok"), [
    ("a/#", True), ("#", True), ("+/b/+", True), ("a/b#", False), ("a/#/b", False),
    ("a+/b", False), ("", False),
])
def test_filter_validity(f: str, ok: bool) -> None:
    assert valid_filter(f) is ok


def test_shared_subscriptions() -> None:
    assert split_shared("$share/g1/a/b") == ("g1", "a/b")
    assert split_shared("a/b") == (None, "a/b")
    for bad in ("$share/g1", "$share//a", "$share/g+/a"):
        with pytest.raises(TopicError):
            split_shared(bad)


levels = st.text(alphabet=st.characters(blacklist_characters="/+# \t\r\n\f\x7f",
                                        blacklist_categories=("Cs",)), max_size=5)


@given(st.lists(levels, min_size=1, max_size=6))
def test_round_trip(parts: list[str]) -> None:
    topic = "/".join(parts)
    if topic:
        assert to_topic(to_subject(topic)) == topic


@given(st.lists(levels, min_size=1, max_size=6))
def test_remembered_mappings_are_the_mappings(parts: list[str]) -> None:
    topic = "/".join(parts)
    if topic:
        subject = to_subject(topic)
        for _ in range(2):  # first computed, then remembered
            assert publish_subject(topic) == subject.encode()
            assert delivery_topic(subject.encode()) == topic


def test_remembered_mappings_stay_bounded() -> None:
    long_topic = "a" * 300
    assert publish_subject(long_topic) == long_topic.encode()
    assert long_topic not in topics._subjects
    for i in range(topics._CACHE_SIZE + 10):
        assert publish_subject(f"t/{i}") == b"t.%d" % i
        assert delivery_topic(b"t.%d" % i) == f"t/{i}"
    assert len(topics._subjects) <= topics._CACHE_SIZE
    assert len(topics._topics) <= topics._CACHE_SIZE
    with pytest.raises(TopicError):
        publish_subject("a b")
    assert "a b" not in topics._subjects
