"""The in-memory stream tail against a model that evicts one message at a time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jetport.storage.base import StoredMsg
from jetport.storage.tail import Tail

SUBJECTS = [b"a", b"b.c", b"d"]

ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from(SUBJECTS), st.integers(0, 300)),
    st.tuples(st.just("remove"), st.integers(0, 60)),
    st.tuples(st.just("commit"), st.integers(0, 8)),
), max_size=120)


class Model:
    """Every message kept in a list; eviction drops the oldest one by one."""

    def __init__(self, max_msgs: int, max_bytes: int) -> None:
        self.entries: list[tuple[int, bytes, int] | None] = []  # (seq, subject, size)
        self.seqs: list[int] = []
        self.max_msgs, self.max_bytes = max_msgs, max_bytes
        self.floor = 1

    def live(self) -> list[tuple[int, bytes, int]]:
        return [e for e in self.entries if e is not None]

    def size(self) -> int:
        return sum(e[2] for e in self.live())

    def full(self) -> bool:
        return len(self.entries) > self.max_msgs or self.size() > self.max_bytes

    def evict(self, committed: int) -> None:
        keep_msgs = self.max_msgs - (self.max_msgs >> 3)
        keep_bytes = self.max_bytes - (self.max_bytes >> 3)
        while (self.entries and self.seqs[0] <= committed
               and (len(self.entries) > keep_msgs or self.size() > keep_bytes)):
            self.floor = self.seqs[0] + 1
            del self.entries[0], self.seqs[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.integers(50, 2000), ops)
def test_evict_matches_one_at_a_time(max_msgs: int, max_bytes: int,
                                     steps: list[tuple]) -> None:  # type: ignore[type-arg]
    tail, model = Tail(1, max_msgs, max_bytes), Model(max_msgs, max_bytes)
    seq = committed = 0
    for step in steps:
        if step[0] == "append":
            seq += 1
            msg = StoredMsg(seq, step[1], None, b"x" * step[2], 0)
            tail.append(msg, step[2] + 10)
            model.entries.append((seq, step[1], step[2] + 10))
            model.seqs.append(seq)
        elif step[0] == "remove":
            target = seq - step[1]
            if target >= tail.floor and tail.remove(target) is not None:
                i = model.seqs.index(target)
                model.entries[i] = None
        else:
            committed = min(seq, committed + step[1])
        assert tail.full() == model.full()
        if tail.full():
            tail.evict(committed)
            model.evict(committed)
        assert tail.floor == model.floor or not model.entries
        assert tail.size == model.size()
        live = model.live()
        assert [m.seq for m in tail._live(0)] == [e[0] for e in live]
        for subject in SUBJECTS:
            assert tail.count(subject, 0) == sum(1 for e in live if e[1] == subject)
