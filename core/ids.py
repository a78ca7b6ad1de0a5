"""Random names in nats-server's alphabet (digits and ASCII letters)."""

from __future__ import annotations

import secrets

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int) -> str:
    """``n`` random base62 characters: 8 for an ephemeral consumer, 22 for a NUID."""
    return "".join(secrets.choice(BASE62) for _ in range(n))
