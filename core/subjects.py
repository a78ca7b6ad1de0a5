"""The subscription index: which subscriptions a published subject reaches.

The subject grammar it builds on (validity, matching, overlap) is
:mod:`jetport.storage.subjects`, shared with the stores; its names are re-exported
here for the core's callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar, cast

from jetport.storage.subjects import (
    FWC,
    PWC,
    is_literal,
    is_subset,
    is_valid_literal_subject,
    is_valid_publish_subject,
    is_valid_subject,
    subject_matches,
    subjects_overlap,
    tokens_match,
)

__all__ = [
    "EMPTY",
    "FWC",
    "Match",
    "PWC",
    "SubjectIndex",
    "Subscriber",
    "is_literal",
    "is_subset",
    "is_valid_literal_subject",
    "is_valid_publish_subject",
    "is_valid_subject",
    "subject_matches",
    "subjects_overlap",
    "tokens_match",
]


class Subscriber(Protocol):
    """What the index needs to know about a subscription."""

    subject: bytes
    queue: bytes | None


#: The result of a lookup: ``(plain, groups)``.  ``plain`` is a tuple of subscriptions
#: that each get a copy; ``groups`` a tuple of tuples, one per queue group, of which one
#: member gets a copy.  Immutable snapshots, so a subscription removed during delivery
#: cannot disturb the loop.
S = TypeVar("S", bound="Subscriber")
Match = tuple[tuple[S, ...], tuple[tuple[S, ...], ...]]

EMPTY: Match[Any] = ((), ())


#: What a node without plain subscribers or queue groups holds: one shared empty dict
#: each, never written (insert gives a node its own first), 64 bytes less per node.
_NO_PLAIN: dict[Any, None] = {}
_NO_QUEUES: dict[bytes, dict[Any, None]] = {}


class _Node:
    __slots__ = ("plain", "queues", "level")

    def __init__(self) -> None:
        self.plain: dict[Subscriber, None] = _NO_PLAIN
        self.queues: dict[bytes, dict[Subscriber, None]] = _NO_QUEUES
        self.level: _Level | None = None

    def empty(self) -> bool:
        return not self.plain and not self.queues and (self.level is None or self.level.empty())


class _Level:
    __slots__ = ("nodes", "pwc", "fwc")

    def __init__(self) -> None:
        self.nodes: dict[bytes, _Node] = {}
        self.pwc: _Node | None = None
        self.fwc: _Node | None = None

    def empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None


class SubjectIndex(Generic[S]):
    """A token trie of subscriptions with a bounded cache of match results.

    The cache maps a literal subject to its :class:`Match`.  Inserting or removing a
    literal subscription drops just that entry; a wildcard one drops every cached
    subject it matches, so the cache is never stale.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._root = _Level()
        self._count = 0
        self.cache: dict[bytes, Match[S]] = {}
        self.cache_size = cache_size
        #: (first tokens, number of tokens) -> answer, for answers that ignore the rest
        self._prefixes: dict[tuple[bytes, int], Match[S]] = {}
        self._depths: list[int] = []

    def __len__(self) -> int:
        return self._count

    def insert(self, sub: S) -> None:
        level = self._root
        node: _Node | None = None
        for tok in sub.subject.split(b"."):
            if node is not None:
                if node.level is None:
                    node.level = _Level()
                level = node.level
            if tok == PWC:
                node = level.pwc = level.pwc or _Node()
            elif tok == FWC:
                node = level.fwc = level.fwc or _Node()
            else:
                node = level.nodes.get(tok)
                if node is None:
                    node = level.nodes[tok] = _Node()
        assert node is not None
        if sub.queue is None:
            plain = node.plain
            if sub in plain:
                return
            if plain is _NO_PLAIN:
                plain = node.plain = {}
            plain[sub] = None
        else:
            queues = node.queues
            if queues is _NO_QUEUES:
                queues = node.queues = {}
            members = queues.setdefault(sub.queue, {})
            if sub in members:
                return
            members[sub] = None
        self._count += 1
        self._invalidate(sub.subject)

    def remove(self, sub: S) -> bool:
        """Remove ``sub``; returns False when it was not indexed."""
        path: list[tuple[_Level, bytes, _Node]] = []
        level: _Level | None = self._root
        node: _Node | None = None
        for tok in sub.subject.split(b"."):
            if level is None:
                return False
            if tok == PWC:
                node = level.pwc
            elif tok == FWC:
                node = level.fwc
            else:
                node = level.nodes.get(tok)
            if node is None:
                return False
            path.append((level, tok, node))
            level = node.level
        assert node is not None
        if sub.queue is None:
            if node.plain.pop(sub, False) is False:
                return False
            if not node.plain:
                node.plain = _NO_PLAIN
        else:
            members = node.queues.get(sub.queue)
            if members is None or members.pop(sub, False) is False:
                return False
            if not members:
                del node.queues[sub.queue]
                if not node.queues:
                    node.queues = _NO_QUEUES
        self._count -= 1
        for lvl, tok, n in reversed(path):
            if not n.empty():
                break
            if tok == PWC:
                lvl.pwc = None
            elif tok == FWC:
                lvl.fwc = None
            else:
                del lvl.nodes[tok]
        self._invalidate(sub.subject)
        return True

    def _invalidate(self, pattern: bytes) -> None:
        # Prefix answers hold for a shape of the trie; any change may alter it.
        if self._prefixes:
            self._prefixes.clear()
            self._depths.clear()
        cache = self.cache
        if not cache:
            return
        if is_literal(pattern):
            cache.pop(pattern, None)
            return
        ptoks = pattern.split(b".")
        for key in [k for k in cache if tokens_match(ptoks, k.split(b"."))]:
            del cache[key]

    def match(self, subject: bytes) -> Match[S]:
        """All subscriptions matching the literal ``subject``, cached.

        Besides exact subjects, answers that depend only on a subject's first tokens are
        cached by that prefix and the subject's length: unique reply subjects such as
        ``_INBOX.<id>.<n>`` or ``$JS.ACK...`` then cost a lookup, not a walk.
        """
        hit = self.cache.get(subject)
        if hit is not None:
            return hit
        return self.lookup(subject)

    def lookup(self, subject: bytes) -> Match[S]:
        """:meth:`match` for a subject known not to be in the exact cache."""
        return self.lookup_depth(subject)[0]

    def lookup_depth(self, subject: bytes) -> tuple[Match[S], int]:
        """:meth:`lookup`, and how many leading tokens the answer depends on: fewer
        than the subject has means every subject of the same length sharing them gets
        the same answer."""
        prefixes = self._prefixes
        if prefixes:
            ntok = subject.count(b".") + 1
            pos, at = -1, 0  # the end of the first ``at`` tokens
            for depth in self._depths:  # ascending
                if depth >= ntok:
                    break
                while at < depth:
                    pos = subject.find(b".", pos + 1)
                    at += 1
                hit = prefixes.get((subject[:pos] if depth else b"", ntok))
                if hit is not None:
                    return hit, depth
        plain: list[Subscriber] = []
        queues: dict[bytes, list[Subscriber]] = {}
        toks = subject.split(b".")
        depth = _collect(self._root, toks, 0, plain, queues)
        # The trie holds what insert() was given: subscriptions of type S.
        if queues:
            result = cast(Match[S], (tuple(plain), tuple(map(tuple, queues.values()))))
        else:
            result = cast(Match[S], (tuple(plain), ()) if plain else EMPTY)
        ntok = len(toks)
        if depth < ntok:
            if len(prefixes) >= self.cache_size:
                prefixes.clear()
                self._depths.clear()
            prefixes[(b".".join(toks[:depth]), ntok)] = result
            if depth not in self._depths:
                self._depths.append(depth)
                self._depths.sort()
            return result, depth
        cache = self.cache
        if len(cache) >= self.cache_size:
            for key in list(cache)[: self.cache_size // 2]:
                del cache[key]
        cache[subject] = result
        return result, ntok

    def __iter__(self) -> Iterator[S]:
        stack = [self._root]
        while stack:
            level = stack.pop()
            nodes = list(level.nodes.values())
            nodes += [n for n in (level.pwc, level.fwc) if n is not None]
            for node in nodes:
                yield from cast(dict[S, None], node.plain)
                for members in node.queues.values():
                    yield from cast(dict[S, None], members)
                if node.level is not None:
                    stack.append(node.level)


def _collect(
    level: _Level,
    toks: list[bytes],
    i: int,
    plain: list[Subscriber],
    queues: dict[bytes, list[Subscriber]],
) -> int:
    """Gather the subscriptions matching ``toks`` from token ``i`` on.

    Returns how many leading tokens the answer depends on: one past the deepest token
    looked up among literal siblings.  Tokens after that only met wildcards or nothing,
    so every subject of the same length that shares those tokens has the same answer.
    """
    last = len(toks) - 1
    depth = 0
    while True:
        fwc = level.fwc
        if fwc is not None:
            _add(fwc, plain, queues)
        pwc = level.pwc
        if pwc is not None:
            if i == last:
                _add(pwc, plain, queues)
            elif pwc.level is not None:
                deeper = _collect(pwc.level, toks, i + 1, plain, queues)
                if deeper > depth:
                    depth = deeper
        nodes = level.nodes
        if not nodes:
            return depth
        if i >= depth:
            depth = i + 1
        node = nodes.get(toks[i])
        if node is None:
            return depth
        if i == last:
            _add(node, plain, queues)
            return depth
        if node.level is None:
            return depth
        level = node.level
        i += 1


def _add(node: _Node, plain: list[Subscriber], queues: dict[bytes, list[Subscriber]]) -> None:
    if node.plain:
        plain.extend(node.plain)
    for name, members in node.queues.items():
        queues.setdefault(name, []).extend(members)
