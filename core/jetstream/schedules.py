"""Message schedules (ADR-51): a stored message that publishes another one later.

On a stream with ``allow_msg_schedules``, a message with ``Nats-Schedule`` is a schedule
for its subject (a newer one replaces it: schedules are stored with ``Nats-Rollup:
sub``).  When due, a copy of it (or of the last message on ``Nats-Schedule-Source``) is
stored on ``Nats-Schedule-Target`` with ``Nats-Scheduler`` and ``Nats-Schedule-Next``.
As in nats-server, the produced message itself drives the schedule: ``Nats-Schedule-Next:
purge`` removes the schedule's subject (a one-shot is done, or a client cancelled it),
a time re-arms it.  Due times live in memory and are rebuilt from the stored messages
when the stream loads, so what fell due while the hub was down fires once at start.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import TYPE_CHECKING, NamedTuple

from jetport.core import headers as H
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.cron import (
    Fire,
    ScheduleError,
    load_zone,
    next_fire,
    parse_rfc3339,
    to_ns,
)
from jetport.core.jetstream.models_base import subjects_collide, valid_publish_subject
from jetport.core.jetstream.ttl import TTL, parse_ttl
from jetport.core.log import log
from jetport.core.tasks import spawn
from jetport.core.timeutil import NS_PER_S
from jetport.storage.base import StorageError

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream
    from jetport.storage.base import StoredMsg

#: The pattern header; also the start of every other schedule header's name.
SCHEDULE = b"Nats-Schedule"
TARGET = b"Nats-Schedule-Target"
SCHEDULE_TTL = b"Nats-Schedule-TTL"
TIME_ZONE = b"Nats-Schedule-Time-Zone"
SCHEDULE_ROLLUP = b"Nats-Schedule-Rollup"
SOURCE = b"Nats-Schedule-Source"
SCHEDULER = b"Nats-Scheduler"
NEXT = b"Nats-Schedule-Next"
PURGE = b"purge"
ROLLUP = b"Nats-Rollup"
_SUB = b"sub"
#: The timer waits at least this long (s), as nats-server's: firing never competes
#: with a burst of publishes, and one run produces everything due by then.
_MIN_DELAY = 0.25
#: A loop timer may wake this much (ns) before the wall clock says it is due.
_SLACK = 5_000_000
#: Messages read per call while rebuilding schedules after a restart.
_SCAN_BATCH = 512


class Armed(NamedTuple):
    """One subject's schedule: the message holding it and when it fires next (ns)."""

    seq: int
    due: int


def _produced_drops(key: bytes) -> bool:
    """Headers a produced message does not inherit from its schedule (or source)."""
    return (key in (SCHEDULE, SCHEDULER, b"Nats-Msg-Id", TTL, ROLLUP)
            or key.startswith((b"Nats-Schedule-", b"Nats-Expected-")))


