"""Fuzz target: the NATS client-protocol codec (``ServerCodec.receive_data``).

Contract checked on every input: no exception; every event well formed; ``OP_CLOSE`` is
the last event and nothing follows it; no delivered message is larger than
``max_payload``; the codec never holds more than a control line (``max_control_line``
plus the slack it allows) or one pending payload; and cutting the same bytes into other
reads yields the same events.
"""

from __future__ import annotations

import json
import random
from typing import Any

from jetport.bridges.nats import codec as nats_codec
from jetport.bridges.nats.codec import (
    OP_CLOSE,
    OP_CONNECT,
    OP_ERROR,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_PUBS,
    OP_SUB,
    OP_UNSUB,
    ServerCodec,
)

from .engine import ANOMALY, EVERY_SPLIT, Case, Target, Violation, chunks_literal, split_loop
from .mutate import every_split, mutate_bytes, mutate_text, random_cuts, run_of, wants_every_split

#: The -ERR texts the codec may send (None: close without one).
KNOWN_TEXTS = {None} | {v for k, v in vars(nats_codec).items() if k.startswith("ERR_")}
TOKENS = (b"\r\n", b"\n", b"\r", b" ", b"\t", b"PUB ", b"HPUB ", b"SUB ", b"UNSUB ",
          b"CONNECT ", b"PING", b"PONG", b"+OK", b"-ERR ", b"INFO ", b"{}", b"NATS/1.0\r\n",
          b"0", b"-1", b"4096", b"1048577")
SUBJECTS = (b"foo", b"foo.bar", b"a.*.c", b"a.>", b">", b"*", b"_INBOX.abc.1", b"$JS.API.INFO",
            b"foo..bar", b".foo", b"\xff\xfe", b"f\x00o", b"x" * 300)
BOOL_KEYS = ("verbose", "pedantic", "echo", "headers", "no_responders", "tls_required")
STR_KEYS = ("user", "pass", "auth_token", "name", "lang", "version", "nkey", "sig", "jwt")
ODD_VALUES: tuple[Any, ...] = (None, 0, 1, -1, 1.5, "", "x", "\ud800", [], {}, {"a": [1]},
                               True, False, "true", 2**64)


def _sep(rng: random.Random) -> bytes:
    return rng.choice((b" ", b" ", b" ", b"\t", b"  ", b" \t "))


def _eol(rng: random.Random) -> bytes:
    return b"\r\n" if rng.random() < 0.9 else rng.choice((b"\n", b"\r", b"\r\r\n", b""))


def _op(rng: random.Random, word: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.8:
        return word
    if roll < 0.9:
        return word.lower()
    return bytes(c ^ 0x20 if rng.random() < 0.5 and chr(c).isalpha() else c for c in word)


def _subject(rng: random.Random) -> bytes:
    if rng.random() < 0.7:
        return rng.choice(SUBJECTS[:8])
    return rng.choice(SUBJECTS) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 12))


def _size(rng: random.Random, actual: int) -> bytes:
    """The size a control line announces: mostly right, sometimes off or absurd."""
    roll = rng.random()
    if roll < 0.8:
        return str(actual).encode()
    if roll < 0.9:
        return str(max(actual + rng.choice((-1, 1, 2)), 0)).encode()
    return rng.choice((b"1048577", b"99999999999999999999", b"-1", b"x", b"", b"1e3", b"0x10"))


