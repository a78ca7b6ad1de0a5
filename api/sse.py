"""Live subscriptions as Server-Sent Events.

Without a stream an SSE request is a core subscription: each message published on the
filter from then on is one ``message`` event.  With a stream (``stream=``, a start
position, or a reconnect's ``Last-Event-ID``) events come from a temporary consumer of
that stream instead and carry the stream sequence as their id, so a browser that
reconnects resumes after the last event it saw and misses nothing.

Each SSE request has a client of its own (its subscription ends with the response).  A
core subscriber whose unsent messages pass ``max_pending`` bytes (the budget every door
keeps per client) is a slow consumer: it gets an ``error`` event, the response ends and
/varz counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from jetport.api.auth import caller, fresh_client
from jetport.api.domain import api_subject, js_domain
from jetport.api.errors import ERRORS, HttpError, bad_request
from jetport.api.messages import (
    Message,
    ack_info,
    check_name,
    check_subject,
    forget_consumer,
    message,
)
from jetport.api.session import DoorClient, status_of
from jetport.core.client import Delivery
from jetport.core.log import log
from jetport.core.ticker import Ticker

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor

router = APIRouter(prefix="/v1", tags=["live"], dependencies=[Depends(js_domain)])
Caller = Annotated[DoorClient, Depends(caller)]
PAGE = 256
#: Put in an event stream's queue when the door stops: the stream ends cleanly.
SHUTDOWN: Any = object()
#: Put in an event stream's queue when it has been quiet for its heartbeat interval.
KEEPALIVE: Any = object()


def event(msg: Message, kind: str = "message") -> bytes:
    lines = f"event: {kind}\n"
    if msg.seq is not None:
        lines = f"id: {msg.seq}\n" + lines
    return (lines + "data: " + msg.model_dump_json(exclude_none=True) + "\n\n").encode()


def _error_event(text: str) -> bytes:
    return b"event: error\ndata: " + json.dumps({"description": text}).encode() + b"\n\n"


async def _find_stream(client: DoorClient, subject: str) -> str:
    doc = await client.js("STREAM.NAMES", {"subject": subject})
    names = doc.get("streams") or []
    if len(names) != 1:
        raise bad_request(f"{len(names)} streams store {subject!r}; name one with stream=")
    return str(names[0])


async def _core(door: HttpDoor, client: DoorClient, subject: bytes, queue: bytes | None,
                heartbeat: float) -> AsyncGenerator[bytes, None]:
    box: asyncio.Queue[Any] = asyncio.Queue()
    budget = door.hub.options.max_pending
    state = {"slow": False, "held": 0}

    def on_msg(subj: bytes, reply: bytes | None, hdr: bytes | None, payload: bytes) -> None:
        if state["slow"]:
            return
        size = len(subj) + len(payload) + (len(hdr) if hdr else 0)
        if state["held"] + size > budget:
            state["slow"] = True
            door.hub.count_slow_consumer()
            log.info("http %s - SSE on %s: Slow Consumer Detected: MaxPending of %d exceeded",
                     client.user or "-", subject.decode(errors="replace"), budget)
            box.put_nowait(None)
            return
        state["held"] += size
        box.put_nowait((subj, reply, hdr, payload))

    client.subscribe_to(subject, on_msg, queue)
    door.event_streams.add(box)
    beat = _Heartbeat(box, door.hub.tickers.get(heartbeat))
    try:
        yield b": subscribed\n\n"
        while True:
            item = await box.get()
            # What has queued up goes out as one chunk: one write, not one per event.
            out: list[bytes] = []
            while True:
                if item is KEEPALIVE:
                    if not out:
                        out.append(b": keepalive\n\n")
                elif item is SHUTDOWN or item is None:
                    if out:
                        yield b"".join(out)
                    if item is None:
                        yield _error_event("slow consumer")
                    return
                else:
                    state["held"] -= len(item[0]) + len(item[3]) + (
                        len(item[2]) if item[2] else 0)
                    door.stats.count_out(client, item[3])
                    out.append(_shared_event(item))
                if box.empty():
                    break
                item = box.get_nowait()
            beat.sent = True
            yield b"".join(out)
    finally:
        beat.stop()
        door.event_streams.discard(box)


class _Heartbeat:
    """Queues a keepalive for a stream that sent nothing for a heartbeat interval; one
    hub timer serves every stream with that interval (a ``wait_for`` per event cost
    more than the event itself)."""

    __slots__ = ("box", "ticker", "sent")

    def __init__(self, box: asyncio.Queue[Any], ticker: Ticker) -> None:
        self.box, self.ticker, self.sent = box, ticker, False
        ticker.schedule(self)

    def tick(self) -> None:
        if not self.sent and self.box.empty():
            self.box.put_nowait(KEEPALIVE)
        self.sent = False
        self.ticker.schedule(self)

    def stop(self) -> None:
        self.ticker.cancel(self)


#: The last core message encoded, with the delivery it came from: the router hands every
#: subscriber the same subject, reply, header and payload objects, so a message fanned
#: out to many SSE subscribers is encoded once. With the shared heartbeat timer this took
#: the hub's CPU per event, 1,000 subscribers of one subject, from 52 to 28 us.
_last: list[Any] = [(None, None, None, None), b""]


def _shared_event(item: Delivery) -> bytes:
    prev = _last[0]
    if (item[3] is prev[3] and item[0] is prev[0] and item[2] is prev[2]
            and item[1] is prev[1]):
        return cast(bytes, _last[1])
    data = event(message(item))
    _last[0], _last[1] = item, data
    return data


async def _replay(door: HttpDoor, client: DoorClient, stream: str, subject: str,
                  start: int | None, heartbeat: float) -> AsyncGenerator[bytes, None]:
    name = "sse_" + secrets.token_hex(8)
    config: dict[str, Any] = {"name": name, "ack_policy": "none", "filter_subject": subject,
                              "inactive_threshold": int(max(heartbeat * 4, 30) * 1e9),
                              "mem_storage": True, "num_replicas": 1}
    if start is None:
        config["deliver_policy"] = "new"
    else:
        config.update(deliver_policy="by_start_sequence", opt_start_seq=max(start, 1))
    await client.js(f"CONSUMER.CREATE.{stream}.{name}", {"stream_name": stream,
                                                          "config": config})
    box: asyncio.Queue[Delivery] = asyncio.Queue()
    reply = client.inbox + b"sse"
    # A replay is a subscription on ``subject``: a deny rule it overlaps filters it, as
    # for a live subscription (the consumer's inbox alone would not).
    perms = client.perms
    denies = perms.can_receive if perms is not None and perms.needs_delivery_check(
        subject.encode()) else None
    sub = client.private(reply, lambda *m: box.put_nowait(m))
    door.event_streams.add(box)
    pull = client.check_publish(api_subject(f"CONSUMER.MSG.NEXT.{stream}.{name}"))
    request = json.dumps({"batch": PAGE, "expires": int(heartbeat * 1e9)}).encode()
    try:
        yield b": subscribed\n\n"
        while True:
            client.publish(pull, None, request, reply)
            got = 0
            while got < PAGE:
                try:
                    item = await asyncio.wait_for(box.get(), heartbeat + 2)
                except TimeoutError:
                    break
                if item is SHUTDOWN:
                    return
                code = status_of(item[2])
                if code and not item[3] and ack_info(item[1]) is None:
                    if code == 409:
                        yield _error_event("consumer deleted")
                        return
                    if code >= 400:
                        break
                    continue
                got += 1
                if denies is not None and not denies(item[0]):
                    continue
                door.stats.count_out(client, item[3])
                yield event(message(item))
            if not got:
                yield b": keepalive\n\n"
    finally:
        door.event_streams.discard(box)
        client.drop_subscription(sub)
        forget_consumer(client, stream, name)


@router.get("/subscribe/{subject}", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}},
          "description": "one `message` event per message (JSON); ids are stream sequences"},
    **ERRORS})
async def subscribe(subject: str, request: Request, client: Caller,
                    stream: str | None = None,
                    start_seq: int | None = Query(None, ge=1, le=2**63 - 1),
                    queue: str | None = None,
                    heartbeat: float = Query(15.0, ge=0.1, le=300),
                    last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Stream messages on ``subject`` (wildcards allowed) as they arrive.  With a stream
    position (``start_seq``, or ``Last-Event-ID`` on reconnect, meaning the next one)
    stored messages are replayed first."""
    door: HttpDoor = request.app.state.door
    raw = check_subject(subject, wildcards=True)
    start = start_seq
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise bad_request("Last-Event-ID must be a stream sequence")
        start = int(last_event_id) + 1
    if queue is not None:
        check_subject(queue)
    own = fresh_client(door, client)
    try:
        if stream is not None or start is not None:
            name = check_name(stream) if stream else await _find_stream(client, subject)
            client.check_publish(api_subject(f"CONSUMER.CREATE.{name}"))
            if not own.may_subscribe(raw, None):
                raise HttpError(403, 10403, f'permissions violation for subscription to '
                                f'"{subject}"')
            body = _replay(door, own, name, subject, start, heartbeat)
        else:
            body = _core(door, own, raw, queue.encode() if queue else None, heartbeat)
        first = await anext(body)
    except BaseException:
        own.close()
        raise

    async def events() -> AsyncIterator[bytes]:
        door.stats.sse_active += 1
        try:
            yield first
            async for chunk in body:
                yield chunk
        finally:
            door.stats.sse_active -= 1
            with contextlib.suppress(Exception):
                await body.aclose()
            door.stats.retire(own)
            own.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
