"""Fuzz target: the JWT decoder and the operator-mode checks built on it (``core/jwt.py``).

Most inputs are properly signed: claims of an operator, account or user in the nsc
layout are damaged at the object level (a field deleted, retyped, given an absurd value)
and signed again with the right key, so that decoding gets past the signature to the
claim builders, the user checks, scope templates and connect-time windows.  The rest
damage the token text, the header, or an nsc-decorated creds file, or are random text.
Contract checked: ``parse_decorated_jwt`` returns a string; ``decode*``, ``Trust`` and
``Trust.verify_user`` return or raise :class:`JwtError`, nothing else.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jetport.core import jwt as core_jwt
from jetport.core.jwt import JwtError, decode, parse_decorated_jwt
from jetport.core.jwt_trust import Trust
from jetport.core.nkeys import PREFIXES, crc16

from .engine import Case, Target, Violation, literal
from .mutate import mutate_text, renumber

#: Every check runs at this instant, so a run does not depend on the clock.
NOW = 1_700_000_000
NONCE = b"fuzz-nonce"
TOKENS = (".", "=", "-", "_", "+", "/", "eyJ", "e30", "----", "\n", "\r\n", "-----BEGIN",
          "JWT-----", "------END", "\ud800", "\x00")
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 1.5, 2**31, 2**63, 2**64, -(2**63) - 1, float("nan"),
    float("inf"), "", " ", "x", "\ud800", "\x00", "*", ">", "a.b.>", "{{name()}}",
    "{{tag(dept)}}", "{{account-tag(x)}}", "{{bogus()}}", "{{subject()}}.>", "00:00:00",
    "25:61:61", "09:00:00", "America", "Europe/Paris", "../etc/passwd", "UTC/", "10.0.0.0/8",
    "::1/129", "1.2.3.4", "STANDARD", "websocket", "user_scope", [], {}, ["a"], [1],
    {"a": 1}, {"kind": "user_scope"}, [{"start": "23:00:00", "end": "01:00:00"}],
)


@dataclass(frozen=True)
class Signer:
    """A fixed nkey pair (deterministic from ``seed``) of one kind: 'O', 'A' or 'U'."""

    kind: str
    seed: int

    @property
    def key(self) -> Ed25519PrivateKey:
        return _private(self.seed)

    @property
    def public(self) -> str:
        return _public(self.kind, self.seed)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@cache
def _private(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


@cache
def _public(kind: str, seed: int) -> str:
    return public_nkey(kind, _private(seed).public_key().public_bytes_raw())


def public_nkey(kind: str, raw: bytes) -> str:
    """A public nkey: base32 of prefix byte, key and CRC16 (little-endian), unpadded."""
    body = bytes([PREFIXES[kind]]) + raw
    return base64.b32encode(body + crc16(body).to_bytes(2, "little")).decode().rstrip("=")


OPERATOR, OPERATOR_SK = Signer("O", 1), Signer("O", 2)
ACCOUNT, ACCOUNT_SK, ACCOUNT_SCOPED = Signer("A", 3), Signer("A", 4), Signer("A", 5)
USER, STRANGER = Signer("U", 6), Signer("A", 7)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (RecursionError, ValueError):
        return b"[" * 3000 + b"]" * 3000


def sign(claims: Any, signer: Signer, header: Any = None, *, v1: bool = False) -> str:
    """A JWT of ``claims`` signed by ``signer`` (v1 tokens sign the payload alone)."""
    head = b64(_json(header if header is not None else {"typ": "JWT", "alg": "ed25519-nkey"}))
    body = b64(_json(claims))
    signed = body if v1 else f"{head}.{body}"
    return f"{head}.{body}.{b64(signer.sign(signed.encode()))}"


def operator_claims() -> dict[str, Any]:
    return {"jti": "OPJTI", "iat": NOW - 100, "iss": OPERATOR.public, "name": "op",
            "sub": OPERATOR.public,
            "nats": {"signing_keys": [OPERATOR_SK.public], "system_account": STRANGER.public,
                     "type": "operator", "version": 2}}


def account_claims() -> dict[str, Any]:
    scope = {"kind": "user_scope", "key": ACCOUNT_SCOPED.public, "role": "team",
             "template": {"pub": {"allow": ["{{name()}}.>", "{{tag(dept)}}.x", "pub.>"]},
                          "sub": {"allow": ["{{account-name()}}.>"], "deny": ["secret.>"]},
                          "subs": -1, "data": -1, "payload": -1}}
    return {"jti": "ACCJTI", "iat": NOW - 100, "iss": OPERATOR.public, "name": "A",
            "sub": ACCOUNT.public,
            "nats": {"limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1,
                                "exports": -1, "wildcards": True, "conn": -1, "leaf": -1,
                                "mem_storage": -1, "disk_storage": -1},
                     "signing_keys": [ACCOUNT_SK.public, scope],
                     "default_permissions": {"pub": {"allow": [">"]}, "sub": {}},
                     "revocations": {STRANGER.public: NOW}, "tags": ["acc:x"],
                     "imports": [{"name": "i", "subject": "a.>", "account": STRANGER.public,
                                  "type": "stream"}],
                     "exports": [{"name": "e", "subject": "e.>", "type": "service"}],
                     "type": "account", "version": 2}}


def user_claims(rng: random.Random) -> dict[str, Any]:
    nats: dict[str, Any] = {"type": "user", "version": 2, "tags": ["dept:eng"]}
    if rng.random() < 0.7:
        nats.update({"pub": {"allow": ["a.>", "b"], "deny": ["a.secret"]},
                     "sub": {"allow": [">"]}, "resp": {"max": 1, "ttl": 1_000_000_000},
                     "subs": -1, "data": -1, "payload": -1, "src": ["10.0.0.0/8", "::1"],
                     "times": [{"start": "00:00:00", "end": "23:59:59"}],
                     "times_location": rng.choice(("", "UTC", "Europe/Paris")),
                     "allowed_connection_types": ["STANDARD", "WEBSOCKET"],
                     "bearer_token": rng.random() < 0.2})
    return {"jti": "UJTI", "iat": NOW - 10, "iss": ACCOUNT.public, "name": "alice",
            "sub": USER.public, "nats": nats}


@cache
def trust() -> Trust:
    """The operator and the one account every user input is checked against."""
    return Trust([sign(operator_claims(), OPERATOR)],
                 {ACCOUNT.public: sign(account_claims(), OPERATOR)})


# -- object-level damage ------------------------------------------------------------------


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value down to depth 20: where damage can hit."""
    out: list[tuple[Any, Any]] = []
    todo = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > 20:
            continue
        items = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            out.append((node, k))
            todo.append((v, depth + 1))
    return out


