"""A sorted set of sequence numbers that only grows at the end.

Streams append increasing sequences and delete from anywhere, mostly the front.  A
plain list makes front deletion O(n) (a million-entry memmove per message once a
stream hits its limits); fixed-size blocks bound every removal to one block and keep
lookups at two bisects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

_BLOCK = 512


class SeqIndex:
    """Increasing ints in blocks of at most ``_BLOCK``; ``_maxes`` holds each block's
    last element so a bisect finds the block."""

    __slots__ = ("_blocks", "_maxes", "_len")

    def __init__(self) -> None:
        self._blocks: list[list[int]] = []
        self._maxes: list[int] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def append(self, seq: int) -> None:
        """Add ``seq``, which must exceed every element."""
        blocks = self._blocks
        if blocks and len(blocks[-1]) < _BLOCK:
            blocks[-1].append(seq)
            self._maxes[-1] = seq
        else:
            blocks.append([seq])
            self._maxes.append(seq)
        self._len += 1

    def remove(self, seq: int) -> bool:
        bi = bisect_left(self._maxes, seq)
        if bi == len(self._maxes):
            return False
        block = self._blocks[bi]
        i = bisect_left(block, seq)
        if block[i] != seq:
            return False
        del block[i]
        self._len -= 1
        if not block:
            del self._blocks[bi]
            del self._maxes[bi]
        elif i == len(block):
            self._maxes[bi] = block[-1]
        return True

    def first(self) -> int | None:
        return self._blocks[0][0] if self._blocks else None

    def last(self) -> int | None:
        return self._maxes[-1] if self._maxes else None

    def ge(self, seq: int) -> int | None:
        """The smallest element >= ``seq``."""
        bi = bisect_left(self._maxes, seq)
        if bi == len(self._maxes):
            return None
        block = self._blocks[bi]
        return block[bisect_left(block, seq)]

    def count_ge(self, seq: int) -> int:
        """How many elements are >= ``seq``."""
        if not self._blocks or seq <= self._blocks[0][0]:
            return self._len
        bi = bisect_left(self._maxes, seq)
        if bi == len(self._maxes):
            return 0
        block = self._blocks[bi]
        n = len(block) - bisect_left(block, seq)
        for later in self._blocks[bi + 1 :]:
            n += len(later)
        return n

    def iter_from(self, seq: int = 0) -> Iterator[int]:
        """Elements >= ``seq`` in order.  Do not modify the index while iterating."""
        bi = bisect_left(self._maxes, seq)
        blocks = self._blocks
        if bi == len(blocks):
            return
        block = blocks[bi]
        yield from block[bisect_left(block, seq) :]
        for later in blocks[bi + 1 :]:
            yield from later

    def iter_back(self) -> Iterator[int]:
        """Elements newest first.  Do not modify the index while iterating."""
        for block in reversed(self._blocks):
            yield from reversed(block)