def _payload(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.5:
        return rng.randbytes(rng.randint(0, 16))
    if roll < 0.8:
        return rng.choice((b"hello", b"a\r\nb", b"PUB foo 1\r\n", b"\r\n", b"\n", b""))
    return b"x" * rng.choice((255, 1024, 1025, 4097))


def pub(rng: random.Random) -> bytes:
    body = _payload(rng)
    args = [_subject(rng)]
    if rng.random() < 0.3:
        args.append(_subject(rng))
    args.append(_size(rng, len(body)))
    return _op(rng, b"PUB") + _sep(rng) + _sep(rng).join(args) + _eol(rng) + body + _eol(rng)


def hpub(rng: random.Random) -> bytes:
    headers = b"NATS/1.0\r\n" + b"".join(
        b"K%d: v\r\n" % i for i in range(rng.randint(0, 3))) + b"\r\n"
    if rng.random() < 0.2:
        headers = rng.choice((b"", b"NATS/1.0 503\r\n\r\n", b"garbage", headers[:-2]))
    body = _payload(rng)
    args = [_subject(rng)]
    if rng.random() < 0.3:
        args.append(_subject(rng))
    args += [_size(rng, len(headers)), _size(rng, len(headers) + len(body))]
    return (_op(rng, b"HPUB") + _sep(rng) + _sep(rng).join(args) + _eol(rng) + headers + body
            + _eol(rng))


def sub(rng: random.Random) -> bytes:
    args = [_subject(rng)]
    if rng.random() < 0.3:
        args.append(rng.choice((b"q", b"workers", b"")))
    args.append(rng.choice((b"1", b"2", b"sid", b"99999999999999999999")))
    if rng.random() < 0.1:
        args.append(b"extra")
    return _op(rng, b"SUB") + _sep(rng) + _sep(rng).join(args) + _eol(rng)


def unsub(rng: random.Random) -> bytes:
    args = [rng.choice((b"1", b"2", b"sid"))]
    if rng.random() < 0.5:
        args.append(rng.choice((b"0", b"5", b"-1", b"x", b"99999999999999999999")))
    if rng.random() < 0.1:
        args = [] if rng.random() < 0.5 else [*args, b"extra"]
    return _op(rng, b"UNSUB") + _sep(rng) + _sep(rng).join(args) + _eol(rng)


def _nested(rng: random.Random) -> Any:
    """A JSON value nested deeper than any parser's recursion budget, or a little."""
    depth = rng.choice((2, 10, 500, 1000, 1500))
    value: Any = 1
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def connect_options(rng: random.Random) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in rng.sample(BOOL_KEYS, rng.randint(0, len(BOOL_KEYS))):
        opts[key] = rng.random() < 0.5 if rng.random() < 0.85 else rng.choice(ODD_VALUES)
    for key in rng.sample(STR_KEYS, rng.randint(0, 3)):
        opts[key] = "x" if rng.random() < 0.7 else rng.choice(ODD_VALUES)
    if rng.random() < 0.5:
        opts["protocol"] = rng.choice((0, 1, 1, 2, -1, None, "1", 1.0, True))
    if rng.random() < 0.1:
        key = rng.choice(BOOL_KEYS + STR_KEYS)
        opts[key.upper() if rng.random() < 0.5 else key.title()] = rng.choice(ODD_VALUES)
    return opts


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except RecursionError:  # json.dumps itself gives up first: write it by hand
        return "[" * 2000 + "]" * 2000


def connect(rng: random.Random) -> bytes:
    roll = rng.random()
    value: Any = connect_options(rng)
    if roll < 0.05:
        value = _nested(rng)
    elif roll < 0.1:
        value["x"] = _nested(rng)
    elif roll < 0.15:
        value = rng.choice(ODD_VALUES)
    text = _dump(value)
    if rng.random() < 0.1:
        text = mutate_text(rng, text, ('"', ":", ",", "{", "}", "null", "\\u0000"))
    return _op(rng, b"CONNECT") + _sep(rng) + text.encode("utf-8", "surrogatepass") + _eol(rng)


def control(rng: random.Random) -> bytes:
    word = rng.choice((b"PING", b"PONG", b"+OK", b"-ERR 'x'", b"INFO {}", b"PINGX", b"PUBX",
                       b"FOO", b"", b"CONNECT", b"SUB", b"UNSUB"))
    return _op(rng, word) + _eol(rng)


_OPS = (pub, pub, pub, hpub, sub, unsub, connect, control)


def generate(rng: random.Random) -> Case:
    """A few ops, often after a CONNECT with headers; damaged half the time."""
    parts = []
    if rng.random() < 0.5:
        parts.append(b'CONNECT {"verbose":false,"headers":true}\r\n')
    parts += [rng.choice(_OPS)(rng) for _ in range(rng.randint(1, 6))]
    data = b"".join(parts)
    roll = rng.random()
    if roll < 0.45:
        data = mutate_bytes(rng, data, TOKENS)
    elif roll < 0.5:
        data = rng.randbytes(rng.randint(0, 64))
    elif roll < 0.55:
        data += run_of(rng, rng.choice((b"x", b" ", b"PUB ", b"[")))
    params: dict[str, int] = {}
    if rng.random() < 0.5:
        params = {"max_control_line": rng.choice((16, 64, 256, 1024)),
                  "max_payload": rng.choice((0, 1, 16, 1024, 4096))}
    if wants_every_split(rng, len(data)):
        return Case(data, (), params, EVERY_SPLIT)
    return Case(data, random_cuts(rng, len(data)), params)


def _check_event(codec: ServerCodec, ev: tuple) -> None:
    op = ev[0]
    if op == OP_PUB:
        _, subject, reply, hdr, payload = ev
        _check_message(codec, subject, reply, hdr, [payload])
    elif op == OP_PUBS:
        _, subject, reply, hdr, payloads = ev
        if hdr is not None or len(payloads) < 2:
            raise Violation(f"malformed OP_PUBS {ev[:4]!r}")
        _check_message(codec, subject, reply, None, payloads)
    elif op == OP_SUB:
        if len(ev) != 4 or not all(isinstance(a, bytes) for a in (ev[1], ev[3])):
            raise Violation(f"malformed OP_SUB {ev!r}")
    elif op == OP_UNSUB:
        if len(ev) != 3 or not isinstance(ev[1], bytes) or not (
                ev[2] is None or isinstance(ev[2], int)):
            raise Violation(f"malformed OP_UNSUB {ev!r}")
    elif op == OP_CONNECT:
        if not isinstance(ev[1], dict):
            raise Violation(f"OP_CONNECT options are not a dict: {ev!r}")
    elif op in (OP_CLOSE, OP_ERROR):
        if ev[1] not in KNOWN_TEXTS:
            raise Violation(f"unknown -ERR text {ev[1]!r}")
    elif ev not in ((OP_PING,), (OP_PONG,)):
        raise Violation(f"unknown event {ev!r}")


def _check_message(codec: ServerCodec, subject: Any, reply: Any, hdr: Any,
                   payloads: list[Any]) -> None:
    if not isinstance(subject, bytes) or not (reply is None or isinstance(reply, bytes)):
        raise Violation(f"PUB subject/reply not bytes: {subject!r} {reply!r}")
    for payload in payloads:
        size = len(payload) + (len(hdr) if hdr is not None else 0)
        if size > codec.max_payload:
            raise Violation(f"delivered {size} bytes over max_payload {codec.max_payload}")


def _check_buffers(codec: ServerCodec) -> None:
    """White-box: what the codec keeps between reads stays within its limits."""
    held = len(getattr(codec, "_buf", b""))
    if held > codec.max_control_line + 8:
        raise Violation(f"holds {held} bytes of control line (limit {codec.max_control_line})")
    if getattr(codec, "_pending", None) is not None:
        have = getattr(codec, "_have", 0)
        if have > codec.max_payload + 2:
            raise Violation(f"holds {have} bytes of payload (max_payload {codec.max_payload})")


def feed(params: dict[str, int], chunks: list[bytes]) -> list[tuple]:
    """Feed the reads to a fresh codec, checking each batch of events; return them all."""
    codec = ServerCodec(**params)
    events: list[tuple] = []
    closed = False
    for chunk in [*chunks, b"PING\r\n"]:
        got = codec.receive_data(chunk)
        if closed and got:
            raise Violation(f"events after OP_CLOSE: {got[:3]!r}")
        for i, ev in enumerate(got):
            _check_event(codec, ev)
            if ev[0] == OP_CLOSE:
                closed = True
                if i != len(got) - 1:
                    raise Violation(f"OP_CLOSE is not the last event: {got[i:i + 2]!r}")
        _check_buffers(codec)
        events += got
    return events


def _flat(events: list[tuple]) -> list[tuple]:
    """Events with each OP_PUBS spelled out as PUBs (how reads group them varies)."""
    out: list[tuple] = []
    for ev in events:
        if ev[0] == OP_PUBS:
            out += [(OP_PUB, ev[1], ev[2], None, p) for p in ev[4]]
        else:
            out.append(ev)
    return out


def compare_splits(whole: list[tuple], split: list[tuple]) -> str | None:
    """How the events of split reads differ from those of one read.

    None when they agree.  When one side's messages are a prefix of the other's and the
    difference is only whether, when or with which -ERR text the connection closes (a
    limit checked at another point of the parse), an anomaly to report.  Anything else,
    different messages delivered, is a :class:`Violation`.
    """
    a, b = _flat(whole), _flat(split)
    if a == b:
        return None
    a_closed, b_closed = bool(a) and a[-1][0] == OP_CLOSE, bool(b) and b[-1][0] == OP_CLOSE
    a_body, b_body = a[:-1] if a_closed else a, b[:-1] if b_closed else b
    shorter, longer = sorted((a_body, b_body), key=len)
    if longer[: len(shorter)] != shorter:
        raise Violation(f"split reads deliver other messages than one read: {a[-3:]!r} vs "
                        f"{b[-3:]!r}")
    if a_closed and b_closed and a_body == b_body:
        return (f"{ANOMALY}close reason depends on the reads: {a[-1][1] or '(no -ERR text)'} "
                f"/ {b[-1][1] or '(no -ERR text)'}")
    if a_closed and b_closed:
        return f"{ANOMALY}where the connection closes depends on the reads"
    if b_closed:
        return f"{ANOMALY}split reads close a connection one read keeps"
    return f"{ANOMALY}one read closes a connection split reads keep"


def run(case: Case) -> list[str]:
    """Feed the case as cut, then whole (and in every pair of reads when asked): the
    closes seen are its rejections, read-dependent outcomes its anomalies."""
    assert isinstance(case.data, bytes)
    chunks = case.chunks()
    events = feed(case.params, chunks)
    kinds = [f"{'close' if ev[0] == OP_CLOSE else 'error'}: {ev[1] or '(no -ERR text)'}"
             for ev in events if ev[0] in (OP_CLOSE, OP_ERROR)]
    splits = every_split(case.data) if case.mode == EVERY_SPLIT else \
        [chunks] if len(chunks) > 1 else []
    whole = events if len(chunks) == 1 else feed(case.params, [case.data])
    for reads in splits:
        anomaly = compare_splits(whole, events if reads is chunks else feed(case.params, reads))
        if anomaly:
            kinds.append(anomaly)
            break
    return kinds


def reproducer(case: Case) -> str:
    """The case as a snippet that needs nothing but Jetport."""
    args = ", ".join(f"{k}={v}" for k, v in case.params.items())
    head = "from jetport.bridges.nats.codec import ServerCodec\n"
    if case.mode == EVERY_SPLIT:
        return head + split_loop(case, f"ServerCodec({args})")
    return (head + f"codec = ServerCodec({args})\n"
            f"for data in {chunks_literal(case)}:\n"
            "    print(codec.receive_data(data))")


def _closes_with(events: list[tuple], text: str) -> bool:
    return bool(events) and events[-1] == (OP_CLOSE, text)


def limit_checks() -> list[str]:
    """Oversized length prefixes are refused from the control line, before any payload
    is buffered, and a control line without an end is refused once over the limit."""
    problems: list[str] = []
    for limits in ({}, {"max_control_line": 64, "max_payload": 16}):
        codec = ServerCodec(**limits)
        cap = codec.max_payload
        for line in (b"PUB foo %d\r\n" % (cap + 1), b"PUB foo 99999999999999999999\r\n",
                     b"HPUB foo 10 %d\r\n" % (cap + 1)):
            c = ServerCodec(**limits)
            got = c.receive_data(b'CONNECT {"headers":true}\r\n' + line)
            if not _closes_with(got, nats_codec.ERR_MAX_PAYLOAD):
                problems.append(f"{limits} {line!r}: {got[-1:]!r}, not a Maximum Payload close")
        exact = ServerCodec(**limits).receive_data(b"PUB foo %d\r\n" % cap + b"x" * cap + b"\r\n")
        if [e[0] for e in exact] != [OP_PUB]:
            problems.append(f"{limits}: a payload of exactly max_payload gave {exact[-1:]!r}")
        c = ServerCodec(**limits)
        line_cap = c.max_control_line + 8
        fed = 0
        for _ in range(line_cap // 50 + 3):
            got = c.receive_data(b"SUB " + b"x" * 46)
            fed += 50
            _check_buffers(c)
            if got:
                break
        if not _closes_with(got, nats_codec.ERR_CONTROL_LINE) or fed > line_cap + 50:
            problems.append(f"{limits}: endless control line closed after {fed} bytes: {got!r}")
    return problems


TARGET = Target("nats", generate, run, reproducer, limit_checks)
