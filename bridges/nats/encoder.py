"""The NATS client protocol, server to client, without I/O: the bytes of INFO, -ERR and
deliveries.

``encode_msg`` is the reference MSG/HMSG encoding.  ``encode_deliveries`` and
``NatsOutbound.deliver`` write it out in place on the hot paths, and
``tests/unit/test_nats_encoders.py`` holds them to its bytes.  Compiled with the rest of
the hot path in the mypyc build (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from typing import Any

from jetport.core.client import Delivery
from jetport.core.router import Subscription

CRLF = b"\r\n"


def encode_info(info: dict[str, Any]) -> bytes:
    """INFO with the trailing space before CRLF that nats-server writes."""
    return b"INFO " + json.dumps(info, separators=(",", ":")).encode() + b" \r\n"


def encode_err(text: str) -> bytes:
    return b"-ERR '" + text.encode() + b"'\r\n"


def encode_msg(
    subject: bytes, sid: bytes, reply: bytes | None, headers: bytes | None, payload: bytes
) -> bytes:
    """MSG, or HMSG when ``headers`` is given (the caller strips them for clients
    that did not ask for headers).  The reference encoding: the NATS door's delivery
    methods write it out in place on their hot paths, and a test holds them to it."""
    if headers is None:
        if reply:
            head = b"MSG %b %b %b %d\r\n" % (subject, sid, reply, len(payload))
        else:
            head = b"MSG %b %b %d\r\n" % (subject, sid, len(payload))
    else:
        hl = len(headers)
        if reply:
            head = b"HMSG %b %b %b %d %d\r\n" % (subject, sid, reply, hl, hl + len(payload))
        else:
            head = b"HMSG %b %b %d %d\r\n" % (subject, sid, hl, hl + len(payload))
        return head + headers + payload + CRLF
    return head + payload + CRLF


def encode_deliveries(
    subs: list[Subscription], msgs: list[Delivery], headers: bool
) -> tuple[list[bytes], int]:
    """The frames of ``msgs[i]`` for ``subs[i]``, and the bytes of their headers and
    payloads; HMSG only when ``headers`` (the client asked for them), else headers are
    dropped.  MSG is :func:`encode_msg` written out in place, as in
    ``NatsOutbound.deliver``; messages with headers join the same list, so that a batch
    stays one queued write (1,000 subjects, one HPUB in four: the batch was cut at each
    of them)."""
    total = 0
    frames: list[bytes] = []
    for sub, (subject, reply, hdr, payload) in zip(subs, msgs, strict=True):
        sid = sub.sid
        if hdr is not None and headers:
            total += len(hdr) + len(payload)
            frames.append(encode_msg(subject, sid, reply, hdr, payload))
            continue
        size = len(payload)
        total += size
        if reply:
            frames.append(b"MSG %b %b %b %d\r\n%b\r\n" % (subject, sid, reply, size, payload))
        else:
            frames.append(b"MSG %b %b %d\r\n%b\r\n" % (subject, sid, size, payload))
    return frames, total
