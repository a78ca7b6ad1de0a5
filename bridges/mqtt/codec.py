"""MQTT 3.1.1 and 5 framing without I/O: bytes in, packets out, packets in, bytes out.

:class:`MqttCodec` keeps what the protocol itself makes a connection remember (the level
the CONNECT chose, topic aliases, a packet still arriving) and applies the rules that
can be checked while reading: fixed-header flags, lengths, UTF-8 strings, properties
allowed in each packet, limits.  A broken peer yields one :class:`ProtocolError` with
the MQTT 5 reason code to report, after which the codec reads nothing more.  Rules
that need the server's state or policy (client ids, topic filters, authorization,
receive windows) are the door's.

Which peer errors get which reason code:

- 0x81 malformed: a truncated field, a remaining length over 4 bytes, wrong fixed-header
  flags, a reserved bit set, QoS 3 in a PUBLISH or a will, packet identifier 0, a string
  that is not well-formed UTF-8 or holds U+0000, an unknown property, trailing bytes.
- 0x82 protocol error: a packet before CONNECT, a second CONNECT, a packet the other
  side sends, a wildcard or empty PUBLISH/will topic, a SUBSCRIBE/UNSUBSCRIBE without
  filters, a property not allowed in that packet or repeated, a property value out of
  range, an unknown topic alias, a protocol name other than ``MQTT``.
- 0x84 unsupported protocol version (CONNECT level not 4 or 5), 0x85 a client id that is
  not valid UTF-8, 0x86 a user name that is not valid UTF-8: the door answers these
  with a CONNACK (:meth:`MqttCodec.send` turns them into 3.1.1 return codes 1, 2, 4).
- 0x94 a topic alias of 0 or above ``topic_alias_maximum``, 0x95 a packet larger than
  ``max_packet_size`` (reported as soon as its length is known, before its body).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridges.mqtt.packets import (
    BAD_USER_NAME_OR_PASSWORD,
    CLIENT_IDENTIFIER_NOT_VALID,
    MALFORMED_PACKET,
    PACKET_TOO_LARGE,
    PROTOCOL_ERROR,
    SUBACK_FAILURE,
    TOPIC_ALIAS_INVALID,
    UNSUPPORTED_PROTOCOL_VERSION,
    V3_CONNACK_CODES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
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

#: Largest packet accepted by default, fixed header included (bytes).
DEFAULT_MAX_PACKET_SIZE = 1 << 20
#: Largest remaining length a 4-byte variable byte integer holds.
MAX_REMAINING_LENGTH = 268_435_455

(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE,
 UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH) = range(1, 16)
_WILL = 0  # the property context of a CONNECT's will
_NAMES = ("WILL", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
          "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
          "DISCONNECT", "AUTH")
#: Fixed-header flags each type must carry (None: PUBLISH's own flags).
_FLAGS = (None, 0, 0, None, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)
_FROM_CLIENT = frozenset({CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE,
                          UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH})
_FROM_SERVER = frozenset({CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
                          PINGRESP, DISCONNECT, AUTH})

# Property value kinds.
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPS: dict[int, tuple[str, int]] = {
    0x01: ("payload_format_indicator", _BYTE),
    0x02: ("message_expiry_interval", _U32),
    0x03: ("content_type", _STR),
    0x08: ("response_topic", _STR),
    0x09: ("correlation_data", _BIN),
    0x0B: ("subscription_identifier", _VARINT),
    0x11: ("session_expiry_interval", _U32),
    0x12: ("assigned_client_identifier", _STR),
    0x13: ("server_keep_alive", _U16),
    0x15: ("authentication_method", _STR),
    0x16: ("authentication_data", _BIN),
    0x17: ("request_problem_information", _BYTE),
    0x18: ("will_delay_interval", _U32),
    0x19: ("request_response_information", _BYTE),
    0x1A: ("response_information", _STR),
    0x1C: ("server_reference", _STR),
    0x1F: ("reason_string", _STR),
    0x21: ("receive_maximum", _U16),
    0x22: ("topic_alias_maximum", _U16),
    0x23: ("topic_alias", _U16),
    0x24: ("maximum_qos", _BYTE),
    0x25: ("retain_available", _BYTE),
    0x26: ("user_properties", _PAIR),
    0x27: ("maximum_packet_size", _U32),
    0x28: ("wildcard_subscription_available", _BYTE),
    0x29: ("subscription_identifier_available", _BYTE),
    0x2A: ("shared_subscription_available", _BYTE),
}
_PROP_IDS = {name: (pid, kind) for pid, (name, kind) in _PROPS.items()}
#: Properties whose only values are 0 and 1, and those that must not be 0.
_BOOLEAN = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_NON_ZERO = frozenset({0x0B, 0x21, 0x27})
_ACKS = frozenset({0x1F, 0x26})
#: The properties each packet (and a will) may carry, from the MQTT 5 property table.
_ALLOWED: dict[int, frozenset[int]] = {
    _WILL: frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}),
    CONNECT: frozenset({0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27}),
    CONNACK: frozenset({0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24,
                        0x25, 0x26, 0x27, 0x28, 0x29, 0x2A}),
    PUBLISH: frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}),
    PUBACK: _ACKS, PUBREC: _ACKS, PUBREL: _ACKS, PUBCOMP: _ACKS,
    SUBSCRIBE: frozenset({0x0B, 0x26}),
    SUBACK: _ACKS,
    UNSUBSCRIBE: frozenset({0x26}),
    UNSUBACK: _ACKS,
    DISCONNECT: frozenset({0x11, 0x1C, 0x1F, 0x26}),
    AUTH: frozenset({0x15, 0x16, 0x1F, 0x26}),
}
#: MQTT 5 reason codes each packet may carry.
_PUB_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_REL_CODES = frozenset({0x00, 0x92})
_REASONS: dict[int, frozenset[int]] = {
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
_V3_SUBACK = frozenset({0, 1, 2, SUBACK_FAILURE})
_ACK_CLASSES = {PUBACK: PubAck, PUBREC: PubRec, PUBREL: PubRel, PUBCOMP: PubComp}


class _Error(Exception):
    """A peer's protocol error, raised inside a decoder."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _malformed(what: str) -> _Error:
    return _Error(MALFORMED_PACKET, what)


