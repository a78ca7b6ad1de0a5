"""MQTT 5 properties: the table of identifiers and value kinds, which packet may carry
which, and reading and writing a property block.

Properties are the one part of MQTT 5 that is data-driven rather than laid out per
packet, so their table, their validation and both directions of their encoding live
together: a new property is one row here.  A block decodes to a dict keyed by the
snake_case property name (see :mod:`jetport.bridges.mqtt.packets`); reading checks what the
table alone decides (known, allowed in this packet, not repeated, value in range);
rules that need the connection's state (topic aliases) are the codec's.
"""

from __future__ import annotations

from typing import Any

from jetport.bridges.mqtt.packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PACKET_NAMES,
    PROTOCOL_ERROR,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
)
from jetport.bridges.mqtt.wire import (
    DecodeError,
    malformed,
    read_bin,
    read_str,
    read_u16,
    read_varint,
    write_bin,
    write_str,
    write_varint,
)

#: The property context of a CONNECT's will (packet type 0 is reserved).
WILL = 0

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
    WILL: frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}),
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


def _name(ctx: int) -> str:
    return "WILL" if ctx == WILL else PACKET_NAMES[ctx]


def read_props(buf: bytes, pos: int, end: int, ctx: int) -> tuple[dict[str, Any], int]:
    """The property block at ``pos`` for packet type ``ctx``; returns it and its end."""
    length, pos = read_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise malformed("properties longer than the packet")
    props: dict[str, Any] = {}
    if not length:
        return props, stop
    allowed = _ALLOWED[ctx]
    while pos < stop:
        pid, pos = read_varint(buf, pos, stop)
        spec = _PROPS.get(pid)
        if spec is None:
            raise malformed(f"unknown property 0x{pid:02x}")
        name, kind = spec
        if pid not in allowed:
            raise DecodeError(PROTOCOL_ERROR, f"property {name} not allowed in {_name(ctx)}")
        value: Any
        if kind == _BYTE:
            if pos >= stop:
                raise malformed(f"truncated {name}")
            value = buf[pos]
            pos += 1
        elif kind == _U16:
            value = read_u16(buf, pos, stop)
            pos += 2
        elif kind == _U32:
            if pos + 4 > stop:
                raise malformed(f"truncated {name}")
            value = int.from_bytes(buf[pos : pos + 4], "big")
            pos += 4
        elif kind == _VARINT:
            value, pos = read_varint(buf, pos, stop)
        elif kind == _STR:
            value, pos = read_str(buf, pos, stop)
        elif kind == _BIN:
            value, pos = read_bin(buf, pos, stop)
        else:
            key, pos = read_str(buf, pos, stop)
            val, pos = read_str(buf, pos, stop)
            props.setdefault(name, []).append((key, val))
            continue
        if pid in _BOOLEAN and value > 1:
            raise DecodeError(PROTOCOL_ERROR, f"{name} must be 0 or 1")
        if pid in _NON_ZERO and not value:
            raise DecodeError(PROTOCOL_ERROR, f"{name} must not be 0")
        if pid == 0x0B and ctx == PUBLISH:
            props.setdefault(name, []).append(value)
        elif name in props:
            raise DecodeError(PROTOCOL_ERROR, f"property {name} repeated")
        else:
            props[name] = value
    return props, stop


def read_last_props(buf: bytes, pos: int, end: int, ctx: int) -> dict[str, Any]:
    """A property block that must end the packet (CONNACK, the acks, DISCONNECT, AUTH)."""
    props, p = read_props(buf, pos, end, ctx)
    if p != end:
        raise malformed(f"bytes after the {_name(ctx)} properties")
    return props


def write_props(props: dict[str, Any]) -> bytes:
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
                out += write_str(key)
                out += write_str(val)
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
                out += write_varint(one)
            elif kind == _STR:
                out += write_str(one)
            else:
                out += write_bin(one)
    return write_varint(len(out)) + bytes(out)
