"""Counters over HTTP: a subject of a stream with ``allow_msg_counter`` (ADR-49).

An increment is a publish with ``Nats-Incr`` that the counter stream acknowledges with
the new total; reading finds the stream that stores the subject and returns its last
total.  Totals are decimal strings, as in the PubAck, because they have no size limit.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel

from jetport.api.auth import caller
from jetport.api.domain import js_domain
from jetport.api.errors import ERRORS, HttpError, from_api_error
from jetport.api.messages import check_subject, header_block, header_pairs
from jetport.api.publish import ACK_TIMEOUT, commit
from jetport.api.session import DoorClient
from jetport.core.jetstream import counters
from jetport.core.jetstream.errors import ApiError

router = APIRouter(prefix="/v1/counters", tags=["counters"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
INCR = b"Nats-Incr"


class Increment(BaseModel):
    #: Added to the total (negative subtracts); a string keeps digits past 2^53.
    increment: int | str = 1


class Counter(BaseModel):
    """A counter's total after the message at ``seq`` of ``stream``."""

    stream: str
    subject: str
    value: str
    seq: int
    #: An increment repeated with the same ``Nats-Msg-Id``: counted once, this is its total.
    duplicate: bool = False


def _total(msg: dict[str, Any]) -> str:
    """The total a STREAM.MSG.GET answer's message holds."""
    try:
        value = json.loads(base64.b64decode(msg.get("data") or ""))["val"]
    except (ValueError, TypeError, KeyError):
        value = None
    if not isinstance(value, str):
        raise HttpError(409, 10409, f"{msg.get('subject')!r} does not hold a counter")
    return value


async def _stored(client: DoorClient, stream: str, query: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = (await client.js(f"STREAM.MSG.GET.{stream}", query))["message"]
    return msg


@router.post("/{subject}", response_model=Counter, responses=ERRORS)
async def increment(subject: str, request: Request, client: Caller,
                    body: Annotated[Increment | None, Body()] = None,
                    timeout: float = Query(ACK_TIMEOUT, gt=0, le=60)) -> Counter:
    """Add ``increment`` (default 1) to the counter on ``subject`` and answer its new
    total.  ``Nats-Msg-Id`` makes a retry safe: a repeat is counted once and answered
    with the total the first one made; other ``Nats-*`` and ``X-Nats-Header-*`` request
    headers are stored with the increment, as on ``/v1/publish``."""
    raw = check_subject(subject)
    by = str((body or Increment()).increment).encode()
    try:
        counters.parse_incr(by)  # else an empty one would publish a plain message
    except ApiError as exc:
        raise from_api_error(exc.to_dict()) from None
    pairs = [p for p in header_pairs(request.headers) if p[0] != INCR]
    ack = await commit(request.app.state.door, client, raw, header_block([*pairs, (INCR, by)]),
                       b"", timeout)
    stream, seq = ack["stream"], ack["seq"]
    if ack.get("duplicate"):
        return Counter(stream=stream, subject=subject, seq=seq, duplicate=True,
                       value=_total(await _stored(client, stream, {"seq": seq})))
    if "val" not in ack:  # a server of another domain that does not count
        raise HttpError(409, 10409, f"stream {stream!r} does not count")
    return Counter(stream=stream, subject=subject, value=ack["val"], seq=seq)


@router.get("/{subject}", response_model=Counter, responses=ERRORS)
async def read(subject: str, client: Caller) -> Counter:
    """The counter's total: 404 when no stream stores ``subject`` or nothing was counted
    there yet, 409 when the stream storing it does not count."""
    check_subject(subject)
    found = await client.js("STREAM.LIST", {"subject": subject})
    infos = [s for s in found.get("streams") or [] if s["config"].get("allow_msg_counter")]
    if not infos:
        if found.get("streams"):
            raise HttpError(409, 10409, f"the stream storing {subject!r} does not count")
        raise HttpError(404, 10404, f"no stream stores {subject!r}")
    stream = infos[0]["config"]["name"]
    msg = await _stored(client, stream, {"last_by_subj": subject})
    return Counter(stream=stream, subject=subject, value=_total(msg), seq=msg["seq"])