def _u16(buf: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise _malformed("truncated two-byte integer")
    return (buf[pos] << 8) | buf[pos + 1]


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        d = buf[pos]
        pos += 1
        value |= (d & 0x7F) << shift
        if d < 0x80:
            return value, pos
        shift += 7
        if shift == 28:
            raise _malformed("variable byte integer longer than 4 bytes")
    raise _malformed("truncated variable byte integer")


def _bin(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    stop = pos + 2 + _u16(buf, pos, end)
    if stop > end:
        raise _malformed("truncated string")
    return buf[pos + 2 : stop], stop


def _str(buf: bytes, pos: int, end: int, code: int = MALFORMED_PACKET,
         what: str = "string") -> tuple[str, int]:
    """A UTF-8 string; ``code`` reports one that is not well-formed MQTT UTF-8."""
    raw, stop = _bin(buf, pos, end)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise _Error(code, f"{what} is not valid UTF-8")
    if "\x00" in text:
        raise _Error(code, f"{what} holds U+0000")
    return text, stop


def _read_props(buf: bytes, pos: int, end: int, ctx: int) -> tuple[dict[str, Any], int]:
    """The property block at ``pos`` for packet type ``ctx``; returns it and its end."""
    length, pos = _varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise _malformed("properties longer than the packet")
    props: dict[str, Any] = {}
    if not length:
        return props, stop
    allowed = _ALLOWED[ctx]
    while pos < stop:
        pid, pos = _varint(buf, pos, stop)
        spec = _PROPS.get(pid)
        if spec is None:
            raise _malformed(f"unknown property 0x{pid:02x}")
        name, kind = spec
        if pid not in allowed:
            raise _Error(PROTOCOL_ERROR, f"property {name} not allowed in {_NAMES[ctx]}")
        value: Any
        if kind == _BYTE:
            if pos >= stop:
                raise _malformed(f"truncated {name}")
            value = buf[pos]
            pos += 1
        elif kind == _U16:
            value = _u16(buf, pos, stop)
            pos += 2
        elif kind == _U32:
            if pos + 4 > stop:
                raise _malformed(f"truncated {name}")
            value = int.from_bytes(buf[pos : pos + 4], "big")
            pos += 4
        elif kind == _VARINT:
            value, pos = _varint(buf, pos, stop)
        elif kind == _STR:
            value, pos = _str(buf, pos, stop)
        elif kind == _BIN:
            value, pos = _bin(buf, pos, stop)
        else:
            key, pos = _str(buf, pos, stop)
            val, pos = _str(buf, pos, stop)
            props.setdefault(name, []).append((key, val))
            continue
        if pid in _BOOLEAN and value > 1:
            raise _Error(PROTOCOL_ERROR, f"{name} must be 0 or 1")
        if pid in _NON_ZERO and not value:
            raise _Error(PROTOCOL_ERROR, f"{name} must not be 0")
        if pid == 0x0B and ctx == PUBLISH:
            props.setdefault(name, []).append(value)
        elif name in props:
            raise _Error(PROTOCOL_ERROR, f"property {name} repeated")
        else:
            props[name] = value
    return props, stop


def _bad_topic(topic: str) -> str | None:
    """Why a topic name cannot be published to, or None."""
    if not topic:
        return "empty topic name"
    if "+" in topic or "#" in topic:
        return "wildcard in topic name"
    return None


class MqttCodec:
    """One side of an MQTT connection.

    :param max_packet_size: largest packet read, fixed header included (default 1 MiB);
        larger ones are a 0x95 error as soon as their remaining length is read.
    :param client: True to play the client (decode what a server sends); default server.
    :param topic_alias_maximum: highest topic alias the peer may use (MQTT 5); 0 refuses
        them all.
    :param level: the protocol level when it is not learned from a CONNECT: the client's
        own (4 or 5; sending a CONNECT also sets it); for a server, a level given here
        takes the CONNECT as already done.
    """

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, client: bool = False,
                 topic_alias_maximum: int = 0, level: int | None = None) -> None:
        self.max_packet_size = max_packet_size
        self.client = client
        self.topic_alias_maximum = topic_alias_maximum
        #: The level packets are encoded and decoded for: 4 until a CONNECT says 5.  Set
        #: from a CONNECT's level byte as soon as it is read, so an error later in that
        #: CONNECT can be answered in the client's format.
        self.level = level or 4
        #: Server: a valid CONNECT was read.
        self.connected = client or level is not None
        #: The peer's Maximum Packet Size (from its CONNECT, or CONNACK for a client).
        self.peer_max_packet_size: int | None = None
        self._accepts = _FROM_SERVER if client else _FROM_CLIENT
        self._aliases: dict[int, str] = {}
        self._buf = bytearray()
        self._need = 0
        self._dead = False
        self._decoders = (
            None, self._connect, self._connack, self._publish, self._ack, self._ack,
            self._ack, self._ack, self._subscribe, self._suback, self._unsubscribe,
            self._unsuback, self._ping, self._ping, self._disconnect, self._auth,
        )

    # -- reading --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Packet | ProtocolError]:
        """Feed bytes from the peer; return the packets they complete, in order.

        A :class:`ProtocolError` is always the last item; every later call returns [].
        """
        if self._dead:
            return []
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            buf = bytes(self._buf)
            self._buf = bytearray()
        else:
            buf = data if type(data) is bytes else bytes(data)
        self._need = 0
        out: list[Packet | ProtocolError] = []
        pos, n = 0, len(buf)
        try:
            while pos < n:
                b0 = buf[pos]
                ptype = b0 >> 4
                self._check_header(ptype, b0 & 0x0F)
                i, rl, shift = pos + 1, 0, 0
                while True:
                    if i >= n:
                        self._buf = bytearray(buf[pos:])
                        return out
                    d = buf[i]
                    i += 1
                    rl |= (d & 0x7F) << shift
                    if d < 0x80:
                        break
                    shift += 7
                    if shift == 28:
                        raise _malformed("remaining length longer than 4 bytes")
                end = i + rl
                if end - pos > self.max_packet_size:
                    raise _Error(PACKET_TOO_LARGE, f"{_NAMES[ptype]} of {end - pos} bytes is "
                                 f"over the maximum packet size {self.max_packet_size}")
                if end > n:
                    self._buf = bytearray(buf[pos:])
                    self._need = end - pos
                    return out
                out.append(self._decoders[ptype](buf, i, end, b0))
                pos = end
        except _Error as exc:
            self._dead = True
            self._buf = bytearray()
            out.append(ProtocolError(exc.code, exc.message))
        return out

    def _check_header(self, ptype: int, flags: int) -> None:
        if not ptype:
            raise _malformed("reserved packet type 0")
        if not self.connected:
            if ptype != CONNECT:
                raise _Error(PROTOCOL_ERROR, f"first packet is {_NAMES[ptype]}, not CONNECT")
        elif ptype == CONNECT and not self.client:
            raise _Error(PROTOCOL_ERROR, "second CONNECT")
        if ptype == AUTH and self.level != 5:
            raise _malformed("reserved packet type 15")
        expected = _FLAGS[ptype]
        if expected is None:
            if flags & 6 == 6:
                raise _malformed("PUBLISH with QoS 3")
        elif flags != expected:
            raise _malformed(f"{_NAMES[ptype]} with fixed header flags {flags:#x}")
        if ptype not in self._accepts:
            side = "server" if self.client else "client"
            raise _Error(PROTOCOL_ERROR, f"{_NAMES[ptype]} from a {side}")

    def _connect(self, buf: bytes, pos: int, end: int, b0: int) -> Connect:
        name, p = _bin(buf, pos, end)
        if p >= end:
            raise _malformed("truncated CONNECT")
        level = buf[p]
        if name != b"MQTT":
            raise _Error(PROTOCOL_ERROR, f"protocol name {name!r} level {level}")
        if level not in (4, 5):
            raise _Error(UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol level {level}")
        self.level = level
        v5 = level == 5
        if p + 4 > end:
            raise _malformed("truncated CONNECT")
        flags = buf[p + 1]
        keepalive = (buf[p + 2] << 8) | buf[p + 3]
        p += 4
        if flags & 0x01:
            raise _malformed("CONNECT reserved flag set")
        will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
        if not will_flag and (will_qos or will_retain):
            raise _malformed("will QoS or retain without a will")
        if will_qos == 3:
            raise _malformed("will QoS 3")
        if not v5 and flags & 0x40 and not flags & 0x80:
            raise _malformed("password without user name")
        props: dict[str, Any] = {}
        if v5:
            props, p = _read_props(buf, p, end, CONNECT)
            if "authentication_data" in props and "authentication_method" not in props:
                raise _Error(PROTOCOL_ERROR, "authentication data without a method")
        client_id, p = _str(buf, p, end, CLIENT_IDENTIFIER_NOT_VALID, "client identifier")
        will = None
        if will_flag:
            wprops: dict[str, Any] = {}
            if v5:
                wprops, p = _read_props(buf, p, end, _WILL)
                _check_response_topic(wprops)
            topic, p = _str(buf, p, end, MALFORMED_PACKET, "will topic")
            why = _bad_topic(topic)
            if why:
                raise _Error(PROTOCOL_ERROR, "will: " + why)
            payload, p = _bin(buf, p, end)
            will = Will(topic, payload, will_qos, will_retain, wprops)
        username = password = None
        if flags & 0x80:
            username, p = _str(buf, p, end, BAD_USER_NAME_OR_PASSWORD, "user name")
        if flags & 0x40:
            password, p = _bin(buf, p, end)
        if p != end:
            raise _malformed("bytes after the CONNECT payload")
        self.connected = True
        self.peer_max_packet_size = props.get("maximum_packet_size")
        return Connect(level, client_id, bool(flags & 0x02), keepalive, username, password,
                       will, props)

    def _connack(self, buf: bytes, pos: int, end: int, b0: int) -> ConnAck:
        if end - pos < 2 or (self.level != 5 and end - pos != 2):
            raise _malformed("CONNACK length")
        ack_flags, code = buf[pos], buf[pos + 1]
        if ack_flags & 0xFE:
            raise _malformed("CONNACK reserved flags set")
        props: dict[str, Any] = {}
        if self.level == 5:
            _reason(CONNACK, code)
            props, p = _read_props(buf, pos + 2, end, CONNACK)
            if p != end:
                raise _malformed("bytes after the CONNACK properties")
            self.peer_max_packet_size = props.get("maximum_packet_size")
        return ConnAck(bool(ack_flags), code, props)

    def _publish(self, buf: bytes, pos: int, end: int, b0: int) -> Publish:
        stop = pos + 2 + _u16(buf, pos, end)
        if stop > end:
            raise _malformed("truncated topic")
        try:
            topic = buf[pos + 2 : stop].decode()
        except UnicodeDecodeError:
            raise _malformed("topic is not valid UTF-8")
        if "\x00" in topic:
            raise _malformed("topic holds U+0000")
        qos = (b0 >> 1) & 3
        packet_id = None
        if qos:
            packet_id = _u16(buf, stop, end)
            if not packet_id:
                raise _malformed("packet identifier 0")
            stop += 2
        props: dict[str, Any] = {}
        if self.level == 5:
            props, stop = _read_props(buf, stop, end, PUBLISH)
            if props:
                topic = self._check_publish_props(topic, props)
        why = _bad_topic(topic)
        if why:
            raise _Error(PROTOCOL_ERROR, why)
        return Publish(topic, buf[stop:end], qos, bool(b0 & 1), bool(b0 & 8), packet_id, props)

    def _check_publish_props(self, topic: str, props: dict[str, Any]) -> str:
        """The topic a v5 PUBLISH is for, its alias applied; checks what peers must not send."""
        if not self.client and "subscription_identifier" in props:
            raise _Error(PROTOCOL_ERROR, "subscription identifier in a client's PUBLISH")
        _check_response_topic(props)
        alias = props.get("topic_alias")
        if alias is None:
            return topic
        if not alias or alias > self.topic_alias_maximum:
            raise _Error(TOPIC_ALIAS_INVALID, f"topic alias {alias} (maximum "
                         f"{self.topic_alias_maximum})")
        if topic:
            self._aliases[alias] = topic
            return topic
        known = self._aliases.get(alias)
        if known is None:
            raise _Error(PROTOCOL_ERROR, f"topic alias {alias} not set")
        return known

    def _ack(self, buf: bytes, pos: int, end: int,
             b0: int) -> PubAck | PubRec | PubRel | PubComp:
        ptype = b0 >> 4
        size = end - pos
        if size < 2 or (self.level != 5 and size != 2):
            raise _malformed(f"{_NAMES[ptype]} length {size}")
        packet_id = (buf[pos] << 8) | buf[pos + 1]
        if not packet_id:
            raise _malformed("packet identifier 0")
        code = 0
        props: dict[str, Any] = {}
        if size > 2:
            code = _reason(ptype, buf[pos + 2])
            if size > 3:
                props, p = _read_props(buf, pos + 3, end, ptype)
                if p != end:
                    raise _malformed(f"bytes after the {_NAMES[ptype]} properties")
        return _ACK_CLASSES[ptype](packet_id, code, props)

    def _packet_id(self, buf: bytes, pos: int, end: int, ptype: int) -> tuple[int, dict, int]:
        """The packet identifier and v5 properties that start SUBSCRIBE and friends."""
        packet_id = _u16(buf, pos, end)
        if not packet_id:
            raise _malformed("packet identifier 0")
        if self.level != 5:
            return packet_id, {}, pos + 2
        props, p = _read_props(buf, pos + 2, end, ptype)
        return packet_id, props, p

    def _subscribe(self, buf: bytes, pos: int, end: int, b0: int) -> Subscribe:
        packet_id, props, p = self._packet_id(buf, pos, end, SUBSCRIBE)
        v5 = self.level == 5
        subs = []
        while p < end:
            topic_filter, p = _str(buf, p, end, MALFORMED_PACKET, "topic filter")
            if p >= end:
                raise _malformed("subscription options missing")
            opts = buf[p]
            p += 1
            qos, retain_handling = opts & 3, (opts >> 4) & 3
            if opts & (0xC0 if v5 else 0xFC):
                raise _malformed("subscription options reserved bits set")
            if qos == 3:
                raise _Error(PROTOCOL_ERROR if v5 else MALFORMED_PACKET, "subscription QoS 3")
            if retain_handling == 3:
                raise _Error(PROTOCOL_ERROR, "retain handling 3")
            no_local = bool(opts & 4)
            if no_local and topic_filter.startswith("$share/"):
                raise _Error(PROTOCOL_ERROR, "no local on a shared subscription")
            subs.append(SubscriptionRequest(topic_filter, qos, no_local, bool(opts & 8),
                                            retain_handling))
        if not subs:
            raise _Error(PROTOCOL_ERROR, "SUBSCRIBE without topic filters")
        return Subscribe(packet_id, subs, props)

    def _unsubscribe(self, buf: bytes, pos: int, end: int, b0: int) -> Unsubscribe:
        packet_id, props, p = self._packet_id(buf, pos, end, UNSUBSCRIBE)
        filters = []
        while p < end:
            topic_filter, p = _str(buf, p, end, MALFORMED_PACKET, "topic filter")
            filters.append(topic_filter)
        if not filters:
            raise _Error(PROTOCOL_ERROR, "UNSUBSCRIBE without topic filters")
        return Unsubscribe(packet_id, filters, props)

    def _suback(self, buf: bytes, pos: int, end: int, b0: int) -> SubAck:
        packet_id, props, p = self._packet_id(buf, pos, end, SUBACK)
        codes = list(buf[p:end])
        if not codes:
            raise _Error(PROTOCOL_ERROR, "SUBACK without reason codes")
        for code in codes:
            if self.level == 5:
                _reason(SUBACK, code)
            elif code not in _V3_SUBACK:
                raise _malformed(f"SUBACK return code {code:#x}")
        return SubAck(packet_id, codes, props)

    def _unsuback(self, buf: bytes, pos: int, end: int, b0: int) -> UnsubAck:
        if self.level != 5:
            if end - pos != 2:
                raise _malformed("UNSUBACK length")
            return UnsubAck(self._packet_id(buf, pos, end, UNSUBACK)[0])
        packet_id, props, p = self._packet_id(buf, pos, end, UNSUBACK)
        codes = [_reason(UNSUBACK, code) for code in buf[p:end]]
        if not codes:
            raise _Error(PROTOCOL_ERROR, "UNSUBACK without reason codes")
        return UnsubAck(packet_id, codes, props)

    def _ping(self, buf: bytes, pos: int, end: int, b0: int) -> PingReq | PingResp:
        if end != pos:
            raise _malformed("PING with a body")
        return PingResp() if self.client else PingReq()

    def _disconnect(self, buf: bytes, pos: int, end: int, b0: int) -> Disconnect:
        code, props = self._reason_and_props(buf, pos, end, DISCONNECT)
        return Disconnect(code, props)

    def _auth(self, buf: bytes, pos: int, end: int, b0: int) -> Auth:
        code, props = self._reason_and_props(buf, pos, end, AUTH)
        return Auth(code, props)

    def _reason_and_props(self, buf: bytes, pos: int, end: int,
                          ptype: int) -> tuple[int, dict[str, Any]]:
        """DISCONNECT and AUTH: an optional reason code, then optional properties."""
        if pos == end:
            return 0, {}
        if self.level != 5:
            raise _malformed(f"{_NAMES[ptype]} with a body")
        code = _reason(ptype, buf[pos])
        if pos + 1 == end:
            return code, {}
        props, p = _read_props(buf, pos + 1, end, ptype)
        if p != end:
            raise _malformed(f"bytes after the {_NAMES[ptype]} properties")
        return code, props

    # -- writing --------------------------------------------------------------------------

    def send(self, packet: Packet) -> bytes:
        """The bytes of ``packet`` for the negotiated level.

        A 3.1.1 server has no DISCONNECT to send: that gives b"" (just close).
        """
        if self.client and type(packet) is Connect:
            self.level = packet.protocol_level
        elif self.level != 5 and not self.client and type(packet) is Disconnect:
            return b""
        return encode(packet, self.level)


def _reason(ptype: int, code: int) -> int:
    if code not in _REASONS[ptype]:
        raise _Error(PROTOCOL_ERROR, f"reason code {code:#x} in {_NAMES[ptype]}")
    return code


def _check_response_topic(props: dict[str, Any]) -> None:
    topic = props.get("response_topic")
    if topic is not None and _bad_topic(topic):
        raise _Error(PROTOCOL_ERROR, "response topic: " + _bad_topic(topic))


def decode_all(data: bytes, level: int = 4, client: bool = False,
               **options: Any) -> list[Packet | ProtocolError]:
    """The packets in ``data`` read by a fresh codec at ``level``.

    For the server role the CONNECT counts as done unless ``data`` starts with one.
    """
    if not client and data and data[0] >> 4 == CONNECT:
        codec = MqttCodec(client=False, **options)
    else:
        codec = MqttCodec(client=client, level=level, **options)
    return codec.receive_data(data)


# -- encoding ------------------------------------------------------------------------------

_SMALL = [bytes((i,)) for i in range(128)]


def _e_varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    if n > MAX_REMAINING_LENGTH:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while n:
        d = n & 0x7F
        n >>= 7
        out.append(d | 0x80 if n else d)
    return bytes(out)


def _e_bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("string or binary field over 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _e_str(text: str) -> bytes:
    return _e_bin(text.encode())


def _e_props(props: dict[str, Any]) -> bytes:
    """A property block: its length, then each property (lists repeat the identifier)."""
    if not props:
        return b"\x00"
    out = bytearray()
    for name, value in props.items():
        try:
            pid, kind = _PROP_IDS[name]
        except KeyError:
            raise ValueError(f"unknown MQTT property {name!r}") from None
        if kind == _PAIR:
            for key, val in value:
                out.append(pid)
                out += _e_str(key)
                out += _e_str(val)
            continue
        for one in value if isinstance(value, list) else (value,):
            out.append(pid)
            if kind == _BYTE:
                out.append(one)
            elif kind == _U16:
                out += one.to_bytes(2, "big")
            elif kind == _U32:
                out += one.to_bytes(4, "big")
            elif kind == _VARINT:
                out += _e_varint(one)
            elif kind == _STR:
                out += _e_str(one)
            else:
                out += _e_bin(one)
    return _e_varint(len(out)) + bytes(out)


def _frame(b0: int, *parts: bytes) -> bytes:
    size = sum(map(len, parts))
    if size > MAX_REMAINING_LENGTH:
        raise ValueError("packet over the MQTT size limit")
    return b"".join((_SMALL[b0] if b0 < 128 else bytes((b0,)), _e_varint(size), *parts))


def _e_connect(c: Connect, level: int) -> bytes:
    v5 = c.protocol_level == 5
    flags = 0x02 if c.clean_start else 0
    w = c.will
    if w is not None:
        flags |= 0x04 | (w.qos << 3) | (0x20 if w.retain else 0)
    if c.username is not None:
        flags |= 0x80
    if c.password is not None:
        flags |= 0x40
    parts = [_e_str(c.protocol_name), bytes((c.protocol_level, flags)),
             c.keepalive.to_bytes(2, "big")]
    if v5:
        parts.append(_e_props(c.properties))
    parts.append(_e_str(c.client_id))
    if w is not None:
        if v5:
            parts.append(_e_props(w.properties))
        parts += (_e_str(w.topic), _e_bin(w.payload))
    if c.username is not None:
        parts.append(_e_str(c.username))
    if c.password is not None:
        parts.append(_e_bin(c.password))
    return _frame(0x10, *parts)


def _e_connack(a: ConnAck, level: int) -> bytes:
    if level == 5:
        return _frame(0x20, bytes((int(a.session_present), a.reason_code)),
                      _e_props(a.properties))
    code = a.reason_code
    if code >= 0x80:
        code = V3_CONNACK_CODES.get(code, 3)
    return bytes((0x20, 2, int(a.session_present), code))


def _e_publish(p: Publish, level: int) -> bytes:
    qos = p.qos
    b0 = 0x30 | (qos << 1) | (8 if p.dup else 0) | (1 if p.retain else 0)
    head = _e_str(p.topic)
    if qos:
        if not p.packet_id:
            raise ValueError("QoS 1/2 PUBLISH needs a packet identifier")
        head += p.packet_id.to_bytes(2, "big")
    if level == 5:
        head += _e_props(p.properties)
    return _frame(b0, head, p.payload)


def _e_ack(b0: int) -> Callable[[Any, int], bytes]:
    """The encoder of PUBACK, PUBREC, PUBREL or PUBCOMP (first byte ``b0``)."""

    def encode_ack(a: PubAck, level: int) -> bytes:
        pid = a.packet_id
        if level != 5 or (not a.reason_code and not a.properties):
            return bytes((b0, 2, pid >> 8, pid & 0xFF))
        if not a.properties:
            return bytes((b0, 3, pid >> 8, pid & 0xFF, a.reason_code))
        return _frame(b0, bytes((pid >> 8, pid & 0xFF, a.reason_code)),
                      _e_props(a.properties))
    return encode_ack


def _e_subscribe(s: Subscribe, level: int) -> bytes:
    parts = [s.packet_id.to_bytes(2, "big")]
    v5 = level == 5
    if v5:
        parts.append(_e_props(s.properties))
    for r in s.subscriptions:
        opts = r.qos
        if v5:
            opts |= (4 if r.no_local else 0) | (8 if r.retain_as_published else 0)
            opts |= r.retain_handling << 4
        parts += (_e_str(r.topic_filter), _SMALL[opts])
    return _frame(0x82, *parts)


def _e_suback(s: SubAck, level: int) -> bytes:
    pid = s.packet_id.to_bytes(2, "big")
    if level == 5:
        return _frame(0x90, pid, _e_props(s.properties), bytes(s.reason_codes))
    codes = bytes(c if c < 3 else SUBACK_FAILURE for c in s.reason_codes)
    return _frame(0x90, pid, codes)


def _e_unsubscribe(u: Unsubscribe, level: int) -> bytes:
    parts = [u.packet_id.to_bytes(2, "big")]
    if level == 5:
        parts.append(_e_props(u.properties))
    parts += [_e_str(f) for f in u.topic_filters]
    return _frame(0xA2, *parts)


def _e_unsuback(u: UnsubAck, level: int) -> bytes:
    pid = u.packet_id.to_bytes(2, "big")
    if level == 5:
        return _frame(0xB0, pid, _e_props(u.properties), bytes(u.reason_codes))
    return b"\xb0\x02" + pid


def _e_reason(b0: int) -> Callable[[Any, int], bytes]:
    """The encoder of DISCONNECT or AUTH: an optional reason code and properties."""

    def encode_reason(d: Disconnect | Auth, level: int) -> bytes:
        if level != 5:
            if b0 == 0xF0:
                raise ValueError("AUTH does not exist in MQTT 3.1.1")
            return bytes((b0, 0))
        if not d.properties:
            return bytes((b0, 0)) if not d.reason_code else bytes((b0, 1, d.reason_code))
        return _frame(b0, bytes((d.reason_code,)), _e_props(d.properties))
    return encode_reason


_ENCODERS: dict[type, Any] = {
    Connect: _e_connect,
    ConnAck: _e_connack,
    Publish: _e_publish,
    PubAck: _e_ack(0x40),
    PubRec: _e_ack(0x50),
    PubRel: _e_ack(0x62),
    PubComp: _e_ack(0x70),
    Subscribe: _e_subscribe,
    SubAck: _e_suback,
    Unsubscribe: _e_unsubscribe,
    UnsubAck: _e_unsuback,
    PingReq: lambda p, level: b"\xc0\x00",
    PingResp: lambda p, level: b"\xd0\x00",
    Disconnect: _e_reason(0xE0),
    Auth: _e_reason(0xF0),
}


def encode(packet: Packet, level: int) -> bytes:
    """The bytes of ``packet`` for protocol ``level`` (4 or 5); 3.1.1 drops what it lacks.

    A CONNECT is encoded for its own ``protocol_level``.  For 3.1.1, CONNACK reason codes
    from 0x80 become return codes (:data:`V3_CONNACK_CODES`) and SUBACK ones become 0x80.
    """
    return _ENCODERS[type(packet)](packet, level)
