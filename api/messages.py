"""Messages as JSON, NATS headers from HTTP, and reading a stream through a consumer.

A message body travels as UTF-8 text when it is text and base64 otherwise
(``encoding`` says which), so JSON clients and browsers read either without guessing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from jetport.api.domain import api_subject
from jetport.api.errors import HttpError, bad_request, utf8
from jetport.api.session import status_of
from jetport.core import headers as H
from jetport.core.jetstream.models import valid_name
from jetport.core.log import log
from jetport.core.subjects import is_valid_literal_subject, is_valid_subject
from jetport.core.tasks import spawn
from jetport.core.timeutil import rfc3339

if TYPE_CHECKING:
    from jetport.api.session import DoorClient
    from jetport.core.client import Delivery

#: Request headers copied into the NATS message under their canonical names.
NATS_PREFIX = "nats-"
#: Any other NATS header: ``X-Nats-Header-Name: value`` becomes ``Name: value``.
HEADER_PREFIX = "x-nats-header-"
_SPECIAL = {"ttl": "TTL", "id": "Id"}
#: Scans and fetches give up on a silent server after this long.
_GRACE = 2.0
#: Empty pulls a scan retries before it ends short of what the consumer had pending.
SILENT_PULLS = 3


class Message(BaseModel):
    """A message as the door shows it."""

    subject: str
    seq: int | None = None
    time: str | None = None
    headers: dict[str, str] | None = None
    data: str = ""
    encoding: Literal["utf-8", "base64"] = "utf-8"
    #: Fetched from a consumer: the token for /v1/ack, /v1/nak, /v1/term, /v1/progress.
    ack_token: str | None = None
    reply: str | None = None


class Envelope(BaseModel):
    """A message body with its headers, for publishing binary data or headers as JSON."""

    data: str = ""
    encoding: Literal["utf-8", "base64"] = "utf-8"
    headers: dict[str, str] = Field(default_factory=dict)


class OutMessage(Envelope):
    """A message of a batch publish."""

    subject: str


def canonical(name: str) -> str:
    """``nats-msg-id`` -> ``Nats-Msg-Id`` (HTTP lowercases names, NATS matches exactly)."""
    return "-".join(_SPECIAL.get(p, p[:1].upper() + p[1:]) for p in name.split("-"))


def header_pairs(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """NATS header lines from HTTP request headers (``Nats-*`` and ``X-Nats-Header-*``)."""
    pairs: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        low = name.lower()
        if low.startswith(HEADER_PREFIX) and len(low) > len(HEADER_PREFIX):
            pairs.append((canonical(low[len(HEADER_PREFIX):]).encode(), value.encode()))
        elif low.startswith(NATS_PREFIX):
            pairs.append((canonical(low).encode(), value.encode()))
    return pairs


def header_block(pairs: list[tuple[bytes, bytes]]) -> bytes | None:
    for key, value in pairs:
        if not key or b":" in key or any(c <= 32 for c in key) or b"\r" in value \
                or b"\n" in value:
            raise bad_request(f"invalid header {key.decode(errors='replace')!r}")
    return H.build(pairs) if pairs else None


def parse_headers(hdr: bytes | None) -> dict[str, str] | None:
    """Header lines (repeated keys joined by ``, ``), without the status line."""
    if not hdr:
        return None
    out: dict[str, str] = {}
    for line in hdr.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if not sep or not key:
            continue
        k, v = key.decode(errors="replace"), value.strip().decode(errors="replace")
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out or None


def encode_data(data: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"


def decode_data(data: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("data is not valid base64") from None
    return utf8(data, "data")


def ack_info(reply: bytes | None) -> tuple[int, int] | None:
    """(stream sequence, timestamp ns) from a ``$JS.ACK`` reply subject."""
    if not reply or not reply.startswith(b"$JS.ACK."):
        return None
    t = reply.split(b".")
    if len(t) == 9:
        return int(t[5]), int(t[7])
    if len(t) >= 11:
        return int(t[7]), int(t[9])
    return None


def message(msg: Delivery, with_ack: bool = False) -> Message:
    """A delivery (``subject, reply, hdr, payload``) as JSON; stream position from the
    ack subject of a consumer delivery."""
    subject, reply, hdr, payload = msg
    data, enc = encode_data(payload)
    doc = Message(subject=subject.decode(errors="replace"), headers=parse_headers(hdr),
                  data=data, encoding=enc)
    info = ack_info(reply)
    if info is not None:
        doc.seq, doc.time = info[0], rfc3339(ns=info[1])
        if with_ack and reply is not None:
            doc.ack_token = reply.decode()
    elif reply:
        doc.reply = reply.decode(errors="replace")
    return doc


def stored_message(doc: dict[str, Any]) -> Message:
    """A STREAM.MSG.GET answer's message as JSON."""
    raw_hdr = base64.b64decode(doc.get("hdrs") or "")
    data, enc = encode_data(base64.b64decode(doc.get("data") or ""))
    return Message(subject=doc.get("subject", ""), seq=doc.get("seq"), time=doc.get("time"),
                   headers=parse_headers(raw_hdr), data=data, encoding=enc)


