"""core.nkeys against keys and signatures made by the nkeys package."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from natsjwt import Keys

from jetport.core import nkeys

NONCE = b"Xq1b2c3d4e5f6g7"


@pytest.mark.parametrize("kind", ["O", "A", "U"])
def test_keys_made_by_nkeys_decode_and_verify(kind: str) -> None:
    keys = Keys(kind)
    assert keys.public_key[0] == kind
    raw = nkeys.decode_public_key(keys.public_key)
    assert len(raw) == 32
    assert nkeys.is_public_key(keys.public_key, kind)
    assert nkeys.verify(keys.public_key, NONCE, keys.sign(NONCE))


def test_kind_filter() -> None:
    user = Keys("U").public_key
    assert not nkeys.is_public_key(user, "A")
    assert nkeys.is_public_key(user, "AU")
    with pytest.raises(ValueError, match="prefix"):
        nkeys.decode_public_key(user, "OA")


def test_tampered_data_or_signature_fails() -> None:
    keys = Keys("U")
    sig = keys.sign(NONCE)
    assert not nkeys.verify(keys.public_key, NONCE + b"x", sig)
    assert not nkeys.verify(keys.public_key, NONCE, bytes([sig[0] ^ 1]) + sig[1:])
    assert not nkeys.verify(keys.public_key, NONCE, sig[:-1])
    assert not nkeys.verify(Keys("U").public_key, NONCE, sig)
    assert not nkeys.verify("not-a-key", NONCE, sig)


def test_both_signature_encodings() -> None:
    keys = Keys("U")
    sig = keys.sign(NONCE)
    std = base64.b64encode(sig).decode()
    raw_url = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    assert std.endswith("=")
    for text in (std, raw_url):
        decoded = nkeys.decode_signature(text)
        assert decoded == sig
        assert nkeys.verify(keys.public_key, NONCE, decoded)


@pytest.mark.parametrize("text", ["", "!!!!", "abc=def=", "a", "abcd==="])
def test_undecodable_signatures(text: str) -> None:
    assert nkeys.decode_signature(text) is None


def test_bad_checksum_rejected() -> None:
    key = Keys("A").public_key
    last = "A" if key[-1] != "A" else "B"
    with pytest.raises(ValueError):
        nkeys.decode_public_key(key[:-1] + last)
    flipped = key[:10] + ("B" if key[10] != "B" else "C") + key[11:]
    with pytest.raises(ValueError, match="checksum"):
        nkeys.decode_public_key(flipped)


def test_bad_prefix_and_shape_rejected() -> None:
    seed = Keys("U").seed
    with pytest.raises(ValueError):
        nkeys.decode_public_key(seed)  # a seed is no public key
    key = Keys("U").public_key
    for bad in (key[:-1], key + "A", key.lower(), key[:-2] + "==", ""):
        with pytest.raises(ValueError):
            nkeys.decode_public_key(bad)


@pytest.mark.parametrize("kind", ["O", "A", "U"])
def test_seeds_made_by_nkeys_decode_to_their_raw_seed(kind: str) -> None:
    keys = Keys(kind)
    assert keys.seed[:2] == "S" + kind
    raw = nkeys.decode_seed(keys.seed, kind)
    assert Ed25519PrivateKey.from_private_bytes(raw).sign(NONCE) == keys.sign(NONCE)


def test_seed_of_another_kind_or_shape_rejected() -> None:
    seed = Keys("U").seed
    with pytest.raises(ValueError, match="prefix"):
        nkeys.decode_seed(Keys("A").seed, "U")
    with pytest.raises(ValueError, match="checksum"):
        nkeys.decode_seed(seed[:10] + ("B" if seed[10] != "B" else "C") + seed[11:], "U")
    for bad in (Keys("U").public_key, seed[:-1], seed + "A", seed.lower(), ""):
        with pytest.raises(ValueError):
            nkeys.decode_seed(bad, "U")


def test_crc16_xmodem_check_value() -> None:
    assert nkeys.crc16(b"123456789") == 0x31C3


def test_a_user_seed_signs_what_its_public_key_verifies() -> None:
    user = Keys("U")
    public, sig = nkeys.sign(user.seed, b"nonce-123")
    assert public == user.public_key
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    assert nkeys.verify(public, b"nonce-123", raw)
    assert not nkeys.verify(public, b"other", raw)


def test_a_creds_file_gives_its_jwt_and_seed() -> None:
    user = Keys("U")
    text = ("-----BEGIN NATS USER JWT-----\neyJhbGciOi.x.y\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "-----BEGIN USER NKEY SEED-----\n" + user.seed + "\n------END USER NKEY SEED------\n")
    assert nkeys.read_creds(text) == ("eyJhbGciOi.x.y", user.seed)
    with pytest.raises(ValueError):
        nkeys.read_creds("no blocks here")
