"""Interest across a leaf link, byte for byte as nats-server announces it."""

from __future__ import annotations

from jetport.bridges.leafnode.interest import LocalInterest, RemoteInterest


def test_a_subject_is_announced_once_and_withdrawn_with_its_last_subscriber() -> None:
    local = LocalInterest()
    assert local.add(b"foo", None) == b"LS+ foo\r\n"
    assert local.add(b"foo", None) is None
    assert local.remove(b"foo", None) is None
    assert local.remove(b"foo", None) == b"LS- foo\r\n"
    assert local.remove(b"foo", None) is None  # never below zero
    assert local.counts == {}


def test_a_queue_group_is_announced_with_its_member_count() -> None:
    """nats-server's sequence for members joining and leaving: LS+ bar q1 1, 2, 1, LS-."""
    local = LocalInterest()
    frames = [local.add(b"bar", b"q1"), local.add(b"bar", b"q1"),
              local.remove(b"bar", b"q1"), local.remove(b"bar", b"q1")]
    assert frames == [b"LS+ bar q1 1\r\n", b"LS+ bar q1 2\r\n", b"LS+ bar q1 1\r\n",
                      b"LS- bar q1\r\n"]


def test_the_burst_lists_every_key_once() -> None:
    local = LocalInterest()
    for subject, queue in [(b"a", None), (b"a", None), (b"b.>", None), (b"c", b"q"),
                           (b"c", b"q"), (b"c", b"r")]:
        local.add(subject, queue)
    assert sorted(local.burst(lambda s: True)) == [
        b"LS+ a\r\n", b"LS+ b.>\r\n", b"LS+ c q 2\r\n", b"LS+ c r 1\r\n"]
    assert sorted(local.burst(lambda s: s != b"c")) == [b"LS+ a\r\n", b"LS+ b.>\r\n"]


def test_remote_interest_decides_what_crosses_and_for_which_groups() -> None:
    remote = RemoteInterest()
    assert remote.wants(b"x", frozenset()) == (False, ())
    remote.add(b"orders.*", None, 1)
    remote.add(b"orders.new", b"workers", 3)
    remote.add(b">", b"audit", 1)
    assert remote.wants(b"orders.new", frozenset()) == (True, (b"audit", b"workers"))
    # A group with a member on this side keeps the message here.
    assert remote.wants(b"orders.new", frozenset({b"workers"})) == (True, (b"audit",))
    assert remote.wants(b"other", frozenset({b"audit"})) == (False, ())
    remote.add(b"orders.new", b"workers", 5)  # a new weight, not a second key
    assert len(remote) == 3
    remote.remove(b"orders.*", None)
    remote.remove(b"never", None)  # ignored, as nats-server does
    assert remote.wants(b"orders.old", frozenset({b"audit"})) == (False, ())
    assert remote.wants(b"orders.new", frozenset()) == (True, (b"audit", b"workers"))
