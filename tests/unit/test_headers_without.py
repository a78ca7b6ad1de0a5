"""Taking header lines out of a NATS header block (``headers.remove``)."""

from __future__ import annotations

from jetport.core import headers as H


def test_lines_of_the_keys_go_and_the_rest_stay_in_order() -> None:
    block = H.build([(b"A", b"1"), (b"Nats-Batch-Id", b"x"), (b"B", b"2")])
    assert H.remove(block, [b"Nats-Batch-Id"]) == H.build([(b"A", b"1"), (b"B", b"2")])


def test_nothing_left_is_no_block_unless_it_has_a_status() -> None:
    assert H.remove(H.build([(b"K", b"v")]), [b"K"]) is None
    assert H.remove(H.build([(b"K", b"v")], code=100), [b"K"]) == H.build(code=100)


def test_keys_match_exactly() -> None:
    block = H.build([(b"k", b"v"), (b"K2", b"v")])
    assert H.remove(block, [b"K"]) == block
