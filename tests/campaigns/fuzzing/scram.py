"""Fuzz target: the SCRAM exchange (``core/scram.py``), both sides.

Inputs are the messages of a real SCRAM-SHA-256 or -512 login (client-first and
client-final for the server, server-first and server-final for the client), damaged
as bytes, or random bytes.  Contract checked: every step returns bytes or raises
:class:`ScramError`, nothing else; and a server never accepts a client-final message
that means anything but the good one.
"""

from __future__ import annotations

import base64
import random

from jetport.core.scram import (
    Credentials,
    ScramClient,
    ScramError,
    ScramServer,
    credentials,
)

from .engine import Case, Target, Violation, literal
from .mutate import mutate_bytes

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
TOKENS = (b",", b"=", b"n,,", b"y,,", b"p=tls-unique,", b"a=", b"n=", b"r=", b"c=", b"p=",
          b"s=", b"i=", b"v=", b"e=", b"m=", b"=2C", b"=3D", b"biws", b"\x00", b"\xff",
          b"\xc3\x28", b"\xe2\x82", b"\xb2", b"99999999999", b"0", b"-1")
#: One fixed password and salt (key derivation is the slow part: its result is reused).
_CREDS: dict[str, Credentials] = {}


def creds(mechanism: str) -> Credentials:
    if mechanism not in _CREDS:
        _CREDS[mechanism] = credentials(mechanism, "pencil", b"fuzz-salt-16byte", 16)
    return _CREDS[mechanism]


def server(mechanism: str) -> ScramServer:
    return ScramServer(mechanism, lambda user: creds(mechanism), nonce="srv")


def exchange(mechanism: str) -> tuple[bytes, bytes, bytes, bytes]:
    """The four messages of a good login with fixed nonces."""
    client = ScramClient(mechanism, "user", "pencil", nonce="cli")
    s = server(mechanism)
    first = client.first()
    server_first = s.first(first)
    final = client.final(server_first)
    return first, server_first, final, s.final(final)


def generate(rng: random.Random) -> Case:
    mechanism = rng.choice(MECHANISMS)
    messages = exchange(mechanism)
    step = rng.choice(("first", "final", "final", "client_final", "check"))
    index = {"first": 0, "final": 2, "client_final": 1, "check": 3}[step]
    data = messages[index]
    if rng.random() < 0.1:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
    else:
        data = mutate_bytes(rng, data, TOKENS)
    return Case(data, params={"mechanism": mechanism, "step": step})


def same_meaning(data: bytes, good: bytes) -> bool:
    """The good client-final message, or one whose proof is another base64 spelling of
    the same bytes (unused low bits set: decoders ignore them)."""
    head, _, proof = data.rpartition(b",p=")
    good_head, _, good_proof = good.rpartition(b",p=")
    try:
        return head == good_head and base64.b64decode(proof) == base64.b64decode(good_proof)
    except ValueError:
        return False


def call(mechanism: str, step: str, data: bytes) -> bytes | None:
    """One SCRAM step fed ``data``, the earlier steps done with good messages."""
    first, server_first, final, _ = exchange(mechanism)
    if step == "first":
        return server(mechanism).first(data)
    if step == "final":
        s = server(mechanism)
        s.first(first)
        out = s.final(data)
        if not same_meaning(data, final):
            raise Violation("a damaged client-final message verified")
        return out
    client = ScramClient(mechanism, "user", "pencil", nonce="cli")
    client.first()
    if step == "client_final":
        return client.final(data)
    client.final(server_first)
    client.check(data)
    return None


def run(case: Case) -> list[str]:
    assert isinstance(case.data, bytes)
    try:
        out = call(case.params["mechanism"], case.params["step"], case.data)
    except ScramError as exc:
        return [str(exc).split("'")[0][:60]]
    if out is not None and not isinstance(out, bytes):
        raise Violation(f"a step returned {out!r}")
    return []


def reproducer(case: Case) -> str:
    return ("from campaigns.fuzzing.scram import call  # tests/ on sys.path\n"
            f"print(call({case.params['mechanism']!r}, {case.params['step']!r}, "
            f"{literal(case.data)}))")


TARGET = Target("scram", generate, run, reproducer)
