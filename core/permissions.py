"""Publish and subscribe permissions: the one decision every door and delivery path asks.

A user's permissions are allow and deny lists of subject patterns for publishing and
for subscribing, plus ``allow_responses`` for services.  The rules are nats-server's:
no allow list means everything is allowed, deny wins over allow, and a subscribe entry
``"subject queue"`` grants (or denies) that queue group only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from jetport.core.subjects import SubjectIndex, is_literal, subjects_overlap

#: nats-server's defaults for ``allow_responses: true``.
DEFAULT_RESPONSE_MAX = 1
DEFAULT_RESPONSE_TTL = 120.0
_CACHE_LIMIT = 8192


class Action(Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    #: A message about to be delivered to a wildcard subscription.
    DELIVER = "deliver"


class _Rule:
    """One list entry; the index stores it like a subscription."""

    __slots__ = ("subject", "queue")

    def __init__(self, subject: bytes, queue: bytes | None) -> None:
        self.subject = subject
        self.queue = queue


class RuleList:
    """Subject patterns (optionally with a queue group) matched through a subject index."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = list(entries)
        self.index: SubjectIndex[_Rule] = SubjectIndex()
        for entry in entries:
            subject, _, queue = entry.strip().partition(" ")
            self.index.insert(_Rule(subject.encode(), queue.strip().encode() or None))

    def match(self, subject: bytes, queue: bytes | None = None) -> bool | None:
        """True if a plain entry matches; with ``queue``, entries for queue groups
        decide when some match (None when nothing matches at all)."""
        plain, groups = self.index.match(subject)
        if queue is not None and groups:
            return any(rule.queue == queue for members in groups for rule in members)
        return True if plain else None

    def covers_part_of(self, pattern: bytes) -> bool:
        """Whether some subject a subscription on ``pattern`` would get matches an entry:
        any overlap (``*.x`` and ``secret.>`` share ``secret.x``), not only containment."""
        return any(
            subjects_overlap(pattern, e.split(" ", 1)[0].encode()) for e in self.entries
        )

    def __bool__(self) -> bool:
        return bool(self.entries)


@dataclass
class ResponsePermission:
    """``allow_responses``: replies allowed per request received, for a while."""

    max: int = DEFAULT_RESPONSE_MAX
    expires: float = DEFAULT_RESPONSE_TTL  # seconds; 0 = never


@dataclass
class Permissions:
    """A user's permissions; ``None`` lists mean "no rule of that kind"."""

    pub_allow: RuleList | None = None
    pub_deny: RuleList | None = None
    sub_allow: RuleList | None = None
    sub_deny: RuleList | None = None
    responses: ResponsePermission | None = None
    _pub_cache: dict[bytes, bool] = field(default_factory=dict, repr=False, compare=False)
    _recv_cache: dict[bytes, bool] = field(default_factory=dict, repr=False, compare=False)

    def can_publish(self, subject: bytes) -> bool:
        cache = self._pub_cache
        ok = cache.get(subject)
        if ok is None:
            ok = (self.pub_allow is None or self.pub_allow.match(subject) is True) and not (
                self.pub_deny is not None and self.pub_deny.match(subject)
            )
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[subject] = ok
        return ok

    def can_subscribe(self, subject: bytes, queue: bytes | None = None) -> bool:
        if self.sub_allow is not None and not self.sub_allow.match(subject, queue):
            return False
        return not (self.sub_deny is not None and self.sub_deny.match(subject, queue))

    def can_receive(self, subject: bytes) -> bool:
        """Deny rules also filter what a wildcard subscription delivers."""
        cache = self._recv_cache
        ok = cache.get(subject)
        if ok is None:
            ok = not (self.sub_deny is not None and self.sub_deny.match(subject))
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[subject] = ok
        return ok

    def needs_delivery_check(self, pattern: bytes) -> bool:
        """A wildcard subscription some deny entry falls inside must filter deliveries."""
        return (
            self.sub_deny is not None and not is_literal(pattern)
            and self.sub_deny.covers_part_of(pattern)
        )

    def allows(self, action: Action, subject: bytes, queue: bytes | None = None) -> bool:
        """The single decision for (this principal, action, subject)."""
        if action is Action.PUBLISH:
            return self.can_publish(subject)
        if action is Action.SUBSCRIBE:
            return self.can_subscribe(subject, queue)
        return self.can_receive(subject)

    def to_json(self) -> dict[str, Any]:
        """nats-server's shape (used by $SYS.REQ.USER.INFO and monitoring)."""
        out: dict[str, Any] = {}
        for name, allow, deny in (("publish", self.pub_allow, self.pub_deny),
                                  ("subscribe", self.sub_allow, self.sub_deny)):
            part = {}
            if allow is not None:
                part["allow"] = allow.entries
            if deny is not None:
                part["deny"] = deny.entries
            if part:
                out[name] = part
        if self.responses is not None:
            out["responses"] = {"max": self.responses.max,
                                "ttl": int(self.responses.expires * 1e9)}
        return out


def allowed(perms: Permissions | None, action: Action, subject: bytes,
            queue: bytes | None = None) -> bool:
    """Whether a principal with ``perms`` (None: unrestricted) may do ``action``."""
    return perms is None or perms.allows(action, subject, queue)


class Responses:
    """Reply subjects a service may answer under ``allow_responses``.

    Each request delivered to the client with a reply subject grants ``max`` messages
    to that subject within ``expires`` seconds.
    """

    __slots__ = ("perm", "open")

    def __init__(self, perm: ResponsePermission) -> None:
        self.perm = perm
        self.open: dict[bytes, list[float]] = {}  # reply -> [remaining, deadline]

    def grant(self, reply: bytes) -> None:
        perm = self.perm
        deadline = time.monotonic() + perm.expires if perm.expires > 0 else 0.0
        self.open[reply] = [perm.max, deadline]
        if len(self.open) > _CACHE_LIMIT:
            self.prune()

    def use(self, reply: bytes) -> bool:
        """Spend one response to ``reply`` if one is open."""
        slot = self.open.get(reply)
        if slot is None:
            return False
        if slot[1] and time.monotonic() > slot[1]:
            del self.open[reply]
            return False
        if slot[0] > 0:
            slot[0] -= 1
            if slot[0] == 0:
                del self.open[reply]
            return True
        return True  # max <= 0: unlimited responses until expiry

    def prune(self) -> None:
        now = time.monotonic()
        for reply in [r for r, (_, d) in self.open.items() if d and now > d]:
            del self.open[reply]
