"""Acknowledgements of a consumer: ack kinds, ack_wait deadlines, redelivery, the floor.

:class:`AckTracking` is mixed into the consumer; deadlines are a heap on the monotonic
clock, checked by one timer armed for the earliest.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from jetport.core.config.values import parse_duration
from jetport.core.jetstream.advisories import advise
from jetport.core.timeutil import NS_PER_S
from jetport.storage.base import ConsumerState

if TYPE_CHECKING:
    from jetport.core.jetstream.consumer import Consumer
    from jetport.core.jetstream.stream import Stream



def nak_delay(rest: bytes) -> int:
    """-NAK's optional delay: JSON {"delay": ns} or a Go duration; ns."""
    rest = rest.strip()
    if not rest:
        return 0
    if rest.startswith(b"{"):
        try:
            return int(json.loads(rest).get("delay") or 0)
        except (ValueError, AttributeError):
            return 0
    try:
        return int(parse_duration(rest.decode()) * NS_PER_S)
    except ValueError:
        return 0


class AckTracking:
    """The acknowledgement half of a consumer."""

    stream: Stream
    name: str
    config: Any
    state: ConsumerState
    _order: deque[int]
    _redeliver: list[int]
    _deadlines: list[tuple[int, int]]
    _due: dict[int, int]
    _timer: asyncio.TimerHandle | None
    _timer_at: int
    _blocked: bool
    _loop: asyncio.AbstractEventLoop

    if TYPE_CHECKING:  # provided by the consumer
        def wake(self) -> None: ...
        def save(self, soon: bool = False) -> None: ...
        def add_request(self, reply: bytes, body: bytes, level_unmet: bool = False) -> None: ...

    def _advise(self, event: str, kind: str, **fields: Any) -> None:
        stream = self.stream
        advise(stream.jsa, f"CONSUMER.{event}.{stream.name}.{self.name}", kind,
               stream=stream.name, consumer=self.name, **fields)

    def _set_deadline(self, seq: int, delay_ns: int) -> None:
        self._set_due(seq, time.monotonic_ns() + delay_ns)
        self._arm_timer()

    def _set_due(self, seq: int, due: int) -> None:
        """(Re)set when ``seq`` is due again (monotonic ns); an older deadline for it no
        longer counts.  The timer is the caller's to arm."""
        self._due[seq] = due
        heapq.heappush(self._deadlines, (due, seq))

    def _arm_timer(self) -> None:
        if not self._deadlines:
            return
        head = self._deadlines[0][0]
        if self._timer is not None:
            if self._timer_at <= head:
                return
            self._timer.cancel()
        self._timer_at = head
        delay = max(head - time.monotonic_ns(), 0) / NS_PER_S
        self._timer = self._loop.call_later(delay, self._ack_timeouts)

    def _ack_timeouts(self) -> None:
        """Unacked past ack_wait: queue for redelivery (up to max_deliver)."""
        self._timer = None
        now = time.monotonic_ns()
        st, due = self.state, []
        while self._deadlines and self._deadlines[0][0] <= now:
            at, seq = heapq.heappop(self._deadlines)
            if seq in st.pending and self._due.get(seq) == at:
                del self._due[seq]
                due.append(seq)
        for seq in due:
            self._schedule_redelivery(seq)
        self._arm_timer()
        if due:
            self.wake()

    def _schedule_redelivery(self, seq: int) -> None:
        st = self.state
        dc = st.redelivered.get(seq, 1)
        if self.config.max_deliver > 0 and dc >= self.config.max_deliver:
            st.pending.pop(seq, None)
            st.redelivered.pop(seq, None)
            self._advance_floor()
            self._advise("MAX_DELIVERIES", "max_deliver", stream_seq=seq, deliveries=dc)
            return
        if seq not in self._redeliver:
            self._redeliver.append(seq)
            self._redeliver.sort()

    def message_removed(self, seq: int) -> None:
        """The stream no longer has ``seq``.  Pending here, it ends as a terminated
        delivery would (advisory and all), with nats-server's reason, so it neither
        holds a max_ack_pending slot nor waits for a redelivery that cannot happen."""
        st = self.state
        entry = st.pending.get(seq)
        if entry is None:
            return
        self._advise("MSG_TERMINATED", "terminated", consumer_seq=entry[0], stream_seq=seq,
                     deliveries=st.redelivered.get(seq, 1),
                     reason="Unacknowledged message was deleted")
        if seq in self._redeliver:
            self._redeliver.remove(seq)
        self._ack([seq])
        self.save()

    def ack_plain(self, seqs: list[int]) -> None:
        """Plain acks (no payload, no reply) of these stream sequences, in order: what
        most acks are, taken a run at a time."""
        self._ack(seqs)
        self.save()

    def process_ack(self, sseq: int, dseq: int, payload: bytes, reply: bytes | None) -> None:
        kind, _, rest = payload.strip().partition(b" ")
        st = self.state
        if kind in (b"", b"+ACK", b"+OK"):
            self._ack([sseq])
        elif kind == b"-NAK":
            if sseq in st.pending:
                self._advise("MSG_NAKED", "nak", consumer_seq=dseq, stream_seq=sseq,
                             deliveries=st.redelivered.get(sseq, 1))
                delay = nak_delay(rest)
                if delay:
                    self._set_deadline(sseq, delay)
                else:
                    self._due.pop(sseq, None)
                    self._schedule_redelivery(sseq)
                    self.wake()
        elif kind == b"+WPI":
            if sseq in st.pending:
                self._set_deadline(sseq, self.config.ack_wait)
                st.pending[sseq] = (st.pending[sseq][0], time.time_ns())
        elif kind == b"+NXT":
            self._ack([sseq])
            if reply:
                self.add_request(reply, rest)
                reply = None
        elif kind == b"+TERM":
            if sseq in st.pending:
                reason = {"reason": rest.strip().decode(errors="replace")} if rest.strip() else {}
                self._advise("MSG_TERMINATED", "terminated", consumer_seq=dseq,
                             stream_seq=sseq, deliveries=st.redelivered.get(sseq, 1), **reason)
            self._ack([sseq])
        if reply:
            self.stream.jsa.client.send(reply, None, None, b"")
        self.save()

    def _ack(self, seqs: list[int]) -> None:
        st = self.state
        pending = st.pending
        if self.config.ack_policy == "all":
            top = max(seqs)
            acked = [s for s in pending if s <= top]
        else:
            acked = [s for s in seqs if s in pending]
        redelivered, due = st.redelivered, self._due
        for s in acked:
            if pending.pop(s, None) is None:
                continue  # acked twice in this run
            if redelivered:
                redelivered.pop(s, None)
            due.pop(s, None)
        if acked:
            self._advance_floor()
            self.stream.acked(cast("Consumer", self), acked)
            if self._blocked:  # only max_ack_pending makes delivery wait for acks
                self._blocked = False
                self.wake()

    def _advance_floor(self) -> None:
        st = self.state
        if st.pending:
            # Pending sequences in delivery order, which is stream order (a redelivery
            # keeps its place), trimmed lazily: the first still pending is the lowest.
            # (A dict's first key would do, but finding it walks every deleted slot.)
            order, pending = self._order, st.pending
            while order[0] not in pending:
                order.popleft()
            low = order[0]
            st.ack_floor_stream_seq = low - 1
            st.ack_floor_consumer_seq = st.pending[low][0] - 1
        else:
            st.ack_floor_stream_seq = st.delivered_stream_seq
            st.ack_floor_consumer_seq = st.delivered_consumer_seq
