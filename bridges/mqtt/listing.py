"""The MQTT door's sessions as the HTTP console lists them: connected ones and the
persistent ones waiting offline with the messages queued for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.bridges.mqtt.session import Session


def _will(session: Session) -> dict[str, Any] | None:
    will = session.conn.will if session.conn is not None else session.will
    if will is None:
        return None
    return {"topic": will.topic, "qos": will.qos, "retain": will.retain,
            "size": len(will.payload)}


def session_doc(session: Session) -> dict[str, Any]:
    return {
        "client_id": session.client_id,
        "account": session.account.name,
        "user": session.user or "",
        "cid": session.cid,
        "connected": session.conn is not None,
        "persistent": session.persistent,
        "mqtt_version": 5 if session.level == 5 else 3,
        "subscriptions": [{"filter": f, "qos": info.qos}
                          for f, info in session.filters.items()],
        # Queued for the client: waiting for its window, and sent but not acknowledged.
        "queued": len(session.queue) + len(session.inflight),
        "queued_bytes": session.queue.size,
        "spilled": session.spilled,
        "will": _will(session),
        "expires": session.ends,
    }


def session_docs(door: MqttDoor, account: str | None) -> list[dict[str, Any]]:
    """The documents of ``account``'s sessions (all accounts' for None)."""
    return [session_doc(s) for s in list(door.sessions.values())
            if account is None or s.account.name == account]
