"""The JetStream API level this hub speaks, and the header clients assert it with.

A client that depends on a newer feature sends ``Nats-Required-Api-Level: N``; a server
below ``N`` must refuse the request rather than silently ignore fields it does not know.
"""

from __future__ import annotations

import json
from typing import Any

from jetport.core import headers as H
from jetport.core.timeutil import ZERO_TIME_NS

#: Level 2: the JetStream API of nats-server 2.12 (level 1's per-message TTLs, consumer
#: pause, priority groups and batched direct gets; counters, atomic batch publish,
#: message schedules, async persistence, mirror promotion and offline assets).
API_LEVEL = 2
REQUIRED = b"Nats-Required-Api-Level"


def unmet(hdr: bytes | None) -> bool:
    """True when ``hdr`` asks for a level above ours, or for one that is not a number.

    An empty value asks for nothing, as with nats-server.
    """
    value = H.get(hdr, REQUIRED)
    if not value:
        return False
    try:
        return int(value) > API_LEVEL
    except ValueError:
        return True


# -- versioning metadata (ADR-44) ------------------------------------------------------
#
# Stream and consumer configs carry, in their metadata, the API level their features
# need (stored with the asset) and, in the API's answers only, the server's version and
# level, as nats-server 2.11+ does: a client can tell whether a server may restore an
# asset, and what it runs on.

#: Stored: the level the asset's features need.
REQUIRED_LEVEL_KEY = "_nats.req.level"
#: Answers only: the server's version and API level.
SERVER_VERSION_KEY = "_nats.ver"
SERVER_LEVEL_KEY = "_nats.level"
_DYNAMIC = (SERVER_VERSION_KEY, SERVER_LEVEL_KEY)
_VERSIONING = (REQUIRED_LEVEL_KEY, *_DYNAMIC)


def stream_required_level(config: Any) -> int:
    """Per-message TTLs and subject delete markers came with level 1; counters, atomic
    batch publish, message schedules and async persistence with level 2."""
    if (config.allow_msg_counter or config.allow_atomic or config.allow_msg_schedules
            or str(config.persist_mode) == "async"):
        return 2
    return 1 if config.allow_msg_ttl or config.subject_delete_marker_ttl > 0 else 0


def consumer_required_level(config: Any) -> int:
    """Pausing and priority groups came with level 1."""
    paused = config.pause_until is not None and config.pause_until != ZERO_TIME_NS
    grouped = (str(config.priority_policy) != "none" or config.priority_timeout != 0
               or bool(config.priority_groups))
    return 1 if paused or grouped else 0


def stamp(metadata: dict[str, str] | None, level: int) -> dict[str, str]:
    """The metadata to store: what the client gave, less the server's own answer-only
    keys, with the required ``level``."""
    out = {k: v for k, v in (metadata or {}).items() if k not in _DYNAMIC}
    out[REQUIRED_LEVEL_KEY] = str(level)
    return out


def stamp_stream(config: Any) -> Any:
    config.metadata = stamp(config.metadata, stream_required_level(config))
    return config


def stamp_consumer(config: Any) -> Any:
    config.metadata = stamp(config.metadata, consumer_required_level(config))
    return config


def with_server(config: dict[str, Any], version: str) -> dict[str, Any]:
    """A dumped config as an answer shows it: its metadata with the server's version
    and level (not for lists, as nats-server's)."""
    meta = dict(config.get("metadata") or {})
    meta[SERVER_VERSION_KEY] = version
    meta[SERVER_LEVEL_KEY] = str(API_LEVEL)
    return {**config, "metadata": meta}


def without_versioning(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dumped config with the versioning keys left out of its metadata, for telling
    whether two configs are the same but for them (an asset from before they existed,
    or a create that repeats one)."""
    meta = {k: v for k, v in (dumped.get("metadata") or {}).items() if k not in _VERSIONING}
    return {**dumped, "metadata": meta}


def unsupported(config_json: str | bytes) -> str | None:
    """Why a stored stream config can not run here, in nats-server's words, or None.

    A config stored by a server of a newer level (or one naming fields this server does
    not know) keeps its place offline rather than being dropped: its messages and its
    subjects stay, and a server of that level can run it again.
    """
    try:
        meta = json.loads(config_json).get("metadata") or {}
        level = int(meta.get(REQUIRED_LEVEL_KEY) or 0)
    except (ValueError, AttributeError, TypeError):
        return None  # not readable at all: the model's own error says why
    if level > API_LEVEL:
        return f"unsupported - required API level: {level}, current API level: {API_LEVEL}"
    return None


def stored_subjects(config_json: str | bytes) -> list[bytes]:
    """The subjects of a stored config this server may not understand otherwise."""
    try:
        subjects = json.loads(config_json).get("subjects") or []
    except (ValueError, AttributeError):
        return []
    return [s.encode() for s in subjects if isinstance(s, str)]
