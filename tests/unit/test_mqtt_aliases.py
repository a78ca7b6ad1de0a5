"""Topic aliases the MQTT door gives the topics it sends (MQTT 5, 3.3.2.3.4)."""

from __future__ import annotations

from jetport.bridges.mqtt.aliases import MAX_ASSIGNED, TopicAliases


def send(aliases: TopicAliases, topic: str) -> tuple[int, bool]:
    """What one PUBLISH carries: its alias and whether the topic goes along."""
    alias, new = aliases.choose(topic)
    if new:
        aliases.remember(topic, alias)
    return alias, new


def test_first_publish_carries_the_topic_later_ones_the_alias_alone() -> None:
    aliases = TopicAliases(3)
    assert [send(aliases, t) for t in ("a", "b", "a", "b", "c")] == [
        (1, True), (2, True), (1, False), (2, False), (3, True)]


def test_the_least_recently_used_alias_is_given_to_a_new_topic_when_all_are_taken() -> None:
    aliases = TopicAliases(2)
    send(aliases, "a")
    send(aliases, "b")
    send(aliases, "a")                       # b is now the least recently used
    assert send(aliases, "c") == (2, True)  # b's alias, with the topic: remapped
    assert send(aliases, "b") == (1, True)  # a's now
    assert send(aliases, "c") == (2, False)
    assert len(aliases) == 2


def test_nothing_is_remembered_for_a_packet_that_was_not_sent() -> None:
    aliases = TopicAliases(2)
    assert aliases.choose("big") == (1, True)  # dropped as too large: no remember()
    assert aliases.choose("big") == (1, True)


def test_no_aliases_when_the_client_takes_none_and_a_cap_on_memory() -> None:
    assert TopicAliases(0).choose("a") == (0, False)
    assert TopicAliases(5).choose("") == (0, False)
    assert TopicAliases(65535).maximum == MAX_ASSIGNED
