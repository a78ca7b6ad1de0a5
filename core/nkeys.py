"""NATS nkeys: the hub checks clients' signatures, and signs a nonce with a user seed
when it dials a nats-server as a leaf node.

A public nkey is base32 (RFC 4648, no padding) of one prefix byte, the 32-byte Ed25519
key and a CRC16/XMODEM checksum stored little-endian, so it is always 56 characters.
A seed (58 characters, "S" then the kind's letter) packs the seed prefix and the kind into
its first two bytes ahead of the 32-byte Ed25519 seed; :func:`decode_seed` reads one.
"""

from __future__ import annotations

import base64
import binascii
import re

# cryptography's Ed25519 is imported by the two functions that use it: loaded at start it
# is 6.5 MB of RSS in every hub, and only hubs with nkey or JWT users, or a leaf link
# signing with a seed, ever sign or verify.

#: Prefix byte per key kind, keyed by the first character the kind encodes to.
PREFIXES: dict[str, int] = {
    "O": 14 << 3,  # operator
    "A": 0,  # account
    "U": 20 << 3,  # user
    "N": 13 << 3,  # server
    "C": 2 << 3,  # cluster
}
SEED_PREFIX = 18 << 3
PUBLIC_KEY_LEN = 56

RAW_URL = re.compile(r"[A-Za-z0-9_-]*")
_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def crc16(data: bytes) -> int:
    """CRC16/XMODEM (poly 0x1021, init 0), the checksum nkeys append."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32decode(text: str) -> bytes:
    if "=" in text:
        raise ValueError("nkey: invalid encoding")
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8), casefold=False)
    except (binascii.Error, ValueError):
        raise ValueError("nkey: invalid encoding") from None


def _checked(text: str) -> bytes:
    """Decode and strip the checksum; raises ValueError when it does not match."""
    raw = _b32decode(text)
    if len(raw) < 4:
        raise ValueError("nkey: invalid encoding")
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if crc16(body) != crc:
        raise ValueError("nkey: invalid checksum")
    return body


def decode_public_key(key: str, kinds: str = "OAUNC") -> bytes:
    """The raw 32-byte Ed25519 key of a public nkey whose kind is one of ``kinds``."""
    if not isinstance(key, str) or len(key) != PUBLIC_KEY_LEN:
        raise ValueError("nkey: invalid public key")
    body = _checked(key)
    if len(body) != 33:
        raise ValueError("nkey: invalid public key")
    allowed = {PREFIXES[k] for k in kinds if k in PREFIXES}
    if body[0] not in allowed:
        raise ValueError("nkey: invalid prefix byte")
    return body[1:]


def decode_seed(seed: str, kind: str) -> bytes:
    """The raw 32-byte Ed25519 seed of a seed of ``kind`` ('O', 'A', 'U', 'N', 'C')."""
    if not isinstance(seed, str) or len(seed) != PUBLIC_KEY_LEN + 2:
        raise ValueError("nkey: invalid seed")
    body = _checked(seed)
    if len(body) != 34 or body[0] & 0xF8 != SEED_PREFIX:
        raise ValueError("nkey: invalid seed")
    if ((body[0] & 0x07) << 5 | body[1] >> 3) != PREFIXES.get(kind):
        raise ValueError("nkey: invalid prefix byte")
    return body[2:]


def is_public_key(key: str, kind: str) -> bool:
    """True when ``key`` is a well-formed public nkey of ``kind`` ('O', 'A', 'U', 'N', 'C')."""
    try:
        decode_public_key(key, kind)
    except ValueError:
        return False
    return True


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """Check an Ed25519 ``signature`` over ``data`` made by the holder of ``public_key``."""
    try:
        raw = decode_public_key(public_key)
    except ValueError:
        return False
    if len(signature) != 64:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def decode_signature(sig: str) -> bytes | None:
    """Bytes of a CONNECT ``sig``, or None when missing or undecodable.

    nats-server tries base64url without padding first and falls back to standard base64
    with padding; newer clients send the former, older ones the latter. Like Go's decoder,
    CR and LF inside the text are ignored.
    """
    if not sig:
        return None
    text = sig.replace("\r", "").replace("\n", "")
    if RAW_URL.fullmatch(text) and len(text) % 4 != 1:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _STD.fullmatch(text) and len(text) % 4 == 0:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            return None
    return None


def encode_public_key(raw: bytes, kind: str) -> str:
    """The public nkey of ``kind`` for a raw 32-byte Ed25519 key."""
    body = bytes([PREFIXES[kind]]) + raw
    body += crc16(body).to_bytes(2, "little")
    return base64.b32encode(body).decode().rstrip("=")


def sign(seed: str, data: bytes, kind: str = "U") -> tuple[str, str]:
    """Sign ``data`` with a seed of ``kind``: (its public key, the signature in raw-URL
    base64, as a CONNECT's ``sig``).  Raises ValueError for a bad seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(decode_seed(seed, kind))
    public = key.public_key().public_bytes_raw()
    signature = base64.urlsafe_b64encode(key.sign(data)).decode().rstrip("=")
    return encode_public_key(public, kind), signature


_CREDS_BLOCK = re.compile(
    r"-{3,}[^\n]*BEGIN[^\n]*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}[^\n]*END[^\n]*-{3,}")


def read_creds(text: str) -> tuple[str, str]:
    """A ``.creds`` file as nsc writes it → (user JWT, user seed)."""
    blocks = _CREDS_BLOCK.findall(text)
    if len(blocks) < 2:
        raise ValueError("credentials: expected a JWT and a seed block")
    return blocks[0], blocks[1]

