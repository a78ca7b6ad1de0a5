"""The MQTT codec byte for byte: every packet at both levels, every split, every error.

Expected bytes are written out from the packet layouts of MQTT 3.1.1 and 5.0.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jetport.bridges.mqtt.codec import MqttCodec, decode_all
from jetport.bridges.mqtt.encoder import encode
from jetport.bridges.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
)

H = bytes.fromhex
#: Minimal CONNECTs (client id "c", clean, keepalive 60) that open a connection.
CONNECT4 = H("100d 00044d515454 04 02 003c 000163")
CONNECT5 = H("100e 00044d515454 05 02 003c 00 000163")
PREFIX = {4: CONNECT4, 5: CONNECT5}


def feed(*chunks: bytes, **kw) -> list:
    codec = MqttCodec(**kw)
    out: list = []
    for chunk in chunks:
        out += codec.receive_data(chunk)
    return out


def splits(data: bytes, **kw) -> list:
    """Every two-way and byte-by-byte split reads the same as one read."""
    whole = feed(data, **kw)
    for i in range(len(data) + 1):
        assert feed(data[:i], data[i:], **kw) == whole, i
    assert feed(*[data[i : i + 1] for i in range(len(data))], **kw) == whole
    return whole


# -- what clients send, read by the server --------------------------------------------------

CLIENT_PACKETS = [
    # MQTT 3.1.1
    (4, H("101e 00044d515454 04 ec 000a 00026964 000177 000178 000475736572 00027077"),
     Connect(4, "id", False, 10, "user", b"pw", Will("w", b"x", 1, True))),
    (4, CONNECT4, Connect(4, "c", True, 60)),
    (4, H("3007 0003612f62 6869"), Publish("a/b", b"hi")),
    (4, H("3b09 0003612f62 0007 6869"), Publish("a/b", b"hi", 1, True, True, 7)),
    (4, H("3407 0001 61 fffe 6869"), Publish("a", b"hi", 2, packet_id=0xFFFE)),
    (4, H("3003 000161"), Publish("a", b"")),
    (4, H("40020007"), PubAck(7)),
    (4, H("50020007"), PubRec(7)),
    (4, H("62020007"), PubRel(7)),
    (4, H("70020007"), PubComp(7)),
    (4, H("820c 0001 0003612f2b 01 000123 02"),
     Subscribe(1, [SubscriptionRequest("a/+", 1), SubscriptionRequest("#", 2)])),
    (4, H("a207 0002 0003612f2b"), Unsubscribe(2, ["a/+"])),
    (4, H("c000"), PingReq()),
    (4, H("e000"), Disconnect()),
    # MQTT 5
    (5, H("102f 00044d515454 05 46 003c 0f 1100000078 21000a 260001610001 62 00026964"
          "05 1800000005 000177 000178 0003746f6b"),
     Connect(5, "id", True, 60, None, b"tok", Will("w", b"x", properties={
         "will_delay_interval": 5}), {"session_expiry_interval": 120, "receive_maximum": 10,
                                      "user_properties": [("a", "b")]})),
    (5, CONNECT5, Connect(5, "c", True, 60)),
    (5, H("3008 0003612f62 00 6869"), Publish("a/b", b"hi")),
    (5, H("3213 0003612f62 0007 09 020000003c 03000174 6869"),
     Publish("a/b", b"hi", 1, packet_id=7, properties={"message_expiry_interval": 60,
                                                        "content_type": "t"})),
    (5, H("40020007"), PubAck(7)),
    (5, H("4003000710"), PubAck(7, 0x10)),
    (5, H("500a 0007 80 06 1f0003626164"), PubRec(7, 0x80, {"reason_string": "bad"})),
    (5, H("6203000792"), PubRel(7, 0x92)),
    (5, H("70020007"), PubComp(7)),
    (5, H("820b 0001 02 0b05 0003612f2b 2d"),
     Subscribe(1, [SubscriptionRequest("a/+", 1, True, True, 2)],
               {"subscription_identifier": 5})),
    (5, H("a208 0002 00 0003612f2b"), Unsubscribe(2, ["a/+"])),
    (5, H("c000"), PingReq()),
    (5, H("e000"), Disconnect()),
    (5, H("e00104"), Disconnect(0x04)),
    (5, H("e007 00 05 1100000000"), Disconnect(0, {"session_expiry_interval": 0})),
    (5, H("f000"), Auth()),
    (5, H("f00e 18 0c 150005534352414d 16000101"),
     Auth(0x18, {"authentication_method": "SCRAM", "authentication_data": b"\x01"})),
]


@pytest.mark.parametrize(("level", "data", "packet"), CLIENT_PACKETS)
def test_client_packets(level: int, data: bytes, packet) -> None:
    assert encode(packet, level) == data
    if isinstance(packet, Connect):
        assert splits(data) == [packet]
        return
    prefix = PREFIX[level]
    codec = MqttCodec(topic_alias_maximum=10)
    assert codec.receive_data(prefix) == [Connect(level, "c", True, 60)]
    assert codec.level == level
    assert splits(prefix + data) == [Connect(level, "c", True, 60), packet]
    # Truncated anywhere: nothing yet, and no error; the rest completes it.
    for i in range(len(data)):
        codec = MqttCodec()
        codec.receive_data(prefix)
        assert codec.receive_data(data[:i]) == []
        assert codec.receive_data(data[i:]) == [packet]


# -- what servers send, read by the client --------------------------------------------------

SERVER_PACKETS = [
    (4, H("20020100"), ConnAck(True, 0)),
    (4, H("20020005"), ConnAck(False, 5)),
    (4, H("3b09 0003612f62 0007 6869"), Publish("a/b", b"hi", 1, True, True, 7)),
    (4, H("40020007"), PubAck(7)),
    (4, H("50020007"), PubRec(7)),
    (4, H("62020007"), PubRel(7)),
    (4, H("70020007"), PubComp(7)),
    (4, H("9005 0001 000280"), SubAck(1, [0, 2, 0x80])),
    (4, H("b0020002"), UnsubAck(2)),
    (4, H("d000"), PingResp()),
    (5, H("200c 0000 09 22000a 1200 0178 2500"),
     ConnAck(False, 0, {"topic_alias_maximum": 10, "assigned_client_identifier": "x",
                        "retain_available": 0})),
    (5, H("2003008700"), ConnAck(False, 0x87)),
    (5, H("3009 000174 05 0b01 0bc801"),
     Publish("t", b"", properties={"subscription_identifier": [1, 200]})),
    (5, H("4003000710"), PubAck(7, 0x10)),
    (5, H("900a 0001 05 1f00026e6f 0187"), SubAck(1, [1, 0x87], {"reason_string": "no"})),
    (5, H("b005 0002 00 0011"), UnsubAck(2, [0, 0x11])),
    (5, H("d000"), PingResp()),
    (5, H("e0018e"), Disconnect(0x8E)),
    (5, H("e008 9c 06 1c0003683a31"), Disconnect(0x9C, {"server_reference": "h:1"})),
    (5, H("f00119"), Auth(0x19)),
]


@pytest.mark.parametrize(("level", "data", "packet"), SERVER_PACKETS)
def test_server_packets(level: int, data: bytes, packet) -> None:
    assert encode(packet, level) == data
    assert splits(data, client=True, level=level) == [packet]
    assert decode_all(data, level, client=True) == [packet]


def test_server_encodes_for_the_negotiated_level() -> None:
    v3 = MqttCodec()
    v3.receive_data(CONNECT4)
    # 3.1.1 has no reason codes or properties: they are dropped or mapped.
    assert v3.send(ConnAck(True, 0, {"receive_maximum": 5})) == H("20020100")
    assert v3.send(ConnAck(False, 0x84)) == H("20020001")
    assert v3.send(ConnAck(False, 0x85)) == H("20020002")
    assert v3.send(ConnAck(False, 0x88)) == H("20020003")
    assert v3.send(ConnAck(False, 0x86)) == H("20020004")
    assert v3.send(ConnAck(False, 0x87)) == H("20020005")
    assert v3.send(ConnAck(False, 0x10)) == H("20020010")
    assert v3.send(PubAck(7, 0x87, {"reason_string": "no"})) == H("40020007")
    assert v3.send(SubAck(1, [0, 1, 2, 0x87, 0x80])) == H("9007 0001 0001028080")
    assert v3.send(UnsubAck(2, [0x11])) == H("b0020002")
    assert v3.send(Publish("a", b"x", properties={"content_type": "t"})) == H("3004 000161 78")
    assert v3.send(Disconnect(0x8E)) == b""
    with pytest.raises(ValueError):
        v3.send(Auth())
    v5 = MqttCodec()
    v5.receive_data(CONNECT5)
    assert v5.send(ConnAck(False, 0x84)) == H("2003008400")
    assert v5.send(PubAck(7, 0x87)) == H("4003000787")
    assert v5.send(Disconnect(0x8E)) == H("e0018e")


def test_unsupported_level_is_answered_in_3_1_1_format() -> None:
    codec = MqttCodec()
    [err] = codec.receive_data(H("100d 00044d515454 03 02 003c 000163"))
    assert err == ProtocolError(0x84, err.message)
    assert codec.send(ConnAck(False, 0x84)) == H("20020001")


def test_level_5_is_known_before_the_rest_of_connect_fails() -> None:
    codec = MqttCodec()
    [err] = codec.receive_data(H("100e 00044d515454 05 03 003c 00 000163"))
    assert err.reason_code == 0x81
    assert codec.level == 5
    assert codec.send(ConnAck(False, 0x81)) == H("2003008100")


def test_peer_maximum_packet_size() -> None:
    codec = MqttCodec()
    assert codec.peer_max_packet_size is None
    codec.receive_data(encode(Connect(5, "c", True, 0, properties={
        "maximum_packet_size": 300}), 5))
    assert codec.peer_max_packet_size == 300
    client = MqttCodec(client=True, level=5)
    client.receive_data(H("2008 0000 05 2700000400"))
    assert client.peer_max_packet_size == 1024


def test_client_role_takes_its_level_from_connect() -> None:
    client = MqttCodec(client=True)
    assert client.send(Connect(5, "c", True, 60)) == CONNECT5
    assert client.level == 5
    assert client.send(PubAck(7, 0x10)) == H("4003000710")


def test_topic_aliases() -> None:
    codec = MqttCodec(topic_alias_maximum=2)
    codec.receive_data(CONNECT5)
    set_alias = H("3009 0003612f62 03 230002")
    use_alias = H("3007 0000 03 230002 7a")
    assert codec.receive_data(set_alias + use_alias) == [
        Publish("a/b", b"", properties={"topic_alias": 2}),
        Publish("a/b", b"z", properties={"topic_alias": 2}),
    ]
    # A new topic for an alias replaces the old one.
    assert codec.receive_data(H("3007 000178 03 230002") + use_alias)[1].topic == "x"


def test_large_publish_in_small_chunks() -> None:
    payload = bytes(range(256)) * 800
    data = encode(Publish("big", payload, 1, packet_id=9), 4)
    codec = MqttCodec()
    codec.receive_data(CONNECT4)
    got: list = []
    for i in range(0, len(data), 1000):
        got += codec.receive_data(data[i : i + 1000])
    assert got == [Publish("big", payload, 1, packet_id=9)]


def test_packets_before_an_error_are_kept_and_nothing_follows() -> None:
    codec = MqttCodec()
    out = codec.receive_data(CONNECT4 + H("c000") + H("3005 0003612f23") + H("c000"))
    assert out[:2] == [Connect(4, "c", True, 60), PingReq()]
    assert out[2].reason_code == 0x82
    assert len(out) == 3
    assert codec.receive_data(H("c000")) == []
    assert codec.receive_data(CONNECT4) == []


RUN = (H("3005 000161 7879") + H("3206 000161 0001 78") + H("4002 0002") + H("5002 0003")
       + H("6202 0004") + H("7002 0005") + H("3d06 000162 0006 79"))
RUN_PACKETS = [Publish("a", b"xy"), Publish("a", b"x", 1, packet_id=1), PubAck(2), PubRec(3),
               PubRel(4), PubComp(5), Publish("b", b"y", 2, True, True, 6)]


@pytest.mark.parametrize(("bad", "code"), [
    (H("3605 000161 7879"), 0x81),  # QoS 3
    (H("6002 0004"), 0x81),  # PUBREL without its fixed-header flags
    (H("4102 0004"), 0x81),  # PUBACK with flags
    (H("3004 0002612b"), 0x82),  # wildcard topic
    (H("3002 0000"), 0x82),  # empty topic
    (H("1000"), 0x82),  # a second CONNECT
])
def test_runs_of_publish_and_acks_split_anywhere(bad: bytes, code: int) -> None:
    """A run of PUBLISH and acknowledgement packets after CONNECT, then a bad packet:
    the same packets and the same error however the bytes arrive."""
    got = splits(CONNECT4 + RUN + bad + RUN)
    assert got[:-1] == [Connect(4, "c", True, 60), *RUN_PACKETS]
    assert got[-1].reason_code == code
    assert splits(RUN + bad, client=True, level=4)[:-1] == RUN_PACKETS


def test_maximum_packet_size_boundary() -> None:
    """The limit counts the whole packet, fixed header included, CONNECT too."""
    packet = H("3005 000161 7879")  # 7 bytes in all
    assert decode_all(packet, 4, max_packet_size=7) == [Publish("a", b"xy")]
    assert decode_all(packet, 4, max_packet_size=6)[0].reason_code == 0x95
    assert feed(CONNECT4, max_packet_size=15) == [Connect(4, "c", True, 60)]
    assert feed(CONNECT4, max_packet_size=14)[0].reason_code == 0x95


def test_v5_password_without_user_name() -> None:
    data = H("1012 00044d515454 05 42 0000 00 000163 0002 7077")
    assert feed(data) == [Connect(5, "c", True, 0, None, b"pw")]


def test_v5_filters_are_left_to_the_door() -> None:
    """Filters MQTT forbids are still read: the door refuses them one by one."""
    data = H("820f 0001 00 0002 612b 01 0000 00 000123 00")
    [_, sub] = feed(CONNECT5 + data)
    assert [s.topic_filter for s in sub.subscriptions] == ["a+", "", "#"]


# -- peers breaking the protocol ------------------------------------------------------------

ERRORS = [
    ("01-connect-protocol-name-mqisdp", None,
     H("100f 00064d5149736470 03 02 003c 000163"), 0x82),
    ("01-connect-protocol-level-3", None, H("100d 00044d515454 03 02 003c 000163"), 0x84),
    ("01-connect-protocol-level-6", None, H("100d 00044d515454 06 02 003c 000163"), 0x84),
    ("01-connect-reserved-flag", None, H("100d 00044d515454 04 03 003c 000163"), 0x81),
    ("01-connect-will-qos-without-will", None, H("100d 00044d515454 04 0a 003c 000163"), 0x81),
    ("01-connect-will-retain-without-will", None,
     H("100d 00044d515454 04 22 003c 000163"), 0x81),
    ("01-connect-will-qos3", None,
     H("1013 00044d515454 04 1e 003c 000163 000177 000178"), 0x81),
    ("01-connect-password-without-user-name", None,
     H("1011 00044d515454 04 42 003c 000163 00027077"), 0x81),
    ("01-connect-client-id-bad-utf8", None, H("100d 00044d515454 04 02 003c 0001ff"), 0x85),
    ("01-connect-client-id-nul", None, H("100d 00044d515454 04 02 003c 000100"), 0x85),
    ("01-connect-user-name-bad-utf8", None,
     H("1010 00044d515454 04 82 003c 000163 0001c3"), 0x86),
    ("01-connect-will-topic-wildcard", None,
     H("1014 00044d515454 04 06 003c 000163 0002612b 000178"), 0x82),
    ("01-connect-will-topic-empty", None,
     H("1012 00044d515454 04 06 003c 000163 0000 000178"), 0x82),
    ("01-connect-trailing-bytes", None, H("100f 00044d515454 04 02 003c 000163 7a7a"), 0x81),
    ("01-connect-truncated-client-id", None, H("100e 00044d515454 04 02 003c 00056162"), 0x81),
    ("01-connect-v5-auth-data-without-method", None,
     H("1012 00044d515454 05 02 003c 04 16000101 000163"), 0x82),
    ("01-connect-v5-duplicate-property", None,
     H("1014 00044d515454 05 02 003c 06 21000a 21000b 000163"), 0x82),
    ("01-connect-v5-property-not-allowed", None,
     H("1011 00044d515454 05 02 003c 03 230001 000163"), 0x82),
    ("01-connect-v5-unknown-property", None,
     H("1010 00044d515454 05 02 003c 02 7f00 000163"), 0x81),
    ("01-connect-v5-receive-maximum-0", None,
     H("1011 00044d515454 05 02 003c 03 210000 000163"), 0x82),
    ("01-connect-v5-request-problem-information-2", None,
     H("1010 00044d515454 05 02 003c 02 1702 000163"), 0x82),
    ("01-connect-v5-properties-past-end", None,
     H("100e 00044d515454 05 02 003c 09 000163"), 0x81),
    ("01-connect-v5-will-property-not-allowed", None,
     H("1018 00044d515454 05 06 003c 00 000163 03 230001 000177 000178"), 0x82),
    ("01-publish-before-connect", None, H("3003 000161"), 0x82),
    ("01-pingreq-before-connect", None, H("c000"), 0x82),
    ("01-second-connect", 4, CONNECT4, 0x82),
    ("02-subscribe-flags-0", 4, H("8006 0001 000161 00"), 0x81),
    ("02-subscribe-qos3", 4, H("8206 0001 000161 03"), 0x81),
    ("02-subscribe-qos3-v5", 5, H("8207 0001 00 000161 03"), 0x82),
    ("02-subscribe-reserved-option-bits", 4, H("8206 0001 000161 04"), 0x81),
    ("02-subscribe-reserved-option-bits-v5", 5, H("8207 0001 00 000161 40"), 0x81),
    ("02-subscribe-retain-handling-3-v5", 5, H("8207 0001 00 000161 30"), 0x82),
    ("02-subscribe-no-filters", 4, H("82020001"), 0x82),
    ("02-subscribe-packet-id-0", 4, H("8206 0000 000161 00"), 0x81),
    ("02-subscribe-filter-bad-utf8", 4, H("8206 0001 0001ff 00"), 0x81),
    ("02-subscribe-options-missing", 4, H("8205 0001 000161"), 0x81),
    ("02-subscribe-no-local-shared-v5", 5, H("8210 0001 00 000a 2473686172652f672f61 04"),
     0x82),
    ("02-subscribe-subscription-identifier-twice-v5", 5,
     H("820b 0001 04 0b010b02 000161 00"), 0x82),
    ("02-subscribe-subscription-identifier-0-v5", 5, H("8209 0001 02 0b00 000161 00"), 0x82),
    ("02-unsubscribe-flags-0", 4, H("a005 0001 000161"), 0x81),
    ("02-unsubscribe-no-filters", 4, H("a2020001"), 0x82),
    ("02-unsubscribe-packet-id-0", 4, H("a205 0000 000161"), 0x81),
    ("03-publish-wildcard-plus", 4, H("3005 0003612f2b"), 0x82),
    ("03-publish-wildcard-hash", 4, H("3005 0003612f23"), 0x82),
    ("03-publish-topic-bad-utf8", 4, H("3004 0002 61ff"), 0x81),
    ("03-publish-topic-surrogate", 4, H("3005 0003 eda080"), 0x81),
    ("03-publish-topic-nul", 4, H("3004 0002 6100"), 0x81),
    ("03-publish-topic-empty", 4, H("3003 0000 78"), 0x82),
    ("03-publish-topic-empty-v5", 5, H("3004 0000 00 78"), 0x82),
    ("03-publish-topic-truncated", 4, H("3004 000561 62"), 0x81),
    ("03-publish-qos3", 4, H("3605 000161 0001"), 0x81),
    ("03-publish-packet-id-0", 4, H("3205 000161 0000"), 0x81),
    ("03-publish-packet-id-missing", 4, H("3204 000161 00"), 0x81),
    ("03-publish-topic-alias-0-v5", 5, H("3007 000161 03 230000"), 0x94),
    ("03-publish-topic-alias-over-max-v5", 5, H("3007 000161 03 23000b"), 0x94),
    ("03-publish-topic-alias-unknown-v5", 5, H("3006 0000 03 230001"), 0x82),
    ("03-publish-subscription-identifier-v5", 5, H("3006 000161 02 0b01"), 0x82),
    ("03-publish-response-topic-wildcard-v5", 5, H("3009 000161 05 080002612b"), 0x82),
    ("03-publish-payload-format-2-v5", 5, H("3006 000161 02 0102"), 0x82),
    ("03-publish-property-not-allowed-v5", 5, H("3009 000161 05 1100000000"), 0x82),
    ("04-bad-remaining-length", 4, H("30ffffffff01"), 0x81),
    ("04-puback-length-3", 4, H("4003000700"), 0x81),
    ("04-puback-packet-id-0", 4, H("40020000"), 0x81),
    ("04-puback-reason-not-allowed-v5", 5, H("4003000792"), 0x82),
    ("04-pubrel-flags-0", 4, H("60020007"), 0x81),
    ("04-pubrel-property-not-allowed-v5", 5, H("6206 0007 00 02 0b01"), 0x82),
    ("04-pingreq-with-body", 4, H("c00100"), 0x81),
    ("04-disconnect-with-body", 4, H("e00100"), 0x81),
    ("04-disconnect-properties-truncated-v5", 5, H("e003 00 05 11"), 0x81),
    ("04-reserved-type-0", 4, H("0000"), 0x81),
    ("04-auth-in-3-1-1", 4, H("f000"), 0x81),
    ("04-connack-from-client", 4, H("20020000"), 0x82),
    ("04-suback-from-client", 4, H("9003000100"), 0x82),
    ("04-pingresp-from-client", 4, H("d000"), 0x82),
    ("05-oversize", 4, H("3080 8040"), 0x95),
]


@pytest.mark.parametrize(("level", "data", "code"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_protocol_errors(level: int | None, data: bytes, code: int) -> None:
    prefix = PREFIX[level] if level else b""
    codec = MqttCodec(topic_alias_maximum=10)
    out = codec.receive_data(prefix + data)
    assert isinstance(out[-1], ProtocolError), out
    assert out[-1].reason_code == code, out[-1]
    assert len(out) == (2 if level else 1)
    assert codec.receive_data(CONNECT4 + H("c000")) == []
    # Split anywhere, the same error, and nothing before the bytes that make it.
    for i in range(len(prefix), len(prefix + data)):
        codec = MqttCodec(topic_alias_maximum=10)
        first = codec.receive_data((prefix + data)[:i])
        assert not any(isinstance(p, ProtocolError) for p in first) or first[-1] == out[-1]
        assert (first + codec.receive_data((prefix + data)[i:]))[-1] == out[-1]


def test_oversize_is_refused_before_the_body() -> None:
    codec = MqttCodec(max_packet_size=1000)
    codec.receive_data(CONNECT4)
    assert codec.receive_data(H("30")) == []
    assert codec.receive_data(H("e8")) == []
    [err] = codec.receive_data(H("07"))  # 1000 bytes of body: 1003 in all
    assert err.reason_code == 0x95


def test_client_role_errors() -> None:
    for data, code in [
        (H("10020000"), 0x82),  # CONNECT from a server
        (H("20020200"), 0x81),  # CONNACK reserved flags
        (H("9003 0001 03"), 0x81),  # 3.1.1 SUBACK code 3
        (H("b0030002 00"), 0x81),  # 3.1.1 UNSUBACK with a payload
    ]:
        [err] = decode_all(data, 4, client=True)
        assert err.reason_code == code, data.hex()
    [err] = decode_all(H("3006 000174 02 0b00"), 5, client=True)
    assert err.reason_code == 0x82  # subscription identifier 0


# -- round trips ----------------------------------------------------------------------------

utf8 = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20)
topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"),
                 min_size=1, max_size=20)
u16 = st.integers(1, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
user_props = st.lists(st.tuples(utf8, utf8), min_size=1, max_size=3)
publish_props = st.fixed_dictionaries({}, optional={
    "payload_format_indicator": st.integers(0, 1),
    "message_expiry_interval": u32,
    "content_type": utf8,
    "response_topic": topics,
    "correlation_data": st.binary(max_size=20),
    "topic_alias": st.integers(1, 10),
    "user_properties": user_props,
})
connect_props = st.fixed_dictionaries({}, optional={
    "session_expiry_interval": u32,
    "receive_maximum": u16,
    "maximum_packet_size": st.integers(1, 0xFFFFFFFF),
    "topic_alias_maximum": st.integers(0, 0xFFFF),
    "request_response_information": st.integers(0, 1),
    "request_problem_information": st.integers(0, 1),
    "authentication_method": utf8,
    "user_properties": user_props,
})
will_props = st.fixed_dictionaries({}, optional={
    "will_delay_interval": u32,
    "payload_format_indicator": st.integers(0, 1),
    "content_type": utf8,
    "user_properties": user_props,
})


@st.composite
def publishes(draw: st.DrawFn, level: int) -> Publish:
    qos = draw(st.integers(0, 2))
    return Publish(draw(topics), draw(st.binary(max_size=200)), qos, draw(st.booleans()),
                   draw(st.booleans()), draw(u16) if qos else None,
                   draw(publish_props) if level == 5 else {})


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([4, 5]).flatmap(lambda lv: st.tuples(st.just(lv), publishes(lv))))
def test_publish_round_trip(case: tuple[int, Publish]) -> None:
    level, packet = case
    data = encode(packet, level)
    assert decode_all(data, level, topic_alias_maximum=10) == [packet]
    assert decode_all(data, level, client=True, topic_alias_maximum=10) == [packet]


@st.composite
def subscribes(draw: st.DrawFn, level: int) -> Subscribe:
    reqs = []
    for topic_filter in draw(st.lists(utf8, min_size=1, max_size=4)):
        if level == 4:
            reqs.append(SubscriptionRequest(topic_filter, draw(st.integers(0, 2))))
            continue
        no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")
        reqs.append(SubscriptionRequest(topic_filter, draw(st.integers(0, 2)), no_local,
                                        draw(st.booleans()), draw(st.integers(0, 2))))
    props = {}
    if level == 5:
        props = draw(st.fixed_dictionaries({}, optional={
            "subscription_identifier": st.integers(1, 268_435_455),
            "user_properties": user_props}))
    return Subscribe(draw(u16), reqs, props)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([4, 5]).flatmap(lambda lv: st.tuples(st.just(lv), subscribes(lv))))
def test_subscribe_round_trip(case: tuple[int, Subscribe]) -> None:
    level, packet = case
    assert decode_all(encode(packet, level), level) == [packet]


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    level = draw(st.sampled_from([4, 5]))
    v5 = level == 5
    will = None
    if draw(st.booleans()):
        will = Will(draw(topics), draw(st.binary(max_size=30)), draw(st.integers(0, 2)),
                    draw(st.booleans()), draw(will_props) if v5 else {})
    username = draw(st.none() | utf8)
    password = draw(st.none() | st.binary(max_size=30))
    assume(v5 or password is None or username is not None)
    return Connect(level, draw(utf8), draw(st.booleans()), draw(st.integers(0, 0xFFFF)),
                   username, password, will, draw(connect_props) if v5 else {})


@settings(max_examples=150, deadline=None)
@given(connects())
def test_connect_round_trip(packet: Connect) -> None:
    codec = MqttCodec()
    assert codec.receive_data(encode(packet, packet.protocol_level)) == [packet]
    assert codec.level == packet.protocol_level
    assert codec.peer_max_packet_size == packet.properties.get("maximum_packet_size")