def _odd(rng: random.Random) -> Any:
    if rng.random() < 0.03:
        depth = rng.choice((10, 500, 1200))
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value
    return rng.choice(ODD_VALUES)


def damage(rng: random.Random, obj: Any, rounds: int) -> Any:
    """``obj`` with ``rounds`` fields replaced, deleted, added, wrapped or stringified."""
    for _ in range(rounds):
        slots = _slots(obj)
        if not slots:
            return _odd(rng)
        container, key = rng.choice(slots)
        op = rng.randrange(5)
        if op == 0 or (op == 1 and isinstance(container, list)):
            container[key] = _odd(rng)
        elif op == 1:
            del container[key]
        elif op == 2 and isinstance(container, dict):
            container[rng.choice(("nats", "type", "version", "exp", "nbf", "iss", "sub", "x",
                                  "issuer_account", "times", "src", "resp", "template",
                                  "signing_keys", "tiered_limits"))] = _odd(rng)
        elif op == 3:
            container[key] = [container[key]]
        else:
            container[key] = _json(container[key]).decode("utf-8", "surrogatepass")[:200]
    return obj


# -- inputs -------------------------------------------------------------------------------


def _signed_user(rng: random.Random) -> Case:
    signer = rng.choice((ACCOUNT, ACCOUNT, ACCOUNT_SK, ACCOUNT_SCOPED, ACCOUNT_SCOPED, STRANGER))
    claims = user_claims(rng)
    claims["iss"] = signer.public
    if signer is not ACCOUNT:
        claims["nats"]["issuer_account"] = ACCOUNT.public
    if signer is ACCOUNT_SCOPED and rng.random() < 0.8:  # scoped users carry no limits
        claims["nats"] = {k: claims["nats"][k] for k in ("type", "version", "tags",
                                                          "issuer_account")}
    claims = damage(rng, claims, rng.choice((0, 1, 1, 2, 3)))
    token = sign(claims, signer, v1=rng.random() < 0.05)
    sig = b64(USER.sign(NONCE)) if rng.random() < 0.85 else rng.choice(
        ("", "x", "=" * 4, base64.b64encode(USER.sign(NONCE)).decode(), "\ud800", "a" * 86))
    return Case(token, params={"op": "verify_user", "sig": sig})


def _signed_account(rng: random.Random) -> Case:
    signer = rng.choice((OPERATOR, OPERATOR, OPERATOR_SK, STRANGER))
    claims = account_claims()
    claims["iss"] = signer.public
    token = sign(damage(rng, claims, rng.choice((1, 1, 2, 3))), signer)
    return Case(token, params={"op": "trust_account"})


def _signed_operator(rng: random.Random) -> Case:
    signer = rng.choice((OPERATOR, OPERATOR, OPERATOR_SK, ACCOUNT))
    claims = operator_claims()
    claims["iss"] = signer.public
    return Case(sign(damage(rng, claims, rng.choice((1, 1, 2, 3))), signer),
                params={"op": "trust_operator"})


def _header(rng: random.Random) -> Case:
    header = damage(rng, {"typ": "JWT", "alg": "ed25519-nkey"}, rng.choice((1, 2)))
    if rng.random() < 0.3:
        header = rng.choice(({"typ": "jwt", "alg": "ED25519"}, {"typ": "JWT", "alg": "HS256"},
                             {"typ": "JWT", "alg": "none"}, [], "JWT", None))
    return Case(sign(user_claims(rng), ACCOUNT, header), params={"op": "decode"})


