"""The MQTT door's sessions as the HTTP console lists them: connected ones and the
persistent ones waiting offline with the messages queued for them, whether held in memory
or, offline since before the hub started, only in the store (:mod:`.offline`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.offline import offline_page

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
        "stored_only": False,
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


async def session_page(door: MqttDoor, account: str | None, offset: int, limit: int,
                       text: str) -> dict[str, Any]:
    """Sessions ``offset`` to ``offset + limit`` of ``account`` (every account's for None)
    whose client ids contain ``text``: those in memory first, by account and client id,
    then those only the store holds."""
    live = [session_doc(s) for s in list(door.sessions.values())
            if (account is None or s.account.name == account) and text in s.client_id]
    live.sort(key=lambda d: (d["account"], d["client_id"]))
    page = live[offset:offset + limit]
    accounts = sorted((a for a in list(door.hub.accounts.values())
                       if (account is None or a.name == account) and door.stores.kept(a)),
                      key=lambda a: a.name)
    stored = await offline_page(door, accounts, max(offset - len(live), 0),
                                limit - len(page), text)
    return {"total": len(live) + stored.counted, "total_capped": stored.capped,
            "sessions": page + stored.docs}
