"""MQTT 3.1.1 and 5 framing without I/O: bytes in, packets out, packets in, bytes out.

:class:`MqttCodec` keeps what the protocol itself makes a connection remember (the level
the CONNECT chose, topic aliases, a packet still arriving) and applies the rules that
can be checked while reading: fixed-header flags, lengths, UTF-8 strings, properties
allowed in each packet, limits.  A broken peer yields one :class:`ProtocolError` with
the MQTT 5 reason code to report, after which the codec reads nothing more.  Rules
that need the server's state or policy (client ids, topic filters, authorization,
receive windows) are the door's.  Field formats are :mod:`jetport.bridges.mqtt.wire`'s,
the property table :mod:`jetport.bridges.mqtt.properties`', and ``send`` is
:mod:`jetport.bridges.mqtt.encoder`.

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

from jetport.bridges.mqtt.encoder import encode
from jetport.bridges.mqtt.packets import (
    AUTH,
    BAD_USER_NAME_OR_PASSWORD,
    CLIENT_IDENTIFIER_NOT_VALID,
    CONNACK,
    CONNECT,
    DISCONNECT,
    FIXED_FLAGS,
    MALFORMED_PACKET,
    PACKET_NAMES,
    PACKET_TOO_LARGE,
    PROTOCOL_ERROR,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    REASON_CODES,
    SENT_BY_CLIENT,
    SENT_BY_SERVER,
    SUBACK,
    SUBACK_FAILURE,
    SUBSCRIBE,
    TOPIC_ALIAS_INVALID,
    UNSUBACK,
    UNSUBSCRIBE,
    UNSUPPORTED_PROTOCOL_VERSION,
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
from jetport.bridges.mqtt.properties import WILL, read_last_props, read_props
from jetport.bridges.mqtt.wire import (
    MAX_REMAINING_LENGTH,
    DecodeError,
    malformed,
    read_bin,
    read_str,
    read_u16,
)

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "MAX_REMAINING_LENGTH", "MqttCodec", "decode_all"]

#: Largest packet accepted by default, fixed header included (bytes).
DEFAULT_MAX_PACKET_SIZE = 1 << 20
#: The topic aliases of a codec that has none yet: shared, never written (64 bytes less
#: per connection; most clients never set one).
_NO_ALIASES: dict[int, str] = {}

_V3_SUBACK = frozenset({0, 1, 2, SUBACK_FAILURE})
_ACK_CLASSES: dict[int, type[PubAck | PubRec | PubRel | PubComp]] = {
    PUBACK: PubAck, PUBREC: PubRec, PUBREL: PubRel, PUBCOMP: PubComp}


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
        self._accepts = SENT_BY_SERVER if client else SENT_BY_CLIENT
        self._aliases: dict[int, str] = _NO_ALIASES  # its own from the first alias set
        self._buf = bytearray()
        self._need = 0
        self._dead = False

    def _reserved(self, buf: bytes, pos: int, end: int, b0: int) -> Packet:
        """Packet type 0 (``_check_header`` refuses it first)."""
        raise malformed("reserved packet type 0")

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
            connected = self.connected
            while pos < n:
                b0 = buf[pos]
                ptype = b0 >> 4
                if not (connected and _VALID_ONCE_CONNECTED[b0]):
                    self._check_header(ptype, b0 & 0x0F)
                    connected = self.connected
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
                        raise malformed("remaining length longer than 4 bytes")
                end = i + rl
                if end - pos > self.max_packet_size:
                    raise DecodeError(PACKET_TOO_LARGE, f"{PACKET_NAMES[ptype]} of {end - pos} "
                                      f"bytes is over the maximum packet size "
                                      f"{self.max_packet_size}")
                if end > n:
                    self._buf = bytearray(buf[pos:])
                    self._need = end - pos
                    return out
                out.append(_DECODERS[ptype](self, buf, i, end, b0))
                pos = end
        except DecodeError as exc:
            self._dead = True
            self._buf = bytearray()
            out.append(ProtocolError(exc.code, exc.message))
        return out

    def _check_header(self, ptype: int, flags: int) -> None:
        if not ptype:
            raise malformed("reserved packet type 0")
        if not self.connected:
            if ptype != CONNECT:
                raise DecodeError(PROTOCOL_ERROR,
                                  f"first packet is {PACKET_NAMES[ptype]}, not CONNECT")
        elif ptype == CONNECT and not self.client:
            raise DecodeError(PROTOCOL_ERROR, "second CONNECT")
        if ptype == AUTH and self.level != 5:
            raise malformed("reserved packet type 15")
        expected = FIXED_FLAGS[ptype]
        if expected is None:
            if flags & 6 == 6:
                raise malformed("PUBLISH with QoS 3")
        elif flags != expected:
            raise malformed(f"{PACKET_NAMES[ptype]} with fixed header flags {flags:#x}")
        if ptype not in self._accepts:
            side = "server" if self.client else "client"
            raise DecodeError(PROTOCOL_ERROR, f"{PACKET_NAMES[ptype]} from a {side}")

    def _connect(self, buf: bytes, pos: int, end: int, b0: int) -> Connect:
        name, p = read_bin(buf, pos, end)
        if p >= end:
            raise malformed("truncated CONNECT")
        level = buf[p]
        if name != b"MQTT":
            raise DecodeError(PROTOCOL_ERROR, f"protocol name {name!r} level {level}")
        if level not in (4, 5):
            raise DecodeError(UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol level {level}")
        self.level = level
        v5 = level == 5
        if p + 4 > end:
            raise malformed("truncated CONNECT")
        flags = buf[p + 1]
        keepalive = (buf[p + 2] << 8) | buf[p + 3]
        p += 4
        if flags & 0x01:
            raise malformed("CONNECT reserved flag set")
        will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
        if not will_flag and (will_qos or will_retain):
            raise malformed("will QoS or retain without a will")
        if will_qos == 3:
            raise malformed("will QoS 3")
        if not v5 and flags & 0x40 and not flags & 0x80:
            raise malformed("password without user name")
        props: dict[str, Any] = {}
        if v5:
            props, p = read_props(buf, p, end, CONNECT)
            if "authentication_data" in props and "authentication_method" not in props:
                raise DecodeError(PROTOCOL_ERROR, "authentication data without a method")
        client_id, p = read_str(buf, p, end, CLIENT_IDENTIFIER_NOT_VALID, "client identifier")
        will = None
        if will_flag:
            wprops: dict[str, Any] = {}
            if v5:
                wprops, p = read_props(buf, p, end, WILL)
                _check_response_topic(wprops)
            topic, p = read_str(buf, p, end, MALFORMED_PACKET, "will topic")
            why = _bad_topic(topic)
            if why:
                raise DecodeError(PROTOCOL_ERROR, "will: " + why)
            payload, p = read_bin(buf, p, end)
            will = Will(topic, payload, will_qos, will_retain, wprops)
        username = password = None
        if flags & 0x80:
            username, p = read_str(buf, p, end, BAD_USER_NAME_OR_PASSWORD, "user name")
        if flags & 0x40:
            password, p = read_bin(buf, p, end)
        if p != end:
            raise malformed("bytes after the CONNECT payload")
        self.connected = True
        self.peer_max_packet_size = props.get("maximum_packet_size")
        return Connect(level, client_id, bool(flags & 0x02), keepalive, username, password,
                       will, props)

    def _connack(self, buf: bytes, pos: int, end: int, b0: int) -> ConnAck:
        if end - pos < 2 or (self.level != 5 and end - pos != 2):
            raise malformed("CONNACK length")
        ack_flags, code = buf[pos], buf[pos + 1]
        if ack_flags & 0xFE:
            raise malformed("CONNACK reserved flags set")
        props: dict[str, Any] = {}
        if self.level == 5:
            _reason(CONNACK, code)
            props = read_last_props(buf, pos + 2, end, CONNACK)
            self.peer_max_packet_size = props.get("maximum_packet_size")
        return ConnAck(bool(ack_flags), code, props)

    def _publish(self, buf: bytes, pos: int, end: int, b0: int) -> Publish:
        if pos + 2 > end:
            raise malformed("truncated two-byte integer")
        stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])  # read_u16, inlined (as below)
        if stop > end:
            raise malformed("truncated topic")
        try:
            topic = buf[pos + 2 : stop].decode()
        except UnicodeDecodeError:
            raise malformed("topic is not valid UTF-8") from None
        if "\x00" in topic:
            raise malformed("topic holds U+0000")
        qos = (b0 >> 1) & 3
        packet_id = None
        if qos:
            if stop + 2 > end:
                raise malformed("truncated two-byte integer")
            packet_id = (buf[stop] << 8) | buf[stop + 1]
            if not packet_id:
                raise malformed("packet identifier 0")
            stop += 2
        props: dict[str, Any] = {}
        if self.level == 5:
            props, stop = read_props(buf, stop, end, PUBLISH)
            if props:
                topic = self._check_publish_props(topic, props)
        if not topic or "+" in topic or "#" in topic:  # _bad_topic's test, inlined
            raise DecodeError(PROTOCOL_ERROR, _bad_topic(topic) or "")
        return Publish(topic, buf[stop:end], qos, bool(b0 & 1), bool(b0 & 8), packet_id, props)

    def _check_publish_props(self, topic: str, props: dict[str, Any]) -> str:
        """The topic a v5 PUBLISH is for, its alias applied; checks what peers must not send."""
        if not self.client and "subscription_identifier" in props:
            raise DecodeError(PROTOCOL_ERROR, "subscription identifier in a client's PUBLISH")
        _check_response_topic(props)
        alias = props.get("topic_alias")
        if alias is None:
            return topic
        if not alias or alias > self.topic_alias_maximum:
            raise DecodeError(TOPIC_ALIAS_INVALID, f"topic alias {alias} (maximum "
                              f"{self.topic_alias_maximum})")
        if topic:
            if self._aliases is _NO_ALIASES:
                self._aliases = {}
            self._aliases[alias] = topic
            return topic
        known = self._aliases.get(alias)
        if known is None:
            raise DecodeError(PROTOCOL_ERROR, f"topic alias {alias} not set")
        return known

    def _ack(self, buf: bytes, pos: int, end: int,
             b0: int) -> PubAck | PubRec | PubRel | PubComp:
        ptype = b0 >> 4
        size = end - pos
        if size < 2 or (self.level != 5 and size != 2):
            raise malformed(f"{PACKET_NAMES[ptype]} length {size}")
        packet_id = (buf[pos] << 8) | buf[pos + 1]
        if not packet_id:
            raise malformed("packet identifier 0")
        code = 0
        props: dict[str, Any] = {}
        if size > 2:
            code = _reason(ptype, buf[pos + 2])
            if size > 3:
                props = read_last_props(buf, pos + 3, end, ptype)
        return _ACK_CLASSES[ptype](packet_id, code, props)

    def _packet_id(self, buf: bytes, pos: int, end: int,
                   ptype: int) -> tuple[int, dict[str, Any], int]:
        """The packet identifier and v5 properties that start SUBSCRIBE and friends."""
        packet_id = read_u16(buf, pos, end)
        if not packet_id:
            raise malformed("packet identifier 0")
        if self.level != 5:
            return packet_id, {}, pos + 2
        props, p = read_props(buf, pos + 2, end, ptype)
        return packet_id, props, p

    def _subscribe(self, buf: bytes, pos: int, end: int, b0: int) -> Subscribe:
        packet_id, props, p = self._packet_id(buf, pos, end, SUBSCRIBE)
        v5 = self.level == 5
        subs = []
        while p < end:
            topic_filter, p = read_str(buf, p, end, MALFORMED_PACKET, "topic filter")
            if p >= end:
                raise malformed("subscription options missing")
            opts = buf[p]
            p += 1
            qos, retain_handling = opts & 3, (opts >> 4) & 3
            if opts & (0xC0 if v5 else 0xFC):
                raise malformed("subscription options reserved bits set")
            if qos == 3:
                raise DecodeError(PROTOCOL_ERROR if v5 else MALFORMED_PACKET, "subscription QoS 3")
            if retain_handling == 3:
                raise DecodeError(PROTOCOL_ERROR, "retain handling 3")
            no_local = bool(opts & 4)
            if no_local and topic_filter.startswith("$share/"):
                raise DecodeError(PROTOCOL_ERROR, "no local on a shared subscription")
            subs.append(SubscriptionRequest(topic_filter, qos, no_local, bool(opts & 8),
                                            retain_handling))
        if not subs:
            raise DecodeError(PROTOCOL_ERROR, "SUBSCRIBE without topic filters")
        return Subscribe(packet_id, subs, props)

    def _unsubscribe(self, buf: bytes, pos: int, end: int, b0: int) -> Unsubscribe:
        packet_id, props, p = self._packet_id(buf, pos, end, UNSUBSCRIBE)
        filters = []
        while p < end:
            topic_filter, p = read_str(buf, p, end, MALFORMED_PACKET, "topic filter")
            filters.append(topic_filter)
        if not filters:
            raise DecodeError(PROTOCOL_ERROR, "UNSUBSCRIBE without topic filters")
        return Unsubscribe(packet_id, filters, props)

    def _suback(self, buf: bytes, pos: int, end: int, b0: int) -> SubAck:
        packet_id, props, p = self._packet_id(buf, pos, end, SUBACK)
        codes = list(buf[p:end])
        if not codes:
            raise DecodeError(PROTOCOL_ERROR, "SUBACK without reason codes")
        for code in codes:
            if self.level == 5:
                _reason(SUBACK, code)
            elif code not in _V3_SUBACK:
                raise malformed(f"SUBACK return code {code:#x}")
        return SubAck(packet_id, codes, props)

    def _unsuback(self, buf: bytes, pos: int, end: int, b0: int) -> UnsubAck:
        if self.level != 5:
            if end - pos != 2:
                raise malformed("UNSUBACK length")
            return UnsubAck(self._packet_id(buf, pos, end, UNSUBACK)[0])
        packet_id, props, p = self._packet_id(buf, pos, end, UNSUBACK)
        codes = [_reason(UNSUBACK, code) for code in buf[p:end]]
        if not codes:
            raise DecodeError(PROTOCOL_ERROR, "UNSUBACK without reason codes")
        return UnsubAck(packet_id, codes, props)

    def _ping(self, buf: bytes, pos: int, end: int, b0: int) -> PingReq | PingResp:
        if end != pos:
            raise malformed("PING with a body")
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
            raise malformed(f"{PACKET_NAMES[ptype]} with a body")
        code = _reason(ptype, buf[pos])
        if pos + 1 == end:
            return code, {}
        return code, read_last_props(buf, pos + 1, end, ptype)

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



#: First bytes that ``_check_header`` passes on a connected codec of either role: PUBLISH
#: but QoS 3, PUBACK, PUBREC, PUBREL, PUBCOMP.  Checked by a look-up instead (and with
#: ``_publish``'s field reads inlined), a run of 16 B PUBLISH packets reads in 0.8x the
#: time (codec microbenchmark, 1,000 per call), PUBACKs in 0.85x.
_VALID_ONCE_CONNECTED = tuple(
    (b0 >> 4 == PUBLISH and b0 & 6 != 6) or b0 in (0x40, 0x50, 0x62, 0x70) for b0 in range(256))

#: The decoder of each packet type, by type number: one table for every connection (a
#: tuple of bound methods per connection cost about 1 KB of each idle client's memory).
_DECODERS: tuple[Callable[[MqttCodec, bytes, int, int, int], Packet], ...] = (
    MqttCodec._reserved, MqttCodec._connect, MqttCodec._connack, MqttCodec._publish,
    MqttCodec._ack, MqttCodec._ack, MqttCodec._ack, MqttCodec._ack, MqttCodec._subscribe,
    MqttCodec._suback, MqttCodec._unsubscribe, MqttCodec._unsuback, MqttCodec._ping,
    MqttCodec._ping, MqttCodec._disconnect, MqttCodec._auth,
)

def _reason(ptype: int, code: int) -> int:
    if code not in REASON_CODES[ptype]:
        raise DecodeError(PROTOCOL_ERROR, f"reason code {code:#x} in {PACKET_NAMES[ptype]}")
    return code


def _check_response_topic(props: dict[str, Any]) -> None:
    topic = props.get("response_topic")
    problem = _bad_topic(topic) if topic is not None else None
    if problem:
        raise DecodeError(PROTOCOL_ERROR, "response topic: " + problem)


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
