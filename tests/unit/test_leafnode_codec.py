"""The leafnode codec with byte strings only: every op, every layout, every error, every
split.  Wire samples marked "captured" are what nats-server 2.15.1 sent on loopback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.bridges.leafnode.codec import (
    ERR_AUTH,
    ERR_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OP,
    LeafCodec,
)
from jetport.bridges.leafnode.encoder import (
    PING,
    PONG,
    encode,
    encode_connect,
    encode_err,
    encode_info,
    encode_msg,
    encode_sub,
    encode_unsub,
)
from jetport.bridges.leafnode.events import (
    Connect,
    Event,
    Info,
    LeafConnectOptions,
    LeafMsg,
    LeafMsgs,
    LeafSub,
    LeafUnsub,
    Ok,
    Ping,
    Pong,
    ProtocolViolation,
    RemoteError,
    ServerInfo,
    SubjectPermission,
)

HDR = b"NATS/1.0\r\nK: V\r\n\r\n"  # 18 bytes
#: The first INFO a nats-server hub sent on its leafnode port (captured).
HUB_INFO = (
    b'INFO {"server_id":"NA544SMQIOQYWQQ5TMJWN3HXA22ZUGM256DAKL4UGUI26MNBGV24L6GP",'
    b'"server_name":"hubx","version":"2.15.1","proto":3,"git_commit":"b2fd3ef",'
    b'"go":"go1.27.2","host":"127.0.0.1","port":17422,"headers":true,"auth_required":true,'
    b'"max_payload":1000,"ip":"127.0.0.1:17422","client_id":50,"nonce":"S-IIAK6wYCv9ThU",'
    b'"compression":"s2_auto","api_lvl":5,"info_on_connect":true,'
    b'"leafnode_urls":["127.0.0.1:17422"]} \r\n'
)
#: The INFO it sent after CONNECT (captured).
HUB_CONNECT_INFO = (
    b'INFO {"server_id":"NA544SMQIOQYWQQ5TMJWN3HXA22ZUGM256DAKL4UGUI26MNBGV24L6GP",'
    b'"server_name":"hubx","version":"2.15.1","proto":3,"git_commit":"b2fd3ef",'
    b'"go":"go1.27.2","host":"127.0.0.1","port":17422,"headers":true,"auth_required":true,'
    b'"max_payload":1000,"ip":"127.0.0.1:17422","client_id":84,"connect_info":true,'
    b'"remote_account":"$G","api_lvl":5,"info_on_connect":true,'
    b'"leafnode_urls":["127.0.0.1:17422"]} \r\n'
)
#: The CONNECT a nats-server leaf sent (captured; Go escapes '>' as \u003e).
LEAF_CONNECT = (
    b'CONNECT {"version":"2.15.1","user":"u","pass":"p",'
    b'"server_id":"NA6MJCZ43VO3Y3M3GIGI6GP23MXCJQVVMHS6CQZ7OVTKE7RS5EKF5YAJ","domain":"leaf1",'
    b'"name":"leafA","cluster":"leafA","headers":true,"jetstream":true,'
    b'"deny_pub":["secret.\\u003e"],"compress_mode":"not supported","remote_account":"$G",'
    b'"protocol":3}\r\n'
)


def feed(*chunks: bytes, **kw) -> list[Event]:
    """The events of ``chunks``, runs (:class:`LeafMsgs`) counted as their messages."""
    codec = LeafCodec(**kw)
    events: list[Event] = []
    for chunk in chunks:
        for event in codec.receive_data(chunk):
            events += event.messages() if isinstance(event, LeafMsgs) else [event]
    return events


def _offsets(size: int) -> list[int]:
    """Every offset of a small input; for a large one, the edges and a stride."""
    if size <= 2048:
        return list(range(size + 1))
    return sorted({*range(0, 16), *range(size - 16, size + 1), *range(0, size, 997)})


def splits(data: bytes, **kw) -> list[Event]:
    """Events of ``data`` read at once; split in two at every offset, and byte by byte,
    it must give the same events."""
    whole = feed(data, **kw)
    for i in _offsets(len(data)):
        assert feed(data[:i], data[i:], **kw) == whole, f"split at {i}"
    if len(data) <= 2048:
        assert feed(*[data[i : i + 1] for i in range(len(data))], **kw) == whole
    else:
        assert feed(*[data[i : i + 61] for i in range(0, len(data), 61)], **kw) == whole
    return whole


# -- INFO and CONNECT ---------------------------------------------------------------------


def test_hub_info_parsed_with_the_fields_a_leaf_uses() -> None:
    [event] = splits(HUB_INFO)
    assert isinstance(event, Info)
    info = event.info
    assert (info.server_name, info.proto, info.client_id, info.max_payload) == ("hubx", 3, 50, 1000)
    assert info.headers and info.auth_required and info.info_on_connect
    assert info.leafnode_urls == ("127.0.0.1:17422",)
    assert info.nonce == "S-IIAK6wYCv9ThU" and info.compression == "s2_auto"


def test_info_and_connect_reencode_to_the_captured_bytes() -> None:
    for data in (HUB_INFO, HUB_CONNECT_INFO):
        [event] = feed(data)
        assert encode(event) == data
    [event] = feed(LEAF_CONNECT, accepting=True)
    assert encode(event) == LEAF_CONNECT


def test_connect_info_carries_remote_account() -> None:
    [event] = splits(HUB_CONNECT_INFO)
    assert isinstance(event, Info)
    assert event.info.connect_info and event.info.remote_account == "$G"


def test_info_leafnode_urls_absent_is_none_and_empty_is_empty() -> None:
    [event] = feed(b'INFO {"client_id":1,"leafnode_urls":[]}\r\nINFO {}\r\n')[:1]
    assert isinstance(event, Info) and event.info.leafnode_urls == ()
    assert feed(b"INFO {}\r\n") == [Info(ServerInfo())]


def test_solicit_side_takes_headers_from_the_first_info_only() -> None:
    codec = LeafCodec()
    codec.receive_data(b'INFO {"headers":true,"client_id":1}\r\n')
    codec.receive_data(b'INFO {"headers":false}\r\n')
    assert codec.headers


def test_leaf_connect_parsed() -> None:
    [event] = splits(LEAF_CONNECT, accepting=True)
    assert isinstance(event, Connect)
    opts = event.options
    assert (opts.user, opts.password, opts.domain, opts.cluster) == ("u", "p", "leaf1", "leafA")
    assert opts.deny_pub == ("secret.>",) and opts.jetstream and opts.protocol == 3
    assert opts.compress_mode == "not supported" and event.lang == ""


def test_connect_keys_match_any_case_and_null_is_absent() -> None:
    data = b'CONNECT {"NAME":"a","name":"b","Headers":true,"cluster":null,"lang":"go"}\r\n'
    [event] = splits(data, accepting=True)
    assert event == Connect(LeafConnectOptions(name="b", headers=True), lang="go")


def test_accepting_codec_wants_connect_first() -> None:
    for data in (b"PING\r\n", b"INFO {}\r\n", b"LS+ a\r\n", b"\r\n", b"ping\r\n"):
        assert splits(data, accepting=True) == [ProtocolViolation(ERR_AUTH)]
    codec = LeafCodec(accepting=True)
    events = codec.receive_data(b'cOnNeCt {"headers":true}\r\nPING\r\nHPUB a 12 14\r\n'
                                b"NATS/1.0\r\n\r\nhi\r\n")
    assert [type(e) for e in events] == [Connect, Ping, LeafMsg]
    assert codec.headers


@pytest.mark.parametrize(
    "json_text",
    [
        b"{bad", b"", b"[]", b"1", b'{"headers":"yes"}', b'{"protocol":1.5}', b'{"protocol":"3"}',
        b'{"deny_pub":[1]}', b'{"deny_pub":"x"}', b'{"import":[]}', b'{"verbose":1}',
        b'{"protocol":9223372036854775808}', b'{"name":NaN}', b"[" * 5000,
    ],
)
def test_connect_json_nats_server_cannot_decode_closes_without_err(json_text: bytes) -> None:
    assert feed(b"CONNECT " + json_text + b"\r\n", accepting=True) == [ProtocolViolation()]


@pytest.mark.parametrize(
    "json_text",
    [b'{"client_id":-1}', b'{"max_payload":2147483648}', b'{"leafnode_urls":"a"}',
     b'{"import":{"allow":"x"}}', b'{"gossip_mode":256}', b"{"],
)
def test_info_json_nats_server_cannot_decode_closes_without_err(json_text: bytes) -> None:
    assert feed(b"INFO " + json_text + b"\r\n") == [ProtocolViolation()]


def test_info_permissions_and_null_list_items() -> None:
    [event] = splits(b'INFO {"import":{"allow":["a",null]},"export":{"DENY":["b"]}}\r\n')
    assert isinstance(event, Info)
    assert event.info.import_perms == SubjectPermission(allow=("a", ""))
    assert event.info.export_perms == SubjectPermission(deny=("b",))


# -- interest -------------------------------------------------------------------------------


def test_ls_plus_plain_and_queue_with_weight() -> None:
    data = b"LS+ foo\r\nLS+ bar q 3\r\nls+\tbaz\t\tq2  12\nLS+ $LDS.x\r\n"
    assert splits(data) == [
        LeafSub(b"foo"), LeafSub(b"bar", b"q", 3), LeafSub(b"baz", b"q2", 12), LeafSub(b"$LDS.x"),
    ]


def test_ls_plus_weight_zero_or_not_a_number_counts_as_one() -> None:
    assert splits(b"LS+ a q 0\r\nLS+ a q x\r\nLS+ a q 1234567890\r\n") == [
        LeafSub(b"a", b"q", 1)] * 3


@pytest.mark.parametrize("line", [b"LS+ a q\r\n", b"LS+ a q 5 x\r\n", b"LS+ \r\n", b"RS+ a b\r\n"])
def test_ls_plus_with_two_or_four_args_closes_without_err(line: bytes) -> None:
    assert splits(line + b"PING\r\n") == [ProtocolViolation()]


def test_ls_minus_plain_and_queue() -> None:
    assert splits(b"LS- foo\r\nLS- bar q\r\n") == [LeafUnsub(b"foo"), LeafUnsub(b"bar", b"q")]


def test_ls_minus_for_no_key_or_extra_args_is_ignored() -> None:
    assert splits(b"LS- \r\nLS- a b c\r\nPING\r\n") == [Ping()]


# -- messages -------------------------------------------------------------------------------


def test_lmsg_plain_and_with_reply() -> None:
    assert splits(b"LMSG foo 5\r\nhello\r\nLMSG foo r1 0\r\n\r\n") == [
        LeafMsg(b"foo", None, (), None, b"hello"), LeafMsg(b"foo", b"r1", (), None, b"")]


def test_lmsg_with_reply_and_queues() -> None:
    # captured: the hub picked this leaf for groups q and q2
    assert splits(b"LMSG bar + r3 q q2 1\r\nf\r\n") == [
        LeafMsg(b"bar", b"r3", (b"q", b"q2"), None, b"f")]


def test_lmsg_with_queues_only() -> None:
    assert splits(b"LMSG bar | q q2 1\r\ne\r\n") == [
        LeafMsg(b"bar", None, (b"q", b"q2"), None, b"e")]


def test_lmsg_plus_without_queues_is_a_reply() -> None:
    assert splits(b"LMSG a + r 1\r\nx\r\n") == [LeafMsg(b"a", b"r", (), None, b"x")]


def test_lmsg_three_args_take_the_middle_one_as_reply_whatever_it_is() -> None:
    assert splits(b"LMSG a | 1\r\nx\r\nLMSG a + 1\r\ny\r\n") == [
        LeafMsg(b"a", b"|", (), None, b"x"), LeafMsg(b"a", b"+", (), None, b"y")]


def test_consecutive_plain_lmsgs_to_one_subject_come_as_one_run() -> None:
    data = (b"LMSG foo 1\r\na\r\nLMSG foo 2\r\nbb\r\nLMSG foo  1\r\nc\r\n"
            b"LMSG foo r 1\r\nd\r\nLMSG foo r 1\r\ne\r\nLMSG bar 1\r\nf\r\n"
            b"LMSG bar | q 1\r\ng\r\nLMSG bar 1\r\nh\r\n")
    codec = LeafCodec()
    assert codec.receive_data(data) == [  # (a line with two blanks is read on its own)
        LeafMsgs(b"foo", None, [b"a", b"bb"]), LeafMsg(b"foo", None, (), None, b"c"),
        LeafMsgs(b"foo", b"r", [b"d", b"e"]),
        LeafMsg(b"bar", None, (), None, b"f"), LeafMsg(b"bar", None, (b"q",), None, b"g"),
        LeafMsg(b"bar", None, (), None, b"h")]
    # read in any pieces, the same messages in the same order
    assert splits(data) == [
        *LeafMsgs(b"foo", None, [b"a", b"bb", b"c"]).messages(),
        *LeafMsgs(b"foo", b"r", [b"d", b"e"]).messages(),
        LeafMsg(b"bar", None, (), None, b"f"), LeafMsg(b"bar", None, (b"q",), None, b"g"),
        LeafMsg(b"bar", None, (), None, b"h")]
    assert encode(LeafMsgs(b"foo", b"r", [b"d", b"e"])) == (
        b"LMSG foo r 1\r\nd\r\nLMSG foo r 1\r\ne\r\n")


def test_a_run_is_checked_like_single_messages() -> None:
    ok = b"LMSG foo 1\r\na\r\n"
    assert splits(ok + b"LMSG foo 1\r\nab\r\n") == [
        LeafMsg(b"foo", None, (), None, b"a"), ProtocolViolation("Unknown Protocol Operation")]
    assert splits(ok + b"LMSG foo 2\r\nab\r\n", max_payload=1) == [
        LeafMsg(b"foo", None, (), None, b"a"), ProtocolViolation("Maximum Payload Violation")]


def test_hmsg_with_headers_reply_and_queues() -> None:
    # captured forms
    data = (b"HMSG foo r2 18 19\r\n" + HDR + b"c\r\nHMSG foo 18 19\r\n" + HDR + b"d\r\n"
            b"HMSG bar + r4 q q2 18 19\r\n" + HDR + b"g\r\nHMSG bar | q q2 18 18\r\n" + HDR
            + b"\r\n")
    assert splits(data) == [
        LeafMsg(b"foo", b"r2", (), HDR, b"c"), LeafMsg(b"foo", None, (), HDR, b"d"),
        LeafMsg(b"bar", b"r4", (b"q", b"q2"), HDR, b"g"),
        LeafMsg(b"bar", None, (b"q", b"q2"), HDR, b""),
    ]


def test_hmsg_header_size_zero_is_no_headers() -> None:
    assert splits(b"HMSG a 0 2\r\nhi\r\n") == [LeafMsg(b"a", None, (), None, b"hi")]


def test_hmsg_is_taken_whatever_headers_was_negotiated() -> None:
    assert feed(b"HMSG a 12 12\r\nNATS/1.0\r\n\r\n\r\n")[0] == LeafMsg(
        b"a", None, (), b"NATS/1.0\r\n\r\n", b"")


def test_payload_holding_crlf_and_ops_is_payload() -> None:
    body = b"x\r\nLMSG a 1\r\ny\r\nPING\r\n" * 200
    data = b"LMSG a %d\r\n%b\r\nPING\r\n" % (len(body), body)
    assert splits(data) == [LeafMsg(b"a", None, (), None, body), Ping()]


@pytest.mark.parametrize(
    "line",
    [b"LMSG a\r\n", b"LMSG a b c 5\r\n", b"LMSG a ++ r 5\r\n", b"LMSG a + r q x\r\n",
     b"LMSG a -1\r\n", b"LMSG a 1234567890\r\n", b"HMSG a 5\r\n", b"HMSG a 6 5\r\n",
     b"HMSG a x 5\r\n", b"HMSG a 5 x\r\n", b"HMSG a x q 12 14\r\n", b"HMSG a 2000 1001\r\n",
     b"LMSG  \r\n", b"LMSG \r\n\r\n"],
)
def test_message_argument_errors_close_without_err(line: bytes) -> None:
    assert splits(line + b"PING\r\n", max_payload=1000) == [ProtocolViolation()]


def test_payload_over_max_payload_is_a_payload_violation() -> None:
    for line in (b"LMSG a 1001\r\n", b"LMSG a | q 1001\r\n", b"HMSG a 12 1001\r\n",
                 b"LMSG a 999999999\r\n", b"PUB a 1001\r\n"):
        assert splits(line, max_payload=1000) == [ProtocolViolation(ERR_MAX_PAYLOAD)]
    assert splits(b"LMSG a 1048577\r\n") == [ProtocolViolation(ERR_MAX_PAYLOAD)]


def test_exactly_max_payload_and_no_limit_are_accepted() -> None:
    body = b"z" * 1000
    assert feed(b"LMSG a 1000\r\n" + body + b"\r\n", max_payload=1000)[0].payload == body
    assert feed(b"LMSG a 999999999\r\n", max_payload=None) == []


def test_payload_not_followed_by_crlf_is_unknown_op() -> None:
    for data in (b"LMSG a 5\r\nhelloXX", b"LMSG a 5\r\nhello\nPING\r\n", b"LMSG a 1\r\nx\rX"):
        assert splits(data) == [ProtocolViolation(ERR_UNKNOWN_OP)]


# -- control lines and ops ----------------------------------------------------------------


def test_control_line_allows_sixteen_times_max_control_line() -> None:
    ok = b"LS+ " + b"a" * 65536 + b"\r\n"
    assert splits(ok) == [LeafSub(b"a" * 65536)]
    over = b"LS+ " + b"a" * 65537 + b"\r\n"
    assert splits(over) == [ProtocolViolation(ERR_CONTROL_LINE)]
    assert feed(b"LS+ " + b"a" * 20 + b"\r\n", max_control_line=1) == [
        ProtocolViolation(ERR_CONTROL_LINE)]


def test_partial_control_line_over_the_limit_closes_before_its_end() -> None:
    assert feed(b"LS+ " + b"a" * 65536) == []
    assert feed(b"LS+ " + b"a" * 65537) == [ProtocolViolation(ERR_CONTROL_LINE)]
    assert feed(b"LMSG a ", b"r" * 70000) == [ProtocolViolation(ERR_CONTROL_LINE)]
    assert feed(b'CONNECT {"name":"' + b"n" * 70000, accepting=True) == [
        ProtocolViolation(ERR_CONTROL_LINE)]


def test_what_nats_server_skips_is_not_buffered() -> None:
    codec = LeafCodec()
    codec.receive_data(b"PING")
    for _ in range(100):
        assert codec.receive_data(b"x" * 10000) == []
    assert codec._word == b"PING"
    assert codec.receive_data(b"\r\nLS+") == [Ping()]
    for _ in range(100):
        assert codec.receive_data(b" \t" * 5000) == []
    assert codec._word == b"LS+" and codec._arg_len == 0
    assert codec.receive_data(b"foo\r\n") == [LeafSub(b"foo")]
    assert codec.receive_data(b"PING" + b"y" * 100000 + b"\r\n") == [Ping()]


def test_case_tabs_bare_lf_and_trailing_text_after_ping() -> None:
    data = b"ping\npong\r\nPINGX\r\nPING foo\r\n+OKAY\r\nlmsg\ta\t5\nhello\r\n-ERR 'boom'\r\n"
    assert splits(data) == [Ping(), Pong(), Ping(), Ping(), Ok(),
                            LeafMsg(b"a", None, (), None, b"hello"), RemoteError("boom")]


def test_a_cr_inside_a_line_costs_its_last_byte_as_in_nats_server() -> None:
    assert splits(b"LS+ foo\rbar\n") == [ProtocolViolation()]  # "foo\rba": two args
    assert splits(b"LS+ a b\rc\r\n") == [LeafSub(b"a", b"b", 1)]
    assert splits(b'INFO {"a":1}\r}\n') == [Info(ServerInfo())]
    assert splits(b"HPUB a\r12 12\r\n", accepting=False) == [ProtocolViolation()]
    assert splits(b"LS+ \r\n") == [ProtocolViolation()]


def test_lf_right_after_the_blanks_starts_the_argument() -> None:
    # nats-server's parser takes the byte that ends the blanks as the argument's first
    data = b"LS+ \nfoo\r\nLS- \n\nLMSG \na 1\r\nx\r\n-ERR \nboom\r\nINFO\n{}\r\nPING\r\n"
    assert splits(data) == [LeafSub(b"foo"), LeafMsg(b"a", None, (), None, b"x"),
                            RemoteError("\nboom"), Info(ServerInfo()), Ping()]
    assert splits(b"CONNECT\n{}\r\nPING\r\n", accepting=True) == [
        Connect(LeafConnectOptions()), Ping()]


def test_client_pub_splits_on_blanks_only() -> None:
    assert splits(b"PUB a\r1\r\nx\r\n") == [ProtocolViolation()]
    assert splits(b"LMSG a\r1\r\nx\r\n") == [LeafMsg(b"a", None, (), None, b"x")]


def test_remote_error_text_unquoted() -> None:
    assert splits(b"-ERR x\r\n-ERR  'Stale Connection'\r\n-ERR ''\r\n") == [
        RemoteError("x"), RemoteError("Stale Connection"), RemoteError("")]


@pytest.mark.parametrize(
    "data",
    [b"MSG a 1 1\r\nx\r\n", b"LS+\r\n", b"LS-\r\n", b"LMSG\r\n", b"-ERR\r\n", b"\r\n", b"\n",
     b" PING\r\n", b"FOO\r\n", b"LSX a\r\n", b"PUBX\r\n", b"HMSGA\r\n", b"PI\r\n", b"X"],
)
def test_unknown_ops_close_with_unknown_protocol_operation(data: bytes) -> None:
    assert splits(data) == [ProtocolViolation(ERR_UNKNOWN_OP)]


def test_nats_server_parser_aliases_on_a_leaf_connection() -> None:
    data = (b"SUB a\r\nRS+ b q 2\r\nUNSUB a\r\nRS- b q\r\nRMSG a 1\r\nx\r\nPUB a r 1\r\ny\r\n"
            b"A+ foo\r\nA- foo\r\nPING\r\n")
    assert splits(data) == [
        LeafSub(b"a"), LeafSub(b"b", b"q", 2), LeafUnsub(b"a"), LeafUnsub(b"b", b"q"),
        LeafMsg(b"a", None, (), None, b"x"), LeafMsg(b"a", b"r", (), None, b"y"), Ping(),
    ]
    assert splits(b"PUB a + r q 1\r\n") == [ProtocolViolation()]


def test_hpub_needs_headers() -> None:
    hpub = b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    assert feed(hpub) == [ProtocolViolation()]
    info = b'INFO {"headers":true}\r\n'
    assert splits(info + hpub)[1] == LeafMsg(b"a", None, (), b"NATS/1.0\r\n\r\n", b"hi")


def test_events_before_a_violation_are_kept_and_nothing_is_read_after() -> None:
    codec = LeafCodec()
    events = codec.receive_data(b"LS+ a\r\nLMSG a 1\r\nx\r\nBOGUS\r\nPING\r\n")
    assert events == [LeafSub(b"a"), LeafMsg(b"a", None, (), None, b"x"),
                      ProtocolViolation(ERR_UNKNOWN_OP)]
    assert codec.closed and codec.receive_data(b"PING\r\n") == []


# -- encoders -------------------------------------------------------------------------------


def test_encoders_byte_exact() -> None:
    assert encode_sub(b"foo") == b"LS+ foo\r\n"
    assert encode_sub(b"foo", b"q", 12) == b"LS+ foo q 12\r\n"
    assert encode_unsub(b"foo") == b"LS- foo\r\n"
    assert encode_unsub(b"foo", b"q") == b"LS- foo q\r\n"
    assert encode_msg(b"a", None, (), None, b"hi") == b"LMSG a 2\r\nhi\r\n"
    assert encode_msg(b"a", b"r", (), None, b"") == b"LMSG a r 0\r\n\r\n"
    assert encode_msg(b"a", b"r", [b"q", b"q2"], None, b"f") == b"LMSG a + r q q2 1\r\nf\r\n"
    assert encode_msg(b"a", None, (b"q",), None, b"e") == b"LMSG a | q 1\r\ne\r\n"
    assert encode_msg(b"a", b"r", (b"q",), HDR, b"g") == b"HMSG a + r q 18 19\r\n" + HDR + b"g\r\n"
    assert encode_msg(b"a", None, (), HDR, b"d") == b"HMSG a 18 19\r\n" + HDR + b"d\r\n"
    assert encode_err("Stale Connection") == b"-ERR 'Stale Connection'\r\n"
    assert (PING, PONG) == (b"PING\r\n", b"PONG\r\n")
    assert encode_info(ServerInfo(server_id="x", client_id=1, leafnode_urls=("h:1",))) == (
        b'INFO {"server_id":"x","server_name":"","version":"","proto":0,"go":"","host":"",'
        b'"port":0,"headers":false,"max_payload":0,"client_id":1,"leafnode_urls":["h:1"]} \r\n')
    assert encode_connect(LeafConnectOptions(name="n", deny_pub=("a.>",), password="p&<")) == (
        b'CONNECT {"pass":"p\\u0026\\u003c","name":"n","deny_pub":["a.\\u003e"]}\r\n')


def test_headers_are_cut_for_a_peer_without_headers() -> None:
    assert encode_msg(b"a", b"r", (), HDR, b"hi", peer_headers=False) == b"LMSG a r 2\r\nhi\r\n"
    assert encode_msg(b"a", None, (), b"", b"hi") == b"LMSG a 2\r\nhi\r\n"


@pytest.mark.parametrize(
    "call",
    [lambda: encode_sub(b"a b"), lambda: encode_sub(b""), lambda: encode_sub(b"a", b"q", 0),
     lambda: encode_sub(b"a", None, 2), lambda: encode_unsub(b"a\r"),
     lambda: encode_msg(b"a", b"", (), None, b""),
     lambda: encode_msg(b"a", None, (b"q q",), None, b""),
     lambda: LeafMsg(b"a", None, [], None, b""), lambda: LeafMsg(b"a", None, (), b"", b""),
     lambda: LeafSub(b"a", b"q", True)],
)
def test_invalid_fields_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call()


# -- properties -----------------------------------------------------------------------------

token = st.lists(st.integers(0, 255).filter(lambda b: b not in (9, 10, 13, 32)),
                 min_size=1, max_size=6).map(bytes)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
strings = st.lists(text, max_size=3).map(tuple)
some_strings = st.lists(text, min_size=1, max_size=3).map(tuple)
perm = st.none() | st.builds(SubjectPermission, st.none() | some_strings, st.none() | some_strings)

leaf_events = st.one_of(
    st.builds(LeafSub, token, st.none(), st.just(1)),
    st.builds(LeafSub, token, token, st.integers(1, 999_999_999)),
    st.builds(LeafUnsub, token, st.none() | token),
    st.builds(LeafMsg, token, st.none() | token, st.lists(token, max_size=3).map(tuple),
              st.none() | st.binary(min_size=1, max_size=20), st.binary(max_size=40)),
    st.builds(Ping), st.builds(Pong), st.builds(Ok),
    st.builds(RemoteError, text.filter(lambda t: "\n" not in t and "\r" not in t).map(
        lambda t: t.strip(" \t"))),
)
options = st.builds(
    LeafConnectOptions, version=text, nkey=text, user=text, password=text, name=text,
    is_hub=st.booleans(), cluster=text, headers=st.booleans(), jetstream=st.booleans(),
    deny_pub=strings, isolate=st.booleans(), remote_account=text,
    protocol=st.integers(-(1 << 63), (1 << 63) - 1),
)
infos = st.builds(
    ServerInfo, server_id=text, proto=st.integers(0, 5), headers=st.booleans(),
    max_payload=st.integers(-(1 << 31), (1 << 31) - 1), client_id=st.integers(0, (1 << 64) - 1),
    nonce=text, domain=text, connect_info=st.booleans(), import_perms=perm, export_perms=perm,
    leafnode_urls=st.none() | some_strings, ws_connect_urls=st.none() | some_strings,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(leaf_events, max_size=8), st.lists(st.integers(0, 500), max_size=5))
def test_encoded_events_parse_back_split_anywhere(events: list[Event], cuts: list[int]) -> None:
    data = b"".join(encode(e) for e in events)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed(data, max_payload=None) == events
    assert feed(*chunks, max_payload=None) == events


@settings(max_examples=100, deadline=None)
@given(options, st.integers(0, 300))
def test_connect_round_trip(opts: LeafConnectOptions, cut: int) -> None:
    data = encode_connect(opts)
    assert feed(data[:cut], data[cut:], accepting=True) == [Connect(opts)]


@settings(max_examples=100, deadline=None)
@given(infos, st.integers(0, 300))
def test_info_round_trip(info: ServerInfo, cut: int) -> None:
    data = encode_info(info)
    assert feed(data[:cut], data[cut:]) == [Info(info)]


fragment = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"LS+ ", b"LS- ", b"LMSG ", b"HMSG ", b"PUB ", b"HPUB ", b"RS+ ", b"INFO ",
                     b"CONNECT ", b"-ERR ", b"PING", b"+OK", b"A+ ", b"a", b" q ", b" | ", b" + ",
                     b"1", b"12", b"\r\n", b"\n", b"\r", b" ", b"\t", b"{}", b'{"headers":true}',
                     b"NATS/1.0\r\n\r\n"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(fragment, max_size=14).map(b"".join), st.integers(0, 80))
def test_arbitrary_bytes_never_raise_and_split_does_not_matter(data: bytes, cut: int) -> None:
    for accepting in (False, True):
        whole = feed(data, accepting=accepting)
        assert feed(data[:cut], data[cut:], accepting=accepting) == whole
        assert all(not isinstance(e, ProtocolViolation) for e in whole[:-1])
