"""The subject index against a naive matcher, and the validity rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.core.subjects import (
    SubjectIndex,
    is_literal,
    is_subset,
    is_valid_literal_subject,
    is_valid_publish_subject,
    is_valid_subject,
    subject_matches,
    subjects_overlap,
)


class Sub:
    def __init__(self, subject: bytes, queue: bytes | None = None) -> None:
        self.subject = subject
        self.queue = queue

    def __repr__(self) -> str:
        return f"Sub({self.subject!r}, {self.queue!r})"


def naive(pattern: bytes, subject: bytes) -> bool:
    p, s = pattern.split(b"."), subject.split(b".")
    for i, tok in enumerate(p):
        if tok == b">":
            return len(s) > i
        if i >= len(s):
            return False
        if tok != b"*" and tok != s[i]:
            return False
    return len(p) == len(s)


@pytest.mark.parametrize(
    "subject,ok",
    [
        (b"foo", True), (b"foo.bar", True), (b"foo.*", True), (b"foo.>", True), (b">", True),
        (b"*", True), (b"foo.*.bar", True), (b"foo*.bar", True), (b"foo.>.bar", False),
        (b"", False), (b".foo", False), (b"foo.", False), (b"foo..bar", False),
        (b"foo bar", False), (b"foo\tbar", False), (b"foo\r", False), (b"foo\n", False),
        (b"f\xc3\xa9", True), (b"a.>>", True),
    ],
)
def test_valid_subject(subject: bytes, ok: bool) -> None:
    assert is_valid_subject(subject) is ok


def test_literal_and_publish_subjects() -> None:
    assert is_literal(b"foo*.bar>") and not is_literal(b"foo.*") and not is_literal(b"a.>")
    assert is_valid_literal_subject(b"a.b") and not is_valid_literal_subject(b"a.*")
    assert is_valid_publish_subject(b"a.*") and not is_valid_publish_subject(b"a..b")


@pytest.mark.parametrize(
    "pattern,subject,ok",
    [
        (b"foo.*", b"foo.bar", True), (b"foo.*", b"foo", False), (b"foo.>", b"foo", False),
        (b"foo.>", b"foo.a.b", True), (b"*.b", b"a.b", True), (b">", b"a", True),
        (b"foo*", b"foox", False), (b"a.*.c", b"a.b.c", True), (b"a.*.c", b"a.b.d", False),
    ],
)
def test_subject_matches(pattern: bytes, subject: bytes, ok: bool) -> None:
    assert subject_matches(pattern, subject) is ok


def test_overlap_and_subset() -> None:
    assert subjects_overlap(b"a.*", b"a.b") and subjects_overlap(b"a.>", b"*.b.c")
    assert not subjects_overlap(b"a.*", b"a.b.c") and not subjects_overlap(b"a.>", b"a")
    assert is_subset(b"a.b", b"a.*") and is_subset(b"a.b.c", b"a.>")
    assert not is_subset(b"a.*", b"a.b") and not is_subset(b"a.>", b"a.*")


def test_queue_groups_and_duplicates() -> None:
    idx = SubjectIndex()
    a, b, c = Sub(b"q.x", b"g"), Sub(b"q.*", b"g"), Sub(b"q.x", b"h")
    p = Sub(b"q.>")
    for s in (a, b, c, p, p):
        idx.insert(s)
    assert len(idx) == 4
    plain, groups = idx.match(b"q.x")
    assert plain == (p,)
    assert sorted(map(len, groups)) == [1, 2]
    assert idx.remove(b) and not idx.remove(b)
    plain, groups = idx.match(b"q.x")
    assert sorted(map(len, groups)) == [1, 1]
    assert sorted(s.subject for s in idx) == [b"q.>", b"q.x", b"q.x"]


def test_cache_is_invalidated_and_bounded() -> None:
    idx = SubjectIndex(cache_size=8)
    s = Sub(b"a.b")
    assert idx.match(b"a.b") == ((), ())
    idx.insert(s)
    assert idx.match(b"a.b")[0] == (s,)
    w = Sub(b"a.*")
    idx.insert(w)
    assert set(idx.match(b"a.b")[0]) == {s, w}
    idx.remove(w)
    assert idx.match(b"a.b")[0] == (s,)
    for i in range(100):
        idx.match(b"x.%d" % i)
    assert len(idx.cache) <= 8


tokens = st.sampled_from([b"a", b"b", b"c", b"dd"])
literal = st.lists(tokens, min_size=1, max_size=4).map(b".".join)


@st.composite
def pattern(draw: st.DrawFn) -> bytes:
    toks = draw(st.lists(st.sampled_from([b"a", b"b", b"c", b"*"]), min_size=1, max_size=4))
    if draw(st.booleans()):
        toks[-1] = b">"
    return b".".join(toks)


op = st.tuples(st.sampled_from(["add", "del", "match"]), pattern(), st.sampled_from([None, b"q"]),
               literal)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60))
def test_index_agrees_with_naive_matcher(ops: list) -> None:
    idx = SubjectIndex(cache_size=16)
    live: list[Sub] = []
    for kind, pat, queue, subj in ops:
        if kind == "add":
            s = Sub(pat, queue)
            idx.insert(s)
            live.append(s)
        elif kind == "del" and live:
            s = live.pop(len(pat) % len(live))
            assert idx.remove(s)
        plain, groups = idx.match(subj)
        got = set(plain) | {m for g in groups for m in g}
        want = {s for s in live if naive(s.subject, subj)}
        assert got == want
        assert all(s.queue is None for s in plain)
        for g in groups:
            assert len({m.queue for m in g}) == 1
    assert len(idx) == len(live)


def test_prefix_answers_for_unique_reply_subjects() -> None:
    idx = SubjectIndex()
    inbox = Sub(b"_INBOX.x.*")
    idx.insert(inbox)
    for n in range(50):
        assert idx.match(b"_INBOX.x.%d" % n) == ((inbox,), ())
    assert not idx.cache  # answered by prefix, not one entry per subject
    exact = Sub(b"_INBOX.x.5")
    idx.insert(exact)
    assert set(idx.match(b"_INBOX.x.5")[0]) == {inbox, exact}
    assert idx.match(b"_INBOX.x.6")[0] == (inbox,)
    assert idx.match(b"_INBOX.x.6.7") == ((), ())
    everything = Sub(b">")
    only = SubjectIndex()
    only.insert(everything)
    assert only.match(b"a") == ((everything,), ()) == only.match(b"b")
    assert only.match(b"a.b") == ((everything,), ())
