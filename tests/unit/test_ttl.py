"""Nats-TTL values and the header rewrite, without a server."""

from __future__ import annotations

import pytest

from jetport.core import headers as H
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.ttl import NEVER, parse_ttl

S = 1_000_000_000


@pytest.mark.parametrize(("value", "ns"), [
    (b"1s", S), (b"2", 2 * S), (b" 3 ", 3 * S), (b"1.5s", 3 * S // 2), (b"1000ms", S),
    (b"1m30s", 90 * S), (b"+2s", 2 * S), (b"1h", 3600 * S), (b"never", NEVER),
])
def test_ttl_values(value: bytes, ns: int) -> None:
    assert parse_ttl(value) == ns


@pytest.mark.parametrize("value", [b"0", b"0s", b"999ms", b"-1", b"-2s", b"abc", b"5x", b"",
                                   b"Never", b"1s2"])
def test_ttl_refused(value: bytes) -> None:
    with pytest.raises(E.ApiError) as err:
        parse_ttl(value)
    assert err.value.err_code == 10165


def test_replace_header_keeps_the_rest() -> None:
    hdr = H.build([(b"A", b"1"), (b"Nats-TTL", b"1s"), (b"Nats-TTLx", b"y")])
    out = H.replace(hdr, b"Nats-TTL", b"3")
    assert out == H.build([(b"A", b"1"), (b"Nats-TTL", b"3"), (b"Nats-TTLx", b"y")])
    assert H.replace(hdr, b"Missing", b"x") == hdr