class MessageSchedules:
    """The armed schedules of one stream, by subject, and the timer that fires them."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.armed: dict[bytes, Armed] = {}
        self._due: list[tuple[int, int, bytes]] = []  # (due, seq, subject); stale ones skipped
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    # -- a client's publish -------------------------------------------------------------

    async def admit(self, subject: bytes, hdr: bytes, hdrs: dict[bytes, bytes]
                    ) -> tuple[bytes, dict[bytes, bytes]]:
        """Check a publish's schedule headers as nats-server does: the headers to store
        (a schedule gains ``Nats-Rollup: sub``), or the API error."""
        cfg = self.stream.config
        allowed = cfg.allow_msg_schedules
        scheduler = hdrs.get(SCHEDULER, b"")
        if hdrs.get(NEXT):
            await self._check_cancel(subject, hdrs[NEXT], scheduler)
            if not allowed:
                raise E.msg_schedules_disabled()
        elif scheduler:
            raise E.msg_schedules_scheduler_invalid()
        tz = hdrs.get(TIME_ZONE)
        if tz is not None:
            if not allowed:
                raise E.msg_schedules_disabled()
            try:
                load_zone(tz.decode())
            except (ScheduleError, UnicodeDecodeError):
                raise E.msg_schedules_time_zone_invalid() from None
        pattern = hdrs.get(SCHEDULE)
        if not pattern:
            return hdr, hdrs
        try:
            now = time.time_ns()
            next_fire(pattern.decode(), (tz or b"").decode(), now, now)
        except (ScheduleError, UnicodeDecodeError):
            raise (E.msg_schedules_pattern_invalid() if allowed
                   else E.msg_schedules_disabled()) from None
        if not allowed:
            raise E.msg_schedules_disabled()
        self._check_ttl(hdrs.get(SCHEDULE_TTL, b""))
        target = self._check_target(subject, hdrs.get(TARGET, b""))
        if hdrs.get(SCHEDULE_ROLLUP, _SUB) not in (_SUB, b""):
            raise E.msg_schedules_rollup_invalid()
        source = hdrs.get(SOURCE, b"")
        if source and not self._may_copy(source, (subject, target)):
            raise E.msg_schedules_source_invalid()
        rollup = hdrs.get(ROLLUP)
        if rollup is None:
            hdr = H.add(hdr, [(ROLLUP, _SUB)])
        elif not rollup:
            hdr = H.replace(hdr, ROLLUP, _SUB)
        elif rollup != _SUB:
            raise E.msg_schedules_rollup_invalid()
        return hdr, {**hdrs, ROLLUP: _SUB}

    async def _check_cancel(self, subject: bytes, nxt: bytes, scheduler: bytes) -> None:
        """Clients may send ``Nats-Schedule-Next`` only to cancel (``purge``) the
        schedule on another subject, named by ``Nats-Scheduler``."""
        if nxt != PURGE or not scheduler or scheduler == subject:
            raise E.msg_schedules_scheduler_invalid()
        if not valid_publish_subject(scheduler.decode(errors="replace")):
            raise E.msg_schedules_scheduler_invalid()
        last = await self.stream.store.last(scheduler)
        if last is not None and not H.get(last.hdr, SCHEDULE):
            raise E.msg_schedules_scheduler_invalid()

    def _check_ttl(self, value: bytes) -> None:
        if not value:
            return
        try:
            parse_ttl(value)
        except E.ApiError:
            raise E.msg_schedules_ttl_invalid() from None
        if not self.stream.config.allow_msg_ttl:
            raise E.msg_ttl_disabled()

    def _check_target(self, subject: bytes, value: bytes) -> bytes:
        """The target: a literal subject of this stream, other than the schedule's."""
        target = value.decode(errors="replace")
        if (not target or not valid_publish_subject(target)
                or subjects_collide(target, subject.decode(errors="replace"))
                or not self._in_stream(target)):
            raise E.msg_schedules_target_invalid()
        return value

    def _may_copy(self, source: bytes, others: tuple[bytes, ...]) -> bool:
        """A source is a literal subject of this stream, not the schedule's nor its target."""
        name = source.decode(errors="replace")
        return valid_publish_subject(name) and source not in others and self._in_stream(name)

    def _in_stream(self, subject: str) -> bool:
        return any(subjects_collide(s, subject) for s in self.stream.config.subjects or ())

    # -- stored messages ----------------------------------------------------------------

    async def stored(self, seq: int, subject: bytes, hdrs: dict[bytes, bytes], ts: int) -> None:
        """After a message with schedule headers is stored: arm a schedule, or follow a
        produced (or cancelling) message's ``Nats-Schedule-Next``."""
        if not self.stream.config.allow_msg_schedules:
            return
        if hdrs.get(SCHEDULE):
            self._arm_new(seq, subject, hdrs, ts)
        scheduler, nxt = hdrs.get(SCHEDULER), hdrs.get(NEXT)
        if scheduler and nxt:
            await self._follow(scheduler, nxt, seq)

    def _arm_new(self, seq: int, subject: bytes, hdrs: dict[bytes, bytes], ts: int) -> None:
        fire = _fire_of(hdrs, ts, 0)
        if fire is not None:
            self._arm(subject, Armed(seq, fire.ns))

    async def _follow(self, scheduler: bytes, nxt: bytes, seq: int) -> None:
        if nxt == PURGE:
            self._disarm(scheduler)
            await self.stream.store.purge(subject=scheduler, before=seq)
            return
        armed = self.armed.get(scheduler)
        if armed is not None:
            try:
                self._arm(scheduler, Armed(armed.seq, to_ns(parse_rfc3339(nxt.decode()))))
            except (ScheduleError, UnicodeDecodeError):
                return

    async def recover(self) -> None:
        """Re-arm the stored schedules; each resumes at the next time its last produced
        message announced, or else at its first time after it was stored."""
        store = self.stream.store
        schedules: dict[bytes, StoredMsg] = {}
        announced: dict[bytes, tuple[int, bytes]] = {}  # scheduler -> (seq, next)
        seq = store.state().first_seq
        while msgs := await store.next_many(seq, None, _SCAN_BATCH):
            for msg in msgs:
                if not msg.hdr or SCHEDULE not in msg.hdr:
                    continue
                hdrs = H.parse(msg.hdr)
                if hdrs.get(SCHEDULE):
                    schedules[msg.subject] = msg
                if hdrs.get(SCHEDULER) and hdrs.get(NEXT):
                    announced[hdrs[SCHEDULER]] = (msg.seq, hdrs[NEXT])
            seq = msgs[-1].seq + 1
        for subject, msg in schedules.items():
            self._arm_new(msg.seq, subject, H.parse(msg.hdr), msg.ts)
            after = announced.get(subject)
            if after is not None and after[0] > msg.seq:
                await self._follow(subject, after[1], after[0] + 1)

    # -- firing ---------------------------------------------------------------------------

    def _arm(self, subject: bytes, armed: Armed) -> None:
        self.armed[subject] = armed
        heapq.heappush(self._due, (armed.due, armed.seq, subject))
        if self._due[0][2] == subject:
            self._schedule()

    def _disarm(self, subject: bytes) -> None:
        self.armed.pop(subject, None)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        """Set the timer for the earliest schedule, unless it is set to go sooner (so a
        run of publishes due at once cannot keep pushing it back) or a run is on."""
        due = self._due
        while due and self.armed.get(due[0][2]) != (due[0][1], due[0][0]):
            heapq.heappop(due)  # replaced, re-armed or cancelled since
        if not due or (self._running is not None and not self._running.done()):
            self.stop()
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max((due[0][0] - time.time_ns()) / NS_PER_S, _MIN_DELAY)
        if self._timer is not None and self._timer.when() <= when:
            return
        self.stop()
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._running = spawn(self._produce_due(), f"stream {self.stream.name}: schedules")

    async def _produce_due(self) -> None:
        stream = self.stream
        produced = False
        try:
            ready: list[tuple[int, bytes, Armed]] = []  # produced in schedule order
            while self._due and self._due[0][0] <= time.time_ns() + _SLACK:
                due, seq, subject = heapq.heappop(self._due)
                if self.armed.get(subject) == (seq, due):
                    ready.append((seq, subject, Armed(seq, due)))
            for _, subject, armed in sorted(ready):
                if stream.closed:
                    break
                if self.armed.get(subject) == armed:  # not replaced meanwhile
                    produced = await self._produce(subject, armed) or produced
        finally:
            self._running = None
            if produced:
                await stream.store.sync()
                stream.jsa.stream_changed(stream)
            if not stream.closed:
                self._schedule()

    async def _produce(self, subject: bytes, armed: Armed) -> bool:
        """Store the message ``armed`` is due to produce; True when one was stored."""
        stream = self.stream
        msg = await stream.store.get(armed.seq)
        hdrs = H.parse(msg.hdr) if msg is not None and msg.hdr else {}
        fire = _fire_of(hdrs, armed.due, time.time_ns())
        if msg is None or fire is None or not hdrs.get(TARGET):
            if self.armed.get(subject) == armed:  # removed, or no longer a valid schedule
                self._disarm(subject)
            return False
        hdr, payload = msg.hdr, msg.data
        source = hdrs.get(SOURCE)
        copied = await stream.store.last(source) if source else None
        if copied is not None:
            hdr, payload = copied.hdr, copied.data
        extra = [(SCHEDULER, subject),
                 (NEXT, fire.header().encode() if fire.repeat else PURGE)]
        if hdrs.get(SCHEDULE_TTL):
            extra.append((TTL, hdrs[SCHEDULE_TTL]))
        if hdrs.get(SCHEDULE_ROLLUP):
            extra.append((ROLLUP, hdrs[SCHEDULE_ROLLUP]))
        out = H.add(H.remove(hdr, _produced_drops) if hdr else None, extra)
        stored = True
        try:
            await stream.accept(hdrs[TARGET], out, payload, sourced=True)
        except (E.ApiError, StorageError) as exc:
            log.debug("stream %s: schedule %s produced nothing: %s",
                      stream.name, subject.decode(errors="replace"), exc)
            stored = False
        if self.armed.get(subject) == armed:  # the produced message did not move it on
            await self._follow(subject, extra[1][1], armed.seq + 1)
        return stored


def _fire_of(hdrs: dict[bytes, bytes], ts: int, now: int) -> Fire | None:
    """When a stored schedule fires after ``ts``; None when it is not a valid one."""
    try:
        return next_fire(hdrs[SCHEDULE].decode(), hdrs.get(TIME_ZONE, b"").decode(), ts, now)
    except (KeyError, ScheduleError, UnicodeDecodeError):
        return None
