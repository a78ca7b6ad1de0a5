"""Topic aliases the door gives the topics it sends an MQTT 5 client (3.3.2.3.4).

A client that announces a Topic Alias Maximum lets the server replace a topic it has
sent before by a two-byte number: the first PUBLISH on a topic carries the topic and
its alias, later ones the alias and an empty topic.  The mapping is per network
connection, so a reconnect starts afresh.  Once every alias the client allows is in
use, the least recently used one is given to the new topic (a PUBLISH with topic and
alias overwrites the client's mapping).  No I/O: the connection asks :meth:`choose`
before encoding a PUBLISH and :meth:`remember` once it is really sent (one dropped as
too large for the client must not set a mapping the client never saw).
"""

from __future__ import annotations

from collections import OrderedDict

#: At most this many aliases per connection, whatever the client allows: each one is a
#: topic the door keeps in memory.
MAX_ASSIGNED = 1024


class TopicAliases:
    """The aliases of one connection's outgoing topics, at most ``maximum`` of them."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(0, min(maximum, MAX_ASSIGNED))
        #: Topic -> alias, least recently used first.
        self._by_topic: OrderedDict[str, int] = OrderedDict()

    def choose(self, topic: str) -> tuple[int, bool]:
        """The alias for ``topic`` and whether the packet must carry the topic too (a new
        mapping); ``(0, False)``: send the topic without an alias."""
        if not self.maximum or not topic:
            return 0, False
        aliases = self._by_topic
        alias = aliases.get(topic)
        if alias is not None:
            aliases.move_to_end(topic)
            return alias, False
        if len(aliases) < self.maximum:
            return len(aliases) + 1, True
        return next(iter(aliases.values())), True

    def remember(self, topic: str, alias: int) -> None:
        """``topic`` went out with the new ``alias`` (from :meth:`choose`)."""
        aliases = self._by_topic
        if len(aliases) >= self.maximum:
            oldest = next(iter(aliases))
            if aliases[oldest] == alias:
                del aliases[oldest]
        aliases[topic] = alias

    def __len__(self) -> int:
        return len(self._by_topic)
