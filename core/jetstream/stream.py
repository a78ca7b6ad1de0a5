"""A stream: captures messages published to its subjects and keeps them by its limits.

Publishes arrive through the router (an internal subscription per stream subject) and
are queued; one task per stream drains the queue in order, stores each message,
enforces limits, waits for the store's group commit and only then sends the PubAcks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from jetport.core import headers as H
from jetport.core.client import Delivery
from jetport.core.jetstream import batch as batching
from jetport.core.jetstream import counters
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models_base import PersistMode
from jetport.core.jetstream.schedules import SCHEDULE, MessageSchedules
from jetport.core.jetstream.sourcing import Link, links_for
from jetport.core.jetstream.transform import SubjectTransform
from jetport.core.jetstream.ttl import TTL, MessageTTLs
from jetport.core.log import log
from jetport.core.tasks import spawn
from jetport.core.timeutil import NS_PER_S, rfc3339
from jetport.storage.base import StorageError, StoredMsg, StreamStore

if TYPE_CHECKING:
    from jetport.core.jetstream.account import JetStreamAccount
    from jetport.core.jetstream.consumer import Consumer
    from jetport.core.router import Subscription

MSG_ID = b"Nats-Msg-Id"
EXPECTED_STREAM = b"Nats-Expected-Stream"
EXPECTED_LAST_SEQ = b"Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJ_SEQ = b"Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_MSG_ID = b"Nats-Expected-Last-Msg-Id"
ROLLUP = b"Nats-Rollup"
_CHECKED = (MSG_ID, EXPECTED_STREAM, EXPECTED_LAST_SEQ, EXPECTED_LAST_SUBJ_SEQ,
            EXPECTED_LAST_MSG_ID, ROLLUP, TTL, counters.INCR, SCHEDULE)
#: Messages stored per commit request; smaller chunks let commits overlap with storing
#: and return acks sooner, so a pipelining publisher never waits for a whole window.
COMMIT_CHUNK = 128


class Accepted(NamedTuple):
    """What storing one message under the stream's rules came to, for its PubAck."""

    seq: int
    duplicate: bool = False
    #: More PubAck fields, as JSON members each led by a comma (``b',"val":"3"'``).
    extra: bytes = b""
    #: No PubAck at all (a message held for later, such as one staged in a batch).
    silent: bool = False


