"""Pull requests waiting on a consumer: queued, expired, kept alive with heartbeats and
answered with nats-server's status messages (404, 408, 409, 100).

:class:`PullQueue` is mixed into the consumer, whose delivery loop serves the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import headers as H
from core.jetstream.models import BadPullRequest, parse_pull_request
from storage.base import ConsumerState

if TYPE_CHECKING:
    from core.jetstream.stream import Stream

_NS = 1_000_000_000


@dataclass
class PullRequest:
    reply: bytes
    batch: int
    max_bytes: int
    expires: int  # monotonic ns deadline, 0 = never
    no_wait: bool
    heartbeat: int  # ns
    last_hb: int = 0
    sent: int = 0


def status_block(code: int, desc: str, extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    return H.build(list(extra), code, desc)


def pending_headers(req: PullRequest) -> list[tuple[bytes, bytes]]:
    """What a request still wanted when it ended: its unfilled batch and bytes."""
    return [(b"Nats-Pending-Messages", b"%d" % req.batch),
            (b"Nats-Pending-Bytes", b"%d" % max(req.max_bytes, 0))]


def parse_pull(reply: bytes, body: bytes) -> PullRequest:
    req = parse_pull_request(body)
    deadline = time.monotonic_ns() + req.expires if req.expires > 0 else 0
    return PullRequest(reply, req.batch, req.max_bytes, deadline, req.no_wait,
                       req.idle_heartbeat)


class PullQueue:
    """The pull-request half of a consumer."""

    stream: Stream
    config: Any
    state: ConsumerState
    pull: bool
    stopped: bool
    last_active: int
    waiting: deque[PullRequest]
    _loop: asyncio.AbstractEventLoop

    if TYPE_CHECKING:  # provided by the consumer
        def wake(self) -> None: ...
        def _send_out(self) -> None: ...

    def _nothing_left(self) -> None:
        """No message to send: answer pull requests that must not wait."""
        while self.waiting and self.waiting[0].no_wait and not self.waiting[0].expires:
            self._send_status(self.waiting.popleft().reply, 404, "No Messages")

    def add_request(self, reply: bytes, body: bytes, level_unmet: bool = False) -> None:
        if level_unmet:
            self._send_status(reply, 412, "Required Api Level")
            return
        if not self.pull:
            self._send_status(reply, 409, "Consumer is push based")
            return
        try:
            req = parse_pull(reply, body)
        except BadPullRequest as exc:
            self._send_status(reply, 400, f"Bad Request - {exc}")
            return
        cfg = self.config
        if cfg.max_batch and req.batch > cfg.max_batch:
            self._send_status(reply, 409, f"Exceeded MaxRequestBatch of {cfg.max_batch}")
            return
        if cfg.max_waiting and len(self.waiting) >= cfg.max_waiting:
            self._send_status(reply, 409, "Exceeded MaxWaiting")
            return
        self.last_active = time.time_ns()
        self.waiting.append(req)
        if req.expires:
            delay = (req.expires - time.monotonic_ns()) / _NS
            self._loop.call_later(max(delay, 0), self._expire_requests)
        if req.heartbeat:
            req.last_hb = time.monotonic_ns()
            self._loop.call_later(req.heartbeat / _NS, self._pull_heartbeat, req)
        self.wake()

    def _expire_requests(self) -> None:
        # Timers may fire a hair early; a request due within the next millisecond ends now.
        now = time.monotonic_ns() + 1_000_000
        keep: deque[PullRequest] = deque()
        for req in self.waiting:
            if req.expires and req.expires <= now:
                self._request_timeout(req)
            else:
                keep.append(req)
        self.waiting = keep

    def _request_timeout(self, req: PullRequest) -> None:
        self._send_status(req.reply, 408, "Request Timeout", pending_headers(req))

    def _pull_heartbeat(self, req: PullRequest) -> None:
        if req not in self.waiting or self.stopped:
            return
        self._send_status(req.reply, 100, "Idle Heartbeat", self._last_headers())
        self._loop.call_later(req.heartbeat / _NS, self._pull_heartbeat, req)

    def _last_headers(self) -> list[tuple[bytes, bytes]]:
        st = self.state
        return [(b"Nats-Last-Consumer", b"%d" % st.delivered_consumer_seq),
                (b"Nats-Last-Stream", b"%d" % st.delivered_stream_seq)]

    def _send_status(self, to: bytes, code: int, desc: str,
                     extra: list[tuple[bytes, bytes]] = ()) -> None:
        self._send_out()
        block = status_block(code, desc, extra)
        self.stream.jsa.account.router.deliver_as(to, to, None, block, b"")
