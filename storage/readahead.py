"""Windows of database reads kept for the ``next()`` calls that follow.

A consumer catching up calls ``next(seq)``, ``next(seq + 1)``, ... and each call to the
database is a thread round trip of about 0.1 ms.  Fetching a window of matches per query
and answering the following calls from it makes replay run at memory speed.

A window for a filter set says: the messages in it are *all* the matches with
``lo <= seq < hi``.  Only committed messages are ever in range (windows stay below the
tail's floor), and new messages get higher sequences, so only removals can make a
window wrong; every removal bumps ``gen`` (before it runs and again once committed) and
drops the windows, and a window read while ``gen`` changed is not kept.
"""

from __future__ import annotations

from bisect import bisect_left

from .base import StoredMsg

Key = tuple[bytes, ...]

#: Filter sets remembered per stream.
SLOTS = 8
#: Bytes one window aims at; the row limit follows from the stream's average size.
WINDOW_BYTES = 256 << 10
MAX_ROWS = 256


class _Window:
    __slots__ = ("lo", "hi", "seqs", "msgs")

    def __init__(self, lo: int, hi: int, msgs: list[StoredMsg]) -> None:
        self.lo, self.hi, self.msgs = lo, hi, msgs
        self.seqs = [m.seq for m in msgs]


class ReadAhead:
    """Up to ``SLOTS`` windows, one per filter set, oldest dropped first."""

    __slots__ = ("_windows", "gen")

    def __init__(self) -> None:
        self._windows: dict[Key, _Window] = {}
        self.gen = 0

    def invalidate(self) -> None:
        self._windows.clear()
        self.gen += 1

    def slice(self, key: Key, seq: int, n: int) -> tuple[list[StoredMsg], int] | None:
        """``(up to n matches >= seq, end)`` when a window covers ``seq`` (an empty list:
        none below end); None when none does."""
        w = self._windows.get(key)
        if w is None or not w.lo <= seq < w.hi:
            return None
        i = bisect_left(w.seqs, seq)
        return w.msgs[i:i + n], w.hi

    def put(self, key: Key, gen: int, lo: int, hi: int, msgs: list[StoredMsg]) -> None:
        """Keep a window read while ``gen`` was current, unless a removal came since."""
        if gen != self.gen or hi <= lo:
            return
        windows = self._windows
        windows.pop(key, None)
        if len(windows) >= SLOTS:
            del windows[next(iter(windows))]
        windows[key] = _Window(lo, hi, msgs)


def rows_for(msgs: int, nbytes: int) -> int:
    """How many rows a window should fetch for a stream of this average size."""
    if not msgs:
        return MAX_ROWS
    return max(1, min(MAX_ROWS, WINDOW_BYTES * msgs // max(nbytes, 1)))
