"""MQTT's data representation, read and written: two-byte integers, variable byte
integers, and length-prefixed binary data and UTF-8 strings.

Every field of every packet is one of these, so the decoder, the property reader and
the encoder share them, and a field read past its packet's end is reported the same
way wherever it is.  Readers take ``(buf, pos, end)`` and never look beyond ``end``; a
peer's bad field raises :class:`DecodeError` with the MQTT 5 reason code to report.
Writers raise :class:`ValueError`: a field that does not fit is this side's mistake.
"""

from __future__ import annotations

from jetport.bridges.mqtt.packets import MALFORMED_PACKET

#: Largest remaining length a 4-byte variable byte integer holds.
MAX_REMAINING_LENGTH = 268_435_455
#: The one-byte ``bytes`` of 0..127, built once: most lengths and flags are one of them.
SMALL = [bytes((i,)) for i in range(128)]


class DecodeError(Exception):
    """A peer's protocol error, raised inside a decoder."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def malformed(what: str) -> DecodeError:
    return DecodeError(MALFORMED_PACKET, what)


def read_u16(buf: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise malformed("truncated two-byte integer")
    return (buf[pos] << 8) | buf[pos + 1]


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable byte integer at ``pos``; returns it and the position after it."""
    value = shift = 0
    while pos < end:
        d = buf[pos]
        pos += 1
        value |= (d & 0x7F) << shift
        if d < 0x80:
            return value, pos
        shift += 7
        if shift == 28:
            raise malformed("variable byte integer longer than 4 bytes")
    raise malformed("truncated variable byte integer")


def read_bin(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    stop = pos + 2 + read_u16(buf, pos, end)
    if stop > end:
        raise malformed("truncated string")
    return buf[pos + 2 : stop], stop


def read_str(buf: bytes, pos: int, end: int, code: int = MALFORMED_PACKET,
             what: str = "string") -> tuple[str, int]:
    """A UTF-8 string; ``code`` reports one that is not well-formed MQTT UTF-8."""
    raw, stop = read_bin(buf, pos, end)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise DecodeError(code, f"{what} is not valid UTF-8") from None
    if "\x00" in text:
        raise DecodeError(code, f"{what} holds U+0000")
    return text, stop


def write_varint(n: int) -> bytes:
    if n < 128:
        return SMALL[n]
    if n > MAX_REMAINING_LENGTH:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while n:
        d = n & 0x7F
        n >>= 7
        out.append(d | 0x80 if n else d)
    return bytes(out)


def write_bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("string or binary field over 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def write_str(text: str) -> bytes:
    return write_bin(text.encode())
