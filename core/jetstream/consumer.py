"""Consumers: cursors over a stream that deliver, track acks and redeliver.

One delivery task per consumer runs while there is something to deliver and somewhere
to deliver it (a push subscriber's interest, or a waiting pull request), so idle
consumers cost nothing but their state.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from jetport.core import headers as H
from jetport.core.client import Delivery
from jetport.core.jetstream import apilevel
from jetport.core.jetstream.acks import AckTracking
from jetport.core.jetstream.deliver_policy import start_position
from jetport.core.jetstream.models import ZERO_TIME_NS, format_time
from jetport.core.jetstream.pull import (
    Pin,
    PullQueue,
    WaitingRequest,
    pending_headers,
    status_block,
)
from jetport.core.log import log
from jetport.core.subjects import subject_matches
from jetport.core.tasks import spawn
from jetport.core.timeutil import NS_PER_S, rfc3339
from jetport.storage.base import ConsumerState, StorageError, StoredMsg

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream

MAX_DURATION = (1 << 63) - 1
ACK_PREFIX = b"$JS.ACK."
#: Push consumers with flow control ask for a reply after this many bytes.
FLOW_CONTROL_WINDOW = 4 * 1024 * 1024
#: Messages read from the store at once for a consumer that is not paced.
READ_AHEAD = 256
#: Longest a durable consumer's saved state lags behind it, in seconds.
SAVE_EVERY = 0.05


class Consumer(PullQueue, AckTracking):
    def __init__(self, stream: Stream, config: Any, created_ns: int,
                 state: ConsumerState | None = None, name: str = "") -> None:
        self.stream = stream
        self.config = config
        self.name: str = name or config.name or config.durable_name
        self.created_ns = created_ns
        self.state = state or ConsumerState()
        self._order: deque[int] = deque(sorted(self.state.pending))
        self.pull = not config.deliver_subject
        self.filters = [f.encode() for f in (config.filter_subjects or [])] or (
            [config.filter_subject.encode()] if config.filter_subject else []
        )
        self.waiting: deque[WaitingRequest] = deque()
        self.pins: dict[str, Pin] = {}  # pinned_client groups: group -> its pin
        #: Stream seqs due again, kept sorted: a restored consumer's pending ones first.
        self._redeliver: list[int] = sorted(self.state.pending)
        self._deadlines: list[tuple[int, int]] = []  # (monotonic ns due, stream seq) heap
        self._due: dict[int, int] = {}  # stream seq -> its current deadline
        self._timer_at = 0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hb_timer: asyncio.TimerHandle | None = None
        self._resume_timer: asyncio.TimerHandle | None = None
        self._pre: deque[int] = deque()  # last_per_subject seqs still to send
        self._started = state is not None
        self._starting: asyncio.Task[None] | None = None
        self._pending_count: int | None = None
        #: The stream's last sequence and removal count when ``_pending_count`` was
        #: brought up to date.
        self._counted_to = 0
        self._counted_removals = 0
        self.last_active = time.time_ns()
        self._last_ts = 0
        self._fc_bytes = 0
        self._fc_pending: bytes | None = None
        self._blocked = False
        self._config_json: tuple[Any, str] = (None, "")
        self.stopped = False
        self._loop = asyncio.get_running_loop()
        self._saving: asyncio.Handle | None = None
        #: Deliveries of the current run not sent yet, all to ``_out_route``.
        self._out: list[Delivery] = []
        self._out_route = b""
        #: Every ack reply subject starts with this.
        self._ack_base = b"%b%b.%b." % (ACK_PREFIX, stream.name.encode(), self.name.encode())

    # -- wiring -----------------------------------------------------------------------

    @property
    def ack_none(self) -> bool:
        return bool(self.config.ack_policy == "none")

    def matches(self, subject: bytes) -> bool:
        return not self.filters or any(subject_matches(f, subject) for f in self.filters)

    def wake(self) -> None:
        """Something changed: deliver if possible."""
        if self.stopped:
            return
        if self._task is None or self._task.done():
            self._task = spawn(self._run(), f"consumer {self.stream.name} > {self.name}")

    def start(self) -> None:
        if not self.pull:
            self.stream.jsa.account.router.watch(self.config.deliver_subject.encode(), self.wake)
        if self.config.idle_heartbeat:
            self._hb_timer = self._loop.call_later(self.config.idle_heartbeat / NS_PER_S,
                                                   self._heartbeat)
        if self.config.inactive_threshold:
            self._loop.call_later(self.config.inactive_threshold / NS_PER_S, self._check_inactive)
        self.pause_changed()
        self.wake()

    def pause(self, until: int | None) -> None:
        """Deliver nothing until ``until`` (ns; None or past resumes now), as config."""
        self.config = apilevel.stamp_consumer(
            self.config.model_copy(update={"pause_until": until}))
        self.save(soon=True)
        self.advise_pause()
        self.wake()

    def pause_changed(self) -> None:
        """A config whose ``pause_until`` is ahead (a create or update) starts a pause."""
        if self.paused():
            self.advise_pause()

    def advise_pause(self) -> None:
        """Tell the pause advisory's listeners where the pause stands now."""
        until = self.config.pause_until
        self._advise("PAUSE", "consumer_pause", paused=self.paused() > 0,
                     pause_until=format_time(ZERO_TIME_NS if until is None else until))

    def _pause_over(self) -> None:
        if not self.paused() and not self.stopped:
            self.advise_pause()  # paused: false, as the pause ran out
        self.wake()

    def paused(self) -> int:
        """Nanoseconds of pause left (0: delivering); keeps a timer to resume on time."""
        until = self.config.pause_until
        if not until and self._resume_timer is None:
            return 0  # the delivery loop's usual case, kept cheap
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        left = (until or 0) - time.time_ns()
        if left <= 0 or self.stopped:
            return 0
        # a far pause is looked at again daily, and reported as Go's longest duration
        self._resume_timer = self._loop.call_later(min(left / NS_PER_S, 86_400), self._pause_over)
        return min(left, MAX_DURATION)

    def stop(self, deleted: bool = False) -> None:
        if self._saving is not None:
            self._saving.cancel()
            if not deleted:
                self._save_now()
        self.stopped = True
        if not self.pull:
            self.stream.jsa.account.router.unwatch(self.config.deliver_subject.encode(),
                                                  self.wake)
        for handle in (self._timer, self._hb_timer, self._resume_timer):
            if handle is not None:
                handle.cancel()
        if self._task is not None:
            self._task.cancel()
        if deleted:
            for req in self.waiting:
                self._send_status(req.reply, 409, "Consumer Deleted")
        self.waiting.clear()

    # -- state ------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        """Place a new consumer once, however many callers (info, delivery) ask."""
        if self._starting is None:
            self._starting = spawn(self._start_position(),
                                   f"consumer {self.stream.name} > {self.name}: start",
                                   report=False)
        await asyncio.shield(self._starting)

    async def _start_position(self) -> None:
        start, first = await start_position(self.stream, self.config, self.filters)
        self._pre.extend(first)
        self.state.delivered_stream_seq = start - 1
        self.state.ack_floor_stream_seq = start - 1
        self._pending_count = None
        self._started = True
        self.save()

    async def num_pending(self) -> int:
        """Messages matching the filter after the delivered point.

        Counted once, then kept: deliveries take off what they send, and what the
        stream appended since is counted on the next call (recent messages, so from
        memory).  A removal from the stream means counting again.
        """
        store = self.stream.store
        st = store.state()
        filters = self.filters or [b">"]
        if (self._pending_count is None or self._counted_removals != store.removals
                or st.last_seq < self._counted_to):
            start = self.state.delivered_stream_seq + 1
            if not self.filters and not st.num_deleted:
                n = max(0, min(st.msgs, st.last_seq - start + 1))
            else:
                n = sum([await store.count(f, start) for f in filters])
            self._pending_count = n + len(self._pre)
        elif st.last_seq > self._counted_to:
            start = max(self._counted_to, self.state.delivered_stream_seq) + 1
            n = sum([await store.count(f, start) for f in filters])
            self._pending_count = (self._pending_count or 0) + n
        self._counted_to, self._counted_removals = st.last_seq, store.removals
        return self._pending_count

    def save(self, soon: bool = False) -> None:
        """Write-behind: the state is recorded at most every ``SAVE_EVERY`` seconds,
        however many acks arrive (like nats-server, a crash can forget the last acks,
        whose messages are then redelivered); ``soon`` records with the next commit."""
        if self.stopped:
            return
        if self._saving is not None:
            if not soon:
                return
            self._saving.cancel()
        self._saving = (self._loop.call_soon(self._save_now) if soon else
                        self._loop.call_later(SAVE_EVERY, self._save_now))

    def _save_now(self) -> None:
        self._saving = None
        if self.stopped:
            return
        if self._config_json[0] is not self.config:  # configs change rarely; state often
            self._config_json = (self.config, self.config.model_dump_json())
        try:
            self.stream.jsa.consumer_store(self.stream).save(
                self.name, self._config_json[1], self.state
            )
        except StorageError as exc:  # the account logs the fault once and recovers
            log.debug("consumer %s > %s: state not saved: %s", self.stream.name, self.name,
                      exc)

    # -- delivery ---------------------------------------------------------------------

    def _target(self) -> WaitingRequest | bytes | None:
        """Where the next message goes, or None when nobody is asking."""
        if self.pull:
            return self._next_request()
        subject = self.config.deliver_subject.encode()
        plain, groups = self.stream.jsa.account.router.match(subject)
        return subject if plain or groups else None

    async def _run(self) -> None:
        try:
            if not self._started:
                await self._ensure_started()
            await self.num_pending()
            cfg = self.config
            paced = cfg.replay_policy == "original" or bool(cfg.rate_limit_bps)
            # Messages read ahead in this run, next one last.  Reads do not suspend
            # (see ``_read``), so nothing can change the stream or the consumer between
            # the read and the deliveries; what is left when the run ends is dropped and
            # read again next time.
            buf: list[StoredMsg] = []
            while not self.stopped:
                if not buf and self._out:
                    # Let what is ready reach the wire (and acks come in) before the
                    # next read, so the subscriber works while this run goes on.
                    self._send_out()
                    await asyncio.sleep(0)
                    continue
                if self.paused():
                    self._nothing_left()  # pull requests wait, or end now if they must
                    return
                target = self._target()
                if target is None:
                    return
                cfg = self.config
                room = cfg.max_ack_pending - len(self.state.pending)
                # At max_ack_pending only redeliveries go out: like nats-server, what is
                # already pending is not held back by the limit it counts towards.
                full = not self.ack_none and cfg.max_ack_pending > 0 and room <= 0
                if full and not (self._redeliver or buf and buf[-1].seq in self.state.pending):
                    self._blocked = True  # an ack (or a message given up on) wakes us
                    return
                if self._fc_pending is not None:
                    return  # waiting for the subscriber to answer flow control
                if not buf:
                    limit = 1 if paced or cfg.flow_control else READ_AHEAD
                    if isinstance(target, WaitingRequest):
                        limit = min(limit, target.batch)
                    if not self.ack_none and cfg.max_ack_pending > 0:
                        limit = min(limit, max(room, 1))
                    buf = await self._read(limit, redeliveries_only=full)
                    if not buf:
                        if full:
                            self._blocked = True
                            return  # one-shot requests wait for room, as nats-server's
                        self._nothing_left()
                        return
                    if paced:
                        await self._pace(buf[-1])
                        if self.stopped:
                            return
                        target = self._target()
                        if target is None:
                            self._unfetch(buf.pop())
                            return
                # As many as this target takes without another look at the state.
                req = target if isinstance(target, WaitingRequest) else None
                n = 1
                one = req is not None and (req.max_bytes != 0 or self._takes_turns())
                if not (paced or cfg.flow_control or one):
                    n = min(len(buf), req.batch) if req is not None else len(buf)
                    if not self.ack_none and cfg.max_ack_pending > 0:
                        n = min(n, max(room, 1))  # a redelivery comes alone
                now, mono = time.time_ns(), time.monotonic_ns()
                for _ in range(n):
                    msg = buf.pop()
                    if req is not None and req.max_bytes and msg.size > req.max_bytes:
                        # the request cannot take this message: end it, keep the message
                        self.waiting.popleft()
                        self._send_status(req.reply, 409, "Message Size Exceeds MaxBytes",
                                          pending_headers(req))
                        self._unfetch(msg)
                        buf.clear()
                        break
                    self._deliver(msg, target, now, mono)
                    if cfg.flow_control:
                        self._flow_control(msg)
                self._arm_timer()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged with what it belongs to
            log.exception("consumer %s > %s failed", self.stream.name, self.name)
        finally:
            self._send_out()

    async def _pace(self, msg: StoredMsg) -> None:
        """replay_policy original keeps the stored gaps; rate_limit_bps caps the rate."""
        cfg = self.config
        delay = 0.0
        if cfg.replay_policy == "original" and self._last_ts and msg.ts > self._last_ts:
            delay = (msg.ts - self._last_ts) / NS_PER_S
        if cfg.rate_limit_bps:
            delay = max(delay, msg.size * 8 / cfg.rate_limit_bps)
        self._last_ts = msg.ts
        if delay > 0:
            await asyncio.sleep(delay)

    def _unfetch(self, msg: StoredMsg) -> None:
        """A message read but not sent stays next in line.  Redeliveries go back to
        their queue; a new message is simply read again from the store; one from the
        last-per-subject list goes back to the front of that list."""
        if msg.seq in self.state.pending:
            self._redeliver.insert(0, msg.seq)
        elif msg.seq <= self.state.delivered_stream_seq:
            self._pre.appendleft(msg.seq)
            if self._pending_count is not None:
                self._pending_count += 1

    def _flow_control(self, msg: StoredMsg) -> None:
        """Ask the push subscriber to confirm it keeps up, every window of bytes."""
        self._fc_bytes += msg.size
        if self._fc_bytes < FLOW_CONTROL_WINDOW:
            return
        self._fc_bytes = 0
        self._send_out()
        token = secrets.token_hex(2)
        self._fc_pending = b"$JS.FC.%b.%b.%b" % (self.stream.name.encode(), self.name.encode(),
                                                 token.encode())
        subject = self.config.deliver_subject.encode()
        self.stream.jsa.account.router.deliver_as(
            subject, subject, self._fc_pending, status_block(100, "FlowControl Request"), b""
        )

    def flow_control_reply(self, subject: bytes) -> None:
        if subject == self._fc_pending:
            self._fc_pending = None
            self.wake()

    async def _read(self, limit: int, redeliveries_only: bool = False) -> list[StoredMsg]:
        """The next messages to send, next one last: a due redelivery or a
        last-per-subject message alone, otherwise up to ``limit`` new ones (none when
        ``redeliveries_only``: the consumer is at max_ack_pending)."""
        store = self.stream.store
        horizon = store.committed_seq()  # what was delivered once may go out again
        while self._redeliver:
            seq = self._redeliver.pop(0)
            if seq in self.state.pending:
                msg = await store.get(seq)
                if msg is not None:
                    return [msg]
                self.state.pending.pop(seq, None)
        if redeliveries_only:
            return []
        while self._pre:
            if self._pre[0] > horizon:
                return []  # the commit that covers it wakes this consumer
            msg = await store.get(self._pre.popleft())
            if self._pending_count:
                self._pending_count -= 1
            if msg is not None:
                return [msg]
        start = self.state.delivered_stream_seq + 1
        if start > horizon:
            return []
        msgs = await store.next_many(start, self.filters or None, limit)
        while msgs and msgs[-1].seq > horizon:
            msgs.pop()
        msgs.reverse()
        return msgs

    def _deliver(self, msg: StoredMsg, target: WaitingRequest | bytes, now: int, mono: int) -> None:
        """Send ``msg`` to ``target`` as of wall clock ``now`` and monotonic ``mono``
        (ns); the caller arms the ack timer afterwards."""
        st, cfg = self.state, self.config
        redelivery = msg.seq in st.pending
        dc = st.redelivered.get(msg.seq, 1) + 1 if redelivery else 1
        if redelivery:
            st.redelivered[msg.seq] = dc
        st.delivered_consumer_seq += 1
        dseq = st.delivered_consumer_seq
        if msg.seq > st.delivered_stream_seq:
            st.delivered_stream_seq = msg.seq
            if self._pending_count and msg.seq <= self._counted_to:
                self._pending_count -= 1
        pending = self._pending_count or 0
        reply = b"%b%d.%d.%d.%d.%d" % (self._ack_base, dc, msg.seq, dseq, msg.ts, pending)
        hdr, data = msg.hdr, msg.data
        if isinstance(target, WaitingRequest) and str(cfg.priority_policy) == "pinned_client":
            hdr = self.pin_header(target, hdr)
        if cfg.headers_only:
            hdr = H.add(hdr, [(b"Nats-Msg-Size", b"%d" % len(data))])
            data = b""
        if not self.ack_none:
            if not redelivery:
                self._order.append(msg.seq)
            st.pending[msg.seq] = (dseq, now)
            wait = cfg.ack_wait
            if cfg.backoff:
                wait = cfg.backoff[min(dc - 1, len(cfg.backoff) - 1)]
            self._set_due(msg.seq, mono + wait)
        else:
            st.ack_floor_stream_seq = st.delivered_stream_seq
            st.ack_floor_consumer_seq = dseq
        self.last_active = now
        route = target.reply if isinstance(target, WaitingRequest) else target
        if route != self._out_route:
            self._send_out()
            self._out_route = route
        self._out.append((msg.subject, reply, hdr, data))
        if isinstance(target, WaitingRequest):
            target.sent += 1
            target.last_hb = mono
            target.batch -= 1
            if target.max_bytes:
                target.max_bytes -= msg.size
            self._served(target)
        self.save()

    def _send_out(self) -> None:
        """Send the deliveries gathered in this run (one router call per target);
        anything else sent to a target first sends these."""
        if self._out:
            out, self._out = self._out, []
            self.stream.jsa.account.router.deliver_batch_as(self._out_route, out)

    def _heartbeat(self) -> None:
        """Push consumers: tell an idle subscriber the consumer is alive."""
        if self.stopped:
            return
        interval = self.config.idle_heartbeat / NS_PER_S
        if time.time_ns() - self.last_active >= self.config.idle_heartbeat:
            subject = self.config.deliver_subject.encode()
            extra = self._last_headers()
            if self._fc_pending is not None:
                extra.append((b"Nats-Consumer-Stalled", self._fc_pending))
            self.stream.jsa.account.router.deliver_as(
                subject, subject, None, status_block(100, "Idle Heartbeat", extra), b""
            )
        self._hb_timer = self._loop.call_later(interval, self._heartbeat)

    def _check_inactive(self) -> None:
        if self.stopped:
            return
        threshold = self.config.inactive_threshold
        idle = time.time_ns() - self.last_active
        if self._target() is not None:
            self.last_active = time.time_ns()
        elif idle >= threshold:
            log.debug("consumer %s > %s inactive, deleting", self.stream.name, self.name)
            self.stream.jsa.remove_consumer(self.stream, self.name)
            return
        self._loop.call_later(threshold / NS_PER_S / 2 or 0.1, self._check_inactive)

    def bound(self) -> bool:
        """A push consumer with someone listening on its deliver subject."""
        return not self.pull and self._target() is not None

    def done_with(self, seq: int) -> bool:
        """Has this consumer delivered and settled ``seq`` (or will never want it)?"""
        st = self.state
        if seq in st.pending:
            return False
        return seq <= st.delivered_stream_seq or not self._started

    # -- info -------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        st = self.state
        if not self._started:
            await self._ensure_started()
        self.prune_waiting()
        doc: dict[str, Any] = {
            "stream_name": self.stream.name,
            "name": self.name,
            "created": rfc3339(ns=self.created_ns),
            "config": self.config.dump(),
            "delivered": {"consumer_seq": st.delivered_consumer_seq,
                          "stream_seq": st.delivered_stream_seq,
                          "last_active": rfc3339(ns=self.last_active)},
            "ack_floor": {"consumer_seq": st.ack_floor_consumer_seq,
                          "stream_seq": st.ack_floor_stream_seq},
            "num_ack_pending": len(st.pending),
            "num_redelivered": len(st.redelivered),
            "num_waiting": len(self.waiting),
            "num_pending": await self.num_pending(),
            "cluster": {"leader": self.stream.jsa.js.hub.server_name},
            "ts": rfc3339(),
        }
        if self.bound():
            doc["push_bound"] = True
        if self.config.priority_policy != "none":
            doc["priority_groups"] = self.priority_groups()
        left = self.paused()
        if left:
            doc["paused"], doc["pause_remaining"] = True, left
        return doc


async def recover_consumers(stream: Stream) -> None:
    """Bring back a restored stream's durable consumers with their progress."""
    from jetport.core.jetstream.models import ConsumerConfig

    saved = await stream.jsa.consumer_store(stream).load()
    for name, (config_json, state) in saved.items():
        if name.startswith("$origin."):
            continue  # a mirror/source position, not a consumer
        config = ConsumerConfig.model_validate_json(config_json)
        consumer = Consumer(stream, config, time.time_ns(), state, name)
        stream.consumers[name] = consumer
        consumer.start()

