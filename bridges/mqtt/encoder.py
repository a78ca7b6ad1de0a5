"""Packets to bytes for a protocol level: MQTT 3.1.1 (4) or 5.

Encoding needs no connection state beyond the level, so it is a plain function of the
packet, the same for both roles and kept apart from the codec's state machine.  One
packet class serves both levels; for 3.1.1 the encoder drops what that level lacks
(reason codes, properties) and maps MQTT 5 reason codes to 3.1.1 return codes.  A
field that cannot be encoded is the caller's mistake: :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jetport.bridges.mqtt.packets import (
    SUBACK_FAILURE,
    V3_CONNACK_CODES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from jetport.bridges.mqtt.properties import write_props
from jetport.bridges.mqtt.wire import (
    MAX_REMAINING_LENGTH,
    SMALL,
    write_bin,
    write_str,
    write_varint,
)


def _frame(b0: int, *parts: bytes) -> bytes:
    size = sum(map(len, parts))
    if size > MAX_REMAINING_LENGTH:
        raise ValueError("packet over the MQTT size limit")
    return b"".join((SMALL[b0] if b0 < 128 else bytes((b0,)), write_varint(size), *parts))


def _connect(c: Connect, level: int) -> bytes:
    v5 = c.protocol_level == 5
    flags = 0x02 if c.clean_start else 0
    w = c.will
    if w is not None:
        flags |= 0x04 | (w.qos << 3) | (0x20 if w.retain else 0)
    if c.username is not None:
        flags |= 0x80
    if c.password is not None:
        flags |= 0x40
    parts = [write_str(c.protocol_name), bytes((c.protocol_level, flags)),
             c.keepalive.to_bytes(2, "big")]
    if v5:
        parts.append(write_props(c.properties))
    parts.append(write_str(c.client_id))
    if w is not None:
        if v5:
            parts.append(write_props(w.properties))
        parts += (write_str(w.topic), write_bin(w.payload))
    if c.username is not None:
        parts.append(write_str(c.username))
    if c.password is not None:
        parts.append(write_bin(c.password))
    return _frame(0x10, *parts)


def _connack(a: ConnAck, level: int) -> bytes:
    if level == 5:
        return _frame(0x20, bytes((int(a.session_present), a.reason_code)),
                      write_props(a.properties))
    code = a.reason_code
    if code >= 0x80:
        code = V3_CONNACK_CODES.get(code, 3)
    return bytes((0x20, 2, int(a.session_present), code))


def _publish(p: Publish, level: int) -> bytes:
    props = write_props(p.properties) if level == 5 else b""
    return publish_head(p.topic, len(p.payload), p.qos, p.retain, p.dup, p.packet_id,
                        props) + p.payload


def publish_head(topic: str, size: int, qos: int, retain: bool, dup: bool,
                 packet_id: int | None, props: bytes) -> bytes:
    """A PUBLISH up to its payload of ``size`` bytes; ``props`` the encoded MQTT 5
    properties (b"" for 3.1.1).  Kept apart from the payload so a connection can queue
    both without copying the payload into a frame of its own."""
    b0 = 0x30 | (qos << 1) | (8 if dup else 0) | (1 if retain else 0)
    name = write_str(topic)
    if qos:
        if not packet_id:
            raise ValueError("QoS 1/2 PUBLISH needs a packet identifier")
        name += packet_id.to_bytes(2, "big")
    length = len(name) + len(props) + size
    if length > MAX_REMAINING_LENGTH:
        raise ValueError("packet over the MQTT size limit")
    return SMALL[b0] + write_varint(length) + name + props


def _ack(b0: int) -> Callable[[Any, int], bytes]:
    """The encoder of PUBACK, PUBREC, PUBREL or PUBCOMP (first byte ``b0``)."""

    def encode_ack(a: PubAck, level: int) -> bytes:
        pid = a.packet_id
        if level != 5 or (not a.reason_code and not a.properties):
            return plain_ack(b0, pid)
        if not a.properties:
            return bytes((b0, 3, pid >> 8, pid & 0xFF, a.reason_code))
        return _frame(b0, bytes((pid >> 8, pid & 0xFF, a.reason_code)),
                      write_props(a.properties))
    return encode_ack


def plain_ack(b0: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (first byte ``b0``) with no reason code: the
    same bytes at both levels."""
    return bytes((b0, 2, packet_id >> 8, packet_id & 0xFF))


def _subscribe(s: Subscribe, level: int) -> bytes:
    parts = [s.packet_id.to_bytes(2, "big")]
    v5 = level == 5
    if v5:
        parts.append(write_props(s.properties))
    for r in s.subscriptions:
        opts = r.qos
        if v5:
            opts |= (4 if r.no_local else 0) | (8 if r.retain_as_published else 0)
            opts |= r.retain_handling << 4
        parts += (write_str(r.topic_filter), SMALL[opts])
    return _frame(0x82, *parts)


def _suback(s: SubAck, level: int) -> bytes:
    pid = s.packet_id.to_bytes(2, "big")
    if level == 5:
        return _frame(0x90, pid, write_props(s.properties), bytes(s.reason_codes))
    codes = bytes(c if c < 3 else SUBACK_FAILURE for c in s.reason_codes)
    return _frame(0x90, pid, codes)


def _unsubscribe(u: Unsubscribe, level: int) -> bytes:
    parts = [u.packet_id.to_bytes(2, "big")]
    if level == 5:
        parts.append(write_props(u.properties))
    parts += [write_str(f) for f in u.topic_filters]
    return _frame(0xA2, *parts)


def _unsuback(u: UnsubAck, level: int) -> bytes:
    pid = u.packet_id.to_bytes(2, "big")
    if level == 5:
        return _frame(0xB0, pid, write_props(u.properties), bytes(u.reason_codes))
    return b"\xb0\x02" + pid


def _reason(b0: int) -> Callable[[Any, int], bytes]:
    """The encoder of DISCONNECT or AUTH: an optional reason code and properties."""

    def encode_reason(d: Disconnect | Auth, level: int) -> bytes:
        if level != 5:
            if b0 == 0xF0:
                raise ValueError("AUTH does not exist in MQTT 3.1.1")
            return bytes((b0, 0))
        if not d.properties:
            return bytes((b0, 0)) if not d.reason_code else bytes((b0, 1, d.reason_code))
        return _frame(b0, bytes((d.reason_code,)), write_props(d.properties))
    return encode_reason


_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    Connect: _connect,
    ConnAck: _connack,
    Publish: _publish,
    PubAck: _ack(0x40),
    PubRec: _ack(0x50),
    PubRel: _ack(0x62),
    PubComp: _ack(0x70),
    Subscribe: _subscribe,
    SubAck: _suback,
    Unsubscribe: _unsubscribe,
    UnsubAck: _unsuback,
    PingReq: lambda p, level: b"\xc0\x00",
    PingResp: lambda p, level: b"\xd0\x00",
    Disconnect: _reason(0xE0),
    Auth: _reason(0xF0),
}


def encode(packet: Packet, level: int) -> bytes:
    """The bytes of ``packet`` for protocol ``level`` (4 or 5); 3.1.1 drops what it lacks.

    A CONNECT is encoded for its own ``protocol_level``.  For 3.1.1, CONNACK reason codes
    from 0x80 become return codes (:data:`V3_CONNACK_CODES`) and SUBACK ones become 0x80.
    """
    return _ENCODERS[type(packet)](packet, level)