# -- checks -------------------------------------------------------------------------------


def check_name(name: str, what: str = "stream") -> str:
    if not valid_name(name):
        raise bad_request(f"invalid {what} name {name!r}")
    return name


def check_subject(subject: str, wildcards: bool = False) -> bytes:
    raw = utf8(subject, "subject")
    ok = is_valid_subject(raw) if wildcards else is_valid_literal_subject(raw)
    if not ok or len(raw) > 4096:
        raise bad_request(f"invalid subject {subject!r}")
    return raw


# -- reading streams ----------------------------------------------------------------------


async def pull(client: DoorClient, stream: str, consumer: str, batch: int,
               wait: float = 0.0, max_bytes: int = 0,
               priority: dict[str, Any] | None = None) -> tuple[list[Delivery], int]:
    """One pull request: the messages and the status that ended it (0: batch filled).

    ``priority`` adds a priority group's fields (group, min_pending, min_ack_pending, id).
    """
    body: dict[str, Any] = {"batch": batch, **(priority or {})}
    if max_bytes:
        body["max_bytes"] = max_bytes
    if wait > 0:
        body["expires"] = int(wait * 1e9)
    else:
        body["no_wait"] = True
    subject = client.check_publish(api_subject(f"CONSUMER.MSG.NEXT.{stream}.{consumer}"))

    def done(items: list[Delivery]) -> bool:
        last = items[-1]
        return len(items) >= batch or (status_of(last[2]) >= 400 and not last[3])

    reply, fut = client.expect(done, own=True)
    client.publish(subject, None, json.dumps(body).encode(), reply)
    items = await client.gather(reply, fut, wait + _GRACE)
    msgs: list[Delivery] = []
    status = 408 if len(items) < batch else 0
    for item in items:
        code = status_of(item[2])
        if code and not item[3] and not ack_info(item[1]):
            if code >= 400:
                status = code
            continue
        msgs.append(item)
    return msgs, status


async def scan(client: DoorClient, stream: str, config: dict[str, Any],
               limit: int | None = None,
               page: int = 256) -> AsyncGenerator[list[Delivery], None]:
    """What a temporary consumer with ``config`` sees now, in pages, up to ``limit``."""
    name = "http_" + secrets.token_hex(8)
    cfg = {"name": name, "ack_policy": "none", "inactive_threshold": 30_000_000_000,
           "mem_storage": True, "num_replicas": 1, **config}
    info = await client.js(f"CONSUMER.CREATE.{stream}.{name}",
                           {"stream_name": stream, "config": cfg})
    left = int(info.get("num_pending") or 0)
    if limit is not None:
        left = min(left, limit)
    silent = 0  # pulls in a row that nothing answered in time (a slow or remote stream)
    try:
        while left > 0:
            msgs, status = await pull(client, stream, name, min(page, left))
            if msgs:
                left -= len(msgs)
                silent = 0
                yield msgs
            elif status == 408 and silent < SILENT_PULLS:
                silent += 1
                continue
            if not msgs or status in (404, 409):
                break
    finally:
        forget_consumer(client, stream, name)


def forget_consumer(client: DoorClient, stream: str, name: str) -> None:
    """Delete a temporary consumer without waiting (its inactivity limit is the backstop)."""
    async def delete() -> None:
        try:
            await client.js(f"CONSUMER.DELETE.{stream}.{name}")
        except HttpError as exc:  # gone already, or the stream is: nothing to clean up
            log.debug("http: temporary consumer %s > %s not deleted: %s", stream, name, exc)

    with contextlib.suppress(RuntimeError):  # no loop: the hub is gone already
        spawn(delete(), f"http: deleting consumer {stream} > {name}")


def require(cond: bool, status: int, why: str) -> None:
    if not cond:
        raise HttpError(status, 10000 + status, why)
