"""What an MQTT session queues for its client, and the MQTT side of a message's headers.

A message headed for an MQTT client is an :class:`OutMsg` in the session's
:class:`OutQueue`; its QoS, expiry, retain flag and MQTT 5 properties travel in NATS
headers (nats-server's ``Nmqtt-*`` names), read back here when it is delivered.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.responses import CORRELATION, RELAY_PREFIX, RESPONSE_TOPIC
from jetport.bridges.mqtt.store import REPLY_PREFIX
from jetport.bridges.mqtt.topics import to_topic
from jetport.core.headers import get as get_header

if TYPE_CHECKING:
    pass

#: Header carrying an MQTT message's QoS, as nats-server writes it (no space).
QOS_HEADER = b"Nmqtt-Pub"
#: Wall-clock second an MQTT 5 message expires (from its message expiry interval).
EXPIRY_HEADER = b"Mqtt-Expires"
#: Set on messages published with RETAIN, for "retain as published" subscriptions.
RETAIN_HEADER = b"Nmqtt-Retain"
_MQTT_HEADERS = (b"Nmqtt-", b"Mqtt-", b"Nats-")
#: The header block of an MQTT publish without properties, by QoS (nats-server's form).
QOS_HEADERS = tuple(b"NATS/1.0\r\nNmqtt-Pub:%d\r\n\r\n" % qos for qos in range(3))
BARE_HEADERS = {hdr: qos for qos, hdr in enumerate(QOS_HEADERS)}
_QOS_DIGITS = {b"1": 1, b"2": 2}
_OWN_REPLIES = (REPLY_PREFIX, RELAY_PREFIX)


@dataclass(slots=True)
class SubInfo:
    """One MQTT subscription: its options and the core subscriptions behind it."""

    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    group: str | None = None
    identifier: int | None = None
    sids: tuple[bytes, ...] = ()

    @property
    def skips_dollar(self) -> bool:
        """A filter starting with a wildcard does not match topics starting with '$'
        (MQTT 4.7.2)."""
        return self.topic_filter[:1] in ("+", "#")

    def record(self) -> dict[str, Any]:
        return {"qos": self.qos, "nl": self.no_local, "rap": self.retain_as_published,
                "rh": self.retain_handling, "id": self.identifier}


@dataclass(slots=True)
class OutMsg:
    """A QoS 1/2 message owed to the client."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # in $MQTT_queue, once stored
    acked: bool = False  # acknowledged before its store finished
    released: bool = False  # QoS 2: PUBREC seen, PUBREL sent
    expires: float = 0.0  # wall-clock deadline from MQTT 5 message expiry; 0: none
    hdr: bytes | None = None  # the NATS header block it came with (kept when stored)
    sent: float = 0.0  # monotonic time of its last send, for ack_wait redelivery

    def expired(self, now: float) -> bool:
        """Past its expiry; otherwise its expiry property counts down (MQTT 5)."""
        return bool(self.expires) and past_expiry(self.properties, self.expires, now)


def past_expiry(props: dict[str, Any], expires: float, now: float) -> bool:
    """Whether a message expiring at ``expires`` is past it; otherwise its properties'
    expiry interval counts down (MQTT 5)."""
    left = expires - now
    if left <= 0:
        return True
    props["message_expiry_interval"] = max(int(left), 1)
    return False


class OutQueue:
    """QoS 1/2 messages waiting for a session's window, with their payload bytes: the
    part of a session's memory that grows with traffic, so it is what the budget counts.

    Most sessions have nothing waiting most of the time: the deque (about 600 bytes
    even when empty) exists only while something does."""

    __slots__ = ("_msgs", "size")

    def __init__(self) -> None:
        self._msgs: deque[OutMsg] | None = None
        self.size = 0

    def append(self, msg: OutMsg) -> None:
        if self._msgs is None:
            self._msgs = deque()
        self._msgs.append(msg)
        self.size += len(msg.payload)

    def popleft(self) -> OutMsg:
        msgs = self._msgs
        if not msgs:
            raise IndexError("pop from an empty queue")
        msg = msgs.popleft()
        self.size -= len(msg.payload)
        if not msgs:
            self._msgs = None
        return msg

    def clear(self) -> None:
        self._msgs = None
        self.size = 0

    def __len__(self) -> int:
        return len(self._msgs) if self._msgs is not None else 0

    def __iter__(self) -> Iterator[OutMsg]:
        return iter(self._msgs if self._msgs is not None else ())


def mqtt_qos(hdr: bytes | None) -> int:
    """The QoS an MQTT publisher gave a message (NATS messages count as 0)."""
    if not hdr or QOS_HEADER not in hdr:
        return 0
    at = hdr.find(QOS_HEADER + b":") + len(QOS_HEADER) + 1
    digit = hdr[at:at + 2].strip()[:1]
    return _QOS_DIGITS.get(digit, 0)


def expiry_of(hdr: bytes) -> float:
    value = get_header(hdr, EXPIRY_HEADER)
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def header_lines(hdr: bytes | None) -> list[tuple[str, str]]:
    """Every header line in order, repeats kept."""
    if not hdr:
        return []
    out = []
    for line in hdr.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key:
            out.append((key.decode(errors="replace"), value.strip().decode(errors="replace")))
    return out


def properties_from(hdr: bytes | None, reply: bytes | None) -> dict[str, Any]:
    """MQTT 5 PUBLISH properties for a NATS message: user properties from its
    headers; the response topic an MQTT 5 publisher gave (``Mqtt-Response-Topic``),
    else one made of the reply subject of a NATS request.  The door's own reply
    subjects (``$MQTT.JSA.``, ``$MQTT.rr.``) are never shown."""
    props: dict[str, Any] = {}
    users = []
    for key, value in header_lines(hdr):
        k = key.encode()
        if k == RESPONSE_TOPIC:
            props["response_topic"] = value
        elif k == CORRELATION:
            try:
                props["correlation_data"] = base64.b64decode(value)
            except ValueError:
                pass
        elif k == b"Mqtt-Content-Type":
            props["content_type"] = value
        elif k == b"Mqtt-Format":
            props["payload_format_indicator"] = 1
        elif k == EXPIRY_HEADER:
            pass
        elif not k.startswith(_MQTT_HEADERS):
            users.append((key, value))
    if users:
        props["user_properties"] = users
    if reply and "response_topic" not in props and not reply.startswith(_OWN_REPLIES):
        props["response_topic"] = to_topic(reply.decode(errors="replace"))
    return props
