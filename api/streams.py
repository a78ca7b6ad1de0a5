"""Streams, consumers, stored messages, pull fetches and acks, over ``$JS.API``.

Each route is one (or a few) ``$JS.API`` requests made as the caller, so JetStream's
own validation, limits and permissions decide; the request and response schemas are the
JetStream models the NATS door uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from jetport.api.auth import caller
from jetport.api.domain import js_domain
from jetport.api.errors import ERRORS, HttpError, bad_request, utf8
from jetport.api.messages import (
    Message,
    check_name,
    check_subject,
    message,
    pull,
    scan,
    stored_message,
)
from jetport.api.session import DoorClient
from jetport.core.jetstream.models import (
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseRequest,
    ConsumerPauseResponse,
    PurgeRequest,
    StreamConfig,
    StreamInfo,
)

router = APIRouter(prefix="/v1", tags=["streams"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
MAX_REPLAY = 10_000


class Page(BaseModel):
    total: int
    offset: int
    limit: int


class StreamList(Page):
    streams: list[StreamInfo] = Field(default_factory=list)


class ConsumerList(Page):
    consumers: list[ConsumerInfo] = Field(default_factory=list)


class Success(BaseModel):
    success: bool = True


class Purged(Success):
    purged: int = 0


class Messages(BaseModel):
    messages: list[Message]


class Fetched(Messages):
    #: Why the fetch ended early: 404 nothing left, 408 wait expired, 409 consumer state,
    #: 423 another client holds the priority group's pin.
    status: int = 0


class AckRequest(BaseModel):
    tokens: list[str] = Field(min_length=1, max_length=10_000)
    #: For nak: redeliver after this many seconds.
    delay: float | None = Field(default=None, ge=0, le=365 * 86400)


class Acked(BaseModel):
    acked: int


def _json(doc: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status)


async def _raw_config(request: Request) -> bytes:
    return await request.body()


# -- streams -------------------------------------------------------------------------------


@router.get("/streams", response_model=StreamList, responses=ERRORS)
async def list_streams(client: Caller, offset: int = Query(0, ge=0),
                       subject: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"offset": offset}
    if subject:
        body["subject"] = check_subject(subject, wildcards=True).decode()
    doc = await client.js("STREAM.LIST", body)
    doc["streams"] = doc.get("streams") or []
    return _json(doc)


@router.post("/streams", status_code=201, response_model=StreamInfo, responses=ERRORS)
async def create_stream(config: Annotated[StreamConfig, Body()], request: Request,
                        client: Caller) -> JSONResponse:
    """Create a stream from its configuration (``name`` required)."""
    name = check_name(config.name)
    return _json(await client.js(f"STREAM.CREATE.{name}", await request.body()), 201)


@router.get("/streams/{stream}", response_model=StreamInfo, responses=ERRORS)
async def stream_info(stream: str, client: Caller) -> JSONResponse:
    return _json(await client.js(f"STREAM.INFO.{check_name(stream)}"))


@router.put("/streams/{stream}", response_model=StreamInfo, responses=ERRORS)
async def update_stream(stream: str, config: Annotated[StreamConfig, Body()],
                        request: Request, client: Caller) -> JSONResponse:
    check_name(stream)
    if config.name and config.name != stream:
        raise bad_request("stream name in the path and the configuration differ")
    if config.name:
        return _json(await client.js(f"STREAM.UPDATE.{stream}", await request.body()))
    return _json(await client.js(f"STREAM.UPDATE.{stream}", {**config.dump(), "name": stream}))


@router.delete("/streams/{stream}", response_model=Success, responses=ERRORS)
async def delete_stream(stream: str, client: Caller) -> JSONResponse:
    return _json(await client.js(f"STREAM.DELETE.{check_name(stream)}"))


@router.post("/streams/{stream}/purge", response_model=Purged, responses=ERRORS)
async def purge_stream(stream: str, client: Caller,
                       purge: Annotated[PurgeRequest | None, Body()] = None) -> JSONResponse:
    """Remove everything, a subject's messages (``filter``), those below ``seq``, or all
    but the newest ``keep``."""
    body = purge.dump() if purge is not None else {}
    return _json(await client.js(f"STREAM.PURGE.{check_name(stream)}", body))


# -- stored messages -----------------------------------------------------------------------


@router.get("/streams/{stream}/messages", response_model=Messages, responses=ERRORS)
async def replay(stream: str, client: Caller,
                 start_seq: int = Query(1, ge=1, le=2**63 - 1),
                 start_time: datetime | None = None,
                 subject: str | None = None,
                 limit: int = Query(100, ge=1, le=MAX_REPLAY)) -> Messages:
    """A range of stored messages from ``start_seq`` (or ``start_time``), optionally only
    those on ``subject`` (wildcards allowed)."""
    check_name(stream)
    config: dict[str, Any] = {"deliver_policy": "by_start_sequence", "opt_start_seq": start_seq}
    if start_time is not None:
        if start_time.tzinfo is None:
            raise bad_request("start_time needs a time zone")
        config = {"deliver_policy": "by_start_time",
                  "opt_start_time": start_time.isoformat().replace("+00:00", "Z")}
    if subject:
        config["filter_subject"] = check_subject(subject, wildcards=True).decode()
    out: list[Message] = []
    async for page in scan(client, stream, config, limit):
        out.extend(message(m) for m in page)
    return Messages(messages=out)


@router.get("/streams/{stream}/messages/{seq}", response_model=Message, responses=ERRORS)
async def get_message(stream: str, seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
                      client: Caller) -> Message:
    doc = await client.js(f"STREAM.MSG.GET.{check_name(stream)}", {"seq": seq})
    return stored_message(doc["message"])


@router.delete("/streams/{stream}/messages/{seq}", response_model=Success, responses=ERRORS)
async def delete_message(stream: str, seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
                         client: Caller) -> JSONResponse:
    return _json(await client.js(f"STREAM.MSG.DELETE.{check_name(stream)}", {"seq": seq}))


@router.get("/streams/{stream}/last/{subject}", response_model=Message, responses=ERRORS)
async def last_message(stream: str, subject: str, client: Caller) -> Message:
    """The newest message on a subject."""
    check_subject(subject)
    doc = await client.js(f"STREAM.MSG.GET.{check_name(stream)}", {"last_by_subj": subject})
    return stored_message(doc["message"])


# -- consumers -----------------------------------------------------------------------------


@router.get("/streams/{stream}/consumers", response_model=ConsumerList, responses=ERRORS)
async def list_consumers(stream: str, client: Caller,
                         offset: int = Query(0, ge=0)) -> JSONResponse:
    doc = await client.js(f"CONSUMER.LIST.{check_name(stream)}", {"offset": offset})
    doc["consumers"] = doc.get("consumers") or []
    return _json(doc)


@router.post("/streams/{stream}/consumers", status_code=201, response_model=ConsumerInfo,
             responses=ERRORS)
async def create_consumer(stream: str, config: Annotated[ConsumerConfig, Body()],
                          client: Caller,
                          action: Literal["", "create", "update"] = "") -> JSONResponse:
    """Create (or update) a consumer; ``durable_name`` or ``name`` names it, neither
    makes an ephemeral one."""
    check_name(stream)
    name = config.durable_name or config.name
    cfg = config.dump()
    if name:
        check_name(name, "consumer")
    api = f"CONSUMER.CREATE.{stream}.{name}" if name else f"CONSUMER.CREATE.{stream}"
    body: dict[str, Any] = {"stream_name": stream, "config": cfg}
    if action:
        body["action"] = action
    return _json(await client.js(api, body), 201)


@router.get("/streams/{stream}/consumers/{consumer}", response_model=ConsumerInfo,
            responses=ERRORS)
async def consumer_info(stream: str, consumer: str, client: Caller) -> JSONResponse:
    api = f"CONSUMER.INFO.{check_name(stream)}.{check_name(consumer, 'consumer')}"
    return _json(await client.js(api))


@router.delete("/streams/{stream}/consumers/{consumer}", response_model=Success,
               responses=ERRORS)
async def delete_consumer(stream: str, consumer: str, client: Caller) -> JSONResponse:
    api = f"CONSUMER.DELETE.{check_name(stream)}.{check_name(consumer, 'consumer')}"
    return _json(await client.js(api))


@router.post("/streams/{stream}/consumers/{consumer}/fetch", response_model=Fetched,
             responses=ERRORS)
async def fetch(stream: str, consumer: str, client: Caller,
                batch: int = Query(1, ge=1, le=10_000),
                max_bytes: int = Query(0, ge=0, le=64 * 1024 * 1024),
                wait: float = Query(0.0, ge=0, le=60),
                group: str = Query("", max_length=16),
                min_pending: int = Query(0, ge=0), min_ack_pending: int = Query(0, ge=0),
                pin_id: str = Query("", max_length=64)) -> Fetched:
    """Pull up to ``batch`` messages (and ``max_bytes``) from a pull consumer, waiting up
    to ``wait`` seconds for them; each comes with its ``ack_token``.

    Consumers with priority groups need ``group``; overflow takes ``min_pending`` and
    ``min_ack_pending``, and pinned_client the ``Nats-Pin-Id`` header's value as
    ``pin_id`` once a fetch was pinned."""
    check_name(stream)
    check_name(consumer, "consumer")
    info = await client.js(f"CONSUMER.INFO.{stream}.{consumer}")
    if (info.get("config") or {}).get("deliver_subject"):
        raise HttpError(409, 10409, "consumer is push based")
    priority = {k: v for k, v in (("group", group), ("min_pending", min_pending),
                                  ("min_ack_pending", min_ack_pending), ("id", pin_id)) if v}
    msgs, status = await pull(client, stream, consumer, batch, wait, max_bytes, priority)
    return Fetched(messages=[message(m, with_ack=True) for m in msgs], status=status)


@router.post("/streams/{stream}/consumers/{consumer}/pause",
             response_model=ConsumerPauseResponse, responses=ERRORS)
async def pause_consumer(stream: str, consumer: str, client: Caller,
                         req: Annotated[ConsumerPauseRequest | None, Body()] = None
                         ) -> JSONResponse:
    """Deliver nothing until ``pause_until``; without it (or with a past time) resume."""
    api = f"CONSUMER.PAUSE.{check_name(stream)}.{check_name(consumer, 'consumer')}"
    doc = await client.js(api, req.dump() if req is not None else {})
    return _json(doc)


@router.post("/streams/{stream}/consumers/{consumer}/unpin", response_model=Success,
             responses=ERRORS)
async def unpin_consumer(stream: str, consumer: str, client: Caller,
                         group: str = Query(..., min_length=1, max_length=16)) -> JSONResponse:
    """Free a pinned_client priority group for the next client that asks."""
    api = f"CONSUMER.UNPIN.{check_name(stream)}.{check_name(consumer, 'consumer')}"
    await client.js(api, {"group": group})
    return _json({"success": True})


_ACKS = {"ack": b"+ACK", "nak": b"-NAK", "term": b"+TERM", "progress": b"+WPI"}


def _ack_route(kind: str) -> None:
    async def acknowledge(req: AckRequest, client: Caller) -> Acked:
        payload = _ACKS[kind]
        if kind == "nak" and req.delay:
            payload += b' {"delay": %d}' % int(req.delay * 1e9)
        subjects = []
        for token in req.tokens:
            raw = utf8(token, "token")
            if not raw.startswith(b"$JS.ACK.") or len(raw.split(b".")) < 9:
                raise bad_request(f"not an ack token: {token!r}")
            subjects.append(client.check_publish(check_subject(token)))
        for raw in subjects:
            client.publish(raw, None, payload)
        return Acked(acked=len(subjects))

    acknowledge.__doc__ = f"Send {payload_name(kind)} for fetched messages by ack token."
    router.post(f"/{kind}", response_model=Acked, responses=ERRORS, tags=["streams"],
                name=kind, summary=f"{kind.capitalize()} fetched messages")(acknowledge)


def payload_name(kind: str) -> str:
    return _ACKS[kind].decode()


for _kind in _ACKS:
    _ack_route(_kind)
