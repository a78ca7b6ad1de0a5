"""JetStream advisories: ``$JS.EVENT.ADVISORY.*`` events that tell an account's
subscribers what happened to its streams and consumers, shaped as nats-server's.

Each is built only when someone in the account listens on its subject, so the message
path (acks, naks) pays nothing for them otherwise.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jetport.core.ids import base62
from jetport.core.timeutil import rfc3339

if TYPE_CHECKING:
    from jetport.core.jetstream.account import JetStreamAccount

PREFIX = b"$JS.EVENT.ADVISORY."
TYPE = "io.nats.jetstream.advisory.v1."


def advise(jsa: JetStreamAccount, subject: str, kind: str, **fields: Any) -> None:
    """Publish advisory ``kind`` on ``$JS.EVENT.ADVISORY.<subject>`` if anyone listens."""
    full = PREFIX + subject.encode()
    plain, groups = jsa.account.router.match(full)
    if not (plain or groups):
        return
    doc = {"type": TYPE + kind, "id": base62(22), "timestamp": rfc3339(), **fields}
    jsa.client.send(full, None, None, json.dumps(doc, separators=(",", ":")).encode())


def stream_action(jsa: JetStreamAccount, stream: str, action: str) -> None:
    """``create``, ``modify`` or ``delete`` of a stream."""
    event = {"create": "CREATED", "modify": "UPDATED", "delete": "DELETED"}[action]
    advise(jsa, f"STREAM.{event}.{stream}", "stream_action", stream=stream, action=action)


def consumer_action(jsa: JetStreamAccount, stream: str, consumer: str, action: str) -> None:
    """``create`` or ``delete`` of a consumer."""
    event = {"create": "CREATED", "delete": "DELETED"}[action]
    advise(jsa, f"CONSUMER.{event}.{stream}.{consumer}", "consumer_action",
           stream=stream, consumer=consumer, action=action)
