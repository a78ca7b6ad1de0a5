"""Message schedules as a REST resource: one per subject of a stream.

A schedule is a stored message with ``Nats-Schedule`` headers (ADR-51), so ``PUT`` is a
publish that replaces the subject's schedule (answered with its PubAck), ``GET`` reads
the subjects' last messages that are schedules, and ``DELETE`` purges the subject: a
schedule whose message is gone never fires, on Jetport as on nats-server.  The same
publish works on ``POST /v1/publish/{subject}`` with ``Nats-Schedule*`` request headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from jetport.api.auth import caller
from jetport.api.domain import js_domain
from jetport.api.errors import ERRORS, HttpError, utf8
from jetport.api.messages import (
    Envelope,
    Message,
    check_name,
    check_subject,
    decode_data,
    header_block,
    message,
    scan,
    stored_message,
)
from jetport.api.publish import ACK_TIMEOUT, commit
from jetport.api.session import DoorClient
from jetport.core.jetstream.models import PubAck

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor

router = APIRouter(prefix="/v1", tags=["schedules"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
#: Schedules one listing returns at most.
MAX_LIST = 10_000
#: The schedule's own headers, by the field that carries each.
_FIELDS = {"schedule": "Nats-Schedule", "target": "Nats-Schedule-Target",
           "time_zone": "Nats-Schedule-Time-Zone", "ttl": "Nats-Schedule-TTL",
           "source": "Nats-Schedule-Source", "rollup": "Nats-Schedule-Rollup"}


class ScheduleRequest(Envelope):
    """What to publish, when (``@at <RFC 3339>``, ``@every <duration>``, a 6-field cron
    expression or ``@hourly``...), where (``target``, a subject of the same stream), and
    how: the produced message's TTL, a cron time zone, the ``source`` subject whose last
    message to copy instead of ``data``, ``rollup: "sub"`` to keep only the latest."""

    schedule: str
    target: str
    time_zone: str | None = None
    ttl: str | None = None
    source: str | None = None
    rollup: str | None = None


class Schedule(Message):
    """A stored schedule: its message and its ``Nats-Schedule*`` headers as fields."""

    schedule: str = ""
    target: str = ""
    time_zone: str | None = None
    ttl: str | None = None
    source: str | None = None
    rollup: str | None = None


class ScheduleList(BaseModel):
    schedules: list[Schedule] = Field(default_factory=list)


def _schedule(msg: Message) -> Schedule | None:
    """The message as a schedule; None when it is not one."""
    headers = dict(msg.headers or {})
    if not headers.get("Nats-Schedule"):
        return None
    fields = {name: headers.pop(key, None) for name, key in _FIELDS.items()}
    return Schedule(**{**msg.model_dump(exclude={"headers"}), **fields,
                       "headers": headers or None})


async def _current(client: DoorClient, stream: str, subject: bytes) -> Schedule:
    doc = await client.js(f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject.decode()})
    found = _schedule(stored_message(doc["message"]))
    if found is None:
        raise HttpError(404, 10404, f"no schedule on {subject.decode()!r}")
    return found


@router.put("/streams/{stream}/schedules/{subject}",
            responses={200: {"model": PubAck, "description": "the schedule is stored"},
                       **ERRORS})
async def put_schedule(stream: str, subject: str, request: Request, client: Caller,
                       spec: Annotated[ScheduleRequest, Body()],
                       timeout: float = Query(ACK_TIMEOUT, gt=0, le=60)) -> JSONResponse:
    """Store the subject's schedule (replacing any); errors are nats-server's
    (``message schedules pattern is invalid``, ``... target is invalid`` ...)."""
    raw = check_subject(subject)
    pairs = [(_FIELDS[name].encode(), utf8(value, name))
             for name, value in spec.model_dump(include=set(_FIELDS)).items()
             if value is not None]
    pairs += [(utf8(k, "header"), utf8(v, "header")) for k, v in spec.headers.items()]
    pairs.append((b"Nats-Expected-Stream", check_name(stream).encode()))
    door: HttpDoor = request.app.state.door
    ack = await commit(door, client, raw, header_block(pairs),
                       decode_data(spec.data, spec.encoding), timeout)
    return JSONResponse(ack)


@router.get("/streams/{stream}/schedules", response_model=ScheduleList, responses=ERRORS)
async def list_schedules(stream: str, client: Caller, subject: str | None = None,
                         limit: int = Query(1000, ge=1, le=MAX_LIST)) -> ScheduleList:
    """The stream's schedules (on ``subject``, wildcards allowed), by subject."""
    wanted = check_subject(subject, wildcards=True).decode() if subject else ">"
    config = {"deliver_policy": "last_per_subject", "filter_subject": wanted}
    out: list[Schedule] = []
    async for page in scan(client, check_name(stream), config):
        out += [s for s in (_schedule(message(m)) for m in page) if s is not None]
        if len(out) >= limit:
            break
    return ScheduleList(schedules=out[:limit])


@router.get("/streams/{stream}/schedules/{subject}", response_model=Schedule,
            responses=ERRORS)
async def get_schedule(stream: str, subject: str, client: Caller) -> Schedule:
    return await _current(client, check_name(stream), check_subject(subject))


@router.delete("/streams/{stream}/schedules/{subject}", responses=ERRORS)
async def delete_schedule(stream: str, subject: str, client: Caller) -> JSONResponse:
    """Cancel: the subject's messages are purged, so the schedule never fires again."""
    name, raw = check_name(stream), check_subject(subject)
    await _current(client, name, raw)
    doc = await client.js(f"STREAM.PURGE.{name}", {"filter": raw.decode()})
    return JSONResponse({"success": bool(doc.get("success")), "purged": doc.get("purged", 0)})
