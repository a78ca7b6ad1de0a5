"""The MQTT 5 PUBLISH properties a NATS message is delivered with."""

from __future__ import annotations

import base64

from jetport.bridges.mqtt.outmsg import properties_from


def hdr(*lines: tuple[bytes, bytes]) -> bytes:
    return b"NATS/1.0\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in lines) + b"\r\n"


def test_response_topic_as_the_mqtt_publisher_wrote_it() -> None:
    """The header wins over the reply subject, which is the relay's."""
    h = hdr((b"Nmqtt-Pub", b"1"), (b"Mqtt-Response-Topic", b"resp/a.b/c d"),
            (b"Mqtt-Correlation-Data", base64.b64encode(b"\x00id")))
    assert properties_from(h, b"$MQTT.rr.0a1b2c3d.7") == {
        "response_topic": "resp/a.b/c d", "correlation_data": b"\x00id"}


def test_response_topic_of_a_nats_request() -> None:
    assert properties_from(None, b"_INBOX.abc.1") == {"response_topic": "_INBOX/abc/1"}


def test_the_doors_own_reply_subjects_are_never_shown() -> None:
    assert properties_from(None, b"$MQTT.rr.0a1b2c3d.7") == {}
    assert properties_from(None, b"$MQTT.JSA.x.y") == {}


def test_mqtt_headers_are_no_user_properties() -> None:
    h = hdr((b"Mqtt-Response-Topic", b"r"), (b"Nmqtt-Pub", b"0"), (b"trace", b"t1"))
    assert properties_from(h, None) == {"response_topic": "r",
                                        "user_properties": [("trace", "t1")]}
