"""Persistent sessions only the store holds: offline since before the hub started, until
their clients come back.  The console lists them from their stored records, a batch at a
time, without loading them as sessions (nothing subscribes, no timer starts), and counts
them only so far, so a listing's cost stays bounded however many there are."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jetport.core.log import log
from jetport.core.requester import RequestTimeout

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.bridges.mqtt.store import MqttStore
    from jetport.core.accounts import Account

#: Stored session records a listing reads past the end of its page, at most: the count
#: of offline sessions stops there (and says it did).
COUNT_CAP = 10_000
#: Records per DIRECT.GET batch (each batch costs about as much as 200 records more).
BATCH = 1024


@dataclass
class OfflinePage:
    """The stored-only sessions a page shows, how many were counted, and whether the
    count stopped at its cap."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    counted: int = 0
    capped: bool = False


def stored_doc(account: str, record: dict[str, Any], queued: int | None) -> dict[str, Any]:
    """A stored session as the console shows it: what its record keeps (no user, no
    protocol level, no will: those live with a connection)."""
    subs = record.get("subs")
    return {
        "client_id": record["id"], "account": account, "user": None, "cid": None,
        "connected": False, "persistent": True, "stored_only": True, "mqtt_version": None,
        "subscriptions": [{"filter": f, "qos": s.get("qos", 0)}
                          for f, s in (subs.items() if isinstance(subs, dict) else ())
                          if isinstance(s, dict)],
        "queued": queued, "queued_bytes": None, "spilled": True, "will": None,
        "expires": record.get("ends"),
    }


def _listed(door: MqttDoor, account: str, record: dict[str, Any], text: str,
            now: float) -> bool:
    """A stored record the listing shows: not held in memory (listed from there), not past
    its deadline (the next opening of the store deletes it)."""
    client_id = record.get("id")
    ends = record.get("ends")
    return (isinstance(client_id, str) and (account, client_id) not in door.sessions
            and text in client_id
            and not (isinstance(ends, (int, float)) and ends <= now))


async def offline_page(door: MqttDoor, accounts: list[Account], skip: int, want: int,
                       text: str) -> OfflinePage:
    """Stored-only sessions ``skip`` to ``skip + want`` of ``accounts`` (in their order,
    each account's in the order of its store), reading at most :data:`COUNT_CAP` records
    more than it skips and shows (in memory or not, matching or not)."""
    page = OfflinePage()
    budget = skip + want + COUNT_CAP
    chosen: list[tuple[Account, MqttStore, dict[str, Any], str]] = []
    now = time.time()
    for account in accounts:
        reader = door.stores.reader(account)
        after, more = 0, 1
        while more:
            size = min(BATCH, budget)
            if size <= 0:
                page.capped = True
                break
            budget -= size
            try:
                batch, after, more = await reader.session_batch(after, size)
            except RequestTimeout as exc:
                log.info("MQTT: stored sessions of account %s not listed: %s",
                         account.name, exc)
                break
            for token, record in batch:
                if _listed(door, account.name, record, text, now):
                    page.counted += 1
                    if skip < page.counted <= skip + want:
                        chosen.append((account, reader, record, token))
        if page.capped:
            break
    counts = await asyncio.gather(*(reader.queued_count(token)
                                    for _, reader, _, token in chosen),
                                  return_exceptions=True)
    page.docs = [stored_doc(account.name, record, n if isinstance(n, int) else None)
                 for (account, _, record, _), n in zip(chosen, counts, strict=True)]
    return page
