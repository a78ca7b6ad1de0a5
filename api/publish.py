"""Publish, batch publish and request/reply over HTTP.

A publish on a subject some stream captures carries a reply subject and is answered only
when the stream's PubAck arrives, so a 2xx means the message is stored; other publishes
are delivered at once (202).  An atomic batch publish goes out as one JetStream atomic
batch (``Nats-Batch-Id``), stored all or nothing.  Requests wait for the first reply from
any responder, whatever door it is connected through.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from jetport.api.auth import caller
from jetport.api.domain import DOMAIN, js_domain, write_subject
from jetport.api.errors import ERRORS, HttpError, bad_request, from_api_error, utf8
from jetport.api.messages import (
    Envelope,
    OutMessage,
    check_subject,
    decode_data,
    header_block,
    header_pairs,
    parse_headers,
)
from jetport.api.session import DoorClient, status_of
from jetport.core import headers as H
from jetport.core.ids import base62
from jetport.core.jetstream.batch import BATCH_COMMIT, BATCH_ID, BATCH_SEQ, COMMIT_STORE
from jetport.core.jetstream.models import PubAck

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor
    from jetport.core.client import Delivery

router = APIRouter(prefix="/v1", tags=["messages"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
#: Messages one batch request may carry.
MAX_BATCH = 100_000
ACK_TIMEOUT = 5.0
#: A publish body of this content type is a JSON envelope: data, encoding, headers.
ENVELOPE = "application/vnd.jetport.message+json"


class Accepted(BaseModel):
    """A message no stream stores: delivered to the subscribers there were."""

    subject: str
    receivers: int


class BatchRequest(BaseModel):
    messages: list[OutMessage] = Field(max_length=MAX_BATCH)


class BatchResult(BaseModel):
    """How many were published; one PubAck (or error) per message when streams store them."""

    count: int
    acks: list[dict[str, Any] | None] | None = None


def _door(request: Request) -> HttpDoor:
    door: HttpDoor = request.app.state.door
    return door


def _capturing(client: DoorClient, subject: bytes) -> int:
    """How many acknowledgements storing ``subject`` takes: with a domain, that of the
    domain's one stream (nats-server refuses overlapping stream subjects), else one per
    local stream capturing it."""
    if DOMAIN.get():
        return 1
    js = client.hub.jetstream
    return js.streams_capturing(client.account, subject) if js is not None else 0


def _no_stream(items: list[Delivery]) -> bool:
    """The store answered "no responders": nothing stores the subject in the domain,
    or the domain cannot be reached."""
    return bool(items) and status_of(items[0][2]) == 503 and not items[0][3]


def _check_message(client: DoorClient, hdr: bytes | None, payload: bytes) -> None:
    """What every message published through the door passes: 413 over the caller's
    payload limit; 400 with atomic batch headers of its own, which only
    ``?atomic=true`` sets (a message held for a batch's commit has no PubAck)."""
    if hdr and b"Nats-Batch-" in hdr and any(k.startswith(b"Nats-Batch-") for k in H.parse(hdr)):
        raise bad_request("Nats-Batch-* headers are set by POST /v1/publish?atomic=true")
    size = len(payload) + (len(hdr) if hdr else 0)
    if size > client.payload_limit:
        raise HttpError(413, 10413, f"maximum payload exceeded ({size} > "
                        f"{client.payload_limit})")


def _prepare(client: DoorClient, m: OutMessage) -> tuple[bytes, bytes | None, bytes]:
    """One message of a batch request as (subject, headers, payload), or its 4xx."""
    subject = client.check_publish(check_subject(m.subject))
    hdr = header_block([(utf8(k, "header"), utf8(v, "header")) for k, v in
                        m.headers.items()]) if m.headers else None
    payload = decode_data(m.data, m.encoding)
    _check_message(client, hdr, payload)
    return subject, hdr, payload


def _ack(items: list[Delivery], timeout: float) -> dict[str, Any]:
    if not items:
        raise HttpError(504, 10504, f"no acknowledgement from the stream within {timeout}s")
    if _no_stream(items):
        raise HttpError(503, 10503, f"no stream of JetStream domain {DOMAIN.get()!r} "
                        "stores the subject, or the domain is not reachable")
    doc: dict[str, Any] = json.loads(items[0][3])
    if "error" in doc:
        raise from_api_error(doc["error"])
    doc.setdefault("duplicate", False)
    return doc


async def publish_one(door: HttpDoor, client: DoorClient, subject: bytes, hdr: bytes | None,
                      payload: bytes, timeout: float = ACK_TIMEOUT
                      ) -> tuple[int, dict[str, Any]]:
    """(status, body): 200 with the PubAck when a stream stores it, else 202."""
    client.check_publish(subject)
    _check_message(client, hdr, payload)
    if not _capturing(client, subject):
        door.stats.count_in(client, payload)
        n = client.publish(subject, hdr, payload)
        return 202, {"subject": subject.decode(), "receivers": n}
    return 200, await commit(door, client, subject, hdr, payload, timeout)


async def commit(door: HttpDoor, client: DoorClient, subject: bytes, hdr: bytes | None,
                 payload: bytes, timeout: float = ACK_TIMEOUT) -> dict[str, Any]:
    """Store a message and return its PubAck; 404 when no stream captures the subject."""
    client.check_publish(subject)
    _check_message(client, hdr, payload)
    streams = _capturing(client, subject)
    if not streams:
        raise HttpError(404, 10404, f"no stream stores {subject.decode()!r}")
    door.stats.count_in(client, payload)
    reply, fut = client.expect(lambda items: len(items) >= streams or _no_stream(items))
    start = time.perf_counter()
    client.publish(write_subject(subject), hdr, payload, reply)
    items = await client.gather(reply, fut, timeout)
    doc = _ack(items, timeout)
    door.stats.commit_seconds.observe(time.perf_counter() - start)
    return doc


@router.post(
    "/publish/{subject}",
    summary="Publish a message",
    responses={200: {"model": PubAck, "description": "stored by a stream"},
               202: {"model": Accepted, "description": "delivered; no stream stores it"},
               **ERRORS},
    openapi_extra={"requestBody": {"content": {"*/*": {"schema": {"type": "string",
                                                                   "format": "binary"}}}}},
)
async def publish(subject: str, request: Request, client: Caller,
                  timeout: float = Query(ACK_TIMEOUT, gt=0, le=60)) -> JSONResponse:
    """The body is the payload (any content type).  ``Nats-*`` request headers
    (``Nats-Msg-Id``, ``Nats-Expected-Last-Sequence`` ...) and ``X-Nats-Header-<Name>``
    become NATS headers.  A body of type ``application/vnd.jetport.message+json`` is
    an envelope ``{"data", "encoding", "headers"}`` instead."""
    raw = check_subject(subject)
    pairs = header_pairs(request.headers)
    payload = await request.body()
    if request.headers.get("content-type", "").startswith(ENVELOPE):
        env = json_envelope(payload)
        pairs += [(utf8(k, "header"), utf8(v, "header")) for k, v in env.headers.items()]
        payload = decode_data(env.data, env.encoding)
    hdr = header_block(pairs)
    status, doc = await publish_one(_door(request), client, raw, hdr, payload, timeout)
    return JSONResponse(doc, status_code=status)


@router.post("/publish", summary="Publish many messages", response_model=BatchResult,
             responses={200: {"description": "the messages' PubAcks; with ``atomic``, the "
                                             "batch's PubAck (``batch``, ``count``)"},
                        **ERRORS})
async def publish_batch(batch: BatchRequest, request: Request, client: Caller,
                        timeout: float = Query(ACK_TIMEOUT, gt=0, le=60),
                        atomic: bool = Query(False, description=(
                            "store all messages or none, as one JetStream atomic batch "
                            "(the stream needs allow_atomic)"))) -> BatchResult | JSONResponse:
    """Each message has a subject, data (``encoding`` utf-8 or base64) and headers.
    Messages some stream stores are acknowledged one by one; the rest go out together.
    With ``atomic``, one stream stores the whole batch or none of it."""
    door = _door(request)
    if atomic:
        return await _publish_atomic(door, client, batch.messages, timeout)
    plain: list[tuple[bytes, bytes | None, bytes | None, bytes]] = []
    stored: list[tuple[int, bytes, bytes | None, bytes]] = []
    nbytes = 0
    for i, m in enumerate(batch.messages):
        subject, hdr, payload = _prepare(client, m)
        nbytes += len(payload)
        if _capturing(client, subject):
            stored.append((i, subject, hdr, payload))
        else:
            plain.append((subject, None, hdr, payload))
    if plain:
        client.in_msgs += len(plain)
        client.in_bytes += sum(len(m[3]) for m in plain)
        client.account.router.publish_batch(client, plain)
    door.stats.count_batch(client, len(batch.messages), nbytes)
    if not stored:
        return BatchResult(count=len(batch.messages))
    acks: list[dict[str, Any] | None] = [None] * len(batch.messages)
    waits = []
    for i, subject, hdr, payload in stored:
        reply, fut = client.expect(lambda items: True)
        client.publish(write_subject(subject), hdr, payload, reply)
        waits.append((i, reply, fut))
    for i, reply, fut in waits:
        items = await client.gather(reply, fut, timeout)
        if not items:
            acks[i] = {"error": {"code": 504, "err_code": 10504,
                                 "description": "no acknowledgement"}}
        elif _no_stream(items):
            acks[i] = {"error": {"code": 503, "err_code": 10503,
                                 "description": "no stream stores the subject"}}
        else:
            acks[i] = json.loads(items[0][3])
    return BatchResult(count=len(batch.messages), acks=acks)


async def _publish_atomic(door: HttpDoor, client: DoorClient, msgs: list[OutMessage],
                          timeout: float) -> JSONResponse:
    """Publish ``msgs`` as one atomic batch: 200 with the commit's PubAck, else the
    first error a message got, with its ``index`` in the request. The stream checks the
    header rules (expected sequences, message ids, roll-ups) when the batch commits, so
    a failure of those is the last message's."""
    if not msgs:
        raise bad_request("messages: an atomic batch needs at least one message")
    ready = []
    for i, m in enumerate(msgs):
        try:
            subject, hdr, payload = _prepare(client, m)
            if not _capturing(client, subject):
                raise HttpError(404, 10404, f"no stream stores {subject.decode()!r}")
        except HttpError as exc:
            return _failed(exc, i)
        ready.append((subject, hdr, payload))
    door.stats.count_batch(client, len(msgs), sum(len(m[2]) for m in ready))
    batch_id = base62(22).encode()
    waits = []
    start = time.perf_counter()
    for i, (subject, hdr, payload) in enumerate(ready, 1):
        marks = [(BATCH_ID, batch_id), (BATCH_SEQ, b"%d" % i)]
        if i == len(ready):
            marks.append((BATCH_COMMIT, COMMIT_STORE))
        reply, fut = client.expect(lambda items: True)
        client.publish(write_subject(subject), H.add(hdr, marks), payload, reply)
        waits.append((reply, fut))
    *held, last = [await client.gather(reply, fut, timeout) for reply, fut in waits]
    for i, items in enumerate(held):
        if not items or items[0][3]:  # not the empty reply of a message held for the commit
            try:
                _ack(items, timeout)
            except HttpError as exc:
                return _failed(exc, i)
    try:
        doc = _ack(last, timeout)
    except HttpError as exc:
        return _failed(exc, len(held))
    door.stats.commit_seconds.observe(time.perf_counter() - start)
    return JSONResponse(doc)


def _failed(exc: HttpError, index: int) -> JSONResponse:
    """An atomic batch's error, naming the message it came from."""
    body = {"error": {"code": exc.status, "err_code": exc.err_code,
                      "description": exc.description}, "index": index}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


class Reply(BaseModel):
    subject: str
    headers: dict[str, str] | None = None


@router.post(
    "/request/{subject}",
    summary="Request/reply",
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "the reply's payload; its headers as X-Nats-Header-*"},
               **ERRORS},
    response_class=Response,
    openapi_extra={"requestBody": {"content": {"*/*": {"schema": {"type": "string",
                                                                   "format": "binary"}}}}},
)
async def request_reply(subject: str, request: Request, client: Caller,
                        timeout: float = Query(5.0, gt=0, le=60)) -> Response:
    """Publish with a reply subject and return the first reply: 503 when nobody
    listens on the subject, 504 when nobody answers within ``timeout`` seconds."""
    raw = check_subject(subject)
    hdr = header_block(header_pairs(request.headers))
    payload = await request.body()
    _check_message(client, hdr, payload)
    _door(request).stats.count_in(client, payload)
    _, _, rhdr, data = await client.request(raw, payload, hdr, timeout)
    headers = {f"X-Nats-Header-{k}": v for k, v in (parse_headers(rhdr) or {}).items()
               if k.isascii()}
    return Response(data, media_type="application/octet-stream", headers=headers)


def json_envelope(body: bytes) -> Envelope:
    try:
        return Envelope.model_validate_json(body)
    except ValueError as exc:
        raise bad_request(str(exc).splitlines()[0]) from None
