"""Counter arithmetic and the messages a counter stream stores (core/jetstream/counters.py)."""

from __future__ import annotations

import pytest

from jetport.core import headers as H
from jetport.core.jetstream import counters as C
from jetport.core.jetstream import errors as E
from jetport.storage.base import StoredMsg

UNLIMITED = 1 << 30


def last(total: str, sources: bytes | None = None) -> StoredMsg:
    hdr = H.build([(b"Nats-Incr", b"1")] + ([(C.SOURCES, sources)] if sources else []))
    return StoredMsg(1, b"c.a", hdr, b'{"val":"%b"}' % total.encode(), 0)


@pytest.mark.parametrize(("value", "text"), [
    (b"+1", "1"), (b"-0", "0"), (b"+007", "7"), (b"-12", "-12"), (b"9" * 5000, "9" * 5000)])
def test_increments_are_signed_decimals_of_any_size(value: bytes, text: str) -> None:
    assert C.text(C.parse_incr(value)) == text


@pytest.mark.parametrize("value", [b"", b"+", b"1.5", b"1e3", b"0x1", b"1_0", b"+-1",
                                   b" 1", "\u0661".encode()])
def test_anything_else_is_an_invalid_increment(value: bytes) -> None:
    with pytest.raises(E.ApiError) as err:
        C.parse_incr(value)
    assert err.value.err_code == 10171


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"val":5}', b"nope"])
def test_a_stored_value_that_is_not_a_counter_is_broken(payload: bytes) -> None:
    with pytest.raises(E.ApiError) as err:
        C.total_of(payload)
    assert err.value.err_code == 10172


def test_a_local_increment_adds_to_the_last_total_and_keeps_the_sources() -> None:
    sources = b'{"ES":{"es.a":"4"}}'
    hdr = H.build([(b"Nats-Incr", b"+5")])
    got = C.count(last("10", sources), b"c.a", hdr, b"", C.parse_incr(b"+5"), False, UNLIMITED)
    assert got == (H.add(hdr, [(C.SOURCES, sources)]), b'{"val":"15"}', "15")
    first = C.count(None, b"c.a", hdr, b"", C.parse_incr(b"+5"), False, UNLIMITED)
    assert first == (hdr, b'{"val":"5"}', "5")


def test_a_sourced_total_adds_what_it_moved_since_last_seen() -> None:
    origin = b"ES 7 es.> c.> es.a"
    hdr = H.build([(b"Nats-Incr", b"+1"), (C.STREAM_SOURCE, origin)])
    before = last("10", b'{"ES":{"es.a":"4"},"AB":{"x":"1"}}')
    got_hdr, payload, value = C.count(before, b"c.a", hdr, b'{"val":"9"}',
                                      C.parse_incr(b"+1"), True, UNLIMITED)
    assert (payload, value) == (b'{"val":"15"}', "15")
    assert got_hdr == H.build([(b"Nats-Incr", b"5"), (C.STREAM_SOURCE, origin),
                               (C.SOURCES, b'{"AB":{"x":"1"},"ES":{"es.a":"9"}}')])


def test_the_counted_message_must_fit() -> None:
    hdr = H.build([(b"Nats-Incr", b"1")])
    with pytest.raises(E.ApiError) as err:
        C.count(None, b"c.a", hdr, b"", C.parse_incr(b"1"), False, len(hdr) + 10)
    assert err.value.err_code == 10054
    with pytest.raises(E.ApiError) as err:
        C.count(None, b"c.a", None, b"", None, False, UNLIMITED)
    assert err.value.err_code == 10169
