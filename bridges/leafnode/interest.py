"""Interest on both sides of a leaf link, without I/O.

:class:`LocalInterest` turns this hub's subscriptions into the ``LS+``/``LS-`` a
nats-server leaf sends: each subject announced once however many subscribe to it
(``LS+`` when the first arrives, ``LS-`` when the last leaves), and each queue group
announced with its member count as weight, sent again whenever the count changes.
:class:`RemoteInterest` keeps what the other side announced, in the same subject index
the router uses, and answers for one message whether it goes over the link and for which
of the other side's queue groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jetport.bridges.leafnode.encoder import encode_sub, encode_unsub
from jetport.core.subjects import SubjectIndex

Key = tuple[bytes, bytes | None]


class LocalInterest:
    """Reference counts of local subscriptions, by ``(subject, queue)``."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = {}

    def add(self, subject: bytes, queue: bytes | None) -> bytes | None:
        """Count one more subscriber; the frame to send, if the other side must hear."""
        key = (subject, queue)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if queue is None:
            return encode_sub(subject) if n == 1 else None
        return encode_sub(subject, queue, n)

    def remove(self, subject: bytes, queue: bytes | None) -> bytes | None:
        key = (subject, queue)
        n = self.counts.get(key, 0) - 1
        if n < 0:
            return None
        if n == 0:
            del self.counts[key]
            return encode_unsub(subject, queue)
        self.counts[key] = n
        return encode_sub(subject, queue, n) if queue is not None else None

    def burst(self, keep: Callable[[bytes], bool]) -> list[bytes]:
        """Everything there is interest in on subjects ``keep`` admits, for a link that
        has just connected."""
        return [encode_sub(subject, queue, n) if queue is not None else encode_sub(subject)
                for (subject, queue), n in self.counts.items() if keep(subject)]


@dataclass(eq=False, slots=True)
class RemoteSub:
    """One key the other side announced: a subject, or a queue group with its weight."""

    subject: bytes
    queue: bytes | None
    weight: int = 1


class RemoteInterest:
    """What the other side wants, as it announced it with ``LS+``/``LS-``."""

    def __init__(self) -> None:
        self.index: SubjectIndex[RemoteSub] = SubjectIndex()
        self.keys: dict[Key, RemoteSub] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, subject: bytes, queue: bytes | None, weight: int) -> None:
        """``LS+``: a new key, or (for a queue group) its new weight."""
        sub = self.keys.get((subject, queue))
        if sub is not None:
            sub.weight = weight
            return
        sub = RemoteSub(subject, queue, weight)
        self.keys[(subject, queue)] = sub
        self.index.insert(sub)

    def remove(self, subject: bytes, queue: bytes | None) -> None:
        """``LS-``; a key never announced is ignored, as nats-server does."""
        sub = self.keys.pop((subject, queue), None)
        if sub is not None:
            self.index.remove(sub)

    def wants(self, subject: bytes, local_groups: frozenset[bytes]
              ) -> tuple[bool, tuple[bytes, ...]]:
        """Whether a message on ``subject`` goes over the link, and the other side's
        queue groups it is for: those with no member on this side (a local member
        keeps the message here, as nats-server prefers its own clients)."""
        plain, groups = self.index.match(subject)
        if not groups:
            return bool(plain), ()
        queues = tuple(sorted({g[0].queue for g in groups
                               if g[0].queue is not None and g[0].queue not in local_groups}))
        return bool(plain) or bool(queues), queues