class Stream:
    def __init__(self, jsa: JetStreamAccount, config: Any, store: StreamStore,
                 created_ns: int) -> None:
        self.jsa = jsa
        self.config = config
        self.name: str = config.name
        self.store = store
        self.created_ns = created_ns
        self.consumers: dict[str, Consumer] = {}
        self._subs: list[Subscription] = []
        self._inbox: list[tuple[bytes, bytes | None, bytes | None, bytes]] = []
        self._runner: asyncio.Task[None] | None = None
        # Nats-Msg-Id -> (seq, stored at ns), oldest first, for the duplicate window
        self._msg_ids: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        self._last_msg_id: bytes = b""
        self._expiry: asyncio.TimerHandle | None = None
        self.ttls = MessageTTLs(self)
        self.schedules = MessageSchedules(self)
        self._transform: SubjectTransform | None = None
        self._republish: SubjectTransform | None = None
        self._ack_prefix = b""
        self._plain = False
        self._max_size = 0
        #: persist_mode async: PubAcks go out once stored, before the commit
        self._ack_early = False
        self.links: list[Link] = []
        self.batches = batching.Batches(self)
        self.closed = False

    # -- subjects -------------------------------------------------------------------

    @property
    def subjects(self) -> list[bytes]:
        return [s.encode() for s in (self.config.subjects or [])]

    def attach(self) -> None:
        """Start capturing the stream's subjects (again, after a config change)."""
        cfg = self.config
        st, rp = cfg.subject_transform, cfg.republish
        self._transform = SubjectTransform(st.src, st.dest) if st and st.dest else None
        self._republish = SubjectTransform(rp.src, rp.dest) if rp and rp.dest else None
        domain = self.jsa.js.domain
        self._ack_prefix = b'{"stream":%b,%b"seq":' % (
            json.dumps(self.name).encode(),
            b'"domain":%b,' % json.dumps(domain).encode() if domain else b"")
        # Messages without headers need none of accept()'s per-message rules when:
        self._plain = (
            self._transform is None and self._republish is None and not cfg.sealed
            and cfg.retention == "limits" and cfg.discard == "old"
            and cfg.max_msgs_per_subject <= 0 and not cfg.allow_msg_counter
        )
        self._max_size = cfg.max_msg_size if cfg.max_msg_size >= 0 else 1 << 62
        self._ack_early = cfg.persist_mode is PersistMode.ASYNC
        self.jsa.capturing.clear()
        client = self.jsa.client
        for sub in self._subs:
            client.drop_subscription(sub)
        self._subs = [client.listen(subject, self._on_message, batch=self._on_messages)
                      for subject in self.subjects]
        for link in self.links:
            link.close()
        self.links = links_for(self)
        if self.config.allow_direct:
            api = self.jsa.api
            for prefix in api.prefixes:
                direct = prefix + b"DIRECT.GET." + self.name.encode()
                self._subs += [client.listen(direct, api.on_direct_get),
                               client.listen(direct + b".>", api.on_direct_get)]
        self._schedule_expiry()

    async def start_links(self) -> None:
        """Resume copying from mirror/source origins at the saved positions."""
        saved = await self.jsa.consumer_store(self).load() if self.links else {}
        for link in self.links:
            entry = saved.get(link.key)
            await link.load(entry[1] if entry else None)
            link.wake()

    def detach(self) -> None:
        for link in self.links:
            link.close()
        self.links = []
        for sub in self._subs:
            self.jsa.client.drop_subscription(sub)
        self._subs = []
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.ttls.stop()
        self.schedules.stop()

    # -- ingest ---------------------------------------------------------------------

    def _on_message(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                    payload: bytes) -> None:
        """Router callback: store at once if possible, else queue for the worker."""
        self._on_messages([(subject, reply, hdr, payload)])

    def _on_messages(self, msgs: list[tuple[bytes, bytes | None, bytes | None, bytes]]) -> None:
        """Router callback for several messages published together."""
        idle = not self._inbox and (self._runner is None or self._runner.done())
        try:
            if idle and self._ingest_now(msgs):
                return
        except StorageError as exc:  # refused at once: the publishers hear why
            self._refuse([m[1] for m in msgs], exc)
            return
        self._inbox += msgs
        if self._runner is None or self._runner.done():
            self._runner = spawn(self._drain(), f"stream {self.name}: storing")

    def _ingest_now(self, msgs: list[tuple[bytes, bytes | None, bytes | None, bytes]]) -> bool:
        """Store ``msgs`` right away, without a task, when none of them can need to
        wait for anything: plain messages that keep the stream within its limits."""
        if self.closed or not self._plain:
            return False
        max_size = self._max_size
        for _subject, _reply, hdr, payload in msgs:
            if hdr is not None or len(payload) > max_size:
                return False
        cfg, st = self.config, self.store.state()
        if 0 < cfg.max_msgs < st.msgs + len(msgs):
            return False
        if cfg.max_bytes > 0 and st.bytes + sum(
            [self.store.record_size(m[0], None, m[3]) for m in msgs]
        ) > cfg.max_bytes:
            return False
        if not self._fits(msgs):
            return False
        self._committed(self._store_run(msgs))
        return True

    def _store_run(self, msgs: list[tuple[bytes, bytes | None, bytes | None, bytes]]
                   ) -> list[Delivery]:
        """Store plain messages in one call (no per-message rules apply); their
        PubAcks, to send once committed."""
        # other tasks (sources, purges) may have moved last_seq since the last run
        first = seq = self.store.state().last_seq + 1
        prefix, no_ack = self._ack_prefix, self.config.no_ack
        replies: list[Delivery] = []
        for _subject, reply, _hdr, _payload in msgs:
            if reply and not no_ack:
                replies.append((reply, None, None, prefix + b"%d}" % seq))
            seq += 1
        self.store.store_many(first, [(m[0], m[3]) for m in msgs], time.time_ns())
        self.jsa.stored_any = True
        self._last_msg_id = b""
        return replies

    async def _drain(self) -> None:
        """Store queued messages in order; acks go out when their commit completes
        (the store commits what a loop turn queued in one transaction)."""
        while self._inbox and not self.closed:
            batch = self._inbox[:COMMIT_CHUNK]
            del self._inbox[:COMMIT_CHUNK]
            replies: list[Delivery] = []
            progress = [0, False]  # messages handled, whether any was stored
            try:
                await self._store_batch(batch, replies, progress)
            except StorageError as exc:
                # Nothing stores until the account reopens its storage: refuse what is
                # left; what was stored before learns its fate from the commit.
                rest = [m[1] for m in batch[progress[0]:]] + [m[1] for m in self._inbox]
                self._inbox.clear()
                self._refuse(rest, exc)
            if progress[1]:
                self._committed(replies)
            else:
                self._send_acks(replies)

    async def _store_batch(self, batch: list[tuple[bytes, bytes | None, bytes | None, bytes]],
                           replies: list[Delivery], progress: list[Any]) -> None:
        """Store ``batch``, adding each message's PubAck (or error) to ``replies``;
        ``progress`` tells how far it got and whether anything was stored."""
        no_ack = self.config.no_ack
        plain_ok, max_size = self._plain, self._max_size
        i, n = 0, len(batch)
        while i < n:
            j = i
            while j < n and plain_ok and batch[j][2] is None and len(batch[j][3]) <= max_size:
                j += 1
            if j > i and not self._fits(batch[i:j]):
                j = i  # near the storage limits: accept() checks one message at a time
            if j > i:
                replies += self._store_run(batch[i:j])
                progress[:] = [j, True]
                i = j
                if self._over_limits():
                    await self.enforce_limits(b">")
                continue
            subject, reply, hdr, payload = batch[i]
            try:
                done = await self.accept(subject, hdr, payload)
                progress[1] = progress[1] or (done.seq > 0 and not done.duplicate)
                if reply and not no_ack and not done.silent:
                    replies.append((reply, None, None, self.pub_ack(done)))
            except E.ApiError as err:
                if reply and not no_ack:
                    body = {"error": err.to_dict(), "stream": self.name, "seq": 0}
                    replies.append((reply, None, None,
                                    json.dumps(body, separators=(",", ":")).encode()))
            i += 1
            progress[0] = i

    def _committed(self, replies: list[Delivery]) -> None:
        """Send ``replies`` once what was stored before them is committed, or at once in
        async persist mode, where a PubAck promises the message is stored but not that
        it was committed (a kill -9 before the next commit may lose it)."""
        if not self._ack_early:
            self.store.on_stored(partial(self._stored, replies=replies))
            return
        self._send_acks(replies)
        self.store.on_stored(self._stored_late)

    def _stored_late(self, exc: BaseException | None) -> None:
        """The commit after async-mode PubAcks: its failure can only be logged."""
        if exc is not None:
            log.error("stream %s: acknowledged messages (async persist mode) were not "
                      "committed: %s", self.name, exc)
            return
        self.jsa.stream_changed(self)

    def _stored(self, exc: BaseException | None, replies: list[Delivery]) -> None:
        if exc is not None:  # not durable: an error PubAck instead (the account logs it)
            self._refuse([r[0] for r in replies], exc)
            return
        self.jsa.stream_changed(self)
        self._send_acks(replies)

    def _refuse(self, replies: list[bytes | None], exc: BaseException) -> None:
        """Error PubAcks for messages the store could not keep, as nats-server answers
        when its store fails: 10023 when the disk is full, else 10077."""
        if self.config.no_ack:
            return
        err = E.from_storage(exc, f"stream {self.name!r}")
        body = json.dumps({"error": err.to_dict(), "stream": self.name, "seq": 0},
                          separators=(",", ":")).encode()
        self._send_acks([(reply, None, None, body) for reply in replies if reply])

    def _send_acks(self, replies: list[Delivery]) -> None:
        # A reply subject nobody can subscribe to gets no ack.
        self.jsa.account.router.publish_batch(None, replies)

    def _fits(self, msgs: list[tuple[bytes, bytes | None, bytes | None, bytes]]) -> bool:
        """Can plain ``msgs`` be stored together without any hitting a storage limit?"""
        storage = self.config.storage
        if not self.jsa.limited(storage):
            return True
        size = sum(self.store.record_size(m[0], None, m[3]) for m in msgs)
        return self.jsa.fits(storage, size)

    def _over_limits(self) -> bool:
        cfg, st = self.config, self.store.state()
        return bool((0 < cfg.max_msgs < st.msgs) or (0 < cfg.max_bytes < st.bytes))

    def pub_ack(self, done: Accepted) -> bytes:
        """The PubAck body for one stored message; empty for one held (sequence 0), as
        nats-server answers a batch's messages before its commit."""
        if not done.seq:
            return b""
        dup = b',"duplicate":true' if done.duplicate else b""
        return self._ack_prefix + b"%d%b%b}" % (done.seq, dup, done.extra)

    async def accept(self, subject: bytes, hdr: bytes | None, payload: bytes,
                     ts: int = 0, sourced: bool = False) -> Accepted:
        """Store one message under the stream's rules."""
        if hdr and not sourced and batching.BATCH_ID in hdr:
            held = await self.batches.accept(subject, hdr, payload)
            if held is not None:
                return held
        cfg = self.config
        if cfg.sealed:
            raise E.stream_sealed()
        if self._transform is not None:
            subject = self._transform.apply(subject) or subject
        size = len(subject) + len(payload) + (len(hdr) if hdr else 0)
        if cfg.max_msg_size >= 0 and len(payload) + (len(hdr) if hdr else 0) > cfg.max_msg_size:
            raise E.message_size_exceeded()
        hdrs = H.parse(hdr) if hdr and any(k in hdr for k in _CHECKED) else None
        now = ts or time.time_ns()
        msg_id = b""
        rollup = b""
        ttl = 0
        incr = counters.screen(cfg.allow_msg_counter, hdrs, payload, sourced)
        if hdrs:
            msg_id = hdrs.get(MSG_ID, b"")
            if msg_id:
                self._prune_msg_ids(now)
                seen = self._msg_ids.get(msg_id)
                if seen is not None:
                    return Accepted(seen[0], True)
            await self._check_expected(hdrs, subject)
            if hdr and not sourced and SCHEDULE in hdr:
                hdr, hdrs = await self.schedules.admit(subject, hdr, hdrs)
            rollup = hdrs.get(ROLLUP, b"")
            if rollup:
                if not cfg.allow_rollup_hdrs:
                    raise E.rollup_not_permitted()
                if rollup not in (b"sub", b"all"):
                    raise E.rollup_invalid(rollup.decode(errors="replace"))
            if TTL in hdrs and (cfg.allow_msg_ttl or not sourced):
                if not cfg.allow_msg_ttl:
                    raise E.msg_ttl_disabled()
                assert hdr is not None  # hdrs came from it
                hdr, ttl = self.ttls.admit(hdr, hdrs[TTL])
        extra = b""
        if cfg.allow_msg_counter:
            hdr, payload, extra = await counters.apply(self, subject, hdr, payload, incr, sourced)
        if not sourced and self.jsa.limited(cfg.storage):
            err = self.jsa.publish_error(cfg.storage, self.store.record_size(subject, hdr, payload))
            if err is not None:
                raise err
        state = self.store.state()
        if cfg.retention == "interest" and not self.interested(subject):
            # acknowledged and counted, but nobody will ever read it
            self.store.skip(state.last_seq + 1)
            return Accepted(state.last_seq + 1)
        if cfg.discard == "new":
            await self._check_discard_new(subject, size, state)
        republish = self._republish.apply(subject) if self._republish is not None else None
        previous = await self.store.last(subject) if republish is not None else None
        seq = self.store.state().last_seq + 1  # after the awaits: expiry may have added
        self.store.store(seq, subject, hdr, payload, now)
        self.jsa.stored_any = True
        if ttl:
            self.ttls.track(seq, now, ttl)
        if republish is not None:
            self._send_republished(republish, subject, seq, now, previous, hdr, payload)
        if msg_id:
            self._msg_ids[msg_id] = (seq, now)
        self._last_msg_id = msg_id
        if rollup == b"all":
            await self.store.purge(before=seq)
        elif rollup == b"sub":
            await self.store.purge(subject=subject, before=seq)
        if hdrs and hdr and SCHEDULE in hdr:
            await self.schedules.stored(seq, subject, hdrs, now)
        await self.enforce_limits(subject)
        return Accepted(seq, extra=extra)

    def _send_republished(self, dest: bytes, subject: bytes, seq: int, ts: int,
                          previous: StoredMsg | None, hdr: bytes | None, payload: bytes) -> None:
        """A copy of a stored message on the republish subject, as nats-server sends it."""
        extra = [(b"Nats-Stream", self.name.encode()), (b"Nats-Subject", subject),
                 (b"Nats-Sequence", b"%d" % seq),
                 (b"Nats-Time-Stamp", rfc3339(ns=ts).encode()),
                 (b"Nats-Last-Sequence", b"%d" % (previous.seq if previous else 0))]
        if self.config.republish.headers_only:
            extra.append((b"Nats-Msg-Size", b"%d" % len(payload)))
            payload = b""
        self.jsa.client.send(dest, None, H.add(hdr, extra), payload)

    async def _check_expected(self, hdrs: dict[bytes, bytes], subject: bytes) -> None:
        want = hdrs.get(EXPECTED_STREAM)
        if want is not None and want.decode(errors="replace") != self.name:
            raise E.expected_stream_mismatch()
        want = hdrs.get(EXPECTED_LAST_SEQ)
        if want is not None:
            last = self.store.state().last_seq
            if not want.isdigit() or int(want) != last:
                raise E.wrong_last_sequence(last)
        want = hdrs.get(EXPECTED_LAST_SUBJ_SEQ)
        if want is not None:
            msg = await self.store.last(subject)
            last = msg.seq if msg else 0
            if not want.isdigit() or int(want) != last:
                raise E.wrong_last_sequence(last)
        want = hdrs.get(EXPECTED_LAST_MSG_ID)
        if want is not None and want != self._last_msg_id:
            raise E.wrong_last_msg_id(self._last_msg_id.decode(errors="replace"))

    async def _check_discard_new(self, subject: bytes, size: int, state: Any) -> None:
        cfg = self.config
        if cfg.max_msgs > 0 and state.msgs >= cfg.max_msgs:
            raise E.store_failed("maximum messages exceeded")
        if cfg.max_bytes > 0 and state.bytes + size > cfg.max_bytes:
            raise E.store_failed("maximum bytes exceeded")
        per_subject = cfg.discard_new_per_subject and cfg.max_msgs_per_subject > 0
        if per_subject and await self.store.count(subject) >= cfg.max_msgs_per_subject:
            raise E.store_failed("maximum messages per subject exceeded")

    async def enforce_limits(self, subject: bytes) -> None:
        cfg = self.config
        store = self.store
        if cfg.max_msgs_per_subject > 0:
            seqs = await store.seqs(subject)
            for seq in seqs[: max(len(seqs) - cfg.max_msgs_per_subject, 0)]:
                if await store.remove(seq):
                    self.removed(seq)
        state = store.state()
        if cfg.max_msgs > 0 and state.msgs > cfg.max_msgs:
            await self._drop_oldest(lambda st: st.msgs > cfg.max_msgs)
        if cfg.max_bytes > 0 and state.bytes > cfg.max_bytes:
            await self._drop_oldest(lambda st: st.bytes > cfg.max_bytes)

    async def _drop_oldest(self, over: Any) -> None:
        store = self.store
        while over(store.state()):
            first = await store.next(store.state().first_seq)
            if first is None:
                return
            if await store.remove(first.seq):
                self.removed(first.seq)

    async def recover_msg_ids(self) -> None:
        """After a restart, remember the Msg-Ids still inside the duplicate window."""
        window = self.config.duplicate_window
        st = self.store.state()
        if window <= 0 or not st.msgs or st.last_ts < time.time_ns() - window:
            return
        horizon = time.time_ns() - window
        lo, hi = st.first_seq, st.last_seq  # first seq stored inside the window
        while lo < hi:
            mid = (lo + hi) // 2
            msg = await self.store.next(mid)
            if msg is None or msg.ts >= horizon:
                hi = mid
            else:
                lo = msg.seq + 1
        msg = await self.store.next(lo)
        while msg is not None:
            msg_id = H.get(msg.hdr, MSG_ID) if msg.hdr else None
            if msg_id:
                self._msg_ids[msg_id] = (msg.seq, msg.ts)
                self._last_msg_id = msg_id
            msg = await self.store.next(msg.seq + 1)

    def _prune_msg_ids(self, now: int) -> None:
        horizon = now - self.config.duplicate_window
        ids = self._msg_ids
        while ids:
            key, (_, at) = next(iter(ids.items()))
            if at >= horizon:
                return
            del ids[key]

    # -- age limit ------------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self.config.max_age > 0:
            interval = min(max(self.config.max_age / NS_PER_S / 2, 0.1), 1.0)
            self._expiry = asyncio.get_running_loop().call_later(interval, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        spawn(self._expire_old(), f"stream {self.name}: max_age expiry")
        self._schedule_expiry()

    async def _expire_old(self) -> None:
        horizon = time.time_ns() - self.config.max_age
        store, forever = self.store, self.ttls.forever
        gone: list[StoredMsg] = []
        msg = await store.next(store.state().first_seq)
        while msg is not None and msg.ts <= horizon and not self.closed:
            if msg.seq not in forever and await store.remove(msg.seq):
                gone.append(msg)
                self.removed(msg.seq)
            msg = await store.next(msg.seq + 1)
        if gone:
            log.debug("stream %s: %d messages expired", self.name, len(gone))
        await self.ttls.removed(gone)

    def removed(self, seq: int) -> None:
        """Limits, age, a TTL or a delete took message ``seq`` away: consumers still
        waiting for its ack stop waiting (nats-server's decStreamPending)."""
        for consumer in self.consumers.values():
            consumer.message_removed(seq)

    # -- retention ------------------------------------------------------------------

    def acked(self, consumer: Consumer, seqs: list[int]) -> None:
        """Interest and work-queue streams drop what their consumers are done with."""
        if self.config.retention != "limits" and seqs:
            spawn(self._retire(seqs), f"stream {self.name}: retention")

    async def _retire(self, seqs: list[int]) -> None:
        """Remove messages no consumer still needs: work queue after one ack; interest
        once every consumer whose filter matches has acknowledged."""
        workqueue = self.config.retention == "workqueue"
        removed = False
        for seq in seqs:
            if not workqueue:
                msg = await self.store.get(seq)
                if msg is None or not all(
                    c.done_with(seq) for c in self.consumers.values() if c.matches(msg.subject)
                ):
                    continue
            removed = await self.store.remove(seq) or removed
        if removed:
            await self.store.sync()

    def interested(self, subject: bytes) -> bool:
        """Does any consumer want this subject (interest retention keeps only those)?"""
        return any(c.matches(subject) for c in self.consumers.values())

    # -- queries --------------------------------------------------------------------

    async def get(self, seq: int) -> StoredMsg | None:
        return await self.store.get(seq)

    def close_now(self) -> None:
        """Stop capturing and storing at once (its store is given up elsewhere)."""
        self.closed = True
        self.detach()
        self.batches.close()
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()

    async def close(self) -> None:
        self.close_now()