def _token_text(rng: random.Random) -> Case:
    token = sign(user_claims(rng), ACCOUNT)
    head, body, sig = token.split(".")
    roll = rng.random()
    if roll < 0.2:
        raw = _json(damage(rng, user_claims(rng), 1)).decode("utf-8", "surrogatepass")
        body = b64(renumber(rng, raw).encode("utf-8", "surrogatepass"))
        token = f"{head}.{body}.{sig}"
    elif roll < 0.3:
        body = b64(b'{"nats":' + b"[" * rng.choice((100, 1000, 3000)) + b"}")
        token = f"{head}.{body}.{sig}"
    else:
        token = mutate_text(rng, token, TOKENS)
    return Case(token, params={"op": rng.choice(("decode", "decode_user", "verify_user"))})


def creds_text(token: str) -> str:
    return ("-----BEGIN NATS USER JWT-----\n" + token + "\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "-----BEGIN USER NKEY SEED-----\nSUAFAKESEED\n------END USER NKEY SEED------\n")


_DASH_RUN = re.compile(r"-{100,}")


def _slow_creds(text: str) -> bool:
    """Creds texts that take seconds to read (see the campaign report): hundreds of
    dashes, or thousands of characters (long runs of whitespace)."""
    return len(text) > 2000 or bool(_DASH_RUN.search(text))


def _creds(rng: random.Random) -> Case:
    """A creds file, damaged; nine in ten slow ones are drawn again (each costs a second
    and they all hit the same slow path)."""
    original = creds_text(sign(user_claims(rng), ACCOUNT))
    text = original
    for _ in range(3):
        if rng.random() < 0.8:
            text = mutate_text(rng, original, TOKENS)
        if not _slow_creds(text) or rng.random() < 0.1:
            break
    return Case(text, params={"op": "creds"})


def _random_text(rng: random.Random) -> Case:
    alphabet = "eyJABCabc0123456789-_.=+/ \n"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
    return Case(text, params={"op": rng.choice(("decode", "creds"))})


_MAKERS: tuple[tuple[float, Callable[[random.Random], Case]], ...] = (
    (0.30, _signed_user), (0.10, _signed_account), (0.05, _signed_operator), (0.10, _header),
    (0.20, _token_text), (0.15, _creds), (0.10, _random_text))


def generate(rng: random.Random) -> Case:
    roll = rng.random()
    for weight, make in _MAKERS:
        if roll < weight:
            return make(rng)
        roll -= weight
    return _random_text(rng)


# -- running ------------------------------------------------------------------------------


def call(op: str, data: str, sig: str = "") -> Any:
    """Feed ``data`` to the function the case is for; what a reproducer calls."""
    if op == "creds":
        token = parse_decorated_jwt(data)
        if not isinstance(token, str):
            raise Violation(f"parse_decorated_jwt returned {token!r}")
        return decode(token)
    if op == "decode":
        return decode(data)
    if op == "decode_user":
        return core_jwt.decode_user(data)
    if op == "verify_user":
        return trust().verify_user(data, NONCE, sig, NOW, client_ip="10.1.2.3")
    if op == "trust_account":
        t = Trust([sign(operator_claims(), OPERATOR)], {ACCOUNT.public: data})
        return t.verify_user(sign(user_claims(random.Random(0)), ACCOUNT), NONCE,
                             b64(USER.sign(NONCE)), NOW)
    if op == "trust_operator":
        return Trust([data], {ACCOUNT.public: sign(account_claims(), OPERATOR)})
    raise AssertionError(op)


_KEY = re.compile(r"\b[OAUNC][A-Z2-7]{55}\b")


def _kind(message: str) -> str:
    """A JwtError's message without keys, quoted values and numbers."""
    text = _KEY.sub("KEY", message)
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "Q", text)
    text = re.sub(r"\d+", "N", text)
    text = re.sub(r"(bad src ip|cannot read operator JWT|could not parse iana time zone by "
                  r"name|unexpected) .*", r"\1 X", text)
    return text[:80].encode("ascii", "replace").decode()


def run(case: Case) -> list[str]:
    """Call the case's function; a JwtError is a rejection, anything else escapes."""
    assert isinstance(case.data, str)
    try:
        call(case.params["op"], case.data, case.params.get("sig", ""))
    except JwtError as exc:
        return [_kind(str(exc))]
    return []


def reproducer(case: Case) -> str:
    """The case as a snippet: plain Jetport calls, or ``call`` for the checks that need
    this module's fixed operator, account and user keys."""
    op, data = case.params["op"], literal(case.data)
    if op in ("decode", "decode_user"):
        return f"from jetport.core.jwt import {op}\nprint({op}({data}))"
    if op == "creds":
        return ("from jetport.core.jwt import decode, parse_decorated_jwt\n"
                f"print(decode(parse_decorated_jwt({data})))")
    sig = literal(case.params.get("sig", ""))
    return ("from campaigns.fuzzing.jwt import call  # tests/ on sys.path: fixed test keys\n"
            f"print(call({op!r}, {data}, {sig}))")


TARGET = Target("jwt", generate, run, reproducer)
