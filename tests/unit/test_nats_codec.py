"""The NATS codec with byte strings only: every op, every error, every split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.bridges.nats.codec import (
    ERR_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_NO_RESPONDERS,
    ERR_PROTOCOL,
    ERR_UNKNOWN_OP,
    LARGE_PAYLOAD,
    OP_CLOSE,
    OP_CONNECT,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_PUBS,
    OP_SUB,
    OP_UNSUB,
    ServerCodec,
    _large_first,
)
from jetport.bridges.nats.encoder import encode_err, encode_info, encode_msg

HDRS = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'


def spelled(events: list[tuple]) -> list[tuple]:
    """``events`` with gathered runs spelled out one PUB each."""
    out: list[tuple] = []
    for ev in events:
        if ev[0] == OP_PUBS:
            out += [(OP_PUB, ev[1], ev[2], ev[3], p) for p in ev[4]]
        else:
            out.append(ev)
    return out


def feed(*chunks: bytes, **kw) -> list[tuple]:
    """Events of the chunks, with gathered runs spelled out one PUB each."""
    codec = ServerCodec(**kw)
    events: list[tuple] = []
    for c in chunks:
        events += spelled(codec.receive_data(c))
    return events


def splits(data: bytes, **kw) -> None:
    """Every two-way and byte-by-byte split gives the same events as one read."""
    whole = feed(data, **kw)
    for i in range(len(data) + 1):
        assert feed(data[:i], data[i:], **kw) == whole, i
    assert feed(*[data[i : i + 1] for i in range(len(data))], **kw) == whole
    return whole


def test_pub_sub_unsub_ping_pong() -> None:
    data = (b"SUB foo 1\r\nSUB foo.* q 2\r\nPUB foo 5\r\nhello\r\nPUB foo bar 0\r\n\r\n"
            b"UNSUB 1\r\nUNSUB 2 10\r\nUNSUB 3 x\r\nPING\r\nPONG\r\n")
    assert splits(data) == [
        (OP_SUB, b"foo", None, b"1"),
        (OP_SUB, b"foo.*", b"q", b"2"),
        (OP_PUB, b"foo", None, None, b"hello"),
        (OP_PUB, b"foo", b"bar", None, b""),
        (OP_UNSUB, b"1", None),
        (OP_UNSUB, b"2", 10),
        (OP_UNSUB, b"3", -1),
        (OP_PING,),
        (OP_PONG,),
    ]


def test_consecutive_pubs_to_one_subject_are_gathered() -> None:
    data = (b"PUB a 1\r\nx\r\nPUB a 2\r\nyy\r\nPUB a r 1\r\nz\r\nPUB a r 0\r\n\r\n"
            b"PING\r\nPUB a 1\r\nw\r\n")
    assert ServerCodec().receive_data(data) == [
        (OP_PUBS, b"a", None, None, [b"x", b"yy"]),
        (OP_PUBS, b"a", b"r", None, [b"z", b""]),
        (OP_PING,),
        (OP_PUB, b"a", None, None, b"w"),
    ]


def test_case_tabs_and_bare_lf_in_control_lines() -> None:
    data = b"sub\ta\t 1\npub a  2\r\nhi\r\nping\nPINGX\r\nPING foo\r\n"
    assert splits(data) == [
        (OP_SUB, b"a", None, b"1"),
        (OP_PUB, b"a", None, None, b"hi"),
        (OP_PING,), (OP_PING,), (OP_PING,),
    ]


def test_connect_merges_defaults_and_enables_hpub() -> None:
    data = HDRS + b"HPUB a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB a 0 2\r\nhi\r\n"
    events = splits(data)
    assert events[0][0] == OP_CONNECT
    assert events[0][1]["echo"] is True and events[0][1]["verbose"] is False
    assert events[1] == (OP_PUB, b"a", b"r", b"NATS/1.0\r\n\r\n", b"hi")
    assert events[2] == (OP_PUB, b"a", None, None, b"hi")
    assert feed(b"CONNECT {}\r\n")[0][1]["verbose"] is True


def test_payload_with_crlf_inside_and_large() -> None:
    body = b"x\r\nPUB y 1\r\n" * 1000
    data = b"PUB a %d\r\n%b\r\nPING\r\n" % (len(body), body)
    assert feed(data) == [(OP_PUB, b"a", None, None, body), (OP_PING,)]
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert feed(*chunks) == [(OP_PUB, b"a", None, None, body), (OP_PING,)]


def test_reads_that_start_with_a_large_pub_parse_the_same() -> None:
    """A read whose first frame is a PUB of LARGE_PAYLOAD bytes or more is parsed frame by
    frame at offsets; whatever follows it and wherever the reads are cut, the events are
    those of one read."""
    big = b"z" * LARGE_PAYLOAD
    crlf_inside = b"y\r\n" * (LARGE_PAYLOAD // 3 + 1)
    data = (b"PUB big %d\r\n%b\r\n" % (len(big), big)
            + b"PUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPING\r\n"
            + b"PUB big %d\r\n%b\r\n" % (len(crlf_inside), crlf_inside)
            + b"HPUB h 12 13\r\nNATS/1.0\r\n\r\nx\r\n"
            + b"PUB big %d\r\n%b\r\nSUB s 1\r\n" % (len(big), big))
    feed(data)  # the large PUB line is now a known one: later reads take the offset path
    events = splits(HDRS + data)
    assert [e[0] for e in events] == [OP_CONNECT, OP_PUB, OP_PUB, OP_PUB, OP_PING, OP_PUB,
                                      OP_PUB, OP_PUB, OP_SUB]
    assert events[5][4] == crlf_inside and events[7][4] == big
    assert events[6][3] == b"NATS/1.0\r\n\r\n" and events[6][4] == b"x"
    assert feed(b"PUB big %d\r\n%b\r\nPUB a 9999999\r\n" % (len(big), big),
                max_payload=LARGE_PAYLOAD)[-1] == (OP_CLOSE, ERR_MAX_PAYLOAD)


def test_reads_that_start_with_a_large_publish_with_a_reply_parse_the_same() -> None:
    """JetStream publishes: each PUB or HPUB has its own reply subject, so its line is in
    no table; a large one still sends the read down the offset path, with the same
    events wherever the reads are cut."""
    big = b"z" * LARGE_PAYLOAD
    hdr = b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n"
    data = (b"PUB js.a _INBOX.abc.1 %d\r\n%b\r\n" % (len(big), big)
            + b"HPUB js.a _INBOX.abc.2 %d %d\r\n%b%b\r\nPING\r\n"
            % (len(hdr), len(hdr) + len(big), hdr, big))
    for first in (data, data[data.index(b"HPUB"):]):
        assert _large_first(first[:first.index(b"\r")], True)
        events = splits(HDRS + first)
        assert events[-1] == (OP_PING,) and events[-2] == (OP_PUB, b"js.a", b"_INBOX.abc.2",
                                                            hdr, big)
    assert splits(HDRS + data)[1] == (OP_PUB, b"js.a", b"_INBOX.abc.1", None, big)
    assert not _large_first(b"PUB js.a _INBOX.abc.1 %d" % (LARGE_PAYLOAD - 1), True)
    assert not _large_first(b"HPUB js.a r 2 %d" % LARGE_PAYLOAD, False)  # no headers
    assert not _large_first(b"PUB js.a r x", True)


@pytest.mark.parametrize(
    "data,err",
    [
        (b"FOO\r\n", ERR_UNKNOWN_OP),
        (b"\r\n", ERR_UNKNOWN_OP),
        (b" PING\r\n", ERR_UNKNOWN_OP),
        (b"MSG a 1 1\r\nx\r\n", ERR_UNKNOWN_OP),
        (b"UNSUB\r\n", ERR_UNKNOWN_OP),
        (b"PUB a 2\r\nhiXX", ERR_UNKNOWN_OP),
        (b"PUB a 2\r\nhi\nPING\r\n", ERR_UNKNOWN_OP),
        (b"PUB a\r\n", None),
        (b"PUB a x\r\n", None),
        (b"PUB a -1\r\n", None),
        (b"PUB a b c 1\r\n", None),
        (b"SUB a b c d\r\n", None),
        (b"SUB a\r\n", None),
        (b"UNSUB 1 2 3\r\n", None),
        (b"HPUB a 12 14\r\n", None),
        (b"-ERR 'x'\r\n", None),
        (b"CONNECT {bad\r\n", None),
        (b"CONNECT []\r\n", None),
        (b"CONNECT\r\n", None),
        (b'CONNECT {"verbose":"x"}\r\n', None),
        (b'CONNECT {"protocol":2}\r\n', ERR_PROTOCOL),
        (b'CONNECT {"no_responders":true}\r\n', ERR_NO_RESPONDERS),
        (b"PUB a 1048577\r\n", ERR_MAX_PAYLOAD),
        (b"PUB " + b"a" * 5000 + b" 2\r\nhi\r\n", ERR_CONTROL_LINE),
        (b"SUB " + b"a" * 5000 + b" 1\r\n", ERR_CONTROL_LINE),
        (b"SUB " + b"a" * 5000, ERR_CONTROL_LINE),
    ],
)
def test_fatal_errors_close(data: bytes, err: str | None) -> None:
    events = feed(data)
    assert events[-1] == (OP_CLOSE, err)
    # nothing is read after a fatal error
    codec = ServerCodec()
    codec.receive_data(data)
    assert codec.receive_data(b"PING\r\n") == []


def test_hpub_header_bigger_than_total_closes() -> None:
    assert feed(HDRS + b"HPUB a 14 12\r\n")[-1] == (OP_CLOSE, None)


def test_events_before_an_error_are_kept() -> None:
    events = feed(b"SUB a 1\r\nPUB a 1\r\nx\r\nBOGUS\r\nPING\r\n")
    assert [e[0] for e in events] == [OP_SUB, OP_PUB, OP_CLOSE]


def test_info_and_ok_from_client_are_ignored() -> None:
    assert feed(b"INFO {}\r\n+OK\r\nPING\r\n") == [(OP_PING,)]


def test_limits_are_parameters() -> None:
    assert feed(b"PUB a 11\r\n", max_payload=10)[-1] == (OP_CLOSE, ERR_MAX_PAYLOAD)
    assert feed(b"PUB a 10\r\n0123456789\r\n", max_payload=10)[0][0] == OP_PUB
    assert feed(b"SUB " + b"a" * 20 + b" 1\r\n", max_control_line=16)[-1][0] == OP_CLOSE


def test_exactly_max_payload_is_accepted() -> None:
    body = b"z" * 1048576
    assert feed(b"PUB a 1048576\r\n" + body + b"\r\n") == [(OP_PUB, b"a", None, None, body)]


def test_encoders_byte_exact() -> None:
    assert encode_msg(b"a", b"1", None, None, b"hi") == b"MSG a 1 2\r\nhi\r\n"
    assert encode_msg(b"a", b"1", b"r", None, b"") == b"MSG a 1 r 0\r\n\r\n"
    assert encode_msg(b"a", b"1", None, b"NATS/1.0\r\n\r\n", b"hi") == (
        b"HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    )
    assert encode_msg(b"a", b"1", b"r", b"NATS/1.0\r\n\r\n", b"") == (
        b"HMSG a 1 r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    )
    assert encode_err("Invalid Subject") == b"-ERR 'Invalid Subject'\r\n"
    assert encode_info({"a": 1}) == b'INFO {"a":1} \r\n'


frame = st.one_of(
    st.builds(lambda s, p: b"PUB %b %d\r\n%b\r\n" % (s, len(p), p),
              st.sampled_from([b"a", b"b.c"]), st.binary(max_size=40)),
    st.builds(lambda s, r, p: b"PUB %b %b %d\r\n%b\r\n" % (s, r, len(p), p),
              st.sampled_from([b"a"]), st.sampled_from([b"_INBOX.1"]), st.binary(max_size=10)),
    st.builds(lambda h, p: b"HPUB a %d %d\r\n%b%b\r\n" % (len(h), len(h) + len(p), h, p),
              st.sampled_from([b"NATS/1.0\r\n\r\n", b"NATS/1.0\r\nK: v\r\n\r\n"]),
              st.binary(max_size=10)),
    st.just(b"SUB a.* q 9\r\n"), st.just(b"UNSUB 9 3\r\n"), st.just(b"PING\r\n"),
    st.just(b"PUB a 7\r\n\r\nx\r\n\r\n\r\n"), st.just(b"PUB a 3\r\nx\r\r\r\n"),
    st.just(b"PING\n"), st.just(b"pub b 1\r\nz\r\n"),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frame, max_size=12), st.lists(st.integers(0, 400), max_size=6))
def test_random_streams_split_anywhere(frames: list[bytes], cuts: list[int]) -> None:
    data = HDRS + b"".join(frames)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    whole = feed(data)
    assert feed(*chunks) == whole
    assert len(whole) == len(frames) + 1
    # the part walk agrees with plain op-by-op parsing
    codec = ServerCodec()
    events: list[tuple] = []
    codec._positional(data, 0, events)
    assert spelled(events) == whole


# -- inputs the fuzzing campaign found (tests/campaigns/fuzz.py) -----------------------


def test_parse_connect_nested_deeper_than_python_closes() -> None:
    assert ServerCodec().receive_data(b"CONNECT " + b"[" * 1000 + b"\r\n") == [(OP_CLOSE, None)]


def test_parse_sizes_of_thousands_of_digits_are_payload_violations() -> None:
    assert ServerCodec().receive_data(b"PUB foo " + b"9" * 30 + b"\r\n") == [
        (OP_CLOSE, ERR_MAX_PAYLOAD)]
    huge = b"9" * 4301  # past Python's int() limit; a long control line may allow it
    assert ServerCodec(max_control_line=20_000).receive_data(b"PUB foo " + huge + b"\r\n") == [
        (OP_CLOSE, ERR_MAX_PAYLOAD)]
    assert ServerCodec().receive_data(b"PUB foo " + huge + b"\r\n") == [
        (OP_CLOSE, ERR_CONTROL_LINE)]
    codec = ServerCodec(max_control_line=20_000)
    codec.receive_data(HDRS)
    assert codec.receive_data(b"HPUB foo " + huge + b" " + huge + b"\r\n") == [
        (OP_CLOSE, ERR_MAX_PAYLOAD)]
    codec = ServerCodec(max_control_line=20_000)
    assert codec.receive_data(b"UNSUB 1 " + huge + b"\r\n")[0][0] == OP_UNSUB
