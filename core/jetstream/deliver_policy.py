"""Where a new consumer begins in its stream, by its deliver policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jetport.core.timeutil import NS_PER_S
from jetport.storage.base import StoredMsg

if TYPE_CHECKING:
    from jetport.core.jetstream.stream import Stream


async def start_position(stream: Stream, config: Any, filters: list[bytes]
                         ) -> tuple[int, list[int]]:
    """The first stream sequence a new consumer delivers from, and the sequences it
    delivers before that one (``last_per_subject``: the last message of each subject,
    in stream order)."""
    store = stream.store
    st = store.state()
    policy = config.deliver_policy
    start = st.first_seq or 1
    first: list[int] = []
    if policy == "new":
        start = st.last_seq + 1
    elif policy == "last":
        last = await last_matching(stream, filters)
        start = last.seq if last else st.last_seq + 1
    elif policy == "by_start_sequence":
        start = max(config.opt_start_seq or 1, 1)
    elif policy == "by_start_time":
        want = _time_ns(config.opt_start_time)
        msg = await store.next(st.first_seq, filters or None)
        while msg is not None and msg.ts < want:
            msg = await store.next(msg.seq + 1, filters or None)
        start = msg.seq if msg else st.last_seq + 1
    elif policy == "last_per_subject":
        for f in filters or [b">"]:
            for subject in await store.subjects(f):
                last = await store.last(subject)
                if last is not None:
                    first.append(last.seq)
        first.sort()
        start = st.last_seq + 1
    return start, first


async def last_matching(stream: Stream, filters: list[bytes]) -> StoredMsg | None:
    """The stream's newest message on any of ``filters`` (all subjects when none)."""
    best = None
    for f in filters or [b">"]:
        msg = await stream.store.last(f)
        if msg is not None and (best is None or msg.seq > best.seq):
            best = msg
    return best


def _time_ns(value: Any) -> int:
    if value is None:
        return 0
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * NS_PER_S)
    return int(value)
