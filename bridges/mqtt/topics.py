"""MQTT topics and filters to NATS subjects and back, exactly as nats-server maps them.

``/`` separates levels in MQTT and ``.`` in NATS, so the other characters need
escaping: a ``.`` inside a level becomes ``//``, and empty levels become ``/``
tokens.  Filters map ``+`` to ``*`` and ``#`` to ``>``; ``a/#`` also matches ``a``,
which takes a second subscription on ``a`` itself.
"""

from __future__ import annotations

from jetport.core.memo import remember

#: Characters nats-server refuses in topics (they would break the NATS protocol).
_FORBIDDEN = frozenset(" \t\r\n\f\x7f")
SHARE_PREFIX = "$share/"
#: How many topic <-> subject mappings are remembered, and the longest topic or subject
#: kept (so the caches stay under a few MB): every message needs one of them.
_CACHE_SIZE = 4096
_CACHED_LEN = 256
_subjects: dict[str, bytes] = {}
_topics: dict[bytes, str] = {}


class TopicError(ValueError):
    """A topic or filter with no NATS subject."""


def to_subject(topic: str, *, filter_: bool = False) -> str:
    """The NATS subject (or subscription subject) of an MQTT topic (or filter)."""
    if not topic:
        raise TopicError("empty topic")
    out: list[str] = []
    n = len(topic)
    for i, ch in enumerate(topic):
        if ch in _FORBIDDEN:
            raise TopicError(f"invalid character {ch!r} in topic")
        if ch == "/":
            if i == 0 or out[-1][-1] == ".":
                out.append("/.")
            elif i == n - 1 or topic[i + 1] == "/":
                out.append("./")
            else:
                out.append(".")
        elif ch == ".":
            out.append("//")
        elif ch == "+":
            if not filter_:
                raise TopicError("wildcard in a topic name")
            out.append("*")
        elif ch == "#":
            if not filter_:
                raise TopicError("wildcard in a topic name")
            out.append(">")
        else:
            out.append(ch)
    subject = "".join(out)
    if subject.endswith("."):
        subject += "/"
    return subject


def to_topic(subject: str) -> str:
    """The MQTT topic a NATS subject is delivered under."""
    out: list[str] = []
    i, n = 0, len(subject)
    while i < n:
        ch = subject[i]
        if ch == ".":
            out.append("/")
        elif ch == "/":
            nxt = subject[i + 1] if i + 1 < n else ""
            if nxt == ".":
                out.append("/")
                i += 1
            elif nxt == "/":
                out.append(".")
                i += 1
            # a lone "/" (an empty level marker at the end) adds nothing
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def publish_subject(topic: str) -> bytes:
    """The NATS subject of topic name ``topic``, encoded; remembered for short topics
    (the mapping cost 17% of the door's CPU time on QoS 0 publishes)."""
    subject = _subjects.get(topic)
    if subject is None:
        subject = to_subject(topic).encode()
        if len(topic) <= _CACHED_LEN:
            remember(_subjects, topic, subject, _CACHE_SIZE)
    return subject


def delivery_topic(subject: bytes) -> str:
    """The MQTT topic a message on ``subject`` is delivered under; remembered for short
    subjects (the mapping cost 10% of the door's CPU time on QoS 0 deliveries)."""
    topic = _topics.get(subject)
    if topic is None:
        topic = to_topic(subject.decode(errors="replace"))
        if len(subject) <= _CACHED_LEN:
            remember(_topics, subject, topic, _CACHE_SIZE)
    return topic


def valid_filter(topic_filter: str) -> bool:
    """MQTT's filter rules: ``+`` and ``#`` take a whole level, ``#`` only the last."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """``$share/<group>/<filter>`` → (group, filter); other filters → (None, filter)."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    rest = topic_filter[len(SHARE_PREFIX):]
    group, sep, inner = rest.partition("/")
    if not sep or not group or "+" in group or "#" in group or not inner:
        raise TopicError(f"invalid shared subscription {topic_filter!r}")
    return group, inner


def filter_subjects(topic_filter: str) -> list[str]:
    """The NATS subscriptions an MQTT filter needs: ``a/#`` is ``a.>`` and ``a``."""
    subject = to_subject(topic_filter, filter_=True)
    if subject == ">":
        return [subject]
    if subject.endswith(".>"):
        return [subject, subject[:-2]]
    return [subject]
