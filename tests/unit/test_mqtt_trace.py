"""MQTT packets in the protocol trace, in nats-server's words."""

from __future__ import annotations

from jetport.bridges.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    Unsubscribe,
    Will,
)
from jetport.bridges.mqtt.trace import go_duration, packet_lines, prefix


def test_prefix_names_the_connection_as_nats_server_does() -> None:
    assert prefix("127.0.0.1", 5000, 7, None, False) == "127.0.0.1:5000 - mid:7"
    assert prefix("127.0.0.1", 5000, 7, 'a"b', False) == '127.0.0.1:5000 - mid:7 - "a\\"b"'
    assert prefix("::1", 1, 2, "c", True) == '::1:1 - mid_ws:2 - "c"'


def test_go_durations() -> None:
    assert [go_duration(s) for s in (0, 1.5, 30, 60, 90, 91.5, 3600, 3661)] == [
        "0s", "1.5s", "30s", "1m0s", "1m30s", "1m31.5s", "1h0m0s", "1h1m1s"]


def test_incoming_packets() -> None:
    # As nats-server 2.15 writes it: keepAlive is its read deadline, 1.5 keep-alives.
    connect = Connect(4, "dev1", True, 60, "alice", b"secret", Will("w/t", b"x", 1, True))
    assert packet_lines(connect, True) == [
        "<<- [CONNECT clientID=dev1 keepAlive=1m30s will=(topic=w/t QoS=1 retain=true) "
        "clean username=alice password=****]"]
    assert packet_lines(Publish("a/b", b"hello", 1, False, False, 3), True) == [
        "<<- [PUBLISH a/b dup=false QoS=1 retain=false size=5 pi=3]",
        '<<- MSG_PAYLOAD: ["hello"]']
    assert packet_lines(Publish("a", b"0123456789", 0), True, max_len=4)[1] == \
        '<<- MSG_PAYLOAD: ["0123..."]'
    sub = Subscribe(1, [SubscriptionRequest("a/#", 1), SubscriptionRequest("$share/g/x", 0)])
    assert packet_lines(sub, True) == [
        "<<- [SUBSCRIBE [a/# (a.>) QoS=1, $share/g/x (x) QoS=0] pi=1]"]
    assert packet_lines(Unsubscribe(2, ["a/b"]), True) == ["<<- [UNSUBSCRIBE [a/b (a.b)] pi=2]"]
    assert packet_lines(PingReq(), True) == ["<<- [PINGREQ]"]


def test_outgoing_packets_and_mqtt5_extras() -> None:
    assert packet_lines(ConnAck(False, 0), False) == ["->> [CONNACK sp=false rc=0]"]
    assert packet_lines(ConnAck(False, 0, {"server_keep_alive": 60}), False) == [
        "->> [CONNACK sp=false rc=0 serverKeepAlive=1m0s]"]
    assert packet_lines(SubAck(4, [0x87, 1]), False) == ["->> [SUBACK pi=4 rc=[135,1]]"]
    assert packet_lines(PubAck(9, 0x87), False) == ["->> [PUBACK pi=9 rc=135]"]
    assert packet_lines(Disconnect(0x93), False) == ["->> [DISCONNECT rc=147]"]
    out = Publish("t", b"p", 0, False, False, None, {"topic_alias": 2})
    assert packet_lines(out, False) == [
        "->> [PUBLISH t dup=false QoS=0 retain=false size=1 alias=2]"]
    auth = Auth(0x18, {"authentication_method": "SCRAM-SHA-256",
                       "authentication_data": b"r=secret-nonce"})
    assert packet_lines(auth, False) == ["->> [AUTH rc=24 method=SCRAM-SHA-256]"]
    v5 = Connect(5, "c", False, 0, properties={"authentication_method": "SCRAM-SHA-256",
                                               "authentication_data": b"n,,n=u,r=x"})
    assert packet_lines(v5, True) == [
        "<<- [CONNECT clientID=c proto=5 authMethod=SCRAM-SHA-256]"]
