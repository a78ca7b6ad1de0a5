"""Pull requests waiting on a consumer: queued, expired, kept alive with heartbeats and
answered with nats-server's status messages (404, 408, 409, 100).

:class:`PullQueue` is mixed into the consumer, whose delivery loop serves the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jetport.core import headers as H
from jetport.core.ids import base62
from jetport.core.jetstream.models import (
    BadPullRequest,
    PriorityGroupState,
    PullRequest,
    parse_pull_request,
)
from jetport.core.jetstream.pull_priority import UNRANKED, check_priority, enqueue_ranked
from jetport.core.timeutil import NS_PER_S
from jetport.storage.base import ConsumerState

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream



@dataclass
class WaitingRequest:
    reply: bytes
    batch: int
    max_bytes: int
    expires: int  # monotonic ns deadline, 0 = never
    no_wait: bool
    heartbeat: int  # ns
    last_hb: int = 0  # monotonic ns of the last heartbeat or message sent to it
    sent: int = 0
    #: Overflow priority groups: served only while the consumer has at least this many
    #: messages pending, or this many awaiting acks (0: no such condition).
    min_pending: int = 0
    min_ack_pending: int = 0
    #: Priority group, and (pinned_client) the pin id the request carries or was given.
    group: str = ""
    pin: str = ""
    #: Prioritized groups: served before requests of a higher number.
    priority: int = 0

    def eligible(self, pending: int, ack_pending: int) -> bool:
        if not (self.min_pending or self.min_ack_pending):
            return True
        return (0 < self.min_pending <= pending) or (0 < self.min_ack_pending <= ack_pending)


def status_block(code: int, desc: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    return H.build(list(extra), code, desc)


def pending_headers(req: WaitingRequest) -> list[tuple[bytes, bytes]]:
    """What a request still wanted when it ended: its unfilled batch and bytes."""
    return [(b"Nats-Pending-Messages", b"%d" % req.batch),
            (b"Nats-Pending-Bytes", b"%d" % max(req.max_bytes, 0))]


def waiting_request(reply: bytes, req: PullRequest, formal: bool,
                    policy: str) -> WaitingRequest:
    """A checked pull request (a JSON object when ``formal``) as it waits on a consumer
    with this priority ``policy``."""
    deadline = time.monotonic_ns() + req.expires if req.expires > 0 else 0
    out = WaitingRequest(reply, req.batch, req.max_bytes, deadline, req.no_wait,
                      req.idle_heartbeat)
    if policy == "overflow":
        out.min_pending, out.min_ack_pending = req.min_pending, req.min_ack_pending
    elif policy == "pinned_client":
        out.group, out.pin = req.group, req.id
    elif policy == "prioritized":
        out.priority = req.priority if formal else UNRANKED
    return out


@dataclass
class Pin:
    """The client a pinned_client group serves: its id, since when (wall ns), and when
    it last asked for messages (monotonic ns)."""

    id: str
    since: int
    seen: int


class PullQueue:
    """The pull-request half of a consumer."""

    stream: Stream
    config: Any
    state: ConsumerState
    pull: bool
    stopped: bool
    last_active: int
    waiting: deque[WaitingRequest]
    pins: dict[str, Pin]
    _pending_count: int | None
    _loop: asyncio.AbstractEventLoop

    if TYPE_CHECKING:  # provided by the consumer
        def wake(self) -> None: ...
        def _send_out(self) -> None: ...

    def _next_request(self) -> WaitingRequest | None:
        """The first waiting request that may be served now, moved to the front.

        Expired requests end with 408 on the way; a no-wait request whose overflow
        condition does not hold ends with 404; others wait for their condition.
        """
        now = time.monotonic_ns()
        waiting, i = self.waiting, 0
        pending, ack_pending = self._pending_count or 0, len(self.state.pending)
        while i < len(waiting):
            req = waiting[i]
            if req.expires and req.expires <= now:
                del waiting[i]
                self._request_timeout(req)
            elif not self._listened(req):
                del waiting[i]  # its client is gone: nobody would get the messages
            elif req.eligible(pending, ack_pending) and self._pin_allows(req):
                if i:
                    del waiting[i]
                    waiting.appendleft(req)
                return req
            elif req.no_wait and not req.expires:
                del waiting[i]
                self._send_status(req.reply, 404, "No Messages")
            else:
                i += 1
        return None

    def _takes_turns(self) -> bool:
        """Do the first waiting request and the next share a priority?  On a prioritized
        consumer they then take a message each in turn, as with nats-server."""
        w = self.waiting
        return (str(self.config.priority_policy) == "prioritized" and len(w) > 1
                and w[0].priority == w[1].priority)

    def _served(self, req: WaitingRequest) -> None:
        """``req``, first in line, had a message: it leaves once its batch is full, or
        waits behind the others of its priority while they take turns."""
        if req.batch <= 0:
            self.waiting.popleft()
        elif self._takes_turns():
            self.waiting.popleft()
            enqueue_ranked(self.waiting, req)

    def _listened(self, req: WaitingRequest) -> bool:
        """Does anyone still subscribe to the request's reply subject?  nats-server drops
        a request whose client has gone (a fetch that timed out and unsubscribed its
        inbox, a client that disconnected) instead of sending it messages."""
        try:
            plain, groups = self.stream.jsa.account.router.match(req.reply)
        except ValueError:
            return False
        return bool(plain or groups)

    def prune_waiting(self) -> None:
        """Drop the requests whose client has gone (consumer info counts the rest)."""
        if self.waiting and not all(self._listened(req) for req in self.waiting):
            self.waiting = deque(req for req in self.waiting if self._listened(req))

    # -- pinned_client priority groups ------------------------------------------------

    def _pin_admits(self, req: WaitingRequest) -> bool:
        """A request naming a pin must name the current one (423 otherwise)."""
        if not req.pin:
            return True
        pin = self.pins.get(req.group)
        if pin is None:
            self._send_status(req.reply, 423, "Nats-Wrong-Pin-Id", pending_headers(req))
            return False
        if req.pin != pin.id:
            self._send_status(req.reply, 423, "Nats-Pin-Id mismatch")
            return False
        pin.seen = time.monotonic_ns()
        return True

    def _pin_allows(self, req: WaitingRequest) -> bool:
        """While a group is pinned only its client is served; others wait."""
        if not req.group:  # a request naming no group waits while any is pinned
            return not self.pins
        pin = self.pins.get(req.group)
        return pin is None or req.pin == pin.id

    def pin_header(self, req: WaitingRequest, hdr: bytes | None) -> bytes:
        """Pin the group to ``req``'s client if it is free; the header naming the pin
        (empty for a request naming no group, as nats-server sends it)."""
        if not req.group:
            return H.add(hdr, [(b"Nats-Pin-Id", b"")])
        pin = self.pins.get(req.group)
        if pin is None:
            pin = self.pins[req.group] = Pin(base62(22), time.time_ns(), time.monotonic_ns())
            self._loop.call_later(self.config.priority_timeout / NS_PER_S, self._pin_expiry,
                                  req.group, pin)
        req.pin = pin.id
        return H.add(hdr, [(b"Nats-Pin-Id", pin.id.encode())])

    def _pin_expiry(self, group: str, pin: Pin) -> None:
        """Unpin a client that has not asked for messages within priority_timeout."""
        if self.stopped or self.pins.get(group) is not pin:
            return
        ttl = self.config.priority_timeout
        asking = any(r.pin == pin.id for r in self.waiting)
        idle = time.monotonic_ns() - pin.seen
        if asking or idle < ttl:
            later = ttl if asking else ttl - idle
            self._loop.call_later(later / NS_PER_S, self._pin_expiry, group, pin)
            return
        self.unpin(group)

    def unpin(self, group: str) -> None:
        """Free the group: the next request without a pin id gets a new one."""
        if self.pins.pop(group, None) is not None:
            self.wake()

    def priority_groups(self) -> list[dict[str, Any]]:
        """The groups as consumer info reports them, with their pins: the first one
        alone, as nats-server reports."""
        out = []
        for group in self.config.priority_groups[:1]:
            pin = self.pins.get(group)
            state = PriorityGroupState(group=group)
            if pin is not None:
                state.pinned_client_id, state.pinned_ts = pin.id, pin.since
            out.append(state.dump())
        return out

    def _nothing_left(self) -> None:
        """No message to send: end the no_wait requests, wherever they wait in the queue.

        As nats-server at the end of the stream: a no_wait request ends with 404 unless
        it has an expiry and has had nothing yet; with an expiry it is a one-shot that
        waits for its first message, then ends as soon as nothing more is at hand (left
        waiting, it would take the next message published, which its client, done with
        its fetch, no longer wants).
        """
        if not any(req.no_wait for req in self.waiting):
            return
        keep: deque[WaitingRequest] = deque()
        for req in self.waiting:
            if req.no_wait and (not req.expires or req.sent):
                self._send_status(req.reply, 404, "No Messages")
            else:
                keep.append(req)
        self.waiting = keep

    def add_request(self, reply: bytes, body: bytes, level_unmet: bool = False) -> None:
        if level_unmet:
            self._send_status(reply, 412, "Required Api Level")
            return
        if not self.pull:
            self._send_status(reply, 409, "Consumer is push based")
            return
        cfg, policy = self.config, str(self.config.priority_policy)
        formal = body.strip().startswith(b"{")
        try:
            asked = parse_pull_request(body)
            if cfg.max_batch and asked.batch > cfg.max_batch:
                self._send_status(reply, 409, f"Exceeded MaxRequestBatch of {cfg.max_batch}")
                return
            check_priority(asked, formal, cfg.priority_groups, policy)
        except BadPullRequest as exc:
            self._send_status(reply, 400, f"Bad Request - {exc}")
            return
        req = waiting_request(reply, asked, formal, policy)
        if req.group and not self._pin_admits(req):
            return
        if cfg.max_waiting and len(self.waiting) >= cfg.max_waiting:
            self.prune_waiting()
        if cfg.max_waiting and len(self.waiting) >= cfg.max_waiting:
            if not req.heartbeat:  # a client with heartbeats notices their absence
                self._send_status(reply, 409, "Exceeded MaxWaiting")
            return
        self.last_active = time.time_ns()
        if policy == "prioritized":
            enqueue_ranked(self.waiting, req)
        else:
            self.waiting.append(req)
        if req.expires:
            delay = (req.expires - time.monotonic_ns()) / NS_PER_S
            self._loop.call_later(max(delay, 0), self._expire_requests)
        if req.heartbeat:
            req.last_hb = time.monotonic_ns()
            self._loop.call_later(req.heartbeat / NS_PER_S, self._pull_heartbeat, req)
        self.wake()

    def _expire_requests(self) -> None:
        # Timers may fire a hair early; a request due within the next millisecond ends now.
        now = time.monotonic_ns() + 1_000_000
        keep: deque[WaitingRequest] = deque()
        for req in self.waiting:
            if req.expires and req.expires <= now:
                self._request_timeout(req)
            else:
                keep.append(req)
        self.waiting = keep

    def _request_timeout(self, req: WaitingRequest) -> None:
        self._send_status(req.reply, 408, "Request Timeout", pending_headers(req))

    def _pull_heartbeat(self, req: WaitingRequest) -> None:
        """A waiting request hears from the consumer at least every ``heartbeat``: a
        message delivered to it counts (``last_hb``), as with nats-server."""
        if req not in self.waiting or self.stopped:
            return
        now = time.monotonic_ns()
        if now - req.last_hb >= req.heartbeat - 1_000_000:  # timers may fire a hair early
            self._send_status(req.reply, 100, "Idle Heartbeat", self._last_headers())
            req.last_hb = now
        delay = req.last_hb + req.heartbeat - now
        self._loop.call_later(delay / NS_PER_S, self._pull_heartbeat, req)

    def _last_headers(self) -> list[tuple[bytes, bytes]]:
        st = self.state
        return [(b"Nats-Last-Consumer", b"%d" % st.delivered_consumer_seq),
                (b"Nats-Last-Stream", b"%d" % st.delivered_stream_seq)]

    def _send_status(self, to: bytes, code: int, desc: str,
                     extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self._send_out()
        block = status_block(code, desc, extra)
        self.stream.jsa.account.router.deliver_as(to, to, None, block, b"")
