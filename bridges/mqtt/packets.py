"""MQTT 3.1.1 and 5 control packets as plain dataclasses, and the protocol's numbers.

One class per packet type, the same for both protocol levels: fields that only MQTT 5
carries (reason codes, properties) keep their defaults under 3.1.1, and the encoder
drops them when encoding for a 3.1.1 peer.  Properties are dicts keyed by the
snake_case MQTT 5 names (``message_expiry_interval``, ``user_properties`` as a list of
``(name, value)`` pairs in order, ``subscription_identifier`` as a list of ints in a
PUBLISH and an int in a SUBSCRIBE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Protocol levels (the CONNECT "protocol level" byte).
MQTT_3_1_1 = 4
MQTT_5 = 5

# MQTT 5 reason codes (one byte, shared by CONNACK, PUBACK..., SUBACK, DISCONNECT, AUTH).
SUCCESS = 0x00
NORMAL_DISCONNECTION = 0x00
GRANTED_QOS_0 = 0x00
GRANTED_QOS_1 = 0x01
GRANTED_QOS_2 = 0x02
DISCONNECT_WITH_WILL_MESSAGE = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
CONTINUE_AUTHENTICATION = 0x18
RE_AUTHENTICATE = 0x19
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
BANNED = 0x8A
SERVER_SHUTTING_DOWN = 0x8B
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_IDENTIFIER_IN_USE = 0x91
PACKET_IDENTIFIER_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
MESSAGE_RATE_TOO_HIGH = 0x96
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
USE_ANOTHER_SERVER = 0x9C
SERVER_MOVED = 0x9D
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
CONNECTION_RATE_EXCEEDED = 0x9F
MAXIMUM_CONNECT_TIME = 0xA0
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# MQTT 3.1.1 CONNACK return codes.
CONNACK_ACCEPTED = 0
CONNACK_UNACCEPTABLE_PROTOCOL_VERSION = 1
CONNACK_IDENTIFIER_REJECTED = 2
CONNACK_SERVER_UNAVAILABLE = 3
CONNACK_BAD_USER_NAME_OR_PASSWORD = 4
CONNACK_NOT_AUTHORIZED = 5
#: MQTT 3.1.1 SUBACK return code for a refused filter.
SUBACK_FAILURE = 0x80

#: The 3.1.1 CONNACK return code that stands for an MQTT 5 reason code, so one
#: ``ConnAck(False, NOT_AUTHORIZED)`` serves both levels.  Codes below 0x80 are sent
#: as they are (nats-server uses 0x10 for a refused QoS 2 will); other failures are
#: "server unavailable".
V3_CONNACK_CODES = {
    UNSUPPORTED_PROTOCOL_VERSION: CONNACK_UNACCEPTABLE_PROTOCOL_VERSION,
    CLIENT_IDENTIFIER_NOT_VALID: CONNACK_IDENTIFIER_REJECTED,
    SERVER_UNAVAILABLE: CONNACK_SERVER_UNAVAILABLE,
    SERVER_BUSY: CONNACK_SERVER_UNAVAILABLE,
    BAD_USER_NAME_OR_PASSWORD: CONNACK_BAD_USER_NAME_OR_PASSWORD,
    BAD_AUTHENTICATION_METHOD: CONNACK_BAD_USER_NAME_OR_PASSWORD,
    NOT_AUTHORIZED: CONNACK_NOT_AUTHORIZED,
    BANNED: CONNACK_NOT_AUTHORIZED,
}

# Control packet types: the high four bits of a packet's first byte (0 is reserved).
(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE,
 UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH) = range(1, 16)
#: Names for error messages, by type.
PACKET_NAMES = ("reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
                "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
                "PINGRESP", "DISCONNECT", "AUTH")
#: Fixed-header flags each type must carry (None: PUBLISH's own flags).
FIXED_FLAGS = (None, 0, 0, None, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)
#: The types each side may send.
SENT_BY_CLIENT = frozenset({CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE,
                            UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH})
SENT_BY_SERVER = frozenset({CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
                            UNSUBACK, PINGRESP, DISCONNECT, AUTH})
_PUB_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_REL_CODES = frozenset({0x00, 0x92})
#: The MQTT 5 reason codes each type may carry.
REASON_CODES: dict[int, frozenset[int]] = {
    CONNACK: frozenset({0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                        0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}),
    PUBACK: _PUB_CODES, PUBREC: _PUB_CODES, PUBREL: _REL_CODES, PUBCOMP: _REL_CODES,
    SUBACK: frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1,
                       0xA2}),
    UNSUBACK: frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    DISCONNECT: frozenset({0x00, 0x04, *range(0x80, 0x84), 0x87, 0x89, 0x8B,
                           *range(0x8D, 0x91), *range(0x93, 0xA3)}),
    AUTH: frozenset({0x00, 0x18, 0x19}),
}


def _props() -> dict[str, Any]:
    return {}


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class Connect:
    protocol_level: int
    client_id: str
    clean_start: bool
    keepalive: int
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict[str, Any] = field(default_factory=_props)
    protocol_name: str = "MQTT"


@dataclass(slots=True)
class ConnAck:
    session_present: bool
    reason_code: int
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class PubAck:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class PubRec:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class PubRel:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class PubComp:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class SubscriptionRequest:
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    subscriptions: list[SubscriptionRequest]
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class SubAck:
    packet_id: int
    reason_codes: list[int]
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class UnsubAck:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class PingReq:
    pass


@dataclass(slots=True)
class PingResp:
    pass


@dataclass(slots=True)
class Disconnect:
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class Auth:
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=_props)


@dataclass(slots=True)
class ProtocolError:
    """The peer broke the protocol; the codec reads nothing after this.

    ``reason_code`` is the MQTT 5 reason code for the DISCONNECT (or, while the
    CONNECT is read, the CONNACK) that may precede closing the connection.
    """

    reason_code: int
    message: str


Packet = (Connect | ConnAck | Publish | PubAck | PubRec | PubRel | PubComp | Subscribe
          | SubAck | Unsubscribe | UnsubAck | PingReq | PingResp | Disconnect | Auth)
