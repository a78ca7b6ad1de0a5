"""Distributed counters (ADR-49): a stream with ``allow_msg_counter`` counts per subject.

A publish carries ``Nats-Incr: <signed decimal>`` and no payload; the stream stores the
subject's new total as ``{"val":"N"}`` with the publish's headers, and the PubAck carries
``"val":"N"``.  Totals are arbitrary-precision integers written as strings, so no client
loses digits.  The total is read from the subject's last stored message every time, so it
survives restarts and follows purges and deletes without state of its own.

A counter stream that sources other counter streams adds what each source's total moved
by since it last saw it: ``Nats-Counter-Sources`` (origin stream → original subject →
last total seen) travels with every message of the subject, and a sourced message's
``Nats-Incr`` is rewritten to that difference, so replaying the increments recounts the
total even when sourced messages were lost on the way.
"""

from __future__ import annotations

import decimal
import json
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from jetport.core import headers as H
from jetport.core.gojson import go_json
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.sourcing import STREAM_SOURCE

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream
    from jetport.storage.base import StoredMsg

INCR = b"Nats-Incr"
SOURCES = b"Nats-Counter-Sources"
#: Headers an increment may not carry: they tie a publish to a stream position, which
#: an order-independent increment does not have (nats-server answers 10171).
_POSITIONAL = (b"Nats-Rollup", b"Nats-Expected-Stream", b"Nats-Expected-Last-Msg-Id",
               b"Nats-Expected-Last-Subject-Sequence-Subject", b"Nats-Expected-Last-Sequence",
               b"Nats-Expected-Last-Subject-Sequence")
#: What Go's ``big.Int.SetString(s, 10)`` takes: a sign, then ASCII digits only.
_DECIMAL = re.compile(rb"[+-]?[0-9]+\Z")
#: Exact integer arithmetic at any size (``int`` refuses to print past 4300 digits).
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX,
                         Emin=decimal.MIN_EMIN, traps=[decimal.Inexact, decimal.Overflow])

#: Origin stream → original subject → the last total seen from it.
Sources = dict[str, dict[str, str]]


def parse_incr(value: bytes) -> Decimal:
    """A ``Nats-Incr`` value as an integer; 10171 when it is not a signed decimal."""
    if not _DECIMAL.match(value):
        raise E.msg_incr_invalid()
    return Decimal(value.decode())


def text(number: Decimal) -> str:
    """An integer as Go's ``big.Int`` prints it (no sign on zero, no leading zeros)."""
    return "0" if number.is_zero() else f"{number:f}"


def _number(value: Any) -> Decimal:
    """A stored total; one that is not a decimal counts as zero, as in nats-server."""
    raw = value.encode() if isinstance(value, str) else b""
    return Decimal(raw.decode()) if _DECIMAL.match(raw) else Decimal(0)


def total_of(payload: bytes) -> Decimal:
    """The total a counter message holds; 10172 when it is not ``{"val": "..."}``."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise E.msg_counter_broken() from None
    if doc is None:
        return Decimal(0)
    if not isinstance(doc, dict) or not isinstance(doc.get("val", ""), str):
        raise E.msg_counter_broken()
    return _number(doc.get("val"))


def _sources(raw: bytes) -> Sources:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise E.msg_counter_broken() from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in doc.values()):
        raise E.msg_counter_broken()
    return doc


def _put(hdr: bytes | None, key: bytes, value: bytes) -> bytes:
    """``hdr`` with ``key`` set: its value replaced where it stands, else appended."""
    if hdr and H.get(hdr, key) is not None:
        return H.replace(hdr, key, value)
    return H.add(hdr, [(key, value)])


def screen(allowed: bool, hdrs: dict[bytes, bytes] | None, payload: bytes,
           sourced: bool) -> Decimal | None:
    """A publish's increment, checked before any other header rule as nats-server does:
    None without one (an empty value is none).  Sourced messages are taken as they come
    (a stream that does not count keeps them verbatim)."""
    value = hdrs.get(INCR) if hdrs else None
    if not value:
        return None
    assert hdrs is not None
    incr = parse_incr(value)
    if sourced:
        return incr
    if not allowed:
        raise E.msg_counters_disabled()
    if payload:
        raise E.msg_incr_payload()
    if any(hdrs.get(key) for key in _POSITIONAL):
        raise E.msg_incr_invalid()
    return incr


def count(last: StoredMsg | None, subject: bytes, hdr: bytes | None, payload: bytes,
          incr: Decimal | None, sourced: bool, max_size: int) -> tuple[bytes, bytes, str]:
    """The message a counter stream stores for an increment, after ``last`` (the
    subject's previous message): (headers, payload, new total).  A sourced message adds
    the difference between its origin's total and the one last seen from that origin.
    ``max_size`` bounds headers and payload together (10054)."""
    if incr is None:
        raise E.msg_incr_missing()
    total, seen = Decimal(0), {}
    if last is not None:
        total = total_of(last.data)
        raw = H.get(last.hdr, SOURCES)
        seen = _sources(raw) if raw else {}
    origin = H.get(hdr, STREAM_SOURCE) if sourced else None
    if origin:
        assert hdr is not None
        incr, hdr = _delta(origin, subject, hdr, payload, seen)
    total = _EXACT.add(total, incr)
    value = text(total)
    payload = b'{"val":"%b"}' % value.encode()
    if seen:
        ordered = {name: dict(sorted(subjects.items())) for name, subjects in sorted(seen.items())}
        hdr = _put(hdr, SOURCES, go_json(ordered))
    if len(hdr or b"") + len(payload) > max_size:
        raise E.message_size_exceeded()
    return hdr or b"", payload, value


def _delta(origin: bytes, subject: bytes, hdr: bytes, payload: bytes,
           seen: Sources) -> tuple[Decimal, bytes]:
    """How far a sourced total moved since it was last seen (``seen`` is updated), and
    the headers with ``Nats-Incr`` rewritten to that.  Totals are keyed by the origin
    stream and the subject there (``Nats-Stream-Source``'s first and fifth fields)."""
    fields = origin.split()
    stream = fields[0].decode(errors="replace")
    original = (fields[4] if len(fields) >= 5 else subject).decode(errors="replace")
    now = total_of(payload)
    before = _number(seen.get(stream, {}).get(original))
    seen.setdefault(stream, {})[original] = text(now)
    incr = _EXACT.subtract(now, before)
    return incr, _put(hdr, INCR, text(incr).encode())


async def apply(stream: Stream, subject: bytes, hdr: bytes | None, payload: bytes,
                incr: Decimal | None, sourced: bool) -> tuple[bytes, bytes, bytes]:
    """What a counter stream stores for a publish (see :func:`count`), and the PubAck's
    ``val`` member.  The message and the PubAck are bounded by the smaller of the
    server's ``max_payload`` and the stream's ``max_msg_size``."""
    limit = stream.jsa.js.hub.options.max_payload
    if stream.config.max_msg_size >= 0:
        limit = min(limit, stream.config.max_msg_size)
    last = await stream.store.last(subject)
    hdr, payload, value = count(last, subject, hdr, payload, incr, sourced, limit)
    return hdr, payload, b',"val":"%b"' % value.encode()
