"""Storing an atomic batch: every message checked first, then all stored in one go.

The checks may wait (for the store's last message on a subject, say); the stores may
not: they run back to back in one loop turn, so the SQLite writer puts them in one
transaction and a crash keeps all of the batch or none of it. What a stored message
sets off (TTLs, republishing, roll-ups, limits) follows once the batch is stored.

The rules are nats-server's for a batch: a ``Nats-Msg-Id`` seen before (in the batch or
the duplicate window) fails it rather than being acknowledged as a duplicate;
``Nats-Expected-Last-Sequence`` is for the first message only, and
``Nats-Expected-Last-Subject-Sequence`` for the first message on its subject;
``Nats-Expected-Last-Msg-Id`` is not supported; a roll-up may not remove a message of
its own batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jetport.core import headers as H
from jetport.core.jetstream import errors as E
from jetport.core.jetstream import stream as S
from jetport.core.jetstream.ttl import TTL
from jetport.storage.base import StoredMsg

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Accepted, Stream


@dataclass
class _Ready:
    """One checked message, as it will be stored."""

    subject: bytes
    hdr: bytes
    payload: bytes
    msg_id: bytes
    rollup: bytes
    ttl: int
    kept: bool  # False: an interest stream nobody listens to only uses up its sequence
    previous: StoredMsg | None  # the subject's last message before it, for republishing


async def commit(stream: Stream, batch_id: bytes, msgs: list[tuple[bytes, bytes, bytes]]
                 ) -> Accepted:
    """Store ``msgs`` all or none; the commit's PubAck, or the ApiError of the first
    message that may not be stored (nothing is stored then)."""
    ready = await _check(stream, msgs)
    now = time.time_ns()
    store = stream.store
    first = store.state().last_seq + 1
    for seq, msg in enumerate(ready, first):  # no await: one transaction
        if msg.kept:
            store.store(seq, msg.subject, msg.hdr, msg.payload, now)
        else:
            store.skip(seq, now)
    stream.jsa.stored_any = True
    await _after(stream, ready, first, now)
    last = first + len(ready) - 1
    extra = b',"batch":%b,"count":%d' % (json.dumps(batch_id.decode(errors="replace")).encode(),
                                         len(ready))
    return S.Accepted(last, extra=extra)


async def _check(stream: Stream, msgs: list[tuple[bytes, bytes, bytes]]) -> list[_Ready]:
    cfg = stream.config
    if cfg.sealed:
        raise E.stream_sealed()
    state = stream.store.state()
    now = time.time_ns()
    stream._prune_msg_ids(now)
    ids: set[bytes] = set()
    staged: dict[bytes, int] = {}  # messages per subject in the batch so far
    size = 0
    ready: list[_Ready] = []
    for i, (subject, hdr, payload) in enumerate(msgs):
        if stream._transform is not None:
            subject = stream._transform.apply(subject) or subject
        hdrs = H.parse(hdr)
        if S.EXPECTED_LAST_MSG_ID in hdrs:
            raise E.atomic_publish_unsupported_header(header=S.EXPECTED_LAST_MSG_ID.decode())
        msg_id = hdrs.get(S.MSG_ID, b"")
        if msg_id:
            if msg_id in ids or msg_id in stream._msg_ids:
                raise E.atomic_publish_duplicate_msg_id()
            ids.add(msg_id)
        want = hdrs.get(S.EXPECTED_STREAM)
        if want is not None and want.decode(errors="replace") != stream.name:
            raise E.expected_stream_mismatch()
        want = hdrs.get(S.EXPECTED_LAST_SEQ)
        if want is not None:
            last = state.last_seq + i
            if not want.isdigit() or int(want) != last:
                raise E.wrong_last_sequence(last)
            if i:
                raise E.wrong_last_sequence_constant()
        want = hdrs.get(S.EXPECTED_LAST_SUBJ_SEQ)
        if want is not None:
            if subject in staged:  # the batch itself has the subject's last message
                raise E.wrong_last_sequence_constant()
            found = await stream.store.last(subject)
            last = found.seq if found else 0
            if not want.isdigit() or int(want) != last:
                raise E.wrong_last_sequence(last)
        rollup = hdrs.get(S.ROLLUP, b"")
        if rollup:
            if not cfg.allow_rollup_hdrs:
                raise E.rollup_not_permitted()
            if rollup not in (b"sub", b"all"):
                raise E.rollup_invalid(rollup.decode(errors="replace"))
            # a roll-up may not take away what the batch itself stored
            if rollup == b"all" and i:
                raise E.rollup_failed(err="batch rollup all invalid")
            if rollup == b"sub" and subject in staged:
                raise E.rollup_failed(err="batch rollup sub invalid")
        ttl = 0
        if TTL in hdrs:
            if not cfg.allow_msg_ttl:
                raise E.msg_ttl_disabled()
            hdr, ttl = stream.ttls.admit(hdr, hdrs[TTL])
        size += stream.store.record_size(subject, hdr, payload)
        if stream.jsa.limited(cfg.storage):
            err = stream.jsa.publish_error(cfg.storage, size)
            if err is not None:
                raise err
        staged[subject] = staged.get(subject, 0) + 1
        if cfg.discard == "new":
            await _check_discard_new(stream, subject, i + 1, size, staged[subject])
        previous = None
        if stream._republish is not None:
            previous = await stream.store.last(subject)
        kept = cfg.retention != "interest" or stream.interested(subject)
        ready.append(_Ready(subject, hdr, payload, msg_id, rollup, ttl, kept, previous))
    return ready


async def _check_discard_new(stream: Stream, subject: bytes, count: int, size: int,
                             on_subject: int) -> None:
    """Would the batch so far (``count`` messages, ``size`` bytes, ``on_subject`` of
    them on ``subject``) go over a limit of a discard-new stream?"""
    cfg, state = stream.config, stream.store.state()
    if cfg.max_msgs > 0 and state.msgs + count > cfg.max_msgs:
        raise E.store_failed("maximum messages exceeded")
    if cfg.max_bytes > 0 and state.bytes + size > cfg.max_bytes:
        raise E.store_failed("maximum bytes exceeded")
    per_subject = cfg.discard_new_per_subject and cfg.max_msgs_per_subject > 0
    if per_subject and await stream.store.count(subject) + on_subject > cfg.max_msgs_per_subject:
        raise E.store_failed("maximum messages per subject exceeded")


async def _after(stream: Stream, ready: list[_Ready], first: int, now: int) -> None:
    """What each stored message sets off, in the batch's order."""
    last_on: dict[bytes, int] = {}
    for seq, msg in enumerate(ready, first):
        if not msg.kept:
            continue
        if msg.ttl:
            stream.ttls.track(seq, now, msg.ttl)
        if stream._republish is not None:
            dest = stream._republish.apply(msg.subject)
            if dest is not None:
                before = last_on.get(msg.subject)
                previous = (StoredMsg(before, msg.subject, None, b"", now)
                            if before is not None else msg.previous)
                stream._send_republished(dest, msg.subject, seq, now, previous, msg.hdr,
                                         msg.payload)
        if msg.msg_id:
            stream._msg_ids[msg.msg_id] = (seq, now)
        last_on[msg.subject] = seq
    stream._last_msg_id = ready[-1].msg_id
    for seq, msg in enumerate(ready, first):
        if msg.rollup == b"all":
            await stream.store.purge(before=seq)
        elif msg.rollup == b"sub":
            await stream.store.purge(subject=msg.subject, before=seq)
    for subject in last_on:
        await stream.enforce_limits(subject)
